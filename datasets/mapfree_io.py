"""Reading and writing Map-free's text files (``poses.txt``, ``intrinsics.txt``).

Formats (PROTOCOLS.md section 1.1), one line per image:
    intrinsics.txt:  seqS/frame_NNNNN.jpg fx fy cx cy W H
    poses.txt:       seqS/frame_NNNNN.jpg qw qx qy qz tx ty tz     (world-to-camera, metres)
Lines containing '#' are comments. Two kinds of readers live here:

* strict ones (``read_intrinsics``, ``read_poses``): a malformed line is an error naming the file and
  line; for files we write ourselves (the demo generator) and their tests;
* the rules the official scorer reads with (``parse_pose_lines``: single spaces, frames keyed by
  ``name[-9:-4]``, a broken line skipped; ``evaluated_entries``: every 5th remaining entry), used by
  both the loader and the scorer so that both evaluate the same frames, and ``intrinsics_by_line``,
  where a broken line costs only its own frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from benchmark.errors import UserError
from benchmark.io import write_text_atomic

from .files import text_lines


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def _lines(path: Path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing; every Map-free scene folder needs it.")
    for lineno, line in enumerate(text_lines(path), start=1):
        line = line.strip()
        if not line or "#" in line:
            continue
        yield lineno, line.split()


class _BadLine(Exception):
    pass


def _floats(path, lineno, fields, what):
    try:
        values = [float(v) for v in fields]
    except ValueError:
        raise _BadLine(
            f"{path} line {lineno}: {what} must be numbers, got '{' '.join(fields)}'; fix the line."
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise _BadLine(f"{path} line {lineno}: {what} contains NaN or inf; fix or remove the line.")
    return values


def _read(path: Path, parse, problems: list | None) -> dict:
    """``{name: parse(lineno, fields)}`` in file order. A malformed line raises UserError, or with a
    ``problems`` list is appended to it and skipped (so every bad line of a file is found)."""
    out = {}
    for lineno, fields in _lines(path):
        try:
            value = parse(lineno, fields)
        except _BadLine as exc:
            if problems is None:
                raise UserError(str(exc)) from None
            problems.append(str(exc))
            continue
        if value is not None:
            out[fields[0]] = value
    return out


def read_intrinsics(path: Path, problems: list | None = None) -> dict[str, Intrinsics]:
    """Map image name -> Intrinsics, in file order."""

    def parse(lineno, fields):
        if len(fields) != 7:
            raise _BadLine(
                f"{path} line {lineno}: expected 'name fx fy cx cy W H' (7 fields), got {len(fields)}; fix the line."
            )
        fx, fy, cx, cy, w, h = _floats(path, lineno, fields[1:], "fx fy cx cy W H")
        if fx <= 0 or fy <= 0 or w <= 0 or h <= 0:
            raise _BadLine(f"{path} line {lineno}: focal lengths and image size must be positive.")
        return Intrinsics(fx, fy, cx, cy, int(w), int(h))

    return _read(path, parse, problems)


def read_poses(
    path: Path, keep_zero: bool = False, problems: list | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map image name -> (q wxyz unit, t) world-to-camera, in file order.

    Lines whose quaternion is all zeros (the withheld test ground truth) are dropped
    unless ``keep_zero``.
    """

    def parse(lineno, fields):
        if len(fields) != 8:
            raise _BadLine(
                f"{path} line {lineno}: expected 'name qw qx qy qz tx ty tz' (8 fields), "
                f"got {len(fields)}; fix the line."
            )
        v = np.array(_floats(path, lineno, fields[1:], "the pose"))
        q, t = v[:4], v[4:]
        norm = np.linalg.norm(q)
        if norm < 1e-8:
            return (q, t) if keep_zero else None
        return q / norm, t

    return _read(path, parse, problems)


def frame_number(name: str) -> int:
    """The scorer's frame identity: characters [-9:-4] of the name (``frame_00042.jpg`` -> 42)."""
    return int(name[-9:-4])


class PoseLine(NamedTuple):
    """One kept line of a pose file: world-to-camera pose as written (quaternion not normalised)."""

    name: str
    q: np.ndarray  # (w, x, y, z)
    t: np.ndarray
    confidence: float | None  # None in ground-truth files


def read_text_lines(data: bytes, source: str) -> list[str]:
    try:  # universal newlines, as the scorer's text wrappers read
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").readlines()
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text; write it as UTF-8.") from None


