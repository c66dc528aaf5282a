"""RRA / RTA / mAA of multi-view relative poses (PoseDiffusion protocol used by DUSt3R/MASt3R;
PROTOCOLS.md section 4, quirks 17-19), in numpy.

Cameras are world-to-camera in column form (``x_cam = R x_world + t``); PyTorch3D row-vector
cameras convert with :func:`from_pytorch3d`. For every pair i < j of a sequence (torch.combinations
order) the relative pose camera i -> camera j is compared: rotation angle with pytorch3d's
acos extrapolation (identical rotations give 0.405 deg), translation direction angle with the
sign ignored. Metrics pool the pairs of a category, then average categories without weights.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.bootstrap import ragged, scene_counts
from benchmark.errors import UserError

TAUS = (5, 15, 30)  # degrees
MAA_MAX = 30  # degrees, 1-degree bins
COS_BOUND = 1e-4  # pytorch3d so3_relative_angle: acos extrapolated linearly beyond 1 - 1e-4
T_EPS = 1e-15
T_DEFAULT_ERR = 1e6  # radians, replaces a NaN/inf translation angle
MAA_NUMPY, MAA_TORCH = "numpy", "torch"

RRE, RTE = "rre_deg", "rte_deg"  # our per-pair column names


def from_pytorch3d(R, T, opencv_axes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera column-form ``(R, t)`` of PyTorch3D cameras (``X_view = X_world @ R + T``).

    With ``opencv_axes`` the camera axes flip to OpenCV's (x right, y down): ``diag(-1,-1,1)``;
    none of these metrics changes when ground truth and prediction are converted alike."""
    R_w2c = np.swapaxes(np.asarray(R, np.float64), -1, -2)
    t_w2c = np.asarray(T, np.float64).copy()
    if opencv_axes:
        flip = np.array([-1.0, -1.0, 1.0])
        R_w2c = R_w2c * flip[:, None]
        t_w2c = t_w2c * flip
    return R_w2c, t_w2c


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j in torch.combinations order: (0,1), (0,2), ..., (1,2), ..."""
    return np.triu_indices(n, k=1)


def relative_poses(R, t, i, j) -> tuple[np.ndarray, np.ndarray]:
    """Camera i -> camera j: ``R_ij = R_j R_i^T``, ``t_ij = t_j - R_ij t_i``."""
    R, t = np.asarray(R, np.float64), np.asarray(t, np.float64)
    R_ij = R[j] @ np.swapaxes(R[i], -1, -2)
    return R_ij, t[j] - np.einsum("nab,nb->na", R_ij, t[i])


def _acos_extrapolated(cos: np.ndarray, bound: float) -> np.ndarray:
    hi, lo = 1.0 - bound, -(1.0 - bound)
    slope = -1.0 / math.sqrt(1.0 - hi * hi)  # d acos / dx at the bound, the same magnitude at both ends
    out = np.arccos(np.clip(cos, lo, hi))
    out = np.where(cos >= hi, (cos - hi) * slope + math.acos(hi), out)
    return np.where(cos <= lo, (cos - lo) * slope + math.acos(lo), out)


def rotation_angle_deg(R_a, R_b) -> np.ndarray:
    """Angle of ``R_a R_b^T`` (deg) as pytorch3d ``so3_relative_angle`` computes it (quirk 17)."""
    R_ab = np.asarray(R_a, np.float64) @ np.swapaxes(np.asarray(R_b, np.float64), -1, -2)
    cos = (np.trace(R_ab, axis1=-2, axis2=-1) - 1.0) * 0.5
    return _acos_extrapolated(cos, COS_BOUND) * 180 / np.pi


def translation_angle_deg(t_a, t_b) -> np.ndarray:
    """Angle between translation directions with the sign ignored (deg, in [0, 90]); a zero vector
    gives 90, a NaN/inf result becomes 1e6 rad (quirk 18)."""
    t_a, t_b = np.atleast_2d(np.asarray(t_a, np.float64)), np.atleast_2d(np.asarray(t_b, np.float64))
    with np.errstate(invalid="ignore"):
        a = t_a / (np.linalg.norm(t_a, axis=1, keepdims=True) + T_EPS)
        b = t_b / (np.linalg.norm(t_b, axis=1, keepdims=True) + T_EPS)
        loss = np.maximum(1.0 - np.sum(a * b, axis=1) ** 2, T_EPS)
        err = np.arccos(np.sqrt(1.0 - loss))
    err = np.where(np.isfinite(err), err, T_DEFAULT_ERR)
    return err * 180.0 / np.pi


def sequence_errors(R_gt, t_gt, R_pred, t_pred) -> tuple[np.ndarray, np.ndarray]:
    """``(RRE, RTE)`` in degrees over all pairs of one sequence (world-to-camera column form)."""
    i, j = pair_indices(len(R_gt))
    Rg, tg = relative_poses(R_gt, t_gt, i, j)
    Rp, tp = relative_poses(R_pred, t_pred, i, j)
    # pytorch3d compares the row-vector (transposed) relative rotations: the same angle
    return rotation_angle_deg(np.swapaxes(Rg, -1, -2), np.swapaxes(Rp, -1, -2)), translation_angle_deg(tg, tp)


def mean_accuracy(rre, rte, max_threshold: int = MAA_MAX, variant: str = MAA_NUMPY) -> float:
    """mAA as a fraction: ``e = max(RRE, RTE)`` binned over [0, max] and the mean of the cumulative
    histogram. ``numpy`` (default, the test script's): 1-degree bins, the last one closed.
    ``torch``: the training-time ``torch.histc`` with ``max + 1`` bins over [0, max] (quirk 19)."""
    e = np.maximum(np.asarray(rre, np.float64), np.asarray(rte, np.float64))
    n = float(len(e))
    if variant == MAA_NUMPY:
        hist = np.histogram(e, bins=np.arange(max_threshold + 1))[0]
    elif variant == MAA_TORCH:
        bins = max_threshold + 1
        inside = e[(e >= 0) & (e <= max_threshold)]  # histc ignores NaN and values outside [min, max]
        index = np.minimum((inside * bins / max_threshold).astype(np.int64), bins - 1)
        hist = np.bincount(index, minlength=bins)
    else:
        raise ValueError(f"mAA variant must be '{MAA_NUMPY}' or '{MAA_TORCH}', not {variant!r}")
    return float(np.mean(np.cumsum(hist.astype(np.float64) / n)))


def accuracy_metrics(rre, rte, taus=TAUS, max_threshold: int = MAA_MAX, variant: str = MAA_NUMPY) -> dict:
    """``RRA@tau``, ``RTA@tau`` (percent of pairs with error < tau, strict) and ``mAA@max`` (x100)."""
    rre, rte = np.asarray(rre, np.float64), np.asarray(rte, np.float64)
    out = {}
    for tau in taus:
        out[f"RRA@{tau}"] = float(np.mean(rre < tau) * 100)
        out[f"RTA@{tau}"] = float(np.mean(rte < tau) * 100)
    suffix = "" if variant == MAA_NUMPY else f" [{variant}]"
    out[f"mAA@{max_threshold}{suffix}"] = 100 * mean_accuracy(rre, rte, max_threshold, variant)
    return out


def summarize_rra(df: pd.DataFrame, taus=TAUS, max_threshold: int = MAA_MAX, group: str | None = None) -> dict:
    """Metrics per category over its pooled pairs, then the unweighted mean over categories.

    Columns ``rre_deg``, ``rte_deg`` and the grouping column (``category`` if present, else
    ``scene``). Missing errors (failed samples) never pass a threshold."""
    group = group or ("category" if "category" in df.columns else "scene")
    missing = [c for c in (RRE, RTE, group) if c not in df.columns]
    if missing:
        raise UserError(f"The RRA/RTA results table lacks the column(s) {', '.join(missing)}.")
    if len(df) == 0:
        return {}
    if group == "category" and df[group].isna().any() and "scene" in df:
        # a sequence without any category is a group of its own
        category = sequence_categories(df)
        df = df.assign(category=category.where(category.notna(), df["scene"].astype(object)))
    rows = [
        accuracy_metrics(g[RRE].to_numpy(np.float64), g[RTE].to_numpy(np.float64), taus, max_threshold)
        for _, g in df.groupby(group, sort=False)
    ]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def sequence_categories(df: pd.DataFrame) -> pd.Series:
    """The category of each row (object dtype): a row without one (a sample that could not be built)
    takes its sequence's; missing where the whole sequence has none. Object dtype, because pandas
    refuses to fill strings into a column that has none (all missing: float) or the reverse."""
    category = df["category"].astype(object)
    known = category.notna()
    if known.all():
        return category
    by_scene = category[known].groupby(df["scene"][known], sort=False).first()
    return category.where(known, df["scene"].map(by_scene).astype(object))


def resample_rra(df: pd.DataFrame, codes: np.ndarray, n_scenes: int, taus=TAUS, max_threshold: int = MAA_MAX):
    """Bootstrap evaluator of :func:`summarize_rra` (see ``benchmark.bootstrap``). A category pools the
    pairs of every drawn copy of its scenes; a scene without any category (and every scene when the
    table has no category column) is a group of its own in each copy, as the renamed copies are in the
    resampled table. Groups are averaged in the order they first appear in the resampled table."""
    own = np.ones(len(df), dtype=bool)
    group = np.full(len(df), -1)
    if "category" in df.columns:
        group, _ = pd.factorize(sequence_categories(df))  # -1 where still missing
        own = group < 0
    n_groups = int(group.max()) + 1
    rre, rte = df[RRE].to_numpy(np.float64), df[RTE].to_numpy(np.float64)
    rank = np.zeros(len(df), dtype=np.int64)  # position of each row among its scene's rows
    for s in range(n_scenes):
        rank[codes == s] = np.arange(np.sum(codes == s))
    width = int(rank.max()) + 1

    def counts(rows):  # pairs, hits per threshold, mAA histogram of a set of rows
        hits = [c for tau in taus for c in (np.sum(rre[rows] < tau), np.sum(rte[rows] < tau))]
        e = np.maximum(rre[rows], rte[rows])
        return np.r_[len(e), hits, np.histogram(e, bins=np.arange(max_threshold + 1))[0]].astype(np.float64)

    size = 1 + 2 * len(taus) + max_threshold
    shared = np.zeros((n_scenes, n_groups, size))
    first = np.full((n_scenes, n_groups), np.inf)  # first row of each category in each scene
    alone = np.zeros((n_scenes, size))
    for s, g in set(zip(codes.tolist(), group.tolist())):
        rows = (codes == s) & (group == g)
        if g < 0:
            alone[s] = counts(rows)
        else:
            shared[s, g], first[s, g] = counts(rows), rank[rows].min()
    alone_scene = np.bincount(codes[own], minlength=n_scenes) > 0

    def metrics(stats):  # accuracy_metrics from pooled counts, in its key order
        n = stats[..., :1]
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = stats[..., 1 : 1 + 2 * len(taus)] / n * 100
            maa = 100 * np.mean(np.cumsum(stats[..., 1 + 2 * len(taus) :] / n, axis=-1), axis=-1)
        return np.concatenate([rates, maa[..., None]], axis=-1)

    def evaluate(picks):
        b, positions = len(picks), np.arange(n_scenes)
        pooled = (scene_counts(picks, n_scenes) @ shared.reshape(n_scenes, -1)).reshape(b, n_groups, size)
        starts = np.min(first[picks] + (positions * width)[None, :, None], axis=1)
        values = np.concatenate([metrics(pooled), metrics(alone[picks])], axis=1)
        present = np.concatenate([pooled[..., 0] > 0, alone_scene[picks]], axis=1)
        starts = np.concatenate([starts, np.where(present[:, n_groups:], positions * width, np.inf)], axis=1)
        order = np.argsort(starts, axis=1, kind="stable")
        values = np.take_along_axis(values, order[..., None], axis=1)
        present = np.take_along_axis(present, order, axis=1)
        keys = [f"{a}@{tau}" for tau in taus for a in ("RRA", "RTA")] + [f"mAA@{max_threshold}"]
        return {key: ragged(values[..., i], present, np.mean, empty=np.nan) for i, key in enumerate(keys)}

    return evaluate, n_scenes * max(n_groups, 1) + (n_groups + n_scenes) * size
