"""A run: plan shards, process them (locally or on Ray), merge, summarize, write results.

A shard is a block of consecutive samples of one scene (``run.shard_size``). Each finished shard
is published atomically as ``<output>/shards/<name>.parquet`` (rows, with page checksums); every
matched pair is cached as soon as it is matched (``benchmark.cache``), so a killed run restarts with
the same command, keeps the finished shards and rematches nothing it had matched. A shard file
that is unreadable, fails its checksums or does not hold the rows the plan expects is reported,
moved aside and recomputed. Identities (``benchmark.identity``): ``fingerprint.json`` holds the
hash of the config part of the results identity (another config in the same folder is refused),
and each shard file carries the fingerprint of its samples' data (files by content, cameras,
ground truth), so a shard whose inputs changed is recomputed, matching again only the pairs
whose images changed.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import identity
from .cache import MatchCache, method_cache_dir, note_old_format
from .config import config_hash
from .errors import SampleError, UserError
from .io import atomic_path, prepare_folder, remove_empty, write_text_atomic
from .types import INVALID_INPUT, InvalidSample

log = logging.getLogger("locbench.run")
SHARD_FORMAT = 3  # 3: per-shard data fingerprints, per-pair match cache; 2: one dataset manifest hash
FINGERPRINT_KEY = b"locbench_fingerprint"


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


def scene_samples(dataset, scene: str):
    """The scene's samples in order; where the scene breaks while being read, one InvalidSample that
    says why takes the next index (the scene stays in every denominator)."""
    try:
        yield from dataset.samples(scene)
    except SampleError as exc:
        yield InvalidSample(f"{scene}/*", scene, str(exc), INVALID_INPUT)


@dataclass
class Plan:
    """The shards of a run and what identifies their results (see ``benchmark.identity``)."""

    shards: list
    fingerprints: dict  # shard name -> fingerprint of its samples' data and the config
    digests: dict  # shard name -> {file path: content digest}, for the workers' match keys
    config_part: str  # hash of the results identity without the data
    data_digest: str  # the data of every sample of the run

    @property
    def results_hash(self) -> str:
        return config_hash({"config": self.config_part, "data": self.data_digest})


def plan_run(cfg: dict, dataset, method, ids: identity.FileIdentities) -> Plan:
    """Cut every scene into blocks of ``run.shard_size`` samples (the unit of resume and of Ray tasks)
    and fingerprint each block by the identity of its samples."""
    block_size, max_samples = cfg["run"]["shard_size"], cfg["run"]["max_samples"]
    config_part = config_hash(identity.results_identity(cfg, method.weights_fingerprint()))
    shards, fingerprints, digests, every_sample, total = [], {}, {}, [], 0
    for scene in dataset.scenes():
        if max_samples is not None and total >= max_samples:
            break
        items = []
        for sample in scene_samples(dataset, scene):
            if max_samples is not None and total + len(items) >= max_samples:
                break
            files: dict = {}
            items.append((identity.sample_digest(sample, ids, files), files))
        total += len(items)
        every_sample += [d for d, _ in items]
        for start in range(0, len(items), block_size):
            shard = Shard(scene, start, min(start + block_size, len(items)))
            block = items[shard.start : shard.stop]
            shards.append(shard)
            fingerprints[shard.name] = identity.combine([config_part, shard.name, *(d for d, _ in block)])
            digests[shard.name] = {p: d for _, files in block for p, d in files.items()}
    # the run's data in sample order, whatever the shard size
    return Plan(shards, fingerprints, digests, config_part, identity.combine(every_sample))


def shard_samples(dataset, shard: Shard):
    """The shard's samples (indices ``start <= i < stop`` of :func:`scene_samples`)."""
    return itertools.islice(scene_samples(dataset, shard.scene), shard.start, shard.stop)


# Per worker process: one dataset object and one loaded model, reused across shards.
_METHOD_MEMO: dict[str, object] = {}
_DATASET_MEMO: dict[str, tuple] = {}


def _memo_keys(cfg: dict) -> tuple[str, str]:
    return config_hash(cfg["dataset"]), config_hash(cfg["method"])


