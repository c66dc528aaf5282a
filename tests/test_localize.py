"""localize_query on synthetic references with exact geometry: lifting (nearest observation, MASt3R-style
pointmap), pooling over references, PnP with a distorted query camera, caching, failures."""

import copy

import cv2
import numpy as np
import pytest

from benchmark.config import PROJECT_ROOT, load_yaml
from benchmark.errors import SampleError, UserError
from benchmark.estimators import to_pycolmap_camera
from benchmark.geometry import rotation_angle_deg
from benchmark.localize import lift_reference_points, localize_query
from benchmark.types import OK, TOO_FEW_MATCHES, Camera, Matches, QuerySample, Reference
from datasets.aachen_mini import pose_from
from methods.base import Matcher

QUERY_CAMERA = Camera("SIMPLE_RADIAL", 320, 240, (250.0, 159.5, 119.5, -0.05))
REF_CAMERA = Camera.pinhole(260.0, 262.0, 159.5, 119.5, 320, 240)


def project(camera: Camera, T: np.ndarray, X: np.ndarray) -> np.ndarray:
    """OpenCV pixels of world points (pycolmap does the distortion)."""
    return to_pycolmap_camera(camera).img_from_cam(X @ T[:3, :3].T + T[:3, 3]) - 0.5


class TableMatcher(Matcher):
    """Returns prepared matches; the images' first pixel says which reference is image 0."""

    name = "table"

    def __init__(self, table):
        super().__init__({})
        self.table = table
        self.calls = 0

    def _match(self, image0, image1):
        self.calls += 1
        return copy.deepcopy(self.table[int(image0[0, 0, 0])])


class DictCache:
    def __init__(self):
        self.store = {}

    def get(self, key):
        return self.store.get(key)

    def put(self, key, matches):
        self.store[key] = matches


def _solver_conf(**extra):
    conf = load_yaml(PROJECT_ROOT / "configs/default.yaml")["solver"]
    conf["ransac"]["max_error"] = 4.0
    conf.update(extra)
    return conf


def _scene(tmp_path, observed_fraction=0.6, predict_scale=None, outliers=0.0, seed=0):
    """Three references and a query looking at random points; matches = true projections (+ outliers)."""
    rng = np.random.default_rng(seed)
    X = np.stack([rng.uniform(-4, 4, 2000), rng.uniform(-2, 2, 2000), rng.uniform(6, 12, 2000)], axis=1)
    T_query = pose_from((0.3, -0.1, 0.5), 4.0, -2.0)
    T_refs = [pose_from((x, 0.1, 0.0), yaw) for x, yaw in ((-1.0, 6.0), (0.8, -5.0), (1.6, -9.0))]
    X = X[_isolated([project(REF_CAMERA, T, X) for T in T_refs], 300)]
    refs, table = [], {}
    for k, T in enumerate(T_refs, start=1):
        image = tmp_path / f"db{k}.png"
        cv2.imwrite(str(image), np.full((8, 8, 3), k, np.uint8))
        p_ref, p_query = project(REF_CAMERA, T, X), project(QUERY_CAMERA, T_query, X)
        observed = rng.random(len(X)) < observed_fraction
        refs.append(Reference(f"db/{k}.jpg", image, REF_CAMERA, T, p_ref[observed], X[observed]))
        wrong = rng.random(len(X)) < outliers
        p_query[wrong] = rng.uniform(0, 240, (wrong.sum(), 2))
        pts3d = None if predict_scale is None else predict_scale * (X @ T[:3, :3].T + T[:3, 3])
        table[k] = Matches(p_ref, p_query, np.ones(len(X)), pts3d0=pts3d)
    query = tmp_path / "query.png"
    cv2.imwrite(str(query), np.full((8, 8, 3), 200, np.uint8))
    sample = QuerySample("query/day/cam/q.jpg", "day/cam", query, QUERY_CAMERA, refs, T_w2c=T_query)
    return sample, TableMatcher(table), X


def _isolated(projections, count, min_px=6.0):
    """Indices of ``count`` points that are at least ``min_px`` from each other in every view, so that
    the nearest map observation of a keypoint is always its own."""
    keep = []
    for i in range(len(projections[0])):
        if all(np.linalg.norm(p[keep] - p[i], axis=1).min(initial=np.inf) >= min_px for p in projections):
            keep.append(i)
        if len(keep) == count:
            return np.array(keep)
    raise AssertionError("not enough isolated points")


