"""The ``mast3r`` and ``dust3r`` methods: our networks (``methods.mast3r``) behind the matcher interface.

Image 0 is the network's view 1 (the reference, whose camera frame the 3D points are given in), image 1
its view 2. Both are pre-processed exactly as the official ``load_images`` (long side ``size``, crop to
multiples of 16); keypoints come back in the original images' pixels (OpenCV convention).

* ``mast3r``: reciprocal matches of the local descriptors by Fast Reciprocal Matching (``frm.*``;
  ``frm.brute_force=true`` runs the all-pixels baseline instead), scores = the smaller descriptor
  confidence of the two ends; each match also carries MASt3R's 3D point of both ends (view-1 frame,
  metric for the metric checkpoint), used by the ``*_pts3d`` solvers and the ``pointmap`` lifting.
  ``coarse_to_fine.enabled`` turns on windowed full-resolution matching for images larger than the
  network size (``methods.mast3r.coarse_to_fine``).
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

from benchmark.errors import UserError
from benchmark.registry import METHODS
from benchmark.types import Matches

from ..base import Matcher
from ..learned import check_device, files_fingerprint, torch_device
from . import coarse_to_fine as c2f
from .checkpoint import DUST3R_DEFAULT, MAST3R_DEFAULT, load_model, resolve_weights
from .dense import descriptor_matches, pointmap_matches
from .images import preprocess_image
from .inference import infer_pairs

AUTOCAST = {None: None, "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


class _Dust3rFamily(Matcher):
    """What the two networks share: weights, device, pre-processing, the forward pass, keypoints to pixels."""

    family: ClassVar[str] = "?"
    default_weights: ClassVar[str] = "?"
    predicts_geometry = True
    default_conf: ClassVar[dict] = {
        "weights": None,  # path or released name; null: the released checkpoint of this family
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "size": 512,  # long side of the network input (224 for the 224 checkpoints)
        "autocast": None,  # CUDA only: bfloat16 | float16; null runs float32
        "batch_size": 1,  # pairs per forward pass (consecutive pairs of equal image sizes)
        "max_matches": None,  # keep this many best-scoring matches; null keeps all
    }

    def check(self) -> None:
        check_device(self.conf["device"])
        if self.conf["autocast"] not in AUTOCAST:
            raise UserError(f"method.autocast must be null, bfloat16 or float16, not {self.conf['autocast']!r}.")
        for key, least in (("size", 16), ("batch_size", 1)):
            value = self.conf[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UserError(f"method.{key} must be an integer of at least {least}, not {value!r}.")
        self.weights_path()

    def weights_path(self) -> Path:
        return resolve_weights(self.conf["weights"] or self.default_weights)

    def weight_files(self) -> list[Path]:
        return [self.weights_path()]

    def weights_fingerprint(self) -> str:
        try:
            return files_fingerprint([self.weights_path()])
        except UserError:  # check() says so before any run
            return "missing"

    @property
    def device(self):
        return torch_device(self.conf["device"])

    def _load(self) -> None:
        import torch

        self.model = load_model(self.weights_path(), device=self.device, expect=self.family)
        name = AUTOCAST[self.conf["autocast"]]
        self._autocast = getattr(torch, name) if name else None

    # -- one pair -----------------------------------------------------------------------------
    def _views(self, image0: np.ndarray, image1: np.ndarray):
        """Both images as the official loader prepares them: (view dict, ImageTransform) each."""
        out = []
        for image in (image0, image1):
            img, true_shape, transform = preprocess_image(image, int(self.conf["size"]))
            out.append(({"img": img, "true_shape": true_shape}, transform))
        return out

    def pairs_per_batch(self) -> int:
        return int(self.conf["batch_size"])

    def _forward(self, pairs_of_views: list) -> list:
        return infer_pairs(self.model, pairs_of_views, int(self.conf["batch_size"]), self.device, self._autocast)

    def _dense(self, res1: dict, res2: dict):
        raise NotImplementedError

    def _best(self, matches: Matches) -> Matches:
        k = self.conf["max_matches"]
        if k is None or len(matches) <= int(k):
            return matches
        return matches.subset(np.sort(np.argsort(-matches.scores, kind="stable")[:int(k)]))

    def _to_matches(self, dense, t0, t1, timings: dict) -> Matches:
        return self._best(Matches(t0.to_original(dense.xy1), t1.to_original(dense.xy2), dense.scores, dense.pts3d1,
                                  dense.pts3d2, timings=timings))

    def _match_pairs(self, pairs: list) -> list[Matches]:
        return [m for m, _ in self._match_pairs_with_outputs(pairs)]

    def _match_pairs_with_outputs(self, pairs: list) -> list[tuple[Matches, tuple]]:
        """Matches of each pair, with what the network predicted: (res1, res2, transform0, transform1)."""
        if not pairs:
            return []
        tic = time.perf_counter()
        views = [self._views(a, b) for a, b in pairs]
        outputs = self._forward([(v0, v1) for (v0, _), (v1, _) in views])
        t_forward = (time.perf_counter() - tic) / len(pairs)
        out = []
        for ((_, t0), (_, t1)), (res1, res2) in zip(views, outputs):
            tic = time.perf_counter()
            dense = self._dense(res1, res2)
            timings = {"forward": t_forward, "reciprocal": time.perf_counter() - tic}
            out.append((self._to_matches(dense, t0, t1, timings), (res1, res2, t0, t1)))
        return out


@METHODS.register("mast3r")
class Mast3rMatcher(_Dust3rFamily):
    """MASt3R descriptors matched by Fast Reciprocal Matching, with predicted metric 3D points (opt. coarse-to-fine)."""

    family = "mast3r"
    default_weights = MAST3R_DEFAULT
    default_conf = {
        **_Dust3rFamily.default_conf,
        "frm": {
            "subsample": 8,  # grid step of the start points in image 0 (official: 8)
            "max_iter": 10,  # official cap
            "early_stop": True,  # stop once no point moves (official)
            "brute_force": False,  # all-pixels mutual nearest neighbours instead (the ablation's baseline)
        },
        "border": 3,  # drop matches this close to the network image's edge (official visloc: 3)
        "desc_conf_threshold": 0.0,  # minimum descriptor confidence at both ends
        "coarse_to_fine": {
            "enabled": False,  # true: windowed full-resolution matching when an image exceeds the network size
            "window": 512,  # long side of the windows, pixels of the full image
            "overlap": 0.5,  # minimum overlap of neighbouring windows (fraction of their size)
            "min_matches": 10,  # a window pair must cover at least this many new coarse matches
            "max_pairs": 16,  # at most this many window pairs per image pair
        },
    }
    # ``benchmark ablate`` adds this run to any sweep of method.frm.*: the brute-force reference
    ablation_baselines = {"method.frm.": ["method.frm.brute_force=true"]}

    def check(self) -> None:
        super().check()
        frm = self.conf["frm"]
        for key in ("subsample", "max_iter"):
            if isinstance(frm[key], bool) or not isinstance(frm[key], int) or frm[key] < 1:
                raise UserError(f"method.frm.{key} must be a positive integer, not {frm[key]!r}.")
        ctf = self.conf["coarse_to_fine"]
        if not (isinstance(ctf["overlap"], (int, float)) and 0 <= ctf["overlap"] < 1):
            raise UserError(f"method.coarse_to_fine.overlap must be in [0, 1), not {ctf['overlap']!r}.")
        if not isinstance(ctf["window"], int) or ctf["window"] < 16:
            raise UserError(f"method.coarse_to_fine.window must be an integer of at least 16 px, not "
                            f"{ctf['window']!r}.")

    def _dense(self, res1, res2):
        frm = self.conf["frm"]
        return descriptor_matches(res1, res2, subsample=int(frm["subsample"]), max_iter=int(frm["max_iter"]),
                                  early_stop=bool(frm["early_stop"]), brute_force=bool(frm["brute_force"]),
                                  border=int(self.conf["border"]),
                                  conf_threshold=float(self.conf["desc_conf_threshold"]))

    def _match_pairs(self, pairs: list) -> list[Matches]:
        """Pairs larger than a window go coarse-to-fine one by one (when enabled); the others in batches."""
        ctf = self.conf["coarse_to_fine"]
        large = [bool(ctf["enabled"]) and max(*a.shape[:2], *b.shape[:2]) > int(ctf["window"]) for a, b in pairs]
        single = iter(super()._match_pairs([p for p, big in zip(pairs, large) if not big]))
        return [self._coarse_to_fine(*p) if big else next(single) for p, big in zip(pairs, large)]

    def _coarse_to_fine(self, image0: np.ndarray, image1: np.ndarray) -> Matches:
        ctf = self.conf["coarse_to_fine"]
        tic = time.perf_counter()
        coarse, (res1, _, t0, _) = self._match_pairs_with_outputs([(image0, image1)])[0]
        coarse_depth = res1["pts3d"][0, ..., 2].float().cpu().numpy()
        windows0 = c2f.window_grid(image0.shape[1], image0.shape[0], int(ctf["window"]), float(ctf["overlap"]))
        windows1 = c2f.window_grid(image1.shape[1], image1.shape[0], int(ctf["window"]), float(ctf["overlap"]))
        chosen = c2f.select_window_pairs(coarse.kpts0, coarse.kpts1, windows0, windows1, int(ctf["min_matches"]),
                                         int(ctf["max_pairs"]))
        timings = {"coarse": time.perf_counter() - tic}
        if not chosen:
            coarse.timings.update(timings)
            return coarse
        tic = time.perf_counter()
        crops = [(windows0[a].crop(image0), windows1[b].crop(image1)) for a, b, _ in chosen]
        parts = []  # every window has one size: the window pairs share batched forward passes
        for (a, b, _), fine in zip(chosen, super()._match_pairs(crops)):
            w0, w1 = windows0[a], windows1[b]
            kpts0 = fine.kpts0 + np.array([w0.x0, w0.y0], float)
            kpts1 = fine.kpts1 + np.array([w1.x0, w1.y0], float)
            # the window's own point map has its own scale: bring it to the coarse prediction's
            scale = c2f.rescale_to(c2f.sample_map(coarse_depth, t0.to_network(kpts0)), fine.pts3d0[:, 2])
            parts.append(Matches(kpts0, kpts1, fine.scores, fine.pts3d0 * scale, fine.pts3d1 * scale))
        joined = {k: np.concatenate([getattr(m, k) for m in parts]) for k in ("kpts0", "kpts1", "scores", "pts3d0",
                                                                               "pts3d1")}
        keep = c2f.deduplicate(joined["kpts0"], joined["kpts1"], joined["scores"])
        timings["fine"] = time.perf_counter() - tic
        merged = Matches(**{k: v[keep] for k, v in joined.items()}, timings=timings)
        return self._best(merged)


@METHODS.register("dust3r")
class Dust3rMatcher(_Dust3rFamily):
    """DUSt3R: reciprocal nearest neighbours between the two predicted 3D point maps."""

    family = "dust3r"
    default_weights = DUST3R_DEFAULT
    default_conf = {
        **_Dust3rFamily.default_conf,
        "conf_threshold": 3.0,  # minimum point confidence at both ends (1 + exp(x) >= 1); DUSt3R demo: 3
        "border": 0,
    }

    def _dense(self, res1, res2):
        return pointmap_matches(res1, res2, conf_threshold=float(self.conf["conf_threshold"]),
                                border=int(self.conf["border"]))
