"""Throughput and memory of the runner as the dataset grows: local executor vs a local Ray cluster.

    python benchmarks/scale.py                       # 1,000 and 5,000 pairs, local and Ray (2 CPUs)
    python benchmarks/scale.py --pairs 500 2000 --cpus 4 --shard-size 100

The pairs are synthetic and cheap, so the harness itself is measured (planning, shards, match cache,
parquet, RANSAC, scoring, merging), not a model: each pair is a 4x4 PNG whose pixels carry a seed,
the matcher returns noisy correspondences of random 3-D points under the pose that seed gives,
and the relative pose is solved by the usual essential-matrix RANSAC. Both are registered here,
in the script, and reach Ray workers with the jobs.

Each measurement runs in its own process (peak RSS is per process): the driver's peak RSS, and for
Ray the largest worker peak (reported by the tasks). The local executor is the baseline of the
throughput ratio; the 5,000-pair peak over the 1,000-pair peak shows whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.geometry import pose_matrix  # noqa: E402
from benchmark.registry import DATASETS, METHODS  # noqa: E402
from benchmark.types import TASK_RELATIVE, Camera, Matches, PairSample  # noqa: E402
from datasets.base import Dataset  # noqa: E402
from methods.base import Matcher  # noqa: E402

PAIRS_PER_SCENE = 50
CAMERA = Camera.pinhole(500.0, 500.0, 320.0, 240.0, 640, 480)


def pose_of(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    R, _ = cv2.Rodrigues(rng.normal(0.0, 0.15, 3))
    t = rng.normal(0.0, 1.0, 3)
    return pose_matrix(R, t / np.linalg.norm(t))


def seed_of(sample_id: str) -> int:
    return zlib.crc32(sample_id.encode()) & 0xFFFFFF


@DATASETS.register("scale_pairs")
class ScalePairs(Dataset):
    """Synthetic pairs, one 4x4 PNG each (this benchmark only)."""

    default_conf = {"root": None, "pairs": 1000}
    task = TASK_RELATIVE
    protocol = "relpose"

    def scenes(self):
        return [f"s{i:04d}" for i in range((int(self.conf["pairs"]) + PAIRS_PER_SCENE - 1) // PAIRS_PER_SCENE)]

    def samples(self, scene):
        first = int(scene[1:]) * PAIRS_PER_SCENE
        for k in range(first, min(first + PAIRS_PER_SCENE, int(self.conf["pairs"]))):
            sample_id = f"{scene}/{k:06d}"
            image = self.root / f"{k:06d}.png"
            yield PairSample(sample_id, scene, image, image, CAMERA, CAMERA, pose_of(seed_of(sample_id)))


@METHODS.register("scale_matcher")
class ScaleMatcher(Matcher):
    """Noisy correspondences under the pose the image's seed gives (this benchmark only)."""

    default_conf = {"num": 200, "noise_px": 1.0, "outliers": 0.2}

    def _match(self, image0, image1):
        r, g, b = (int(v) for v in image0[0, 0])
        seed = (r << 16) | (g << 8) | b
        T, rng, n = pose_of(seed), np.random.default_rng(seed + 1), int(self.conf["num"])
        points = rng.uniform((-2.0, -1.5, 3.0), (2.0, 1.5, 8.0), (n, 3))

        def project(X):
            return (X @ CAMERA.K.T)[:, :2] / X[:, 2:]

        def noise():
            return rng.normal(0.0, self.conf["noise_px"], (n, 2))

        kpts0, kpts1 = project(points) + noise(), project(points @ T[:3, :3].T + T[:3, 3]) + noise()
        bad = rng.random(n) < self.conf["outliers"]
        kpts1[bad] = rng.uniform((0, 0), (640, 480), (int(bad.sum()), 2))
        return Matches(kpts0, kpts1, rng.random(n), num_keypoints0=n, num_keypoints1=n)


