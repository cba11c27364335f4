"""The one seam between the fleet operations and where their work runs: in this process, or on Ray.

An operation splits its work into tasks (one camera file, one episode, one dataset), each a call
of a module-level function on a picklable job, and hands them to a `Runner`. `InProcess` calls
them one after the other; `RayRunner` submits them as Ray tasks of one CPU each, keeps at most
`workers` in flight, and returns the results in the order of the jobs, so that what is written
from them does not depend on which task finished first. Ray is imported only here, and only when
asked for: without `ray=` nothing imports it.

Ray tasks read their inputs and write their outputs by path: on a cluster of several machines the
datasets must be on a filesystem every node mounts at the same path.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError

Progress = Callable[["TaskProgress"], None]
"""Called after each finished task."""


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """Where a batch of tasks stands."""

    stage: str
    """What the tasks do (`copy video`, `encode episodes`, ...)."""
    done: int
    total: int
    units_done: float = 0.0
    """Work done so far in the batch's unit (frames, bytes)."""
    units_total: float = 0.0
    unit: str = ""


@dataclass(slots=True)
class TaskLog:
    """Where the tasks of an operation ran and how long they took (for reports and the overhead benchmark)."""

    nodes: dict[str, int] = field(default_factory=dict)
    """Node (Ray node id, or `local`) -> tasks it ran."""
    task_s: float = 0.0
    """Time spent inside the tasks' functions, summed."""
    wall_s: float = 0.0
    """Time from submitting the first task of each batch to receiving its last result, summed."""
    tasks: int = 0

    def add(self, node: str, seconds: float) -> None:
        self.nodes[node] = self.nodes.get(node, 0) + 1
        self.task_s += seconds
        self.tasks += 1


def _timed(fn: Callable[[Any], Any], job: Any) -> tuple[Any, str, float]:
    """Run one task; returns its result, the node it ran on and the seconds it took."""
    t0 = time.perf_counter()
    result = fn(job)
    seconds = time.perf_counter() - t0
    ray = sys.modules.get("ray")  # in a Ray worker it is imported; in process it must stay unimported
    node = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else "local"
    return result, node, seconds


class Runner:
    """Runs batches of tasks (see the module docstring)."""

    name = "in-process"

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress
        self.log = TaskLog()

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, stage: str,
            units: Sequence[float] | None = None, unit: str = "") -> list[Any]:
        """`fn(job)` for every job; results in the jobs' order. `units`: the work of each job, for progress."""
        raise NotImplementedError

    def _report(self, stage: str, done: int, total: int, units: Sequence[float] | None, units_done: float,
                unit: str) -> None:
        if self.progress is not None:
            self.progress(TaskProgress(stage, done, total, units_done, float(sum(units)) if units else 0.0, unit))


class InProcess(Runner):
    """Every task in this process, one after the other."""

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, stage: str,
            units: Sequence[float] | None = None, unit: str = "") -> list[Any]:
        t0 = time.perf_counter()
        results, units_done = [], 0.0
        self._report(stage, 0, len(jobs), units, 0.0, unit)
        for i, job in enumerate(jobs):
            result, node, seconds = _timed(fn, job)
            self.log.add(node, seconds)
            results.append(result)
            units_done += units[i] if units else 0.0
            self._report(stage, i + 1, len(jobs), units, units_done, unit)
        self.log.wall_s += time.perf_counter() - t0
        return results


class RayRunner(Runner):
    """Every task a Ray task of one CPU; at most `workers` in flight (default: the cluster's CPUs)."""

    def __init__(self, workers: int | None, progress: Progress | None = None) -> None:
        super().__init__(progress)
        import ray

        self._ray = ray
        # SPREAD: Ray otherwise queues short tasks on a worker it already leased, so a fast batch can run on
        # one node while the others idle; these tasks are CPU-bound and read their inputs by path.
        self._remote = ray.remote(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")(_timed)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cpus)
        self.name = f"ray ({len(ray.nodes())} node(s), {cpus} CPU(s), {self.workers} task(s) at once)"

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], *, stage: str,
            units: Sequence[float] | None = None, unit: str = "") -> list[Any]:
        ray = self._ray
        t0 = time.perf_counter()
        fn_ref = ray.put(fn)
        results: list[Any] = [None] * len(jobs)
        pending: dict[Any, int] = {}
        next_job, done, units_done = 0, 0, 0.0
        self._report(stage, 0, len(jobs), units, 0.0, unit)
        try:
            while done < len(jobs):
                while next_job < len(jobs) and len(pending) < self.workers:
                    pending[self._remote.remote(fn_ref, jobs[next_job])] = next_job
                    next_job += 1
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        result, node, seconds = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        # The task's own exception (a DatasetError says what is wrong with which file).
                        raise _cause(e) from None
                    self.log.add(node, seconds)
                    results[i] = result
                    done += 1
                    units_done += units[i] if units else 0.0
                    self._report(stage, done, len(jobs), units, units_done, unit)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        self.log.wall_s += time.perf_counter() - t0
        return results


def _cause(error: Exception) -> BaseException:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


RAY_HINT = "install it with `pip install 'streamrec[ray]'`"


def check_ray_address(ray: str | None) -> None:
    if ray is not None and (not isinstance(ray, str) or not ray.strip()):
        raise ConfigError(f"ray = {ray!r}: must be 'local' (start Ray on this machine), 'auto' (the cluster this "
                          "machine belongs to) or a cluster address such as 'ray://head:10001' or '10.0.0.5:6379'")


def check_workers(workers: int | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers = {workers!r}: must be None (every CPU of the Ray cluster) or an integer >= 1")


@contextmanager
def runner(ray: str | None, workers: int | None = None, progress: Progress | None = None) -> Iterator[Runner]:
    """A runner for the `ray` argument of the fleet operations.

    Args:
        ray: None: in this process, Ray not imported. `local`: start Ray on this machine (with
            `workers` CPUs when given) and stop it at the end. `auto` or an address: join that
            cluster and leave it at the end. When this process is already connected to Ray
            (`ray.init` was called), that connection is used and left open.
        workers: Ray tasks in flight at once; default: every CPU of the cluster.
    """
    check_ray_address(ray)
    check_workers(workers)
    if ray is None:
        yield InProcess(progress)
        return
    try:
        import ray as ray_module
    except ImportError as e:
        raise ConfigError(f"ray = {ray!r}: Ray is not installed; {RAY_HINT}") from e
    started = not ray_module.is_initialized()
    if started:
        # Workers' output would mix with the progress bars; a task's error comes back with its result.
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if ray == "local":
            kwargs.update(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False)
        try:
            ray_module.init(address=ray, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ConfigError(f"ray = {ray!r}: cannot start or join Ray on {platform.node()}: {e}") from e
    try:
        yield RayRunner(workers, progress)
    finally:
        if started:
            ray_module.shutdown()
