"""Prediction heads: DUSt3R ``linear`` and ``dpt``, MASt3R ``catmlp+dpt``, and the output activations.

Widths the official code hard-codes (DPT feature/last/layer widths, MLP hidden factor) are arguments here
with the official values as defaults; the tiny reference fixtures use smaller ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Mlp

# The DPT adapter turns token sequences back into maps assuming 16-pixel patches, whatever the
# network's own patch size (the official adapter is always built with its default patch size).
DPT_PATCH = 16


@dataclass(frozen=True)
class HeadWidths:
    dpt_feature_dim: int = 256
    dpt_last_dim: int = 128
    dpt_layer_dims: tuple = (96, 192, 384, 768)
    local_mlp_hidden_dim_factor: float = 4.0


# ---------------------------------------------------------------------------------------------------
# output activations
def activate_points(xyz: torch.Tensor, mode) -> torch.Tensor:
    kind = mode[0]
    if kind == "linear":
        return xyz
    dist = xyz.norm(dim=-1, keepdim=True)
    xyz = xyz / dist.clip(min=1e-8)
    if kind == "square":
        return xyz * dist.square()
    if kind == "exp":
        return xyz * torch.expm1(dist)
    raise ValueError(f"unknown depth_mode {kind!r}")


def activate_confidence(x: torch.Tensor, mode) -> torch.Tensor:
    kind, vmin, vmax = mode
    if kind == "exp":
        return vmin + x.exp().clip(max=vmax - vmin)
    if kind == "sigmoid":
        return (vmax - vmin) * torch.sigmoid(x) + vmin
    raise ValueError(f"unknown confidence mode {kind!r}")


def activate_outputs(
    raw: torch.Tensor, depth_mode, conf_mode, desc_dim: int | None = None, two_confs: bool = False, desc_conf_mode=None
) -> dict:
    """Raw head output (B, C, H, W) -> dict of (B, H, W[, D]) maps: pts3d, conf[, desc, desc_conf]."""
    fmap = raw.permute(0, 2, 3, 1)
    out = {"pts3d": activate_points(fmap[..., 0:3], depth_mode)}
    if conf_mode is not None:
        out["conf"] = activate_confidence(fmap[..., 3], conf_mode)
    if desc_dim is not None:
        start = 3 + int(conf_mode is not None)
        desc = fmap[..., start : start + desc_dim]
        out["desc"] = desc / desc.norm(dim=-1, keepdim=True)
        if two_confs:
            out["desc_conf"] = activate_confidence(fmap[..., start + desc_dim], desc_conf_mode or conf_mode)
        else:
            out["desc_conf"] = out["conf"].clone()
    return out


# ---------------------------------------------------------------------------------------------------
# DPT
class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """``refinenetN``: out_conv(upsample2x(rcu2(a + rcu1(b)))); ``resConfUnit1`` is unused with one input."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Upsample2x(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DPT(nn.Module):
    """The DPT adapter (``downstream_headN.dpt``): four hooked token maps, resampled x4, x2, x1, /2,
    projected to ``feature_dim``, fused coarse to fine, then the output convs at full resolution."""

    def __init__(self, hooks, dim_tokens, num_channels: int, widths: HeadWidths):
        super().__init__()
        self.hooks = list(hooks)
        fdim, ldims = widths.dpt_feature_dim, list(widths.dpt_layer_dims)
        self.scratch = nn.Module()
        rn = [nn.Conv2d(ldims[i], fdim, 3, padding=1, bias=False) for i in range(4)]
        for i, conv in enumerate(rn):
            setattr(self.scratch, f"layer{i + 1}_rn", conv)
        # the same four convs again under a second name: the released state dicts carry both keys
        self.scratch.layer_rn = nn.ModuleList(rn)
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(fdim))
        self.head = nn.Sequential(
            nn.Conv2d(fdim, fdim // 2, 3, padding=1),
            Upsample2x(),
            nn.Conv2d(fdim // 2, widths.dpt_last_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(widths.dpt_last_dim, num_channels, 1),
        )
        self.act_postprocess = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(dim_tokens[0], ldims[0], 1), nn.ConvTranspose2d(ldims[0], ldims[0], 4, stride=4)
                ),
                nn.Sequential(
                    nn.Conv2d(dim_tokens[1], ldims[1], 1), nn.ConvTranspose2d(ldims[1], ldims[1], 2, stride=2)
                ),
                nn.Sequential(nn.Conv2d(dim_tokens[2], ldims[2], 1)),
                nn.Sequential(
                    nn.Conv2d(dim_tokens[3], ldims[3], 1), nn.Conv2d(ldims[3], ldims[3], 3, stride=2, padding=1)
                ),
            ]
        )

    def forward(self, tokens: list, hw) -> torch.Tensor:
        rows, cols = hw[0] // DPT_PATCH, hw[1] // DPT_PATCH
        maps = []
        for k, hook in enumerate(self.hooks):
            t = tokens[hook]
            t = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], rows, cols)
            maps.append(self.scratch.layer_rn[k](self.act_postprocess[k](t)))
        s = self.scratch
        # the /2 branch rounds up, so its upsampled fusion is cropped back to the token grid
        path = s.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        path = s.refinenet3(path, maps[2])
        path = s.refinenet2(path, maps[1])
        path = s.refinenet1(path, maps[0])
        return self.head(path)


