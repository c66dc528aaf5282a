"""The ``mast3r`` and ``dust3r`` methods: our networks (``methods.mast3r``) behind the matcher interface.

Image 0 is the reference (map) image, image 1 the query. By default image 0 is the network's view 1 (the
frame the 3D points are given in) and both images are pre-processed exactly as the official ``load_images``
(long side ``size``, crop to multiples of 16); keypoints come back in the original images' pixels (OpenCV
convention).

* ``mast3r``: reciprocal matches of the local descriptors by Fast Reciprocal Matching (``frm.*``;
  ``frm.brute_force=true`` runs the all-pixels baseline instead), started from a grid on image 0; scores =
  the smaller descriptor confidence of the two ends; each match also carries MASt3R's 3D point of both ends
  (view-1 frame, metric for the metric checkpoint), used by the ``*_pts3d`` solvers and the ``pointmap``
  lifting. ``coarse_to_fine.enabled`` turns on windowed full-resolution matching for images larger than
  the network size (``methods.mast3r.coarse_to_fine``).
  MASt3R's own localization recipe (``visloc.py``; the ``mast3r_visloc`` preset) differs in three ways,
  each a key: ``preprocess: visloc`` (centre crop to the nearest training aspect ratio + antialiased
  resize, ``methods.mast3r.visloc``), ``query_first: true`` (the query is the network's view 1; FRM still
  starts from the grid on the map image; the 3D points, then in the query's frame, are not returned) and
  ``pixel_tol`` > 0 (absolute localization: FRM starts from the map observations of image 0 instead of the
  grid, one round, kept when the round trip ends within ``pixel_tol`` pixels; such a match's ``kpts0`` is
  the map observation it started from, whose 3D point visloc.py uses; ``seeded_conf_threshold`` is its
  ``--confidence_threshold``).
* ``dust3r``: reciprocal nearest neighbours in 3D between the two point maps (pixels with ``conf`` of
  at least ``conf_threshold``), scores = the smaller confidence.

``weights``: a checkpoint path or a released name (resolved through ``methods.weights``: $LOCBENCH_WEIGHTS,
the cache folder, or a download with ``--allow-download``); ``max_matches`` keeps the best-scoring ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchmark.config_types import Key
from benchmark.errors import UserError
from benchmark.registry import METHODS
from benchmark.types import Matches

from ..checkpoints import WeightFile
from ..learned import TorchMatcher, strongest, to_matches
from . import coarse_to_fine as c2f
from .releases import DISPLAY, DUST3R_DEFAULT, MAST3R_DEFAULT, resolve_weights

# the network modules (torch) are imported where they are used: listing the methods, or running
# another method, must not pay for importing torch

AUTOCAST = {None: None, "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}
PREPROCESS = {"load_images": "images.preprocess_image", "visloc": "visloc.prepare_visloc_image"}  # module.function

FAMILY_CONF = {  # what both networks' configs hold
    "weights": None,  # path or released name; null: the released checkpoint of this family
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "size": 512,  # long side of the network input (224 for the 224 checkpoints)
    "autocast": None,  # bfloat16 (CUDA or CPU) | float16 (CUDA); null runs float32
    "batch_size": 1,  # pairs per forward pass (consecutive pairs of equal image sizes)
    "max_matches": None,  # keep this many best-scoring matches; null keeps all
    "preprocess": "load_images",  # load_images (dust3r's loader) | visloc (MASt3R's visloc.py datasets)
}


@METHODS.register("dust3r")
class Dust3rMatcher(TorchMatcher):
    """DUSt3R: reciprocal nearest neighbours between the two predicted 3D point maps. Also the pipeline MASt3R
    extends: weights, pre-processing, the batched forward pass, network pixels back to the images'."""

    family: ClassVar[str] = "dust3r"
    default_weights: ClassVar[str] = DUST3R_DEFAULT
    predicts_geometry = True
    default_conf: ClassVar[dict] = {
        **FAMILY_CONF,
        "conf_threshold": 3.0,  # minimum point confidence at both ends (1 + exp(x) >= 1); DUSt3R demo: 3
        "border": 0,
    }
    conf_types: ClassVar[dict] = {
        "weights": str | None,
        "size": Key(int, min=16),
        "autocast": Key(str | None, choices=tuple(k for k in AUTOCAST if k)),
        "max_matches": Key(int | None, min=1),
        "border": Key(int, min=0),
        "preprocess": Key(str, choices=tuple(PREPROCESS)),
    }

    def check(self) -> None:
        super().check()
        from .visloc import TRAINING_RESOLUTIONS

        if AUTOCAST[self.conf["autocast"]] == "float16" and self.device.type == "cpu":
            raise UserError(
                "method.autocast=float16 runs on CUDA only; on the CPU use method.autocast=bfloat16 "
                "(or null for float32)."
            )
        if self.conf["preprocess"] == "visloc" and self.conf["size"] not in TRAINING_RESOLUTIONS:
            raise UserError(
                f"method.preprocess=visloc needs method.size 224 or 512 (the training resolutions), "
                f"not {self.conf['size']!r}."
            )
        self.weights_path()

    def weights_path(self) -> Path:
        return resolve_weights(self.conf["weights"] or self.default_weights)

    def weight_files(self) -> list[WeightFile]:
        # the checkpoint names its own architecture: checked by what load_model checks, not a state dict
        return [WeightFile(self.weights_path(), DISPLAY[self.family], network=None, check=self._check_checkpoint)]

    def _check_checkpoint(self, path: Path) -> None:
        from .checkpoint import check_checkpoint

        check_checkpoint(path, expect=self.family)

    def _load(self) -> None:
        import torch

        from .checkpoint import load_model

        self.model = load_model(self.weights_path(), device=self.device, expect=self.family)
        name = AUTOCAST[self.conf["autocast"]]
        self._autocast = getattr(torch, name) if name else None

    def pairs_per_batch(self) -> int:
        return self.conf["batch_size"]  # counts pairs here

    # -- one pair -----------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> tuple[dict, object]:
        """One image as ``method.preprocess`` prepares it: (view dict, transform to the original)."""
        import importlib

        module, function = PREPROCESS[self.conf["preprocess"]].split(".")
        recipe = getattr(importlib.import_module(f".{module}", __package__), function)
        img, true_shape, transform = recipe(image, self.conf["size"])
        return {"img": img, "true_shape": true_shape}, transform

    @property
    def query_first(self) -> bool:
        """True when image 1 (the query) is the network's view 1."""
        return False

    def _dense(self, out0: dict, out1: dict, transform0, seeds):
        """Network-pixel matches from the outputs for image 0 and image 1 (``seeds``: map observations of
        image 0 to start from, or None)."""
        from .dense import pointmap_matches

        return pointmap_matches(out0, out1, conf_threshold=self.conf["conf_threshold"], border=self.conf["border"])

    def _best(self, matches: Matches) -> Matches:
        """The ``max_matches`` best-scored, in their order."""
        if self.conf["max_matches"] is None or len(matches) <= self.conf["max_matches"]:
            return matches
        return matches.subset(np.sort(strongest(matches.scores, self.conf["max_matches"])))

    def _to_pixels(self, dense, t0, t1, timings: dict, seeds=None) -> Matches:
        if seeds is None:
            kpts0 = t0.to_original(dense.xy1)
        else:  # a seeded match starts at a map observation: report that observation
            from .visloc import observation_starts

            starts, owners = observation_starts(t0, seeds)
            w = t0.network_size[0]
            kpts0 = np.asarray(seeds, np.float64).reshape(-1, 2)[
                owners[np.searchsorted(starts[:, 1] * w + starts[:, 0], dense.xy1[:, 1] * w + dense.xy1[:, 0])]
            ]
        return self._best(
            to_matches(
                kpts0,
                t1.to_original(dense.xy2),
                dense.scores,
                pts3d0=dense.pts3d1,
                pts3d1=dense.pts3d2,
                timings=timings,
            )
        )

    def _match_pairs(self, pairs: list) -> list[Matches]:
        return [m for m, _ in self._match_pairs_with_outputs(pairs)]

    def _match_pairs_with_outputs(self, pairs: list, seeds: list | None = None) -> list[tuple[Matches, tuple]]:
        """Matches of each pair, with what the network predicted for each image: (out0, out1, transform0,
        transform1). ``seeds``: per pair, map observations of image 0 to start from (or None)."""
        if not pairs:
            return []
        from .inference import infer_pairs

        seeds = seeds or [None] * len(pairs)
        tic = time.perf_counter()
        views = [(self.prepare(a), self.prepare(b)) for a, b in pairs]
        flip = self.query_first
        outputs = infer_pairs(
            self.model,
            [(v1, v0) if flip else (v0, v1) for (v0, _), (v1, _) in views],
            self.conf["batch_size"],
            self.device,
            self._autocast,
        )
        t_forward = (time.perf_counter() - tic) / len(pairs)
        out = []
        for ((_, t0), (_, t1)), (res1, res2), seed in zip(views, outputs, seeds):
            out0, out1 = (res2, res1) if flip else (res1, res2)
            tic = time.perf_counter()
            dense = self._dense(out0, out1, t0, seed)
            timings = {"forward": t_forward, "reciprocal": time.perf_counter() - tic}
            out.append((self._to_pixels(dense, t0, t1, timings, seed), (out0, out1, t0, t1)))
        return out


