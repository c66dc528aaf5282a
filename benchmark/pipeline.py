"""One sample through the flow: images -> Matches (cached) -> Estimate -> ResultRow.

Nothing here knows which benchmark runs: the dataset says which task the solver must
do, the protocol (benchmark.protocols) turns an Estimate into error columns.
"""
from __future__ import annotations

import logging
import time
import traceback
import zlib

import numpy as np

from . import identity, solvers
from .cache import MatchCache
from .errors import SampleError, UserError
from .geometry import rotmat_to_quat
from .io import read_depth, read_image
from .types import (ERROR, OK, TASK_METRIC_RELATIVE, TASK_RELATIVE, Estimate, InvalidSample, Matches,
                    PairSample, QuerySample, Reference, ResultRow)

log = logging.getLogger("locbench.pipeline")


def sample_seed(run_seed: int, sample_id: str) -> int:
    """Per-sample RANSAC seed: independent of the order and sharding of the run."""
    return (int(run_seed) * 1_000_003 + zlib.crc32(sample_id.encode())) % (2**31 - 1)


class MatchKeys:
    """Match-cache keys of a shard's pairs (``benchmark.identity.match_key``) from the file digests the
    driver computed while planning; a file it did not see is hashed here."""

    def __init__(self, method_key: str, digests: dict | None = None):
        self.method_key = method_key
        self.digests = dict(digests or {})
        self._ids = identity.FileIdentities()

    def digest(self, path) -> str:
        found = self.digests.get(str(path))
        return found if found is not None else self._ids.digest(path)

    def pair(self, sample: PairSample) -> str:
        read0, read1 = identity.pair_read_params(sample)
        return identity.match_key(self.method_key, self.digest(sample.image0), self.digest(sample.image1), read0, read1)

    def localization(self, reference: Reference, query: QuerySample) -> str:
        """The reference is image 0, the query image 1, both read as they are on disk."""
        return identity.match_key(self.method_key, self.digest(reference.image), self.digest(query.image))


def match_pair(method, cache: MatchCache | None, key: str, load_pair,
               prefetched: dict | None = None) -> tuple[Matches, bool]:
    """Matches for one image pair, from the cache when present, else from ``prefetched`` (computed in a
    batch by :func:`prefetch_pairs`), else computed now and cached at once (a run killed later keeps
    them). ``load_pair()`` reads the two images lazily."""
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit, True
    matches = (prefetched or {}).pop(key, None)
    if matches is None:
        matches = method.match(*load_pair())
    if cache is not None:
        cache.put(key, matches)
    return matches, False


def _pair_images(sample: PairSample):
    return (read_image(sample.image0, sample.resize0, sample.extra.get("rot0", 0)),
            read_image(sample.image1, sample.resize1, sample.extra.get("rot1", 0)))


def prefetch_pairs(samples: list, method, cache: MatchCache | None, keys: MatchKeys) -> dict:
    """Matches of the samples' uncached image pairs from one ``method.match_batch`` call (key -> Matches).

    Anything that goes wrong here (an unreadable image, a crash) leaves the batch to
    :func:`process_sample`, which matches those pairs one by one and records each failure."""
    todo = [(keys.pair(s), s) for s in samples if isinstance(s, PairSample)]
    todo = [(k, s) for k, s in todo if cache is None or not cache.path(k).is_file()]
    if len(todo) < 2:
        return {}
    try:
        found = method.match_batch([_pair_images(s) for _, s in todo])
    except UserError:
        raise
    except Exception:
        log.debug("batch of %d pairs failed, matching them one by one:\n%s", len(todo), traceback.format_exc())
        return {}
    return {k: m for (k, _), m in zip(todo, found)}


