"""Matches of one image pair, through the match cache: the pair's cache key and the lookup.

Shared by pair samples (``benchmark.pipeline``) and absolute localization (``benchmark.localize``).
"""

from __future__ import annotations

from . import identity
from .cache import MatchCache
from .types import Matches, PairSample, QuerySample, Reference


class MatchKeys:
    """Match-cache keys of a shard's pairs (``benchmark.identity.match_key``) from the file digests the
    driver computed while planning; a file it did not see is hashed here."""

    def __init__(self, method_key: str, digests: dict | None = None):
        self.method_key = method_key
        self.digests = dict(digests or {})
        self._ids = identity.FileIdentities()

    def digest(self, path) -> str:
        found = self.digests.get(str(path))
        return found if found is not None else self._ids.digest(path)

    def pair(self, sample: PairSample) -> str:
        read0, read1 = identity.pair_read_params(sample)
        return identity.match_key(self.method_key, self.digest(sample.image0), self.digest(sample.image1), read0, read1)

    def localization(self, reference: Reference, query: QuerySample, seeds=None) -> str:
        """The reference is image 0, the query image 1, both read as they are on disk; ``seeds``: the map
        observations a matcher bound to the map starts from (they change its matches)."""
        seeded = () if seeds is None else ("seeds", identity.array_digest(seeds))
        return identity.match_key(self.method_key, self.digest(reference.image), self.digest(query.image), seeded)


def match_pair(
    method, cache: MatchCache | None, key: str, load_pair, prefetched: dict | None = None, store=None
) -> tuple[Matches, bool]:
    """Matches for one image pair, from the cache when present, else from ``prefetched`` (computed in a
    batch by ``benchmark.pipeline.prefetch_pairs``), else computed now and cached at once (a run killed later keeps
    them; ``store(key, matches)`` instead hands the writing over). ``load_pair()`` reads the two images lazily."""
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit, True
    matches = (prefetched or {}).pop(key, None)
    if matches is None:
        matches = method.match(*load_pair())
    if store is not None:
        store(key, matches)
    elif cache is not None:
        cache.put(key, matches)
    return matches, False
