"""SuperPoint (DeTone, Malisiewicz, Rabinovich, CVPRW 2018): a VGG-style encoder shared by a
keypoint head (65 channels: the 64 pixels of each 8x8 cell plus "no keypoint") and a 256-D
descriptor head on the 1/8 grid.

Parameter names follow the released ``superpoint_v1.pth`` (``conv1a`` ... ``convDb``) so that file
loads as published; defaults are the published ones (NMS radius 4, keypoint threshold 0.005, border
4, all keypoints). About 1.3 M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..detection import non_maximum_suppression

CELL = 8  # pixels per side of one cell of the coarse grid (three 2x2 poolings)


def sample_descriptors(xy: torch.Tensor, dense: torch.Tensor, cell: int = CELL) -> torch.Tensor:
    """Bilinear descriptors (N, D) at pixel positions ``xy`` (N, 2) from one dense map (D, h, w).

    The pixel-to-grid mapping (offset cell/2 - 0.5, span w*cell - cell/2 - 0.5) is the released
    detector's, kept so that descriptors match the ones SuperGlue was trained on.
    """
    d, h, w = dense.shape
    if len(xy) == 0:
        return dense.new_zeros((0, d))
    span = xy.new_tensor([w * cell - cell / 2 - 0.5, h * cell - cell / 2 - 0.5])
    grid = (xy - cell / 2 + 0.5) / span * 2.0 - 1.0
    out = F.grid_sample(dense[None], grid.view(1, 1, -1, 2).to(dense.dtype), mode="bilinear", align_corners=True)
    return F.normalize(out.view(d, -1), p=2, dim=0).t()


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=k // 2)


class SuperPoint(nn.Module):
    def __init__(
        self,
        nms_radius: int = 4,
        keypoint_threshold: float = 0.005,
        max_keypoints: int = -1,
        remove_borders: int = 4,
        descriptor_dim: int = 256,
    ):
        super().__init__()
        if max_keypoints == 0 or max_keypoints < -1:
            raise ValueError("max_keypoints must be positive, or -1 for all")
        self.nms_radius = int(nms_radius)
        self.keypoint_threshold = float(keypoint_threshold)
        self.max_keypoints = int(max_keypoints)
        self.remove_borders = int(remove_borders)
        self.conv1a, self.conv1b = _conv(1, 64), _conv(64, 64)
        self.conv2a, self.conv2b = _conv(64, 64), _conv(64, 64)
        self.conv3a, self.conv3b = _conv(64, 128), _conv(128, 128)
        self.conv4a, self.conv4b = _conv(128, 128), _conv(128, 128)
        self.convPa, self.convPb = _conv(128, 256), _conv(256, CELL * CELL + 1, k=1)
        self.convDa, self.convDb = _conv(128, 256), _conv(256, descriptor_dim, k=1)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        stages = (
            (self.conv1a, self.conv1b),
            (self.conv2a, self.conv2b),
            (self.conv3a, self.conv3b),
            (self.conv4a, self.conv4b),
        )
        for i, (a, b) in enumerate(stages):
            x = F.relu(b(F.relu(a(x))))
            if i < 3:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        return x

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, H, W) grayscale in [0, 1] -> keypoint heatmap (B, H8, W8) with H8 = 8 * (H // 8), after
        NMS, and unit descriptors (B, D, H // 8, W // 8)."""
        x = self.encode(image)
        logits = self.convPb(F.relu(self.convPa(x)))
        # channel dy * 8 + dx of a cell is the pixel (dy, dx) inside it: pixel_shuffle lays them out
        probs = logits.softmax(dim=1)[:, :-1]
        heatmap = F.pixel_shuffle(probs, CELL)[:, 0]
        heatmap = non_maximum_suppression(heatmap, self.nms_radius)
        desc = F.normalize(self.convDb(F.relu(self.convDa(x))), p=2, dim=1)
        return heatmap, desc

    def forward(self, image: torch.Tensor) -> list[dict]:
        """Per image: keypoints (N, 2) as (x, y) pixels, scores (N,), descriptors (N, D)."""
        heatmap, desc = self.dense(image)
        h, w = heatmap.shape[-2:]
        b = self.remove_borders
        out = []
        for scores_map, dense in zip(heatmap, desc):
            yx = torch.nonzero(scores_map > self.keypoint_threshold)
            inside = (yx[:, 0] >= b) & (yx[:, 0] < h - b) & (yx[:, 1] >= b) & (yx[:, 1] < w - b)
            yx = yx[inside]
            scores = scores_map[yx[:, 0], yx[:, 1]]
            if 0 < self.max_keypoints < len(scores):
                scores, top = torch.topk(scores, self.max_keypoints)
                yx = yx[top]
            xy = yx.flip(1).to(image.dtype)
            out.append({"keypoints": xy, "scores": scores, "descriptors": sample_descriptors(xy, dense)})
        return out
