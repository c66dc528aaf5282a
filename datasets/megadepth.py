"""MegaDepth-1500 relative pose: the 1500 test pairs of scenes 0015 and 0022 (LoFTR's split, also
glue-factory's ``megadepth1500``; AUC@5/10/20 of the relative-pose protocol).

Three list formats describe the same pairs (``dataset.list_format``):

* ``loftr``: LoFTR's ``assets/megadepth_test_1500_scene_info/``: ``megadepth_test_1500.txt`` names one
  scene-info file per line (``0015_0.1_0.3`` ... one per scene and overlap bin), each ``<name>.npz`` holding
  ``image_paths`` (relative to the root: ``Undistorted_SfM/0015/images/<file>.jpg``), ``intrinsics`` (3x3
  at the image files' size), ``poses`` (world-to-camera 4x4) and ``pair_infos`` (``((i, j), overlap,
  central matches)``); ``T_0to1 = poses[j] @ inv(poses[i])``. ``dataset.pairs`` may also name one .npz.
  The files hold pickled object arrays; they are read without running pickle's code (numpy arrays only).
* ``gluefactory``: glue-factory's ``megadepth1500.zip``, ``pairs_calibrated.txt``: one pair per line,
  ``name0 name1 K0[9] K1[9] R[9] t[3]`` (or ``T_0to1[16]`` instead of R, t), names relative to
  ``images/`` (``0015/<file>.jpg``).
* ``gluefactory_views``: the same download's ``views.txt`` (``name R[9] t[3] MODEL W H params...``,
  world-to-camera, a COLMAP PINHOLE or SIMPLE_PINHOLE camera) and ``pairs.txt`` (``name0 name1``).

The intrinsics are COLMAP's (the principal point in pixel-corner coordinates). ``intrinsics_convention``
says how a protocol used them: ``opencv`` as given, with keypoints in OpenCV pixels (LoFTR's evaluation;
half a pixel off, kept because its numbers were made so), ``colmap`` shifted by -0.5 into OpenCV pixels
(glue-factory works in the corner convention throughout, which is the same thing).

Resize rules (``resize_rule``, long side ``resize``, then both sides floored to ``divisible_by``):
``loftr`` (``read_megadepth_gray``): ``round(side * resize / long side)``; ``gluefactory``
(``ImagePreprocessor``, ``side: long``): the long side becomes ``resize``, the short one
``int(resize * short / long)`` computed from the aspect ratio as glue-factory does. ``keypoints_in`` says
where the pose is solved: ``original`` (LoFTR: the matched keypoints are multiplied by ``(w / w', h / h')``
and solved with the files' K, so a RANSAC threshold is in original pixels) or ``resized`` (glue-factory:
the camera scaled by pure factors ``w' / w``, ``h' / h``, exact in corner coordinates; the threshold is in
resized pixels). The images are resized with OpenCV's bilinear filter (``benchmark.io.read_image``): LoFTR's
own; glue-factory blurs before shrinking (kornia ``antialias``), and LoFTR zero-pads to a square with a
mask, neither of which is done here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.metrics.relpose import EPIPOLAR_THRESHOLD_MEGADEPTH
from benchmark.registry import DATASETS
from benchmark.types import TASK_RELATIVE, Camera, InvalidSample, PairSample

from .base import Dataset, select_scenes
from .files import data_path, image_size, missing_file_reason, read_object_npz
from .scannet import scale_intrinsics

FORMATS = ("loftr", "gluefactory", "gluefactory_views")
DEFAULT_LISTS = {
    "loftr": "megadepth_test_1500_scene_info/megadepth_test_1500.txt",
    "gluefactory": "pairs_calibrated.txt",
    "gluefactory_views": "pairs.txt",
}
DEFAULT_IMAGE_DIRS = {"loftr": "", "gluefactory": "images", "gluefactory_views": "images"}
RESIZE_RULES = (None, "loftr", "gluefactory")
CONVENTIONS = ("opencv", "colmap")
KEYPOINT_FRAMES = ("original", "resized")
SCENE_PATTERN = re.compile(r"(?<!\d)\d{4}(?!\d)")  # MegaDepth scene ids: 0015, 0022
ROTATION_TOLERANCE = 1e-2  # |R^T R - I|: rounding in the lists, not a wrong matrix
PINHOLE_PARAMS = {"PINHOLE": 4, "SIMPLE_PINHOLE": 3}


@dataclass
class PairEntry:
    where: str  # "file line N" / "file pair N", for messages
    scene: str
    name0: str
    name1: str
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray


def scene_of(name: str) -> str:
    """The scene of an image name: a folder named by four digits (``0015/...``, ``.../0015/images/...``),
    else the first folder, else 'all'."""
    parts = Path(name).parts[:-1]
    for part in parts:
        if SCENE_PATTERN.fullmatch(part):
            return part
    return parts[0] if parts else "all"


def resized_size(
    width: int, height: int, rule: str | None, long_side: int | None, divisible_by: int | None = None
) -> tuple[int, int]:
    """(W, H) after a protocol's resize rule (see the module docstring)."""
    w, h = int(width), int(height)
    if rule == "loftr" and long_side:
        scale = long_side / max(h, w)
        w, h = int(round(w * scale)), int(round(h * scale))
    elif rule == "gluefactory" and long_side:
        aspect = w / h
        w, h = (int(long_side * aspect), long_side) if aspect < 1.0 else (long_side, int(long_side / aspect))
    if divisible_by:
        w, h = w // divisible_by * divisible_by, h // divisible_by * divisible_by
    return w, h


