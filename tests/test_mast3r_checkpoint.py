"""Checkpoint parsing/loading for the DUSt3R/MASt3R networks: released layouts (manifests), safe parsing,
strict loading, weights resolution and the one-sentence errors."""

from __future__ import annotations

import argparse
import json
import math
import shutil

import pytest
import torch

from benchmark.errors import UserError
from methods import weights
from methods.mast3r import KNOWN_NAMES, MAST3R_DEFAULT, build_network, load_model, parse_constructor, read_checkpoint
from methods.mast3r.checkpoint import load_weights


@pytest.fixture(scope="module")
def mast3r_dir(fixtures_dir):
    return fixtures_dir / "mast3r"


@pytest.fixture(params=["mast3r", "dust3r"])
def manifest(request, mast3r_dir):
    return json.loads((mast3r_dir / f"manifest_{request.param}.json").read_text())


@pytest.mark.parametrize("form", ["constructor_as_trained", "constructor_as_instantiated_by_official_load_model"])
def test_full_size_layout_matches_manifest(manifest, form):
    net = build_network(manifest[form], device="meta")
    assert type(net).family == manifest["model_family"]
    sd = net.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in manifest["keys"]]
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert len(sd) == manifest["n_keys"]
    assert sum(p.numel() for p in net.parameters()) == manifest["total_parameters"]
    assert sum(v.numel() for v in sd.values()) == manifest["total_state_dict_numel"]
    assert not list(net.buffers())
    manyar = "ManyAR" in manifest[form]
    assert (type(net.patch_embed).__name__ == "ManyARPatchEmbed") == manyar and net.landscape_only == manyar


def test_inference_form_rewrite(manifest):
    spec = parse_constructor(manifest["constructor_as_trained"]).inference_form()
    assert spec.kwargs == parse_constructor(manifest["constructor_as_instantiated_by_official_load_model"]).kwargs


def test_parse_constructor_literals(manifest):
    spec = parse_constructor(manifest["constructor_as_trained"])
    assert spec.kwargs["depth_mode"] == ("exp", -math.inf, math.inf)
    assert spec.kwargs["img_size"] == (512, 512) and spec.kwargs["enc_embed_dim"] == 1024
    assert parse_constructor(spec.constructor()) == spec  # round trip through our own rendering
    alt = parse_constructor(
        "AsymmetricMASt3R(conf_mode=('exp', +1, float('inf')), two_confs=True, desc_conf_mode=None)"
    )
    assert alt.kwargs == {"conf_mode": ("exp", 1, math.inf), "two_confs": True, "desc_conf_mode": None}


@pytest.mark.parametrize(
    "text,match",
    [
        ("AsymmetricFoo(enc_depth=2)", "Unknown model class 'AsymmetricFoo'"),
        ("AsymmetricMASt3R(enc_depth=2, not_an_arg=3)", "Unknown argument.*not_an_arg"),
        ("AsymmetricCroCo3DStereo(two_confs=True)", "Unknown argument.*two_confs"),
        ("AsymmetricMASt3R(enc_depth=__import__('os').getpid())", "not a literal"),
        ("AsymmetricMASt3R(enc_depth=2 + 3)", "not a literal"),
        ("AsymmetricMASt3R('RoPE100')", "keyword arguments only"),
        ("AsymmetricMASt3R(**opts)", "keyword arguments only"),
        ("AsymmetricMASt3R(enc_depth=2", "not a valid call"),
        ("[1, 2]", "is not a call"),
    ],
)
def test_parse_constructor_rejects(text, match):
    with pytest.raises(UserError, match=match):
        parse_constructor(text)


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "AsymmetricMASt3R(head_type='catmlp+dpt', output_mode='pts3d+desc24', pos_embed='RoPE100', dec_depth=8)",
            "dec_depth >= 10",
        ),
        (
            "AsymmetricMASt3R(head_type='dpt', output_mode='pts3d', pos_embed='RoPE100', dec_depth=12)",
            "unsupported head_type",
        ),
        (
            "AsymmetricCroCo3DStereo(head_type='dpt', output_mode='pts3d', pos_embed='cosine', dec_depth=12)",
            "pos_embed",
        ),
        ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='Foo')", "patch_embed_cls"),
        ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', depth_mode=('exp', 0, 10))", "unbounded"),
        ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(500, 500))", "multiple of patch_size"),
    ],
)
def test_unbuildable_configurations(text, match):
    with pytest.raises(UserError, match=match):
        build_network(text, device="meta")


