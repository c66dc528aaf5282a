"""Time the harness spends outside the matcher, as a share of a whole demo run.

    python benchmarks/harness_overhead.py                       # sift on demo, CPU, 1 torch thread
    python benchmarks/harness_overhead.py --method disk_lightglue --threads 2

The run is the CLI's ``run`` (same code path), executed twice in this process: **cold** (empty match
cache: the matcher runs) and **warm** (every match set comes from the cache). Each stage's time is the
wall time spent inside the functions that do it, measured by wrapping them for the duration of the run:

* matcher: ``Matcher.match`` (the method itself, weights loading excluded);
* image/depth reading: ``benchmark.io.read_image`` / ``read_depth``;
* solving: the pose solvers (``benchmark.pipeline.solve_thresholds``);
* scoring: per-sample errors (``Protocol.sample_errors``) and the run summary (``report.summarize_run``);
* caching: per-pair cache reads and writes (``MatchCache``);
* writing results: tables, plots, submission files;
* other: everything else (config, planning shards, bookkeeping, logging).

The baseline is the matcher's own time in the cold run: the table prints each stage's seconds, its share
of the run, and its ratio to that baseline.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class StageClock:
    """Accumulates exclusive wall time per stage over wrapped functions: time spent in a measured call
    nested inside another (a depth map read by a solver) counts for the inner stage only."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._children: list[float] = []  # per open call: time of the measured calls nested in it

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._children.append(0.0)
            tic = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - tic
                nested = self._children.pop()
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - nested
                if self._children:
                    self._children[-1] += elapsed
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


def targets():
    from benchmark import cache, io, pipeline, protocols, report, runner
    from methods.base import Matcher

    out = [(Matcher, "match", "matcher"), (pipeline, "read_image", "image/depth reading"),
           (io, "read_depth", "image/depth reading"), (io, "read_image", "image/depth reading"),
           (pipeline, "solve_thresholds", "solving"), (report, "summarize_run", "summary + bootstrap"),
           (report, "write_results", "writing results"),
           (cache.MatchCache, "get", "caching"), (cache.MatchCache, "put", "caching"),
           (runner, "prepare", "run set-up (build, check, identify inputs)")]
    for cls in {type(p) for p in protocols.PROTOCOLS.values()}:
        out += [(cls, "sample_errors", "scoring"), (cls, "write_submission", "writing results")]
    return out


def timed_run(args, output: Path, cache_dir: Path) -> tuple[float, dict]:
    from benchmark.cli import main as cli

    argv = ["run", "--method", args.method, "--dataset", args.dataset, "--no-progress", "--output", str(output),
            "--set", f"run.cache_dir={cache_dir}", "--set", f"run.torch_threads={args.threads}"]
    clock = StageClock()
    with clock.patched(targets()):
        tic = time.perf_counter()
        if cli(argv) != 0:
            raise SystemExit(f"the run failed: {' '.join(argv)}")
        total = time.perf_counter() - tic
    return total, clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="sift")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("locbench").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {"cold": timed_run(args, tmp / "cold", tmp / "cache"),
                "warm": timed_run(args, tmp / "warm", tmp / "cache")}
    baseline = runs["cold"][1].get("matcher", float("nan"))
    stages = ["matcher", "image/depth reading", "solving", "scoring", "summary + bootstrap", "caching",
              "writing results"]
    print(f"{args.method} on {args.dataset}; torch threads {args.threads}; baseline = matcher time of the cold run "
          f"({baseline:.2f} s)\n")
    print(f"{'stage':<22}" + "".join(f"{name + ' s':>12}{name + ' %':>9}" for name in runs) + f"{'cold / matcher':>16}")
    for stage in stages + ["other", "total"]:
        cells = []
        for total, seconds in runs.values():
            if stage == "total":
                value = total
            elif stage == "other":
                value = total - sum(seconds.get(s, 0.0) for s in stages)
            else:
                value = seconds.get(stage, 0.0)
            cells.append(value)
        shares = [v / runs[k][0] * 100 for v, k in zip(cells, runs)]
        print(f"{stage:<22}" + "".join(f"{v:>12.3f}{p:>8.1f}%" for v, p in zip(cells, shares))
              + f"{cells[0] / baseline:>15.2f}x")
    for name, (total, seconds) in runs.items():
        outside = total - seconds.get("matcher", 0.0)
        print(f"\n{name}: time outside the matcher {outside:.2f} s = {outside / total * 100:.1f}% of the run")


if __name__ == "__main__":
    main()
