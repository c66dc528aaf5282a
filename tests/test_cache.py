"""HDF5 match cache: round trip, atomic publish, corrupt files recomputed."""
import numpy as np

from benchmark.cache import ShardCache
from benchmark.types import Matches


def _m(n=5, with3d=False):
    rng = np.random.default_rng(n)
    return Matches(rng.random((n, 2)), rng.random((n, 2)), rng.random(n), rng.random((n, 3)) if with3d else None,
                   None, 10, 12, {"match": 0.5})


def test_round_trip(tmp_path):
    path = tmp_path / "c" / "shard.h5"
    c = ShardCache(path)
    c.put("scene/a.jpg|x", _m(5, True))
    c.put("scene/b.jpg|x", _m(0))
    assert not path.exists()  # nothing is visible before the shard is published
    c.publish()
    d = ShardCache(path)
    a = d.get("scene/a.jpg|x")
    np.testing.assert_array_equal(a.kpts0, _m(5, True).kpts0)
    np.testing.assert_array_equal(a.pts3d0, _m(5, True).pts3d0)
    assert a.pts3d1 is None and a.num_keypoints0 == 10 and a.timings["match"] == 0.5
    assert len(d.get("scene/b.jpg|x")) == 0 and d.get("other") is None
    assert not list(path.parent.glob(".*tmp*"))


def test_corrupt_file_is_reported_and_moved_aside(tmp_path):
    path = tmp_path / "shard.h5"
    c = ShardCache(path)
    c.put("k", _m())
    c.publish()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated
    d = ShardCache(path)
    assert d.get("k") is None and "unreadable" in d.problem
    assert path.with_suffix(".corrupt").exists() and not path.exists()
