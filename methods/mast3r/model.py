"""DUSt3R's asymmetric two-view network (``AsymmetricCroCo3DStereo``) and MASt3R's extension
(``AsymmetricMASt3R``), with the released constructors' arguments and state-dict layout.

``model(view1, view2)`` is a drop-in for the official forward: each view is a dict with ``img``
(B, 3, H, W, normalised to [-1, 1]) and ``true_shape`` (B, 2) (H, W); it returns ``res1`` (pts3d, conf
[, desc, desc_conf]) and ``res2`` (pts3d_in_other_view, conf [, desc, desc_conf]), view 2's points in
view 1's frame.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from benchmark.errors import UserError

from .blocks import LN_EPS, DecoderBlock, EncoderBlock, ManyARPatchEmbed, PatchEmbed, RoPE2D
from .heads import CatMlpDPTHead, DPTHead, HeadWidths, LinearHead

PATCH_EMBEDS = {"PatchEmbedDust3R": PatchEmbed, "ManyAR_PatchEmbed": ManyARPatchEmbed}
FREEZE_MODES = ("none", "mask", "encoder")


class ConfigError(UserError, ValueError):
    """A constructor argument the network cannot be built with."""


def _mode(value, name):
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str):
        return (value[0], float(value[1]), float(value[2]))
    raise ConfigError(f"{name} must be a (mode, min, max) tuple such as ('exp', 1, inf), got {value!r}")


class Dust3rNet(nn.Module):
    """``AsymmetricCroCo3DStereo``: shared ViT encoder, two cross-attending decoders, one head per view."""

    official_name = "AsymmetricCroCo3DStereo"
    family = "dust3r"

    def __init__(
        self,
        output_mode="pts3d",
        head_type="linear",
        depth_mode=("exp", -math.inf, math.inf),
        conf_mode=("exp", 1, math.inf),
        freeze="none",
        landscape_only=True,
        patch_embed_cls="PatchEmbedDust3R",
        img_size=224,
        patch_size=16,
        mask_ratio=0.9,
        enc_embed_dim=768,
        enc_depth=12,
        enc_num_heads=12,
        dec_embed_dim=512,
        dec_depth=8,
        dec_num_heads=16,
        mlp_ratio=4,
        norm_im2_in_dec=True,
        pos_embed="cosine",
        dpt_feature_dim=256,
        dpt_last_dim=128,
        dpt_layer_dims=(96, 192, 384, 768),
        local_mlp_hidden_dim_factor=4.0,
    ):
        super().__init__()
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ConfigError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        if patch_embed_cls not in PATCH_EMBEDS:
            raise ConfigError(f"unknown patch_embed_cls {patch_embed_cls!r}; expected one of {sorted(PATCH_EMBEDS)}")
        if not (isinstance(pos_embed, str) and pos_embed.startswith("RoPE")):
            raise ConfigError(f"pos_embed {pos_embed!r} is not supported; the released models use 'RoPE100'")
        try:
            rope_base = float(pos_embed[4:])
        except ValueError:
            raise ConfigError(f"pos_embed {pos_embed!r} must be 'RoPE' followed by a number") from None
        if freeze not in FREEZE_MODES:
            raise ConfigError(f"freeze must be one of {FREEZE_MODES}, got {freeze!r}")
        for dim, heads, what in ((enc_embed_dim, enc_num_heads, "enc"), (dec_embed_dim, dec_num_heads, "dec")):
            if dim % heads or (dim // heads) % 4:
                raise ConfigError(
                    f"{what}_embed_dim {dim} / {what}_num_heads {heads} must give a head "
                    "dimension divisible by 4 (2D RoPE)"
                )
        self.depth_mode = _mode(depth_mode, "depth_mode")
        self.conf_mode = _mode(conf_mode, "conf_mode")
        if self.depth_mode is None or self.depth_mode[1:] != (-math.inf, math.inf):
            raise ConfigError(f"depth_mode must be unbounded, e.g. ('exp', -inf, inf), got {depth_mode!r}")
        self.output_mode, self.head_type, self.freeze = output_mode, head_type, freeze
        self.landscape_only = bool(landscape_only)
        self.patch_embed_cls = patch_embed_cls
        self.img_size, self.patch_size, self.mask_ratio = img_size, patch_size, mask_ratio
        self.enc_embed_dim, self.enc_depth, self.dec_embed_dim, self.dec_depth = (
            enc_embed_dim,
            enc_depth,
            dec_embed_dim,
            dec_depth,
        )
        self.widths = HeadWidths(
            dpt_feature_dim, dpt_last_dim, tuple(dpt_layer_dims), float(local_mlp_hidden_dim_factor)
        )
        self.rope = RoPE2D(rope_base)

        # registration order = state-dict order of the released checkpoints
        self.patch_embed = PATCH_EMBEDS[patch_embed_cls](img_size, patch_size, 3, enc_embed_dim)
        self.enc_blocks = nn.ModuleList(EncoderBlock(enc_embed_dim, enc_num_heads, mlp_ratio) for _ in range(enc_depth))
        self.enc_norm = nn.LayerNorm(enc_embed_dim, eps=LN_EPS)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_embed_dim))  # training only
        self.decoder_embed = nn.Linear(enc_embed_dim, dec_embed_dim)
        self.dec_blocks = nn.ModuleList(
            DecoderBlock(dec_embed_dim, dec_num_heads, mlp_ratio, norm_im2_in_dec) for _ in range(dec_depth)
        )
        self.dec_norm = nn.LayerNorm(dec_embed_dim, eps=LN_EPS)
        self.dec_blocks2 = nn.ModuleList(
            DecoderBlock(dec_embed_dim, dec_num_heads, mlp_ratio, norm_im2_in_dec) for _ in range(dec_depth)
        )
        self.downstream_head1 = self._make_head()
        self.downstream_head2 = self._make_head()
        if freeze != "none":  # kept for fidelity with the official constructor (training only)
            frozen = [self.mask_token] + (
                list(self.patch_embed.parameters()) + list(self.enc_blocks.parameters()) if freeze == "encoder" else []
            )
            for p in frozen:
                p.requires_grad_(False)

    def _check_dpt_depth(self):
        if self.dec_depth < 10:
            raise ConfigError(f"the dpt heads need dec_depth >= 10 (as in the official code), got {self.dec_depth}")

    def _make_head(self):
        if self.output_mode != "pts3d" or self.head_type not in ("linear", "dpt"):
            raise ConfigError(
                f"unsupported head_type={self.head_type!r} with output_mode={self.output_mode!r} for "
                "AsymmetricCroCo3DStereo (expected 'linear' or 'dpt' with 'pts3d')"
            )
        if self.head_type == "linear":
            return LinearHead(self.dec_embed_dim, self.patch_size, self.depth_mode, self.conf_mode)
        self._check_dpt_depth()
        return DPTHead(
            self.enc_embed_dim, self.dec_embed_dim, self.dec_depth, self.depth_mode, self.conf_mode, self.widths
        )

    # ------------------------------------------------------------------------------------------------
    def encode(self, img: torch.Tensor, true_shape: torch.Tensor):
        x, pos = self.patch_embed(img, true_shape)
        rope = self.rope.tables(pos, self.enc_blocks[0].attn.head_dim) if len(self.enc_blocks) else None
        for blk in self.enc_blocks:
            x = blk(x, rope)
        return self.enc_norm(x), pos

    def _encode_pair(self, img1, img2, shape1, shape2):
        if img1.shape[-2:] == img2.shape[-2:]:
            feat, pos = self.encode(torch.cat((img1, img2)), torch.cat((shape1, shape2)))
            return feat.chunk(2) + pos.chunk(2)
        (f1, p1), (f2, p2) = self.encode(img1, shape1), self.encode(img2, shape2)
        return f1, f2, p1, p2

    def decode(self, f1, pos1, f2, pos2):
        """Per view: [encoder output, decoder block 1 .. L-1, dec_norm(block L)]."""
        head_dim = self.dec_blocks[0].attn.head_dim
        r1, r2 = self.rope.tables(pos1, head_dim), self.rope.tables(pos2, head_dim)
        out1, out2 = [f1], [f2]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for blk1, blk2 in zip(self.dec_blocks, self.dec_blocks2):
            # both blocks read the previous layer of both views
            x1, x2 = blk1(x1, x2, r1, r2), blk2(x2, x1, r2, r1)
            out1.append(x1)
            out2.append(x2)
        out1[-1], out2[-1] = self.dec_norm(out1[-1]), self.dec_norm(out2[-1])
        return out1, out2

    def run_head(self, head: nn.Module, tokens: list, true_shape: torch.Tensor) -> dict:
        """Apply a head with the official landscape/portrait handling."""
        shape = true_shape.to("cpu")
        if not self.landscape_only:
            if not bool((shape == shape[0:1]).all()):
                raise ValueError("with landscape_only=False every item of a batch must have the same true_shape")
            return head(tokens, tuple(int(v) for v in shape[0]))
        h, w = int(shape.min()), int(shape.max())
        portrait = shape[:, 1] < shape[:, 0]
        if not portrait.any():
            return head(tokens, (h, w))
        if portrait.all():
            return _transposed(head(tokens, (w, h)))
        landscape = ~portrait
        res_l = head([t[landscape.to(t.device)] for t in tokens], (h, w))
        res_p = _transposed(head([t[portrait.to(t.device)] for t in tokens], (w, h)))
        out = {}
        for key, val in res_l.items():
            full = val.new_empty((len(shape),) + tuple(val.shape[1:]))
            full[landscape.to(val.device)] = val
            full[portrait.to(val.device)] = res_p[key]
            out[key] = full
        return out

    def forward(self, view1: dict, view2: dict):
        img1, img2 = view1["img"], view2["img"]
        shape1 = _true_shape(view1, img1)
        shape2 = _true_shape(view2, img2)
        if _is_symmetrized(view1, view2):
            # items 2k and 2k+1 are one pair in both orders: encode the even items only
            f1, f2, p1, p2 = self._encode_pair(img1[::2], img2[::2], shape1[::2], shape2[::2])
            f1, f2 = _interleave(f1, f2)
            p1, p2 = _interleave(p1, p2)
        else:
            f1, f2, p1, p2 = self._encode_pair(img1, img2, shape1, shape2)
        dec1, dec2 = self.decode(f1, p1, f2, p2)
        with torch.autocast(device_type=img1.device.type, enabled=False):
            res1 = self.run_head(self.downstream_head1, [t.float() for t in dec1], shape1)
            res2 = self.run_head(self.downstream_head2, [t.float() for t in dec2], shape2)
        res2["pts3d_in_other_view"] = res2.pop("pts3d")
        return res1, res2


class Mast3rNet(Dust3rNet):
    """``AsymmetricMASt3R``: DUSt3R plus a local-feature MLP head (``catmlp+dpt``, ``pts3d+descN``)."""

    official_name = "AsymmetricMASt3R"
    family = "mast3r"

    def __init__(self, desc_mode="norm", two_confs=False, desc_conf_mode=None, **kwargs):
        if "norm" not in desc_mode:
            raise ConfigError(f"desc_mode must be 'norm', got {desc_mode!r}")
        self.desc_mode = desc_mode
        self.two_confs = bool(two_confs)
        self._desc_conf_mode = _mode(desc_conf_mode, "desc_conf_mode")
        super().__init__(**kwargs)

    def _make_head(self):
        if self.head_type != "catmlp+dpt" or not str(self.output_mode).startswith("pts3d+desc"):
            raise ConfigError(
                f"unsupported head_type={self.head_type!r} with output_mode={self.output_mode!r} for "
                "AsymmetricMASt3R (expected 'catmlp+dpt' with 'pts3d+descN')"
            )
        try:
            desc_dim = int(self.output_mode[len("pts3d+desc") :])
        except ValueError:
            raise ConfigError(f"output_mode {self.output_mode!r} must end with the descriptor size") from None
        self._check_dpt_depth()
        return CatMlpDPTHead(
            self.enc_embed_dim,
            self.dec_embed_dim,
            self.dec_depth,
            self.depth_mode,
            self.conf_mode,
            self.widths,
            patch_size=self.patch_size,
            desc_dim=desc_dim,
            two_confs=self.two_confs,
            desc_conf_mode=self.desc_conf_mode,
        )

    @property
    def desc_conf_mode(self):
        return self._desc_conf_mode or self.conf_mode


NETWORKS = {cls.official_name: cls for cls in (Dust3rNet, Mast3rNet)}


def _true_shape(view: dict, img: torch.Tensor) -> torch.Tensor:
    shape = view.get("true_shape")
    if shape is None:
        return torch.tensor(img.shape[-2:])[None].repeat(img.shape[0], 1)
    return torch.as_tensor(shape).reshape(-1, 2)


def _is_symmetrized(view1: dict, view2: dict) -> bool:
    a, b = view1.get("instance"), view2.get("instance")
    if a is None or b is None or len(a) != len(b) or len(a) < 2 or len(a) % 2:
        return False
    return all(a[i] == b[i + 1] and a[i + 1] == b[i] for i in range(0, len(a), 2))


def _interleave(t1, t2):
    return torch.stack((t1, t2), dim=1).flatten(0, 1), torch.stack((t2, t1), dim=1).flatten(0, 1)


def _transposed(res: dict) -> dict:
    return {k: v.swapaxes(1, 2) for k, v in res.items()}
