"""The matcher interface every method implements.

A method is a class registered under a name; it is built from its config (a
dict validated against ``default_conf``), loads its weights lazily, and matches
one pair of images::

    @METHODS.register("mymatcher")
    class MyMatcher(Matcher):
        default_conf = {"max_keypoints": 2048}
        def _load(self): ...                      # heavy imports and weights here
        def _match(self, image0, image1) -> Matches: ...

A method running torch networks derives from ``methods.learned.TorchMatcher`` instead, which matches
the pairs of a batch together (``_match_pairs``) and never calls ``_match``.

Images are ``numpy.uint8`` as read from disk (after any resize the benchmark protocol asks for), in
the form the method's ``image_reading`` declares: (H, W, 3) RGB, or (H, W) grey decoded straight from
the file as the method's official reader does (SuperGlue, LoFTR). ``match`` also takes the other form
and converts it. Keypoints come back in those images' pixels, OpenCV convention.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import ClassVar

import numpy as np

from benchmark.config import config_hash, merge
from benchmark.config_types import class_schema
from benchmark.environment import apply_torch_threads, require_package  # noqa: F401 (methods import it from here)
from benchmark.errors import UserError
from benchmark.io import RGB, ImageReading, as_reading
from benchmark.types import Matches


class Matcher:
    name: ClassVar[str] = "?"
    default_conf: ClassVar[dict] = {}
    # Types a default cannot say (null defaults, unions, ranges, choices): benchmark.config_types.
    conf_types: ClassVar[dict] = {}
    # True for methods that also predict 3D points (MASt3R, DUSt3R): Matches.pts3d0/pts3d1 are filled.
    predicts_geometry: ClassVar[bool] = False
    # True for methods whose matching holds Python's GIL for its whole call (pycolmap's SIFT): the pipelined
    # runner's threads would only contend with it, so run.pipeline=auto runs them sample after sample
    holds_gil: ClassVar[bool] = False
    # How the harness reads this method's images (colour, or grey straight from the decoder); in the cache key.
    image_reading: ClassVar[ImageReading] = RGB

    def __init__(self, conf: dict | None = None):
        conf = dict(conf or {})
        for key in ("name", "label"):
            conf.pop(key, None)
        self.conf = merge(
            self.default_conf, conf, f"the '{self.name}' method config", "method.", class_schema(type(self))
        )
        self._loaded = False

    # -- what subclasses write -------------------------------------------------
    def check(self) -> None:
        """Raise UserError (one sentence: what to install / where to put the file) if the
        method cannot run here. Called before any work; must be cheap (no weight loading)."""

    def _load(self) -> None:
        """Import optional packages and load weights (called once, lazily)."""

    def _match(self, image0: np.ndarray, image1: np.ndarray) -> Matches:
        raise NotImplementedError

    def weights_fingerprint(self) -> str:
        """Identifies the weights in cache keys and provenance (a sha256 when known)."""
        return ""

    def weight_files(self) -> list:
        """The weight files this configuration uses, as ``methods.checkpoints.WeightFile`` (resolved, not
        loaded; cheap to call). ``check_weights`` checks each before any work."""
        return []

    def check_weights(self) -> None:
        """Raise UserError when a weight file is unreadable, no checkpoint or of another architecture."""
        from .checkpoints import check_weight_files

        check_weight_files(self.weight_files())

    def weights_report(self) -> list[dict]:
        """Per weight file: its sha256 and whether it is a known released file (for provenance and the
        leaderboard, which marks rows whose weights are not)."""
        from .weights import verify

        try:
            files = self.weight_files()
        except UserError:
            return [{"file": "", "sha256": "", "status": "missing", "release": ""}]
        return [verify(getattr(f, "path", f)) for f in files]

    # -- what the harness calls ------------------------------------------------
    def preflight(self) -> None:
        """Everything checked before any work: settings, packages, weight files (nothing is loaded)."""
        self.check()
        self.check_weights()

    def load(self) -> "Matcher":
        if not self._loaded:
            self.check()
            self._load()
            apply_torch_threads()
            self._loaded = True
        return self

    def match(self, image0: np.ndarray, image1: np.ndarray) -> Matches:
        return self.match_batch([(image0, image1)])[0]

    def match_batch(self, pairs: list[tuple[np.ndarray, np.ndarray]], run=None) -> list[Matches]:
        """Several pairs at once, through ``_match_pairs`` (``run`` replaces it for one call, e.g. to match
        from map observations)."""
        for a, b in pairs:
            check_image(a, 0)
            check_image(b, 1)
        pairs = [(as_reading(a, self.image_reading), as_reading(b, self.image_reading)) for a, b in pairs]
        self.load()
        start = time.perf_counter()
        out = (run or self._match_pairs)(pairs)
        for m in out:  # a batch shares its time unless the method timed each pair
            m.timings.setdefault("match", (time.perf_counter() - start) / max(len(pairs), 1))
        return out

    def _match_pairs(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[Matches]:
        """The pairs of one batch, one ``_match`` each, each timed (``TorchMatcher`` batches them instead)."""
        out = []
        for a, b in pairs:
            start = time.perf_counter()
            out.append(self._match(a, b))
            out[-1].timings.setdefault("match", time.perf_counter() - start)
        return out

    def bound_to_map(self, points2d0) -> "Matcher":
        """The matcher for one mapped reference image (image 0) whose map observations are ``points2d0``
        (OpenCV pixels). Most methods ignore them; MASt3R's visloc mode (``pixel_tol`` > 0) starts from them."""
        return self

    def pairs_per_batch(self) -> int:
        """Pairs the runner hands to ``match_batch`` at once (1: the method gains nothing from batches)."""
        return 1

    def cache_key(self) -> str:
        """Changes whenever the matches could change: method name, config, weights and how images are read."""
        return config_hash(
            {
                "name": self.name,
                "conf": self.conf,
                "weights": self.weights_fingerprint(),
                "reading": asdict(self.image_reading),
            }
        )


def check_image(image, index: int) -> None:
    if not (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3))
    ):
        raise ValueError(
            f"image{index} must be a uint8 (H, W, 3) RGB or (H, W) grey array, got "
            f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
