"""What produced a result: code version, packages, config hashes, weights, data, seed."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata

from . import PROTOCOL_VERSION, __version__
from .config import PROJECT_ROOT, section_hash

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "pycolmap",
    "poselib",
    "opencv-python-headless",
    "kornia",
    "ray",
    "pillow",
    "safetensors",
)


def git_state() -> dict:
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"commit": commit or "unknown", "dirty": dirty}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:  # the OpenCV build that runs (any wheel or a source build): its RANSAC decides ScanNet numbers
        import cv2

        out["cv2"] = cv2.__version__
    except ImportError:
        pass
    return out


def collect(cfg: dict, prepared) -> dict:
    """``prepared``: the run as :func:`benchmark.runner.prepare` built it (its plan identifies the data)."""
    from .identity import results_identity

    method, dataset, plan = prepared.method, prepared.dataset, prepared.plan
    return {
        "locbench_version": __version__,
        "protocol": dataset.protocol,
        "protocol_version": PROTOCOL_VERSION,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "seed": cfg["run"]["seed"],
        # the run id's hash: everything that can change a per-sample row (benchmark.identity)
        "results_hash": plan.results_hash,
        "results_config_hash": plan.config_part,
        "data_hash": plan.data_digest,
        "evaluation_set": evaluation_set(cfg, sum(len(s) for s in plan.shards)),
        "results_identity": results_identity(cfg, method.weights_fingerprint()),
        "method_config_hash": section_hash(cfg, "method"),
        "method_cache_key": method.cache_key(),
        "weights": method.weights_fingerprint(),
        "weight_files": method.weights_report(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def evaluation_set(cfg: dict, num_samples: int) -> dict:
    """What the run evaluated on: the dataset and every dataset key that is not its folder, plus
    ``run.max_samples``; runs with different evaluation sets are never ranked side by side."""
    from .identity import DATASET_KEYS_NOT_IN_RESULTS

    conf = {k: v for k, v in cfg["dataset"].items() if k not in DATASET_KEYS_NOT_IN_RESULTS}
    return {
        "dataset": cfg["dataset"]["name"],
        "conf": conf,
        "max_samples": cfg["run"]["max_samples"],
        "num_samples": int(num_samples),
    }