@METHODS.register("mast3r")
class Mast3rMatcher(Dust3rMatcher):
    """MASt3R descriptors matched by Fast Reciprocal Matching, with predicted metric 3D points (opt. coarse-to-fine)."""

    family = "mast3r"
    default_weights = MAST3R_DEFAULT
    default_conf = {
        **FAMILY_CONF,
        "frm": {
            "subsample": 8,  # grid step of the start points in image 0 (official: 8)
            "max_iter": 10,  # official cap
            "early_stop": True,  # stop once no point moves (official)
            "brute_force": False,  # all-pixels mutual nearest neighbours instead (the ablation's baseline)
        },
        "border": 3,  # drop matches this close to the network image's edge (official visloc: 3)
        "desc_conf_threshold": 0.0,  # minimum descriptor confidence at both ends
        "query_first": False,  # true: the query (image 1) is the network's view 1 (visloc.py); no 3D points then
        "pixel_tol": 0,  # > 0: start FRM from the map observations of image 0 where there are any (visloc.py)
        "seeded_conf_threshold": 1.001,  # minimum descriptor confidence of those matches (visloc.py's default)
        "coarse_to_fine": {
            "enabled": False,  # true: windowed full-resolution matching when an image exceeds the network size
            "window": 512,  # long side of the windows, pixels of the full image
            "overlap": 0.5,  # minimum overlap of neighbouring windows (fraction of their size)
            "min_matches": 10,  # a window pair must cover at least this many new coarse matches
            "max_pairs": 16,  # at most this many window pairs per image pair
        },
    }
    conf_types = {
        "frm.subsample": Key(int, min=1),
        "frm.max_iter": Key(int, min=1),
        "pixel_tol": Key(float, min=0),
        "seeded_conf_threshold": Key(float, min=0),
        "coarse_to_fine.window": Key(int, min=16),
        "coarse_to_fine.overlap": Key(float, min=0, below=1),
        "coarse_to_fine.min_matches": Key(int, min=1),
        "coarse_to_fine.max_pairs": Key(int, min=1),
    }
    # ``benchmark ablate`` adds this run to any sweep of method.frm.*: the brute-force reference
    ablation_baselines = {"method.frm.": ["method.frm.brute_force=true"]}

    @property
    def query_first(self) -> bool:
        return bool(self.conf["query_first"])

    @property
    def predicts_geometry(self) -> bool:
        """The 3D points are returned only when image 0 is view 1 (they are in view 1's frame)."""
        return not self.query_first

    def _dense(self, out0, out1, transform0, seeds):
        from .dense import descriptor_matches, seeded_descriptor_matches
        from .visloc import observation_starts

        points = not self.query_first
        if seeds is not None:
            starts, _ = observation_starts(transform0, seeds)
            return seeded_descriptor_matches(
                out0,
                out1,
                starts,
                pixel_tol=self.conf["pixel_tol"],
                conf_threshold=self.conf["seeded_conf_threshold"],
                points=points,
            )
        frm = self.conf["frm"]
        return descriptor_matches(
            out0,
            out1,
            subsample=frm["subsample"],
            max_iter=frm["max_iter"],
            early_stop=frm["early_stop"],
            brute_force=frm["brute_force"],
            border=self.conf["border"],
            conf_threshold=self.conf["desc_conf_threshold"],
            points=points,
        )

    # -- starting from the map (absolute localization) ----------------------------------------
    def bound_to_map(self, points2d0) -> Mast3rMatcher | MapSeeded:
        if self.conf["pixel_tol"] <= 0 or points2d0 is None or len(points2d0) == 0:
            return self
        return MapSeeded(self, np.asarray(points2d0, np.float64).reshape(-1, 2))

    def match_from_map(self, image0: np.ndarray, image1: np.ndarray, points2d0: np.ndarray) -> Matches:
        """One pair, FRM started from the map observations ``points2d0`` (OpenCV pixels of image 0)."""
        return self.match_batch([(image0, image1)], lambda pairs: [self._one(*pairs[0], points2d0)])[0]

    def _one(self, image0, image1, seeds=None) -> Matches:
        ctf = self.conf["coarse_to_fine"]
        if bool(ctf["enabled"]) and max(*image0.shape[:2], *image1.shape[:2]) > int(ctf["window"]):
            return self._coarse_to_fine(image0, image1, seeds)
        return self._match_pairs_with_outputs([(image0, image1)], [seeds])[0][0]

    def _match_pairs(self, pairs: list) -> list[Matches]:
        """Pairs larger than a window go coarse-to-fine one by one (when enabled); the others in batches."""
        ctf = self.conf["coarse_to_fine"]
        large = [ctf["enabled"] and max(*a.shape[:2], *b.shape[:2]) > ctf["window"] for a, b in pairs]
        single = iter(super()._match_pairs([p for p, big in zip(pairs, large) if not big]))
        return [self._coarse_to_fine(*p) if big else next(single) for p, big in zip(pairs, large)]

    def _coarse_to_fine(self, image0: np.ndarray, image1: np.ndarray, seeds=None) -> Matches:
        """Coarse grid matching (also with seeds, as visloc.py), then the window pairs at full resolution
        (started from the seeds inside each window of image 0, when given)."""
        ctf = self.conf["coarse_to_fine"]
        tic = time.perf_counter()
        coarse, (out0, _, t0, _) = self._match_pairs_with_outputs([(image0, image1)])[0]
        coarse_depth = out0["pts3d"][0, ..., 2].float().cpu().numpy() if self.predicts_geometry else None
        windows0 = c2f.window_grid(image0.shape[1], image0.shape[0], ctf["window"], ctf["overlap"])
        windows1 = c2f.window_grid(image1.shape[1], image1.shape[0], ctf["window"], ctf["overlap"])
        chosen = c2f.select_window_pairs(
            coarse.kpts0, coarse.kpts1, windows0, windows1, ctf["min_matches"], ctf["max_pairs"]
        )
        timings = {"coarse": time.perf_counter() - tic}
        if not chosen:
            coarse.timings.update(timings)
            return coarse
        tic = time.perf_counter()
        crops = [(windows0[a].crop(image0), windows1[b].crop(image1)) for a, b, _ in chosen]
        window_seeds = None
        if seeds is not None:  # each window of image 0 starts from the observations inside it
            window_seeds = [seeds[windows0[a].contains(seeds)] - [windows0[a].x0, windows0[a].y0] for a, _, _ in chosen]
        parts = []  # every window has one size: the window pairs share batched forward passes
        for (a, b, _), (fine, _) in zip(chosen, self._match_pairs_with_outputs(crops, window_seeds)):
            w0, w1 = windows0[a], windows1[b]
            kpts0 = fine.kpts0 + np.array([w0.x0, w0.y0], float)
            kpts1 = fine.kpts1 + np.array([w1.x0, w1.y0], float)
            if coarse_depth is None:
                parts.append(Matches(kpts0, kpts1, fine.scores))
                continue
            # the window's own point map has its own scale: bring it to the coarse prediction's
            scale = c2f.rescale_to(c2f.sample_map(coarse_depth, t0.to_network(kpts0)), fine.pts3d0[:, 2])
            parts.append(Matches(kpts0, kpts1, fine.scores, fine.pts3d0 * scale, fine.pts3d1 * scale))
        keys = ("kpts0", "kpts1", "scores") + (("pts3d0", "pts3d1") if coarse_depth is not None else ())
        joined = {k: np.concatenate([getattr(m, k) for m in parts]) for k in keys}
        keep = c2f.deduplicate(joined["kpts0"], joined["kpts1"], joined["scores"])
        timings["fine"] = time.perf_counter() - tic
        merged = Matches(**{k: v[keep] for k, v in joined.items()}, timings=timings)
        return self._best(merged)


class MapSeeded:
    """A matcher bound to the map observations of one reference image: ``match`` starts from them."""

    def __init__(self, method: Mast3rMatcher, points2d0: np.ndarray):
        self.method, self.points2d0 = method, points2d0

    def match(self, image0: np.ndarray, image1: np.ndarray) -> Matches:
        return self.method.match_from_map(image0, image1, self.points2d0)

    def __getattr__(self, name):
        return getattr(self.method, name)
