"""Relative pose metrics of the ScanNet-1500 protocol (SuperGlue / LoFTR; PROTOCOLS.md 2.2, quirks 11-16).

Angular errors of the estimated ``(R, t)`` (camera 0 -> camera 1) against ``T_0to1``, the pose
error ``max(err_t, err_R)`` (inf for a failure, NaN treated as a failure), the cumulative-error
AUC at 5/10/20 deg, and the epipolar matching precision / matching score.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd

from benchmark.bootstrap import scene_counts, segments_sum
from benchmark.errors import UserError

AUC_THRESHOLDS = (5, 10, 20)  # degrees
EPIPOLAR_THRESHOLD = 5e-4  # squared symmetric epipolar distance, normalised coordinates (ScanNet)
EPIPOLAR_THRESHOLD_MEGADEPTH = 1e-4
FAILURE = float("inf")

# our per-sample column names
ERR_R, ERR_T, POSE_ERR = "err_R_deg", "err_t_deg", "pose_err_deg"
PRECISION, MSCORE = "epi_precision", "matching_score"


def angle_error_t(t_est, t_gt, ignore_sign: bool = True) -> float:
    """Angle between translation directions (deg); with ``ignore_sign`` ``min(e, 180 - e)`` (quirk 11).
    A zero-length vector gives NaN (0/0)."""
    t_est, t_gt = np.asarray(t_est, np.float64).reshape(3), np.asarray(t_gt, np.float64).reshape(3)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.dot(t_est, t_gt) / (np.linalg.norm(t_est) * np.linalg.norm(t_gt))
    err = float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))
    return min(err, 180.0 - err) if ignore_sign else err


def angle_error_R(R_est, R_gt) -> float:
    """Geodesic angle between two rotations (deg), from the clipped trace."""
    cos = (np.trace(np.asarray(R_est, np.float64).T @ np.asarray(R_gt, np.float64)) - 1) / 2
    return float(np.rad2deg(np.abs(np.arccos(np.clip(cos, -1.0, 1.0)))))


def relative_pose_error(T_0to1, R_est, t_est, ignore_gt_t_thr: float = 0.0) -> tuple[float, float]:
    """``(err_t, err_R)`` in degrees; ``(inf, inf)`` for a failed estimate (None or non-finite).

    ``ignore_gt_t_thr`` is LoFTR's optional switch (t error forced to 0 when ``|t_gt|`` is below
    it), off in the evaluation."""
    if R_est is None or t_est is None or not (np.all(np.isfinite(R_est)) and np.all(np.isfinite(t_est))):
        return FAILURE, FAILURE
    T_0to1 = np.asarray(T_0to1, np.float64)
    t_gt = T_0to1[:3, 3]
    err_t = angle_error_t(t_est, t_gt)
    if np.linalg.norm(t_gt) < ignore_gt_t_thr:
        err_t = 0.0
    return err_t, angle_error_R(R_est, T_0to1[:3, :3])


def _nan_as_failure(errors) -> np.ndarray:
    errors = np.asarray(errors, np.float64)
    return np.where(np.isnan(errors), FAILURE, errors)


def pose_error(err_t, err_R) -> np.ndarray:
    """``max(err_t, err_R)`` with NaN turned into a failure (inf, quirk 13)."""
    return _nan_as_failure(np.maximum(np.asarray(err_t, np.float64), np.asarray(err_R, np.float64)))


def pose_auc(errors, thresholds=AUC_THRESHOLDS) -> list[float]:
    """SuperGlue's AUC of the cumulative pose-error curve, one fraction per threshold: recall over
    sorted errors with linear interpolation, cut at the threshold and normalised by it; every
    error counts in the denominator, failures (inf/NaN) never reach a threshold."""
    errors = np.sort(_nan_as_failure(errors).reshape(-1))
    if len(errors) == 0:
        return [float("nan")] * len(thresholds)
    recall = (np.arange(len(errors)) + 1) / len(errors)
    errors, recall = np.r_[0.0, errors], np.r_[0.0, recall]
    aucs = []
    for t in thresholds:
        last = np.searchsorted(errors, t)
        r = np.r_[recall[:last], recall[last - 1]]
        e = np.r_[errors[:last], t]
        aucs.append(float(np.trapezoid(r, x=e) / t))
    return aucs


def pose_auc_loftr(errors) -> dict:
    """LoFTR's ``error_auc``: the same area with recall from ``linspace`` (last-bit differences);
    like the official function it always uses 5/10/20 deg (quirk 14). Keys ``auc@5`` ..."""
    errors = [0.0] + sorted(_nan_as_failure(errors).reshape(-1).tolist())
    recall = np.linspace(0, 1, len(errors)).tolist()
    out = {}
    for t in AUC_THRESHOLDS:
        last = int(np.searchsorted(errors, t))
        y = recall[:last] + [recall[last - 1]]
        x = errors[:last] + [t]
        out[f"auc@{t}"] = float(np.trapezoid(y, x) / t)
    return out


def epipolar_errors(kpts0, kpts1, T_0to1, K0, K1) -> np.ndarray:
    """Squared symmetric epipolar distance of each match in normalised camera coordinates,
    with ``E = [t]x R`` from the ground truth."""
    kpts0, kpts1 = np.asarray(kpts0, np.float64).reshape(-1, 2), np.asarray(kpts1, np.float64).reshape(-1, 2)
    K0, K1, T_0to1 = (np.asarray(a, np.float64) for a in (K0, K1, T_0to1))
    x0 = np.c_[(kpts0 - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]], np.ones(len(kpts0))]
    x1 = np.c_[(kpts1 - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]], np.ones(len(kpts1))]
    tx, ty, tz = T_0to1[:3, 3]
    E = np.array([[0, -tz, ty], [tz, 0, -tx], [-ty, tx, 0]]) @ T_0to1[:3, :3]
    Ex0 = x0 @ E.T
    Etx1 = x1 @ E
    x1Ex0 = np.sum(x1 * Ex0, axis=-1)
    return x1Ex0**2 * (1.0 / (Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2) + 1.0 / (Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2))


def epipolar_precision(epi_errs, threshold: float = EPIPOLAR_THRESHOLD) -> float:
    """Fraction of matches with an epipolar error below ``threshold``; 0 for no matches (quirk 15)."""
    epi_errs = np.asarray(epi_errs, np.float64)
    return float(np.mean(epi_errs < threshold)) if len(epi_errs) else 0.0


def matching_score(epi_errs, num_kpts0: int, threshold: float = EPIPOLAR_THRESHOLD) -> float:
    """SuperGlue's matching score: correct matches / keypoints detected in image 0."""
    return float(np.sum(np.asarray(epi_errs) < threshold) / num_kpts0) if num_kpts0 else 0.0


