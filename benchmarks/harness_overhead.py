"""How much the harness costs beside the matcher: the pipelined runner against the sequential one.

    python benchmarks/harness_overhead.py                          # everything below (~15 min on 2 cores)
    python benchmarks/harness_overhead.py --skip-latency --rounds 3  # only the SIFT runs, 3 rounds
    python benchmarks/harness_overhead.py --stages                 # plus where the time goes, per stage

Every number comes from its own process (imports and peak RSS are per process), for both paths
(``run.pipeline: true``, the default, and ``false``, the sequential runner), alternated round by round so
that the noise of a shared machine hits both.

1. **Cold SIFT run on demo** (defaults: bootstrap, plots, submission; empty match cache). Baseline: a
   matcher-only pass over the same pairs (images decoded beforehand, ``Matcher.match`` timed, weights
   loaded beforehand). overhead = (wall of the run, from the call of the CLI's ``run`` to its return,
   imports included - matcher-only wall) / run wall; also the run's sum of ``time_match_s`` against the
   matcher-only wall (above 1: the harness slows the matcher down by competing for the cores).
2. **A matcher of fixed latency** (registered here, not in the library): it sleeps L and returns
   matches computed before the run, on the synthetic pairs of ``benchmarks/scale.py``; L = 0.05 s over
   2,000 pairs and L = 0.5 s over 200. efficiency = N L / (run wall - 1 s).
3. **Peak memory** of those runs: RSS at 2,000 pairs against RSS at 200 (the precomputed matches,
   reported apart, are part of both).

Rows: each path's results are compared with the sequential path's (all columns but timings).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the runner paths compared, as config overrides (``--paths`` picks some)
PATHS = {
    "pipeline": ["run.pipeline=true", "run.pipeline_processes=false"],
    "pipeline-proc": ["run.pipeline=true", "run.pipeline_processes=true"],
    "sequential": ["run.pipeline=false"],
}


def path_sets(path: str) -> list[str]:
    return [x for s in PATHS[path] for x in ("--set", s)]


# ------------------------------------------------------------------------------ per-stage clock
class StageClock:
    """Exclusive wall time per stage over wrapped functions, per thread: time spent in a measured call
    nested inside another (a depth map read by a solver) counts for the inner stage only. With the
    pipeline, stages of different threads overlap, so their sum may exceed the run's wall time."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # per thread: time of the measured calls nested in each open call

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            tic = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - tic
                nested = stack.pop()
                with self._lock:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - nested
                if stack:
                    stack[-1] += elapsed

        return timed

    @contextlib.contextmanager
    def patched(self, targets: list[tuple[object, str, str]]):
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
        for owner, name, stage in targets:
            setattr(owner, name, self.wrap(stage, getattr(owner, name)))
        try:
            yield self
        finally:
            for owner, name, fn in saved:
                setattr(owner, name, fn)


STAGES = [
    "run set-up (build, check, identify inputs)",
    "matcher",
    "image/depth reading",
    "solving",
    "scoring",
    "summary + bootstrap",
    "caching",
    "writing results",
]


def stage_targets():
    from benchmark import cache, io, pipeline, protocols, report, runner
    from methods.base import Matcher

    out = [
        (Matcher, "match_batch", "matcher"),
        (io, "read_image", "image/depth reading"),
        (io, "read_depth", "image/depth reading"),
        (pipeline, "read_image", "image/depth reading"),
        (pipeline, "solve_thresholds", "solving"),
        (report, "summarize_run", "summary + bootstrap"),
        (report, "write_results", "writing results"),
    ]
    out += [
        (cache.MatchCache, "get", "caching"),
        (cache.MatchCache, "put", "caching"),
        (runner, "prepare", "run set-up (build, check, identify inputs)"),
    ]
    for cls in {type(p) for p in protocols.PROTOCOLS.values()}:
        out += [(cls, "sample_errors", "scoring"), (cls, "write_submission", "writing results")]
    return out


