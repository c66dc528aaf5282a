"""MegaDepth-1500 loader on the rendered miniature (datasets/megadepth_mini.py) in LoFTR's and glue-factory's
layouts: the protocols' resize rules, camera conventions checked on exactly projected points, malformed
input, and SIFT end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.metrics.relpose import EPIPOLAR_THRESHOLD_MEGADEPTH, epipolar_errors
from benchmark.pipeline import in_camera_pixels
from benchmark.types import InvalidSample, Matches, PairSample
from datasets import megadepth_mini
from datasets.megadepth import MegaDepth1500, resized_size

LOFTR = {
    "list_format": "loftr",
    "resize_rule": "loftr",
    "resize": 840,
    "divisible_by": 8,
    "intrinsics_convention": "opencv",
    "keypoints_in": "original",
}
GLUEFACTORY = {
    "list_format": "gluefactory",
    "resize_rule": "gluefactory",
    "resize": 1600,
    "divisible_by": None,
    "intrinsics_convention": "colmap",
    "keypoints_in": "resized",
}


@pytest.fixture(scope="module")
def rendered():
    return {scene: megadepth_mini.render_scene(scene) for scene in megadepth_mini.SCENES}


@pytest.fixture(scope="module")
def layouts(rendered, tmp_path_factory):
    loftr, gluefactory = tmp_path_factory.mktemp("md_loftr"), tmp_path_factory.mktemp("md_gf")
    megadepth_mini.write_loftr(loftr, rendered)
    megadepth_mini.write_gluefactory(gluefactory, rendered)
    return {"loftr": loftr, "gluefactory": gluefactory}


def _all(ds):
    return [s for scene in ds.scenes() for s in ds.samples(scene)]


# ------------------------------------------------------------------------ resize rules
@pytest.mark.parametrize(
    "size,loftr,gluefactory",
    [
        ((1600, 1066), (840, 560), (1600, 1066)),
        ((1066, 1600), (560, 840), (1066, 1600)),
        ((1600, 900), (840, 472), (1600, 900)),  # LoFTR: round(472.5) is 472 (half to even)
        ((1599, 1067), (840, 560), (1600, 1067)),  # round(560.5...) = 561, floored to 560
        ((517, 333), (840, 536), (1600, 1030)),  # upscaled; 541 floored to 536; int(1030.56)
        ((333, 517), (536, 840), (1030, 1600)),
        ((640, 427), (840, 560), (1600, 1067)),  # glue-factory: int(1600 / (640 / 427)) = int(1067.5)
        ((1200, 1200), (840, 840), (1600, 1600)),
    ],
)
def test_resize_rules_of_loftr_and_gluefactory(size, loftr, gluefactory):
    assert resized_size(*size, "loftr", 840, 8) == loftr
    assert resized_size(*size, "gluefactory", 1600, None) == gluefactory
    assert resized_size(*size, None, 840, None) == size


# ------------------------------------------------------------------------ the layouts
def test_every_layout_gives_the_same_pairs_cameras_and_poses(layouts):
    loftr = _all(MegaDepth1500({"root": str(layouts["loftr"]), **GLUEFACTORY, "list_format": "loftr"}))
    calibrated = _all(MegaDepth1500({"root": str(layouts["gluefactory"]), **GLUEFACTORY}))
    views = _all(
        MegaDepth1500({"root": str(layouts["gluefactory"]), **GLUEFACTORY, "list_format": "gluefactory_views"})
    )
    assert len(loftr) == len(calibrated) == len(views) == 8
    assert all(isinstance(s, PairSample) for s in loftr + calibrated + views)
    by_id = [{s.id: s for s in samples} for samples in (loftr, calibrated, views)]
    assert set(by_id[0]) == set(by_id[1]) == set(by_id[2])
    assert {s.scene for s in loftr} == {"0015", "0022"} and "0015/00015000_0015-00015001_0015" in by_id[0]
    for sid, a in by_id[0].items():
        for other in by_id[1:]:
            b = other[sid]
            np.testing.assert_allclose(b.T_0to1, a.T_0to1, atol=1e-9)
            for ca, cb in ((a.camera0, b.camera0), (a.camera1, b.camera1)):
                assert (ca.width, ca.height) == (cb.width, cb.height)
                np.testing.assert_allclose(cb.K, ca.K, atol=1e-9)
            assert (a.resize0, a.resize1) == (b.resize0, b.resize1) and a.image0.read_bytes() == b.image0.read_bytes()
    assert str(loftr[0].image0).replace("\\", "/").count("Undistorted_SfM/00") == 1
    assert MegaDepth1500({"root": str(layouts["loftr"]), **LOFTR}).problems() == []


@pytest.mark.parametrize("settings", ["loftr", "gluefactory"])
def test_cameras_fit_exactly_projected_points_after_the_resize(layouts, rendered, settings):
    """Project 3D points with the true (COLMAP) cameras, resize the keypoints as the protocol's matcher
    sees them, and check the sample's cameras, pose and keypoint scaling give zero epipolar error."""
    conf = LOFTR if settings == "loftr" else {**GLUEFACTORY, "list_format": "loftr", "resize": 500}
    truth = {name: (K, T) for views in rendered.values() for name, _, K, T in views}
    rng = np.random.default_rng(0)
    for s in _all(MegaDepth1500({"root": str(layouts["loftr"]), **conf})):
        (K0, T0), (K1, T1) = (truth[s.extra[f"name{i}"].rsplit("/", 1)[1]] for i in (0, 1))
        X = np.c_[rng.uniform(-2, 2, 50), rng.uniform(-1, 1, 50), rng.uniform(5, 15, 50)]  # camera 0 frame
        X1 = X @ (T1 @ np.linalg.inv(T0))[:3, :3].T + (T1 @ np.linalg.inv(T0))[:3, 3]
        kpts = []
        for pts, K, cam, resize in ((X, K0, s.camera0, s.resize0), (X1, K1, s.camera1, s.resize1)):
            xy = (pts @ K.T)[:, :2] / pts[:, 2:]  # the files' K: pixel-corner coordinates
            w, h = (K[0, 2] * 2, K[1, 2] * 2)
            new = np.array(resize, float) / (w, h) if resize else np.ones(2)
            if settings == "loftr":  # LoFTR takes K as OpenCV pixels and scales keypoints by pure factors
                kpts.append(xy * new)
            else:  # corner coordinates scale exactly; OpenCV pixels are corner - 0.5
                kpts.append(xy * new - 0.5)
                assert (cam.width, cam.height) == tuple(resize or (w, h))
        m = in_camera_pixels(s, Matches(kpts[0], kpts[1], np.ones(50)))
        errors = epipolar_errors(m.kpts0, m.kpts1, s.T_0to1, s.camera0.K, s.camera1.K)
        assert errors.max() < 1e-15, (s.id, errors.max())
        if settings == "loftr":
            assert s.resize0 is not None and (s.camera0.width, s.camera0.height) == (K0[0, 2] * 2, K0[1, 2] * 2)
        assert s.extra["epipolar_threshold"] == EPIPOLAR_THRESHOLD_MEGADEPTH
    # the protocol's epipolar precision uses MegaDepth's threshold (1e-4), not ScanNet's (5e-4)
    from benchmark.protocols import get_protocol
    from benchmark.types import Estimate

    noisy = Matches(m.kpts0, m.kpts1 + rng.normal(0, 3.0, m.kpts1.shape), np.ones(50))
    errors = epipolar_errors(noisy.kpts0, noisy.kpts1, s.T_0to1, s.camera0.K, s.camera1.K)
    assert np.mean(errors < 1e-4) < np.mean(errors < 5e-4)
    columns = get_protocol("relpose").sample_errors(s, Estimate.failure("solver_failed", "test"), noisy)
    assert columns["epi_precision"] == np.mean(errors < EPIPOLAR_THRESHOLD_MEGADEPTH)


