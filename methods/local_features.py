"""Learned keypoint extractors (DISK, ALIKED, XFeat through kornia's networks; SuperPoint, our own), each a
small class with its released defaults, official image recipe, weight file and registered weights.

A keypoint matcher (``methods.learned.TorchMatcher``) builds the one its config names: the keys of
``FEATURE_CONF`` are ``features`` (disk | aliked | xfeat | superpoint), ``max_keypoints`` (-1: all),
``detection_threshold`` and ``nms_radius`` (null: the extractor's own default, below) and
``detector_weights`` (registered name or path; null: the extractor's default). An extractor maps a
(B, C, h, w) batch in [0, 1] to per-image keypoints (x, y) in the pixels of that batch, detection scores
and L2-normalised descriptors. Recipes (``methods.preprocess``): DISK, ALIKED and SuperPoint as
LightGlue's ``Extractor.extract``, XFeat as its ``match_xfeat``; ALIKED and XFeat select keypoints as
their reference code does (``methods.detection``). Nothing here imports torch or kornia at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar

from benchmark.config_types import Key
from benchmark.errors import UserError

from . import kornia_cache
from .checkpoints import WeightFile, load_weight_file
from .preprocess import NetInput, lightglue_input, xfeat_input
from .weights import KnownWeights, register_weights

_APACHE = "Apache-2.0"


class Extractor:
    """One kind of learned keypoints, set up by the method's config (the keys of ``FEATURE_CONF``)."""

    name: ClassVar[str] = "?"  # its value of method.features
    what: ClassVar[str] = "?"  # its name in messages
    weights: ClassVar[str] = "?"  # the registered weights used when method.detector_weights is null
    detection_threshold: ClassVar[float] = 0.0
    nms_radius: ClassVar[int | None] = None  # None: a window the network fixes (then the setting is refused)
    needs_kornia: ClassVar[bool] = True
    recipe: ClassVar[Callable] = staticmethod(lightglue_input)  # the official image -> network input
    optional: ClassVar[tuple[str, ...]] = ()  # buffers derived at run time, absent from the weight files

    def __init__(self, conf: dict):
        self.conf = conf
        n, threshold, radius = conf["max_keypoints"], conf["detection_threshold"], conf["nms_radius"]
        self.max_keypoints = n if n > 0 else -1
        self.threshold = self.detection_threshold if threshold is None else threshold
        self.radius = self.nms_radius if radius is None else radius

    def network(self):
        """The network, built but not loaded (its weight file fills it)."""
        raise NotImplementedError

    def module(self, net):
        """The part of the network the weight file fills."""
        return net

    def state_dict(self, content: dict) -> dict:
        """The weight file's content -> that part's state dict."""
        return content

    def __call__(self, batch) -> list[dict]:
        """(B, C, h, w) in [0, 1] on the device -> per image {keypoints, scores, descriptors}."""
        raise NotImplementedError

    def prepare(self, image, **resize) -> NetInput:
        return self.recipe(image, **resize)

    def path(self) -> Path:
        return kornia_cache.locate(
            self.conf["detector_weights"], self.weights, f"{self.name} detector", setting="method.detector_weights"
        )

    def weight_file(self) -> WeightFile:
        return WeightFile(self.path(), self.what, self.network, self.module, self.state_dict, self.optional)

    def check(self, resizes: bool) -> None:
        if self.needs_kornia or (self.recipe is lightglue_input and resizes):  # LightGlue resizes with kornia
            kornia_cache.require_kornia(f"'{self.name}' feature extractor")
        if self.nms_radius is None and self.conf["nms_radius"] is not None:
            raise UserError(f"method.nms_radius cannot be set for {self.name} (its window is fixed); leave it null.")
        self.path()

    def load(self, device) -> "Extractor":
        self.net = load_weight_file(self.weight_file(), device)
        return self


class Disk(Extractor):
    """DISK (Tyszkiewicz et al., NeurIPS 2020): kornia's network, LightGlue's defaults."""

    name, what, weights, detection_threshold, nms_radius = "disk", "DISK", "disk_depth", 0.0, 2

    def network(self):
        import kornia.feature as KF

        return KF.DISK()

    def state_dict(self, content: dict) -> dict:
        return content.get("extractor", content)

    def __call__(self, batch):
        n = self.max_keypoints
        out = self.net(
            batch,
            n=None if n < 0 else n,
            window_size=2 * self.radius + 1,
            score_threshold=self.threshold,
            pad_if_not_divisible=True,
        )
        return [{"keypoints": f.keypoints, "scores": f.detection_scores, "descriptors": f.descriptors} for f in out]


_DISK_URL = "https://raw.githubusercontent.com/cvlab-epfl/disk/master/{}"
_DISK_SOURCE = "DISK (Tyszkiewicz et al., NeurIPS 2020), cvlab-epfl/disk"
kornia_cache.register_kornia_weights(
    *(
        KnownWeights(name, file, _DISK_URL.format(file), _APACHE, _DISK_SOURCE, method="lightglue, mnn")
        for name, file in (("disk_depth", "depth-save.pth"), ("disk_epipolar", "epipolar-save.pth"))
    )
)