def parse_pose_lines(
    lines: Iterable[str], source: str, with_confidence: bool, keep_zero_quaternion: bool = False
) -> tuple[dict, list[str]]:
    """``{frame number: PoseLine}`` in first-appearance order with the last line winning, and
    one sentence per skipped or overridden line. ``keep_zero_quaternion`` keeps the all-zero
    poses by which the test split withholds its ground truth (the scorer drops them)."""
    fields_expected = 9 if with_confidence else 8
    poses: dict[int, PoseLine] = {}
    problems = []
    for lineno, line in enumerate(lines, start=1):
        parts = line.strip().split(" ")
        where = f"{source} line {lineno}"
        if len(parts) != fields_expected:
            if parts != [""]:  # blank lines are skipped silently enough
                problems.append(
                    f"{where}: {len(parts)} space-separated fields instead of {fields_expected} "
                    f"(single spaces only); the line is ignored."
                )
            continue
        name = parts[0]
        if "#" in name:
            continue
        try:
            number = frame_number(name)
        except ValueError:
            problems.append(
                f"{where}: '{name}' has no frame number at characters [-9:-4] "
                f"(expected seqN/frame_NNNNN.jpg); the line is ignored."
            )
            continue
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            problems.append(f"{where}: a pose value is not a number; the line is ignored.")
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(f"{where}: NaN or inf in the pose; the line is ignored.")
            continue
        q, t = np.array(values[:4]), np.array(values[4:7])
        if np.isclose(np.linalg.norm(q), 0) and not keep_zero_quaternion:
            problems.append(f"{where}: zero quaternion; the line is ignored.")
            continue
        if number in poses:
            problems.append(f"{where}: frame {number} appeared before (as {poses[number].name}); this later line wins.")
        poses[number] = PoseLine(name, q, t, values[7] if with_confidence else None)
    return poses, problems


def evaluated_entries(entries, stride: int) -> list:
    """The keys the scorer evaluates: every ``stride``-th entry in file order, after repeated frame
    numbers were merged and broken lines skipped by :func:`parse_pose_lines`."""
    return list(entries)[::stride]


def intrinsics_by_line(path: Path) -> tuple[dict[str, Intrinsics], dict[str, str]]:
    """``({name: Intrinsics}, {name: why its line is unusable})`` of an ``intrinsics.txt``.

    Unlike :func:`read_intrinsics`, a broken line costs only its own frame: the reason names the file
    and line, so the run records that frame as a failure and scores every other frame."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing; every Map-free scene folder needs it.")
    good: dict[str, Intrinsics] = {}
    broken: dict[str, str] = {}
    for lineno, line in enumerate(read_text_lines(path.read_bytes(), str(path)), start=1):
        fields = line.split()
        if not fields or "#" in line:
            continue
        name, where = fields[0], f"{path} line {lineno}"
        try:
            if len(fields) != 7:
                raise _BadLine(f"{where}: expected 'name fx fy cx cy W H' (7 fields), got {len(fields)}")
            fx, fy, cx, cy, w, h = _floats(path, lineno, fields[1:], "fx fy cx cy W H")
            if fx <= 0 or fy <= 0 or w <= 0 or h <= 0 or w != int(w) or h != int(h):
                raise _BadLine(f"{where}: focal lengths must be positive and the image size positive integers")
        except _BadLine as exc:
            broken[name] = str(exc).split("; fix")[0].rstrip(".")
            good.pop(name, None)
            continue
        good[name] = Intrinsics(fx, fy, cx, cy, int(w), int(h))
        broken.pop(name, None)
    return good, broken


def format_intrinsics(rows: dict[str, Intrinsics]) -> str:
    return (
        "\n".join(f"{n} {k.fx:.6f} {k.fy:.6f} {k.cx:.6f} {k.cy:.6f} {k.width} {k.height}" for n, k in rows.items())
        + "\n"
    )


def format_poses(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    def line(name, q, t):
        return name + " " + " ".join(f"{v:.9f}" for v in (*q, *t))

    return "\n".join(line(n, q, t) for n, (q, t) in rows.items()) + "\n"


def write_intrinsics(path: Path, rows: dict[str, Intrinsics]) -> None:
    write_text_atomic(path, format_intrinsics(rows))


def write_poses(path: Path, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    write_text_atomic(path, format_poses(rows))
