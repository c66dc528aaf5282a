"""Our top-level package is called ``datasets``, like Hugging Face's: detect the wrong one."""

from __future__ import annotations

import importlib

from .errors import UserError


def ensure_our_datasets() -> None:
    module = importlib.import_module("datasets")
    if not getattr(module, "LOCBENCH", False):
        where = getattr(module, "__file__", None) or "an unknown location"
        raise UserError(
            f"'import datasets' found {where}, which is not locbench's datasets package (probably "
            f"Hugging Face's 'datasets'); run from the locbench checkout after "
            f"`pip install torch==2.13.0 -e .`, or uninstall the other package in this environment."
        )
