"""The official DUSt3R/MASt3R image pre-processing (``dust3r.utils.image.load_images``), byte-exact.

Rule: resize with PIL so that the long side is ``size`` (for ``size == 224``: the short side ~224),
Lanczos when shrinking and bicubic otherwise; crop around the integer centre to multiples of
``patch_size`` (224: a centred square; a square image at other sizes: a 4:3 crop unless ``square_ok``);
then (u8 / 255 - 0.5) / 0.5. :class:`ImageTransform` maps pixels between the network image and the
original one (OpenCV convention, centre of the top-left pixel at (0, 0)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from benchmark.errors import UserError

try:  # the official loader also reads HEIC/HEIF when this plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    EXTENSIONS = (".jpg", ".jpeg", ".png", ".heic", ".heif")
except ImportError:
    EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImageTransform:
    """original image --resize--> resized_size --crop at crop_offset--> network_size (all (W, H) / (x, y))."""

    original_size: tuple
    resized_size: tuple
    crop_offset: tuple
    network_size: tuple

    @property
    def scale(self) -> np.ndarray:
        """Original pixels per resized pixel, per axis (x, y)."""
        return np.array(self.original_size, dtype=np.float64) / np.array(self.resized_size, dtype=np.float64)

    @property
    def true_shape(self) -> np.ndarray:
        return np.int32([[self.network_size[1], self.network_size[0]]])

    def to_original(self, xy) -> np.ndarray:
        """(..., 2) network-image pixel coordinates -> original-image pixels. The resize scales the
        pixel-corner frame (COLMAP convention), hence the +0.5 / -0.5 around the scale."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + np.asarray(self.crop_offset) + 0.5) * self.scale - 0.5

    def to_network(self, xy) -> np.ndarray:
        """Inverse of :meth:`to_original`."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + 0.5) / self.scale - 0.5 - np.asarray(self.crop_offset)


def _resize_long_side(img: Image.Image, long_edge: int) -> Image.Image:
    longest = max(img.size)
    resample = Image.Resampling.LANCZOS if longest > long_edge else Image.Resampling.BICUBIC
    return img.resize(tuple(int(round(x * long_edge / longest)) for x in img.size), resample)


def resize_and_crop(img: Image.Image, size: int, square_ok: bool = False, patch_size: int = 16):
    """PIL RGB image -> (cropped PIL image, ImageTransform), exactly as the official loader."""
    w1, h1 = img.size
    if size == 224:
        img = _resize_long_side(img, round(size * max(w1 / h1, h1 / w1)))
    else:
        img = _resize_long_side(img, size)
    w, h = img.size
    cx, cy = w // 2, h // 2
    if size == 224:
        half = min(cx, cy)
        halfw = halfh = half
    else:
        halfw = ((2 * cx) // patch_size) * patch_size / 2
        halfh = ((2 * cy) // patch_size) * patch_size / 2
        if not square_ok and w == h:
            halfh = 3 * halfw / 4
    # PIL rounds a float crop box with round(); do it here so the offset is known
    box = tuple(int(round(v)) for v in (cx - halfw, cy - halfh, cx + halfw, cy + halfh))
    out = img.crop(box)
    return out, ImageTransform((w1, h1), (w, h), (box[0], box[1]), out.size)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [-1, 1], the same float32 operations as torchvision's
    ToTensor + Normalize(0.5, 0.5)."""
    arr = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    return arr.float().div(255).sub(0.5).div(0.5)[None]


def preprocess_image(image: np.ndarray, size: int = 512, square_ok: bool = False, patch_size: int = 16):
    """uint8 (H, W, 3) RGB array -> (img (1, 3, H', W') tensor, true_shape int32 (1, 2), ImageTransform)."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(
            f"expected a uint8 (H, W, 3) RGB array, got {getattr(image, 'dtype', type(image))} "
            f"{getattr(image, 'shape', '')}"
        )
    cropped, transform = resize_and_crop(Image.fromarray(image, "RGB"), size, square_ok, patch_size)
    return to_tensor(cropped), transform.true_shape, transform


def load_images(folder_or_list, size, square_ok=False, verbose=True, patch_size=16):
    """Official ``load_images``: a folder (entries sorted by name) or a list of paths -> list of dicts
    with ``img`` (1, 3, H, W), ``true_shape`` int32 (1, 2), ``idx`` and ``instance``."""
    if isinstance(folder_or_list, (str, os.PathLike)):
        root = str(folder_or_list)
        if not os.path.isdir(root):
            raise UserError(f"{root} is not a folder; give load_images a folder or a list of image paths.")
        names = sorted(os.listdir(root))
        if verbose:
            print(f">> Loading images from {root}")
    elif isinstance(folder_or_list, (list, tuple)):
        root, names = "", [str(p) for p in folder_or_list]
        if verbose:
            print(f">> Loading a list of {len(names)} images")
    else:
        raise ValueError(f"bad folder_or_list={folder_or_list!r} ({type(folder_or_list)})")

    imgs = []
    for name in names:
        if not name.lower().endswith(EXTENSIONS):
            continue
        path = os.path.join(root, name)
        try:
            with Image.open(path) as raw:
                img = ImageOps.exif_transpose(raw).convert("RGB")
        except OSError as exc:
            raise UserError(f"Cannot read the image {path} ({exc}).") from None
        cropped, transform = resize_and_crop(img, size, square_ok, patch_size)
        if verbose:
            w1, h1 = transform.original_size
            print(f" - adding {name} with resolution {w1}x{h1} --> {cropped.size[0]}x{cropped.size[1]}")
        imgs.append(
            dict(img=to_tensor(cropped), true_shape=transform.true_shape, idx=len(imgs), instance=str(len(imgs)))
        )
    if not imgs:
        raise UserError(f"No images ({', '.join(EXTENSIONS)}) found in {root or 'the given list'}.")
    if verbose:
        print(f" (Found {len(imgs)} images)")
    return imgs
