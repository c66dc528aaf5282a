"""Map-free relocalization metrics, equal to Niantic's scorer (PROTOCOLS.md 1.4-1.6 and quirks 5-10).

Per frame (camera-to-world inputs as the official scorer converts them, or our world-to-camera
convention through :func:`frame_errors_w2c`): translation error (m), rotation error (deg) and
VCRE (px). Aggregation: medians per scene then the mean over scenes, precision at (25 cm, 5 deg)
and at 90 px, AUC over confidence, the fraction of frames with an estimate. The official
operation order is kept where it decides a value (the arcsin NaN near 180 deg, the float32
recall axis, the clamp of points behind the camera).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from benchmark.bootstrap import ragged, scene_counts
from benchmark.errors import UserError
from benchmark.geometry import quat_to_rotmat, rotmat_to_quat
from benchmark.types import OK

T_THRESHOLD = 0.25  # metres
R_THRESHOLD = 5  # degrees
VCRE_THRESHOLD = 90  # pixels
SUBSAMPLE = 5  # the scorer keeps every 5th ground-truth line
ROTATION_SIN = "sin"  # official default: 2 asin(|vec(q_gt q_est^-1)|)
ROTATION_COS = "cos"  # 2 acos(|<q_gt, q_est>|): defined at 180 deg, not used by the leaderboard
_TWO_DEGREES_PER_RADIAN = 114.59155902616465  # the official constant, 2 * 180 / pi

KEY_TRANS = "Average Median Translation Error"
KEY_ROT = "Average Median Rotation Error"
KEY_REPROJ = "Average Median Reprojection Error"
KEY_PREC_POSE = f"Precision @ Pose Error < ({T_THRESHOLD * 100}cm, {R_THRESHOLD}deg)"
KEY_AUC_POSE = f"AUC @ Pose Error < ({T_THRESHOLD * 100}cm, {R_THRESHOLD}deg)"
KEY_PREC_VCRE = f"Precision @ VCRE < {VCRE_THRESHOLD}px"
KEY_AUC_VCRE = f"AUC @ VCRE < {VCRE_THRESHOLD}px"
KEY_ESTIMATES = "Estimates for % of frames"
KEYS = (KEY_TRANS, KEY_ROT, KEY_REPROJ, KEY_PREC_POSE, KEY_AUC_POSE, KEY_PREC_VCRE, KEY_AUC_VCRE, KEY_ESTIMATES)
CORRECTED = " [corrected]"  # suffix of every key computed with a corrected (non-official) rule

# our per-sample column names (units in the name) for the three per-frame errors
TRANS, ROT, VCRE = "trans_err_m", "rot_err_deg", "vcre_px"


def virtual_grid() -> np.ndarray:
    """The 196 virtual points (homogeneous, ground-truth camera frame) in the official order:
    x 7 values, y 4, z 7, 0.3 m apart, from 1.8 m in front of the camera; meshgrid 'xy', C order."""
    x = (np.arange(7) - 3.0) * 0.3
    y = (np.arange(4) - 1.5) * 0.3
    z = np.arange(7) * 0.3 + 1.8
    xx, yy, zz = np.meshgrid(x, y, z)
    return np.stack([xx.ravel(), yy.ravel(), zz.ravel(), np.ones(xx.size)], axis=1)


VIRTUAL_GRID = virtual_grid()


# --- quaternion arithmetic in the scorer's operation order (it decides the NaNs at 180 deg) ---


def _qmult(a, b) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 + y1 * w2 + z1 * x2 - x1 * z2,
            w1 * z2 + z1 * w2 + x1 * y2 - y1 * x2,
        ]
    )


def _norm(v) -> np.ndarray:
    # squares rounded one by one, then summed in order: no BLAS dot, whose FMA kernels round
    # differently on some CPUs and would move the NaN/180 boundary of the arcsin form
    v = np.asarray(v, dtype=np.float64)
    return np.sqrt(np.sum(v * v))


def _qinverse(q) -> np.ndarray:
    # the official inverse divides the conjugate by the norm (not its square): a unit quaternion
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0]) / _norm(q)


def _unit(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / _norm(q)


def w2c_to_c2w(q_w2c, t_w2c) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's conversion of a file pose: ``(conj(q)/|q|, -R(q/|q|)^T t)`` (quirk 5)."""
    q_inv = _qinverse(q_w2c)
    v = np.concatenate([[0.0], np.asarray(t_w2c, dtype=np.float64)])
    rotated = _qmult(q_inv, _qmult(v, q_inv * np.array([1.0, -1.0, -1.0, -1.0])))
    return q_inv, -rotated[1:]


