"""Nearest-neighbour descriptor matching shared by the sparse matchers (SIFT, DISK/ALIKED + NN)."""
from __future__ import annotations

import numpy as np
import torch


def mutual_nn_ratio(desc0: np.ndarray | torch.Tensor, desc1: np.ndarray | torch.Tensor, *,
                    ratio: float | None = 0.8, mutual: bool = True, max_distance: float | None = None,
                    block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Match L2-normalised descriptors (N0, D) and (N1, D).

    Returns (pairs (M, 2) int64 indices into desc0/desc1, distances (M,)).
    ``ratio``: Lowe's ratio test on Euclidean distances (None disables it; needs N1 >= 2).
    ``mutual``: keep only pairs that are each other's nearest neighbour.
    ``max_distance``: drop pairs farther apart than this Euclidean distance.
    The similarity matrix is computed in blocks of ``block`` rows so memory stays bounded.
    """
    d0 = torch.as_tensor(desc0, dtype=torch.float32)
    d1 = torch.as_tensor(desc1, dtype=torch.float32)
    n0, n1 = len(d0), len(d1)
    if n0 == 0 or n1 == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    k = 2 if (ratio is not None and n1 >= 2) else 1
    best_sim = torch.empty(n0, k)
    best_idx = torch.empty(n0, k, dtype=torch.long)
    back_sim = torch.full((n1,), -float("inf"))
    back_idx = torch.zeros(n1, dtype=torch.long)
    for s in range(0, n0, block):
        sim = d0[s:s + block] @ d1.T
        v, i = sim.topk(k, dim=1)
        best_sim[s:s + block], best_idx[s:s + block] = v, i
        if mutual:
            bv, bi = sim.max(dim=0)
            better = bv > back_sim  # strict: the first block wins ties, i.e. the lowest index
            back_sim[better], back_idx[better] = bv[better], bi[better] + s
    # unit vectors: |a - b|^2 = 2 - 2 a.b
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * best_sim, min=0.0))
    keep = torch.ones(n0, dtype=torch.bool)
    if k == 2:
        keep &= dist[:, 0] < ratio * dist[:, 1]
    if mutual:
        keep &= back_idx[best_idx[:, 0]] == torch.arange(n0)
    if max_distance is not None:
        keep &= dist[:, 0] <= max_distance
    i0 = torch.nonzero(keep).reshape(-1)
    pairs = torch.stack([i0, best_idx[i0, 0]], dim=1)
    return pairs.numpy().astype(np.int64), dist[i0, 0].numpy().astype(np.float64)
