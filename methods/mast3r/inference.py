"""Running a loaded network on image pairs outside the benchmark.

A view is a dict with ``img`` (1 or B, 3, H, W) normalised tensor and ``true_shape`` ((B, 2) array/tensor),
as returned by :func:`methods.mast3r.load_images` or built from :func:`methods.mast3r.images.preprocess_image`.
Outputs: ``res1`` with pts3d, conf [, desc, desc_conf]; ``res2`` with pts3d_in_other_view (view 2's points
in view 1's frame), conf [, desc, desc_conf]; maps shaped (B, H, W[, C]).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch


def _device_of(model, device):
    return torch.device(device) if device is not None else next(model.parameters()).device


def _to_device(view: dict, device) -> dict:
    out = dict(view)
    out["img"] = torch.as_tensor(view["img"]).to(device, non_blocking=True)
    if view.get("true_shape") is not None:  # stays on the CPU: it only steers shapes
        out["true_shape"] = torch.as_tensor(
            np.asarray(view["true_shape"]) if not torch.is_tensor(view["true_shape"]) else view["true_shape"]
        ).reshape(-1, 2)
    return out


def _autocast(device: torch.device, dtype):
    """Mixed precision on CUDA (bfloat16, float16) and on the CPU (bfloat16: twice the matmul rate of
    float32 on CPUs with AVX2 or better; the heads still run in float32, see the network's forward)."""
    if dtype is None or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _outputs(res: dict, as_numpy: bool) -> dict:
    return {k: v.float().cpu().numpy() if as_numpy else v for k, v in res.items()}


def infer_pair(model, view1: dict, view2: dict, device=None, autocast_dtype=None, as_numpy: bool = False):
    """One forward pass under ``torch.inference_mode`` (optionally autocast: CUDA, or bfloat16 on the CPU)
    -> (res1, res2)."""
    device = _device_of(model, device)
    with torch.inference_mode(), _autocast(device, autocast_dtype):
        res1, res2 = model(_to_device(view1, device), _to_device(view2, device))
    return _outputs(res1, as_numpy), _outputs(res2, as_numpy)


def collate(views: list) -> dict:
    """Stack views of one size into a batch view (images, true shapes, instances)."""
    out = {
        "img": torch.cat([torch.as_tensor(v["img"]).reshape(-1, *v["img"].shape[-3:]) for v in views]),
        "true_shape": torch.cat([torch.as_tensor(np.asarray(v["true_shape"])).reshape(-1, 2) for v in views]),
    }
    if all("instance" in v for v in views):
        out["instance"] = [str(v["instance"]) for v in views]
    return out


def infer_pairs(model, pairs: list, batch_size: int = 1, device=None, autocast_dtype=None, as_numpy: bool = False):
    """Several (view1, view2) pairs, batched by ``batch_size`` among consecutive pairs of identical image
    sizes -> list of (res1, res2) with a leading batch axis of 1 per pair, in input order."""
    results, start = [], 0
    while start < len(pairs):
        key = tuple(tuple(np.shape(v["img"])[-2:]) for v in pairs[start])
        stop = start + 1
        while (
            stop < len(pairs)
            and stop - start < batch_size
            and tuple(tuple(np.shape(v["img"])[-2:]) for v in pairs[stop]) == key
        ):
            stop += 1
        chunk = pairs[start:stop]
        # no 'instance' here: it would let the model take two pairs for one symmetrised pair
        v1 = {k: v for k, v in collate([p[0] for p in chunk]).items() if k != "instance"}
        v2 = {k: v for k, v in collate([p[1] for p in chunk]).items() if k != "instance"}
        res1, res2 = infer_pair(model, v1, v2, device, autocast_dtype, as_numpy)
        for i in range(len(chunk)):
            results.append(({k: v[i : i + 1] for k, v in res1.items()}, {k: v[i : i + 1] for k, v in res2.items()}))
        start = stop
    return results