def write_images(root: Path, pairs: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(pairs):
        seed = seed_of(f"s{k // PAIRS_PER_SCENE:04d}/{k:06d}")
        pixel = np.zeros((4, 4, 3), np.uint8)
        pixel[0, 0] = (seed & 255, (seed >> 8) & 255, seed >> 16)  # BGR on disk, RGB (r, g, b) when read
        cv2.imwrite(str(root / f"{k:06d}.png"), pixel)


class Recording:
    """Wraps an executor to keep what the shard jobs report (worker pid and peak RSS)."""

    def __init__(self, inner):
        self.inner, self.stats = inner, []

    def map(self, fn, jobs, progress=True, weights=None):
        self.stats = self.inner.map(fn, jobs, progress=progress, weights=weights)
        return self.stats


def measure(args) -> dict:
    from benchmark.config import resolve
    from benchmark.executors import make_executor
    from benchmark.runner import execute

    work = Path(args.work)
    write_images(work / "images", args.pairs)
    cfg = resolve(
        "scale_matcher",
        "scale_pairs",
        None,
        [
            f"dataset.root={work / 'images'}",
            f"dataset.pairs={args.pairs}",
            f"run.shard_size={args.shard_size}",
            f"run.cache_dir={work / 'cache'}",
            f"executor.name={args.executor}",
            f"executor.num_cpus={args.cpus}",
            f"solver.ransac.min_iterations={args.iterations}",
        ],
    )
    executor = Recording(make_executor(cfg["executor"], cfg["run"]["torch_threads"]))
    start_s = 0.0
    if args.executor == "ray":  # start the cluster first, to report its start-up apart from the work
        t = time.perf_counter()
        executor.inner.connect()
        start_s = time.perf_counter() - t
    t = time.perf_counter()
    df = execute(cfg, work / "out", executor=executor, progress=False)
    seconds = time.perf_counter() - t
    assert len(df) == args.pairs and (df["status"] == "ok").mean() > 0.95, df["status"].value_counts()
    workers = {s["pid"]: s["max_rss_mb"] for s in executor.stats if "pid" in s}
    if args.executor == "ray":
        import ray

        ray.shutdown()
    return {
        "executor": args.executor,
        "pairs": args.pairs,
        "seconds": seconds,
        "start_s": start_s,
        "pairs_per_s": args.pairs / seconds,
        "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": max(workers.values()) if workers else None,
        "workers": len(workers),
        "ok": int((df["status"] == "ok").sum()),
        "rows_digest": digest(df),
    }


def digest(df) -> str:
    """Identifies the results (not the timings), to check that both executors agree."""
    keep = [c for c in df.columns if not c.startswith("time_") and c not in ("cached", "shard")]
    return f"{zlib.crc32(df[keep].to_csv(index=False).encode()):08x}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--executors", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=100, help="solver.ransac.min_iterations (cost per pair)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--executor", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.pairs = args.pairs[0]
        print(json.dumps(measure(args)))
        return

    rows = []
    for n in args.pairs:
        for executor in args.executors:
            with tempfile.TemporaryDirectory(prefix="locbench-scale-") as work:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--executor",
                    executor,
                    "--pairs",
                    str(n),
                    "--work",
                    work,
                    "--cpus",
                    str(args.cpus),
                    "--shard-size",
                    str(args.shard_size),
                    "--iterations",
                    str(args.iterations),
                ]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if out.returncode != 0:
                    sys.exit(f"{executor} with {n} pairs failed:\n{out.stderr[-3000:]}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  measured {executor} x {n}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)

    base = {r["pairs"]: r for r in rows if r["executor"] == args.executors[0]}
    smallest = {r["executor"]: r for r in rows if r["pairs"] == min(args.pairs)}
    print(
        f"\nshards of {args.shard_size} pairs; Ray: local cluster of {args.cpus} CPUs; ratios against "
        f"{args.executors[0]} (same pairs) and against {min(args.pairs)} pairs (same executor)\n"
    )
    header = (
        "executor",
        "pairs",
        "work s",
        "pairs/s",
        "x speed",
        "start s",
        "driver peak MB",
        "x driver",
        "worker peak MB",
        "x worker",
        "same rows",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        b, s = base[r["pairs"]], smallest[r["executor"]]
        worker = r["worker_rss_mb"] or r["driver_rss_mb"]
        s_worker = s["worker_rss_mb"] or s["driver_rss_mb"]
        print(
            " | ".join(
                [
                    r["executor"],
                    str(r["pairs"]),
                    f"{r['seconds']:.1f}",
                    f"{r['pairs_per_s']:.0f}",
                    f"{r['pairs_per_s'] / b['pairs_per_s']:.2f}",
                    f"{r['start_s']:.1f}",
                    f"{r['driver_rss_mb']:.0f}",
                    f"{r['driver_rss_mb'] / s['driver_rss_mb']:.2f}",
                    f"{worker:.0f}",
                    f"{worker / s_worker:.2f}",
                    "yes" if r["rows_digest"] == b["rows_digest"] else "NO",
                ]
            )
        )


if __name__ == "__main__":
    main()
