"""Multi-view pose sequences with ground-truth cameras (CO3D / PoseDiffusion style), scored by RRA/RTA/mAA
(PROTOCOLS.md section 4).

Folder format (generic): one folder per sequence holding its frames (``.jpg``/``.jpeg``/``.png``) and
``gt_cameras.npz`` with

* ``gtR`` (N, 3, 3), ``gtT`` (N, 3): PyTorch3D cameras (row vectors, ``X_view = X_world @ R + T``, view axes
  +x left, +y up, +z forward), in the order of the sorted frame file names;
* ``gtFL`` (N, 2): focal lengths in PyTorch3D NDC units.

``dataset.root`` is either such a folder or any folder above several of them (CO3D's
``<category>/<sequence>`` works); the sequence id is the folder's path below the root.

Conversions: OpenCV world-to-camera ``R = diag(-1,-1,1) gtR^T``, ``t = diag(-1,-1,1) gtT``; focal length in
pixels ``f = f_ndc * min(W, H) / 2`` with the principal point at the image centre ((W-1)/2, (H-1)/2 in OpenCV
pixels). The intrinsics are an **assumption** (that the NDC cameras describe the full, uncropped frames);
RRA/RTA/mAA do not use them, pose solvers do.

Samples: every pair i < j in ``torch.combinations`` order with ``T_0to1 = T_w2c(j) inv(T_w2c(i))``, or a
seeded random subset of ``dataset.max_pairs`` pairs per sequence (kept in that order).
"""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import SampleError, UserError
from benchmark.geometry import pose_matrix, relative_pose
from benchmark.registry import DATASETS
from benchmark.types import TASK_RELATIVE, Camera, InvalidSample, PairSample

from .base import Dataset, select_scenes
from .files import image_size
from .scannet import scale_intrinsics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
PYTORCH3D_TO_OPENCV = np.diag([-1.0, -1.0, 1.0])


def opencv_from_pytorch3d(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """4x4 OpenCV world-to-camera pose of a PyTorch3D camera (row-vector R, T)."""
    return pose_matrix(
        PYTORCH3D_TO_OPENCV @ np.asarray(R, dtype=np.float64).T, PYTORCH3D_TO_OPENCV @ np.asarray(T, dtype=np.float64)
    )


def intrinsics_from_ndc(focal_ndc, width: int, height: int) -> np.ndarray:
    """Pixel K from PyTorch3D NDC focal lengths, principal point at the image centre (an assumption)."""
    half = min(width, height) / 2.0
    fx, fy = float(focal_ndc[0]) * half, float(focal_ndc[1]) * half
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def sequence_pairs(num_frames: int, max_pairs: int | None, seed: int, sequence: str) -> list[tuple[int, int]]:
    """All i < j pairs in torch.combinations order, or a seeded subset of them in the same order."""
    pairs = list(itertools.combinations(range(num_frames), 2))
    if max_pairs is None or max_pairs >= len(pairs):
        return pairs
    rng = np.random.default_rng([seed, zlib.crc32(sequence.encode())])
    keep = np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))
    return [pairs[k] for k in keep]


