"""Absolute localization of one query against its retrieved, mapped reference images (Aachen-style).

For each reference (best first) the pair is matched with **the reference as image 0 and the query as
image 1**: a dense matcher's ``pts3d0`` are then in the reference camera, where the reference's known pose
and map points can place them in the world. Reference keypoints are lifted to 3D world points
(``solver.lift``), the lifted matches of all references are pooled, and one PnP (``solver.absolute``:
pycolmap's or PoseLib's LO-RANSAC + refinement, the query camera with its distortion) gives the
world-to-camera pose. The confidence is ``solver.confidence`` (the inlier count by default).

Lifting a reference keypoint (``solver.lift``):

* ``nearest``: the map observation of that reference nearest to the keypoint, if within
  ``solver.lift_radius`` pixels; its 3D point is used (what hloc does: its keypoints *are* the observations;
  other detectors land within a pixel or two of them).
* ``pointmap`` (matchers that predict 3D, MASt3R/DUSt3R): keypoints near an observation keep the map point;
  the others get the matcher's predicted point, brought into the map frame by the reference's pose after
  scaling by the median ratio of map depth to predicted depth over the keypoints that have a map point
  (at least ``MIN_SCALE_ANCHORS`` of them, else only the map points are used). The prediction is trusted
  up to that one scale per pair: this densifies the 2D-3D set where the map is sparse.
* ``auto``: ``pointmap`` when the matches carry ``pts3d0``, else ``nearest``.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial import cKDTree

from .errors import SampleError
from .io import read_image
from .matching import MatchKeys, match_pair
from .types import ERROR, TASK_ABSOLUTE, TOO_FEW_MATCHES, Estimate, Matches, PoseProblem, QuerySample, Reference

MIN_SCALE_ANCHORS = 5  # predicted-to-map scale from fewer points is too easily wrong
LIFT_MODES = ("auto", "nearest", "pointmap")


def nearest_observation(reference: Reference, points2d: np.ndarray, radius: float) -> np.ndarray:
    """Index into the reference's observations of the one nearest to each point, -1 beyond ``radius`` px."""
    if reference.points2d is None or len(reference.points2d) == 0 or len(points2d) == 0:
        return np.full(len(points2d), -1, dtype=np.int64)
    dist, index = cKDTree(reference.points2d).query(points2d, k=1, distance_upper_bound=float(radius))
    return np.where(np.isfinite(dist), index, -1).astype(np.int64)


def lift_reference_points(reference: Reference, matches: Matches, radius: float, mode: str = "auto") -> np.ndarray:
    """(N, 3) world points for the reference keypoints ``matches.kpts0``; NaN where none can be given."""
    if mode not in LIFT_MODES:
        raise SampleError(f"solver.lift must be one of {', '.join(LIFT_MODES)}, not '{mode}'", status=ERROR)
    out = np.full((len(matches), 3), np.nan)
    nearest = nearest_observation(reference, matches.kpts0, radius)
    observed = nearest >= 0
    out[observed] = reference.points3d[nearest[observed]]
    use_pointmap = mode == "pointmap" or (mode == "auto" and matches.pts3d0 is not None)
    if not use_pointmap:
        return out
    if matches.pts3d0 is None:
        raise SampleError(
            "solver.lift=pointmap needs a method that predicts 3D points (mast3r, dust3r); use nearest", status=ERROR
        )
    R, t = reference.T_w2c[:3, :3], reference.T_w2c[:3, 3]
    predicted = matches.pts3d0
    map_cam = out[observed] @ R.T + t  # map points in the reference camera
    z_pred = predicted[observed, 2]
    ok = np.isfinite(z_pred) & (z_pred > 0) & (map_cam[:, 2] > 0)
    if ok.sum() < MIN_SCALE_ANCHORS:
        return out
    scale = float(np.median(map_cam[ok, 2] / z_pred[ok]))
    fill = ~observed & np.isfinite(predicted).all(1) & (predicted[:, 2] > 0)
    out[fill] = (scale * predicted[fill] - t) @ R  # camera -> world: R^T (x - t)
    return out


def _concat(parts: list[Matches]) -> Matches:
    if not parts:
        return Matches(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))
    return Matches(
        np.concatenate([m.kpts0 for m in parts]),
        np.concatenate([m.kpts1 for m in parts]),
        np.concatenate([m.scores for m in parts]),
    )


def query_problem(sample: QuerySample, method, cache, solver_conf: dict, keys=None):
    """Match the query to each reference, lift, pool: the PnP problem of one query.

    Returns (PoseProblem, all matches pooled over references, matching seconds, every pair from the
    cache); raises SampleError (too_few_matches) when no retrieved reference observes a map point.
    """
    keys = keys or MatchKeys(method.cache_key())
    query_image = []

    def load_query():
        if not query_image:  # the query is read once, not once per reference
            query_image.append(read_image(sample.image, reading=method.image_reading))
        return query_image[0]

    parts, lifted, t_match, all_cached = [], [], 0.0, True
    for ref in sample.references:
        if ref.points2d is None or len(ref.points2d) == 0:
            continue  # nothing of this image is in the map: matching it cannot help
        start = time.perf_counter()
        bound = method.bound_to_map(ref.points2d)  # MASt3R's visloc mode starts from the map observations
        key = keys.localization(ref, sample, ref.points2d if bound is not method else None)
        matches, cached = match_pair(
            bound, cache, key, lambda r=ref: (read_image(r.image, reading=method.image_reading), load_query())
        )
        t_match += matches.timings.get("match", time.perf_counter() - start)
        all_cached &= cached
        parts.append(matches)
        lifted.append(lift_reference_points(ref, matches, solver_conf["lift_radius"], solver_conf["lift"]))
    if not parts:
        raise SampleError("no retrieved reference image observes any map point", status=TOO_FEW_MATCHES)
    pooled = _concat(parts)
    points3d = np.concatenate(lifted)
    lifted_count = int(np.isfinite(points3d).all(1).sum())
    note = f" ({len(pooled)} matches over {len(parts)} references, {lifted_count} lifted to 3D)"
    return PoseProblem(pooled, sample.camera, points3d=points3d, note=note), pooled, t_match, all_cached


def localize_query(sample: QuerySample, method, cache, solver_conf: dict, seed: int, keys=None):
    """Localize one query with ``solver.absolute`` (at the first threshold of a sweep).

    Returns (Estimate, all matches pooled over references or None, matching seconds, every pair from the cache).
    """
    from .solvers import SOLVERS, threshold_confs

    solver = SOLVERS.get(TASK_ABSOLUTE, solver_conf[TASK_ABSOLUTE])
    try:
        problem, pooled, t_match, cached = query_problem(sample, method, cache, solver_conf, keys)
    except SampleError as exc:
        if exc.status != TOO_FEW_MATCHES:
            raise
        return Estimate.failure(exc.status, str(exc)), None, 0.0, False
    return solver.estimate(problem, threshold_confs(solver_conf)[0], seed), pooled, t_match, cached
