"""A small numpy ray caster for the demo scenes: textured rectangles, baked lighting, a phone-like camera.

Scenes are lists of :class:`Quad` (a textured parallelogram). Lighting is view-independent
(Lambertian), so it is baked once per surface into a light map (point lights and a sun with
soft shadows, ambient light with ambient occlusion) and multiplied into the texture, whose
mip pyramid is then sampled trilinearly. A frame is cast at 2 x 2 samples per pixel for
anti-aliasing; depth is cast separately through the pixel centres, so it is exact (z in the
camera frame). :func:`develop` turns linear radiance into an 8-bit photo: auto exposure,
vignetting, lens softness, optional motion blur, shot/read noise, tone curve.

Pixels follow OpenCV (centre of the top-left pixel at (0, 0)); poses are world-to-camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

NEAR = 0.02  # metres; nothing is drawn closer to the camera
SCENE_SIZE = 40.0  # metres; no shadow caster is farther than this from what it shades


@dataclass
class Quad:
    """Parallelogram ``origin + a u + b v`` (a, b in [0, 1]); texture column ~ a, row ~ b.

    The lit side is the one ``cross(v, u)`` points to.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    albedo: np.ndarray  # (h, w, 3) linear RGB
    mips: list = field(default_factory=list)

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.v, self.u)
        return n / np.linalg.norm(n)

    def corners(self) -> np.ndarray:
        o, u, v = self.origin, self.u, self.v
        return np.stack([o, o + u, o + u + v, o + v])


@dataclass
class Light:
    kind: str  # "point" (position in metres) or "sun" (direction towards the sun)
    vector: np.ndarray
    color: tuple = (1.0, 1.0, 1.0)
    power: float = 1.0
    spread: float = 0.1  # radius (point, metres) or angular radius (sun, radians) for soft shadows


@dataclass
class Scene:
    quads: list
    lights: list
    ambient: tuple = (0.3, 0.3, 0.3)
    ao_distance: float = 0.6
    sky: bool = False  # rays that hit nothing see a sky (else black); their depth is 0 either way


def _hits(points, dirs, quad: Quad, max_t):
    """Ray parameter of each ray's hit with ``quad`` (inf where it misses); arrays broadcast over (..., 3)."""
    n = quad.normal
    denom = dirs @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((quad.origin - points) @ n) / denom
        p = points + t[..., None] * dirs - quad.origin
        a = p @ quad.u / (quad.u @ quad.u)
        b = p @ quad.v / (quad.v @ quad.v)
        ok = (t > 1e-4) & (t < max_t) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
    return np.where(ok, t, np.inf)


def _bounding_sphere(quad: Quad):
    c = quad.origin + 0.5 * (quad.u + quad.v)
    return c, 0.5 * max(np.linalg.norm(quad.u + quad.v), np.linalg.norm(quad.u - quad.v))


def _hemisphere(normals: np.ndarray, count: int) -> np.ndarray:
    """(N, count, 3) cosine-distributed directions around each normal (a fixed spiral: deterministic)."""
    i = np.arange(count) + 0.5
    r, phi = np.sqrt(i / count), i * np.pi * (3 - np.sqrt(5))
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    e1 = np.cross(normals, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(normals, e1)
    local = np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1 - r * r)], -1)
    return local[None, :, :1] * e1[:, None] + local[None, :, 1:2] * e2[:, None] + local[None, :, 2:] * normals[:, None]


def _receivers(scene: Scene, texels_per_metre: float):
    """Light-map sample points of every quad: points (N, 3), normals (N, 3), owner (N,), grid shapes."""
    pts, normals, owner, shapes = [], [], [], []
    for index, quad in enumerate(scene.quads):
        nu = max(2, int(round(np.linalg.norm(quad.u) * texels_per_metre)))
        nv = max(2, int(round(np.linalg.norm(quad.v) * texels_per_metre)))
        a, b = np.meshgrid((np.arange(nu) + 0.5) / nu, (np.arange(nv) + 0.5) / nv)
        pts.append(quad.origin + a.reshape(-1, 1) * quad.u + b.reshape(-1, 1) * quad.v + 1e-3 * quad.normal)
        normals.append(np.broadcast_to(quad.normal, (nu * nv, 3)))
        owner.append(np.full(nu * nv, index))
        shapes.append((nv, nu))
    return np.concatenate(pts), np.concatenate(normals), np.concatenate(owner), shapes


