"""Fast Reciprocal Matching (FRM, MASt3R paper, Sec. 3.3) and the brute-force mutual-nearest-neighbour baseline.

Given two dense descriptor maps, a reciprocal (mutual nearest neighbour) pair is a pixel p1 of image 1 and a
pixel p2 of image 2 that are each other's nearest neighbour in descriptor space. The brute-force way finds the
nearest neighbour of *every* pixel in both directions, i.e. H1*W1 + H2*W2 exhaustive searches.

FRM only starts from a sparse set of pixels of image 1: a regular grid (every ``subsample`` pixels, from
``subsample // 2``, as the official code) or explicit start points. Each start point follows a chain
p1 -> p2 = NN_2(p1) -> p1' = NN_1(p2) -> ... . A chain stops as soon as it closes a cycle (p2 or p1 is unchanged
from the previous round): the point it sits on is then a mutual pair. Points still moving after ``max_iter``
rounds are dropped. Most chains close within a couple of rounds and the number of moving points collapses
quickly, so the cost is about (start points) x (a few) searches instead of one search per pixel.

How this implementation keeps the results of the official ``fast_reciprocal_NNs`` (dot engine) while doing less:
- it searches only for the points still moving, each distinct pixel once per run: results are memoised per
  pixel and direction, so several chains crossing the same pixel share one search;
- a search is a blocked matrix product (``block_queries`` x ``block_base`` tiles, bounded memory). On the CPU
  only the maximum of each tile is kept at first (cheaper than a maximum with its index); the arg-max is then
  taken inside the first tile holding the row maximum. Lowest index wins ties, as in the official torch engine;
- every tile has at least 2 rows and the same width (the last tile overlaps the previous one), so each
  similarity is the same floating-point number whatever the batch: a memoised answer equals a recomputed one.
  The official code computes a lone query row as a matrix-vector product, whose rounding differs; that row is
  computed the same way here, so near-ties resolve as in the official output.
Bookkeeping (chains, convergence tests, the ``pixel_tol`` rule, de-duplication and (idx1, idx2) ordering of
the output) follows the official semantics; see ../shared/fixtures/mast3r/frm/README.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmark.errors import UserError

OFFICIAL_BLOCK = 8192  # block_size passed by the official MASt3R callers; decides which rows it computes alone
DEFAULT_GRID_ITERS, DEFAULT_START_ITERS = 10, 1  # official caps: grid start / explicit start points
_BLOCKS = {"cpu": (512, 8192), "cuda": (4096, 16384)}  # (queries, base pixels) per tile: 16 MB / 256 MB


class FRMTrace(list):
    """Points still moving: before the first iteration, then after each one (the fixture ``_trace``).

    Also carries ``seconds`` (wall time of each iteration), ``nn_queries`` (exhaustive searches actually run)
    and ``nn_lookups`` (nearest-neighbour look-ups the official loop performs, repeats included).
    """

    def __init__(self, moving=(), seconds=(), nn_queries: int = 0, nn_lookups: int = 0):
        super().__init__(int(m) for m in moving)
        self.seconds = [float(s) for s in seconds]
        self.nn_queries = int(nn_queries)
        self.nn_lookups = int(nn_lookups)

    @property
    def moving(self) -> list[int]:
        return list(self)

    def __repr__(self) -> str:
        return (
            f"FRMTrace(moving={list(self)}, seconds={[round(s, 4) for s in self.seconds]}, "
            f"nn_queries={self.nn_queries}, nn_lookups={self.nn_lookups})"
        )


@dataclass
class ReciprocalMatches:
    """Pairs sorted by (idx1, idx2). ``xy*``: (N, 2) int64 pixel (x, y); ``idx*``: (N,) int64 flat y*W + x.
    Brute force also fills ``nn12`` (nearest pixel of image 2 for every pixel of image 1, flat) and ``nn21``."""

    xy1: np.ndarray
    xy2: np.ndarray
    idx1: np.ndarray
    idx2: np.ndarray
    trace: FRMTrace = field(default_factory=FRMTrace)
    nn12: np.ndarray | None = None
    nn21: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.idx1)


class _Searcher:
    """Exhaustive nearest neighbours of query vectors among the rows of ``base`` (N, D), in tiles."""

    def __init__(self, base: torch.Tensor, dist: str, block_queries: int, block_base: int, base_first: bool = False):
        self.base, self.dist, self.n = base, dist, len(base)
        self.base_t = base.T.contiguous() if dist == "dot" else None
        self.block_queries = max(4, block_queries)  # >= 4 lets every equal split keep >= 2 rows
        self.width = max(1, min(block_base, self.n))
        # l2 distances are not symmetric to the last bit: base_first computes them as cdist(base, queries)
        self.base_first = base_first
        starts = list(range(0, self.n - self.width + 1, self.width))
        if starts[-1] + self.width < self.n:
            starts.append(self.n - self.width)  # overlapping last tile: same width everywhere
        self.starts = starts

    def _scores(self, queries: torch.Tensor, start: int) -> torch.Tensor:
        """Similarities (higher is nearer) of queries (m, D) to the tile of base rows starting at ``start``."""
        stop = start + self.width
        if self.dist == "dot":
            return torch.mm(queries, self.base_t[:, start:stop])
        if self.base_first:
            return torch.cdist(self.base[start:stop], queries).T.neg()
        return torch.cdist(queries, self.base[start:stop]).neg_()

    def search(self, queries: torch.Tensor) -> np.ndarray:
        """Index of the nearest base row for each query row (m, D) -> (m,) int64; ties: lowest index."""
        m = len(queries)
        if m == 0:
            return np.zeros(0, np.int64)
        if m == 1:  # a 1-row product takes a matrix-vector path with another rounding; keep >= 2 rows
            queries = queries.repeat(2, 1)
        blocks = torch.tensor_split(queries, math.ceil(len(queries) / self.block_queries))
        search = self._merged if queries.device.type != "cpu" else self._winning_tiles
        return torch.cat([search(block) for block in blocks])[:m].cpu().numpy()

    def _merged(self, block: torch.Tensor) -> torch.Tensor:
        """Running (best value, index) over the tiles; the strict test keeps the earlier tile on ties."""
        best = torch.full((len(block),), -math.inf, dtype=block.dtype, device=block.device)
        arg = torch.zeros(len(block), dtype=torch.int64, device=block.device)
        for start in self.starts:
            top, idx = self._scores(block, start).max(dim=1)  # first maximum in the tile
            better = top > best
            best, arg = torch.where(better, top, best), torch.where(better, idx + start, arg)
        return arg

    def _winning_tiles(self, block: torch.Tensor) -> torch.Tensor:
        """CPU: a maximum without index is ~2x cheaper, so first only the maximum of every tile, then the
        arg-max inside the first winning tile, recomputed for the rows it won. Every product has >= 2 rows
        and the same width, so the recomputed numbers are the same; rows where they are not (a BLAS whose
        rounding depends on the batch) are redone with the merged search."""
        tile_max = torch.stack([self._scores(block, start).amax(dim=1) for start in self.starts])
        winner = tile_max.max(dim=0).indices.numpy()  # first tile reaching the row maximum
        arg = torch.empty(len(block), dtype=torch.int64)
        for tile in np.unique(winner):
            rows = torch.from_numpy(np.flatnonzero(winner == tile))
            queries = block[rows] if len(rows) > 1 else block[rows].repeat(2, 1)
            top, idx = self._scores(queries, self.starts[tile])[: len(rows)].max(dim=1)
            arg[rows] = idx + self.starts[tile]
            redo = rows[top != tile_max[tile, rows]]
            if len(redo):
                arg[redo] = self._merged(block[redo].repeat(2, 1))[: len(redo)]
        return arg

    def search_alone(self, query: torch.Tensor, n_official: int) -> int:
        """Nearest base row of one query computed as the official computes a lone row: a matrix-vector
        product over the whole base, or over its 8192-row blocks when the official tiles the search."""
        chunk = self.n if n_official * self.n <= OFFICIAL_BLOCK**2 else OFFICIAL_BLOCK
        best, arg = -math.inf, -1
        for start in range(0, self.n, chunk):
            part = self.base[start : start + chunk]
            if self.dist == "dot":
                scores = query[None] @ part.T
            else:
                scores = -(torch.cdist(part, query[None]).T if self.base_first else torch.cdist(query[None], part))
            i = int(scores[0].argmax())
            if float(scores[0, i]) > best:
                best, arg = float(scores[0, i]), start + i
        return arg


def _lone_row(count: int, n_base: int) -> int | None:
    """Position (in the official query batch) of the row the official engine computes on its own, if any."""
    if count == 1:
        return 0
    if count * n_base > OFFICIAL_BLOCK**2 and count % OFFICIAL_BLOCK == 1:
        return count - 1
    return None


def _lookup(pixels: np.ndarray, memo: np.ndarray, searcher: _Searcher, source: torch.Tensor) -> tuple[np.ndarray, int]:
    """Nearest neighbours of source[pixels] (the official batch, in order) -> (neighbours, searches run)."""
    result = np.empty(len(pixels), np.int64)
    regular = np.ones(len(pixels), bool)
    runs = 0
    lone = _lone_row(len(pixels), searcher.n)
    if lone is not None:
        regular[lone] = False
        result[lone] = searcher.search_alone(source[int(pixels[lone])], len(pixels))
        runs += 1
    wanted = pixels[regular]
    todo = np.unique(wanted[memo[wanted] < 0])
    if len(todo):
        memo[todo] = searcher.search(source[torch.from_numpy(todo).to(source.device)])
        runs += len(todo)
    result[regular] = memo[wanted]
    return result, runs


def _prepare(desc1, desc2, dist: str, device) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple, torch.device]:
    if dist not in ("dot", "l2"):
        raise UserError(f"dist={dist!r} is not supported; use 'dot' (inner product) or 'l2' (Euclidean).")
    maps = []
    for name, d in (("desc1", desc1), ("desc2", desc2)):
        d = torch.as_tensor(d)
        if d.ndim != 3 or min(d.shape) < 1 or not d.is_floating_point():
            raise UserError(
                f"{name} must be a non-empty floating-point (H, W, D) descriptor map, "
                f"got shape {tuple(d.shape)} and dtype {d.dtype}."
            )
        maps.append(d)
    if maps[0].shape[2] != maps[1].shape[2]:
        raise UserError(
            f"desc1 and desc2 must have the same descriptor size, got {maps[0].shape[2]} and {maps[1].shape[2]}."
        )
    device = torch.device(device) if device is not None else maps[0].device
    flat = [m.to(device).reshape(-1, m.shape[2]).contiguous() for m in maps]
    if flat[0].dtype != flat[1].dtype:
        flat[1] = flat[1].to(flat[0].dtype)
    if not all(bool(torch.isfinite(f).all()) for f in flat):
        raise UserError("desc1 and desc2 must contain only finite values (found NaN or inf).")
    return flat[0], flat[1], tuple(maps[0].shape[:2]), tuple(maps[1].shape[:2]), device


def _blocks(device: torch.device, block_queries: int | None, block_base: int | None) -> tuple[int, int]:
    default = _BLOCKS["cuda" if device.type == "cuda" else "cpu"]
    return block_queries or default[0], block_base or default[1]


def _start_pixels(subsample, start_xy, shape1: tuple) -> np.ndarray:
    """Flat start indices, unique and ascending, like the official code."""
    h1, w1 = shape1
    if start_xy is None:
        if isinstance(subsample, (bool, np.bool_)) or not isinstance(subsample, (int, np.integer)) or subsample < 1:
            raise UserError(f"subsample must be a positive integer grid step, got {subsample!r}.")
        step = int(subsample)
        ys, xs = np.mgrid[step // 2 : h1 : step, step // 2 : w1 : step].reshape(2, -1)
    else:
        xs, ys = (np.asarray(v.cpu() if torch.is_tensor(v) else v) for v in start_xy)
        if xs.shape != ys.shape or xs.ndim != 1 or not all(np.issubdtype(v.dtype, np.integer) for v in (xs, ys)):
            raise UserError("start points must be a pair (x, y) of 1-D integer arrays of equal length.")
        if len(xs) and (xs.min() < 0 or ys.min() < 0 or xs.max() >= w1 or ys.max() >= h1):
            raise UserError(f"start points must lie inside image 1 ({w1}x{h1} pixels, 0 <= x < W, 0 <= y < H).")
    return np.unique(xs.astype(np.int64) + w1 * ys.astype(np.int64))


def _pairs(idx1: np.ndarray, idx2: np.ndarray, shape1: tuple, shape2: tuple) -> tuple[np.ndarray, ...]:
    """Unique pairs sorted by (idx1, idx2) -> xy1, xy2, idx1, idx2."""
    n2 = shape2[0] * shape2[1]
    key = np.unique(idx1.astype(np.int64) * n2 + idx2.astype(np.int64))
    idx1, idx2 = key // n2, key % n2
    xy1 = np.stack([idx1 % shape1[1], idx1 // shape1[1]], axis=1)
    xy2 = np.stack([idx2 % shape2[1], idx2 // shape2[1]], axis=1)
    return xy1, xy2, idx1, idx2


@torch.no_grad()
def fast_reciprocal_matching(
    desc1,
    desc2,
    subsample=8,
    max_iter: int | None = None,
    *,
    start_xy=None,
    pixel_tol: float = 0,
    dist: str = "dot",
    device=None,
    early_stop: bool = True,
    block_queries: int | None = None,
    block_base: int | None = None,
) -> ReciprocalMatches:
    """Reciprocal matches of two descriptor maps (H1, W1, D) and (H2, W2, D) (torch tensors or numpy arrays).

    subsample: grid step for the start points in image 1; an (x, y) pair of integer arrays is also accepted
        here (as the official ``subsample_or_initxy1``) and means explicit start points, like ``start_xy``.
    max_iter: cap on the iterations; default 10 for a grid, 1 for explicit start points (the official caps).
    pixel_tol: 0 keeps the chains that closed. > 0 keeps the chains whose p1 moved less than ``pixel_tol``
        pixels during the last iteration; with explicit start points the p1 from before that iteration is
        reported (for 1 iteration: the start pixel itself), as the official code.
    dist: 'dot' (largest inner product, what MASt3R uses on unit descriptors) or 'l2' (smallest distance).
    device: where the searches run (default: that of desc1). early_stop: stop once no point moves (official);
        False runs all ``max_iter`` iterations (the extra ones record 0 moving points).
    block_queries, block_base: tile size of the searches (memory ~ their product); results do not depend on it.
    Returns ReciprocalMatches with ``trace`` (an FRMTrace).
    """
    if start_xy is None and isinstance(subsample, (tuple, list)):
        subsample, start_xy = None, subsample
    if not isinstance(pixel_tol, (int, float, np.integer, np.floating)) or pixel_tol < 0:
        raise UserError(f"pixel_tol must be a number >= 0, got {pixel_tol!r}.")
    flat1, flat2, shape1, shape2, device = _prepare(desc1, desc2, dist, device)
    starts = _start_pixels(subsample, start_xy, shape1)
    if max_iter is None:
        max_iter = DEFAULT_GRID_ITERS if start_xy is None else DEFAULT_START_ITERS
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise UserError(f"max_iter must be a positive integer, got {max_iter!r}.")
    bq, bb = _blocks(device, block_queries, block_base)
    to_image2 = _Searcher(flat2, dist, bq, bb)
    to_image1 = _Searcher(flat1, dist, bq, bb)
    memo12 = np.full(len(flat1), -1, np.int64)
    memo21 = np.full(len(flat2), -1, np.int64)

    p1, p2 = starts.copy(), np.full(len(starts), -1, np.int64)
    prev1, prev2 = p1.copy(), p2.copy()
    moving = np.ones(len(starts), bool)
    counts, seconds, runs, lookups = [len(starts)], [], 0, 0
    for iteration in range(1, max_iter + 1):
        if early_stop and not moving.any():
            break
        tic = time.perf_counter()
        rows = np.flatnonzero(moving)
        p2[rows], n = _lookup(p1[rows], memo12, to_image2, flat1)
        runs, lookups = runs + n, lookups + len(rows)
        moving &= p2 != prev2
        rows = np.flatnonzero(moving)
        p1[rows], n = _lookup(p2[rows], memo21, to_image1, flat2)
        runs, lookups = runs + n, lookups + len(rows)
        moving &= p1 != prev1
        counts.append(int(moving.sum()))
        seconds.append(time.perf_counter() - tic)
        if iteration < max_iter:  # the official loop leaves "previous" as is when it hits the cap
            prev1[:], prev2[:] = p1, p2

    if pixel_tol > 0:
        w1 = shape1[1]
        moved = np.sqrt(((prev1 // w1 - p1 // w1) ** 2 + (prev1 % w1 - p1 % w1) ** 2).astype(np.float64))
        keep = moved < pixel_tol
        if start_xy is not None:
            p1 = prev1
    else:
        keep = ~moving
    xy1, xy2, idx1, idx2 = _pairs(p1[keep], p2[keep], shape1, shape2)
    return ReciprocalMatches(xy1, xy2, idx1, idx2, FRMTrace(counts, seconds, runs, lookups))


@torch.no_grad()
def brute_force_reciprocal(
    desc1, desc2, *, dist: str = "dot", device=None, block_queries: int | None = None, block_base: int | None = None
) -> ReciprocalMatches:
    """Mutual nearest neighbours over all pixels: nearest pixel of image 2 for every pixel of image 1
    (``nn12``) and the reverse (``nn21``), by the same tiled search as FRM; pairs i with nn21[nn12[i]] == i."""
    flat1, flat2, shape1, shape2, device = _prepare(desc1, desc2, dist, device)
    bq, bb = _blocks(device, block_queries, block_base)
    tic = time.perf_counter()
    nn12 = _Searcher(flat2, dist, bq, bb).search(flat1)
    nn21 = _Searcher(flat1, dist, bq, bb, base_first=True).search(flat2)
    idx1 = np.flatnonzero(nn21[nn12] == np.arange(len(nn12)))
    xy1, xy2, idx1, idx2 = _pairs(idx1, nn12[idx1], shape1, shape2)
    trace = FRMTrace([], [time.perf_counter() - tic], len(flat1) + len(flat2), len(flat1) + len(flat2))
    return ReciprocalMatches(xy1, xy2, idx1, idx2, trace, nn12, nn21)
