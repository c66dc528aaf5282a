"""Imports every built-in method module so its @METHODS.register runs.

Modules must not import optional packages (kornia, ...) at import time."""
from . import sift  # noqa: F401
from . import dual_softmax, lightglue, loftr, mnn, superglue  # noqa: F401,E401
from .mast3r import matcher as _mast3r  # noqa: F401
