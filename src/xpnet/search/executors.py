"""Where trials run: in this process, on any ``concurrent.futures`` executor, or on Dask.

No scheduler of xpnet's own: a search hands its trials to the executor it is given and writes
each result down as it comes back.

* ``None``: one trial after the other, in this process.
* any :class:`concurrent.futures.Executor` (a thread pool, a process pool -- see
  :func:`process_pool` --, ``client.get_executor()``, loky, ...).
* a ``distributed.Client``, or the address of a Dask scheduler (``"tcp://host:8786"``): the
  objective is sent to the cluster once (as the result of a task, which Dask recomputes if
  the worker holding it dies) and each trial is a task that depends on it; a trial
  runs on whichever worker takes it, on that worker's backend and device.  ``resources=`` asks
  Dask to run it only where those resources are free (``{"GPU": 1}`` with workers started as
  ``dask worker ADDR --resources GPU=2``).  A worker that dies takes its trial with it: Dask
  runs it again elsewhere (up to ``distributed.scheduler.allowed-failures`` times, default 3)
  and then reports ``KilledWorker``, which is recorded as a failed trial.

Every trial runs :func:`run_trial`, which never raises for a failing objective: an exception,
a missing or non-finite metric become a record with ``status="failed"`` and the error.

Worker environment (:data:`WORKER_ENV`), set by :func:`process_pool` and :func:`local_cluster`
before each worker starts (variables the environment already sets are kept) -- the only
reliable way, since BLAS and the C library read them when the process starts:

* Threads: on a machine with ``k`` cores, ``k`` one-trial workers should each use one BLAS
  thread, or their thread pools fight over the cores: ``OMP_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``XPNET_NUM_THREADS`` = 1.  (Dask's nanny sets
  the first three by itself, ``distributed.nanny.pre-spawn-environ``.)
* Memory: ``MALLOC_MMAP_THRESHOLD_`` = 32 MiB and ``MALLOC_TRIM_THRESHOLD_`` = 64 MiB (glibc).
  A training step allocates its input batch afresh (100 x 784 float32: 313 KB).  In a fresh
  process glibc serves blocks over 128 KB with ``mmap`` and unmaps them when freed, so every
  step page-faults its batch in again; Dask's nanny even pins that threshold by setting
  ``MALLOC_TRIM_THRESHOLD_=65536``.  Measured on the book's network here: about 100,000 page
  faults and twice the CPU time per trial in a worker (0.45-0.57 s) against an interpreter
  whose threshold had grown (0.24 s); with these two settings, the same 0.24 s.  The price:
  a worker keeps up to 64 MiB of freed memory for reuse instead of returning it at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing.context
import numbers
import os
import socket
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["WORKER_ENV", "local_cluster", "process_pool", "run_trial"]

#: Environment of one-trial worker processes (set where the environment does not already).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "XPNET_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20),
}

#: Keys of an objective's returned dict that are not metrics.
RESERVED = ("curves", "backend", "device")

_DASK_HINT = "pip install 'xpnet[search]' (or 'dask[distributed]')"


# --------------------------------------------------------------------------------------------
# One trial (runs wherever the executor puts it)
# --------------------------------------------------------------------------------------------


def worker_name() -> str:
    """The Dask worker's address inside a Dask worker, else ``host:pid``."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return str(get_worker().address)
        except (ImportError, ValueError):
            pass
    return f"{socket.gethostname()}:{os.getpid()}"


def _as_float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{what} is a bool, not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}") from None


def _split_output(out: Any) -> tuple[dict[str, float], dict[str, list[float]], Any, Any]:
    if not isinstance(out, Mapping):
        raise TypeError(f"the objective must return a dict of metrics, got "
                        f"{type(out).__name__}")
    metrics = {str(k): _as_float(v, f"metric {k!r}") for k, v in out.items()
               if k not in RESERVED}
    curves_in = out.get("curves") or {}
    if not isinstance(curves_in, Mapping):
        raise TypeError(f"the objective's 'curves' must be a dict of name -> list of numbers, "
                        f"got {type(curves_in).__name__}")
    curves = {str(k): [_as_float(v, f"curves[{k!r}]") for v in seq]
              for k, seq in curves_in.items()}
    return metrics, curves, out.get("backend"), out.get("device")


def new_record(job: Mapping[str, Any]) -> dict[str, Any]:
    """A trial record for ``job`` with nothing measured yet (status failed until it is)."""
    return {
        "kind": "trial",
        "trial": int(job["trial"]),
        "rung": job.get("rung"),
        "budget": job.get("budget"),
        "params": dict(job["params"]),
        "seed": int(job["seed"]),
        "status": "failed",
        "metrics": {},
        "curves": {},
        "error": None,
        "traceback": None,
        "backend": None,
        "device": None,
        "worker": None,
        "wall_s": None,
        "cpu_s": None,
    }


