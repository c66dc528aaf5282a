"""The inference helpers (infer_pair / infer_pairs) on the tiny MASt3R fixture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.mast3r import infer_pair, infer_pairs, load_model, preprocess_image


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    root = fixtures_dir / "mast3r" / "tiny_mast3r"
    return load_model(root / "checkpoint.pth"), dict(np.load(root / "io.npz"))


def test_package_does_not_import_matching_modules():
    code = (
        "import sys, methods.mast3r as m; "
        "assert not [n for n in ('frm', 'c2f', 'matcher') if 'methods.mast3r.' + n in sys.modules]; "
        "assert all(callable(getattr(m, n)) for n in ('load_model', 'load_images', 'infer_pair', 'infer_pairs'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_infer_pair_from_uint8_images(tiny):
    """uint8 image -> preprocess_image -> infer_pair reproduces the official outputs (numpy out)."""
    model, io = tiny
    views = []
    for i in (1, 2):
        img, true_shape, tf = preprocess_image(io[f"img{i}_u8"], size=64)  # 64x48 is kept as is
        assert tf.crop_offset == (0, 0) and tf.resized_size == (64, 48)
        np.testing.assert_array_equal(img.numpy(), io[f"img{i}"])
        views.append(dict(img=img, true_shape=true_shape))
    res1, res2 = infer_pair(model, *views, as_numpy=True)
    assert isinstance(res1["pts3d"], np.ndarray) and res1["desc"].shape == (1, 48, 64, 24)
    np.testing.assert_allclose(res1["pts3d"], io["out1_pts3d"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(res2["pts3d_in_other_view"], io["out2_pts3d_in_other_view"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(res2["desc"], io["out2_desc"], atol=5e-6)
    assert not torch.is_inference_mode_enabled()


def test_infer_pairs_batches_like_singles(tiny):
    model, _ = tiny
    g = torch.Generator().manual_seed(0)

    def view(h, w, i):
        return dict(img=torch.rand(1, 3, h, w, generator=g) * 2 - 1, true_shape=np.int32([[h, w]]), instance=str(i))

    pairs = [
        (view(48, 64, 0), view(48, 64, 1)),
        (view(48, 64, 1), view(48, 64, 0)),
        (view(64, 48, 2), view(64, 48, 3)),
        (view(48, 64, 4), view(48, 64, 5)),
    ]
    batched = infer_pairs(model, pairs, batch_size=3)
    assert len(batched) == 4
    for (b1, b2), (v1, v2) in zip(batched, pairs):
        s1, s2 = infer_pair(model, v1, v2)
        for got, want in ((b1, s1), (b2, s2)):
            assert set(got) == set(want)
            for k in got:
                torch.testing.assert_close(got[k], want[k], atol=2e-6, rtol=1e-5)


def test_bfloat16_autocast_runs_on_the_cpu(tiny):
    """bfloat16 on the CPU changes the trunk's rounding (outputs differ a little, heads stay float32);
    float16 on the CPU is refused by the matcher with one sentence."""
    from benchmark.errors import UserError
    from methods.mast3r.matcher import Mast3rMatcher

    model, io = tiny
    views = [dict(img=torch.from_numpy(io[f"img{i}"]), true_shape=torch.tensor([[48, 64]])) for i in (1, 2)]
    fp32, _ = infer_pair(model, *views, as_numpy=True)
    bf16, _ = infer_pair(model, *views, autocast_dtype=torch.bfloat16, as_numpy=True)
    assert bf16["pts3d"].dtype == np.float32
    diff = np.abs(bf16["pts3d"] - fp32["pts3d"]).max()
    assert 0 < diff < 0.05 * np.abs(fp32["pts3d"]).max()
    with pytest.raises(UserError, match="float16 runs on CUDA only"):
        Mast3rMatcher({"weights": model.source, "device": "cpu", "autocast": "float16"}).check()
