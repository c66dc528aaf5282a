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

from benchmark.config_types import Key
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
    conf_types = {"split": Key(str, choices=("train", "val", "test")), "depth": str | None,
                  "depth_scale": Key(float, above=0), "frames": Key(str, choices=("evaluated", "all")),
                  "scenes": list[str] | None}
    task = TASK_METRIC_RELATIVE
    protocol = "mapfree"
    download_hint = "get the data from https://research.nianticlabs.com/mapfree-reloc-benchmark and point to the folder holding val/ and test/"

    @property
    def split_dir(self) -> Path:
        return self.root / self.conf["split"]

    def check(self) -> None:
        super().check()
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
        return self._samples(scene, None)

    def check_samples(self, scene: str, problems: list[str]) -> Iterator[PairSample | InvalidSample]:
        return self._samples(scene, problems)

    def scene_files(self, scene: str) -> list[tuple[Path, str]]:
        """Every frame of the scene folder, and its depth map when dataset.depth names them."""
        scene_dir = self.split_dir / scene
        images = sorted(p for p in scene_dir.glob("seq*/*.jpg"))
        depth = [(d, "depth map") for d in (self.depth_path(scene_dir, p.relative_to(scene_dir).as_posix())
                                            for p in images) if d is not None and d.is_file()]
        return [(p, "image") for p in images] + depth

    def _samples(self, scene: str, problems: list | None) -> Iterator[PairSample | InvalidSample]:
        """A malformed line of intrinsics.txt or poses.txt stops the scene, or with a ``problems`` list is
        recorded there and skipped."""
        scene_dir = self.split_dir / scene
        try:
            intrinsics = read_intrinsics(scene_dir / "intrinsics.txt", problems)
            poses = read_poses(scene_dir / "poses.txt", problems=problems)
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
                             depth0=depth0, depth_scale=self.conf["depth_scale"],
                             extra={"frame_name": name})
