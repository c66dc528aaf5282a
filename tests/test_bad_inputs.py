"""Bad input, table-driven: each case gives its one clear sentence (exit 2, no traceback) or is
recorded/recovered while the run goes on, and a results folder finished earlier stays untouched.

The CLI runs in this process (``benchmark.cli.main``): same code path as ``python -m benchmark``,
without an interpreter start per case. ``tests/test_cli.py`` covers the subprocess form.
"""
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.report import read_summary
from datasets.mapfree import MapFree


@pytest.fixture(scope="module")
def tiny_root(fixtures_dir):
    return fixtures_dir / "metrics/mapfree_tiny"


def tiny_args(root, cache):
    return ["--method", "sift", "--dataset", "mapfree", "--set", f"dataset.root={root}", "--set", "dataset.depth=dptnyu",
            "--set", f"run.cache_dir={cache}", "--set", "run.bootstrap=0", "--set", "run.plots=false", "--no-progress"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_root):
    """A results folder of a finished run, and the arguments that made it."""
    base = tmp_path_factory.mktemp("finished")
    args = tiny_args(tiny_root, base / "cache")
    assert main(["run", *args, "--output", str(base / "prev")]) == 1  # every sample fails to match: exit 1
    return base / "prev", args


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


# Each case: (tmp folder, finished folder, its args, tiny root) -> (argv, expected stderr line).
# ``expected`` is the exact line, or (start, end) where the middle lists names or a library's words.
def _bad_yaml(tmp, prev, args, root):
    path = tmp / "exp.yaml"
    path.write_text("method:\n  name: sift\n  max_keypoints: [1, 2\n")
    return ["run", *args, "--experiment", str(path), "--output", str(prev)], \
        (f"error: Config file {path} line ", "is not valid YAML (expected ',' or ']', but got '<stream end>'); fix the syntax.")


def _missing_split(tmp, prev, args, root):
    copy = tmp / "mf"
    shutil.copytree(root / "val", copy / "val")
    return ["run", *args, "--set", f"dataset.root={copy}", "--set", "dataset.split=test", "--output", str(prev)], \
        (f"error: The Map-free folder {copy} has no 'test' split folder; pass --set dataset.root=PATH pointing to "
         f"the folder that holds val/ and test/.")


def _truncated_checkpoint(tmp, prev, args, root):
    pytest.importorskip("kornia")
    import torch

    path = tmp / "loftr.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return ["run", *args, "--method", "loftr_outdoor", "--set", f"method.weights={path}", "--output", str(tmp / "new")], \
        (f"error: The LoFTR weight file {path} cannot be read as plain tensors (",
         "); give the released file, or re-save only its state_dict with torch.save.")


def _missing_weights(tmp, prev, args, root):
    pytest.importorskip("kornia")
    return ["run", *args, "--method", "loftr_outdoor", "--set", "method.weights=/nonexistent/loftr.ckpt",
            "--output", str(prev)], ("error: The LoFTR weight file /nonexistent/loftr.ckpt does not exist", ".")


def _unreachable_ray(tmp, prev, args, root):
    pytest.importorskip("ray")
    return ["run", *args, "--executor", "ray", "--set", "executor.address=127.0.0.1:1", "--output", str(tmp / "new")], \
        ("error: Nothing answers at executor.address=127.0.0.1:1 (Connection refused); start the head with "
         "`ray start --head --port=1` there, or check the host name and port.")


