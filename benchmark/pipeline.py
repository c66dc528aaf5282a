"""One sample through the flow: images -> Matches (cached) -> Estimate -> ResultRow.

Nothing here knows which benchmark runs: the dataset says which task the solver must
do, the solver's declaration (benchmark.solvers) what it is fed, the protocol (benchmark.protocols)
turns an Estimate into error columns.
"""
from __future__ import annotations

import logging
import time
import traceback
import zlib

import numpy as np

from . import solvers
from .cache import MatchCache
from .errors import SampleError, UserError
from .geometry import rotmat_to_quat
from .io import read_image
from .localize import query_problem
from .matching import MatchKeys, match_pair
from .types import ERROR, OK, Estimate, InvalidSample, Matches, PairSample, QuerySample, ResultRow

log = logging.getLogger("locbench.pipeline")


def sample_seed(run_seed: int, sample_id: str) -> int:
    """Per-sample RANSAC seed: independent of the order and sharding of the run."""
    return (int(run_seed) * 1_000_003 + zlib.crc32(sample_id.encode())) % (2**31 - 1)


def _pair_images(sample: PairSample, method):
    """The two images read the way the method's official reader does (``method.image_reading``)."""
    return (read_image(sample.image0, sample.resize0, sample.extra.get("rot0", 0), method.image_reading),
            read_image(sample.image1, sample.resize1, sample.extra.get("rot1", 0), method.image_reading))


def prefetch_pairs(samples: list, method, cache: MatchCache | None, keys: MatchKeys) -> dict:
    """Matches of the samples' uncached image pairs from one ``method.match_batch`` call (key -> Matches).

    Anything that goes wrong here (an unreadable image, a crash) leaves the batch to
    :func:`process_sample`, which matches those pairs one by one and records each failure."""
    todo = [(keys.pair(s), s) for s in samples if isinstance(s, PairSample)]
    todo = [(k, s) for k, s in todo if cache is None or not cache.path(k).is_file()]
    if len(todo) < 2:
        return {}
    try:
        found = method.match_batch([_pair_images(s, method) for _, s in todo])
    except UserError:
        raise
    except Exception:
        log.debug("batch of %d pairs failed, matching them one by one:\n%s", len(todo), traceback.format_exc())
        return {}
    return {k: m for (k, _), m in zip(todo, found)}


def solve_thresholds(solver, problem, confs: list[dict], seed: int) -> tuple[list[Estimate], float]:
    """The estimate at each threshold of a sweep (the one threshold without a sweep), and the seconds the
    first one took (what a run without a sweep measures)."""
    estimates, first_seconds = [], float("nan")
    for conf in confs:
        start = time.perf_counter()
        estimates.append(solver.estimate(problem, conf, seed))
        if len(estimates) == 1:
            first_seconds = time.perf_counter() - start
    return estimates, first_seconds


def in_camera_pixels(sample: PairSample, matches: Matches) -> Matches:
    """Matches in the pixels the sample's cameras describe: a protocol that matches resized images but
    solves in the original ones (LoFTR's MegaDepth) gives ``extra['keypoint_scale']`` = ((sx0, sy0), (sx1, sy1))."""
    scale = sample.extra.get("keypoint_scale")
    if scale is None:
        return matches
    (s0, s1) = (np.asarray(f, np.float64) for f in scale)
    return Matches(matches.kpts0 * s0, matches.kpts1 * s1, matches.scores, matches.pts3d0, matches.pts3d1,
                   matches.num_keypoints0, matches.num_keypoints1, dict(matches.timings))


def outcome(sample, estimate: Estimate, matches: Matches | None, protocol) -> dict:
    """What one estimate puts in the per-sample table: status, reason, inliers, confidence, pose, errors."""
    out = {"status": estimate.status, "reason": estimate.reason, "num_inliers": estimate.num_inliers,
           "confidence": float("nan"), "qvec": (float("nan"),) * 4, "tvec": (float("nan"),) * 3, "errors": {}}
    if estimate.ok:
        out["confidence"] = estimate.confidence
        out["qvec"] = tuple(rotmat_to_quat(estimate.R))
        out["tvec"] = tuple(np.asarray(estimate.t, dtype=np.float64).reshape(3))
    try:
        out["errors"] = protocol.sample_errors(sample, estimate, matches)
    except Exception as exc:
        log.debug("scoring %s failed:\n%s", sample.id, traceback.format_exc())
        out["status"], out["reason"] = ERROR, f"scoring failed: {type(exc).__name__}: {exc}"
    return out


def process_sample(sample, *, method, cache, keys: MatchKeys, task, solver_conf, run_seed, protocol,
                   prefetched: dict | None = None) -> ResultRow:
    """Run one sample end to end; never raises for a bad sample (the row records why).

    With a threshold sweep the sample is matched once and solved at every threshold; the row's main
    columns hold the first threshold's answer, ``thr=<px>/<column>`` columns each threshold's."""
    if isinstance(sample, InvalidSample):
        return ResultRow(sample.id, sample.scene, sample.status, sample.reason)
    row = ResultRow(sample.id, sample.scene, OK)
    matches = None
    confs = solvers.threshold_confs(solver_conf)
    try:
        seed = sample_seed(run_seed, sample.id)
        solver = solvers.SOLVERS.get(task, solver_conf[task])
        if isinstance(sample, QuerySample):
            problem, matches, t_match, cached = query_problem(sample, method, cache, solver_conf, keys)
        else:
            start = time.perf_counter()
            matches, cached = match_pair(method, cache, keys.pair(sample), lambda: _pair_images(sample, method),
                                         prefetched)
            matches = in_camera_pixels(sample, matches)
            t_match = matches.timings.get("match", time.perf_counter() - start)
            row.stage_times = {k: v for k, v in matches.timings.items() if k != "match"}
            problem = solvers.pair_problem(solver, sample, matches)
        row.cached, row.time_match = cached, t_match
        row.num_matches = len(matches)
        estimates, row.time_solve = solve_thresholds(solver, problem, confs, seed)
    except SampleError as exc:
        estimates = [Estimate.failure(exc.status, str(exc))] * len(confs)
    except UserError:  # a broken weight file or missing package stops the run with its own sentence
        raise
    except Exception as exc:  # a bug or a crash in a matcher must cost one sample, not the run
        log.debug("sample %s failed:\n%s", sample.id, traceback.format_exc())
        estimates = [Estimate.failure(ERROR, f"{type(exc).__name__}: {exc}")] * len(confs)
    first = outcome(sample, estimates[0], matches, protocol)
    row.status, row.reason, row.num_inliers = first["status"], first["reason"], first["num_inliers"]
    row.confidence, row.qvec, row.tvec, row.errors = first["confidence"], first["qvec"], first["tvec"], first["errors"]
    if len(confs) > 1:
        for conf, estimate in zip(confs, estimates):
            result = first if estimate is estimates[0] else outcome(sample, estimate, matches, protocol)
            prefix = solvers.sweep_prefix(conf["ransac"]["max_error"])
            row.sweep.update({prefix + k: result[k] for k in ("status", "num_inliers", "confidence")})
            row.sweep.update({prefix + k: v for k, v in result["errors"].items()})
    return row
