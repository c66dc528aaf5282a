"""Match pictures (benchmark.viz) and ``show`` on a known pair: the demo's first pair with matches whose
errors are known by construction (GT depth and pose), drawn by a matcher that returns exactly them."""

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark import viz
from benchmark.config import resolve
from benchmark.errors import UserError
from benchmark.estimators import sample_depth
from benchmark.geometry import pose_matrix
from benchmark.io import GRAY, read_depth, read_image
from benchmark.protocols import get_protocol
from benchmark.registry import DATASETS, METHODS
from benchmark.runner import build
from benchmark.show import draw_sample, open_run, show, worst_order
from benchmark.types import TASK_ABSOLUTE, Camera, Matches, QuerySample, Reference
from datasets.demo.loader import Demo
from methods.base import Matcher

OFFSETS = np.array([0.0, 2.5, 5.0, 7.5, 40.0])  # pixels added to the exact partner: the reprojection errors


class FixedMatches(Matcher):
    """Returns ``FixedMatches.matches`` for any pair (tests only)."""

    matches: Matches | None = None
    calls = 0

    def _match(self, image0, image1):
        type(self).calls += 1
        return self.matches


@pytest.fixture(autouse=True)
def test_classes(register):
    register(METHODS, "fixed_matches", FixedMatches)
    register(METHODS, "fixed_matches_grey", FixedMatchesGrey)
    register(DATASETS, "query_from_demo", QueryFromDemo)


def first_pair():
    dataset, _, _ = build(resolve("sift", "demo"))
    return next(s for s in dataset.samples(dataset.scenes()[0]) if s.T_0to1 is not None)


def exact_matches(sample, offsets):
    """Well separated reference pixels with GT depth, their exact partners moved right by ``offsets``."""
    depth = read_depth(sample.depth0, sample.depth_scale)
    w, h = sample.camera0.width, sample.camera0.height
    grid = np.array([(x, y) for y in np.linspace(40, h - 40, 6) for x in np.linspace(30, w - 30, 5)])
    d = sample_depth(depth, grid, w, h)
    k0, d = grid[np.isfinite(d)], d[np.isfinite(d)]
    X = np.c_[k0, np.ones(len(k0))] @ np.linalg.inv(sample.camera0.K).T * d[:, None]
    X1 = X @ sample.T_0to1[:3, :3].T + sample.T_0to1[:3, 3]
    p = X1 @ sample.camera1.K.T
    k1 = p[:, :2] / p[:, 2:]
    inside = (
        (k1[:, 0] > 10)
        & (k1[:, 0] < sample.camera1.width - 60)
        & (k1[:, 1] > 10)
        & (k1[:, 1] < sample.camera1.height - 10)
    )
    k0, k1 = k0[inside][: len(offsets)], k1[inside][: len(offsets)]
    assert len(k0) == len(offsets), "the demo's first pair has too few visible GT points"
    return Matches(k0, k1 + np.c_[offsets, np.zeros(len(offsets))], np.ones(len(offsets)))


def write_run(folder, method: str, dataset: str, rows: list[dict], overrides=()):
    folder.mkdir(parents=True)
    overrides = [f"run.cache_dir={folder / 'cache'}", *overrides]  # an empty cache: every pair is recomputed
    (folder / "config.yaml").write_text(yaml.safe_dump(resolve(method, dataset, None, overrides)))
    pd.DataFrame(rows).to_parquet(folder / "samples.parquet")
    return folder


def row(sample, **kw):
    return {
        "sample_id": sample.id,
        "scene": sample.scene,
        "status": "ok",
        "reason": "",
        "num_matches": 5,
        "num_inliers": 5,
        **kw,
    }


