"""Map-free submissions: the official file format, the scorer's lenient reading rules, the CLI aggregate.

A submission is a ZIP with ``pose_<scene>.txt`` at its root, lines
``seq1/frame_NNNNN.jpg qw qx qy qz tx ty tz confidence`` (world-to-camera, PROTOCOLS.md 1.3).
Ground-truth ``poses.txt`` / ``intrinsics.txt`` are read here with the scorer's own rules (which
differ from the strict readers of ``datasets/mapfree_io.py``): single-space fields, ``#`` names
skipped, frames keyed by ``name[-9:-4]`` (last line wins), NaN/inf and zero quaternions skipped,
every 5th ground-truth entry evaluated, a scene file missing from the ZIP counting all of that
scene's frames as failures (quirks 1-4, 9, 10).
"""

from __future__ import annotations

import logging
import math
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import numpy as np

from benchmark.errors import UserError
from benchmark.geometry import rotmat_to_quat
from benchmark.io import atomic_path
from datasets.mapfree_io import PoseLine, evaluated_entries, frame_number, parse_pose_lines, read_text_lines

from .mapfree import CORRECTED, ROT, ROTATION_COS, ROTATION_SIN, SUBSAMPLE, TRANS, VCRE, aggregate, frame_errors_w2c

log = logging.getLogger("locbench.score")
MAX_LISTED = 5  # problems quoted in a warning (the count says how many there are)


class SceneScore(NamedTuple):
    evaluated: list  # frame numbers the scorer evaluates, in poses.txt order
    frames: list  # the evaluated frames that have an estimate
    errors: dict  # trans_err_m, rot_err_deg, vcre_px, confidence: arrays over ``frames``
    failures: int


def read_ground_truth(scene_dir: Path) -> dict[int, PoseLine]:
    """A scene's ``poses.txt`` as the scorer reads it (zero-quaternion lines dropped)."""
    path = Path(scene_dir) / "poses.txt"
    if not path.is_file():
        raise UserError(f"{path} is missing; the Map-free scorer needs every scene's poses.txt.")
    return parse_pose_lines(read_text_lines(path.read_bytes(), str(path)), str(path), with_confidence=False)[0]


def read_intrinsics_official(scene_dir: Path) -> tuple[dict[int, np.ndarray], float, float]:
    """``({frame number: K float32}, W, H)`` with W, H taken from the last line (quirk 10)."""
    path = Path(scene_dir) / "intrinsics.txt"
    if not path.is_file():
        raise UserError(f"{path} is missing; the Map-free scorer needs every scene's intrinsics.txt.")
    Ks, size = {}, None
    for lineno, line in enumerate(read_text_lines(path.read_bytes(), str(path)), start=1):
        if "#" in line or not line.strip():
            continue
        parts = line.strip().split(" ")
        try:
            number = frame_number(parts[0])
            fx, fy, cx, cy, W, H = (float(v) for v in parts[1:])
        except ValueError:
            raise UserError(
                f"{path} line {lineno}: expected 'seqN/frame_NNNNN.jpg fx fy cx cy W H' separated "
                f"by single spaces; fix the line."
            ) from None
        Ks[number] = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)
        size = (W, H)
    if size is None:
        raise UserError(f"{path} has no intrinsics line; restore the file from the dataset.")
    return Ks, size[0], size[1]


def _subsample(gt: Mapping[int, PoseLine]) -> list[int]:
    return evaluated_entries(gt, SUBSAMPLE)


def evaluated_frames(poses_txt_path: Path, keep_zero_poses: bool = False) -> list[tuple[str, int]]:
    """``(name, frame number)`` of the frames the scorer evaluates (quirks 2, 3); the loader uses
    the same rule (``datasets.mapfree_io.read_ground_truth_lines``)."""
    path = Path(poses_txt_path)
    if not path.is_file():
        raise UserError(f"{path} is missing; every Map-free scene folder needs it.")
    gt = parse_pose_lines(
        read_text_lines(path.read_bytes(), str(path)),
        str(path),
        with_confidence=False,
        keep_zero_quaternion=keep_zero_poses,
    )[0]
    return [(gt[n].name, n) for n in _subsample(gt)]


def open_submission(zip_path: Path) -> zipfile.ZipFile:
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise UserError(f"The submission {zip_path} does not exist; pass the path of the ZIP file.")
    what = "an empty file" if zip_path.stat().st_size == 0 else "not a ZIP file"
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(
            f"The submission {zip_path} is {what}; give the submission.zip that `python -m benchmark run` "
            f"writes, or a ZIP of pose_<scene>.txt files in the official format."
        ) from None