def test_wrong_family_is_refused(mast3r_dir):
    with pytest.raises(UserError, match="holds a DUSt3R network.*MASt3R one is needed"):
        load_model(mast3r_dir / "tiny_dust3r" / "checkpoint.pth", expect="mast3r")
    with pytest.raises(UserError, match="holds a MASt3R network.*DUSt3R one is needed"):
        load_model(mast3r_dir / "tiny_mast3r" / "checkpoint.pth", expect="dust3r")
    assert type(load_model(mast3r_dir / "tiny_dust3r" / "hf", expect="dust3r")).__name__ == "Dust3rNet"


@pytest.mark.parametrize("fraction", [0.5, 0.97, 0.0])
def test_truncated_checkpoint(mast3r_dir, tmp_path, fraction):
    data = (mast3r_dir / "tiny_mast3r" / "checkpoint.pth").read_bytes()
    bad = tmp_path / "cut.pth"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UserError, match="truncated or not a PyTorch checkpoint"):
        load_model(bad)


def test_truncated_safetensors(mast3r_dir, tmp_path):
    hf = tmp_path / "hf"
    shutil.copytree(mast3r_dir / "tiny_dust3r" / "hf", hf)
    data = (mast3r_dir / "tiny_dust3r" / "hf" / "model.safetensors").read_bytes()
    (hf / "model.safetensors").write_bytes(data[:5000])
    with pytest.raises(UserError, match="truncated or not a safetensors"):
        load_model(hf)


class NotAllowed:
    pass


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "args": NotAllowed()}, path)
    with pytest.raises(UserError, match="holds Python objects other than tensors, which are not unpickled"):
        load_model(path)


def test_namespace_checkpoint_is_read_safely(mast3r_dir):
    content = read_checkpoint(mast3r_dir / "tiny_mast3r" / "checkpoint.pth")
    assert content.spec.class_name == "AsymmetricMASt3R" and content.head_widths["dpt_feature_dim"] == 16
    assert len(content.state_dict) == 657


def test_bare_state_dict_needs_config(mast3r_dir):
    with pytest.raises(UserError, match="bare state dict: pass config="):
        load_model(mast3r_dir / "tiny_mast3r" / "state_dict.pth")


@pytest.fixture(scope="module")
def tiny_state(mast3r_dir):
    meta = json.loads((mast3r_dir / "tiny_dust3r" / "meta.json").read_text())
    sd = torch.load(mast3r_dir / "tiny_dust3r" / "state_dict.pth", weights_only=True)
    return meta, sd


def _config(meta):
    return {**parse_constructor(meta["constructor"]).kwargs, **meta["head_widths"]}


@pytest.mark.parametrize(
    "edit,match",
    [
        ("drop", "missing keys: dec_blocks2.3.norm1.weight"),
        ("extra", "unexpected keys: bogus.weight"),
        ("shape", r"shape mismatch \(file vs network\): enc_norm.bias \(47,\) vs \(48,\)"),
    ],
)
def test_strict_loading(tiny_state, edit, match):
    meta, sd = tiny_state
    sd = dict(sd)
    if edit == "drop":
        del sd["dec_blocks2.3.norm1.weight"]
    elif edit == "extra":
        sd["bogus.weight"] = torch.zeros(1)
    else:
        sd["enc_norm.bias"] = torch.zeros(47)
    net = build_network(_config(meta), device="meta")
    with pytest.raises(UserError, match=match):
        load_weights(net, sd, "tiny")


def test_wrong_head_widths_are_reported(tiny_state, mast3r_dir):
    meta, _ = tiny_state
    with pytest.raises(UserError, match="shape mismatch"):  # official widths on tiny weights
        load_model(mast3r_dir / "tiny_dust3r" / "state_dict.pth", config=meta["constructor"])
    with pytest.raises(UserError, match="Unknown head width"):
        load_model(
            mast3r_dir / "tiny_dust3r" / "state_dict.pth", config=meta["constructor"], head_widths={"dpt_width": 3}
        )


