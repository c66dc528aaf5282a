"""Solvers as declared objects: the registry, the up-front check read from the declarations, plugins
(solvers and protocols) through real entry points, and threshold sweeps end to end."""

import json
import sys
import types
from importlib.metadata import EntryPoint

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark import protocols, solvers
from benchmark.cli import main
from benchmark.config import PROJECT_ROOT, load_yaml
from benchmark.errors import UserError
from benchmark.report import read_summary
from benchmark.solvers import SOLVERS, Solver
from benchmark.types import TASK_ABSOLUTE, TASK_METRIC_RELATIVE, TASK_RELATIVE, TASKS

SOLVER_CONF = load_yaml(PROJECT_ROOT / "configs/default.yaml")["solver"]


def test_every_builtin_declares_its_task_and_needs():
    assert SOLVERS.names(TASK_RELATIVE) == ["essential", "essential_opencv", "poselib"]
    assert SOLVERS.names(TASK_ABSOLUTE) == ["pnp", "poselib"]
    assert {"pnp_depth_poselib", "pnp_pts3d_poselib"} <= set(SOLVERS.names(TASK_METRIC_RELATIVE))
    for solver, origin in SOLVERS.all():
        assert solver.task in TASKS and solver.needs in solvers.TASK_NEEDS[solver.task] and origin == "built-in"
    assert SOLVERS.get(TASK_METRIC_RELATIVE, "pnp_pts3d_poselib").needs == solvers.NEEDS_METHOD_POINTS
    assert SOLVERS.get(TASK_METRIC_RELATIVE, "pnp_depth_poselib").needs == solvers.NEEDS_DATASET_DEPTH
    assert SOLVERS.get(TASK_ABSOLUTE, "poselib").needs == solvers.NEEDS_MAP
    with pytest.raises(
        UserError,
        match=r"^Unknown solver.relative 'essentiall'; known solvers for relative pose "
        r"up to scale: essential, essential_opencv, poselib \(",
    ):
        SOLVERS.get(TASK_RELATIVE, "essentiall")
    with pytest.raises(UserError, match="Unknown solver.absolute 'pnp_depth'"):  # names are per task
        SOLVERS.get(TASK_ABSOLUTE, "pnp_depth")


def test_registration_checks_the_declaration():
    reg = solvers.SolverRegistry()
    reg._plugins_loaded = True
    estimate = SOLVERS.get(TASK_RELATIVE, "essential").estimate
    with pytest.raises(UserError, match="needs 'map', which relative samples cannot give"):
        reg.register("x", Solver(TASK_RELATIVE, solvers.NEEDS_MAP, estimate))
    with pytest.raises(UserError, match="declares task 'stereo'"):
        reg.register("x", Solver("stereo", solvers.NEEDS_MATCHES, estimate))
    reg.register("x", Solver(TASK_RELATIVE, solvers.NEEDS_MATCHES, estimate))
    with pytest.raises(UserError, match="registered twice for solver.relative"):
        reg.register("x", Solver(TASK_RELATIVE, solvers.NEEDS_MATCHES, estimate), "plugin (p:X)")
    reg.register("x", Solver(TASK_METRIC_RELATIVE, solvers.NEEDS_MATCHES, estimate))  # another task: fine


def test_plugins_that_are_not_solvers_or_protocols_are_refused(monkeypatch):
    mod = types.ModuleType("locbench_bad_plugin")
    mod.THING = 42
    monkeypatch.setitem(sys.modules, "locbench_bad_plugin", mod)
    eps = {"thing": EntryPoint("thing", "locbench_bad_plugin:THING", "x")}
    monkeypatch.setattr(solvers, "plugin_entry_points", lambda group: eps)
    with pytest.raises(
        UserError,
        match=r"The solver plugin 'thing' \(locbench_bad_plugin:THING\) must name a "
        r"benchmark.solvers.Solver object, not a int.",
    ):
        solvers.SolverRegistry().names(TASK_RELATIVE)
    with pytest.raises(UserError, match="Unknown protocol 'nothing'; known: mapfree, relpose, rra, aachen."):
        protocols.get_protocol("nothing")
    monkeypatch.setattr(protocols, "plugin_entry_points", lambda group: eps)
    with pytest.raises(UserError, match="must name a benchmark.protocols.Protocol subclass or instance"):
        protocols.get_protocol("thing")


def _ns(**kw):
    return types.SimpleNamespace(**kw)