def _remember(cfg: dict, prepared) -> None:
    """The driver's dataset and method serve the local executor's shards too (built and checked once)."""
    dataset_key, method_key = _memo_keys(cfg)
    _DATASET_MEMO.clear()
    _DATASET_MEMO[dataset_key] = (prepared.dataset, prepared.protocol)
    _METHOD_MEMO.clear()
    _METHOD_MEMO[method_key] = prepared.method


def _worker_parts(cfg: dict, classes: tuple | None):
    """This process's dataset, (loaded) method and protocol for ``cfg``: built once per process (Ray
    workers keep them across shards; loaders may hold parsed lists and maps)."""
    dataset_key, method_key = _memo_keys(cfg)
    if dataset_key not in _DATASET_MEMO or method_key not in _METHOD_MEMO:
        dataset, method, protocol = build(cfg, classes)
        if dataset_key not in _DATASET_MEMO:
            _DATASET_MEMO.clear()
            _DATASET_MEMO[dataset_key] = (dataset, protocol)
        if method_key not in _METHOD_MEMO:
            _METHOD_MEMO.clear()
            _METHOD_MEMO[method_key] = method
    dataset, protocol = _DATASET_MEMO[dataset_key]
    return dataset, _METHOD_MEMO[method_key], protocol


def run_shard(
    cfg: dict,
    shard: Shard,
    shard_path: str,
    fingerprint: str,
    digests: dict,
    cache_root: str | None,
    classes: tuple | None = None,
    defer: bool = False,
) -> dict:
    """Process one shard and publish its rows; returns counts and the rows. Runs in any worker process.
    ``defer`` (pipelined runs in the driver's process): return as soon as the last sample is matched, with
    a future of the counts; the shard is published once its last samples are solved, while the next
    shard is matched."""
    from .matching import MatchKeys
    from .pipeline import _pair_images, prefetch_pairs, process_sample

    dataset, method, protocol = _worker_parts(cfg, classes)
    cache = MatchCache(Path(cache_root)) if cache_root else None
    keys = MatchKeys(method.cache_key(), digests)
    samples = shard_samples(dataset, shard)
    common = dict(
        method=method,
        cache=cache,
        keys=keys,
        task=dataset.task,
        solver_conf=cfg["solver"],
        run_seed=cfg["run"]["seed"],
        protocol=protocol,
    )
    if pipelined(cfg["run"], method):
        from .pipelined import in_writer, pipeline_conf, pipelined_rows

        # the matcher's cores: SIFT's own thread count, else torch's
        conf = pipeline_conf(cfg["run"], method.conf.get("num_threads") or cfg["run"]["torch_threads"])
        rows, solving = pipelined_rows(
            samples, conf=conf, images=functools.partial(_pair_images, method=method), **common
        )
        published = in_writer(publish_shard, shard, rows, solving, shard_path, fingerprint, cache)
        return published if defer else published.result()
    rows, per_batch = [], method.pairs_per_batch()
    while chunk := list(itertools.islice(samples, per_batch)):  # a few samples in memory at a time
        prefetched = prefetch_pairs(chunk, method, cache, keys) if per_batch > 1 else None
        rows += [process_sample(sample, prefetched=prefetched, **common).to_dict() for sample in chunk]
    return publish_shard(shard, rows, [], shard_path, fingerprint, cache)


def pipelined(run_conf: dict, method) -> bool:
    """``run.pipeline``: true, false, or auto (pipelined unless the matcher holds Python's GIL while it
    works, which leaves the pipeline's threads nothing but contention: see ``benchmark.pipelined``)."""
    mode = run_conf["pipeline"]
    return not method.holds_gil if mode == "auto" else bool(mode)


