"""The official DUSt3R/MASt3R image pre-processing (../shared/fixtures/mast3r/loader, exact) and the
pixel mapping between network and original images."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.errors import UserError
from methods.mast3r import load_images, preprocess_image
from methods.mast3r.images import ImageTransform


@pytest.fixture(scope="module")
def loader_dir(fixtures_dir):
    return fixtures_dir / "mast3r" / "loader"


@pytest.fixture(scope="module")
def results(loader_dir):
    return json.loads((loader_dir / "loader_results.json").read_text())


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(t.numpy(), dtype=np.float32).tobytes()).hexdigest()


def test_every_case_is_bit_exact(results, loader_dir):
    cases = {k: v for k, v in results.items() if "__" in k}
    assert len(cases) == 52
    for key, exp in cases.items():
        name = key.split("__", 1)[1]
        (out,) = load_images([str(loader_dir / "inputs" / f"{name}.png")], verbose=False, **exp["kwargs"])
        assert list(out["img"].shape) == exp["img_shape"] and out["img"].dtype == torch.float32, key
        assert isinstance(out["true_shape"], np.ndarray) and out["true_shape"].dtype == np.int32, key
        assert out["true_shape"].tolist() == exp["true_shape"], key
        assert (out["idx"], out["instance"]) == (exp["idx"], exp["instance"]), key
        assert _sha(out["img"]) == exp["sha256_float32"], key
        for c, y, x, v in exp["probe_c_y_x_value"]:
            assert out["img"][0, c, y, x].item() == np.float32(v), key
        if exp["expected_png"]:
            u8 = torch.from_numpy(np.array(Image.open(loader_dir / exp["expected_png"]))).permute(2, 0, 1)[None]
            assert torch.equal(out["img"], (u8.float() / 255 - 0.5) / 0.5), key


def test_folder_mode(results, loader_dir, tmp_path):
    exp = results["folder_mode_s224_order"]
    folder = tmp_path / "imgs"
    shutil.copytree(loader_dir / "inputs", folder)
    (folder / "notes.txt").write_text("not an image")
    (folder / "z_upper.PNG").write_bytes((folder / "a_land_640x480.png").read_bytes())
    out = load_images(str(folder), size=224, verbose=False)
    assert [o["idx"] for o in out] == exp["idx"] + [13]
    assert [o["instance"] for o in out] == exp["instance"] + ["13"]
    assert [_sha(o["img"]) for o in out[:13]] == exp["sha256_float32"]
    assert _sha(out[13]["img"]) == exp["sha256_float32"][0]  # upper-case extension accepted
    with pytest.raises(UserError, match="No images"):
        load_images(str(tmp_path), size=512, verbose=False)


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 100, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "rot.jpg", exif=exif)
    (out,) = load_images([str(tmp_path / "rot.jpg")], size=512, verbose=False)
    assert out["true_shape"].tolist() == [[512, 192]]  # portrait after rotation: 100x40 -> 512x205 -> crop 192


def test_in_memory_preprocessing_equals_loader(results, loader_dir):
    for key, exp in results.items():
        if "__" not in key or not key.startswith(("s512__", "s224__", "s512_squareok__")):
            continue
        name = key.split("__", 1)[1]
        rgb = np.array(Image.open(loader_dir / "inputs" / f"{name}.png").convert("RGB"))
        img, true_shape, tf = preprocess_image(rgb, **exp["kwargs"])
        assert _sha(img) == exp["sha256_float32"], key
        assert true_shape.tolist() == exp["true_shape"] and true_shape.dtype == np.int32
        assert tf.network_size == (img.shape[3], img.shape[2]) and tf.original_size == (rgb.shape[1], rgb.shape[0])


def test_transform_of_known_cases():
    rgb = np.zeros((500, 500, 3), np.uint8)  # square -> 512x512 -> 4:3 crop of the middle
    _, shape, tf = preprocess_image(rgb, 512)
    assert shape.tolist() == [[384, 512]] and tf.resized_size == (512, 512) and tf.crop_offset == (0, 64)
    np.testing.assert_allclose(
        tf.to_original([[0, 0], [511, 383]]),
        [[0.5 * 500 / 512 - 0.5, 64.5 * 500 / 512 - 0.5], [511.5 * 500 / 512 - 0.5, 447.5 * 500 / 512 - 0.5]],
    )
    _, _, tf = preprocess_image(np.zeros((480, 640, 3), np.uint8), 224)  # 299x224, square crop at x 37
    assert tf.resized_size == (299, 224) and tf.crop_offset == (37, 0) and tf.network_size == (224, 224)
    pts = np.random.default_rng(1).uniform(-1, 300, (50, 2))
    np.testing.assert_allclose(tf.to_network(tf.to_original(pts)), pts, atol=1e-9)
    assert isinstance(tf, ImageTransform)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((10, 10), np.float32))


def _blob(h, w, cx, cy, sigma):
    y, x = np.mgrid[0:h, 0:w]
    g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return np.repeat((g * 250).round().astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize(
    "wh,size,centre,sigma",
    [
        ((333, 517), 512, (100.3, 250.7), 4.0),  # shrink (Lanczos), odd sizes, horizontal crop
        ((640, 480), 224, (401.6, 233.2), 6.0),  # 224 rule: short side, square crop
        ((45, 37), 512, (20.4, 16.8), 1.5),  # enlarge (bicubic), crop both ways
    ],
)
def test_mapping_finds_the_blob(wh, size, centre, sigma):
    """A Gaussian blob drawn at known original coordinates is found, after the pre-processing, at a
    network position that maps back onto those coordinates (OpenCV pixel-centre convention)."""
    img, _, tf = preprocess_image(_blob(wh[1], wh[0], *centre, sigma), size)
    net = (img[0, 0].numpy() + 1) / 2
    net = np.where(net > 0.02, net, 0)
    y, x = np.mgrid[0 : net.shape[0], 0 : net.shape[1]]
    found = np.array([(net * x).sum(), (net * y).sum()]) / net.sum()
    np.testing.assert_allclose(tf.to_original(found), centre, atol=0.08)
    np.testing.assert_allclose(tf.to_network(centre), found, atol=0.08 / tf.scale.min())