@DATASETS.register("co3d")
class Co3dSequences(Dataset):
    """Multi-view sequences with PyTorch3D GT cameras (CO3D/PoseDiffusion layout); all frame pairs, RRA/RTA."""

    default_conf = {
        "root": None,  # a sequence folder (holding gt_cameras.npz) or a folder above several
        "cameras_file": "gt_cameras.npz",
        "max_pairs": None,  # per sequence: a seeded random subset of the N(N-1)/2 pairs; null = all
        "seed": 0,  # for max_pairs
        "resize_max": None,  # downscale frames whose longer side exceeds this (px); K scaled by pure factors
        "sequences": None,  # list of sequence ids to run; null = all
    }
    conf_types = {
        "max_pairs": Key(int | None, min=1),
        "seed": Key(int, min=0),
        "resize_max": Key(int | None, min=1),
        "sequences": list[str] | None,
    }
    task = TASK_RELATIVE
    protocol = "rra"
    download_hint = (
        "a folder per sequence with its frames and gt_cameras.npz (gtR, gtT, gtFL in PyTorch3D "
        "convention), e.g. PoseDiffusion's samples/apple"
    )

    def check(self) -> None:
        super().check()
        if not self._sequence_dirs():
            raise UserError(
                f"{self.root} holds no {self.conf['cameras_file']} (neither in it nor in a subfolder); "
                f"point dataset.root to a sequence folder or a folder of sequences."
            )

    def _sequence_dirs(self) -> dict[str, Path]:
        name = self.conf["cameras_file"]
        if (self.root / name).is_file():
            return {self.root.resolve().name: self.root}
        return {f.parent.relative_to(self.root).as_posix(): f.parent for f in sorted(self.root.rglob(name))}

    def scenes(self) -> list[str]:
        return select_scenes(list(self._sequence_dirs()), self.conf["sequences"], "sequences", self.root)

    def frame_paths(self, sequence: str) -> list[Path]:
        folder = self._sequence_dirs()[sequence]
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def frames(self, sequence: str) -> tuple[list[Path], list, list, list, dict[int, str]]:
        """Frame paths, OpenCV world-to-camera poses, cameras (after resize), resize targets of a sequence,
        and {frame index: why it cannot be used} for frames that cannot be read (a broken frame costs only
        the pairs it is in).

        Raises SampleError naming the cameras file when it is unusable (then no frame has a pose).
        """
        folder = self._sequence_dirs()[sequence]
        cams_path = folder / self.conf["cameras_file"]
        try:
            with np.load(cams_path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("gtR", "gtT", "gtFL") if k in data}
        except Exception as exc:
            raise SampleError(f"{cams_path} cannot be read as a .npz file ({exc})") from None
        missing = [k for k in ("gtR", "gtT", "gtFL") if k not in arrays]
        if missing:
            raise SampleError(f"{cams_path} lacks the arrays {', '.join(missing)} (PyTorch3D gtR, gtT, gtFL)")
        paths = self.frame_paths(sequence)
        n = len(paths)
        shapes = {"gtR": (n, 3, 3), "gtT": (n, 3), "gtFL": (n, 2)}
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise SampleError(
                    f"{cams_path}: {key} has shape {arrays[key].shape}, expected {shape} for the {n} frames in {folder}"
                )
        poses, cameras, resizes, broken = [], [], [], {}
        for k, path in enumerate(paths):
            size = image_size(path)
            bad = [key for key in ("gtR", "gtT", "gtFL") if not np.isfinite(arrays[key][k]).all()]
            if size is None or bad:
                broken[k] = (
                    f"frame {path} cannot be read as an image"
                    if size is None
                    else f"{cams_path}: {', '.join(bad)} of frame {k} ({path.name}) holds NaN or inf"
                )
                poses.append(None), cameras.append(None), resizes.append(None)
                continue
            K = intrinsics_from_ndc(arrays["gtFL"][k], *size)
            target = self._target_size(size)
            if target is not None:
                K = scale_intrinsics(K, size, target)
            poses.append(opencv_from_pytorch3d(arrays["gtR"][k], arrays["gtT"][k]))
            cameras.append(Camera.from_K(K, *(target or size)))
            resizes.append(target)
        return paths, poses, cameras, resizes, broken

    def _target_size(self, size: tuple) -> tuple | None:
        limit = self.conf["resize_max"]
        if limit is None or max(size) <= limit:
            return None
        s = limit / max(size)
        return (max(1, round(size[0] * s)), max(1, round(size[1] * s)))

    def samples(self, scene: str) -> Iterator[PairSample | InvalidSample]:
        """The seeded pairs of the sequence; a pair with an unusable frame (or all of them, when the cameras
        file is unusable) is an InvalidSample that says why: it stays in every denominator."""
        paths = self.frame_paths(scene)
        pairs = sequence_pairs(len(paths), self.conf["max_pairs"], self.conf["seed"], scene)

        def pair_id(i, j):
            return f"{scene}/{paths[i].stem}-{paths[j].stem}"

        try:
            paths, poses, cameras, resizes, broken = self.frames(scene)
        except SampleError as exc:
            for i, j in pairs:
                yield InvalidSample(pair_id(i, j), scene, str(exc))
            return
        category = scene.split("/")[0]
        for i, j in pairs:
            if i in broken or j in broken:
                yield InvalidSample(pair_id(i, j), scene, broken.get(i) or broken[j])
                continue
            yield PairSample(
                id=pair_id(i, j),
                scene=scene,
                image0=paths[i],
                image1=paths[j],
                camera0=cameras[i],
                camera1=cameras[j],
                T_0to1=relative_pose(poses[i], poses[j]),
                resize0=resizes[i],
                resize1=resizes[j],
                extra={"i": i, "j": j, "category": category},
            )

    def check_samples(self, scene: str, problems: list[str]) -> Iterator[PairSample]:
        paths = self.frame_paths(scene)
        if len(paths) < 2:
            problems.append(f"{self._sequence_dirs()[scene]}: a sequence needs at least 2 frames, found {len(paths)}")
        return self.samples(scene)
