"""The vectorised bootstrap gives exactly the intervals of the loop it replaced (resampled tables
summarised one by one), for every protocol, on tables with ties, failures, NaNs and missing groups."""

import numpy as np
import pandas as pd
import pytest

from benchmark.bootstrap import bootstrap, draw_scenes
from benchmark.protocols import PROTOCOLS


def loop_bootstrap(df, summarize, n, seed, level=0.95):
    """The implementation the vectorised one replaced, as it was."""
    scenes = df["scene"].unique()
    if n <= 0 or len(scenes) < 2:
        return {}
    groups = {s: g for s, g in df.groupby("scene", sort=False)}
    rng = np.random.default_rng(seed)
    draws = {}
    for _ in range(n):
        pick = rng.choice(scenes, size=len(scenes), replace=True)
        sample = pd.concat([groups[s].assign(scene=f"{s}#{i}") for i, s in enumerate(pick)], ignore_index=True)
        for k, v in summarize(sample).items():
            if isinstance(v, (int, float, np.floating)) and np.isfinite(v):
                draws.setdefault(k, []).append(float(v))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws.items() if len(v) >= n // 2}


def scene_sizes(rng, n_scenes):
    return [(f"scene{s}", int(rng.integers(1, 12))) for s in range(n_scenes)]


def mapfree_table(rng, n_scenes):
    rows = []
    for scene, size in scene_sizes(rng, n_scenes):
        dead = rng.random() < 0.15  # a scene without any estimate
        for _ in range(size):
            ok = not dead and rng.random() < 0.8
            err = [rng.exponential(0.3), rng.exponential(6), rng.exponential(80)]
            if ok and rng.random() < 0.05:
                err[1] = np.nan  # the arcsin NaN at 180 deg
            conf = float(rng.integers(0, 30)) if rng.random() < 0.7 else rng.random() * 30  # many ties
            rows.append(
                {
                    "scene": scene,
                    "status": "ok" if ok else "solver_failed",
                    "trans_err_m": err[0] if ok else np.nan,
                    "rot_err_deg": err[1] if ok else np.nan,
                    "vcre_px": err[2] if ok else np.nan,
                    "confidence": conf if ok else np.nan,
                }
            )
    return pd.DataFrame(rows)


def relpose_table(rng, n_scenes):
    rows = []
    for scene, size in scene_sizes(rng, n_scenes):
        for _ in range(size):
            fail = rng.random() < 0.15
            rows.append(
                {
                    "scene": scene,
                    "err_R_deg": np.inf if fail else rng.exponential(8),
                    "err_t_deg": np.nan if fail else rng.exponential(12),
                    "epi_precision": np.nan if fail else rng.random(),
                    "matching_score": rng.random(),
                }
            )
    return pd.DataFrame(rows)


def rra_table(rng, n_scenes, with_category=True):
    rows = []
    for s, (scene, size) in enumerate(scene_sizes(rng, n_scenes)):
        category = f"cat{rng.integers(0, 4)}" if s % 5 else np.nan  # some sequences without a category
        for _ in range(size):
            row = {"scene": scene, "rre_deg": rng.exponential(10), "rte_deg": rng.exponential(15)}
            if rng.random() < 0.1:
                row["rre_deg"] = row["rte_deg"] = np.nan
            if with_category:
                row["category"] = np.nan if rng.random() < 0.2 else category
            rows.append(row)
    return pd.DataFrame(rows)


def aachen_table(rng, n_scenes, ground_truth=True):
    rows = []
    for scene, size in scene_sizes(rng, n_scenes):
        condition = rng.choice(["day", "night", "dusk"])
        for i in range(size):
            ok = rng.random() < 0.8
            row = {
                "scene": scene,
                "sample_id": f"query/{condition}/cam/{scene}_{i}.jpg",
                "status": "ok" if ok else "too_few_matches",
            }
            if ground_truth:
                row.update(
                    trans_err_m=rng.exponential(0.5) if ok else np.inf, rot_err_deg=rng.exponential(3) if ok else np.nan
                )
            rows.append(row)
    return pd.DataFrame(rows)