def run_trial(objective: Any, job: Mapping[str, Any]) -> dict[str, Any]:
    """Run one trial and return its record; never raises for the objective's own failures.

    Parameters
    ----------
    objective : callable
        ``objective(params, *, seed, budget) -> dict``: metrics (numbers) and optionally
        ``"curves"`` (name -> list of numbers, e.g. per epoch), ``"backend"`` and ``"device"``
        (where it ran).
    job : dict
        ``trial``, ``params``, ``seed``, ``budget`` (None: the objective's own), ``rung``
        (None without halving) and ``metric`` (the one the search ranks by).

    Returns
    -------
    dict
        The record (see :func:`xpnet.search.random_search`): ``status`` is ``"failed"`` with
        ``error`` (``"TypeName: message"``) and ``traceback`` when the objective raised, did
        not return the metric, or returned a non-finite metric.  ``wall_s`` is the
        objective's wall time, ``cpu_s`` the CPU time of the process meanwhile (all its
        threads: BLAS threads count, and so would other trials running in the same process).
    """
    rec = new_record(job)
    rec["worker"] = worker_name()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = objective(dict(job["params"]), seed=int(job["seed"]), budget=job.get("budget"))
        rec["wall_s"] = time.perf_counter() - t0
        rec["cpu_s"] = time.process_time() - c0
        metrics, curves, backend, device = _split_output(out)
        rec.update(metrics=metrics, curves=curves,
                   backend=None if backend is None else str(backend),
                   device=None if device is None else str(device))
        metric = job.get("metric")
        if metric is not None and metric not in metrics:
            raise KeyError(f"the objective returned no metric {metric!r} (it returned "
                           f"{', '.join(sorted(metrics)) or 'none'})")
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                "non-finite metric " + ", ".join(f"{k}={metrics[k]!r}" for k in bad))
        rec["status"] = "ok"
    except Exception as exc:  # the objective's failure is this trial's result
        if rec["wall_s"] is None:
            rec["wall_s"] = time.perf_counter() - t0
            rec["cpu_s"] = time.process_time() - c0
        rec["error"] = _error_text(exc)
        rec["traceback"] = "".join(traceback.format_exception(type(exc), exc,
                                                              exc.__traceback__))[-4000:]
    return rec


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def lost_record(job: Mapping[str, Any], exc: BaseException) -> dict[str, Any]:
    """The record of a trial whose worker was lost (the executor raised, not the objective)."""
    rec = new_record(job)
    rec["error"] = f"the trial's worker was lost: {_error_text(exc)}"
    return rec


# --------------------------------------------------------------------------------------------
# Runners: submit jobs, yield records as they finish
# --------------------------------------------------------------------------------------------


class InProcessRunner:
    """Trials one after the other in this process."""

    kind = "in-process"

    def __init__(self, objective: Any):
        self.objective = objective

    def run(self, jobs: Iterable[Mapping[str, Any]]) -> Iterator[dict]:
        for job in jobs:
            yield run_trial(self.objective, job)

    def close(self) -> None:
        pass


class FuturesRunner:
    """Trials on a :class:`concurrent.futures.Executor` (all submitted at once)."""

    kind = "futures"

    def __init__(self, objective: Any, executor: cf.Executor):
        self.objective = objective
        self.executor = executor

    def run(self, jobs: Iterable[Mapping[str, Any]]) -> Iterator[dict]:
        futures = {self.executor.submit(run_trial, self.objective, job): job for job in jobs}
        try:
            for fut in cf.as_completed(futures):
                try:
                    yield fut.result()
                except cf.CancelledError as exc:
                    yield lost_record(futures[fut], exc)
                except Exception as exc:  # BrokenProcessPool, pickling errors, ...
                    yield lost_record(futures[fut], exc)
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        pass


def _identity(obj: Any) -> Any:
    return obj


class DaskRunner:
    """Trials as tasks of a ``distributed.Client``; the objective is sent once, as a task's
    result that every trial depends on (computed again if the worker holding it dies)."""

    kind = "dask"

    def __init__(self, objective: Any, client: Any, *, own: bool = False,
                 resources: Mapping[str, float] | None = None):
        self.client = client
        self.own = own
        self.resources = None if resources is None else dict(resources)
        self._objective = objective
        self._remote: Any = None
        self._token = uuid.uuid4().hex[:8]

    def run(self, jobs: Iterable[Mapping[str, Any]]) -> Iterator[dict]:
        from distributed import as_completed

        jobs = list(jobs)
        if not jobs:
            return
        if self._remote is None:
            # A task that returns the objective, rather than client.scatter: a scattered
            # object whose workers die is lost for good, a task's result is computed again.
            # Dask warns about a graph over 10 MB ("Sending large graph"); this task is sent once
            # and every trial depends on it, which is what the warning recommends instead.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph")
                self._remote = self.client.submit(_identity, self._objective, pure=False,
                                                  key=f"xpnet-objective-{self._token}")
        futures = {}
        for job in jobs:
            rung = "" if job.get("rung") is None else f"-rung{job['rung']}"
            key = f"xpnet-trial-{job['trial']}{rung}-{self._token}"
            fut = self.client.submit(run_trial, self._remote, dict(job), key=key, pure=False,
                                     resources=self.resources)
            futures[fut] = job
        try:
            for fut in as_completed(list(futures)):
                try:
                    yield fut.result()
                except Exception as exc:  # KilledWorker, CancelledError, ...
                    yield lost_record(futures[fut], exc)
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        if self._remote is not None:
            with contextlib.suppress(Exception):
                self.client.cancel([self._remote])
            self._remote = None
        if self.own:
            with contextlib.suppress(Exception):
                self.client.close()


