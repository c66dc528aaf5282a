"""Imports every built-in dataset module so its @DATASETS.register runs."""

from . import (  # noqa: F401
    aachen,
    co3d,
    mapfree,  # noqa: F401
    megadepth,
    scannet,
)
from .demo import loader  # noqa: F401
