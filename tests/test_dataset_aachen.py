"""Aachen loader on a generated miniature (datasets/aachen_mini.py): layout, pixel conventions of the map
and cameras, ground truth, SIFT localization, malformed input; plus hloc's real retrieval list."""

import shutil

import numpy as np
import pytest

from benchmark.config import PROJECT_ROOT, load_yaml
from benchmark.errors import UserError
from benchmark.estimators import to_pycolmap_camera
from benchmark.geometry import invert_pose, quat_to_rotmat, rotation_angle_deg
from benchmark.localize import localize_query
from benchmark.types import InvalidSample, QuerySample
from datasets import aachen_mini
from datasets.aachen import Aachen, read_retrieval_pairs, scene_of
from methods.sift import SiftMatcher

MINI = {"model": "sfm", "pairs": "pairs-query-mini.txt", "ground_truth": "query_poses.txt", "num_retrieved": 3}


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return aachen_mini.generate(tmp_path_factory.mktemp("aachen_mini"))


@pytest.fixture
def mini_copy(mini, tmp_path):
    root = tmp_path / "mini"
    shutil.copytree(mini, root)
    return root


def _all(ds):
    return [s for scene in ds.scenes() for s in ds.samples(scene)]


def test_layout_scenes_and_references(mini):
    ds = Aachen({"root": str(mini), **MINI})
    ds.check()
    assert ds.scenes() == ["day/cam_a", "day/cam_b", "night/cam_a"]
    samples = _all(ds)
    assert len(samples) == 8 and all(isinstance(s, QuerySample) for s in samples)
    s = samples[0]
    assert s.id == "query/day/cam_a/cam_a_day_000.jpg" and s.image.is_file() and s.extra["condition"] == "day"
    assert len(s.references) == 3 and s.T_w2c is not None
    pairs, _ = read_retrieval_pairs(mini / "pairs-query-mini.txt")
    assert [r.name for r in s.references] == [db for db, _ in pairs[s.id][:3]]
    # the query camera: COLMAP's SIMPLE_RADIAL f cx cy k with the principal point moved to OpenCV pixels
    assert s.camera.model == "SIMPLE_RADIAL" and s.camera.params == (264.0, 159.5, 119.5, -0.04)
    assert ds.problems() == []


def test_map_observations_are_opencv_pixels_of_their_3d_points(mini):
    ds = Aachen({"root": str(mini), **MINI})
    ref = _all(ds)[3].references[1]
    assert ref.image.is_file() and len(ref.points2d) == len(ref.points3d) > 100
    assert ref.camera.params == (264.0, 159.5, 119.5, 0.02)
    # project the world points with the reference pose and camera (distortion included) and compare
    X = ref.points3d @ ref.T_w2c[:3, :3].T + ref.T_w2c[:3, 3]
    projected = to_pycolmap_camera(ref.camera).img_from_cam(X) - 0.5  # COLMAP -> OpenCV pixels
    np.testing.assert_allclose(projected, ref.points2d, atol=1e-6)


def test_ground_truth_poses_come_from_the_pose_file(mini):
    ds = Aachen({"root": str(mini), **MINI})
    line = (mini / "query_poses.txt").read_text().splitlines()[4].split()
    s = next(x for x in _all(ds) if x.id == line[0])
    np.testing.assert_allclose(s.T_w2c[:3, :3], quat_to_rotmat([float(v) for v in line[1:5]]), atol=1e-12)
    np.testing.assert_allclose(s.T_w2c[:3, 3], [float(v) for v in line[5:]], atol=1e-12)
    assert all(x.T_w2c is None for x in _all(Aachen({"root": str(mini), **MINI, "ground_truth": None})))