# ------------------------------------------------------------------------------ measurements (one per process)
def digest(df) -> str:
    """Identifies the results (not the timings): equal digests = identical rows."""
    keep = [c for c in df.columns if not c.startswith("time_") and c not in ("cached", "shard")]
    return f"{zlib.crc32(df[keep].to_csv(index=False).encode()):08x}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_cli_run(argv: list[str], output: Path, stages: bool) -> dict:
    """The CLI's run, in this process, from the call to its return (imports included)."""
    from benchmark.cli import main as cli

    clock = StageClock()
    with clock.patched(stage_targets()) if stages else contextlib.nullcontext():
        tic = time.perf_counter()
        if cli(argv) != 0:
            raise SystemExit(f"the run failed: {' '.join(argv)}")
        wall = time.perf_counter() - tic
    import pandas as pd

    df = pd.read_parquet(output / "samples.parquet")
    return {
        "wall_s": wall,
        "sum_match_s": float(df["time_match_s"].sum()),
        "rows": len(df),
        "digest": digest(df),
        "ok": int((df["status"] == "ok").sum()),
        "peak_rss_mb": peak_rss_mb(),
        "stages": clock.seconds,
    }


def measure_sift_run(args) -> dict:
    work = Path(args.work)
    argv = [
        "run",
        "--method",
        args.method,
        "--dataset",
        args.dataset,
        "--no-progress",
        "--output",
        str(work / "out"),
        "--set",
        f"run.cache_dir={work / 'cache'}",
        "--set",
        f"run.torch_threads={args.threads}",
        *path_sets(args.path),
        *args.extra,
    ]
    return timed_cli_run(argv, work / "out", args.stages)


def measure_matcher_only(args) -> dict:
    """The matcher alone over the run's pairs: images decoded and weights loaded beforehand."""
    from benchmark.config import resolve
    from benchmark.environment import set_torch_threads
    from benchmark.pipeline import _pair_images
    from benchmark.runner import prepare, shard_samples

    cfg = resolve(
        args.method,
        args.dataset,
        None,
        [f"run.torch_threads={args.threads}", f"run.cache_dir={Path(args.work) / 'cache'}", *args.extra_sets],
    )
    set_torch_threads(args.threads)
    prepared = prepare(cfg)
    dataset, method = prepared.dataset, prepared.method
    pairs = [_pair_images(s, method) for shard in prepared.plan.shards for s in shard_samples(dataset, shard)]
    method.load()
    tic = time.perf_counter()
    for image0, image1 in pairs:
        method.match(image0, image1)
    return {"wall_s": time.perf_counter() - tic, "pairs": len(pairs)}


def register_fixed_latency(latency: float, matches: dict):
    """The fixed-latency matcher: sleeps ``latency`` s, returns the pair's match set computed before the run."""
    from benchmark.registry import METHODS
    from benchmark.types import Matches
    from methods.base import Matcher

    @METHODS.register("fixed_latency")
    class FixedLatency(Matcher):
        """Sleeps a fixed time and returns precomputed matches (harness benchmark only)."""

        default_conf = {"latency_s": latency}

        def _match(self, image0, image1):
            time.sleep(float(self.conf["latency_s"]))
            kpts0, kpts1, scores = matches[tuple(int(v) for v in image0[0, 0])]
            return Matches(kpts0, kpts1, scores, num_keypoints0=len(kpts0), num_keypoints1=len(kpts1))

    return FixedLatency


