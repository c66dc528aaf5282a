"""Map-free relocalization (Niantic, ECCV 2022): one reference image per scene, a query sequence.

Layout (PROTOCOLS.md 1.1): ``<root>/<split>/sXXXXX/{intrinsics.txt, poses.txt, seq0/frame_00000.jpg,
seq1/frame_NNNNN.jpg, seqN/frame_NNNNN.<depth>.png}``. ``poses.txt`` is world-to-camera with the
reference camera as the world, so each query's pose is also the reference->query relative pose
(our ``T_0to1``) and no conversion is needed.

By default only the frames the official scorer evaluates are run: every 5th entry of ``poses.txt``
after merging repeated frame numbers and skipping broken lines, read with the scorer's own rules
(``datasets.mapfree_io.parse_pose_lines``, which the scorer uses too; PROTOCOLS 1.2); ``frames: all``
runs every query frame. A broken ``intrinsics.txt`` line makes its own frame an ``invalid_input`` row
(file and line in the reason) and leaves every other frame alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import SampleError, UserError
from benchmark.geometry import pose_matrix, quat_to_rotmat
from benchmark.registry import DATASETS
from benchmark.types import TASK_METRIC_RELATIVE, Camera, InvalidSample, PairSample

from .base import Dataset, select_scenes
from .mapfree_io import evaluated_entries, intrinsics_by_line, parse_pose_lines, read_text_lines

REFERENCE = "seq0/frame_00000.jpg"
SCENE_PATTERN = re.compile(r"^s\d{5}$")
STRIDE = 5  # the scorer evaluates every 5th ground-truth entry


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
    conf_types = {
        "split": Key(str, choices=("train", "val", "test")),
        "depth": str | None,
        "depth_scale": Key(float, above=0),
        "frames": Key(str, choices=("evaluated", "all")),
        "scenes": list[str] | None,
    }
    task = TASK_METRIC_RELATIVE
    protocol = "mapfree"
    download_hint = (
        "get the data from https://research.nianticlabs.com/mapfree-reloc-benchmark and point to the folder "
        "holding val/ and test/"
    )

    @property
    def split_dir(self) -> Path:
        return self.root / self.conf["split"]

    def check(self) -> None:
        super().check()
        if not self.split_dir.is_dir():
            raise UserError(
                f"The Map-free folder {self.root} has no '{self.conf['split']}' split folder; "
                f"pass --set dataset.root=PATH pointing to the folder that holds val/ and test/."
            )
        if not self.scenes():
            raise UserError(f"{self.split_dir} holds no scene folders (sXXXXX); check dataset.root and dataset.split.")

    def scenes(self) -> list[str]:
        found = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir() and SCENE_PATTERN.match(p.name))
        return select_scenes(found, self.conf["scenes"], "scenes", self.split_dir)

    def depth_path(self, scene_dir: Path, image_name: str) -> Path | None:
        if not self.conf["depth"]:
            return None
        return scene_dir / image_name.replace(".jpg", f".{self.conf['depth']}.png")

    def ground_truth(self, scene_dir: Path) -> dict:
        """``{frame number: PoseLine}`` of poses.txt read with the official scorer's rules (a broken line
        is skipped; withheld all-zero test poses kept, so the evaluated frames are found)."""
        path = scene_dir / "poses.txt"
        if not path.is_file():
            raise SampleError(f"{path} is missing; every Map-free scene folder needs it")
        lines = read_text_lines(path.read_bytes(), str(path))
        gt, problems = parse_pose_lines(
            lines, str(path), with_confidence=False, keep_zero_quaternion=self.conf["split"] == "test"
        )
        if not gt:  # no frame can be told apart: the scene becomes one row that says why
            raise SampleError(f"{path} holds no readable pose line ({problems[0] if problems else 'empty'})")
        return gt

    def query_entries(self, gt: dict, intrinsics: dict) -> list:
        """(name, PoseLine or None) of the frames to run: the scorer's every-5th rule, or every frame."""
        if self.conf["frames"] == "evaluated":
            entries = [(gt[n].name, gt[n]) for n in evaluated_entries(gt, STRIDE)]
        elif len(gt) > 1:
            entries = [(e.name, e) for e in gt.values()]
        else:
            entries = [(name, None) for name in intrinsics]
        return [(name, entry) for name, entry in entries if name != REFERENCE]

    def check_samples(self, scene: str, problems: list[str]) -> Iterator[PairSample | InvalidSample]:
        """Also lists every broken intrinsics.txt line (evaluated frame or not) and every poses.txt line
        the scorer skips (its frame drops out of the evaluated set)."""
        scene_dir = self.split_dir / scene
        try:
            problems += list(intrinsics_by_line(scene_dir / "intrinsics.txt")[1].values())
            path = scene_dir / "poses.txt"
            if path.is_file():
                lines = read_text_lines(path.read_bytes(), str(path))
                problems += [
                    p
                    for p in parse_pose_lines(lines, str(path), False, self.conf["split"] == "test")[1]
                    if "ignored" in p
                ]
        except UserError:  # a missing or unreadable file: the scene's own row says so
            pass
        return self.samples(scene)

    def scene_files(self, scene: str) -> list[tuple[Path, str]]:
        """Every frame of the scene folder, and its depth map when dataset.depth names them."""
        scene_dir = self.split_dir / scene
        images = sorted(p for p in scene_dir.glob("seq*/*.jpg"))
        depth = [
            (d, "depth map")
            for d in (self.depth_path(scene_dir, p.relative_to(scene_dir).as_posix()) for p in images)
            if d is not None and d.is_file()
        ]
        return [(p, "image") for p in images] + depth

    def samples(self, scene: str) -> Iterator[PairSample | InvalidSample]:
        scene_dir = self.split_dir / scene
        try:
            gt = self.ground_truth(scene_dir)
            intrinsics, broken = intrinsics_by_line(scene_dir / "intrinsics.txt")
        except UserError as exc:
            raise SampleError(str(exc)) from None
        # a broken line costs its own frame only; without the reference's calibration no frame can run
        ref_problem = broken.get(REFERENCE) or (
            None
            if REFERENCE in intrinsics
            else f"{scene_dir / 'intrinsics.txt'} has no line for the reference {REFERENCE}"
        )
        depth0 = self.depth_path(scene_dir, REFERENCE)
        for name, entry in self.query_entries(gt, intrinsics):
            sample_id = f"{scene}/{name}"
            problem = (
                ref_problem
                or broken.get(name)
                or (None if name in intrinsics else f"{scene_dir / 'intrinsics.txt'} has no line for {name}")
            )
            if problem:
                yield InvalidSample(sample_id, scene, problem)
                continue
            k0, k1 = intrinsics[REFERENCE], intrinsics[name]
            T = None
            if entry is not None and np.linalg.norm(entry.q) > 1e-8:
                T = pose_matrix(quat_to_rotmat(entry.q / np.linalg.norm(entry.q)), entry.t)
            yield PairSample(
                id=sample_id,
                scene=scene,
                image0=scene_dir / REFERENCE,
                image1=scene_dir / name,
                camera0=Camera.from_K(k0.K, k0.width, k0.height),
                camera1=Camera.from_K(k1.K, k1.width, k1.height),
                T_0to1=T,
                depth0=depth0,
                depth_scale=self.conf["depth_scale"],
                extra={"frame_name": name},
            )
