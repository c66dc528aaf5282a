"""What a number depends on, as hashes: file contents, the match cache key, the results identity.

Three identities, each over everything that can change what it names and nothing else:

* **file identity**: the sha256 of a file's bytes. Hashing is memoised per file by its ``stat``
  (device, inode, size, mtime and ctime, all in ns), so a warm run only stats its inputs; a copy,
  an edit in place or a restored mtime (which still moves ctime) re-hashes the file, and a file
  that was only touched keeps its identity. Content rather than size + mtime, because a cache that
  survives moving or copying a dataset (another disk, a Ray node's mount) is worth one read of each
  input the first time, and because size + mtime misses an edit that keeps both.
* **match key** of an image pair: the method's cache key (name, config including how it reads
  images, weights) plus the two images' identities and how the run reads them (protocol resize,
  rotation). Pair ids and paths are not in it: the same images read the same way share matches.
* **results identity**: everything that can change a per-sample row except the data files:
  the method (config and weights), the dataset config (the evaluation set: split, scenes, frames,
  pair list; not its root folder, whose files are identified by content), the solver, ``run.seed``
  and ``run.max_samples``. The run id, each shard's fingerprint and provenance add the identities
  of the files the samples read (images, depth, ground truth, intrinsics, pair lists).

Every other key (``run.cache``, ``cache_dir``, ``output``, ``plots``, ``bootstrap``, ``torch_threads``,
``shard_size``, ``progress`` and anything added to ``run`` later, the whole ``executor`` section) cannot
change a row and is left out, so changing it keeps the run id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np

from .config import config_hash
from .types import PairSample

log = logging.getLogger("locbench.identity")
RESULT_RUN_KEYS = ("seed", "max_samples")  # the only run keys that change rows
DATASET_KEYS_NOT_IN_RESULTS = ("root", "name", "label")  # the files are identified by content instead
MISSING = "missing"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileIdentities:
    """Content hashes of files, memoised by stat in a small SQLite table (``store``; None: in memory).

    Reading an existing store creates nothing; :meth:`save` writes what was hashed (a run calls it once
    it knows it can write its folders, so a refused run leaves nothing behind)."""

    def __init__(self, store: Path | None = None):
        self.store = Path(store) if store is not None else None
        self._memo: dict[str, tuple] = {}
        self._new: dict[str, tuple] = {}
        self._db = None
        if self.store is not None and self.store.is_file():
            try:
                self._db = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=30)
                self._db.execute("SELECT 1 FROM files LIMIT 1")
            except sqlite3.Error as exc:  # damaged or foreign: hash again (save() rewrites the table)
                log.debug("file identity store %s unreadable (%s)", self.store, exc)
                self._db = None

    @staticmethod
    def _stat_key(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

    def _stored(self, key: str):
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT stat, digest FROM files WHERE path = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return tuple(row) if row else None

    def digest(self, path) -> str:
        """sha256 of the file at ``path``, or ``"missing"`` when there is no readable file."""
        key = str(Path(path).absolute())
        try:
            stamp = self._stat_key(os.stat(key))
        except OSError:
            return MISSING
        hit = self._memo.get(key) or self._stored(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            digest = sha256_file(Path(key))
        except OSError:
            return MISSING
        self._memo[key] = self._new[key] = (stamp, digest)
        return digest

    def save(self) -> None:
        """Write the identities hashed since the store was read (creating it when needed)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.store is None or not self._new:
            return
        try:
            with sqlite3.connect(str(self.store), timeout=30) as db:
                db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stat TEXT, digest TEXT)")
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", [(k, *v) for k, v in self._new.items()])
            self._new = {}
        except sqlite3.Error as exc:  # a full disk or an odd filesystem: the next run hashes again
            log.warning(
                "could not save file identities to %s (%s); the next run hashes its inputs again", self.store, exc
            )

    close = save


def match_key(method_key: str, image_a: str, image_b: str, read_a: tuple = (), read_b: tuple = ()) -> str:
    """The cache key of one matched pair: method, the two images' identities, how each is read."""
    text = json.dumps([method_key, image_a, read_a, image_b, read_b], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def array_digest(values) -> str:
    data = np.ascontiguousarray(values)
    return hashlib.sha256(f"{data.dtype.str}{data.shape}".encode() + data.tobytes()).hexdigest()[:32]


def results_identity(cfg: dict, weights: str) -> dict:
    """Everything but the data files that can change a per-sample row (see the module docstring)."""
    dataset = {k: v for k, v in cfg["dataset"].items() if k not in DATASET_KEYS_NOT_IN_RESULTS}
    return {
        "method": {k: v for k, v in cfg["method"].items() if k != "label"},
        "weights": weights,
        "dataset": {"name": cfg["dataset"]["name"], "conf": dataset},
        "solver": cfg["solver"],
        "run": {k: cfg["run"].get(k) for k in RESULT_RUN_KEYS},
    }


def results_hash(identity: dict, data_digest: str = "", length: int = 16) -> str:
    """The one hash behind the run id, the shard fingerprints and provenance."""
    return config_hash({"results": identity, "data": data_digest}, length)


def _canonical(value, ids: FileIdentities, files: dict):
    """A JSON-able form of a sample in which every file is its content identity (also noted in
    ``files``: path -> digest) and every array its bytes' hash: equal forms mean the sample reads
    the same data and carries the same truth."""
    if isinstance(value, Path):
        files[str(value)] = digest = ids.digest(value)
        return ["file", digest]
    if isinstance(value, np.ndarray):
        return ["array", array_digest(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            type(value).__name__,
            {f.name: _canonical(getattr(value, f.name), ids, files) for f in dataclasses.fields(value)},
        ]
    if isinstance(value, dict):
        return {str(k): _canonical(v, ids, files) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, ids, files) for v in value]
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def sample_digest(sample, ids: FileIdentities, files: dict | None = None) -> str:
    """Identity of one sample: its id, the content of every file it reads (images, depth), its cameras,
    ground truth, references and map points, and for a sample the loader could not build, the reason.
    The files' digests are added to ``files`` (path -> digest), for the workers' match keys."""
    form = _canonical(sample, ids, files if files is not None else {})
    return hashlib.sha256(json.dumps(form, sort_keys=True, default=str).encode()).hexdigest()[:32]


def combine(digests) -> str:
    """One digest of an ordered collection of digests."""
    return hashlib.sha256(json.dumps(list(digests), default=str).encode()).hexdigest()[:32]


def pair_read_params(sample: PairSample) -> tuple[tuple, tuple]:
    """How the run reads each image of a pair: the protocol resize and the rotation code."""
    extra = sample.extra or {}
    return (
        ("resize", sample.resize0, "rot", extra.get("rot0", 0)),
        ("resize", sample.resize1, "rot", extra.get("rot1", 0)),
    )
