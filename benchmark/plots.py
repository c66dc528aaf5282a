"""Plots of runs (PNG, Agg backend): cumulative error curves (one run, or several overlaid), per-scene
bars, the ablation plot.

Readability rules: every line drawn (thresholds and baselines included) has a legend entry; a legend
that would cover curves goes outside the axes; an axis of a quantity that cannot be negative starts
at 0; error curves switch to a log x-axis when the errors span decades (``log_x``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

if TYPE_CHECKING:  # the run's plotter process draws from plain arrays and does not import pandas
    import pandas as pd

LOG_X_MODES = ("auto", True, False)


def spans_decades(errors: np.ndarray, decades: float = 2.0) -> bool:
    """True when the middle 80 % of the positive finite errors spans more than ``decades``."""
    e = np.asarray(errors, float)
    e = e[np.isfinite(e) & (e > 0)]
    if len(e) < 2:
        return False
    lo, hi = np.percentile(e, [10, 90])
    return hi > lo * 10**decades


def _log_x(mode, errors: np.ndarray) -> bool:
    if mode not in LOG_X_MODES:
        raise ValueError(f"log_x must be one of {LOG_X_MODES}, not {mode!r}")
    return spans_decades(errors) if mode == "auto" else bool(mode)


def cumulative_curve(
    ax, errors: np.ndarray, n_total: int, label: str, x_max: float, x_min: float | None = None, **style
) -> None:
    """Fraction of ALL samples (failures included, never reaching it) with error below x. ``x_min``:
    the left end of a log axis (smaller errors are counted from there)."""
    finite = np.sort(np.asarray(errors, float)[np.isfinite(errors)])
    start = 0.0 if x_min is None else x_min
    if x_min is not None:
        finite = np.maximum(finite, x_min)
    xs = np.concatenate([[start], finite, [max(x_max, finite[-1] if len(finite) else x_max)]])
    ys = np.concatenate([[0.0], np.arange(1, len(finite) + 1), [len(finite)]]) / max(n_total, 1)
    ax.step(xs, ys, where="post", label=label, **style)


def _axis_range(all_errors: list[np.ndarray], threshold: float | None, log: bool) -> tuple[float, float | None]:
    finite = np.concatenate([e[np.isfinite(e)] for e in all_errors]) if all_errors else np.zeros(0)
    if not log:
        return (threshold * 3 if threshold else (finite.max() if len(finite) else 1.0)), None
    positive = finite[finite > 0]
    hi = max(positive.max() * 1.5 if len(positive) else 1.0, (threshold or 0) * 3)
    lo = min(positive.min() if len(positive) else hi / 1e3, (threshold or hi) / 10)
    return hi, 10 ** np.floor(np.log10(lo))


def curve_panels(
    runs: list[tuple[str, pd.DataFrame]], curves: list[tuple], title: str, path: Path, log_x="auto"
) -> Path:
    """One panel per ``curves`` entry (column, label, unit, threshold), one curve per run
    (label, per-sample table) in each; thresholds dashed and in the legend."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.8), squeeze=False)
    many = len(runs) > 1
    for ax, (col, label, unit, thr) in zip(axes[0], curves):
        errors = [np.asarray(df[col], dtype=float) if col in df else np.full(len(df), np.nan) for _, df in runs]
        log = _log_x(log_x, np.concatenate(errors) if errors else np.zeros(0))
        x_max, x_min = _axis_range(errors, thr, log)
        for (name, df), e in zip(runs, errors):
            cumulative_curve(ax, e, len(df), name if many else label, x_max, x_min)
        if thr is not None:
            ax.axvline(thr, color="grey", linestyle="--", linewidth=1, label=f"threshold {thr:g} {unit}")
        if log:
            ax.set_xscale("log")
            # plain numbers (0.01, 1, 100): as readable as powers of ten, and no mathtext to lay out
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(x_min, x_max)
        else:
            ax.set_xlim(0, x_max)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"error ({unit}){', log scale' if log else ''}")
        ax.set_ylabel("fraction of samples")
        ax.set_title(label)
        ax.grid(alpha=0.3, which="both" if log else "major")
        # run names are long: with several runs they share one legend below the panels, and each
        # panel's own legend keeps only its threshold
        handles, labels = ax.get_legend_handles_labels()
        own = [(h, t) for h, t in zip(handles, labels) if not many or t.startswith("threshold")]
        if own:
            ax.legend(*zip(*own), fontsize=7, loc="lower right")
    if many:
        handles, labels = axes[0][0].get_legend_handles_labels()
        runs_only = [(h, t) for h, t in zip(handles, labels) if not t.startswith("threshold")]
        fig.legend(
            *zip(*runs_only),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(3, len(runs_only)),
            fontsize=8,
            frameon=False,
        )
    fig.suptitle(title, fontsize=10)
    # fixed spacing between panels and one layout pass at saving (bbox_inches) instead of two
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.84, wspace=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def error_curves(df: pd.DataFrame, curves: list[tuple], title: str, path: Path, log_x="auto") -> Path:
    """The cumulative error curves of one run."""
    return curve_panels([("", df)], curves, title, path, log_x)


