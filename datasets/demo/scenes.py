"""The three demo scenes (geometry, materials, lights) and the camera walks through them.

Scene frame: x east, y north, z up, metres, floor at z = 0. Each scene comes with a target
point, the reference camera (looking at the target) and ten key views of the query walk, one
per evaluated frame; :mod:`datasets.demo.generate` interpolates the frames in between.
Key views are given relative to the reference: azimuth around the target (degrees,
counter-clockwise seen from above), distance to the target, extra height, a shift of the
looked-at point, roll, and photographic trouble (``dark`` stops, motion ``blur``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures as tx
from .render import Light, Quad, Scene

UP = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Key:
    az: float
    dist: float
    height: float = 0.0
    look: tuple = (0.0, 0.0, 0.0)
    roll: float = 0.0
    dark: float = 0.0
    blur: tuple | None = None  # (length px, angle deg)


@dataclass(frozen=True)
class Walk:
    target: tuple
    ref_azimuth: float  # direction target -> reference camera, degrees from +x
    ref_distance: float
    ref_height: float
    keys: tuple


class Builder:
    """Collects textured quads; sizes in metres, textures sampled at ``tpm`` texels per metre."""

    def __init__(self, rng):
        self.rng = rng
        self.quads: list[Quad] = []

    def face(self, center, normal, right, width, height, texture, tpm=250.0, **kw):
        center, normal, right = (np.asarray(v, float) for v in (center, normal, right))
        up = np.cross(normal, right)
        h_px, w_px = max(4, int(round(height * tpm))), max(4, int(round(width * tpm)))
        srgb = texture(self.rng, h_px, w_px, tpm, **kw)
        albedo = np.clip(np.asarray(srgb, np.float32), 0, 1) ** 2.2
        self.quads.append(Quad(center - right * width / 2 + up * height / 2, right * width, -up * height, albedo))

    def wall(self, center, normal, width, height, texture, tpm=250.0, **kw):
        """A vertical surface facing ``normal``, texture upright."""
        self.face(center, normal, np.cross(UP, normal), width, height, texture, tpm, **kw)

    def box(self, center_xy, z0, size, yaw=0.0, sides=None, top=None, tpm=300.0):
        """Box standing on z = z0. ``sides`` maps front/back/left/right to (texture, kwargs)
        (front faces -y before the yaw); missing sides use ``sides['default']``; ``top`` likewise."""
        sides = dict(sides or {})
        default = sides.get("default", (tx.painted, {}))
        c = np.array([center_xy[0], center_xy[1], z0 + size[2] / 2])
        yaw = np.radians(yaw)
        ex, ey = np.array([np.cos(yaw), np.sin(yaw), 0]), np.array([-np.sin(yaw), np.cos(yaw), 0])
        sx, sy, sz = size
        for name, normal, half, width in (
            ("front", -ey, sy, sx),
            ("back", ey, sy, sx),
            ("left", -ex, sx, sy),
            ("right", ex, sx, sy),
        ):
            texture, kw = sides.get(name, default)
            self.wall(c + normal * half / 2, normal, width, sz, texture, tpm, **kw)
        texture, kw = top or default
        self.face(c + UP * sz / 2, UP, ex, sx, sy, texture, tpm, **kw)


def _color(rng, base, spread=0.08):
    return tuple(float(v) for v in np.clip(np.asarray(base) * (1 + spread * rng.standard_normal(3)), 0, 1))


def living_room(rng) -> tuple[Scene, Walk]:
    b = Builder(rng)
    W, D, H = 6.0, 5.0, 2.7
    b.face((W / 2, D / 2, 0), UP, (1, 0, 0), W, D, tx.planks, 220)
    b.face((W / 2, D / 2, H), -UP, (1, 0, 0), W, D, tx.plaster, 60, color=(0.93, 0.93, 0.92), skirting=False, outlets=0)
    b.wall((W / 2, D, H / 2), (0, -1, 0), W, H, tx.plaster, 220, color=(0.86, 0.80, 0.68))
    b.wall((W / 2, 0, H / 2), (0, 1, 0), W, H, tx.plaster, 200, color=(0.80, 0.84, 0.86))
    b.wall((0, D / 2, H / 2), (1, 0, 0), D, H, tx.bricks, 220)
    b.wall((W, D / 2, H / 2), (-1, 0, 0), D, H, tx.plaster, 200, color=(0.70, 0.76, 0.80))
    # things on the walls
    b.wall((3.2, D - 0.01, 1.6), (0, -1, 0), 0.6, 0.85, tx.poster, 400)
    b.wall((4.4, D - 0.01, 1.5), (0, -1, 0), 0.9, 0.65, tx.poster, 400)
    b.wall((5.4, D - 0.01, 1.3), (0, -1, 0), 0.4, 0.55, tx.poster, 400)
    b.wall((W - 0.01, 1.2, 1.05), (-1, 0, 0), 0.9, 2.05, tx.door, 200)
    b.wall((W - 0.01, 3.3, 1.5), (-1, 0, 0), 1.1, 0.75, tx.poster, 350)
    b.wall((2.0, 0.01, 1.5), (0, 1, 0), 1.4, 1.3, tx.window, 200)
    b.wall((0.01, 3.7, 1.6), (1, 0, 0), 0.7, 0.5, tx.poster, 350)
    # bookshelf against the north wall
    wood = (tx.planks, {"color": (0.55, 0.40, 0.27), "width_m": 0.5})
    x0, x1, depth, top = 0.6, 2.2, 0.36, 2.0
    for x in (x0, x1 - 0.025):
        b.box((x + 0.0125, D - depth / 2), 0, (0.025, depth, top), sides={"default": wood})
    for z in (0.0, 0.48, 0.96, 1.44, 1.975):
        b.box(((x0 + x1) / 2, D - depth / 2), z, (x1 - x0 - 0.05, depth, 0.025), sides={"default": wood})
    for z in (0.025, 0.505, 0.985, 1.465):
        b.box(
            ((x0 + x1) / 2, D - depth / 2 + 0.03),
            z,
            (x1 - x0 - 0.06, depth - 0.06, rng.uniform(0.3, 0.4)),
            sides={"front": (tx.books, {}), "default": (tx.painted, {"color": (0.9, 0.88, 0.8)})},
            top=(tx.painted, {"color": (0.15, 0.15, 0.15)}),
            tpm=450,
        )
    # table with cartons, on a rug
    b.box(
        (3.0, 2.8),
        0,
        (2.4, 1.7, 0.008),
        yaw=8,
        sides={"default": (tx.fabric, {"color": (0.5, 0.2, 0.2)})},
        top=(tx.fabric, {"color": (0.55, 0.22, 0.2)}),
        tpm=200,
    )
    table = (tx.planks, {"color": (0.45, 0.30, 0.2), "width_m": 0.2})
    b.box((3.0, 2.8), 0.72, (1.4, 0.8, 0.04), yaw=8, sides={"default": table}, top=table)
    for sx in (-0.62, 0.62):
        for sy in (-0.33, 0.33):
            c, s = np.cos(np.radians(8)), np.sin(np.radians(8))
            b.box(
                (3.0 + c * sx - s * sy, 2.8 + s * sx + c * sy),
                0,
                (0.05, 0.05, 0.72),
                yaw=8,
                sides={"default": (tx.painted, {"color": (0.2, 0.2, 0.2)})},
            )
    for x, y, sx, sy, sz, yaw in (
        (2.6, 2.9, 0.3, 0.08, 0.4, 20),
        (3.2, 2.65, 0.25, 0.25, 0.18, -5),
        (3.45, 3.0, 0.35, 0.22, 0.1, 40),
    ):
        b.box((x, y), 0.76, (sx, sy, sz), yaw=yaw, sides={"default": (tx.packaging, {})}, tpm=450)
    # sofa along the west wall, dresser along the east wall
    cloth = (tx.fabric, {"color": _color(rng, (0.25, 0.35, 0.3)), "plaid": False})
    b.box((0.55, 2.0), 0, (0.85, 1.9, 0.42), sides={"default": cloth}, top=cloth, tpm=200)
    b.box((0.2, 2.0), 0.42, (0.2, 1.9, 0.45), sides={"default": cloth}, top=cloth, tpm=200)
    for y in (1.0, 3.0):
        b.box((0.55, y), 0.0, (0.85, 0.12, 0.62), sides={"default": cloth}, top=cloth, tpm=200)
    b.box(
        (W - 0.25, 3.3),
        0,
        (0.45, 1.3, 0.8),
        sides={"default": (tx.door, {"color": (0.85, 0.82, 0.75)})},
        top=(tx.planks, {"color": (0.5, 0.35, 0.22), "width_m": 0.5}),
    )
    b.box((W - 0.3, 3.0), 0.8, (0.2, 0.3, 0.25), yaw=-15, sides={"default": (tx.packaging, {})}, tpm=450)
    scene = Scene(
        b.quads,
        [
            Light("point", np.array([3.0, 2.6, 2.45]), (1.0, 0.92, 0.8), 5.0, 0.2),
            Light("point", np.array([2.0, 0.4, 1.6]), (0.85, 0.9, 1.0), 1.5, 0.4),
        ],
        ambient=(0.35, 0.34, 0.33),
        ao_distance=0.5,
    )
    keys = (
        Key(20, 2.2),
        Key(35, 1.8, 0.1),
        Key(45, 1.4, -0.2, (0.2, 0, 0)),
        Key(25, 1.0, 0.0, (0.3, 0, 0.1)),
        Key(0, 2.0, 0.2, dark=4.0),
        Key(-15, 2.4, 0.0, blur=(9, 20)),
        Key(-25, 1.6, -0.1, (-0.2, 0, 0)),
        Key(-10, 0.55, -0.2, (0.1, 0, 0.2)),
        Key(55, 2.2, 0.1, (5.0, -0.5, 0), roll=8),
        Key(10, 3.0, 0.1),
    )
    return scene, Walk((2.2, 4.0, 0.95), -80, 2.7, 1.45, keys)


def courtyard(rng) -> tuple[Scene, Walk]:
    b = Builder(rng)
    b.face((0, 6, 0), UP, (1, 0, 0), 8, 8, tx.tiles, 220, size_m=0.5, color=(0.72, 0.70, 0.66), veins=False)
    for cx, cy, w, d in ((0, -3, 16, 10), (-6, 6, 4, 8), (6, 6, 4, 8)):
        b.face((cx, cy, 0), UP, (1, 0, 0), w, d, tx.cobbles, 110)
    b.wall((0, 10, 3.5), (0, -1, 0), 16, 7, tx.bricks, 180)
    b.wall((-8, 2, 3.0), (1, 0, 0), 16, 6, tx.plaster, 120, color=(0.85, 0.75, 0.5), outlets=0)
    b.wall((8, 2, 2.5), (-1, 0, 0), 16, 5, tx.concrete, 120)
    # north facade: shop front with sign, door, windows upstairs
    b.wall((-1.0, 9.99, 1.4), (0, -1, 0), 3.0, 2.2, tx.window, 220, frame=(0.15, 0.15, 0.15))
    b.wall((1.2, 9.99, 1.1), (0, -1, 0), 1.0, 2.2, tx.door, 220, color=(0.2, 0.3, 0.45))
    b.wall((0.0, 9.98, 2.95), (0, -1, 0), 4.4, 0.7, tx.sign, 250)
    for x in (-5.5, -2.5, 2.5, 5.5):
        for z in (4.4, 6.2):
            b.wall((x, 9.99, z), (0, -1, 0), 1.2, 1.4, tx.window, 120)
    b.wall((4.0, 9.99, 1.2), (0, -1, 0), 2.6, 2.4, tx.shutter, 200)
    # side facades: posters, a garage shutter, windows
    b.wall((-7.99, 6.5, 1.5), (1, 0, 0), 2.8, 2.6, tx.shutter, 180)
    b.wall((-7.99, 3.5, 1.3), (1, 0, 0), 0.8, 1.1, tx.poster, 300)
    b.wall((-7.99, 2.4, 1.3), (1, 0, 0), 0.8, 1.1, tx.poster, 300)
    for y in (1.0, 4.5, 8.5):
        b.wall((-7.99, y, 4.2), (1, 0, 0), 1.2, 1.4, tx.window, 120, frame=(0.4, 0.25, 0.15))
    for y, z in ((7.5, 1.6), (6.6, 1.5), (5.2, 1.7), (3.0, 1.4)):
        b.wall((7.99, y, z), (-1, 0, 0), rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.2), tx.poster, 300)
    # street furniture: advertising pillar, bench, planters, a bin
    b.box(
        (0.3, 6.6),
        0,
        (0.8, 0.8, 2.4),
        yaw=15,
        sides={"default": (tx.poster, {})},
        top=(tx.painted, {"color": (0.2, 0.3, 0.25)}),
        tpm=320,
    )
    wood = (tx.planks, {"color": (0.55, 0.38, 0.25), "width_m": 0.1})
    b.box((-1.9, 7.6), 0.42, (1.8, 0.45, 0.05), sides={"default": wood}, top=wood)
    b.box((-1.9, 7.85), 0.47, (1.8, 0.05, 0.4), sides={"default": wood}, top=wood)
    for x in (-2.7, -1.1):
        b.box((x, 7.6), 0, (0.06, 0.4, 0.42), sides={"default": (tx.painted, {"color": (0.15, 0.15, 0.15)})})
    for x, y in ((2.4, 7.7), (-3.6, 7.4), (3.1, 5.6)):
        b.box(
            (x, y),
            0,
            (0.9, 0.6, 0.55),
            yaw=float(rng.uniform(-10, 10)),
            sides={"default": (tx.planks, {"color": (0.45, 0.33, 0.25), "width_m": 0.12})},
            top=(tx.soil, {}),
        )
    b.box((1.6, 5.4), 0, (0.45, 0.45, 0.9), sides={"default": (tx.shutter, {"color": (0.2, 0.35, 0.25)})})
    scene = Scene(
        b.quads,
        [Light("sun", np.array([0.45, -0.55, 0.70]), (1.0, 0.93, 0.82), 3.2, 0.03)],
        ambient=(0.55, 0.62, 0.75),
        ao_distance=1.2,
        sky=True,
    )
    keys = (
        Key(15, 3.0),
        Key(30, 2.6, 0.1),
        Key(-20, 2.8),
        Key(-40, 3.2, 0.2),
        Key(-55, 2.5, 0.0, blur=(14, -30)),
        Key(-25, 1.4, -0.2, (0.0, 0.3, 0.2)),
        Key(10, 4.0, 0.3),
        Key(40, 2.0, -0.1, (0.5, 0, 0), roll=-6),
        Key(60, 2.8, 0.0, (-1.2, 0, 0)),
        Key(0, 3.5, 0.0, dark=2.5),
    )
    return scene, Walk((0.0, 7.5, 1.4), -90, 3.6, 1.5, keys)


def gallery(rng) -> tuple[Scene, Walk]:
    b = Builder(rng)
    W, D, H = 10.0, 8.0, 3.6
    b.face((W / 2, D / 2, 0), UP, (1, 0, 0), W, D, tx.tiles, 160, size_m=0.6)
    b.face((W / 2, D / 2, H), -UP, (1, 0, 0), W, D, tx.concrete, 40)
    b.wall((W / 2, D, H / 2), (0, -1, 0), W, H, tx.plaster, 160, color=(0.92, 0.92, 0.9))
    b.wall((W / 2, 0, H / 2), (0, 1, 0), W, H, tx.plaster, 120, color=(0.92, 0.92, 0.9))
    b.wall((0, D / 2, H / 2), (1, 0, 0), D, H, tx.concrete, 150)
    b.wall((W, D / 2, H / 2), (-1, 0, 0), D, H, tx.plaster, 150, color=(0.55, 0.2, 0.2))
    for x, w, h in ((2.0, 1.6, 1.1), (4.3, 1.0, 1.4), (6.3, 1.8, 1.2), (8.4, 1.0, 1.0)):
        b.wall((x, D - 0.01, 1.7), (0, -1, 0), w, h, tx.poster, 300, frame=(0.25, 0.18, 0.1))
    for y, w, h in ((2.0, 1.4, 1.0), (4.5, 1.2, 1.5), (6.6, 1.0, 0.8)):
        b.wall((W - 0.01, y, 1.7), (-1, 0, 0), w, h, tx.poster, 300, frame=(0.9, 0.85, 0.6))
        b.wall((0.01, y, 1.6), (1, 0, 0), w * 0.8, h, tx.poster, 300)
    # the exhibit: plinth with a stack of turned printed cubes, a free-standing board, a bench
    b.box((5.0, 4.4), 0, (1.0, 1.0, 0.9), sides={"default": (tx.painted, {"color": (0.9, 0.9, 0.88)})})
    z = 0.9
    for size, yaw in ((0.7, 10), (0.5, 40), (0.35, 65)):
        b.box(
            (5.0, 4.4),
            z,
            (size, size, size),
            yaw=yaw,
            sides={"default": (tx.packaging, {})},
            top=(tx.poster, {}),
            tpm=500,
        )
        z += size
    board = {"front": (tx.poster, {}), "back": (tx.poster, {}), "default": (tx.painted, {"color": (0.2, 0.2, 0.2)})}
    b.box((7.2, 5.6), 0, (1.4, 0.06, 2.0), yaw=-25, sides=board, tpm=300)
    wood = (tx.planks, {"color": (0.5, 0.35, 0.22), "width_m": 0.3})
    b.box((3.0, 3.0), 0, (1.6, 0.5, 0.45), yaw=-20, sides={"default": wood}, top=wood)
    scene = Scene(
        b.quads,
        [
            Light("point", np.array([5.0, 3.0, 3.3]), (1.0, 0.95, 0.85), 9.0, 0.2),
            Light("point", np.array([3.0, 6.0, 3.3]), (0.9, 0.95, 1.0), 5.0, 0.2),
            Light("point", np.array([8.0, 2.0, 3.3]), (1.0, 0.9, 0.8), 5.0, 0.2),
        ],
        ambient=(0.3, 0.3, 0.3),
        ao_distance=0.6,
    )
    keys = (
        Key(-20, 2.4),
        Key(-35, 2.0, 0.1),
        Key(-50, 2.6),
        Key(-60, 1.8, 0.0, (0.3, 0, 0)),
        Key(-30, 0.85, -0.3),
        Key(0, 3.0, 0.3, blur=(10, 80)),
        Key(25, 2.2),
        Key(45, 1.7, 0.2, roll=5),
        Key(55, 2.6, dark=2.0),
        Key(15, 3.2, 0.0, (-1.5, 0, -0.4)),
    )
    return scene, Walk((5.0, 4.4, 1.3), -95, 2.9, 1.55, keys)


SCENES = {"s90000": (living_room, 90000), "s90001": (courtyard, 90001), "s90002": (gallery, 90002)}
