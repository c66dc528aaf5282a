"""The leaderboard ranks only comparable runs: one table per evaluation set, labels that say how a run
differs from its preset, weights that are not a released file marked, failures counted."""

import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.leaderboard import build_leaderboard, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """sift on demo: all of it, its first 5 samples, one scene, and with fewer keypoints (matches cached)."""
    tmp = tmp_path_factory.mktemp("lb")
    common = [
        "--method",
        "sift",
        "--dataset",
        "demo",
        "--set",
        f"run.cache_dir={tmp / 'cache'}",
        "--set",
        "run.bootstrap=0",
        "--set",
        "run.plots=false",
        "--no-progress",
    ]
    variants = {
        "full": [],
        "partial": ["--set", "run.max_samples=5"],
        "scene": ["--set", "dataset.scenes=[s90001]"],
        "fewer": ["--set", "method.max_keypoints=300", "--set", "dataset.scenes=[s90001]"],
    }
    for name, extra in variants.items():
        assert main(["run", *common, *extra, "--output", str(tmp / name)]) == 0
    return tmp


def test_runs_over_different_evaluation_sets_never_share_a_table(runs):
    tables = build_leaderboard([runs / n for n in ("full", "partial", "scene", "fewer")])
    assert len(tables) == 3
    sizes = {heading: list(df["samples"]) for heading, df in tables.items()}
    full = next(h for h in sizes if "first" not in h and "scenes" not in h)
    partial = next(h for h in sizes if "first 5 samples" in h)
    scene = next(h for h in sizes if "scenes=['s90001']" in h)
    assert sizes[full] == [30] and sizes[partial] == [5] and sorted(sizes[scene]) == [10, 10]
    labels = list(tables[scene]["method"])
    assert sorted(labels) == ["sift", "sift (max_keypoints=300)"]
    assert set(tables[full]["weights"]) == {"-"}  # sift has no weight file


def test_failed_samples_are_counted_and_unreleased_weights_marked(runs, tmp_path):
    summary = json.loads((runs / "partial/summary.json").read_text())
    folder = tmp_path / "copy"
    folder.mkdir()
    summary["status_counts"] = {**summary["status_counts"], "ok": 3, "error": 2}
    summary["provenance"]["weight_files"] = [
        {"file": "checkpoint.pth", "sha256": "0" * 64, "status": "unknown", "release": ""}
    ]
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text((runs / "partial/config.yaml").read_text())
    tables = build_leaderboard([folder])
    (df,) = tables.values()
    assert df.loc[0, "failed"] == 2 and df.loc[0, "method"] == "sift †"
    assert "not a known released file" in render(tables, "md")


def test_published_rows_join_full_evaluation_sets_only(runs):
    assert main(["leaderboard", str(runs / "full"), "--published"]) == 0
    tables = build_leaderboard([runs / "partial"], published=True)
    assert not any("[published]" in m for df in tables.values() for m in df["method"])


def test_leaderboard_of_folders_without_runs_is_refused(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "holds a finished run (a summary.json)" in capsys.readouterr().err


def test_runs_from_before_evaluation_sets_each_keep_their_table(runs, tmp_path):
    folders = []
    for name in ("a", "b"):
        summary = json.loads((runs / "partial/summary.json").read_text())
        del summary["provenance"]["evaluation_set"]  # as an older locbench wrote it
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(summary))
        folders.append(folder)
    tables = build_leaderboard(folders)
    assert len(tables) == 2 and all("evaluation set not recorded" in h for h in tables)