# ------------------------------------------------------------------------ bad input
def test_malformed_lines_become_invalid_samples_and_problems(layouts, tmp_path):
    root = tmp_path / "gf"
    shutil.copytree(layouts["gluefactory"], root)
    lines = (root / "pairs_calibrated.txt").read_text().splitlines()
    fields = lines[1].split()
    lines[1] = " ".join(fields[:-1])  # 31 fields
    bad_K = fields[:2] + ["0"] + fields[3:]  # fx = 0
    lines[2] = " ".join(bad_K)
    bad_R = fields[:20] + ["5"] + fields[21:]  # not a rotation
    lines[3] = " ".join(bad_R)
    lines[4] = " ".join(lines[4].split()[:5] + ["x"] + lines[4].split()[6:])
    (root / "pairs_calibrated.txt").write_text("\n".join(lines) + "\n")
    (root / "images" / "0022" / "00022004_0022.jpg").unlink()
    ds = MegaDepth1500({"root": str(root), **GLUEFACTORY})
    samples = _all(ds)
    invalid = {s.id: s.reason for s in samples if isinstance(s, InvalidSample)}
    assert len(samples) == 8 and len(invalid) == 5
    reasons = " | ".join(invalid.values())
    for text in (
        "line 2: expected 32 fields",
        "line 3: an intrinsics matrix needs",
        "line 4: the rotation is not",
        "line 5: K0, K1 and the pose must be numbers",
        "00022004_0022.jpg is missing",
    ):
        assert text in reasons
    assert "0015/pairs_calibrated.txt:2" in invalid
    problems = ds.problems()
    assert len(problems) == 5 and any("00022004_0022.jpg is missing" in p for p in problems)


