"""``python -m benchmark compare RUN_A RUN_B``: what differs between two runs and whether it matters.

* the config keys (dotted) whose values differ;
* the headline metrics of both, B - A, and a paired bootstrap 95 % interval of B - A: whole scenes
  are resampled with replacement (seeded) and the same draw is applied to both runs, so a scene's
  difficulty cancels out (too few scenes make a rough interval, and the output says so);
* per-scene differences; the samples that changed status or crossed a threshold either way.

Runs over different evaluation sets (protocol, dataset, dataset files or samples) are refused unless
``--force``. Outputs: a compact printed table, ``compare.md``, ``compare.html``, ``compare.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import draw_scenes, resample_draws
from .config import apply_overrides
from .errors import UserError
from .types import OK

DEFAULTS = {"compare": {"bootstrap": 1000, "seed": 0, "max_listed": 50}}
FEW_SCENES = 10  # below this many shared scenes, a resampled interval is rough
SCENE_COLUMNS = 3  # headline metrics shown per scene


@dataclass
class Run:
    name: str  # the folder's name
    path: Path
    summary: dict
    cfg: dict
    samples: pd.DataFrame


def load_run(path: Path) -> Run:
    from .report import read_summary
    from .show import open_run

    folder = open_run(Path(path))
    if not (folder.path / "summary.json").is_file():
        raise UserError(
            f"{path} is not a finished run folder (no summary.json); pass a folder written by "
            f"`python -m benchmark run`."
        )
    summary = read_summary(folder.path / "summary.json")
    return Run(folder.path.resolve().name, folder.path, summary, folder.cfg, folder.samples)


def flatten(cfg, prefix: str = "") -> dict:
    """{dotted key: value} of a nested config."""
    if not isinstance(cfg, dict):
        return {prefix: cfg}
    out = {}
    for k, v in cfg.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def config_diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(dotted key, value in A, value in B) for every key that differs; '(absent)' where a run lacks it.
    Output paths and labels are left out: they differ between any two runs."""
    fa, fb = flatten(a), flatten(b)
    skip = {"run.output", "method.label", "dataset.label"}
    return [
        (k, fa.get(k, "(absent)"), fb.get(k, "(absent)"))
        for k in sorted(set(fa) | set(fb))
        if k not in skip and fa.get(k, "(absent)") != fb.get(k, "(absent)")
    ]


def evaluation_set_problems(a: Run, b: Run) -> list[str]:
    """Why A and B are not over the same evaluation set (empty when they are)."""
    sa, sb = a.summary, b.summary
    out = []
    if (sa["protocol"], str(sa["protocol_version"])) != (sb["protocol"], str(sb["protocol_version"])):
        out.append(
            f"protocols differ ({sa['protocol']} v{sa['protocol_version']} against {sb['protocol']} "
            f"v{sb['protocol_version']})"
        )
    if sa["dataset"] != sb["dataset"]:
        out.append(f"datasets differ ({sa['dataset']} against {sb['dataset']})")
    ha = sa.get("provenance", {}).get("dataset_manifest_hash")
    hb = sb.get("provenance", {}).get("dataset_manifest_hash")
    if ha and hb and ha != hb:
        out.append(f"the dataset files or the dataset config differ (manifest hashes {str(ha)[:8]} and {str(hb)[:8]})")
    ids_a, ids_b = set(a.samples["sample_id"]), set(b.samples["sample_id"])
    if ids_a != ids_b:
        out.append(
            f"the samples differ ({len(ids_a - ids_b)} only in A, {len(ids_b - ids_a)} only in B, "
            f"{len(ids_a & ids_b)} shared)"
        )
    return out


def paired_intervals(a: pd.DataFrame, b: pd.DataFrame, protocol, n: int, seed: int, level: float = 0.95) -> dict:
    """{metric: [lo, hi]}: percentile intervals of B - A over ``n`` resamples of whole scenes, each
    resample's scenes drawn once and used for both runs (only the scenes both runs have)."""
    shared = set(b["scene"])
    scenes = [s for s in pd.unique(a["scene"]) if s in shared]
    if n <= 0 or len(scenes) < 2:
        return {}
    picks = draw_scenes(len(scenes), n, seed)
    da, db = (resample_draws(df, protocol, scenes, picks) for df in (a, b))
    out = {}
    for key in da:
        if key in db:
            d = db[key] - da[key]
            d = d[np.isfinite(d)]
            if len(d) >= n // 2:
                out[key] = [float(np.percentile(d, (1 - level) * 50)), float(np.percentile(d, (1 + level) * 50))]
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _below(values: pd.Series, threshold: float) -> pd.Series:
    return values.astype(float).lt(threshold)  # NaN (a failure) is never below


