"""Plumbing shared by the learned matchers: device choice, weights, batching.

``TorchMatcher`` adds the config keys every learned method has (``device``, ``resize_max``,
``resize_force``, ``resize_to``, ``batch_size``); a subclass writes ``prepare`` (one image -> its network
input by the method's official recipe, ``methods.preprocess``), which also maps keypoints found there
back to the image. ``SparseMatcher`` is the detect-then-match family (DISK/ALIKED/XFeat/SuperPoint with
LightGlue, SuperGlue or nearest neighbours): a subclass writes ``_extract`` (a batch of network inputs ->
keypoints, scores, descriptors) and ``_pair`` (two feature sets -> index pairs, scores); the images of
several pairs share one forward pass when their inputs have the same size.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.types import Matches

from .base import Matcher
from .preprocess import NetInput
from .weights import sha256_cached

TORCH_CONF = {
    "device": "auto",  # auto (CUDA when available) | cpu | cuda | cuda:N
    "resize_max": None,  # long side of the network input (the official recipe's rounding); null keeps the size
    "resize_force": False,  # false: resize_max only shrinks; true: it also enlarges smaller images (official)
    "resize_to": None,  # [W, H]: exact network input size (wins over resize_max)
    "batch_size": 1,  # images per forward pass (LoFTR: pairs, half as many); 1 is the official one at a time
}


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
        raise UserError("method.device is cuda but no CUDA device is visible to torch here; "
                        "use --set method.device=cpu (or auto).")


def torch_device(value):
    """``method.device`` as a torch.device; auto is CUDA when available."""
    import torch

    dev = str(value)
    if dev == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(dev)


class TorchMatcher(Matcher):
    """A matcher running a torch network; subclasses extend ``default_conf`` from ``TORCH_CONF``."""

    default_conf: ClassVar[dict] = dict(TORCH_CONF)
    conf_types: ClassVar[dict] = {"resize_max": Key(int | None, min=1), "resize_to": Key(list[int] | None, min=1),
                                  "batch_size": Key(int, min=1)}

    def check(self) -> None:
        check_device(self.conf["device"])
        rt = self.conf["resize_to"]
        if rt is not None and len(rt) != 2:
            raise UserError(f"method.resize_to must be [W, H] or null, not {rt!r}.")

    @property
    def device(self):
        return torch_device(self.conf["device"])

    def weights_fingerprint(self) -> str:
        try:
            files = self.weight_files()
        except UserError:  # not on this machine: check() says so before any run
            return "missing"
        return files_fingerprint([f.path for f in files]) if files else ""

    def resize_conf(self) -> dict:
        """The resize keys as the recipes of ``methods.preprocess`` take them."""
        return {"resize_max": self.conf["resize_max"], "resize_to": self.conf["resize_to"],
                "force": bool(self.conf["resize_force"])}

    def prepare(self, image: np.ndarray) -> NetInput:
        """One image (as ``image_reading`` gives it) -> its network input, by the official recipe."""
        raise NotImplementedError

    def _match_pairs(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        """Match several pairs (images already checked); what subclasses write."""
        raise NotImplementedError

    def pairs_per_batch(self) -> int:
        return max(1, self.conf["batch_size"] // 2)  # batch_size counts images

    def _match(self, image0, image1) -> Matches:
        return self._match_pairs([(image0, image1)])[0]


def gray(batch):
    """(B, 3, H, W) RGB -> (B, 1, H, W) with the BT.601 weights OpenCV's grayscale conversion uses."""
    weights = batch.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (batch * weights).sum(1, keepdim=True)


class SparseMatcher(TorchMatcher):
    """Detect keypoints in each image, then match the two sets."""

    def _extract(self, batch) -> list[dict]:
        """(B, C, h, w) network inputs (float in [0, 1], on the device) -> per image {keypoints (N, 2) x, y in
        these pixels, scores (N,), descriptors (N, D)} as torch tensors."""
        raise NotImplementedError

    def _pair(self, feats0: dict, feats1: dict, input0: NetInput, input1: NetInput):
        """Two feature sets -> (index pairs (M, 2), scores (M,)) as tensors or arrays. Each set also holds
        ``image_keypoints``: its keypoints in the pixels of the image the method was given."""
        raise NotImplementedError

    def _match_pairs(self, pairs) -> list[Matches]:
        import torch

        images = [im for pair in pairs for im in pair]
        inputs = [self.prepare(im) for im in images]
        feats: list[dict | None] = [None] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for i, net_input in enumerate(inputs):
            by_shape.setdefault(tuple(net_input.image.shape), []).append(i)
        step = int(self.conf["batch_size"])
        start = time.perf_counter()
        with torch.inference_mode():
            for index in by_shape.values():
                for s in range(0, len(index), step):
                    chunk = index[s:s + step]
                    batch = torch.stack([inputs[i].image for i in chunk]).to(self.device)
                    for i, f in zip(chunk, self._extract(batch)):
                        f["image_keypoints"] = inputs[i].to_image(f["keypoints"])
                        feats[i] = f
            t_extract = (time.perf_counter() - start) / max(len(pairs), 1)
            out = []
            for p in range(len(pairs)):
                f0, f1 = feats[2 * p], feats[2 * p + 1]
                t0 = time.perf_counter()
                idx, scores = self._pair(f0, f1, inputs[2 * p], inputs[2 * p + 1])
                out.append(self._to_matches(f0, f1, idx, scores, {"extract": t_extract,
                                                                   "pair": time.perf_counter() - t0}))
        return out

    @staticmethod
    def _to_matches(f0, f1, idx, scores, timings) -> Matches:
        idx = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx, dtype=np.int64).reshape(-1, 2)
        scores = np.asarray(scores.float().cpu() if hasattr(scores, "cpu") else scores, dtype=np.float64)
        k0 = f0["image_keypoints"].double().cpu().numpy().reshape(-1, 2)
        k1 = f1["image_keypoints"].double().cpu().numpy().reshape(-1, 2)
        return Matches(k0[idx[:, 0]], k1[idx[:, 1]], scores.reshape(-1), num_keypoints0=len(k0),
                       num_keypoints1=len(k1), timings=timings)
