"""A synthetic pair dataset and a model-free matcher for runner, resume and executor tests.

Each pair is one 4x4 PNG whose first pixel encodes a seed and a mode. The dataset derives the
ground-truth relative pose from the sample id; the matcher decodes the seed from the image and
returns noisy correspondences of random 3-D points under that same pose, plus outliers, so the
RANSAC solver does real, seed-dependent work. Modes: 0 normal, 1 too few matches, 2 the matcher
raises. A file ``BROKEN_AFTER_<k>`` in a scene folder makes that scene fail after k samples.

Nothing registers at import: a test asks for the ``synthetic_classes`` fixture (``tests/conftest.py``),
which registers both classes for that test only.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from benchmark.errors import SampleError, UserError
from benchmark.geometry import pose_matrix
from benchmark.types import TASK_RELATIVE, Camera, Matches, PairSample
from datasets.base import Dataset
from methods.base import Matcher

WIDTH, HEIGHT, FOCAL = 640, 480, 500.0
NORMAL, FEW, RAISE = 0, 1, 2


def pair_seed(sample_id: str) -> int:
    return zlib.crc32(sample_id.encode()) & 0xFFFFFF


def relative_pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    R, _ = cv2.Rodrigues(rng.normal(0.0, 0.15, 3))
    t = rng.normal(0.0, 1.0, 3)
    return pose_matrix(R, t / np.linalg.norm(t) * rng.uniform(0.3, 1.0))


def camera() -> Camera:
    return Camera.pinhole(FOCAL, FOCAL, WIDTH / 2, HEIGHT / 2, WIDTH, HEIGHT)


def write_dataset(root: Path, scenes: int = 2, pairs: int = 5, modes: dict | None = None) -> Path:
    """``root/sc<i>/<j>.png`` for every pair; ``modes`` maps sample ids ("sc0/3") to FEW or RAISE."""
    modes = modes or {}
    for i in range(scenes):
        for j in range(pairs):
            sample_id = f"sc{i}/{j:03d}"
            seed = pair_seed(sample_id)
            pixel = np.zeros((4, 4, 3), np.uint8)
            pixel[0, 0] = (seed >> 16, (seed >> 8) & 255, seed & 255)  # RGB as read back by read_image
            pixel[0, 1, 0] = modes.get(sample_id, NORMAL)
            path = root / f"{sample_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(pixel, cv2.COLOR_RGB2BGR))
    return root


class SyntheticPairs(Dataset):
    """Synthetic pairs (tests only): pose from the sample id, one tiny PNG per pair."""

    default_conf = {"root": None}
    task = TASK_RELATIVE
    protocol = "relpose"

    def scenes(self):
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def samples(self, scene):
        folder = self.root / scene
        broken = [int(p.name.rsplit("_", 1)[1]) for p in folder.glob("BROKEN_AFTER_*")]
        for k, image in enumerate(sorted(folder.glob("*.png"))):
            if broken and k >= broken[0]:
                raise SampleError(f"{folder / f'BROKEN_AFTER_{broken[0]}'}: the scene breaks here")
            sample_id = f"{scene}/{image.stem}"
            yield PairSample(sample_id, scene, image, image, camera(), camera(), relative_pose(pair_seed(sample_id)))


class SyntheticMatcher(Matcher):
    """Correspondences from the pose encoded in the image (tests only; no model)."""

    default_conf = {"num": 150, "noise_px": 2.0, "outliers": 0.4, "broken_weights": False}
    calls = 0  # matcher calls in this process (tests of "recomputes nothing finished")
    crash_after: int | None = None  # raise KeyboardInterrupt at this call (a kill in the middle of a shard)

    def _load(self):
        if self.conf["broken_weights"]:
            raise UserError("The synthetic weight file is truncated; download it again.")

    def _match(self, image0, image1):
        type(self).calls += 1
        if self.crash_after is not None and type(self).calls >= self.crash_after:
            raise KeyboardInterrupt
        r, g, b = (int(v) for v in image0[0, 0])
        mode = int(image0[0, 1, 0])
        if mode == RAISE:
            raise RuntimeError("synthetic matcher failure")
        seed = (r << 16) | (g << 8) | b
        T = relative_pose(seed)
        rng = np.random.default_rng(seed + 1)
        n = 3 if mode == FEW else int(self.conf["num"])
        points = rng.uniform((-2.0, -1.5, 3.0), (2.0, 1.5, 8.0), (n, 3))
        K = camera().K

        def project(X):
            return (X @ K.T)[:, :2] / X[:, 2:]

        kpts0 = project(points) + rng.normal(0.0, self.conf["noise_px"], (n, 2))
        kpts1 = project(points @ T[:3, :3].T + T[:3, 3]) + rng.normal(0.0, self.conf["noise_px"], (n, 2))
        bad = rng.random(n) < self.conf["outliers"]
        kpts1[bad] = rng.uniform((0, 0), (WIDTH, HEIGHT), (int(bad.sum()), 2))
        return Matches(kpts0, kpts1, rng.random(n), num_keypoints0=n, num_keypoints1=n)


class BatchingMatcher(SyntheticMatcher):
    """The synthetic matcher, asking for batches of 3 pairs (``batches``: the sizes it was handed)."""

    batches: list = []

    def pairs_per_batch(self) -> int:
        return 3

    def match_batch(self, pairs):
        type(self).batches.append(len(pairs))
        return super().match_batch(pairs)