def changed_samples(a: pd.DataFrame, b: pd.DataFrame, protocol) -> pd.DataFrame:
    """Samples whose status changed, or whose error crossed one of the protocol's thresholds."""
    curves = [(c, label, unit, t) for c, label, unit, t in protocol.curves if t is not None]
    cols = ["sample_id", "scene", "status", *[c for c, *_ in curves]]
    j = a.reindex(columns=cols).merge(b.reindex(columns=cols), on=["sample_id", "scene"], suffixes=("_a", "_b"))
    rows = []
    for r in j.to_dict("records"):
        notes, better, worse = [], 0, 0
        if r["status_a"] != r["status_b"]:
            notes.append(f"status {r['status_a']} -> {r['status_b']}")
            better, worse = int(r["status_b"] == OK), int(r["status_a"] == OK)
        for col, label, unit, thr in curves:
            ea, eb = r[f"{col}_a"], r[f"{col}_b"]
            was, now = bool(_below(pd.Series([ea]), thr)[0]), bool(_below(pd.Series([eb]), thr)[0])
            if was != now:
                notes.append(
                    f"{label} {_num(ea)} -> {_num(eb)} {unit} ({'now' if now else 'no longer'} below {thr:g} {unit})"
                )
                better, worse = better or now, worse or was
        if notes:
            change = "better" if better and not worse else ("worse" if worse and not better else "mixed")
            rows.append({"sample_id": r["sample_id"], "scene": r["scene"], "change": change, "what": "; ".join(notes)})
    return pd.DataFrame(rows, columns=["sample_id", "scene", "change", "what"])


def _num(v) -> str:
    from .report import format_value

    return "failed" if v is None or not np.isfinite(float(v)) else format_value(float(v))


@dataclass
class Comparison:
    a: Run
    b: Run
    problems: list
    diff: list
    metrics: pd.DataFrame  # metric, A, B, B-A, lo, hi
    scenes: pd.DataFrame
    changed: pd.DataFrame
    shared_scenes: int
    settings: dict

    def interval_note(self) -> str:
        n, s = self.shared_scenes, self.settings
        if not s["bootstrap"]:
            return "no intervals: compare.bootstrap is 0"
        if n < 2:
            return f"no intervals: the runs share {n} scene(s); resampling scenes needs at least 2"
        note = (
            f"95 % intervals of B - A: paired bootstrap over {n} shared scenes ({s['bootstrap']} resamples, "
            f"seed {s['seed']})"
        )
        if n < FEW_SCENES:
            note += f"; with only {n} scenes the interval is rough (few distinct resamples): read it with care"
        return note


def compare(path_a: Path, path_b: Path, overrides: list[str] = (), force: bool = False) -> Comparison:
    from .protocols import get_protocol

    settings = apply_overrides(DEFAULTS, list(overrides))["compare"]
    for key in ("bootstrap", "seed", "max_listed"):
        if not isinstance(settings[key], int) or settings[key] < 0:
            raise UserError(f"compare.{key} must be a non-negative whole number, not '{settings[key]}'.")
    a, b = load_run(path_a), load_run(path_b)
    problems = evaluation_set_problems(a, b)
    if problems and not force:
        raise UserError(
            f"{a.path} and {b.path} are not over the same evaluation set: {'; '.join(problems)}; "
            f"compare runs of the same data, or pass --force to compare them anyway."
        )
    if a.summary["protocol"] != b.summary["protocol"]:
        raise UserError(
            f"{a.path} ({a.summary['protocol']}) and {b.path} ({b.summary['protocol']}) are scored "
            f"by different metrics; there is nothing to compare, even with --force."
        )
    protocol = get_protocol(a.summary["protocol"])
    ci = paired_intervals(a.samples, b.samples, protocol, settings["bootstrap"], settings["seed"])
    rows = []
    for key in a.summary["headline"]:
        va, vb = a.summary["overall"].get(key), b.summary["overall"].get(key)
        d = vb - va if _is_number(va) and _is_number(vb) else None
        lo, hi = ci.get(key, (None, None))
        rows.append({"metric": key, "A": va, "B": vb, "B-A": d, "lo": lo, "hi": hi})
    shown = a.summary["headline"][:SCENE_COLUMNS]
    scene_rows = []
    for scene in [s for s in a.summary["per_scene"] if s in b.summary["per_scene"]]:
        ma, mb = a.summary["per_scene"][scene], b.summary["per_scene"][scene]
        row = {"scene": scene}
        for key in shown:
            va, vb = ma.get(key), mb.get(key)
            row[f"A {protocol.label(key)}"], row[f"B {protocol.label(key)}"] = va, vb
            row[f"B-A {protocol.label(key)}"] = vb - va if _is_number(va) and _is_number(vb) else None
        scene_rows.append(row)
    shared = len(set(a.samples["scene"]) & set(b.samples["scene"]))
    return Comparison(
        a,
        b,
        problems,
        config_diff(a.cfg, b.cfg),
        pd.DataFrame(rows),
        pd.DataFrame(scene_rows),
        changed_samples(a.samples, b.samples, protocol),
        shared,
        settings,
    )
