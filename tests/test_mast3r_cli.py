"""MASt3R through the CLI with the tiny checkpoint: a demo run and the FRM-iterations ablation.

Random tiny weights give poor poses: what is checked is that every stage runs, failures are recorded
with their reasons, and the ablation writes its table (with the brute-force baseline) and plot.
Images are fed at 128 px (``method.size``) to keep the CPU time small; the network code is the same.
"""

import json

import pandas as pd
import pytest

from .test_cli import cli


@pytest.fixture()
def tiny_mast3r(fixtures_dir, tmp_path):
    return [
        "--method",
        "mast3r",
        "--dataset",
        "demo",
        "--set",
        f"method.weights={fixtures_dir / 'mast3r/tiny_mast3r/checkpoint.pth'}",
        "--set",
        "method.size=128",
        "--set",
        f"run.cache_dir={tmp_path / 'cache'}",
        "--no-progress",
    ]


def test_demo_run_matches_solves_and_scores(tiny_mast3r, tmp_path):
    out = tmp_path / "run"
    r = cli("run", *tiny_mast3r, "--set", "run.max_samples=6", "--output", out)
    assert "mast3r on demo" in r.stdout
    df = pd.read_parquet(out / "samples.parquet")
    assert len(df) == 6 and df["status"].isin(["ok", "too_few_matches", "solver_failed"]).all()
    assert (df.loc[df["status"] != "ok", "reason"] != "").all()
    assert (df["num_matches"] > 0).all() and df["time_reciprocal_s"].notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_samples"] == 6 and {"forward", "reciprocal"} <= set(summary["mean_stage_time_s"])
    assert "pnp_pts3d" in (out / "config.yaml").read_text()


def test_frm_ablation_writes_table_with_brute_force_baseline_and_plot(tiny_mast3r, tmp_path):
    out = tmp_path / "ablation"
    r = cli("ablate", *tiny_mast3r, "--set", "run.max_samples=2", "--sweep", "method.frm.max_iter=1,3", "--output", out)
    table = pd.read_csv(out / "ablation.csv")
    assert table["variant"].tolist() == [
        "method.frm.max_iter=1",
        "method.frm.max_iter=3",
        "baseline: method.frm.brute_force=true",
    ]
    from benchmark.metrics import mapfree as M

    assert {"time_match_s", "time_forward_s", "time_reciprocal_s", M.KEY_PREC_VCRE, M.KEY_AUC_POSE} <= set(
        table.columns
    )
    assert "ablation table and plot" in r.stdout
    # brute force searches every pixel: slower than one FRM iteration from the grid
    assert table["time_reciprocal_s"].iloc[2] > table["time_reciprocal_s"].iloc[0]
    assert (out / "ablation.png").stat().st_size > 10_000 and (out / "ablation.md").is_file()


def test_missing_weights_stop_before_any_work(tmp_path):
    env_dirs = ["--set", f"run.cache_dir={tmp_path / 'cache'}", "--output", tmp_path / "never"]
    r = cli(
        "run",
        "--method",
        "mast3r",
        "--dataset",
        "demo",
        *env_dirs,
        check=False,
        env={"LOCBENCH_CACHE": str(tmp_path / "wcache"), "LOCBENCH_WEIGHTS": str(tmp_path / "none")},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth" in r.stderr and "put it in" in r.stderr
    assert not (tmp_path / "never").exists()