def measure_fixed_latency(args) -> dict:
    import cv2
    import numpy as np
    from scale import ScaleMatcher, seed_of, write_images  # noqa: F401  (registers scale_pairs)

    work = Path(args.work)
    write_images(work / "images", args.pairs)
    drawer = ScaleMatcher({})
    matches = {}
    for k in range(args.pairs):  # every pair's matches before the run, keyed by the pixel that carries its seed
        seed = seed_of(f"s{k // 50:04d}/{k:06d}")
        pixel = tuple(int(v) for v in cv2.imread(str(work / "images" / f"{k:06d}.png"))[0, 0, ::-1])
        m = drawer._match(np.full((4, 4, 3), pixel, np.uint8), None)
        matches[pixel] = (m.kpts0, m.kpts1, m.scores)
        assert (pixel[0] << 16 | pixel[1] << 8 | pixel[2]) == seed
    precomputed_mb = sum(a.nbytes for m in matches.values() for a in m) / 2**20
    register_fixed_latency(args.latency, matches)
    argv = [
        "run",
        "--method",
        "fixed_latency",
        "--dataset",
        "scale_pairs",
        "--no-progress",
        "--output",
        str(work / "out"),
        "--set",
        f"dataset.root={work / 'images'}",
        "--set",
        f"dataset.pairs={args.pairs}",
        "--set",
        f"run.cache_dir={work / 'cache'}",
        *path_sets(args.path),
        "--set",
        f"solver.ransac.min_iterations={args.iterations}",
    ]
    out = timed_cli_run(argv, work / "out", False)
    return {**out, "precomputed_mb": precomputed_mb}


