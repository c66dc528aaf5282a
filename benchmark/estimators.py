"""Robust pose estimators: a PoseProblem -> Estimate, by pycolmap, OpenCV or PoseLib.

Nothing here samples hypotheses by hand: pycolmap's and PoseLib's LO-RANSAC (+ refinement) or OpenCV's
RANSAC (the ScanNet papers' recipe) do. Every RANSAC is seeded (the per-sample seed from ``run.seed``)
and takes its pixel threshold from :func:`threshold_px`. Which estimator a run uses, and what it is fed,
is declared in ``benchmark.solvers``.
"""

from __future__ import annotations

import math

import numpy as np

from .types import OK, SOLVER_FAILED, TOO_FEW_MATCHES, Camera, Estimate, PoseProblem

PNP_MIN = 4  # P3P needs 3 points plus one to disambiguate
ESSENTIAL_MIN = 5
MAX_TRANSLATION_M = 1000.0  # Map-free baselines reject solutions farther than this (PROTOCOLS 1.7)


def threshold_px(conf: dict, camera: Camera) -> float:
    """The RANSAC/PnP inlier threshold in pixels: ``solver.ransac.max_error``, or, when
    ``solver.ransac.max_error_diag_ratio`` is set, that ratio times the diagonal of ``camera``'s image
    (the query's; MASt3R's visloc.py uses 0.008 on Aachen)."""
    ransac = conf["ransac"]
    ratio = ransac.get("max_error_diag_ratio")
    if ratio is not None:
        return float(ratio) * math.hypot(camera.width, camera.height)
    return float(ransac["max_error"])


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


def _too_few(have: int, need: int, what: str, problem: PoseProblem) -> Estimate:
    return Estimate.failure(TOO_FEW_MATCHES, f"{have} {what}, need {need}{problem.note}")


def normalised(points: np.ndarray, camera: Camera) -> np.ndarray:
    K = camera.K
    return (points - K[[0, 1], [2, 2]]) / K[[0, 1], [0, 1]]


# --------------------------------------------------------------------------- pycolmap
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


def ransac_options(conf: dict, seed: int, threshold: float):
    r = conf["ransac"]
    opts = _pycolmap().RANSACOptions()
    opts.max_error = float(threshold)
    opts.confidence = float(r["confidence"])
    opts.min_num_trials = int(r["min_iterations"])
    opts.max_num_trials = int(r["max_iterations"])
    opts.random_seed = int(seed)
    return opts


def _rigid(T) -> tuple[np.ndarray, np.ndarray]:
    m = T.matrix()
    return np.asarray(m[:, :3], dtype=np.float64), np.asarray(m[:, 3], dtype=np.float64)


