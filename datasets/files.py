"""Small file helpers shared by the ScanNet, MegaDepth, Aachen and CO3D loaders."""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
# EXIF orientations 5-8 involve a quarter turn: the decoded image has width and height swapped.
QUARTER_TURN_ORIENTATIONS = (5, 6, 7, 8)


def text_lines(path: Path) -> list[str]:
    """The lines of a list file; one sentence when it cannot be read or is not UTF-8 text."""
    from benchmark.errors import UserError

    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; restore the file from the dataset.") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror or exc}); check the file.") from None


def image_size(path: Path) -> tuple[int, int] | None:
    """(W, H) of an image as OpenCV decodes it (EXIF orientation applied), read from the header only.

    None when the file is missing or not an image.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError):
        return None
    return (h, w) if orientation in QUARTER_TURN_ORIENTATIONS else (w, h)


def data_path(root: Path, value) -> Path:
    """A path from the config: absolute as given; relative ones are looked up in the dataset root first,
    then in the working directory (so ``--set dataset.pairs=lists/x.txt`` works from either place)."""
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    in_root = Path(root) / path
    if in_root.exists() or not path.exists():
        return in_root
    return path.resolve()


def missing_folder(path: Path) -> Path | None:
    """The outermost absent folder above ``path`` (e.g. a scene folder that was not downloaded), if any."""
    out = None
    for folder in Path(path).parents:
        if folder.is_dir():
            break
        out = folder
    return out


def missing_file_reason(path: Path, what: str) -> str:
    """'<what> <path> is missing', naming the outermost missing folder when a whole folder is absent."""
    folder = missing_folder(path)
    if folder is not None:
        return f"{what} {path} is missing: the folder {folder} does not exist"
    return f"{what} {path} is missing"


def missing_files(paths, what: str = "image") -> list[str]:
    """One problem per missing file, but one per absent folder when whole folders are missing
    (a list of 3000 paths under a folder that was never downloaded is one problem, not 3000)."""
    out, folders = [], {}
    for path in dict.fromkeys(Path(p) for p in paths):
        if path.is_file():
            continue
        folder = missing_folder(path)
        if folder is None:
            out.append(f"{what} {path} is missing")
        else:
            folders[folder] = folders.get(folder, 0) + 1
    out += [f"the folder {f} does not exist ({n} {what}s of the list are in it)" for f, n in folders.items()]
    return out


# What a pickled numpy object array may name: the array reconstructors and numpy scalars, nothing else.
_NUMPY_PICKLE_GLOBALS = {
    (m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _NUMPY_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a numpy array file never needs")
        return getattr(importlib.import_module(module), name)


def read_object_npz(path: Path) -> dict:
    """Arrays of a ``.npz`` file, object arrays included (LoFTR's scene-info files hold tuples and
    per-image arrays), without ``allow_pickle``: a pickled member may only rebuild numpy arrays and
    scalars, so a tampered file cannot run code. Raises ValueError for anything else."""
    out = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as fp:
                version = np.lib.format.read_magic(fp)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fp)
                if dtype.hasobject:
                    array = _NumpyOnlyUnpickler(fp).load()
                else:
                    data = np.frombuffer(fp.read(), dtype=dtype, count=int(np.prod(shape)))
                    array = data.reshape(shape, order="F" if fortran else "C")
            out[member[:-4]] = array
    return out


def sample_files(sample) -> list[tuple[Path, str]]:
    """(path, kind) of every file a sample reads: images and the reference depth map."""
    if hasattr(sample, "image0"):
        files = [(sample.image0, "image"), (sample.image1, "image")]
        return files + ([(sample.depth0, "depth map")] if sample.depth0 is not None else [])
    refs = sample.references
    images = refs.images if hasattr(refs, "images") else [r.image for r in refs]
    return [(sample.image, "image")] + [(p, "image") for p in images]


def decode_problem(path: Path, kind: str) -> str:
    """Why the run could not use the file (read as the run reads it, then fully decoded, which also
    finds a truncated file that a lenient decoder would half-read); empty when it is fine."""
    from benchmark.errors import SampleError
    from benchmark.io import read_depth, read_image

    try:
        read_depth(path, 1.0) if kind == "depth map" else read_image(path)
        if Path(path).suffix != ".npy":
            with Image.open(path) as im:
                im.load()
    except SampleError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, ValueError, SyntaxError... for damaged files
        return f"{kind} {path} is truncated or damaged ({str(exc).strip() or type(exc).__name__})"
    return ""


def file_problems(files: list[tuple[Path, str]], decode: bool) -> list[str]:
    """Missing files (one sentence per absent folder), then, with ``decode``, those that do not decode."""
    files = list(dict.fromkeys((Path(p), kind) for p, kind in files))
    out = []
    for kind in dict.fromkeys(k for _, k in files):
        out += missing_files([p for p, k in files if k == kind], kind)
    if decode:
        out += [r for r in (decode_problem(p, k) for p, k in files if p.is_file()) if r]
    return out
