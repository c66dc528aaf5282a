"""Leaderboard tables for people: a console table that fits 100 columns (short headers, a key below)
and a self-contained HTML page with each table's runs' cumulative error curves overlaid.

Both consume the tables :func:`benchmark.leaderboard.build_leaderboard` returns ({title: DataFrame},
one row per run or published result, with ``method``, the protocol's headline columns, ``samples``,
``failed``, ``protocol`` and ``run``), so they do not depend on how runs are grouped.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from . import htmlpage
from .leaderboard import PUBLISHED_TAG, WEIGHT_KEY, WEIGHT_MARKS, load_runs
from .protocols import PROTOCOLS

WIDTH = 100
MIN_METHOD = 12  # the method column is cut down to this before metric columns are dropped
TERM_HEADERS = {  # compact headers (<= 8 characters) of long headline metrics; the key spells them out
    "VCRE<90px prec": "VCRE-P",
    "VCRE AUC": "VCRE-A",
    "med VCRE px": "VCRE-m",
    "pose<25cm,5deg prec": "pose-P",
    "pose AUC": "pose-A",
    "med trans m": "t-med",
    "med rot deg": "R-med",
    "estimated": "est",
    "day/acc@0.25m,2deg": "D.25/2",
    "day/acc@0.5m,5deg": "D.5/5",
    "day/acc@5m,10deg": "D5/10",
    "night/acc@0.25m,2deg": "N.25/2",
    "night/acc@0.5m,5deg": "N.5/5",
    "night/acc@5m,10deg": "N5/10",
}
PUBLISHED_SHORT = "[pub]"


def _protocol_of(df: pd.DataFrame):
    """The protocol of a table, from its ``protocol`` column ('mapfree v1', 'relpose (published)')."""
    for text in df.get("protocol", pd.Series(dtype=str)).astype(str):
        name = text.split(" ")[0]
        if name in PROTOCOLS:
            return PROTOCOLS[name]
    return None


def _metric_columns(df: pd.DataFrame) -> list[str]:
    protocol = _protocol_of(df)
    return [c for c in (protocol.headline if protocol else []) if c in df]


def _short(key: str, protocol) -> str:
    label = protocol.label(key) if protocol else key
    return TERM_HEADERS.get(label, label if len(label) <= 8 else label[:7] + "~")


def _num(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 2, 1)] + ".."


def _column(header: str, values) -> tuple[str, list[str], int]:
    cells = [_num(v) if v is not None and not (isinstance(v, float) and np.isnan(v)) else "" for v in values]
    return header, cells, max([len(header), *map(len, cells)])


def term_table(title: str, df: pd.DataFrame, width: int = WIDTH) -> str:
    """One table in at most ``width`` columns: rank, method, headline metrics (short headers), samples,
    failed; the key below spells out every short header. Too wide: the method names are cut (to
    ``MIN_METHOD``), then the last metric columns dropped (and named in the key)."""
    protocol = _protocol_of(df)
    methods = [str(m).replace(PUBLISHED_TAG, PUBLISHED_SHORT) for m in df["method"]]
    rank = _column("#", range(1, len(df) + 1))
    metrics = [(c, _column(_short(c, protocol), df[c])) for c in _metric_columns(df)]
    tail = [_column(c, df[c]) for c in ("samples", "failed") if c in df]
    method_w = max([len("method"), *map(len, methods)])

    def total():
        return method_w + sum(c[2] + 2 for c in [rank, *(m for _, m in metrics), *tail])

    method_w = min(method_w, max(MIN_METHOD, method_w - (total() - width)))
    dropped = []
    while total() > width and (len(metrics) > 1 or tail):
        dropped.append(metrics.pop()[1][0] if len(metrics) > 1 else tail.pop()[0])
    shown = [rank, *(m for _, m in metrics), *tail]

    def line(cells: list[str], method: str) -> str:
        parts = [cells[0].rjust(shown[0][2]), _cut(method, method_w).ljust(method_w)]
        parts += [c.rjust(col[2]) for c, col in zip(cells[1:], shown[1:])]
        return "  ".join(parts).rstrip()

    head = f"{title}: {len(df)} rows" + (f", ranked by {protocol.label(protocol.rank_by[0])}" if protocol else "")
    lines = textwrap.wrap(head, width, subsequent_indent="  ")
    lines += [line([c[0] for c in shown], "method"), line(["-" * c[2] for c in shown], "-" * method_w)]
    lines += [line([c[1][i] for c in shown], m) for i, m in enumerate(methods)]
    key = [f"{col[0]} = {name}" for name, col in metrics if col[0] != name]
    if any(mark in m for m in methods for mark in set(WEIGHT_MARKS.values())):
        key.append(WEIGHT_KEY)
    if any(PUBLISHED_SHORT in m for m in methods):
        key.append(f"{PUBLISHED_SHORT} = a published result, not measured here")
    if any(c[0] == "failed" for c in tail):
        key.append("failed = samples without an estimate (failures count in every metric)")
    cut = [f"{i} = {m}" for i, m in enumerate(methods, 1) if len(m) > method_w]
    if cut:
        key.append(f"methods in full: {'; '.join(cut)}")
    if dropped:
        key.append(f"not shown (too wide for {width} columns): {', '.join(dropped)}; see --format md")
    return "\n".join(lines + (textwrap.wrap("key: " + "; ".join(key), width, subsequent_indent="  ") if key else []))


def render_term(tables: dict[str, pd.DataFrame], width: int = WIDTH) -> str:
    return "\n\n".join(term_table(title, df, width) for title, df in tables.items()) + "\n"


def _run_folders(paths: list[Path]) -> dict[str, Path]:
    """run id -> folder, for the runs the tables list."""
    return {r["run_id"]: Path(r["_path"]) for r in load_runs(paths)}


def curves_png(title: str, df: pd.DataFrame, folders: dict[str, Path], log_x="auto") -> bytes | None:
    """The cumulative error curves of the table's measured runs overlaid (PNG bytes); None without any."""
    from .plots import curve_panels

    protocol = _protocol_of(df)
    runs, drawn = [], set()
    for rank, r in enumerate(df.to_dict("records"), 1):  # numbered as in the table
        folder = folders.get(str(r.get("run", "")))
        if protocol is None or folder is None or folder in drawn or not (folder / "samples.parquet").is_file():
            continue  # a threshold sweep's rows share one run: its curves (first threshold) are drawn once
        drawn.add(folder)
        runs.append((f"{rank}. {r['method']}", pd.read_parquet(folder / "samples.parquet")))
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = curve_panels(runs, protocol.curves, f"{title}: cumulative error curves", Path(tmp) / "c.png", log_x)
        return path.read_bytes()


