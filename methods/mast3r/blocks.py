"""Transformer pieces of the CroCo/DUSt3R/MASt3R backbone: patch embeddings, 2D RoPE, attention, blocks.

Module and parameter names follow the released checkpoints (``proj``, ``qkv``, ``projq`` ...), so their
state dicts load without renaming.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6

# "sdpa" (default) or "explicit" (softmax(q k^T) v written out, as the official code does); the latter
# only exists so that benchmarks/mast3r_forward.py can measure a baseline in the same run.
_ATTENTION = {"impl": "sdpa"}


@contextlib.contextmanager
def attention_impl(name: str):
    if name not in ("sdpa", "explicit"):
        raise ValueError(f"attention implementation must be 'sdpa' or 'explicit', got {name!r}")
    previous = _ATTENTION["impl"]
    _ATTENTION["impl"] = name
    try:
        yield
    finally:
        _ATTENTION["impl"] = previous


def grid_positions(batch: int, rows: int, cols: int, device) -> torch.Tensor:
    """(batch, rows*cols, 2) int64 (y, x) positions of a row-major token grid."""
    ys = torch.arange(rows, device=device).repeat_interleave(cols)
    xs = torch.arange(cols, device=device).repeat(rows)
    return torch.stack((ys, xs), dim=-1)[None].expand(batch, -1, -1).clone()


class PatchEmbed(nn.Module):
    """``PatchEmbedDust3R``: non-overlapping p x p convolution, tokens row-major, (y, x) positions."""

    def __init__(self, img_size=(224, 224), patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.img_size = tuple(img_size)
        self.patch_size = (patch_size, patch_size)
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def _check(self, img: torch.Tensor) -> None:
        h, w = img.shape[-2:]
        if h % self.patch_size[0] or w % self.patch_size[1]:
            raise ValueError(f"image size {h}x{w} must be a multiple of the patch size {self.patch_size[0]}")

    def forward(self, img: torch.Tensor, true_shape: torch.Tensor | None = None):
        self._check(img)
        x = self.proj(img)
        pos = grid_positions(x.shape[0], x.shape[2], x.shape[3], img.device)
        return x.flatten(2).transpose(1, 2), pos


class ManyARPatchEmbed(PatchEmbed):
    """``ManyAR_PatchEmbed`` (the training form): the batch is given landscape; items whose ``true_shape``
    is portrait are transposed back before the convolution, so their tokens follow the portrait grid."""

    def forward(self, img: torch.Tensor, true_shape: torch.Tensor | None = None):
        self._check(img)
        b, _, h, w = img.shape
        if w < h:
            raise ValueError(f"ManyAR_PatchEmbed expects landscape tensors (W >= H), got {h}x{w}")
        if true_shape is None:
            true_shape = torch.tensor([[h, w]], device=img.device).expand(b, 2)
        rows, cols = h // self.patch_size[0], w // self.patch_size[1]
        portrait = (true_shape[:, 1] < true_shape[:, 0]).to(img.device)
        landscape = ~portrait
        x = img.new_zeros((b, rows * cols, self.embed_dim), dtype=torch.float32)
        pos = torch.zeros((b, rows * cols, 2), dtype=torch.int64, device=img.device)
        if landscape.any():
            x[landscape] = self.proj(img[landscape]).flatten(2).transpose(1, 2).float()
            pos[landscape] = grid_positions(1, rows, cols, img.device)
        if portrait.any():
            x[portrait] = self.proj(img[portrait].transpose(-1, -2)).flatten(2).transpose(1, 2).float()
            pos[portrait] = grid_positions(1, cols, rows, img.device)
        return x, pos


class RoPE2D:
    """2D rotary embedding: the first half of each head's channels turns with the row (y) position, the
    second half with the column (x) position; "rotate half" pairing inside each half.

    ``tables(pos, head_dim)`` is computed once per forward pass and shared by every attention layer."""

    def __init__(self, base: float = 100.0):
        self.base = float(base)

    def tables(self, pos: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        if head_dim % 4:
            raise ValueError(f"RoPE2D needs a head dimension divisible by 4, got {head_dim}")
        half = head_dim // 2
        # same float32 arithmetic as the reference: 1 / base^(2k/d), then position * frequency
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half, 2, device=pos.device).float() / half))
        angles = pos.float()[..., None] * inv_freq  # (B, N, 2, half/2)
        angles = torch.cat((angles, angles), dim=-1).flatten(-2)  # (B, N, head_dim): [y | x]
        return angles.cos()[:, None], angles.sin()[:, None]  # broadcast over heads

    @staticmethod
    def apply(t: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        cos, sin = (c.to(t.dtype) for c in tables)
        q = t.shape[-1] // 4
        u = t.unflatten(-1, (2, 2, q))  # (..., axis, half-of-axis, q)
        rotated = torch.stack((-u[..., 1, :], u[..., 0, :]), dim=-2).flatten(-3)
        return t * cos + rotated * sin


def _attend(q, k, v, scale):
    if _ATTENTION["impl"] == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1) @ v


class _Heads(nn.Module):
    """What both attentions share: the split into heads and the softmax scale."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5


class Attention(_Heads):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__(dim, num_heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, rope):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = RoPE2D.apply(q, rope), RoPE2D.apply(k, rope)
        out = _attend(q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(_Heads):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__(dim, num_heads)
        self.projq = nn.Linear(dim, dim, bias=qkv_bias)
        self.projk = nn.Linear(dim, dim, bias=qkv_bias)
        self.projv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, t):
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, query, memory, rope_q, rope_k):
        b, n, c = query.shape
        q, k, v = self._heads(self.projq(query)), self._heads(self.projk(memory)), self._heads(self.projv(memory))
        if rope_q is not None:
            q, k = RoPE2D.apply(q, rope_q), RoPE2D.apply(k, rope_k)
        out = _attend(q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderBlock(nn.Module):
    """Pre-norm ViT block with RoPE self-attention (``enc_blocks.i``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, rope):
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention to the other view's (normalised) tokens, MLP (``dec_blocks.i``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_mem: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=LN_EPS) if norm_mem else nn.Identity()

    def forward(self, x, y, rope_x, rope_y):
        x = x + self.attn(self.norm1(x), rope_x)
        y = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y, rope_x, rope_y)
        return x + self.mlp(self.norm3(x))
