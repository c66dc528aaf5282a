"""Small pose helpers shared by loaders, solvers and metrics.

Quaternions are (w, x, y, z), Hamilton convention; poses are 4x4 world-to-camera.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def quat_to_rotmat(q_wxyz) -> np.ndarray:
    q = np.asarray(q_wxyz, dtype=np.float64)
    return Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()


def rotmat_to_quat(R) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0."""
    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def pose_matrix(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_pose(T) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return pose_matrix(R.T, -R.T @ t)


def camera_center(R, t) -> np.ndarray:
    return -np.asarray(R).T @ np.asarray(t).reshape(3)


def relative_pose(T_w2c_0, T_w2c_1) -> np.ndarray:
    """T_0to1 = T_w2c(1) @ inv(T_w2c(0)): maps camera-0 points into camera 1."""
    return T_w2c_1 @ invert_pose(T_w2c_0)


def rotation_angle_deg(R) -> float:
    """Geodesic angle of a rotation matrix, in degrees."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
