"""Executors run shard jobs: in this process (default) or on a Ray cluster (``--executor ray``).

An executor has one method, ``map(fn, jobs, progress, weights)``: ``fn(*job)`` for every job, the
results in the order of ``jobs``; ``weights`` (samples per job) drive the progress bar. Jobs write
their own files, so executors only schedule and collect small return values.
"""

from __future__ import annotations

from typing import Callable

from tqdm import tqdm

from .errors import UserError


class LocalExecutor:
    """Shards one after another in this process."""

    def __init__(self, conf: dict | None = None):
        self.conf = conf or {}

    def map(self, fn: Callable, jobs: list[tuple], progress: bool = True, weights: list[int] | None = None) -> list:
        weights = weights or [1] * len(jobs)
        out = []
        with tqdm(
            total=sum(weights), unit="sample", disable=not progress or not jobs, leave=False, desc="matching+solving"
        ) as bar:
            for job, w in zip(jobs, weights):
                out.append(fn(*job))
                bar.update(w)
        return out


def make_executor(conf: dict, torch_threads: int = 1):
    """The executor named by ``executor.name``; Ray's is checked here (installed?), connected lazily."""
    name = conf["name"]
    if name == "local":
        return LocalExecutor(conf)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(conf, torch_threads)
    raise UserError(f"executor.name must be 'local' or 'ray', not '{name}'.")
