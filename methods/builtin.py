"""Imports every built-in method module so its @METHODS.register runs.

Modules must not import optional packages (kornia, ...) at import time."""

from . import (  # noqa: F401,E401
    dual_softmax,
    lightglue,
    loftr,
    mnn,
    sift,  # noqa: F401
    superglue,
)
from .mast3r import matcher as _mast3r  # noqa: F401
