"""Our ``superglue`` against the official SuperPoint + SuperGlue outputs (``../shared/fixtures/superglue/``:
random weights in the released layout, real images): every detected keypoint, every match, scores within
1e-4, at any image size; and the published ScanNet reading (straight to grey, uint8 resize to 640 x 480)
from the JPEG files, through the ScanNet loader and the harness's image reading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmark.io import GRAY, read_image
from benchmark.pipeline import _pair_images
from datasets.scannet import ScanNet1500
from methods.superglue.matcher import SuperGlueMatcher

# pair, and whether it is slow on 2 CPU cores (the two full-size 1296 x 968 frames)
REFERENCE = [("scannet_crop", False), ("scannet_mapfree_size", True), ("scannet_a", True), ("scannet_b", True)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(fixtures_dir):
    path = fixtures_dir / "superglue"
    if not (path / "reference.npz").is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def superglue(folder):
    """The released match_pairs.py settings (the preset's), with the fixture's weights."""
    m = SuperGlueMatcher(
        {
            "weights": str(folder / "superglue_indoor.pth"),
            "detector_weights": str(folder / "superpoint_v1.pth"),
            "device": "cpu",
        }
    ).load()
    detected = []
    extract = m._extract

    def recording(batch):  # keeps every detected keypoint for the comparison
        out = extract(batch)
        detected.extend(out)
        return out

    m._extract = recording
    m.detected = detected
    return m


def match_and_detect(m, image0, image1):
    m.detected.clear()
    res = m.match(image0, image1)
    return res, [f["image_keypoints"].double().numpy() for f in m.detected]


def rows(points):
    """Keypoints in a canonical order (top-k leaves the order of equal scores to the implementation)."""
    points = np.asarray(points, dtype=np.float64)
    return points[np.lexsort(points.T[::-1])]


def assert_reproduces(res, detected, ref, prefix=""):
    np.testing.assert_array_equal(rows(detected[0]), rows(ref[prefix + "kpts0"]))
    np.testing.assert_array_equal(rows(detected[1]), rows(ref[prefix + "kpts1"]))
    np.testing.assert_array_equal(res.kpts0, ref[prefix + "mkpts0"])
    np.testing.assert_array_equal(res.kpts1, ref[prefix + "mkpts1"])
    np.testing.assert_allclose(res.scores, ref[prefix + "mscores"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("pair", [pytest.param(p, marks=pytest.mark.slow) if slow else p for p, slow in REFERENCE])
def test_reference_pairs_at_their_own_size(superglue, folder, pair):
    ref = np.load(folder / "reference.npz")
    grey = [cv2.imread(str(folder / f"{pair}_{i}.png"), cv2.IMREAD_GRAYSCALE) for i in (0, 1)]
    rgb = [np.repeat(g[..., None], 3, axis=2) for g in grey]  # the fixture's R = G = B input ...
    res, detected = match_and_detect(superglue, *rgb)
    assert_reproduces(res, detected, ref, f"{pair}/")
    if pair == "scannet_crop":  # ... and the grey image itself give the same
        again, _ = match_and_detect(superglue, *grey)
        np.testing.assert_array_equal(again.kpts1, res.kpts1)


@pytest.fixture(scope="module")
def protocol_pairs(fixtures_dir, data_dir):
    """The fixture's three pairs as the ScanNet loader gives them, and the official record of each."""
    protocol = np.load(fixtures_dir / "superglue" / "scannet_protocol.npz")
    root = data_dir / "superglue_scannet_sample"
    ds = ScanNet1500({"root": str(root), "pairs": "scannet_sample_pairs_with_gt.txt", "image_dir": "images"})
    samples = {(s.image0.name, s.image1.name): s for scene in ds.scenes() for s in ds.samples(scene)}
    return [
        (samples[(str(protocol[f"pair{k}/name0"]), str(protocol[f"pair{k}/name1"]))], protocol, f"pair{k}/")
        for k in range(3)
    ]


def test_published_scannet_inputs_from_the_jpeg_files(superglue, protocol_pairs):
    """The harness reads scannet_sample for superglue as match_pairs.py does: the official uint8 grey 640 x 480."""
    assert superglue.image_reading == GRAY
    for sample, protocol, prefix in protocol_pairs:
        images = _pair_images(sample, superglue)
        for i in (0, 1):
            np.testing.assert_array_equal(images[i], protocol[f"{prefix}input{i}"])


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1, 2])
def test_published_scannet_matches_from_the_jpeg_files(superglue, protocol_pairs, k):
    sample, protocol, prefix = protocol_pairs[k]
    res, detected = match_and_detect(superglue, *_pair_images(sample, superglue))
    assert_reproduces(res, detected, protocol, prefix)


def test_colour_reading_is_not_the_published_one(data_dir, fixtures_dir):
    """Decoding colour and converting later gives other pixels than libjpeg's grey decode: the reason the
    reading is part of the method."""
    protocol = np.load(fixtures_dir / "superglue" / "scannet_protocol.npz")
    path = data_dir / "superglue_scannet_sample" / "images" / str(protocol["pair0/name0"])
    colour_first = cv2.cvtColor(read_image(path, (640, 480)), cv2.COLOR_RGB2GRAY)
    assert not np.array_equal(colour_first, protocol["pair0/input0"])
    np.testing.assert_array_equal(read_image(path, (640, 480), reading=GRAY), protocol["pair0/input0"])
