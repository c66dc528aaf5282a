"""Aachen Day-Night (absolute localization): per-query errors, the DUSt3R/MASt3R visloc summary and
the submission file of the visuallocalization.net server (PROTOCOLS.md 3.2, quirks 20-21).

Errors: distance between camera centres (m) and geodesic angle between the rotations (deg);
a query that was not localized gets inf. Summary: median errors and the percentage of queries
with ``err_t < T and err_R < A`` (strict) at (0.1 m, 1), (0.25 m, 2), (0.5 m, 5), (5 m, 10), all
queries in the denominator, overall and per condition (day/night, read from the query path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from benchmark.bootstrap import scene_counts
from benchmark.errors import UserError
from benchmark.geometry import camera_center, rotmat_to_quat
from benchmark.io import write_text_atomic
from benchmark.types import OK

THRESHOLDS = ((0.1, 1), (0.25, 2), (0.5, 5), (5, 10))  # (metres, degrees)
CONDITIONS = ("day", "night")
TRANS, ROT = "trans_err_m", "rot_err_deg"  # our per-query column names
_ONE_OVER_2SQRT2 = 1.0 / (2 * np.sqrt(2))


def accuracy_key(trans_thr: float, rot_thr: float) -> str:
    return f"acc@{trans_thr:g}m,{rot_thr}deg"


def rotation_geodesic_deg(R1, R2) -> float:
    """Angle between two rotations (deg) from ``|R2 - R1|_F = 2 sqrt(2) sin(angle / 2)`` (roma's
    form, accurate for small angles)."""
    d = np.linalg.norm(np.asarray(R2, np.float64) - np.asarray(R1, np.float64)) * _ONE_OVER_2SQRT2
    return float(2.0 * np.arcsin(min(d, 1.0)) * 180 / np.pi)


def pose_error_c2w(pred_cam_to_world, gt_cam_to_world) -> tuple[float, float]:
    """``(trans_err_m, rot_err_deg)`` from 4x4 camera-to-world poses (the official inputs);
    ``(inf, inf)`` when the prediction is missing or not finite."""
    if pred_cam_to_world is None or not np.all(np.isfinite(pred_cam_to_world)):
        return float("inf"), float("inf")
    pred, gt = np.asarray(pred_cam_to_world, np.float64), np.asarray(gt_cam_to_world, np.float64)
    return float(np.linalg.norm(pred[:3, 3] - gt[:3, 3])), rotation_geodesic_deg(pred[:3, :3], gt[:3, :3])


def pose_error_w2c(R_gt, t_gt, R_est, t_est) -> tuple[float, float]:
    """The same errors from world-to-camera ``(R, t)`` (our convention); R_est None = not localized."""
    if R_est is None or t_est is None or not (np.all(np.isfinite(R_est)) and np.all(np.isfinite(t_est))):
        return float("inf"), float("inf")
    shift = np.linalg.norm(camera_center(R_est, t_est) - camera_center(R_gt, t_gt))
    return float(shift), rotation_geodesic_deg(np.asarray(R_est).T, np.asarray(R_gt).T)


def query_condition(name: str) -> str | None:
    """``day`` or ``night`` from a query path such as ``query/night/nexus5x/IMG_x.jpg`` (None if neither)."""
    parts = str(name).replace("\\", "/").split("/")
    return next((c for c in reversed(CONDITIONS) if c in parts), None)


def accuracy_stats(trans_err, rot_err) -> dict:
    """``images``, ``median_pos_error``, ``median_angular_error`` and ``acc@...`` percentages.
    Missing errors (NaN) count as not localized."""
    t = np.nan_to_num(np.asarray(trans_err, np.float64), nan=np.inf)
    r = np.nan_to_num(np.asarray(rot_err, np.float64), nan=np.inf)
    out = {
        "images": int(len(t)),
        "median_pos_error": float(np.median(t)) if len(t) else float("nan"),
        "median_angular_error": float(np.median(r)) if len(r) else float("nan"),
    }
    for tt, rt in THRESHOLDS:
        out[accuracy_key(tt, rt)] = float(100 * np.sum((t < tt) & (r < rt)) / len(t)) if len(t) else float("nan")
    return out


def format_stats(label: str, trans_err, rot_err) -> str:
    """The one-line summary printed by DUSt3R/MASt3R's visloc (``aggregate_stats``), same text."""
    s = accuracy_stats(trans_err, rot_err)
    text = (
        f"{label}: {s['images']} images - median_pos_error={np.float64(s['median_pos_error'])!r}, "
        f"median_angular_error={np.float64(s['median_angular_error'])!r}"
    )
    for tt, rt in THRESHOLDS:
        key = accuracy_key(tt, rt)
        text += f"  - {key:12s}={s[key]:.3f}"
    return text


def summarize_aachen(df: pd.DataFrame, name_column: str = "sample_id") -> dict:
    """Overall stats (keys as :func:`accuracy_stats`) plus the same per condition, prefixed
    ``day/`` and ``night/``. Columns ``trans_err_m``, ``rot_err_deg`` (NaN = not localized) and
    the query name (``sample_id`` by default; the condition is read from it)."""
    missing = [c for c in (TRANS, ROT, name_column) if c not in df.columns]
    if missing:
        raise UserError(f"The Aachen results table lacks the column(s) {', '.join(missing)}.")
    out = accuracy_stats(df[TRANS], df[ROT])
    conditions = df[name_column].map(query_condition)
    for cond in CONDITIONS:
        rows = df[conditions == cond]
        if len(rows):
            out.update({f"{cond}/{k}": v for k, v in accuracy_stats(rows[TRANS], rows[ROT]).items()})
    return out