def essential(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """Relative pose up to scale (|t| = 1) from an essential matrix (pycolmap LO-RANSAC)."""
    m = problem.matches
    need = max(ESSENTIAL_MIN, conf["min_matches"])
    if len(m) < need:
        return _too_few(len(m), need, "matches", problem)
    ans = _pycolmap().estimate_essential_matrix(
        m.kpts0 + 0.5,
        m.kpts1 + 0.5,
        to_pycolmap_camera(problem.camera0),
        to_pycolmap_camera(problem.camera1),
        ransac_options(conf, seed, threshold_px(conf, problem.camera1)),
    )
    if ans is None:
        return Estimate.failure(SOLVER_FAILED, "essential matrix RANSAC found no model")
    R, t = _rigid(ans["cam2_from_cam1"])
    inl = np.asarray(ans["inlier_mask"], dtype=bool)
    n = int(ans["num_inliers"])
    return Estimate(R, t / max(np.linalg.norm(t), 1e-12), _confidence(conf, n, inl, m.scores), n, OK, "", inl)


def pnp(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """Pose of camera 1 from its keypoints and the 3D points of the matches (pycolmap LO-RANSAC +
    refinement, the camera's distortion included)."""
    valid = _pnp_correspondences(problem, conf)
    if isinstance(valid, Estimate):
        return valid
    pycolmap = _pycolmap()
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac = ransac_options(conf, seed, threshold_px(conf, problem.camera1))
    ref = pycolmap.AbsolutePoseRefinementOptions()
    ref.refine_focal_length = False
    ref.refine_extra_params = False
    ans = pycolmap.estimate_and_refine_absolute_pose(
        problem.matches.kpts1[valid] + 0.5, problem.points3d[valid], to_pycolmap_camera(problem.camera1), est, ref
    )
    if ans is None:
        return Estimate.failure(SOLVER_FAILED, "PnP RANSAC found no pose")
    R, t = _rigid(ans["cam_from_world"])
    return _pnp_estimate(R, t, np.asarray(ans["inlier_mask"], dtype=bool), valid, problem, conf)


def _pnp_correspondences(problem: PoseProblem, conf: dict) -> np.ndarray | Estimate:
    """Which matches have a 3D point (or the too_few_matches failure when too few do)."""
    m = problem.matches
    valid = np.isfinite(problem.points3d).all(1) if problem.points3d is not None else np.zeros(len(m), bool)
    need = max(PNP_MIN, conf["min_matches"])
    if valid.sum() < need:
        return _too_few(int(valid.sum()), need, f"of {len(m)} matches with a 3D point", problem)
    return valid


def _pnp_estimate(R, t, inliers: np.ndarray, valid: np.ndarray, problem: PoseProblem, conf: dict) -> Estimate:
    """A PnP answer as an Estimate: inliers over all matches, confidence over the 2D-3D correspondences."""
    if not (np.isfinite(R).all() and np.isfinite(t).all()):
        return Estimate.failure(SOLVER_FAILED, "PnP returned a non-finite pose")
    if np.linalg.norm(t) > MAX_TRANSLATION_M:
        return Estimate.failure(
            SOLVER_FAILED, f"PnP pose is {np.linalg.norm(t):.0f} m away (> {MAX_TRANSLATION_M:.0f} m)"
        )
    n = int(inliers.sum())
    full = np.zeros(len(problem.matches), dtype=bool)
    full[np.flatnonzero(valid)] = inliers
    confidence = _confidence(conf, n, inliers, problem.matches.scores[valid])
    return Estimate(R, t, confidence, n, OK, "", full)


# --------------------------------------------------------------------------- OpenCV (ScanNet recipe)
def essential_opencv(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """The ScanNet-1500 reference recipe (SuperGlue/LoFTR ``estimate_pose``), for comparable numbers.

    Keypoints normalised by K, ``cv2.findEssentialMat`` (RANSAC, identity camera) with the pixel
    threshold divided by mean(fx0, fy1, fx0, fy1) (the official averaging, PROTOCOLS 2.2 / quirk 12),
    then the official candidate loop (:func:`best_essential_candidate`).
    """
    import cv2

    m = problem.matches
    if len(m) < ESSENTIAL_MIN:
        return _too_few(len(m), ESSENTIAL_MIN, "matches", problem)
    K0, K1 = problem.camera0.K, problem.camera1.K
    n0, n1 = normalised(m.kpts0, problem.camera0), normalised(m.kpts1, problem.camera1)
    thr = threshold_px(conf, problem.camera1) / np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    cv2.setRNGSeed(int(seed))
    E, mask = cv2.findEssentialMat(
        n0, n1, np.eye(3), threshold=thr, prob=conf["ransac"]["confidence"], method=cv2.RANSAC
    )
    if E is None:
        return Estimate.failure(SOLVER_FAILED, "cv2.findEssentialMat found no model")
    best = best_essential_candidate(E, mask, n0, n1)
    if best is None:
        return Estimate.failure(SOLVER_FAILED, "no essential-matrix candidate had points in front of both cameras")
    n, R, t, inl = best
    return Estimate(R, t, _confidence(conf, n, inl, m.scores), n, OK, "", inl)


def best_essential_candidate(E: np.ndarray, mask: np.ndarray, n0: np.ndarray, n1: np.ndarray):
    """The official loop over the stacked candidates (3k x 3) ``findEssentialMat`` returned: (inliers,
    R, t, inlier mask) of the one with most cheirality inliers, None when none has any.

    As in SuperGlue's and LoFTR's ``estimate_pose``, the one RANSAC ``mask`` (uint8, N x 1, as OpenCV
    returned it) is handed to every ``recoverPose`` call, which narrows it in place: a later candidate
    is tested only on the points that passed the earlier ones, and the kept mask is a snapshot taken
    right after the winner's own call. ``mask`` is modified.
    """
    import cv2

    best, best_n = None, 0
    for candidate in np.split(E, len(E) // 3):
        n, R, t, _ = cv2.recoverPose(candidate, n0, n1, np.eye(3), 1e9, mask=mask)
        if n > best_n:
            best_n, best = n, (int(n), R, t[:, 0], mask.ravel() > 0)
    return best


# --------------------------------------------------------------------------- PoseLib
def poselib_camera(camera: Camera) -> dict:
    """PoseLib takes COLMAP's model names; points and principal point just have to share a convention
    (OpenCV pixels here)."""
    return {
        "model": camera.model,
        "width": int(camera.width),
        "height": int(camera.height),
        "params": [float(p) for p in camera.params],
    }


def poselib_ransac(conf: dict, seed: int, threshold_key: str, threshold: float) -> dict:
    r = conf["ransac"]
    return {
        threshold_key: float(threshold),
        "success_prob": float(r["confidence"]),
        "min_iterations": int(r["min_iterations"]),
        "max_iterations": int(r["max_iterations"]),
        "seed": int(seed),
    }


def poselib_relative(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """Relative pose up to scale (|t| = 1): PoseLib's ``estimate_relative_pose`` (5-point LO-RANSAC on
    the Sampson error with the two cameras, then refinement on the inliers)."""
    import poselib

    m = problem.matches
    need = max(ESSENTIAL_MIN, conf["min_matches"])
    if len(m) < need:
        return _too_few(len(m), need, "matches", problem)
    opts = poselib_ransac(conf, seed, "max_epipolar_error", threshold_px(conf, problem.camera1))
    pose, info = poselib.estimate_relative_pose(
        m.kpts0, m.kpts1, poselib_camera(problem.camera0), poselib_camera(problem.camera1), opts, {}
    )
    n = int(info["num_inliers"])
    R, t = np.asarray(pose.R, dtype=np.float64), np.asarray(pose.t, dtype=np.float64)
    if n < ESSENTIAL_MIN or not (np.isfinite(R).all() and np.isfinite(t).all()) or np.linalg.norm(t) == 0:
        return Estimate.failure(SOLVER_FAILED, f"PoseLib relative pose RANSAC found no model ({n} inliers)")
    inl = np.asarray(info["inliers"], dtype=bool)
    return Estimate(R, t / np.linalg.norm(t), _confidence(conf, n, inl, m.scores), n, OK, "", inl)


def poselib_pnp(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """Pose of camera 1 from its keypoints and the matches' 3D points: PoseLib's
    ``estimate_absolute_pose`` (P3P LO-RANSAC + refinement, the camera's distortion included)."""
    import poselib

    valid = _pnp_correspondences(problem, conf)
    if isinstance(valid, Estimate):
        return valid
    opts = poselib_ransac(conf, seed, "max_reproj_error", threshold_px(conf, problem.camera1))
    pose, info = poselib.estimate_absolute_pose(
        problem.matches.kpts1[valid], problem.points3d[valid], poselib_camera(problem.camera1), opts, {}
    )
    if int(info["num_inliers"]) < PNP_MIN:
        return Estimate.failure(SOLVER_FAILED, f"PoseLib PnP RANSAC found no pose ({info['num_inliers']} inliers)")
    R, t = np.asarray(pose.R, dtype=np.float64), np.asarray(pose.t, dtype=np.float64)
    return _pnp_estimate(R, t, np.asarray(info["inliers"], dtype=bool), valid, problem, conf)


# --------------------------------------------------------------------------- metric scale from depth
def backproject(points2d: np.ndarray, depth: np.ndarray, camera: Camera) -> np.ndarray:
    """3D points in the camera frame of pixels (OpenCV) at the given depths (z)."""
    x = normalised(points2d, camera)
    return np.concatenate([x * depth[:, None], depth[:, None]], axis=1)


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
    support = ratios[lo[best] : hi[best]]
    return float(np.median(support)), int(len(support))


def essential_scaled(problem: PoseProblem, conf: dict, seed: int = 0) -> Estimate:
    """Essential matrix (pycolmap) for R and the direction of t, metric scale from the depth (z of the
    3D points) of the reference keypoints at the inliers."""
    est = essential(problem, conf, seed)
    if not est.ok:
        return est
    m = problem.matches
    depth0 = problem.points3d[:, 2]
    inl = est.inliers & np.isfinite(depth0) & (depth0 > 0)
    if inl.sum() < 1:
        return Estimate.failure(SOLVER_FAILED, "no essential-matrix inlier has a valid depth for the metric scale")
    x0, x1 = normalised(m.kpts0[inl], problem.camera0), normalised(m.kpts1[inl], problem.camera1)
    tri = triangulated_depths(est.R, est.t, x0, x1)
    scale, support = metric_scale(depth0[inl] / tri, conf["scale_threshold"])
    if not np.isfinite(scale) or support == 0:
        return Estimate.failure(SOLVER_FAILED, "no consistent metric scale from depth")
    est.t = est.t * scale
    return est
