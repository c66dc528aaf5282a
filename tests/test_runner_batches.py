"""The runner hands methods that batch (``pairs_per_batch`` > 1) several pairs per ``match_batch`` call;
results equal the pair-by-pair run, and a pair that breaks a batch still costs only itself."""

import pandas as pd
import pytest

from benchmark.config import resolve
from benchmark.runner import execute

from . import synthetic as S
from .synthetic import BatchingMatcher

pytestmark = pytest.mark.usefixtures("synthetic_classes")
VOLATILE = ["time_match_s", "time_solve_s", "cached", "shard"]


def run(tmp_path, method, name, cache=None):
    root = S.write_dataset(tmp_path / "data", scenes=2, pairs=7, modes={"sc0/004": S.RAISE, "sc1/001": S.FEW})
    cfg = resolve(
        method,
        "synthetic_pairs",
        None,
        [
            f"dataset.root={root}",
            "run.shard_size=5",
            f"run.cache_dir={tmp_path / ('cache_' + (cache or name))}",
            "solver.ransac.min_iterations=100",
        ],
    )
    return execute(cfg, tmp_path / name, progress=False)


def test_batched_run_equals_pair_by_pair(tmp_path, monkeypatch):
    monkeypatch.setattr(BatchingMatcher, "batches", [])
    single = run(tmp_path, "synthetic_matcher", "single")
    batched = run(tmp_path, "synthetic_batching", "batched")
    pd.testing.assert_frame_equal(single.drop(columns=VOLATILE), batched.drop(columns=VOLATILE), check_exact=True)
    # shards of 5 samples -> chunks of 3 + 2; the chunk holding the failing pair falls back to one by one
    assert BatchingMatcher.batches[:2] == [3, 2] and 1 in BatchingMatcher.batches
    status = batched.set_index("sample_id")["status"]
    assert status["sc0/004"] == "error" and status["sc1/001"] == "too_few_matches"
    assert "synthetic matcher failure" in batched.set_index("sample_id")["reason"]["sc0/004"]
    # a second run takes the pairs from the cache: only the failed pair (never cached) is matched again
    monkeypatch.setattr(BatchingMatcher, "batches", [])
    again = run(tmp_path, "synthetic_batching", "again", cache="batched")
    assert BatchingMatcher.batches == [1] and again["cached"].sum() == len(again) - 1
    pd.testing.assert_frame_equal(again.drop(columns=VOLATILE), batched.drop(columns=VOLATILE), check_exact=True)
