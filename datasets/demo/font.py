"""A tiny bitmap font of our own, so the demo textures do not depend on a library's text rendering.

OpenCV's ``putText``/``getTextSize`` changed between releases (4.x Hershey metrics, 5.0 and 5.1 new
fonts with other widths); the texture generator lays out words until a line is full, so a
different text width meant a different number of random draws and every later texture changed.
Glyphs here are 5 x 9 cells (rows 0-6 above the baseline, 7-8 descenders), rendered by exact
supersampling with floor() of float64 products only: the same pixels on every machine and library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_UPPER = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "###.. #..#. #...# #...# #...# #..#. ###..",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    "-": "..... ..... ..... .###. ..... ..... .....",
    " ": "..... ..... ..... ..... ..... ..... .....",
}
_BLANK2 = "..... ....."
_LOWER = {  # nine rows: two above the x-height, five to the baseline, two descender rows
    "a": f"{_BLANK2} .###. ....# .#### #...# .#### {_BLANK2}",
    "b": f"#.... #.... ####. #...# #...# #...# ####. {_BLANK2}",
    "c": f"{_BLANK2} .###. #.... #.... #...# .###. {_BLANK2}",
    "d": f"....# ....# .#### #...# #...# #...# .#### {_BLANK2}",
    "e": f"{_BLANK2} .###. #...# ##### #.... .###. {_BLANK2}",
    "f": f"..##. .#..# .#... ###.. .#... .#... .#... {_BLANK2}",
    "g": f"{_BLANK2} .#### #...# #...# #...# .#### ....# .###.",
    "h": f"#.... #.... #.##. ##..# #...# #...# #...# {_BLANK2}",
    "i": f"..#.. ..... .##.. ..#.. ..#.. ..#.. .###. {_BLANK2}",
    "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
    "k": f"#.... #.... #..#. #.#.. ##... #.#.. #..#. {_BLANK2}",
    "l": f".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. {_BLANK2}",
    "m": f"{_BLANK2} ##.#. #.#.# #.#.# #...# #...# {_BLANK2}",
    "n": f"{_BLANK2} #.##. ##..# #...# #...# #...# {_BLANK2}",
    "o": f"{_BLANK2} .###. #...# #...# #...# .###. {_BLANK2}",
    "p": f"{_BLANK2} ####. #...# #...# #...# ####. #.... #....",
    "q": f"{_BLANK2} .#### #...# #...# #...# .#### ....# ....#",
    "r": f"{_BLANK2} #.##. ##..# #.... #.... #.... {_BLANK2}",
    "s": f"{_BLANK2} .#### #.... .###. ....# ####. {_BLANK2}",
    "t": f".#... .#... ###.. .#... .#... .#..# ..##. {_BLANK2}",
    "u": f"{_BLANK2} #...# #...# #...# #..## .##.# {_BLANK2}",
    "v": f"{_BLANK2} #...# #...# #...# .#.#. ..#.. {_BLANK2}",
    "w": f"{_BLANK2} #...# #...# #.#.# #.#.# .#.#. {_BLANK2}",
    "x": f"{_BLANK2} #...# .#.#. ..#.. .#.#. #...# {_BLANK2}",
    "y": f"{_BLANK2} #...# #...# #...# #...# .#### ....# .###.",
    "z": f"{_BLANK2} ##### ...#. ..#.. .#... ##### {_BLANK2}",
}
ROWS, COLS, CAP_ROWS = 9, 5, 7  # glyph cells; the baseline lies under row CAP_ROWS - 1
SUPERSAMPLE = 4  # samples per pixel side


def _bitmap(rows: str, count: int) -> np.ndarray:
    cells = rows.split()
    assert len(cells) == count and all(len(r) == COLS for r in cells), rows
    return np.array([[c == "#" for c in r] for r in cells], bool)


GLYPHS = {k: np.vstack([_bitmap(v, CAP_ROWS), np.zeros((ROWS - CAP_ROWS, COLS), bool)]) for k, v in _UPPER.items()}
GLYPHS.update({k: _bitmap(v, ROWS) for k, v in _LOWER.items()})


@dataclass(frozen=True)
class Style:
    bold: bool = False
    slant: float = 0.0  # horizontal shift per pixel of height above the baseline (italic)
    stretch: float = 1.0  # glyph width relative to its height


STYLES = (Style(), Style(bold=True), Style(stretch=1.25), Style(bold=True, stretch=0.85), Style(slant=0.2))


def _line_bitmap(text: str, bold: bool) -> np.ndarray:
    """The text as a (2 ROWS, n) boolean grid at half-cell resolution, one blank cell between glyphs."""
    gap = np.zeros((ROWS, 1), bool)
    glyphs = [GLYPHS.get(ch, GLYPHS[" "]) for ch in text]
    grid = np.hstack([part for g in glyphs for part in (g, gap)][:-1]) if glyphs else np.zeros((ROWS, 0), bool)
    fine = np.kron(grid, np.ones((2, 2), bool))
    if bold:  # widen every stroke by half a cell to the right
        fine[:, 1:] |= fine[:, :-1].copy()
    return fine


def advance(text: str, cap_px: float, style: Style = STYLES[0]) -> float:
    """Width in pixels of ``text`` set with capital height ``cap_px``."""
    return max(len(text) * (COLS + 1) - 1, 0) * cap_px / CAP_ROWS * style.stretch


def render(text: str, cap_px: float, style: Style = STYLES[0]):
    """Coverage (h, w) float32 in [0, 1] of ``text``, and the row of its baseline.

    The baseline is the bottom edge of cap row 6; descenders hang below it."""
    fine = _line_bitmap(text, style.bold)
    cell = cap_px / CAP_ROWS / 2  # height of one half-cell, pixels
    cell_w = cell * style.stretch
    ascent = CAP_ROWS * 2 * cell
    lean = style.slant * ascent
    h = int(np.ceil(ROWS * 2 * cell)) + 1
    w = int(np.ceil(fine.shape[1] * cell_w + lean)) + 1
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    ys = (np.arange(h)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(w)[:, None] + offsets[None, :]).reshape(-1)
    row = np.floor(ys / cell).astype(np.int64)
    col = np.floor((xs[None, :] - style.slant * (ascent - ys[:, None])) / cell_w).astype(np.int64)
    inside = (row[:, None] >= 0) & (row[:, None] < fine.shape[0]) & (col >= 0) & (col < fine.shape[1])
    hit = np.zeros(inside.shape, bool)
    rr, cc = np.nonzero(inside)
    hit[rr, cc] = fine[row[rr], col[rr, cc]]
    coverage = hit.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).sum(axis=(1, 3)) / SUPERSAMPLE**2
    return coverage.astype(np.float32), int(np.ceil(ascent))