def _is_dask_client(obj: Any) -> bool:
    if "distributed" not in sys.modules:
        return False
    from distributed import Client

    return isinstance(obj, Client)


def make_runner(executor: Any, objective: Any, *,
                resources: Mapping[str, float] | None = None) -> Any:
    """The runner for an ``executor`` argument of :func:`~xpnet.search.random_search`."""
    if resources is not None and not isinstance(resources, Mapping):
        raise TypeError(f"resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    if isinstance(executor, str):
        try:
            from distributed import Client
        except ImportError as exc:
            raise RuntimeError(f"executor={executor!r} (a Dask scheduler) needs "
                               f"dask.distributed: {_DASK_HINT}") from exc
        return DaskRunner(objective, Client(executor), own=True, resources=resources)
    if _is_dask_client(executor):
        return DaskRunner(objective, executor, resources=resources)
    if resources is not None:
        raise ValueError("resources= applies to Dask executors only (a distributed.Client or a "
                         "scheduler address)")
    if executor is None:
        return InProcessRunner(objective)
    if isinstance(executor, cf.Executor):
        return FuturesRunner(objective, executor)
    raise TypeError(
        "executor must be None (in this process), a concurrent.futures.Executor, a "
        f"distributed.Client or a Dask scheduler address, got {type(executor).__name__}")


# --------------------------------------------------------------------------------------------
# Pools and clusters with one BLAS thread per worker
# --------------------------------------------------------------------------------------------

_env_lock = threading.Lock()


@contextlib.contextmanager
def worker_env() -> Iterator[None]:
    """Set :data:`WORKER_ENV` in ``os.environ`` (where unset) for the block, then restore.

    Child processes started inside the block inherit it; this process's libraries, already
    loaded, are not affected.
    """
    with _env_lock:
        added = [k for k in WORKER_ENV if k not in os.environ]
        for k in added:
            os.environ[k] = WORKER_ENV[k]
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        with worker_env():
            super().start()


class _WorkerSpawnContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def process_pool(n_workers: int) -> cf.ProcessPoolExecutor:
    """A process pool of ``n_workers`` fresh interpreters with one BLAS thread each.

    ``spawn`` start method (safe with torch, CUDA and threads in the parent); each worker is
    started with :data:`WORKER_ENV` in its environment (variables the environment already
    sets are kept).  Objectives must be importable from a module (not defined in
    ``__main__`` only) and scripts need ``if __name__ == "__main__":``.

    >>> with process_pool(2) as pool:                     # doctest: +SKIP
    ...     result = random_search(space, objective, 20, executor=pool)
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, numbers.Integral) \
            or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    return cf.ProcessPoolExecutor(max_workers=int(n_workers), mp_context=_WorkerSpawnContext())


@contextlib.contextmanager
def local_cluster(n_workers: int, **kwargs: Any) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of ``n_workers`` one-thread worker processes and a
    ``Client`` to it (yielded); both closed at the end.

    ``processes=True, threads_per_worker=1, dashboard_address=None`` unless ``kwargs`` says
    otherwise.  Its nannies start the workers with :data:`WORKER_ENV` (through Dask's
    ``distributed.nanny.pre-spawn-environ``, which this replaces for these keys only; variables
    the environment already sets are kept).  Without a dashboard, the workers' statistical
    profiler (``distributed.worker.profile``, a few per cent of a trial's CPU time) is off.

    >>> with local_cluster(2) as client:                  # doctest: +SKIP
    ...     result = random_search(space, objective, 20, executor=client)
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, numbers.Integral) \
            or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise RuntimeError(f"a local Dask cluster needs dask.distributed: {_DASK_HINT}") from exc
    opts: dict[str, Any] = {"processes": True, "threads_per_worker": 1,
                            "dashboard_address": None}
    opts.update(kwargs)
    pre = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    if opts.get("dashboard_address") is None:
        pre["distributed.worker.profile.enabled"] = False
    with dask.config.set(pre):  # the nannies read it when they are made
        cluster = LocalCluster(n_workers=int(n_workers), **opts)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
