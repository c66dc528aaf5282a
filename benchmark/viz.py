"""Match pictures: the two images side by side, each match a line coloured by its error.

Raster only (OpenCV): a picture costs milliseconds, so a run can draw its worst samples at the end
without weighing on its throughput. Keypoints are drawn in the pixels of the images as the run read
them; a panel below the images holds the text and the legend, so nothing covers a keypoint.

Errors of a match against the ground truth, in pixels:

* :func:`epipolar_distance_px`: mean distance of each keypoint to the epipolar line of the other,
  from K and the GT relative pose (any dataset with a GT pose);
* :func:`reprojection_error_px`: the reference keypoint lifted with the GT depth, moved by the GT
  pose and projected into the other image (datasets with GT depth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

GREEN, YELLOW, RED, GREY = (0, 200, 0), (255, 210, 0), (230, 0, 0), (150, 150, 150)
WHITE, BLACK = (255, 255, 255), (20, 20, 20)
GAP = 8  # pixels between the two images
MIN_WIDTH = 640  # the text panel needs room even for thumbnails
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Legend:
    """Either a colour scale (``title``, ``max_error``, ``unit``) or named classes of colours."""

    title: str
    max_error: float | None = None
    unit: str = "px"
    classes: list = field(default_factory=list)  # [(label, rgb)]


def fundamental_matrix(T_0to1: np.ndarray, K0: np.ndarray, K1: np.ndarray) -> np.ndarray:
    """F with x1^T F x0 = 0 for pixels x0, x1 (homogeneous)."""
    R, t = T_0to1[:3, :3], T_0to1[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(K1).T @ tx @ R @ np.linalg.inv(K0)


def epipolar_distance_px(kpts0, kpts1, T_0to1, K0, K1) -> np.ndarray:
    """Mean of the two point-to-epipolar-line distances of each match (pixels); NaN for a pure
    rotation (no epipolar geometry)."""
    F = fundamental_matrix(np.asarray(T_0to1, float), np.asarray(K0, float), np.asarray(K1, float))
    x0 = np.c_[np.asarray(kpts0, float), np.ones(len(kpts0))]
    x1 = np.c_[np.asarray(kpts1, float), np.ones(len(kpts1))]
    lines1, lines0 = x0 @ F.T, x1 @ F  # epipolar lines in image 1 and image 0
    residual = np.abs(np.sum(x1 * lines1, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = residual / np.hypot(lines1[:, 0], lines1[:, 1])
        d0 = residual / np.hypot(lines0[:, 0], lines0[:, 1])
    out = (d0 + d1) / 2
    out[~np.isfinite(out)] = np.nan
    return out


PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")


def pinhole_pixels(camera, kpts: np.ndarray) -> np.ndarray:
    """Keypoints of a camera with lens distortion moved to where an ideal pinhole camera with the same K
    sees them (errors against the GT geometry are then exact); pinhole cameras' pixels unchanged."""
    if camera.model in PINHOLE_MODELS or not len(kpts):
        return kpts
    from .estimators import to_pycolmap_camera

    xy = to_pycolmap_camera(camera).cam_from_img(np.ascontiguousarray(kpts + 0.5, dtype=np.float64))  # COLMAP px
    return np.c_[xy, np.ones(len(xy))] @ camera.K[:2].T


