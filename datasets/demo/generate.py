"""Build the bundled ``demo`` dataset: rendered scenes in the exact Map-free layout.

    python -m datasets.demo.generate [--out DIR] [--scenes s90000 ...] [--max-frames N] [--jobs J]

Default output: ``datasets/demo/data``. The result is deterministic: seeded, and the same pixels with
any ``--jobs``, numpy SIMD level and OpenCV release (checked with OpenCV 4.12, 5.0 and 5.1; text is drawn
with our own font and textures sampled without cv2.remap); it needs no network and takes 1-2 min on two
cores.

Layout written (PROTOCOLS.md 1.1)::

    <out>/val/s9000X/intrinsics.txt     name fx fy cx cy W H (360 x 480 portrait, K varies slightly per frame)
    <out>/val/s9000X/poses.txt          name qw qx qy qz tx ty tz, world-to-camera; world = reference camera,
                                        so the reference line comes first and is the identity
    <out>/val/s9000X/seq0/frame_00000.jpg       reference image (JPEG quality 90)
    <out>/val/s9000X/seq0/frame_00000.gt.png    its exact depth: uint16 millimetres, 0 = no surface (sky)
    <out>/val/s9000X/seq1/frame_NNNNN.jpg       46 query frames of a hand-held walk (frame numbers have gaps,
                                                as Map-free's skipped frames do)
    <out>/val/s9000X/seq1/frame_NNNNN.gt.png    exact depth, for the evaluated query frames only

The Map-free scorer evaluates every 5th line of ``poses.txt`` (after ``seq1/frame_00000`` takes the
reference's place), i.e. 10 frames per scene here; only those carry a depth map, to keep the data small
(about 6 MB in all). Scenes: s90000 living room, s90001 courtyard (sky pixels have depth 0), s90002
gallery. A few evaluated queries are hard on purpose (up to 60 degrees around the target from the
reference, looking mostly away, 0.55-0.7 m close-ups, motion blur, a dark and noisy frame): SIFT + PnP
from the reference depth localizes 25 of the 30 within (25 cm, 5 deg); ``python -m datasets.demo.check``
prints the per-query errors.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.interpolate import PchipInterpolator
from scipy.spatial.transform import Rotation

from benchmark.geometry import invert_pose, pose_matrix, quat_to_rotmat, rotmat_to_quat
from datasets.mapfree_io import Intrinsics, read_intrinsics, read_poses, write_intrinsics, write_poses

from .render import bake, depth_map, develop, render
from .scenes import SCENES, UP, Walk

WIDTH, HEIGHT = 360, 480
SPLIT = "val"
DEPTH_SUFFIX = "gt"
REFERENCE = "seq0/frame_00000.jpg"
STRIDE = 5  # the scorer keeps every 5th frame
JPEG_QUALITY = 90
DEFAULT_OUT = Path(__file__).resolve().parent / "data"


def evaluated_queries(names: list[str]) -> list[str]:
    """The query frames the Map-free scorer evaluates, given poses.txt names in file order with the
    reference first (PROTOCOLS 1.2): seq1/frame_00000 takes the reference's position 0, then every
    5th position counts."""
    return [n for n in names if n != REFERENCE][::STRIDE]


def look_at(center, target, roll_deg=0.0):
    """World-to-camera (R, t) of a camera at ``center`` looking at ``target`` (OpenCV axes, z up in the world)."""
    forward = target - center
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, UP)
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    R = Rotation.from_euler("z", roll_deg, degrees=True).as_matrix() @ R
    return R, -R @ center


def _view(walk: Walk, az, dist, height, look, roll):
    target = np.asarray(walk.target, float)
    angle = np.radians(walk.ref_azimuth + az)
    center = target + dist * np.array([np.cos(angle), np.sin(angle), 0.0])
    center[2] = walk.ref_height + height
    ahead = np.array([-np.cos(angle), -np.sin(angle), 0.0])
    aim = target + look[0] * np.cross(ahead, UP) + look[1] * ahead + look[2] * UP
    return look_at(center, aim, roll)


def walk_poses(walk: Walk, rng):
    """Scene-frame poses of the reference and of every query frame (keys at every 5th frame)."""
    keys = walk.keys
    count = STRIDE * (len(keys) - 1) + 1
    knots = np.arange(len(keys)) * STRIDE
    table = np.array([[k.az, k.dist, k.height, *k.look, k.roll] for k in keys], float)
    params = PchipInterpolator(knots, table, axis=0)(np.arange(count))
    # hand-held shake: a few slow sinusoids per degree of freedom
    pos = np.arange(count)[:, None, None]
    freq, phase = rng.uniform(0.1, 0.6, (1, 6, 3)), rng.uniform(0, 2 * np.pi, (1, 6, 3))
    shake = np.sin(freq * pos + phase).sum(-1) / 3 * np.array([1.0, 1.0, 0.6, 0.015, 0.015, 0.015])
    poses = []
    for p, shk in zip(params, shake):
        R, t = _view(walk, p[0], p[1], p[2], p[3:6], p[6])
        center = -R.T @ t + shk[3:]
        R = Rotation.from_euler("xyz", shk[:3], degrees=True).as_matrix() @ R
        poses.append(pose_matrix(R, -R @ center))
    ref = pose_matrix(*_view(walk, 0.0, walk.ref_distance, 0.0, (0, 0, 0), 0.0))
    return ref, poses


def frame_numbers(count: int, rng) -> list[int]:
    steps = np.ones(count - 1, int)
    steps[rng.choice(count - 1, size=3, replace=False)] += rng.integers(1, 3, size=3)
    return [0] + list(np.cumsum(steps))


def scene_rows(walk: Walk, rng):
    """Rows of intrinsics.txt and poses.txt (reference first) and the effects of the key frames."""
    ref_scene, query_scene = walk_poses(walk, rng)
    f = 396.0 + rng.uniform(-4, 4)
    base = np.array([f, f * (1 + rng.uniform(-5e-4, 5e-4)), 180 + rng.uniform(-1.5, 1.5), 240 + rng.uniform(-2, 2)])
    numbers = frame_numbers(len(query_scene), rng)
    intrinsics = {REFERENCE: Intrinsics(*base, WIDTH, HEIGHT)}
    poses = {REFERENCE: (np.array([1.0, 0, 0, 0]), np.zeros(3))}
    effects = {}
    world_from_ref = invert_pose(ref_scene)
    for i, (number, T) in enumerate(zip(numbers, query_scene)):
        name = f"seq1/frame_{number:05d}.jpg"
        # like Map-free: the first query shares the reference calibration, later ones drift slightly
        k = (
            base
            if i == 0
            else base * (1 + np.array([2e-4, 2e-4, 0, 0]) * rng.standard_normal(4))
            + np.array([0, 0, 0.5, 0.8]) * rng.standard_normal(4)
        )
        intrinsics[name] = Intrinsics(*k, WIDTH, HEIGHT)
        T_from_ref = T @ world_from_ref
        poses[name] = (rotmat_to_quat(T_from_ref[:3, :3]), T_from_ref[:3, 3])
        if i % STRIDE == 0:
            effects[name] = (walk.keys[i // STRIDE].dark, walk.keys[i // STRIDE].blur)
    return intrinsics, poses, effects, ref_scene


_BAKED = {}  # the scene being rendered and its reference pose, inherited by forked workers


def _render_frame(job):
    name, K, T_from_ref, seed, dark, blur, out_dir, with_depth = job
    scene = _BAKED["scene"]
    T_scene = T_from_ref @ _BAKED["reference"]
    R, t = T_scene[:3, :3], T_scene[:3, 3]
    rng = np.random.default_rng(seed)
    image = develop(render(scene, K, R, t, WIDTH, HEIGHT), K, rng, dark=dark, blur=blur)
    path = out_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=JPEG_QUALITY, optimize=True)
    if with_depth:
        mm = np.rint(depth_map(scene, K, R, t, WIDTH, HEIGHT) * 1000.0)
        mm[(mm <= 0) | (mm > 65535)] = 0
        cv2.imwrite(
            str(path.with_suffix(f".{DEPTH_SUFFIX}.png")), mm.astype(np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9]
        )
    return name


def _clear(scene_dir: Path) -> None:
    """Remove what an earlier run wrote (only files of our own naming), so no stale frame survives."""
    for pattern in ("intrinsics.txt", "poses.txt", "seq*/frame_*.jpg", f"seq*/frame_*.{DEPTH_SUFFIX}.png"):
        for path in scene_dir.glob(pattern):
            path.unlink()


def generate_scene(name: str, out: Path, max_frames: int | None = None, jobs: int = 1) -> None:
    """Write one scene under ``out/val/name``; ``max_frames`` renders only the reference and the
    first query frames (the text files are always complete)."""
    build, seed = SCENES[name]
    scene, walk = build(np.random.default_rng([seed, 0]))
    bake(scene)
    intrinsics, poses, effects, ref_scene = scene_rows(walk, np.random.default_rng([seed, 1]))
    scene_dir = out / SPLIT / name
    _clear(scene_dir)
    write_intrinsics(scene_dir / "intrinsics.txt", intrinsics)
    write_poses(scene_dir / "poses.txt", poses)
    # render from the rounded values just written, so files and pixels agree exactly
    intrinsics, poses = read_intrinsics(scene_dir / "intrinsics.txt"), read_poses(scene_dir / "poses.txt")
    names = list(poses)
    evaluated = {REFERENCE, *evaluated_queries(names)}
    if max_frames is not None:
        names = names[: max_frames + 1]
    _BAKED.update(scene=scene, reference=ref_scene)
    jobs_list = []
    for index, n in enumerate(names):
        q, t = poses[n]
        dark, blur = effects.get(n, (0.0, None))
        jobs_list.append(
            (
                n,
                intrinsics[n].K,
                pose_matrix(quat_to_rotmat(q), t),
                [seed, 2, index],
                dark,
                blur,
                scene_dir,
                n in evaluated,
            )
        )
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(_render_frame, jobs_list))
    else:
        for job in jobs_list:
            _render_frame(job)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write <out>/val/<scene>/ into")
    parser.add_argument("--scenes", nargs="+", choices=sorted(SCENES), default=sorted(SCENES))
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="render only the reference and the first N query frames (text files stay complete)",
    )
    parser.add_argument("--jobs", type=int, default=min(2, multiprocessing.cpu_count()))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    for name in args.scenes:
        start = time.perf_counter()
        generate_scene(name, args.out, args.max_frames, args.jobs)
        print(f"{name}: {time.perf_counter() - start:.1f} s -> {args.out / SPLIT / name}")


if __name__ == "__main__":
    main()
