"""Cost of one match picture (``benchmark.viz``): the raster path a run uses for its worst samples
(``run.viz_worst``), the anti-aliased one ``show`` uses, against the same picture drawn with matplotlib
(the baseline: what hloc-style plotting costs), all measured here in one process.

    python benchmarks/pictures.py                          # 640x480 and 1600x1200 pairs, 300 and 2000 matches
    python benchmarks/pictures.py --sizes 1024x768 --matches 1000 --repeats 5

Each picture is drawn from random images and matches (lines span the whole canvas, the worst case)
and encoded (JPEG for the raster paths, PNG written by matplotlib's Agg backend).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def raster(im0, im1, k0, k1, colors, antialias: bool) -> bytes:
    from benchmark import viz

    lines = ["sample s/0 (scene s)", "status: ok", "matches: 2000, inliers: 1500", "errors: VCRE 12 px"]
    picture = viz.draw_matches(
        im0,
        im1,
        k0,
        k1,
        colors,
        lines,
        viz.Legend("epipolar distance", 10.0),
        scale=min(1.0, 1600 / (im0.shape[1] + im1.shape[1])),
        antialias=antialias,
    )
    return viz.encode(picture, ".jpg")


def matplotlib_picture(im0, im1, k0, k1, colors) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = max(im0.shape[0], im1.shape[0]), im0.shape[1] + im1.shape[1]
    fig, axes = plt.subplots(1, 2, figsize=(w / 100, h / 100 + 1), dpi=100)
    for ax, im in zip(axes, (im0, im1)):
        ax.imshow(im)
        ax.axis("off")
    from matplotlib.patches import ConnectionPatch

    for a, b, c in zip(k0, k1, colors / 255.0):
        fig.add_artist(ConnectionPatch(a, b, "data", "data", axesA=axes[0], axesB=axes[1], color=c, lw=1))
    axes[0].scatter(k0[:, 0], k0[:, 1], c=colors / 255.0, s=4)
    axes[1].scatter(k1[:, 0], k1[:, 1], c=colors / 255.0, s=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (imports, first allocation)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1600x1200"], help="WxH of each image")
    ap.add_argument("--matches", nargs="+", type=int, default=[300, 2000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from benchmark import viz

    rng = np.random.default_rng(0)
    print(
        f"{'size':>10} {'matches':>8} {'raster ms':>10} {'raster AA ms':>13} {'matplotlib ms':>14} "
        f"{'matplotlib / raster':>20}"
    )
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        im0 = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        im1 = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        for n in args.matches:
            k0, k1 = rng.uniform(0, (w, h), (n, 2)), rng.uniform(0, (w, h), (n, 2))
            colors = viz.error_colors(rng.uniform(0, 20, n), 10.0)
            fast = timed(lambda: raster(im0, im1, k0, k1, colors, False), args.repeats)
            smooth = timed(lambda: raster(im0, im1, k0, k1, colors, True), args.repeats)
            base = timed(lambda: matplotlib_picture(im0, im1, k0, k1, colors), max(1, args.repeats // 2))
            print(
                f"{size:>10} {n:>8} {fast * 1e3:>10.1f} {smooth * 1e3:>13.1f} {base * 1e3:>14.1f} {base / fast:>19.1f}x"
            )


if __name__ == "__main__":
    main()
