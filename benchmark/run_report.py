"""``report.html`` of a run: one self-contained page (see :mod:`benchmark.htmlpage`) with the headline
metrics and their 95 % intervals, status counts and failure reasons, the per-scene table, the plots,
the worst samples with their match pictures, the per-sample table, the resolved config and the
provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import htmlpage
from .io import write_text_atomic
from .report import failure_reasons
from .types import OK

MAX_SAMPLE_ROWS = 2000  # the per-sample table lists the worst this many (all rows are in samples.csv)


def _interval(summary: dict, key: str) -> str:
    ci = summary.get("ci95", {}).get(key)
    return f"[{htmlpage.cell(ci[0])}, {htmlpage.cell(ci[1])}]" if ci else ""


def _no_interval_note(summary: dict, cfg: dict) -> str:
    if summary.get("ci95"):
        return (
            "95 % intervals: percentile bootstrap over whole scenes "
            f"({cfg['run']['bootstrap']} resamples, seed {cfg['run']['seed']})."
        )
    if not int(cfg["run"]["bootstrap"]):
        return "No intervals: run.bootstrap is 0."
    return "No intervals: resampling scenes needs at least 2 scenes."


def headline_section(summary: dict, cfg: dict, protocol) -> str:
    rows = [
        [
            f"{key} ({protocol.label(key)})" if protocol.label(key) != key else key,
            summary["overall"].get(key),
            _interval(summary, key),
        ]
        for key in summary["headline"]
    ]
    return (
        "<h2>Headline metrics</h2>"
        + htmlpage.table(["metric", "value", "95 % interval"], rows, "headline", sortable=False)
        + f'<p class="note">{htmlpage.esc(_no_interval_note(summary, cfg))}</p>'
    )


def status_section(df: pd.DataFrame, summary: dict) -> str:
    n = max(summary["num_samples"], 1)
    counts = [[s, c, f"{100 * c / n:.1f} %"] for s, c in summary["status_counts"].items() if c or s == OK]
    out = "<h2>Status</h2>" + htmlpage.table(["status", "samples", "share"], counts, "status", sortable=False)
    reasons = [[r["status"], r["reason"], r["count"]] for r in failure_reasons(df)]
    if reasons:
        out += (
            "<p>Failure reasons (grouped with their numbers folded, one example each; every failure counts "
            "in every metric):</p>" + htmlpage.table(["status", "reason (an example)", "samples"], reasons, "reasons")
        )
    return out


def scene_section(df: pd.DataFrame, summary: dict, protocol) -> str:
    cols = summary["headline"]
    sizes = df.groupby(df["scene"].astype(str), sort=False)["status"].agg(["size", lambda s: int((s != OK).sum())])
    rows = []
    for scene, metrics in summary["per_scene"].items():
        n, failed = sizes.loc[scene].tolist() if scene in sizes.index else (0, 0)
        rows.append([scene, n, failed, *[metrics.get(c) for c in cols]])
    return "<h2>Per scene</h2>" + htmlpage.table(
        ["scene", "samples", "failed", *map(protocol.label, cols)], rows, "per-scene"
    )


def plots_section(output: Path) -> str:
    figs = [
        htmlpage.image(p, p.stem.replace("_", " "))
        for p in (output / "plots" / n for n in ("error_curves.png", "per_scene.png"))
        if p.is_file()
    ]
    return "<h2>Plots</h2>" + ("".join(figs) if figs else '<p class="note">No plots (run.plots is false).</p>')


def _errors_text(row: dict, protocol) -> str:
    parts = [
        f"{label} {htmlpage.cell(float(row[c]))} {unit}"
        for c, label, unit, _ in protocol.curves
        if c in row and np.isfinite(float(row[c]))
    ]
    return ", ".join(parts)


def worst_section(output: Path, worst: list[dict], protocol, requested: int) -> str:
    out = "<h2>Worst samples</h2>"
    if not worst:
        why = "run.viz_worst is 0" if not requested else "no sample could be drawn"
        return out + f'<p class="note">No pictures ({why}).</p>'
    out += (
        f'<p class="note">Failed samples first, then by {", ".join(protocol.worst_by)} (largest first). '
        "Lines: matches coloured by their error against the ground truth (green 0, red at the scale's end), "
        "or the solver's inliers where there is no ground truth. "
        "<code>python -m benchmark show RUN --sample ID</code> draws any sample at full size.</p>"
    )
    rows = [
        [
            i,
            r["sample_id"],
            r["scene"],
            r["status"],
            r.get("reason", ""),
            r["num_matches"],
            r["num_inliers"],
            _errors_text(r, protocol),
        ]
        for i, r in enumerate(worst, 1)
    ]
    out += htmlpage.table(["#", "sample", "scene", "status", "reason", "matches", "inliers", "errors"], rows, "worst")
    for i, r in enumerate(worst, 1):
        caption = f"{i}. {r['sample_id']}: {r['status']}" + (
            f", {_errors_text(r, protocol)}" if _errors_text(r, protocol) else ""
        )
        out += htmlpage.image(output / r["file"], f"matches of {r['sample_id']}", caption, width=960)
    return out


def samples_section(df: pd.DataFrame, protocol) -> str:
    from .show import worst_order

    cols = [
        "sample_id",
        "scene",
        "status",
        "reason",
        "num_matches",
        "num_inliers",
        "confidence",
        *[c for c, *_ in protocol.curves if c in df],
    ]
    ordered = worst_order(df, protocol).head(MAX_SAMPLE_ROWS)
    note = (
        f"the {MAX_SAMPLE_ROWS} worst of {len(df)} samples; all are in samples.csv"
        if len(df) > MAX_SAMPLE_ROWS
        else f"all {len(df)} samples, worst first"
    )
    rows = ordered[cols].astype(object).where(ordered[cols].notna(), None).values.tolist()
    return (
        f'<h2>Samples</h2><p class="note">{htmlpage.esc(note)}; click a header to sort.</p>'
        f'<div class="scroll">{htmlpage.table(cols, rows, "samples")}</div>'
    )


def build_report(output: Path, df: pd.DataFrame, summary: dict, cfg: dict, protocol, worst: list[dict]) -> str:
    from .report import json_safe

    prov = summary.get("provenance", {})
    git = prov.get("git", {}) if isinstance(prov.get("git"), dict) else {}
    counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    head = (
        f"<h1>{htmlpage.esc(summary['method'])} on {htmlpage.esc(summary['dataset'])}</h1>"
        f'<p class="note">run {htmlpage.esc(summary["run_id"])} &middot; {htmlpage.esc(protocol.name)} metrics, '
        f"protocol v{htmlpage.esc(summary['protocol_version'])} &middot; {summary['num_samples']} samples "
        f"({htmlpage.esc(counts)})"
        f" &middot; commit {htmlpage.esc(str(git.get('commit', ''))[:10])}{' (dirty)' if git.get('dirty') else ''}"
        f" &middot; {htmlpage.esc(prov.get('created', ''))}</p>"
    )
    body = [
        head,
        headline_section(summary, cfg, protocol),
        status_section(df, summary),
        scene_section(df, summary, protocol),
        plots_section(output),
        worst_section(output, worst, protocol, int(cfg["run"].get("viz_worst", 0) or 0)),
        samples_section(df, protocol),
        "<h2>Config</h2>" + htmlpage.pre(yaml.safe_dump(cfg, sort_keys=False)),
        "<h2>Provenance</h2>" + htmlpage.pre(json.dumps(json_safe(prov), indent=1)),
    ]
    return htmlpage.page(f"{summary['method']} on {summary['dataset']}", "\n".join(body))


def write_report(output: Path, df: pd.DataFrame, summary: dict, cfg: dict, protocol, worst: list[dict]) -> Path:
    df = df.drop(columns=["shard"], errors="ignore")
    path = Path(output) / "report.html"
    write_text_atomic(path, build_report(Path(output), df, summary, cfg, protocol, worst))
    return path