def render_html(tables: dict[str, pd.DataFrame], paths: list[Path], log_x="auto") -> str:
    """The leaderboard page: per table, its rows (sortable) and its runs' curves overlaid."""
    folders = _run_folders(paths)
    body = [
        "<h1>Leaderboard</h1>",
        f'<p class="note">{len(tables)} table(s) from {len(folders)} run folder(s). Failures count in every '
        f"metric; rows marked {htmlpage.esc(PUBLISHED_TAG)} are published results, not measured here. Click a "
        "header to sort.</p>",
    ]
    for i, (title, df) in enumerate(tables.items(), 1):
        body.append(f"<h2>{htmlpage.esc(title)}</h2>")
        protocol = _protocol_of(df)
        rows = [[n, *r] for n, r in enumerate(df.astype(object).where(df.notna(), None).values.tolist(), 1)]
        headers = ["#", *(protocol.label(c) if protocol else str(c) for c in df.columns)]
        body.append(
            '<div class="wide">'
            + htmlpage.table(headers, rows, f"table-{i}", titles=["rank", *map(str, df.columns)])
            + "</div>"
        )
        png = curves_png(title, df, folders, log_x)
        body.append(
            htmlpage.image(
                png, f"error curves of {title}", "every measured run of the table; failures never reach a threshold"
            )
            if png
            else '<p class="note">No curves: no measured run with its samples.parquet in this table.</p>'
        )
    return htmlpage.page("Leaderboard", "\n".join(body))
