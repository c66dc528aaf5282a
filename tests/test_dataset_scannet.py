"""ScanNet-1500 loader: the official evaluation setup of the 15 sample pairs, both 1500-pair list formats,
rotation codes, and malformed input."""

import json
import shutil

import cv2
import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.io import read_image
from benchmark.types import InvalidSample, PairSample
from datasets.scannet import ScanNet1500, read_superglue_pairs, rotate_camera


def _all(ds):
    return [s for scene in ds.scenes() for s in ds.samples(scene)]


def _sample_dataset(root):
    return ScanNet1500({"root": str(root), "pairs": "scannet_sample_pairs_with_gt.txt", "image_dir": "images"})


def test_sample_pairs_match_the_official_setup(data_dir, fixtures_dir):
    setup = json.loads((fixtures_dir / "metrics/scannet/superglue_sample_eval_setup.json").read_text())
    ds = _sample_dataset(data_dir / "superglue_scannet_sample")
    samples = _all(ds)
    assert len(samples) == len(setup["pairs"]) == 15
    for s, ref in zip(samples, setup["pairs"]):
        assert isinstance(s, PairSample)
        assert (s.image0.name, s.image1.name) == (ref["name0"], ref["name1"])
        assert (s.extra["rot0"], s.extra["rot1"]) == (ref["rot0"], ref["rot1"])
        for cam, resize, i in ((s.camera0, s.resize0, "0"), (s.camera1, s.resize1, "1")):
            assert (cam.width, cam.height) == tuple(ref[f"resized_wh{i}"]) == tuple(resize)
            np.testing.assert_array_equal(cam.K, np.array(ref[f"K{i}_resized"]))  # exact, like the official code
        np.testing.assert_array_equal(s.T_0to1, np.array(ref["T_0to1"]))
        assert s.scene == ref["name0"][:12] and s.image0.is_file()
    assert ds.problems() == []


def test_both_list_formats_give_the_same_1500_pairs(data_dir):
    lists = data_dir / "scannet1500_lists"
    sg = _all(ScanNet1500({"root": str(lists), "image_size": [1296, 968]}))  # images absent: give their size
    lo = _all(ScanNet1500({"root": str(lists), "list_format": "loftr"}))
    assert len(sg) == len(lo) == 1500
    assert [s.id for s in sg] == [s.id for s in lo]
    assert len({s.scene for s in sg}) == 100 and sg[0].id == "scene0707_00/15-585"
    assert max(np.abs(a.T_0to1 - b.T_0to1).max() for a, b in zip(sg, lo)) < 3e-7
    for a, b in zip(sg, lo):
        assert (a.camera0.width, a.camera0.height) == (b.camera0.width, b.camera0.height) == (640, 480)
        np.testing.assert_allclose(a.camera0.K, b.camera0.K, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.camera1.K, b.camera1.K, rtol=0, atol=1e-12)
    assert str(sg[0].image0).endswith("scans_test/scene0707_00/sens/frame-000015.color.jpg")
    assert str(lo[0].image0).endswith("scene0707_00/color/15.jpg")


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotated_camera_follows_the_image_reader(tmp_path, turns):
    w, h = 64, 48
    image = np.random.default_rng(turns).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    rotated = read_image(path, exif_rotation=turns)
    K = np.array([[50.0, 0, 30.0], [0, 52.0, 20.0], [0, 0, 1]])
    K_rot, size, R = rotate_camera(K, w, h, turns)
    assert size == (rotated.shape[1], rotated.shape[0])
    for u, v in ((0, 0), (10, 5), (63, 47), (30, 20)):
        X = np.linalg.inv(K) @ [u, v, 1.0] * 2.0  # a 3D point seen at pixel (u, v)
        p = K_rot @ (R @ X)
        u2, v2 = np.rint(p[:2] / p[2]).astype(int)
        np.testing.assert_allclose(p[:2] / p[2], (u2, v2), atol=1e-9)
        assert (rotated[v2, u2] == image[v, u]).all()


def _copy_sample(data_dir, tmp_path):
    root = tmp_path / "sample"
    shutil.copytree(data_dir / "superglue_scannet_sample", root)
    return root