CASES = {
    "mapfree": mapfree_table,
    "relpose": relpose_table,
    "rra": rra_table,
    "rra_scenes": lambda rng, n: rra_table(rng, n, with_category=False),
    "aachen": aachen_table,
    "aachen_no_gt": lambda rng, n: aachen_table(rng, n, ground_truth=False),
}


def check_equal_to_the_loop(case, n_scenes, runs):
    rng = np.random.default_rng(len(case) * 100 + n_scenes)
    df = CASES[case](rng, n_scenes)
    protocol = PROTOCOLS[case.split("_")[0]]
    for seed, n in runs:
        expected = loop_bootstrap(df, protocol.summarize, n, seed)
        got = bootstrap(df, protocol, n, seed)
        assert list(got) == list(expected)  # same metrics, same order (summary.json)
        assert got == expected  # bit for bit


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("n_scenes", [2, 9])
def test_vectorised_bootstrap_equals_the_loop(case, n_scenes):
    check_equal_to_the_loop(case, n_scenes, ((0, 20), (7, 9)))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_vectorised_bootstrap_equals_the_loop_many_scenes(case):
    check_equal_to_the_loop(case, 37, ((0, 200), (5, 101)))


def test_draws_equal_one_choice_per_resample():
    for n_scenes in (2, 9, 65, 300):
        rng = np.random.default_rng(3)
        expected = np.array([rng.choice(n_scenes, size=n_scenes, replace=True) for _ in range(20)])
        np.testing.assert_array_equal(draw_scenes(n_scenes, 20, 3), expected)


def test_small_chunks_change_nothing(monkeypatch):
    import benchmark.bootstrap as B

    df = mapfree_table(np.random.default_rng(1), 9)
    whole = bootstrap(df, PROTOCOLS["mapfree"], 50, 0)
    monkeypatch.setattr(B, "CHUNK_ELEMENTS", 1)  # one resample at a time
    assert bootstrap(df, PROTOCOLS["mapfree"], 50, 0) == whole


@pytest.mark.parametrize("case", list(CASES))
def test_resampled_scene_subsets_equal_the_loop(case):
    """``compare`` resamples the scenes two runs share, in A's order: the fast path on a subset of the
    table's scenes, listed in another order than the table's, gives the loop's values."""
    from benchmark.bootstrap import reference_draws, resample_draws

    df = CASES[case](np.random.default_rng(11), 9)
    protocol = PROTOCOLS[case.split("_")[0]]
    scenes = list(pd.unique(df["scene"]))[::-2]  # every other scene, reversed
    picks = draw_scenes(len(scenes), 30, 4)
    fast = resample_draws(df, protocol, scenes, picks)
    slow = reference_draws(df[df["scene"].isin(scenes)], protocol.summarize, scenes, picks)
    assert set(slow) <= set(fast)
    for k, v in slow.items():
        np.testing.assert_array_equal(np.where(np.isfinite(fast[k]), fast[k], np.nan), v, err_msg=k)


def test_paired_intervals_use_the_shared_scenes_of_both_runs():
    from benchmark.bootstrap import reference_draws
    from benchmark.compare import paired_intervals

    rng = np.random.default_rng(5)
    a = mapfree_table(rng, 8)
    b = mapfree_table(rng, 8)
    b = b[b["scene"] != "scene3"]  # B lacks a scene: it is left out of both sides
    protocol = PROTOCOLS["mapfree"]
    got = paired_intervals(a, b, protocol, 40, 2)
    scenes = [s for s in pd.unique(a["scene"]) if s != "scene3"]
    picks = draw_scenes(len(scenes), 40, 2)
    da, db = (reference_draws(df[df["scene"].isin(scenes)], protocol.summarize, scenes, picks) for df in (a, b))
    assert got and set(got) <= set(da)
    for k, (lo, hi) in got.items():
        d = db[k] - da[k]
        d = d[np.isfinite(d)]
        assert [lo, hi] == [float(np.percentile(d, (1 - 0.95) * 50)), float(np.percentile(d, (1 + 0.95) * 50))]