# --- per-frame metrics (camera-to-world inputs, quaternions wxyz) ---


def translation_error(t_gt, t_est) -> float:
    """Distance between the camera centres (m)."""
    return float(np.linalg.norm(np.asarray(t_est, np.float64) - np.asarray(t_gt, np.float64)))


def rotation_error(q_gt, q_est, variant: str = ROTATION_SIN) -> float:
    """Angle between two rotations (deg). The official arcsin form returns NaN when rounding pushes
    its argument above 1 (exactly 180 deg, quirk 6); ``variant="cos"`` is the arccos form."""
    a, b = _unit(q_gt), _unit(q_est)
    if variant == ROTATION_COS:
        return float(2.0 * np.degrees(np.arccos(np.clip(np.abs(np.sum(a * b)), -1.0, 1.0))))
    if variant != ROTATION_SIN:
        raise ValueError(f"rotation variant must be '{ROTATION_SIN}' or '{ROTATION_COS}', not {variant!r}")
    d = _qmult(a, _qinverse(b))
    with np.errstate(invalid="ignore"):
        return float(np.arcsin(_norm(d[1:])) * _TWO_DEGREES_PER_RADIAN)


def _project_clamped(points: np.ndarray, K: np.ndarray, W: float, H: float) -> np.ndarray:
    # no test of the depth sign: points behind the camera flip and get pinned to the border (quirk 7)
    uvw = points[:, :3] @ np.asarray(K).T.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / uvw[:, 2:]
    return np.stack([np.clip(uv[:, 0], 0, W), np.clip(uv[:, 1], 0, H)], axis=1)


