"""Thread settings of a benchmark worker: what the driver asks for, what the worker saw.

A library reads its thread count when it is first imported (OpenBLAS and OpenMP start their
pools then), so the driver puts the setting into the *environment* of the worker process before
it starts (:func:`thread_env`); the worker applies what can only be set by a call
(``torch.set_num_threads``) and reports what it saw (:func:`threads_seen`), which the tests and
the report check.

Two rules beyond the count: a worker timing a library other than NumPy (torch, JAX, CuPy) gets
``OPENBLAS_NUM_THREADS=1``, so that NumPy's OpenBLAS, imported by every worker, starts no pool
of its own there; and a worker given fewer threads than there are CPUs is pinned to that many
CPUs (:func:`apply_in_worker`).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

#: environment variables a worker's thread setting sets (all to the count)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "XPNET_NUM_THREADS")

#: XLA's CPU client on one thread (JAX has no thread-count variable: its pool is one thread
#: or every CPU the process may use, which :func:`apply_in_worker` narrows)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def thread_env(n: int, library: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker that runs ``library`` on ``n`` threads."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(n)
    if library != "numpy":
        env["OPENBLAS_NUM_THREADS"] = "1"  # NumPy's BLAS idles in a torch/JAX/CuPy worker
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism"))]
    if library == "jax" and n == 1:
        flags.append(XLA_ONE_THREAD)
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    env["XPNET_BENCH_THREADS"] = str(n)
    return env


def apply_in_worker(n: int, library: str) -> None:
    """What the environment cannot set, before the timed library is imported.

    * A worker given fewer threads than the CPUs it may use is pinned to ``n`` of them
      (``sched_setaffinity``): a thread count alone does not hold every library to ``n``
      cores -- a "one-thread" JAX worker runs its Python dispatch and XLA's work on separate
      threads (three busy threads were measured), and XLA sizes its pool by the CPUs it may
      use.
    * torch's intra-op threads are set by a call (``torch.set_num_threads``).
    """
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if n < len(cpus):
            os.sched_setaffinity(0, cpus[:n])
    if library == "torch":
        import torch

        torch.set_num_threads(n)


def _openblas_get_num_threads() -> int | None:
    """The thread count of the OpenBLAS NumPy loaded (found in /proc/self/maps), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()
                            and ln.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if getter is not None:
                    getter.restype = ctypes.c_int
                    return int(getter())
    return None


def threads_seen() -> dict[str, Any]:
    """The thread settings as this process sees them: environment, the pools of the loaded
    libraries (``threadpoolctl`` when installed), torch's and xpnet's own counts, and which of
    the array libraries are loaded at all."""
    seen: dict[str, Any] = {
        "env": {k: os.environ.get(k) for k in (*THREAD_VARS, "XLA_FLAGS", "OPENBLAS_CORETYPE",
                                               "OPENBLAS_L2_SIZE")},
        "loaded": sorted(m for m in ("numpy", "torch", "jax", "cupy", "array_api_strict")
                         if m in sys.modules),
        "os_threads": _task_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        seen["cpus_allowed"] = len(os.sched_getaffinity(0))
    try:
        from threadpoolctl import threadpool_info

        seen["threadpools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads")}
            for d in threadpool_info()
        ]
    except Exception:  # threadpoolctl is optional
        blas = _openblas_get_num_threads()
        seen["threadpools"] = [] if blas is None else [
            {"user_api": "blas", "internal_api": "openblas", "num_threads": blas}]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        seen["torch"] = torch.get_num_threads()
    if "xpnet" in sys.modules:
        from xpnet.backend import get_num_threads

        seen["xpnet"] = get_num_threads()
    if "jax" in sys.modules:
        seen["jax_devices"] = [str(d) for d in sys.modules["jax"].devices()]
    return seen


def _task_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def blas_threads(seen: dict[str, Any]) -> int | None:
    """NumPy's BLAS thread count from a :func:`threads_seen` record."""
    for pool in seen.get("threadpools", []):
        if pool.get("user_api") == "blas" and pool.get("internal_api") == "openblas":
            return pool.get("num_threads")
    for pool in seen.get("threadpools", []):
        if pool.get("user_api") == "blas":
            return pool.get("num_threads")
    return None
