"""What a result depends on: an edited input recomputes exactly what read it, through the cache and
through resume; a fixed ground-truth line re-scores without re-matching; the run id ignores every key
that cannot change a row and follows every key that can."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark import identity, runner
from benchmark.config import resolve
from benchmark.runner import execute, prepare

from . import synthetic as S

pytestmark = pytest.mark.usefixtures("synthetic_classes")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "datasets/demo/data/val"
VOLATILE = ["time_match_s", "time_solve_s", "cached", "shard"]


@pytest.fixture()
def demo_copy(tmp_path):
    """One demo scene (Map-free layout), 4 evaluated queries in shards of 2: real images, real SIFT."""
    root = tmp_path / "demo"
    shutil.copytree(DEMO / "s90000", root / "val/s90000")

    def cfg(cache="cache", *overrides):
        return resolve(
            "sift",
            "demo",
            None,
            [
                f"dataset.root={root}",
                "run.max_samples=4",
                "run.shard_size=2",
                f"run.cache_dir={tmp_path / cache}",
                "run.bootstrap=0",
                *overrides,
            ],
        )

    return root / "val/s90000", cfg


def _edit_image(path: Path) -> None:
    """Paint a small grey block: the file changes, the matches of its pairs may change."""
    image = np.asarray(Image.open(path)).copy()
    image[10:40, 10:40] = 128
    Image.fromarray(image).save(path, quality=90)


def _rows(df):
    return df.set_index("sample_id")


def test_an_edited_image_is_matched_again_through_the_cache_and_through_resume(demo_copy, tmp_path):
    scene, cfg = demo_copy
    first = execute(cfg(), tmp_path / "a", progress=False)
    assert len(first) == 4 and not first["cached"].any()
    target = first["sample_id"][1]  # the second evaluated query, in the first shard
    _edit_image(scene / target.split("/", 1)[1])
    # a new output: every other pair comes from the cache, the edited one is matched again
    fresh = _rows(execute(cfg(), tmp_path / "b", progress=False))
    assert not fresh.loc[target, "cached"] and fresh.drop(index=target)["cached"].all()

    # the old output: its finished shards are resumed, except the one that read the edited image
    def stamps():
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a/shards").glob("*.parquet")}

    before = stamps()
    resumed = _rows(execute(cfg(), tmp_path / "a", progress=False))
    assert resumed.loc[target, "cached"]  # recomputed, with the matches the run into b just made
    pd.testing.assert_frame_equal(resumed.drop(columns=VOLATILE), fresh.drop(columns=VOLATILE))
    after = stamps()
    assert after["s90000-000002.parquet"] == before["s90000-000002.parquet"]  # not rewritten
    assert after["s90000-000000.parquet"] != before["s90000-000000.parquet"]  # it read the edited image


def test_an_edited_reference_image_invalidates_every_pair_that_reads_it(demo_copy, tmp_path):
    scene, cfg = demo_copy
    execute(cfg(), tmp_path / "a", progress=False)
    _edit_image(scene / "seq0/frame_00000.jpg")
    again = execute(cfg(), tmp_path / "b", progress=False)
    assert not again["cached"].any()


@pytest.fixture()
def sift_calls(monkeypatch):
    from benchmark.registry import METHODS

    cls, calls = METHODS.get("sift"), []
    real = cls._match
    monkeypatch.setattr(cls, "_match", lambda self, a, b: calls.append(1) or real(self, a, b))
    return calls


def test_a_fixed_ground_truth_line_rescores_without_rematching(demo_copy, tmp_path, sift_calls):
    scene, cfg = demo_copy
    first = _rows(execute(cfg(), tmp_path / "a", progress=False))
    target = first.index[2]
    name = target.split("/", 1)[1]
    poses = scene / "poses.txt"
    lines = poses.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(name + " "))
    fields = lines[i].split(" ")
    fields[5] = f"{float(fields[5]) + 0.5:.9f}"  # the ground truth moves 50 cm along x
    lines[i] = " ".join(fields)
    poses.write_text("\n".join(lines) + "\n")
    sift_calls.clear()
    again = _rows(execute(cfg(), tmp_path / "a", progress=False))  # the same output folder
    assert not sift_calls and again.loc[target, "cached"]  # its shard was scored again, nothing matched
    assert again.loc[target, "trans_err_m"] != pytest.approx(first.loc[target, "trans_err_m"], abs=0.1)
    others = [s for s in first.index if s != target]
    pd.testing.assert_frame_equal(again.loc[others].drop(columns=VOLATILE), first.loc[others].drop(columns=VOLATILE))


def test_a_changed_intrinsics_line_changes_the_run_id_and_the_shard(demo_copy, tmp_path):
    scene, cfg = demo_copy
    before = prepare(cfg())
    intr = scene / "intrinsics.txt"
    text = intr.read_text().splitlines()
    name = next(iter(runner.shard_samples(before.dataset, before.plan.shards[1]))).id.split("/", 1)[1]
    i = next(k for k, line in enumerate(text) if line.startswith(name + " "))
    parts = text[i].split(" ")
    parts[1] = f"{float(parts[1]) + 3:.6f}"
    text[i] = " ".join(parts)
    intr.write_text("\n".join(text) + "\n")
    after = prepare(cfg())
    assert after.run_id != before.run_id
    first, second = (p.plan.shards[0].name for p in (before, after))
    assert before.plan.fingerprints[first] == after.plan.fingerprints[second]  # untouched shard
    assert before.plan.fingerprints["s90000-000002"] != after.plan.fingerprints["s90000-000002"]


def _mutate(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "_other"
    return "other" if value is None else value


@pytest.fixture()
def synthetic_cfg(tmp_path):
    root = S.write_dataset(tmp_path / "data", scenes=2, pairs=3)
    return resolve(
        "synthetic_matcher", "synthetic_pairs", None, [f"dataset.root={root}", f"run.cache_dir={tmp_path / 'cache'}"]
    )


def test_keys_that_cannot_change_a_row_keep_the_run_id(synthetic_cfg, tmp_path):
    base = prepare(synthetic_cfg)
    free = [("run", k) for k in synthetic_cfg["run"] if k not in identity.RESULT_RUN_KEYS]
    free += [("executor", k) for k in synthetic_cfg["executor"]]
    # the README lists these; any key added to run or executor later is free too, unless named in RESULT_RUN_KEYS
    assert {"cache", "cache_dir", "output", "plots", "bootstrap", "torch_threads", "shard_size"} <= {k for _, k in free}
    for section, key in free:
        cfg = copy.deepcopy(synthetic_cfg)
        cfg[section][key] = _mutate(cfg[section][key])
        if key == "cache_dir":
            cfg[section][key] = str(tmp_path / "cache2")
        if key == "shard_size":
            cfg[section][key] = 1
        assert prepare(cfg).run_id == base.run_id, f"{section}.{key}"
    moved = copy.deepcopy(synthetic_cfg)  # the same files elsewhere: identified by content
    shutil.copytree(synthetic_cfg["dataset"]["root"], tmp_path / "moved")
    moved["dataset"]["root"] = str(tmp_path / "moved")
    assert prepare(moved).run_id == base.run_id


@pytest.mark.parametrize(
    "key, value",
    [
        ("run.seed", 1),
        ("run.max_samples", 4),
        ("method.num", 100),
        ("method.noise_px", 1.0),
        ("solver.ransac.max_error", 2.0),
        ("solver.relative", "essential_opencv"),
    ],
)
def test_keys_that_can_change_a_row_change_the_run_id(synthetic_cfg, key, value):
    cfg = copy.deepcopy(synthetic_cfg)
    section, *path = key.split(".")
    target = cfg[section]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert prepare(cfg).run_id != prepare(synthetic_cfg).run_id


def test_provenance_and_shards_share_the_run_ids_hash(synthetic_cfg, tmp_path):
    from benchmark.provenance import collect

    prepared = prepare(synthetic_cfg)
    prov = collect(synthetic_cfg, prepared)
    assert prepared.run_id.endswith(prov["results_hash"][:8])
    assert prov["evaluation_set"]["num_samples"] == 6 and "root" not in prov["evaluation_set"]["conf"]
    execute(synthetic_cfg, tmp_path / "out", progress=False, prepared=prepared)
    assert json.loads((tmp_path / "out/shards/fingerprint.json").read_text())["results"] == prov["results_config_hash"]


def test_results_of_an_older_format_are_refused(synthetic_cfg, tmp_path):
    from benchmark.errors import UserError

    (tmp_path / "old/shards").mkdir(parents=True)
    (tmp_path / "old/shards/fingerprint.json").write_text('{"format": 2, "config": "x", "seed": 0, "dataset": "y"}')
    with pytest.raises(UserError, match="shard files of another locbench version"):
        execute(synthetic_cfg, tmp_path / "old", progress=False)
