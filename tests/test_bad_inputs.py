"""Bad input through the CLI, table-driven: every row of issue 14's table and more.

The CLI runs in this process (``benchmark.cli.main``): same code path as ``python -m benchmark``,
without an interpreter start per row (``tests/test_cli.py`` runs a few rows as subprocesses).
A refusal row gives the exact line (or its start and end, or words it must hold) and must: exit 2,
print exactly that one ``error: ...`` line and log nothing else, show no traceback, and leave nothing
behind (the working folder, a results folder finished earlier and its cache are as they were). Other
rows give their exit code and check what was printed and written.
"""

import json
import logging
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.report import read_summary
from datasets.mapfree import MapFree


@pytest.fixture(scope="module")
def tiny_root(fixtures_dir):
    return fixtures_dir / "metrics/mapfree_tiny"


def tiny_args(root, cache):
    return [
        "--method",
        "sift",
        "--dataset",
        "mapfree",
        "--set",
        f"dataset.root={root}",
        "--set",
        "dataset.depth=dptnyu",
        "--set",
        f"run.cache_dir={cache}",
        "--set",
        "run.bootstrap=0",
        "--set",
        "run.plots=false",
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_root):
    """A results folder of a finished run (beside its match cache), and the arguments that made it."""
    base = tmp_path_factory.mktemp("finished")
    args = tiny_args(tiny_root, base / "cache")
    assert main(["run", *args, "--output", str(base / "prev")]) == 1  # every sample fails to match: exit 1
    return base / "prev", args


