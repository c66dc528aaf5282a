"""Map-free loader on the real-format fixtures: evaluated frames, poses, intrinsics, depth, bad input."""
import json
import shutil

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.geometry import quat_to_rotmat
from benchmark.types import InvalidSample, PairSample
from datasets.mapfree import MapFree
from datasets.mapfree_io import read_poses


def test_evaluated_frames_follow_the_official_rule(fixtures_dir):
    root = fixtures_dir / "metrics/mapfree/dataset"
    expected = json.loads((fixtures_dir / "metrics/mapfree/mapfree_expected.json").read_text())
    ds = MapFree({"root": str(root), "split": "val"})
    assert ds.scenes() == ["s00525", "s00526"]
    for scene, numbers in expected["evaluated_frame_numbers"].items():
        got = [int(s.image1.name[-9:-4]) for s in ds.samples(scene)]
        assert got == numbers, scene


def test_samples_carry_pose_intrinsics_and_depth(fixtures_dir):
    root = fixtures_dir / "metrics/mapfree_tiny"
    ds = MapFree({"root": str(root), "depth": "dptnyu"})
    samples = list(ds.samples("s00460"))
    assert all(isinstance(s, PairSample) for s in samples)
    assert [s.image1.name for s in samples] == ["frame_00000.jpg", "frame_00005.jpg", "frame_00010.jpg", "frame_00015.jpg"]
    s = samples[1]
    poses = read_poses(root / "val/s00460/poses.txt")
    q, t = poses["seq1/frame_00005.jpg"]
    np.testing.assert_allclose(s.T_0to1[:3, :3], quat_to_rotmat(q))
    np.testing.assert_allclose(s.T_0to1[:3, 3], t)
    assert (s.camera1.width, s.camera1.height) == (54, 72)
    assert s.depth0.name == "frame_00000.dptnyu.png" and s.image0.name == "frame_00000.jpg"
    assert ds.problems() == []
    frames = MapFree({"root": str(root), "frames": "all"})
    assert len(list(frames.samples("s00460"))) == 16


def _copy_tiny(fixtures_dir, tmp_path):
    dst = tmp_path / "mf"
    shutil.copytree(fixtures_dir / "metrics/mapfree_tiny/val", dst / "val")
    return dst


def test_bad_inputs_give_one_sentence(fixtures_dir, tmp_path):
    with pytest.raises(UserError, match="needs its folder: pass --set dataset.root"):
        MapFree({}).check()
    with pytest.raises(UserError, match="does not exist"):
        MapFree({"root": str(tmp_path / "nope")}).check()
    root = _copy_tiny(fixtures_dir, tmp_path)
    with pytest.raises(UserError, match="no 'test' split folder"):
        MapFree({"root": str(root), "split": "test"}).check()
    poses = root / "val/s00460/poses.txt"
    lines = poses.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:-1])  # a pose line with 7 numbers
    poses.write_text("\n".join(lines))
    ds = MapFree({"root": str(root)})
    with pytest.raises(Exception, match=r"poses.txt line 4: expected 'name qw qx qy qz tx ty tz' \(8 fields\)"):
        list(ds.samples("s00460"))
    assert any("line 4" in p for p in ds.problems())


def test_missing_intrinsics_line_is_recorded_not_fatal(fixtures_dir, tmp_path):
    root = _copy_tiny(fixtures_dir, tmp_path)
    intr = root / "val/s00460/intrinsics.txt"
    intr.write_text("\n".join(l for l in intr.read_text().splitlines() if "frame_00005" not in l or "seq0" in l))
    ds = MapFree({"root": str(root)})
    items = list(ds.samples("s00460"))
    bad = [i for i in items if isinstance(i, InvalidSample)]
    assert len(bad) == 1 and "has no line for seq1/frame_00005.jpg" in bad[0].reason
    assert any("frame_00005" in p for p in ds.problems())
