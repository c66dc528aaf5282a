"""Match cache: one file per matched image pair, named by the pair's match key.

Layout: ``<cache_dir>/matches-v3/<method>-<method cache key>/<key[:2]>/<key>.npz``, where the key
(:func:`benchmark.identity.match_key`) hashes the method's cache key, the content of both images
and how the run reads them. So a changed image misses the cache for exactly the pairs that read
it, the shard size or the dataset's sample ids do not matter, and ``show`` finds a pair's
matches from the pair alone. Each entry is written under a temporary name and renamed, so a run
killed at any moment leaves whole entries only (every pair matched before the kill is kept). An
``.npz`` is a ZIP: a truncated or damaged entry fails its CRC-32 on reading and is reported, moved
aside (``.corrupt``) and recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from .io import atomic_path
from .types import Matches

log = logging.getLogger("locbench.cache")
FORMAT = "matches-v3"  # v3: one entry per pair, keyed by content; v2 (HDF5 per shard) is ignored
_ARRAYS = ("kpts0", "kpts1", "scores", "pts3d0", "pts3d1")


def method_cache_dir(cache_dir: Path, method) -> Path:
    return Path(cache_dir).absolute() / FORMAT / f"{method.name}-{method.cache_key()}"


def note_old_format(cache_dir: Path) -> None:
    """Say once that match caches written by an older locbench are not read (they would be stale)."""
    root = Path(cache_dir)
    if root.is_dir() and any(p.is_dir() and p.name != FORMAT and "-" in p.name for p in root.iterdir()):
        log.info(
            "%s also holds match caches of an older locbench format; they are not used (delete them to free space)",
            root,
        )


class MatchCache:
    """Matches of image pairs by key: read what any earlier run wrote, write what this run computes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.problems: list[str] = []

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Matches | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    raise ValueError(f"it holds the matches of another pair ({data['key']})")
                arrays = {k: (data[k] if k in data.files else None) for k in _ARRAYS}
                counts = [int(v) for v in data["num_keypoints"]]
                timings = json.loads(str(data["timings"]))
            return Matches(
                arrays["kpts0"],
                arrays["kpts1"],
                arrays["scores"],
                arrays["pts3d0"],
                arrays["pts3d1"],
                *(n if n >= 0 else None for n in counts),
                timings,
            )
        except Exception as exc:  # truncated, corrupt (CRC), or written by something else
            problem = f"match cache entry {path} is unreadable ({exc}); it was moved aside and will be recomputed"
            self.problems.append(problem)
            log.debug(problem)  # the runner reports it (a Ray worker's log would not reach the user)
            os.replace(path, path.with_suffix(".corrupt"))
            return None

    def put(self, key: str, matches: Matches) -> None:
        arrays = {k: np.asarray(getattr(matches, k)) for k in _ARRAYS if getattr(matches, k) is not None}
        counts = [-1 if n is None else int(n) for n in (matches.num_keypoints0, matches.num_keypoints1)]
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    key=np.array(key),
                    num_keypoints=np.array(counts, np.int64),
                    timings=np.array(json.dumps({k: float(v) for k, v in matches.timings.items()})),
                    **arrays,
                )
