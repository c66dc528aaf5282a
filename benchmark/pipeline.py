"""One sample through the flow: images -> Matches (cached) -> Estimate -> ResultRow.

Two steps, so that the pipelined runner (``benchmark.pipelined``) can run them in different threads:
:func:`match_sample` (the matcher's part: cache or matcher; a query's references lifted) and
:func:`finish_sample` (solving and scoring); :func:`process_sample` is both, one after the other.
Nothing here knows which benchmark runs: the dataset says which task the solver must do, the
solver's declaration (benchmark.solvers) what it is fed, the protocol (benchmark.protocols) turns an
Estimate into error columns.
"""

from __future__ import annotations

import logging
import time
import traceback
import zlib
from dataclasses import dataclass

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
    return (
        read_image(sample.image0, sample.resize0, sample.extra.get("rot0", 0), method.image_reading),
        read_image(sample.image1, sample.resize1, sample.extra.get("rot1", 0), method.image_reading),
    )


def prefetch_pairs(samples: list, method, cache: MatchCache | None, keys: MatchKeys, images=None) -> dict:
    """Matches of the samples' uncached image pairs from one ``method.match_batch`` call (key -> Matches);
    ``images(sample)`` gives a pair's two images (default: read them now).

    Anything that goes wrong here (an unreadable image, a crash) leaves the batch to
    :func:`match_sample`, which matches those pairs one by one and records each failure."""
    images = images or (lambda s: _pair_images(s, method))
    todo = [(keys.pair(s), s) for s in samples if isinstance(s, PairSample)]
    todo = [(k, s) for k, s in todo if cache is None or not cache.path(k).is_file()]
    if len(todo) < 2:
        return {}
    try:
        found = method.match_batch([images(s) for _, s in todo])
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
    return Matches(
        matches.kpts0 * s0,
        matches.kpts1 * s1,
        matches.scores,
        matches.pts3d0,
        matches.pts3d1,
        matches.num_keypoints0,
        matches.num_keypoints1,
        dict(matches.timings),
    )


def outcome(sample, estimate: Estimate, matches: Matches | None, protocol) -> dict:
    """What one estimate puts in the per-sample table: status, reason, inliers, confidence, pose, errors."""
    out = {
        "status": estimate.status,
        "reason": estimate.reason,
        "num_inliers": estimate.num_inliers,
        "confidence": float("nan"),
        "qvec": (float("nan"),) * 4,
        "tvec": (float("nan"),) * 3,
        "errors": {},
    }
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


@dataclass
class Matched:
    """What the matching step of a sample hands to the solving step."""

    matches: Matches | None = None
    cached: bool = False
    time_match: float = float("nan")
    problem: object = None  # a query's pose problem, built with its matching (its references lifted)
    failure: Estimate | None = None  # the matching failed (why)


def _failure(sample, exc: Exception) -> Estimate:
    """A sample's failure from the exception that stopped it (a bad sample costs itself, not the run)."""
    if isinstance(exc, SampleError):
        return Estimate.failure(exc.status, str(exc))
    log.debug("sample %s failed:\n%s", sample.id, "".join(traceback.format_exception(exc)))
    return Estimate.failure(ERROR, f"{type(exc).__name__}: {exc}")


def match_sample(
    sample, *, method, cache, keys: MatchKeys, solver_conf, prefetched: dict | None = None, images=None, store=None
) -> Matched:
    """The matcher's step: a pair's matches (cache, ``prefetched`` batch or the method; ``images(sample)``
    reads the pair; ``store``: see ``benchmark.matching.match_pair``), or a query's problem; never raises
    for a bad sample."""
    if isinstance(sample, InvalidSample):
        return Matched()
    try:
        if isinstance(sample, QuerySample):
            problem, matches, t_match, cached = query_problem(sample, method, cache, solver_conf, keys)
            return Matched(matches, cached, t_match, problem)
        images = images or (lambda s: _pair_images(s, method))
        start = time.perf_counter()
        matches, cached = match_pair(method, cache, keys.pair(sample), lambda: images(sample), prefetched, store)
        matches = in_camera_pixels(sample, matches)
        return Matched(matches, cached, matches.timings.get("match", time.perf_counter() - start))
    except UserError:  # a broken weight file or missing package stops the run with its own sentence
        raise
    except Exception as exc:  # a bug or a crash in a matcher must cost one sample, not the run
        return Matched(failure=_failure(sample, exc))


def cached_match(sample: PairSample, matches: Matches) -> Matched:
    """A pair's matches found in the cache (by the pipelined runner's reader, ahead of the matcher)."""
    matches = in_camera_pixels(sample, matches)
    return Matched(matches, True, matches.timings.get("match", float("nan")))


def finish_sample(sample, matched: Matched, *, task, solver_conf, run_seed, protocol) -> ResultRow:
    """The solving step: poses (at every threshold of a sweep), then the protocol's error columns; never
    raises for a bad sample. The row's main columns hold the first threshold's answer, ``thr=<px>/<column>``
    columns each threshold's."""
    if isinstance(sample, InvalidSample):
        return ResultRow(sample.id, sample.scene, sample.status, sample.reason)
    row = ResultRow(sample.id, sample.scene, OK)
    matches = matched.matches
    confs = solvers.threshold_confs(solver_conf)
    if matched.failure is not None:
        estimates = [matched.failure] * len(confs)
    else:
        try:
            solver = solvers.SOLVERS.get(task, solver_conf[task])
            problem = matched.problem
            if problem is None:
                row.stage_times = {k: v for k, v in matches.timings.items() if k != "match"}
                problem = solvers.pair_problem(solver, sample, matches)
            row.cached, row.time_match = matched.cached, matched.time_match
            row.num_matches = len(matches)
            estimates, row.time_solve = solve_thresholds(solver, problem, confs, sample_seed(run_seed, sample.id))
        except UserError:
            raise
        except Exception as exc:
            estimates = [_failure(sample, exc)] * len(confs)
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


def finish_row(sample, matched: Matched, task, solver_conf, run_seed, protocol) -> dict:
    """:func:`finish_sample` as the table row (what a solver thread or process returns)."""
    return finish_sample(
        sample, matched, task=task, solver_conf=solver_conf, run_seed=run_seed, protocol=protocol
    ).to_dict()


def process_sample(
    sample, *, method, cache, keys: MatchKeys, task, solver_conf, run_seed, protocol, prefetched: dict | None = None
) -> ResultRow:
    """Run one sample end to end; never raises for a bad sample (the row records why)."""
    matched = match_sample(
        sample, method=method, cache=cache, keys=keys, solver_conf=solver_conf, prefetched=prefetched
    )
    return finish_sample(sample, matched, task=task, solver_conf=solver_conf, run_seed=run_seed, protocol=protocol)