def snapshot(folder: Path) -> dict:
    """Every path under ``folder``, with the mode, time and bytes of files."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes())
        if p.is_file()
        else "folder"
        for p in sorted(folder.rglob("*"))
    }


@dataclass
class Ctx:
    tmp: Path  # the working folder of the row (its inputs live here)
    prev: Path  # a finished results folder
    args: list  # the arguments that made it (tiny Map-free, sift)
    root: Path  # the tiny Map-free root
    fixtures: Path


@dataclass
class Row:
    argv: list
    expect: object = None  # refusal: the exact line, (start, end), or a set of words the line holds
    code: int = 2
    check: Callable | None = None  # other rows: (stdout, stderr, warnings) -> None
    umask: int = 0o022
    needs: tuple = field(default_factory=tuple)  # optional packages


def _garbage(ctx, name="garbage.pth"):
    path = ctx.tmp / name
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)))
    return path


def _superpoint_file(ctx, state_dict, name):
    path = ctx.tmp / name
    torch.save(state_dict, path)
    return [
        "run",
        *ctx.args,
        "--method",
        "mnn",
        "--set",
        "method.features=superpoint",
        "--set",
        f"method.detector_weights={path}",
        "--set",
        "method.device=cpu",
        "--output",
        str(ctx.tmp / "new"),
    ], path


def _wrong_architecture(ctx):
    argv, path = _superpoint_file(ctx, torch.nn.Linear(3, 2).state_dict(), "linear.pth")
    return Row(
        argv,
        (
            f"error: The SuperPoint weight file {path} does not fit the network (missing keys: conv1a.weight, "
            f"conv1a.bias, conv1b.weight (+",
            "more); unexpected keys: weight, bias); give the matching file.",
        ),
    )


def _wrong_shapes(ctx):
    from methods.superglue.superpoint import SuperPoint

    sd = SuperPoint().state_dict()
    sd["convDb.weight"] = torch.zeros(128, 256, 1, 1)
    argv, path = _superpoint_file(ctx, sd, "sp_128.pth")
    return Row(
        argv,
        f"error: The SuperPoint weight file {path} does not fit the network (shape mismatch (file vs "
        f"network): convDb.weight (128, 256, 1, 1) vs (256, 256, 1, 1)); give the matching file.",
    )


def _not_a_state_dict(ctx):
    argv, path = _superpoint_file(ctx, [1, 2, 3], "list.pth")
    return Row(
        argv,
        f"error: The SuperPoint weight file {path} holds a list, not a state dict of tensors; give the released file.",
    )


def _garbage_kornia_weights(ctx):
    import kornia.feature as KF

    disk = ctx.tmp / "disk.pth"
    torch.save(KF.DISK().state_dict(), disk)  # a valid detector file: the LightGlue file is the one at fault
    g = _garbage(ctx)
    return Row(
        [
            "run",
            *ctx.args,
            "--method",
            "disk_lightglue",
            "--set",
            f"method.detector_weights={disk}",
            "--set",
            f"method.weights={g}",
            "--set",
            "method.device=cpu",
            "--output",
            str(ctx.tmp / "new"),
        ],
        (
            f"error: The LightGlue weight file {g} is truncated or not a PyTorch checkpoint (",
            "); download it again or give the released file.",
        ),
        needs=("kornia",),
    )


def _truncated_checkpoint(ctx):
    path = ctx.tmp / "loftr.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return Row(
        [
            "run",
            *ctx.args,
            "--method",
            "loftr_outdoor",
            "--set",
            f"method.weights={path}",
            "--output",
            str(ctx.tmp / "new"),
        ],
        (
            f"error: The LoFTR weight file {path} is truncated or not a PyTorch checkpoint (",
            "); download it again or give the released file.",
        ),
        needs=("kornia",),
    )


def _bad_yaml(ctx):
    path = ctx.tmp / "exp.yaml"
    path.write_text("method:\n  name: sift\n  max_keypoints: [1, 2\n")
    return Row(
        ["run", *ctx.args, "--experiment", str(path), "--output", str(ctx.prev)],
        (
            f"error: Config file {path} line ",
            "is not valid YAML (expected ',' or ']', but got '<stream end>'); fix the syntax.",
        ),
    )


def _experiment(ctx, text):
    path = ctx.tmp / "exp.yaml"
    path.write_text(text)
    return path


def _missing_split(ctx):
    copy = ctx.tmp / "mf"
    shutil.copytree(ctx.root / "val", copy / "val")
    return Row(
        ["run", *ctx.args, "--set", f"dataset.root={copy}", "--set", "dataset.split=test", "--output", str(ctx.prev)],
        f"error: The Map-free folder {copy} has no 'test' split folder; pass --set dataset.root=PATH pointing "
        f"to the folder that holds val/ and test/.",
    )


def _a_file(ctx, name="notes.md"):
    path = ctx.tmp / name
    path.write_text("a file, not a folder\n")
    return path


def _unwritable_cache(ctx):
    """A cache folder that exists but takes no file, whoever runs the test (root ignores permissions):
    the name of the file the up-front write test creates (``io.prepare_folder``) is taken by a folder."""
    (method_folder,) = (ctx.prev.parent / "cache/matches-v3").iterdir()  # the finished run's, same key
    folder = ctx.tmp / "cache/matches-v3" / method_folder.name
    (folder / f".locbench-write-test-{os.getpid()}").mkdir(parents=True)
    return Row(
        ["run", *ctx.args, "--set", f"run.cache_dir={ctx.tmp / 'cache'}", "--output", str(ctx.tmp / "new")],
        f"error: The cache folder {folder} cannot be written (Is a directory); set another run.cache_dir or "
        "pass --no-cache.",
    )


def _unreachable_ray(ctx):
    return Row(
        [
            "run",
            *ctx.args,
            "--executor",
            "ray",
            "--set",
            "executor.address=127.0.0.1:1",
            "--output",
            str(ctx.tmp / "new"),
        ],
        "error: Nothing answers at executor.address=127.0.0.1:1 (Connection refused); start the head with "
        "`ray start --head --port=1` there, or check the host name and port.",
        needs=("ray",),
    )


def _score(ctx, submission: Path):
    return [
        "score",
        "--dataset",
        "mapfree",
        "--set",
        f"dataset.root={ctx.fixtures / 'metrics/mapfree/dataset'}",
        "--submission",
        str(submission),
    ]


def _empty_submission(ctx):
    path = ctx.tmp / "empty.zip"
    path.write_bytes(b"")
    return Row(
        _score(ctx, path),
        f"error: The submission {path} is an empty file; give the submission.zip that "
        f"`python -m benchmark run` writes, or a ZIP of pose_<scene>.txt files in the "
        f"official format.",
    )


def _text_submission(ctx):
    path = _a_file(ctx, "submission.zip")
    return Row(
        _score(ctx, path),
        f"error: The submission {path} is not a ZIP file; give the submission.zip that "
        f"`python -m benchmark run` writes, or a ZIP of pose_<scene>.txt files in the "
        f"official format.",
    )


def _no_finished_run(ctx):
    (ctx.tmp / "unfinished").mkdir()
    return Row(
        ["leaderboard", str(ctx.tmp / "unfinished"), str(ctx.tmp / "absent")],
        f"error: None of {ctx.tmp / 'unfinished'}, {ctx.tmp / 'absent'} holds a finished run (a summary.json); "
        f"pass run folders such as results/*.",
    )


def _sweep_in_run(ctx):
    path = _experiment(ctx, "sweep: {method.max_keypoints: [8, 16]}\n")
    return Row(
        ["run", *ctx.args, "--experiment", str(path), "--output", str(ctx.tmp / "new")],
        f"error: {path} has a sweep: of method.max_keypoints, which only `python -m benchmark ablate "
        f"--experiment {path}` runs; remove the sweep: key to use the file here.",
    )


REFUSALS = {
    # issue 14's table
    "shard_size=abc": lambda c: Row(
        ["run", *c.args, "--set", "run.shard_size=abc", "--output", str(c.tmp / "new")],
        "error: run.shard_size must be an integer >= 1, not 'abc' (in --set run.shard_size=abc).",
    ),
    "max_samples=abc": lambda c: Row(
        ["run", *c.args, "--set", "run.max_samples=abc"],
        "error: run.max_samples must be an integer >= 1 or null, not 'abc' (in --set run.max_samples=abc).",
    ),
    "bootstrap=abc": lambda c: Row(
        ["run", *c.args, "--set", "run.bootstrap=abc", "--output", str(c.prev)],
        "error: run.bootstrap must be an integer >= 0, not 'abc' (in --set run.bootstrap=abc).",
    ),
    "max_keypoints=abc": lambda c: Row(
        ["run", *c.args, "--set", "method.max_keypoints=abc"],
        "error: method.max_keypoints must be an integer, not 'abc' (in --set method.max_keypoints=abc).",
    ),
    "max_error=abc": lambda c: Row(
        ["run", *c.args, "--set", "solver.ransac.max_error=abc"],
        "error: solver.ransac.max_error must be a number or a list of numbers > 0, not "
        "'abc' (in --set solver.ransac.max_error=abc).",
    ),
    "relative solver typo": lambda c: Row(
        ["run", *c.args, "--set", "solver.relative=essentiall"], {"solver.relative", "'essentiall'", "essential_opencv"}
    ),
    "absolute solver typo": lambda c: Row(
        ["run", *c.args, "--set", "solver.absolute=pnpp"], {"solver.absolute", "'pnpp'", "pnp"}
    ),
    "metric solver typo": lambda c: Row(
        ["run", *c.args, "--set", "solver.metric_relative=pnp_dept"],
        {"solver.metric_relative", "'pnp_dept'", "pnp_depth"},
    ),
    "seed=[1,2]": lambda c: Row(
        ["run", *c.args, "--set", "run.seed=[1,2]"],
        "error: run.seed must be an integer >= 0, not [1, 2] (in --set run.seed=[1,2]).",
    ),
    "output is a file": lambda c: Row(
        ["run", *c.args, "--output", str(_a_file(c))],
        f"error: The output folder {c.tmp / 'notes.md'} is a file, not a folder; choose another --output.",
    ),
    "output cannot be created": lambda c: Row(
        ["run", *c.args, "--output", str(_a_file(c) / "run")],
        f"error: The output folder {c.tmp / 'notes.md/run'} cannot be created "
        f"(Not a directory); choose another --output.",
    ),
    "cache cannot be created": lambda c: Row(
        ["run", *c.args, "--set", f"run.cache_dir={_a_file(c) / 'cache'}", "--output", str(c.tmp / "new")],
        (
            f"error: The cache folder {c.tmp / 'notes.md/cache'}/matches-v3/sift-",
            " cannot be created (Not a directory); set another run.cache_dir or pass --no-cache.",
        ),
    ),
    "cache cannot be written": _unwritable_cache,
    "garbage kornia weights": _garbage_kornia_weights,
    "truncated checkpoint": _truncated_checkpoint,
    "wrong architecture": _wrong_architecture,
    "wrong shapes": _wrong_shapes,
    "not a state dict": _not_a_state_dict,
    "score: 0-byte file": _empty_submission,
    "score: not a ZIP": _text_submission,
    "score: no such file": lambda c: Row(
        _score(c, c.tmp / "nope.zip"),
        f"error: The submission {c.tmp / 'nope.zip'} is not a file; pass the path of the submission ZIP.",
    ),
    "leaderboard without a finished run": _no_finished_run,
    "run of an experiment with a sweep": _sweep_in_run,
    # more
    "shard_size=0": lambda c: Row(
        ["run", *c.args, "--set", "run.shard_size=0", "--output", str(c.prev)],
        "error: run.shard_size must be an integer >= 1, not 0 (in --set run.shard_size=0).",
    ),
    "confidence out of (0, 1]": lambda c: Row(
        ["run", *c.args, "--set", "solver.ransac.confidence=2"],
        "error: solver.ransac.confidence must be a number in (0, 1], not 2 (in --set solver.ransac.confidence=2).",
    ),
    "negative threshold in a list": lambda c: Row(
        ["run", *c.args, "--set", "solver.ransac.max_error=[1, -1]"],
        "error: solver.ransac.max_error must be a number or a list of "
        "numbers > 0, not [1, -1] (in --set solver.ransac.max_error=[1, -1]).",
    ),
    "boolean for an integer": lambda c: Row(
        ["run", *c.args, "--set", "run.bootstrap=true"],
        "error: run.bootstrap must be an integer >= 0, not True (in --set run.bootstrap=true).",
    ),
    "value for a section": lambda c: Row(
        ["run", *c.args, "--set", "solver.ransac=3"],
        "error: solver.ransac is a section of keys (max_error, max_error_diag_ratio, confidence, "
        "min_iterations, max_iterations), not a value: set one of them (e.g. "
        "solver.ransac.max_error=...) instead of 3 (in --set solver.ransac=3).",
    ),
    "wrong type in an experiment file": lambda c: Row(
        ["run", *c.args, "--experiment", str(_experiment(c, "solver: {min_matches: many}\n"))],
        f"error: solver.min_matches must be an integer >= 1, not 'many' (in {c.tmp / 'exp.yaml'}).",
    ),
    "a scene the data does not hold": lambda c: Row(
        ["run", *c.args, "--set", "dataset.scenes=s99999"],
        f"error: dataset.scenes names s99999, which {c.root / 'val'} does not hold; it holds s00460.",
    ),
    "ablate: a bad value": lambda c: Row(
        ["ablate", *c.args, "--sweep", "run.shard_size=2,abc", "--output", str(c.tmp / "abl")],
        "error: run.shard_size must be an integer >= 1, not 'abc' (in --set run.shard_size=abc).",
    ),
    "ablate: a weight file that cannot be used": lambda c: Row(
        [
            "ablate",
            *c.args,
            "--method",
            "mnn",
            "--set",
            "method.features=superpoint",
            "--sweep",
            f"method.detector_weights={_garbage(c)}",
            "--output",
            str(c.tmp / "abl"),
        ],
        (
            f"error: The SuperPoint weight file {c.tmp / 'garbage.pth'} is truncated or not a PyTorch checkpoint (",
            "); download it again or give the released file.",
        ),
    ),
    "ablate: two sweeps": lambda c: Row(
        [
            "ablate",
            *c.args,
            "--sweep",
            "method.max_keypoints=8",
            "--experiment",
            str(_experiment(c, "sweep: {method.max_keypoints: [16]}\n")),
        ],
        f"error: Give the sweep once: --sweep method.max_keypoints=8 or the sweep: key of {c.tmp / 'exp.yaml'}, not "
        f"both.",
    ),
    "ablate: nothing to sweep": lambda c: Row(
        ["ablate", *c.args],
        "error: Say what to sweep: --sweep KEY=V1,V2,... (e.g. "
        "method.frm.max_iter=1,2,3), or an experiment file with a sweep: key.",
    ),
    "unknown method": lambda c: Row(
        ["run", *c.args, "--method", "nosuch", "--output", str(c.prev)],
        ("error: Unknown method 'nosuch'; choose one of: ", " (`python -m benchmark list` shows them)."),
    ),
    "unknown dataset": lambda c: Row(
        ["run", *c.args, "--dataset", "nosuch", "--output", str(c.prev)],
        ("error: Unknown dataset 'nosuch'; choose one of: ", " (`python -m benchmark list` shows them)."),
    ),
    "unknown override key": lambda c: Row(
        ["run", *c.args, "--set", "run.shard_sise=5", "--output", str(c.prev)],
        (
            "error: Unknown config key 'run.shard_sise' in --set run.shard_sise=5; known keys here: ",
            "torch_threads, viz_worst.",
        ),
    ),
    "malformed override": lambda c: Row(
        ["run", *c.args, "--set", "novalue", "--output", str(c.prev)],
        "error: Override 'novalue' must look like key.path=value (e.g. --set method.max_keypoints=2048).",
    ),
    "bad YAML experiment file": _bad_yaml,
    "missing experiment file": lambda c: Row(
        ["run", *c.args, "--experiment", str(c.tmp / "nope.yaml")],
        f"error: Config file {c.tmp / 'nope.yaml'} does not exist; check the path.",
    ),
    "missing dataset root": lambda c: Row(
        ["run", *c.args, "--set", "dataset.root=/nonexistent/mapfree"],
        f"error: The mapfree dataset folder /nonexistent/mapfree does not exist; pass "
        f"--set dataset.root=PATH ({MapFree.download_hint}).",
    ),
    "split folder missing": _missing_split,
    "output holds another config": lambda c: Row(
        ["run", *c.args, "--set", "method.max_keypoints=100", "--output", str(c.prev)],
        f"error: {c.prev} holds results of a different config; choose another --output or delete that folder.",
    ),
    "missing weights file": lambda c: Row(
        ["run", *c.args, "--method", "loftr_outdoor", "--set", "method.weights=/nonexistent/loftr.ckpt"],
        ("error: The LoFTR weight file /nonexistent/loftr.ckpt does not exist", "."),
        needs=("kornia",),
    ),
    "missing MASt3R weights": lambda c: Row(
        ["run", *c.args, "--method", "mast3r", "--set", f"method.weights={c.tmp / 'nowhere/mast3r.pth'}"],
        f"error: The DUSt3R/MASt3R weight file {c.tmp / 'nowhere/mast3r.pth'} does "
        f"not exist; check --set method.weights=PATH.",
    ),
    "MASt3R weights of the wrong family": lambda c: Row(
        [
            "run",
            *c.args,
            "--method",
            "mast3r",
            "--set",
            f"method.weights={c.fixtures / 'mast3r/tiny_dust3r/checkpoint.pth'}",
            "--output",
            str(c.tmp / "new"),
        ],
        (
            "error: ",
            "tiny_dust3r/checkpoint.pth holds a DUSt3R network (AsymmetricCroCo3DStereo) but a MASt3R one is "
            "needed here; use e.g. MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth.",
        ),
    ),
    "unknown executor": lambda c: Row(
        ["run", *c.args, "--set", "executor.name=spark"],
        "error: executor.name must be one of local, ray, not 'spark' (in --set executor.name=spark).",
    ),
    "malformed ray address": lambda c: Row(
        ["run", *c.args, "--executor", "ray", "--set", "executor.address=nonsense"],
        "error: executor.address must be null, auto, HOST:PORT or ray://HOST:PORT, not 'nonsense'.",
        needs=("ray",),
    ),
    "unreachable ray head": _unreachable_ray,
    "depth solver without depth": lambda c: Row(
        ["run", *c.args, "--set", "dataset.depth=null"],
        "error: solver.metric_relative=pnp_depth needs the reference depth, but "
        "dataset.depth is not set; name the depth maps to use (e.g. --set "
        "dataset.depth=dptnyu for Map-free's DPT depth) or use a method that "
        "predicts 3D points with solver.metric_relative=pnp_pts3d.",
    ),
    "3D-point solver, sparse method": lambda c: Row(
        ["run", *c.args, "--set", "solver.metric_relative=essential_pts3d"],
        "error: solver.metric_relative=essential_pts3d needs a method that "
        "predicts 3D points (mast3r, dust3r), which sift does not; choose "
        "another solver.metric_relative (pnp_depth, essential_depth, "
        "pnp_depth_poselib).",
    ),
}


def _scene_by_name(ctx):
    out = ctx.tmp / "demo"

    def check(stdout, stderr, warnings):
        assert set(pd.read_parquet(out / "samples.parquet")["scene"]) == {"s90000"}

    return Row(
        [
            "run",
            "--method",
            "sift",
            "--dataset",
            "demo",
            "--set",
            "dataset.scenes=s90000",
            "--set",
            "run.max_samples=2",
            "--set",
            "run.bootstrap=0",
            "--set",
            "run.plots=false",
            "--set",
            f"run.cache_dir={ctx.tmp / 'cache'}",
            "--output",
            str(out),
            "--no-progress",
        ],
        code=0,
        check=check,
    )


def _damaged_dataset(ctx):
    """A Map-free copy with a truncated JPEG (a query frame that is not evaluated: a folder is checked whole),
    two malformed pose lines and a malformed intrinsics line."""
    root = ctx.tmp / "mf"
    shutil.copytree(ctx.root / "val", root / "val")
    scene = root / "val/s00460"
    image = scene / "seq1/frame_00003.jpg"
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) // 2])
    poses = (scene / "poses.txt").read_text().splitlines()
    poses[2], poses[7] = "seq1/frame_00001.jpg 1.0 0.0 0.0", "seq1/frame_00006.jpg 1 0 0 0 0 0 x"
    (scene / "poses.txt").write_text("\n".join(poses) + "\n")
    intrinsics = (scene / "intrinsics.txt").read_text().splitlines()
    intrinsics[3] = "seq1/frame_00002.jpg 500 500 27"
    (scene / "intrinsics.txt").write_text("\n".join(intrinsics) + "\n")
    return (
        root,
        [
            f"{scene / 'intrinsics.txt'} line 4: expected 'name fx fy cx cy W H' (7 fields), got 4",
            f"{scene / 'poses.txt'} line 3: 4 space-separated fields instead of 8 (single spaces only); "
            "the line is ignored.",
            f"{scene / 'poses.txt'} line 8: a pose value is not a number; the line is ignored.",
        ],
        image,
    )


def _datasets_check(ctx, quick: bool):
    root, lines, image = _damaged_dataset(ctx)

    def check(stdout, stderr, warnings):
        listed = [line.strip() for line in stdout.splitlines()[1:]]
        assert listed[:3] == lines
        assert [line for line in listed[3:] if str(image) in line] == ([] if quick else listed[3:])
        assert len(listed) == (3 if quick else 4) and stdout.startswith(f"mapfree: {len(listed)} problem(s)")

    return Row(
        ["datasets", "check", "--dataset", "mapfree", "--set", f"dataset.root={root}", *(["--quick"] if quick else [])],
        code=1,
        check=check,
    )


def _score_with_malformed_lines(ctx):
    """Malformed lines are dropped as the official scorer drops them (same metrics), with a warning."""
    clean = ctx.fixtures / "metrics/mapfree/submission.zip"
    path = ctx.tmp / "submission.zip"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as dst:
        for i, name in enumerate(src.namelist()):
            data = src.read(name)
            if i == 0:
                n = len(data.decode().splitlines())
                data += b"\nseq1/frame_00099.jpg 1 0 0\nseq1/frame_00098.jpg 1 0 0 0 a 0 0 0.5\n"
                bad = name
            dst.writestr(name, data)
    expected = json.loads((ctx.fixtures / "metrics/mapfree/mapfree_expected.json").read_text())["aggregate"]

    def check(stdout, stderr, warnings):
        got = json.loads(stdout)
        assert set(got) == set(expected) and all(abs(got[k] - v) <= 1e-6 for k, v in expected.items())
        assert len(warnings) == 1 and warnings[0].startswith(f"2 line(s) of {path} were skipped or overridden")
        assert f"{path}:{bad} line {n + 1}: 4 space-separated fields instead of 9" in warnings[0]
        assert f"{path}:{bad} line {n + 2}: a pose value is not a number" in warnings[0]

    return Row([*_score(ctx, path), "--json"], code=0, check=check)


def _umask_and_json(ctx):
    out = ctx.tmp / "run"

    def check(stdout, stderr, warnings):
        files = [p for p in (*out.rglob("*"), *(ctx.tmp / "cache").rglob("*")) if p.is_file()]
        assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}
        folders = [p for p in (*out.rglob("*"), *(ctx.tmp / "cache").rglob("*")) if p.is_dir()]
        assert {oct(p.stat().st_mode & 0o777) for p in folders} == {oct(0o750)}

        def refuse(constant):
            raise AssertionError(f"summary.json holds {constant}, which is not standard JSON")

        summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
        assert any(v is None for v in summary["overall"].values())  # every sample failed: medians are NaN
        assert np.isnan(read_summary(out / "summary.json")["overall"]["Average Median Translation Error"])

    args = tiny_args(ctx.root, ctx.tmp / "cache")
    return Row(["run", *args, "--output", str(out)], code=1, check=check, umask=0o027)  # every sample fails


def _ablation_of_failures(ctx):
    """Every sample of every value fails on the tiny data: failed rows with their reasons, and a plot."""
    exp = _experiment(ctx, "sweep: {method.max_keypoints: [8, 16]}\n")
    out = ctx.tmp / "abl"

    def check(stdout, stderr, warnings):
        table = pd.read_csv(out / "ablation.csv")
        assert table["method.max_keypoints"].tolist() == [8, 16] and set(table["status"]) == {"failed"}
        assert table["reason"].str.startswith("all 4 samples failed (too_few_matches 4); most often: ").all()
        assert (out / "ablation.png").stat().st_size > 0 and len(warnings) == 2

    return Row(["ablate", *ctx.args, "--experiment", str(exp), "--output", str(out)], code=0, check=check)


OTHERS = {
    "dataset.scenes=s90000 runs that scene": _scene_by_name,
    "datasets check lists every problem": lambda c: _datasets_check(c, quick=False),
    "datasets check --quick skips decoding": lambda c: _datasets_check(c, quick=True),
    "score warns about malformed lines": _score_with_malformed_lines,
    "files follow the umask, JSON holds null": _umask_and_json,
    "ablate: every sample of a value failed": _ablation_of_failures,
}
ROWS = {**REFUSALS, **OTHERS}


@pytest.mark.parametrize("name", list(ROWS))
def test_cli_row(name, finished, tiny_root, fixtures_dir, tmp_path, monkeypatch, capsys, caplog):
    prev, args = finished
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a run without --output writes results/ here: nothing may appear
    row = ROWS[name](Ctx(work, prev, args, tiny_root, fixtures_dir))
    for package in row.needs:
        pytest.importorskip(package)
    base, inputs = snapshot(prev.parent), snapshot(work)
    capsys.readouterr()
    old = os.umask(row.umask)
    try:
        with caplog.at_level(logging.INFO, logger="locbench"):
            code = main([str(a) for a in row.argv])
    finally:
        os.umask(old)
    out, err = capsys.readouterr()
    records = [r for r in caplog.records if r.name.startswith("locbench")]
    assert code == row.code, err
    assert "Traceback" not in err
    if row.check is not None:
        row.check(out, err, [r.getMessage() for r in records if r.levelno >= logging.WARNING])
        return
    lines = err.strip().splitlines()
    assert len(lines) == 1 and not records, (lines, [r.getMessage() for r in records])
    line = lines[0]
    if isinstance(row.expect, str):
        assert line == row.expect
    elif isinstance(row.expect, tuple):
        assert line.startswith(row.expect[0]) and line.endswith(row.expect[1]), line
    else:
        assert line.startswith("error: ") and all(word in line for word in row.expect), line
    assert snapshot(work) == inputs, "a refused run left something behind"
    assert snapshot(prev.parent) == base, "a refused run changed an earlier run's results or cache"


def test_ray_workers_receive_the_project_environment(monkeypatch, tmp_path):
    pytest.importorskip("ray")
    from benchmark.ray_executor import RayExecutor

    weights, cache = str(tmp_path / "weights"), str(tmp_path / "cache")  # as on a shared filesystem
    monkeypatch.setenv("LOCBENCH_WEIGHTS", weights)
    monkeypatch.setenv("LOCBENCH_CACHE", cache)
    monkeypatch.setenv("LOCBENCH_ALLOW_DOWNLOAD", "1")
    env = RayExecutor({"address": None, "cpus_per_task": 1.0, "gpus_per_task": 0.0})._runtime_env()["env_vars"]
    assert {k: env[k] for k in ("LOCBENCH_WEIGHTS", "LOCBENCH_CACHE", "LOCBENCH_ALLOW_DOWNLOAD")} == {
        "LOCBENCH_WEIGHTS": weights,
        "LOCBENCH_CACHE": cache,
        "LOCBENCH_ALLOW_DOWNLOAD": "1",
    }
    monkeypatch.delenv("LOCBENCH_WEIGHTS")
    env = RayExecutor({"address": None, "cpus_per_task": 1.0, "gpus_per_task": 0.0})._runtime_env()["env_vars"]
    assert "LOCBENCH_WEIGHTS" not in env


def test_a_bug_is_one_line_and_its_traceback_needs_verbose(tiny_root, tmp_path, monkeypatch, capsys):
    import benchmark.runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\nmore detail")

    monkeypatch.setattr(benchmark.runner, "plan_run", broken)
    argv = ["run", *tiny_args(tiny_root, tmp_path / "cache"), "--output", str(tmp_path / "out")]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "error: unexpected ZeroDivisionError: division by zero; this is a bug in locbench: run the command again "
        "with --verbose for the traceback and report it."
    )
    with pytest.raises(ZeroDivisionError):
        main(["--verbose", *argv])
    assert not (tmp_path / "out").exists()


def test_ray_requested_without_ray_installed(finished, monkeypatch, capsys):
    prev, args = finished
    before = snapshot(prev)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` and find_spec see when it is absent
    capsys.readouterr()
    assert main(["run", *args, "--executor", "ray", "--output", str(prev)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: The Ray executor (--executor ray) needs the optional package 'ray'; install it with "
        "pip install torch==2.13.0 -e '.[ray]'."
    )
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
    assert summary["status_counts"] == {
        **dict.fromkeys(summary["status_counts"], 0),
        "invalid_input": 2,
        "too_few_matches": 6,
    }


# Each: (results folder, cache folder) -> (start, end of the warning, folder for the second run).
def _truncate_cache(out, cache):
    path = next(cache.rglob("*.npz"))
    path.write_bytes(path.read_bytes()[:200])
    # a finished folder never reads the cache: a new folder with the same cache does
    return (
        f"match cache entry {path} is unreadable (",
        "); it was moved aside and will be recomputed",
        out.with_name("other"),
    )


def _garbage_shard(out, cache):
    path = out / "shards/s00460-000000.parquet"
    path.write_bytes(b"PAR1garbagePAR1")
    return f"shard file {path} is unreadable or stale (", "); it was moved aside and will be recomputed", out


def _garbage_fingerprint(out, cache):
    path = out / "shards/fingerprint.json"
    path.write_text("{")
    return f"{path} is unreadable (", "); the 1 shard files beside it cannot be trusted and are recomputed", out


DAMAGED = {
    "corrupt match cache entry": _truncate_cache,
    "corrupt shard parquet": _garbage_shard,
    "corrupt fingerprint": _garbage_fingerprint,
}


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
