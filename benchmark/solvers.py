"""Pose solvers: Matches (+ sample geometry) -> Estimate.

Robust estimation is pycolmap's LO-RANSAC (``essential``, PnP) or, for the ScanNet
protocol's reference recipe, OpenCV's (``essential_opencv``); nothing here samples
hypotheses by hand. Every RANSAC is seeded from ``run.seed``.

Solvers by task (chosen with ``solver.<task>`` in the config):
- relative (up to scale):    ``essential`` | ``essential_opencv``
- metric relative (Map-free): ``pnp_depth`` (reference keypoints lifted with the reference depth),
  ``pnp_pts3d`` (lifted with the matcher's own 3D points, MASt3R), ``essential_depth``
  (essential matrix + metric scale from reference depth), ``essential_pts3d`` (same with predicted depth)
- absolute (Aachen):          ``absolute`` (2D-3D PnP against the map; see benchmark.localize)
"""
from __future__ import annotations

import numpy as np

from .geometry import rotmat_to_quat  # noqa: F401  (re-exported for callers that format estimates)
from .types import OK, SOLVER_FAILED, TOO_FEW_MATCHES, Camera, Estimate, Matches

PNP_MIN = 4  # P3P needs 3 points plus one to disambiguate
ESSENTIAL_MIN = 5
MAX_TRANSLATION_M = 1000.0  # Map-free baselines reject solutions farther than this (PROTOCOLS 1.7)


def _pycolmap():
    import pycolmap

    pycolmap.logging.minloglevel = 2
    return pycolmap


def to_pycolmap_camera(camera: Camera):
    """OpenCV -> COLMAP pixel convention: the principal point moves by +0.5."""
    pycolmap = _pycolmap()
    params = list(camera.params)
    ci = 1 if camera.model.startswith(("SIMPLE", "RADIAL")) else 2  # index of cx
    params[ci] += 0.5
    params[ci + 1] += 0.5
    return pycolmap.Camera(model=camera.model, width=int(camera.width), height=int(camera.height), params=params)


def ransac_options(conf: dict, seed: int):
    r = conf["ransac"]
    opts = _pycolmap().RANSACOptions()
    opts.max_error = float(r["max_error"])
    opts.confidence = float(r["confidence"])
    opts.min_num_trials = int(r["min_iterations"])
    opts.max_num_trials = int(r["max_iterations"])
    opts.random_seed = int(seed)
    return opts


def _confidence(conf: dict, num_inliers: int, inliers: np.ndarray, scores: np.ndarray | None) -> float:
    """The pose confidence reported for AUC-style metrics (Map-free): ``solver.confidence``."""
    kind = conf["confidence"]
    if kind == "inliers":
        return float(num_inliers)
    if kind == "inlier_ratio":
        return float(num_inliers) / max(len(inliers), 1)
    if kind == "mean_score":
        if scores is None:
            return float(num_inliers)
        return float(scores[inliers].mean()) if inliers.any() else 0.0
    raise ValueError(f"solver.confidence must be inliers, inlier_ratio or mean_score, not {kind!r}")


def _rigid(T) -> tuple[np.ndarray, np.ndarray]:
    m = T.matrix()
    return np.asarray(m[:, :3], dtype=np.float64), np.asarray(m[:, 3], dtype=np.float64)


# --------------------------------------------------------------------------- relative pose
def essential(matches: Matches, cam0: Camera, cam1: Camera, conf: dict, seed: int = 0) -> Estimate:
    """Relative pose up to scale (|t| = 1) from an essential matrix (pycolmap LO-RANSAC)."""
    if len(matches) < max(ESSENTIAL_MIN, conf["min_matches"]):
        return Estimate.failure(TOO_FEW_MATCHES, f"{len(matches)} matches, need {max(ESSENTIAL_MIN, conf['min_matches'])}")
    ans = _pycolmap().estimate_essential_matrix(matches.kpts0 + 0.5, matches.kpts1 + 0.5, to_pycolmap_camera(cam0),
                                                to_pycolmap_camera(cam1), ransac_options(conf, seed))
    if ans is None:
        return Estimate.failure(SOLVER_FAILED, "essential matrix RANSAC found no model")
    R, t = _rigid(ans["cam2_from_cam1"])
    inl = np.asarray(ans["inlier_mask"], dtype=bool)
    n = int(ans["num_inliers"])
    return Estimate(R, t / max(np.linalg.norm(t), 1e-12), _confidence(conf, n, inl, matches.scores), n, OK, "", inl)


