"""Is the demo data localizable? SIFT + PnP from the reference depth on every evaluated query.

    python -m datasets.demo.check [--root datasets/demo/data] [--scenes s90000 ...]

pycolmap SIFT on grayscale (COLMAP keypoints shifted by -0.5 into OpenCV pixels), mutual
matching with ratio 0.8, reference keypoints lifted with the reference depth and K, then
``estimate_and_refine_absolute_pose`` (points and principal point shifted back by +0.5 for
COLMAP). Prints per-query errors against the ground truth and the share within
(25 cm, 5 deg), the Map-free pose threshold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from benchmark.geometry import camera_center, quat_to_rotmat, rotation_angle_deg
from datasets.mapfree_io import read_intrinsics, read_poses

from .generate import DEFAULT_OUT, DEPTH_SUFFIX, REFERENCE, SPLIT, evaluated_queries


def _sift(path: Path, extractor):
    gray = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY))
    kps, descs = extractor.extract_from_uint8_array(gray)
    return kps, descs, np.array([(k.x, k.y) for k in kps]).reshape(-1, 2) - 0.5


def localize(scene_dir: Path, extractor, matcher):
    """Yield (name, inliers, translation error m, rotation error deg) per evaluated query."""
    intrinsics, poses = read_intrinsics(scene_dir / "intrinsics.txt"), read_poses(scene_dir / "poses.txt")
    k0 = intrinsics[REFERENCE]
    depth_file = scene_dir / REFERENCE.replace(".jpg", f".{DEPTH_SUFFIX}.png")
    depth = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED) / 1000.0
    kps0, descs0, xy0 = _sift(scene_dir / REFERENCE, extractor)
    for name in evaluated_queries(list(poses)):
        kps1, descs1, xy1 = _sift(scene_dir / name, extractor)
        pairs = np.asarray(matcher.match(kps0, descs0, kps1, descs1), dtype=np.int64).reshape(-1, 2)
        p0, p1 = xy0[pairs[:, 0]], xy1[pairs[:, 1]]
        u = np.clip(np.rint(p0[:, 0]).astype(int), 0, k0.width - 1)
        v = np.clip(np.rint(p0[:, 1]).astype(int), 0, k0.height - 1)
        z = depth[v, u]
        ok = z > 0
        pts3d = np.stack([(p0[:, 0] - k0.cx) / k0.fx * z, (p0[:, 1] - k0.cy) / k0.fy * z, z], 1)[ok]
        k1 = intrinsics[name]
        cam = pycolmap.Camera(
            model="PINHOLE", width=k1.width, height=k1.height, params=[k1.fx, k1.fy, k1.cx + 0.5, k1.cy + 0.5]
        )
        est = pycolmap.AbsolutePoseEstimationOptions()
        est.ransac.max_error = 4.0
        est.ransac.random_seed = 0
        ans = None
        if ok.sum() >= 4:
            ans = pycolmap.estimate_and_refine_absolute_pose(
                p1[ok] + 0.5, pts3d, cam, est, pycolmap.AbsolutePoseRefinementOptions()
            )
        q, t = poses[name]
        R_gt = quat_to_rotmat(q)
        if ans is None:
            yield name, len(pairs), 0, np.inf, np.inf
            continue
        T = ans["cam_from_world"]
        R, tt = T.rotation.matrix(), np.asarray(T.translation)
        yield (
            name,
            len(pairs),
            int(ans["num_inliers"]),
            float(np.linalg.norm(camera_center(R, tt) - camera_center(R_gt, t))),
            rotation_angle_deg(R @ R_gt.T),
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--scenes", nargs="+", default=None)
    args = parser.parse_args(argv)
    pycolmap.logging.minloglevel = 2
    eo = pycolmap.FeatureExtractionOptions()
    eo.sift.max_num_features = 4096
    eo.num_threads = 1
    extractor = pycolmap.FeatureExtractor.create(eo, device=pycolmap.Device.cpu)
    mo = pycolmap.FeatureMatchingOptions()
    mo.sift.max_ratio, mo.sift.cross_check = 0.8, True
    mo.num_threads = 1
    matcher = pycolmap.FeatureMatcher.create(mo, device=pycolmap.Device.cpu)
    scenes = args.scenes or sorted(p.name for p in (args.root / SPLIT).iterdir() if p.is_dir())
    total = good = 0
    for scene in scenes:
        rows = list(localize(args.root / SPLIT / scene, extractor, matcher))
        ok = [r for r in rows if r[3] < 0.25 and r[4] < 5]
        total, good = total + len(rows), good + len(ok)
        print(f"{scene}: {len(ok)}/{len(rows)} within (25 cm, 5 deg)")
        for name, matches, inliers, dt, dr in rows:
            print(f"  {name}  matches {matches:5d}  inliers {inliers:5d}  dt {dt:7.3f} m  dR {dr:7.2f} deg")
    print(f"all: {good}/{total} = {100 * good / max(total, 1):.0f} %")


if __name__ == "__main__":
    main()
