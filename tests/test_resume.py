"""Resume: a run killed at any point finishes with the same command, recomputing nothing finished;
corrupt shard, cache, fingerprint and summary files are detected, reported and recomputed."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from benchmark import runner
from benchmark.cli import main
from benchmark.config import resolve
from benchmark.runner import execute

from . import synthetic as S

pytestmark = pytest.mark.usefixtures("synthetic_classes")

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ["time_match_s", "time_solve_s", "cached", "shard"]
TOTAL = 21  # 3 scenes x 7 pairs in shards of 3, 3 and 1 pairs: sc0-000000, sc0-000003, sc0-000006, sc1-..., sc2-...
FINISHED_AFTER = (0, 3, 6, 7, 10, 13, 14, 17, 20, 21)  # samples in finished shards, shard by shard


def same_rows(a, b):
    pd.testing.assert_frame_equal(
        a.drop(columns=VOLATILE, errors="ignore"), b.drop(columns=VOLATILE, errors="ignore"), check_exact=True
    )


@pytest.fixture()
def synthetic(tmp_path):
    root = S.write_dataset(tmp_path / "data", scenes=3, pairs=7, modes={"sc0/002": S.FEW, "sc1/004": S.RAISE})

    def cfg(cache="cache", *overrides):
        return resolve(
            "synthetic_matcher",
            "synthetic_pairs",
            None,
            [
                f"dataset.root={root}",
                "run.shard_size=3",
                f"run.cache_dir={tmp_path / cache}",
                "solver.ransac.min_iterations=100",
                *overrides,
            ],
        )

    return cfg


@pytest.fixture()
def calls(monkeypatch):
    """Matcher calls counted from zero; ``calls.crash(k)`` interrupts the k-th call."""

    class Counter:
        def __int__(self):
            return S.SyntheticMatcher.calls

        def reset(self):
            monkeypatch.setattr(S.SyntheticMatcher, "calls", 0)
            monkeypatch.setattr(S.SyntheticMatcher, "crash_after", None)

        def crash(self, k):
            monkeypatch.setattr(S.SyntheticMatcher, "crash_after", k)

    counter = Counter()
    counter.reset()
    return counter


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("*.parquet"))}


@pytest.mark.parametrize("crash_at", [1, 5, 12, TOTAL])
def test_interrupted_anywhere_resumes_recomputing_only_unfinished_shards(synthetic, calls, tmp_path, crash_at):
    reference = execute(synthetic("cache_ref"), tmp_path / "ref", progress=False)
    calls.reset()
    calls.crash(crash_at)
    with pytest.raises(KeyboardInterrupt):
        execute(synthetic(), tmp_path / "out", progress=False)
    finished = snapshot(tmp_path / "out/shards")
    done_rows = sum(len(pd.read_parquet(tmp_path / "out/shards" / n)) for n in finished)
    assert done_rows == max(n for n in FINISHED_AFTER if n <= crash_at - 1)
    calls.reset()
    resumed = execute(synthetic(), tmp_path / "out", progress=False)
    # every pair matched before the kill was cached at once (the failing pair sc1/004, sample 11, never is):
    # the resumed run matches only the unfinished shards' other pairs
    cached_before = set(range(crash_at - 1)) - {11}
    assert int(calls) == len(set(range(done_rows, TOTAL)) - cached_before)
    assert {n: v for n, v in snapshot(tmp_path / "out/shards").items() if n in finished} == finished
    same_rows(reference, resumed)


# pipelined: a shard is published while the next ones are matched, so a failure to publish one surfaces once
# the others are done and published; only the failed shard is redone, from the cache
@pytest.mark.parametrize("pipeline, rematched", [(False, TOTAL - 6), (True, 0)])
def test_killed_between_cache_and_rows_reuses_the_published_matches(
    synthetic, calls, tmp_path, monkeypatch, pipeline, rematched
):
    reference = execute(synthetic("cache_ref"), tmp_path / "ref", progress=False)
    real_atomic_path, writes = runner.atomic_path, []

    @contextmanager
    def dies_on_second_shard(path):
        writes.append(path)
        if len(writes) == 2:
            raise KeyboardInterrupt  # the shard's cache file is published, its rows are not
        with real_atomic_path(path) as tmp:
            yield tmp

    monkeypatch.setattr(runner, "atomic_path", dies_on_second_shard)
    calls.reset()
    with pytest.raises(KeyboardInterrupt):
        execute(synthetic("cache", f"run.pipeline={pipeline}"), tmp_path / "out", progress=False)
    monkeypatch.setattr(runner, "atomic_path", real_atomic_path)
    calls.reset()
    resumed = execute(synthetic("cache", f"run.pipeline={pipeline}"), tmp_path / "out", progress=False)
    assert int(calls) == rematched
    assert resumed["cached"].sum() == 3
    same_rows(reference, resumed)


def test_sigkill_then_the_same_command_finishes_with_the_same_results(sift_run_args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    base = [sys.executable, "-m", "benchmark", "run", *sift_run_args("run.shard_size=1", "run.max_samples=6")]
    command = [*base, "--set", f"run.cache_dir={tmp_path / 'cache'}", "--output", str(tmp_path / "out")]
    shards = tmp_path / "out/shards"
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(shards.glob("[!.]*.parquet"))) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = snapshot(shards)
    finished = {n: v for n, v in finished.items() if not n.startswith(".")}  # a half-written temp file may remain
    assert 2 <= len(finished) < 6
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(finished)} of 6 shards already finished" in again.stderr
    assert {n: v for n, v in snapshot(shards).items() if n in finished} == finished  # not rewritten
    assert not list(shards.glob(".*.tmp*"))  # the killed run's temp file was cleared
    # the uninterrupted reference, in this process (same code, no interpreter start-up)
    assert main([*base[3:], "--set", f"run.cache_dir={tmp_path / 'cache2'}", "--output", str(tmp_path / "fresh")]) == 0
    resumed, uninterrupted = (pd.read_parquet(tmp_path / d / "samples.parquet") for d in ("out", "fresh"))
    assert len(resumed) == 6 and (resumed["status"] == "ok").sum() >= 3
    same_rows(uninterrupted, resumed)


def _entry(cfg, sample_id: str) -> Path:
    """The match-cache file of one synthetic pair."""
    from benchmark.cache import MatchCache, method_cache_dir
    from benchmark.matching import MatchKeys

    dataset, method, _ = runner.build(cfg)
    sample = next(s for s in dataset.samples(sample_id.split("/")[0]) if s.id == sample_id)
    return MatchCache(method_cache_dir(cfg["run"]["cache_dir"], method)).path(
        MatchKeys(method.cache_key()).pair(sample)
    )


@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped byte"])
def test_corrupt_match_cache_is_reported_and_recomputed(synthetic, calls, tmp_path, caplog, how):
    first = execute(synthetic(), tmp_path / "a", progress=False)
    entry = _entry(synthetic(), "sc1/003")
    data = bytearray(entry.read_bytes())
    if how == "truncated":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbage":
        entry.write_bytes(os.urandom(len(data)))
    else:  # one byte inside an array: the ZIP's CRC-32 notices
        data[bytes(data).index(b"kpts1.npy") + 200] ^= 0x40
        entry.write_bytes(bytes(data))
    calls.reset()
    with caplog.at_level(logging.WARNING, logger="locbench"):
        second = execute(synthetic(), tmp_path / "b", progress=False)
    assert f"match cache entry {entry} is unreadable" in caplog.text
    # that pair is matched again, and the failing pair, which is never cached
    assert int(calls) == 2 and second["cached"].sum() == TOTAL - 2
    assert entry.with_suffix(".corrupt").exists()
    same_rows(first, second)
    calls.reset()
    execute(synthetic(), tmp_path / "c", progress=False)
    assert int(calls) == 1  # the rewritten entry is whole again (only the failing pair is never cached)


@pytest.mark.parametrize("how", ["truncated", "garbage", "stale plan"])
def test_corrupt_or_stale_shard_file_is_reported_and_recomputed(synthetic, calls, tmp_path, caplog, how):
    first = execute(synthetic(), tmp_path / "out", progress=False)
    shards = tmp_path / "out/shards"
    target = shards / "sc2-000003.parquet"
    if how == "truncated":
        target.write_bytes(target.read_bytes()[:-40])
    elif how == "garbage":
        target.write_bytes(b"PAR1" + os.urandom(300) + b"PAR1")
    else:  # a shard of another plan under the same name (2 rows where 3 are expected)
        pd.read_parquet(target).iloc[:2].to_parquet(target, index=False)
    others = {n: v for n, v in snapshot(shards).items() if n != target.name}
    calls.reset()
    with caplog.at_level(logging.WARNING, logger="locbench"):
        second = execute(synthetic(), tmp_path / "out", progress=False)
    assert f"shard file {target} is unreadable or stale" in caplog.text
    assert target.with_suffix(".corrupt").exists() and len(pd.read_parquet(target)) == 3
    assert {n: v for n, v in snapshot(shards).items() if n in others} == others
    assert int(calls) == 0  # recomputed from the match cache (sc2 has no failing pair)
    same_rows(first, second)


def test_changed_shard_size_reuses_nothing_stale(synthetic, calls, tmp_path, caplog):
    first = execute(synthetic(), tmp_path / "out", progress=False)
    calls.reset()
    with caplog.at_level(logging.WARNING, logger="locbench"):
        bigger = execute(synthetic("cache", "run.shard_size=7"), tmp_path / "out", progress=False)
    assert caplog.text.count("is unreadable or stale") == 3  # sc*-000000 held 3 rows, 7 are expected now
    assert int(calls) == 1  # the match cache is keyed by pair, not by shard: only the failing pair again
    same_rows(first, bigger)


def test_corrupt_fingerprint_distrusts_the_shards(synthetic, calls, tmp_path, caplog):
    first = execute(synthetic(), tmp_path / "out", progress=False)
    stamp = tmp_path / "out/shards/fingerprint.json"
    stamp.write_text('{"format": 2, "conf')
    calls.reset()
    with caplog.at_level(logging.INFO, logger="locbench"):
        second = execute(synthetic(), tmp_path / "out", progress=False)
    assert f"{stamp} is unreadable" in caplog.text and "9 shard files beside it cannot be trusted" in caplog.text
    assert "resuming" not in caplog.text
    assert int(calls) == 1  # everything else came from the match cache; the failing pair is never cached
    assert json.loads(stamp.read_text())["format"] == runner.SHARD_FORMAT
    same_rows(first, second)


def test_corrupt_summary_is_rewritten_by_the_same_command(synthetic, tmp_path, capsys):
    root = synthetic()["dataset"]["root"]
    argv = [
        "run",
        "--method",
        "synthetic_matcher",
        "--dataset",
        "synthetic_pairs",
        "--set",
        f"dataset.root={root}",
        "--set",
        f"run.cache_dir={tmp_path / 'cache'}",
        "--set",
        "run.plots=false",
        "--set",
        "run.bootstrap=20",
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    (tmp_path / "out/summary.json").write_text(json.dumps(summary)[:100])
    assert main(argv) == 0
    again = json.loads((tmp_path / "out/summary.json").read_text())
    for key in ("overall", "per_scene", "status_counts", "ci95"):
        assert again[key] == summary[key], key
    assert summary["status_counts"] == {
        "ok": 19,
        "too_few_matches": 1,
        "solver_failed": 0,
        "invalid_input": 0,
        "error": 1,
    }