def test_up_front_check_reads_the_declarations():
    sparse, dense = _ns(name="sift", predicts_geometry=False), _ns(name="mast3r", predicts_geometry=True)
    scannet = _ns(name="scannet1500", task=TASK_RELATIVE, conf={"root": "x"})
    mapfree = _ns(name="mapfree", task=TASK_METRIC_RELATIVE, conf={"depth": None})
    aachen = _ns(name="aachen", task=TASK_ABSOLUTE, conf={})

    def conf(**kw):
        return {**SOLVER_CONF, **kw}

    assert solvers.check_solver(conf(relative="poselib"), scannet, sparse).name == "poselib"
    assert solvers.check_solver(conf(metric_relative="pnp_pts3d_poselib"), mapfree, dense).estimate is not None
    with pytest.raises(
        UserError,
        match="solver.metric_relative=pnp_pts3d_poselib needs a method that predicts 3D "
        "points .* which sift does not; choose another solver.metric_relative",
    ):
        solvers.check_solver(conf(metric_relative="pnp_pts3d_poselib"), mapfree, sparse)
    with pytest.raises(UserError, match="pnp_depth_poselib needs the reference depth, but dataset.depth is not set"):
        solvers.check_solver(conf(metric_relative="pnp_depth_poselib"), mapfree, dense)
    with pytest.raises(UserError, match="Unknown solver.absolute 'pnpp'"):  # a typo in any key
        solvers.check_solver(conf(absolute="pnpp"), scannet, sparse)
    with pytest.raises(UserError, match="solver.lift=pointmap needs a method that predicts 3D points"):
        solvers.check_solver(conf(absolute="poselib", lift="pointmap"), aachen, sparse)
    with pytest.raises(UserError, match="solver.lift must be one of auto, nearest, pointmap, not 'bilinear'"):
        solvers.check_solver(conf(lift="bilinear"), aachen, dense)
    depth_plugin = Solver(TASK_RELATIVE, solvers.NEEDS_DATASET_DEPTH, SOLVERS.get(TASK_RELATIVE, "poselib").estimate)
    reg = solvers.SolverRegistry()
    reg._plugins_loaded = True
    reg.register("depthy", depth_plugin)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(solvers, "SOLVERS", reg)
        relative_only = {k: v for k, v in conf(relative="depthy").items() if k not in ("metric_relative", "absolute")}
        with pytest.raises(UserError, match="needs the dataset's depth maps, which the scannet1500 dataset does not"):
            solvers.check_solver(relative_only, scannet, sparse)


def test_thresholds_number_or_list():
    ransac = SOLVER_CONF["ransac"]

    def conf(**kw):
        return {**SOLVER_CONF, "ransac": {**ransac, **kw}}

    assert solvers.sweep_thresholds(conf(max_error=2)) is None
    assert solvers.sweep_thresholds(conf(max_error=[0.5, 1, 2.0])) == [0.5, 1.0, 2.0]
    assert [c["ransac"]["max_error"] for c in solvers.threshold_confs(conf(max_error=[2, 0.5]))] == [2.0, 0.5]
    assert [c["ransac"]["max_error"] for c in solvers.threshold_confs(conf(max_error=[3]))] == [3.0]
    solvers.check_thresholds(conf(max_error=1, max_error_diag_ratio=0.008))
    for bad, message in (
        ([], "must be a positive number"),
        ("2", "must be a positive number"),
        (True, "positive"),
        ([1, 1.0], "lists a threshold twice"),
        (float("nan"), "positive"),
    ):
        with pytest.raises(UserError, match=message):
            solvers.check_thresholds(conf(max_error=bad))
    with pytest.raises(UserError, match="max_error_diag_ratio must be null or a positive number"):
        solvers.check_thresholds(conf(max_error_diag_ratio=-1))
    assert solvers.sweep_prefix(0.5) == "thr=0.5/" and solvers.sweep_prefix(2.0) == "thr=2/"


def test_a_run_records_only_its_tasks_solver_key():
    kept = solvers.run_solver_conf(SOLVER_CONF, TASK_RELATIVE)
    assert "relative" in kept and not {"metric_relative", "absolute", "lift", "lift_radius"} & set(kept)
    assert {"absolute", "lift", "lift_radius"} <= set(solvers.run_solver_conf(SOLVER_CONF, TASK_ABSOLUTE))
    with pytest.raises(UserError, match="Unknown solver.metric_relative 'pnp_dept'"):
        solvers.run_solver_conf({**SOLVER_CONF, "metric_relative": "pnp_dept"}, TASK_RELATIVE)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def sample_root(data_dir):
    return data_dir / "superglue_scannet_sample"


def _args(root, tmp, *extra):
    return [
        "run",
        "--method",
        "sift",
        "--dataset",
        "scannet_sample",
        "--set",
        f"dataset.root={root}",
        "--set",
        f"run.cache_dir={tmp / 'cache'}",
        "--set",
        "run.bootstrap=0",
        "--set",
        "run.plots=false",
        "--set",
        "run.max_samples=3",
        "--no-progress",
        *extra,
    ]


