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
from .metrics import aachen, mapfree, relpose, rra, submission
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
    # (df, scene codes, number of scenes) -> (evaluate(picks) -> {metric: values}, array width per
    # resample): the summary of many bootstrap resamples at once (benchmark.bootstrap); None: resample
    # by calling summarize on each resampled table
    resampler = None
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
        raise UserError(
            f"The {self.name} benchmark has no submission file format to score; use `python -m benchmark run` instead."
        )


class MapFreeProtocol(Protocol):
    """Map-free: VCRE and metric pose of each query against the reference frame (PROTOCOLS 1)."""

    name = "mapfree"
    headline = [
        mapfree.KEY_PREC_VCRE,
        mapfree.KEY_AUC_VCRE,
        mapfree.KEY_REPROJ,
        mapfree.KEY_PREC_POSE,
        mapfree.KEY_AUC_POSE,
        mapfree.KEY_TRANS,
        mapfree.KEY_ROT,
        mapfree.KEY_ESTIMATES,
    ]
    rank_by = (mapfree.KEY_AUC_VCRE, False)
    lower_is_better = (mapfree.KEY_REPROJ, mapfree.KEY_TRANS, mapfree.KEY_ROT)
    short = {
        mapfree.KEY_PREC_VCRE: "VCRE<90px prec",
        mapfree.KEY_AUC_VCRE: "VCRE AUC",
        mapfree.KEY_REPROJ: "med VCRE px",
        mapfree.KEY_PREC_POSE: "pose<25cm,5deg prec",
        mapfree.KEY_AUC_POSE: "pose AUC",
        mapfree.KEY_TRANS: "med trans m",
        mapfree.KEY_ROT: "med rot deg",
        mapfree.KEY_ESTIMATES: "estimated",
    }
    curves = [
        (mapfree.VCRE, "VCRE", "px", mapfree.VCRE_THRESHOLD),
        (mapfree.TRANS, "translation error", "m", mapfree.T_THRESHOLD),
        (mapfree.ROT, "rotation error", "deg", mapfree.R_THRESHOLD),
    ]
    worst_by = (mapfree.VCRE,)

    resampler = staticmethod(mapfree.resample_mapfree)

    def sample_errors(self, sample, estimate, matches):
        if not estimate.ok or sample.T_0to1 is None:
            return _nan_errors((mapfree.TRANS, mapfree.ROT, mapfree.VCRE))
        T = sample.T_0to1
        return mapfree.frame_errors_w2c(
            T[:3, :3], T[:3, 3], estimate.R, estimate.t, sample.camera1.K, sample.camera1.width, sample.camera1.height
        )

    def summarize(self, df):
        return mapfree.summarize_mapfree(df)

    def write_submission(self, df, dataset, output):
        """``submission.zip`` in the official format: one ``pose_<scene>.txt`` per scene, estimates only."""
        poses: dict[str, list] = {s: [] for s in df["scene"].unique()}
        for r in df[df["status"] == OK].itertuples(index=False):
            frame = r.sample_id.split("/", 1)[1]
            poses[r.scene].append((frame, (r.qw, r.qx, r.qy, r.qz), (r.tx, r.ty, r.tz), r.confidence))
        return [submission.write_submission(output / "submission.zip", poses)]

    def score_submission(self, dataset, path):
        if not Path(path).is_file():
            raise UserError(f"The submission {path} is not a file; pass the path of the submission ZIP.")
        return submission.score_submission(dataset.split_dir, Path(path))


class RelativePoseProtocol(Protocol):
    """ScanNet-1500 style: rotation/translation angular errors, AUC@5/10/20, epipolar precision."""

    name = "relpose"
    headline = ["AUC@5", "AUC@10", "AUC@20", "Prec", "MScore"]
    rank_by = ("AUC@10", False)
    curves = [
        (relpose.POSE_ERR, "pose error max(R, t)", "deg", 10.0),
        (relpose.ERR_R, "rotation error", "deg", 10.0),
        (relpose.ERR_T, "translation angle error", "deg", 10.0),
    ]
    worst_by = (relpose.POSE_ERR,)

    resampler = staticmethod(relpose.resample_relpose)

    def sample_errors(self, sample, estimate, matches):
        out = _nan_errors((relpose.ERR_R, relpose.ERR_T, relpose.POSE_ERR))
        if sample.T_0to1 is None:
            return out
        if estimate.ok:
            out.update(relpose.pair_errors(sample.T_0to1, estimate.R, estimate.t))
        else:
            out[relpose.POSE_ERR] = relpose.FAILURE
        if matches is not None and len(matches):
            errs = relpose.epipolar_errors(
                matches.kpts0, matches.kpts1, sample.T_0to1, sample.camera0.K, sample.camera1.K
            )
            threshold = sample.extra.get("epipolar_threshold", relpose.EPIPOLAR_THRESHOLD)  # MegaDepth: 1e-4
            out[relpose.PRECISION] = relpose.epipolar_precision(errs, threshold)
            out[relpose.MSCORE] = relpose.matching_score(errs, matches.num_keypoints0 or len(errs), threshold)
        else:
            out[relpose.PRECISION] = out[relpose.MSCORE] = (
                0.0  # a pair without matches counts as precision 0 (quirk 15)
            )
        return out

    def summarize(self, df):
        return relpose.summarize_relpose(df)