def _nearest_hits(scene: Scene, points, dirs, owner, max_t, reach, margin):
    """Nearest hit (N, R) of rays ``points`` (N, 3) + t ``dirs`` (N, R, 3), t < ``max_t`` (N, R).

    A quad is tested only against the points whose rays all stay within ``margin`` of the segment
    from the point to ``reach`` (N, 3) and can therefore meet the quad's bounding sphere."""
    nearest = np.full(dirs.shape[:2], np.inf)
    seg = reach - points
    seg_len2 = np.maximum((seg * seg).sum(1), 1e-12)
    for j, quad in enumerate(scene.quads):
        c, r = _bounding_sphere(quad)
        s = np.clip(((c - points) * seg).sum(1) / seg_len2, 0, 1)
        close = points + s[:, None] * seg - c
        sel = np.nonzero(((close * close).sum(1) < (r + margin) ** 2) & (owner != j))[0]
        if sel.size:
            t = _hits(points[sel, None], dirs[sel], quad, max_t[sel])
            nearest[sel] = np.minimum(nearest[sel], t)
    return nearest


def bake(scene: Scene, texels_per_metre: float = 12.0, ao_rays: int = 16) -> None:
    """Light every quad (irradiance map x albedo) and build its mip pyramid."""
    pts, normals, owner, shapes = _receivers(scene, texels_per_metre)
    # ambient light with occlusion: rays that meet a surface within ao_distance count partly
    dirs = _hemisphere(normals, ao_rays)
    limit = np.full(dirs.shape[:2], scene.ao_distance)
    # every hemisphere ray ends within ao_distance of its point: test quads near that ball
    hit = _nearest_hits(scene, pts, dirs, owner, limit, pts + scene.ao_distance * normals, scene.ao_distance)
    irradiance = np.clip(hit / scene.ao_distance, 0, 1).mean(1)[:, None] * np.asarray(scene.ambient)
    jitter = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    for light in scene.lights:
        if light.kind == "sun":
            d = light.vector / np.linalg.norm(light.vector) + light.spread * jitter
            d = np.broadcast_to(d / np.linalg.norm(d, axis=1, keepdims=True), (len(pts),) + d.shape)
            dist = np.full(d.shape[:2], 1e4)
            falloff = np.ones(d.shape[:2])
            reach, margin = pts + SCENE_SIZE * d[:, 0], SCENE_SIZE * 2 * light.spread
        else:
            to_light = light.vector + light.spread * jitter - pts[:, None]
            dist = np.linalg.norm(to_light, axis=2)
            d = to_light / dist[..., None]
            falloff = 1.0 / dist**2
            reach, margin = np.broadcast_to(light.vector, pts.shape), light.spread
        # soft shadows: the light is sampled at six points spread around its centre
        free = _nearest_hits(scene, pts, d, owner, dist, reach, margin) >= dist
        lit = (np.clip((d * normals[:, None]).sum(2), 0, None) * falloff * free).mean(1)
        irradiance = irradiance + light.power * lit[:, None] * np.asarray(light.color)
    start = 0
    for quad, (nv, nu) in zip(scene.quads, shapes):
        grid = irradiance[start : start + nv * nu].reshape(nv, nu, 3).astype(np.float32)
        start += nv * nu
        h, w = quad.albedo.shape[:2]
        level = quad.albedo * cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
        quad.mips = [level]
        while min(level.shape[:2]) > 2:
            level = cv2.resize(
                level, (max(1, level.shape[1] // 2), max(1, level.shape[0] // 2)), interpolation=cv2.INTER_AREA
            )
            quad.mips.append(level)


def _bilinear(image, x, y):
    """Bilinear samples (N, 3) of ``image`` at texel coordinates (OpenCV convention), edges clamped.

    Plain float64 arithmetic rather than cv2.remap, whose weights are quantised to 1/32 texel in
    OpenCV 4 and exact in OpenCV 5: the demo images must not depend on the OpenCV release."""
    h, w = image.shape[:2]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = image[ya, xa] * (1 - fx) + image[ya, xb] * fx
    bottom = image[yb, xa] * (1 - fx) + image[yb, xb] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _trilinear(mips, a, b, lod):
    lod = np.clip(lod, 0, len(mips) - 1)
    base = np.floor(lod).astype(int)
    out = np.empty((len(a), 3), np.float32)
    for level in range(base.min(), base.max() + 1):
        sel = base == level
        if not sel.any():
            continue
        frac = (lod[sel] - level)[:, None].astype(np.float32)
        fine = mips[level]
        coarse = mips[min(level + 1, len(mips) - 1)]
        sample = [_bilinear(m, a[sel] * m.shape[1] - 0.5, b[sel] * m.shape[0] - 0.5) for m in (fine, coarse)]
        out[sel] = sample[0] * (1 - frac) + sample[1] * frac
    return out


def _screen_box(corners_cam, K, width, height):
    """Pixel bounding box (x0, x1, y0, y1) of a polygon after clipping it to z >= NEAR; None if hidden."""
    poly = []
    for i in range(len(corners_cam)):
        p, q = corners_cam[i], corners_cam[(i + 1) % len(corners_cam)]
        if p[2] >= NEAR:
            poly.append(p)
        if (p[2] >= NEAR) != (q[2] >= NEAR):
            s = (NEAR - p[2]) / (q[2] - p[2])
            poly.append(p + s * (q - p))
    if not poly:
        return None
    pts = np.array(poly)
    x = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]
    y = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
    x0, x1 = max(int(np.floor(x.min())) - 1, 0), min(int(np.ceil(x.max())) + 2, width)
    y0, y1 = max(int(np.floor(y.min())) - 1, 0), min(int(np.ceil(y.max())) + 2, height)
    return (x0, x1, y0, y1) if x1 > x0 and y1 > y0 else None


def cast(scene: Scene, K, R, t, width: int, height: int, samples: int = 1):
    """Nearest surface along the rays of a ``samples`` x ``samples`` grid per pixel.

    Returns z (camera-frame depth, inf for no hit), quad index (-1), a, b, and the ray
    directions (x/z, y/z) of each sample, all (height * samples, width * samples).
    """
    K = np.asarray(K, float)
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    xs = (np.arange(width)[:, None] + offsets).reshape(-1)
    ys = (np.arange(height)[:, None] + offsets).reshape(-1)
    dx, dy = (xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]
    Ks = K.copy()
    Ks[:2] *= samples
    Ks[:2, 2] += (samples - 1) / 2  # the same projection in sample-grid indices
    shape = (len(ys), len(xs))
    z, ids = np.full(shape, np.inf), np.full(shape, -1, np.int32)
    a_buf, b_buf = np.zeros(shape), np.zeros(shape)
    for index, quad in enumerate(scene.quads):
        corners = quad.corners() @ R.T + t
        box = _screen_box(corners, Ks, shape[1], shape[0])
        if box is None:
            continue
        x0, x1, y0, y1 = box
        o, u, v = corners[0], R @ quad.u, R @ quad.v
        n = np.cross(v, u)
        DX, DY = dx[None, x0:x1], dy[y0:y1, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = (n @ o) / (n[0] * DX + n[1] * DY + n[2])
            px, py, pz = depth * DX - o[0], depth * DY - o[1], depth - o[2]
            a = (px * u[0] + py * u[1] + pz * u[2]) / (u @ u)
            b = (px * v[0] + py * v[1] + pz * v[2]) / (v @ v)
            win = (depth > NEAR) & (depth < z[y0:y1, x0:x1]) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        z[y0:y1, x0:x1][win] = depth[win]
        ids[y0:y1, x0:x1][win] = index
        a_buf[y0:y1, x0:x1][win] = a[win]
        b_buf[y0:y1, x0:x1][win] = b[win]
    DX, DY = np.broadcast_to(dx[None, :], shape), np.broadcast_to(dy[:, None], shape)
    return z, ids, a_buf, b_buf, DX, DY


def sky_radiance(world_dirs: np.ndarray) -> np.ndarray:
    """A bright hazy sky: horizon-to-zenith gradient with soft clouds fixed in direction space."""
    d = world_dirs / np.linalg.norm(world_dirs, axis=-1, keepdims=True)
    up = np.clip(d[..., 2], 0.02, 1)
    zenith, horizon = np.array([0.35, 0.55, 1.0]) * 2.2, np.array([1.3, 1.35, 1.45]) * 2.2
    mix = up[..., None] ** 0.5
    color = horizon * (1 - mix) + zenith * mix
    # clouds: a smooth pattern on the plane at height 1 (deterministic, no random state)
    x, y = d[..., 0] / up, d[..., 1] / up
    cloud = np.sin(1.3 * x + 0.7 * np.sin(2.1 * y)) * np.sin(1.7 * y + 0.9 * np.sin(1.5 * x)) + 0.5 * np.sin(
        3.1 * x + 2.3 * y
    )
    c = np.clip(cloud - 0.3, 0, 1)[..., None] * np.clip(up * 4, 0, 1)[..., None]
    return color * (1 - c) + 3.0 * c


def render(scene: Scene, K, R, t, width: int, height: int, samples: int = 2):
    """Linear radiance (H, W, 3) of the view, anti-aliased with ``samples``^2 rays per pixel."""
    z, ids, a, b, DX, DY = cast(scene, K, R, t, width, height, samples)
    z, ids, a, b, DX, DY = (m.reshape(-1) for m in (z, ids, a, b, DX, DY))
    out = np.zeros((len(z), 3), np.float32)
    focal = 0.5 * (K[0, 0] + K[1, 1]) * samples
    order = np.argsort(ids, kind="stable")
    found, starts = np.unique(ids[order], return_index=True)
    for index, sel in zip(found, np.split(order, starts[1:])):
        ray = np.stack([DX[sel], DY[sel], np.ones(len(sel))], -1)
        if index < 0:
            if scene.sky:
                out[sel] = sky_radiance(ray @ R)  # camera -> world: R^T d
            continue
        quad = scene.quads[index]
        ray_len = np.linalg.norm(ray, axis=1)
        cos = np.abs(ray @ (R @ quad.normal)) / ray_len
        # footprint of one sample on the surface (metres), as texels of the finest level
        footprint = z[sel] * ray_len / focal / np.sqrt(np.maximum(cos, 0.05))
        texels = footprint * quad.mips[0].shape[1] / np.linalg.norm(quad.u)
        out[sel] = _trilinear(quad.mips, a[sel], b[sel], np.log2(np.maximum(texels, 1e-6)))
    return out.reshape(height, samples, width, samples, 3).mean(axis=(1, 3), dtype=np.float64)


def depth_map(scene: Scene, K, R, t, width: int, height: int) -> np.ndarray:
    """Exact depth (metres, z in the camera frame) through pixel centres; 0 where nothing is hit."""
    z = cast(scene, K, R, t, width, height, 1)[0]
    return np.where(np.isfinite(z), z, 0.0)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(np.radians(angle_deg)) * length / 2, np.sin(np.radians(angle_deg)) * length / 2
    ends = [(int(round(c + s * dx)), int(round(c + s * dy))) for s in (-1, 1)]
    cv2.line(kernel, ends[0], ends[1], 1.0, 1, cv2.LINE_AA)
    return kernel / kernel.sum()


def develop(radiance, K, rng, dark: float = 0.0, blur=None) -> np.ndarray:
    """Phone-camera look: auto exposure, white-balance jitter, vignetting, lens softness, optional motion blur
    (``blur`` = (length px, angle deg)), shot and read noise, tone curve, 8-bit sRGB.

    ``dark`` (stops) cuts the light reaching the sensor: fewer photons, so more noise, and a
    darker picture because the auto gain makes up only part of the loss.
    """
    h, w = radiance.shape[:2]
    lum = radiance @ np.array([0.2126, 0.7152, 0.0722])
    gain = 0.2 / np.exp(np.mean(np.log(lum + 1e-3)))
    img = radiance * gain * (1 + 0.02 * rng.standard_normal(3))
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - K[0, 2]) ** 2 + (yy - K[1, 2]) ** 2) / (0.25 * (w * w + h * h))
    img = img * (1 - 0.3 * r2)[..., None]
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.6)  # lens and demosaicing softness
    if blur is not None:
        img = cv2.filter2D(img, -1, motion_kernel(*blur), borderType=cv2.BORDER_REFLECT)
    full_scale = 2000.0 * 2.0**-dark  # photo-electrons for a linear value of 1
    electrons = np.clip(img, 0, None) * full_scale
    electrons = electrons + np.sqrt(electrons + 9.0) * rng.standard_normal(img.shape)  # shot + read noise
    img = np.clip(electrons / full_scale, 0, None) * 2.0 ** (-0.7 * dark)
    toned = img * (1 + img / 4.0) / (1 + img)  # soft shoulder keeps skies from clipping hard
    return np.clip(255 * np.clip(toned, 0, 1) ** (1 / 2.2) + 0.5, 0, 255).astype(np.uint8)