def epidist_prec(epi_errs_per_pair, thresholds=(EPIPOLAR_THRESHOLD,)) -> dict:
    """LoFTR's mean per-pair precision for each threshold, keys ``prec@5e-04`` ..."""
    return {
        f"prec@{t:.0e}": float(np.mean([epipolar_precision(e, t) for e in epi_errs_per_pair]))
        if len(epi_errs_per_pair)
        else 0.0
        for t in thresholds
    }


def aggregate_metrics_loftr(identifiers, R_errs, t_errs, epi_errs, epi_err_thr: float = EPIPOLAR_THRESHOLD) -> dict:
    """LoFTR's ``aggregate_metrics``: a pair seen twice keeps its LAST entry, at the position of its
    first (quirk 14); then AUC@5/10/20 (fractions) and the epipolar precision."""
    last = OrderedDict((ident, i) for i, ident in enumerate(identifiers))
    keep = list(last.values())
    errs = pose_error(np.asarray(t_errs, np.float64)[keep], np.asarray(R_errs, np.float64)[keep])
    return {**pose_auc_loftr(errs), **epidist_prec([epi_errs[i] for i in keep], (epi_err_thr,))}


def pair_errors(T_0to1, R_est, t_est) -> dict:
    """Per-pair pose columns for our table: rotation and translation angle errors and the pose error."""
    err_t, err_R = relative_pose_error(T_0to1, R_est, t_est)
    return {ERR_R: err_R, ERR_T: err_t, POSE_ERR: float(pose_error(err_t, err_R))}


