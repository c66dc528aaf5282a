"""The outputs of ``compare``: a compact printed table (100 columns), ``compare.md``, ``compare.html``
(self-contained) and ``compare.png`` (both runs' error curves overlaid)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from . import htmlpage
from .compare import Comparison
from .io import write_text_atomic
from .report import format_value, markdown_table

WIDTH = 100


def _interval(row) -> str:
    if row["lo"] is None or pd.isna(row["lo"]):
        return ""
    star = " *" if row["lo"] > 0 or row["hi"] < 0 else ""
    return f"[{format_value(row['lo'])}, {format_value(row['hi'])}]{star}"


def _clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def change_counts(c: Comparison) -> str:
    if c.changed.empty:
        return "no sample changed status or crossed a threshold"
    counts = c.changed["change"].value_counts()
    parts = ", ".join(f"{counts[k]} {k}" for k in ("better", "worse", "mixed") if k in counts)
    return f"{len(c.changed)} samples changed status or crossed a threshold ({parts})"


def text_table(c: Comparison, label) -> str:
    """What ``compare`` prints: runs, config differences, the metrics table, notes, changed samples."""
    out = [
        _clip(f"A: {c.a.name} ({c.a.summary['method']}, {c.a.summary['num_samples']} samples)"),
        _clip(f"B: {c.b.name} ({c.b.summary['method']}, {c.b.summary['num_samples']} samples)"),
    ]
    if c.problems:
        out.append(_clip("compared with --force although " + "; ".join(c.problems)))
    out += [_clip(f"config: {k}: {format_value(x)} -> {format_value(y)}") for k, x, y in c.diff] or [
        "config: identical"
    ]
    rows = [
        [label(r["metric"]), htmlpage.cell(r["A"]), htmlpage.cell(r["B"]), htmlpage.cell(r["B-A"]), _interval(r)]
        for r in c.metrics.to_dict("records")
    ]
    header = ["metric", "A", "B", "B-A", "95 % interval of B-A"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[0] = min(widths[0], 24)

    def fmt(r):
        return "  ".join((v[: widths[0]].ljust(widths[0]) if i == 0 else v.rjust(widths[i])) for i, v in enumerate(r))

    out += ["", fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)]
    out.append(textwrap.fill(f"({c.interval_note()}; *: the interval excludes 0)", WIDTH))
    out.append(change_counts(c))
    for r in c.changed.head(10).to_dict("records"):
        out.append(_clip(f"  {r['change']:>6}  {r['sample_id']}: {r['what']}"))
    if len(c.changed) > 10:
        out.append(f"  ... {len(c.changed) - 10} more in compare.md")
    return "\n".join(out)


def _metrics_frame(c: Comparison, label) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "metric": label(r["metric"]),
                "A": r["A"],
                "B": r["B"],
                "B-A": r["B-A"],
                "95 % interval of B-A": _interval(r),
            }
            for r in c.metrics.to_dict("records")
        ]
    )


def markdown(c: Comparison, label) -> str:
    n = c.settings["max_listed"]
    parts = [
        f"# {c.a.name} (A) against {c.b.name} (B)\n",
        f"A: `{c.a.path}`, {c.a.summary['method']} on {c.a.summary['dataset']}  ",
        f"B: `{c.b.path}`, {c.b.summary['method']} on {c.b.summary['dataset']}\n",
    ]
    if c.problems:
        parts.append("**Compared with --force although** " + "; ".join(c.problems) + ".\n")
    parts.append("## Config differences\n")
    parts.append(
        markdown_table(pd.DataFrame(c.diff, columns=["key", "A", "B"]).astype(str))
        if c.diff
        else "The configs are identical.\n"
    )
    parts += [
        "\n## Headline metrics\n",
        markdown_table(_metrics_frame(c, label)),
        f"\n{c.interval_note()}; * marks an interval that excludes 0.\n",
        "\n## Per scene\n",
        markdown_table(c.scenes) if not c.scenes.empty else "No shared scenes.\n",
        f"\n## Changed samples\n\n{change_counts(c)}.\n",
    ]
    if not c.changed.empty:
        parts.append(markdown_table(c.changed.head(n)))
        if len(c.changed) > n:
            parts.append(f"\n{len(c.changed) - n} more (raise compare.max_listed to list them).\n")
    parts.append("\n![error curves of both runs](compare.png)\n")
    return "\n".join(parts)


def html(c: Comparison, label, plot: Path | None) -> str:
    n = c.settings["max_listed"]
    body = [
        f"<h1>{htmlpage.esc(c.a.name)} (A) against {htmlpage.esc(c.b.name)} (B)</h1>",
        f'<p class="note">A: {htmlpage.esc(c.a.path)} &middot; {htmlpage.esc(c.a.summary["method"])} on '
        f"{htmlpage.esc(c.a.summary['dataset'])}<br>B: {htmlpage.esc(c.b.path)} &middot; "
        f"{htmlpage.esc(c.b.summary['method'])} on "
        f"{htmlpage.esc(c.b.summary['dataset'])}</p>",
    ]
    if c.problems:
        body.append(f'<p class="bad">Compared with --force although {htmlpage.esc("; ".join(c.problems))}.</p>')
    body.append("<h2>Config differences</h2>")
    body.append(
        htmlpage.table(["key", "A", "B"], [[k, str(x), str(y)] for k, x, y in c.diff], "config-diff")
        if c.diff
        else "<p>The configs are identical.</p>"
    )
    m = _metrics_frame(c, label)
    body += [
        "<h2>Headline metrics</h2>",
        htmlpage.table(list(m.columns), m.values.tolist(), "metrics", sortable=False),
        f'<p class="note">{htmlpage.esc(c.interval_note())}; * marks an interval that excludes 0.</p>',
        "<h2>Per scene</h2>",
        htmlpage.table(list(c.scenes.columns), c.scenes.values.tolist(), "per-scene")
        if not c.scenes.empty
        else "<p>No shared scenes.</p>",
    ]
    if plot is not None and plot.is_file():
        body += ["<h2>Error curves</h2>", htmlpage.image(plot, "error curves of both runs")]
    body.append(f"<h2>Changed samples</h2><p>{htmlpage.esc(change_counts(c))}.</p>")
    if not c.changed.empty:
        shown = c.changed.head(n)
        body.append(htmlpage.table(list(shown.columns), shown.values.tolist(), "changed"))
        if len(c.changed) > n:
            body.append(f'<p class="note">{len(c.changed) - n} more (raise compare.max_listed to list them).</p>')
    return htmlpage.page(f"{c.a.name} against {c.b.name}", "\n".join(body))


def write(c: Comparison, output: Path, label) -> list[Path]:
    from .plots import curve_panels
    from .protocols import get_protocol

    output.mkdir(parents=True, exist_ok=True)
    protocol = get_protocol(c.a.summary["protocol"])
    plot = curve_panels(
        [(f"A: {c.a.name}", c.a.samples), (f"B: {c.b.name}", c.b.samples)],
        protocol.curves,
        f"{c.a.summary['method']} (A) against {c.b.summary['method']} (B)",
        output / "compare.png",
        c.a.cfg.get("run", {}).get("plots_log_x", "auto"),
    )
    write_text_atomic(output / "compare.md", markdown(c, label))
    write_text_atomic(output / "compare.html", html(c, label, plot))
    return [output / "compare.md", output / "compare.html", plot]


def run_compare(run_a: Path, run_b: Path, overrides: list[str], force: bool, output: Path | None) -> Comparison:
    """The ``compare`` verb: print the table, write the files."""
    from .compare import compare
    from .protocols import get_protocol

    c = compare(run_a, run_b, overrides, force)
    label = get_protocol(c.a.summary["protocol"]).label
    print(text_table(c, label))
    out = Path(output) if output else Path("results") / f"compare_{c.a.name}_vs_{c.b.name}"
    paths = write(c, out, label)
    print(f"written to {out}: {', '.join(p.name for p in paths)}")
    return c
