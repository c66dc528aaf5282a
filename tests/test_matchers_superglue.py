"""SuperPoint + SuperGlue (our implementation): the released weight layout, the detector's pieces, the
optimal-transport assignment, and the ``superglue`` matcher end to end with weights saved in the
released layout (no real SuperPoint/SuperGlue weights are reachable here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import UserError
from methods.superglue.matcher import SuperGlueMatcher
from methods.superglue.superglue import (
    MultiHeadedAttention,
    SuperGlue,
    log_optimal_transport,
    mutual_matches,
    normalize_keypoints,
)
from methods.superglue.superpoint import SuperPoint, non_maximum_suppression, sample_descriptors


# --------------------------------------------------------------------------- released layouts, as data
def published_superpoint_layout() -> dict:
    """superpoint_v1.pth: 3x3 convs (out, in) and the two 1x1 heads."""
    convs = {
        "conv1a": (64, 1, 3),
        "conv1b": (64, 64, 3),
        "conv2a": (64, 64, 3),
        "conv2b": (64, 64, 3),
        "conv3a": (128, 64, 3),
        "conv3b": (128, 128, 3),
        "conv4a": (128, 128, 3),
        "conv4b": (128, 128, 3),
        "convPa": (256, 128, 3),
        "convPb": (65, 256, 1),
        "convDa": (256, 128, 3),
        "convDb": (256, 256, 1),
    }
    out = {}
    for name, (cout, cin, k) in convs.items():
        out[f"{name}.weight"] = (cout, cin, k, k)
        out[f"{name}.bias"] = (cout,)
    return out


def published_superglue_layout() -> dict:
    """superglue_{indoor,outdoor}.pth: keypoint encoder MLP [3, 32, 64, 128, 256, 256] (Conv1d + BN + ReLU),
    18 attentional layers (4 heads: merge + 3 projections, MLP [512, 512, 256]), final projection, bin score."""
    out = {}

    def conv(prefix, cout, cin):
        out[f"{prefix}.weight"] = (cout, cin, 1)
        out[f"{prefix}.bias"] = (cout,)

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{k}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    widths = [3, 32, 64, 128, 256, 256]
    for i in range(5):  # Sequential indices: conv 0, 3, 6, 9, 12; BN 1, 4, 7, 10
        conv(f"kenc.encoder.{3 * i}", widths[i + 1], widths[i])
        if i < 4:
            bn(f"kenc.encoder.{3 * i + 1}", widths[i + 1])
    for n in range(18):
        conv(f"gnn.layers.{n}.attn.merge", 256, 256)
        for k in range(3):
            conv(f"gnn.layers.{n}.attn.proj.{k}", 256, 256)
        conv(f"gnn.layers.{n}.mlp.0", 512, 512)
        bn(f"gnn.layers.{n}.mlp.1", 512)
        conv(f"gnn.layers.{n}.mlp.3", 256, 512)
    conv("final_proj", 256, 256)
    out["bin_score"] = ()
    return out


def test_superpoint_matches_released_layout():
    net = SuperPoint()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == published_superpoint_layout()
    assert sum(p.numel() for p in net.parameters()) == 1_300_865  # "1.3M" in the paper


def test_superglue_matches_released_layout():
    net = SuperGlue()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == published_superglue_layout()
    assert sum(p.numel() for p in net.parameters()) == 12_023_297  # "about 12M"


# --------------------------------------------------------------------------- SuperPoint pieces
def test_nms_keeps_window_maxima_and_restores_freed_ones():
    x = torch.zeros(1, 9, 9)
    x[0, 4, 4] = 1.0  # strongest
    x[0, 4, 6] = 0.9  # suppressed by the first (inside its window)
    x[0, 4, 8] = 0.8  # its window holds only the suppressed 0.9: restored in the extra rounds
    x[0, 0, 0] = 0.5  # isolated maximum
    out = non_maximum_suppression(x, radius=2)
    kept = {tuple(map(int, p)) for p in torch.nonzero(out[0])}
    assert kept == {(4, 4), (4, 8), (0, 0)}
    assert out[0, 4, 8] == pytest.approx(0.8)


def _net_with_one_hot_cell(dy: int, dx: int) -> SuperPoint:
    """Keypoint logits independent of the image, peaking at pixel (dy, dx) of every 8x8 cell."""
    net = SuperPoint(nms_radius=2, keypoint_threshold=0.5, remove_borders=8)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.convPb.bias.fill_(-10.0)
        net.convPb.bias[dy * 8 + dx] = 10.0
    return net.eval()


def test_superpoint_heatmap_cell_layout_and_xy_order():
    net = _net_with_one_hot_cell(dy=2, dx=5)
    with torch.inference_mode():
        (feats,) = net(torch.rand(1, 1, 48, 64))
    xy = {tuple(map(float, p)) for p in feats["keypoints"]}
    # cells start every 8 px; border 8 keeps x in [8, 56) and y in [8, 40)
    expected = {(8 * j + 5.0, 8 * i + 2.0) for i in range(6) for j in range(8)}
    expected = {(x, y) for x, y in expected if 8 <= x < 56 and 8 <= y < 40}
    assert xy == expected
    assert feats["descriptors"].shape == (len(expected), 256)
    assert torch.allclose(feats["scores"], torch.ones(len(expected)), atol=1e-6)


def test_superpoint_keeps_top_k_by_score():
    net = SuperPoint(max_keypoints=10).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        net.convPb.weight.mul_(30)
    with torch.inference_mode():
        (feats,) = net(torch.rand(1, 1, 64, 64))
    assert len(feats["keypoints"]) == 10
    assert torch.all(feats["scores"][:-1] >= feats["scores"][1:])


def test_descriptor_sampling_follows_released_pixel_mapping():
    h, w = 3, 5
    jj, ii = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="xy")
    dense = torch.stack([jj, ii, torch.full_like(jj, 100.0)])  # channels: column, row, constant
    # released mapping: pixel 3.5 -> first cell, pixel 8 * w - 1 -> last cell, linear in between
    xy = torch.tensor([[3.5, 3.5], [8 * w - 1.0, 8 * h - 1.0], [(3.5 + 8 * w - 1) / 2, 3.5]])
    d = sample_descriptors(xy, dense)
    col, row = d[:, 0] / d[:, 2] * 100, d[:, 1] / d[:, 2] * 100
    assert torch.allclose(col, torch.tensor([0.0, w - 1.0, (w - 1) / 2]), atol=1e-4)
    assert torch.allclose(row, torch.tensor([0.0, h - 1.0, 0.0]), atol=1e-4)
    assert torch.allclose(d.norm(dim=1), torch.ones(3))


def test_superpoint_is_shift_equivariant_on_a_real_image():
    """A shift by whole cells moves keypoints and descriptors with it, away from the padded borders."""
    from skimage import data

    torch.manual_seed(0)
    net = SuperPoint(keypoint_threshold=0.001)
    with torch.no_grad():
        net.convPb.weight.mul_(30)  # random weights give flat heatmaps otherwise
    image = torch.from_numpy(data.camera().astype(np.float32) / 255)
    a, b = image[100:292, 100:324], image[116:308, 132:356]  # b(x, y) = a(x + 32, y + 16)
    with torch.inference_mode():
        fa, fb = net.eval()(torch.stack([a, b])[:, None])
    margin = 56  # beyond the receptive field's reach of the zero padding (about 53 px)
    low, high = torch.tensor([32.0 + margin, 16.0 + margin]), torch.tensor([224.0 - margin, 192.0 - margin])

    def inner(f, off):
        xy = f["keypoints"] + torch.tensor(off, dtype=torch.float32)
        keep = torch.all((xy >= low) & (xy < high), dim=1)
        return {tuple(map(float, p)): d for p, d in zip(xy[keep], f["descriptors"][keep])}

    ka, kb = inner(fa, (0, 0)), inner(fb, (32, 16))
    assert len(ka) >= 5 and set(ka) == set(kb)
    assert all(torch.allclose(ka[k], kb[k], atol=1e-4) for k in ka)


# --------------------------------------------------------------------------- SuperGlue pieces
def test_attention_heads_are_interleaved_channels():
    torch.manual_seed(0)
    att = MultiHeadedAttention(dim=8, heads=2).eval()
    x, src = torch.randn(1, 8, 5), torch.randn(1, 8, 7)
    q, k, v = (p(t)[0] for p, t in zip(att.proj, (x, src, src)))
    merged = torch.zeros(8, 5)
    for h in range(2):
        ch = torch.arange(h, 8, 2)  # head h owns channels h, h + heads, ...
        w = torch.softmax(q[ch].T @ k[ch] / 2.0, dim=1)  # scaled by sqrt(4 channels per head)
        merged[ch] = (w @ v[ch].T).T
    expected = att.merge(merged[None])
    with torch.no_grad():
        assert torch.allclose(att(x, src, src), expected, atol=1e-5)


def test_sinkhorn_meets_the_marginals():
    torch.manual_seed(0)
    m, n = 6, 9
    z = log_optimal_transport(torch.randn(2, m, n), torch.tensor(0.3), iterations=300)
    p = (z - np.log(m + n)).exp()
    assert torch.allclose(p.sum(2)[:, :m], torch.full((2, m), 1.0 / (m + n)), atol=1e-4)
    assert torch.allclose(p.sum(2)[:, m], torch.full((2,), n / (m + n)), atol=1e-4)
    assert torch.allclose(p.sum(1)[:, :n], torch.full((2, n), 1.0 / (m + n)), atol=1e-5)
    assert torch.allclose(p.sum(1)[:, n], torch.full((2,), m / (m + n)), atol=1e-5)


def test_mutual_matches_threshold_and_dustbin():
    probs = torch.tensor(
        [
            [0.90, 0.05, 0.0, 0.05],
            [0.10, 0.30, 0.5, 0.10],  # best column 2, but column 2 prefers row 2
            [0.00, 0.10, 0.8, 0.10],
            [0.05, 0.15, 0.1, 0.70],
        ]
    )  # last row/column: dustbins
    matches, prob = mutual_matches(probs.log()[None], threshold=0.2)
    assert matches[0].tolist() == [0, -1, 2]
    assert prob[0, 0] == pytest.approx(0.9) and prob[0, 1] == 0
    matches, _ = mutual_matches(probs.log()[None], threshold=0.85)
    assert matches[0].tolist() == [0, -1, -1]


def test_keypoint_normalisation():
    k = torch.tensor([[[320.0, 240.0], [640.0, 0.0]]])
    assert torch.allclose(normalize_keypoints(k, 640, 480), torch.tensor([[[0.0, 0.0], [320 / 448, -240 / 448]]]))


# --------------------------------------------------------------------------- the matcher, end to end
def _released_layout_files(tmp_path, superglue: SuperGlue | None = None):
    torch.manual_seed(0)
    sp, sg = tmp_path / "superpoint_v1.pth", tmp_path / "superglue_indoor.pth"
    torch.save(SuperPoint().state_dict(), sp)
    torch.save((superglue or SuperGlue()).state_dict(), sg)
    return sp, sg


def _descriptor_matching_superglue() -> SuperGlue:
    """Messages and position encoding switched off: SuperGlue reduces to Sinkhorn on descriptor similarity."""
    net = SuperGlue()
    with torch.no_grad():
        net.kenc.encoder[-1].weight.zero_()
        for layer in net.gnn.layers:
            layer.mlp[-1].weight.zero_()
        net.final_proj.weight.copy_(torch.eye(256)[:, :, None] * 16)
        net.final_proj.bias.zero_()
    return net


def _dot_images(shift=(32, 16), size=(160, 128), count=40, seed=0, dot=2):
    """Two RGB images with dot x dot squares of distinct colours; image1 is image0 moved by ``shift`` (x, y)."""
    rng = np.random.default_rng(seed)
    w, h = size
    cells = rng.choice((w // 2 - 24) * (h // 2 - 16), size=count, replace=False)
    xs, ys = 2 * (cells % (w // 2 - 24)) + 4, 2 * (cells // (w // 2 - 24)) + 4
    colours = rng.choice(np.arange(30, 250), size=count, replace=False)
    im0, im1 = np.zeros((h, w, 3), np.uint8), np.zeros((h, w, 3), np.uint8)
    for x, y, c in zip(xs, ys, colours):
        im0[y : y + dot, x : x + dot] = c
        im1[y + shift[1] : y + shift[1] + dot, x + shift[0] : x + shift[0] + dot] = c
    return im0, im1


def _dot_extractor(dim=256):
    """Keypoints at lit pixels, descriptors a fixed random unit vector per colour: matches are unambiguous."""
    table = torch.nn.functional.normalize(torch.randn(256, dim, generator=torch.Generator().manual_seed(1)), dim=1)

    def extract(batch):
        out = []
        for image in batch:
            level = torch.round(image[0] * 255).long()
            yx = torch.nonzero(level > 0)
            out.append(
                {
                    "keypoints": yx.flip(1).float(),
                    "scores": torch.ones(len(yx)),
                    "descriptors": table[level[yx[:, 0], yx[:, 1]]],
                }
            )
        return out

    return extract


@pytest.mark.parametrize("resize_max", [None, 80])
def test_superglue_matcher_end_to_end(tmp_path, resize_max):
    sp, sg = _released_layout_files(tmp_path, _descriptor_matching_superglue())
    m = SuperGlueMatcher({"weights": str(sg), "detector_weights": str(sp), "device": "cpu", "resize_max": resize_max})
    m.load()
    m._extractor = _dot_extractor()
    # 2x2 dots shrink to one pixel at half size, mapped back by pure factors as match_pairs.py does (it
    # scales K by them): network pixel i is reported at 2 i, the dot's first pixel
    im0, im1 = _dot_images(dot=1 if resize_max is None else 2)
    res = m.match(im0, im1)
    assert res.num_keypoints0 == res.num_keypoints1 == 40
    assert len(res) >= 36
    assert np.allclose(res.kpts1 - res.kpts0, [32, 16])
    assert np.all((res.scores > 0.2) & (res.scores <= 1.0))
    if resize_max:
        assert np.allclose(res.kpts0 % 2, 0.0)  # the dots sit at even coordinates
    batch = m.match_batch([(im0, im1), (im1, im0)])
    assert np.allclose(batch[0].kpts0, res.kpts0) and np.allclose(batch[1].kpts1 - batch[1].kpts0, [-32, -16])


def test_superglue_matcher_runs_superpoint_with_released_layout(tmp_path):
    from skimage import data

    sp, sg = _released_layout_files(tmp_path)
    m = SuperGlueMatcher(
        {
            "weights": str(sg),
            "detector_weights": str(sp),
            "max_keypoints": 64,
            "device": "cpu",
            "detection_threshold": 0.0,
        }
    )
    image = data.astronaut()[:96, :128]
    res = m.match(image, image[:, ::-1].copy())
    assert res.num_keypoints0 == 64 and res.kpts0.dtype == np.float64
    assert len(res.kpts0) == len(res.kpts1) == len(res.scores)
    assert np.all((res.kpts0 >= 0) & (res.kpts0 <= [127, 95]))
    assert len(m.weights_fingerprint()) == 64 and m.cache_key() != SuperGlueMatcher({"weights": "outdoor"}).cache_key()


def test_superglue_weight_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_WEIGHTS", raising=False)
    monkeypatch.delenv("LOCBENCH_ALLOW_DOWNLOAD", raising=False)
    sp, _ = _released_layout_files(tmp_path)
    with pytest.raises(UserError, match=r"superglue_outdoor\.pth.*non-commercial.*SuperGluePretrainedNetwork"):
        SuperGlueMatcher({"weights": "outdoor", "detector_weights": str(sp)}).check()
    with pytest.raises(UserError, match=r"superpoint_v1\.pth.*non-commercial"):
        SuperGlueMatcher({"weights": str(sp)}).check()
    bad = tmp_path / "not_superglue.pth"
    torch.save(SuperPoint().state_dict(), bad)
    m = SuperGlueMatcher({"weights": str(bad), "detector_weights": str(sp), "device": "cpu"})
    with pytest.raises(UserError, match="does not fit the network"):
        m.load()
    with pytest.raises(UserError, match="sinkhorn_iterations"):
        SuperGlueMatcher({"weights": str(bad), "detector_weights": str(sp), "sinkhorn_iterations": 0}).check()
