"""The mast3r / dust3r matchers: dense outputs -> matches, coarse-to-fine, pixel bookkeeping, weights, errors.

Bookkeeping (pre-processing transforms, window offsets, de-duplication) is checked exactly with a stand-in
network whose descriptors are a fixed random filter of the image: translation-equivariant, so a pair of
crops of one image shifted by a known offset must give matches at exactly that offset. The real network
path runs with the tiny checkpoint of ../shared/fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import UserError
from benchmark.io import read_image
from methods.mast3r import coarse_to_fine as c2f
from methods.mast3r.dense import descriptor_matches, pointmap_matches
from methods.mast3r.frm import fast_reciprocal_matching
from methods.mast3r.matcher import Dust3rMatcher, Mast3rMatcher

from .test_frm import smooth_descriptors

DEMO_FRAME = "datasets/demo/data/val/s90000/seq0/frame_00000.jpg"


def pixel_coded_points(h, w, offset=0.0):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return torch.from_numpy(np.stack([xs, ys, 1 + offset + 0.001 * xs], -1))[None]


# ------------------------------------------------------------------------ dense outputs -> matches
def test_descriptor_matches_drop_the_border_and_carry_confidences_and_points():
    d1, d2 = smooth_descriptors(40, 56, 40, 56, 16, seed=1)
    g = torch.Generator().manual_seed(0)
    c1, c2 = torch.rand(1, 40, 56, generator=g) + 0.5, torch.rand(1, 40, 56, generator=g) + 0.5
    res1 = {"desc": d1[None], "desc_conf": c1, "pts3d": pixel_coded_points(40, 56)}
    res2 = {"desc": d2[None], "desc_conf": c2, "pts3d_in_other_view": pixel_coded_points(40, 56, 1.0)}
    m = descriptor_matches(res1, res2, subsample=4, border=3)
    full = fast_reciprocal_matching(d1, d2, subsample=4)

    def inside(xy):
        return (xy >= 3).all(1) & (xy[:, 0] < 53) & (xy[:, 1] < 37)

    keep = inside(full.xy1) & inside(full.xy2)
    assert 0 < len(m) == keep.sum() < len(full)
    np.testing.assert_array_equal(m.xy1, full.xy1[keep])
    np.testing.assert_array_equal(m.xy2, full.xy2[keep])
    x1, y1 = m.xy1.T
    x2, y2 = m.xy2.T
    np.testing.assert_allclose(m.scores, np.minimum(c1[0, y1, x1].numpy(), c2[0, y2, x2].numpy()))
    np.testing.assert_allclose(m.pts3d1[:, :2], m.xy1)
    np.testing.assert_allclose(m.pts3d2[:, 2], 2 + 0.001 * x2, rtol=1e-6)
    strict = descriptor_matches(res1, res2, subsample=4, border=3, conf_threshold=1.0)
    assert len(strict) < len(m) and (strict.scores >= 1.0).all()
    brute = descriptor_matches(res1, res2, brute_force=True, border=3)
    assert len(brute) > len(m) and m.stats["nn_queries"] < brute.stats["nn_queries"]


def test_pointmap_matches_find_the_pixels_showing_the_same_3d_point():
    h, w, dx, dy = 30, 40, 5, 3
    pts1 = pixel_coded_points(h, w)
    pts2 = pixel_coded_points(h, w)
    pts2[..., 0] += dx  # pixel (x, y) of view 2 sees the point of pixel (x + dx, y + dy) of view 1
    pts2[..., 1] += dy
    pts2[..., 2] = 1 + 0.001 * pts2[..., 0]
    conf1, conf2 = torch.full((1, h, w), 5.0), torch.full((1, h, w), 5.0)
    conf2[0, :, :10] = 2.0  # below the threshold: no matches there
    m = pointmap_matches(
        {"pts3d": pts1, "conf": conf1}, {"pts3d_in_other_view": pts2, "conf": conf2}, conf_threshold=3.0
    )
    np.testing.assert_array_equal(m.xy1, m.xy2 + [dx, dy])
    assert (m.xy2[:, 0] >= 10).all() and len(m) == (w - dx - 10) * (h - dy)
    assert (m.scores == 5.0).all()
    none = pointmap_matches(
        {"pts3d": pts1, "conf": conf1}, {"pts3d_in_other_view": pts2, "conf": conf2}, conf_threshold=9.0
    )
    assert len(none) == 0


# ------------------------------------------------------------------------ coarse-to-fine pieces
@pytest.mark.parametrize(
    "width,height", [(1600, 1200), (1200, 1600), (1600, 1067), (517, 333), (300, 200), (2000, 500), (16, 16)]
)
def test_windows_cover_the_image_with_the_requested_overlap(width, height):
    windows = c2f.window_grid(width, height, 512, 0.5)
    covered = np.zeros((height, width), bool)
    for win in windows:
        assert 0 <= win.x0 < win.x1 <= width and 0 <= win.y0 < win.y1 <= height
        assert max(win.x1 - win.x0, win.y1 - win.y0) <= 512
        if width >= 16 and height >= 16:
            assert (win.x1 - win.x0) % 16 == 0 and (win.y1 - win.y0) % 16 == 0
        covered[win.y0 : win.y1, win.x0 : win.x1] = True
    assert covered.all()
    xs = sorted({w.x0 for w in windows})
    size = windows[0].x1 - windows[0].x0
    assert all(b - a <= size * 0.5 + 1 for a, b in zip(xs, xs[1:]))


def test_greedy_window_pairs_cover_the_coarse_matches():
    wins = c2f.window_grid(1024, 768, 512, 0.5)  # 3 x 3 windows of 512 x 384
    rng = np.random.default_rng(0)
    k0 = rng.uniform([0, 0], [1023, 767], (400, 2))
    k1 = k0 * 0.5 + [100, 80]  # image 1 sees all of image 0 at half the size: everything in a few windows
    chosen = c2f.select_window_pairs(k0, k1, wins, wins, min_matches=5, max_pairs=16)
    covered = np.zeros(len(k0), bool)
    for a, b, gain in chosen:
        new = wins[a].contains(k0) & wins[b].contains(k1) & ~covered
        assert new.sum() == gain >= 5
        covered |= new
    gains = [g for _, _, g in chosen]
    assert gains == sorted(gains, reverse=True) and covered.mean() > 0.95
    assert c2f.select_window_pairs(k0[:3], k1[:3], wins, wins, min_matches=5) == []


def test_deduplicate_keeps_the_best_match_per_pixel_of_each_image():
    k0 = np.array([[10, 10], [10.2, 9.9], [20, 20], [30, 30], [40, 40]])
    k1 = np.array([[5, 5], [6, 6], [7, 7], [7.1, 7.2], [8, 8]])
    scores = np.array([1.0, 2.0, 1.0, 3.0, 1.0])
    np.testing.assert_array_equal(c2f.deduplicate(k0, k1, scores), [1, 3, 4])


# ------------------------------------------------------------------------ the matcher, stand-in network
class ShiftEquivariantNet(torch.nn.Module):
    """Descriptors = a fixed random 7x7 filter bank of the image (unit norm); 3D = (x, y, 1) per pixel."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(24, 3, 7, 7, generator=torch.Generator().manual_seed(0)))

    def forward(self, view1, view2):
        out = []
        for view in (view1, view2):
            img = view["img"]
            desc = F.normalize(F.conv2d(img, self.weight, padding=3), dim=1).permute(0, 2, 3, 1)
            b, h, w, _ = desc.shape
            pts = pixel_coded_points(h, w).expand(b, h, w, 3)
            ones = torch.full((b, h, w), 2.0)
            out.append({"desc": desc, "desc_conf": ones, "conf": ones, "pts3d": pts})
        out[1]["pts3d_in_other_view"] = out[1].pop("pts3d")
        return out


