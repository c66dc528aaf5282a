"""The pipelined runner gives the sequential runner's rows, row for row: on demo with SIFT, and on
synthetic pairs with batches, failures of every kind, tiny queues, solver threads or processes."""

import pandas as pd
import pytest

from benchmark.config import resolve
from benchmark.errors import UserError
from benchmark.pipelined import pipeline_conf
from benchmark.runner import execute

from . import synthetic as S

VOLATILE = ["time_match_s", "time_solve_s"]


def run(tmp_path, name, method, dataset, overrides, cache=None):
    cfg = resolve(method, dataset, None, [f"run.cache_dir={tmp_path / ('cache_' + (cache or name))}", *overrides])
    return execute(cfg, tmp_path / name, progress=False)


def same_rows(a, b):
    pd.testing.assert_frame_equal(a.drop(columns=VOLATILE), b.drop(columns=VOLATILE), check_exact=True)


def synthetic_root(tmp_path):
    root = S.write_dataset(tmp_path / "data", scenes=3, pairs=7, modes={"sc0/004": S.RAISE, "sc1/001": S.FEW})
    (root / "sc1" / "002.png").write_bytes(b"not a png")  # an unreadable image: invalid_input
    for copy, original in (("002", "001"), ("005", "000")):  # one image pair twice: in one batch, in another shard
        (root / "sc0" / f"{copy}.png").write_bytes((root / "sc0" / f"{original}.png").read_bytes())
    (root / "sc2" / "BROKEN_AFTER_5").touch()  # a scene that breaks while being read
    return root


@pytest.mark.parametrize("method", ["synthetic_matcher", "synthetic_batching"])
def test_pipelined_rows_equal_sequential_rows_on_synthetic_pairs(tmp_path, method, synthetic_classes):
    common = [
        f"dataset.root={synthetic_root(tmp_path)}",
        "run.shard_size=4",
        "solver.ransac.min_iterations=100",
        "run.pipeline=true",
    ]
    sequential = run(tmp_path, "seq", method, "synthetic_pairs", [*common[:-1], "run.pipeline=false"])
    assert set(sequential["status"]) == {"ok", "error", "too_few_matches", "invalid_input"}
    assert list(sequential["cached"][:6]) == [False, False, True, False, False, True]  # the copies
    for variant in (
        ["run.read_ahead=1", "run.solve_queue=1", "run.pipeline_threads=1"],
        ["run.read_ahead=5", "run.solve_queue=3", "run.pipeline_threads=3", "run.read_threads=2"],
        ["run.pipeline_processes=true", "run.pipeline_threads=2"],
    ):
        name = "pipe" + "_".join(v.split("=")[1] for v in variant)
        same_rows(sequential, run(tmp_path, name, method, "synthetic_pairs", [*common, *variant]))
    # warm: every match from the cache (failures were never cached), still the same rows
    warm = run(tmp_path, "warm", method, "synthetic_pairs", common, cache="seq")
    assert warm["cached"].sum() == (sequential["status"].isin(["ok", "too_few_matches"])).sum()
    same_rows(sequential.drop(columns="cached"), warm.drop(columns="cached"))


def test_pipelined_rows_equal_sequential_rows_on_demo(tmp_path):
    common = ["run.max_samples=7", "run.shard_size=3"]
    same_rows(
        run(tmp_path, "seq", "sift", "demo", [*common, "run.pipeline=false"]),
        run(tmp_path, "pipe", "sift", "demo", [*common, "run.pipeline=true"]),
    )


@pytest.mark.slow
def test_pipelined_rows_equal_sequential_rows_on_all_of_demo(tmp_path):
    sequential = run(tmp_path, "seq", "sift", "demo", ["run.pipeline=false"])
    same_rows(sequential, run(tmp_path, "threads", "sift", "demo", ["run.pipeline=true"]))
    same_rows(
        sequential, run(tmp_path, "processes", "sift", "demo", ["run.pipeline=true", "run.pipeline_processes=true"])
    )


def test_auto_pipelines_unless_the_matcher_holds_the_gil(synthetic_classes):
    from benchmark.registry import METHODS
    from benchmark.runner import pipelined

    for mode, sift, other in (("auto", False, True), (True, True, True), (False, False, False)):
        assert pipelined({"pipeline": mode}, METHODS.get("sift")({})) is sift
        assert pipelined({"pipeline": mode}, METHODS.get("synthetic_matcher")({})) is other


def test_pipeline_sizes(monkeypatch):
    import benchmark.pipelined as P

    run_conf = resolve("sift", "demo", None, [])["run"]
    for cores, matcher, solvers in ((2, 1, 1), (16, 1, 8), (1, 1, 1), (4, 2, 2)):
        monkeypatch.setattr(P, "available_cores", lambda: cores)
        assert pipeline_conf(run_conf, matcher).solvers == solvers  # never more than the free cores
    assert pipeline_conf({**run_conf, "pipeline_threads": 5}, 1).solvers == 5
    for key, value in (("pipeline_threads", 0), ("read_ahead", "many"), ("solve_queue", "true"), ("pipeline", "maybe")):
        with pytest.raises(UserError, match=f"run.{key} must be"):  # refused when the config is resolved
            resolve("sift", "demo", None, [f"run.{key}={value}"])