def test_config_forms_agree(tiny_state, mast3r_dir, tmp_path):
    """Constructor string + head widths, kwargs dict, config.json path: same network, same weights."""
    meta, sd = tiny_state
    path = mast3r_dir / "tiny_dust3r" / "state_dict.pth"
    (tmp_path / "config.json").write_text(json.dumps(_config(meta)))
    nets = [
        load_model(path, config=meta["constructor"], head_widths=meta["head_widths"]),
        load_model(path, config=_config(meta)),
        load_model(path, config=tmp_path / "config.json"),
        load_model(path, config=mast3r_dir / "tiny_dust3r" / "meta.json"),  # {"constructor", "head_widths"}
        load_model(path, config=argparse.Namespace(model=meta["constructor"], head_widths=meta["head_widths"])),
    ]
    for net in nets:
        assert list(net.state_dict()) == list(sd) and not net.landscape_only
        assert torch.equal(net.state_dict()["downstream_head2.dpt.head.4.bias"], sd["downstream_head2.dpt.head.4.bias"])


def test_hf_layout_restores_aliases(mast3r_dir):
    net = load_model(mast3r_dir / "tiny_dust3r" / "hf")
    sd = net.state_dict()
    scratch = net.downstream_head1.dpt.scratch
    assert scratch.layer_rn[2] is scratch.layer3_rn
    assert "downstream_head1.dpt.scratch.layer_rn.2.weight" in sd
    assert torch.equal(
        sd["downstream_head1.dpt.scratch.layer_rn.2.weight"], sd["downstream_head1.dpt.scratch.layer3_rn.weight"]
    )


def test_known_weights_registered():
    for name in KNOWN_NAMES:
        entry = weights.KNOWN[name]
        assert entry.filename == f"{name}.pth" and entry.licence.startswith("CC BY-NC-SA 4.0")
        assert entry.url.startswith("https://download.europe.naverlabs.com/ComputerVision/")
        assert entry.url.endswith(entry.filename)
    assert MAST3R_DEFAULT in KNOWN_NAMES and len(KNOWN_NAMES) == 4


def test_missing_known_weights_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_WEIGHTS", raising=False)
    monkeypatch.delenv("LOCBENCH_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(UserError, match="download https://download.europe.naverlabs.com/.*put it in"):
        load_model()  # the released MASt3R by default
    with pytest.raises(UserError, match="DUSt3R_ViTLarge_BaseDecoder_224_linear.pth"):
        load_model("naver/DUSt3R_ViTLarge_BaseDecoder_224_linear")
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nothing.pth")


def test_weights_found_through_env_folder(mast3r_dir, tmp_path, monkeypatch):
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(mast3r_dir / "tiny_mast3r" / "checkpoint.pth", folder / f"{MAST3R_DEFAULT}.pth")
    monkeypatch.setenv("LOCBENCH_WEIGHTS", str(folder))
    net = load_model(MAST3R_DEFAULT, expect="mast3r")
    assert net.enc_embed_dim == 48 and net.source.endswith(f"{MAST3R_DEFAULT}.pth")


def test_loaded_weights_are_parameters(mast3r_dir):
    net = load_model(mast3r_dir / "tiny_mast3r" / "checkpoint.pth")
    params = dict(net.named_parameters())
    assert all(isinstance(p, torch.nn.Parameter) and p.device.type == "cpu" for p in params.values())
    assert len(params) == 657 - 8  # the 8 aliased DPT convs are shared
    assert not net.training


def test_released_constructors(mast3r_dir):
    from methods.mast3r.checkpoint import RELEASED_CONSTRUCTORS

    assert set(RELEASED_CONSTRUCTORS) == set(KNOWN_NAMES)
    for fam in ("mast3r", "dust3r"):
        manifest = json.loads((mast3r_dir / f"manifest_{fam}.json").read_text())
        name = manifest["released_checkpoint"][: -len(".pth")]
        assert parse_constructor(name) == parse_constructor(manifest["constructor_as_trained"])
    for name in ("DUSt3R_ViTLarge_BaseDecoder_512_linear", "DUSt3R_ViTLarge_BaseDecoder_224_linear"):
        net = build_network(name, device="meta")
        assert net.head_type == "linear" and net.downstream_head1.proj.weight.shape == (4 * 256, 768)
        assert [k for k in net.state_dict() if k.startswith("downstream_head2")] == [
            "downstream_head2.proj.weight",
            "downstream_head2.proj.bias",
        ]
