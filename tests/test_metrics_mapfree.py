"""Map-free metrics and submissions against the official scorer's outputs (fixtures/metrics/mapfree*)."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.metrics import mapfree as M
from benchmark.metrics import submission as S

PER_ITEM = dict(rtol=0, atol=1e-7, equal_nan=True)
AGGREGATE_ATOL = 1e-9
AUC_ATOL = 1e-6
PER_SCENE_KEYS = {"trans_err": M.TRANS, "rot_err": M.ROT, "reproj_err": M.VCRE, "confidence": "confidence"}


@pytest.fixture(scope="module")
def mf(fixtures_dir):
    return fixtures_dir / "metrics" / "mapfree"


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    return fixtures_dir / "metrics" / "mapfree_tiny"


def assert_official(mine: dict, expected: dict, suffix: str = ""):
    assert set(mine) == {k + suffix for k in expected}
    for key, ref in expected.items():
        tol = AUC_ATOL if key.startswith("AUC") else AGGREGATE_ATOL
        np.testing.assert_allclose(mine[key + suffix], float(ref), rtol=0, atol=tol, equal_nan=True, err_msg=key)


def test_virtual_grid_is_the_official_one(mf):
    np.testing.assert_array_equal(M.VIRTUAL_GRID, np.load(mf / "vcre_grid.npz")["eye_coords"])


def test_unit_metrics_every_case(mf):
    u = np.load(mf / "mapfree_unit_metrics.npz", allow_pickle=False)
    n = len(u["case"])

    def args(i):
        return (u["q_gt"][i], u["t_gt"][i], u["q_est"][i], u["t_est"][i], u["K"][i], u["W"][i], u["H"][i])

    errors = [M.frame_errors(*args(i)) for i in range(n)]
    for key, ref in (("trans_err", M.TRANS), ("rot_err", M.ROT), ("reproj_err", M.VCRE)):
        np.testing.assert_allclose([e[ref] for e in errors], u[key], **PER_ITEM, err_msg=key)
    cos = [M.rotation_error(u["q_gt"][i], u["q_est"][i], M.ROTATION_COS) for i in range(n)]
    np.testing.assert_allclose(cos, u["rot_err_cos"], **PER_ITEM)
    # the arcsin NaN at exactly 180 deg is part of the official output
    assert np.isnan(u["rot_err"]).any() and not np.isnan(cos).any()
    behind = u["case"] == "behind"
    assert np.all(u["reproj_err"][behind] <= np.hypot(540, 720) + 1e-9)


def test_frames_and_scorer_conversion(mf):
    fr = np.load(mf / "mapfree_frames.npz", allow_pickle=False)
    for i in range(len(fr["scene"])):
        e = M.frame_errors(
            fr["q_gt_c2w"][i],
            fr["t_gt_c2w"][i],
            fr["q_est_c2w"][i],
            fr["t_est_c2w"][i],
            fr["K"][i],
            fr["W"][i],
            fr["H"][i],
        )
        np.testing.assert_allclose(
            [e[M.TRANS], e[M.ROT], e[M.VCRE]], [fr["trans_err"][i], fr["rot_err"][i], fr["reproj_err"][i]], **PER_ITEM
        )
    # our reading + conversion of the files gives the loader's camera-to-world inputs
    submitted = S.read_submission(mf / "submission.zip")
    for scene in np.unique(fr["scene"]):
        gt = S.read_ground_truth(mf / "dataset/val" / scene)
        Ks, W, H = S.read_intrinsics_official(mf / "dataset/val" / scene)
        for i in np.flatnonzero(fr["scene"] == scene):
            n = int(fr["frame_num"][i])
            q, t = M.w2c_to_c2w(gt[n].q, gt[n].t)
            np.testing.assert_allclose(np.r_[q, t], np.r_[fr["q_gt_c2w"][i], fr["t_gt_c2w"][i]], rtol=0, atol=1e-12)
            q, t = M.w2c_to_c2w(submitted[scene][n].q, submitted[scene][n].t)
            np.testing.assert_allclose(np.r_[q, t], np.r_[fr["q_est_c2w"][i], fr["t_est_c2w"][i]], rtol=0, atol=1e-12)
            assert Ks[n].dtype == np.float32 and np.array_equal(Ks[n], fr["K"][i])
            assert (W, H) == (fr["W"][i], fr["H"][i])
            assert submitted[scene][n].confidence == fr["confidence"][i]


def test_precision_recall_cases(mf):
    cases = json.loads((mf / "mapfree_precision_recall_cases.json").read_text())
    for name, c in cases.items():
        prec, rec, auc = M.precision_recall(c["confidence"], c["tp"], c["failures"])
        np.testing.assert_allclose(prec, c["prec"], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(rec, c["rec"], rtol=0, atol=1e-12, err_msg=name)
        assert abs(auc - c["auc"]) <= AUC_ATOL, name
    ties = cases["all_equal_conf"]
    _, _, auc = M.precision_recall(ties["confidence"], ties["tp"], ties["failures"])
    assert auc == pytest.approx(np.sum(ties["tp"]) / (len(ties["tp"]) + ties["failures"]), abs=1e-6)


def test_pr_curves_of_the_fixture_submission(mf):
    exp = json.loads((mf / "mapfree_expected.json").read_text())
    pooled = {k: np.concatenate([exp["per_scene"][s][k] for s in exp["scenes"]]) for k in PER_SCENE_KEYS}
    outcomes = {
        "pose": (pooled["trans_err"] < M.T_THRESHOLD) & (pooled["rot_err"] < M.R_THRESHOLD),
        "vcre": pooled["reproj_err"] < M.VCRE_THRESHOLD,
    }
    for name, tp in outcomes.items():
        prec, rec, auc = M.precision_recall(pooled["confidence"], tp, exp["total_failures"])
        ref = exp["pr_curves"][name]
        np.testing.assert_allclose(prec, ref["prec"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(rec, ref["rec"], rtol=0, atol=1e-12)
        assert abs(auc - ref["auc"]) <= AUC_ATOL
    assert exp["config"] == {
        "t_threshold": M.T_THRESHOLD,
        "R_threshold": M.R_THRESHOLD,
        "vcre_threshold": M.VCRE_THRESHOLD,
    }


def test_score_submission_equals_official_cli(mf):
    exp = json.loads((mf / "mapfree_expected.json").read_text())
    split = mf / "dataset" / exp["split"]
    assert_official(S.score_submission(split, mf / "submission.zip"), exp["aggregate"])
    assert_official(S.score_submission(split, mf / "submission.zip"), exp["aggregate_cli"])
    scores = S.evaluate_submission(split, mf / "submission.zip")
    assert sorted(scores) == exp["scenes"]
    assert sum(s.failures for s in scores.values()) == exp["total_failures"]
    for scene, ref in exp["per_scene"].items():
        assert scores[scene].evaluated == exp["evaluated_frame_numbers"][scene]
        assert scores[scene].failures == ref["failures"]
        for key, mine in PER_SCENE_KEYS.items():
            np.testing.assert_allclose(scores[scene].errors[mine], ref[key], **PER_ITEM, err_msg=f"{scene} {key}")


def test_tiny_dataset_score_and_evaluated_frames(tiny):
    exp = json.loads((tiny / "expected.json").read_text())
    assert_official(S.score_submission(tiny / "val", tiny / "submission.zip"), exp["aggregate"])
    assert_official(S.score_submission(tiny / "val", tiny / "submission.zip"), exp["aggregate_cli"])
    scores = S.evaluate_submission(tiny / "val", tiny / "submission.zip")
    for scene, ref in exp["per_scene"].items():
        assert scores[scene].failures == ref["failures"]
        for key, mine in PER_SCENE_KEYS.items():
            np.testing.assert_allclose(scores[scene].errors[mine], ref[key], **PER_ITEM)
    frames = S.evaluated_frames(tiny / "val/s00460/poses.txt")
    assert frames == [
        ("seq1/frame_00000.jpg", 0),
        ("seq1/frame_00005.jpg", 5),
        ("seq1/frame_00010.jpg", 10),
        ("seq1/frame_00015.jpg", 15),
    ]
    assert [n for _, n in frames] == scores["s00460"].evaluated


def test_evaluated_frames_skip_by_line_not_by_number(mf):
    exp = json.loads((mf / "mapfree_expected.json").read_text())
    for scene, numbers in exp["evaluated_frame_numbers"].items():
        frames = S.evaluated_frames(mf / "dataset/val" / scene / "poses.txt")
        assert [n for _, n in frames] == numbers
        assert all(name.startswith("seq1/") for name, _ in frames)  # seq1/frame_00000 replaces the reference


def test_evaluated_frames_of_a_withheld_test_split(tmp_path):
    lines = ["seq0/frame_00000.jpg 0 0 0 0 0 0 0"] + [f"seq1/frame_{i:05d}.jpg 0 0 0 0 0 0 0" for i in range(12)]
    (tmp_path / "poses.txt").write_text("\n".join(lines) + "\n")
    assert S.evaluated_frames(tmp_path / "poses.txt") == []  # what the local scorer would see
    kept = S.evaluated_frames(tmp_path / "poses.txt", keep_zero_poses=True)
    assert [n for _, n in kept] == [0, 5, 10]


def _zip_texts(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


@pytest.mark.parametrize("which", ["mapfree", "mapfree_tiny"])
def test_rewrite_reproduces_official_files_byte_for_byte(fixtures_dir, tmp_path, which):
    src = fixtures_dir / "metrics" / which / "submission.zip"
    parsed = S.read_submission(src)
    out = S.write_submission(tmp_path / "sub.zip", {s: list(p.values()) for s, p in parsed.items()})
    assert _zip_texts(out) == _zip_texts(src)
    with zipfile.ZipFile(out) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert [p.name for p in tmp_path.iterdir()] == ["sub.zip"]  # no temporary file left behind


def test_round_trip_write_then_score(mf, tmp_path):
    exp = json.loads((mf / "mapfree_expected.json").read_text())
    parsed = S.read_submission(mf / "submission.zip")
    # plain tuples with list poses and int confidences, as a runner would hold them
    entries = {s: [(e.name, list(e.q), tuple(e.t), int(e.confidence)) for e in p.values()] for s, p in parsed.items()}
    out = S.write_submission(tmp_path / "rt.zip", entries)
    assert_official(S.score_submission(mf / "dataset/val", out), exp["aggregate"])


def _results_table(split, scores, submitted):
    rows = []
    for scene, score in scores.items():
        Ks, W, H = S.read_intrinsics_official(split / scene)
        gt = S.read_ground_truth(split / scene)
        for n in score.evaluated:
            est = submitted[scene].get(n)
            if est is None:
                rows.append(
                    {
                        "scene": scene,
                        M.TRANS: np.nan,
                        M.ROT: np.nan,
                        M.VCRE: np.nan,
                        "confidence": np.nan,
                        "status": "solver_failed",
                    }
                )
                continue
            e = M.frame_errors_w2c(gt[n].q, gt[n].t, est.q, est.t, Ks[n].astype(np.float64), W, H)
            rows.append({"scene": scene, **e, "confidence": est.confidence, "status": "ok"})
    return pd.DataFrame(rows)


def test_summarize_our_table_equals_the_scorer(mf):
    exp = json.loads((mf / "mapfree_expected.json").read_text())
    split = mf / "dataset/val"
    table = _results_table(
        split, S.evaluate_submission(split, mf / "submission.zip"), S.read_submission(mf / "submission.zip")
    )
    assert len(table) == 40 and (table["status"] != "ok").sum() == exp["total_failures"]
    assert_official(M.summarize_mapfree(table), exp["aggregate"])
    # rows in another order give the same summary (ties enter together; per-scene medians)
    assert_official(M.summarize_mapfree(table.iloc[::-1]), exp["aggregate"])


def test_summarize_nan_rotation_and_all_failures():
    ok = pd.DataFrame(
        {
            "scene": ["a", "a", "b"],
            M.TRANS: [0.1, 0.1, 0.1],
            M.ROT: [1.0, np.nan, 1.0],
            M.VCRE: [10.0, 10.0, 10.0],
            "confidence": [3.0, 2.0, 1.0],
            "status": ["ok"] * 3,
        }
    )
    s = M.summarize_mapfree(ok)
    assert np.isnan(s[M.KEY_ROT])  # np.median propagates the arcsin NaN (quirk 6)
    assert s[M.KEY_PREC_POSE] == pytest.approx(2 / 3) and s[M.KEY_PREC_VCRE] == 1.0
    failed = ok.assign(status="solver_failed", **{M.TRANS: np.nan, M.ROT: np.nan, M.VCRE: np.nan})
    s = M.summarize_mapfree(failed)
    assert np.isnan(s[M.KEY_TRANS]) and s[M.KEY_PREC_VCRE] == 0 and s[M.KEY_AUC_POSE] == 0
    assert s[M.KEY_ESTIMATES] == 0
    with pytest.raises(UserError, match="confidence"):
        M.summarize_mapfree(ok.assign(confidence=[1.0, -1.0, 2.0]))
    with pytest.raises(UserError, match="lacks the column"):
        M.summarize_mapfree(ok.drop(columns=["status"]))


# --- self-made submissions on a copy of the fixture dataset ---


@pytest.fixture()
def split(mf, tmp_path):
    dst = tmp_path / "val"
    shutil.copytree(mf / "dataset/val", dst)
    return dst


@pytest.fixture(scope="module")
def official_lines(mf):
    with zipfile.ZipFile(mf / "submission.zip") as z:
        return {n[5:-4]: z.read(n).decode().split("\n") for n in z.namelist()}


def _zip(path, files: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, lines in files.items():
            z.writestr(name, "\n".join(lines))
    return path


def test_missing_scene_file_counts_all_its_frames(split, official_lines, tmp_path):
    sub = _zip(tmp_path / "one.zip", {"pose_s00525.txt": official_lines["s00525"]})
    all_frames = len(S.read_ground_truth(split / "s00526"))
    names = [ln.split(" ")[0] for ln in (split / "s00526/poses.txt").read_text().splitlines() if ln.strip()]
    assert all_frames == len({n[-9:-4] for n in names}) > 20  # frame 0 of seq0 and seq1 counted once
    scores = S.evaluate_submission(split, sub)
    assert scores["s00526"].failures == all_frames and not scores["s00526"].frames
    out = S.score_submission(split, sub)
    assert out[M.KEY_ESTIMATES] == pytest.approx(17 / (17 + 3 + all_frames), abs=1e-12)
    corrected = S.score_submission(split, sub, corrected=True)
    assert all(k.endswith(M.CORRECTED) for k in corrected)
    assert corrected[M.KEY_ESTIMATES + M.CORRECTED] == pytest.approx(17 / (17 + 3 + 20), abs=1e-12)
    # an empty file is not a missing file: only the evaluated frames fail
    sub = _zip(tmp_path / "empty526.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": []})
    assert S.evaluate_submission(split, sub)["s00526"].failures == 20
    problems = S.validate_submission(tmp_path / "one.zip", split)
    assert any("no pose_s00526.txt" in p and "ALL frames" in p for p in problems)


def test_empty_and_unusable_submissions_give_no_metrics(split, official_lines, tmp_path):
    with pytest.raises(UserError, match="no valid pose estimate"):
        S.score_submission(split, _zip(tmp_path / "empty.zip", {}))
    broken = {f"pose_{s}.txt": [ln.replace(" ", "  ", 1) for ln in lines] for s, lines in official_lines.items()}
    with pytest.raises(UserError, match="no valid pose estimate"):
        S.score_submission(split, _zip(tmp_path / "double_space.zip", broken))
    assert any("single spaces" in p for p in S.validate_submission(tmp_path / "double_space.zip", split))
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(UserError, match="not a ZIP"):
        S.score_submission(split, tmp_path / "not.zip")


def _edit(lines, frame, fn):
    return [fn(ln) if ln.startswith(f"seq1/frame_{frame:05d}.jpg") else ln for ln in lines]


def _set_field(index, value):
    def edit(line):
        fields = line.split(" ")
        fields[index] = value
        return " ".join(fields)

    return edit


def test_negative_confidence_aborts_only_on_an_evaluated_frame(split, official_lines, tmp_path):
    evaluated = _edit(official_lines["s00526"], 6, _set_field(8, "-1.0"))
    sub = _zip(tmp_path / "neg.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": evaluated})
    with pytest.raises(UserError, match="negative confidence"):
        S.score_submission(split, sub)
    with pytest.raises(UserError, match="negative confidence"):
        S.read_submission(sub)
    assert any("negative confidence" in p for p in S.validate_submission(sub, split))
    # frame 1 is not evaluated: the official scorer never looks at its confidence
    other = _edit(official_lines["s00526"], 1, _set_field(8, "-1.0"))
    sub = _zip(tmp_path / "neg1.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": other})
    assert S.score_submission(split, sub)[M.KEY_ESTIMATES] == pytest.approx(0.85)
    assert S.read_submission(sub, check_confidence=False)["s00526"][1].confidence == -1.0


def test_lenient_line_rules(mf, split, official_lines, tmp_path):
    exp = json.loads((mf / "mapfree_expected.json").read_text())["aggregate"]

    def scale_q(ln, k=2.5):
        p = ln.split(" ")
        return " ".join([p[0], *(str(float(v) * k) for v in p[1:5]), *p[5:]])

    nonunit = [scale_q(ln) for ln in official_lines["s00526"]]
    sub = _zip(tmp_path / "nonunit.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": nonunit})
    assert_official(S.score_submission(split, sub), exp)  # quirk 5: quaternions are normalised everywhere

    first = official_lines["s00526"][0]  # frame 0, evaluated
    junk = first.split(" ")[0] + " 0 0 0 0 1 2 3 5.0"
    variants = {
        "nan": _edit(official_lines["s00526"], 0, _set_field(5, "nan")),
        "inf_confidence": _edit(official_lines["s00526"], 0, _set_field(8, "inf")),
        "comment": ["#" + first] + official_lines["s00526"][1:],
        "zero_q": [junk] + official_lines["s00526"][1:],
        "eight_fields": [first.rsplit(" ", 1)[0]] + official_lines["s00526"][1:],
    }
    for name, lines in variants.items():
        sub = _zip(tmp_path / f"{name}.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": lines})
        scores = S.evaluate_submission(split, sub)
        assert scores["s00526"].failures == 4 and 0 not in scores["s00526"].frames, name
    # a repeated frame: the last line wins (a bad pose first, the official line last)
    bad_then_good = [junk.replace(" 0 0 0 0 ", " 0 1 0 0 ")] + official_lines["s00526"]
    sub = _zip(tmp_path / "dup.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": bad_then_good})
    assert_official(S.score_submission(split, sub), exp)
    good_then_bad = official_lines["s00526"] + [junk.replace(" 0 0 0 0 ", " 0 1 0 0 ")]
    sub = _zip(tmp_path / "dup2.zip", {"pose_s00525.txt": official_lines["s00525"], "pose_s00526.txt": good_then_bad})
    assert S.score_submission(split, sub)[M.KEY_PREC_VCRE] == pytest.approx(exp[M.KEY_PREC_VCRE] - 1 / 40)
    assert any("later line wins" in p for p in S.validate_submission(sub, split))
    # CRLF line ends read like LF (universal newlines)
    sub = tmp_path / "crlf.zip"
    with zipfile.ZipFile(sub, "w") as z:
        for s, lines in official_lines.items():
            z.writestr(f"pose_{s}.txt", "\r\n".join(lines))
    assert_official(S.score_submission(split, sub), exp)


def test_write_submission_refuses_lines_the_scorer_would_drop(tmp_path):
    good = ("seq1/frame_00000.jpg", [1, 0, 0, 0], [0, 0, 0], 10)
    S.write_submission(tmp_path / "a.zip", {"s00001": [good]})
    before = (tmp_path / "a.zip").read_bytes()
    text = _zip_texts(tmp_path / "a.zip")["pose_s00001.txt"].decode()
    assert text == "seq1/frame_00000.jpg 1.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 10.0"
    bad = [
        ("seq1/frame_00001.jpg", [1, 0, 0, 0], [np.nan, 0, 0], 1),
        ("seq1/frame_00001.jpg", [0, 0, 0, 0], [0, 0, 0], 1),
        ("seq1/frame_00001.jpg", [1, 0, 0, 0], [0, 0, 0], -3),
        ("seq1/frame 00001.jpg", [1, 0, 0, 0], [0, 0, 0], 1),
        ("seq1/frame_xx.jpg", [1, 0, 0, 0], [0, 0, 0], 1),
    ]
    for entry in bad:
        with pytest.raises(UserError):
            S.write_submission(tmp_path / "a.zip", {"s00001": [good, entry]})
    assert (tmp_path / "a.zip").read_bytes() == before  # a refused write leaves the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_frame_errors_w2c_matches_matrix_form():
    rng = np.random.default_rng(0)
    from benchmark.geometry import quat_to_rotmat

    K = np.array([[500.0, 0, 270], [0, 500, 360], [0, 0, 1]])
    q_gt = rng.normal(size=4)
    q_est = q_gt + 0.05 * rng.normal(size=4)
    t_gt, t_est = rng.normal(size=3), rng.normal(size=3)
    a = M.frame_errors_w2c(q_gt, t_gt, q_est, t_est, K, 540, 720)
    b = M.frame_errors_w2c(quat_to_rotmat(q_gt), t_gt, quat_to_rotmat(q_est), t_est, K, 540, 720)
    assert a == pytest.approx(b, abs=1e-7)
    c_gt = -quat_to_rotmat(q_gt).T @ t_gt
    c_est = -quat_to_rotmat(q_est).T @ t_est
    assert a[M.TRANS] == pytest.approx(np.linalg.norm(c_gt - c_est), abs=1e-12)
    R_rel = quat_to_rotmat(q_gt) @ quat_to_rotmat(q_est).T
    angle = np.degrees(np.arccos(np.clip((np.trace(R_rel) - 1) / 2, -1, 1)))
    assert a[M.ROT] == pytest.approx(angle, abs=1e-6)
    assert M.frame_errors_w2c(q_gt, t_gt, q_gt, t_gt, K, 540, 720)[M.VCRE] == pytest.approx(0, abs=1e-9)
