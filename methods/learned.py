"""``TorchMatcher``: the one base of the learned matchers (device, weight files, batched forward passes).

A learned matcher is a ``TorchMatcher`` that declares its config (``TORCH_CONF`` plus its own keys), its
``weight_files()`` and ``_load()``, and writes one of two things:

* a keypoint matcher (DISK/ALIKED/XFeat/SuperPoint with LightGlue, SuperGlue, nearest neighbours) names
  its keypoints in the config (``features``, or the class's ``features``; ``methods.local_features``) and
  writes ``_pair``: two feature sets -> index pairs and scores. The extractor's weights, checks and
  official image recipe come with it; the images of several pairs share forward passes.
* a dense matcher (LoFTR, DUSt3R/MASt3R) writes ``_match_pairs`` itself, with ``prepare`` (one image ->
  its network input, ``methods.preprocess``), ``in_batches`` and ``to_matches``.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.types import Matches

from .base import Matcher
from .local_features import EXTRACTORS, FEATURE_CONF, FEATURE_TYPES, Extractor
from .preprocess import NetInput
from .weights import sha256_cached

TORCH_CONF = {
    "device": "auto",  # auto (CUDA when available) | cpu | cuda | cuda:N
    "resize_max": None,  # long side of the network input (the official recipe's rounding); null keeps the size
    "resize_force": False,  # false: resize_max only shrinks; true: it also enlarges smaller images (official)
    "resize_to": None,  # [W, H]: exact network input size (wins over resize_max)
    "batch_size": 1,  # images per forward pass (LoFTR: pairs, half as many); 1 is the official one at a time
}
KEYPOINT_CONF = {**TORCH_CONF, **FEATURE_CONF}  # a keypoint matcher's config: which keypoints, how many


def files_fingerprint(paths: list[Path]) -> str:
    """sha256 over the weight files' sha256 (each hashed once per process, keyed by size and mtime)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_cached(Path(p)).encode())
    return h.hexdigest()


def check_device(value) -> None:
    """One sentence when ``method.device`` names no usable device (auto, cpu, cuda, cuda:N)."""
    import torch

    dev = str(value)
    if dev == "auto":
        return
    try:
        device = torch.device(dev)
    except RuntimeError as exc:
        raise UserError(f"method.device must be auto, cpu, cuda or cuda:N, not '{dev}'.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "method.device is cuda but no CUDA device is visible to torch here; use --set method.device=cpu (or auto)."
        )


def torch_device(value):
    """``method.device`` as a torch.device; auto is CUDA when available."""
    import torch

    dev = str(value)
    if dev == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(dev)