def publish_shard(
    shard: Shard, rows: list[dict], solving: list, shard_path: str, fingerprint: str, cache: MatchCache | None
) -> dict:
    """Write the shard's rows (``rows``, then those of the futures ``solving``) as its published file."""
    rows = rows + [f.result() for f in solving]
    if len(rows) != len(shard):
        raise UserError(
            f"Scene {shard.scene} yielded {len(rows)} samples for shard {shard.name} instead of "
            f"{len(shard)}: the dataset changed during the run; run the same command again."
        )
    df = pd.DataFrame(rows)
    df["shard"] = shard.name
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()})
    with atomic_path(Path(shard_path)) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)
    hits = int(df["cached"].sum()) if "cached" in df else 0
    # the rows as reading the published file gives them back, so the driver need not read it again
    return {
        "shard": shard.name,
        "rows": len(df),
        "cache_hits": hits,
        "cache_problems": cache.problems if cache else [],
        "table": table.to_pandas(),
    }


def read_shard(path: Path, shard: Shard, fingerprint: str) -> pd.DataFrame | None:
    """A published shard file, or None when it must be computed again: unreadable, failing its
    checksums or not holding ``shard``'s rows (reported and moved aside as ``.corrupt``), or computed
    from other data (its fingerprint differs: the inputs of its samples changed)."""
    path = Path(path)
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        df = table.to_pandas()
        names = set(df["shard"]) if "shard" in df else set()
        if len(df) != len(shard) or names != {shard.name}:
            raise ValueError(f"it holds {len(df)} rows of {sorted(names)}, expected {len(shard)} rows of {shard.name}")
    except Exception as exc:  # truncated, corrupt, or written for another plan
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("shard file %s is unreadable or stale (%s); it was moved aside and will be recomputed", path, first)
        if path.exists():
            os.replace(path, path.with_suffix(".corrupt"))
        return None
    if (table.schema.metadata or {}).get(FINGERPRINT_KEY, b"").decode() != fingerprint:
        return None  # its samples' images, depth or ground truth changed since: recomputed
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
            log.warning(
                "%s is unreadable (%s); the %d shard files beside it cannot be trusted and are recomputed",
                stamp,
                exc,
                len(stale),
            )
            for p in stale:
                p.unlink()
            old = None
    if old is not None and old != fingerprint:
        if old.get("format") != fingerprint["format"]:
            raise UserError(
                f"{output} holds shard files of another locbench version (shard format "
                f"{old.get('format')}, this one writes {fingerprint['format']}); delete {shard_dir} "
                f"or choose another --output."
            )
        raise UserError(f"{output} holds results of a different config; choose another --output or delete that folder.")
    if old is None:
        write_text_atomic(stamp, json.dumps(fingerprint, sort_keys=True))
    return old is None


@dataclass
class Prepared:
    """A run built and checked once: dataset, method, protocol, the plan of its shards and the file
    identities found while planning (saved once the run is known to be able to write)."""

    cfg: dict
    dataset: object
    method: object
    protocol: object
    plan: Plan
    ids: identity.FileIdentities

    @property
    def run_id(self) -> str:
        labels = f"{self.cfg['method']['label']}_{self.cfg['dataset']['label']}"
        return f"{labels}_{self.plan.results_hash[:8]}"


def preflight(cfg: dict, dataset, method) -> None:
    """Everything that would make every sample fail, checked before any work: the data folder, the
    method's settings, packages and weight files, the solver's declared needs."""
    from .solvers import check_solver

    dataset.check()
    method.preflight()
    check_solver(cfg["solver"], dataset, method)


def prepare(cfg: dict) -> Prepared:
    """Build the dataset, method and protocol, check them (before any work or output), identify every
    input and plan the shards. Writes nothing."""
    dataset, method, protocol = build(cfg)
    preflight(cfg, dataset, method)
    ids = identity.FileIdentities(Path(cfg["run"]["cache_dir"]) / "file-identities.sqlite")
    plan = plan_run(cfg, dataset, method, ids)
    if not plan.shards:
        raise UserError(f"The {dataset.name} dataset yielded no samples; check dataset.root and dataset.scenes.")
    return Prepared(cfg, dataset, method, protocol, plan, ids)


