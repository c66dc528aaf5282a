"""A run: plan shards, process them (locally or on Ray), merge, summarize, write results.

A shard is a block of consecutive samples of one scene (``run.shard_size``). Each finished shard
is published atomically as ``<output>/shards/<name>.parquet`` (rows, with page checksums) beside
its match cache file, so a killed run restarts with the same command and recomputes only the
shards that had not finished. A shard file that is unreadable, fails its checksums or does not
hold the rows the plan expects is reported, moved aside and recomputed; ``fingerprint.json``
ties the shard files to the config, seed and dataset manifest that produced them.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .cache import ShardCache
from .config import config_hash
from .errors import SampleError, UserError
from .io import atomic_path, prepare_folder, remove_empty, write_text_atomic
from .types import INVALID_INPUT, TASK_METRIC_RELATIVE, InvalidSample

log = logging.getLogger("locbench.run")
SHARD_FORMAT = 2  # 2: parquet page checksums, dataset manifest in the fingerprint


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


def build(cfg: dict, classes: tuple | None = None):
    """Dataset, method and protocol objects for a resolved config (no weights loaded yet).

    ``classes`` = (dataset class, method class) skips the registries: Ray workers receive the
    classes with the job, so methods and datasets registered by a script work there too.
    """
    from .datasets_guard import ensure_our_datasets
    from .protocols import get_protocol
    from .registry import DATASETS, METHODS

    if classes is None:
        ensure_our_datasets()
        classes = DATASETS.get(cfg["dataset"]["name"]), METHODS.get(cfg["method"]["name"])
    dataset_cls, method_cls = classes
    dataset = dataset_cls(cfg["dataset"])
    method = method_cls(cfg["method"])
    return dataset, method, get_protocol(dataset.protocol)


def check_solver(solver_conf: dict, dataset, method) -> None:
    """The solver can work with what the dataset and the method give (else every sample would fail)."""
    from . import solvers

    known = {"relative": tuple(solvers.RELATIVE), "absolute": ("pnp",), TASK_METRIC_RELATIVE: solvers.METRIC_RELATIVE}
    for key, names in known.items():
        if solver_conf[key] not in names:
            raise UserError(f"solver.{key} must be one of {', '.join(names)}, not '{solver_conf[key]}'.")
    if isinstance(solver_conf["ransac"]["max_error"], list):
        raise UserError("solver.ransac.max_error is a list (a threshold sweep), which this version cannot run; "
                        "give one number, or sweep it with `python -m benchmark ablate --sweep "
                        "solver.ransac.max_error=V1,V2`.")
    if dataset.task != TASK_METRIC_RELATIVE:
        return
    name = solver_conf[TASK_METRIC_RELATIVE]
    if name.endswith("_pts3d") and not method.predicts_geometry:
        raise UserError(f"solver.metric_relative={name} needs a method that predicts 3D points (mast3r, dust3r), "
                        f"which {method.name} does not; use --set solver.metric_relative=pnp_depth with a depth map "
                        f"(dataset.depth).")
    if name.endswith("_depth") and "depth" in dataset.conf and not dataset.conf["depth"]:
        raise UserError(f"solver.metric_relative={name} needs the reference depth, but dataset.depth is not set; "
                        f"name the depth maps to use (e.g. --set dataset.depth=dptnyu for Map-free's DPT depth) or "
                        f"use a method that predicts 3D points with solver.metric_relative=pnp_pts3d.")


def count_samples(dataset, scene: str) -> int:
    """Samples of a scene (samples are light: paths and numbers). A scene that breaks while being
    read counts one more sample: the row that records why."""
    n = 0
    try:
        for _ in dataset.samples(scene):
            n += 1
    except SampleError:
        n += 1
    return n


def plan_shards(dataset, block_size: int, max_samples: int | None = None) -> list[Shard]:
    """Cut every scene into blocks of ``block_size`` samples (the unit of resume and of Ray tasks)."""
    if block_size < 1:
        raise UserError(f"run.shard_size must be a positive number of samples, not {block_size}.")
    shards, total = [], 0
    for scene in dataset.scenes():
        n = count_samples(dataset, scene)
        if max_samples is not None:
            n = min(n, max_samples - total)
            if n <= 0:
                break
        total += n
        shards.extend(Shard(scene, b, min(b + block_size, n)) for b in range(0, n, block_size))
    return shards


def shard_samples(dataset, shard: Shard):
    """The shard's samples; where the scene breaks, one InvalidSample saying why (at the index
    ``count_samples`` gave it)."""
    i = 0
    try:
        for sample in dataset.samples(shard.scene):
            if i >= shard.stop:
                return
            if i >= shard.start:
                yield sample
            i += 1
    except SampleError as exc:
        if shard.start <= i < shard.stop:
            yield InvalidSample(f"{shard.scene}/*", shard.scene, str(exc), INVALID_INPUT)


# Per worker process: one dataset object and one loaded model, reused across shards.
_METHOD_MEMO: dict[str, object] = {}
_DATASET_MEMO: dict[tuple, tuple] = {}


def cached_method(method):
    """One loaded model per worker process, reused across shards."""
    key = method.cache_key()
    if key not in _METHOD_MEMO:
        _METHOD_MEMO.clear()
        _METHOD_MEMO[key] = method
    return _METHOD_MEMO[key]


def _worker_parts(cfg: dict, classes: tuple | None):
    dataset, method, protocol = build(cfg, classes)
    key = (type(dataset), config_hash(cfg["dataset"]))
    if key not in _DATASET_MEMO:  # loaders may keep parsed lists/maps: build them once per process
        _DATASET_MEMO.clear()
        _DATASET_MEMO[key] = (dataset, protocol)
    dataset, protocol = _DATASET_MEMO[key]
    return dataset, cached_method(method), protocol


def run_shard(cfg: dict, shard: Shard, shard_path: str, cache_path: str | None, classes: tuple | None = None) -> dict:
    """Process one shard and publish its rows; returns counts. Runs in any worker process."""
    from .pipeline import prefetch_pairs, process_sample

    dataset, method, protocol = _worker_parts(cfg, classes)
    cache = ShardCache(Path(cache_path)) if cache_path else None
    if cache is None or len(cache) < len(shard):
        # load before the first sample: a broken weight file stops the run with its own sentence
        # instead of becoming an 'error' row for every sample
        method.load()
    rows = []
    samples = shard_samples(dataset, shard)
    per_batch = method.pairs_per_batch()
    while chunk := list(itertools.islice(samples, per_batch)):  # a few samples in memory at a time
        prefetched = prefetch_pairs(chunk, method, cache) if per_batch > 1 else None
        for sample in chunk:
            row = process_sample(sample, method=method, cache=cache, task=dataset.task, solver_conf=cfg["solver"],
                                 run_seed=cfg["run"]["seed"], protocol=protocol, prefetched=prefetched)
            rows.append(row.to_dict())
    if len(rows) != len(shard):
        raise UserError(f"Scene {shard.scene} yielded {len(rows)} samples for shard {shard.name} instead of "
                        f"{len(shard)}: the dataset changed during the run; run the same command again.")
    if cache is not None:
        cache.publish()  # before the rows: a published shard file implies its matches are cached
    df = pd.DataFrame(rows)
    df["shard"] = shard.name
    with atomic_path(Path(shard_path)) as tmp:
        df.to_parquet(tmp, index=False, write_page_checksum=True)
    hits = int(df["cached"].sum()) if "cached" in df else 0
    return {"shard": shard.name, "rows": len(df), "cache_hits": hits, "cache_problem": cache.problem if cache else ""}


def read_shard(path: Path, shard: Shard | None = None) -> pd.DataFrame | None:
    """A published shard file, or None when it is unreadable, fails its checksums or does not hold
    ``shard``'s rows; such a file is reported and moved aside (``.corrupt``) to be recomputed."""
    path = Path(path)
    try:
        df = pd.read_parquet(path, page_checksum_verification=True)
        if shard is not None:
            names = set(df["shard"]) if "shard" in df else set()
            if len(df) != len(shard) or names != {shard.name}:
                raise ValueError(f"it holds {len(df)} rows of {sorted(names)}, expected {len(shard)} rows of "
                                 f"{shard.name}")
    except Exception as exc:  # truncated, corrupt, or written for another plan
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("shard file %s is unreadable or stale (%s); it was moved aside and will be recomputed", path, first)
        if path.exists():
            os.replace(path, path.with_suffix(".corrupt"))
        return None
    return df