def _pose_errors(estimate, T):
    c_est, c_gt = -estimate.R.T @ estimate.t, -T[:3, :3].T @ T[:3, 3]
    return np.linalg.norm(c_est - c_gt), rotation_angle_deg(estimate.R @ T[:3, :3].T)


@pytest.mark.parametrize("absolute", ["pnp", "poselib"])
def test_nearest_lifting_pools_references_and_finds_the_pose(tmp_path, absolute):
    sample, matcher, _ = _scene(tmp_path, outliers=0.25)
    cache = DictCache()
    est, pooled, t_match, cached = localize_query(sample, matcher, cache, _solver_conf(absolute=absolute), seed=1)
    assert est.status == OK and not cached and matcher.calls == 3 and t_match >= 0
    dt, dr = _pose_errors(est, sample.T_w2c)
    assert dt < 1e-3 and dr < 1e-3
    assert len(pooled) == 900 and len(est.inliers) == 900
    assert 0.4 * 900 < est.num_inliers == est.inliers.sum() < 0.6 * 900  # 60 % observed, 25 % outliers
    assert est.confidence == est.num_inliers
    again, _, _, cached = localize_query(sample, matcher, cache, _solver_conf(absolute=absolute), seed=1)
    assert cached and matcher.calls == 3 and again.num_inliers == est.num_inliers


@pytest.mark.parametrize("absolute", ["pnp", "poselib"])
def test_pointmap_lifting_uses_the_matchers_3d_up_to_scale(tmp_path, absolute):
    sample, matcher, X = _scene(tmp_path, observed_fraction=0.05, predict_scale=0.37)
    ref, matches = sample.references[0], matcher.table[1]
    lifted = lift_reference_points(ref, matches, 2.0, "auto")
    np.testing.assert_allclose(lifted, X, atol=1e-9)  # every keypoint, not only the 5 % observed
    nearest = lift_reference_points(ref, matches, 2.0, "nearest")
    assert np.isfinite(nearest).all(1).sum() == len(ref.points3d)
    est, _, _, _ = localize_query(sample, matcher, None, _solver_conf(absolute=absolute), seed=0)
    assert est.ok and est.num_inliers == 900
    assert max(_pose_errors(est, sample.T_w2c)) < 1e-4
    # too few anchors for a scale: only the observed points are used
    few = Reference(ref.name, ref.image, ref.camera, ref.T_w2c, ref.points2d[:3], ref.points3d[:3])
    assert np.isfinite(lift_reference_points(few, matches, 2.0, "pointmap")).all(1).sum() == 3


def test_lifting_radius(tmp_path):
    sample, matcher, _ = _scene(tmp_path, observed_fraction=1.0)
    ref = sample.references[0]
    m = Matches(ref.points2d[:2] + [[1.9, 0.0], [0.0, 2.1]], ref.points2d[:2], np.ones(2))
    lifted = lift_reference_points(ref, m, 2.0)
    np.testing.assert_allclose(lifted[0], ref.points3d[0])
    assert np.isnan(lifted[1]).all()


def test_failures_are_reported(tmp_path):
    sample, matcher, _ = _scene(tmp_path)
    empty = [
        Reference(r.name, r.image, r.camera, r.T_w2c, np.zeros((0, 2)), np.zeros((0, 3))) for r in sample.references
    ]
    bare = QuerySample(sample.id, sample.scene, sample.image, sample.camera, empty)
    est, pooled, _, _ = localize_query(bare, matcher, None, _solver_conf(), seed=0)
    assert est.status == TOO_FEW_MATCHES and "observes any map point" in est.reason and pooled is None
    far = copy.deepcopy(sample)
    for r in far.references:
        r.points2d = r.points2d + 1000.0  # nothing within the radius
    est, pooled, _, _ = localize_query(far, matcher, None, _solver_conf(), seed=0)
    assert est.status == TOO_FEW_MATCHES and "900 matches over 3 references, 0 lifted to 3D" in est.reason
    with pytest.raises(
        UserError,
        match="Unknown solver.absolute 'essential'; known solvers for absolute pose against a map: pnp, poselib",
    ):
        localize_query(sample, matcher, None, _solver_conf(absolute="essential"), seed=0)
    with pytest.raises(SampleError, match="solver.lift=pointmap needs a method that predicts 3D points"):
        localize_query(sample, matcher, None, _solver_conf(lift="pointmap"), seed=0)
    with pytest.raises(SampleError, match="solver.lift must be one of"):
        localize_query(sample, matcher, None, _solver_conf(lift="bilinear"), seed=0)
