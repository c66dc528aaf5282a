"""The ``mnn`` method: learned keypoints (``method.features``: DISK, ALIKED, XFeat, SuperPoint) matched by
mutual nearest neighbours, optionally with Lowe's ratio test and a distance cap (``methods.nn``)."""

from __future__ import annotations

from benchmark.config_types import Key
from benchmark.registry import METHODS

from .learned import KEYPOINT_CONF, TorchMatcher
from .nn import mutual_nn_ratio


@METHODS.register("mnn")
class MutualNNMatcher(TorchMatcher):
    """Learned local features matched by mutual nearest neighbours (optionally Lowe's ratio test).
    Scores are 1 - Euclidean distance between the unit descriptors, as for ``sift``."""

    default_conf = {
        **KEYPOINT_CONF,
        "ratio": None,  # Lowe's ratio test; null disables it
        "mutual": True,
        "max_distance": None,  # Euclidean distance between unit descriptors; null disables it
    }
    conf_types = {"ratio": Key(float | None, above=0, max=1), "max_distance": Key(float | None, above=0)}

    def _pair(self, feats0, feats1, input0, input1):
        pairs, dist = mutual_nn_ratio(
            feats0["descriptors"].float().cpu(),
            feats1["descriptors"].float().cpu(),
            ratio=self.conf["ratio"],
            mutual=self.conf["mutual"],
            max_distance=self.conf["max_distance"],
        )
        return pairs, 1.0 - dist
