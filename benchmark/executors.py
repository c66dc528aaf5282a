"""Executors run shard jobs: in this process (default) or on a Ray cluster (``--executor ray``)."""
from __future__ import annotations

from typing import Callable

from tqdm import tqdm

from .errors import UserError


class LocalExecutor:
    """Shards one after another in this process."""

    def __init__(self, conf: dict):
        self.conf = conf

    def map(self, fn: Callable, jobs: list[tuple], progress: bool = True, weights: list[int] | None = None) -> list:
        weights = weights or [1] * len(jobs)
        out = []
        with tqdm(total=sum(weights), unit="sample", disable=not progress or not jobs, leave=False,
                  desc="matching+solving") as bar:
            for job, w in zip(jobs, weights):
                out.append(fn(*job))
                bar.update(w)
        return out


def make_executor(conf: dict):
    name = conf["name"]
    if name == "local":
        return LocalExecutor(conf)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(conf)
    raise UserError(f"executor.name must be 'local' or 'ray', not '{name}'.")
