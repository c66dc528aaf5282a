"""CO3D-style sequences: the PoseDiffusion apple sample (190 pairs), PyTorch3D -> OpenCV conversion, pair
order, resizing, malformed input."""

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.types import InvalidSample
from datasets.co3d import Co3dSequences, sequence_pairs


@pytest.fixture
def apple(data_dir):
    return data_dir / "co3d_apple_posediffusion"


def test_apple_sample_gives_190_pairs_consistent_with_the_cameras(apple):
    ds = Co3dSequences({"root": str(apple)})
    assert ds.scenes() == ["co3d_apple_posediffusion"] and ds.problems() == []
    samples = list(ds.samples(ds.scenes()[0]))
    assert len(samples) == 190
    assert [(s.extra["i"], s.extra["j"]) for s in samples] == list(itertools.combinations(range(20), 2))
    frames = sorted(apple.glob("*.jpg"))
    cams = np.load(apple / "gt_cameras.npz")
    R, T = cams["gtR"].astype(np.float64), cams["gtT"].astype(np.float64)
    X = np.random.default_rng(0).normal(size=(7, 3))  # world points
    flip = np.array([-1.0, -1.0, 1.0])  # PyTorch3D view axes (+x left, +y up) -> OpenCV (+x right, +y down)
    for s in samples[::7]:
        i, j = s.extra["i"], s.extra["j"]
        assert (s.image0, s.image1) == (frames[i], frames[j])
        # PyTorch3D row-vector convention, written out independently of the loader
        x_i = (X @ R[i] + T[i]) * flip
        x_j = (X @ R[j] + T[j]) * flip
        np.testing.assert_allclose(x_i @ s.T_0to1[:3, :3].T + s.T_0to1[:3, 3], x_j, atol=1e-6)  # float32 rotations
    s = samples[0]
    f = cams["gtFL"][0].astype(np.float64) * 1066 / 2  # f_ndc * min(W, H) / 2
    np.testing.assert_allclose(s.camera0.K, [[f[0], 0, 532.5], [0, f[1], 947.5], [0, 0, 1]], rtol=1e-12)
    assert (s.camera0.width, s.camera0.height, s.resize0) == (1066, 1896, None)


def test_pair_order_matches_the_posediffusion_fixture(fixtures_dir):
    d = np.load(fixtures_dir / "metrics/rra_rta/rra_inputs.npz")
    n = int(d["frames_per_seq"])
    ours = [(b * n + i, b * n + j) for b in range(int(d["batch_size"])) for i, j in sequence_pairs(n, None, 0, "s")]
    assert ours == list(zip(d["pair_i"].tolist(), d["pair_j"].tolist()))


def test_resize_max_and_max_pairs(apple):
    ds = Co3dSequences({"root": str(apple), "resize_max": 512, "max_pairs": 25, "seed": 3})
    samples = list(ds.samples(ds.scenes()[0]))
    pairs = [(s.extra["i"], s.extra["j"]) for s in samples]
    assert len(samples) == 25 and pairs == sorted(pairs) and len(set(pairs)) == 25
    assert pairs == [(s.extra["i"], s.extra["j"]) for s in ds.samples(ds.scenes()[0])]  # seeded
    other = Co3dSequences({"root": str(apple), "resize_max": 512, "max_pairs": 25, "seed": 4})
    assert pairs != [(s.extra["i"], s.extra["j"]) for s in other.samples(other.scenes()[0])]
    s = samples[0]
    assert s.resize0 == (288, 512) and (s.camera0.width, s.camera0.height) == (288, 512)
    full = {x.extra["i"]: x.camera0.K for x in Co3dSequences({"root": str(apple)}).samples("co3d_apple_posediffusion")}
    scale = np.diag([1 / (1066 / 288), 1 / (1896 / 512), 1])  # pure factors, as for ScanNet
    np.testing.assert_allclose(s.camera0.K, scale @ full[s.extra["i"]], rtol=1e-12)


