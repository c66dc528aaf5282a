"""Reading and writing Map-free's text files (``poses.txt``, ``intrinsics.txt``).

Formats (PROTOCOLS.md section 1.1), one line per image:
    intrinsics.txt:  seqS/frame_NNNNN.jpg fx fy cx cy W H
    poses.txt:       seqS/frame_NNNNN.jpg qw qx qy qz tx ty tz     (world-to-camera, metres)
Lines containing '#' are comments. These readers are strict: a malformed line is
an error naming the file and line (the submission reader of the scorer, which
reproduces the official lenient rules, lives in benchmark.metrics.submission).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

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
        raise _BadLine(f"{path} line {lineno}: {what} must be numbers, got '{' '.join(fields)}'; fix the line.") from None
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
            raise _BadLine(f"{path} line {lineno}: expected 'name fx fy cx cy W H' (7 fields), "
                           f"got {len(fields)}; fix the line.")
        fx, fy, cx, cy, w, h = _floats(path, lineno, fields[1:], "fx fy cx cy W H")
        if fx <= 0 or fy <= 0 or w <= 0 or h <= 0:
            raise _BadLine(f"{path} line {lineno}: focal lengths and image size must be positive.")
        return Intrinsics(fx, fy, cx, cy, int(w), int(h))

    return _read(path, parse, problems)


def read_poses(path: Path, keep_zero: bool = False, problems: list | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map image name -> (q wxyz unit, t) world-to-camera, in file order.

    Lines whose quaternion is all zeros (the withheld test ground truth) are dropped
    unless ``keep_zero``.
    """
    def parse(lineno, fields):
        if len(fields) != 8:
            raise _BadLine(f"{path} line {lineno}: expected 'name qw qx qy qz tx ty tz' (8 fields), "
                           f"got {len(fields)}; fix the line.")
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


def format_intrinsics(rows: dict[str, Intrinsics]) -> str:
    return "\n".join(f"{n} {k.fx:.6f} {k.fy:.6f} {k.cx:.6f} {k.cy:.6f} {k.width} {k.height}"
                     for n, k in rows.items()) + "\n"


def format_poses(rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    def line(name, q, t):
        return name + " " + " ".join(f"{v:.9f}" for v in (*q, *t))

    return "\n".join(line(n, q, t) for n, (q, t) in rows.items()) + "\n"


def write_intrinsics(path: Path, rows: dict[str, Intrinsics]) -> None:
    write_text_atomic(path, format_intrinsics(rows))


def write_poses(path: Path, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    write_text_atomic(path, format_poses(rows))
