"""Reading images (in the form each method's official reader gives) and depth maps, with one-sentence
errors, and atomic writes."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SampleError, UserError

cv2.setNumThreads(1)


@dataclass(frozen=True)
class ImageReading:
    """How a method's images are read from disk: the decode of the method's official reader.

    ``mode`` is ``rgb`` (colour decode, uint8 (H, W, 3) RGB) or ``gray`` (``cv2.IMREAD_GRAYSCALE``: the
    decoder's own grey conversion, libjpeg's for JPEG files, uint8 (H, W)). A protocol resize
    (``dataset.resize``) is applied to the decoded uint8 image, grey or colour, before any rotation, as
    SuperGlue's and LoFTR's readers do. A method declares its reading in ``Matcher.image_reading``; it is
    part of the method's cache key.
    """

    mode: str = "rgb"

    def __post_init__(self):
        if self.mode not in READ_MODES:
            raise ValueError(f"image reading mode must be one of {', '.join(READ_MODES)}, not {self.mode!r}")


READ_MODES = ("rgb", "gray")
RGB = ImageReading("rgb")
GRAY = ImageReading("gray")


def read_image(
    path: Path, resize: tuple | None = None, exif_rotation: int = 0, reading: ImageReading = RGB
) -> np.ndarray:
    """uint8 (H, W, 3) RGB, or (H, W) grey for a ``gray`` reading. ``resize`` = (W, H) of the returned
    image uses OpenCV's default bilinear resize (the ScanNet protocol's).

    ``exif_rotation`` k turns the image k x 90 degrees counterclockwise (``np.rot90(image, k)``, as
    SuperGlue's reader applies the rotation codes of its pair lists), after the resize as there.
    """
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"image {path} is missing")
    data = np.fromfile(str(path), dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if reading.mode == "gray" else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flag) if data.size else None
    if image is None:
        raise SampleError(f"image {path} cannot be decoded (corrupt or not an image)")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    k = int(exif_rotation) % 4
    if resize is not None:
        size = tuple(int(v) for v in resize)
        size = size[::-1] if k % 2 else size  # the size before the quarter turns
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if k:
        image = np.ascontiguousarray(np.rot90(image, k=k))
    return image


def as_reading(image: np.ndarray, reading: ImageReading) -> np.ndarray:
    """An image already in memory in the form ``reading`` gives: RGB -> grey with OpenCV's conversion (what
    ``cv2.IMREAD_GRAYSCALE`` does for colour files other than JPEG), grey -> RGB by repeating the channel."""
    if reading.mode == "gray":
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def read_depth(path: Path, scale: float) -> np.ndarray:
    """Depth in metres as float32; 0 (invalid) stays 0. PNG/uint16 files are multiplied by ``scale``;
    ``.npy`` files are read as metres."""
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"depth map {path} is missing")
    if path.suffix == ".npy":
        depth = np.load(path, allow_pickle=False).astype(np.float32)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.ndim != 2:
            raise SampleError(f"depth map {path} cannot be read as a single-channel image")
        depth = raw.astype(np.float32) * np.float32(scale)
    depth[~np.isfinite(depth)] = 0
    return depth


def prepare_folder(path: Path, what: str, hint: str) -> list[Path]:
    """Create ``path`` (with its parents) and try writing a file in it. Returns the folders this call
    created, outermost first; one sentence naming the folder (``what``) and what to do (``hint``) when
    it is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"The {what} {path} is a file, not a folder; {hint}.")
    created = [p for p in reversed((path, *path.parents)) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".locbench-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        verb = "written" if path.is_dir() else "created"
        remove_empty(created)
        raise UserError(f"The {what} {path} cannot be {verb} ({exc.strerror or exc}); {hint}.") from None
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (innermost first) that are empty: what a refused run created."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary file is created with the process umask (as any other tool's files), not the 0600 of
    ``tempfile``: results live on filesystems that teammates and Ray workers share."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