def _as_quat(q_or_R) -> np.ndarray:
    return rotmat_to_quat(q_or_R) if np.shape(q_or_R) == (3, 3) else np.asarray(q_or_R, np.float64).reshape(4)


def write_submission(
    path: Path,
    poses: Mapping[str, tuple | None],
    fallback: Mapping[str, tuple] | None = None,
    prepend_camera_name: bool = False,
) -> Path:
    """Write ``name qw qx qy qz tx ty tz`` lines (world-to-camera; values as ``str(float)``), atomically.

    ``poses`` maps each query's path (``query/day/nexus4/IMG_x.jpg``) to ``(q_wxyz or 3x3 R, t)``,
    or None when it was not localized; such a query is written with ``fallback[name]`` when given
    (hloc writes the pose of its top retrieved image) and the identity otherwise (DUSt3R/MASt3R).
    Names are written as basenames (``camera/basename`` with ``prepend_camera_name``)."""
    lines, seen = [], {}
    for query, pose in poses.items():
        if pose is None or not all(np.all(np.isfinite(np.asarray(p, np.float64))) for p in pose):
            pose = fallback[query] if fallback and query in fallback else (np.array([1.0, 0, 0, 0]), np.zeros(3))
        q, t = _as_quat(pose[0]), np.asarray(pose[1], np.float64).reshape(3)
        parts = str(query).replace("\\", "/").split("/")
        name = "/".join(parts[-2:]) if prepend_camera_name else parts[-1]
        if name in seen:  # quirk 21: the server matches basenames only
            raise UserError(
                f"Aachen submission: queries {seen[name]} and {query} share the name {name}; "
                f"pass prepend_camera_name=True."
            )
        seen[name] = query
        lines.append(" ".join([name, *(str(float(v)) for v in q), *(str(float(v)) for v in t)]) + "\n")
    write_text_atomic(path, "".join(lines))
    return Path(path)


def read_submission(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (q_wxyz, t)}`` of a submission file (whitespace-separated, 8 fields per line)."""
    out = {}
    path = Path(path)
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 8:
                raise ValueError
            values = np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise UserError(f"{path} line {lineno}: expected 'name qw qx qy qz tx ty tz'; fix the line.") from None
        out[parts[0]] = (values[:4], values[4:])
    return out


def resample_aachen(df: pd.DataFrame, codes: np.ndarray, n_scenes: int, name_column: str = "sample_id"):
    """Bootstrap evaluator of the Aachen protocol's summary (:func:`summarize_aachen`, or the share of
    localized queries without ground truth; see ``benchmark.bootstrap``): counts per scene, medians
    from the sorted errors weighted by how often each scene is drawn."""
    if TRANS not in df.columns:
        localized = np.bincount(codes[(df["status"] == OK).to_numpy()], minlength=n_scenes)
        queries = np.bincount(codes, minlength=n_scenes)

        def evaluate_coverage(picks):
            counts = scene_counts(picks, n_scenes)
            return {"localized %": 100 * ((counts @ localized) / (counts @ queries))}

        return evaluate_coverage, n_scenes
    t = np.nan_to_num(df[TRANS].to_numpy(np.float64), nan=np.inf)
    r = np.nan_to_num(df[ROT].to_numpy(np.float64), nan=np.inf)
    conditions = df[name_column].map(query_condition).to_numpy()
    subsets = [("", np.ones(len(df), dtype=bool))] + [(f"{c}/", conditions == c) for c in CONDITIONS]

    def median(errors, rows, counts, n):
        order = np.argsort(errors[rows], kind="stable")
        ranked = np.cumsum(counts[:, codes[rows][order]], axis=1)  # rows at or below each sorted error
        low = errors[rows][order][np.argmax(ranked > ((n - 1) // 2)[:, None], axis=1)]
        high = errors[rows][order][np.argmax(ranked > (n // 2)[:, None], axis=1)]
        return np.where(n % 2 == 1, low, (low + high) / 2)

    def evaluate(picks):
        counts, out = scene_counts(picks, n_scenes), {}
        for prefix, rows in subsets:
            n = counts @ np.bincount(codes[rows], minlength=n_scenes)
            if not np.any(n):
                continue
            seen = n > 0
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf + inf in medians
                stats = {
                    "images": n,
                    "median_pos_error": median(t, rows, counts, n.astype(np.int64)),
                    "median_angular_error": median(r, rows, counts, n.astype(np.int64)),
                }
                for tt, rt in THRESHOLDS:
                    hits = counts @ np.bincount(codes[rows & (t < tt) & (r < rt)], minlength=n_scenes)
                    stats[accuracy_key(tt, rt)] = 100 * hits / n
            out.update({prefix + k: np.where(seen, v, np.nan) for k, v in stats.items()})
        return out

    return evaluate, 2 * len(df)