class MultiViewProtocol(Protocol):
    """CO3D / RealEstate10K pairs (PoseDiffusion): RRA/RTA at thresholds and mAA@30."""

    name = "rra"
    headline = ["RRA@15", "RTA@15", "mAA@30", "RRA@5", "RTA@5"]
    rank_by = ("mAA@30", False)
    curves = [(rra.RRE, "relative rotation error", "deg", 15.0), (rra.RTE, "relative translation error", "deg", 15.0)]
    worst_by = (rra.RRE, rra.RTE)

    resampler = staticmethod(rra.resample_rra)

    def sample_errors(self, sample, estimate, matches):
        # PoseDiffusion pools the pairs of a category's sequences: the summary groups by this column
        category = {"category": str(sample.extra.get("category", sample.scene))}
        if not estimate.ok or sample.T_0to1 is None:
            return {**_nan_errors((rra.RRE, rra.RTE)), **category}
        T = sample.T_0to1
        rre = rra.rotation_angle_deg(T[None, :3, :3], np.asarray(estimate.R)[None])[0]
        rte = rra.translation_angle_deg(T[None, :3, 3], np.asarray(estimate.t).reshape(1, 3))[0]
        return {rra.RRE: float(rre), rra.RTE: float(rte), **category}

    def summarize(self, df):
        return rra.summarize_rra(df)


class AachenProtocol(Protocol):
    """Aachen Day-Night v1.1: position/orientation errors of each query, day and night percentages."""

    name = "aachen"
    headline = [f"{c}/{aachen.accuracy_key(t, r)}" for c in aachen.CONDITIONS for t, r in aachen.THRESHOLDS[1:]]
    rank_by = (headline[0], False)
    curves = [(aachen.TRANS, "position error", "m", 0.5), (aachen.ROT, "orientation error", "deg", 5.0)]
    worst_by = (aachen.TRANS,)

    resampler = staticmethod(aachen.resample_aachen)

    def sample_errors(self, sample, estimate, matches):
        if sample.T_w2c is None:
            return {}
        T = sample.T_w2c
        t_err, r_err = aachen.pose_error_w2c(T[:3, :3], T[:3, 3], estimate.R if estimate.ok else None, estimate.t)
        return {aachen.TRANS: t_err, aachen.ROT: r_err}

    def summarize(self, df):
        if aachen.TRANS not in df.columns:  # no ground truth (the official Aachen queries): only coverage
            return {"localized %": float(100 * np.mean(df["status"] == OK)) if len(df) else float("nan")}
        return aachen.summarize_aachen(df)

    def write_submission(self, df, dataset, output):
        """``submission.txt`` for visuallocalization.net (basenames; failed queries as identity)."""
        from .geometry import quat_to_rotmat

        poses = {}
        for r in df.itertuples(index=False):
            ok = r.status == OK
            poses[r.sample_id] = (quat_to_rotmat((r.qw, r.qx, r.qy, r.qz)), (r.tx, r.ty, r.tz)) if ok else None
        return [aachen.write_submission(output / "submission.txt", poses)]


PROTOCOLS = {p.name: p for p in (MapFreeProtocol(), RelativePoseProtocol(), MultiViewProtocol(), AachenProtocol())}
GROUP = "locbench.protocols"


def _plugin(name: str, ep) -> Protocol:
    """A protocol from a package's ``locbench.protocols`` entry point (a Protocol subclass or instance)."""
    obj = load_plugin("protocol", GROUP, ep)
    protocol = obj() if isinstance(obj, type) and issubclass(obj, Protocol) else obj
    if not isinstance(protocol, Protocol):
        raise UserError(
            f"The protocol plugin '{name}' ({ep.value}) must name a benchmark.protocols.Protocol "
            f"subclass or instance, not a {type(obj).__name__}."
        )
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
