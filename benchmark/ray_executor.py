"""Shards as Ray tasks, on a local cluster started here or on an existing one.

``executor.address``: null starts a private local cluster with ``executor.num_cpus`` CPUs (stopped
at the end of the run); ``auto`` joins the cluster started on this machine with ``ray start``;
``HOST:PORT`` joins a cluster's head node; ``ray://HOST:PORT`` connects through Ray Client.

Every task writes its own shard files under the run's output and cache folders, so the workers
and this process must see one filesystem (a shared disk for multi-machine clusters). Workers run
in this process's working directory with the project on ``PYTHONPATH``.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
from typing import Callable

from tqdm import tqdm

from .config import PROJECT_ROOT
from .environment import PROJECT_ENV, require_package, set_torch_threads
from .errors import SampleError, UserError

log = logging.getLogger("locbench.ray")

# Before Ray starts: no usage reporting; no token auth (Ray 2.60's default mode makes every process that
# joins a cluster need the same ~/.ray/auth_token).
ENV_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# The project's own variables (methods.weights), passed to every worker.
# Tasks return a few numbers and take a config dict: a small object store is plenty.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
# Shards submitted per available task slot: enough to keep workers busy, few enough that a failure
# stops the run before much more is queued.
IN_FLIGHT_PER_SLOT = 2
# Ray retries an unreachable head for minutes: try a plain TCP connection first.
CONNECT_TIMEOUT_S = 10


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not host or not sep or not port.isdigit():
        raise UserError(f"executor.address must be null, auto, HOST:PORT or ray://HOST:PORT, not '{address}'.")
    return host, int(port)


def _check_reachable(address: str) -> None:
    """A one-sentence error now, rather than Ray's endless retries, when HOST:PORT does not answer."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"Nothing answers at executor.address={address} ({exc.strerror or exc}); start the head "
            f"with `ray start --head --port={port}` there, or check the host name and port."
        ) from None


def _run_task(fn: Callable, job: tuple, cwd: str, torch_threads: int) -> dict:
    """Runs on a worker: the driver's working directory (relative paths in configs mean the same
    thing everywhere), one torch thread per task, then the shard job."""
    if os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)
    set_torch_threads(torch_threads)
    out = fn(*job)
    if isinstance(out, dict):
        out = {**out, "pid": os.getpid(), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return out


class RayExecutor:
    """Shard jobs as Ray tasks; progress advances as shards finish, in any order."""

    def __init__(self, conf: dict, torch_threads: int = 1):
        require_package("ray", "ray", "Ray executor (--executor ray)")
        self.conf = conf  # typed and range-checked by the config (benchmark.config.CORE_TYPES)
        self.torch_threads = torch_threads
        self.cpus_per_task = conf.get("cpus_per_task", 1.0)
        self.gpus_per_task = conf.get("gpus_per_task", 0.0)
        if conf.get("address") not in (None, "", "local", "auto"):
            _check_reachable(str(conf["address"]))  # now, before the run creates any folder

    def _runtime_env(self) -> dict:
        threads = str(self.torch_threads)
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        # where weights are and whether they may be downloaded: workers of a cluster joined with
        # executor.address do not inherit this process's environment
        project = {k: os.environ[k] for k in PROJECT_ENV if k in os.environ}
        # OMP/MKL variables must be set before torch is imported in the worker
        return {
            "env_vars": {
                "PYTHONPATH": path,
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                **project,
                **{k: os.environ.get(k, v) for k, v in ENV_DEFAULTS.items()},
            }
        }

    def connect(self) -> bool:
        """Start or join the cluster; True when this call connected (and so must disconnect)."""
        for key, value in ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        import ray

        if ray.is_initialized():  # a caller (a notebook, a test) already connected: use its cluster
            return False
        address = self.conf.get("address")
        kwargs = {"runtime_env": self._runtime_env(), "logging_level": logging.ERROR, "log_to_driver": False}
        if address in (None, "", "local"):
            num_cpus = self.conf.get("num_cpus")
            kwargs.update(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            )
        else:
            address = str(address)
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
            if address == "auto":
                raise UserError(
                    f"No Ray cluster runs on this machine for executor.address=auto ({first}); start one "
                    f"with `ray start --head`, or set executor.address=null for a private local cluster."
                ) from None
            where = "a local Ray cluster" if kwargs["address"] == "local" else f"the Ray cluster at {address}"
            raise UserError(f"Could not start or join {where} ({first}); see `ray status` on the head node.") from None
        log.info(
            "Ray cluster: %s CPUs, %s GPUs",
            ray.cluster_resources().get("CPU", 0),
            ray.cluster_resources().get("GPU", 0),
        )
        return True

    def map(self, fn: Callable, jobs: list[tuple], progress: bool = True, weights: list[int] | None = None) -> list:
        """``fn(*job)`` for every job on the cluster; results in the order of ``jobs``."""
        if not jobs:
            return []
        import ray

        weights = weights or [1] * len(jobs)
        started = self.connect()
        try:
            return self._map(ray, fn, jobs, progress, weights)
        finally:
            if started:
                ray.shutdown()

    def _map(self, ray, fn, jobs, progress, weights) -> list:
        task = ray.remote(_run_task).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task)
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_task))
        window = IN_FLIGHT_PER_SLOT * slots
        fn_ref = ray.put(fn)  # the shared part of every job (config, classes), sent once
        cwd = os.getcwd()
        out: list = [None] * len(jobs)
        running: dict = {}
        next_job = 0
        with tqdm(
            total=sum(weights), unit="sample", disable=not progress, leave=False, desc="matching+solving (ray)"
        ) as bar:
            while next_job < len(jobs) or running:
                while next_job < len(jobs) and len(running) < window:
                    running[task.remote(fn_ref, jobs[next_job], cwd, self.torch_threads)] = next_job
                    next_job += 1
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    i = running.pop(ref)
                    try:
                        out[i] = ray.get(ref)
                    except Exception as exc:
                        for other in running:
                            ray.cancel(other)
                        raise _as_user_error(exc, jobs[i]) from None
                    bar.update(weights[i])
        return out


def _as_user_error(exc: Exception, job: tuple) -> Exception:
    """A task's failure as the driver should report it: user errors keep their sentence."""
    import ray.exceptions as rex

    cause = getattr(exc, "cause", None) or exc
    shard = next((getattr(a, "name", None) for a in job if hasattr(a, "scene")), "?")
    if isinstance(cause, (UserError, SampleError)):
        return UserError(str(cause))
    if isinstance(exc, (rex.WorkerCrashedError, rex.OutOfMemoryError, rex.NodeDiedError, rex.LocalRayletDiedError)):
        return UserError(
            f"A Ray worker died while processing shard {shard} ({type(exc).__name__}); finished shards "
            f"are kept: run the same command again, with fewer tasks per node if memory ran out "
            f"(raise executor.cpus_per_task)."
        )
    return exc  # a bug: Ray's error carries the worker's traceback