def test_error_measures_are_exact_on_constructed_geometry():
    rng = np.random.default_rng(0)
    K0 = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    K1 = np.array([[450.0, 0, 300], [0, 455, 250], [0, 0, 1]])
    T = pose_matrix(cv2.Rodrigues(np.array([0.1, -0.2, 0.05]))[0], [0.5, 0.1, -0.2])
    X = np.c_[rng.uniform(-2, 2, (50, 2)), rng.uniform(4, 8, 50)]
    k0 = (X @ K0.T)[:, :2] / X[:, 2:]
    X1 = X @ T[:3, :3].T + T[:3, 3]
    k1 = (X1 @ K1.T)[:, :2] / X1[:, 2:]
    assert np.abs(viz.epipolar_distance_px(k0, k1, T, K0, K1)).max() < 1e-6
    assert np.abs(viz.reprojection_error_px(k0, k1, X[:, 2], T, K0, K1)).max() < 1e-6
    np.testing.assert_allclose(viz.reprojection_error_px(k0, k1 + [3.0, 4.0], X[:, 2], T, K0, K1), 5.0, atol=1e-6)
    # a partner moved off its epipolar line along the line's normal: its distance in image 1 is the move,
    # in image 0 the distance to the epipolar line of the moved point (OpenCV computes both lines)
    F = viz.fundamental_matrix(T, K0, K1)
    line1 = cv2.computeCorrespondEpilines(k0.reshape(-1, 1, 2), 1, F).reshape(-1, 3)
    moved = k1 + 3.0 * line1[:, :2] / np.linalg.norm(line1[:, :2], axis=1, keepdims=True)
    line0 = cv2.computeCorrespondEpilines(moved.reshape(-1, 1, 2), 2, F).reshape(-1, 3)
    d0 = np.abs(np.sum(line0[:, :2] * k0, 1) + line0[:, 2]) / np.linalg.norm(line0[:, :2], axis=1)
    np.testing.assert_allclose(viz.epipolar_distance_px(k0, moved, T, K0, K1), (3.0 + d0) / 2, rtol=1e-6)
    assert np.isnan(viz.reprojection_error_px(k0[:1], k1[:1], [np.nan], T, K0, K1)).all()


def test_colour_scale():
    c = viz.error_colors(np.array([0.0, 5.0, 10.0, 99.0, np.nan]), 10.0)
    assert [tuple(x) for x in c] == [viz.GREEN, viz.YELLOW, viz.RED, viz.RED, viz.GREY]
    assert [tuple(x) for x in viz.inlier_colors(np.array([True, False]), 2)] == [viz.GREEN, viz.RED]


@pytest.mark.parametrize("size0, size1", [((37, 53), (61, 29)), ((480, 360), (300, 401))])
def test_picture_size_and_keypoint_colours(size0, size1):
    rng = np.random.default_rng(1)
    im0 = rng.integers(0, 255, (*size0, 3), dtype=np.uint8)
    im1 = rng.integers(0, 255, (*size1, 3), dtype=np.uint8)
    k0 = np.array([[3.0, 4.0], [size0[1] - 4, size0[0] - 5]])
    k1 = np.array([[size1[1] - 3, 2.0], [5.0, size1[0] - 3]])
    colors = np.array([viz.RED, (10, 20, 250)], np.uint8)
    top = viz.draw_matches(im0, im1, k0, k1, colors)
    assert top.shape == (max(size0[0], size1[0]), max(size0[1] + viz.GAP + size1[1], viz.MIN_WIDTH), 3)
    pic = viz.draw_matches(im0, im1, k0, k1, colors, ["a line of text"], viz.Legend("scale", 10.0))
    assert pic.shape[0] > top.shape[0] and pic.shape[1] == top.shape[1]
    for i in range(2):
        assert tuple(pic[int(k0[i, 1]), int(k0[i, 0])]) == tuple(colors[i])
        assert tuple(pic[int(k1[i, 1]), int(k1[i, 0]) + size0[1] + viz.GAP]) == tuple(colors[i])


def test_show_draws_a_known_pair_as_the_run_read_it(tmp_path, monkeypatch, capsys):
    sample = first_pair()
    matches = exact_matches(sample, OFFSETS)
    monkeypatch.setattr(FixedMatches, "matches", matches)
    run = write_run(tmp_path / "run", "fixed_matches", "demo", [row(sample)])
    out = tmp_path / "pair.png"
    show(run, [], sample.id, None, None, out, max_error=10.0)
    assert "matched again" in capsys.readouterr().out  # not in any cache: recomputed, and said so
    pic = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    im0 = read_image(sample.image0, sample.resize0)
    im1 = read_image(sample.image1, sample.resize1)
    w0 = im0.shape[1]
    assert pic.shape[1] == max(w0 + viz.GAP + im1.shape[1], viz.MIN_WIDTH)
    assert pic.shape[0] > max(im0.shape[0], im1.shape[0])  # the text panel below
    np.testing.assert_array_equal(pic[: im0.shape[0], :w0][:5, :5], im0[:5, :5])  # the image as read
    expected = viz.error_colors(OFFSETS, 10.0)  # GT depth: colour = reprojection error = the offset
    for k0, k1, c in zip(matches.kpts0, matches.kpts1, expected):
        x0, y0 = np.round(k0).astype(int)
        x1, y1 = np.round(k1).astype(int)
        assert tuple(pic[y0, x0]) == tuple(c)
        assert tuple(pic[y1, x1 + w0 + viz.GAP]) == tuple(c)


