"""Results of a run on disk, and the summary table printed at the end.

``<output>/``: ``samples.parquet`` + ``samples.csv`` (one row per sample), ``summary.json``
(overall, per scene, status counts, bootstrap intervals; a ``threshold_sweep`` block when
``solver.ransac.max_error`` lists several thresholds), ``summary.csv``, ``plots/*.png``,
``config.yaml`` (the resolved config), ``provenance.json`` and the benchmark's submission file
when it has one.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import plot_task
from .bootstrap import bootstrap
from .io import atomic_path, write_text_atomic
from .solvers import SWEEP_KEY, sweep_prefix, sweep_thresholds
from .types import STATUSES


def json_safe(value):
    """Standard JSON: NaN and +-inf become null (parquet and CSV keep the values); numpy scalars plain."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _metric_values(summary: dict) -> dict:
    """A metric that was null in the file (NaN or inf when written) reads back as NaN, so tables and
    sorting treat it as a number that is missing; older files wrote "nan" / "inf" strings."""

    def number(v):
        if v is None:
            return math.nan
        return float(v) if v in ("nan", "inf", "-inf") else v

    for key in ("overall", "per_scene"):
        part = summary.get(key)
        if isinstance(part, dict):
            summary[key] = {
                k: ({m: number(x) for m, x in v.items()} if isinstance(v, dict) else number(v)) for k, v in part.items()
            }
    return summary


def read_summary(path: Path) -> dict:
    return _metric_values(json.loads(Path(path).read_text()))


def failure_reasons(df: pd.DataFrame, top: int | None = None) -> list[dict]:
    """Failed samples grouped by status and reason (numbers in reasons folded, so 'only 3 matches' and
    'only 4 matches' count together), most frequent first; each with its count and a first example."""
    failed = df[df["status"] != "ok"]
    groups: dict[tuple, dict] = {}
    for status, reason in zip(failed["status"], failed["reason"].fillna("")):
        key = (status, re.sub(r"\d+(\.\d+)?", "N", str(reason)))
        entry = groups.setdefault(key, {"status": status, "reason": str(reason), "count": 0})
        entry["count"] += 1
    ranked = sorted(groups.values(), key=lambda e: -e["count"])
    return ranked[:top] if top else ranked


