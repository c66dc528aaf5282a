"""The ``demo`` dataset: rendered scenes in the exact Map-free layout, bundled with the code.

It runs with no download; ``python -m datasets.demo.generate`` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.registry import DATASETS

from ..mapfree import MapFree

DATA_DIR = Path(__file__).resolve().parent / "data"


@DATASETS.register("demo")
class Demo(MapFree):
    """Bundled rendered scenes in Map-free's layout (no download)."""

    default_conf = {**MapFree.default_conf, "root": str(DATA_DIR), "depth": "gt"}
    download_hint = (
        "the bundled demo data lives in datasets/demo/data; rebuild it with python -m datasets.demo.generate"
    )

    def has_ground_truth_depth(self) -> bool:
        return self.conf["depth"] == "gt"  # rendered exactly with the images