def _c2w_matrix(q, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quat_to_rotmat(q)
    T[:3, 3] = t
    return T


def vcre(q_gt, t_gt, q_est, t_est, K, W, H) -> float:
    """Virtual correspondence reprojection error (px): mean pixel distance between the virtual grid
    seen through the ground-truth and the estimated camera, projections clamped to [0, W] x [0, H]."""
    uv_gt = _project_clamped(VIRTUAL_GRID, K, W, H)
    moved = (np.linalg.inv(_c2w_matrix(q_est, t_est)) @ _c2w_matrix(q_gt, t_gt) @ VIRTUAL_GRID.T).T
    uv_est = _project_clamped(moved, K, W, H)
    return float(np.linalg.norm(uv_gt - uv_est, axis=1).mean())


def frame_errors(q_gt, t_gt, q_est, t_est, K, W, H, rotation: str = ROTATION_SIN) -> dict:
    """The three per-frame errors from camera-to-world inputs (the official metric inputs)."""
    return {
        TRANS: translation_error(t_gt, t_est),
        ROT: rotation_error(q_gt, q_est, rotation),
        VCRE: vcre(q_gt, t_gt, q_est, t_est, K, W, H),
    }


def frame_errors_w2c(q_gt, t_gt, q_est, t_est, K, W, H, rotation: str = ROTATION_SIN) -> dict:
    """The per-frame errors from our world-to-camera convention (quaternion wxyz or 3x3 rotation;
    for Map-free the world is the reference camera), converted and cast as the scorer does
    (K to float32, quirk 10)."""

    def as_quat(q):
        return rotmat_to_quat(q) if np.shape(q) == (3, 3) else np.asarray(q, np.float64)

    gt = w2c_to_c2w(as_quat(q_gt), t_gt)
    est = w2c_to_c2w(as_quat(q_est), t_est)
    K32 = np.asarray(K, dtype=np.float32)
    return frame_errors(gt[0], gt[1], est[0], est[1], K32, W, H, rotation)


# --- aggregation ---


def precision_recall(confidence, tp, failures: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision-recall over confidence thresholds and its area (quirk 8).

    Estimates enter in descending confidence, ties together; recall is counted against all
    estimates plus ``failures`` and formed in float32 as the official code does. Returns
    ``(prec, rec, auc)`` in the official order: from full recall down to the point (rec 0, prec 1).
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    if len(confidence) != len(tp):
        raise ValueError(f"precision_recall: {len(confidence)} confidences but {len(tp)} outcomes")
    if len(confidence) == 0:
        return np.array([1.0]), np.array([0.0], dtype=np.float32), 0.0
    order = np.argsort(-confidence, kind="stable")
    group_ends = np.r_[np.flatnonzero(np.diff(confidence[order])), len(order) - 1]
    counts = (group_ends + 1).astype(np.float32)
    prec = np.cumsum(tp[order])[group_ends] / counts
    rec = counts / np.float32(len(order) + failures)
    prec = np.r_[prec[::-1], 1.0]
    rec = np.r_[rec[::-1], np.float32(0.0)]
    auc = float(np.abs(np.sum(np.diff(rec) * prec[:-1])))
    return prec, rec, auc


def aggregate(per_scene: Mapping[str, Mapping[str, np.ndarray]], failures: int, suffix: str = "") -> dict:
    """The official summary from per-scene arrays ``trans_err_m``, ``rot_err_deg``, ``vcre_px``,
    ``confidence`` (frames with an estimate) and the total number of failures.

    With no estimate at all the official CLI prints no metrics; here medians are NaN and the
    precisions, AUCs and estimate fraction 0 (NaN everywhere when there are no frames at all).
    """
    scenes = [s for s in per_scene.values() if len(s[TRANS])]
    pooled = {
        k: np.concatenate([np.asarray(s[k], np.float64) for s in scenes]) if scenes else np.zeros(0)
        for k in (TRANS, ROT, VCRE, "confidence")
    }
    total = len(pooled[TRANS]) + failures
    medians = {
        k: float(np.mean([np.median(s[k]) for s in scenes])) if scenes else float("nan") for k in (TRANS, ROT, VCRE)
    }
    if total == 0:
        return {key + suffix: float("nan") for key in KEYS}
    pose_ok = (pooled[TRANS] < T_THRESHOLD) & (pooled[ROT] < R_THRESHOLD)
    vcre_ok = pooled[VCRE] < VCRE_THRESHOLD
    out = {
        KEY_TRANS: medians[TRANS],
        KEY_ROT: medians[ROT],
        KEY_REPROJ: medians[VCRE],
        KEY_PREC_POSE: np.sum(pose_ok) / total,
        KEY_AUC_POSE: precision_recall(pooled["confidence"], pose_ok, failures)[2],
        KEY_PREC_VCRE: np.sum(vcre_ok) / total,
        KEY_AUC_VCRE: precision_recall(pooled["confidence"], vcre_ok, failures)[2],
        KEY_ESTIMATES: len(pooled[TRANS]) / total,
    }
    return {key + suffix: float(v) for key, v in out.items()}


def summarize_mapfree(df: pd.DataFrame) -> dict:
    """The official summary of our per-sample table (columns ``scene``, ``trans_err_m``,
    ``rot_err_deg``, ``vcre_px``, ``confidence``, ``status``).

    Rows with status ``ok`` are estimates (their errors may be NaN, e.g. the arcsin NaN at
    180 deg, and then fail every threshold as in the scorer); every other row is a failure.
    The table should hold the evaluated frames only (the loader's default) to match the scorer.
    """
    missing = [c for c in ("scene", TRANS, ROT, VCRE, "confidence", "status") if c not in df.columns]
    if missing:
        raise UserError(
            f"The Map-free results table lacks the column(s) {', '.join(missing)}; "
            f"produce it with the Map-free protocol's per-sample errors."
        )
    ok = (df["status"] == OK).to_numpy()
    conf = df["confidence"].to_numpy(dtype=np.float64)[ok]
    if not np.all(np.isfinite(conf)) or np.any(conf < 0):
        raise UserError(
            "The Map-free results table has a missing or negative confidence on an 'ok' row; "
            "the scorer requires confidence >= 0 for every estimate (fix the solver's confidence)."
        )
    per_scene = {}
    for scene, rows in df[ok].groupby("scene", sort=False):
        per_scene[scene] = {k: rows[k].to_numpy(dtype=np.float64) for k in (TRANS, ROT, VCRE, "confidence")}
    return aggregate(per_scene, int((~ok).sum()))


def _pr_auc_resampled(count: np.ndarray, hits: np.ndarray, total: np.ndarray) -> np.ndarray:
    """:func:`precision_recall`'s area for many resamples at once, the same operations on the same
    values: ``count`` / ``hits`` (B, G) are the estimates / true positives per confidence value in
    ascending order, ``total`` (B,) the estimates plus failures."""
    at_least = np.cumsum(count[:, ::-1], axis=1)[:, ::-1]  # estimates with this confidence or more
    hits_at_least = np.cumsum(hits[:, ::-1], axis=1)[:, ::-1]
    total32 = total.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = hits_at_least / at_least.astype(np.float32).astype(np.float64)
        rec = at_least.astype(np.float32) / total32
        rec_above = (at_least - count).astype(np.float32) / total32  # the next more confident value's recall
    terms = (rec_above - rec) * prec  # summed from the least confident value up, as the scorer does
    return np.abs(ragged(terms, count > 0, np.sum, empty=0.0))


def resample_mapfree(df: pd.DataFrame, codes: np.ndarray, n_scenes: int):
    """Bootstrap evaluator of :func:`summarize_mapfree` (see ``benchmark.bootstrap``): per scene the
    estimate and failure counts, the medians, the hits and the estimates per confidence value."""
    ok = (df["status"] == OK).to_numpy()
    est = np.bincount(codes[ok], minlength=n_scenes).astype(np.float64)
    rows = est + np.bincount(codes[~ok], minlength=n_scenes)
    values = {k: df[k].to_numpy(np.float64) for k in (TRANS, ROT, VCRE)}
    medians = {
        k: np.array([np.median(v[ok & (codes == s)]) if est[s] else np.nan for s in range(n_scenes)])
        for k, v in values.items()
    }
    hit_pose = ok & (values[TRANS] < T_THRESHOLD) & (values[ROT] < R_THRESHOLD)
    hit_vcre = ok & (values[VCRE] < VCRE_THRESHOLD)
    confidences, group = np.unique(df["confidence"].to_numpy(np.float64)[ok], return_inverse=True)
    per_value = np.zeros((3, n_scenes, len(confidences)))
    for layer, mask in enumerate((ok, hit_pose, hit_vcre)):
        np.add.at(per_value[layer], (codes[mask], group[mask[ok]]), 1)

    def evaluate(picks):
        counts = scene_counts(picks, n_scenes)
        total, estimates = counts @ rows, counts @ est
        with_estimates = (est > 0)[picks]
        out = {
            key: ragged(medians[k][picks], with_estimates, np.mean, empty=np.nan)
            for key, k in ((KEY_TRANS, TRANS), (KEY_ROT, ROT), (KEY_REPROJ, VCRE))
        }
        per_conf = [counts @ layer for layer in per_value]
        for key_prec, key_auc, hits, layer in (
            (KEY_PREC_POSE, KEY_AUC_POSE, hit_pose, 1),
            (KEY_PREC_VCRE, KEY_AUC_VCRE, hit_vcre, 2),
        ):
            out[key_prec] = (counts @ np.bincount(codes[hits], minlength=n_scenes)) / total
            out[key_auc] = _pr_auc_resampled(per_conf[0], per_conf[layer], total)
        out[KEY_ESTIMATES] = estimates / total
        return {k: out[k] for k in KEYS}

    return evaluate, max(n_scenes, len(confidences))
