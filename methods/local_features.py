"""Learned local features (DISK, ALIKED, XFeat on kornia's networks; SuperPoint, our own) and their
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
from pathlib import Path
from typing import Callable, ClassVar

from benchmark.errors import UserError
from benchmark.registry import METHODS

from . import kornia_cache
from .detection import aliked_keypoints, xfeat_detect_and_compute
from .learned import TORCH_CONF, SparseMatcher, gray, load_checkpoint, load_strict
from .nn import mutual_nn_ratio
from .preprocess import NetInput, lightglue_input, xfeat_input


@dataclass(frozen=True)
class FeatureKind:
    weights: str  # default registered weights
    detection_threshold: float
    nms_radius: int | None  # None: fixed by the extractor
    prepare: Callable  # the official input recipe (methods.preprocess)
    needs_kornia: bool
    build: Callable  # (conf, weights path, device) -> callable(batch) -> list[dict]


def _limit(conf) -> int:
    n = int(conf["max_keypoints"])
    return n if n > 0 else -1


def _threshold(conf, kind: FeatureKind) -> float:
    t = conf["detection_threshold"]
    return float(kind.detection_threshold if t is None else t)


def _radius(conf, kind: FeatureKind) -> int:
    r = conf["nms_radius"]
    return int(kind.nms_radius if r is None else r)


def _build_disk(conf, path: Path, device):
    import kornia.feature as KF

    what = "DISK"
    raw = load_checkpoint(path, what)
    net = KF.DISK()
    load_strict(net, raw.get("extractor", raw) if isinstance(raw, dict) else raw, path, what)
    net = net.eval().to(device)
    kind = FEATURES["disk"]
    n = _limit(conf)

    def extract(batch):
        out = net(batch, n=None if n < 0 else n, window_size=2 * _radius(conf, kind) + 1,
                  score_threshold=_threshold(conf, kind), pad_if_not_divisible=True)
        return [{"keypoints": f.keypoints, "scores": f.detection_scores, "descriptors": f.descriptors} for f in out]

    return extract


_ALIKED_MODELS = ("aliked-n16", "aliked-n16rot", "aliked-n32", "aliked-t16")


def _build_aliked(conf, path: Path, device):
    import kornia.feature as KF

    spec = str(conf["detector_weights"] or FEATURES["aliked"].weights)
    # the architecture is named by the weights: a registered name, or a file called like one
    model = next((m for m in _ALIKED_MODELS if Path(spec).stem == m or spec == m), "aliked-n16")
    kind = FEATURES["aliked"]
    n, threshold, radius = _limit(conf), _threshold(conf, kind), _radius(conf, kind)
    net = KF.ALIKED(model_name=model, max_num_keypoints=n, detection_threshold=threshold, nms_radius=radius)
    # dkd.hw_grid is a buffer derived from the image size, not a learned weight
    load_strict(net, load_checkpoint(path, "ALIKED"), path, "ALIKED", ("dkd.hw_grid",))
    net = net.eval().to(device)
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


def _build_xfeat(conf, path: Path, device):
    import kornia.feature as KF

    n = _limit(conf)
    net = KF.XFeat()
    load_strict(net.net, load_checkpoint(path, "XFeat"), path, "XFeat")
    net = net.eval().to(device)
    threshold = _threshold(conf, FEATURES["xfeat"])
    return lambda batch: xfeat_detect_and_compute(net.net, batch, n if n > 0 else 1 << 30, threshold)


def _build_superpoint(conf, path: Path, device):
    from .superglue.superpoint import SuperPoint

    kind = FEATURES["superpoint"]
    net = SuperPoint(nms_radius=_radius(conf, kind), keypoint_threshold=_threshold(conf, kind),
                     max_keypoints=_limit(conf), remove_borders=int(conf.get("remove_borders", 4)))
    load_strict(net, load_checkpoint(path, "SuperPoint"), path, "SuperPoint")
    net = net.eval().to(device)
    return lambda batch: net(batch if batch.shape[1] == 1 else gray(batch))


FEATURES = {  # defaults of LightGlue's extractors and of XFeat
    "disk": FeatureKind("disk_depth", 0.0, 2, lightglue_input, True, _build_disk),
    "aliked": FeatureKind("aliked-n16", 0.2, 2, lightglue_input, True, _build_aliked),  # <= 0: top-k mode
    "xfeat": FeatureKind("xfeat", 0.05, None, xfeat_input, True, _build_xfeat),
    "superpoint": FeatureKind("superpoint_v1", 0.005, 4, lightglue_input, False, _build_superpoint),
}

FEATURE_CONF = {
    **TORCH_CONF,
    "features": "disk",
    "max_keypoints": 2048,
    "detection_threshold": None,
    "nms_radius": None,
    "detector_weights": None,
}


class FeatureMatcher(SparseMatcher):
    """A SparseMatcher whose keypoints come from one of ``FEATURES`` (``conf["features"]``, unless the
    class fixes them in ``features``)."""

    features: ClassVar[str | None] = None

    @property
    def features_name(self) -> str:
        return self.features or self.conf["features"]

    @property
    def kind(self) -> FeatureKind:
        name = self.features_name
        if name not in FEATURES:
            raise UserError(f"method.features must be one of {', '.join(FEATURES)}, not '{name}'.")
        return FEATURES[name]

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

    def weight_files(self) -> list[Path]:
        return [self.detector_path()]

    def _load(self) -> None:
        self._extractor = self.kind.build(self.conf, self.detector_path(), self.device)

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

    def _pair(self, feats0, feats1, input0, input1):
        pairs, dist = mutual_nn_ratio(feats0["descriptors"].float().cpu(), feats1["descriptors"].float().cpu(),
                                      ratio=self.conf["ratio"], mutual=bool(self.conf["mutual"]),
                                      max_distance=self.conf["max_distance"])
        return pairs, 1.0 - dist
