"""What produced a result: code version, packages, config hashes, weights, data, seed."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata

from . import PROTOCOL_VERSION, __version__
from .config import PROJECT_ROOT, config_hash, section_hash

PACKAGES = ("torch", "numpy", "scipy", "pandas", "pycolmap", "poselib", "opencv-python-headless", "h5py",
            "kornia", "ray", "pillow", "safetensors")


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


def manifest_hash(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def collect(cfg: dict, method, dataset) -> dict:
    return {
        "locbench_version": __version__,
        "protocol": dataset.protocol,
        "protocol_version": PROTOCOL_VERSION,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "seed": cfg["run"]["seed"],
        "config_hash": config_hash({k: cfg[k] for k in ("method", "dataset", "solver")}),
        "method_config_hash": section_hash(cfg, "method"),
        "method_cache_key": method.cache_key(),
        "weights": method.weights_fingerprint(),
        "dataset_manifest_hash": manifest_hash(dataset.manifest()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
