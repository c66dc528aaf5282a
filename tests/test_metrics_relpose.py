"""ScanNet-1500 relative-pose metrics against SuperGlue's and LoFTR's outputs (fixtures/metrics/scannet)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.metrics import relpose as P

PER_ITEM = dict(rtol=0, atol=1e-7, equal_nan=True)
AGGREGATE_ATOL = 1e-9


@pytest.fixture(scope="module")
def sc(fixtures_dir):
    return fixtures_dir / "metrics" / "scannet"


@pytest.fixture(scope="module")
def pose_case(sc):
    inputs = np.load(sc / "scannet_pose_inputs.npz", allow_pickle=False)
    outputs = np.load(sc / "scannet_pose_outputs.npz", allow_pickle=False)
    return inputs, outputs


def _errors(inputs, ignore_gt_t_thr=0.0):
    out = []
    for k in range(len(inputs["kind"])):
        R, t = (None, None) if inputs["failed"][k] else (inputs["R_est"][k], inputs["t_est"][k])
        out.append(P.relative_pose_error(inputs["T_0to1"][k], R, t, ignore_gt_t_thr))
    return np.array(out)


def test_pose_errors_every_pair(pose_case):
    inputs, outputs = pose_case
    errs = _errors(inputs)
    for key in ("err_t", "err_t_loftr"):
        np.testing.assert_allclose(errs[:, 0], outputs[key], **PER_ITEM, err_msg=key)
    for key in ("err_R", "err_R_loftr"):
        np.testing.assert_allclose(errs[:, 1], outputs[key], **PER_ITEM, err_msg=key)
    np.testing.assert_allclose(P.pose_error(errs[:, 0], errs[:, 1]), outputs["pose_err"], **PER_ITEM)
    np.testing.assert_allclose(_errors(inputs, 1e-4)[:, 0], outputs["err_t_loftr_ignore_gt_t_thr"], **PER_ITEM)
    flip = inputs["kind"] == "flip_t"
    assert np.all(errs[flip, 0] < 5)  # quirk 11: a reversed translation is not an error
    assert np.all(np.isinf(errs[inputs["failed"]]))


def test_pose_auc_superglue_and_loftr(sc, pose_case):
    exp = json.loads((sc / "scannet_expected.json").read_text())
    errors = pose_case[1]["pose_err"]
    np.testing.assert_allclose(P.pose_auc(errors, exp["thresholds"]), exp["auc_superglue"], rtol=0, atol=AGGREGATE_ATOL)
    np.testing.assert_allclose(
        P.pose_auc(errors, exp["extra_thresholds"]), exp["auc_superglue_extra"], rtol=0, atol=AGGREGATE_ATOL
    )
    loftr = P.pose_auc_loftr(errors)
    assert set(loftr) == set(exp["auc_loftr"])
    for key, ref in exp["auc_loftr"].items():
        assert loftr[key] == pytest.approx(ref, abs=AGGREGATE_ATOL)
    # NaN is a failure, whatever its position (LoFTR's sorted() would depend on it)
    with_nan = np.r_[errors, np.nan]
    as_inf = np.r_[errors, np.inf]
    assert P.pose_auc(with_nan) == P.pose_auc(as_inf) == P.pose_auc(with_nan[::-1])
    assert P.pose_auc_loftr(with_nan) == P.pose_auc_loftr(as_inf) == P.pose_auc_loftr(with_nan[::-1])


def _epipolar(sc, pose_case):
    ep = np.load(sc / "scannet_epipolar.npz", allow_pickle=False)
    T = pose_case[0]["T_0to1"]
    return ep, [P.epipolar_errors(ep[f"kpts0_{k}"], ep[f"kpts1_{k}"], T[k], ep["K0"], ep["K1"]) for k in range(8)]


def test_epipolar_errors_precision_and_matching_score(sc, pose_case):
    exp = json.loads((sc / "scannet_expected.json").read_text())
    ep, errs = _epipolar(sc, pose_case)
    for k, e in enumerate(errs):
        for key in ("epi_err_sg", "epi_err_loftr"):
            np.testing.assert_allclose(e, ep[f"{key}_{k}"], rtol=1e-9, atol=1e-12, err_msg=f"{key} {k}")
        ref = exp["superglue_precision_per_pair"][k]
        assert P.epipolar_precision(e) == ref["precision"]
        assert int(np.sum(e < P.EPIPOLAR_THRESHOLD)) == ref["num_correct"]
        assert P.matching_score(e, ref["num_kpts0"]) == pytest.approx(ref["matching_score"], abs=AGGREGATE_ATOL)
    assert len(errs[3]) == 0 and P.epipolar_precision(errs[3]) == 0  # no matches: counted as 0 (quirk 15)
    precisions = [P.epipolar_precision(e) for e in errs]
    scores = [P.matching_score(e, r["num_kpts0"]) for e, r in zip(errs, exp["superglue_precision_per_pair"])]
    assert np.mean(precisions) == pytest.approx(exp["superglue_mean_precision"], abs=AGGREGATE_ATOL)
    assert np.mean(scores) == pytest.approx(exp["superglue_mean_matching_score"], abs=AGGREGATE_ATOL)
    prec = P.epidist_prec(errs, (5e-4, 1e-4))
    assert set(prec) == set(exp["loftr_epidist_prec"])
    for key, ref in exp["loftr_epidist_prec"].items():
        assert prec[key] == pytest.approx(ref, abs=AGGREGATE_ATOL)


def test_loftr_aggregate_keeps_the_later_duplicate(sc, pose_case):
    exp = json.loads((sc / "scannet_expected.json").read_text())
    inputs, outputs = pose_case
    _, errs = _epipolar(sc, pose_case)
    n = len(inputs["kind"])
    identifiers = [f"pair{k}" for k in range(n)] + ["pair0"]
    R_errs = np.r_[outputs["err_R_loftr"], 0.1]
    t_errs = np.r_[outputs["err_t_loftr"], 0.1]
    epi = errs + [np.zeros(0)] * (n - 8) + [np.array([1e-5, 1e-3])]
    got = P.aggregate_metrics_loftr(identifiers, R_errs, t_errs, epi)
    assert set(got) == set(exp["loftr_aggregate_with_duplicate"])
    for key, ref in exp["loftr_aggregate_with_duplicate"].items():
        assert got[key] == pytest.approx(ref, abs=AGGREGATE_ATOL), key
    # keeping the first occurrence instead would give other numbers
    first = P.aggregate_metrics_loftr(identifiers[:n], R_errs[:n], t_errs[:n], epi[:n])
    assert first["auc@5"] != pytest.approx(got["auc@5"], abs=1e-6)


def test_summarize_relpose_and_pair_errors(sc, pose_case):
    exp = json.loads((sc / "scannet_expected.json").read_text())
    inputs, outputs = pose_case
    ep, errs = _epipolar(sc, pose_case)
    rows = []
    for k in range(len(inputs["kind"])):
        R, t = (None, None) if inputs["failed"][k] else (inputs["R_est"][k], inputs["t_est"][k])
        rows.append(P.pair_errors(inputs["T_0to1"][k], R, t))
        if k < 8:  # the epipolar columns, as the relative-pose protocol adds them
            num_kpts0 = exp["superglue_precision_per_pair"][k]["num_kpts0"]
            errs_k = P.epipolar_errors(ep[f"kpts0_{k}"], ep[f"kpts1_{k}"], inputs["T_0to1"][k], ep["K0"], ep["K1"])
            rows[-1][P.PRECISION] = P.epipolar_precision(errs_k, P.EPIPOLAR_THRESHOLD)
            rows[-1][P.MSCORE] = P.matching_score(errs_k, num_kpts0, P.EPIPOLAR_THRESHOLD)
    df = pd.DataFrame(rows)
    df.loc[inputs["failed"], [P.ERR_R, P.ERR_T]] = np.nan  # our table stores a failure as NaN
    np.testing.assert_allclose(df[P.POSE_ERR], outputs["pose_err"], **PER_ITEM)
    s = P.summarize_relpose(df)
    for t, ref in zip(exp["thresholds"], exp["auc_superglue"]):
        assert s[f"AUC@{t}"] == pytest.approx(100 * ref, abs=1e-7)
    # pairs 8.. have no precision value: they count as 0 like pairs without matches
    assert s["Prec"] == pytest.approx(100 * exp["superglue_mean_precision"] * 8 / len(df), abs=1e-7)
    only8 = P.summarize_relpose(df.iloc[:8])
    assert only8["Prec"] == pytest.approx(100 * exp["superglue_mean_precision"], abs=1e-7)
    assert only8["MScore"] == pytest.approx(100 * exp["superglue_mean_matching_score"], abs=1e-7)
    with pytest.raises(UserError):
        P.summarize_relpose(df.drop(columns=[P.ERR_R]))


def test_edge_cases():
    T = np.eye(4)
    T[:3, 3] = [1.0, 0, 0]
    err_t, err_R = P.relative_pose_error(T, np.eye(3), np.zeros(3))  # zero-length t: NaN ...
    assert np.isnan(err_t) and err_R == 0
    assert np.isinf(P.pose_error(err_t, err_R))  # ... which is a failure
    assert P.relative_pose_error(T, np.eye(3), [np.nan, 0, 0]) == (np.inf, np.inf)
    assert P.pose_auc([np.inf, np.inf]) == [0.0, 0.0, 0.0]
    assert P.pose_auc([0.0] * 4) == [1.0, 1.0, 1.0]
    # one error at half the threshold, N = 1: area of recall 0 -> 1 ramp up to T/2 then flat
    assert P.pose_auc([5.0], [10])[0] == pytest.approx(0.75)
