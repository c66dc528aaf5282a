"""Speed of Fast Reciprocal Matching against the brute-force all-pixels mutual nearest neighbours.

    python benchmarks/frm.py                       # CPU, 2 threads, 384x512x24, subsample 8
    python benchmarks/frm.py --device cuda --repeats 5

Descriptors imitate MASt3R's (like ../shared/fixtures/mast3r/frm): a smooth random field (Gaussian filter,
sigma 3 px, unit variance), view 2 samples it zoomed 1.5x about the centre and shifted by (dy, dx) = (3, 5)
(bilinear), N(0, 2^2) noise is added to each view, every pixel is L2-normalised; fixed seed.

Both methods run in this process on the same inputs: FRM (``--repeats`` runs, best time reported) and the
brute force (one run: every pixel of both images searched, the same tiled matrix-product engine). Ratio = brute
force seconds / method seconds. The official implementation's figures (2-core x86-64 CPU, torch threads = 2,
from ../shared/fixtures/mast3r/README.md) come from another run on its own inputs: indicative only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, map_coordinates

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from methods.mast3r.frm import brute_force_reciprocal, fast_reciprocal_matching  # noqa: E402

OFFICIAL_CPU = {
    "FRM": dict(seconds=10.0, matches=3026, note="best of 10.0-11.2 s"),
    "brute force": dict(seconds=278.0, matches=94666, note="278-287 s"),
}


def synthetic_descriptors(
    height: int,
    width: int,
    dim: int,
    seed: int = 0,
    sigma: float = 3.0,
    zoom: float = 1.5,
    shift=(3.0, 5.0),
    noise: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((height, width, dim)), sigma=(sigma, sigma, 0))
    field /= field.std()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    coords = [cy + (ys - cy) / zoom + shift[0], cx + (xs - cx) / zoom + shift[1]]
    view2 = np.stack([map_coordinates(field[..., c], coords, order=1, mode="nearest") for c in range(dim)], -1)
    out = []
    for view in (field, view2):
        view = view + noise * rng.standard_normal(view.shape)
        out.append((view / np.linalg.norm(view, axis=-1, keepdims=True)).astype(np.float32))
    return out[0], out[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hw", type=int, nargs=2, default=(384, 512), metavar=("H", "W"))
    parser.add_argument("--dim", type=int, default=24)
    parser.add_argument("--subsample", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="FRM runs (the best is reported)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    h, w = args.hw
    d1, d2 = synthetic_descriptors(h, w, args.dim, args.seed)
    desc1, desc2 = torch.from_numpy(d1).to(device), torch.from_numpy(d2).to(device)
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, descriptors {h}x{w}x{args.dim} per image, "
        f"subsample {args.subsample}, torch {torch.__version__}"
    )

    fast_reciprocal_matching(desc1[:32, :32], desc2[:32, :32])  # warm-up (first-call costs)
    frm_times = []
    for _ in range(args.repeats):
        _sync(device)
        tic = time.perf_counter()
        frm = fast_reciprocal_matching(desc1, desc2, subsample=args.subsample)
        _sync(device)
        frm_times.append(time.perf_counter() - tic)
    _sync(device)
    tic = time.perf_counter()
    brute = brute_force_reciprocal(desc1, desc2)
    _sync(device)
    brute_s = time.perf_counter() - tic

    mutual = set(zip(brute.idx1.tolist(), brute.idx2.tolist()))
    inside = sum((a, b) in mutual for a, b in zip(frm.idx1.tolist(), frm.idx2.tolist()))
    print(
        f"FRM runs: {', '.join(f'{t:.3f}' for t in frm_times)} s; still moving {list(frm.trace)}; "
        f"per-iteration s {[round(s, 3) for s in frm.trace.seconds]}"
    )
    print(f"FRM matches that are brute-force mutual pairs: {inside}/{len(frm)}")

    rows = [
        ("brute force (ours)", brute_s, len(brute), brute.trace.nn_queries, brute_s, ""),
        (
            "FRM (ours)",
            min(frm_times),
            len(frm),
            frm.trace.nn_queries,
            brute_s,
            f"{frm.trace.nn_lookups} look-ups in the official loop",
        ),
    ]
    official = device.type == "cpu" and (h, w, args.dim, args.subsample) == (384, 512, 24, 8)
    if official:
        ref_bf = OFFICIAL_CPU["brute force"]["seconds"]
        for name, ref in OFFICIAL_CPU.items():
            rows.append(
                (
                    f"official {name} (other run)",
                    ref["seconds"],
                    ref["matches"],
                    None,
                    ref_bf,
                    ref["note"] + "; ratio vs the official brute force",
                )
            )
    print(f"\n{'method':<30}{'seconds':>9}{'matches':>9}{'NN queries':>12}{'ratio vs BF':>13}  note")
    for name, seconds, matches, queries, baseline, note in rows:
        print(
            f"{name:<30}{seconds:>9.3f}{matches:>9}{'' if queries is None else queries:>12}"
            f"{baseline / seconds:>12.1f}x  {note}"
        )
    if official:
        print(
            f"\nour FRM vs the official FRM figure: {OFFICIAL_CPU['FRM']['seconds'] / min(frm_times):.1f}x faster; "
            f"our brute force vs the official one: {ref_bf / brute_s:.1f}x faster"
        )


if __name__ == "__main__":
    main()