def submission_scenes(archive: zipfile.ZipFile) -> list[str]:
    """Scenes with a ``pose_<scene>.txt`` at the ZIP root."""
    return [n[5:-4] for n in archive.namelist() if n.startswith("pose_") and n.endswith(".txt") and "/" not in n]


def _read_scene(archive: zipfile.ZipFile, zip_path, scene: str) -> tuple[dict, list[str]] | None:
    name = f"pose_{scene}.txt"
    if name not in archive.namelist():
        return None
    source = f"{zip_path}:{name}"
    try:
        data = archive.read(name)
    except (zipfile.BadZipFile, OSError, zlib.error) as exc:
        raise UserError(f"{source} cannot be read from the ZIP ({exc}); write the submission again.") from None
    return parse_pose_lines(read_text_lines(data, source), source, with_confidence=True)


def read_submission(zip_path: Path, check_confidence: bool = True) -> dict[str, dict[int, PoseLine]]:
    """``{scene: {frame number: PoseLine}}`` with the scorer's lenient rules (invalid lines skipped).

    A negative confidence makes the scorer abort without metrics (quirk 9): with
    ``check_confidence`` any kept line with one raises; the scorer itself only trips on evaluated
    frames, which is what :func:`score_submission` reproduces.
    """
    with open_submission(zip_path) as archive:
        out = {scene: _read_scene(archive, zip_path, scene)[0] for scene in submission_scenes(archive)}
    if check_confidence:
        for scene, poses in out.items():
            for entry in poses.values():
                if entry.confidence < 0:
                    raise UserError(_negative_confidence(zip_path, scene, entry))
    return out


def _negative_confidence(zip_path, scene, entry) -> str:
    return (
        f"{zip_path}: pose_{scene}.txt gives {entry.name} the negative confidence {entry.confidence}; "
        f"the official scorer aborts on it, so write confidences >= 0."
    )


def format_pose_line(name: str, q, t, confidence) -> str:
    """One line in the official writer's format: q and t with 6 decimals, ``str(float)`` confidence."""
    return " ".join([name, *(f"{v:.6f}" for v in q), *(f"{v:.6f}" for v in t), str(float(confidence))])


def write_submission(path_zip: Path, poses: Mapping[str, Iterable]) -> Path:
    """Write ``{scene: [(frame_name, q_wxyz or 3x3 R, t, confidence), ...]}`` (world-to-camera, the
    reference camera as world) as an official submission ZIP, atomically. Lines that the scorer
    would ignore or abort on (NaN, zero quaternion, negative confidence, a name with a space or
    ``#``) are refused with a UserError; leave failed frames out instead."""
    files = {}
    for scene, entries in poses.items():
        if not scene or "/" in scene:
            raise UserError(f"Submission scene name {scene!r} cannot be a file name pose_<scene>.txt; use e.g. s00525.")
        lines = []
        for name, q, t, confidence in entries:
            q = rotmat_to_quat(q) if np.shape(q) == (3, 3) else np.asarray(q, dtype=np.float64).reshape(4)
            t = np.asarray(t, dtype=np.float64).reshape(3)
            where = f"scene {scene}, frame {name}"
            if " " in name or "#" in name or not name.strip():
                raise UserError(f"Submission {where}: the frame name must be non-empty, without spaces or '#'.")
            try:
                frame_number(name)
            except ValueError:
                raise UserError(
                    f"Submission {where}: the name must end in a frame number like "
                    f"seq1/frame_00042.jpg (the scorer reads characters [-9:-4])."
                ) from None
            if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))) or np.isclose(np.linalg.norm(q), 0):
                raise UserError(
                    f"Submission {where}: the pose is NaN/inf or has a zero quaternion; "
                    f"leave the frame out (it then counts as a failure)."
                )
            if not math.isfinite(float(confidence)) or float(confidence) < 0:
                raise UserError(f"Submission {where}: confidence {confidence} must be a finite number >= 0.")
            lines.append(format_pose_line(name, q, t, confidence))
        files[f"pose_{scene}.txt"] = "\n".join(lines).encode("utf-8")
    with atomic_path(path_zip) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
    return Path(path_zip)


