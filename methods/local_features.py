"""Learned local features (DISK, ALIKED, XFeat through kornia; SuperPoint, our own) and their
mutual-nearest-neighbour matcher ``mnn``.

Each feature kind has its official pre-processing (``methods.preprocess``): DISK, ALIKED and SuperPoint
LightGlue's ``Extractor.extract``, XFeat its ``match_xfeat``. Every extractor maps a (B, C, h, w) batch in
[0, 1] to per-image keypoints (x, y) in the pixels of that batch, detection scores and L2-normalised
descriptors; ALIKED and XFeat select keypoints as their reference code does (``methods.detection``).

Config keys shared with ``lightglue`` (``FEATURE_CONF``): ``features`` (disk | aliked | xfeat |
superpoint), ``max_keypoints`` (-1: all), ``detection_threshold`` and ``nms_radius`` (null: the
extractor's own default, see ``FEATURES``), ``detector_weights`` (registered name or path; null: the
default below).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, ClassVar

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.registry import METHODS

from . import kornia_cache
from .checkpoints import WeightFile, load_weight_file
from .learned import TORCH_CONF, SparseMatcher, gray
from .nn import mutual_nn_ratio
from .preprocess import NetInput, lightglue_input, xfeat_input


def _itself(obj):
    return obj


@dataclass(frozen=True)
class FeatureKind:
    what: str  # the extractor's name in messages
    weights: str  # default registered weights
    detection_threshold: float
    nms_radius: int | None  # None: fixed by the extractor
    prepare: Callable  # the official input recipe (methods.preprocess)
    needs_kornia: bool
    network: Callable  # conf -> the extractor network, not loaded (its weight file fills it)
    extract: Callable  # (conf, loaded network) -> callable(batch) -> list[dict]
    module: Callable = _itself  # the part of the network the weight file fills (XFeat: .net)
    state_dict: Callable = _itself  # the file's content -> that part's state dict
    optional: tuple[str, ...] = ()  # buffers derived at run time, absent from the files


def _limit(conf) -> int:
    n = conf["max_keypoints"]
    return n if n > 0 else -1


def _threshold(conf, name: str) -> float:
    t = conf["detection_threshold"]
    return FEATURES[name].detection_threshold if t is None else t


def _radius(conf, name: str) -> int:
    r = conf["nms_radius"]
    return FEATURES[name].nms_radius if r is None else r


def _disk(conf):
    import kornia.feature as KF

    return KF.DISK()


def _disk_extract(conf, net):
    n = _limit(conf)

    def extract(batch):
        out = net(batch, n=None if n < 0 else n, window_size=2 * _radius(conf, "disk") + 1,
                  score_threshold=_threshold(conf, "disk"), pad_if_not_divisible=True)
        return [{"keypoints": f.keypoints, "scores": f.detection_scores, "descriptors": f.descriptors} for f in out]

    return extract


_ALIKED_MODELS = ("aliked-n16", "aliked-n16rot", "aliked-n32", "aliked-t16")


def _aliked(conf):
    import kornia.feature as KF

    spec = str(conf["detector_weights"] or FEATURES["aliked"].weights)
    # the architecture is named by the weights: a registered name, or a file called like one
    model = next((m for m in _ALIKED_MODELS if Path(spec).stem == m or spec == m), "aliked-n16")
    return KF.ALIKED(model_name=model, max_num_keypoints=_limit(conf), detection_threshold=_threshold(conf, "aliked"),
                     nms_radius=_radius(conf, "aliked"))


def _aliked_extract(conf, net):
    from .detection import aliked_keypoints  # torch: imported when the method loads, not when it is listed

    n, threshold, radius = _limit(conf), _threshold(conf, "aliked"), _radius(conf, "aliked")
    # LightGlue's ALIKED: top-k mode only without a positive threshold; at most 20000 points otherwise
    top_k, n_limit = (-1 if threshold > 0 else n), (n if n > 0 else 20000)

    def extract(batch):
        features, score_map = net.extract_dense_map(batch)
        keypoints, scores = aliked_keypoints(score_map, radius, top_k, threshold, n_limit)
        descriptors, _ = net.desc_head(features, keypoints)
        size = batch.new_tensor([batch.shape[-1] - 1, batch.shape[-2] - 1])
        return [{"keypoints": size * (k + 1) / 2.0, "scores": s, "descriptors": d}
                for k, s, d in zip(keypoints, scores, descriptors)]

    return extract


def _xfeat(conf):
    import kornia.feature as KF

    return KF.XFeat()


def _xfeat_extract(conf, net):
    from .detection import xfeat_detect_and_compute  # torch: imported when the method loads

    n = _limit(conf)
    return lambda batch: xfeat_detect_and_compute(net.net, batch, n if n > 0 else 1 << 30, _threshold(conf, "xfeat"))


def _superpoint(conf):
    from .superglue.superpoint import SuperPoint

    return SuperPoint(nms_radius=_radius(conf, "superpoint"), keypoint_threshold=_threshold(conf, "superpoint"),
                      max_keypoints=_limit(conf), remove_borders=conf.get("remove_borders", 4))


def _superpoint_extract(conf, net):
    return lambda batch: net(batch if batch.shape[1] == 1 else gray(batch))


FEATURES = {  # defaults of LightGlue's extractors and of XFeat
    "disk": FeatureKind("DISK", "disk_depth", 0.0, 2, lightglue_input, True, _disk, _disk_extract,
                        state_dict=lambda raw: raw.get("extractor", raw)),
    # threshold <= 0: top-k mode; dkd.hw_grid is a buffer derived from the image size
    "aliked": FeatureKind("ALIKED", "aliked-n16", 0.2, 2, lightglue_input, True, _aliked, _aliked_extract,
                          optional=("dkd.hw_grid",)),
    "xfeat": FeatureKind("XFeat", "xfeat", 0.05, None, xfeat_input, True, _xfeat, _xfeat_extract,
                         module=lambda net: net.net),
    "superpoint": FeatureKind("SuperPoint", "superpoint_v1", 0.005, 4, lightglue_input, False, _superpoint,
                              _superpoint_extract),
}

FEATURE_CONF = {
    **TORCH_CONF,
    "features": "disk",
    "max_keypoints": 2048,
    "detection_threshold": None,
    "nms_radius": None,
    "detector_weights": None,
}
FEATURE_TYPES = {"features": Key(str, choices=tuple(FEATURES)), "detection_threshold": float | None,
                 "nms_radius": Key(int | None, min=0), "detector_weights": str | None}


class FeatureMatcher(SparseMatcher):
    """A SparseMatcher whose keypoints come from one of ``FEATURES`` (``conf["features"]``, unless the
    class fixes them in ``features``)."""

    features: ClassVar[str | None] = None
    conf_types = FEATURE_TYPES

    @property
    def features_name(self) -> str:
        return self.features or self.conf["features"]

    @property
    def kind(self) -> FeatureKind:
        return FEATURES[self.features_name]

    def check(self) -> None:
        super().check()
        kind = self.kind
        resizes = self.conf["resize_max"] is not None or self.conf["resize_to"] is not None
        if kind.needs_kornia or (kind.prepare is lightglue_input and resizes):  # LightGlue resizes with kornia
            kornia_cache.require_kornia(f"'{self.features_name}' feature extractor")
        if kind.nms_radius is None and self.conf["nms_radius"] is not None:
            raise UserError(f"method.nms_radius cannot be set for {self.features_name} (its window is fixed); "
                            f"leave it null.")
        self.detector_path()

    def detector_path(self) -> Path:
        return kornia_cache.locate(self.conf["detector_weights"], self.kind.weights,
                                   f"{self.features_name} detector", setting="method.detector_weights")

    def detector_file(self) -> WeightFile:
        kind = self.kind
        return WeightFile(self.detector_path(), kind.what, partial(kind.network, self.conf), kind.module,
                          kind.state_dict, kind.optional)

    def weight_files(self) -> list[WeightFile]:
        return [self.detector_file()]

    def _load(self) -> None:
        self._extractor = self.kind.extract(self.conf, load_weight_file(self.detector_file(), self.device))

    def prepare(self, image) -> NetInput:
        return self.kind.prepare(image, **self.resize_conf())

    def _extract(self, batch) -> list[dict]:
        return self._extractor(batch)


@METHODS.register("mnn")
class MutualNNMatcher(FeatureMatcher):
    """Learned local features matched by mutual nearest neighbours (optionally Lowe's ratio test).
    Scores are 1 - Euclidean distance between the unit descriptors, as for ``sift``."""

    default_conf = {
        **FEATURE_CONF,
        "ratio": None,  # Lowe's ratio test; null disables it
        "mutual": True,
        "max_distance": None,  # Euclidean distance between unit descriptors; null disables it
    }
    conf_types = {"ratio": Key(float | None, above=0, max=1), "max_distance": Key(float | None, above=0)}

    def _pair(self, feats0, feats1, input0, input1):
        pairs, dist = mutual_nn_ratio(feats0["descriptors"].float().cpu(), feats1["descriptors"].float().cpu(),
                                      ratio=self.conf["ratio"], mutual=self.conf["mutual"],
                                      max_distance=self.conf["max_distance"])
        return pairs, 1.0 - dist
