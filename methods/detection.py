"""Keypoint selection as the reference code does it: SuperPoint's NMS (shared with ALIKED), ALIKED's and
XFeat's detection on kornia's networks.

kornia's ``ALIKED`` and ``XFeat`` networks compute the official score maps and descriptors, but their
keypoint selection departs on purpose from the reference code (strict local maxima only, a window that
never runs off the image, per-image fallbacks): with the same weights they return other keypoints than
LightGlue's ``ALIKED`` and verlab's ``XFeat.detectAndCompute``, hence other matches. These functions
select keypoints as the references do, so the released pipelines are reproduced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOFT_ARGMAX_TEMPERATURE = 0.1  # ALIKED's tuned value


def non_maximum_suppression(heatmap: torch.Tensor, radius: int) -> torch.Tensor:
    """Zero every score that is not the maximum of its (2r+1)^2 window.

    Two extra rounds, as in the released detector, restore maxima of windows left free once the
    neighbourhoods of the maxima already kept are blanked out (those would be lost otherwise).
    """

    def window_max(x):
        return F.max_pool2d(x, kernel_size=2 * radius + 1, stride=1, padding=radius)

    keep = heatmap == window_max(heatmap)
    for _ in range(2):
        covered = window_max(keep.float()) > 0
        rest = heatmap.masked_fill(covered, 0.0)
        keep = keep | ((rest == window_max(rest)) & ~covered)
    return heatmap.masked_fill(~keep, 0.0)


def aliked_keypoints(
    score_map: torch.Tensor, radius: int, top_k: int, threshold: float, n_limit: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """ALIKED's DKD on a (B, 1, H, W) score map, each image as if alone (LightGlue extracts one at a time).

    Peaks: SuperPoint's NMS (maxima of their window, plus the maxima freed in two more rounds), none
    within ``radius`` of the border. ``top_k > 0`` keeps the ``top_k`` best; otherwise those above
    ``threshold`` (above the map's mean when ``threshold <= 0`` or when none is), the ``n_limit`` best if
    more. Each peak moves by a soft-argmax over its window. Returns per image the keypoints in [-1, 1]
    (x, y; align_corners=True frame, as the descriptor head wants them) and their bilinear scores.
    """
    b, _, h, w = score_map.shape
    kernel = 2 * radius + 1
    peaks = non_maximum_suppression(score_map, radius)
    peaks[:, :, :radius], peaks[:, :, h - radius :] = 0, 0
    peaks[..., :radius], peaks[..., w - radius :] = 0, 0
    offsets = torch.linspace(-radius, radius, kernel, dtype=score_map.dtype, device=score_map.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    window_xy = torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)  # (kernel^2, 2), row-major window
    windows = F.unfold(score_map, kernel_size=kernel, padding=radius)  # (B, kernel^2, H * W), zero-padded
    size = torch.tensor([w - 1, h - 1], device=score_map.device)
    keypoints, scores = [], []
    for i in range(b):
        flat = peaks[i].reshape(-1)
        raw = score_map[i].reshape(-1)
        if top_k > 0:
            index = torch.topk(flat, top_k).indices
        else:
            keep = flat > threshold if threshold > 0 else torch.zeros_like(flat, dtype=torch.bool)
            if not keep.any():
                keep = flat > raw.mean()
            index = keep.nonzero()[:, 0]
            if len(index) > n_limit:
                index = index[raw[index].sort(descending=True)[1][:n_limit]]
        patch = windows[i].t()[index]  # (M, kernel^2)
        weights = ((patch - patch.max(dim=1).values[:, None]) / SOFT_ARGMAX_TEMPERATURE).exp()
        shift = weights @ window_xy / weights.sum(dim=1)[:, None]
        xy = torch.stack([index % w, torch.div(index, w, rounding_mode="trunc")], dim=1) + shift
        xy = xy / size * 2 - 1
        score = F.grid_sample(score_map[i][None], xy.view(1, 1, -1, 2), mode="bilinear", align_corners=True)
        keypoints.append(xy)
        scores.append(score[0, 0, 0])
    return keypoints, scores


def _sample(dense: torch.Tensor, xy: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """XFeat's sparse interpolation: (B, C, h, w) at (B, N, 2) pixels of a ``width`` x ``height`` image,
    normalised by (W - 1, H - 1) but sampled with align_corners=False, as its weights were trained."""
    grid = 2.0 * (xy / torch.tensor([width - 1, height - 1], device=xy.device, dtype=xy.dtype)) - 1.0
    out = F.grid_sample(dense, grid.unsqueeze(-2).to(dense.dtype), mode=mode, align_corners=False)
    return out.permute(0, 2, 3, 1).squeeze(-2)


def xfeat_detect_and_compute(net, x: torch.Tensor, top_k: int, threshold: float) -> list[dict]:
    """``XFeat.detectAndCompute`` with kornia's ``XFeatModel`` ``net``: (B, C, H, W) float in [0, 1] -> per
    image keypoints (x, y in the pixels of ``x``), scores, unit 64-D descriptors.

    The image is resized bilinearly to sides floored to multiples of 32; keypoints are the heatmap values
    above ``threshold`` equal to the maximum of their 5 x 5 window (ties kept, the window clipped at the
    border), scored by heatmap x reliability, the ``top_k`` best kept, and scaled back by pure factors.
    """
    height, width = x.shape[-2:]
    h, w = max(32, height // 32 * 32), max(32, width // 32 * 32)
    x = F.interpolate(x.float(), (h, w), mode="bilinear", align_corners=False)
    dense, logits, reliability = net(x)
    dense = F.normalize(dense, dim=1)
    heatmap = F.pixel_shuffle(F.softmax(logits, 1)[:, :64], 8)  # channel dy * 8 + dx of each 8 x 8 cell
    peak = (heatmap == F.max_pool2d(heatmap, kernel_size=5, stride=1, padding=2)) & (heatmap > threshold)
    found = [p.nonzero()[:, 1:].flip(-1) for p in peak]
    xy = torch.zeros((len(found), max(len(f) for f in found), 2), dtype=torch.long, device=x.device)
    for i, f in enumerate(found):
        xy[i, : len(f)] = f  # padded with (0, 0), which is then scored -1 and dropped
    scores = (_sample(heatmap, xy, h, w, "nearest") * _sample(reliability, xy, h, w, "bilinear")).squeeze(-1)
    scores[torch.all(xy == 0, dim=-1)] = -1
    order = torch.argsort(-scores)
    xy = torch.stack([torch.gather(xy[..., k], -1, order) for k in (0, 1)], dim=-1)[:, :top_k]
    scores = torch.gather(scores, -1, order)[:, :top_k]
    desc = F.normalize(_sample(dense, xy, h, w, "bicubic"), dim=-1)
    xy = xy * torch.tensor([width / w, height / h], device=xy.device).view(1, 1, -1)
    valid = scores > 0
    return [
        {"keypoints": xy[i][valid[i]], "scores": scores[i][valid[i]], "descriptors": desc[i][valid[i]]}
        for i in range(len(found))
    ]