def solve_pair(task: str, sample: PairSample, matches: Matches, conf: dict, seed: int) -> Estimate:
    if task == TASK_RELATIVE:
        name = conf[TASK_RELATIVE]
        if name not in solvers.RELATIVE:
            raise SampleError(f"solver.relative must be one of {', '.join(solvers.RELATIVE)}, not '{name}'",
                              status=ERROR)
        return solvers.RELATIVE[name](matches, sample.camera0, sample.camera1, conf, seed)
    if task != TASK_METRIC_RELATIVE:
        raise SampleError(f"task {task} is not a pair task", status=ERROR)
    name = conf[TASK_METRIC_RELATIVE]
    if name.endswith("_pts3d"):
        if matches.pts3d0 is None:
            raise SampleError(f"solver.metric_relative={name} needs a method that predicts 3D points "
                              f"(mast3r, dust3r); use pnp_depth or essential_depth", status=ERROR)
        depth0 = matches.pts3d0[:, 2].copy()
        points_ok = np.isfinite(matches.pts3d0).all(1)
        depth0[~points_ok] = np.nan
    elif name.endswith("_depth"):
        if sample.depth0 is None:
            raise SampleError("this dataset config gives no reference depth (set dataset.depth) for "
                              f"solver.metric_relative={name}", status=ERROR)
        depth_map = read_depth(sample.depth0, sample.depth_scale)
        depth0 = solvers.sample_depth(depth_map, matches.kpts0, sample.camera0.width, sample.camera0.height)
    else:
        raise SampleError(f"solver.metric_relative must be one of {', '.join(solvers.METRIC_RELATIVE)}, "
                          f"not '{name}'", status=ERROR)
    if name.startswith("pnp"):
        if name == "pnp_pts3d":
            # MASt3R's own 3D points (camera-0 frame) rather than depth-lifted rays
            return solvers.pnp(matches.kpts1[points_ok], matches.pts3d0[points_ok], sample.camera1, conf, seed,
                               matches.subset(points_ok))
        return solvers.pnp_lifted(matches, depth0, sample.camera0, sample.camera1, conf, seed)
    return solvers.essential_scaled(matches, depth0, sample.camera0, sample.camera1, conf, seed)


def process_sample(sample, *, method, cache, keys: MatchKeys, task, solver_conf, run_seed, protocol,
                   prefetched: dict | None = None) -> ResultRow:
    """Run one sample end to end; never raises for a bad sample (the row records why)."""
    if isinstance(sample, InvalidSample):
        return ResultRow(sample.id, sample.scene, sample.status, sample.reason)
    row = ResultRow(sample.id, sample.scene, OK)
    matches = None
    try:
        seed = sample_seed(run_seed, sample.id)
        if isinstance(sample, QuerySample):
            from .localize import localize_query

            estimate, matches, t_match, cached = localize_query(sample, method, cache, solver_conf, seed, keys)
        else:
            start = time.perf_counter()
            matches, cached = match_pair(method, cache, keys.pair(sample), lambda: _pair_images(sample), prefetched)
            t_match = matches.timings.get("match", time.perf_counter() - start)
            row.stage_times = {k: v for k, v in matches.timings.items() if k != "match"}
            start = time.perf_counter()
            estimate = solve_pair(task, sample, matches, solver_conf, seed)
            row.time_solve = time.perf_counter() - start
        row.cached, row.time_match = cached, t_match
        row.num_matches = len(matches) if matches is not None else 0
    except SampleError as exc:
        estimate = Estimate.failure(exc.status, str(exc))
    except UserError:  # a broken weight file or missing package stops the run with its own sentence
        raise
    except Exception as exc:  # a bug or a crash in a matcher must cost one sample, not the run
        log.debug("sample %s failed:\n%s", sample.id, traceback.format_exc())
        estimate = Estimate.failure(ERROR, f"{type(exc).__name__}: {exc}")
    row.status, row.reason = estimate.status, estimate.reason
    row.num_inliers = estimate.num_inliers
    if estimate.ok:
        row.confidence = estimate.confidence
        row.qvec = tuple(rotmat_to_quat(estimate.R))
        row.tvec = tuple(np.asarray(estimate.t, dtype=np.float64).reshape(3))
    try:
        row.errors = protocol.sample_errors(sample, estimate, matches)
    except Exception as exc:
        log.debug("scoring %s failed:\n%s", sample.id, traceback.format_exc())
        row.status, row.reason = ERROR, f"scoring failed: {type(exc).__name__}: {exc}"
    return row