def essential_opencv(matches: Matches, cam0: Camera, cam1: Camera, conf: dict, seed: int = 0) -> Estimate:
    """The ScanNet-1500 reference recipe (SuperGlue/LoFTR ``estimate_pose``), for comparable numbers.

    Keypoints normalised by K, ``cv2.findEssentialMat`` (RANSAC, identity camera) with the pixel
    threshold divided by mean(fx0, fy1, fx0, fy1) (the official averaging, PROTOCOLS 2.2 / quirk 12),
    then ``recoverPose`` on each returned candidate keeping the one with most cheirality inliers.
    """
    import cv2

    if len(matches) < ESSENTIAL_MIN:
        return Estimate.failure(TOO_FEW_MATCHES, f"{len(matches)} matches, need {ESSENTIAL_MIN}")
    K0, K1 = cam0.K, cam1.K
    n0 = (matches.kpts0 - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]]
    n1 = (matches.kpts1 - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]]
    thr = conf["ransac"]["max_error"] / np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    cv2.setRNGSeed(int(seed))
    E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), threshold=thr, prob=conf["ransac"]["confidence"],
                                   method=cv2.RANSAC)
    if E is None:
        return Estimate.failure(SOLVER_FAILED, "cv2.findEssentialMat found no model")
    best = None
    for cand in np.split(E, len(E) // 3):
        n, R, t, m = cv2.recoverPose(cand, n0, n1, np.eye(3), 1e9, mask=mask.copy())
        if best is None or n > best[0]:
            best = (n, R, t.reshape(3), m.reshape(-1) > 0)
    n, R, t, inl = best
    if n == 0:
        return Estimate.failure(SOLVER_FAILED, "no essential-matrix candidate had points in front of both cameras")
    return Estimate(R, t, _confidence(conf, n, inl, matches.scores), int(n), OK, "", inl)


# --------------------------------------------------------------------------- PnP
def pnp(points2d: np.ndarray, points3d: np.ndarray, camera: Camera, conf: dict, seed: int = 0,
        matches: Matches | None = None) -> Estimate:
    """World-to-camera pose from 2D (OpenCV pixels) - 3D correspondences, RANSAC + refinement."""
    points2d = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
    points3d = np.asarray(points3d, dtype=np.float64).reshape(-1, 3)
    need = max(PNP_MIN, conf["min_matches"])
    if len(points2d) < need:
        return Estimate.failure(TOO_FEW_MATCHES, f"{len(points2d)} 2D-3D correspondences, need {need}")
    pycolmap = _pycolmap()
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac = ransac_options(conf, seed)
    ref = pycolmap.AbsolutePoseRefinementOptions()
    ref.refine_focal_length = False
    ref.refine_extra_params = False
    ans = pycolmap.estimate_and_refine_absolute_pose(points2d + 0.5, points3d, to_pycolmap_camera(camera), est, ref)
    if ans is None:
        return Estimate.failure(SOLVER_FAILED, "PnP RANSAC found no pose")
    R, t = _rigid(ans["cam_from_world"])
    if np.linalg.norm(t) > MAX_TRANSLATION_M:
        return Estimate.failure(SOLVER_FAILED, f"PnP pose is {np.linalg.norm(t):.0f} m away (> {MAX_TRANSLATION_M:.0f} m)")
    inl = np.asarray(ans["inlier_mask"], dtype=bool)
    n = int(ans["num_inliers"])
    scores = matches.scores if matches is not None and len(matches) == len(inl) else None
    return Estimate(R, t, _confidence(conf, n, inl, scores), n, OK, "", inl)


def backproject(points2d: np.ndarray, depth: np.ndarray, camera: Camera) -> np.ndarray:
    """3D points in the camera frame of pixels (OpenCV) at the given depths (z)."""
    K = camera.K
    x = (points2d[:, 0] - K[0, 2]) / K[0, 0]
    y = (points2d[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x * depth, y * depth, depth], axis=1)


def sample_depth(depth_map: np.ndarray, points2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth at each keypoint (nearest pixel); the map may have another resolution than the image.

    Invalid depth (0, negative, NaN) comes back as NaN.
    """
    h, w = depth_map.shape[:2]
    sx, sy = w / width, h / height
    # pixel centres: image pixel x covers [x - 0.5, x + 0.5]; same for the depth map after scaling
    u = np.clip(np.floor((points2d[:, 0] + 0.5) * sx), 0, w - 1).astype(int)
    v = np.clip(np.floor((points2d[:, 1] + 0.5) * sy), 0, h - 1).astype(int)
    d = depth_map[v, u].astype(np.float64)
    d[~(d > 0)] = np.nan
    return d


def pnp_lifted(matches: Matches, depth0: np.ndarray, cam0: Camera, cam1: Camera, conf: dict,
               seed: int = 0) -> Estimate:
    """Relative metric pose: reference keypoints lifted to 3D with a depth per match, PnP in image 1."""
    valid = np.isfinite(depth0) & (depth0 > 0)
    if valid.sum() < max(PNP_MIN, conf["min_matches"]):
        return Estimate.failure(TOO_FEW_MATCHES, f"{int(valid.sum())} matches with valid depth, "
                                                 f"need {max(PNP_MIN, conf['min_matches'])}")
    X0 = backproject(matches.kpts0[valid], depth0[valid], cam0)
    est = pnp(matches.kpts1[valid], X0, cam1, conf, seed, matches.subset(valid))
    if est.inliers is not None:
        full = np.zeros(len(matches), bool)
        full[np.flatnonzero(valid)] = est.inliers
        est.inliers = full
    return est


def triangulated_depths(R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Depth in camera 0 of each normalised correspondence for the pose (R, t) (midpoint method)."""
    r0 = np.concatenate([x0, np.ones((len(x0), 1))], axis=1)
    r1 = np.concatenate([x1, np.ones((len(x1), 1))], axis=1) @ R  # ray 1 in camera-0 axes (R^T r1)
    c1 = -R.T @ t
    # solve a*r0 - b*r1 = c1 in the least-squares sense, per correspondence
    a11 = (r0 * r0).sum(1)
    a12 = -(r0 * r1).sum(1)
    a22 = (r1 * r1).sum(1)
    b1 = r0 @ c1
    b2 = -(r1 @ c1)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (b1 * a22 - a12 * b2) / det
    return a  # z of r0 is 1, so the depth is a


def metric_scale(ratios: np.ndarray, rel_threshold: float) -> tuple[float, int]:
    """Scale supported by the most ratios within ``rel_threshold`` (relative), refined as their median.

    Exhaustive over the candidates (deterministic); at most 2000 candidates are tried.
    """
    ratios = np.sort(ratios[np.isfinite(ratios) & (ratios > 0)])
    if len(ratios) == 0:
        return float("nan"), 0
    cands = ratios if len(ratios) <= 2000 else ratios[np.linspace(0, len(ratios) - 1, 2000).astype(int)]
    lo = np.searchsorted(ratios, cands * (1 - rel_threshold), side="left")
    hi = np.searchsorted(ratios, cands * (1 + rel_threshold), side="right")
    best = int(np.argmax(hi - lo))
    support = ratios[lo[best]:hi[best]]
    return float(np.median(support)), int(len(support))


def essential_scaled(matches: Matches, depth0: np.ndarray, cam0: Camera, cam1: Camera, conf: dict,
                     seed: int = 0) -> Estimate:
    """Essential matrix for R and the direction of t, metric scale from reference depth at the inliers."""
    est = essential(matches, cam0, cam1, conf, seed)
    if not est.ok:
        return est
    inl = est.inliers & np.isfinite(depth0) & (depth0 > 0)
    if inl.sum() < 1:
        return Estimate.failure(SOLVER_FAILED, "no essential-matrix inlier has a valid depth for the metric scale")
    K0, K1 = cam0.K, cam1.K
    x0 = (matches.kpts0[inl] - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]]
    x1 = (matches.kpts1[inl] - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]]
    tri = triangulated_depths(est.R, est.t, x0, x1)
    scale, support = metric_scale(depth0[inl] / tri, conf["scale_threshold"])
    if not np.isfinite(scale) or support == 0:
        return Estimate.failure(SOLVER_FAILED, "no consistent metric scale from depth")
    est.t = est.t * scale
    return est


RELATIVE = {"essential": essential, "essential_opencv": essential_opencv}
METRIC_RELATIVE = ("pnp_depth", "pnp_pts3d", "essential_depth", "essential_pts3d")