def test_sift_localizes_the_miniature(mini):
    conf = load_yaml(PROJECT_ROOT / "configs/default.yaml")["solver"]
    conf["ransac"]["max_error"] = 12.0
    ds = Aachen({"root": str(mini), **MINI, "num_retrieved": 2})
    matcher = SiftMatcher({})
    good = []
    for s in _all(ds):
        est, matches, _, cached = localize_query(s, matcher, None, conf, seed=0)
        assert not cached and len(matches) > 0
        if not est.ok:
            good.append(False)
            continue
        dt = np.linalg.norm(invert_pose(s.T_w2c)[:3, 3] - (-est.R.T @ est.t))
        good.append(dt < 0.5 and rotation_angle_deg(est.R @ s.T_w2c[:3, :3].T) < 5.0)
    assert np.mean(good) >= 0.75, good


def test_query_missing_from_the_intrinsics_list(mini_copy):
    day = mini_copy / "queries/day_time_queries_with_intrinsics.txt"
    lines = day.read_text().splitlines()
    day.write_text("\n".join(lines[1:]) + "\n")
    ds = Aachen({"root": str(mini_copy), **MINI})
    items = _all(ds)
    bad = [i for i in items if isinstance(i, InvalidSample)]
    assert len(items) == 8 and len(bad) == 1
    assert bad[0].id == lines[0].split()[0] and bad[0].scene == "day/cam_a"
    assert (
        "pairs-query-mini.txt line 1: the query query/day/cam_a/cam_a_day_000.jpg has no line in the query lists"
        in bad[0].reason
    )
    assert ds.problems() == [bad[0].reason]


def test_retrieval_pair_naming_an_image_not_in_the_model(mini_copy):
    pairs = mini_copy / "pairs-query-mini.txt"
    lines = pairs.read_text().splitlines()
    query = lines[7].split()[0]
    lines[7] = f"{query} db/9999.jpg"
    lines[13] = f"{lines[13]} extra"
    pairs.write_text("\n".join(lines) + "\n")
    ds = Aachen({"root": str(mini_copy), **MINI, "num_retrieved": 6})
    bad = {i.id: i.reason for i in _all(ds) if isinstance(i, InvalidSample)}
    assert bad[query].endswith(
        f"pairs-query-mini.txt line 8: the database image db/9999.jpg is not a registered "
        f"image of the model {(mini_copy / 'sfm').resolve()}"
    )
    assert "line 14: expected 'query_name db_name', got 3 fields" in bad[lines[13].split()[0]]
    # with fewer retrieved images the bad line is not used
    ds2 = Aachen({"root": str(mini_copy), **MINI, "num_retrieved": 1})
    assert query not in {i.id for i in _all(ds2) if isinstance(i, InvalidSample)}


def test_malformed_intrinsics_and_ground_truth_lines(mini_copy):
    night = mini_copy / "queries/night_time_queries_with_intrinsics.txt"
    lines = night.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[:-1])  # SIMPLE_RADIAL without its k
    night.write_text("\n".join(lines) + "\n")
    gt = mini_copy / "query_poses.txt"
    poses = gt.read_text().splitlines()
    poses[2] = " ".join(poses[2].split()[:-1])  # a pose line with 7 fields (tz missing)
    poses[5] += " 153"  # 9 fields (a confidence column)
    gt.write_text("\n".join(poses) + "\n")
    ds = Aachen({"root": str(mini_copy), **MINI})
    with pytest.raises(
        UserError,
        match=r"query_poses.txt line 3: expected 'name qw qx qy qz tx ty tz' \(8 fields\), "
        r"got 7; fix the ground-truth file \(2 bad line",
    ):
        ds.check()
    problems = ds.problems()
    assert any("query_poses.txt line 6" in p for p in problems)
    assert any(
        "night_time_queries_with_intrinsics.txt line 2: a SIMPLE_RADIAL camera takes the parameters f, cx, cy, k" in p
        for p in problems
    )
    assert len(problems) == 3


