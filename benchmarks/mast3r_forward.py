"""Speed and memory of one full-size MASt3R (or DUSt3R) forward pass, random weights.

    python benchmarks/mast3r_forward.py                 # CPU (2 threads), and CUDA when present
    python benchmarks/mast3r_forward.py --model dust3r --repeats 3 --threads 4

Each measurement runs in its own process (peak RSS is per process). Rows:
- ``sdpa``: our network as shipped (torch scaled_dot_product_attention);
- ``explicit``: the same network with the attention written out as the official code does
  (softmax(q k^T) v): the baseline measured in the same run;
- the official code's own figure, from ../shared/fixtures/mast3r/README.md (2-core x86-64 CPU, torch
  2.13.0+cpu, 2 threads, inference() on one 384x512 pair): a reference from another run, so its ratio
  is only indicative.

Precisions: fp32 and bf16 (autocast) on every device (``--precisions``). The effect of bf16 is measured
against fp32 on the same weights and input: the largest absolute difference of each output (points,
confidences, descriptors), relative to the largest fp32 value, and the overlap of the match sets that
Fast Reciprocal Matching (subsample 8, 10 iterations) finds in the two descriptor maps. Random weights:
poses would mean nothing, so none are computed.

    python benchmarks/mast3r_forward.py --no-baseline --rounds 1 --repeats 1      # fp32 vs bf16, CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_CPU = {
    "mast3r": dict(seconds=18.1, peak_rss_gb=3.54, build_rss_gb=2.94),
    "dust3r": dict(seconds=17.3, peak_rss_gb=3.13, build_rss_gb=2.50),
}


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def worker(args) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from methods.mast3r import DUST3R_DEFAULT, MAST3R_DEFAULT, build_network, infer_pair
    from methods.mast3r.blocks import attention_impl

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = MAST3R_DEFAULT if args.model == "mast3r" else DUST3R_DEFAULT
    start = time.perf_counter()
    from methods.mast3r.checkpoint import parse_constructor

    net = build_network(parse_constructor(name).inference_form(), device="meta").to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if p.ndim > 1:  # fan-in scaled normal keeps activations finite through 24 + 12 blocks
                p.normal_(0, p[0].numel() ** -0.5, generator=gen)
            else:
                p.fill_(1.0 if "norm" in pname and pname.endswith("weight") else 0.0)
    build_s, build_rss = time.perf_counter() - start, _rss_gb()

    h, w = args.hw
    views = [
        dict(
            img=torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) * 2 - 1,
            true_shape=torch.tensor([[h, w]]),
        )
        for i in (1, 2)
    ]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    times = []
    with attention_impl(args.attention):
        for _ in range(args.repeats + 1):  # the first call pays one-off costs: reported apart
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            res1, res2 = infer_pair(net, *views, device=device, autocast_dtype=dtype)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    assert bool(torch.isfinite(res1["desc"] if "desc" in res1 else res1["pts3d"]).all())
    if args.save:  # the outputs of the last call, for the precision comparison
        import numpy as np

        np.savez(
            args.save,
            **{
                f"{view}/{k}": v.float().cpu().numpy()
                for view, res in (("view1", res1), ("view2", res2))
                for k, v in res.items()
            },
        )
    out = dict(build_s=build_s, build_rss_gb=build_rss, first_s=times[0], warm_s=times[1:], peak_rss_gb=_rss_gb())
    if device.type == "cuda":
        out["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 1024**3
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mast3r", "dust3r"], default="mast3r")
    p.add_argument(
        "--hw",
        type=lambda s: tuple(int(v) for v in s.split("x")),
        default=(384, 512),
        help="image height x width (default 384x512)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timed calls after the first one, per process (0: time the first call only)",
    )
    p.add_argument("--rounds", type=int, default=2, help="processes per configuration, run alternately")
    p.add_argument("--devices", default="auto", help="comma list of cpu/cuda (auto: cpu, plus cuda when present)")
    p.add_argument("--no-baseline", action="store_true", help="skip the explicit-attention baseline")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32/bf16/fp16 (fp16: CUDA only)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--attention", default="sdpa", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--save", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import torch

    devices = (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" else args.devices.split(",")
    )
    runs = []
    for dev in devices:
        for prec in [q for q in args.precisions.split(",") if not (q == "fp16" and dev == "cpu")]:
            for attn in ["sdpa"] + ([] if args.no_baseline else ["explicit"]):
                runs.append((dev, prec, attn))
    results, load_before = {}, os.getloadavg()[0]  # the machine may be shared: its load says how noisy
    saved = Path(tempfile.mkdtemp(prefix="mast3r_forward_"))
    for _ in range(args.rounds):  # alternate the configurations so that machine noise hits all of them
        for dev, prec, attn in runs:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--device",
                dev,
                "--attention",
                attn,
                "--precision",
                prec,
                "--model",
                args.model,
                "--hw",
                f"{args.hw[0]}x{args.hw[1]}",
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
                "--save",
                str(saved / f"{dev}_{prec}_{attn}.npz"),
            ]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if res.returncode:
                print(f"{dev}/{prec}/{attn} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            acc = results.setdefault((dev, prec, attn), dict(r, warm_s=[], first_s=math.inf))
            acc["warm_s"] += r["warm_s"]
            acc["first_s"] = min(acc["first_s"], r["first_s"])
            for k in ("peak_rss_gb", "build_rss_gb", "cuda_peak_gb"):
                if k in r:
                    acc[k] = max(acc[k], r[k])
    rows = list(results.items())

    h, w = args.hw
    print(
        f"\nfull-size {args.model}, one {h}x{w} pair, random weights, torch {torch.__version__}, "
        f"{args.threads} CPU threads, best of {args.rounds} x {args.repeats or 1} "
        f"{'warm' if args.repeats else 'first'} calls; load average before: {load_before:.1f}, now "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'device/precision/attention':<28}{'s/pair':>9}{'first':>9}{'x baseline':>11}{'x official':>11}"
        f"{'peak RSS GB':>12}{'RSS@build':>10}{'GPU peak GB':>12}"
    )

    def fastest(r):
        return min(r["warm_s"]) if r["warm_s"] else r["first_s"]

    base = {key[:2]: fastest(r) for key, r in rows if key[2] == "explicit"}
    for key, r in rows:
        best = fastest(r)
        ratio_base = f"{best / base[key[:2]]:.2f}" if key[:2] in base else "-"
        comparable = key[0] == "cpu" and (h, w) == (384, 512)
        ratio_off = f"{best / OFFICIAL_CPU[args.model]['seconds']:.2f}" if comparable else "-"
        gpu = f"{r['cuda_peak_gb']:.2f}" if "cuda_peak_gb" in r else "-"
        print(
            f"{'/'.join(key):<28}{best:>9.2f}{r['first_s']:>9.2f}{ratio_base:>11}{ratio_off:>11}"
            f"{r['peak_rss_gb']:>12.2f}{r['build_rss_gb']:>10.2f}{gpu:>12}"
        )
    off = OFFICIAL_CPU[args.model]
    print(
        f"{'official (README, cpu/fp32)':<28}{off['seconds']:>9.2f}{'-':>9}{'-':>11}{'1.00':>11}"
        f"{off['peak_rss_gb']:>12.2f}{off['build_rss_gb']:>10.2f}{'-':>12}"
    )
    for key, r in rows:
        if "gpu" in r:
            print(f"GPU: {r['gpu']}")
            break
    print_precision_effects(saved, {key: fastest(r) for key, r in rows})
    shutil.rmtree(saved, ignore_errors=True)


def print_precision_effects(saved: Path, seconds: dict) -> None:
    """Each reduced precision against fp32 on the same device and attention: output differences, FRM overlap."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from methods.mast3r.frm import fast_reciprocal_matching

    def matches(out):
        frm = fast_reciprocal_matching(
            torch.from_numpy(out["view1/desc"][0]), torch.from_numpy(out["view2/desc"][0]), subsample=8, max_iter=10
        )
        return set(map(tuple, np.concatenate([frm.xy1, frm.xy2], axis=1).tolist()))

    lines = []
    for dev, prec, attn in seconds:
        if prec == "fp32" or (dev, "fp32", attn) not in seconds:
            continue
        ref, low = (dict(np.load(saved / f"{dev}_{p}_{attn}.npz")) for p in ("fp32", prec))
        cells = []
        for k in sorted(ref):
            diff = float(np.max(np.abs(low[k] - ref[k])))
            cells.append(f"{k} {diff:.3g} ({diff / float(np.max(np.abs(ref[k]))):.2%})")
        ratio = seconds[dev, prec, attn] / seconds[dev, "fp32", attn]
        line = (
            f"{dev}/{prec}/{attn} vs fp32: time x{ratio:.2f}; largest |difference| (share of the largest fp32 "
            f"value): " + ", ".join(cells)
        )
        if "view1/desc" in ref:
            a, b = matches(ref), matches(low)
            line += (
                f"\n  FRM matches fp32 {len(a)}, {prec} {len(b)}, common {len(a & b)}: "
                f"{len(a & b) / max(len(a), 1):.1%} of fp32's kept, IoU {len(a & b) / max(len(a | b), 1):.1%}"
            )
        lines.append(line)
    if lines:
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
