"""MASt3R's localization recipe (``visloc.py`` with the ``dust3r_visloc`` datasets): image preparation and
the pieces of its matching that differ from ``load_images`` + FRM on view 1.

Image preparation (``get_resize_function``): the network's training resolution whose aspect ratio is
nearest the image's (224: square; 512: 512x384, 512x336, 512x288, 512x256, 512x160 or their portrait
forms) is chosen; the normalised image is centre-cropped to that aspect ratio (torchvision
``CenterCrop``: the offset is ``int(round(excess / 2))``, Python's half-to-even rounding) and resized to
that resolution with antialiased bilinear interpolation (torchvision ``Resize`` on a tensor, i.e.
``torch.nn.functional.interpolate(..., antialias=True)``). An image already at a training resolution is
used as is. ``to_orig``, the map back to the original pixels, uses the exact half excess as crop offset
(``excess / 2``, not the rounded one: a half-pixel disagreement of the official code kept here) and maps
pixel corners (COLMAP convention): ``orig = to_orig(p + 0.5) - 0.5``.

Map observations (the SfM keypoints of a map image) go the other way (``rescale_points3d``): ``+0.5``,
``to_resize``, ``-0.5``, then rounded (half to even) to a network pixel; the last observation that lands on
a pixel owns it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from benchmark.errors import UserError

from .images import to_tensor

# training resolutions per network size, (W, H) of the landscape form, keyed by aspect ratio W / H
TRAINING_RESOLUTIONS = {
    224: {1.0: (224, 224)},
    512: {4 / 3: (512, 384), 32 / 21: (512, 336), 16 / 9: (512, 288), 2 / 1: (512, 256), 16 / 5: (512, 160)},
}
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def training_resolution(width: int, height: int, maxdim: int = 512) -> tuple[int, int]:
    """(W, H) of the training resolution nearest in aspect ratio (portrait images get the portrait form)."""
    if maxdim not in TRAINING_RESOLUTIONS:
        raise UserError(
            f"MASt3R's visloc image preparation knows the network sizes 224 and 512, not {maxdim}; "
            f"set method.size to one of them."
        )
    table = TRAINING_RESOLUTIONS[maxdim]
    ratios = np.array(list(table))
    landscape = width >= height
    target = ratios if landscape else 1.0 / ratios
    w, h = table[float(ratios[np.argmin(np.abs(width / height - target))])]
    return (w, h) if landscape else (h, w)


@dataclass(frozen=True)
class VislocTransform:
    """original --centre crop--> crop_size --resize--> network_size. Sizes are (W, H), offsets (x, y)."""

    original_size: tuple
    crop_box: tuple  # (left, top, width, height) of the pixels actually kept (torchvision's rounding)
    crop_shift: tuple  # (x, y) offset of to_orig: the exact half excess
    network_size: tuple

    @property
    def scale(self) -> np.ndarray:
        """Original pixels per network pixel, per axis (x, y)."""
        return np.array(self.crop_box[2:], np.float64) / np.array(self.network_size, np.float64)

    @property
    def true_shape(self) -> np.ndarray:
        return np.int32([[self.network_size[1], self.network_size[0]]])

    @property
    def to_orig(self) -> np.ndarray:
        """The official 3x3 ``to_orig`` (pixel-corner coordinates)."""
        sx, sy = self.scale
        return np.array([[sx, 0.0, self.crop_shift[0]], [0.0, sy, self.crop_shift[1]], [0.0, 0.0, 1.0]])

    def to_original(self, xy) -> np.ndarray:
        """(..., 2) network pixels (OpenCV convention) -> original pixels: +0.5, to_orig, -0.5."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + 0.5) * self.scale + np.asarray(self.crop_shift, np.float64) - 0.5

    def to_network(self, xy) -> np.ndarray:
        """Inverse of :meth:`to_original` (the official ``to_resize``), still as floats."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + 0.5 - np.asarray(self.crop_shift, np.float64)) / self.scale - 0.5

    def network_pixels(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Original points -> (integer network pixels (N, 2), mask of those inside the network image)."""
        pix = np.round(self.to_network(np.asarray(xy, np.float64).reshape(-1, 2))).astype(np.int64)
        w, h = self.network_size
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        return pix, inside


def visloc_transform(width: int, height: int, maxdim: int = 512) -> VislocTransform:
    """Crop and resize that ``get_resize_function(maxdim, 16, height, width)`` applies to an image."""
    w, h = int(width), int(height)
    if (max(w, h), min(w, h)) in TRAINING_RESOLUTIONS.get(maxdim, {}).values():
        return VislocTransform((w, h), (0, 0, w, h), (0.0, 0.0), (w, h))
    tw, th = training_resolution(w, h, maxdim)
    ratio, target = w / h, tw / th
    crop_w, crop_h, shift = w, h, (0.0, 0.0)
    if abs(ratio - target) < FLOAT32_EPS:
        pass
    elif ratio < target:  # too tall: keep the width
        crop_h = int(w / target)
        shift = (0.0, (h - crop_h) / 2.0)
    else:
        crop_w = int(h * target)
        shift = ((w - crop_w) / 2.0, 0.0)
    left, top = int(round((w - crop_w) / 2.0)), int(round((h - crop_h) / 2.0))
    return VislocTransform((w, h), (left, top, crop_w, crop_h), shift, (tw, th))


def prepare_visloc_image(image: np.ndarray, maxdim: int = 512):
    """uint8 (H, W, 3) RGB -> (img (1, 3, h, w) float32 in [-1, 1], true_shape int32 (1, 2), VislocTransform).

    Normalised first, then cropped and resized, in that order (the official ``resize_func(ImgNorm(rgb))``)."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(
            f"expected a uint8 (H, W, 3) RGB array, got {getattr(image, 'dtype', type(image))} "
            f"{getattr(image, 'shape', '')}"
        )
    transform = visloc_transform(image.shape[1], image.shape[0], maxdim)
    img = to_tensor(image)
    left, top, cw, ch = transform.crop_box
    img = img[:, :, top : top + ch, left : left + cw]
    tw, th = transform.network_size
    if (cw, ch) != (tw, th):
        img = F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    return img.contiguous(), transform.true_shape, transform


def observation_starts(transform: VislocTransform, points2d) -> tuple[np.ndarray, np.ndarray]:
    """Map observations (original pixels, OpenCV) -> (start pixels (M, 2) of FRM in the network image,
    row-major order, and the index of the observation that owns each): visloc.py's ``valid_rescaled``."""
    points2d = np.asarray(points2d, np.float64).reshape(-1, 2)
    pix, inside = transform.network_pixels(points2d)
    w = transform.network_size[0]
    flat = pix[inside, 1] * w + pix[inside, 0]
    index = np.flatnonzero(inside)
    owner = {}
    for f, i in zip(flat.tolist(), index.tolist()):  # the last observation written to a pixel keeps it
        owner[f] = i
    cells = np.array(sorted(owner), np.int64)
    starts = np.stack([cells % w, cells // w], axis=1) if len(cells) else np.zeros((0, 2), np.int64)
    return starts, np.array([owner[c] for c in cells.tolist()], np.int64)
