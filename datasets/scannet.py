"""ScanNet-1500 relative pose (SuperGlue / LoFTR protocol, PROTOCOLS.md section 2).

Two list formats describe the same 1500 test pairs (same order, same poses):

* ``superglue``: a text file, one pair per line, 38 fields
  ``name0 name1 rot0 rot1 K0[9] K1[9] T_0to1[16]`` (row-major; K at the resolution of the image files,
  1296 x 968 for ScanNet). Names are image paths relative to ``<root>/<image_dir>``, e.g.
  ``scans_test/scene0707_00/sens/frame-000015.color.jpg``; the 15-pair sample shipped with SuperGlue uses
  the same format with flat names (``scene0711_00_frame-001680.jpg``).
* ``loftr``: ``test.npz`` (``name``: N x 4 scene, sub-scene, frame0, frame1; ``rel_pose``: N x 12, the
  first three rows of T_0to1) and ``intrinsics.npz`` (one K per ``sceneXXXX_XX``, already at 640 x 480).
  Images are ``<root>/<image_dir>/sceneXXXX_XX/color/<frame>.jpg``.

Every image is resized to ``dataset.resize`` (640 x 480 by the protocol) and K is scaled by pure factors,
computed like the official code: ``K' = diag(1/(w/w'), 1/(h/h'), 1) K`` (no half-pixel shift). EXIF-style
rotation codes (``rot0``/``rot1``, all 0 in ScanNet) are passed to the image reader through
``PairSample.extra``; the cameras and ``T_0to1`` are rotated with the image so the sample stays consistent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.geometry import pose_matrix
from benchmark.registry import DATASETS
from benchmark.types import TASK_RELATIVE, Camera, InvalidSample, PairSample

from .base import Dataset, select_scenes
from .files import data_path, image_size, missing_file_reason, text_lines

SCENE_PATTERN = re.compile(r"scene\d{4}_\d{2}")
FRAME_DIGITS = re.compile(r"(\d+)\D*$")
SUPERGLUE_FIELDS = 38
LOFTR_K_SIZE = (640, 480)  # LoFTR's intrinsics.npz is already scaled to the protocol's size
DEFAULT_LISTS = {"superglue": "scannet_test_pairs_with_gt.txt", "loftr": "test.npz"}
# One clockwise quarter turn maps camera axes (x, y, z) -> (-y, x, z).
# camera axes after one counterclockwise quarter turn of the image: (X, Y, Z) -> (Y, -X, Z)
QUARTER_TURN = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class PairEntry:
    """One line of a pair list, before any image is looked at."""

    where: str  # "file line N" (superglue) or "file entry N" (loftr), for messages
    name0: str
    name1: str
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray
    rot0: int = 0
    rot1: int = 0
    K_size: Optional[tuple] = None  # (W, H) the K's refer to; None = the size of the image files


def scene_of(name: str) -> str:
    """The ScanNet scene id (``sceneXXXX_XX``) in an image name, else its first folder, else 'all'."""
    m = SCENE_PATTERN.search(name)
    if m:
        return m.group(0)
    parts = Path(name).parts
    return parts[0] if len(parts) > 1 else "all"


def frame_token(name: str) -> str:
    """The frame number of an image name (last digits of the file stem, without leading zeros)."""
    m = FRAME_DIGITS.search(Path(name).name.split(".")[0])
    return str(int(m.group(1))) if m else Path(name).stem


def read_superglue_pairs(path: Path) -> tuple[list[PairEntry], list[tuple[int, str, str]]]:
    """Entries of a SuperGlue pair list, and (line, scene, problem) for each malformed line."""
    entries, bad = [], []
    for lineno, line in enumerate(text_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        scene = scene_of(fields[0])
        where = f"{path} line {lineno}"
        if len(fields) != SUPERGLUE_FIELDS:
            bad.append(
                (
                    lineno,
                    scene,
                    f"{where}: expected {SUPERGLUE_FIELDS} fields (name0 name1 rot0 rot1 "
                    f"K0[9] K1[9] T_0to1[16]), got {len(fields)}",
                )
            )
            continue
        try:
            rot0, rot1 = int(fields[2]), int(fields[3])
            values = np.array([float(v) for v in fields[4:]])
        except ValueError:
            bad.append((lineno, scene, f"{where}: rot0 rot1 must be integers and K0, K1, T_0to1 numbers"))
            continue
        problem = _check_geometry(values, rot0, rot1)
        if problem:
            bad.append((lineno, scene, f"{where}: {problem}"))
            continue
        entries.append(
            PairEntry(
                where,
                fields[0],
                fields[1],
                values[:9].reshape(3, 3),
                values[9:18].reshape(3, 3),
                values[18:].reshape(4, 4),
                rot0,
                rot1,
            )
        )
    return entries, bad


def _check_geometry(values: np.ndarray, rot0: int, rot1: int) -> str:
    if not np.isfinite(values).all():
        return "K0, K1 or T_0to1 contains NaN or inf"
    if rot0 not in range(4) or rot1 not in range(4):
        return f"rotation codes must be 0-3, got {rot0} {rot1}"
    for i, K in enumerate((values[:9].reshape(3, 3), values[9:18].reshape(3, 3))):
        if not (K[0, 0] > 0 and K[1, 1] > 0) or np.abs(K[2] - [0, 0, 1]).max() > 1e-9:
            return f"K{i} must have positive focal lengths and last row 0 0 1"
    if np.abs(values[18:].reshape(4, 4)[3] - [0, 0, 0, 1]).max() > 1e-6:
        return "the last row of T_0to1 must be 0 0 0 1"
    return ""


def read_loftr_pairs(pairs_npz: Path, intrinsics_npz: Path) -> tuple[list[PairEntry], list[tuple[int, str, str]]]:
    """Entries of LoFTR's ``test.npz`` + ``intrinsics.npz``; raises UserError for unreadable files."""
    pairs = _load_npz(pairs_npz, ("name", "rel_pose"))
    intrinsics = _load_npz(intrinsics_npz, ())
    names, rel = np.asarray(pairs["name"]), np.asarray(pairs["rel_pose"], dtype=np.float64)
    if names.ndim != 2 or names.shape[1] != 4 or rel.shape != (len(names), 12):
        raise UserError(
            f"{pairs_npz}: expected 'name' of shape (N, 4) and 'rel_pose' of shape (N, 12), got "
            f"{names.shape} and {rel.shape}; is this LoFTR's test.npz?"
        )
    entries, bad = [], []
    for i, (scene_no, sub, f0, f1) in enumerate(names.astype(np.int64)):
        scene = f"scene{scene_no:04d}_{sub:02d}"
        where = f"{pairs_npz} entry {i}"
        if scene not in intrinsics:
            bad.append((i, scene, f"{where}: {intrinsics_npz} has no intrinsics for {scene}"))
            continue
        K = np.asarray(intrinsics[scene], dtype=np.float64)
        T = np.eye(4)
        T[:3] = rel[i].reshape(3, 4)
        problem = (
            _check_geometry(np.concatenate([K.ravel(), K.ravel(), T.ravel()]), 0, 0)
            if K.shape == (3, 3)
            else f"{intrinsics_npz}: the intrinsics of {scene} are not a 3x3 matrix"
        )
        if problem:
            bad.append((i, scene, f"{where}: {problem}"))
            continue
        entries.append(
            PairEntry(where, f"{scene}/color/{f0}.jpg", f"{scene}/color/{f1}.jpg", K, K.copy(), T, K_size=LOFTR_K_SIZE)
        )
    return entries, bad


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict:
    if not Path(path).is_file():
        raise UserError(
            f"{path} is missing; pass --set dataset.pairs=PATH (and dataset.intrinsics=PATH for "
            f"the LoFTR format) or put the list in dataset.root."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as exc:
        raise UserError(f"{path} cannot be read as a .npz file ({exc}); download it again.") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise UserError(f"{path} lacks the arrays {', '.join(missing)}; is this LoFTR's test.npz?")
    return out


def scale_intrinsics(K: np.ndarray, size: tuple, new_size: tuple) -> np.ndarray:
    """K of an image resized from ``size`` to ``new_size`` (W, H), exactly as SuperGlue/LoFTR compute it."""
    sx, sy = size[0] / new_size[0], size[1] / new_size[1]  # the official code divides by these ratios
    return np.diag([1.0 / sx, 1.0 / sy, 1.0]) @ K


def rotate_camera(K: np.ndarray, width: int, height: int, turns: int) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Intrinsics, size and camera-axes rotation after turning the image ``turns`` x 90 degrees
    counterclockwise (``np.rot90(image, k=turns)``, what SuperGlue's reader and ``benchmark.io.read_image``
    do with the list's rotation code; K as SuperGlue's ``rotate_intrinsics``). Pixel convention: OpenCV."""
    K, R = np.asarray(K, dtype=np.float64), np.eye(3)
    w, h = int(width), int(height)
    for _ in range(int(turns) % 4):
        # new pixel (x', y') = (y, w - 1 - x): x' runs along the old y axis, y' along the old x axis flipped
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        K = np.array([[fy, 0.0, cy], [0.0, fx, w - 1 - cx], [0.0, 0.0, 1.0]])
        R = QUARTER_TURN @ R
        w, h = h, w
    return K, (w, h), R


@DATASETS.register("scannet1500")
class ScanNet1500(Dataset):
    """ScanNet-1500 relative pose (SuperGlue txt or LoFTR npz lists); also the 15-pair SuperGlue sample."""

    default_conf = {
        "root": None,  # folder the image names are relative to (with image_dir)
        "list_format": "superglue",  # superglue | loftr
        "pairs": None,  # null -> scannet_test_pairs_with_gt.txt (superglue) or test.npz (loftr) in root
        "intrinsics": None,  # loftr only; null -> intrinsics.npz beside the pairs file
        "image_dir": "",  # subfolder of root holding the images
        "resize": [640, 480],  # (W, H) every image is resized to; null keeps the files' size
        "image_size": None,  # (W, H) of the image files; null reads each file's header (superglue format)
        "scenes": None,  # list of scene ids to run; null = all
    }
    conf_types = {
        "list_format": Key(str, choices=tuple(DEFAULT_LISTS)),
        "pairs": str | None,
        "intrinsics": str | None,
        "resize": Key(list[int] | None, min=1),
        "image_size": Key(list[int] | None, min=1),
        "scenes": list[str] | None,
    }
    task = TASK_RELATIVE
    protocol = "relpose"
    download_hint = (
        "ScanNet test scenes from http://www.scan-net.org; the pair lists ship with "
        "SuperGluePretrainedNetwork (assets/) and LoFTR (assets/scannet_test_1500/)"
    )

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self._entries = None
        self._ids = None

    # -- files ------------------------------------------------------------------
    @property
    def pairs_path(self) -> Path:
        fmt = self.conf["list_format"]
        return data_path(self.root, self.conf["pairs"] or DEFAULT_LISTS.get(fmt, ""))

    @property
    def intrinsics_path(self) -> Path:
        if self.conf["intrinsics"]:
            return data_path(self.root, self.conf["intrinsics"])
        return self.pairs_path.parent / "intrinsics.npz"

    @property
    def image_root(self) -> Path:
        return self.root / self.conf["image_dir"]

    def check(self) -> None:
        super().check()
        fmt = self.conf["list_format"]
        for key in ("resize", "image_size"):
            v = self.conf[key]
            if v is not None and len(v) != 2:
                raise UserError(f"dataset.{key} must be [W, H] or null, not {v!r}.")
        if not self.pairs_path.is_file():
            raise UserError(
                f"The pair list {self.pairs_path} is missing; pass --set dataset.pairs=PATH "
                f"(the {fmt} list of the 1500 test pairs)."
            )
        self.entries()

    def entries(self) -> tuple[list[PairEntry], list[tuple[int, str, str]]]:
        """Parsed pair list (cached): (good entries, malformed ones as (line, scene, reason))."""
        if self._entries is None:
            if self.conf["list_format"] == "loftr":
                self._entries = read_loftr_pairs(self.pairs_path, self.intrinsics_path)
            else:
                self._entries = read_superglue_pairs(self.pairs_path)
        return self._entries

    # -- samples ----------------------------------------------------------------
    def scenes(self) -> list[str]:
        good, bad = self.entries()
        found = list(dict.fromkeys([scene_of(e.name0) for e in good] + [b[1] for b in bad]))
        return select_scenes(found, self.conf["scenes"], "scenes", self.pairs_path)

    def _sample_ids(self) -> dict[int, str]:
        """Readable ids ``scene/frame0-frame1`` (identical for both list formats), made unique in list order."""
        if self._ids is not None:
            return self._ids
        good, _ = self.entries()
        ids, seen = {}, {}
        for i, e in enumerate(good):
            base = f"{scene_of(e.name0)}/{frame_token(e.name0)}-{frame_token(e.name1)}"
            seen[base] = seen.get(base, 0) + 1
            ids[i] = base if seen[base] == 1 else f"{base}#{seen[base]}"
        self._ids = ids
        return ids

    def samples(self, scene: str) -> Iterator[PairSample | InvalidSample]:
        good, bad = self.entries()
        for lineno, bad_scene, reason in bad:
            if bad_scene == scene:
                yield InvalidSample(f"{scene}/{Path(self.pairs_path).name}:{lineno}", scene, reason)
        ids = self._sample_ids()
        for i, entry in enumerate(good):
            if scene_of(entry.name0) == scene:
                yield self._sample(ids[i], scene, entry)

    def _sample(self, sample_id: str, scene: str, e: PairEntry) -> PairSample | InvalidSample:
        paths = (self.image_root / e.name0, self.image_root / e.name1)
        views = []
        for path, K, rot in zip(paths, (e.K0, e.K1), (e.rot0, e.rot1)):
            file_size = tuple(self.conf["image_size"]) if self.conf["image_size"] else None
            needs_file = e.K_size is None or self.conf["resize"] is None
            if needs_file and file_size is None:
                file_size = image_size(path)
                if file_size is None:
                    reason = (
                        missing_file_reason(path, "image")
                        if not path.is_file()
                        else f"{path} cannot be read as an image"
                    )
                    return InvalidSample(sample_id, scene, f"{e.where}: {reason}")
            src = e.K_size or file_size
            dst = tuple(self.conf["resize"]) if self.conf["resize"] else file_size
            K_rot, size, R = rotate_camera(scale_intrinsics(K, src, dst), dst[0], dst[1], rot)
            views.append((Camera.from_K(K_rot, *size), size if self.conf["resize"] else None, R))
        (cam0, resize0, R0), (cam1, resize1, R1) = views
        T = e.T_0to1
        if e.rot0 or e.rot1:
            T = pose_matrix(R1, np.zeros(3)) @ T @ pose_matrix(R0.T, np.zeros(3))
        return PairSample(
            id=sample_id,
            scene=scene,
            image0=paths[0],
            image1=paths[1],
            camera0=cam0,
            camera1=cam1,
            T_0to1=T,
            resize0=resize0,
            resize1=resize1,
            extra={"rot0": e.rot0, "rot1": e.rot1, "name0": e.name0, "name1": e.name1},
        )
