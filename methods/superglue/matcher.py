"""The ``superglue`` method: SuperPoint keypoints matched by SuperGlue (our implementation, loading the
released Magic Leap weights).

Defaults are those of the released ``match_pairs.py`` that produced the published ScanNet numbers:
1024 keypoints, keypoint threshold 0.005, NMS radius 4, border 4, 20 Sinkhorn iterations (the network's
own default is 100), match threshold 0.2; the image is used at the size the dataset gives (ScanNet:
640 x 480); the outdoor preset resizes to 1600 px, on the float image (YFCC protocol: ``--resize 1600
--resize_float``). Images are read as ``match_pairs.py`` reads them: straight to grey, resized as uint8
(``methods.preprocess.superglue_input``). ``weights``: indoor | outdoor | a file path.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.config_types import Key
from benchmark.io import GRAY
from benchmark.registry import METHODS

from ..checkpoints import WeightFile, load_weight_file
from ..learned import TORCH_CONF, TorchMatcher
from ..preprocess import NetInput, superglue_input
from ..weights import KnownWeights, register_weights, resolve

_RAW = "https://raw.githubusercontent.com/magicleap/SuperGluePretrainedNetwork/master/models/weights/{}"
_LICENCE = "academic/non-commercial (Magic Leap)"
_SOURCE = "SuperGlue (Sarlin et al., CVPR 2020), magicleap/SuperGluePretrainedNetwork"
register_weights(  # SuperPoint's weights are registered beside its extractor (methods.local_features)
    KnownWeights(
        "superglue_indoor",
        "superglue_indoor.pth",
        _RAW.format("superglue_indoor.pth"),
        _LICENCE,
        _SOURCE,
        method="superglue",
    ),
    KnownWeights(
        "superglue_outdoor",
        "superglue_outdoor.pth",
        _RAW.format("superglue_outdoor.pth"),
        _LICENCE,
        _SOURCE,
        method="superglue",
    ),
)


@METHODS.register("superglue")
class SuperGlueMatcher(TorchMatcher):
    """Our SuperPoint + SuperGlue (indoor/outdoor), loading the released weight files."""

    features = "superpoint"
    image_reading = GRAY  # match_pairs.py: cv2.IMREAD_GRAYSCALE, then the resize on uint8
    default_conf = {
        **TORCH_CONF,
        "weights": "indoor",  # indoor | outdoor | a superglue_*.pth path
        "detector_weights": None,  # SuperPoint: null = superpoint_v1, or a path
        "max_keypoints": 1024,  # -1: all
        "detection_threshold": 0.005,  # SuperPoint's keypoint_threshold
        "nms_radius": 4,
        "remove_borders": 4,
        "sinkhorn_iterations": 20,
        "match_threshold": 0.2,
        "resize_float": False,  # match_pairs.py --resize_float: resize the float image, not the uint8 one
    }
    conf_types = {
        "remove_borders": Key(int, min=0),
        "sinkhorn_iterations": Key(int, min=1),
        "match_threshold": Key(float, min=0, max=1),
    }

    def check(self) -> None:
        super().check()
        self.superglue_path()

    def superglue_path(self) -> Path:
        spec = self.conf["weights"]
        if spec in ("indoor", "outdoor"):
            spec = f"superglue_{spec}"
        return resolve(spec, "superglue_indoor", what="SuperGlue")

    def prepare(self, image) -> NetInput:
        return superglue_input(image, **self.resize_conf(), resize_float=self.conf["resize_float"])

    def _network(self):
        from .superglue import SuperGlue

        return SuperGlue(
            sinkhorn_iterations=self.conf["sinkhorn_iterations"], match_threshold=self.conf["match_threshold"]
        )

    def weight_files(self) -> list[WeightFile]:
        return super().weight_files() + [WeightFile(self.superglue_path(), "SuperGlue", self._network)]

    def _load(self) -> None:
        super()._load()
        self._superglue = load_weight_file(self.weight_files()[-1], self.device)

    def _pair(self, feats0, feats1, input0, input1):
        import torch

        def batched(f):
            return f["keypoints"][None], f["scores"][None], f["descriptors"].t()[None]

        k0, s0, d0 = batched(feats0)
        k1, s1, d1 = batched(feats1)
        # network-input pixels normalised by the network input's size, as match_pairs.py runs it
        matches0, prob = self._superglue(k0, s0, d0, input0.net_size, k1, s1, d1, input1.net_size)
        i0 = torch.nonzero(matches0[0] >= 0).reshape(-1)
        return torch.stack([i0, matches0[0, i0]], dim=1), prob[0, i0]
