"""Map-free loader on the real-format fixtures: evaluated frames, poses, intrinsics, depth, bad input."""

import json
import shutil

import numpy as np
import pytest

from benchmark.errors import SampleError, UserError
from benchmark.geometry import quat_to_rotmat
from benchmark.metrics.submission import evaluated_frames
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
    assert [s.image1.name for s in samples] == [
        "frame_00000.jpg",
        "frame_00005.jpg",
        "frame_00010.jpg",
        "frame_00015.jpg",
    ]
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
    poses.write_text("garbage\n")  # no frame can be told apart: the scene's one row says why
    with pytest.raises(SampleError, match="poses.txt"):
        list(MapFree({"root": str(root)}).samples("s00460"))


def _break_line(path, needle, edit):
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if needle in line)
    lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n")
    return index + 1


@pytest.mark.parametrize("broken", ["a field short", "not a number", "two spaces", "nan"])
def test_a_broken_pose_line_costs_its_frame_only_as_the_scorer_decides(fixtures_dir, tmp_path, broken):
    """The scorer skips a malformed poses.txt line, then takes every 5th remaining entry: the run
    evaluates exactly those frames (not one invalid row for the scene)."""
    root = _copy_tiny(fixtures_dir, tmp_path)
    poses = root / "val/s00460/poses.txt"
    edit = {
        "a field short": lambda line: " ".join(line.split()[:-1]),
        "not a number": lambda line: line.replace("0.", "x.", 1),
        "two spaces": lambda line: line.replace(" ", "  ", 1),
        "nan": lambda line: line.rsplit(" ", 1)[0] + " nan",
    }[broken]
    _break_line(poses, "seq1/frame_00002.jpg", edit)
    samples = list(MapFree({"root": str(root)}).samples("s00460"))
    assert all(isinstance(s, PairSample) for s in samples)
    got = [s.image1.name for s in samples]
    # frames 0, 1, 3, 4, ..., 15 remain; positions 0, 5, 10 of them are frames 0, 6, 11
    assert got == ["frame_00000.jpg", "frame_00006.jpg", "frame_00011.jpg"]
    scorer = [name for name, _ in evaluated_frames(poses) if name != "seq0/frame_00000.jpg"]
    assert [f"seq1/{g}" for g in got] == scorer
    assert any("line 4" in p and "ignored" in p for p in MapFree({"root": str(root)}).problems())


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda line: " ".join([line.split()[0], "0", *line.split()[2:]]), "focal lengths must be positive"),
        (lambda line: line.split()[0] + " 59.1 x 29 36 54 72", "must be numbers"),
        (lambda line: " ".join(line.split()[:-1]), "7 fields"),
    ],
)
def test_a_broken_intrinsics_line_fails_its_frame_only(fixtures_dir, tmp_path, edit, reason):
    root = _copy_tiny(fixtures_dir, tmp_path)
    intr = root / "val/s00460/intrinsics.txt"
    lineno = _break_line(intr, "seq1/frame_00010.jpg", edit)
    ds = MapFree({"root": str(root)})
    items = list(ds.samples("s00460"))
    assert [i.id for i in items] == [f"s00460/seq1/frame_{n:05d}.jpg" for n in (0, 5, 10, 15)]
    bad = [i for i in items if isinstance(i, InvalidSample)]
    assert [b.id for b in bad] == ["s00460/seq1/frame_00010.jpg"]
    assert f"intrinsics.txt line {lineno}" in bad[0].reason and reason in bad[0].reason
    assert any(f"line {lineno}" in p for p in ds.problems())


def test_a_broken_reference_intrinsics_line_fails_every_frame_of_its_scene(fixtures_dir, tmp_path):
    root = _copy_tiny(fixtures_dir, tmp_path)
    _break_line(root / "val/s00460/intrinsics.txt", "seq0/frame_00000.jpg", lambda line: line.replace("54 72", "0 72"))
    items = list(MapFree({"root": str(root)}).samples("s00460"))
    assert len(items) == 4 and all(isinstance(i, InvalidSample) and "line 1" in i.reason for i in items)


def test_missing_intrinsics_line_is_recorded_not_fatal(fixtures_dir, tmp_path):
    root = _copy_tiny(fixtures_dir, tmp_path)
    intr = root / "val/s00460/intrinsics.txt"
    intr.write_text(
        "\n".join(line for line in intr.read_text().splitlines() if "frame_00005" not in line or "seq0" in line)
    )
    ds = MapFree({"root": str(root)})
    items = list(ds.samples("s00460"))
    bad = [i for i in items if isinstance(i, InvalidSample)]
    assert len(bad) == 1 and "has no line for seq1/frame_00005.jpg" in bad[0].reason
    assert any("frame_00005" in p for p in ds.problems())