def test_rotation_codes_keep_the_sample_consistent(data_dir, tmp_path):
    root = _copy_sample(data_dir, tmp_path)
    pairs = root / "scannet_sample_pairs_with_gt.txt"
    fields = pairs.read_text().splitlines()[0].split()
    fields[2], fields[3] = "1", "2"
    pairs.write_text(" ".join(fields) + "\n")
    s = _all(_sample_dataset(root))[0]
    assert (s.camera0.width, s.camera0.height, s.resize0) == (480, 640, (480, 640))
    assert (s.camera1.width, s.camera1.height, s.resize1) == (640, 480, (640, 480))
    T = np.array([float(v) for v in fields[22:]]).reshape(4, 4)
    K0, _, R0 = rotate_camera(
        np.diag([640 / 1296, 480 / 968, 1]) @ np.array(fields[4:13], float).reshape(3, 3), 640, 480, 1
    )
    np.testing.assert_allclose(s.camera0.K, K0, atol=1e-9)
    X0 = np.array([0.3, -0.2, 2.5])  # in the unrotated camera 0
    X1 = T[:3, :3] @ X0 + T[:3, 3]
    _, _, R1 = rotate_camera(np.eye(3), 640, 480, 2)
    np.testing.assert_allclose(s.T_0to1[:3, :3] @ (R0 @ X0) + s.T_0to1[:3, 3], R1 @ X1, atol=1e-12)


def test_malformed_lines_and_missing_scenes_are_reported_per_pair(data_dir, tmp_path):
    root = _copy_sample(data_dir, tmp_path)
    pairs = root / "scannet_sample_pairs_with_gt.txt"
    lines = pairs.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:-1])  # 37 fields
    lines[4] = lines[4].replace(" 0 0 ", " 0 x ", 1)
    pairs.write_text("\n".join(lines) + "\n")
    for f in (root / "images").glob("scene0737_00_*"):  # a pair whose images were not downloaded
        f.unlink()
    ds = _sample_dataset(root)
    items = _all(ds)
    bad = [i for i in items if isinstance(i, InvalidSample)]
    assert len(items) == 15 and len(bad) == 3
    reasons = " | ".join(b.reason for b in bad)
    assert "scannet_sample_pairs_with_gt.txt line 3: expected 38 fields" in reasons
    assert "line 5: rot0 rot1 must be integers" in reasons
    assert "scene0737_00_frame-000930.jpg is missing" in reasons
    problems = ds.problems()
    assert len(problems) == 3 and any("line 3" in p for p in problems)
    entries, bad_lines = read_superglue_pairs(pairs)
    assert len(entries) == 13 and [b[0] for b in bad_lines] == [3, 5]


def test_whole_dataset_problems_raise_one_sentence(data_dir, tmp_path):
    lists = data_dir / "scannet1500_lists"
    with pytest.raises(UserError, match="needs its folder"):
        ScanNet1500({}).check()
    with pytest.raises(UserError, match="pair list .* is missing; pass --set dataset.pairs"):
        ScanNet1500({"root": str(tmp_path)}).check()
    with pytest.raises(UserError, match="list_format must be one of superglue, loftr, not .megadepth."):
        ScanNet1500({"root": str(lists), "list_format": "megadepth"}).check()
    with pytest.raises(UserError, match="dataset.resize must be"):
        ScanNet1500({"root": str(lists), "resize": [640]}).check()
    with pytest.raises(UserError, match="intrinsics.npz is missing"):
        ScanNet1500(
            {"root": str(lists), "list_format": "loftr", "intrinsics": str(tmp_path / "intrinsics.npz")}
        ).check()
    # the LoFTR list names a scene that intrinsics.npz lacks: only that scene's pairs are invalid
    with np.load(lists / "intrinsics.npz") as k:
        np.savez(tmp_path / "intrinsics.npz", **{n: k[n] for n in k.files if n != "scene0707_00"})
    shutil.copy(lists / "test.npz", tmp_path / "test.npz")
    ds = ScanNet1500({"root": str(tmp_path), "list_format": "loftr"})
    bad = [s for s in ds.samples("scene0707_00")]
    assert len(bad) == 15 and all(isinstance(b, InvalidSample) for b in bad)
    assert "has no intrinsics for scene0707_00" in bad[0].reason and "test.npz entry 0" in bad[0].reason
    assert all(isinstance(s, PairSample) for s in ds.samples("scene0708_00"))


def test_loftr_intrinsics_follow_the_image_size_without_resize(tmp_path):
    K = np.array([[500.0, 0, 320.0], [0, 480.0, 240.0], [0, 0, 1]])
    np.savez(tmp_path / "intrinsics.npz", scene0001_00=K)
    np.savez(tmp_path / "test.npz", name=np.array([[1, 0, 5, 9]], np.uint16), rel_pose=np.eye(4)[:3].reshape(1, 12))
    (tmp_path / "scene0001_00/color").mkdir(parents=True)
    for f in (5, 9):
        cv2.imwrite(str(tmp_path / f"scene0001_00/color/{f}.jpg"), np.zeros((968, 1296, 3), np.uint8))
    s = next(ScanNet1500({"root": str(tmp_path), "list_format": "loftr", "resize": None}).samples("scene0001_00"))
    assert (s.camera0.width, s.camera0.height, s.resize0) == (1296, 968, None)
    np.testing.assert_allclose(s.camera0.K, np.diag([1296 / 640, 968 / 480, 1]) @ K, rtol=1e-15)
    assert s.id == "scene0001_00/5-9"