def _check_K(K: np.ndarray) -> str:
    if not np.isfinite(K).all() or not (K[0, 0] > 0 and K[1, 1] > 0) or np.abs(K[2] - [0, 0, 1]).max() > 1e-9:
        return "an intrinsics matrix needs finite values, positive focal lengths and last row 0 0 1"
    return ""


def _check_pose(T: np.ndarray) -> str:
    if not np.isfinite(T).all():
        return "the pose contains NaN or inf"
    if np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-6:
        return "the last row of a 4x4 pose must be 0 0 0 1"
    R = T[:3, :3]
    if np.abs(R.T @ R - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(R) < 0:
        return "the rotation is not a rotation matrix"
    return ""


def _pose(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = np.asarray(R, np.float64).reshape(3, 3), np.asarray(t, np.float64).reshape(3)
    return T


def _data_lines(path: Path):
    """(fields, "<path> line N", "<file name>:N") of each line of a whitespace-separated text file that
    holds data (blank lines and # comments skipped)."""
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield fields, f"{path} line {lineno}", f"{Path(path).name}:{lineno}"


def read_calibrated_pairs(path: Path) -> tuple[list[PairEntry], list[tuple[str, str, str]]]:
    """glue-factory's ``pairs_calibrated.txt``: entries and (file:line, scene, problem) for malformed lines."""
    entries, bad = [], []
    for fields, where, tag in _data_lines(path):
        scene = scene_of(fields[0])
        if len(fields) not in (32, 36):
            bad.append(
                (
                    tag,
                    scene,
                    f"{where}: expected 32 fields (name0 name1 K0[9] K1[9] R[9] t[3]) or 36 "
                    f"(... T_0to1[16]), got {len(fields)}",
                )
            )
            continue
        try:
            values = np.array([float(v) for v in fields[2:]])
        except ValueError:
            bad.append((tag, scene, f"{where}: K0, K1 and the pose must be numbers"))
            continue
        K0, K1 = values[:9].reshape(3, 3), values[9:18].reshape(3, 3)
        T = _pose(values[18:27], values[27:30]) if len(fields) == 32 else values[18:].reshape(4, 4)
        problem = _check_K(K0) or _check_K(K1) or _check_pose(T)
        if problem:
            bad.append((tag, scene, f"{where}: {problem}"))
            continue
        entries.append(PairEntry(where, scene, fields[0], fields[1], K0, K1, T))
    return entries, bad


def read_views(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """glue-factory's ``views.txt``: name -> (K, world-to-camera 4x4), and name -> problem of its line."""
    views, bad = {}, {}
    for fields, where, _ in _data_lines(path):
        model = fields[13] if len(fields) > 13 else ""
        expected = 16 + PINHOLE_PARAMS.get(model, -99)
        if model not in PINHOLE_PARAMS:
            bad[fields[0]] = (
                f"{where}: expected 'name R[9] t[3] MODEL W H params' with MODEL PINHOLE or "
                f"SIMPLE_PINHOLE (undistorted images), got {model or len(fields)!r}"
            )
            continue
        if len(fields) != expected:
            bad[fields[0]] = f"{where}: a {model} view line has {expected} fields, got {len(fields)}"
            continue
        try:
            values = np.array([float(v) for v in fields[1:13] + fields[16:]])
            int(fields[14]), int(fields[15])
        except ValueError:
            bad[fields[0]] = f"{where}: the pose and camera parameters must be numbers, W and H integers"
            continue
        p = values[12:]
        fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if model == "SIMPLE_PINHOLE" else tuple(p)
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        T = _pose(values[:9], values[9:12])
        problem = _check_K(K) or _check_pose(T)
        if problem:
            bad[fields[0]] = f"{where}: {problem}"
            continue
        views[fields[0]] = (K, T)
    return views, bad


def read_view_pairs(pairs_path: Path, views_path: Path) -> tuple[list[PairEntry], list[tuple[str, str, str]]]:
    """glue-factory's ``pairs.txt`` with the cameras and poses of ``views.txt``."""
    if not Path(views_path).is_file():
        raise UserError(
            f"{views_path} is missing; it comes with {Path(pairs_path).name} in glue-factory's "
            f"megadepth1500.zip (or pass --set dataset.views=PATH)."
        )
    views, bad_views = read_views(views_path)
    entries, bad = [], []
    for fields, where, tag in _data_lines(pairs_path):
        scene = scene_of(fields[0])
        if len(fields) != 2:
            bad.append((tag, scene, f"{where}: expected 'name0 name1', got {len(fields)} fields"))
            continue
        problems = [bad_views.get(n) or (f"{views_path} has no line for {n}" if n not in views else "") for n in fields]
        if any(problems):
            bad.append((tag, scene, f"{where}: " + "; ".join(p for p in problems if p)))
            continue
        (K0, T0), (K1, T1) = views[fields[0]], views[fields[1]]
        entries.append(PairEntry(where, scene, fields[0], fields[1], K0, K1, T1 @ np.linalg.inv(T0)))
    return entries, bad


def _scene_info_files(list_path: Path) -> list[Path]:
    if list_path.suffix == ".npz":
        return [list_path]
    names = [line.split()[0] for line in list_path.read_text().splitlines() if line.split()]
    return [list_path.parent / (n if n.endswith(".npz") else f"{n}.npz") for n in names]


def _matrix(values, index: int, shape: tuple) -> np.ndarray | None:
    if index >= len(values) or values[index] is None:
        return None
    try:
        m = np.asarray(values[index], np.float64)
    except (TypeError, ValueError):
        return None
    return m.reshape(shape) if m.size == np.prod(shape) else None


def read_scene_info(path: Path) -> tuple[list[PairEntry], list[tuple[str, str, str]]]:
    """One LoFTR scene-info .npz: entries and (file:pair, scene, problem) for the pairs that cannot be built."""
    scene = Path(path).stem.split("_")[0]
    try:
        info = read_object_npz(path)
    except FileNotFoundError:
        raise UserError(
            f"{path} is missing; it is one of the scene-info files listed in LoFTR's "
            f"megadepth_test_1500.txt (assets/megadepth_test_1500_scene_info/)."
        ) from None
    except Exception as exc:
        raise UserError(f"{path} cannot be read as LoFTR's scene-info .npz ({exc}); download it again.") from None
    missing = [k for k in ("image_paths", "intrinsics", "poses", "pair_infos") if k not in info]
    if missing:
        raise UserError(f"{path} lacks the arrays {', '.join(missing)}; is this a LoFTR scene-info file?")
    names, Ks, poses = info["image_paths"], info["intrinsics"], info["poses"]
    entries, bad = [], []
    for k, pair in enumerate(info["pair_infos"]):
        where, tag = f"{path} pair {k}", f"{Path(path).name}:{k}"
        try:
            i, j = (int(v) for v in pair[0])
        except (TypeError, ValueError, IndexError):
            bad.append((tag, scene, f"{where}: pair_infos entries must start with the image indices (i, j)"))
            continue
        views = []
        for idx in (i, j):
            name = names[idx] if 0 <= idx < len(names) else None
            K, T = _matrix(Ks, idx, (3, 3)), _matrix(poses, idx, (4, 4))
            views.append((name, K, T))
        problem = next(
            (
                f"image {idx} has no path, intrinsics or pose"
                for idx, (n, K, T) in zip((i, j), views)
                if not isinstance(n, str) or K is None or T is None
            ),
            "",
        )
        problem = problem or next((p for _, K, T in views for p in (_check_K(K), _check_pose(T)) if p), "")
        if problem:
            bad.append((tag, scene, f"{where}: {problem}"))
            continue
        (n0, K0, T0), (n1, K1, T1) = views
        entries.append(PairEntry(where, scene, n0, n1, K0, K1, T1 @ np.linalg.inv(T0)))
    return entries, bad


@DATASETS.register("megadepth1500")
class MegaDepth1500(Dataset):
    """MegaDepth-1500 relative pose (LoFTR scene-info npz or glue-factory lists), protocol resize rules."""

    default_conf = {
        "root": None,  # loftr: the folder holding Undistorted_SfM/; gluefactory*: the megadepth1500/ folder
        "list_format": "loftr",  # loftr | gluefactory | gluefactory_views
        "pairs": None,  # null: the format's list (see DEFAULT_LISTS) in root; relative: root, then cwd
        "views": None,  # gluefactory_views: views.txt; null: beside the pairs file
        "image_dir": None,  # folder of the image names under root; null: '' (loftr) or images (gluefactory*)
        "resize_rule": "loftr",  # loftr | gluefactory | null (the files' size)
        "resize": 840,  # long side of the resize rule
        "divisible_by": 8,  # floor both sides to a multiple (LoFTR: 8); null: no flooring
        "intrinsics_convention": "opencv",  # opencv (K as given: LoFTR) | colmap (principal point - 0.5)
        "keypoints_in": "original",  # pixels the pose is solved in: original (LoFTR) | resized (glue-factory)
        "scenes": None,  # e.g. ['0015']; null: all
    }
    conf_types = {
        "list_format": Key(str, choices=FORMATS),
        "pairs": str | None,
        "views": str | None,
        "image_dir": str | None,
        "resize_rule": Key(str | None, choices=RESIZE_RULES),
        "resize": Key(int | None, min=1),
        "divisible_by": Key(int | None, min=1),
        "intrinsics_convention": Key(str, choices=CONVENTIONS),
        "keypoints_in": Key(str, choices=KEYPOINT_FRAMES),
        "scenes": list[str] | None,
    }
    task = TASK_RELATIVE
    protocol = "relpose"
    download_hint = (
        "MegaDepth-1500 test images: LoFTR's megadepth_test_1500 download with "
        "assets/megadepth_test_1500_scene_info/, or glue-factory's "
        "https://cvg-data.inf.ethz.ch/megadepth/megadepth1500.zip"
    )

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self._entries = None

    # -- files ------------------------------------------------------------------
    @property
    def pairs_path(self) -> Path:
        return data_path(self.root, self.conf["pairs"] or DEFAULT_LISTS.get(self.conf["list_format"], ""))

    @property
    def image_root(self) -> Path:
        image_dir = self.conf["image_dir"]
        return self.root / str(DEFAULT_IMAGE_DIRS.get(self.conf["list_format"], "") if image_dir is None else image_dir)

    def check(self) -> None:
        super().check()
        conf = self.conf  # types, ranges and choices were checked when the config was merged
        if not self.pairs_path.is_file():
            fmt = conf["list_format"]
            raise UserError(
                f"The pair list {self.pairs_path} is missing; pass --set dataset.pairs=PATH (the "
                f"{fmt} list of MegaDepth-1500, e.g. {DEFAULT_LISTS[fmt]})."
            )
        self.entries()

    def entries(self) -> tuple[list[PairEntry], list[tuple[str, str, str]]]:
        """Parsed pairs (cached): (good entries, (file:index, scene, reason) of those that cannot be built)."""
        if self._entries is None:
            fmt, path = self.conf["list_format"], self.pairs_path
            if fmt == "gluefactory":
                self._entries = read_calibrated_pairs(path)
            elif fmt == "gluefactory_views":
                views = data_path(self.root, self.conf["views"]) if self.conf["views"] else path.parent / "views.txt"
                self._entries = read_view_pairs(path, views)
            else:
                good, bad = [], []
                for npz in _scene_info_files(path):
                    g, b = read_scene_info(npz)
                    good += g
                    bad += b
                self._entries = (good, bad)
        return self._entries

    # -- samples ----------------------------------------------------------------
    def scenes(self) -> list[str]:
        good, bad = self.entries()
        found = list(dict.fromkeys([e.scene for e in good] + [b[1] for b in bad]))
        return select_scenes(found, self.conf["scenes"], "scenes", self.pairs_path)

    def samples(self, scene: str) -> Iterator[PairSample | InvalidSample]:
        good, bad = self.entries()
        for tag, bad_scene, reason in bad:
            if bad_scene == scene:
                yield InvalidSample(f"{scene}/{tag}", scene, reason)
        seen: dict[str, int] = {}
        for entry in good:
            base = f"{entry.scene}/{Path(entry.name0).stem}-{Path(entry.name1).stem}"
            seen[base] = seen.get(base, 0) + 1
            if entry.scene == scene:
                yield self._sample(base if seen[base] == 1 else f"{base}#{seen[base]}", entry)

    def _view(self, K: np.ndarray, size: tuple) -> tuple[Camera, tuple | None, tuple]:
        """(camera, size to resize the image to or None, factors from matched keypoints to the camera's pixels)."""
        conf = self.conf
        new = resized_size(*size, conf["resize_rule"], conf["resize"], conf["divisible_by"])
        if conf["keypoints_in"] == "resized":
            K, camera_size, factors = scale_intrinsics(K, size, new), new, (1.0, 1.0)
        else:  # LoFTR: keypoints times (w / w', h / h'), the files' K
            camera_size, factors = size, (size[0] / new[0], size[1] / new[1])
        if conf["intrinsics_convention"] == "colmap":
            K = K - np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])
        return Camera.from_K(K, *camera_size), None if new == size else new, factors

    def _sample(self, sample_id: str, e: PairEntry) -> PairSample | InvalidSample:
        paths = (self.image_root / e.name0, self.image_root / e.name1)
        views = []
        for path, K in zip(paths, (e.K0, e.K1)):
            size = image_size(path)
            if size is None:
                reason = (
                    missing_file_reason(path, "image") if not path.is_file() else f"{path} cannot be read as an image"
                )
                return InvalidSample(sample_id, e.scene, f"{e.where}: {reason}")
            views.append(self._view(K, size))
        (cam0, resize0, f0), (cam1, resize1, f1) = views
        extra = {"name0": e.name0, "name1": e.name1, "epipolar_threshold": EPIPOLAR_THRESHOLD_MEGADEPTH}
        if (f0, f1) != ((1.0, 1.0), (1.0, 1.0)):
            extra["keypoint_scale"] = (f0, f1)
        return PairSample(
            id=sample_id,
            scene=e.scene,
            image0=paths[0],
            image1=paths[1],
            camera0=cam0,
            camera1=cam1,
            T_0to1=e.T_0to1,
            resize0=resize0,
            resize1=resize1,
            extra=extra,
        )
