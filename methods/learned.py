"""Plumbing shared by the learned matchers: device choice, protocol resizing, tensors, batching.

``TorchMatcher`` adds the config keys every learned method has (``device``, ``resize_max``,
``resize_to``, ``batch_size``) and maps keypoints found on the resized network input back to the
ORIGINAL image. ``SparseMatcher`` is the detect-then-match family (DISK/ALIKED/XFeat/SuperPoint with
LightGlue, SuperGlue or nearest neighbours): a subclass writes ``_extract`` (a batch of images ->
keypoints, scores, descriptors) and ``_pair`` (two feature sets -> index pairs, scores); the images of
several pairs share one forward pass when they have the same size.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.types import Matches

from .base import Matcher
from .weights import sha256_cached

TORCH_CONF = {
    "device": "auto",  # auto (CUDA when available) | cpu | cuda | cuda:N
    "resize_max": None,  # longest side after resizing; null keeps the size
    "resize_force": False,  # false: resize_max only shrinks; true: it also enlarges smaller images
    "resize_to": None,  # [W, H]: exact network input size (wins over resize_max)
    "batch_size": 8,  # images per forward pass in match_batch (LoFTR: pairs, half as many)
}


def target_size(width: int, height: int, resize_max: int | None, resize_to, multiple: int = 1,
                force: bool = False) -> tuple[int, int]:
    """Network input (W, H) for an image: the protocol's resize, then rounded to ``multiple``."""
    if resize_to is not None:
        w, h = float(resize_to[0]), float(resize_to[1])
    elif resize_max is not None and (force or max(width, height) > resize_max):
        s = resize_max / max(width, height)
        w, h = width * s, height * s
    else:
        w, h = float(width), float(height)
    # halves round up (Python's round() would send 2.5 to 2 but 3.5 to 4)
    m = max(1, int(multiple))
    return max(m, int(w / m + 0.5) * m), max(m, int(h / m + 0.5) * m)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    shrink = size[0] < image.shape[1] and size[1] < image.shape[0]
    # area averaging avoids aliasing when shrinking; bilinear otherwise (OpenCV's default)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_original(kpts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Network-input pixels -> original pixels; pixel centres map onto pixel centres (OpenCV convention)."""
    kpts = np.asarray(kpts, dtype=np.float64).reshape(-1, 2)
    return (kpts + 0.5) * np.asarray(scale, dtype=np.float64) - 0.5


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
    size_multiple: ClassVar[int] = 1  # network input sides are rounded to a multiple of this

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

    def network_input(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """The image resized for the network, and the (sx, sy) factors back to the original."""
        h, w = image.shape[:2]
        size = target_size(w, h, self.conf["resize_max"], self.conf["resize_to"], self.size_multiple,
                           self.conf["resize_force"])
        return resize_image(image, size), (w / size[0], h / size[1])

    def _match_pairs(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        """Match several pairs (images already checked); what subclasses write."""
        raise NotImplementedError

    def pairs_per_batch(self) -> int:
        return max(1, self.conf["batch_size"] // 2)  # batch_size counts images

    def _match(self, image0, image1) -> Matches:
        return self._match_pairs([(image0, image1)])[0]

    def to_tensor(self, images: list[np.ndarray]):
        """uint8 (H, W, 3) images of one size -> float (B, 3, H, W) in [0, 1] on the device."""
        import torch

        batch = torch.from_numpy(np.stack(images)).to(self.device)
        return batch.permute(0, 3, 1, 2).float().div_(255.0)


def gray(batch):
    """(B, 3, H, W) RGB -> (B, 1, H, W) with the BT.601 weights OpenCV's grayscale conversion uses."""
    weights = batch.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (batch * weights).sum(1, keepdim=True)


class SparseMatcher(TorchMatcher):
    """Detect keypoints in each image, then match the two sets."""

    def _extract(self, batch) -> list[dict]:
        """(B, 3, H, W) float RGB in [0, 1] -> per image {keypoints (N, 2) x, y in these pixels, scores (N,),
        descriptors (N, D)} as torch tensors."""
        raise NotImplementedError

    def _pair(self, feats0: dict, feats1: dict, size0: tuple[int, int], size1: tuple[int, int]):
        """Two feature sets (network-input sizes (W, H)) -> (index pairs (M, 2), scores (M,)) as tensors or arrays."""
        raise NotImplementedError

    def _match_pairs(self, pairs) -> list[Matches]:
        import torch

        images = [im for pair in pairs for im in pair]
        inputs = [self.network_input(im) for im in images]
        feats: list[dict | None] = [None] * len(images)
        by_size: dict[tuple, list[int]] = {}
        for i, (net, _) in enumerate(inputs):
            by_size.setdefault(net.shape, []).append(i)
        start = time.perf_counter()
        with torch.inference_mode():
            for index in by_size.values():
                for s in range(0, len(index), self.conf["batch_size"]):
                    chunk = index[s:s + self.conf["batch_size"]]
                    for i, f in zip(chunk, self._extract(self.to_tensor([inputs[i][0] for i in chunk]))):
                        feats[i] = f
            t_extract = (time.perf_counter() - start) / max(len(pairs), 1)
            out = []
            for p in range(len(pairs)):
                i0, i1 = 2 * p, 2 * p + 1
                size0 = inputs[i0][0].shape[1::-1]
                size1 = inputs[i1][0].shape[1::-1]
                t0 = time.perf_counter()
                idx, scores = self._pair(feats[i0], feats[i1], size0, size1)
                out.append(self._to_matches(feats[i0], feats[i1], idx, scores, inputs[i0][1], inputs[i1][1],
                                            {"extract": t_extract, "pair": time.perf_counter() - t0}))
        return out

    @staticmethod
    def _to_matches(f0, f1, idx, scores, scale0, scale1, timings) -> Matches:
        idx = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx, dtype=np.int64).reshape(-1, 2)
        scores = np.asarray(scores.float().cpu() if hasattr(scores, "cpu") else scores, dtype=np.float64)
        k0 = f0["keypoints"].double().cpu().numpy()
        k1 = f1["keypoints"].double().cpu().numpy()
        return Matches(to_original(k0[idx[:, 0]], scale0), to_original(k1[idx[:, 1]], scale1), scores.reshape(-1),
                       num_keypoints0=len(k0), num_keypoints1=len(k1), timings=timings)
