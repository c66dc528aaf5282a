"""Imports every built-in dataset module so its @DATASETS.register runs."""
from . import demo  # noqa: F401
