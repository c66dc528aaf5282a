"""The plain data types that travel along the arrows of the flow.

dataset --Sample--> method --Matches--> solver --Estimate--> metrics --ResultRow--> tables

Conventions (see README, "Conventions"): pixels are OpenCV style (centre of the
top-left pixel at (0, 0)); poses are world-to-camera, ``x_cam = R @ x_world + t``;
quaternions are (w, x, y, z); metres, degrees, pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

# Every sample ends with one of these statuses (kept in the per-sample table).
OK = "ok"
TOO_FEW_MATCHES = "too_few_matches"
SOLVER_FAILED = "solver_failed"
INVALID_INPUT = "invalid_input"
ERROR = "error"
STATUSES = (OK, TOO_FEW_MATCHES, SOLVER_FAILED, INVALID_INPUT, ERROR)

# What a dataset asks of the solver.
TASK_METRIC_RELATIVE = "metric_relative"  # relative pose with metric translation (Map-free)
TASK_RELATIVE = "relative"  # relative pose up to scale (ScanNet-1500, CO3D pairs)
TASK_ABSOLUTE = "absolute"  # pose in a mapped world frame (Aachen)
TASKS = (TASK_METRIC_RELATIVE, TASK_RELATIVE, TASK_ABSOLUTE)


@dataclass(frozen=True)
class Camera:
    """A camera in OpenCV pixel convention.

    ``model``/``params`` follow COLMAP's model names and parameter order, but with
    the principal point in OpenCV pixels (COLMAP's cx, cy minus 0.5). For the
    pinhole case use :meth:`pinhole`.
    """

    model: str
    width: int
    height: int
    params: tuple

    @staticmethod
    def pinhole(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> "Camera":
        return Camera("PINHOLE", int(width), int(height), (float(fx), float(fy), float(cx), float(cy)))

    @staticmethod
    def from_K(K: np.ndarray, width: int, height: int) -> "Camera":
        K = np.asarray(K, dtype=np.float64)
        return Camera.pinhole(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height)

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsics (distortion, if any, is not in K)."""
        p = self.params
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
            f, cx, cy = p[0], p[1], p[2]
            fx = fy = f
        else:  # PINHOLE, OPENCV, FULL_OPENCV, ... start with fx, fy, cx, cy
            fx, fy, cx, cy = p[0], p[1], p[2], p[3]
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def scaled(self, sx: float, sy: float) -> "Camera":
        """The camera of the same image resized by pure factors (no half-pixel shift)."""
        if self.model != "PINHOLE":
            raise ValueError(f"scaling a {self.model} camera is not supported")
        fx, fy, cx, cy = self.params
        w, h = round(self.width * sx), round(self.height * sy)
        return Camera.pinhole(fx * sx, fy * sy, cx * sx, cy * sy, w, h)


@dataclass
class PairSample:
    """Two images whose relative pose is to be estimated.

    ``T_0to1`` (4x4) maps points from camera 0 into camera 1. For Map-free the
    world frame is the reference camera, so image0 is the reference and
    ``T_0to1`` is also the query's world-to-camera pose.
    ``resize0``/``resize1`` ask the runner to resize the image to (W, H) before
    matching (protocol-mandated resizes, e.g. ScanNet's 640x480); the cameras
    already describe the resized images.
    """

    id: str
    scene: str
    image0: Path
    image1: Path
    camera0: Camera
    camera1: Camera
    T_0to1: Optional[np.ndarray] = None
    depth0: Optional[Path] = None  # depth of image0 (uint16 PNG or .npy), for metric scale
    depth_scale: float = 1e-3  # file units -> metres (Map-free PNGs are millimetres)
    resize0: Optional[tuple] = None
    resize1: Optional[tuple] = None
    extra: dict = field(default_factory=dict)


@dataclass
class Reference:
    """A database image with a known pose, used for absolute localization."""

    name: str
    image: Path
    camera: Camera
    T_w2c: np.ndarray  # 4x4
    # 2D observations (OpenCV pixels) of mapped 3D points (world frame), used to lift matches to 3D.
    points2d: Optional[np.ndarray] = None  # (M, 2)
    points3d: Optional[np.ndarray] = None  # (M, 3)


@dataclass
class QuerySample:
    """One query image to localize against retrieved reference images."""

    id: str
    scene: str
    image: Path
    camera: Camera
    references: list  # list[Reference], best first
    T_w2c: Optional[np.ndarray] = None  # ground truth when known
    extra: dict = field(default_factory=dict)


@dataclass
class InvalidSample:
    """A sample a loader could not build (e.g. its intrinsics line is missing); the runner records it
    with this reason instead of stopping."""

    id: str
    scene: str
    reason: str
    status: str = INVALID_INPUT


@dataclass
class Matches:
    """Correspondences between image0 and image1 in original-image pixels."""

    kpts0: np.ndarray  # (N, 2) float64, (x, y)
    kpts1: np.ndarray  # (N, 2) float64
    scores: np.ndarray  # (N,) higher is better
    pts3d0: Optional[np.ndarray] = None  # (N, 3) predicted 3D of kpts0 in camera-0 frame (MASt3R/DUSt3R)
    pts3d1: Optional[np.ndarray] = None  # (N, 3) predicted 3D of kpts1, also in camera-0 frame
    num_keypoints0: Optional[int] = None  # detected keypoints (for matching score), if known
    num_keypoints1: Optional[int] = None
    timings: dict = field(default_factory=dict)  # seconds per stage

    def __post_init__(self):
        self.kpts0 = np.asarray(self.kpts0, dtype=np.float64).reshape(-1, 2)
        self.kpts1 = np.asarray(self.kpts1, dtype=np.float64).reshape(-1, 2)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.kpts0)
        if len(self.kpts1) != n or len(self.scores) != n:
            raise ValueError(
                f"Matches: kpts0 {len(self.kpts0)}, kpts1 {len(self.kpts1)}, scores {len(self.scores)} differ"
            )
        for name in ("pts3d0", "pts3d1"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
                if len(v) != n:
                    raise ValueError(f"Matches: {name} has {len(v)} rows, expected {n}")
                setattr(self, name, v)

    def __len__(self) -> int:
        return len(self.kpts0)

    def subset(self, index) -> "Matches":
        def pick(a):
            return None if a is None else a[index]

        return Matches(
            self.kpts0[index],
            self.kpts1[index],
            self.scores[index],
            pick(self.pts3d0),
            pick(self.pts3d1),
            self.num_keypoints0,
            self.num_keypoints1,
            dict(self.timings),
        )


@dataclass
class PoseProblem:
    """What a solver gets: the matches and, where its declaration asks for them, 3D points.

    The pose sought maps frame 0 (camera 0 of a pair, the world of a map) into ``camera1`` (image 1 of a
    pair, the query). ``points3d`` holds one 3D point per match for ``kpts0``, in frame 0 (lifted with
    the dataset's depth, predicted by the method, or looked up in the map); NaN rows have none.
    """

    matches: Matches
    camera1: Camera
    camera0: Optional[Camera] = None  # pairs only
    points3d: Optional[np.ndarray] = None  # (N, 3)
    note: str = ""  # appended to a too_few_matches reason (e.g. how many matches were lifted)


@dataclass
class Estimate:
    """A solver's answer: ``x_1 = R @ x_0 + t`` (relative) or world-to-camera (absolute)."""

    R: Optional[np.ndarray] = None
    t: Optional[np.ndarray] = None
    confidence: float = 0.0  # higher = more confident (Map-free AUC); the inlier count by default
    num_inliers: int = 0
    status: str = OK
    reason: str = ""
    inliers: Optional[np.ndarray] = None  # bool mask over the matches

    @property
    def ok(self) -> bool:
        return self.status == OK and self.R is not None

    @staticmethod
    def failure(status: str, reason: str) -> "Estimate":
        return Estimate(status=status, reason=reason)


@dataclass
class ResultRow:
    """One line of the per-sample table."""

    sample_id: str
    scene: str
    status: str
    reason: str = ""
    num_matches: int = 0
    num_inliers: int = 0
    confidence: float = float("nan")
    qvec: tuple = (float("nan"),) * 4  # estimated rotation, (w, x, y, z)
    tvec: tuple = (float("nan"),) * 3
    errors: dict = field(default_factory=dict)  # metric name -> value (units in the name)
    time_match: float = float("nan")
    time_solve: float = float("nan")
    cached: bool = False
    stage_times: dict = field(default_factory=dict)  # the method's own stages (e.g. forward, reciprocal), seconds
    # a threshold sweep: each threshold's status, num_inliers, confidence and errors, keyed "thr=<px>/<column>"
    sweep: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "sample_id": self.sample_id,
            "scene": self.scene,
            "status": self.status,
            "reason": self.reason,
            "num_matches": self.num_matches,
            "num_inliers": self.num_inliers,
            "confidence": self.confidence,
            "qw": self.qvec[0],
            "qx": self.qvec[1],
            "qy": self.qvec[2],
            "qz": self.qvec[3],
            "tx": self.tvec[0],
            "ty": self.tvec[1],
            "tz": self.tvec[2],
            "time_match_s": self.time_match,
            "time_solve_s": self.time_solve,
            "cached": self.cached,
        }
        d.update({f"time_{stage}_s": float(s) for stage, s in self.stage_times.items()})
        d.update(self.errors)
        d.update(self.sweep)
        return d
