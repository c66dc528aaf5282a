"""The CLI end to end, in subprocesses: run, resume, cache, leaderboard, list, score, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, check=True, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {})}
    out = subprocess.run(
        [sys.executable, "-m", "benchmark", *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    return out


@pytest.fixture()
def tiny(fixtures_dir, tmp_path):
    """The Map-free miniature (random 54x72 images): every sample fails to match, the run must still finish."""
    return [
        "--dataset",
        "mapfree",
        "--set",
        f"dataset.root={fixtures_dir / 'metrics/mapfree_tiny'}",
        "--set",
        "dataset.depth=dptnyu",
        "--set",
        f"run.cache_dir={tmp_path / 'cache'}",
    ]


def test_run_writes_every_artifact_and_resumes(tiny, tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--method", "sift", *tiny, "--output", out, "--no-progress", check=False)
    assert "VCRE<90px prec" in r.stdout and "too_few_matches 4" in r.stdout
    # every sample failed: the results are written, the exit code and one sentence say so
    assert r.returncode == 1 and "every one of the 4 samples failed (most often too_few_matches" in r.stderr
    assert "4 x too_few_matches: 0 of 0 matches with a 3D point, need 5" in r.stdout  # the reasons, counted
    for name in (
        "samples.parquet",
        "samples.csv",
        "summary.json",
        "summary.csv",
        "config.yaml",
        "provenance.json",
        "submission.zip",
        "plots/error_curves.png",
        "plots/per_scene.png",
    ):
        assert (out / name).is_file(), name
    df = pd.read_parquet(out / "samples.parquet")
    assert len(df) == 4 and set(df["status"]) == {"too_few_matches"} and df["reason"].str.contains("matches").all()
    prov = json.loads((out / "provenance.json").read_text())
    assert {"git", "packages", "seed", "results_hash", "protocol_version", "data_hash", "evaluation_set"} <= set(prov)
    r2 = cli("run", "--method", "sift", *tiny, "--output", out, "--no-progress", check=False)
    assert "resuming: 1 of 1 shards" in r2.stderr


def test_cache_is_reused_and_bypassed(tiny, tmp_path):
    cli("run", "--method", "sift", *tiny, "--output", tmp_path / "a", "--no-progress", check=False)
    r = cli("run", "--method", "sift", *tiny, "--output", tmp_path / "b", "--no-progress", check=False)
    assert "reused 4 cached match sets" in r.stderr
    r = cli("run", "--method", "sift", *tiny, "--output", tmp_path / "c", "--no-cache", "--no-progress", check=False)
    assert "cached match sets" not in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--method", "sift", "--dataset", "mapfree"], "needs its folder: pass --set dataset.root=PATH"),
        (["run", "--method", "nosuch", "--dataset", "demo"], "Unknown method 'nosuch'"),
        (
            ["run", "--method", "sift", "--dataset", "demo", "--set", "method.max_kp=3"],
            "Unknown config key 'method.max_kp'",
        ),
        (
            ["run", "--method", "sift", "--dataset", "mapfree", "--set", "dataset.root=/nonexistent/mapfree"],
            "does not exist",
        ),
        (["run", "--method", "sift", "--dataset", "demo", "--set", "novalue"], "must look like key.path=value"),
        (
            ["run", "--method", "sift", "--dataset", "demo", "--set", "run.shard_size=abc"],
            "run.shard_size must be an integer >= 1, not 'abc' (in --set run.shard_size=abc).",
        ),
        (
            ["run", "--method", "sift", "--dataset", "demo", "--set", "solver.ransac.max_error=abc"],
            "solver.ransac.max_error must be a number or a list of numbers > 0, not 'abc'",
        ),
        (
            ["run", "--method", "sift", "--dataset", "demo", "--output", "README.md"],
            "README.md is a file, not a folder; choose another --output.",
        ),
        (
            ["ablate", "--method", "sift", "--dataset", "demo", "--sweep", "run.bootstrap=1,x"],
            "run.bootstrap must be an integer >= 0, not 'x'",
        ),
        (["leaderboard", "configs"], "holds a finished run"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(args, message):
    r = cli(*args, check=False)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_bad_samples_are_recorded_and_the_run_goes_on(fixtures_dir, tmp_path):
    root = tmp_path / "mf"
    shutil.copytree(fixtures_dir / "metrics/mapfree_tiny/val", root / "val")
    scene = root / "val/s00460"
    (scene / "seq1/frame_00005.jpg").write_bytes(b"not a jpeg")  # unreadable image
    (scene / "seq1/frame_00010.jpg").unlink()  # missing image
    out = tmp_path / "run"
    cli(
        "run",
        "--method",
        "sift",
        "--dataset",
        "mapfree",
        "--set",
        f"dataset.root={root}",
        "--set",
        "dataset.depth=dptnyu",
        "--output",
        out,
        "--no-cache",
        "--no-progress",
        check=False,
    )
    df = pd.read_parquet(out / "samples.parquet").set_index("sample_id")
    assert df.loc["s00460/seq1/frame_00005.jpg", "status"] == "invalid_input"
    assert "cannot be decoded" in df.loc["s00460/seq1/frame_00005.jpg", "reason"]
    assert "is missing" in df.loc["s00460/seq1/frame_00010.jpg", "reason"]
    assert df.loc["s00460/seq1/frame_00015.jpg", "status"] == "too_few_matches"


def test_list_shows_methods_and_datasets():
    r = cli("list")
    assert "sift" in r.stdout and "demo" in r.stdout and "mapfree" in r.stdout


def test_score_json_prints_only_the_metrics(fixtures_dir):
    expected = json.loads((fixtures_dir / "metrics/mapfree/mapfree_expected.json").read_text())["aggregate"]
    r = cli(
        "score",
        "--dataset",
        "mapfree",
        "--submission",
        fixtures_dir / "metrics/mapfree/submission.zip",
        "--set",
        f"dataset.root={fixtures_dir / 'metrics/mapfree/dataset'}",
        "--json",
    )
    got = json.loads(r.stdout)
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert abs(got[k] - v) <= (1e-6 if k.startswith("AUC") else 1e-9), k


def test_leaderboard_groups_runs_and_marks_published(tiny, tmp_path):
    cli("run", "--method", "sift", *tiny, "--output", tmp_path / "r1", "--no-progress", check=False)
    cli(
        "run",
        "--method",
        "sift",
        *tiny,
        "--set",
        "method.max_keypoints=100",
        "--output",
        tmp_path / "r2",
        "--no-progress",
        check=False,
    )
    r = cli(
        "leaderboard", tmp_path / "r1", tmp_path / "r2", "--published", "--output", tmp_path / "lb", "--format", "md"
    )
    assert "### mapfree (mapfree v1): mapfree" in r.stdout
    assert sum(line.startswith("| sift") for line in r.stdout.splitlines()) == 2
    assert "| sift (max_keypoints=100) |" in r.stdout and "[published]" in r.stdout
    for fmt in ("md", "csv", "tex", "html"):
        assert (tmp_path / "lb" / f"leaderboard.{fmt}").stat().st_size > 0
    summary = json.loads((tmp_path / "r2/summary.json").read_text())
    summary["protocol_version"] = "0"
    (tmp_path / "r2/summary.json").write_text(json.dumps(summary))
    r = cli("leaderboard", tmp_path / "r1", tmp_path / "r2", "--format", "md")
    assert r.stdout.count("### mapfree") == 2  # another protocol version: another table
    r = cli("leaderboard", tmp_path / "r1", tmp_path / "r2", "--mix-protocols", "--format", "md")
    assert r.stdout.count("### mapfree") == 1
