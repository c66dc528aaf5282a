"""Pose solvers as declared objects: the task each serves, what it needs, the estimator that runs it.

A dataset asks for one task (``Dataset.task``) and the run's ``solver.<task>`` names the solver
(``solver.relative``, ``solver.metric_relative`` or ``solver.absolute``). A :class:`Solver` declares what
it needs, and the up-front check, the pipeline and ``python -m benchmark list`` read that declaration:

- ``matches``: the correspondences only;
- ``method_points``: the matcher's own 3D points of image 0 (``Matches.pts3d0``: MASt3R, DUSt3R);
- ``dataset_depth``: the dataset's depth map of image 0 (``dataset.depth``), to lift keypoints to 3D;
- ``map``: a mapped scene, retrieved images with 2D-3D observations (Aachen; ``benchmark.localize`` lifts
  the reference keypoints to world points).

The estimators themselves live in ``benchmark.estimators``. A package of your own adds a solver through
the entry-point group ``locbench.solvers``: the entry point's name is the solver's name, its value
(``package.module:OBJECT``) a :class:`Solver`.

``solver.ransac.max_error`` may list several thresholds (a sweep, glue-factory style): every sample is
then solved at each of them from the same matches (:func:`threshold_confs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import estimators
from .errors import SampleError, UserError
from .registry import load_plugin, plugin_entry_points
from .types import (
    ERROR,
    TASK_ABSOLUTE,
    TASK_METRIC_RELATIVE,
    TASK_RELATIVE,
    TASKS,
    Estimate,
    Matches,
    PairSample,
    PoseProblem,
)

NEEDS_MATCHES = "matches"
NEEDS_METHOD_POINTS = "method_points"
NEEDS_DATASET_DEPTH = "dataset_depth"
NEEDS_MAP = "map"
NEEDS_TEXT = {
    NEEDS_MATCHES: "matches only",
    NEEDS_METHOD_POINTS: "3D points from the method",
    NEEDS_DATASET_DEPTH: "the dataset's depth",
    NEEDS_MAP: "a map",
}
# what each task's samples can give a solver: pairs carry matches (and maybe points or depth), queries a map
TASK_NEEDS = {
    TASK_RELATIVE: (NEEDS_MATCHES, NEEDS_METHOD_POINTS, NEEDS_DATASET_DEPTH),
    TASK_METRIC_RELATIVE: (NEEDS_MATCHES, NEEDS_METHOD_POINTS, NEEDS_DATASET_DEPTH),
    TASK_ABSOLUTE: (NEEDS_MAP,),
}
TASK_TEXT = {
    TASK_RELATIVE: "relative pose up to scale",
    TASK_METRIC_RELATIVE: "metric relative pose",
    TASK_ABSOLUTE: "absolute pose against a map",
}
ABSOLUTE_ONLY_KEYS = ("lift", "lift_radius")  # how benchmark.localize lifts reference keypoints
SWEEP_KEY = "solver.ransac.max_error"
GROUP = "locbench.solvers"


@dataclass(frozen=True)
class Solver:
    """A pose solver: ``estimate(problem, solver_conf, seed) -> Estimate`` for one task."""

    task: str  # one of benchmark.types.TASKS
    needs: str  # one of the NEEDS_* values
    estimate: Callable[[PoseProblem, dict, int], Estimate]
    summary: str = ""  # one line for `python -m benchmark list`
    name: str = ""  # set when registered


class SolverRegistry:
    """(task, name) -> Solver; built-ins below, plugins from the ``locbench.solvers`` entry points."""

    def __init__(self):
        self._solvers: dict[tuple[str, str], Solver] = {}
        self._origin: dict[tuple[str, str], str] = {}
        self._plugins_loaded = False

    def register(self, name: str, solver: Solver, origin: str = "built-in") -> Solver:
        where = f"solver '{name}' ({origin})"
        if solver.task not in TASKS:
            raise UserError(f"The {where} declares task '{solver.task}'; it must be one of {', '.join(TASKS)}.")
        if solver.needs not in TASK_NEEDS[solver.task]:
            raise UserError(
                f"The {where} needs '{solver.needs}', which {solver.task} samples cannot give; "
                f"they give: {', '.join(TASK_NEEDS[solver.task])}."
            )
        if not callable(solver.estimate):
            raise UserError(f"The {where} has no callable estimate(problem, solver_conf, seed).")
        key = (solver.task, name)
        if key in self._solvers:
            raise UserError(
                f"The {where} is registered twice for solver.{solver.task} (also {self._origin[key]}); rename one."
            )
        self._solvers[key] = replace(solver, name=name)
        self._origin[key] = origin
        return self._solvers[key]

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for name, ep in plugin_entry_points(GROUP).items():
            obj = load_plugin("solver", GROUP, ep)
            if not isinstance(obj, Solver):
                raise UserError(
                    f"The solver plugin '{name}' ({ep.value}) must name a benchmark.solvers.Solver "
                    f"object, not a {type(obj).__name__}."
                )
            self.register(name, obj, f"plugin ({ep.value})")

    def names(self, task: str) -> list[str]:
        self._load_plugins()
        return [name for t, name in self._solvers if t == task]

    def all(self) -> list[tuple[Solver, str]]:
        """Every solver with its origin, by task."""
        self._load_plugins()
        return [(self._solvers[k], self._origin[k]) for k in sorted(self._solvers, key=lambda k: TASKS.index(k[0]))]

    def get(self, task: str, name) -> Solver:
        self._load_plugins()
        solver = self._solvers.get((task, name)) if isinstance(name, str) else None
        if solver is None:
            raise UserError(
                f"Unknown solver.{task} '{name}'; known solvers for {TASK_TEXT[task]}: "
                f"{', '.join(self.names(task))} (`python -m benchmark list` shows what each needs)."
            )
        return solver


SOLVERS = SolverRegistry()
for _name, _solver in (
    (
        "essential",
        Solver(
            TASK_RELATIVE,
            NEEDS_MATCHES,
            estimators.essential,
            "essential matrix, pycolmap LO-RANSAC + refinement, pixel threshold",
        ),
    ),
    (
        "essential_opencv",
        Solver(
            TASK_RELATIVE,
            NEEDS_MATCHES,
            estimators.essential_opencv,
            "the SuperGlue/LoFTR ScanNet recipe: OpenCV RANSAC, threshold / mean focal",
        ),
    ),
    (
        "poselib",
        Solver(
            TASK_RELATIVE,
            NEEDS_MATCHES,
            estimators.poselib_relative,
            "PoseLib estimate_relative_pose: LO-RANSAC (Sampson) + refinement, both cameras",
        ),
    ),
    (
        "pnp_depth",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_DATASET_DEPTH,
            estimators.pnp,
            "reference keypoints lifted with the depth map, pycolmap PnP",
        ),
    ),
    (
        "pnp_pts3d",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_METHOD_POINTS,
            estimators.pnp,
            "PnP (pycolmap) against the method's 3D points of the reference",
        ),
    ),
    (
        "essential_depth",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_DATASET_DEPTH,
            estimators.essential_scaled,
            "essential matrix (pycolmap), metric scale from the depth map",
        ),
    ),
    (
        "essential_pts3d",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_METHOD_POINTS,
            estimators.essential_scaled,
            "essential matrix (pycolmap), metric scale from the method's depth",
        ),
    ),
    (
        "pnp_depth_poselib",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_DATASET_DEPTH,
            estimators.poselib_pnp,
            "reference keypoints lifted with the depth map, PoseLib PnP",
        ),
    ),
    (
        "pnp_pts3d_poselib",
        Solver(
            TASK_METRIC_RELATIVE,
            NEEDS_METHOD_POINTS,
            estimators.poselib_pnp,
            "PnP (PoseLib) against the method's 3D points of the reference",
        ),
    ),
    ("pnp", Solver(TASK_ABSOLUTE, NEEDS_MAP, estimators.pnp, "PnP against the lifted map points, pycolmap")),
    (
        "poselib",
        Solver(
            TASK_ABSOLUTE,
            NEEDS_MAP,
            estimators.poselib_pnp,
            "PnP against the lifted map points, PoseLib (MASt3R's --pnp_mode poselib)",
        ),
    ),
):
    SOLVERS.register(_name, _solver)


# --------------------------------------------------------------------------- checks before any work
def _is_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_thresholds(solver_conf: dict) -> None:
    """``solver.ransac.max_error``: a positive number of pixels or a list of them (a sweep);
    ``max_error_diag_ratio``: null or a positive number, which then replaces a single max_error."""
    ransac = solver_conf["ransac"]
    value = ransac["max_error"]
    values = value if isinstance(value, list) else [value]
    if not values or not all(_is_positive(v) for v in values):
        raise UserError(
            f"solver.ransac.max_error must be a positive number of pixels or a list of them "
            f"(a threshold sweep), not {value!r}."
        )
    if len(set(map(float, values))) != len(values):
        raise UserError(f"solver.ransac.max_error lists a threshold twice ({value!r}); list each once.")
    ratio = ransac.get("max_error_diag_ratio")
    if ratio is not None:
        if not _is_positive(ratio):
            raise UserError(
                f"solver.ransac.max_error_diag_ratio must be null or a positive number (e.g. 0.008), not {ratio!r}."
            )
        if sweep_thresholds(solver_conf):
            raise UserError(
                "solver.ransac.max_error_diag_ratio replaces solver.ransac.max_error, which lists a "
                "threshold sweep; set only one of the two."
            )


def check_names(solver_conf: dict) -> None:
    """Every ``solver.<task>`` key present names a known solver of that task."""
    for key in TASKS:
        if key in solver_conf:
            SOLVERS.get(key, solver_conf[key])


def run_solver_conf(solver_conf: dict, task: str) -> dict:
    """The solver section a run of ``task`` uses and records: every solver name is checked (a typo in
    any of them stops the run), only the task's own ``solver.<task>`` key is kept."""
    check_names(solver_conf)
    return {
        k: v
        for k, v in solver_conf.items()
        if (k not in TASKS or k == task) and (task == TASK_ABSOLUTE or k not in ABSOLUTE_ONLY_KEYS)
    }


