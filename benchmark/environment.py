"""What the harness and the methods share about the machine: the project's environment variables
(which Ray workers must receive too), the one sentence for a missing optional package, and torch's
thread count."""

from __future__ import annotations

import importlib.util
import sys

from .errors import UserError

ENV_DIR = "LOCBENCH_WEIGHTS"  # a folder of weight files, looked in before the cache
ENV_CACHE = "LOCBENCH_CACHE"  # the cache folder (default ~/.cache/locbench)
ENV_ALLOW_DOWNLOAD = "LOCBENCH_ALLOW_DOWNLOAD"  # set by the CLI's --allow-download
PROJECT_ENV = (ENV_DIR, ENV_CACHE, ENV_ALLOW_DOWNLOAD)


def require_package(module: str, extra: str, what: str) -> None:
    """Raise a one-sentence UserError when an optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise UserError(
            f"The {what} needs the optional package '{module}'; install it with "
            f"pip install torch==2.13.0 -e '.[{extra}]'."
        )


_torch_threads: int | None = None


def set_torch_threads(n: int) -> None:
    """Threads torch may use in this process: applied now if torch is loaded, else when a method loads
    it (methods import torch when they load, so runs of numpy-only methods never import it)."""
    global _torch_threads
    _torch_threads = max(1, int(n))
    apply_torch_threads()


def apply_torch_threads() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and _torch_threads is not None and torch.get_num_threads() != _torch_threads:
        torch.set_num_threads(_torch_threads)
