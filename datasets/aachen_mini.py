"""A miniature Aachen-format dataset rendered from a textured toy town square (for tests and demos).

``python -m datasets.aachen_mini OUT`` writes, in a few seconds::

    OUT/images_upright/db/0000.jpg ...                      database views
    OUT/images_upright/query/{day,night}/<camera>/*.jpg     queries (one camera with radial distortion)
    OUT/queries/{day,night}_time_queries_with_intrinsics.txt
    OUT/sfm/{cameras,images,points3D,...}.bin               reference COLMAP model (pycolmap)
    OUT/pairs-query-mini.txt                                retrieval pairs 'query db', best first
    OUT/query_poses.txt                                     ground truth 'name qw qx qy qz tx ty tz' (world-to-camera)

The scene is a handful of planar, procedurally textured quads (ground, three facades, two kiosks); images
are ray cast exactly (2 x 2 supersampling), through each camera's own model, distortion included. The map
is what an SfM model of the database would hold: SIFT keypoints of each database image
(``methods.sift``), each lifted to the exact surface point its ray hits (points near depth edges dropped).
Retrieval ranks database images by camera distance and viewing angle. Use it with
``--dataset aachen_mini --set dataset.root=OUT``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmark.geometry import rotmat_to_quat

SIZE_DB = (320, 240)
SUPERSAMPLE = 2
TEXELS_PER_METRE = 48
SKY = np.array([205.0, 215.0, 230.0])
# (condition, camera, COLMAP model, width, height, params in COLMAP pixels, how many)
QUERY_CAMERAS = (
    ("day", "cam_a", "SIMPLE_RADIAL", 320, 240, (264.0, 160.0, 120.0, -0.04), 3),
    ("day", "cam_b", "PINHOLE", 288, 216, (240.0, 242.0, 144.0, 108.0), 3),
    ("night", "cam_a", "SIMPLE_RADIAL", 320, 240, (264.0, 160.0, 120.0, -0.04), 2),
)
DB_CAMERA = ("SIMPLE_RADIAL", SIZE_DB[0], SIZE_DB[1], (264.0, 160.0, 120.0, 0.02))
NIGHT_GAIN = 0.45


@dataclass
class Quad:
    origin: np.ndarray  # a corner (world, metres)
    u: np.ndarray  # edge vector along the texture's x
    v: np.ndarray  # edge vector along the texture's y
    texture: np.ndarray  # (H, W, 3) float32


def make_texture(rng: np.random.Generator, width_m: float, height_m: float) -> np.ndarray:
    """Smooth multi-scale noise plus many small high-contrast shapes (corners and blobs SIFT can find)."""
    w, h = max(8, int(width_m * TEXELS_PER_METRE)), max(8, int(height_m * TEXELS_PER_METRE))
    tex = np.empty((h, w, 3), np.float32)
    tex[:] = rng.uniform(70, 190, 3)
    for cell, amp in ((96, 30.0), (24, 20.0), (6, 10.0)):
        small = rng.normal(0, 1, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        tex += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(width_m * height_m * 5)):
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(3, 14))
        if rng.random() < 0.5:
            cv2.circle(tex, (x, y), r, color, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(tex, (x - r, y - r // 2), (x + r, y + r), color, -1, lineType=cv2.LINE_AA)
    return np.clip(tex, 0, 255)


def _box(rng, x0, x1, z0, z1, height, ground_y) -> list[Quad]:
    top = ground_y - height
    corners = [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]
    quads = []
    for (ax, az), (bx, bz) in zip(corners, corners[1:] + corners[:1]):
        origin = np.array([ax, top, az])
        u = np.array([bx - ax, 0.0, bz - az])
        quads.append(Quad(origin, u, np.array([0.0, height, 0.0]), make_texture(rng, np.linalg.norm(u), height)))
    return quads


def toy_square(seed: int = 0) -> list[Quad]:
    """Ground, back/left/right facades and two kiosks. World axes as a level camera's: x right, y down, z ahead."""
    rng = np.random.default_rng(seed)
    ground_y, top = 1.6, -7.0
    spec = [
        ((-9, ground_y, -7), (18, 0, 0), (0, 0, 23)),  # ground
        ((-9, top, 16), (18, 0, 0), (0, ground_y - top, 0)),  # back facade
        ((-9, top, -7), (0, 0, 23), (0, ground_y - top, 0)),  # left facade
        ((9, top, 16), (0, 0, -23), (0, ground_y - top, 0)),
    ]  # right facade
    quads = [
        Quad(
            np.array(o, float),
            np.array(u, float),
            np.array(v, float),
            make_texture(rng, np.linalg.norm(u), np.linalg.norm(v)),
        )
        for o, u, v in spec
    ]
    return quads + _box(rng, -4.0, -1.5, 6.0, 8.0, 2.6, ground_y) + _box(rng, 2.0, 4.5, 9.0, 10.5, 3.4, ground_y)


