"""SuperGlue (Sarlin, DeTone, Malisiewicz, Rabinovich, CVPR 2020): keypoint positions and scores are
encoded by an MLP and added to the descriptors, 9 x (self, cross) attentional message-passing layers
refine them, and a log-space Sinkhorn on the similarity matrix augmented with a learned "dustbin"
score yields a partial assignment.

Module and parameter names follow the released ``superglue_indoor.pth`` / ``superglue_outdoor.pth``
(``kenc.encoder.N``, ``gnn.layers.N.attn.{merge,proj.K}``, ``gnn.layers.N.mlp.N``, ``final_proj``,
``bin_score``); indoor and outdoor differ only in their weights. About 12 M parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LAYERS = ("self", "cross") * 9
ENCODER_WIDTHS = (32, 64, 128, 256)
NUM_HEADS = 4


def pointwise_mlp(widths: list[int]) -> nn.Sequential:
    """1x1 convolutions with BatchNorm + ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv1d(cin, cout, kernel_size=1, bias=True))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm1d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


def normalize_keypoints(kpts: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Centre on the image and divide by 0.7 x its longest side (the network's training input range)."""
    size = kpts.new_tensor([width, height])
    return (kpts - size / 2) / (size.max() * 0.7)


class KeypointEncoder(nn.Module):
    def __init__(self, dim: int, widths=ENCODER_WIDTHS):
        super().__init__()
        self.encoder = pointwise_mlp([3, *widths, dim])
        nn.init.zeros_(self.encoder[-1].bias)

    def forward(self, kpts: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) normalised positions and (B, N) scores -> (B, dim, N)."""
        return self.encoder(torch.cat([kpts.transpose(1, 2), scores[:, None]], dim=1))


class MultiHeadedAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.merge = nn.Conv1d(dim, dim, kernel_size=1)
        self.proj = nn.ModuleList([nn.Conv1d(dim, dim, kernel_size=1) for _ in range(3)])

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, dim, _ = query.shape
        # the released weights interleave the heads: channel c belongs to head c % heads
        q, k, v = (
            p(x).view(b, dim // self.heads, self.heads, -1).permute(0, 2, 3, 1)
            for p, x in zip(self.proj, (query, key, value))
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, dim/heads), scaled by 1/sqrt(dim/heads)
        return self.merge(out.permute(0, 3, 1, 2).reshape(b, dim, -1))


class AttentionalPropagation(nn.Module):
    def __init__(self, dim: int, heads: int = NUM_HEADS):
        super().__init__()
        self.attn = MultiHeadedAttention(dim, heads)
        self.mlp = pointwise_mlp([2 * dim, 2 * dim, dim])
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x, self.attn(x, source, source)], dim=1))


class AttentionalGNN(nn.Module):
    def __init__(self, dim: int, layer_types=LAYERS):
        super().__init__()
        self.types = tuple(layer_types)
        self.layers = nn.ModuleList([AttentionalPropagation(dim) for _ in self.types])

    def forward(self, desc0: torch.Tensor, desc1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer, kind in zip(self.layers, self.types):
            src0, src1 = (desc1, desc0) if kind == "cross" else (desc0, desc1)
            desc0, desc1 = desc0 + layer(desc0, src0), desc1 + layer(desc1, src1)
        return desc0, desc1


def log_optimal_transport(scores: torch.Tensor, bin_score: torch.Tensor, iterations: int) -> torch.Tensor:
    """Log assignment (B, M+1, N+1) from similarities (B, M, N): Sinkhorn in log space on the matrix
    augmented with a dustbin row and column that can absorb N (resp. M) unmatched points."""
    b, m, n = scores.shape
    couplings = bin_score.to(scores).expand(b, m + 1, n + 1).clone()
    couplings[:, :m, :n] = scores
    log_total = math.log(m + n)
    log_mu = scores.new_full((b, m + 1), -log_total)
    log_mu[:, m] = math.log(n) - log_total
    log_nu = scores.new_full((b, n + 1), -log_total)
    log_nu[:, n] = math.log(m) - log_total
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iterations):
        u = log_mu - torch.logsumexp(couplings + v[:, None, :], dim=2)
        v = log_nu - torch.logsumexp(couplings + u[:, :, None], dim=1)
    # scaled by M + N so that a confident match scores about 1
    return couplings + u[:, :, None] + v[:, None, :] + log_total


def mutual_matches(log_assignment: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For image 0: index of the match in image 1 (-1: none) and its probability, keeping only pairs
    that are each other's best and whose probability exceeds ``threshold``."""
    inner = log_assignment[:, :-1, :-1]
    best0, best1 = inner.max(dim=2), inner.max(dim=1)
    rows = torch.arange(inner.shape[1], device=inner.device)[None]
    mutual = best1.indices.gather(1, best0.indices) == rows
    prob = torch.where(mutual, best0.values.exp(), torch.zeros_like(best0.values))
    valid = mutual & (prob > threshold)
    return torch.where(valid, best0.indices, torch.full_like(best0.indices, -1)), prob


class SuperGlue(nn.Module):
    def __init__(self, descriptor_dim: int = 256, sinkhorn_iterations: int = 100, match_threshold: float = 0.2):
        super().__init__()
        self.dim = descriptor_dim
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.match_threshold = float(match_threshold)
        self.kenc = KeypointEncoder(descriptor_dim)
        self.gnn = AttentionalGNN(descriptor_dim)
        self.final_proj = nn.Conv1d(descriptor_dim, descriptor_dim, kernel_size=1, bias=True)
        self.bin_score = nn.Parameter(torch.tensor(1.0))

    def forward(self, kpts0, scores0, desc0, size0, kpts1, scores1, desc1, size1):
        """Keypoints (B, N, 2) in pixels, scores (B, N), descriptors (B, D, N), image sizes (W, H).
        Returns matches0 (B, N0) with -1 for unmatched, and their probabilities (B, N0)."""
        if kpts0.shape[1] == 0 or kpts1.shape[1] == 0:
            empty = kpts0.new_full(kpts0.shape[:2], -1, dtype=torch.long)
            return empty, kpts0.new_zeros(kpts0.shape[:2])
        d0 = desc0 + self.kenc(normalize_keypoints(kpts0, *size0), scores0)
        d1 = desc1 + self.kenc(normalize_keypoints(kpts1, *size1), scores1)
        d0, d1 = self.gnn(d0, d1)
        sim = torch.einsum("bdm,bdn->bmn", self.final_proj(d0), self.final_proj(d1)) / self.dim**0.5
        return mutual_matches(
            log_optimal_transport(sim, self.bin_score, self.sinkhorn_iterations), self.match_threshold
        )
