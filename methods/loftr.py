"""The ``loftr`` method: detector-free dense matching with LoFTR (Sun et al., CVPR 2021) as kornia
implements it, loading the released checkpoints (a dict whose ``state_dict`` holds the weights).

``weights``: outdoor (MegaDepth) | indoor (ScanNet) | indoor_new (ScanNet, retrained with the
positional-encoding fix) | a ``.ckpt`` path. None of them is on PyPI: put the file in the weights
cache, or pass ``--set method.weights=PATH``. Images are read as LoFTR's test loaders read them
(straight to grey, resized as uint8; ``methods.preprocess.loftr_input``): ScanNet pairs at 640 x 480
(the dataset resizes), MegaDepth with the long side at 840 px, sides floored to multiples of 8, zero-padded
to a square with a mask (``resize_max: 840``, ``resize_force``, ``pad``). Keypoints come back as the
official code reports them (network pixels times the resize factors). ``match_threshold`` is the
coarse-level confidence (0.2); ``max_matches`` keeps the most confident ones (-1: all).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.io import GRAY
from benchmark.registry import METHODS
from benchmark.types import Matches

from . import kornia_cache
from .checkpoints import WeightFile, load_weight_file
from .learned import TORCH_CONF, TorchMatcher, as_numpy, strongest, to_matches
from .preprocess import NetInput, loftr_input
from .weights import KnownWeights

VARIANTS = {"outdoor": "loftr_outdoor", "indoor": "loftr_indoor", "indoor_new": "loftr_indoor_new"}

_URL = "https://huggingface.co/kornia/loftr/resolve/main/{}"
_SOURCE = "LoFTR (Sun et al., CVPR 2021), zju3dv/LoFTR"
kornia_cache.register_kornia_weights(
    *(
        KnownWeights(name, file, _URL.format(file), "Apache-2.0", f"{_SOURCE}, {trained}", method="loftr")
        for name, file, trained in (
            ("loftr_outdoor", "loftr_outdoor.ckpt", "MegaDepth"),
            ("loftr_indoor", "loftr_indoor.ckpt", "ScanNet"),
            ("loftr_indoor_new", "loftr_indoor_ds_new.ckpt", "ScanNet, retrained"),
        )
    )
)


@METHODS.register("loftr")
class LoFTRMatcher(TorchMatcher):
    """LoFTR detector-free dense matching (kornia), indoor or outdoor released weights."""

    image_reading = GRAY  # LoFTR's loaders: cv2.IMREAD_GRAYSCALE, then the resize on uint8
    default_conf = {
        **TORCH_CONF,
        "weights": "outdoor",
        "match_threshold": 0.2,
        "max_matches": -1,
        "temp_bug_fix": None,  # positional-encoding fix; null: true only for indoor_new (as trained)
        "pad": False,  # zero-pad to a square with a mask, as the MegaDepth test loader
    }
    conf_types = {"match_threshold": Key(float, min=0, max=1), "temp_bug_fix": bool | None}

    def check(self) -> None:
        super().check()
        kornia_cache.require_kornia("LoFTR matcher")
        self.weights_path()

    def weights_path(self) -> Path:
        spec = self.conf["weights"]
        return kornia_cache.locate(VARIANTS.get(spec, spec), "loftr_outdoor", "LoFTR")

    def _network(self):
        import copy

        import kornia.feature as KF
        from kornia.feature.loftr.loftr import default_cfg

        cfg = copy.deepcopy(default_cfg)
        fix = self.conf["temp_bug_fix"]
        cfg["coarse"]["temp_bug_fix"] = self.conf["weights"] == "indoor_new" if fix is None else fix
        cfg["match_coarse"]["thr"] = self.conf["match_threshold"]
        return KF.LoFTR(pretrained=None, config=cfg)

    def weight_files(self) -> list[WeightFile]:
        path = self.weights_path()

        def state_dict(ckpt: dict) -> dict:
            if not isinstance(ckpt.get("state_dict"), dict):
                raise UserError(f"The LoFTR weight file {path} has no 'state_dict' entry; give a released LoFTR .ckpt.")
            return dict(ckpt["state_dict"])

        return [WeightFile(path, "LoFTR", self._network, state_dict=state_dict)]

    def _load(self) -> None:
        self._net = load_weight_file(self.weight_files()[0], self.device)

    def prepare(self, image) -> NetInput:
        return loftr_input(image, **self.resize_conf(), pad=self.conf["pad"])

    def _match_pairs(self, pairs) -> list[Matches]:
        """Pairs whose two input sizes agree share forward passes."""
        import torch

        inputs = [(self.prepare(a), self.prepare(b)) for a, b in pairs]
        with torch.inference_mode():
            return self.in_batches(
                inputs, lambda p: (p[0].image.shape, p[1].image.shape), self._forward, self.pairs_per_batch()
            )

    def _forward(self, chunk: list[tuple[NetInput, NetInput]]) -> list[Matches]:
        import torch

        batch = {}
        for k in (0, 1):
            batch[f"image{k}"] = torch.stack([p[k].image for p in chunk]).to(self.device)
            if chunk[0][k].mask is not None:
                batch[f"mask{k}"] = torch.stack([p[k].mask for p in chunk]).to(self.device)
        res = self._net(batch)
        out = []
        for j, (input0, input1) in enumerate(chunk):
            sel = res["batch_indexes"] == j
            confidence = as_numpy(res["confidence"][sel])
            # the official coordinates: kornia reads them in a frame with pixel centres at +0.5, but the
            # published numbers were computed with them as they are (README, pre-processing); most confident first
            out.append(
                to_matches(
                    input0.to_image(res["keypoints0"][sel]),
                    input1.to_image(res["keypoints1"][sel]),
                    confidence,
                    keep=strongest(confidence, self.conf["max_matches"]),
                )
            )
        return out