def execute(
    cfg: dict,
    output: Path,
    *,
    use_cache: bool = True,
    executor=None,
    progress: bool = True,
    prepared: Prepared | None = None,
) -> pd.DataFrame:
    """Run every pending shard and return all per-sample rows in dataset order.

    A run refused or stopped before its first shard is published leaves no folder behind."""
    from .executors import LocalExecutor, make_executor

    # the executor first: a missing optional package must fail before the output folder is touched
    executor = executor or make_executor(cfg["executor"], cfg["run"]["torch_threads"])
    prepared = prepared or prepare(cfg)
    dataset, method, plan = prepared.dataset, prepared.method, prepared.plan
    _remember(cfg, prepared)
    output = Path(output).absolute()  # workers may run elsewhere (Ray): absolute paths only
    shard_dir = output / "shards"
    cache_root = method_cache_dir(cfg["run"]["cache_dir"], method) if use_cache else None
    new_folders, wrote_stamp = [], False
    try:
        # can the run write its results and matches? Tried now, before any work
        new_folders += prepare_folder(output, "output folder", "choose another --output")
        new_folders += prepare_folder(shard_dir, "output folder", "choose another --output")
        if use_cache:
            new_folders += prepare_folder(cache_root, "cache folder", "set another run.cache_dir or pass --no-cache")
        for tmp in shard_dir.glob(".*.tmp*"):  # half-written files of a killed run (never published)
            tmp.unlink(missing_ok=True)
        wrote_stamp = check_fingerprint(shard_dir, {"format": SHARD_FORMAT, "results": plan.config_part}, output)
        prepared.ids.save()
        log.info(
            "run %s: method %s, dataset %s (%s protocol) -> %s",
            prepared.run_id,
            cfg["method"]["label"],
            cfg["dataset"]["label"],
            prepared.protocol.name,
            output,
        )
        log.info(
            "stage 1/3: matching and solving %d samples in %d shards", sum(map(len, plan.shards)), len(plan.shards)
        )
        if use_cache:
            note_old_format(cfg["run"]["cache_dir"])
        pending, done, changed = [], {}, 0
        for shard in plan.shards:
            path = shard_dir / f"{shard.name}.parquet"
            if path.exists() and (df := read_shard(path, shard, plan.fingerprints[shard.name])) is not None:
                done[shard.name] = df
            else:
                changed += path.exists()
                pending.append(shard)
        if done:
            log.info("resuming: %d of %d shards already finished in %s", len(done), len(plan.shards), shard_dir)
        if changed:
            log.info(
                "%d finished shards are computed again: the images, depth or ground truth of their samples "
                "changed (only pairs whose images changed are matched again)",
                changed,
            )
        # in this process, a shard is published while the next one is matched
        job = functools.partial(
            run_shard, cfg, classes=(type(dataset), type(method)), defer=isinstance(executor, LocalExecutor)
        )
        jobs = [
            (
                s,
                str(shard_dir / f"{s.name}.parquet"),
                plan.fingerprints[s.name],
                plan.digests[s.name],
                str(cache_root) if cache_root else None,
            )
            for s in pending
        ]
        start = time.perf_counter()
        stats = executor.map(job, jobs, progress=progress, weights=[len(s) for s in pending])
        wait([s for s in stats if isinstance(s, Future)])  # all published (or failed) before any error is raised
        stats = [s.result() if isinstance(s, Future) else s for s in stats]
    except BaseException:  # refused or stopped: leave nothing behind but finished shards
        if wrote_stamp and not any(shard_dir.glob("*.parquet")):
            (shard_dir / "fingerprint.json").unlink(missing_ok=True)
        remove_empty(new_folders)
        raise
    hits = sum(s["cache_hits"] for s in stats)
    for s in stats:
        for problem in s["cache_problems"]:
            log.warning(problem)
    if hits:
        log.info("reused %d cached match sets from %s (pass --no-cache to recompute)", hits, cache_root)
    log.info("processed %d shards in %.1f s", len(pending), time.perf_counter() - start)
    computed = {s["shard"]: s.pop("table") for s in stats if "table" in s}
    frames = []
    for shard in plan.shards:
        df = done.pop(shard.name, computed.pop(shard.name, None))
        if df is None:
            df = read_shard(shard_dir / f"{shard.name}.parquet", shard, plan.fingerprints[shard.name])
        if df is None:
            raise UserError(
                f"Shard {shard.name} produced no readable result file in {shard_dir}; run the same command again."
            )
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