def split_scenes(split_dir: Path) -> list[str]:
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise UserError(f"The Map-free split folder {split_dir} does not exist; pass <root>/val (or test).")
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def score_scene(
    scene_dir: Path, estimates: Mapping[int, PoseLine] | None, corrected: bool = False, source: str = "the submission"
) -> SceneScore:
    """Errors of one scene's evaluated frames; ``estimates`` None means its file is missing."""
    scene_dir = Path(scene_dir)
    Ks, W, H = read_intrinsics_official(scene_dir)
    gt = read_ground_truth(scene_dir)
    evaluated = _subsample(gt)
    errors = {TRANS: [], ROT: [], VCRE: [], "confidence": []}
    frames, failures = [], 0
    if estimates is None:  # quirk 1: every frame of the scene counts, not only the evaluated ones
        failures = len(evaluated) if corrected else len(gt)
    for number in evaluated if estimates is not None else []:
        if number not in estimates:
            failures += 1
            continue
        est = estimates[number]
        if est.confidence < 0:
            raise UserError(_negative_confidence(source, scene_dir.name, est))
        if number not in Ks:
            raise UserError(f"{scene_dir / 'intrinsics.txt'} has no line for frame {number}; restore the file.")
        e = frame_errors_w2c(
            gt[number].q, gt[number].t, est.q, est.t, Ks[number], W, H, ROTATION_COS if corrected else ROTATION_SIN
        )
        for k in (TRANS, ROT, VCRE):
            errors[k].append(e[k])
        errors["confidence"].append(est.confidence)
        frames.append(number)
    return SceneScore(evaluated, frames, {k: np.array(v, dtype=np.float64) for k, v in errors.items()}, failures)


def evaluate_submission(split_dir: Path, zip_path: Path, corrected: bool = False) -> dict[str, SceneScore]:
    """Per-scene results of a submission over every scene folder of ``split_dir``."""
    scenes = split_scenes(split_dir)
    with open_submission(zip_path) as archive:
        out, ignored = {}, []
        for scene in scenes:
            found = _read_scene(archive, zip_path, scene)
            out[scene] = score_scene(Path(split_dir) / scene, found[0] if found else None, corrected, str(zip_path))
            ignored += found[1] if found else []
    if ignored:  # the official scorer drops these lines without a word; the metrics follow it
        shown = "; ".join(ignored[:MAX_LISTED]) + ("; ..." if len(ignored) > MAX_LISTED else "")
        log.warning(
            "%d line(s) of %s were skipped or overridden by the official scorer's rules (the metrics count "
            "those frames as it does): %s",
            len(ignored),
            zip_path,
            shown,
        )
    return out


def score_submission(split_dir: Path, zip_path: Path, corrected: bool = False) -> dict:
    """The official CLI's output for ``zip_path`` against ``<root>/<split>`` (official key strings).

    ``corrected=True`` counts only the evaluated frames of a missing scene file and uses the
    arccos rotation error (no NaN at 180 deg); its keys end with `` [corrected]``.
    """
    scores = evaluate_submission(split_dir, zip_path, corrected)
    if not any(len(s.frames) for s in scores.values()):
        raise UserError(
            f"The submission {zip_path} has no valid pose estimate for any evaluated frame of "
            f"{split_dir}; the official scorer prints no metrics (check scene names and line format)."
        )
    return aggregate(
        {s: r.errors for s, r in scores.items()},
        sum(r.failures for r in scores.values()),
        CORRECTED if corrected else "",
    )


def validate_submission(zip_path: Path, split_dir: Path) -> list[str]:
    """Every problem the scorer would silently absorb or abort on, one sentence each (empty: clean)."""
    try:
        archive = open_submission(zip_path)
    except UserError as exc:
        return [str(exc)]
    problems = []
    with archive:
        scenes = set(submission_scenes(archive))
        for name in archive.namelist():
            if name.endswith("/") or (name.startswith("pose_") and name.endswith(".txt") and "/" not in name):
                continue
            problems.append(
                f"{zip_path}: '{name}' is not a pose_<scene>.txt file at the ZIP root; the scorer ignores it."
            )
        known = split_scenes(split_dir)
        for scene in sorted(scenes - set(known)):
            problems.append(f"{zip_path}: pose_{scene}.txt names a scene that {split_dir} does not hold.")
        for scene in known:
            if scene not in scenes:
                problems.append(
                    f"{zip_path}: no pose_{scene}.txt; the scorer counts ALL frames of {scene} "
                    f"(not only the evaluated ones) as failures."
                )
                continue
            source = f"{zip_path}:pose_{scene}.txt"
            try:
                estimates, line_problems = _read_scene(archive, zip_path, scene)
            except UserError as exc:
                problems.append(str(exc))
                continue
            problems += line_problems
            problems += [_negative_confidence(zip_path, scene, e) for e in estimates.values() if e.confidence < 0]
            try:
                evaluated = _subsample(read_ground_truth(Path(split_dir) / scene))
            except UserError as exc:
                problems.append(str(exc))
                continue
            missing = [n for n in evaluated if n not in estimates]
            if missing:
                problems.append(
                    f"{source}: {len(missing)} of {len(evaluated)} evaluated frames have no estimate "
                    f"(frames {', '.join(map(str, missing[:10]))}{', ...' if len(missing) > 10 else ''}); "
                    f"they count as failures."
                )
    return problems