class Aliked(Extractor):
    """ALIKED (Zhao et al., IEEE TIM 2023): kornia's network (the variant named by its weights), keypoints
    selected as LightGlue's ALIKED does: top-k mode only without a positive threshold, at most 20000 points
    otherwise."""

    name, what, weights, detection_threshold, nms_radius = "aliked", "ALIKED", "aliked-n16", 0.2, 2
    optional = ("dkd.hw_grid",)  # derived from the image size
    models = ("aliked-n16", "aliked-n16rot", "aliked-n32", "aliked-t16")

    def network(self):
        import kornia.feature as KF

        spec = str(self.conf["detector_weights"] or self.weights)
        # the architecture is named by the weights: a registered name, or a file called like one
        model = next((m for m in self.models if Path(spec).stem == m or spec == m), "aliked-n16")
        return KF.ALIKED(
            model_name=model,
            max_num_keypoints=self.max_keypoints,
            detection_threshold=self.threshold,
            nms_radius=self.radius,
        )

    def __call__(self, batch):
        from .detection import aliked_keypoints

        n = self.max_keypoints
        top_k, n_limit = (-1 if self.threshold > 0 else n), (n if n > 0 else 20000)
        features, score_map = self.net.extract_dense_map(batch)
        keypoints, scores = aliked_keypoints(score_map, self.radius, top_k, self.threshold, n_limit)
        descriptors, _ = self.net.desc_head(features, keypoints)
        size = batch.new_tensor([batch.shape[-1] - 1, batch.shape[-2] - 1])
        return [
            {"keypoints": size * (k + 1) / 2.0, "scores": s, "descriptors": d}
            for k, s, d in zip(keypoints, scores, descriptors)
        ]


kornia_cache.register_kornia_weights(
    *(
        KnownWeights(
            m,
            f"{m}.pth",
            f"https://github.com/Shiaoming/ALIKED/raw/main/models/{m}.pth",
            "BSD-3-Clause",
            "ALIKED (Zhao et al., IEEE TIM 2023), Shiaoming/ALIKED",
            method="lightglue, mnn",
        )
        for m in Aliked.models
    )
)


class XFeat(Extractor):
    """XFeat (Potje et al., CVPR 2024): kornia's network, keypoints of ``XFeat.detectAndCompute``."""

    name, what, weights, detection_threshold = "xfeat", "XFeat", "xfeat", 0.05
    recipe = staticmethod(xfeat_input)

    def network(self):
        import kornia.feature as KF

        return KF.XFeat()

    def module(self, net):
        return net.net

    def __call__(self, batch):
        from .detection import xfeat_detect_and_compute

        n = self.max_keypoints
        return xfeat_detect_and_compute(self.net.net, batch, n if n > 0 else 1 << 30, self.threshold)


XFEAT_URL = "https://github.com/verlab/accelerated_features/raw/main/weights/{}"
kornia_cache.register_kornia_weights(
    KnownWeights(
        "xfeat",
        "xfeat.pt",
        XFEAT_URL.format("xfeat.pt"),
        _APACHE,
        "XFeat (Potje et al., CVPR 2024), verlab/accelerated_features",
        method="lightglue, mnn",
    )
)


def gray(batch):
    """(B, 3, H, W) RGB -> (B, 1, H, W) with the BT.601 weights OpenCV's grayscale conversion uses."""
    weights = batch.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (batch * weights).sum(1, keepdim=True)


class SuperPoint(Extractor):
    """SuperPoint (DeTone et al., CVPRW 2018): our network (``methods.superglue.superpoint``), Magic Leap's
    released weights."""

    name, what, weights, detection_threshold, nms_radius = "superpoint", "SuperPoint", "superpoint_v1", 0.005, 4
    needs_kornia = False

    def network(self):
        from .superglue.superpoint import SuperPoint as Network

        return Network(
            nms_radius=self.radius,
            keypoint_threshold=self.threshold,
            max_keypoints=self.max_keypoints,
            remove_borders=self.conf.get("remove_borders", 4),
        )

    def __call__(self, batch):
        return self.net(batch if batch.shape[1] == 1 else gray(batch))


register_weights(
    KnownWeights(
        "superpoint_v1",
        "superpoint_v1.pth",
        "https://raw.githubusercontent.com/magicleap/SuperGluePretrainedNetwork/master/models/weights/superpoint_v1.pth",
        "academic/non-commercial (Magic Leap)",
        "SuperPoint (DeTone et al., CVPRW 2018), magicleap/SuperGluePretrainedNetwork",
        method="superglue",
    )
)

EXTRACTORS: dict[str, type[Extractor]] = {e.name: e for e in (Disk, Aliked, XFeat, SuperPoint)}

FEATURE_CONF = {
    "features": "disk",
    "max_keypoints": 2048,
    "detection_threshold": None,
    "nms_radius": None,
    "detector_weights": None,
}
FEATURE_TYPES = {
    "features": Key(str, choices=tuple(EXTRACTORS)),
    "detection_threshold": float | None,
    "nms_radius": Key(int | None, min=0),
    "detector_weights": str | None,
}
