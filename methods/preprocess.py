"""Each learned matcher's official pre-processing: one image (uint8, as ``Matcher.image_reading`` read it)
-> the network input, and the map from the input's pixels back to the image's.

One function per reference reader (the README's pre-processing table lists which method uses which):

* ``lightglue_input``: LightGlue's ``Extractor.extract`` (DISK, ALIKED, SuperPoint): float RGB in [0, 1],
  resized with kornia's antialiased bilinear ``resize`` so that the long side is exactly the target
  (smaller images are enlarged); keypoints map back pixel centre to pixel centre, ``(k + 0.5) / s - 0.5``
  with ``s`` = input / image size, in float32 as there.
* ``superglue_input``: ``read_image`` of SuperGlue's ``match_pairs.py``: grey, size from ``process_resize``
  (long side, Python's round), OpenCV's bilinear resize of the uint8 image (of the float32 image with
  ``resize_float``), / 255; keypoints map back by pure factors (the official evaluation scales K
  instead, the same geometry).
* ``loftr_input``: LoFTR's test loaders: an exact size (ScanNet) or the long side (Python's round) floored
  to multiples of 8 (MegaDepth), OpenCV's bilinear resize of the uint8 grey image, / 255, optionally
  zero-padded at the bottom right to a square with a validity mask (MegaDepth test); pure factors back.
* ``xfeat_input``: XFeat's ``match_xfeat``: float RGB in [0, 1] at the image's own size (the model floors
  each side to a multiple of 32, resizes bilinearly and scales its keypoints back by pure factors); a
  resize asked for beforehand follows XFeat's MegaDepth evaluation (sides multiples of 32, OpenCV's
  bilinear resize of the uint8 image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: listing the methods or a SIFT run must not import it
    import torch


@dataclass
class NetInput:
    """One image as its network sees it."""

    image: torch.Tensor  # (C, h, w) float32 in [0, 1], CPU (padding included)
    size: tuple[int, int]  # (W, H) of the image the method was given
    net_size: tuple[int, int]  # (w, h) of the resized image, padding excluded
    centres: bool  # keypoints map back centre to centre (LightGlue); else by pure factors
    mask: torch.Tensor | None = None  # (h, w) bool, False on padding

    def to_image(self, kpts: torch.Tensor) -> torch.Tensor:
        """(N, 2) x, y in network-input pixels -> pixels of the image the method was given."""
        (w, h), (W, H) = self.net_size, self.size
        if self.centres:  # float32 arithmetic, as LightGlue's Extractor.extract
            kpts = kpts.float()
            s = kpts.new_tensor([w / W, h / H])
            return (kpts + 0.5) / s - 0.5
        if (w, h) == (W, H):
            return kpts
        kpts = kpts.double()
        return kpts * kpts.new_tensor([W / w, H / h])


def float_image(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (H, W) -> float32 (C, H, W) in [0, 1] (the same values as every reference's
    ``image / 255``, in float64 or float32)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image))
    t = t.permute(2, 0, 1) if t.ndim == 3 else t[None]
    return t.float() / 255.0


def long_side_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(W, H) scaled so that the long side is ``long_side``, each rounded with Python's round (SuperGlue's
    ``process_resize``, LoFTR's ``get_resized_wh``: halves go to the even neighbour)."""
    s = long_side / max(width, height)
    return int(round(width * s)), int(round(height * s))


def _wants_resize(width: int, height: int, resize_max, force: bool) -> bool:
    return resize_max is not None and (force or max(width, height) > resize_max)


def _cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # OpenCV's default (bilinear) as every reference calls it; a same-size call is a copy there too
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(int(v) for v in size), interpolation=cv2.INTER_LINEAR)


def lightglue_input(image: np.ndarray, resize_max=None, resize_to=None, force: bool = True) -> NetInput:
    """LightGlue's ``Extractor.extract``: ``resize_max`` is its ``resize`` (long side), ``resize_to`` [W, H] an
    exact size; ``force=False`` leaves images already small enough alone (not the official behaviour)."""
    x = float_image(image)
    h, w = x.shape[-2:]
    target = None
    if resize_to is not None:
        target = (int(resize_to[1]), int(resize_to[0]))
    elif _wants_resize(w, h, resize_max, force):
        target = int(resize_max)
    if target is not None:
        from kornia.geometry.transform import resize

        x = resize(x[None], target, side="long", antialias=True)[0]
    return NetInput(x, (w, h), (x.shape[-1], x.shape[-2]), centres=True)


def superglue_input(
    image: np.ndarray, resize_max=None, resize_to=None, force: bool = True, resize_float: bool = False
) -> NetInput:
    """``match_pairs.py``'s ``read_image`` on a uint8 grey image (H, W); ``resize_max`` is its one-number
    ``--resize``, ``resize_to`` its two-number one."""
    import torch

    h, w = image.shape[:2]
    size = (w, h)
    if resize_to is not None:
        size = (int(resize_to[0]), int(resize_to[1]))
    elif _wants_resize(w, h, resize_max, force):
        size = long_side_size(w, h, int(resize_max))
    frame = _cv2_resize(image.astype(np.float32) if resize_float else image, size).astype(np.float32)
    return NetInput(torch.from_numpy(frame / 255.0)[None], (w, h), size, centres=False)


def loftr_input(
    image: np.ndarray, resize_max=None, resize_to=None, force: bool = True, pad: bool = False, multiple: int = 8
) -> NetInput:
    """LoFTR's ``read_scannet_gray`` (``resize_to``: an exact size) or ``read_megadepth_gray`` (long side
    ``resize_max``, floored to ``multiple``; ``pad``: zero-padded to a square, with its mask)."""
    import torch

    h, w = image.shape[:2]
    if resize_to is not None:
        size = (int(resize_to[0]), int(resize_to[1]))
    else:
        size = long_side_size(w, h, int(resize_max)) if _wants_resize(w, h, resize_max, force) else (w, h)
        size = tuple(max(multiple, v // multiple * multiple) for v in size)
    x = torch.from_numpy(np.ascontiguousarray(_cv2_resize(image, size))).float()[None] / 255
    mask = None
    if pad:
        side = max(size)
        padded = x.new_zeros((1, side, side))
        padded[:, : size[1], : size[0]] = x
        mask = torch.zeros((side, side), dtype=torch.bool)
        mask[: size[1], : size[0]] = True
        x = padded
    return NetInput(x, (w, h), size, centres=False, mask=mask)


def xfeat_input(image: np.ndarray, resize_max=None, resize_to=None, force: bool = True, multiple: int = 32) -> NetInput:
    """``XFeat.match_xfeat``'s input; a resize, if asked for, as XFeat's MegaDepth evaluation prepares its
    images (long side with Python's round, sides floored to multiples of 32, OpenCV bilinear on uint8)."""
    h, w = image.shape[:2]
    size = (w, h)
    if resize_to is not None:
        size = (int(resize_to[0]), int(resize_to[1]))
    elif _wants_resize(w, h, resize_max, force):
        size = tuple(max(multiple, v // multiple * multiple) for v in long_side_size(w, h, int(resize_max)))
    return NetInput(float_image(_cv2_resize(image, size)), (w, h), size, centres=False)
