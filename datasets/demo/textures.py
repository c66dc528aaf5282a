"""Procedural surface textures for the demo scenes.

Every generator takes ``(rng, h, w, tpm)`` (a numpy Generator, the size in texels and the
texels per metre, so that bricks or planks keep their real size) and returns an sRGB float32
image (h, w, 3) in [0, 1]. Row 0 is the top of a wall (or the far edge of a floor) as the
scene builder lays the surface out. Only numpy and OpenCV's shape drawing and resizing are used;
text comes from our own bitmap font (:mod:`datasets.demo.font`), because OpenCV's text metrics
change between releases and decided how many random draws a texture made.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import font as glyphs

FONTS = glyphs.STYLES
SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ster",
    "ven",
    "ra",
    "tor",
    "bel",
    "qui",
    "no",
    "sa",
    "dre",
    "fin",
    "ga",
    "mor",
    "lu",
    "pex",
    "tra",
    "zen",
    "co",
    "har",
    "bi",
    "nel",
    "vo",
    "wik",
    "ost",
)
PAPER_COLORS = (
    (0.93, 0.91, 0.86),
    (0.15, 0.18, 0.25),
    (0.85, 0.35, 0.25),
    (0.20, 0.45, 0.55),
    (0.95, 0.80, 0.30),
    (0.30, 0.55, 0.35),
    (0.60, 0.25, 0.45),
    (0.90, 0.55, 0.20),
)


def fbm(rng, h: int, w: int, cell: float, octaves: int = 4, gain: float = 0.5, stretch: float = 1.0):
    """Unit-variance fractal value noise; ``cell`` is the coarsest feature size in texels
    (``stretch`` > 1 elongates features along x, as in wood grain)."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        cy, cx = max(cell, 1.0), max(cell * stretch, 1.0)
        gh, gw = int(h / cy) + 4, int(w / cx) + 4
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        big = cv2.resize(grid, (int(np.ceil(gw * cx)), int(np.ceil(gh * cy))), interpolation=cv2.INTER_CUBIC)
        out += amp * big[:h, :w]
        amp *= gain
        cell /= 2.0
    return (out - out.mean()) / (out.std() + 1e-6)


def word(rng, lo: int = 1, hi: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES, size=int(rng.integers(lo, hi + 1))))


def put_text(
    canvas, text: str, x: float, y: float, height_px: float, color, font=None, rng=None, max_width: float | None = None
):
    """Blend text (baseline at x, y; capital height ``height_px``, shrunk to fit ``max_width``) into a
    float canvas; returns its width. ``font`` is a :class:`font.Style` (random when ``rng`` is given)."""
    style = font if font is not None else (FONTS[int(rng.integers(len(FONTS)))] if rng is not None else FONTS[0])
    cap = max(height_px, 3.0)
    if max_width:
        cap = min(cap, max_width / max(glyphs.advance(text, 1.0, style), 1e-9))
    coverage, baseline = glyphs.render(text, cap, style)
    x0, y0 = int(x), int(y) - baseline
    top, left = max(-y0, 0), max(-x0, 0)
    y1, x1 = min(y0 + coverage.shape[0], canvas.shape[0]), min(x0 + coverage.shape[1], canvas.shape[1])
    if y1 > y0 + top and x1 > x0 + left:
        alpha = coverage[top : y1 - y0, left : x1 - x0, None]
        region = canvas[y0 + top : y1, x0 + left : x1]
        region[:] = region * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return int(round(glyphs.advance(text, cap, style)))


def _grid(h, w):
    return np.mgrid[0:h, 0:w].astype(np.float32)


def _tint(rng, color, spread):
    return np.clip(np.asarray(color, np.float32) * (1 + spread * rng.standard_normal(3)), 0, 1)


