"""Plots of a run: cumulative error curves and per-scene bars (PNG, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def cumulative_curve(ax, errors: np.ndarray, n_total: int, label: str, threshold: float | None, unit: str,
                     x_max: float | None = None) -> None:
    """Fraction of ALL samples (failures included, never reaching it) with error below x."""
    finite = np.sort(errors[np.isfinite(errors)])
    x_max = x_max or (threshold * 3 if threshold else (finite.max() if len(finite) else 1.0))
    xs = np.concatenate([[0.0], finite, [x_max]])
    ys = np.concatenate([[0.0], np.arange(1, len(finite) + 1) / max(n_total, 1), [len(finite) / max(n_total, 1)]])
    ax.step(xs, ys, where="post", label=label)
    if threshold is not None:
        ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.text(threshold, 0.02, f" {threshold:g} {unit}", color="grey", fontsize=8)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"error ({unit})")
    ax.set_ylabel("fraction of samples")
    ax.grid(alpha=0.3)


def error_curves(df: pd.DataFrame, curves: list[tuple], title: str, path: Path) -> Path:
    """``curves``: (column, label, unit, threshold) per panel."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (col, label, unit, thr) in zip(axes[0], curves):
        values = df[col].to_numpy(dtype=float) if col in df else np.full(len(df), np.nan)
        cumulative_curve(ax, values, len(df), label, thr, unit)
        ax.set_title(label)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scene_bars(per_scene: dict, metric: str, title: str, path: Path) -> Path:
    scenes = list(per_scene)
    values = [per_scene[s].get(metric, np.nan) for s in scenes]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(scenes) + 2), 3.6))
    ax.bar(range(len(scenes)), values, color="tab:blue")
    ax.set_xticks(range(len(scenes)), scenes, rotation=45 if len(scenes) > 6 else 0, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ablation_plot(table: pd.DataFrame, key: str, time_col: str | None, metric_cols: list[str], path: Path,
                  baseline: dict | None = None) -> Path:
    """Time and accuracy against the swept value (in the spirit of MASt3R's Figure 3); values whose
    samples all failed have no points."""
    fig, ax1 = plt.subplots(figsize=(6, 4))
    x = table[key].astype(str).tolist()
    ax1.set_xlabel(key)
    if time_col is not None:
        times = pd.to_numeric(table.get(time_col), errors="coerce")
        ax1.plot(x, times, "o-", color="tab:red", label=f"{time_col}")
        ax1.set_ylabel("matching time per pair (s)", color="tab:red")
        if baseline and baseline.get(time_col) is not None:
            ax1.axhline(baseline[time_col], color="tab:red", linestyle=":",
                        label=f"{baseline.get('variant', 'baseline')}: {baseline[time_col]:.3g} s")
        values = [v for v in list(times) + [(baseline or {}).get(time_col)] if v is not None and v > 0]
        if values and max(values) > 20 * min(values):  # e.g. FRM vs brute force: two orders of magnitude
            ax1.set_yscale("log")
    ax2 = ax1.twinx()
    for col in metric_cols:
        ax2.plot(x, pd.to_numeric(table[col], errors="coerce"), "s--", label=col)
        if baseline and baseline.get(col) is not None:
            ax2.axhline(baseline[col], linestyle=":", color="grey")
    ax2.set_ylabel("accuracy")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
