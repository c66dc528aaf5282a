"""Loaders for Map-free, ScanNet(-1500), Aachen Day-Night v1.1, CO3D-style sequences and the bundled demo."""

LOCBENCH = True  # lets benchmark.datasets_guard tell this package from Hugging Face's `datasets`
