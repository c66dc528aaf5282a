"""Imports every built-in dataset module so its @DATASETS.register runs."""
from . import mapfree  # noqa: F401
from .demo import loader  # noqa: F401
from . import aachen, co3d, megadepth, scannet  # noqa: F401