def test_missing_files_raise_one_sentence(mini_copy):
    with pytest.raises(UserError, match="needs its folder"):
        Aachen({}).check()
    with pytest.raises(UserError, match="retrieval pairs file .* is missing; pass --set dataset.pairs"):
        Aachen({"root": str(mini_copy), **MINI, "pairs": "nope.txt"}).check()
    with pytest.raises(UserError, match="is not a COLMAP model folder"):
        Aachen({"root": str(mini_copy), **MINI, "model": "3D-models/aachen_v_1_1"}).check()
    with pytest.raises(UserError, match="query list .* is missing"):
        Aachen({"root": str(mini_copy), **MINI, "queries": ["queries/other.txt"]}).check()
    with pytest.raises(UserError, match="num_retrieved must be an integer >= 1, not 0"):
        Aachen({"root": str(mini_copy), **MINI, "num_retrieved": 0}).check()
    # a missing scene folder of database images: every image under it is one problem
    shutil.rmtree(mini_copy / "images_upright/db")
    problems = Aachen({"root": str(mini_copy), **MINI}).problems()
    assert len(problems) == 1 and "images_upright/db does not exist" in problems[0]


def test_real_hloc_retrieval_list(data_dir):
    pairs, bad = read_retrieval_pairs(data_dir / "aachen_v1.1_lists/pairs-query-netvlad50.txt")
    names = (data_dir / "aachen_v1.1_lists/query_names_from_pairs.txt").read_text().split()
    assert not bad and list(pairs) == names and len(names) == 1040
    assert all(len(v) == 50 for v in pairs.values())
    scenes = {scene_of(n) for n in names}
    assert {"day/nexus4", "day/milestone", "night/nexus5x"} <= scenes
    assert sum(scene_of(n).startswith("day/") for n in names) == 834


def test_kapture_pairs_file_is_ranked_by_score(tmp_path):
    """kapture's pairs format (MASt3R's FIRe list fire_top50.txt): 'query, db, score', best score first."""
    path = tmp_path / "fire_top50.txt"
    path.write_text(
        "# query_image, map_image, score\n"
        "query/day/a.jpg, db/1.jpg, 0.2\n"
        "query/day/a.jpg, db/2.jpg, 0.9\n"
        "query/night/b.jpg, db/3.jpg, 0.5\n"
        "query/day/a.jpg, db/3.jpg, 0.2\n"
        "query/night/b.jpg, db/1.jpg, high\n"
        "query/night/c.jpg db/1.jpg 0.3\n"
    )
    pairs, bad = read_retrieval_pairs(path)
    assert pairs["query/day/a.jpg"] == [("db/2.jpg", 3), ("db/1.jpg", 2), ("db/3.jpg", 5)]  # ties: file order
    assert pairs["query/night/b.jpg"] == [("db/3.jpg", 4)]
    assert "line 6: the score 'high' is not a number" in bad["query/night/b.jpg"][0]
    assert "line 7: expected 'query_name, db_name, score' (kapture)" in bad["query/night/c.jpg"][0]


def test_ground_truth_from_a_colmap_model(mini_copy):
    lines = (mini_copy / "query_poses.txt").read_text().splitlines()
    names = [ln.split()[0] for ln in lines[:2]]
    poses = []
    for ln in lines[:2]:
        v = [float(x) for x in ln.split()[1:]]
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = quat_to_rotmat(v[:4]), v[4:]
        poses.append(T)
    # a model of the queries named without the 'query/day/' prefix
    short = ["/".join(n.split("/")[2:]) for n in names]
    aachen_mini.write_model(
        mini_copy / "gt_model", aachen_mini.DB_CAMERA, short, poses, [(np.zeros((0, 2)), np.zeros((0, 3)))] * 2
    )
    ds = Aachen({"root": str(mini_copy), **MINI, "ground_truth": "gt_model"})
    got = {s.id: s.T_w2c for s in _all(ds)}
    for name, T in zip(names, poses):
        np.testing.assert_allclose(got[name], T, atol=1e-12)
    assert sum(v is None for v in got.values()) == 6
