"""Fast Reciprocal Matching and the brute-force baseline against the official outputs
(../shared/fixtures/mast3r/frm) and, for other sizes, a literal transcription of the official loop."""

import numpy as np
import pytest
import torch

from benchmark.errors import UserError
from methods.mast3r.frm import brute_force_reciprocal, fast_reciprocal_matching

ITERS = (1, 2, 3, 5, 10)


@pytest.fixture(scope="module")
def frm_fixture(shared_dir):
    path = shared_dir / "fixtures/mast3r/frm/frm.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent (the official FRM reference outputs)")
    z = np.load(path)
    return {k: z[k] for k in z.files}


@pytest.mark.parametrize("engine,dist", [("dot", "dot"), ("kdtree", "l2")])
@pytest.mark.parametrize("iters", ITERS)
def test_official_matches_and_trace_for_every_iteration_cap(frm_fixture, engine, dist, iters):
    z = frm_fixture
    m = fast_reciprocal_matching(
        torch.from_numpy(z["desc1"]), torch.from_numpy(z["desc2"]), subsample=8, max_iter=iters, dist=dist
    )
    np.testing.assert_array_equal(m.xy1, z[f"{engine}_it{iters}_xy1"])
    np.testing.assert_array_equal(m.xy2, z[f"{engine}_it{iters}_xy2"])
    assert m.xy1.dtype == np.int64 and m.xy1.shape[1] == 2
    assert list(m.trace) == z[f"{engine}_it{iters}_trace"].tolist()
    assert len(m.trace.seconds) == len(m.trace) - 1
    assert m.trace.nn_queries <= m.trace.nn_lookups


def test_default_cap_flat_indices_and_explicit_start_points(frm_fixture):
    z = frm_fixture
    d1, d2 = torch.from_numpy(z["desc1"]), torch.from_numpy(z["desc2"])
    m = fast_reciprocal_matching(d1, d2, 8)
    np.testing.assert_array_equal(m.xy1, z["dot_default_xy1"])
    np.testing.assert_array_equal(m.xy2, z["dot_default_xy2"])
    np.testing.assert_array_equal(m.idx1, z["dot_retxyF_idx1"])
    np.testing.assert_array_equal(m.idx2, z["dot_retxyF_idx2"])
    start = (z["pixtol_init_x"], z["pixtol_init_y"])
    tol5 = fast_reciprocal_matching(d1, d2, start, pixel_tol=5)
    np.testing.assert_array_equal(tol5.xy1, z["dot_pixtol_xy1"])
    np.testing.assert_array_equal(tol5.xy2, z["dot_pixtol_xy2"])
    tol0 = fast_reciprocal_matching(d1, d2, start_xy=start)
    np.testing.assert_array_equal(tol0.xy1, z["dot_initxy_tol0_xy1"])
    np.testing.assert_array_equal(tol0.xy2, z["dot_initxy_tol0_xy2"])


@pytest.mark.parametrize("dist", ["dot", "l2"])
def test_brute_force_equals_the_official_one(frm_fixture, dist):
    z = frm_fixture
    bf = brute_force_reciprocal(torch.from_numpy(z["desc1"]), torch.from_numpy(z["desc2"]), dist=dist)
    np.testing.assert_array_equal(bf.nn12, z[f"bf_{dist}_nn12"])
    np.testing.assert_array_equal(bf.nn21, z[f"bf_{dist}_nn21"])
    np.testing.assert_array_equal(bf.xy1, z[f"bf_{dist}_mutual_xy1"])
    np.testing.assert_array_equal(bf.xy2, z[f"bf_{dist}_mutual_xy2"])
    # tiles smaller than the images give the same answer (bounded memory)
    small = brute_force_reciprocal(
        torch.from_numpy(z["desc1"]), torch.from_numpy(z["desc2"]), dist=dist, block_queries=100, block_base=257
    )
    np.testing.assert_array_equal(small.nn12, bf.nn12)
    np.testing.assert_array_equal(small.nn21, bf.nn21)


