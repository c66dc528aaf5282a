"""HDF5 match cache, one file per (method config hash, dataset, shard).

Layout: ``<cache_dir>/<method>-<key>/<dataset>/<shard>.h5``, one group per pair,
named by a hash of the pair id (ids contain '/'); the id itself is kept as an
attribute and checked on read, with a CRC-32 of the group's arrays (HDF5 itself
notices a truncated file, not a damaged byte inside one). A shard file is written
to a temporary name, closed, and renamed when the shard is finished, so a
published file is always complete; an unreadable or inconsistent file is
reported, moved aside (``.corrupt``) and recomputed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import zlib
from pathlib import Path

import h5py
import numpy as np

from .types import Matches

log = logging.getLogger("locbench.cache")
FORMAT_VERSION = 2  # 2: CRC-32 per pair
_ARRAYS = ("kpts0", "kpts1", "scores", "pts3d0", "pts3d1")


def _group_name(pair_id: str) -> str:
    return hashlib.sha1(pair_id.encode()).hexdigest()


def _checksum(arrays: dict, counts: tuple) -> int:
    crc = zlib.crc32(repr(counts).encode())
    for k in _ARRAYS:
        v = arrays.get(k)
        if v is not None:
            v = np.ascontiguousarray(v)
            crc = zlib.crc32(f"{k}{v.dtype.str}{v.shape}".encode(), crc)
            crc = zlib.crc32(v.tobytes(), crc)
    return crc


class ShardCache:
    """Matches of one shard: read what a previous run published, write what this run computes."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._old: dict[str, Matches] = {}
        self._new: dict[str, Matches] = {}
        self.problem = ""
        if self.path is not None and self.path.exists():
            self._old = self._read_all()

    def _read_all(self) -> dict[str, Matches]:
        out: dict[str, Matches] = {}
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"format version {f.attrs.get('format_version')} != {FORMAT_VERSION}")
                for name, g in f.items():
                    pair_id = g.attrs["pair_id"]
                    if _group_name(pair_id) != name:
                        raise ValueError(f"group {name} does not belong to pair {pair_id}")
                    arrays = {k: (g[k][()] if k in g else None) for k in _ARRAYS}
                    nk0, nk1 = int(g.attrs.get("num_keypoints0", -1)), int(g.attrs.get("num_keypoints1", -1))
                    if int(g.attrs.get("crc32", -1)) != _checksum(arrays, (nk0, nk1)):
                        raise ValueError(f"the matches of pair {pair_id} fail their checksum")
                    out[pair_id] = Matches(arrays["kpts0"], arrays["kpts1"], arrays["scores"], arrays["pts3d0"],
                                           arrays["pts3d1"], nk0 if nk0 >= 0 else None, nk1 if nk1 >= 0 else None,
                                           {k[len("time_"):]: float(v) for k, v in g.attrs.items()
                                            if k.startswith("time_")})
        except Exception as exc:  # truncated, corrupt, or written by something else
            self.problem = f"match cache {self.path} is unreadable ({exc}); it was moved aside and will be recomputed"
            log.debug(self.problem)  # the runner reports it (a Ray worker's log would not reach the user)
            os.replace(self.path, self.path.with_suffix(".corrupt"))
            return {}
        return out

    def get(self, pair_id: str) -> Matches | None:
        return self._old.get(pair_id)

    def put(self, pair_id: str, matches: Matches) -> None:
        self._new[pair_id] = matches

    def __len__(self) -> int:
        return len(self._old)

    def publish(self) -> None:
        """Write old + new entries to a temporary file, close it, then rename it into place."""
        if self.path is None or not self._new:
            return
        from .io import atomic_path

        entries = {**self._old, **self._new}
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format_version"] = FORMAT_VERSION
                for pair_id, m in entries.items():
                    g = f.create_group(_group_name(pair_id))
                    g.attrs["pair_id"] = pair_id
                    arrays = {k: getattr(m, k) for k in _ARRAYS}
                    for k, v in arrays.items():
                        if v is not None:
                            g.create_dataset(k, data=np.asarray(v))
                    counts = tuple(-1 if n is None else int(n) for n in (m.num_keypoints0, m.num_keypoints1))
                    g.attrs["num_keypoints0"], g.attrs["num_keypoints1"] = counts
                    g.attrs["crc32"] = _checksum(arrays, counts)
                    for stage, seconds in m.timings.items():  # "match" and the method's own stages
                        g.attrs[f"time_{stage}"] = float(seconds)
        self._old, self._new = entries, {}
