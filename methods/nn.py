"""Nearest-neighbour descriptor matching shared by the sparse matchers (SIFT, DISK/ALIKED + NN).

numpy only, so that SIFT runs without importing torch (learned features hand over CPU tensors,
which numpy reads without a copy)."""

from __future__ import annotations

import numpy as np


def _best_two(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` (1 or 2) largest similarities and their columns, best first (the lowest
    column wins a tie). ``sim`` is overwritten."""
    rows = np.arange(len(sim))
    idx = np.empty((len(sim), k), dtype=np.int64)
    val = np.empty((len(sim), k), dtype=sim.dtype)
    for j in range(k):
        idx[:, j] = sim.argmax(axis=1)
        val[:, j] = sim[rows, idx[:, j]]
        sim[rows, idx[:, j]] = -np.inf
    return val, idx


def mutual_nn_ratio(
    desc0,
    desc1,
    *,
    ratio: float | None = 0.8,
    mutual: bool = True,
    max_distance: float | None = None,
    block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Match L2-normalised descriptors (N0, D) and (N1, D) (numpy arrays or CPU tensors).

    Returns (pairs (M, 2) int64 indices into desc0/desc1, distances (M,)).
    ``ratio``: Lowe's ratio test on Euclidean distances (None disables it; needs N1 >= 2).
    ``mutual``: keep only pairs that are each other's nearest neighbour.
    ``max_distance``: drop pairs farther apart than this Euclidean distance.
    The similarity matrix is computed in blocks of ``block`` rows so memory stays bounded.
    """
    d0 = np.asarray(desc0, dtype=np.float32)
    d1 = np.asarray(desc1, dtype=np.float32)
    n0, n1 = len(d0), len(d1)
    if n0 == 0 or n1 == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    k = 2 if (ratio is not None and n1 >= 2) else 1
    best_sim = np.empty((n0, k), dtype=np.float32)
    best_idx = np.empty((n0, k), dtype=np.int64)
    back_sim = np.full(n1, -np.inf, dtype=np.float32)
    back_idx = np.zeros(n1, dtype=np.int64)
    for s in range(0, n0, block):
        sim = d0[s : s + block] @ d1.T
        if mutual:
            bi = sim.argmax(axis=0)
            bv = sim[bi, np.arange(n1)]
            better = bv > back_sim  # strict: the first block wins ties, i.e. the lowest index
            back_sim[better], back_idx[better] = bv[better], bi[better] + s
        best_sim[s : s + block], best_idx[s : s + block] = _best_two(sim, k)
    # unit vectors: |a - b|^2 = 2 - 2 a.b
    dist = np.sqrt(np.maximum(2.0 - 2.0 * best_sim, 0.0))
    keep = np.ones(n0, dtype=bool)
    if k == 2:
        keep &= dist[:, 0] < ratio * dist[:, 1]
    if mutual:
        keep &= back_idx[best_idx[:, 0]] == np.arange(n0)
    if max_distance is not None:
        keep &= dist[:, 0] <= max_distance
    i0 = np.flatnonzero(keep)
    return np.stack([i0, best_idx[i0, 0]], axis=1), dist[i0, 0].astype(np.float64)
