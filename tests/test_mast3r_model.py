"""Our DUSt3R/MASt3R networks against the official code's outputs (../shared/fixtures/mast3r/tiny_*),
plus consistency checks for sizes/orientations the fixtures do not cover."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from methods.mast3r import build_network, load_model
from methods.mast3r.blocks import RoPE2D, attention_impl

# README tolerances
OUT_TOL = dict(atol=1e-5, rtol=1e-5)
DESC_TOL = dict(atol=5e-6, rtol=0)
MID_TOL = dict(atol=2e-5, rtol=1e-5)
FAMILIES = ("tiny_mast3r", "tiny_dust3r")


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    out = {}
    for fam in FAMILIES:
        root = fixtures_dir / "mast3r" / fam
        meta = json.loads((root / "meta.json").read_text())
        out[fam] = dict(
            root=root, meta=meta, io=dict(np.load(root / "io.npz")), manyar=dict(np.load(root / "io_manyar.npz"))
        )
    return out


def _views(io, suffix=""):
    return [
        dict(img=torch.from_numpy(io[f"img{i}{suffix}"]), true_shape=torch.from_numpy(io[f"true_shape{i}{suffix}"]))
        for i in (1, 2)
    ]


def _close(got, want, tol, what):
    got = got.detach().numpy() if torch.is_tensor(got) else np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.abs(got.astype(np.float64) - want).max()
    assert np.allclose(got, want, **tol), f"{what}: max abs diff {err}"
    return err


def _check_outputs(res1, res2, io, prefix1="out1_", prefix2="out2_"):
    for i, res in ((1, res1), (2, res2)):
        prefix = prefix1 if i == 1 else prefix2
        keys = [k[len(prefix) :] for k in io if k.startswith(prefix)]
        assert keys and set(keys) <= set(res), f"view {i}: {sorted(res)} lacks some of {keys}"
        for key in keys:
            _close(res[key], io[prefix + key], DESC_TOL if key == "desc" else OUT_TOL, f"view {i} {key}")


def _record(model):
    """Capture the intermediates stored in io.npz with forward hooks, named as in the fixture."""
    rec, hooks = {}, []

    def keep(name, fn=lambda out: out):
        def hook(_mod, _inp, out):
            rec.setdefault(name, []).append(fn(out))

        return hook

    hooks.append(model.patch_embed.register_forward_hook(keep("patch_embed")))
    for i, blk in enumerate(model.enc_blocks):
        hooks.append(blk.register_forward_hook(keep(f"enc_block{i}")))
    hooks.append(model.enc_norm.register_forward_hook(keep("enc_norm")))
    hooks.append(model.decoder_embed.register_forward_hook(keep("decoder_embed")))
    hooks.append(model.dec_norm.register_forward_hook(keep("dec_norm")))
    for v, blocks in ((1, model.dec_blocks), (2, model.dec_blocks2)):
        for i, blk in enumerate(blocks):
            hooks.append(blk.register_forward_hook(keep(f"v{v}_dec_block{i}")))
    for v in (1, 2):
        head = getattr(model, f"downstream_head{v}")
        dpt = head.dpt
        for k in range(4):
            hooks.append(dpt.act_postprocess[k].register_forward_hook(keep(f"v{v}_head_act{k}")))
            hooks.append(dpt.scratch.layer_rn[k].register_forward_hook(keep(f"v{v}_head_rn{k}")))
            fusion = getattr(dpt.scratch, f"refinenet{k + 1}")
            hooks.append(fusion.register_forward_hook(keep(f"v{v}_head_refinenet{k + 1}")))
        hooks.append(dpt.register_forward_hook(keep(f"v{v}_head_dpt_out")))
        if hasattr(head, "head_local_features"):
            mlp = head.head_local_features
            cat_in = rec.setdefault(f"v{v}_head_cat_in", [])
            hooks.append(mlp.register_forward_pre_hook(lambda _m, inp, store=cat_in: store.append(inp[0])))
            hooks.append(mlp.register_forward_hook(keep(f"v{v}_head_mlp_out")))
        head.raw = _recording(head.raw, rec.setdefault(f"v{v}_head_raw", []))  # input of the activations
    return rec, hooks


def _recording(fn, store):
    def wrapped(*args):
        store.append(fn(*args))
        return store[-1]

    return wrapped


def _split_views(rec):
    """Shared modules ran once on the 2-item encoder batch, or once per view: name them per view."""
    out = {}
    for name, calls in rec.items():
        if name.startswith("v"):
            assert len(calls) == 1, name
            out[name] = calls[0]
        elif name == "patch_embed":
            ((x, pos),) = calls
            out.update(
                v1_patch_embed_x=x[:1], v2_patch_embed_x=x[1:], v1_patch_embed_pos=pos[:1], v2_patch_embed_pos=pos[1:]
            )
        elif len(calls) == 1:  # encoder ran on the stacked views
            out[f"v1_{name}"], out[f"v2_{name}"] = calls[0][:1], calls[0][1:]
        else:  # decoder_embed / dec_norm: once per view
            out[f"v1_{name}"], out[f"v2_{name}"] = calls
    return out


def _tiny_model(tiny, fam, how):
    root, meta = tiny[fam]["root"], tiny[fam]["meta"]
    if how == "checkpoint":
        return load_model(root / "checkpoint.pth")
    if how == "state_dict":
        return load_model(root / "state_dict.pth", config=meta["constructor"], head_widths=meta["head_widths"])
    return load_model(root / "hf")


CASES = [(f, h) for f in FAMILIES for h in ("checkpoint", "state_dict")] + [("tiny_dust3r", "hf")]


@pytest.mark.parametrize("fam,how", CASES)
def test_tiny_fixture_outputs(tiny, fam, how):
    model = _tiny_model(tiny, fam, how)
    assert not model.training and type(model).family == fam.split("_")[1]
    io = tiny[fam]["io"]
    with torch.inference_mode():
        res1, res2 = model(*_views(io))
    assert "pts3d_in_other_view" in res2 and "pts3d" not in res2
    _check_outputs(res1, res2, io)
    if fam == "tiny_mast3r":
        assert res1["desc"].shape == (1, 48, 64, 24)
        torch.testing.assert_close(res1["desc"].norm(dim=-1), torch.ones(1, 48, 64))


@pytest.mark.parametrize("fam", FAMILIES)
def test_tiny_fixture_intermediates(tiny, fam):
    model = _tiny_model(tiny, fam, "checkpoint")
    io = tiny[fam]["io"]
    rec, hooks = _record(model)
    with torch.inference_mode():
        model(*_views(io))
    for h in hooks:
        h.remove()
    got = _split_views(rec)
    stored = [k for k in io if k.startswith("v")]
    assert len(stored) > 40 and set(stored) <= set(got), sorted(set(stored) - set(got))
    for key in stored:
        if key.endswith("_pos"):
            assert torch.equal(got[key], torch.from_numpy(io[key])), key
        else:
            _close(got[key], io[key], MID_TOL, key)


def test_rope_matches_fixture(tiny):
    io = tiny["tiny_mast3r"]["io"]
    x, pos = torch.from_numpy(io["rope_in"]), torch.from_numpy(io["rope_pos"])
    out = RoPE2D(100).apply(x, RoPE2D(100).tables(pos, x.shape[-1]))
    _close(out, io["rope_out"], dict(atol=1e-6, rtol=1e-6), "rope")
    with pytest.raises(ValueError, match="divisible by 4"):
        RoPE2D(100).tables(pos, 18)


@pytest.mark.parametrize("fam", FAMILIES)
def test_explicit_attention_matches_fixture(tiny, fam):
    """The explicit softmax path (benchmark baseline) is the official computation."""
    model = _tiny_model(tiny, fam, "checkpoint")
    with torch.inference_mode(), attention_impl("explicit"):
        res1, res2 = model(*_views(tiny[fam]["io"]))
    _check_outputs(res1, res2, tiny[fam]["io"])


@pytest.mark.parametrize("fam", FAMILIES)
def test_manyar_fixture(tiny, fam):
    """As-trained form (ManyAR_PatchEmbed, landscape_only=True) on a mixed landscape/portrait batch."""
    io, meta = tiny[fam]["manyar"], tiny[fam]["meta"]
    constructor = bytes(io["constructor_bytes"]).decode()
    model = load_model(
        tiny[fam]["root"] / "state_dict.pth", config=constructor, head_widths=meta["head_widths"], inference_form=False
    )
    assert type(model.patch_embed).__name__ == "ManyARPatchEmbed" and model.landscape_only
    rec, hooks = {}, [model.patch_embed.register_forward_hook(lambda m, i, o: rec.update(x=o[0], pos=o[1]))]
    with torch.inference_mode():
        res1, res2 = model(*_views(io))
    hooks[0].remove()
    _close(rec["x"], io["patch_embed_x"], MID_TOL, "patch_embed_x")
    assert torch.equal(rec["pos"], torch.from_numpy(io["patch_embed_pos"]))
    _check_outputs(res1, res2, io)


# ------------------------------------------------------------------------------------------------
# cases the fixtures do not hold: derived from the README's semantics
@pytest.fixture(scope="module")
def mast3r_pair(tiny):
    """The tiny MASt3R weights in both forms: inference (native orientation) and as trained (ManyAR)."""
    meta = tiny["tiny_mast3r"]["meta"]
    path = tiny["tiny_mast3r"]["root"] / "state_dict.pth"
    native = load_model(path, config=meta["constructor"], head_widths=meta["head_widths"])
    trained = load_model(
        path,
        config=bytes(tiny["tiny_mast3r"]["manyar"]["constructor_bytes"]).decode(),
        head_widths=meta["head_widths"],
        inference_form=False,
    )
    return native, trained


def _rand_views(shapes, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    return [
        dict(img=torch.rand(batch, 3, h, w, generator=g) * 2 - 1, true_shape=torch.tensor([[h, w]] * batch))
        for h, w in shapes
    ]


def _run(model, v1, v2):
    with torch.inference_mode():
        return model(v1, v2)


def _assert_same(a: dict, b: dict, atol=2e-6, transpose=False):
    assert set(a) == set(b)
    for k in a:
        want = b[k].swapaxes(1, 2) if transpose else b[k]
        torch.testing.assert_close(a[k], want, atol=atol, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("hw", [(64, 48), (80, 32), (112, 80), (80, 16)])
def test_portrait_manyar_equals_native_transposed(mast3r_pair, hw):
    """Portrait pair: native run (landscape_only=False) == ManyAR run on the transposed tensors, transposed."""
    native, trained = mast3r_pair
    v1, v2 = _rand_views([hw, hw], seed=hw[0])
    n1, n2 = _run(native, v1, v2)
    assert n1["pts3d"].shape == (1, *hw, 3) and n2["desc"].shape == (1, *hw, 24)
    t = [dict(img=v["img"].transpose(-1, -2), true_shape=v["true_shape"]) for v in (v1, v2)]
    t1, t2 = _run(trained, *t)
    assert t1["pts3d"].shape == (1, hw[1], hw[0], 3)
    _assert_same(t1, n1, transpose=True)
    _assert_same(t2, n2, transpose=True)


@pytest.mark.parametrize("land", [(48, 64), (32, 80), (80, 112), (16, 80)])
def test_mixed_orientation_batch_manyar(mast3r_pair, land):
    """ManyAR batch [landscape, portrait] == per-item native runs (portrait result transposed)."""
    native, trained = mast3r_pair
    port = land[::-1]
    (a1, a2), (b1, b2) = _rand_views([land, land], seed=1), _rand_views([port, port], seed=2)
    batch = [
        dict(img=torch.cat((a["img"], b["img"].transpose(-1, -2))), true_shape=torch.tensor([land, port]))
        for a, b in ((a1, b1), (a2, b2))
    ]
    r1, r2 = _run(trained, *batch)
    (la1, la2), (po1, po2) = _run(native, a1, a2), _run(native, b1, b2)
    for res, land_res, port_res in ((r1, la1, po1), (r2, la2, po2)):
        _assert_same({k: v[:1] for k, v in res.items()}, land_res)
        _assert_same({k: v[1:] for k, v in res.items()}, port_res, transpose=True)


def test_batch_of_two_equals_two_singles(mast3r_pair):
    native, _ = mast3r_pair
    v1, v2 = _rand_views([(48, 80), (48, 80)], seed=3, batch=2)
    r1, r2 = _run(native, v1, v2)
    for i in range(2):
        s1, s2 = _run(native, *[dict(img=v["img"][i : i + 1], true_shape=v["true_shape"][i : i + 1]) for v in (v1, v2)])
        _assert_same({k: v[i : i + 1] for k, v in r1.items()}, s1)
        _assert_same({k: v[i : i + 1] for k, v in r2.items()}, s2)


def test_symmetrized_batch_equals_plain(mast3r_pair):
    """Items (A, B), (B, A) with instances: encoder runs on even items only, results unchanged."""
    native, _ = mast3r_pair
    a, b = _rand_views([(48, 64), (48, 64)], seed=4)
    v1 = dict(img=torch.cat((a["img"], b["img"])), true_shape=torch.tensor([[48, 64]] * 2), instance=["a", "b"])
    v2 = dict(img=torch.cat((b["img"], a["img"])), true_shape=torch.tensor([[48, 64]] * 2), instance=["b", "a"])
    sym = _run(native, v1, v2)
    plain = _run(native, *[{k: v[k] for k in ("img", "true_shape")} for v in (v1, v2)])
    for s, p in zip(sym, plain):
        _assert_same(s, p)


def test_different_view_sizes(mast3r_pair):
    """Views of different sizes (encoded separately, cross-attention over unequal token sets).
    With both decoders and heads made identical, the network is symmetric: res2(A, B) == res1(B, A)."""
    native, _ = mast3r_pair
    sym = copy.deepcopy(native)
    sym.dec_blocks2.load_state_dict(sym.dec_blocks.state_dict())
    sym.downstream_head2.load_state_dict(sym.downstream_head1.state_dict())
    a, b = _rand_views([(48, 64), (80, 48)], seed=5)
    r1, r2 = _run(sym, a, b)
    assert r1["pts3d"].shape == (1, 48, 64, 3) and r2["pts3d_in_other_view"].shape == (1, 80, 48, 3)
    s1, s2 = _run(sym, b, a)
    r2 = dict(r2, pts3d=r2.pop("pts3d_in_other_view"))
    _assert_same(r2, s1)
    # the other view matters (cross-attention is wired): changing B changes view A's output
    c = _rand_views([(80, 48)], seed=6)[0]
    assert not torch.allclose(_run(sym, a, c)[0]["pts3d"], r1["pts3d"])


def test_cross_attention_positions_naive():
    """Decoder block vs a naive transcription of the README (table-lookup RoPE, explicit softmax) with
    query and memory on different grids, so swapped positions would show."""
    from methods.mast3r.blocks import DecoderBlock, grid_positions

    torch.manual_seed(0)
    blk = DecoderBlock(24, 2).eval()
    for p in blk.parameters():
        p.data.normal_(0, 0.3)
    x, y = torch.randn(1, 12, 24), torch.randn(1, 20, 24)
    px, py = grid_positions(1, 3, 4, "cpu"), grid_positions(1, 4, 5, "cpu")

    def rope(t, pos):  # t (B, H, N, hd)
        d = t.shape[-1] // 2
        inv = 1.0 / (100 ** (torch.arange(0, d, 2).float() / d))
        out = []
        for axis, u in enumerate(t.split(d, dim=-1)):
            ang = pos[:, :, axis].float()[..., None] * inv
            ang = torch.cat((ang, ang), -1)[:, None]
            rot = torch.cat((-u[..., d // 2 :], u[..., : d // 2]), -1)
            out.append(u * ang.cos() + rot * ang.sin())
        return torch.cat(out, -1)

    def heads(t):
        return t.reshape(t.shape[0], t.shape[1], 2, 12).transpose(1, 2)

    def attend(q, k, v, proj):
        w = (q @ k.transpose(-1, -2) * 12**-0.5).softmax(-1)
        return proj((w @ v).transpose(1, 2).reshape(q.shape[0], -1, 24))

    with torch.no_grad():
        h = blk.norm1(x)
        q, k, v = blk.attn.qkv(h).reshape(1, 12, 3, 2, 12).permute(2, 0, 3, 1, 4)
        ref = x + attend(rope(q, px), rope(k, px), v, blk.attn.proj)
        yn = blk.norm_y(y)
        ca = blk.cross_attn
        ref = ref + attend(
            rope(heads(ca.projq(blk.norm2(ref))), px), rope(heads(ca.projk(yn)), py), heads(ca.projv(yn)), ca.proj
        )
        ref = ref + blk.mlp(blk.norm3(ref))
        rt = RoPE2D(100)
        got = blk(x, y, rt.tables(px, 12), rt.tables(py, 12))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_true_shape_defaults_and_checks(mast3r_pair):
    native, _ = mast3r_pair
    v1, v2 = _rand_views([(48, 64), (48, 64)], seed=7)
    with_shape = _run(native, v1, v2)
    without = _run(native, {"img": v1["img"]}, {"img": v2["img"]})
    _assert_same(with_shape[0], without[0], atol=0)
    mixed = [dict(img=torch.cat((v["img"], v["img"])), true_shape=torch.tensor([[48, 64], [64, 48]])) for v in (v1, v2)]
    with pytest.raises(ValueError, match="same true_shape"):
        _run(native, *mixed)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        _run(native, *_rand_views([(40, 64), (40, 64)]))


def test_dust3r_linear_head_shapes():
    """The 224/512 *_linear DUSt3R heads: one Linear per token, pixel-shuffled (no fixture: shape and
    orientation checks only)."""
    net = build_network(
        "AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', "
        "output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
        "enc_embed_dim=32, enc_depth=1, enc_num_heads=2, dec_embed_dim=16, dec_depth=2, "
        "dec_num_heads=1, landscape_only=False)"
    )
    assert list(net.downstream_head1.state_dict()) == ["proj.weight", "proj.bias"]
    assert net.downstream_head1.proj.weight.shape == (4 * 256, 16)
    r1, r2 = _run(net, *_rand_views([(32, 48), (32, 48)]))
    assert r1["pts3d"].shape == (1, 32, 48, 3) and r2["conf"].shape == (1, 32, 48)
    assert bool((r1["conf"] >= 1).all())
    # pixel shuffle: output pixel (16 i + a, 16 j + b) of channel c is feature c*256 + a*16 + b of token (i, j)
    tokens = [torch.randn(1, 6, 16)]
    raw = net.downstream_head1.raw(tokens, (32, 48))
    feat = net.downstream_head1.proj(tokens[0])
    torch.testing.assert_close(raw[0, 1, 16 + 5, 32 + 7], feat[0, 1 * 3 + 2, 1 * 256 + 5 * 16 + 7])
