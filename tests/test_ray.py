"""The Ray executor: same results as the local one, user errors keep their sentence, classes travel.

One local Ray cluster (2 CPUs) serves the whole module; the CLI test joins it by address.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from benchmark.config import resolve  # noqa: E402
from benchmark.errors import UserError  # noqa: E402
from benchmark.executors import LocalExecutor  # noqa: E402
from benchmark.ray_executor import RayExecutor  # noqa: E402
from benchmark.runner import execute  # noqa: E402

from . import synthetic as S  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ["time_match_s", "time_solve_s", "cached"]  # wall-clock and cache provenance differ between runs
pytestmark = pytest.mark.usefixtures("synthetic_classes")


@pytest.fixture(scope="module")
def cluster():
    assert not ray.is_initialized()
    assert RayExecutor({"address": None, "num_cpus": 2}).connect()
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.drop(columns=VOLATILE + ["shard"], errors="ignore"),
        b.drop(columns=VOLATILE + ["shard"], errors="ignore"),
        check_exact=True,
    )


def synthetic_cfg(tmp_path, *overrides):
    root = S.write_dataset(tmp_path / "data", scenes=3, pairs=7, modes={"sc0/002": S.FEW, "sc1/004": S.RAISE})
    return resolve(
        "synthetic_matcher", "synthetic_pairs", None, [f"dataset.root={root}", "run.shard_size=3", *overrides]
    )


def test_ray_equals_local_and_shard_order_does_not_matter(cluster, tmp_path):
    cfg = synthetic_cfg(tmp_path, f"run.cache_dir={tmp_path / 'cache_local'}")
    local = execute(cfg, tmp_path / "local", executor=LocalExecutor(), progress=False)
    cfg_ray = synthetic_cfg(tmp_path, f"run.cache_dir={tmp_path / 'cache_ray'}")
    on_ray = execute(cfg_ray, tmp_path / "ray", executor=RayExecutor(cfg_ray["executor"]), progress=False)
    same_rows(local, on_ray)
    assert local["status"].value_counts().to_dict() == {"ok": 19, "too_few_matches": 1, "error": 1}
    # one shard per scene: other blocks, other order of RANSAC calls, same numbers (per-sample seeds)
    cfg_big = synthetic_cfg(tmp_path, f"run.cache_dir={tmp_path / 'cache_big'}", "run.shard_size=7")
    same_rows(local, execute(cfg_big, tmp_path / "big", executor=RayExecutor(cfg_big["executor"]), progress=False))
    # and the seed does matter, so the equalities above are not vacuous
    cfg_seed = synthetic_cfg(tmp_path, f"run.cache_dir={tmp_path / 'cache_local'}", "run.seed=1")
    other = execute(cfg_seed, tmp_path / "seed1", executor=LocalExecutor(), progress=False)
    assert (other["num_inliers"] != local["num_inliers"]).any()


def test_user_errors_from_workers_keep_their_sentence(cluster, tmp_path):
    cfg = synthetic_cfg(tmp_path, "method.broken_weights=true", f"run.cache_dir={tmp_path / 'cache'}")
    with pytest.raises(UserError) as err:
        execute(cfg, tmp_path / "out", executor=RayExecutor(cfg["executor"]), progress=False)
    assert str(err.value) == "The synthetic weight file is truncated; download it again."
    assert not list((tmp_path / "out/shards").glob("*.parquet"))


def test_classes_defined_in_a_function_reach_the_workers(cluster, tmp_path, register):
    """A script's own dataset (not importable by name on a worker) travels with the job."""
    from benchmark.registry import DATASETS

    class ScriptPairs(S.SyntheticPairs):
        pass

    register(DATASETS, "script_pairs", ScriptPairs)
    root = S.write_dataset(tmp_path / "data", scenes=2, pairs=3)
    cfg = resolve(
        "synthetic_matcher",
        "script_pairs",
        None,
        [f"dataset.root={root}", f"run.cache_dir={tmp_path / 'cache'}", "run.shard_size=2"],
    )
    df = execute(cfg, tmp_path / "out", executor=RayExecutor(cfg["executor"]), progress=False)
    assert len(df) == 6 and (df["status"] == "ok").all()


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-m", "benchmark", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("n", [6, pytest.param(None, marks=pytest.mark.slow)])
def test_cli_ray_run_joins_a_cluster_and_equals_local(cluster, sift_run_args, tmp_path, n):
    args = sift_run_args(f"run.max_samples={'null' if n is None else n}", "run.shard_size=2")
    _cli("run", *args, "--set", f"run.cache_dir={tmp_path / 'c1'}", "--output", tmp_path / "local")
    _cli(
        "run",
        *args,
        "--set",
        f"run.cache_dir={tmp_path / 'c2'}",
        "--output",
        tmp_path / "ray",
        "--executor",
        "ray",
        "--set",
        f"executor.address={cluster}",
    )
    a, b = (pd.read_parquet(tmp_path / d / "samples.parquet") for d in ("local", "ray"))
    same_rows(a, b)
    assert (a["status"] == "ok").sum() >= len(a) // 2  # real poses, not a table of failures
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray")]  # NaN as "nan"
    for key in ("overall", "per_scene", "status_counts", "num_samples"):
        assert summaries[0][key] == summaries[1][key], key
