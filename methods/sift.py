"""SIFT (pycolmap's implementation, CPU) with mutual nearest neighbour + ratio matching."""

from __future__ import annotations

import numpy as np

from benchmark.config_types import Key
from benchmark.registry import METHODS
from benchmark.types import Matches

from .base import Matcher
from .nn import mutual_nn_ratio


def _rgb_to_gray(image: np.ndarray) -> np.ndarray:
    # ITU-R BT.601 weights, as OpenCV's and PIL's grayscale conversions use.
    gray = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    return np.ascontiguousarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8))


@METHODS.register("sift")
class SiftMatcher(Matcher):
    """SIFT (pycolmap, CPU) with mutual nearest neighbours and Lowe's ratio test."""

    holds_gil = True  # pycolmap's extractor does not release the GIL (measured: benchmarks/harness_overhead.py)
    default_conf = {
        "max_keypoints": 4096,
        "peak_threshold": 0.0066667,  # COLMAP's default, 0.02 / octave_resolution
        "edge_threshold": 10.0,
        "first_octave": -1,  # -1 upsamples the image once, as COLMAP does by default
        "upright": False,
        "ratio": 0.8,  # Lowe's ratio test on descriptor distances; null disables it
        "mutual": True,
        "max_distance": 0.7,  # Euclidean distance between unit descriptors (COLMAP's default)
        "num_threads": 1,
    }
    conf_types = {
        "peak_threshold": Key(float, above=0),
        "edge_threshold": Key(float, above=0),
        "ratio": Key(float | None, above=0, max=1),
        "max_distance": Key(float | None, above=0),
    }

    def _load(self):
        import pycolmap

        pycolmap.logging.minloglevel = 2  # COLMAP prints an INFO line per extractor otherwise
        opts = pycolmap.FeatureExtractionOptions()
        opts.num_threads = self.conf["num_threads"]
        opts.sift.max_num_features = self.conf["max_keypoints"]
        opts.sift.peak_threshold = self.conf["peak_threshold"]
        opts.sift.edge_threshold = self.conf["edge_threshold"]
        opts.sift.first_octave = self.conf["first_octave"]
        opts.sift.upright = self.conf["upright"]
        self._extractor = pycolmap.FeatureExtractor.create(opts, device=pycolmap.Device.cpu)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, 2) in OpenCV pixels and L2-normalised float32 descriptors (N, 128)."""
        self.load()
        kps, descs = self._extractor.extract_from_uint8_array(_rgb_to_gray(image))
        # COLMAP puts the centre of the top-left pixel at (0.5, 0.5).
        xy = np.array([(k.x, k.y) for k in kps], dtype=np.float64).reshape(-1, 2) - 0.5
        d = np.asarray(descs.data, dtype=np.float32).reshape(-1, 128)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return xy, d

    def _match(self, image0, image1) -> Matches:
        xy0, d0 = self.detect(image0)
        xy1, d1 = self.detect(image1)
        pairs, dist = mutual_nn_ratio(
            d0, d1, ratio=self.conf["ratio"], mutual=self.conf["mutual"], max_distance=self.conf["max_distance"]
        )
        return Matches(xy0[pairs[:, 0]], xy1[pairs[:, 1]], 1.0 - dist, num_keypoints0=len(xy0), num_keypoints1=len(xy1))