def run_plots(
    df: pd.DataFrame,
    curves: list[tuple],
    per_scene: dict,
    bar_metric: str,
    title: str,
    folder: Path,
    log_x="auto",
    all_failed=(),
) -> list[Path]:
    """A run's two plots: cumulative error curves (``curves`` columns of ``df``, one row per sample) and
    ``bar_metric`` per scene (``all_failed``: the scenes where every sample failed)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [
        error_curves(df, curves, title, Path(folder) / "error_curves.png", log_x),
        scene_bars(
            per_scene, bar_metric, f"{title}: {bar_metric} per scene", Path(folder) / "per_scene.png", all_failed
        ),
    ]


def scene_bars(per_scene: dict, metric: str, title: str, path: Path, all_failed=()) -> Path:
    """One bar per scene with its value written on it; a scene where every sample failed is marked
    (its metric is a failure, not a measurement)."""
    scenes = list(per_scene)
    values = np.array([float(per_scene[s].get(metric, np.nan)) for s in scenes])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(scenes) + 2), 3.8))
    bars = ax.bar(range(len(scenes)), np.nan_to_num(values, nan=0.0, posinf=0.0), color="tab:blue")
    finite = values[np.isfinite(values)]
    top = max(finite.max(), 0) if len(finite) else 1.0
    if len(finite) and finite.min() >= 0:
        ax.set_ylim(0, (top or 1.0) * 1.15)
    labels = ["" if not np.isfinite(v) else f"{v:.3g}" for v in values]
    ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    failed = [i for i, s in enumerate(scenes) if s in set(all_failed)]
    if failed:
        ax.scatter(
            failed,
            [0] * len(failed),
            marker="x",
            color="tab:red",
            s=60,
            zorder=3,
            clip_on=False,
            label="every sample failed",
        )
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    ax.set_xticks(
        range(len(scenes)),
        scenes,
        rotation=45 if len(scenes) > 6 else 0,
        ha="right" if len(scenes) > 6 else "center",
        fontsize=8,
    )
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _non_negative(ax, values) -> None:
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v)]
    if len(v) and v.min() >= 0 and ax.get_yscale() == "linear":
        ax.set_ylim(bottom=0)


def ablation_plot(
    table: pd.DataFrame,
    key: str,
    time_col: str | None,
    metric_cols: list[str],
    path: Path,
    baseline: dict | None = None,
) -> Path:
    """Time and accuracy against the swept value (in the spirit of MASt3R's Figure 3); values whose
    samples all failed have no points; the legend (baselines included) sits below the axes."""
    import pandas as pd

    fig, ax1 = plt.subplots(figsize=(6.5, 4.2))
    x = table[key].astype(str).tolist()
    ax1.set_xlabel(key)
    name = (baseline or {}).get("variant", "baseline")
    if time_col is not None:
        times = pd.to_numeric(table.get(time_col), errors="coerce")
        ax1.plot(x, times, "o-", color="tab:red", label=f"{time_col}")
        ax1.set_ylabel("matching time per pair (s)", color="tab:red")
        if baseline and baseline.get(time_col) is not None:
            ax1.axhline(baseline[time_col], color="tab:red", linestyle=":", label=f"{name}: {baseline[time_col]:.3g} s")
        values = [v for v in list(times) + [(baseline or {}).get(time_col)] if v is not None and v > 0]
        if values and max(values) > 20 * min(values):  # e.g. FRM vs brute force: two orders of magnitude
            ax1.set_yscale("log")
        _non_negative(ax1, values)
    ax2 = ax1.twinx()
    accuracy = []
    for i, col in enumerate(metric_cols):
        color = f"C{i}"
        values = pd.to_numeric(table[col], errors="coerce")
        ax2.plot(x, values, "s--", color=color, label=col)
        accuracy += list(values)
        if baseline and baseline.get(col) is not None:
            ax2.axhline(baseline[col], linestyle=":", color=color, label=f"{name}: {col} {baseline[col]:.3g}")
            accuracy.append(baseline[col])
    ax2.set_ylabel("accuracy")
    _non_negative(ax2, accuracy)
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    fig.legend(
        lines[0] + lines2[0],
        lines[1] + lines2[1],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=2,
        frameon=False,
    )
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
