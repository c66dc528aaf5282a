"""``python -m benchmark show``: samples of a finished run drawn as the run saw them.

The sample is rebuilt from the run's resolved config (``config.yaml``, plus any ``--set``), its images
read the way the run read them (same resize and rotation), and its matches taken from the run's match
cache or, when they are not there, recomputed (and the picture says so). Matches are coloured by
their error against the ground truth where the benchmark has it (:mod:`benchmark.viz`): the
reprojection error through the GT depth where the dataset has GT depth, else the epipolar distance
from K and the GT relative pose; without ground truth, the solver's inliers and outliers (the sample
is solved again with the run's seed). An Aachen-style query is drawn against its best reference: the
one with the most inliers in the pooled PnP (most matches when the solver failed).

"Worst" samples: failed ones first (in dataset order), then by the protocol's headline error
(``Protocol.worst_by``: VCRE for Map-free, max(rotation, translation) angle for pairs, position error
for Aachen), largest first; samples without an error last, fewest inliers first.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import viz
from .config import apply_overrides, load_yaml
from .errors import SampleError, UserError
from .geometry import invert_pose
from .io import read_depth, read_image
from .types import INVALID_INPUT, OK, Camera, InvalidSample, Matches, QuerySample

log = logging.getLogger("locbench.show")
MAX_ERROR_PX = 10.0  # colour scale: red at and beyond this many pixels
MAX_LINES = 1000  # matches drawn at most (an even sample over the error-sorted matches beyond that)
REPORT_WIDTH = 1600  # pictures of the worst samples are drawn at most this wide for the report


@dataclass
class RunFolder:
    """A finished run: its folder, resolved config and per-sample table."""

    path: Path
    cfg: dict
    samples: pd.DataFrame


def open_run(path: Path, overrides: list[str] = ()) -> RunFolder:
    path = Path(path)
    for name in ("config.yaml", "samples.parquet"):
        if not (path / name).is_file():
            raise UserError(
                f"{path} is not a finished run folder (no {name}); pass a folder written by "
                f"`python -m benchmark run`, e.g. results/<run id>."
            )
    cfg = apply_overrides(load_yaml(path / "config.yaml"), list(overrides))
    try:
        samples = pd.read_parquet(path / "samples.parquet")
    except Exception as exc:
        raise UserError(
            f"{path / 'samples.parquet'} cannot be read ({type(exc).__name__}); run the benchmark again to rewrite it."
        )
    return RunFolder(path, cfg, samples)


def worst_order(df: pd.DataFrame, protocol) -> pd.DataFrame:
    """``df`` ordered worst first (see the module docstring)."""
    cols = [c for c in protocol.worst_by if c in df]
    error = df[cols].astype(float).max(axis=1, skipna=False) if cols else pd.Series(np.nan, index=df.index)
    key = pd.DataFrame(
        {
            "ok": df["status"] == OK,
            "error": -error.fillna(-np.inf),
            "inliers": df["num_inliers"],
            "pos": np.arange(len(df)),
        },
        index=df.index,
    )
    # failed samples keep the dataset order (their error is meaningless); ok ones by error, then inliers
    key.loc[~key["ok"], ["error", "inliers"]] = 0
    return df.loc[key.sort_values(["ok", "error", "inliers", "pos"], kind="stable").index]


def headline_error(row: dict, protocol) -> float:
    values = [float(row.get(c, np.nan)) for c in protocol.worst_by]
    return float(max(values)) if values and not np.isnan(values).any() else float("nan")


class MatchSource:
    """The run's match cache, read-only, as ``benchmark.pipeline.match_pair`` uses a cache: a pair is
    looked up by its key (method, image contents, how they are read); a pair that is not there is
    matched again by ``match_pair``, counted, and kept in memory only (drawing never writes a cache).
    ``fetched`` lists the matches handed out, in order (one per reference of a query)."""

    def __init__(self, method, cache_dir):
        from .cache import MatchCache, method_cache_dir
        from .pipeline import MatchKeys

        self.cache = MatchCache(method_cache_dir(cache_dir, method))
        self.keys = MatchKeys(method.cache_key())
        self.recomputed = 0
        self.fetched: list[Matches] = []
        self._new: dict[str, Matches] = {}

    def get(self, key: str) -> Matches | None:
        found = self._new.get(key)
        found = found if found is not None else self.cache.get(key)
        if found is not None:
            self.fetched.append(found)
        return found

    def put(self, key: str, matches: Matches) -> None:
        self.recomputed += 1
        self._new[key] = matches
        self.fetched.append(matches)


@dataclass
class View:
    """What one picture shows: the two images and the matches in their pixels, and the geometry that
    scores them (``scored``: the matches in the pixels the cameras describe)."""

    image0: np.ndarray
    image1: np.ndarray
    matches: Matches
    scored: Matches
    T_0to1: np.ndarray | None
    camera0: Camera
    camera1: Camera
    depth0: np.ndarray | None = None  # GT depth (metres) at each match's reference keypoint
    inliers: np.ndarray | None = None  # the solver's, when there is no ground truth to colour by
    notes: list = field(default_factory=list)


def _first_estimate(ctx: "ShowContext", problem, seed: int):
    """The run's estimate (its first threshold), solved again with the run's seed."""
    from .solvers import SOLVERS, threshold_confs

    solver = SOLVERS.get(ctx.dataset.task, ctx.cfg["solver"][ctx.dataset.task])
    return solver.estimate(problem, threshold_confs(ctx.cfg["solver"])[0], seed)


def find_sample(dataset, scene: str, sample_id: str):
    try:
        for sample in dataset.samples(scene):
            if sample.id == sample_id:
                return sample
    except SampleError as exc:
        raise SampleError(f"scene {scene} cannot be read ({exc})", status=INVALID_INPUT)
    raise UserError(
        f"Sample {sample_id} of the run is not in the {dataset.name} dataset any more (the dataset "
        f"changed since the run, or dataset.root points elsewhere); pass --set dataset.root=PATH."
    )


def _pair_view(sample, ctx: "ShowContext", seed: int) -> View:
    from .estimators import sample_depth
    from .pipeline import _pair_images, in_camera_pixels, match_pair
    from .solvers import SOLVERS, pair_problem

    image0, image1 = _pair_images(sample, ctx.method)  # as the run read them (the method's reading)
    matches, _ = match_pair(ctx.method, ctx.source, ctx.source.keys.pair(sample), lambda: (image0, image1))
    scored = in_camera_pixels(sample, matches)
    view = View(image0, image1, matches, scored, sample.T_0to1, sample.camera0, sample.camera1)
    if sample.T_0to1 is not None and sample.depth0 is not None and ctx.dataset.has_ground_truth_depth():
        depth_map = read_depth(sample.depth0, sample.depth_scale)
        view.depth0 = sample_depth(depth_map, scored.kpts0, sample.camera0.width, sample.camera0.height)
    elif sample.T_0to1 is None:
        try:
            solver = SOLVERS.get(ctx.dataset.task, ctx.cfg["solver"][ctx.dataset.task])
            view.inliers = _first_estimate(ctx, pair_problem(solver, sample, scored), seed).inliers
        except SampleError:
            view.inliers = None
    return view


def _query_view(sample: QuerySample, ctx: "ShowContext", seed: int) -> View:
    """The query against the reference with the most inliers in the pooled PnP (most matches when the
    solver fails), its matches fetched exactly as the run fetched them."""
    from .localize import query_problem

    ctx.source.fetched = []
    problem, _, _, _ = query_problem(sample, ctx.method, ctx.source, ctx.cfg["solver"], ctx.source.keys)
    parts = list(ctx.source.fetched)  # one per reference that observes map points, in retrieval order
    refs = [r for r in sample.references if r.points2d is not None and len(r.points2d)]
    try:
        inliers = _first_estimate(ctx, problem, seed).inliers
    except SampleError:
        inliers = None
    bounds = np.cumsum([0] + [len(m) for m in parts])
    per_ref = [inliers[a:b] if inliers is not None else None for a, b in zip(bounds, bounds[1:])]
    score = [(int(m.sum()) if m is not None else -1, len(p)) for m, p in zip(per_ref, parts)]
    best = max(range(len(refs)), key=lambda i: score[i])  # ties: the better-ranked reference
    ref, matches = refs[best], parts[best]
    T = sample.T_w2c @ invert_pose(ref.T_w2c) if sample.T_w2c is not None else None
    rank = next(i for i, r in enumerate(sample.references) if r is ref) + 1
    inl = "" if per_ref[best] is None else f", {int(per_ref[best].sum())} inliers in the pooled PnP"
    reading = ctx.method.image_reading
    view = View(
        read_image(ref.image, reading=reading),
        read_image(sample.image, reading=reading),
        matches,
        matches,
        T,
        ref.camera,
        sample.camera,
        inliers=per_ref[best] if T is None else None,
    )
    view.notes.append(
        f"left: reference {ref.name} (retrieval rank {rank} of {len(sample.references)}; "
        f"{len(matches)} matches{inl}); right: the query"
    )
    return view


def colour(view: View, max_error: float) -> tuple[np.ndarray, np.ndarray, viz.Legend]:
    """(colours, drawing order, legend): by GT reprojection or epipolar error, else solver inliers."""
    m = view.matches
    if view.T_0to1 is not None:
        k0, k1 = (
            viz.pinhole_pixels(c, k) for c, k in ((view.camera0, view.scored.kpts0), (view.camera1, view.scored.kpts1))
        )
        K0, K1 = view.camera0.K, view.camera1.K
        if view.depth0 is not None:
            errors = viz.reprojection_error_px(k0, k1, view.depth0, view.T_0to1, K0, K1)
            title = "reprojection error through the GT depth (grey: no depth)"
        else:
            errors = viz.epipolar_distance_px(k0, k1, view.T_0to1, K0, K1)
            title = "epipolar distance to the GT pose"
        order = np.argsort(np.nan_to_num(errors, nan=-1.0), kind="stable")  # worst drawn last, on top
        return viz.error_colors(errors, max_error), order, viz.Legend(title, max_error, "px")
    if view.inliers is None:
        return (
            viz.inlier_colors(None, len(m)),
            np.arange(len(m)),
            viz.Legend("no ground truth and no solver result", classes=[("match", viz.GREY)]),
        )
    order = np.argsort(view.inliers, kind="stable")  # inliers on top
    return (
        viz.inlier_colors(view.inliers, len(m)),
        order,
        viz.Legend("no ground truth: the solver's inliers", classes=[("inlier", viz.GREEN), ("outlier", viz.RED)]),
    )


@dataclass
class ShowContext:
    """Everything needed to draw samples of one run (built once for many pictures)."""

    cfg: dict
    dataset: object
    method: object
    protocol: object
    source: MatchSource


def context(cfg: dict, dataset=None, method=None) -> ShowContext:
    from .protocols import get_protocol
    from .runner import build

    if dataset is None or method is None:  # given by a run that just finished: its model is loaded already
        dataset, method, _ = build(cfg)
    dataset.check()
    source = MatchSource(method, cfg["run"]["cache_dir"])
    return ShowContext(cfg, dataset, method, get_protocol(dataset.protocol), source)


def draw_sample(
    ctx: ShowContext,
    row: dict,
    max_error: float = MAX_ERROR_PX,
    max_lines: int = MAX_LINES,
    max_width: int | None = None,
    antialias: bool = True,
):
    """The picture (RGB array) of one row of a run's per-sample table, at most ``max_width`` pixels
    wide (images scaled down; None: full size); SampleError when there is nothing to draw (the run
    could not read the sample)."""
    from .pipeline import sample_seed

    if row["status"] == INVALID_INPUT:
        raise SampleError(f"the run could not read it ({row['reason']})")
    sample = find_sample(ctx.dataset, row["scene"], row["sample_id"])
    if isinstance(sample, InvalidSample):
        raise SampleError(f"it cannot be read ({sample.reason})")
    before = ctx.source.recomputed
    seed = sample_seed(ctx.cfg["run"]["seed"], sample.id)
    view = (_query_view if isinstance(sample, QuerySample) else _pair_view)(sample, ctx, seed)
    colors, order, legend = colour(view, max_error)
    if len(order) > max_lines:
        order = order[np.round(np.linspace(0, len(order) - 1, max_lines)).astype(int)]
    lines = [
        f"{ctx.cfg['method']['label']} on {ctx.cfg['dataset']['label']}: sample {row['sample_id']} "
        f"(scene {row['scene']})",
        f"status: {row['status']}" + (f" ({row['reason']})" if row.get("reason") else ""),
        f"matches: {row['num_matches']}, inliers: {row['num_inliers']}"
        + (f"; {len(order)} of {len(view.matches)} drawn" if len(order) < len(view.matches) else ""),
    ]
    errors = [
        f"{label} {float(row[col]):.4g} {unit}"
        for col, label, unit, _ in ctx.protocol.curves
        if col in row and np.isfinite(float(row[col]))
    ]
    lines.append("errors: " + (", ".join(errors) if errors else "none (no estimate or no ground truth)"))
    lines += view.notes
    if ctx.source.recomputed > before:
        lines.append("matches recomputed: not found in the run's match cache")
    m = view.matches
    width = view.image0.shape[1] + view.image1.shape[1]
    scale = min(1.0, (max_width - viz.GAP) / width) if max_width else 1.0
    return viz.draw_matches(view.image0, view.image1, m.kpts0, m.kpts1, colors, lines, legend, order, scale, antialias)


def draw_one(ctx: ShowContext, row: dict, where: Path, max_error: float = MAX_ERROR_PX) -> np.ndarray:
    """:func:`draw_sample`, with one sentence when there is nothing to draw."""
    try:
        return draw_sample(ctx, row, max_error)
    except SampleError as exc:
        raise UserError(f"Sample {row['sample_id']} of {where} cannot be drawn: {exc}.")
    except UserError:
        raise
    except Exception as exc:  # a crash of the matcher or solver on this sample (as in the run, maybe)
        log.debug("drawing %s failed:\n%s", row["sample_id"], traceback.format_exc())
        raise UserError(
            f"Sample {row['sample_id']} of {where} cannot be drawn: {type(exc).__name__}: {exc} "
            f"(its status in the run: {row['status']})."
        )


def select_rows(run: RunFolder, protocol, sample: str | None, worst: int | None, scene: str | None) -> list[dict]:
    df = run.samples
    if sample is not None:
        picked = df[df["sample_id"] == sample]
        if picked.empty:
            raise UserError(
                f"Sample '{sample}' is not in {run.path / 'samples.parquet'}; pick one of its sample_id "
                f"values (e.g. {df['sample_id'].iloc[0]})."
            )
        return picked.to_dict("records")
    if scene is not None:
        df = df[df["scene"].astype(str) == scene]
        if df.empty:
            scenes = ", ".join(map(str, run.samples["scene"].unique()[:10]))
            raise UserError(f"Scene '{scene}' is not in {run.path / 'samples.parquet'}; its scenes are {scenes}.")
    if worst is not None:
        if worst < 1:
            raise UserError(f"--worst takes a positive number of samples, not {worst}.")
        df = worst_order(df, protocol)
    return df.to_dict("records")


def safe_name(sample_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(sample_id))


def draw_rows(ctx: ShowContext, rows: list[dict], limit: int | None = None, **kw):
    """(row, picture) for the rows, skipping (with a log line) the ones with nothing to draw, until
    ``limit`` pictures."""
    for row in rows:
        if limit is not None and limit <= 0:
            return
        try:
            picture = draw_sample(ctx, row, **kw)
        except SampleError as exc:
            log.info("sample %s is not drawn: %s", row["sample_id"], exc)
            continue
        except Exception as exc:  # e.g. the matcher crashes again on a sample the run recorded as 'error'
            log.info("sample %s is not drawn: %s: %s", row["sample_id"], type(exc).__name__, exc)
            log.debug("drawing %s failed:\n%s", row["sample_id"], traceback.format_exc())
            continue
        if limit is not None:
            limit -= 1
        yield row, picture


def write_worst(output: Path, df: pd.DataFrame, cfg: dict, dataset, method, protocol, n: int) -> list[dict]:
    """The ``run.viz_worst`` pictures of a finished run: ``viz/worst-NN.jpg`` (at most
    ``REPORT_WIDTH`` px wide); returns one dict per picture (the sample's row and its ``file``)."""
    folder = Path(output) / "viz"
    for old in folder.glob("worst-*.jpg"):
        old.unlink()
    if n <= 0 or df.empty:
        return []
    start = time.perf_counter()
    ctx = context(cfg, dataset, method)
    out = []
    rows = worst_order(df, protocol).to_dict("records")
    for i, (row, picture) in enumerate(draw_rows(ctx, rows, n, max_width=REPORT_WIDTH, antialias=False), 1):
        path = viz.write_picture(folder / f"worst-{i:02d}.jpg", picture)
        out.append({**row, "file": str(path.relative_to(output))})
    log.info(
        "drew the %d worst samples in %.2f s (%d pairs not in the match cache were matched again)",
        len(out),
        time.perf_counter() - start,
        ctx.source.recomputed,
    )
    return out


def show(
    run_path: Path,
    overrides: list[str],
    sample: str | None,
    worst: int | None,
    scene: str | None,
    output: Path | None,
    max_error: float = MAX_ERROR_PX,
) -> list[Path]:
    """The ``show`` verb: draw the chosen samples; returns the files written."""
    if sample is None and worst is None and scene is None:
        raise UserError("Say which samples to draw: --sample ID, --worst N or --scene S.")
    if sample is not None and (worst is not None or scene is not None):
        raise UserError("--sample draws one sample; leave out --worst and --scene with it.")
    if not max_error > 0:
        raise UserError(f"--max-error must be a positive number of pixels, not {max_error}.")
    one_file = output is not None and Path(output).suffix.lower() in (".png", ".jpg", ".jpeg")
    if output is not None and Path(output).suffix and not one_file:
        raise UserError(f"--output {output}: write a .png or .jpg file, or name a folder.")
    run = open_run(run_path, overrides)
    ctx = context(run.cfg)
    rows = select_rows(run, ctx.protocol, sample, worst, scene)
    if one_file and (worst if worst is not None else len(rows)) > 1:
        raise UserError(f"--output {output} names one picture but several samples are drawn; name a folder.")
    if sample is not None:
        drawn = [(rows[0], draw_one(ctx, rows[0], run.path, max_error))]
    else:
        drawn = draw_rows(ctx, rows, worst, max_error=max_error)
    folder = Path(output) if output is not None and not one_file else run.path / "viz"
    written = []
    for row, picture in drawn:
        path = Path(output) if one_file else folder / f"{safe_name(row['sample_id'])}.png"
        written.append(viz.write_picture(path, picture))
        print(f"{row['sample_id']}: {path}")
    if ctx.source.recomputed:
        print(f"{ctx.source.recomputed} pair(s) were not in the run's match cache and were matched again")
    if not written:
        raise UserError(
            f"None of the chosen samples of {run.path} can be drawn (the run could not read them; "
            f"see their reason in samples.csv)."
        )
    return written