def in_subprocess(kind: str, path: str, args, **extra) -> dict:
    with tempfile.TemporaryDirectory(prefix="locbench-overhead-") as work:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--path",
            path,
            "--work",
            work,
            "--method",
            args.method,
            "--dataset",
            args.dataset,
            "--threads",
            str(args.threads),
        ]
        for key, value in extra.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        if args.stages:
            cmd.append("--stages")
        for s in args.extra_sets:
            cmd += ["--set", s]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        if res.returncode:
            sys.exit(f"{kind}/{path} failed:\n{res.stderr[-3000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ report
def print_sift(results: dict, args) -> None:
    print(
        f"\n1. cold {args.method} run on {args.dataset} (defaults: bootstrap, plots, submission), "
        f"{args.rounds} round(s); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'path':<14}{'round':>6}{'matcher-only s':>16}{'run wall s':>12}{'overhead':>10}{'sum match s':>13}"
        f"{'match/only':>12}{'in-run':>9}{'same rows':>11}"
    )
    ref = results.get("sequential", next(iter(results.values())))[0]["run"]["digest"]
    for path, rounds in results.items():
        for i, r in enumerate(rounds):
            only, run = r["only"]["wall_s"], r["run"]
            print(
                f"{path:<14}{i + 1:>6}{only:>16.2f}{run['wall_s']:>12.2f}"
                f"{(run['wall_s'] - only) / run['wall_s']:>10.1%}"
                f"{run['sum_match_s']:>13.2f}{run['sum_match_s'] / only:>12.2f}"
                f"{(run['wall_s'] - run['sum_match_s']) / run['wall_s']:>9.1%}"
                f"{'yes' if run['digest'] == ref else 'NO':>11}"
            )
    # the matcher-only pass and the run are separate processes: on a shared machine their difference is
    # noisy (a negative overhead is noise), so the median is printed beside the best, and "in-run" is
    # the run's own wall time outside its matcher calls (both measured in the same process)
    overheads = {
        p: sorted((r["run"]["wall_s"] - r["only"]["wall_s"]) / r["run"]["wall_s"] for r in rounds)
        for p, rounds in results.items()
    }
    print(
        "overhead, best / median: "
        + ", ".join(f"{p} {v[0]:.1%} / {v[len(v) // 2]:.1%}" for p, v in overheads.items())
        + " (target < 5 %)"
    )
    if args.stages:
        for path, rounds in results.items():
            seconds = rounds[-1]["run"]["stages"]
            print(f"\n{path}, last round, seconds per stage (threads overlap: the sum may exceed the wall):")
            for stage in STAGES:
                print(f"  {stage:<22}{seconds.get(stage, 0.0):>8.2f}")


def print_latency(results: dict, args) -> None:
    print("\n2. fixed-latency matcher (sleeps L, precomputed matches), synthetic pairs of benchmarks/scale.py")
    print(
        f"{'path':<14}{'L s':>6}{'pairs':>7}{'run wall s':>12}{'N L s':>8}{'efficiency':>12}{'x sequential':>14}"
        f"{'peak RSS MB':>13}{'same rows':>11}"
    )
    for (path, latency, pairs), r in results.items():
        seq = results.get(("sequential", latency, pairs), r)

        def eff(x):
            return pairs * latency / (x["wall_s"] - 1.0)

        print(
            f"{path:<14}{latency:>6}{pairs:>7}{r['wall_s']:>12.2f}{pairs * latency:>8.1f}{eff(r):>12.3f}"
            f"{eff(r) / eff(seq):>14.2f}{r['peak_rss_mb']:>13.0f}{'yes' if r['digest'] == seq['digest'] else 'NO':>11}"
        )
    print("target: efficiency >= 0.95 at both L")
    print("\n3. peak memory, 2,000 pairs against 200 (target: at most +50 MB)")
    for path in args.paths:
        big = [r for (p, _, n), r in results.items() if p == path and n > 1000]
        small = [r for (p, _, n), r in results.items() if p == path and n <= 1000]
        if big and small:
            b, s = big[0], small[0]
            print(
                f"{path:<14} {s['peak_rss_mb']:.0f} MB -> {b['peak_rss_mb']:.0f} MB: "
                f"{b['peak_rss_mb'] - s['peak_rss_mb']:+.0f} MB (of which precomputed matches "
                f"{b['precomputed_mb'] - s['precomputed_mb']:+.1f} MB)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="sift")
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--threads", type=int, default=1, help="run.torch_threads")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the cold run (each path, alternately)")
    ap.add_argument("--latency", nargs="+", default=["0.05:2000", "0.5:200"], metavar="L:PAIRS")
    ap.add_argument(
        "--iterations",
        type=int,
        default=100,
        help="solver.ransac.min_iterations of the synthetic pairs (as benchmarks/scale.py)",
    )
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="runner paths to compare")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-sift", action="store_true")
    ap.add_argument("--stages", action="store_true", help="also time each stage of the cold run")
    ap.add_argument("--set", dest="extra_sets", action="append", default=[], help="more --set for the cold runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--pairs", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--latency-s", dest="latency_s", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.extra = [x for s in args.extra_sets for x in ("--set", s)]
    if args.worker:
        logging.getLogger("locbench").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(sys.stderr):  # the CLI prints its table: keep stdout for the result
            if args.worker == "run":
                out = measure_sift_run(args)
            elif args.worker == "only":
                out = measure_matcher_only(args)
            else:
                args.latency = args.latency_s
                out = measure_fixed_latency(args)
        print(json.dumps(out))
        return

    if not args.skip_sift:
        sift = {p: [] for p in args.paths}
        for i in range(args.rounds):
            for path in args.paths if i % 2 == 0 else reversed(args.paths):
                only = in_subprocess("only", path, args)
                sift[path].append({"only": only, "run": in_subprocess("run", path, args)})
                print(
                    f"  round {i + 1} {path}: matcher-only {only['wall_s']:.1f} s, run "
                    f"{sift[path][-1]['run']['wall_s']:.1f} s",
                    file=sys.stderr,
                )
        print_sift(sift, args)
    if not args.skip_latency:
        latency = {}
        for spec in args.latency:
            value, pairs = spec.split(":")
            for path in args.paths:
                latency[path, float(value), int(pairs)] = in_subprocess(
                    "latency", path, args, latency_s=value, pairs=pairs, iterations=args.iterations
                )
                print(
                    f"  {path} L={value} x {pairs}: {latency[path, float(value), int(pairs)]['wall_s']:.1f} s",
                    file=sys.stderr,
                )
        print_latency(latency, args)


if __name__ == "__main__":
    main()
