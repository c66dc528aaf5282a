"""Listing the methods and a SIFT run do not import torch, kornia or matplotlib (the plots are drawn by a
process of their own, which imports matplotlib)."""

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "kornia", "matplotlib")

CODE = """
import sys
from benchmark.cli import main
heavy = {heavy!r}
assert main(["list"]) == 0
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
argv = ["run", "--method", "sift", "--dataset", "demo", "--no-progress", "--output", {out!r},
        "--set", "run.cache_dir=" + {cache!r}, "--set", "run.max_samples=2", "--set", "run.bootstrap=10"]
assert main(argv) == 0
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
print("no heavy imports")
"""


def test_list_and_sift_run_do_not_import_torch(tmp_path):
    code = CODE.format(heavy=HEAVY, out=str(tmp_path / "out"), cache=str(tmp_path / "cache"))
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "no heavy imports" in out.stdout, out.stdout + out.stderr
    assert (tmp_path / "out/plots/error_curves.png").stat().st_size > 1000
    assert (tmp_path / "out/plots/per_scene.png").stat().st_size > 1000


PLOTTER = """
import sys
import numpy as np
from benchmark import plot_task
plot_task.warm_up()
curves = [("err_R_deg", "rotation error", "deg", 5.0), ("missing", "a column the run lacks", "m", None)]
errors = plot_task.Columns({{"err_R_deg": np.array([0.5, 3.0, np.inf, 40.0, 0.01])}}, rows=6)  # one row failed
per_scene = {{"a": {{"auc": 0.5}}, "b": {{"auc": float("nan")}}}}
paths = plot_task.draw(errors, curves, per_scene, "auc", "title", {folder!r}, "auto", ["b"])
assert "pandas" not in sys.modules
print(*paths)
"""


def test_the_plotter_process_draws_from_arrays_without_pandas(tmp_path):
    """What the run's plotter process imports and runs (``benchmark.plot_task``) needs no pandas: every
    second it spends importing is taken from the matcher when the cores are busy."""
    root = Path(__file__).resolve().parents[1]
    code = PLOTTER.format(folder=str(tmp_path / "plots"))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(Path(p).name for p in out.stdout.split()) == ["error_curves.png", "per_scene.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 1000 for n in ("error_curves.png", "per_scene.png"))