# ----------------------------------------------------------------------------- other sizes
def smooth_descriptors(h1, w1, h2, w2, dim, seed):
    """Like the fixture's: a smooth random field, view 2 a shifted crop of it, noise, unit norm."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    H, W = max(h1, h2) + 8, max(w1, w2) + 8
    field = gaussian_filter(rng.standard_normal((H, W, dim)), sigma=(3, 3, 0))
    field /= field.std()
    a = field[:h1, :w1] + 1.0 * rng.standard_normal((h1, w1, dim))
    b = field[3 : 3 + h2, 5 : 5 + w2] + 1.0 * rng.standard_normal((h2, w2, dim))
    out = [x / np.linalg.norm(x, axis=-1, keepdims=True) for x in (a, b)]
    return [torch.from_numpy(x.astype(np.float32)) for x in out]


def official_loop(desc1, desc2, step, cap, dist="dot"):
    """The official algorithm as the fixture README describes it, one exhaustive search per look-up."""
    h1, w1, d = desc1.shape
    h2, w2, _ = desc2.shape
    f1, f2 = desc1.reshape(-1, d), desc2.reshape(-1, d)

    def nn(base, queries):
        if dist == "dot":
            return (queries @ base.T).argmax(1).numpy()
        return torch.cdist(queries, base).argmin(1).numpy()

    ys, xs = np.mgrid[step // 2 : h1 : step, step // 2 : w1 : step].reshape(2, -1)
    p1 = np.unique(xs + w1 * ys)
    p2 = np.full(len(p1), -1)
    old1, old2 = p1.copy(), p2.copy()
    active = np.ones(len(p1), bool)
    trace, n = [len(p1)], 0
    while True:
        rows = np.flatnonzero(active)
        p2[rows] = nn(f2, f1[p1[rows]])
        active[rows] = p2[rows] != old2[rows]
        rows = np.flatnonzero(active)
        p1[rows] = nn(f1, f2[p2[rows]])
        active[rows] = p1[rows] != old1[rows]
        trace.append(int(active.sum()))
        n += 1
        if n >= cap:
            break
        old1, old2 = p1.copy(), p2.copy()
        if not active.any():
            break
    key = np.unique(p1[~active] * (h2 * w2) + p2[~active])
    i1, i2 = key // (h2 * w2), key % (h2 * w2)
    return np.stack([i1 % w1, i1 // w1], 1), np.stack([i2 % w2, i2 // w2], 1), trace


@pytest.mark.parametrize(
    "shape,step,cap,dist",
    [
        ((37, 53, 41, 29), 8, 10, "dot"),  # sizes not multiples of the step, two different images
        ((64, 48, 64, 48), 4, 3, "dot"),  # portrait, dense grid, cap hit with points still moving
        ((30, 90, 45, 60), 16, 1, "dot"),
        ((50, 40, 40, 50), 8, 10, "l2"),
        ((9, 11, 12, 7), 2, 10, "dot"),  # tiny images, a single-row tile
    ],
)
def test_equals_the_official_loop_on_other_sizes(shape, step, cap, dist):
    h1, w1, h2, w2 = shape
    d1, d2 = smooth_descriptors(h1, w1, h2, w2, 16, seed=sum(shape) + step)
    xy1, xy2, trace = official_loop(d1, d2, step, cap, dist)
    m = fast_reciprocal_matching(d1, d2, subsample=step, max_iter=cap, dist=dist)
    np.testing.assert_array_equal(m.xy1, xy1)
    np.testing.assert_array_equal(m.xy2, xy2)
    assert list(m.trace) == trace
    # the result does not depend on the tiling; numpy input is accepted
    tiled = fast_reciprocal_matching(
        d1.numpy(), d2.numpy(), subsample=step, max_iter=cap, dist=dist, block_queries=5, block_base=7
    )
    np.testing.assert_array_equal(tiled.xy1, xy1)
    np.testing.assert_array_equal(tiled.xy2, xy2)


def test_frm_matches_are_mutual_pairs_and_cheaper_than_brute_force():
    d1, d2 = smooth_descriptors(60, 80, 60, 80, 24, seed=3)
    m = fast_reciprocal_matching(d1, d2, subsample=8)
    bf = brute_force_reciprocal(d1, d2)
    mutual = set(zip(bf.idx1.tolist(), bf.idx2.tolist()))
    assert len(m) > 20 and all(p in mutual for p in zip(m.idx1.tolist(), m.idx2.tolist()))
    assert m.trace.nn_queries < bf.trace.nn_queries / 5
    assert m.trace[-1] == 0  # converged before the cap here


def test_early_stop_off_runs_every_iteration_with_the_same_matches():
    d1, d2 = smooth_descriptors(40, 40, 40, 40, 16, seed=5)
    a = fast_reciprocal_matching(d1, d2, 8, max_iter=10)
    b = fast_reciprocal_matching(d1, d2, 8, max_iter=10, early_stop=False)
    np.testing.assert_array_equal(a.xy1, b.xy1)
    assert len(b.trace) == 11 and b.trace[len(a.trace) - 1 :] == [0] * (12 - len(a.trace))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(subsample=0), "subsample must be a positive integer"),
        (dict(max_iter=0), "max_iter must be a positive integer"),
        (dict(dist="cos"), "dist='cos' is not supported"),
        (dict(pixel_tol=-1), "pixel_tol must be a number >= 0"),
    ],
)
def test_bad_parameters_are_one_sentence(kwargs, message):
    d1, d2 = smooth_descriptors(16, 16, 16, 16, 8, seed=0)
    with pytest.raises(UserError, match=message):
        fast_reciprocal_matching(d1, d2, **kwargs)


def test_descriptor_sizes_must_agree():
    with pytest.raises(UserError, match="same descriptor size"):
        fast_reciprocal_matching(torch.zeros(8, 8, 4), torch.zeros(8, 8, 5))
    with pytest.raises(UserError, match=r"\(H, W, D\) descriptor map"):
        brute_force_reciprocal(torch.zeros(8, 4), torch.zeros(8, 8, 4))
