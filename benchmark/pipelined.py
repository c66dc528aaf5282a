"""The pipelined runner of a shard: the matcher never waits for the harness.

The calling thread only matches. A producer thread walks the shard's samples ahead of it, looks each
pair up in the match cache and has reader threads decode and resize the images of the uncached ones
(at most ``run.read_ahead`` samples ahead); a writer thread stores each new match set in the cache,
and solver threads (``run.pipeline_processes``: processes) solve and score the matched samples (at
most ``run.solve_queue`` waiting; then the matcher waits). Rows come out in the dataset's order and
equal the sequential runner's (``run.pipeline: false``): every RANSAC is seeded per sample, so the
order in which samples are solved changes nothing, and a batching method gets the same batches of
``pairs_per_batch`` consecutive samples.

Threads suffice when the matcher releases the GIL (torch, CUDA, a sleep) and for the solvers
(pycolmap's RANSAC releases it); a CPU matcher that holds the GIL while it works (pycolmap's SIFT)
leaves threads only the gaps between its calls: there, solving in processes can pay, if cores are free.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue
import threading
from dataclasses import dataclass

from .pipeline import cached_match, finish_row, match_sample, prefetch_pairs
from .types import PairSample

MAX_AUTO_SOLVERS = 8  # beyond this, solver threads mostly contend for the GIL
_END = object()


@dataclass(frozen=True)
class PipelineConf:
    solvers: int  # threads (or processes) that solve and score
    processes: bool
    readers: int  # threads that decode images
    read_ahead: int  # samples prepared ahead of the matcher
    solve_queue: int  # matched samples waiting for a solver before the matcher waits


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pipeline_conf(run_conf: dict, matcher_cores: int) -> PipelineConf:
    """The pipeline's sizes from the ``run`` config (checked when it was resolved). Solvers default to the
    cores the matcher leaves free (2-core laptop, 1-thread matcher: 1 solver; 16-core GPU node: 8), never
    fewer than one."""
    solvers = run_conf["pipeline_threads"]
    if solvers is None:
        solvers = min(MAX_AUTO_SOLVERS, max(1, available_cores() - max(1, int(matcher_cores))))
    return PipelineConf(
        int(solvers),
        bool(run_conf["pipeline_processes"]),
        int(run_conf["read_threads"]),
        int(run_conf["read_ahead"]),
        int(run_conf["solve_queue"]),
    )


_POOLS: dict[tuple, cf.Executor] = {}  # per process, reused by every shard (processes are slow to start)


def _pool(kind: str, size: int) -> cf.Executor:
    """A pool kept for the process's life; at exit, the queued tasks run to their end (cache writes)."""
    key = (kind, size)
    if key not in _POOLS:
        if kind == "process":
            # spawn: forking a process that runs threads (readers, torch, Ray) is unsafe
            _POOLS[key] = cf.ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"))
        else:
            _POOLS[key] = cf.ThreadPoolExecutor(size, thread_name_prefix=f"locbench-{kind}")
    return _POOLS[key]


def _produce(samples, ready: queue.Queue, stop: threading.Event, cache, keys, readers, images) -> None:
    """Producer thread: (sample, match key, cached matches, future of the images) in order, then _END."""

    def hand(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for sample in samples:
            key = hit = read = None
            if isinstance(sample, PairSample):
                key = keys.pair(sample)
                hit = cache.get(key) if cache is not None else None
                read = readers.submit(images, sample) if hit is None else None
            if not hand((sample, key, hit, read)):
                return
        hand(_END)
    except BaseException as exc:  # a bug in a loader: raised in the matcher's thread
        hand(exc)


def in_writer(fn, *args) -> cf.Future:
    """``fn(*args)`` in the writer thread, after every cache write handed to it before."""
    return _pool("write", 1).submit(fn, *args)


def pipelined_rows(
    samples, *, method, cache, keys, task, solver_conf, run_seed, protocol, conf: PipelineConf, images
) -> tuple[list[dict], list[cf.Future]]:
    """The rows of ``samples`` (in their order), matching in this thread while the others prepare, store
    and solve: the rows solved by the time the last sample is matched, and the futures of the others.
    Their cache writes are queued in the writer thread (see :func:`in_writer`)."""
    solvers = _pool("process" if conf.processes else "solve", conf.solvers)
    writer = _pool("write", 1)
    per_batch = max(1, method.pairs_per_batch())
    ready: queue.Queue = queue.Queue(max(conf.read_ahead, per_batch))
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        name="locbench-produce",
        daemon=True,
        args=(samples, ready, stop, cache, keys, _pool("read", conf.readers), images),
    )
    pending: list = []  # futures of rows, in order
    writes: dict = {}  # match key -> future of its cache write, for this shard
    rows: list[dict] = []

    def store(key, matches):
        writes[key] = writer.submit(cache.put, key, matches) if cache is not None else None

    def next_chunk():
        chunk = []
        while len(chunk) < per_batch:
            item = ready.get()
            if item is _END:
                ready.put(_END)
                break
            if isinstance(item, BaseException):
                raise item
            chunk.append(item)
        return chunk

    def images_of(read):
        return images if read is None else (lambda sample: read.result())

    def cached_earlier(key):
        """The same pair earlier in the shard: the sequential runner finds it in the cache by now."""
        if cache is None or writes.get(key) is None:
            return None
        writes[key].result()
        return cache.get(key)

    def settle(item):
        sample, key, hit, read = item
        if hit is None and read is not None and (earlier := cached_earlier(key)) is not None:
            return sample, key, earlier, None
        return item

    producer.start()
    try:
        while chunk := next_chunk():
            chunk = [settle(item) for item in chunk]
            fresh = [(s, r) for s, _, _, r in chunk if r is not None]
            prefetched = None
            if per_batch > 1 and not any(r.exception() for _, r in fresh):
                pairs = {id(s): r for s, r in fresh}
                prefetched = prefetch_pairs(
                    [s for s, _ in fresh], method, None, keys, images=lambda s: pairs[id(s)].result()
                )
            for sample, key, hit, read in chunk:
                sample, key, hit, read = settle((sample, key, hit, read))  # twice in one batch
                if hit is not None:
                    matched = cached_match(sample, hit)
                else:  # a pair's read failure is raised again in here and recorded as the sequential runner does
                    matched = match_sample(
                        sample,
                        method=method,
                        cache=cache if read is None else None,
                        keys=keys,
                        solver_conf=solver_conf,
                        prefetched=prefetched,
                        images=images_of(read),
                        store=store if read is not None else None,
                    )
                pending.append(solvers.submit(finish_row, sample, matched, task, solver_conf, run_seed, protocol))
                while pending and (len(pending) > conf.solve_queue or pending[0].done()):
                    rows.append(pending.pop(0).result())
    except BaseException:
        for f in pending:
            f.cancel()
        writer.submit(int).result()  # every pair matched is cached (and earlier shards published), even on Ctrl-C
        raise
    finally:
        stop.set()
    return rows, pending
