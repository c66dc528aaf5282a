"""The released DUSt3R/MASt3R checkpoints: names, download addresses, licence, constructor strings, and
the lookup of a weights name or path. No torch here: the registry imports this to list the methods."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError
from methods import weights as weights_registry
from methods.weights import KnownWeights, register_weights

LICENCE = "CC BY-NC-SA 4.0 (non-commercial)"
_URL = "https://download.europe.naverlabs.com/ComputerVision"
MAST3R_DEFAULT = "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"
DUST3R_DEFAULT = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
_RELEASED = {
    MAST3R_DEFAULT: (
        "MASt3R",
        "mast3r",
        "Leroy et al., Grounding Image Matching in 3D with MASt3R, ECCV 2024; github.com/naver/mast3r",
    ),
    DUST3R_DEFAULT: (
        "DUSt3R",
        "dust3r",
        "Wang et al., DUSt3R: Geometric 3D Vision Made Easy, CVPR 2024; github.com/naver/dust3r",
    ),
    "DUSt3R_ViTLarge_BaseDecoder_512_linear": ("DUSt3R", "dust3r", "DUSt3R, CVPR 2024; github.com/naver/dust3r"),
    "DUSt3R_ViTLarge_BaseDecoder_224_linear": ("DUSt3R", "dust3r", "DUSt3R, CVPR 2024; github.com/naver/dust3r"),
}
register_weights(
    *(
        KnownWeights(
            name=name,
            filename=f"{name}.pth",
            url=f"{_URL}/{folder}/{name}.pth",
            licence=LICENCE,
            source=source,
            method=method,
        )
        for name, (folder, method, source) in _RELEASED.items()
    )
)
KNOWN_NAMES = tuple(_RELEASED)
DISPLAY = {"mast3r": "MASt3R", "dust3r": "DUSt3R"}

# Constructor strings of the released networks (as trained; from the official READMEs' training commands),
# usable as config= for bare state dicts and by benchmarks/ to build the full-size networks.
_VIT_L_BASE = (
    "depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, "
    "enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12"
)
RELEASED_CONSTRUCTORS = {
    MAST3R_DEFAULT: "AsymmetricMASt3R(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), "
    f"head_type='catmlp+dpt', output_mode='pts3d+desc24', {_VIT_L_BASE}, two_confs=True, "
    "desc_conf_mode=('exp', 0, inf))",
    DUST3R_DEFAULT: "AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', "
    f"img_size=(512, 512), head_type='dpt', output_mode='pts3d', {_VIT_L_BASE})",
    "DUSt3R_ViTLarge_BaseDecoder_512_linear": "AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls="
    "'ManyAR_PatchEmbed', img_size=(512, 512), head_type='linear', output_mode='pts3d', "
    f"{_VIT_L_BASE})",
    "DUSt3R_ViTLarge_BaseDecoder_224_linear": "AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), "
    f"head_type='linear', output_mode='pts3d', {_VIT_L_BASE})",
}


def resolve_weights(spec, allow_download: bool = False) -> Path:
    """A path, a known name (also 'naver/<name>'), or None (the released MASt3R) -> local path."""
    name = str(spec) if spec not in (None, "") else MAST3R_DEFAULT
    if name.startswith("naver/") and name[len("naver/") :] in KNOWN_NAMES and not Path(name).exists():
        name = name[len("naver/") :]
    try:
        return weights_registry.resolve(name, MAST3R_DEFAULT, what="DUSt3R/MASt3R")
    except UserError:
        if allow_download and name in weights_registry.KNOWN:
            return weights_registry.download(weights_registry.KNOWN[name])
        raise