def check_solver(solver_conf: dict, dataset, method) -> Solver:
    """The run's solver exists and can work with what the dataset and the method give (else every
    sample would fail): decided from its declaration."""
    check_names(solver_conf)
    check_thresholds(solver_conf)
    task = dataset.task
    solver = SOLVERS.get(task, solver_conf[task])
    setting = f"solver.{task}={solver.name}"
    if solver.needs == NEEDS_METHOD_POINTS and not method.predicts_geometry:
        other = ", ".join(n for n in SOLVERS.names(task) if SOLVERS.get(task, n).needs != NEEDS_METHOD_POINTS)
        raise UserError(
            f"{setting} needs a method that predicts 3D points (mast3r, dust3r), which {method.name} "
            f"does not; choose another solver.{task} ({other})."
        )
    if solver.needs == NEEDS_DATASET_DEPTH and "depth" not in dataset.conf:
        raise UserError(
            f"{setting} needs the dataset's depth maps, which the {dataset.name} dataset does not give; "
            f"choose a solver that needs only matches."
        )
    if solver.needs == NEEDS_DATASET_DEPTH and not dataset.conf["depth"]:
        raise UserError(
            f"{setting} needs the reference depth, but dataset.depth is not set; name the depth maps "
            f"to use (e.g. --set dataset.depth=dptnyu for Map-free's DPT depth) or use a method that "
            f"predicts 3D points with solver.{task}=pnp_pts3d."
        )
    if task == TASK_ABSOLUTE:
        from .localize import LIFT_MODES

        if solver_conf["lift"] not in LIFT_MODES:
            raise UserError(f"solver.lift must be one of {', '.join(LIFT_MODES)}, not '{solver_conf['lift']}'.")
        if solver_conf["lift"] == "pointmap" and not method.predicts_geometry:
            raise UserError(
                f"solver.lift=pointmap needs a method that predicts 3D points (mast3r, dust3r), which "
                f"{method.name} does not; use solver.lift=nearest."
            )
    return solver


