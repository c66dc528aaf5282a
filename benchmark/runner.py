"""A run: plan shards, process them (locally or on Ray), merge, summarize, write results.

A shard is a block of consecutive samples of one scene. Each finished shard is
published atomically as ``<output>/shards/<name>.parquet`` (rows) beside its match
cache file, so a killed run restarts with the same command and recomputes only the
shards that had not finished.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .cache import ShardCache
from .config import config_hash
from .errors import SampleError, UserError
from .io import atomic_path
from .types import INVALID_INPUT, InvalidSample

log = logging.getLogger("locbench.run")
SHARD_FORMAT = 1


@dataclass(frozen=True)
class Shard:
    """Samples ``start <= i < stop`` of one scene, in the dataset's order."""

    scene: str
    start: int
    stop: int

    @property
    def name(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.scene)
        return f"{safe}-{self.start:06d}"

    def __len__(self) -> int:
        return self.stop - self.start


def build(cfg: dict):
    """Dataset, method and protocol objects for a resolved config (no weights loaded yet)."""
    from .datasets_guard import ensure_our_datasets
    from .protocols import get_protocol
    from .registry import DATASETS, METHODS

    ensure_our_datasets()
    dataset = DATASETS.get(cfg["dataset"]["name"])(cfg["dataset"])
    method = METHODS.get(cfg["method"]["name"])(cfg["method"])
    return dataset, method, get_protocol(dataset.protocol)


def plan_shards(dataset, block_size: int, max_samples: int | None = None) -> list[Shard]:
    """Count samples per scene (samples are light: paths and numbers) and cut them into blocks."""
    shards, total = [], 0
    for scene in dataset.scenes():
        try:
            n = sum(1 for _ in dataset.samples(scene))
        except SampleError:
            n = 1  # the scene itself is broken: one shard records why
        if max_samples is not None:
            n = min(n, max_samples - total)
            if n <= 0:
                break
        total += n
        shards.extend(Shard(scene, b, min(b + block_size, n)) for b in range(0, n, block_size))
    return shards


def shard_samples(dataset, shard: Shard):
    try:
        for i, sample in enumerate(dataset.samples(shard.scene)):
            if i >= shard.stop:
                break
            if i >= shard.start:
                yield sample
    except SampleError as exc:
        yield InvalidSample(f"{shard.scene}/*", shard.scene, str(exc), INVALID_INPUT)


_METHOD_MEMO: dict[str, object] = {}


def cached_method(method):
    """One loaded model per worker process, reused across shards."""
    key = method.cache_key()
    if key not in _METHOD_MEMO:
        _METHOD_MEMO.clear()
        _METHOD_MEMO[key] = method
    return _METHOD_MEMO[key]


def run_shard(cfg: dict, shard: Shard, shard_path: str, cache_path: str | None) -> dict:
    """Process one shard and publish its rows; returns counts. Runs in any worker process."""
    from .pipeline import process_sample

    dataset, method, protocol = build(cfg)
    method = cached_method(method)
    cache = ShardCache(Path(cache_path)) if cache_path else None
    rows = []
    for sample in shard_samples(dataset, shard):
        row = process_sample(sample, method=method, cache=cache, task=dataset.task, solver_conf=cfg["solver"],
                             run_seed=cfg["run"]["seed"], protocol=protocol)
        rows.append(row.to_dict())
    if cache is not None:
        cache.publish()
    df = pd.DataFrame(rows)
    df["shard"] = shard.name
    with atomic_path(Path(shard_path)) as tmp:
        df.to_parquet(tmp, index=False)
    hits = int(df["cached"].sum()) if len(df) and "cached" in df else 0
    return {"shard": shard.name, "rows": len(df), "cache_hits": hits, "cache_problem": cache.problem if cache else ""}


def read_shard(path: Path) -> pd.DataFrame | None:
    """A published shard file, or None when it is unreadable (then it is recomputed)."""
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        log.warning("shard file %s is unreadable (%s); recomputing it", path, exc)
        path.unlink(missing_ok=True)
        return None


def execute(cfg: dict, output: Path, *, use_cache: bool = True, executor=None, progress: bool = True) -> pd.DataFrame:
    """Run every pending shard and return all per-sample rows in dataset order."""
    from .executors import make_executor

    dataset, method, protocol = build(cfg)
    dataset.check()  # fail before any work: missing root, weights, packages
    method.check()
    run_conf = cfg["run"]
    shards = plan_shards(dataset, int(run_conf["shard_size"]), run_conf["max_samples"])
    if not shards:
        raise UserError(f"The {dataset.name} dataset yielded no samples; check dataset.root and dataset.scenes.")
    shard_dir = output / "shards"
    method_key = method.cache_key()
    (output / "shards").mkdir(parents=True, exist_ok=True)
    fingerprint = {"format": SHARD_FORMAT, "config": config_hash({k: cfg[k] for k in ("method", "dataset", "solver")}),
                   "seed": run_conf["seed"]}
    stamp = shard_dir / "fingerprint.json"
    if stamp.exists() and json.loads(stamp.read_text()) != fingerprint:
        raise UserError(f"{output} holds results of a different config; choose another --output or delete that folder.")
    stamp.write_text(json.dumps(fingerprint))

    cache_root = Path(run_conf["cache_dir"]) / f"{method.name}-{method_key}" / dataset.name
    pending, done = [], {}
    for shard in shards:
        path = shard_dir / f"{shard.name}.parquet"
        if path.exists() and (df := read_shard(path)) is not None:
            done[shard.name] = df
        else:
            pending.append(shard)
    if done:
        log.info("resuming: %d of %d shards already finished in %s", len(done), len(shards), shard_dir)
    jobs = [(cfg, s, str(shard_dir / f"{s.name}.parquet"), str(cache_root / f"{s.name}.h5") if use_cache else None)
            for s in pending]
    start = time.perf_counter()
    executor = executor or make_executor(cfg["executor"])
    stats = executor.map(run_shard, jobs, progress=progress, weights=[len(s) for s in pending])
    hits = sum(s["cache_hits"] for s in stats)
    for s in stats:
        if s["cache_problem"]:
            log.warning(s["cache_problem"])
    if hits:
        log.info("reused %d cached match sets from %s (pass --no-cache to recompute)", hits, cache_root)
    log.info("processed %d shards in %.1f s", len(pending), time.perf_counter() - start)
    frames = []
    for shard in shards:
        df = done.get(shard.name)
        if df is None:
            df = read_shard(shard_dir / f"{shard.name}.parquet")
        if df is None:
            raise UserError(f"Shard {shard.name} produced no readable result file in {shard_dir}; run the same command again.")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
