"""Coarse-to-fine matching for images larger than the network's resolution (MASt3R paper, Sec. 3.4).

1. **Coarse**: both images downscaled to the network size (long side 512) and matched once.
2. **Windows**: each full-resolution image is covered by a grid of overlapping windows with the image's
   aspect ratio, long side ``window`` pixels (sides multiples of 16, so a window is fed to the network
   without any resize), consecutive windows overlapping by at least ``overlap`` of their size.
3. **Selection**: a window pair (a in image 1, b in image 2) *covers* a coarse match when its two ends lie
   in a and b. Window pairs are chosen greedily, each time the one covering most coarse matches not yet
   covered, until every coarse match is covered, or the best pair would add fewer than ``min_matches``,
   or ``max_pairs`` pairs are chosen.
4. **Fine**: every chosen window pair is matched at full resolution; keypoints are moved back to the full
   images by the window offsets; the union is de-duplicated (one match per pixel of image 1 and one per
   pixel of image 2, the highest-scoring one wins).

Predicted 3D points come from the window each match was found in. A window's point map has its own
scale, so each window pair's points are rescaled to the coarse prediction (median ratio of the coarse
to the fine depth of image 1 at the window pair's matches), which puts all of them in one frame: view 1's
camera at the coarse scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[self.y0 : self.y1, self.x0 : self.x1])

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Points (x, y) in full-image pixels whose pixel lies in this window."""
        x, y = np.floor(xy[:, 0] + 0.5), np.floor(xy[:, 1] + 0.5)
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)


def _starts(total: int, size: int, overlap: float) -> list[int]:
    """Window starts from 0 to total - size, evenly spaced, consecutive windows sharing >= overlap * size."""
    last = total - size
    if last <= 0:
        return [0]
    step = size * (1.0 - overlap)
    count = int(np.ceil(last / step)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, last, count)})


def window_grid(width: int, height: int, window: int = 512, overlap: float = 0.5) -> list[Window]:
    """Overlapping windows covering a (width x height) image, row-major from the top-left."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    longest = max(width, height)
    scale = min(1.0, window / longest)
    ww = max(16, int(width * scale) // 16 * 16)
    wh = max(16, int(height * scale) // 16 * 16)
    ww, wh = min(ww, width // 16 * 16 or width), min(wh, height // 16 * 16 or height)
    return [Window(x, y, x + ww, y + wh) for y in _starts(height, wh, overlap) for x in _starts(width, ww, overlap)]


def select_window_pairs(
    kpts1: np.ndarray,
    kpts2: np.ndarray,
    windows1: list[Window],
    windows2: list[Window],
    min_matches: int = 10,
    max_pairs: int = 16,
) -> list[tuple[int, int, int]]:
    """Greedy cover of the coarse matches by window pairs -> [(index in windows1, index in windows2, newly
    covered matches)], in the order chosen."""
    if len(kpts1) == 0:
        return []
    in1 = np.stack([w.contains(kpts1) for w in windows1], 1)  # (N, K1)
    in2 = np.stack([w.contains(kpts2) for w in windows2], 1)  # (N, K2)
    uncovered = np.ones(len(kpts1), bool)
    chosen = []
    while uncovered.any() and len(chosen) < max_pairs:
        counts = (in1 & uncovered[:, None]).T.astype(np.int64) @ in2.astype(np.int64)  # (K1, K2)
        a, b = np.unravel_index(int(np.argmax(counts)), counts.shape)  # first maximum: deterministic
        gain = int(counts[a, b])
        if gain < max(1, min_matches):
            break
        chosen.append((int(a), int(b), gain))
        uncovered &= ~(in1[:, a] & in2[:, b])
    return chosen


def deduplicate(kpts1: np.ndarray, kpts2: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices to keep so each pixel of image 1 and each pixel of image 2 ends one match at most (highest
    score first; ties by input order), returned in ascending order."""
    order = np.argsort(-scores, kind="stable")
    keep = order
    for kpts in (kpts1, kpts2):
        pix = np.floor(kpts[keep] + 0.5).astype(np.int64)
        _, first = np.unique(pix, axis=0, return_index=True)
        keep = keep[np.sort(first)]
    return np.sort(keep)


def rescale_to(reference_depth: np.ndarray, depth: np.ndarray) -> float:
    """Median of reference / own depth over the points where both are positive (1 when none are)."""
    ok = np.isfinite(reference_depth) & np.isfinite(depth) & (reference_depth > 0) & (depth > 0)
    return float(np.median(reference_depth[ok] / depth[ok])) if ok.any() else 1.0


def sample_map(values: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """An (H, W) map at points (x, y) in its pixels, nearest pixel; NaN outside."""
    h, w = values.shape
    x, y = np.floor(xy[:, 0] + 0.5).astype(np.int64), np.floor(xy[:, 1] + 0.5).astype(np.int64)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    out = np.full(len(xy), np.nan)
    out[inside] = values[y[inside], x[inside]]
    return out