def check_fingerprint(shard_dir: Path, fingerprint: dict, output: Path) -> bool:
    """Refuse an output folder that holds another config's shards; distrust shards whose fingerprint
    is unreadable (they are deleted and recomputed; matches stay in the cache). True when it wrote one."""
    stamp = shard_dir / "fingerprint.json"
    old = None
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (ValueError, OSError) as exc:
            stale = sorted(shard_dir.glob("*.parquet"))
            log.warning("%s is unreadable (%s); the %d shard files beside it cannot be trusted and are recomputed",
                        stamp, exc, len(stale))
            for p in stale:
                p.unlink()
            old = None
    if old is not None and old != fingerprint:
        if old.get("format") != fingerprint["format"]:
            raise UserError(f"{output} holds shard files of another locbench version (shard format "
                            f"{old.get('format')}, this one writes {fingerprint['format']}); delete {shard_dir} "
                            f"or choose another --output.")
        if {k: v for k, v in old.items() if k != "dataset"} == {k: v for k, v in fingerprint.items() if k != "dataset"}:
            raise UserError(f"{output} holds results computed from other dataset files (the dataset manifest "
                            f"changed); delete that folder or choose another --output.")
        raise UserError(f"{output} holds results of a different config; choose another --output or delete that folder.")
    if old is None:
        write_text_atomic(stamp, json.dumps(fingerprint, sort_keys=True))
    return old is None


