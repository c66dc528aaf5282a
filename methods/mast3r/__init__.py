"""Our implementation of the DUSt3R/MASt3R networks: loads the released checkpoints and reproduces the
official outputs (see ../shared/fixtures/mast3r for the reference and tolerances).

    from methods.mast3r import load_model, load_images, infer_pair
    model = load_model("MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric", device="cuda")
    view1, view2 = load_images(["a.jpg", "b.jpg"], size=512)
    res1, res2 = infer_pair(model, view1, view2, autocast_dtype=torch.bfloat16)
"""

import importlib

# The networks need torch; the method registry imports this package to list the methods, so each
# name is imported from its module on first use only.
_EXPORTS = {
    "checkpoint": (
        "NetworkSpec",
        "build_network",
        "load_model",
        "load_weights",
        "parse_constructor",
        "read_checkpoint",
    ),
    "releases": ("DUST3R_DEFAULT", "KNOWN_NAMES", "MAST3R_DEFAULT"),
    "images": ("ImageTransform", "load_images", "preprocess_image"),
    "inference": ("collate", "infer_pair", "infer_pairs"),
    "model": ("Dust3rNet", "Mast3rNet"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
