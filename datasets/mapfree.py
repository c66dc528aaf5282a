"""Map-free relocalization (Niantic, ECCV 2022): one reference image per scene, a query sequence.

Layout (PROTOCOLS.md 1.1): ``<root>/<split>/sXXXXX/{intrinsics.txt, poses.txt, seq0/frame_00000.jpg,
seq1/frame_NNNNN.jpg, seqN/frame_NNNNN.<depth>.png}``. ``poses.txt`` is world-to-camera with the
reference camera as the world, so each query's pose is also the reference->query relative pose
(our ``T_0to1``) and no conversion is needed.

By default only the frames the official scorer evaluates are run (every 5th line of ``poses.txt``
after merging repeated frame numbers, PROTOCOLS 1.2, read with the scorer's own rules from
``benchmark.metrics.submission``); ``frames: all`` runs every query frame.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from benchmark.errors import SampleError, UserError
from benchmark.metrics.submission import evaluated_frames
from benchmark.geometry import pose_matrix, quat_to_rotmat
from benchmark.registry import DATASETS
from benchmark.types import TASK_METRIC_RELATIVE, Camera, InvalidSample, PairSample

from .base import Dataset, select_scenes
from .mapfree_io import read_intrinsics, read_poses

REFERENCE = "seq0/frame_00000.jpg"
SCENE_PATTERN = re.compile(r"^s\d{5}$")


@DATASETS.register("mapfree")
class MapFree(Dataset):
    """Map-free relocalization: reference image + query sequence per scene, metric pose (val/test)."""

    default_conf = {
        "root": None,
        "split": "val",
        "depth": None,  # depth file suffix, e.g. dptnyu for frame_00000.dptnyu.png; null = no depth
        "depth_scale": 0.001,  # PNG units -> metres (Map-free ships millimetres)
        "frames": "evaluated",  # evaluated | all
        "scenes": None,  # list of scene names to run; null = all
    }
    task = TASK_METRIC_RELATIVE
    protocol = "mapfree"
    download_hint = "get the data from https://research.nianticlabs.com/mapfree-reloc-benchmark and point to the folder holding val/ and test/"

    @property
    def split_dir(self) -> Path:
        return self.root / str(self.conf["split"])

    def check(self) -> None:
        super().check()
        if self.conf["split"] not in ("train", "val", "test"):
            raise UserError(f"dataset.split must be train, val or test, not '{self.conf['split']}'.")
        if self.conf["frames"] not in ("evaluated", "all"):
            raise UserError(f"dataset.frames must be 'evaluated' or 'all', not '{self.conf['frames']}'.")
        if not self.split_dir.is_dir():
            raise UserError(f"The Map-free folder {self.root} has no '{self.conf['split']}' split folder; "
                            f"pass --set dataset.root=PATH pointing to the folder that holds val/ and test/.")
        if not self.scenes():
            raise UserError(f"{self.split_dir} holds no scene folders (sXXXXX); check dataset.root and dataset.split.")

    def scenes(self) -> list[str]:
        found = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir() and SCENE_PATTERN.match(p.name))
        return select_scenes(found, self.conf["scenes"], "scenes", self.split_dir)

    def depth_path(self, scene_dir: Path, image_name: str) -> Path | None:
        if not self.conf["depth"]:
            return None
        return scene_dir / image_name.replace(".jpg", f".{self.conf['depth']}.png")

    def query_names(self, scene_dir: Path, poses: dict, intrinsics: dict) -> list[str]:
        if self.conf["frames"] == "evaluated":
            # the scorer's own reading rules; withheld (all-zero) test poses still mark the evaluated frames
            keep_zero = self.conf["split"] == "test"
            names = [name for name, _ in evaluated_frames(scene_dir / "poses.txt", keep_zero_poses=keep_zero)]
        else:
            names = list(poses) if len(poses) > 1 else list(intrinsics)
        return [n for n in names if n != REFERENCE]

    def samples(self, scene: str) -> Iterator[PairSample | InvalidSample]:
        scene_dir = self.split_dir / scene
        try:
            intrinsics = read_intrinsics(scene_dir / "intrinsics.txt")
            poses = read_poses(scene_dir / "poses.txt")
        except UserError as exc:
            raise SampleError(str(exc)) from None
        if REFERENCE not in intrinsics:
            raise SampleError(f"{scene_dir / 'intrinsics.txt'} has no line for the reference {REFERENCE}")
        k0 = intrinsics[REFERENCE]
        cam0 = Camera.from_K(k0.K, k0.width, k0.height)
        depth0 = self.depth_path(scene_dir, REFERENCE)
        for name in self.query_names(scene_dir, poses, intrinsics):
            sample_id = f"{scene}/{name}"
            if name not in intrinsics:
                yield InvalidSample(sample_id, scene, f"{scene_dir / 'intrinsics.txt'} has no line for {name}")
                continue
            k1 = intrinsics[name]
            T = None
            if name in poses:
                q, t = poses[name]
                T = pose_matrix(quat_to_rotmat(q), t)
            yield PairSample(id=sample_id, scene=scene, image0=scene_dir / REFERENCE, image1=scene_dir / name,
                             camera0=cam0, camera1=Camera.from_K(k1.K, k1.width, k1.height), T_0to1=T,
                             depth0=depth0, depth_scale=float(self.conf["depth_scale"]),
                             extra={"frame_name": name})

    def problems(self) -> list[str]:
        try:
            self.check()
        except UserError as exc:
            return [str(exc)]
        out = []
        for scene in self.scenes():
            scene_dir = self.split_dir / scene
            try:
                for item in self.samples(scene):
                    if isinstance(item, InvalidSample):
                        out.append(item.reason)
                        continue
                    for p in (item.image0, item.image1, item.depth0):
                        if p is not None and not p.is_file():
                            out.append(f"{p}: file is missing")
            except SampleError as exc:
                out.append(str(exc))
            if not (scene_dir / REFERENCE).is_file():
                out.append(f"{scene_dir / REFERENCE}: reference image is missing")
        return sorted(set(out))