def dpt_hooks(dec_depth: int) -> list:
    return [0, dec_depth * 2 // 4, dec_depth * 3 // 4, dec_depth]


# ---------------------------------------------------------------------------------------------------
# heads: forward(tokens, (H, W)) -> dict; raw(tokens, (H, W)) -> (B, C, H, W) before activations
class _Head(nn.Module):
    def __init__(self, depth_mode, conf_mode):
        super().__init__()
        self.depth_mode = depth_mode
        self.conf_mode = conf_mode

    def forward(self, tokens: list, hw) -> dict:
        return activate_outputs(self.raw(tokens, hw), self.depth_mode, self.conf_mode)


class LinearHead(_Head):
    """DUSt3R ``linear``: one Linear per token of the last decoder layer, pixel-shuffled to full size."""

    def __init__(self, dec_dim: int, patch_size: int, depth_mode, conf_mode):
        super().__init__(depth_mode, conf_mode)
        self.patch_size = patch_size
        self.proj = nn.Linear(dec_dim, (3 + int(bool(conf_mode))) * patch_size**2)

    def raw(self, tokens, hw):
        feat = self.proj(tokens[-1])
        b, p = feat.shape[0], self.patch_size
        feat = feat.transpose(-1, -2).reshape(b, -1, hw[0] // p, hw[1] // p)
        return F.pixel_shuffle(feat, p)


class DPTHead(_Head):
    """DUSt3R ``dpt``."""

    def __init__(self, enc_dim, dec_dim, dec_depth, depth_mode, conf_mode, widths: HeadWidths):
        super().__init__(depth_mode, conf_mode)
        self.dpt = DPT(dpt_hooks(dec_depth), [enc_dim, dec_dim, dec_dim, dec_dim], 3 + int(bool(conf_mode)), widths)

    def raw(self, tokens, hw):
        return self.dpt(tokens, hw)


class CatMlpDPTHead(DPTHead):
    """MASt3R ``catmlp+dpt``: the DPT for points/confidence plus a per-token MLP on
    [encoder output, last decoder output] pixel-shuffled into descriptors (+ descriptor confidence)."""

    def __init__(
        self,
        enc_dim,
        dec_dim,
        dec_depth,
        depth_mode,
        conf_mode,
        widths: HeadWidths,
        *,
        patch_size: int,
        desc_dim: int,
        two_confs: bool,
        desc_conf_mode,
    ):
        super().__init__(enc_dim, dec_dim, dec_depth, depth_mode, conf_mode, widths)
        self.patch_size = patch_size
        self.desc_dim = desc_dim
        self.two_confs = two_confs
        self.desc_conf_mode = desc_conf_mode
        idim = enc_dim + dec_dim
        self.head_local_features = Mlp(
            idim, int(widths.local_mlp_hidden_dim_factor * idim), (desc_dim + int(two_confs)) * patch_size**2
        )

    def raw(self, tokens, hw):
        pts = self.dpt(tokens, hw)
        feat = self.head_local_features(torch.cat((tokens[0], tokens[-1]), dim=-1))
        b, p = feat.shape[0], self.patch_size
        feat = F.pixel_shuffle(feat.transpose(-1, -2).reshape(b, -1, hw[0] // p, hw[1] // p), p)
        return torch.cat((pts, feat), dim=1)

    def forward(self, tokens, hw):
        return activate_outputs(
            self.raw(tokens, hw), self.depth_mode, self.conf_mode, self.desc_dim, self.two_confs, self.desc_conf_mode
        )
