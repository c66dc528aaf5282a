"""Weight files: read safely, checked against the network before any work, loaded the same way.

A method lists its weight files as :class:`WeightFile` (path, what it is, the network the file must
fill, how the file's content maps onto that network's state dict; or, for a file that names its own
architecture, its own check). :func:`check_weight_files` runs
before any work: it reads each file's keys and tensor shapes (zip checkpoints are memory-mapped, so a
large file is not read into memory), builds the network on torch's ``meta`` device (no memory, no
weights) and names the first few missing, unexpected or mis-shaped keys. An unreadable, truncated or
non-checkpoint file is one sentence too. :func:`load_weight_file` fills the real network with the same
reading and the same check.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import UserError


def _itself(obj):
    return obj


@dataclass(frozen=True)
class WeightFile:
    path: Path
    what: str  # "DISK", "LightGlue", ...: names the file in messages
    network: Callable[[], Any] | None  # builds the object the file fills (called on the meta device for the check)
    module: Callable[[Any], Any] = _itself  # the torch module inside it that the state dict fits (XFeat: .net)
    state_dict: Callable[[Any], dict] = _itself  # the file's content -> that module's state dict
    optional: tuple[str, ...] = ()  # derived buffers the file may lack
    # a file that names its own architecture (DUSt3R/MASt3R checkpoints) brings its own check instead
    check: Callable[[Path], None] | None = None


def first_line(exc: BaseException) -> str:
    """The exception's first sentence (libraries append pages of advice)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip().split('. ')[0].rstrip('.')}" if lines else type(exc).__name__


def _unpickler_reason(exc: BaseException) -> str:
    """torch's weights-only unpickler buries the reason in a long advice text (which suggests an unsafe
    retry); keep the reason."""
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
    return found.group(1).strip() if found else first_line(exc)


def read_weights(path: Path, what: str, allowed_globals: tuple = ()) -> Any:
    """The file's content, unpickling tensors and plain containers only (plus ``allowed_globals``).

    Zip checkpoints are memory-mapped: tensors stay on disk until used."""
    import torch

    path = Path(path)
    where = f"The {what} weight file {path}"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise UserError(
            f"{where} cannot be read ({exc.strerror or exc}); check the path and its permissions."
        ) from None

    def load(mmap: bool):
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            return load(True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return load(False)  # the legacy (non-zip) format cannot be memory-mapped
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise UserError(
                f"{where} holds Python objects other than tensors, which are not unpickled for safety; "
                f"give the released file, or re-save only its state_dict with torch.save."
            ) from None
        raise UserError(
            f"{where} is truncated or not a PyTorch checkpoint ({_unpickler_reason(exc)}); download it "
            f"again or give the released file."
        ) from None
    except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler raise almost anything
        raise UserError(
            f"{where} is truncated or not a PyTorch checkpoint ({first_line(exc)}); download it again "
            f"or give the released file."
        ) from None


def listing(keys, n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def fit_problems(expected: dict, found: dict, optional: tuple[str, ...] = ()) -> list[str]:
    """What keeps a state dict (``found``: key -> shape) from filling a network (``expected``)."""
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k} {tuple(found[k])} vs {tuple(expected[k])}"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    return [
        f"{label}: {listing(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatch (file vs network)", mismatched),
        )
        if keys
    ]


def shapes(state_dict: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def tensor_dict(content, path: Path, what: str) -> dict:
    import torch

    if not (
        isinstance(content, dict)
        and content
        and all(isinstance(k, str) and torch.is_tensor(v) for k, v in content.items())
    ):
        kind = type(content).__name__ if not isinstance(content, dict) else "mapping that is not a state dict"
        raise UserError(
            f"The {what} weight file {path} holds a {kind}, not a state dict of tensors; give the released file."
        )
    return content


def require_fit(module, state_dict: dict, path: Path, what: str, optional: tuple[str, ...] = ()) -> None:
    problems = fit_problems(shapes(module.state_dict()), shapes(state_dict), optional)
    if problems:
        raise UserError(
            f"The {what} weight file {path} does not fit the network ({'; '.join(problems)}); give the matching file."
        )


def load_strict(module, state_dict, path: Path, what: str, optional: tuple[str, ...] = ()) -> None:
    """Fill ``module`` from ``state_dict``; only the ``optional`` derived buffers may be absent."""
    state_dict = tensor_dict(state_dict, path, what)
    require_fit(module, state_dict, path, what, optional)
    module.load_state_dict(state_dict, strict=False)


def _content(wf: WeightFile) -> dict:
    content = read_weights(wf.path, wf.what)
    if not isinstance(content, dict):
        tensor_dict(content, wf.path, wf.what)  # the sentence for a file that holds no mapping
    return tensor_dict(wf.state_dict(content), wf.path, wf.what)


_CHECKED: set = set()


def check_weight_files(files: list[WeightFile]) -> None:
    """Each file readable, a checkpoint, and the right architecture; nothing is loaded into memory."""
    if not files:  # SIFT: nothing to check, and no torch to import
        return
    import torch

    for wf in files:
        if wf.check is not None:
            wf.check(wf.path)
            continue
        st = Path(wf.path).stat()
        with torch.device("meta"):
            expected = shapes(wf.module(wf.network()).state_dict())
        key = (str(Path(wf.path).resolve()), st.st_size, st.st_mtime_ns, wf.what, tuple(expected.items()))
        if key in _CHECKED:
            continue
        problems = fit_problems(expected, shapes(_content(wf)), wf.optional)
        if problems:
            raise UserError(
                f"The {wf.what} weight file {wf.path} does not fit the network ({'; '.join(problems)}); "
                f"give the matching file."
            )
        _CHECKED.add(key)


def load_weight_file(wf: WeightFile, device) -> Any:
    """The network built (on the CPU) and filled from the file, in eval mode on ``device``."""
    net = wf.network()
    load_strict(wf.module(net), _content(wf), wf.path, wf.what, wf.optional)
    return net.eval().to(device)
