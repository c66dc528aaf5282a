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