def test_threshold_sweep_matches_once_and_reports_each_threshold(sample_root, tmp_path, monkeypatch, capsys):
    from methods.sift import SiftMatcher

    calls = []
    original = SiftMatcher._match
    monkeypatch.setattr(SiftMatcher, "_match", lambda self, a, b: calls.append(1) or original(self, a, b))
    out = tmp_path / "sweep"
    assert (
        main(_args(sample_root, tmp_path, "--set", "solver.ransac.max_error=[0.5, 1.0, 2.0]", "--output", str(out)))
        == 0
    )
    printed = capsys.readouterr().out
    assert len(calls) == 3  # three samples, matched once for three thresholds
    summary = read_summary(out / "summary.json")
    sweep = summary["threshold_sweep"]
    assert sweep["key"] == "solver.ransac.max_error" and sweep["thresholds"] == [0.5, 1.0, 2.0]
    assert [p["threshold"] for p in sweep["per_threshold"]] == [0.5, 1.0, 2.0]
    assert sweep["submission_threshold"] == 0.5 and summary["overall"] == sweep["per_threshold"][0]["overall"]
    for key in ("AUC@5", "AUC@10", "AUC@20"):
        best = sweep["oracle_best"][key]
        assert best["value"] == max(p["overall"][key] for p in sweep["per_threshold"])
        first = next(p for p in sweep["per_threshold"] if p["overall"][key] == best["value"])
        assert best["threshold"] == first["threshold"]
    assert "best [oracle]" in printed and "0.5 (run)" in printed
    df = pd.read_parquet(out / "samples.parquet")
    for t in ("0.5", "1", "2"):
        assert {f"thr={t}/status", f"thr={t}/num_inliers", f"thr={t}/err_R_deg", f"thr={t}/pose_err_deg"} <= set(df)
    np.testing.assert_array_equal(df["thr=0.5/err_R_deg"], df["err_R_deg"])
    # each threshold's columns are what a run at that one threshold gives (its matches come from the cache)
    single = tmp_path / "single"
    assert main(_args(sample_root, tmp_path, "--set", "solver.ransac.max_error=2.0", "--output", str(single))) == 0
    assert len(calls) == 3
    one = pd.read_parquet(single / "samples.parquet")
    np.testing.assert_array_equal(one["err_R_deg"], df["thr=2/err_R_deg"])
    np.testing.assert_array_equal(one["num_inliers"], df["thr=2/num_inliers"])
    # the leaderboard: one ordinary row per threshold, the oracle best in a table of its own
    from benchmark.leaderboard import ORACLE_TAG, build_leaderboard

    tables = build_leaderboard([out, single])
    (heading,) = [h for h in tables if not h.endswith(ORACLE_TAG)]  # one evaluation set: one table
    assert heading.startswith("scannet_sample (relpose v")
    main_table, oracle = tables[heading], tables[f"{heading} {ORACLE_TAG}"]
    assert len(main_table) == 4 and not main_table["method"].str.contains("oracle").any()
    assert len(oracle) == 1 and oracle["method"][0].startswith(f"sift {ORACLE_TAG}")


PLUGIN = '''
from benchmark import estimators
from benchmark.protocols import RelativePoseProtocol
from benchmark.solvers import NEEDS_MATCHES, Solver
from benchmark.types import TASK_RELATIVE


def flagged_essential(problem, conf, seed):
    estimate = estimators.essential(problem, conf, seed)
    estimate.confidence = 4242.0  # marks the plugin's answers in the per-sample table
    return estimate


SOLVER = Solver(TASK_RELATIVE, NEEDS_MATCHES, flagged_essential, "pycolmap essential, flagged")


class MedianProtocol(RelativePoseProtocol):
    """Relative pose scored by a plugin."""
'''


def test_plugin_solver_from_an_entry_point_is_used_by_a_run(sample_root, tmp_path, monkeypatch, capsys):
    """A package on the path (module + dist-info with entry points), as pip would install it."""
    site = tmp_path / "site"
    (site / "locbench_test_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "locbench_test_plugin.py").write_text(PLUGIN)
    (site / "locbench_test_plugin-1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: locbench-test-plugin\nVersion: 1.0\n"
    )
    (site / "locbench_test_plugin-1.0.dist-info/entry_points.txt").write_text(
        "[locbench.solvers]\nflagged = locbench_test_plugin:SOLVER\n\n"
        "[locbench.protocols]\nrelpose_plugin = locbench_test_plugin:MedianProtocol\n"
    )
    monkeypatch.syspath_prepend(str(site))
    # the session's registry looks for plugins again (and forgets them after this test)
    for attr in ("_solvers", "_origin"):
        monkeypatch.setattr(SOLVERS, attr, dict(getattr(SOLVERS, attr)))
    monkeypatch.setattr(SOLVERS, "_plugins_loaded", False)
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "solver.relative=flagged" in listing and "plugin (locbench_test_plugin:SOLVER)" in listing
    assert "relpose_plugin" in listing and "plugin (locbench_test_plugin:MedianProtocol)" in listing
    assert protocols.get_protocol("relpose_plugin").name == "relpose_plugin"
    out = tmp_path / "run"
    assert (
        main(
            _args(
                sample_root,
                tmp_path,
                "--set",
                "run.max_samples=2",
                "--set",
                "solver.relative=flagged",
                "--output",
                str(out),
            )
        )
        == 0
    )
    df = pd.read_parquet(out / "samples.parquet")
    assert len(df) == 2 and (df["status"] == "ok").all() and (df["confidence"] == 4242.0).all()
    recorded = yaml.safe_load((out / "config.yaml").read_text())["solver"]
    assert recorded["relative"] == "flagged" and "metric_relative" not in recorded and "absolute" not in recorded
    assert json.loads((out / "provenance.json").read_text())["packages"]["cv2"]