def test_views_and_scene_info_problems(layouts, tmp_path):
    root = tmp_path / "gf"
    shutil.copytree(layouts["gluefactory"], root)
    views = (root / "views.txt").read_text().splitlines()
    views[0] = views[0].replace(" PINHOLE ", " SIMPLE_RADIAL ")
    del views[1]
    (root / "views.txt").write_text("\n".join(views) + "\n")
    ds = MegaDepth1500({"root": str(root), **GLUEFACTORY, "list_format": "gluefactory_views"})
    reasons = " | ".join(s.reason for s in _all(ds) if isinstance(s, InvalidSample))
    assert "MODEL PINHOLE or SIMPLE_PINHOLE" in reasons and "has no line for 0015/00015001_0015.jpg" in reasons

    info = layouts["loftr"] / "megadepth_test_1500_scene_info"
    arrays = np.load(info / "0015_0.3_0.5.npz", allow_pickle=True)  # our own file: safe to unpickle
    pairs = arrays["pair_infos"].copy()
    pairs[0] = ((0, 5), 0.4, np.zeros((0, 4)))  # image 5 has no path
    bad = tmp_path / "0015_broken.npz"  # the scene is the file name's first part, as LoFTR's scene ids
    np.savez(bad, **{**{k: arrays[k] for k in arrays.files}, "pair_infos": pairs})
    samples = _all(MegaDepth1500({"root": str(layouts["loftr"]), **LOFTR, "pairs": str(bad)}))
    assert [type(s) for s in samples] == [InvalidSample, PairSample]
    assert "0015_broken.npz pair 0: image 5 has no path" in samples[0].reason
    assert samples[0].id == "0015/0015_broken.npz:0"


def test_unreadable_lists_and_settings_are_one_sentence(layouts, tmp_path):
    root = str(layouts["loftr"])
    with pytest.raises(UserError, match="pair list .* is missing; pass --set dataset.pairs"):
        MegaDepth1500({"root": root, **GLUEFACTORY}).check()
    no_pairs = tmp_path / "x.npz"
    np.savez(no_pairs, image_paths=np.array(["a.jpg"]))
    with pytest.raises(UserError, match="lacks the arrays intrinsics, poses, pair_infos"):
        MegaDepth1500({"root": root, **LOFTR, "pairs": str(no_pairs)}).check()
    evil = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = print  # a pickled function: never called, refused
    np.savez(evil, image_paths=payload, intrinsics=payload, poses=payload, pair_infos=payload)
    with pytest.raises(UserError, match="cannot be read as LoFTR's scene-info .npz .*builtins.print"):
        MegaDepth1500({"root": root, **LOFTR, "pairs": str(evil)}).check()
    listed = tmp_path / "list.txt"
    listed.write_text("0099_0.1_0.3\n")
    with pytest.raises(UserError, match="0099_0.1_0.3.npz is missing"):
        MegaDepth1500({"root": root, **LOFTR, "pairs": str(listed)}).check()
    for key, value in (
        ("list_format", "hpatches"),
        ("resize_rule", "short"),
        ("resize", 0),
        ("intrinsics_convention", "pixel"),
        ("keypoints_in", "network"),
    ):
        with pytest.raises(UserError, match=f"dataset.{key} must be"):
            MegaDepth1500({"root": root, **LOFTR, key: value}).check()


# ------------------------------------------------------------------------ end to end
def test_sift_runs_the_miniature_end_to_end(layouts, tmp_path, capsys):
    import pandas as pd

    from benchmark.cli import main

    root = layouts["loftr"]
    assert main(["datasets", "check", "--dataset", "megadepth1500_mini", "--set", f"dataset.root={root}"]) == 0
    assert "OK (2 scenes, 8 samples, every image decoded)" in capsys.readouterr().out
    out = tmp_path / "run"
    main(
        [
            "run",
            "--method",
            "sift",
            "--dataset",
            "megadepth1500_mini",
            "--set",
            f"dataset.root={root}",
            "--set",
            "dataset.resize=400",
            "--set",
            "run.plots=false",
            "--set",
            "run.bootstrap=0",
            "--set",
            f"run.cache_dir={tmp_path / 'cache'}",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "AUC@5" in printed and "8 samples: ok 8" in printed
    df = pd.read_parquet(out / "samples.parquet")
    assert len(df) == 8 and (df["pose_err_deg"] < 20).mean() >= 0.75  # rendered, exact poses: mostly right


def test_published_gluefactory_rows_name_estimator_threshold_and_size():
    from benchmark.config import CONFIG_DIR, load_yaml
    from benchmark.leaderboard import load_published

    data = load_yaml(CONFIG_DIR / "published" / "gluefactory_megadepth1500.yaml")
    assert data["datasets"] == ["megadepth1500_gluefactory"] and len(data["rows"]) == 6
    for row in data["rows"]:
        assert {"estimator", "threshold_px", "image_size"} <= set(row) and row["estimator"] in row["method"].lower()
        assert row["image_size"] == "long side 1600" and set(row["metrics"]) == {"AUC@5", "AUC@10", "AUC@20"}
    rows = {r["method"]: r["overall"] for r in load_published() if r["protocol"] == "relpose"}
    assert rows["SuperPoint+LightGlue (PoseLib, 2.0 px, long side 1600)"] == {
        "AUC@5": 66.8,
        "AUC@10": 79.3,
        "AUC@20": 87.9,
    }
