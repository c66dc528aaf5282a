"""How the harness reads a method's images: the method's declared reading (colour, or straight to grey as
SuperGlue's and LoFTR's readers do), the protocol resize on the decoded uint8 image before any rotation,
and the reading inside the cache key."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmark.io import GRAY, RGB, ImageReading, as_reading, read_image
from benchmark.pipeline import _pair_images
from benchmark.registry import METHODS
from benchmark.types import Camera, PairSample


@pytest.fixture(scope="module")
def jpeg(data_dir):
    path = data_dir / "superglue_scannet_sample" / "images" / "scene0722_00_frame-000045.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_grey_reading_is_the_decoders_own(jpeg):
    grey = read_image(jpeg, reading=GRAY)
    assert grey.dtype == np.uint8 and grey.shape == (968, 1296)
    np.testing.assert_array_equal(grey, cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE))
    colour = read_image(jpeg)
    np.testing.assert_array_equal(colour, cv2.imread(str(jpeg))[..., ::-1])
    # libjpeg's grey decode is not the colour decode converted afterwards
    assert not np.array_equal(grey, cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("reading", [RGB, GRAY])
@pytest.mark.parametrize("turns", [0, 1, 3])
def test_resize_on_the_decoded_uint8_image_then_rotation(jpeg, reading, turns):
    """SuperGlue's reader: resize to (640, 480), then np.rot90; ``resize`` names the returned size."""
    flag = cv2.IMREAD_GRAYSCALE if reading == GRAY else cv2.IMREAD_COLOR
    decoded = cv2.imread(str(jpeg), flag)
    decoded = decoded if decoded.ndim == 2 else decoded[..., ::-1]
    expected = np.rot90(cv2.resize(decoded, (640, 480)), k=turns)
    size = (480, 640) if turns % 2 else (640, 480)
    out = read_image(jpeg, size, turns, reading)
    assert out.shape[:2] == (size[1], size[0])
    np.testing.assert_array_equal(out, expected)


def test_images_in_memory_take_the_methods_form():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    grey = as_reading(rgb, GRAY)
    np.testing.assert_array_equal(grey, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert as_reading(grey, GRAY) is grey and as_reading(rgb, RGB) is rgb
    back = as_reading(grey, RGB)
    assert back.shape == (5, 7, 3) and all(np.array_equal(back[..., c], grey) for c in range(3))
    same = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(as_reading(same, GRAY), grey)  # R = G = B stays exactly that grey
    with pytest.raises(ValueError, match="reading mode"):
        ImageReading("bgr")


def test_the_harness_reads_in_the_methods_form(jpeg):
    camera = Camera.pinhole(500.0, 500.0, 320.0, 240.0, 640, 480)
    sample = PairSample("p", "s", jpeg, jpeg, camera, camera, np.eye(4), resize0=(640, 480), resize1=(640, 480))
    superglue, sift = METHODS.get("superglue")(), METHODS.get("sift")()
    assert superglue.image_reading == GRAY and METHODS.get("loftr")().image_reading == GRAY
    assert sift.image_reading == RGB and METHODS.get("lightglue")().image_reading == RGB
    assert [im.shape for im in _pair_images(sample, superglue)] == [(480, 640)] * 2
    assert [im.shape for im in _pair_images(sample, sift)] == [(480, 640, 3)] * 2


def test_the_reading_is_in_the_cache_key():
    sift = METHODS.get("sift")

    class GreySift(sift):
        image_reading = GRAY

    assert GreySift().cache_key() != sift().cache_key()
    assert GreySift().conf == sift().conf


def test_a_colour_method_takes_grey_images():
    image = np.random.default_rng(1).integers(0, 256, (64, 80), dtype=np.uint8)
    res = METHODS.get("sift")().match(image, image)
    assert res.kpts0.shape == res.kpts1.shape
    with pytest.raises(ValueError, match=r"\(H, W\) grey"):
        METHODS.get("sift")().match(image[..., None], image)