def preflight(cfg: dict, dataset, method) -> None:
    """Everything that would make every sample fail, checked before any work: the data folder, the
    method's settings, packages and weight files, the solver."""
    dataset.check()
    method.preflight()
    check_solver(cfg["solver"], dataset, method)


def execute(cfg: dict, output: Path, *, use_cache: bool = True, executor=None, progress: bool = True,
            run_id: str = "") -> pd.DataFrame:
    """Run every pending shard and return all per-sample rows in dataset order.

    A run refused or stopped before its first shard is published leaves no folder behind."""
    from .executors import make_executor
    from .provenance import manifest_hash

    # the executor first: a missing optional package must fail before the output folder is touched
    executor = executor or make_executor(cfg["executor"], cfg["run"]["torch_threads"])
    dataset, method, protocol = build(cfg)
    preflight(cfg, dataset, method)
    run_conf = cfg["run"]
    shards = plan_shards(dataset, run_conf["shard_size"], run_conf["max_samples"])
    if not shards:
        raise UserError(f"The {dataset.name} dataset yielded no samples; check dataset.root and dataset.scenes.")
    output = Path(output).absolute()  # workers may run elsewhere (Ray): absolute paths only
    shard_dir = output / "shards"
    cache_root = Path(run_conf["cache_dir"]).absolute() / f"{method.name}-{method.cache_key()}" / dataset.name
    new_folders, wrote_stamp = [], False
    try:
        # can the run write its results and matches? Tried now, before any work
        new_folders += prepare_folder(output, "output folder", "choose another --output")
        new_folders += prepare_folder(shard_dir, "output folder", "choose another --output")
        if use_cache:
            new_folders += prepare_folder(cache_root, "cache folder", "set another run.cache_dir or pass --no-cache")
        for tmp in shard_dir.glob(".*.tmp*"):  # half-written files of a killed run (never published)
            tmp.unlink(missing_ok=True)
        fingerprint = {"format": SHARD_FORMAT,
                       "config": config_hash({k: cfg[k] for k in ("method", "dataset", "solver")}),
                       "seed": run_conf["seed"], "dataset": manifest_hash(dataset.manifest())}
        wrote_stamp = check_fingerprint(shard_dir, fingerprint, output)
        log.info("run %s: method %s, dataset %s (%s protocol) -> %s", run_id or output.name, cfg["method"]["label"],
                 cfg["dataset"]["label"], protocol.name, output)
        log.info("stage 1/3: matching and solving %d samples in %d shards", sum(map(len, shards)), len(shards))
        pending, done = [], {}
        for shard in shards:
            path = shard_dir / f"{shard.name}.parquet"
            if path.exists() and (df := read_shard(path, shard)) is not None:
                done[shard.name] = df
            else:
                pending.append(shard)
        if done:
            log.info("resuming: %d of %d shards already finished in %s", len(done), len(shards), shard_dir)
        job = functools.partial(run_shard, cfg, classes=(type(dataset), type(method)))
        jobs = [(s, str(shard_dir / f"{s.name}.parquet"), str(cache_root / f"{s.name}.h5") if use_cache else None)
                for s in pending]
        start = time.perf_counter()
        stats = executor.map(job, jobs, progress=progress, weights=[len(s) for s in pending])
    except BaseException:  # refused or stopped: leave nothing behind but finished shards
        if wrote_stamp and not any(shard_dir.glob("*.parquet")):
            (shard_dir / "fingerprint.json").unlink(missing_ok=True)
        remove_empty(new_folders)
        raise
    hits = sum(s["cache_hits"] for s in stats)
    for s in stats:
        if s["cache_problem"]:
            log.warning(s["cache_problem"])
    if hits:
        log.info("reused %d cached match sets from %s (pass --no-cache to recompute)", hits, cache_root)
    log.info("processed %d shards in %.1f s", len(pending), time.perf_counter() - start)
    frames = []
    for shard in shards:
        df = done.pop(shard.name, None)
        if df is None:
            df = read_shard(shard_dir / f"{shard.name}.parquet", shard)
        if df is None:
            raise UserError(f"Shard {shard.name} produced no readable result file in {shard_dir}; run the same command again.")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
