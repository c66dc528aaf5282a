"""Bootstrap intervals of a run's summary metrics: whole scenes resampled with replacement.

Every resample is evaluated at once from per-scene statistics (counts, per-scene medians, histograms,
counts per confidence value), and gives the numbers, bit for bit, that the protocol's own summary
function gives on the resampled table (a scene drawn twice counts as two scenes). The draws are
today's: ``rng.choice(scenes, len(scenes))`` per resample, which equals one ``rng.integers`` call.
A floating-point sum whose value depends on the order of its terms (a mean over scenes, the area
under a curve) is taken over the same terms in the same order: resamples with the same number of
terms are stacked and reduced along the rows, which numpy sums exactly as it sums each row alone.

``reference_draws`` is the direct form (concatenate the drawn scenes, call the summary function); it
serves protocols without a fast path and the tests.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

Draws = dict[str, np.ndarray]  # metric -> one value per resample (NaN: missing or not finite)
CHUNK_ELEMENTS = 1 << 17  # bound on the (resamples x rows) arrays evaluated at once (about 1 MB each)


def draw_scenes(n_scenes: int, n: int, seed: int) -> np.ndarray:
    """(n, n_scenes) indices of the scenes drawn by each resample."""
    return np.random.default_rng(seed).integers(0, n_scenes, size=(n, n_scenes))


def scene_counts(picks: np.ndarray, n_scenes: int) -> np.ndarray:
    """(B, S) float64: how often each scene is drawn in each resample (float for BLAS products,
    exact for integers)."""
    flat = (np.arange(len(picks))[:, None] * n_scenes + picks).ravel()
    return np.bincount(flat, minlength=len(picks) * n_scenes).reshape(len(picks), n_scenes).astype(np.float64)


def ragged(values: np.ndarray, present: np.ndarray, reduce, empty: float) -> np.ndarray:
    """``reduce`` (np.sum or np.mean) of each row's present entries, in row order; ``empty`` for rows
    without any. Rows with the same count are reduced together, in the same order as one at a time."""
    counts = present.sum(axis=1)
    out = np.full(len(values), empty, dtype=np.float64)
    for k in np.unique(counts):
        if k:
            rows = np.flatnonzero(counts == k)
            out[rows] = reduce(values[rows][present[rows]].reshape(len(rows), k), axis=1)
    return out


def segments_sum(starts: np.ndarray, lengths: np.ndarray, terms) -> np.ndarray:
    """Per row b, ``np.sum`` of ``terms(rows, idx)``, where ``idx`` (rows, L) holds the flat positions
    ``starts[b] ... starts[b] + L - 1`` of each row of length L; 0 for empty rows."""
    out = np.zeros(len(lengths))
    for k in np.unique(lengths):
        if k:
            rows = np.flatnonzero(lengths == k)
            out[rows] = np.sum(terms(rows, starts[rows, None] + np.arange(k)), axis=1)
    return out


def intervals(draws: Draws, n: int, level: float) -> dict:
    """Percentile interval of each metric over its finite draws (metrics finite in fewer than half
    the resamples are left out); metrics in the order they first had a finite value."""
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    finite = {k: np.flatnonzero(np.isfinite(v)) for k, v in draws.items()}
    order = sorted((k for k in draws if len(finite[k])), key=lambda k: finite[k][0])
    out = {}
    for k in order:
        v = draws[k][finite[k]]
        if len(v) >= n // 2:
            out[k] = [float(np.percentile(v, lo)), float(np.percentile(v, hi))]
    return out


def reference_draws(df: pd.DataFrame, summarize: Callable, scenes, picks: np.ndarray) -> Draws:
    """Each resample's summary from the concatenated table of its drawn scenes."""
    groups = {s: g for s, g in df.groupby("scene", sort=False)}
    draws: Draws = {}
    for b, pick in enumerate(picks):
        # rename the copies so a scene drawn twice counts as two scenes in per-scene averages
        sample = pd.concat(
            [groups[scenes[s]].assign(scene=f"{scenes[s]}#{i}") for i, s in enumerate(pick)], ignore_index=True
        )
        for k, v in summarize(sample).items():
            if isinstance(v, (int, float, np.floating)) and np.isfinite(v):
                draws.setdefault(k, np.full(len(picks), np.nan))[b] = float(v)
    return draws


def resample_draws(df: pd.DataFrame, protocol, scenes: list, picks: np.ndarray) -> Draws:
    """Each resample's summary metrics; ``picks`` index ``scenes`` (rows of other scenes are left out)."""
    df = df[df["scene"].isin(scenes)]
    resampler = getattr(protocol, "resampler", None)
    if resampler is None:
        return reference_draws(df, protocol.summarize, scenes, picks)
    evaluate, row_width = resampler(df, pd.Index(scenes).get_indexer(df["scene"]), len(scenes))
    step = max(1, CHUNK_ELEMENTS // max(1, row_width))
    parts = [evaluate(picks[i : i + step]) for i in range(0, len(picks), step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def bootstrap(df: pd.DataFrame, protocol, n: int, seed: int, level: float = 0.95) -> dict:
    """95 % (``level``) percentile intervals of every summary metric, resampling whole scenes."""
    scenes = list(pd.unique(df["scene"]))
    if n <= 0 or len(scenes) < 2:
        return {}
    return intervals(resample_draws(df, protocol, scenes, draw_scenes(len(scenes), n, seed)), n, level)