def test_without_gt_depth_the_colour_is_the_epipolar_distance(tmp_path, monkeypatch):
    sample = first_pair()
    matches = exact_matches(sample, OFFSETS)
    monkeypatch.setattr(FixedMatches, "matches", matches)
    monkeypatch.setattr(Demo, "has_ground_truth_depth", lambda self: False)
    run = write_run(tmp_path / "run", "fixed_matches", "demo", [row(sample)])
    out = tmp_path / "pair.png"
    show(run, [], sample.id, None, None, out, max_error=10.0)
    pic = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    errors = viz.epipolar_distance_px(matches.kpts0, matches.kpts1, sample.T_0to1, sample.camera0.K, sample.camera1.K)
    assert errors[0] < 1e-3 and np.all(errors[1:] > 0)
    for k0, c in zip(matches.kpts0, viz.error_colors(errors, 10.0)):
        assert tuple(pic[int(round(k0[1])), int(round(k0[0]))]) == tuple(c)


class QueryFromDemo(Demo):
    """The demo's first pair as an absolute-localization query: two references (the reference image,
    then again with no map), map points from the GT depth (tests only)."""

    task = TASK_ABSOLUTE
    protocol = "aachen"

    def scenes(self):
        return ["q"]

    def samples(self, scene):
        s = first_pair()
        depth = read_depth(s.depth0, s.depth_scale)
        grid = np.array([(x, y) for y in range(5, s.camera0.height, 9) for x in range(5, s.camera0.width, 9)], float)
        d = sample_depth(depth, grid, s.camera0.width, s.camera0.height)
        pts2d = grid[np.isfinite(d)]
        pts3d = np.c_[pts2d, np.ones(len(pts2d))] @ np.linalg.inv(s.camera0.K).T * d[np.isfinite(d)][:, None]
        mapped = Reference("db/mapped.jpg", s.image0, s.camera0, np.eye(4), pts2d, pts3d)
        unmapped = Reference("db/unmapped.jpg", s.image0, s.camera0, np.eye(4))
        yield QuerySample("q/query.jpg", "q", s.image1, s.camera1, [unmapped, mapped], s.T_0to1)


def test_an_aachen_style_query_is_drawn_against_its_best_reference(tmp_path, monkeypatch):
    pair = first_pair()
    matches = exact_matches(pair, OFFSETS)
    monkeypatch.setattr(FixedMatches, "matches", matches)
    run = write_run(
        tmp_path / "run",
        "fixed_matches",
        "query_from_demo",
        [{**row(pair), "sample_id": "q/query.jpg", "scene": "q"}],
        ["solver.lift=nearest"],
    )
    rd = open_run(run)
    from benchmark.show import context

    ctx = context(rd.cfg)
    pic = draw_sample(ctx, rd.samples.iloc[0].to_dict())
    assert ctx.source.recomputed == 1  # the reference without map points is not matched, as in the run
    errors = viz.epipolar_distance_px(matches.kpts0, matches.kpts1, pair.T_0to1, pair.camera0.K, pair.camera1.K)
    w0 = pair.camera0.width
    for k1, c in zip(matches.kpts1, viz.error_colors(errors, 10.0)):
        assert tuple(pic[int(round(k1[1])), int(round(k1[0])) + w0 + viz.GAP]) == tuple(c)


def test_distorted_keypoints_are_moved_to_the_pinhole_image():
    cam = Camera("SIMPLE_RADIAL", 320, 240, (300.0, 160.0, 120.0, 0.1))
    k = np.array([[10.0, 20.0], [160.0, 120.0]])
    out = viz.pinhole_pixels(cam, k)
    np.testing.assert_allclose(out[1], k[1], atol=1e-9)  # the principal point does not move
    assert np.linalg.norm(out[0] - k[0]) > 1  # a corner does (barrel distortion pulled it inward)
    undistorted = Camera("SIMPLE_RADIAL", 320, 240, (300.0, 160.0, 120.0, 0.0))
    np.testing.assert_allclose(viz.pinhole_pixels(undistorted, k), k, atol=1e-9)


