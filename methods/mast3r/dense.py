"""From the network's dense outputs of one pair to pixel correspondences (network-image pixels).

* :func:`descriptor_matches` (MASt3R): reciprocal nearest neighbours of the local descriptors, by Fast
  Reciprocal Matching (or the all-pixels brute force), as the official visual-localization code does:
  a 3-pixel border is dropped in both images (descriptors there are unreliable, the official callers
  drop it too);
* :func:`seeded_descriptor_matches` (MASt3R's localization with a map, ``visloc.py`` with ``pixel_tol`` > 0):
  FRM started from given pixels of image 1 (the map observations), one round, kept when the round trip
  comes back within ``pixel_tol`` pixels, the start pixel reported; no border is dropped there;
* :func:`pointmap_matches` (DUSt3R): reciprocal nearest neighbours in 3D between the two point maps,
  both expressed in view 1's frame, among the pixels whose confidence passes the threshold (the DUSt3R
  paper's matching; exact with a KD-tree).

Both return a :class:`DenseMatches` holding, per match, the pixel in each image, a score (the smaller of
the two confidences: a match is only as good as its weaker end) and the predicted 3D point of each end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .frm import brute_force_reciprocal, fast_reciprocal_matching


@dataclass
class DenseMatches:
    xy1: np.ndarray  # (N, 2) int64 (x, y) in network image 1
    xy2: np.ndarray  # (N, 2) int64 in network image 2
    scores: np.ndarray  # (N,) float64
    pts3d1: np.ndarray | None  # (N, 3) view-1 frame (None when the points are not wanted)
    pts3d2: np.ndarray | None  # (N, 3) view-1 frame as well
    stats: dict = field(default_factory=dict)  # trace of the reciprocal search, seconds

    def __len__(self) -> int:
        return len(self.xy1)

    def subset(self, keep) -> "DenseMatches":
        def pick(a):
            return None if a is None else a[keep]

        return DenseMatches(
            self.xy1[keep], self.xy2[keep], self.scores[keep], pick(self.pts3d1), pick(self.pts3d2), self.stats
        )


def _first(res: dict, key: str) -> torch.Tensor:
    """The first pair of a batch of outputs, as float32 (autocast may have given half precision)."""
    return res[key][0].float()


def _at(maps: torch.Tensor, xy: np.ndarray) -> np.ndarray:
    """Values of an (H, W[, C]) map at integer pixels (x, y)."""
    flat = torch.from_numpy(xy[:, 1] * maps.shape[1] + xy[:, 0]).to(maps.device)
    values = maps.reshape(maps.shape[0] * maps.shape[1], *maps.shape[2:])[flat]
    return values.cpu().numpy().astype(np.float64)


def _inside(xy: np.ndarray, width: int, height: int, border: int) -> np.ndarray:
    return (xy[:, 0] >= border) & (xy[:, 0] < width - border) & (xy[:, 1] >= border) & (xy[:, 1] < height - border)


def _points(res: dict) -> torch.Tensor:
    """The point map of either view (view 2's is called ``pts3d_in_other_view``)."""
    return _first(res, "pts3d" if "pts3d" in res else "pts3d_in_other_view")


def _finish(xy1, xy2, conf1, conf2, pts1, pts2, threshold: float, stats: dict) -> DenseMatches:
    """Scores (the smaller confidence), points (None when ``pts1`` is None) and the threshold on both ends."""
    c1, c2 = _at(conf1, xy1), _at(conf2, xy2)
    with_points = pts1 is not None
    out = DenseMatches(
        xy1,
        xy2,
        np.minimum(c1, c2),
        _at(pts1, xy1) if with_points else None,
        _at(pts2, xy2) if with_points else None,
        stats,
    )
    return out.subset((c1 >= threshold) & (c2 >= threshold))


def _stats(found) -> dict:
    trace = found.trace
    return {"moving": list(trace), "seconds": float(sum(trace.seconds)), "nn_queries": trace.nn_queries}


def descriptor_matches(
    res1: dict,
    res2: dict,
    *,
    subsample: int = 8,
    max_iter: int = 10,
    early_stop: bool = True,
    brute_force: bool = False,
    border: int = 3,
    conf_threshold: float = 0.0,
    dist: str = "dot",
    points: bool = True,
) -> DenseMatches:
    """MASt3R: reciprocal descriptor matches of one pair (outputs of the network, batch item 0); FRM starts
    from the grid on ``res1``'s image, whichever view of the network it was.

    Scores are the descriptor confidences (``desc_conf``); ``conf_threshold`` applies to both ends.
    ``points=False`` leaves the 3D points out."""
    desc1, desc2 = _first(res1, "desc"), _first(res2, "desc")
    if brute_force:
        found = brute_force_reciprocal(desc1, desc2, dist=dist)
    else:
        found = fast_reciprocal_matching(
            desc1, desc2, subsample=subsample, max_iter=max_iter, dist=dist, early_stop=early_stop
        )
    (h1, w1), (h2, w2) = desc1.shape[:2], desc2.shape[:2]
    keep = _inside(found.xy1, w1, h1, border) & _inside(found.xy2, w2, h2, border)
    return _finish(
        found.xy1[keep],
        found.xy2[keep],
        _first(res1, "desc_conf"),
        _first(res2, "desc_conf"),
        _points(res1) if points else None,
        _points(res2) if points else None,
        conf_threshold,
        _stats(found),
    )


def seeded_descriptor_matches(
    res1: dict,
    res2: dict,
    starts: np.ndarray,
    *,
    pixel_tol: float,
    conf_threshold: float = 0.0,
    dist: str = "dot",
    points: bool = True,
) -> DenseMatches:
    """MASt3R's map-seeded matching: FRM from the pixels ``starts`` (M, 2) of ``res1``'s image with the
    official cap for explicit start points (one round) and ``pixel_tol``; matches are reported at their
    start pixel. Scores and ``conf_threshold`` as :func:`descriptor_matches`; no border is dropped."""
    desc1, desc2 = _first(res1, "desc"), _first(res2, "desc")
    starts = np.asarray(starts, np.int64).reshape(-1, 2)
    if len(starts):
        found = fast_reciprocal_matching(
            desc1, desc2, start_xy=(starts[:, 0], starts[:, 1]), pixel_tol=pixel_tol, dist=dist
        )
        xy1, xy2, stats = found.xy1, found.xy2, _stats(found)
    else:  # nothing of the map is in view: no matches
        xy1 = xy2 = np.zeros((0, 2), np.int64)
        stats = {"moving": [0], "seconds": 0.0, "nn_queries": 0}
    return _finish(
        xy1,
        xy2,
        _first(res1, "desc_conf"),
        _first(res2, "desc_conf"),
        _points(res1) if points else None,
        _points(res2) if points else None,
        conf_threshold,
        stats,
    )


def pointmap_matches(res1: dict, res2: dict, *, conf_threshold: float = 3.0, border: int = 0) -> DenseMatches:
    """DUSt3R: mutual nearest neighbours in 3D between the two point maps (confident pixels only)."""
    import time

    from scipy.spatial import cKDTree

    tic = time.perf_counter()
    pts1, pts2 = _first(res1, "pts3d"), _first(res2, "pts3d_in_other_view")
    conf1, conf2 = _first(res1, "conf"), _first(res2, "conf")
    candidates = []
    for pts, conf in ((pts1, conf1), (pts2, conf2)):
        h, w = conf.shape
        ys, xs = np.mgrid[0:h, 0:w].reshape(2, -1)
        xy = np.stack([xs, ys], 1)
        p = pts.reshape(-1, 3).cpu().numpy().astype(np.float64)
        ok = (conf.reshape(-1).cpu().numpy() >= conf_threshold) & np.isfinite(p).all(1) & _inside(xy, w, h, border)
        candidates.append((np.flatnonzero(ok), p[ok], w))
    (i1, p1, w1), (i2, p2, w2) = candidates
    if len(i1) == 0 or len(i2) == 0:
        empty = np.zeros((0, 2), np.int64)
        return DenseMatches(
            empty, empty, np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), {"seconds": time.perf_counter() - tic}
        )
    nn12 = cKDTree(p2).query(p1, k=1)[1]
    nn21 = cKDTree(p1).query(p2, k=1)[1]
    mutual = np.flatnonzero(nn21[nn12] == np.arange(len(p1)))
    a, b = i1[mutual], i2[nn12[mutual]]
    xy1 = np.stack([a % w1, a // w1], 1).astype(np.int64)
    xy2 = np.stack([b % w2, b // w2], 1).astype(np.int64)
    stats = {"seconds": time.perf_counter() - tic, "nn_queries": len(p1) + len(p2)}
    return _finish(xy1, xy2, conf1, conf2, pts1, pts2, conf_threshold, stats)