def pose_from(center, yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """4x4 world-to-camera of a camera at ``center`` turned by yaw (about y) then pitch (about x)."""
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    R = (ry @ rx).T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ np.asarray(center, float)
    return T


def _pycolmap_camera(model, width, height, params):
    import pycolmap

    return pycolmap.Camera(model=model, width=width, height=height, params=list(params))


def cast(quads: list[Quad], camera, T_w2c: np.ndarray, pixels: np.ndarray):
    """Trace rays through OpenCV pixels: (world points (N, 3), NaN for sky; quad index (N,); texture x, y)."""
    R, t = T_w2c[:3, :3], T_w2c[:3, 3]
    xy = camera.cam_from_img(np.ascontiguousarray(pixels + 0.5, dtype=np.float64))  # COLMAP pixels, undistorts
    # camera -> world ray directions R^T (x, y, 1), kept as three contiguous components: (N, 3) @ (3, 3)
    # products are slow here and every quad needs three dot products with them
    dx, dy, dz = (xy[:, 0] * R[0, i] + xy[:, 1] * R[1, i] + R[2, i] for i in range(3))
    center = -R.T @ t
    best = np.full(len(xy), np.inf)
    which = np.full(len(xy), -1)
    tex_xy = np.zeros((len(xy), 2))
    for k, q in enumerate(quads):
        n, u_scaled, v_scaled = np.cross(q.u, q.v), q.u / (q.u @ q.u), q.v / (q.v @ q.v)
        offset = center - q.origin
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = -(offset @ n) / (dx * n[0] + dy * n[1] + dz * n[2])
        s = offset @ u_scaled + depth * (dx * u_scaled[0] + dy * u_scaled[1] + dz * u_scaled[2])
        r = offset @ v_scaled + depth * (dx * v_scaled[0] + dy * v_scaled[1] + dz * v_scaled[2])
        hit = (depth > 1e-6) & (depth < best) & (s >= 0) & (s <= 1) & (r >= 0) & (r <= 1)
        best[hit], which[hit] = depth[hit], k
        h, w = q.texture.shape[:2]
        tex_xy[hit, 0], tex_xy[hit, 1] = s[hit] * (w - 1), r[hit] * (h - 1)
    depth = np.where(which >= 0, best, np.nan)
    points = np.stack([center[0] + depth * dx, center[1] + depth * dy, center[2] + depth * dz], axis=1)
    return points, which, tex_xy


def sample_texture(texture: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear texture lookups at (N, 2) texel coordinates (cv2.remap wants maps under 32767 rows)."""
    n, width = len(xy), 1024
    rows = -(-n // width)
    maps = np.zeros((rows * width, 2), np.float32)
    maps[:n] = xy
    maps = maps.reshape(rows, width, 2)
    out = cv2.remap(texture, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1, 3)[:n]


def render(quads: list[Quad], camera, T_w2c: np.ndarray, gain: float = 1.0, seed: int = 0) -> np.ndarray:
    """uint8 RGB image of the scene through ``camera`` (pycolmap.Camera, distortion included)."""
    w, h, s = camera.width, camera.height, SUPERSAMPLE
    sub = (np.arange(s) + 0.5) / s - 0.5  # sub-pixel offsets around each pixel centre
    xs = (np.arange(w)[:, None] + sub[None]).ravel()
    ys = (np.arange(h)[:, None] + sub[None]).ravel()
    gx, gy = np.meshgrid(xs, ys)
    _, which, tex_xy = cast(quads, camera, T_w2c, np.stack([gx.ravel(), gy.ravel()], axis=1))
    color = np.tile(SKY, (len(which), 1)).astype(np.float32)
    for k, q in enumerate(quads):
        sel = which == k
        if sel.any():
            color[sel] = sample_texture(q.texture, tex_xy[sel])
    image = color.reshape(h, s, w, s, 3).mean(axis=(1, 3)) * gain
    if gain != 1.0:  # a darker, noisier "night" exposure
        image += np.random.default_rng(seed).normal(0, 2.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _write_jpg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def _pose_line(name: str, T: np.ndarray) -> str:
    q = rotmat_to_quat(T[:3, :3])
    return f"{name} " + " ".join(f"{v:.10f}" for v in (*q, *T[:3, 3]))


def db_poses() -> list[np.ndarray]:
    out = []
    for z in (-4.0, -1.0, 2.0):
        for x, yaw in ((-4.0, 20.0), (-1.0, -10.0), (1.5, 10.0), (4.0, -20.0)):
            out.append(pose_from((x, 0.05 * x, z), yaw, -3.0 + 0.5 * x))
    return out


def query_poses(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [
        pose_from(
            (rng.uniform(-4, 4), rng.uniform(-0.3, 0.3), rng.uniform(-3.5, 1.5)),
            rng.uniform(-25, 25),
            rng.uniform(-6, 4),
        )
        for _ in range(n)
    ]


def build_map(quads, db_images, camera, db_T, detect):
    """Per database image: SIFT keypoints (OpenCV pixels) whose ray hits a surface away from depth edges,
    and their world points."""
    out = []
    for image, T in zip(db_images, db_T):
        kpts = detect(image)
        points, which, _ = cast(quads, camera, T, kpts)
        depth = np.linalg.norm(points - (-T[:3, :3].T @ T[:3, 3]), axis=1)
        keep = which >= 0
        for dx, dy in ((1.5, 0), (-1.5, 0), (0, 1.5), (0, -1.5)):  # drop keypoints on occlusion edges
            near, near_which, _ = cast(quads, camera, T, kpts + (dx, dy))
            near_depth = np.linalg.norm(near - (-T[:3, :3].T @ T[:3, 3]), axis=1)
            keep &= (near_which == which) & (np.abs(near_depth - depth) < 0.05 * depth)
        out.append((kpts[keep], points[keep]))
    return out


def write_model(path: Path, camera_spec, names, poses, observations) -> None:
    import pycolmap

    rec = pycolmap.Reconstruction()
    model, w, h, params = camera_spec
    cam = pycolmap.Camera(model=model, width=w, height=h, params=list(params))
    cam.camera_id = 1
    rec.add_camera_with_trivial_rig(cam)
    for image_id, (name, T, (kpts, xyz)) in enumerate(zip(names, poses, observations), start=1):
        image = pycolmap.Image(name=name, keypoints=kpts + 0.5, camera_id=1, image_id=image_id)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(T[:3]))
        for idx, point in enumerate(xyz):
            pid = rec.add_point3D(point, pycolmap.Track())
            rec.add_observation(pid, pycolmap.TrackElement(image_id, idx))
    path.mkdir(parents=True, exist_ok=True)
    rec.write(str(path))


def retrieval(query_T: np.ndarray, db_T: list[np.ndarray], k: int) -> list[int]:
    """Database images ranked by camera distance (m) plus 0.05 x viewing-angle difference (deg)."""

    def centre(T):
        return -T[:3, :3].T @ T[:3, 3]

    scores = []
    for T in db_T:
        angle = np.degrees(np.arccos(np.clip(query_T[2, :3] @ T[2, :3], -1, 1)))
        scores.append(np.linalg.norm(centre(query_T) - centre(T)) + 0.05 * angle)
    return list(np.argsort(scores)[:k])


def generate(out: Path, seed: int = 0, num_pairs: int = 6) -> Path:
    """Write the miniature dataset to ``out`` (see the module docstring); returns ``out``."""
    from methods.sift import SiftMatcher

    out = Path(out)
    quads = toy_square(seed)
    rng = np.random.default_rng(seed + 1)
    db_camera = _pycolmap_camera(*DB_CAMERA)
    db_T = db_poses()
    db_names = [f"db/{i:04d}.jpg" for i in range(len(db_T))]
    db_images = [render(quads, db_camera, T) for T in db_T]
    for name, image in zip(db_names, db_images):
        _write_jpg(out / "images_upright" / name, image)
    # The map is built from the images as stored (JPEG), like a real SfM model.
    sift = SiftMatcher({})
    stored = [cv2.cvtColor(cv2.imread(str(out / "images_upright" / n)), cv2.COLOR_BGR2RGB) for n in db_names]
    observations = build_map(quads, stored, db_camera, db_T, lambda im: sift.detect(im)[0])
    write_model(out / "sfm", DB_CAMERA, db_names, db_T, observations)

    lists = {"day": [], "night": []}
    pairs, gt = [], []
    for condition, cam_name, model, w, h, params, count in QUERY_CAMERAS:
        camera = _pycolmap_camera(model, w, h, params)
        for k, T in enumerate(query_poses(rng, count)):
            name = f"query/{condition}/{cam_name}/{cam_name}_{condition}_{k:03d}.jpg"
            gain = NIGHT_GAIN if condition == "night" else 1.0
            _write_jpg(out / "images_upright" / name, render(quads, camera, T, gain, seed + k))
            lists[condition].append(f"{name} {model} {w} {h} " + " ".join(f"{p:g}" for p in params))
            pairs += [f"{name} {db_names[i]}" for i in retrieval(T, db_T, num_pairs)]
            gt.append(_pose_line(name, T))
    (out / "queries").mkdir(parents=True, exist_ok=True)
    for condition, lines in lists.items():
        (out / "queries" / f"{condition}_time_queries_with_intrinsics.txt").write_text("\n".join(lines) + "\n")
    (out / "pairs-query-mini.txt").write_text("\n".join(pairs) + "\n")
    (out / "query_poses.txt").write_text("\n".join(gt) + "\n")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="folder to write (e.g. data/aachen_mini)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    generate(args.output, args.seed)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
