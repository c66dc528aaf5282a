"""What the harness and the methods share about the machine: the project's environment variables
(which Ray workers must receive too) and the one sentence for a missing optional package."""
from __future__ import annotations

import importlib.util

from .errors import UserError

ENV_DIR = "LOCBENCH_WEIGHTS"  # a folder of weight files, looked in before the cache
ENV_CACHE = "LOCBENCH_CACHE"  # the cache folder (default ~/.cache/locbench)
ENV_ALLOW_DOWNLOAD = "LOCBENCH_ALLOW_DOWNLOAD"  # set by the CLI's --allow-download
PROJECT_ENV = (ENV_DIR, ENV_CACHE, ENV_ALLOW_DOWNLOAD)


def require_package(module: str, extra: str, what: str) -> None:
    """Raise a one-sentence UserError when an optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"The {what} needs the optional package '{module}'; install it with "
                        f"pip install torch==2.13.0 -e '.[{extra}]'.")
