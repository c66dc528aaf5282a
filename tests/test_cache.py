"""Per-pair match cache: round trip, atomic entries, corrupt entries reported and recomputed, keys by content."""

import os

import numpy as np
import pytest

from benchmark.cache import MatchCache
from benchmark.identity import FileIdentities, match_key
from benchmark.types import Matches


def _m(n=5, with3d=False):
    rng = np.random.default_rng(n)
    return Matches(
        rng.random((n, 2)),
        rng.random((n, 2)),
        rng.random(n),
        rng.random((n, 3)) if with3d else None,
        None,
        10,
        12,
        {"match": 0.5, "forward": 0.25},
    )


def test_round_trip(tmp_path):
    c = MatchCache(tmp_path / "c")
    c.put("a" * 40, _m(5, True))
    c.put("b" * 40, _m(0))
    d = MatchCache(tmp_path / "c")
    a = d.get("a" * 40)
    np.testing.assert_array_equal(a.kpts0, _m(5, True).kpts0)
    np.testing.assert_array_equal(a.pts3d0, _m(5, True).pts3d0)
    assert a.pts3d1 is None and a.num_keypoints0 == 10 and a.timings == {"match": 0.5, "forward": 0.25}
    assert len(d.get("b" * 40)) == 0 and d.get("c" * 40) is None
    assert not list((tmp_path / "c").rglob(".*tmp*"))


@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped byte", "another pair"])
def test_corrupt_entry_is_reported_and_moved_aside(tmp_path, how):
    c = MatchCache(tmp_path)
    key = "ab" + "0" * 38
    c.put(key, _m(50))
    path = c.path(key)
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 3]))
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "flipped byte":  # inside the kpts1 array: the ZIP's CRC-32 catches it
        offset = bytes(data).index(b"kpts1.npy") + 300
        data[offset] ^= 0x40
        path.write_bytes(bytes(data))
    else:  # another pair's entry under this pair's name
        c.put("ab" + "2" * 38, _m(3))
        os.replace(c.path("ab" + "2" * 38), path)
    d = MatchCache(tmp_path)
    assert d.get(key) is None and "unreadable" in d.problems[0] and str(path) in d.problems[0]
    assert path.with_suffix(".corrupt").exists() and not path.exists()


def test_file_identity_follows_content_not_names_or_times(tmp_path):
    ids = FileIdentities(tmp_path / "ids.sqlite")
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"one")
    b.write_bytes(b"one")
    assert ids.digest(a) == ids.digest(b)  # a copy has the identity of its original
    before = ids.digest(a)
    st = a.stat()
    a.write_bytes(b"two")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # an edit that restores size and mtime
    assert ids.digest(a) != before
    os.utime(b, ns=(1, 1))  # touched, not changed
    assert ids.digest(b) == before
    assert ids.digest(tmp_path / "nope.jpg") == "missing"
    ids.close()
    again = FileIdentities(tmp_path / "ids.sqlite")  # the memo survives the process
    assert again.digest(a) == ids.digest(a) and again.digest(b) == before


def test_match_key_depends_on_method_images_and_how_they_are_read():
    base = match_key("m", "d0", "d1", (None, 0), (None, 0))
    assert base == match_key("m", "d0", "d1", (None, 0), (None, 0))
    others = [
        match_key("m2", "d0", "d1", (None, 0), (None, 0)),
        match_key("m", "dX", "d1", (None, 0), (None, 0)),
        match_key("m", "d0", "d1", ((640, 480), 0), (None, 0)),
        match_key("m", "d0", "d1", (None, 1), (None, 0)),
        match_key("m", "d1", "d0", (None, 0), (None, 0)),
    ]
    assert len({base, *others}) == 6
