"""The harness from Python: run a benchmark, read a run's results, draw one of its samples.

    from benchmark import api

    folder = api.run("sift", "demo", ["method.max_keypoints=1024"])
    results = api.load(folder)          # summary dict, per-sample DataFrame, resolved config
    picture = api.draw(folder, results.samples["sample_id"][0])   # RGB uint8 array

Everything the command line does, with the same files written and the same one-sentence errors
(raised as :class:`benchmark.errors.UserError`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class RunResults:
    path: Path
    summary: dict  # summary.json: overall and per-scene metrics, 95 % intervals, status counts, provenance
    samples: pd.DataFrame  # samples.parquet: one row per sample
    config: dict  # config.yaml: the resolved config


def run(
    method: str,
    dataset: str,
    overrides: list[str] = (),
    *,
    output: str | Path | None = None,
    experiment: str | Path | None = None,
    cache: bool = True,
    progress: bool = False,
) -> Path:
    """``python -m benchmark run``: returns the run folder (results, report.html, plots, pictures)."""
    from .cli import cmd_run

    args = argparse.Namespace(
        method=method,
        dataset=dataset,
        experiment=experiment,
        overrides=list(overrides),
        output=str(output) if output else None,
        no_cache=not cache,
        executor=None,
        no_progress=not progress,
    )
    return Path(cmd_run(args, quiet=True)["output"])


def load(folder: str | Path) -> RunResults:
    """A finished run's summary, per-sample table and resolved config."""
    from .compare import load_run

    r = load_run(Path(folder))
    return RunResults(r.path, r.summary, r.samples, r.cfg)


def draw(folder: str | Path, sample_id: str, overrides: list[str] = (), max_error: float = 10.0) -> np.ndarray:
    """The picture ``show --sample`` writes, as an RGB array (write it with benchmark.viz.write_picture)."""
    from .show import context, draw_one, open_run, select_rows

    run_folder = open_run(Path(folder), overrides)
    ctx = context(run_folder.cfg)
    return draw_one(ctx, select_rows(run_folder, ctx.protocol, sample_id, None, None)[0], run_folder.path, max_error)