def stand_in(conf):
    m = Mast3rMatcher({"device": "cpu", **conf})
    m.model, m._autocast, m._loaded = ShiftEquivariantNet().eval(), None, True
    return m


@pytest.fixture(scope="module")
def shifted_crops():
    image = read_image(DEMO_FRAME)  # 480 x 360 (H x W) rendered scene
    dx, dy = 20, 10
    return image[0:320, 0:240].copy(), image[dy : dy + 320, dx : dx + 240].copy(), np.array([dx, dy])


def test_single_scale_keypoints_are_in_original_pixels(shifted_crops):
    a, b, shift = shifted_crops
    m = stand_in({"size": 512}).match(a, b)  # both upscaled 1.6x: the 32 x 16 px shift stays exact
    err = np.abs(m.kpts1 + shift - m.kpts0).max(1)
    assert len(m) > 300 and np.mean(err < 1e-6) > 0.95
    assert m.pts3d0.shape == (len(m), 3) and {"forward", "reciprocal", "match"} <= set(m.timings)


def test_coarse_to_fine_matches_at_full_resolution(shifted_crops, monkeypatch):
    a, b, shift = shifted_crops
    chosen = []
    select = c2f.select_window_pairs
    monkeypatch.setattr(c2f, "select_window_pairs", lambda *args: chosen.append(select(*args)) or chosen[-1])
    conf = {"size": 128, "coarse_to_fine": {"enabled": True, "window": 128, "min_matches": 5}}
    coarse = stand_in({"size": 128}).match(a, b)
    fine = stand_in(conf).match(a, b)
    err = np.abs(fine.kpts1 + shift - fine.kpts0).max(1)
    assert np.mean(err < 1e-6) > 0.95
    assert len(fine) > 3 * len(coarse)  # full resolution: many more matches than at 128 px
    for k, (h, w) in ((fine.kpts0, a.shape[:2]), (fine.kpts1, b.shape[:2])):
        assert (k >= 0).all() and (k[:, 0] <= w - 1).all() and (k[:, 1] <= h - 1).all()
        assert len(np.unique(np.round(k), axis=0)) == len(k)  # one match per pixel
    assert len(chosen) == 1 and len(chosen[0]) >= 2 and {"coarse", "fine"} <= set(fine.timings)
    small = stand_in(conf).match(a[:100, :120].copy(), b[:100, :120].copy())  # fits one window: single scale
    assert len(chosen) == 1 and "fine" not in small.timings


