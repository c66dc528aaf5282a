"""Shared test fixtures. Reference material lives in ../shared (relative to the project root)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference folder {SHARED} is absent (fixtures and real data live in ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    return shared_dir / "data"


@pytest.fixture
def one_torch_thread():
    """Torch on one thread: two threads on a shared 2-core machine are slower than one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def register():
    """``register(REGISTRY, name, cls)`` registers a test's own class for that test only: a class left in a
    global registry would leak into every later test (and make a second registration of the name fail).
    Module-scoped fixtures use ``with REGISTRY.registered(name, cls):`` instead."""
    with contextlib.ExitStack() as stack:
        yield lambda registry, name, cls: stack.enter_context(registry.registered(name, cls))


@pytest.fixture
def synthetic_classes(register):
    """The synthetic pair dataset and matchers of ``tests/synthetic.py``, registered for one test."""
    from benchmark.registry import DATASETS, METHODS

    from . import synthetic

    register(DATASETS, "synthetic_pairs", synthetic.SyntheticPairs)
    register(METHODS, "synthetic_matcher", synthetic.SyntheticMatcher)
    register(METHODS, "synthetic_batching", synthetic.BatchingMatcher)


@pytest.fixture
def sift_run_args(request):
    """``sift_run_args(*sets)``: the CLI arguments of a small SIFT run without bootstrap or plots, on the
    demo when it has been generated, else on the 15 ScanNet pairs of ../shared."""
    demo = Path(__file__).resolve().parents[1] / "datasets/demo/data"

    def args(*sets: str) -> list[str]:
        common = ["--method", "sift", *(x for s in (*sets, "run.bootstrap=0", "run.plots=false") for x in ("--set", s))]
        if (demo / "val").is_dir():
            return ["--dataset", "demo", *common, "--no-progress"]
        shared = request.getfixturevalue("data_dir") / "superglue_scannet_sample"
        return ["--dataset", "scannet_sample", "--set", f"dataset.root={shared}", *common, "--no-progress"]

    return args
