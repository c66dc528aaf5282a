"""RRA / RTA / mAA against PoseDiffusion's metric code (fixtures/metrics/rra_rta)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from benchmark.metrics import rra as R

PER_ITEM = dict(rtol=0, atol=1e-7, equal_nan=True)
AGGREGATE_ATOL = 1e-9


@pytest.fixture(scope="module")
def rr(fixtures_dir):
    d = fixtures_dir / "metrics" / "rra_rta"
    return (
        np.load(d / "rra_inputs.npz", allow_pickle=False),
        np.load(d / "rra_outputs.npz", allow_pickle=False),
        json.loads((d / "rra_expected.json").read_text()),
    )


def _sequences(inputs, form):
    B, N = int(inputs["batch_size"]), int(inputs["frames_per_seq"])
    for b in range(B):
        s = slice(b * N, (b + 1) * N)
        if form == "w2c":
            yield (inputs["R_gt_w2c"][s], inputs["t_gt_w2c"][s], inputs["R_pred_w2c"][s], inputs["t_pred_w2c"][s])
        else:
            opencv = form == "p3d_opencv"
            yield (
                *R.from_pytorch3d(inputs["R_gt_p3d"][s], inputs["T_gt_p3d"][s], opencv),
                *R.from_pytorch3d(inputs["R_pred_p3d"][s], inputs["T_pred_p3d"][s], opencv),
            )


@pytest.mark.parametrize("form", ["w2c", "p3d_opencv", "p3d_plain"])
def test_pair_errors_every_pair(rr, form):
    inputs, outputs, _ = rr
    errs = [R.sequence_errors(*seq) for seq in _sequences(inputs, form)]
    np.testing.assert_allclose(np.concatenate([e[0] for e in errs]), outputs["rel_rangle_deg"], **PER_ITEM)
    np.testing.assert_allclose(np.concatenate([e[1] for e in errs]), outputs["rel_tangle_deg"], **PER_ITEM)


def test_pair_order_is_torch_combinations(rr):
    inputs, _, _ = rr
    N = int(inputs["frames_per_seq"])
    i, j = R.pair_indices(N)
    np.testing.assert_array_equal(i, inputs["pair_i"][: len(i)])
    np.testing.assert_array_equal(j, inputs["pair_j"][: len(j)])


def test_direct_angle_calls(rr):
    _, outputs, _ = rr
    rot = R.rotation_angle_deg(outputs["rot_a"], outputs["rot_b"])
    np.testing.assert_allclose(rot, outputs["rotation_angle_deg"], **PER_ITEM)
    assert rot[0] == pytest.approx(0.405, abs=1e-3)  # identical rotations (quirk 17)
    tr = R.translation_angle_deg(outputs["tvec_a"], outputs["tvec_b"])
    np.testing.assert_allclose(tr, outputs["translation_angle_deg"], **PER_ITEM)
    assert tr[0] < 1e-4 and tr[1] == pytest.approx(90.0)  # sign flip; zero vector (quirk 18)
    assert R.translation_angle_deg([np.nan, 0, 0], [1.0, 0, 0])[0] == pytest.approx(1e6 * 180 / np.pi)


def test_aggregates_overall_and_per_sequence(rr):
    inputs, outputs, exp = rr
    rre, rte = outputs["rel_rangle_deg"], outputs["rel_tangle_deg"]
    overall = R.accuracy_metrics(rre, rte)
    for key in ("RRA@5", "RTA@5", "RRA@15", "RTA@15", "RRA@30", "RTA@30"):
        assert overall[key] == pytest.approx(exp["overall"][key], abs=AGGREGATE_ATOL), key
    assert overall["mAA@30"] == pytest.approx(exp["overall"]["mAA@30 (calculate_auc_np, x100)"], abs=AGGREGATE_ATOL)
    torch_maa = R.accuracy_metrics(rre, rte, (), variant=R.MAA_TORCH)["mAA@30 [torch]"]
    assert torch_maa == pytest.approx(exp["overall"]["mAA@30 (calculate_auc torch/histc, x100)"], abs=AGGREGATE_ATOL)
    n = len(rre) // len(exp["per_sequence"])
    for b, ref in enumerate(exp["per_sequence"]):
        m = R.accuracy_metrics(rre[b * n : (b + 1) * n], rte[b * n : (b + 1) * n], (15,))
        for key in ("RRA@15", "RTA@15", "mAA@30"):
            assert m[key] == pytest.approx(ref[key], abs=AGGREGATE_ATOL), (b, key)
    # per-category pooling, then the unweighted mean: each sequence as its own category
    df = pd.DataFrame({"category": np.repeat(["a", "b", "c"], n), R.RRE: rre, R.RTE: rte})
    s = R.summarize_rra(df)
    assert s["RRA@15"] == pytest.approx(np.mean([r["RRA@15"] for r in exp["per_sequence"]]), abs=AGGREGATE_ATOL)
    assert s["mAA@30"] == pytest.approx(np.mean([r["mAA@30"] for r in exp["per_sequence"]]), abs=AGGREGATE_ATOL)


def test_unequal_categories_are_not_weighted():
    df = pd.DataFrame({"scene": ["a"] * 9 + ["b"], R.RRE: [1.0] * 9 + [50.0], R.RTE: [1.0] * 10})
    assert R.summarize_rra(df)["RRA@15"] == pytest.approx(50.0)  # not 90 (pooled)


def test_sequences_of_one_category_are_pooled_and_unbuilt_samples_count():
    # category x: sequences x/1 (1 pair, wrong) and x/2 (3 pairs, right); category y: one right pair
    df = pd.DataFrame(
        {
            "scene": ["x/1", "x/2", "x/2", "x/2", "y/1"],
            "category": ["x"] * 4 + ["y"],
            R.RRE: [50.0, 1.0, 1.0, 1.0, 1.0],
            R.RTE: [1.0] * 5,
        }
    )
    assert R.summarize_rra(df)["RRA@15"] == pytest.approx((75.0 + 100.0) / 2)  # per sequence it would be 66.7
    # a sample the loader could not build has no errors and no category: it fails, in its sequence's category
    bad = pd.concat(
        [df, pd.DataFrame({"scene": ["y/1"], "category": [np.nan], R.RRE: [np.nan], R.RTE: [np.nan]})],
        ignore_index=True,
    )
    assert R.summarize_rra(bad)["RRA@15"] == pytest.approx((75.0 + 50.0) / 2)


def test_maa_binning_variants():
    # numpy: an error of exactly 30 counts (last bin closed); NaN and > 30 never count
    e = np.array([0.0, 0.5, 29.5, 30.0, 31.0, np.nan])
    hist = np.array([2] + [0] * 28 + [2]) / 6
    assert R.mean_accuracy(e, e) == pytest.approx(np.mean(np.cumsum(hist)))
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    e = np.r_[rng.uniform(-1, 32, 500), np.arange(31) * 30 / 31, 30.0, np.nan]
    hist = torch.histc(torch.tensor(e), bins=31, min=0, max=30).numpy() / len(e)
    assert R.mean_accuracy(e, e, variant=R.MAA_TORCH) == pytest.approx(np.mean(np.cumsum(hist)), abs=1e-12)


def test_invariance_to_a_similarity_transform():
    rng = np.random.default_rng(2)
    Rs = Rotation.random(6, random_state=3).as_matrix()
    ts = rng.normal(size=(6, 3))
    G, s, d = Rotation.random(random_state=4).as_matrix(), 3.7, rng.normal(size=3)
    # new world y with x = G y / s + d (the scene scaled by s): R' = R G, t' = s (t + R d)
    R2 = Rs @ G
    t2 = s * (ts + np.einsum("nab,b->na", Rs, d))
    rre, rte = R.sequence_errors(Rs, ts, R2, t2)
    assert np.all(rre < 0.41) and np.all(rte < 1e-5)
