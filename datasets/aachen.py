"""Aachen Day-Night v1.1 absolute localization (PROTOCOLS.md section 3), and any dataset in its layout.

Layout (as distributed for visuallocalization.net; every path is a config key, relative to the root)::

    <root>/images_upright/db/*.jpg                                 database images
    <root>/images_upright/query/{day,night}/<camera>/*.jpg         queries
    <root>/queries/{day,night}_time_queries_with_intrinsics.txt    name MODEL W H params... (COLMAP pixels)
    <root>/3D-models/aachen_v_1_1/                                 COLMAP model of the database images
    <root>/pairs-query-netvlad50.txt                               retrieval pairs 'query db', best first
                                                                   (or kapture's 'query, db, score' files)

Each query becomes a ``QuerySample`` whose references are its top ``dataset.num_retrieved`` database
images with camera, pose and the 2D observations (OpenCV pixels = COLMAP - 0.5) of 3D map points.
Aachen's query ground truth is private: ``dataset.ground_truth`` optionally names a pose file
(``name qw qx qy qz tx ty tz``, world-to-camera) or a COLMAP model holding the queries, for your own splits.
Scenes (the unit of sharding) are ``<condition>/<camera>`` (``day/nexus4``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.geometry import pose_matrix, quat_to_rotmat
from benchmark.registry import DATASETS
from benchmark.types import TASK_ABSOLUTE, Camera, InvalidSample, QuerySample, Reference

from .base import Dataset
from .files import data_path, text_lines

COLMAP_TO_OPENCV = -0.5  # pixel-centre shift (PROTOCOLS 6)


def _pycolmap():
    import pycolmap

    pycolmap.logging.minloglevel = 2
    return pycolmap


def camera_from_colmap(model: str, width, height, params) -> Camera:
    """Our Camera (OpenCV pixels) from a COLMAP camera; raises ValueError when the parameters do not fit."""
    pycolmap = _pycolmap()
    if model not in pycolmap.CameraModelId.__members__ or model == "INVALID":
        raise ValueError(f"unknown COLMAP camera model '{model}'")
    cam = pycolmap.Camera(model=model, width=int(width), height=int(height), params=[float(p) for p in params])
    if not cam.verify_params():
        raise ValueError(f"a {model} camera takes the parameters {cam.params_info}, got {len(params)} values")
    values = list(map(float, cam.params))
    for i in cam.principal_point_idxs():
        values[i] += COLMAP_TO_OPENCV
    return Camera(model, int(width), int(height), tuple(values))


@dataclass
class QueryEntry:
    name: str
    where: str  # "file line N"
    camera: Optional[Camera] = None
    problem: str = ""


def read_query_list(path: Path) -> list[QueryEntry]:
    """Queries of a ``*_queries_with_intrinsics.txt`` file; malformed lines carry their problem."""
    out = []
    for lineno, line in enumerate(text_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        entry = QueryEntry(fields[0], f"{path} line {lineno}")
        try:
            if len(fields) < 5:
                raise ValueError(f"expected 'name MODEL width height params...', got {len(fields)} fields")
            try:
                width, height, params = int(fields[2]), int(fields[3]), [float(v) for v in fields[4:]]
            except ValueError:
                raise ValueError("width and height must be integers and the parameters numbers") from None
            if width <= 0 or height <= 0 or not np.isfinite(params).all():
                raise ValueError("the image size must be positive and the parameters finite")
            entry.camera = camera_from_colmap(fields[1], width, height, params)
        except ValueError as exc:
            entry.problem = f"{entry.where}: {exc}"
        out.append(entry)
    return out


def read_retrieval_pairs(path: Path) -> tuple[dict[str, list[tuple[str, int]]], dict[str, list[str]]]:
    """query -> [(database name, line), ...] best first without repeats, and query -> the malformed
    lines naming it.

    Two formats: hloc's ``query db`` lines (file order is the rank) and kapture's pairs files
    ``query, db, score`` (kapture_localization's reader: per query, highest score first; what MASt3R's
    visloc.py reads, e.g. FIRe's fire_top50.txt). A file whose first pair line has commas is kapture's."""
    pairs: dict[str, list[tuple[str, int]]] = {}
    scores: dict[str, list[float]] = {}
    bad: dict[str, list[str]] = {}
    kapture = None
    for lineno, line in enumerate(text_lines(path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kapture = ("," in line) if kapture is None else kapture
        fields = [f.strip() for f in line.split(",")] if kapture else line.split()
        if len(fields) != (3 if kapture else 2):
            expected = "'query_name, db_name, score' (kapture)" if kapture else "'query_name db_name'"
            query = line.replace(",", " ").split()[0]  # the query the broken line is about
            bad.setdefault(query, []).append(f"{path} line {lineno}: expected {expected}, got {len(fields)} fields")
            continue
        try:
            score = float(fields[2]) if kapture else -lineno
        except ValueError:
            bad.setdefault(fields[0], []).append(f"{path} line {lineno}: the score {fields[2]!r} is not a number")
            continue
        refs = pairs.setdefault(fields[0], [])
        if all(db != fields[1] for db, _ in refs):
            refs.append((fields[1], lineno))
            scores.setdefault(fields[0], []).append(score)
    for query, refs in pairs.items():  # stable: equal scores keep the file order
        order = sorted(range(len(refs)), key=lambda i: -scores[query][i])
        pairs[query] = [refs[i] for i in order]
    return pairs, bad


def read_pose_file(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """name -> 4x4 world-to-camera from 'name qw qx qy qz tx ty tz' lines, and the malformed lines."""
    poses, bad = {}, []
    for lineno, line in enumerate(text_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path} line {lineno}"
        if len(fields) != 8:
            bad.append(f"{where}: expected 'name qw qx qy qz tx ty tz' (8 fields), got {len(fields)}")
            continue
        try:
            v = np.array([float(x) for x in fields[1:]])
        except ValueError:
            bad.append(f"{where}: the pose must be 7 numbers")
            continue
        if not np.isfinite(v).all() or np.linalg.norm(v[:4]) < 1e-8:
            bad.append(f"{where}: the pose has NaN/inf values or a zero quaternion")
            continue
        poses[fields[0]] = pose_matrix(quat_to_rotmat(v[:4] / np.linalg.norm(v[:4])), v[4:])
    return poses, bad


class MapModel:
    """The reference COLMAP reconstruction with per-image observation arrays (cached)."""

    def __init__(self, path: Path):
        try:
            self.rec = _pycolmap().Reconstruction(str(path))
        except Exception as exc:
            raise UserError(
                f"{path} cannot be read as a COLMAP model (cameras, images, points3D as .bin or .txt): {exc}"
            ) from None
        self.path = Path(path)
        self.ids = {img.name: img_id for img_id, img in self.rec.images.items() if img.has_pose}
        # bounded: the Aachen model holds millions of observations
        self.observations = functools.lru_cache(maxsize=512)(self._observations)

    def __contains__(self, name: str) -> bool:
        return name in self.ids

    def pose(self, name: str) -> np.ndarray:
        T = np.eye(4)
        T[:3] = np.asarray(self.rec.images[self.ids[name]].cam_from_world().matrix(), dtype=np.float64)
        return T

    def _observations(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(M, 2) OpenCV pixels and (M, 3) world points of the image's 2D points that have a 3D point."""
        points3d = self.rec.points3D
        obs = self.rec.images[self.ids[name]].get_observation_points2D()
        xy = np.array([p.xy for p in obs], dtype=np.float64).reshape(-1, 2) + COLMAP_TO_OPENCV
        xyz = np.array([points3d[p.point3D_id].xyz for p in obs], dtype=np.float64).reshape(-1, 3)
        return xy, xyz

    def reference(self, name: str, image_root: Path) -> Reference:
        img = self.rec.images[self.ids[name]]
        cam = self.rec.cameras[img.camera_id]
        xy, xyz = self.observations(name)
        return Reference(
            name=name,
            image=image_root / name,
            T_w2c=self.pose(name),
            points2d=xy,
            points3d=xyz,
            camera=camera_from_colmap(cam.model.name, cam.width, cam.height, list(cam.params)),
        )


_MODELS: dict[tuple, MapModel] = {}


def load_model(path: Path) -> MapModel:
    """One reconstruction per process (the Aachen model takes seconds and a lot of memory to load)."""
    path = Path(path).resolve()
    stamp = tuple((f.name, f.stat().st_mtime_ns) for f in sorted(path.glob("*")) if f.is_file())
    key = (str(path), stamp)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = MapModel(path)
    return _MODELS[key]


class RetrievedReferences(Sequence):
    """A query's retrieved database images, built from the model on first access, so that counting samples
    (shard planning, ``datasets check``) does not read every image's observations."""

    def __init__(self, model: MapModel, names: list[str], image_root: Path):
        self.model, self.names, self.image_root = model, list(names), image_root
        self._items: list[Reference] | None = None

    def _built(self) -> list[Reference]:
        if self._items is None:
            self._items = [self.model.reference(n, self.image_root) for n in self.names]
        return self._items

    def __getitem__(self, index):
        return self._built()[index]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def images(self) -> list[Path]:
        """The image files, without building the references."""
        return [self.image_root / n for n in self.names]


def scene_of(name: str) -> str:
    """``query/day/nexus4/IMG.jpg`` -> ``day/nexus4``; otherwise the name's folder (or 'all')."""
    parts = Path(name).parts
    if len(parts) >= 4 and parts[0] == "query":
        return f"{parts[1]}/{parts[2]}"
    parent = Path(name).parent.as_posix()
    return "all" if parent == "." else parent


@DATASETS.register("aachen")
class Aachen(Dataset):
    """Aachen Day-Night v1.1 (or any data in its layout): queries localized against a COLMAP model."""

    default_conf = {
        "root": None,
        "image_dir": "images_upright",  # query and database image names are relative to this folder
        "queries": ["queries/day_time_queries_with_intrinsics.txt", "queries/night_time_queries_with_intrinsics.txt"],
        "model": "3D-models/aachen_v_1_1",  # COLMAP model of the database images
        "pairs": "pairs-query-netvlad50.txt",  # retrieval pairs: hloc's 'query db' (best first) or kapture's
        "num_retrieved": 20,  # database images matched per query (MASt3R's top 20; hloc uses all 50)
        "ground_truth": None,  # optional query poses: 'name qw qx qy qz tx ty tz' file or a COLMAP model
        "conditions": None,  # e.g. [day]; null = all
        "scenes": None,  # e.g. [day/nexus4]; null = all
    }
    conf_types = {
        "num_retrieved": Key(int, min=1),
        "ground_truth": str | None,
        "conditions": list[str] | None,
        "scenes": list[str] | None,
    }
    task = TASK_ABSOLUTE
    protocol = "aachen"
    download_hint = (
        "get Aachen Day-Night v1.1 from https://www.visuallocalization.net and hloc's "
        "pairs/aachen_v1.1/pairs-query-netvlad50.txt"
    )

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self._queries = None
        self._pairs = None
        self._gt = None

    # -- files ------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return data_path(self.root, self.conf[key])

    @property
    def image_root(self) -> Path:
        return self.root / self.conf["image_dir"]

    def query_lists(self) -> list[Path]:
        return [data_path(self.root, p) for p in self.conf["queries"]]

    def check(self) -> None:
        self._check_files()
        _, bad = self.ground_truth()
        if bad:
            raise UserError(f"{bad[0]}; fix the ground-truth file ({len(bad)} bad line(s) in all).")

    def _check_files(self) -> None:
        super().check()
        if not self.query_lists():
            raise UserError("dataset.queries names no query list; give the *_queries_with_intrinsics.txt files.")
        for p in self.query_lists():
            if not p.is_file():
                raise UserError(
                    f"The query list {p} is missing; set dataset.queries to the "
                    f"*_queries_with_intrinsics.txt files of your data."
                )
        if not self.path("pairs").is_file():
            raise UserError(
                f"The retrieval pairs file {self.path('pairs')} is missing; pass --set dataset.pairs=PATH "
                f"(e.g. hloc's pairs-query-netvlad50.txt)."
            )
        model = self.path("model")
        if not any((model / f"images.{ext}").is_file() for ext in ("bin", "txt")):
            raise UserError(
                f"{model} is not a COLMAP model folder (no images.bin or images.txt); "
                f"set dataset.model to the reference reconstruction."
            )
        gt = self.conf["ground_truth"]
        if gt and not self.path("ground_truth").exists():
            raise UserError(
                f"The ground-truth poses {self.path('ground_truth')} do not exist; "
                f"fix dataset.ground_truth or set it to null."
            )

    def queries(self) -> list[QueryEntry]:
        if self._queries is None:
            seen, out = set(), []
            for path in self.query_lists():
                for q in read_query_list(path):
                    if q.name not in seen:
                        seen.add(q.name)
                        out.append(q)
            self._queries = out
        return self._queries

    def pairs(self) -> tuple[dict[str, list[tuple[str, int]]], dict[str, list[str]]]:
        if self._pairs is None:
            self._pairs = read_retrieval_pairs(self.path("pairs"))
        return self._pairs

    def ground_truth(self) -> tuple[dict[str, np.ndarray], list[str]]:
        """Query name (full or basename) -> 4x4 world-to-camera, and the malformed lines of the pose file."""
        if self._gt is None:
            if not self.conf["ground_truth"]:
                self._gt = ({}, [])
            elif self.path("ground_truth").is_dir():
                model = MapModel(self.path("ground_truth"))
                self._gt = ({name: model.pose(name) for name in model.ids}, [])
            else:
                self._gt = read_pose_file(self.path("ground_truth"))
        return self._gt

    def _gt_pose(self, name: str) -> np.ndarray | None:
        """The pose of a query named in full (``query/day/nexus4/x.jpg``) or by any shorter path ending."""
        gt, _ = self.ground_truth()
        parts = Path(name).parts
        for k in range(len(parts)):
            pose = gt.get(Path(*parts[k:]).as_posix())
            if pose is not None:
                return pose
        return None

    # -- samples ----------------------------------------------------------------
    def _wanted(self, scene: str) -> bool:
        conditions, scenes = self.conf["conditions"], self.conf["scenes"]
        return (not conditions or scene.split("/")[0] in conditions) and (not scenes or scene in scenes)

    def _orphans(self) -> list[tuple[str, int]]:
        """Queries named in the pairs file but in no query list, with their first line."""
        known = {q.name for q in self.queries()}
        pairs, _ = self.pairs()
        return [(q, refs[0][1]) for q, refs in pairs.items() if q not in known]

    def scenes(self) -> list[str]:
        names = [q.name for q in self.queries()] + [q for q, _ in self._orphans()]
        found = list(dict.fromkeys(scene_of(n) for n in names))
        if self.conf["scenes"]:
            missing = [s for s in self.conf["scenes"] if s not in found]
            if missing:
                raise UserError(
                    f"dataset.scenes names {', '.join(missing)}, which the query lists do not hold "
                    f"(scenes look like day/nexus4)."
                )
        return [s for s in found if self._wanted(s)]

    def samples(self, scene: str) -> Iterator[QuerySample | InvalidSample]:
        model = load_model(self.path("model"))
        pairs, bad_pairs = self.pairs()
        pairs_path = self.path("pairs")
        k = self.conf["num_retrieved"]
        for q in self.queries():
            if scene_of(q.name) != scene:
                continue
            if q.problem:
                yield InvalidSample(q.name, scene, q.problem)
                continue
            if q.name in bad_pairs:
                yield InvalidSample(q.name, scene, bad_pairs[q.name][0])
                continue
            retrieved = pairs.get(q.name, [])[:k]
            if not retrieved:
                yield InvalidSample(q.name, scene, f"{pairs_path} has no retrieval pairs for the query {q.name}")
                continue
            unknown = [(db, line) for db, line in retrieved if db not in model]
            if unknown:
                db, line = unknown[0]
                yield InvalidSample(
                    q.name,
                    scene,
                    f"{pairs_path} line {line}: the database image {db} is not a "
                    f"registered image of the model {model.path}",
                )
                continue
            names = [db for db, _ in retrieved]
            yield QuerySample(
                id=q.name,
                scene=scene,
                image=self.image_root / q.name,
                camera=q.camera,
                references=RetrievedReferences(model, names, self.image_root),
                T_w2c=self._gt_pose(q.name),
                extra={"name": q.name, "condition": scene.split("/")[0]},
            )
        lists = ", ".join(str(p) for p in self.query_lists())
        for name, line in self._orphans():
            if scene_of(name) == scene:
                yield InvalidSample(
                    name,
                    scene,
                    f"{pairs_path} line {line}: the query {name} has no line in the "
                    f"query lists ({lists}), so its camera is unknown",
                )

    def layout_problems(self) -> list[str]:
        self._check_files()
        load_model(self.path("model"))
        _, bad_pairs = self.pairs()
        return list(self.ground_truth()[1]) + [line for lines in bad_pairs.values() for line in lines]