def test_worst_order_puts_failures_first_then_the_largest_error():
    df = pd.DataFrame(
        {
            "sample_id": list("abcdef"),
            "scene": "s",
            "status": ["ok", "too_few_matches", "ok", "ok", "solver_failed", "ok"],
            "num_inliers": [50, 0, 30, 10, 0, 20],
            "vcre_px": [5.0, np.nan, 80.0, np.nan, np.nan, 5.0],
        }
    )
    assert worst_order(df, get_protocol("mapfree"))["sample_id"].tolist() == ["b", "e", "c", "f", "a", "d"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sample": "nope"}, "is not in"),
        ({"scene": "nope"}, "Scene 'nope' is not in"),
        ({}, "Say which samples to draw"),
        ({"worst": 0}, "positive number"),
        ({"sample": "X", "output": "pic.gif"}, "write a .png or .jpg file"),
    ],
)
def test_show_refuses_bad_requests_with_one_sentence(tmp_path, kwargs, message):
    sample = first_pair()
    run = write_run(tmp_path / "run", "fixed_matches", "demo", [row(sample)])
    args = {"sample": None, "worst": None, "scene": None, "output": None, **kwargs}
    with pytest.raises(UserError, match=message):
        show(run, [], args["sample"], args["worst"], args["scene"], args["output"] and tmp_path / args["output"])


def test_show_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="not a finished run folder"):
        show(tmp_path, [], None, 3, None, None)


def test_a_scaled_picture_keeps_keypoints_on_their_scaled_pixels():
    rng = np.random.default_rng(2)
    im0 = rng.integers(0, 255, (400, 600, 3), dtype=np.uint8)
    im1 = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    k0, k1 = np.array([[100.0, 80.0]]), np.array([[420.0, 260.0]])
    pic = viz.draw_matches(im0, im1, k0, k1, np.array([viz.RED], np.uint8), scale=0.5, antialias=False)
    assert pic.shape == (200, max(300 + viz.GAP + 250, viz.MIN_WIDTH), 3)
    assert tuple(pic[40, 50]) == viz.RED and tuple(pic[130, 210 + 300 + viz.GAP]) == viz.RED


def test_failed_samples_in_a_run_with_crashes(tmp_path, capsys, synthetic_classes):
    """A run whose matcher crashed on one pair and found too few matches on another: the report's
    pictures skip the crash (it crashes again) and keep the rest; ``show`` of the crash is one sentence."""
    from benchmark.cli import main

    from . import synthetic as S

    root = S.write_dataset(tmp_path / "data", scenes=2, pairs=4, modes={"sc0/001": S.RAISE, "sc1/002": S.FEW})
    run = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--method",
                "synthetic_matcher",
                "--dataset",
                "synthetic_pairs",
                "--output",
                str(run),
                "--no-progress",
                "--set",
                f"dataset.root={root}",
                "--set",
                f"run.cache_dir={tmp_path / 'c'}",
                "--set",
                "run.viz_worst=3",
                "--set",
                "run.bootstrap=20",
            ]
        )
        == 0
    )
    capsys.readouterr()
    text = (run / "report.html").read_text()
    assert len(list((run / "viz").glob("worst-*.jpg"))) == 3
    assert "synthetic matcher failure" in text and "too_few_matches" in text  # the failure reasons table
    assert main(["show", str(run), "--sample", "sc0/001"]) == 2
    err = capsys.readouterr().err
    assert "cannot be drawn: RuntimeError: synthetic matcher failure" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "run",
                "--method",
                "synthetic_matcher",
                "--dataset",
                "synthetic_pairs",
                "--set",
                f"dataset.root={root}",
                "--set",
                "run.viz_worst=many",
            ]
        )
        == 2
    )
    assert "run.viz_worst must be" in capsys.readouterr().err


class FixedMatchesGrey(FixedMatches):
    """FixedMatches reading its images grey, as SuperPoint-like readers do (tests only)."""

    image_reading = GRAY


def test_a_method_reading_grey_images_is_shown_grey(tmp_path, monkeypatch):
    sample = first_pair()
    matches = exact_matches(sample, OFFSETS)
    monkeypatch.setattr(FixedMatches, "matches", matches)
    run = write_run(tmp_path / "run", "fixed_matches_grey", "demo", [row(sample)])
    show(run, [], sample.id, None, None, tmp_path / "pair.png")
    pic = cv2.cvtColor(cv2.imread(str(tmp_path / "pair.png")), cv2.COLOR_BGR2RGB)
    grey = read_image(sample.image0, sample.resize0, reading=GRAY)
    np.testing.assert_array_equal(pic[:5, :5], np.repeat(grey[:5, :5, None], 3, axis=2))
    k0 = np.round(matches.kpts0[-1]).astype(int)
    assert tuple(pic[k0[1], k0[0]]) == viz.RED  # the lines keep their colours on the grey images
