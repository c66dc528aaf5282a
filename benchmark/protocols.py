"""Each benchmark's protocol: per-sample error columns, the summary, headline columns, plots and
submission files. The metric functions themselves live in ``benchmark.metrics``; a protocol only
connects them to samples, estimates and the per-sample table. A package adds a protocol (a new
benchmark) through the entry-point group ``locbench.protocols``: name = the protocol name its datasets
give, value = a ``Protocol`` subclass or instance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .metrics import aachen as A
from .metrics import mapfree as M
from .metrics import relpose as P
from .metrics import rra as RR
from .metrics import submission as S
from .registry import load_plugin, plugin_entry_points
from .types import OK, Estimate, Matches


def _nan_errors(columns) -> dict:
    return {c: float("nan") for c in columns}


class Protocol:
    name = ""
    headline: list[str] = []
    rank_by: tuple[str, bool] = ("", False)  # (column, ascending)
    lower_is_better: tuple[str, ...] = ()  # headline columns where smaller is better (medians of errors)
    curves: list[tuple] = []  # (column, label, unit, threshold) for the cumulative error plot
    short: dict[str, str] = {}  # compact column titles for printed tables
    worst_by: tuple[str, ...] = ()  # per-sample error columns whose maximum ranks the worst samples

    def label(self, key: str) -> str:
        return self.short.get(key, key)

    def sample_errors(self, sample, estimate: Estimate, matches: Matches | None) -> dict:
        raise NotImplementedError

    def summarize(self, df: pd.DataFrame) -> dict:
        raise NotImplementedError

    def write_submission(self, df: pd.DataFrame, dataset, output: Path) -> list[Path]:
        return []

    def score_submission(self, dataset, path: Path) -> dict:
        raise UserError(f"The {self.name} benchmark has no submission file format to score; "
                        f"use `python -m benchmark run` instead.")


class MapFreeProtocol(Protocol):
    """Map-free: VCRE and metric pose of each query against the reference frame (PROTOCOLS 1)."""

    name = "mapfree"
    headline = [M.KEY_PREC_VCRE, M.KEY_AUC_VCRE, M.KEY_REPROJ, M.KEY_PREC_POSE, M.KEY_AUC_POSE, M.KEY_TRANS,
                M.KEY_ROT, M.KEY_ESTIMATES]
    rank_by = (M.KEY_AUC_VCRE, False)
    lower_is_better = (M.KEY_REPROJ, M.KEY_TRANS, M.KEY_ROT)
    short = {M.KEY_PREC_VCRE: "VCRE<90px prec", M.KEY_AUC_VCRE: "VCRE AUC", M.KEY_REPROJ: "med VCRE px",
             M.KEY_PREC_POSE: "pose<25cm,5deg prec", M.KEY_AUC_POSE: "pose AUC", M.KEY_TRANS: "med trans m",
             M.KEY_ROT: "med rot deg", M.KEY_ESTIMATES: "estimated"}
    curves = [(M.VCRE, "VCRE", "px", M.VCRE_THRESHOLD), (M.TRANS, "translation error", "m", M.T_THRESHOLD),
              (M.ROT, "rotation error", "deg", M.R_THRESHOLD)]
    worst_by = (M.VCRE,)

    def sample_errors(self, sample, estimate, matches):
        if not estimate.ok or sample.T_0to1 is None:
            return _nan_errors((M.TRANS, M.ROT, M.VCRE))
        T = sample.T_0to1
        return M.frame_errors_w2c(T[:3, :3], T[:3, 3], estimate.R, estimate.t, sample.camera1.K,
                                  sample.camera1.width, sample.camera1.height)

    def summarize(self, df):
        return M.summarize_mapfree(df)

    def write_submission(self, df, dataset, output):
        """``submission.zip`` in the official format: one ``pose_<scene>.txt`` per scene, estimates only."""
        poses: dict[str, list] = {s: [] for s in df["scene"].unique()}
        for r in df[df["status"] == OK].itertuples(index=False):
            frame = r.sample_id.split("/", 1)[1]
            poses[r.scene].append((frame, (r.qw, r.qx, r.qy, r.qz), (r.tx, r.ty, r.tz), r.confidence))
        return [S.write_submission(output / "submission.zip", poses)]

    def score_submission(self, dataset, path):
        if not Path(path).is_file():
            raise UserError(f"The submission {path} is not a file; pass the path of the submission ZIP.")
        return S.score_submission(dataset.split_dir, Path(path))


class RelativePoseProtocol(Protocol):
    """ScanNet-1500 style: rotation/translation angular errors, AUC@5/10/20, epipolar precision."""

    name = "relpose"
    headline = ["AUC@5", "AUC@10", "AUC@20", "Prec", "MScore"]
    rank_by = ("AUC@10", False)
    curves = [(P.POSE_ERR, "pose error max(R, t)", "deg", 10.0), (P.ERR_R, "rotation error", "deg", 10.0),
              (P.ERR_T, "translation angle error", "deg", 10.0)]
    worst_by = (P.POSE_ERR,)

    def sample_errors(self, sample, estimate, matches):
        out = _nan_errors((P.ERR_R, P.ERR_T, P.POSE_ERR))
        if sample.T_0to1 is None:
            return out
        if estimate.ok:
            out.update(P.pair_errors(sample.T_0to1, estimate.R, estimate.t))
        else:
            out[P.POSE_ERR] = P.FAILURE
        if matches is not None and len(matches):
            errs = P.epipolar_errors(matches.kpts0, matches.kpts1, sample.T_0to1, sample.camera0.K, sample.camera1.K)
            threshold = sample.extra.get("epipolar_threshold", P.EPIPOLAR_THRESHOLD)  # MegaDepth: 1e-4
            out[P.PRECISION] = P.epipolar_precision(errs, threshold)
            out[P.MSCORE] = P.matching_score(errs, matches.num_keypoints0 or len(errs), threshold)
        else:
            out[P.PRECISION] = out[P.MSCORE] = 0.0  # a pair without matches counts as precision 0 (quirk 15)
        return out

    def summarize(self, df):
        return P.summarize_relpose(df)


class MultiViewProtocol(Protocol):
    """CO3D / RealEstate10K pairs (PoseDiffusion): RRA/RTA at thresholds and mAA@30."""

    name = "rra"
    headline = ["RRA@15", "RTA@15", "mAA@30", "RRA@5", "RTA@5"]
    rank_by = ("mAA@30", False)
    curves = [(RR.RRE, "relative rotation error", "deg", 15.0), (RR.RTE, "relative translation error", "deg", 15.0)]
    worst_by = (RR.RRE, RR.RTE)

    def sample_errors(self, sample, estimate, matches):
        # PoseDiffusion pools the pairs of a category's sequences: the summary groups by this column
        category = {"category": str(sample.extra.get("category", sample.scene))}
        if not estimate.ok or sample.T_0to1 is None:
            return {**_nan_errors((RR.RRE, RR.RTE)), **category}
        T = sample.T_0to1
        rre = RR.rotation_angle_deg(T[None, :3, :3], np.asarray(estimate.R)[None])[0]
        rte = RR.translation_angle_deg(T[None, :3, 3], np.asarray(estimate.t).reshape(1, 3))[0]
        return {RR.RRE: float(rre), RR.RTE: float(rte), **category}

    def summarize(self, df):
        return RR.summarize_rra(df)


class AachenProtocol(Protocol):
    """Aachen Day-Night v1.1: position/orientation errors of each query, day and night percentages."""

    name = "aachen"
    headline = [f"{c}/{A.accuracy_key(t, r)}" for c in A.CONDITIONS for t, r in A.THRESHOLDS[1:]]
    rank_by = (headline[0], False)
    curves = [(A.TRANS, "position error", "m", 0.5), (A.ROT, "orientation error", "deg", 5.0)]
    worst_by = (A.TRANS,)

    def sample_errors(self, sample, estimate, matches):
        if sample.T_w2c is None:
            return {}
        T = sample.T_w2c
        t_err, r_err = A.pose_error_w2c(T[:3, :3], T[:3, 3], estimate.R if estimate.ok else None, estimate.t)
        return {A.TRANS: t_err, A.ROT: r_err}

    def summarize(self, df):
        if A.TRANS not in df.columns:  # no ground truth (the official Aachen queries): only coverage
            return {"localized %": float(100 * np.mean(df["status"] == OK)) if len(df) else float("nan")}
        return A.summarize_aachen(df)

    def write_submission(self, df, dataset, output):
        """``submission.txt`` for visuallocalization.net (basenames; failed queries as identity)."""
        from .geometry import quat_to_rotmat

        poses = {}
        for r in df.itertuples(index=False):
            ok = r.status == OK
            poses[r.sample_id] = (quat_to_rotmat((r.qw, r.qx, r.qy, r.qz)), (r.tx, r.ty, r.tz)) if ok else None
        return [A.write_submission(output / "submission.txt", poses)]


PROTOCOLS = {p.name: p for p in (MapFreeProtocol(), RelativePoseProtocol(), MultiViewProtocol(), AachenProtocol())}
GROUP = "locbench.protocols"


def _plugin(name: str, ep) -> Protocol:
    """A protocol from a package's ``locbench.protocols`` entry point (a Protocol subclass or instance)."""
    obj = load_plugin("protocol", GROUP, ep)
    protocol = obj() if isinstance(obj, type) and issubclass(obj, Protocol) else obj
    if not isinstance(protocol, Protocol):
        raise UserError(f"The protocol plugin '{name}' ({ep.value}) must name a benchmark.protocols.Protocol "
                        f"subclass or instance, not a {type(obj).__name__}.")
    protocol.name = name
    return protocol


def protocols() -> dict[str, tuple[Protocol, str]]:
    """Every protocol, built-in and plugin, with its origin."""
    out = {name: (p, "built-in") for name, p in PROTOCOLS.items()}
    for name, ep in plugin_entry_points(GROUP).items():
        if name not in out:
            out[name] = (_plugin(name, ep), f"plugin ({ep.value})")
    return out


def get_protocol(name: str) -> Protocol:
    """A built-in protocol, else one a package adds through the ``locbench.protocols`` entry points
    (the dataset names it in its ``protocol`` attribute)."""
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    ep = plugin_entry_points(GROUP).get(name)
    if ep is None:
        raise UserError(f"Unknown protocol '{name}'; known: {', '.join(protocols())}.")
    return _plugin(name, ep)
