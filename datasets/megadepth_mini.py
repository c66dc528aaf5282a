"""A miniature MegaDepth-1500 rendered from the toy town square of ``datasets.aachen_mini`` (tests, demos).

``python -m datasets.megadepth_mini OUT [--layout loftr|gluefactory]`` writes, in a few seconds, two scenes
(``0015``, ``0022``: the square with two texture seeds) of 5 images each, landscape, portrait and odd sizes,
PINHOLE cameras with COLMAP intrinsics (principal point in pixel-corner coordinates, as MegaDepth's), and
8 pairs, in the layout of one of the usual downloads:

* ``loftr``: ``OUT/Undistorted_SfM/<scene>/images/<name>.jpg`` and
  ``OUT/megadepth_test_1500_scene_info/{megadepth_test_1500.txt, <scene>_<bin>.npz}`` (object arrays
  ``image_paths``, ``depth_paths``, ``intrinsics``, ``poses`` world-to-camera, ``pair_infos``; each scene's
  list holds one image no pair uses, with no path, as LoFTR's files do);
* ``gluefactory``: ``OUT/images/<scene>/<name>.jpg``, ``OUT/pairs_calibrated.txt``, ``OUT/views.txt`` and
  ``OUT/pairs.txt``.

Use it with ``--dataset megadepth1500_mini --set dataset.root=OUT`` (loftr layout) or add
``--set dataset.list_format=gluefactory`` for the other.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .aachen_mini import _pycolmap_camera, _write_jpg, pose_from, render, toy_square

SCENES = {"0015": 0, "0022": 1}  # scene -> texture seed
SIZES = ((320, 240), (240, 320), (317, 239), (320, 240), (300, 200))  # (W, H) per image of a scene
# camera centre (x, y, z) and yaw, pitch (deg) per image; neighbours overlap
VIEWPOINTS = (
    ((-1.5, 0.0, -3.0), 8.0, -2.0),
    ((-0.5, 0.1, -2.5), 2.0, 0.0),
    ((0.5, 0.0, -3.2), -4.0, -1.0),
    ((1.4, -0.1, -2.2), -9.0, 1.0),
    ((0.0, 0.05, -1.5), 0.0, -3.0),
)
PAIRS = (((0, 1), 0.45), ((1, 2), 0.4), ((2, 3), 0.25), ((0, 4), 0.2))  # (i, j), overlap score
FOCAL_PER_PX = 0.85  # focal length / long side


def pinhole(width: int, height: int) -> tuple[float, float, float, float]:
    """COLMAP PINHOLE parameters: fx, fy, cx, cy with the principal point at the image centre (corner
    coordinates), as MegaDepth's undistorted cameras."""
    f = FOCAL_PER_PX * max(width, height)
    return f, f, width / 2.0, height / 2.0


def render_scene(scene: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(file name, image, K, world-to-camera) of each image of a scene."""
    quads = toy_square(SCENES[scene])
    out = []
    for k, ((w, h), (centre, yaw, pitch)) in enumerate(zip(SIZES, VIEWPOINTS)):
        params = pinhole(w, h)
        T = pose_from(centre, yaw, pitch)
        image = render(quads, _pycolmap_camera("PINHOLE", w, h, params), T)
        K = np.array([[params[0], 0.0, params[2]], [0.0, params[1], params[3]], [0.0, 0.0, 1.0]])
        out.append((f"{int(scene) * 1000 + k:08d}_{scene}.jpg", image, K, T))
    return out


def _numbers(values) -> str:
    return " ".join(f"{float(v):.12g}" for v in np.asarray(values).ravel())


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def write_loftr(out: Path, scenes: dict) -> None:
    info_dir = out / "megadepth_test_1500_scene_info"
    info_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for scene, views in scenes.items():
        paths = [f"Undistorted_SfM/{scene}/images/{name}" for name, *_ in views]
        for path, (_, image, _, _) in zip(paths, views):
            _write_jpg(out / path, image)
        # LoFTR lists every image of the scene's reconstruction, most of them unused: one without data here
        image_paths = _object_array(paths + [None])
        intrinsics = _object_array([K for _, _, K, _ in views] + [None])
        poses = _object_array([T for _, _, _, T in views] + [None])
        depth_paths = _object_array([p.replace("/images/", "/depths/").replace(".jpg", ".h5") for p in paths] + [None])
        for low, high in ((0.1, 0.3), (0.3, 0.5)):
            chosen = [((i, j), o, np.zeros((0, 4))) for (i, j), o in PAIRS if low <= o < high]
            name = f"{scene}_{low}_{high}"
            np.savez(
                info_dir / f"{name}.npz",
                image_paths=image_paths,
                depth_paths=depth_paths,
                intrinsics=intrinsics,
                poses=poses,
                pair_infos=_object_array(chosen),
            )
            names.append(name)
    (info_dir / "megadepth_test_1500.txt").write_text("\n".join(names) + "\n")


def write_gluefactory(out: Path, scenes: dict) -> None:
    calibrated, views_lines, pair_lines = ["# name0 name1 K0 K1 R t"], [], []
    for scene, views in scenes.items():
        for name, image, K, T in views:
            _write_jpg(out / "images" / scene / name, image)
            h, w = image.shape[:2]
            views_lines.append(
                f"{scene}/{name} {_numbers(T[:3, :3])} {_numbers(T[:3, 3])} PINHOLE {w} {h} "
                f"{_numbers([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])}"
            )
        for (i, j), _ in sorted(PAIRS, key=lambda p: -p[1]):
            (n0, _, K0, T0), (n1, _, K1, T1) = views[i], views[j]
            T = T1 @ np.linalg.inv(T0)
            calibrated.append(
                f"{scene}/{n0} {scene}/{n1} {_numbers(K0)} {_numbers(K1)} {_numbers(T[:3, :3])} {_numbers(T[:3, 3])}"
            )
            pair_lines.append(f"{scene}/{n0} {scene}/{n1}")
    (out / "pairs_calibrated.txt").write_text("\n".join(calibrated) + "\n")
    (out / "views.txt").write_text("\n".join(views_lines) + "\n")
    (out / "pairs.txt").write_text("\n".join(pair_lines) + "\n")


def generate(out: Path, layout: str = "loftr") -> Path:
    """Write the miniature to ``out`` in ``layout`` (loftr or gluefactory); returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scenes = {scene: render_scene(scene) for scene in SCENES}
    {"loftr": write_loftr, "gluefactory": write_gluefactory}[layout](out, scenes)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="folder to write (e.g. data/megadepth1500_mini)")
    ap.add_argument("--layout", choices=("loftr", "gluefactory"), default="loftr")
    args = ap.parse_args(argv)
    generate(args.output, args.layout)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
