"""Mutual nearest neighbours with the ratio test, against the definition on the full similarity matrix."""

import numpy as np
import pytest
import torch

from methods.nn import mutual_nn_ratio


def by_definition(d0, d1, ratio, mutual, max_distance):
    sim = d0 @ d1.T
    order = np.argsort(-sim, axis=1, kind="stable")
    dist = np.sqrt(np.maximum(2 - 2 * np.take_along_axis(sim, order[:, :2], axis=1), 0))
    keep = np.ones(len(d0), bool)
    if ratio is not None:
        keep &= dist[:, 0] < ratio * dist[:, 1]
    if mutual:
        keep &= np.argmax(sim, axis=0)[order[:, 0]] == np.arange(len(d0))
    if max_distance is not None:
        keep &= dist[:, 0] <= max_distance
    return np.flatnonzero(keep), order[keep, 0]


@pytest.mark.parametrize(
    "ratio, mutual, max_distance, block",
    [(0.8, True, 0.7, 4096), (None, True, None, 7), (0.9, False, None, 5), (0.95, True, None, 1)],
)
def test_matches_follow_the_definition(ratio, mutual, max_distance, block):
    rng = np.random.default_rng(0)
    d0 = rng.standard_normal((60, 16)).astype(np.float32)
    d1 = np.concatenate([d0[::2] + 0.2 * rng.standard_normal((30, 16)), rng.standard_normal((15, 16))]).astype(
        np.float32
    )
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    pairs, dist = mutual_nn_ratio(d0, d1, ratio=ratio, mutual=mutual, max_distance=max_distance, block=block)
    i0, i1 = by_definition(d0, d1, ratio, mutual, max_distance)
    assert len(pairs) > 5
    np.testing.assert_array_equal(pairs, np.stack([i0, i1], axis=1))
    np.testing.assert_allclose(dist, np.linalg.norm(d0[i0] - d1[i1], axis=1), atol=1e-3)
    same, _ = mutual_nn_ratio(
        torch.from_numpy(d0), torch.from_numpy(d1), ratio=ratio, mutual=mutual, max_distance=max_distance, block=block
    )  # CPU tensors of learned features
    np.testing.assert_array_equal(same, pairs)


def test_empty_and_single_candidate():
    d = np.eye(3, dtype=np.float32)
    assert mutual_nn_ratio(d[:0], d)[0].shape == (0, 2)
    pairs, _ = mutual_nn_ratio(d, d[:1])  # one candidate: no ratio test possible, mutual only
    np.testing.assert_array_equal(pairs, [[0, 0]])