def test_nested_sequences_and_malformed_cameras(apple, tmp_path):
    for seq in ("apple/seq_a", "apple/seq_b"):
        shutil.copytree(apple, tmp_path / seq)
    ds = Co3dSequences({"root": str(tmp_path)})
    assert ds.scenes() == ["apple/seq_a", "apple/seq_b"]
    assert next(iter(ds.samples("apple/seq_b"))).extra["category"] == "apple"
    (tmp_path / "apple/seq_a/frame000200.jpg").unlink()  # 19 frames for 20 cameras
    with np.load(apple / "gt_cameras.npz") as d:
        np.savez(tmp_path / "apple/seq_b/gt_cameras.npz", gtR=d["gtR"], gtT=d["gtT"])  # no focal lengths
    # an unusable cameras file fails every pair of its sequence, each one a row (171 = 19 * 18 / 2 pairs)
    seq_a = list(ds.samples("apple/seq_a"))
    assert len(seq_a) == 171 and all(isinstance(s, InvalidSample) for s in seq_a)
    assert "seq_a/gt_cameras.npz: gtR has shape (20, 3, 3), expected (19, 3, 3)" in seq_a[0].reason
    problems = ds.problems()
    assert len(problems) == 2 and "lacks the arrays gtFL" in problems[1]


def test_a_broken_frame_costs_only_the_pairs_it_is_in(apple, tmp_path):
    seq = tmp_path / "apple"
    shutil.copytree(apple, seq)
    frames = sorted(seq.glob("*.jpg"))
    frames[3].write_bytes(b"not a jpeg")
    with np.load(apple / "gt_cameras.npz") as d:
        arrays = {k: d[k].copy() for k in ("gtR", "gtT", "gtFL")}
    arrays["gtT"][7, 0] = np.nan
    np.savez(seq / "gt_cameras.npz", **arrays)
    samples = list(Co3dSequences({"root": str(seq)}).samples("apple"))
    assert len(samples) == 190  # every pair stays in the denominators
    bad = [s for s in samples if isinstance(s, InvalidSample)]
    assert len(bad) == 19 + 19 - 1  # the pairs with frame 3 or frame 7
    assert all(frames[3].stem in s.id or frames[7].stem in s.id for s in bad)
    assert any("cannot be read as an image" in s.reason for s in bad) and any("NaN" in s.reason for s in bad)


def test_bad_settings_raise_one_sentence(apple, tmp_path):
    with pytest.raises(UserError, match="resize_max must be an integer >= 1 or null, not -3"):
        Co3dSequences({"root": str(apple), "resize_max": -3}).check()
    with pytest.raises(UserError, match="sequences names nope"):
        Co3dSequences({"root": str(apple), "sequences": ["nope"]}).scenes()
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="holds no gt_cameras.npz"):
        Co3dSequences({"root": str(tmp_path)}).check()


def test_sift_relative_poses_agree_with_the_converted_cameras(apple):
    """Real images: an essential matrix from SIFT matches recovers the converted GT pose of close frames,
    which checks the axis flip and the NDC focal length together."""
    from benchmark import estimators
    from benchmark.config import load_yaml
    from benchmark.geometry import rotation_angle_deg
    from benchmark.io import read_image
    from benchmark.types import PoseProblem
    from methods.sift import SiftMatcher

    conf = load_yaml(Path(__file__).resolve().parents[1] / "configs/default.yaml")["solver"]
    ds = Co3dSequences({"root": str(apple), "resize_max": 640})
    wanted = {("frame000085", "frame000096"), ("frame000012", "frame000025")}
    matcher = SiftMatcher({})
    for s in ds.samples(ds.scenes()[0]):
        if (s.image0.stem, s.image1.stem) not in wanted:
            continue
        m = matcher.match(read_image(s.image0, s.resize0), read_image(s.image1, s.resize1))
        for solve in (estimators.essential, estimators.poselib_relative):
            est = solve(PoseProblem(m, s.camera1, s.camera0), conf, 0)
            R, t = s.T_0to1[:3, :3], s.T_0to1[:3, 3]
            assert rotation_angle_deg(est.R.T @ R) < 3.0, solve
            assert np.degrees(np.arccos(abs(est.t @ t) / np.linalg.norm(t))) < 5.0, solve
