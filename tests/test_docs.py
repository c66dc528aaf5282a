"""docs/adding_a_matcher.md runs: its ORB example registers and runs on the demo with its preset, and the
blocks that show a file of the repository are that file, character for character."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from benchmark import config
from benchmark.cli import main
from benchmark.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "adding_a_matcher.md"
FENCE = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```', re.MULTILINE | re.DOTALL)


def titled_blocks() -> dict[str, str]:
    """title -> code of every fenced block that names the file it shows."""
    return {title: code for _, title, code in FENCE.findall(DOC.read_text()) if title}


def test_blocks_that_show_a_file_of_the_repository_are_that_file():
    shown = {title: code for title, code in titled_blocks().items() if (ROOT / title).exists()}
    assert set(shown) == {"methods/dual_softmax.py", "configs/methods/disk_dual_softmax.yaml"}
    for title, code in shown.items():
        assert code == (ROOT / title).read_text(), f"{DOC.name} shows another {title} than the repository holds"


def test_the_orb_example_registers_and_runs_on_the_demo_with_its_preset(tmp_path, monkeypatch):
    blocks = titled_blocks()
    configs = tmp_path / "configs"
    shutil.copytree(config.CONFIG_DIR, configs)
    (configs / "methods" / "orb.yaml").write_text(blocks["configs/methods/orb.yaml"])
    monkeypatch.setattr(config, "CONFIG_DIR", configs)
    try:
        exec(compile(blocks["methods/orb.py"], f"{DOC.name}: methods/orb.py", "exec"), {"__name__": "orb_example"})
        argv = [
            "run",
            "--method",
            "orb",
            "--dataset",
            "demo",
            "--set",
            "run.max_samples=4",
            "--set",
            f"run.cache_dir={tmp_path / 'cache'}",
            "--set",
            "run.bootstrap=0",
            "--set",
            "run.plots=false",
            "--output",
            str(tmp_path / "run"),
            "--no-progress",
        ]
        assert main(argv) == 0
    finally:
        METHODS.unregister("orb")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_samples"] == 4
    assert config.load_yaml(tmp_path / "run" / "config.yaml")["method"]["max_keypoints"] == 8000  # the preset's
    assert summary["overall"]["Estimates for % of frames"] > 0  # real poses from ORB's matches