CASES = {
    "unknown method": lambda tmp, prev, args, root: (
        ["run", *args, "--method", "nosuch", "--output", str(prev)],
        ("error: Unknown method 'nosuch'; choose one of: ", " (`python -m benchmark list` shows them).")),
    "unknown dataset": lambda tmp, prev, args, root: (
        ["run", *args, "--dataset", "nosuch", "--output", str(prev)],
        ("error: Unknown dataset 'nosuch'; choose one of: ", " (`python -m benchmark list` shows them).")),
    "unknown override key": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "run.shard_sise=5", "--output", str(prev)],
        ("error: Unknown config key 'run.shard_sise' in --set run.shard_sise=5; known keys here: ", "torch_threads, viz_worst.")),
    "malformed override": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "novalue", "--output", str(prev)],
        "error: Override 'novalue' must look like key.path=value (e.g. --set method.max_keypoints=2048)."),
    "bad YAML experiment file": _bad_yaml,
    "missing experiment file": lambda tmp, prev, args, root: (
        ["run", *args, "--experiment", str(tmp / "nope.yaml"), "--output", str(prev)],
        f"error: Config file {tmp / 'nope.yaml'} does not exist; check the path."),
    "missing dataset root": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "dataset.root=/nonexistent/mapfree", "--output", str(prev)],
        f"error: The mapfree dataset folder /nonexistent/mapfree does not exist; pass --set dataset.root=PATH "
        f"({MapFree.download_hint})."),
    "split folder missing": _missing_split,
    "bad shard size": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "run.shard_size=0", "--output", str(prev)],
        "error: run.shard_size must be a positive number of samples, not 0."),
    "output holds another config": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "method.max_keypoints=100", "--output", str(prev)],
        f"error: {prev} holds results of a different config; choose another --output or delete that folder."),
    "missing weights file": _missing_weights,
    "truncated checkpoint": _truncated_checkpoint,
    "unknown executor": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "executor.name=spark", "--output", str(prev)],
        "error: executor.name must be 'local' or 'ray', not 'spark'."),
    "malformed ray address": lambda tmp, prev, args, root: (
        ["run", *args, "--executor", "ray", "--set", "executor.address=nonsense", "--output", str(prev)],
        "error: executor.address must be null, auto, HOST:PORT or ray://HOST:PORT, not 'nonsense'."),
    "unreachable ray head": _unreachable_ray,
    "depth solver without depth": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "dataset.depth=null", "--output", str(prev)],
        "error: solver.metric_relative=pnp_depth needs the reference depth, but dataset.depth is not set; name the "
        "depth maps to use (e.g. --set dataset.depth=dptnyu for Map-free's DPT depth) or use a method that predicts "
        "3D points with solver.metric_relative=pnp_pts3d."),
    "3D-point solver, sparse method": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.metric_relative=essential_pts3d", "--output", str(prev)],
        "error: solver.metric_relative=essential_pts3d needs a method that predicts 3D points (mast3r, dust3r), "
        "which sift does not; choose another solver.metric_relative (pnp_depth, essential_depth, pnp_depth_poselib)."),
    "unknown metric-relative solver": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.metric_relative=pnp_dept", "--output", str(prev)],
        "error: Unknown solver.metric_relative 'pnp_dept'; known solvers for metric relative pose: pnp_depth, pnp_pts3d, "
        "essential_depth, essential_pts3d, pnp_depth_poselib, pnp_pts3d_poselib (`python -m benchmark list` shows "
        "what each needs)."),
    "unknown relative solver": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.relative=essentiall", "--output", str(prev)],
        "error: Unknown solver.relative 'essentiall'; known solvers for relative pose up to scale: essential, "
        "essential_opencv, poselib (`python -m benchmark list` shows what each needs)."),
    "unknown absolute solver": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.absolute=pnpp", "--output", str(prev)],
        "error: Unknown solver.absolute 'pnpp'; known solvers for absolute pose against a map: pnp, poselib "
        "(`python -m benchmark list` shows what each needs)."),
    "bad RANSAC threshold": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.ransac.max_error=[1, -2]", "--output", str(prev)],
        "error: solver.ransac.max_error must be a positive number of pixels or a list of them (a threshold sweep), "
        "not [1, -2]."),
    "diagonal ratio with a sweep": lambda tmp, prev, args, root: (
        ["run", *args, "--set", "solver.ransac.max_error=[1, 2]", "--set", "solver.ransac.max_error_diag_ratio=0.008",
         "--output", str(prev)],
        "error: solver.ransac.max_error_diag_ratio replaces solver.ransac.max_error, which lists a threshold sweep; "
        "set only one of the two."),
    "MASt3R weights of the wrong family": lambda tmp, prev, args, root: (
        ["run", *args, "--method", "mast3r", "--set",
         f"method.weights={root.parents[1] / 'mast3r/tiny_dust3r/checkpoint.pth'}", "--output", str(tmp / "new")],
        ("error: ", "tiny_dust3r/checkpoint.pth holds a DUSt3R network (AsymmetricCroCo3DStereo) but a MASt3R one is "
                    "needed here; use e.g. MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth.")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_sentence_exit_2_and_keeps_finished_results(case, finished, tiny_root, tmp_path, capsys):
    prev, args = finished
    argv, expected = CASES[case](tmp_path, prev, args, tiny_root)
    before = snapshot(prev)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    if isinstance(expected, str):
        assert line == expected
    else:
        assert line.startswith(expected[0]) and line.endswith(expected[1]), line
    assert snapshot(prev) == before
    assert not (tmp_path / "new/samples.parquet").exists()


def test_ray_requested_without_ray_installed(finished, monkeypatch, capsys):
    prev, args = finished
    before = snapshot(prev)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` and find_spec see when it is absent
    capsys.readouterr()
    assert main(["run", *args, "--executor", "ray", "--output", str(prev)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: The Ray executor (--executor ray) needs the optional package 'ray'; install it with "
        "pip install torch==2.13.0 -e '.[ray]'.")
    assert snapshot(prev) == before


def test_bad_scenes_and_images_are_recorded_and_the_run_goes_on(tiny_root, tmp_path):
    root = tmp_path / "mf"
    for scene in ("s00460", "s00461", "s00462"):
        shutil.copytree(tiny_root / "val/s00460", root / "val" / scene)
    (root / "val/s00461/poses.txt").unlink()  # scene folder without poses.txt
    poses = root / "val/s00462/poses.txt"
    lines = poses.read_text().splitlines()
    lines[2] = "seq1/frame_00001.jpg 1.0 0.0 0.0"  # malformed pose line: the scorer skips it, so do we
    poses.write_text("\n".join(lines) + "\n")
    image = root / "val/s00460/seq1/frame_00005.jpg"
    image.write_bytes(b"not a jpeg")  # unreadable image
    out = tmp_path / "out"
    assert main(["run", *tiny_args(root, tmp_path / "cache"), "--output", str(out)]) == 1  # no sample ok
    df = pd.read_parquet(out / "samples.parquet").set_index("sample_id")
    reasons = {
        "s00460/seq1/frame_00005.jpg": f"image {image} cannot be decoded (corrupt or not an image)",
        "s00461/*": f"{root / 'val/s00461/poses.txt'} is missing; every Map-free scene folder needs it",
    }
    for sample_id, reason in reasons.items():
        assert df.loc[sample_id, "status"] == "invalid_input" and df.loc[sample_id, "reason"] == reason
    rest = df.drop(index=list(reasons))
    # s00462 lost its line 3 only: frames 0, 6, 11 are evaluated, as the scorer decides
    assert [i for i in rest.index if i.startswith("s00462")] == [f"s00462/seq1/frame_{n:05d}.jpg" for n in (0, 6, 11)]
    assert len(rest) == 6 and (rest["status"] == "too_few_matches").all()  # the other samples ran
    summary = read_summary(out / "summary.json")
    assert summary["status_counts"] == {**dict.fromkeys(summary["status_counts"], 0),
                                        "invalid_input": 2, "too_few_matches": 6}


# Each: (results folder, cache folder) -> (start, end of the warning, folder for the second run).
def _truncate_cache(out, cache):
    path = next(cache.rglob("*.npz"))
    path.write_bytes(path.read_bytes()[:200])
    # a finished folder never reads the cache: a new folder with the same cache does
    return (f"match cache entry {path} is unreadable (", "); it was moved aside and will be recomputed",
            out.with_name("other"))


def _garbage_shard(out, cache):
    path = out / "shards/s00460-000000.parquet"
    path.write_bytes(b"PAR1garbagePAR1")
    return f"shard file {path} is unreadable or stale (", "); it was moved aside and will be recomputed", out


def _garbage_fingerprint(out, cache):
    path = out / "shards/fingerprint.json"
    path.write_text("{")
    return f"{path} is unreadable (", "); the 1 shard files beside it cannot be trusted and are recomputed", out


DAMAGED = {"corrupt match cache entry": _truncate_cache, "corrupt shard parquet": _garbage_shard,
           "corrupt fingerprint": _garbage_fingerprint}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_files_are_reported_and_recomputed(case, tiny_root, tmp_path, caplog):
    args = tiny_args(tiny_root, tmp_path / "cache")
    out = tmp_path / "out"
    assert main(["run", *args, "--output", str(out)]) == 1  # every sample fails to match (exit 1), results written
    first = pd.read_parquet(out / "samples.parquet")
    start, end, second = DAMAGED[case](out, tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="locbench"):
        assert main(["run", *args, "--output", str(second)]) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(start) and w.endswith(end) for w in warnings), warnings
    again = pd.read_parquet(second / "samples.parquet")
    cols = [c for c in first if not c.startswith("time_") and c != "cached"]
    pd.testing.assert_frame_equal(first[cols], again[cols])


def test_missing_mast3r_weights_name_the_file(finished, capsys, tmp_path):
    """Through the CLI: one sentence naming the file, finished results untouched."""
    prev, args = finished
    missing = tmp_path / "nowhere" / "mast3r.pth"
    before = snapshot(prev)
    capsys.readouterr()
    assert main(["run", *args, "--method", "mast3r", "--set", f"method.weights={missing}",
                 "--output", str(prev)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: The DUSt3R/MASt3R weight file {missing} does not exist; check --set "
                   f"method.weights=PATH.")
    assert snapshot(prev) == before
