"""Time per pair and peak memory of every matcher on one real pair, against SIFT measured in the same run.

    python benchmarks/matchers.py                  # all presets, CPU (CUDA when available), 1 thread
    python benchmarks/matchers.py --methods sift disk_lightglue --repeats 5 --threads 2

The pair is scikit-image's ``stereo_motorcycle`` resized to 640 x 480 (the ScanNet protocol's size),
given to each matcher as is. Each method runs in its own subprocess so that its peak RSS is its own
(``ru_maxrss``: imports + weights + activations); the "model MB" column is the peak minus the RSS
after imports. Precision is the share of matches within 2 px of the ground-truth disparity. Methods
whose weights are not on this machine run with random weights saved in the released layout
(SuperGlue, LoFTR; marked "random"): the dense compute is the same, but LoFTR's fine stage, which
only runs on coarse matches, is then nearly free, so its time is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "sift"
PRESETS = (
    "sift",
    "disk_lightglue",
    "aliked_lightglue",
    "xfeat_lighterglue",
    "xfeat",
    "disk_nn",
    "aliked_nn",
    "superglue_indoor",
    "loftr_indoor",
)
SIZE = (640, 480)


def motorcycle():
    import cv2
    import numpy as np
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    sx, sy = SIZE[0] / left.shape[1], SIZE[1] / left.shape[0]
    small = [cv2.resize(im, SIZE, interpolation=cv2.INTER_AREA) for im in (left, right)]
    return small, disp, (sx, sy), np


def precision(matches, disp, scale, np) -> float:
    # matches are in 640 x 480 pixels; the disparity is at 741 x 500
    x0 = (matches.kpts0[:, 0] + 0.5) / scale[0] - 0.5
    y0 = (matches.kpts0[:, 1] + 0.5) / scale[1] - 0.5
    x1 = (matches.kpts1[:, 0] + 0.5) / scale[0] - 0.5
    y1 = (matches.kpts1[:, 1] + 0.5) / scale[1] - 0.5
    h, w = disp.shape
    d = disp[np.clip(np.rint(y0).astype(int), 0, h - 1), np.clip(np.rint(x0).astype(int), 0, w - 1)]
    known = np.isfinite(d)
    err = np.hypot(x1 - (x0 - d), y1 - y0) * scale[0]
    return float(np.mean(err[known] < 2.0)) if known.any() else float("nan")


def random_weights(name: str, conf: dict, folder: Path) -> tuple[dict, bool]:
    """Stand-in files in the released layout when the real SuperGlue / LoFTR weights are absent."""
    import torch

    from benchmark.errors import UserError
    from benchmark.registry import METHODS

    try:
        METHODS.get(name)(conf).check()
        return conf, False
    except UserError:
        pass
    if name == "superglue":
        from methods.superglue.superglue import SuperGlue
        from methods.superglue.superpoint import SuperPoint

        torch.save(SuperPoint().state_dict(), folder / "superpoint_v1.pth")
        torch.save(SuperGlue().state_dict(), folder / "superglue.pth")
        return {
            **conf,
            "weights": str(folder / "superglue.pth"),
            "detector_weights": str(folder / "superpoint_v1.pth"),
        }, True
    if name == "loftr":
        import kornia.feature as KF

        torch.save({"state_dict": KF.LoFTR(pretrained=None).state_dict()}, folder / "loftr.ckpt")
        return {**conf, "weights": str(folder / "loftr.ckpt")}, True
    raise SystemExit(f"{name}: weights missing")


def worker(preset: str, repeats: int, device: str) -> dict:
    import resource
    import time

    import torch

    from benchmark.config import named_config
    from benchmark.registry import METHODS

    (image0, image1), disp, scale, np = motorcycle()
    name, data = named_config("method", preset)
    conf = {k: v for k, v in data.get("method", {}).items() if k != "name"}
    cls = METHODS.get(name)
    if "device" in cls.default_conf:
        conf["device"] = device
    with tempfile.TemporaryDirectory() as tmp:
        conf, random = random_weights(name, conf, Path(tmp))
        rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        matcher = cls(conf)
        t = time.perf_counter()
        matcher.load()
        load_s = time.perf_counter() - t
        res = matcher.match(image0, image1)  # warm-up (lazy initialisation, allocator)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            res = matcher.match(image0, image1)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    on_cuda = str(getattr(matcher, "device", "cpu")).startswith("cuda")
    return {
        "preset": preset,
        "random": random,
        "device": str(getattr(matcher, "device", "cpu")),
        "matches": len(res),
        "precision": precision(res, disp, scale, np),
        "load_s": load_s,
        "time_s": float(np.median(times)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "imports_rss_mb": rss_imports,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else float("nan"),
    }


def run(preset: str, repeats: int, device: str, threads: int) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        preset,
        "--repeats",
        str(repeats),
        "--device",
        device,
        "--threads",
        str(threads),
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"preset": preset, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=list(PRESETS), help="preset names under configs/methods")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per matcher")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(worker(args.worker, args.repeats, args.device)))
        return
    presets = [BASELINE] + [m for m in args.methods if m != BASELINE]
    rows = [run(p, args.repeats, args.device, args.threads) for p in presets]
    base = rows[0]
    print(
        f"motorcycle pair at {SIZE[0]}x{SIZE[1]}, {args.threads} thread(s), median of {args.repeats} runs after a "
        f"warm-up; ratios against {BASELINE} measured in this run\n"
    )
    print(
        "| method | device | matches | precision@2px | time/pair s | x sift | peak RSS MB | x sift | model MB "
        "| CUDA peak MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['preset']} | failed: {r['error']} | | | | | | | | |")
            continue
        label = r["preset"] + (" (random weights)" if r["random"] else "")
        t_ratio = r["time_s"] / base["time_s"] if "time_s" in base else float("nan")
        m_ratio = r["peak_rss_mb"] / base["peak_rss_mb"] if "peak_rss_mb" in base else float("nan")
        print(
            f"| {label} | {r['device']} | {r['matches']} | {r['precision']:.2f} | {r['time_s']:.3f} | {t_ratio:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {m_ratio:.1f} | {r['peak_rss_mb'] - r['imports_rss_mb']:.0f} "
            f"| {r['cuda_peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