def test_max_matches_keeps_the_best_scored(shifted_crops):
    a, b, _ = shifted_crops
    m = stand_in({"size": 128, "max_matches": 50}).match(a, b)
    assert len(m) == 50


# ------------------------------------------------------------------------ the matcher, tiny checkpoints
@pytest.fixture(scope="module")
def tiny_paths(fixtures_dir):
    return {f: fixtures_dir / "mast3r" / f"tiny_{f}" / "checkpoint.pth" for f in ("mast3r", "dust3r")}


def test_tiny_mast3r_matches_are_the_network_outputs_at_those_pixels(tiny_paths):
    from methods.mast3r import infer_pair, preprocess_image

    image0 = read_image(DEMO_FRAME)[100:196, 50:178].copy()  # 96 x 128
    image1 = read_image(DEMO_FRAME)[110:206, 60:188].copy()
    matcher = Mast3rMatcher({"weights": str(tiny_paths["mast3r"]), "device": "cpu", "size": 64})
    m = matcher.match(image0, image1)
    assert len(m) > 0 and m.pts3d0 is not None and m.pts3d1 is not None
    (img0, ts0, t0), (img1, ts1, t1) = preprocess_image(image0, 64), preprocess_image(image1, 64)
    res1, res2 = infer_pair(
        matcher.model, {"img": img0, "true_shape": ts0}, {"img": img1, "true_shape": ts1}, as_numpy=True
    )
    xy0 = np.rint(t0.to_network(m.kpts0)).astype(int)
    xy1 = np.rint(t1.to_network(m.kpts1)).astype(int)
    np.testing.assert_allclose(t0.to_original(xy0), m.kpts0, atol=1e-9)
    np.testing.assert_allclose(m.pts3d0, res1["pts3d"][0][xy0[:, 1], xy0[:, 0]], rtol=1e-6)
    np.testing.assert_allclose(m.pts3d1, res2["pts3d_in_other_view"][0][xy1[:, 1], xy1[:, 0]], rtol=1e-6)
    np.testing.assert_allclose(
        m.scores,
        np.minimum(res1["desc_conf"][0][xy0[:, 1], xy0[:, 0]], res2["desc_conf"][0][xy1[:, 1], xy1[:, 0]]),
        rtol=1e-6,
    )
    batch = matcher.match_batch([(image0, image1), (image1, image0)])
    np.testing.assert_array_equal(batch[0].kpts0, m.kpts0)


def test_tiny_dust3r_matches_point_maps(tiny_paths):
    image = read_image(DEMO_FRAME)[100:196, 50:178].copy()
    m = Dust3rMatcher({"weights": str(tiny_paths["dust3r"]), "device": "cpu", "size": 64, "conf_threshold": 1.0}).match(
        image, image
    )
    assert m.pts3d0 is not None and (m.scores >= 1.0).all() and len(m) >= 1


def test_wrong_family_missing_weights_and_bad_settings_are_one_sentence(tiny_paths, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="holds a DUSt3R network .* but a MASt3R one is needed"):
        Mast3rMatcher({"weights": str(tiny_paths["dust3r"]), "device": "cpu"}).load()
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_WEIGHTS", raising=False)
    with pytest.raises(
        UserError,
        match=r"MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth.*not on this "
        r"machine.*download.*put it in",
    ):
        Mast3rMatcher({}).check()
    with pytest.raises(UserError, match="does not exist"):
        Dust3rMatcher({"weights": str(tmp_path / "nope.pth")}).check()
    for conf, message in (
        ({"frm": {"max_iter": 0}}, "method.frm.max_iter must be an integer >= 1, not 0"),
        ({"size": 8}, "method.size must be an integer >= 16, not 8"),
        ({"autocast": "int8"}, "method.autocast must be one of bfloat16, bf16, float16, fp16, null"),
        ({"coarse_to_fine": {"overlap": 1.0}}, r"overlap must be a number in \[0, 1\), not 1.0"),
    ):
        with pytest.raises(UserError, match=message):
            Mast3rMatcher({"weights": str(tiny_paths["mast3r"]), **conf}).check()