def summarize_relpose(df: pd.DataFrame, thresholds=AUC_THRESHOLDS) -> dict:
    """``AUC@5``, ``AUC@10``, ``AUC@20`` (percent, SuperGlue's rule over every row; missing errors
    are failures) and, when the columns exist, ``Prec`` and ``MScore`` (percent, rows without a
    value count as 0 like pairs without matches)."""
    if ERR_R not in df.columns or ERR_T not in df.columns:
        raise UserError(
            f"The relative-pose results table lacks the columns {ERR_R}/{ERR_T}; "
            f"produce it with the relative-pose protocol's per-sample errors."
        )
    if len(df) == 0:
        return {f"AUC@{t}": float("nan") for t in thresholds}
    errs = pose_error(df[ERR_T].to_numpy(np.float64), df[ERR_R].to_numpy(np.float64))
    out = {f"AUC@{t}": 100.0 * a for t, a in zip(thresholds, pose_auc(errs, thresholds))}
    for column, key in ((PRECISION, "Prec"), (MSCORE, "MScore")):
        if column in df.columns:
            out[key] = 100.0 * float(np.mean(df[column].fillna(0.0).to_numpy(np.float64)))
    return out


def resample_relpose(df: pd.DataFrame, codes: np.ndarray, n_scenes: int, thresholds=AUC_THRESHOLDS):
    """Bootstrap evaluator of :func:`summarize_relpose` (see ``benchmark.bootstrap``): the AUCs from
    each resample's sorted pooled errors, the means over its rows in the resampled order."""
    errors = pose_error(df[ERR_T].to_numpy(np.float64), df[ERR_R].to_numpy(np.float64))
    order = np.argsort(errors, kind="stable")
    sorted_errors, sorted_scene = errors[order], codes[order]
    means = {
        key: df[c].fillna(0.0).to_numpy(np.float64)
        for c, key in ((PRECISION, "Prec"), (MSCORE, "MScore"))
        if c in df.columns
    }
    by_scene = np.argsort(codes, kind="stable")  # row numbers scene after scene, in table order
    scene_rows = np.bincount(codes, minlength=n_scenes)
    scene_start = np.cumsum(scene_rows) - scene_rows

    def auc(weights, n, t):
        # pose_auc on the pooled errors: trapezoids over (0, e_1, ..., e_last-1, t), recall i / n
        pooled = np.repeat(np.tile(sorted_errors, len(weights)), weights.ravel())
        starts = np.cumsum(n) - n
        last = 1 + (weights * (sorted_errors < t)).sum(axis=1)

        def terms(rows, idx):
            i = idx - starts[rows, None]
            x = np.where(i > 0, pooled[np.maximum(idx - 1, 0)], 0.0)
            x_next = np.where(i + 1 < last[rows, None], pooled[np.minimum(idx, len(pooled) - 1)], t)
            y = i / n[rows, None]
            y_next = np.where(i + 1 < last[rows, None], (i + 1) / n[rows, None], y)
            return (x_next - x) * (y_next + y) / 2.0

        return 100.0 * (segments_sum(starts, last, terms) / t)

    def evaluate(picks):
        weights = scene_counts(picks, n_scenes).astype(np.int64)[:, sorted_scene]
        n = weights.sum(axis=1)
        out = {f"AUC@{t}": auc(weights, n, t) for t in thresholds}
        # the resample's rows in order: each drawn scene's rows after the previous one's
        lengths = scene_rows[picks].ravel()
        offset = np.repeat(scene_start[picks].ravel() - (np.cumsum(lengths) - lengths), lengths)
        pooled_rows = by_scene[np.arange(lengths.sum()) + offset]
        for key, column in means.items():
            values = column[pooled_rows]
            out[key] = 100.0 * (segments_sum(np.cumsum(n) - n, n, lambda rows, idx: values[idx]) / n)
        return out

    return evaluate, 2 * len(df)
