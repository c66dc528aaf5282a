"""Our implementation of the DUSt3R/MASt3R networks: loads the released checkpoints and reproduces the
official outputs (see ../shared/fixtures/mast3r for the reference and tolerances).

    from methods.mast3r import load_model, load_images, infer_pair
    model = load_model("MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric", device="cuda")
    view1, view2 = load_images(["a.jpg", "b.jpg"], size=512)
    res1, res2 = infer_pair(model, view1, view2, autocast_dtype=torch.bfloat16)
"""
from .checkpoint import (DUST3R_DEFAULT, KNOWN_NAMES, MAST3R_DEFAULT, NetworkSpec, build_network,  # noqa: F401
                         load_model, load_weights, parse_constructor, read_checkpoint)
from .images import ImageTransform, load_images, preprocess_image  # noqa: F401
from .inference import collate, infer_pair, infer_pairs  # noqa: F401
from .model import Dust3rNet, Mast3rNet  # noqa: F401
