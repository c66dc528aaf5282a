"""Aachen errors, visloc summary and submission files against DUSt3R/MASt3R and hloc (fixtures/metrics/aachen)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.metrics import aachen as A

PER_ITEM = dict(rtol=0, atol=1e-7)


@pytest.fixture(scope="module")
def ac(fixtures_dir):
    d = fixtures_dir / "metrics" / "aachen"
    return d, np.load(d / "aachen_inputs.npz", allow_pickle=False), json.loads((d / "aachen_expected.json").read_text())


@pytest.fixture(scope="module")
def errors(ac):
    _, inputs, _ = ac
    preds = [p if ok else None for p, ok in zip(inputs["pred_cam_to_world"], inputs["localized"])]
    return np.array([A.pose_error_c2w(p, g) for p, g in zip(preds, inputs["gt_cam_to_world"])])


def _expected(values):
    return np.array([float(v) for v in values])


def test_per_query_errors(ac, errors):
    _, inputs, exp = ac
    np.testing.assert_allclose(errors[:, 0], _expected(exp["trans_err_m"]), **PER_ITEM)
    np.testing.assert_allclose(errors[:, 1], _expected(exp["rot_err_deg"]), **PER_ITEM)
    assert np.all(np.isinf(errors[~inputs["localized"]]))
    # the same from world-to-camera (R, t), our convention
    w2c = []
    for pred, gt, ok in zip(inputs["pred_cam_to_world"], inputs["gt_cam_to_world"], inputs["localized"]):
        P, G = np.linalg.inv(pred) if ok else None, np.linalg.inv(gt)
        R_est, t_est = (None, None) if P is None else (P[:3, :3], P[:3, 3])
        w2c.append(A.pose_error_w2c(G[:3, :3], G[:3, 3], R_est, t_est))
    np.testing.assert_allclose(np.array(w2c), errors, rtol=0, atol=1e-9)


def _numbers(line):
    # the values after '=': two medians (repr of np.float64) then the four percentages
    return [float(v) for v in re.findall(r"=(?:np\.float64\()?([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf|nan))", line)]


def test_visloc_summary_all_and_per_condition(ac, errors):
    _, inputs, exp = ac
    line = A.format_stats("fixture", errors[:, 0], errors[:, 1])
    np.testing.assert_allclose(_numbers(line), _numbers(exp["aggregate_stats_all"]), rtol=0, atol=1e-9)
    assert line == exp["aggregate_stats_all"]
    conditions = np.array([A.query_condition(n) for n in inputs["names"]])
    for cond, ref in exp["aggregate_stats_per_condition"].items():
        mask = conditions == cond
        assert A.format_stats(cond, errors[mask, 0], errors[mask, 1]) == ref
    df = pd.DataFrame({"sample_id": inputs["names"], A.TRANS: errors[:, 0], A.ROT: errors[:, 1]})
    df.loc[~inputs["localized"], [A.TRANS, A.ROT]] = np.nan  # a failure in our table is NaN
    s = A.summarize_aachen(df)
    assert s["images"] == 40 and s["day/images"] + s["night/images"] == 40
    ref = _numbers(exp["aggregate_stats_per_condition"]["night"])
    got = [s["night/median_pos_error"], s["night/median_angular_error"]] + [
        s[f"night/{A.accuracy_key(t, r)}"] for t, r in A.THRESHOLDS
    ]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    with pytest.raises(UserError):
        A.summarize_aachen(df.drop(columns=["sample_id"]))


def test_thresholds_are_strict():
    s = A.accuracy_stats([0.25, 0.2499], [1.0, 2.0])
    assert s["acc@0.25m,2deg"] == 0.0 and s["acc@0.5m,5deg"] == 100.0
    assert A.query_condition("query/night/nexus5x/IMG_1.jpg") == "night"
    assert A.query_condition("query/day/milestone/x.jpg") == "day" and A.query_condition("db/x.jpg") is None


def _w2c_poses(inputs):
    poses = {}
    for name, pred, ok in zip(inputs["names"], inputs["pred_cam_to_world"], inputs["localized"]):
        P = np.linalg.inv(pred) if ok else None
        poses[str(name)] = None if P is None else (P[:3, :3], P[:3, 3])
    return poses


def _assert_same_poses(mine: dict, ref: dict):
    assert list(mine) == list(ref)
    for name in ref:
        (q1, t1), (q2, t2) = mine[name], ref[name]
        sign = np.sign(np.dot(q1, q2))  # q and -q are the same rotation
        np.testing.assert_allclose(sign * q1, q2, rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(t1, t2, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    "reference,prepend",
    [("dust3r_export_ltvl.txt", False), ("hloc_results.txt", False), ("hloc_results_with_camera_name.txt", True)],
)
def test_submission_writer_matches_official_files(ac, tmp_path, reference, prepend):
    d, inputs, _ = ac
    out = A.write_submission(tmp_path / "sub.txt", _w2c_poses(inputs), prepend_camera_name=prepend)
    _assert_same_poses(A.read_submission(out), A.read_submission(d / reference))
    text = out.read_text()
    assert text.endswith("\n") and text.count("\n") == 40 and "  " not in text
    assert [p.name for p in tmp_path.iterdir()] == ["sub.txt"]


def test_submission_fallback_pose_for_failed_queries(ac, tmp_path):
    _, inputs, _ = ac
    poses = _w2c_poses(inputs)
    failed = [n for n, p in poses.items() if p is None]
    fallback = {n: (np.array([0.0, 1.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0])) for n in failed}
    written = A.read_submission(A.write_submission(tmp_path / "fb.txt", poses, fallback=fallback))
    for n in failed:
        q, t = written[n.split("/")[-1]]
        assert np.array_equal(q, [0, 1, 0, 0]) and np.array_equal(t, [1, 2, 3])
    identity = A.read_submission(A.write_submission(tmp_path / "id.txt", poses))
    q, t = identity[failed[0].split("/")[-1]]
    assert np.array_equal(q, [1, 0, 0, 0]) and np.array_equal(t, [0, 0, 0])
    with pytest.raises(UserError, match="share the name"):
        A.write_submission(tmp_path / "dup.txt", {"query/day/a/x.jpg": None, "query/night/b/x.jpg": None})