def as_numpy(x, dtype=np.float64) -> np.ndarray:
    """A tensor (any device, any float type) or an array as a numpy array of ``dtype``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x, dtype=dtype)


def strongest(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the ``k`` best scores, best first (ties in input order); all of them when ``k`` is null
    or not positive."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order[:k] if k is not None and k > 0 else order


def to_matches(kpts0, kpts1, scores, keep=None, pts3d0=None, pts3d1=None, **counts_and_timings) -> Matches:
    """One pair's matches from tensors or arrays (keypoints in the given image's pixels); ``keep`` (indices)
    selects and orders them, 3D points included."""
    rows = [
        as_numpy(kpts0).reshape(-1, 2),
        as_numpy(kpts1).reshape(-1, 2),
        as_numpy(scores).reshape(-1),
        None if pts3d0 is None else as_numpy(pts3d0),
        None if pts3d1 is None else as_numpy(pts3d1),
    ]
    if keep is not None:
        rows = [None if r is None else r[keep] for r in rows]
    return Matches(*rows, **counts_and_timings)


class TorchMatcher(Matcher):
    """A matcher running torch networks; subclasses extend ``default_conf`` from ``TORCH_CONF``."""

    default_conf: ClassVar[dict] = dict(TORCH_CONF)
    conf_types: ClassVar[dict] = {
        "resize_max": Key(int | None, min=1),
        "resize_to": Key(list[int] | None, min=1),
        "batch_size": Key(int, min=1),
        **FEATURE_TYPES,
    }
    # the keypoints, when the class fixes them (SuperGlue: superpoint); else the config's ``features``
    features: ClassVar[str | None] = None

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        name = self.features or self.conf.get("features")
        self.extractor: Extractor | None = EXTRACTORS[name](self.conf) if name else None

    # -- checks and weights ---------------------------------------------------------------------------
    def check(self) -> None:
        check_device(self.conf["device"])
        rt = self.conf.get("resize_to")
        if rt is not None and len(rt) != 2:
            raise UserError(f"method.resize_to must be [W, H] or null, not {rt!r}.")
        if self.extractor is not None:
            self.extractor.check(resizes=self.conf["resize_max"] is not None or rt is not None)

    @property
    def device(self):
        return torch_device(self.conf["device"])

    def weight_files(self) -> list:
        return [self.extractor.weight_file()] if self.extractor is not None else []

    def weights_fingerprint(self) -> str:
        try:
            files = self.weight_files()
        except UserError:  # not on this machine: check() says so before any run
            return "missing"
        return files_fingerprint([f.path for f in files]) if files else ""

    def _load(self) -> None:
        if self.extractor is not None:
            self._extractor = self.extractor.load(self.device)  # what runs on the batches

    # -- batching ---------------------------------------------------------------------------------------
    def pairs_per_batch(self) -> int:
        return max(1, self.conf["batch_size"] // 2)  # batch_size counts images

    @staticmethod
    def in_batches(items: list, key: Callable, forward: Callable, size: int) -> list:
        """``forward`` on chunks of at most ``size`` items of equal ``key(item)`` (their tensors stack), one
        output per item; the outputs in the items' order."""
        groups: dict = {}
        for i, item in enumerate(items):
            groups.setdefault(key(item), []).append(i)
        out: list = [None] * len(items)
        for index in groups.values():
            for s in range(0, len(index), size):
                chunk = index[s : s + size]
                for i, result in zip(chunk, forward([items[i] for i in chunk])):
                    out[i] = result
        return out

    def resize_conf(self) -> dict:
        """The resize keys as the recipes of ``methods.preprocess`` take them."""
        return {
            "resize_max": self.conf["resize_max"],
            "resize_to": self.conf["resize_to"],
            "force": bool(self.conf["resize_force"]),
        }

    def prepare(self, image: np.ndarray) -> NetInput:
        """One image (as ``image_reading`` gives it) -> its network input, by the official recipe."""
        return self.extractor.prepare(image, **self.resize_conf())

    # -- keypoint matchers ----------------------------------------------------------------------------
    def _pair(self, feats0: dict, feats1: dict, input0: NetInput, input1: NetInput):
        """Two feature sets (per image: keypoints (N, 2) in network-input pixels, ``image_keypoints`` in the
        given image's, scores, descriptors (N, D), as torch tensors) -> (index pairs (M, 2), scores (M,))."""
        raise NotImplementedError(f"{type(self).__name__} matches keypoints: write _pair")

    def _extract(self, inputs: list[NetInput]) -> list[dict]:
        import torch

        feats = self._extractor(torch.stack([x.image for x in inputs]).to(self.device))
        for f, x in zip(feats, inputs):
            f["image_keypoints"] = x.to_image(f["keypoints"])
        return feats

    def _match_pairs(self, pairs: list) -> list[Matches]:
        """Keypoints of every image (forward passes shared by inputs of one size), then ``_pair`` per pair."""
        import torch

        inputs = [self.prepare(image) for pair in pairs for image in pair]
        start = time.perf_counter()
        with torch.inference_mode():
            feats = self.in_batches(inputs, lambda x: tuple(x.image.shape), self._extract, self.conf["batch_size"])
            t_extract = (time.perf_counter() - start) / max(len(pairs), 1)
            out = []
            for f0, f1, x0, x1 in zip(feats[::2], feats[1::2], inputs[::2], inputs[1::2]):
                tic = time.perf_counter()
                idx, scores = self._pair(f0, f1, x0, x1)
                timings = {"extract": t_extract, "pair": time.perf_counter() - tic}
                idx = as_numpy(idx, np.int64).reshape(-1, 2)
                k0, k1 = as_numpy(f0["image_keypoints"]).reshape(-1, 2), as_numpy(f1["image_keypoints"]).reshape(-1, 2)
                out.append(
                    to_matches(
                        k0[idx[:, 0]],
                        k1[idx[:, 1]],
                        scores,
                        num_keypoints0=len(k0),
                        num_keypoints1=len(k1),
                        timings=timings,
                    )
                )
        return out