def reprojection_error_px(kpts0, kpts1, depth0, T_0to1, K0, K1) -> np.ndarray:
    """Distance between each keypoint of image 1 and its partner lifted with ``depth0`` (metres, per
    match) and projected with the GT pose; NaN without depth or behind camera 1."""
    kpts0, kpts1 = np.asarray(kpts0, float), np.asarray(kpts1, float)
    rays = np.c_[kpts0, np.ones(len(kpts0))] @ np.linalg.inv(K0).T
    X1 = (rays * np.asarray(depth0, float)[:, None]) @ T_0to1[:3, :3].T + T_0to1[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = X1 @ np.asarray(K1, float).T
        uv = proj[:, :2] / proj[:, 2:]
        err = np.linalg.norm(uv - kpts1, axis=1)
    err[~(np.isfinite(err) & (X1[:, 2] > 0))] = np.nan
    return err


def error_colors(errors: np.ndarray, max_error: float) -> np.ndarray:
    """(N, 3) uint8 RGB: green at 0, yellow at half of ``max_error``, red at and beyond it; grey for NaN."""
    e = np.asarray(errors, float)
    f = np.clip(np.nan_to_num(e / max_error, nan=0.0), 0.0, 1.0)[:, None]
    lo, mid, hi = (np.array(c, float) for c in (GREEN, YELLOW, RED))
    rgb = np.where(f < 0.5, lo + (mid - lo) * (f * 2), mid + (hi - mid) * (f * 2 - 1))
    rgb[~np.isfinite(e)] = GREY
    return np.round(rgb).astype(np.uint8)


def inlier_colors(inliers: np.ndarray | None, n: int) -> np.ndarray:
    if inliers is None:
        return np.tile(np.array(GREY, np.uint8), (n, 1))
    return np.where(np.asarray(inliers, bool)[:, None], np.array(GREEN, np.uint8), np.array(RED, np.uint8))


def _fit_text(text: str, width: int, scale: float, thickness: int) -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` pixels."""
    out, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}" if line else word
        if line and cv2.getTextSize(trial, FONT, scale, thickness)[0][0] > width:
            out.append(line)
            line = word
        else:
            line = trial
    return out + [line]


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only


def _draw_legend(panel: np.ndarray, legend: Legend, x: int, y: int, scale: float, thickness: int, line_h: int) -> None:
    cv2.putText(panel, _ascii(legend.title), (x, y), FONT, scale, BLACK, thickness, cv2.LINE_AA)
    y += line_h // 2
    if legend.max_error is not None:
        bar_w, bar_h = min(panel.shape[1] - 2 * x, 40 * line_h // 2), line_h // 2
        ramp = error_colors(np.linspace(0, legend.max_error, bar_w), legend.max_error)
        panel[y : y + bar_h, x : x + bar_w] = ramp[None]
        ticks = ((0, "0"), (0.5, f"{legend.max_error / 2:g}"), (1, f">= {legend.max_error:g} {legend.unit}"))
        for frac, label in ticks:
            w = cv2.getTextSize(label, FONT, scale, thickness)[0][0]
            tx = int(np.clip(x + frac * bar_w - w / 2, x, x + bar_w - w if frac < 1 else panel.shape[1] - w - 2))
            cv2.putText(panel, label, (tx, y + bar_h + line_h), FONT, scale, BLACK, thickness, cv2.LINE_AA)
        y += bar_h + line_h + line_h // 2
    else:
        y += line_h // 4
    cx = x
    for label, rgb in legend.classes:
        box = line_h // 2
        if cx + box + 10 + cv2.getTextSize(label, FONT, scale, thickness)[0][0] > panel.shape[1]:
            cx, y = x, y + line_h
        cv2.rectangle(panel, (cx, y), (cx + box, y + box), tuple(int(c) for c in rgb), -1)
        cv2.putText(panel, _ascii(label), (cx + box + 6, y + box), FONT, scale, BLACK, thickness, cv2.LINE_AA)
        cx += box + 6 + cv2.getTextSize(label, FONT, scale, thickness)[0][0] + 3 * box


def _panel(width: int, lines: list[str], legend: Legend | None) -> np.ndarray:
    scale = max(0.45, width / 1400 * 0.5)
    thickness = 1 if scale < 0.8 else 2
    line_h = int(cv2.getTextSize("Ag", FONT, scale, thickness)[0][1] * 2.0)
    margin = line_h // 2
    wrapped = [w for text in lines for w in _fit_text(_ascii(text), width - 2 * margin, scale, thickness)]
    legend_h = 0
    if legend is not None:
        legend_h = line_h * (4 if legend.max_error is not None else 2) + line_h * (len(legend.classes) // 4)
    panel = np.full((margin + line_h * len(wrapped) + legend_h + margin, width, 3), 255, np.uint8)
    y = margin + line_h * 3 // 4
    for text in wrapped:
        cv2.putText(panel, text, (margin, y), FONT, scale, BLACK, thickness, cv2.LINE_AA)
        y += line_h
    if legend is not None:
        _draw_legend(panel, legend, margin, y, scale, thickness, line_h)
    return panel


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    colors: np.ndarray,
    lines: list[str] = (),
    legend: Legend | None = None,
    order: np.ndarray | None = None,
    scale: float = 1.0,
    antialias: bool = True,
) -> np.ndarray:
    """RGB picture: image0 left, image1 right, one line per match in ``colors`` (N, 3) RGB and a
    dot of the same colour at both keypoints (dots drawn after every line, so each keypoint shows
    its own match's colour; grey images are drawn grey); ``order`` = drawing order (last on top); the text
    ``lines`` and the ``legend`` in a panel below. ``scale`` < 1 draws a smaller picture (images and keypoints scaled
    alike); ``antialias=False`` draws lines ~5x faster (pictures drawn in bulk)."""
    image0, image1 = (np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im for im in (image0, image1))
    if scale != 1.0:
        image0, image1 = (
            cv2.resize(
                im,
                (max(1, round(im.shape[1] * scale)), max(1, round(im.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
            for im in (image0, image1)
        )
        kpts0, kpts1 = np.asarray(kpts0, float) * scale, np.asarray(kpts1, float) * scale
    h0, w0 = image0.shape[:2]
    h1, w1 = image1.shape[:2]
    width = max(w0 + GAP + w1, MIN_WIDTH)
    top = np.full((max(h0, h1), width, 3), 255, np.uint8)
    top[:h0, :w0] = image0
    top[:h1, w0 + GAP : w0 + GAP + w1] = image1
    thickness = max(1, round(min(h0, h1, w0, w1) / 500))
    radius = thickness + 1
    p0 = np.round(np.asarray(kpts0, float)).astype(int)
    p1 = np.round(np.asarray(kpts1, float)).astype(int) + [w0 + GAP, 0]
    order = np.arange(len(p0)) if order is None else np.asarray(order)
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    rgb = [tuple(int(c) for c in colors[i]) for i in range(len(colors))]
    for i in order:
        cv2.line(top, tuple(map(int, p0[i])), tuple(map(int, p1[i])), rgb[i], thickness, line_type)
    for i in order:  # dots are filled without anti-aliasing: their centre pixel has the exact colour
        cv2.circle(top, tuple(map(int, p0[i])), radius, rgb[i], -1, cv2.LINE_8)
        cv2.circle(top, tuple(map(int, p1[i])), radius, rgb[i], -1, cv2.LINE_8)
    if not lines and legend is None:
        return top
    return np.concatenate([top, _panel(width, list(lines), legend)], axis=0)


def encode(image: np.ndarray, suffix: str = ".png", jpeg_quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV cannot write {suffix} files")
    return data.tobytes()


def write_picture(path: Path, image: np.ndarray) -> Path:
    """Write an RGB picture; the suffix chooses the format (.png, .jpg)."""
    from .io import atomic_path

    path = Path(path)
    data = encode(image, path.suffix or ".png")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