def threshold_view(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The per-sample table as a run at one threshold of a sweep would have written it."""
    prefix = sweep_prefix(threshold)
    return df.assign(**{c[len(prefix) :]: df[c] for c in df.columns if c.startswith(prefix)})


def threshold_sweep(df: pd.DataFrame, protocol, thresholds: list[float]) -> dict:
    """Each threshold's overall metrics, and per headline metric the threshold that scored best.

    Picking the best threshold on the evaluation data itself is an oracle choice: such a number is not
    comparable to a run with one fixed threshold (the leaderboard keeps it apart)."""
    per = []
    for t in thresholds:
        view = threshold_view(df, t)
        per.append(
            {
                "threshold": t,
                "overall": protocol.summarize(view),
                "status_counts": {s: int((view["status"] == s).sum()) for s in STATUSES},
            }
        )
    best = {}
    for key in protocol.headline:
        scored = [
            (p["overall"][key], p["threshold"])
            for p in per
            if isinstance(p["overall"].get(key), (int, float)) and np.isfinite(p["overall"][key])
        ]
        if scored:  # ties go to the threshold listed first
            pick = (min if key in protocol.lower_is_better else max)(scored, key=lambda vt: vt[0])
            best[key] = {"threshold": pick[1], "value": float(pick[0])}
    return {
        "key": SWEEP_KEY,
        "unit": "px",
        "thresholds": thresholds,
        "submission_threshold": thresholds[0],
        "per_threshold": per,
        "oracle_best": best,
        "note": "oracle_best picks each metric's best threshold on these samples (an oracle choice); "
        "'overall' and the submission file use the first threshold",
    }


def per_scene_summaries(df: pd.DataFrame, protocol) -> dict:
    return {str(s): protocol.summarize(g) for s, g in df.groupby("scene", sort=False)}


def summarize_run(
    df: pd.DataFrame, protocol, cfg: dict, run_id: str, provenance: dict, per_scene: dict | None = None
) -> dict:
    counts = {s: int((df["status"] == s).sum()) for s in STATUSES}
    per_scene = per_scene_summaries(df, protocol) if per_scene is None else per_scene
    thresholds = sweep_thresholds(cfg["solver"])
    sweep = {"threshold_sweep": threshold_sweep(df, protocol, thresholds)} if thresholds else {}
    return {
        "run_id": run_id,
        "method": cfg["method"]["label"],
        "dataset": cfg["dataset"]["label"],
        "protocol": protocol.name,
        "protocol_version": provenance["protocol_version"],
        "headline": protocol.headline,
        "num_samples": int(len(df)),
        "status_counts": counts,
        "failure_reasons": failure_reasons(df, 20),
        "overall": protocol.summarize(df),
        "per_scene": per_scene,
        "ci95": bootstrap(df, protocol, cfg["run"]["bootstrap"], cfg["run"]["seed"]),
        "mean_time_match_s": float(np.nanmean(df["time_match_s"])) if df["time_match_s"].notna().any() else None,
        # per stage of the method (e.g. MASt3R's forward and reciprocal matching), seconds per sample
        "mean_stage_time_s": {
            c[len("time_") : -len("_s")]: float(np.nanmean(df[c]))
            for c in df.columns
            if c.startswith("time_") and c not in ("time_match_s", "time_solve_s") and df[c].notna().any()
        },
        **sweep,
        "provenance": provenance,
    }


def write_results(output: Path, df: pd.DataFrame, summary: dict, cfg: dict) -> list[Path]:
    """The tables, summary, config and provenance (the plots: :func:`draw_plots`)."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    df = df.drop(columns=["shard"], errors="ignore")
    with atomic_path(output / "samples.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(output / "samples.csv") as tmp:
        df.to_csv(tmp, index=False)
    write_text_atomic(output / "summary.json", json.dumps(json_safe(summary), indent=1, allow_nan=False))
    rows = [{"scene": "ALL", **summary["overall"]}] + [{"scene": s, **m} for s, m in summary["per_scene"].items()]
    with atomic_path(output / "summary.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    write_text_atomic(output / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_text_atomic(
        output / "provenance.json", json.dumps(json_safe(summary["provenance"]), indent=1, allow_nan=False)
    )
    written += [
        output / n
        for n in ("samples.parquet", "samples.csv", "summary.json", "summary.csv", "config.yaml", "provenance.json")
    ]
    return written


def start_plotter():
    """A process that imports matplotlib now, while the run works, and draws the plots at its end (beside
    the tables being written); None where no process can be started (the plots are drawn here then)."""
    import concurrent.futures as cf
    import multiprocessing

    try:
        pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=plot_task.warm_up)
        pool.submit(int)  # start the process now, not at the first plot
    except (OSError, RuntimeError):
        return None
    return pool


def draw_plots(output: Path, df: pd.DataFrame, per_scene: dict, cfg: dict, protocol, plotter=None):
    """The run's plots (``plots/error_curves.png``, ``plots/per_scene.png``) by ``plotter`` (see
    :func:`start_plotter`) or here; returns a future of their paths."""
    import concurrent.futures as cf

    title = f"{cfg['method']['label']} on {cfg['dataset']['label']}"
    all_failed = [s for s, g in df.groupby("scene", sort=False) if (g["status"] != "ok").all()]
    args = (
        plot_task.Columns.of(df, [c for c, *_ in protocol.curves]),
        protocol.curves,
        per_scene,
        protocol.headline[0],
        title,
        Path(output) / "plots",
        cfg["run"].get("plots_log_x", "auto"),
        all_failed,
    )
    if plotter is not None:
        try:
            return plotter.submit(plot_task.draw, *args)
        except RuntimeError:  # the process is gone: draw here
            pass
    done = cf.Future()
    done.set_result(plot_task.draw(*args))
    return done


def format_value(v) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def text_table(header: list[str], lines: list[list[str]]) -> list[str]:
    """Aligned plain-text lines: first column left, the others right."""
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]

    def fmt(r):
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))

    return [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)]


def summary_table(summary: dict, max_scenes: int = 20, label=lambda key: key) -> str:
    """Plain-text table: headline metrics overall and per scene, then status counts (and a threshold sweep)."""
    cols = summary["headline"]
    lines = [["ALL", *[format_value(summary["overall"].get(c)) for c in cols]]]
    for scene, m in list(summary["per_scene"].items())[:max_scenes]:
        lines.append([scene, *[format_value(m.get(c)) for c in cols]])
    out = text_table(["scene", *map(label, cols)], lines)
    counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    out.append(f"{summary['num_samples']} samples: {counts}")
    reasons = summary.get("failure_reasons") or []
    if reasons:
        out.append("failures (most frequent first):")
        out += [f"  {r['count']:>5} x {r['status']}: {r['reason']}" for r in reasons[:5]]
        if len(reasons) > 5:
            out.append(
                f"  ... {sum(r['count'] for r in reasons[5:])} more in {len(reasons) - 5} other groups "
                f"(samples.csv has every reason)"
            )
    if "threshold_sweep" in summary:
        out += ["", sweep_table(summary["threshold_sweep"], cols, label)]
    return "\n".join(out)


def sweep_table(sweep: dict, cols: list[str], label=lambda key: key) -> str:
    """Plain-text table of a threshold sweep: one line per threshold, then the oracle's best of each column."""
    lines = [
        [
            format_value(p["threshold"]) + (" (run)" if i == 0 else ""),
            *[format_value(p["overall"].get(c)) for c in cols],
        ]
        for i, p in enumerate(sweep["per_threshold"])
    ]
    best = sweep["oracle_best"]
    lines.append(
        [
            "best [oracle]",
            *[
                f"{format_value(best[c]['value'])} @{format_value(best[c]['threshold'])}" if c in best else ""
                for c in cols
            ],
        ]
    )
    note = "best [oracle]: each column's best threshold chosen on these samples, not comparable to a fixed threshold"
    return "\n".join([*text_table([f"{sweep['key']} ({sweep['unit']})", *map(label, cols)], lines), note])


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; empty cells for None/NaN."""

    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return format_value(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