# --------------------------------------------------------------------------- per sample
def pair_problem(solver: Solver, sample: PairSample, matches: Matches) -> PoseProblem:
    """The solver's input for an image pair, with the 3D points its declaration asks for."""
    from .io import read_depth

    problem = PoseProblem(matches, sample.camera1, sample.camera0)
    if solver.needs == NEEDS_METHOD_POINTS:
        if matches.pts3d0 is None:
            raise SampleError(
                f"solver.{solver.task}={solver.name} needs a method that predicts 3D points (mast3r, dust3r)",
                status=ERROR,
            )
        points = matches.pts3d0.copy()
        points[~np.isfinite(points).all(1)] = np.nan
        problem.points3d = points
    elif solver.needs == NEEDS_DATASET_DEPTH:
        if sample.depth0 is None:
            raise SampleError(
                f"this dataset config gives no reference depth (set dataset.depth) for "
                f"solver.{solver.task}={solver.name}",
                status=ERROR,
            )
        depth_map = read_depth(sample.depth0, sample.depth_scale)
        depth0 = estimators.sample_depth(depth_map, matches.kpts0, sample.camera0.width, sample.camera0.height)
        problem.points3d = estimators.backproject(matches.kpts0, depth0, sample.camera0)
    return problem


# --------------------------------------------------------------------------- threshold sweeps
def sweep_thresholds(solver_conf: dict) -> list[float] | None:
    """The thresholds of a sweep (``solver.ransac.max_error`` listing two or more), else None."""
    value = solver_conf["ransac"]["max_error"]
    if isinstance(value, list) and len(value) > 1:
        return [float(v) for v in value]
    return None


def threshold_confs(solver_conf: dict) -> list[dict]:
    """One solver config per threshold of the sweep, the first first; the config itself when there is no sweep."""
    thresholds = sweep_thresholds(solver_conf)
    if thresholds is None:
        value = solver_conf["ransac"]["max_error"]
        if isinstance(value, list):  # a list of one is that one threshold
            return [{**solver_conf, "ransac": {**solver_conf["ransac"], "max_error": float(value[0])}}]
        return [solver_conf]
    return [{**solver_conf, "ransac": {**solver_conf["ransac"], "max_error": t}} for t in thresholds]


def sweep_prefix(threshold: float) -> str:
    """Column prefix of one threshold's results in the per-sample table: ``thr=<px>/``."""
    return f"thr={threshold:.10g}/"