def plaster(rng, h, w, tpm, color=(0.85, 0.83, 0.78), skirting=True, outlets=2):
    """Painted wall: blotchy paint, fine grain, a skirting board, sockets and switches."""
    shade = 1 + 0.035 * fbm(rng, h, w, 0.6 * tpm, 3) + 0.025 * fbm(rng, h, w, 0.02 * tpm, 2)
    img = np.asarray(color, np.float32) * shade[..., None]
    if skirting:
        sk = int(0.08 * tpm)
        img[h - sk :] = 0.92 * (1 + 0.02 * fbm(rng, sk, w, 0.05 * tpm, 2))[..., None]
        img[h - sk : h - sk + 2] *= 0.7
    for _ in range(outlets):
        x = int(rng.uniform(0.1, 0.9) * w)
        y = h - int((0.3 if rng.random() < 0.5 else 1.1) * tpm)
        s = int(0.08 * tpm)
        cv2.rectangle(img, (x, y), (x + s, y + s), (0.95, 0.95, 0.93), -1)
        cv2.rectangle(img, (x, y), (x + s, y + s), (0.6, 0.6, 0.6), 1, cv2.LINE_AA)
        cv2.circle(img, (x + s // 3, y + s // 2), max(1, s // 10), (0.2, 0.2, 0.2), -1, cv2.LINE_AA)
        cv2.circle(img, (x + 2 * s // 3, y + s // 2), max(1, s // 10), (0.2, 0.2, 0.2), -1, cv2.LINE_AA)
    return img


def planks(rng, h, w, tpm, color=(0.62, 0.43, 0.26), width_m=0.14):
    """Wooden floor boards running along x: per-board tint, warped growth rings, dark joints."""
    yy, xx = _grid(h, w)
    pw = width_m * tpm
    row = np.floor(yy / pw).astype(np.int32)
    nrow = int(row.max()) + 1
    length = rng.uniform(0.9, 1.6, nrow).astype(np.float32)[row] * tpm
    shift = rng.uniform(0, 1.6, nrow).astype(np.float32)[row] * tpm
    xs = xx + shift
    board = row * 4099 + np.floor(xs / length).astype(np.int32)
    table = rng.uniform(-1, 1, (8192, 2)).astype(np.float32)
    tint, phase = table[board % 8192, 0], table[board % 8192, 1]
    warp = fbm(rng, h, w, 0.25 * tpm, 3, stretch=6.0)
    rings = np.sin(2 * np.pi * ((yy - row * pw) / (0.03 * tpm) + 1.5 * warp + 3 * phase))
    streak = fbm(rng, h, w, 0.006 * tpm, 2, stretch=30.0)
    value = 0.78 + 0.09 * np.sign(rings) * np.abs(rings) ** 0.5 + 0.05 * streak + 0.12 * tint
    img = np.asarray(color, np.float32) * value[..., None]
    joint = ((yy - row * pw) < 1.5) | ((xs % length) < 1.5)
    img[joint] *= 0.35
    return np.clip(img, 0, 1)


def bricks(rng, h, w, tpm, palette=((0.62, 0.27, 0.18), (0.55, 0.22, 0.15), (0.70, 0.38, 0.25), (0.45, 0.25, 0.20))):
    """Running-bond brickwork with per-brick colour, bevelled edges, mortar and grime."""
    yy, xx = _grid(h, w)
    bw, bh, m = 0.215 * tpm, 0.065 * tpm, 0.011 * tpm
    row = np.floor(yy / (bh + m)).astype(np.int32)
    xs = xx + (row % 2) * 0.5 * (bw + m)
    col = np.floor(xs / (bw + m)).astype(np.int32)
    lx, ly = xs - col * (bw + m), yy - row * (bh + m)
    ident = (row * 7919 + col * 104729) % 4096
    pal = np.asarray(palette, np.float32)
    colors = pal[rng.integers(len(pal), size=4096)] * rng.uniform(0.8, 1.15, (4096, 1)).astype(np.float32)
    edge = np.minimum(np.minimum(lx, bw - lx), np.minimum(ly, bh - ly))
    bevel = np.clip(edge / (0.006 * tpm), 0, 1) ** 0.4
    speck = 1 + 0.09 * fbm(rng, h, w, 0.015 * tpm, 2)
    img = colors[ident] * (speck * (0.75 + 0.25 * bevel))[..., None]
    mortar = (lx > bw) | (ly > bh)
    mort = np.array((0.70, 0.68, 0.63), np.float32) * (1 + 0.08 * fbm(rng, h, w, 0.01 * tpm, 2))[..., None]
    img[mortar] = mort[mortar] * 0.85
    grime = 1 - 0.12 * np.clip(fbm(rng, h, w, 0.8 * tpm, 3), 0, None) - 0.15 * np.clip(yy / h - 0.8, 0, 1) / 0.2
    return np.clip(img * grime[..., None], 0, 1)


def tiles(rng, h, w, tpm, size_m=0.45, color=(0.80, 0.78, 0.74), veins=True):
    """Square stone tiles with grout lines and per-tile rotated marble veins."""
    yy, xx = _grid(h, w)
    s, g = size_m * tpm, max(1.5, 0.004 * tpm)
    r, c = np.floor(yy / s).astype(np.int32), np.floor(xx / s).astype(np.int32)
    ident = (r * 131 + c * 977) % 1024
    angle = rng.uniform(0, np.pi, 1024).astype(np.float32)[ident]
    tint = rng.uniform(0.9, 1.08, 1024).astype(np.float32)[ident]
    img = np.asarray(color, np.float32) * (tint * (1 + 0.04 * fbm(rng, h, w, 0.1 * tpm, 3)))[..., None]
    if veins:
        u = xx * np.cos(angle) + yy * np.sin(angle)
        wave = np.abs(np.sin(2 * np.pi * u / (0.3 * tpm) + 4 * fbm(rng, h, w, 0.2 * tpm, 4)))
        img *= (1 - 0.35 * (1 - wave) ** 10)[..., None]
    grout = ((yy - r * s) < g) | ((xx - c * s) < g)
    img[grout] = np.array((0.45, 0.43, 0.40), np.float32)
    return np.clip(img, 0, 1)


def fabric(rng, h, w, tpm, color=(0.30, 0.35, 0.55), plaid=True):
    """Woven cloth: fine fibre noise, soft folds and (optionally) a plaid of coloured stripes."""
    yy, xx = _grid(h, w)
    img = np.empty((h, w, 3), np.float32)
    img[:] = color
    if plaid:
        for axis, coord in ((0, xx), (1, yy)):
            period = rng.uniform(0.08, 0.16) * tpm
            stripe = _tint(rng, PAPER_COLORS[int(rng.integers(len(PAPER_COLORS)))], 0.1)
            band = (coord % period) / period < rng.uniform(0.15, 0.3)
            img[band] = 0.55 * img[band] + 0.45 * stripe
    shade = 1 + 0.07 * fbm(rng, h, w, 0.004 * tpm + 1, 1) + 0.06 * fbm(rng, h, w, 0.3 * tpm, 2)
    return np.clip(img * shade[..., None], 0, 1)


def _scribble_photo(rng, canvas, x0, y0, x1, y1):
    """A small landscape 'photo': sky gradient, sun, two mountain ridges, a lake."""
    h, w = y1 - y0, x1 - x0
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    canvas[y0:y1, x0:x1] = (1 - t) * np.array((0.35, 0.55, 0.85)) + t * np.array((0.95, 0.85, 0.70))
    sun = (x0 + int(rng.uniform(0.2, 0.8) * w), y0 + int(0.25 * h))
    cv2.circle(canvas, sun, max(2, w // 12), (1, 0.9, 0.5), -1, cv2.LINE_AA)
    for level, color in ((0.45, (0.35, 0.40, 0.55)), (0.6, (0.20, 0.35, 0.22))):
        xs = np.linspace(x0, x1, 12)
        ys = y0 + h * (level + 0.12 * np.cumsum(rng.standard_normal(12)) / 3)
        poly = np.concatenate([np.stack([xs, ys], 1), [[x1, y1], [x0, y1]]]).astype(np.int32)
        cv2.fillPoly(canvas, [poly], color, cv2.LINE_AA)
    cv2.rectangle(canvas, (x0, y0 + int(0.8 * h)), (x1, y1), (0.25, 0.45, 0.6), -1)


def poster(rng, h, w, tpm, frame=(0.95, 0.95, 0.95)):
    """A printed poster: coloured background, shapes, a photo, a title and lines of small text."""
    bg = np.asarray(PAPER_COLORS[int(rng.integers(len(PAPER_COLORS)))], np.float32)
    ink = (0.08, 0.08, 0.1) if bg.mean() > 0.5 else (0.97, 0.95, 0.9)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.ascontiguousarray(bg * (1.05 - 0.15 * t) * np.ones((1, w, 3), np.float32))
    for _ in range(int(rng.integers(5, 12))):
        color = tuple(float(v) for v in rng.uniform(0.05, 0.95, 3))
        cx, cy, r = int(rng.uniform(0, w)), int(rng.uniform(0, h)), int(rng.uniform(0.05, 0.25) * w)
        kind, thick = int(rng.integers(3)), (-1 if rng.random() < 0.6 else max(2, w // 60))
        if kind == 0:
            cv2.circle(img, (cx, cy), r, color, thick, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), color, thick, cv2.LINE_AA)
        else:
            pts = (np.array([cx, cy]) + rng.uniform(-r, r, (3, 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    if rng.random() < 0.7:
        py0, px0 = int(rng.uniform(0.3, 0.45) * h), int(0.1 * w)
        _scribble_photo(rng, img, px0, py0, w - px0, py0 + int(0.3 * h))
    put_text(img, word(rng, 2, 3).upper(), 0.08 * w, 0.2 * h, 0.09 * w, ink, rng=rng, max_width=0.84 * w)
    put_text(img, word(rng, 1, 3).capitalize() + " " + word(rng), 0.08 * w, 0.27 * h, 0.04 * w, ink, rng=rng)
    y = 0.78 * h
    while y < 0.93 * h:
        x = 0.08 * w
        while x < 0.8 * w:
            x += put_text(img, word(rng), x, y, 0.018 * w, ink, font=FONTS[0]) + 0.02 * w
        y += 0.035 * w
    m = max(2, int(0.03 * w))
    img[:m], img[-m:], img[:, :m], img[:, -m:] = frame, frame, frame, frame
    return np.clip(img * (1 + 0.02 * fbm(rng, h, w, 2.0, 1))[..., None], 0, 1)


def books(rng, h, w, tpm):
    """A row of book spines seen from the front: varying widths/heights, bands and vertical titles."""
    img = np.ascontiguousarray(np.full((h, w, 3), 0.08, np.float32))
    x = 0
    while x < w:
        bw = int(rng.uniform(0.018, 0.05) * tpm)
        bh = int(rng.uniform(0.72, 1.0) * h)
        color = _tint(rng, PAPER_COLORS[int(rng.integers(len(PAPER_COLORS)))], 0.2)
        spine = img[h - bh :, x : x + bw]
        spine[:] = color * (0.85 + 0.15 * np.sin(np.linspace(0.2, np.pi - 0.2, spine.shape[1]))[None, :, None])
        ink = (0.95, 0.9, 0.6) if color.mean() < 0.5 else (0.1, 0.1, 0.1)
        for yb in rng.uniform(0.05, 0.2, int(rng.integers(0, 3))):
            y0 = int(yb * bh)
            spine[y0 : y0 + max(1, bh // 40)] = ink
        if bw >= 6 and bh > 40:
            label = np.ascontiguousarray(np.zeros((bw, int(0.7 * bh), 3), np.float32))
            put_text(label, word(rng, 1, 2).capitalize(), 2, int(0.72 * bw), 0.5 * bw, (1, 1, 1), rng=rng)
            mask = np.rot90(label, -1)[:, :, 0]
            sub = spine[int(0.25 * bh) : int(0.25 * bh) + mask.shape[0], : mask.shape[1]]
            mask = mask[: sub.shape[0], : sub.shape[1], None]
            sub[:] = sub * (1 - mask) + np.asarray(ink, np.float32) * mask
        img[:, x + bw : x + bw + 1] *= 0.4
        x += bw + 1
    return np.clip(img * (1 + 0.03 * fbm(rng, h, w, 3.0, 1))[..., None], 0, 1)


def packaging(rng, h, w, tpm):
    """A printed carton side: colour band, brand name, round logo and a barcode."""
    img = poster(rng, h, w, tpm, frame=(0.9, 0.9, 0.88))
    band = _tint(rng, PAPER_COLORS[int(rng.integers(len(PAPER_COLORS)))], 0.1)
    img[int(0.55 * h) : int(0.7 * h)] = band
    cv2.circle(img, (int(0.75 * w), int(0.4 * h)), int(0.12 * min(h, w)), (0.95, 0.95, 0.95), -1, cv2.LINE_AA)
    put_text(img, word(rng, 1, 1)[:1].upper(), 0.7 * w, 0.44 * h, 0.1 * min(h, w), (0.8, 0.1, 0.1), rng=rng)
    x = int(0.1 * w)
    for bar in rng.integers(1, 4, 30):
        if x + bar >= 0.5 * w:
            break
        if rng.random() < 0.5:
            img[int(0.83 * h) : int(0.93 * h), x : x + bar] = 0.05
        x += bar
    return img


def cobbles(rng, h, w, tpm, stone_m=0.12):
    """Granite setts in offset rows: convex shading, per-stone colour, sandy joints."""
    yy, xx = _grid(h, w)
    s = stone_m * tpm
    r = np.floor(yy / s).astype(np.int32)
    xs = xx + (r % 2) * 0.5 * s
    c = np.floor(xs / s).astype(np.int32)
    ident = (r * 613 + c * 1223) % 4096
    jit = rng.uniform(-0.06, 0.06, (4096, 2)).astype(np.float32)
    half = rng.uniform(0.40, 0.47, (4096, 2)).astype(np.float32)
    dx = (xs / s - c - 0.5 - jit[ident, 0]) / half[ident, 0]
    dy = (yy / s - r - 0.5 - jit[ident, 1]) / half[ident, 1]
    d = np.abs(dx) ** 4 + np.abs(dy) ** 4
    grey = rng.uniform(0.35, 0.65, 4096).astype(np.float32)[ident]
    warm = rng.uniform(-0.05, 0.05, 4096).astype(np.float32)[ident]
    base = np.stack([grey + warm, grey, grey - warm], -1)
    img = base * ((1.05 - 0.3 * np.clip(d, 0, 1)) * (1 + 0.1 * fbm(rng, h, w, 0.02 * tpm, 2)))[..., None]
    joint = d >= 1
    sand = np.array((0.42, 0.37, 0.30), np.float32) * (1 + 0.15 * fbm(rng, h, w, 0.01 * tpm, 2))[..., None]
    img[joint] = sand[joint] * 0.7
    return np.clip(img, 0, 1)


def concrete(rng, h, w, tpm, color=(0.60, 0.59, 0.56)):
    """Cast concrete: blotches, pores, formwork seams every 1.2 x 0.6 m with tie holes."""
    img = (
        np.asarray(color, np.float32)
        * (1 + 0.06 * fbm(rng, h, w, 0.5 * tpm, 4) + 0.04 * fbm(rng, h, w, 0.01 * tpm, 1))[..., None]
    )
    img = np.ascontiguousarray(img)
    if tpm >= 100:  # pores are a few millimetres wide: invisible on coarse textures
        for _ in range(int(h * w / tpm**2 * 60)):
            cv2.circle(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), 1, (0.3, 0.3, 0.3), -1, cv2.LINE_AA)
    pw, ph = 1.2 * tpm, 0.6 * tpm
    for y in np.arange(ph, h, ph):
        img[int(y)] *= 0.75
    for x in np.arange(pw, w, pw):
        img[:, int(x)] *= 0.75
    for y in np.arange(ph / 2, h, ph):
        for x in np.arange(pw / 4, w, pw / 2):
            cv2.circle(img, (int(x), int(y)), max(2, int(0.012 * tpm)), (0.2, 0.2, 0.2), -1, cv2.LINE_AA)
    return np.clip(img, 0, 1)


def window(rng, h, w, tpm, frame=(0.92, 0.92, 0.9)):
    """A window: frame, mullions and panes reflecting a bright sky and dark building shapes."""
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.ascontiguousarray(
        (1 - t) * np.array((0.55, 0.65, 0.75)) + t * np.array((0.12, 0.15, 0.18)) * np.ones((1, w, 3), np.float32)
    )
    img *= (1 + 0.1 * fbm(rng, h, w, 0.3 * tpm, 3, stretch=0.3))[..., None]
    for _ in range(3):
        x0 = int(rng.uniform(-0.2, 0.9) * w)
        cv2.rectangle(img, (x0, int(rng.uniform(0.2, 0.6) * h)), (x0 + int(0.3 * w), h), (0.1, 0.1, 0.12), -1)
    f = max(2, int(0.06 * tpm))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), frame, 2 * f)
    cv2.line(img, (w // 2, 0), (w // 2, h), frame, f)
    cv2.line(img, (0, int(0.35 * h)), (w, int(0.35 * h)), frame, f)
    img[h - f :] = 0.8
    return np.clip(img, 0, 1)


def door(rng, h, w, tpm, color=(0.35, 0.22, 0.15)):
    """A panelled door with a handle and worn paint."""
    img = np.asarray(color, np.float32) * (1 + 0.06 * fbm(rng, h, w, 0.01 * tpm, 3, stretch=0.1))[..., None]
    img = np.ascontiguousarray(img)
    m = int(0.1 * tpm)
    for y0, y1 in ((m, int(0.45 * h)), (int(0.5 * h), h - m)):
        cv2.rectangle(img, (m, y0), (w - m, y1), tuple(float(v) * 0.6 for v in color), max(2, m // 6), cv2.LINE_AA)
    cv2.circle(img, (w - int(0.1 * tpm), int(0.52 * h)), max(2, int(0.03 * tpm)), (0.8, 0.75, 0.5), -1, cv2.LINE_AA)
    return np.clip(img, 0, 1)


def shutter(rng, h, w, tpm, color=(0.55, 0.57, 0.58)):
    """A metal roller shutter (horizontal ribs) tagged with graffiti."""
    yy, _ = _grid(h, w)
    ribs = 0.85 + 0.15 * np.sin(2 * np.pi * yy / (0.08 * tpm))
    shade = ribs * (1 + 0.05 * fbm(rng, h, w, 0.4 * tpm, 3))
    img = np.ascontiguousarray(np.asarray(color, np.float32) * shade[..., None])
    for _ in range(int(rng.integers(3, 7))):
        pts = np.cumsum(rng.normal(0, 0.08 * tpm, (8, 2)), 0) + rng.uniform(0, 1, 2) * (w, h)
        cv2.polylines(
            img,
            [pts.astype(np.int32)],
            False,
            tuple(float(v) for v in rng.uniform(0, 1, 3)),
            max(2, int(0.02 * tpm)),
            cv2.LINE_AA,
        )
    for _ in range(2):
        put_text(
            img,
            word(rng, 2, 3),
            rng.uniform(0, 0.5) * w,
            rng.uniform(0.3, 0.9) * h,
            0.12 * tpm,
            tuple(float(v) for v in rng.uniform(0, 1, 3)),
            rng=rng,
        )
    return np.clip(img, 0, 1)


def sign(rng, h, w, tpm):
    """A shop sign: coloured board, big name, small opening hours."""
    bg = _tint(rng, PAPER_COLORS[int(rng.integers(len(PAPER_COLORS)))], 0.1)
    img = np.ascontiguousarray(np.broadcast_to(bg, (h, w, 3)).astype(np.float32))
    ink = (0.05, 0.05, 0.05) if bg.mean() > 0.5 else (0.98, 0.95, 0.85)
    put_text(img, word(rng, 2, 3).upper(), 0.05 * w, 0.62 * h, 0.45 * h, ink, rng=rng, max_width=0.9 * w)
    put_text(
        img,
        f"{word(rng).capitalize()} {int(rng.integers(7, 11))}-{int(rng.integers(17, 22))}",
        0.6 * w,
        0.88 * h,
        0.12 * h,
        ink,
        font=FONTS[0],
    )
    return np.clip(img * (1 + 0.03 * fbm(rng, h, w, 0.1 * tpm, 2))[..., None], 0, 1)


def painted(rng, h, w, tpm, color=(0.8, 0.8, 0.78)):
    """Painted board or metal: subtle mottling and a few scratches."""
    img = np.ascontiguousarray(np.asarray(color, np.float32) * (1 + 0.04 * fbm(rng, h, w, 0.1 * tpm, 3))[..., None])
    for _ in range(int(rng.integers(2, 6))):
        p = rng.uniform(0, 1, 2) * (w, h)
        q = p + rng.normal(0, 0.1 * tpm, 2)
        cv2.line(
            img,
            tuple(int(v) for v in p),
            tuple(int(v) for v in q),
            tuple(float(v) * 0.8 for v in color),
            1,
            cv2.LINE_AA,
        )
    return np.clip(img, 0, 1)


def soil(rng, h, w, tpm):
    """Planter top: dark soil strewn with leaves of several greens."""
    shade = 1 + 0.2 * fbm(rng, h, w, 0.01 * tpm, 2)
    img = np.ascontiguousarray(np.array((0.22, 0.16, 0.11), np.float32) * shade[..., None])
    for _ in range(int(h * w / tpm**2 * 400)):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (max(2, int(rng.uniform(0.015, 0.04) * tpm)), max(1, int(rng.uniform(0.006, 0.015) * tpm)))
        green = (rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.6), rng.uniform(0.1, 0.25))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, green, -1, cv2.LINE_AA)
    return np.clip(img, 0, 1)
