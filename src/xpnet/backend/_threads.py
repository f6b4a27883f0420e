"""The threads of xpnet's own NumPy kernels: how many, and the one pool they run in.

NumPy's ufuncs run on one core while its BLAS uses them all; the NumPy room's optimizer kernels,
and its batch norm and ReLU on large batches, split their arrays into parts and run them on this
pool (ufuncs release the GIL).  NumPy's BLAS
and torch keep their own thread settings.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any

__all__ = ["get_num_threads", "set_num_threads", "thread_pool"]

_num_threads: int | None = None
_pool: Any = None
_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    # the child has none of the parent's threads, and a lock held at the fork stays held
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _default_num_threads() -> int:
    env = os.environ.get("XPNET_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"XPNET_NUM_THREADS must be a positive integer, got {env!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """Threads xpnet's own NumPy kernels may use (optimizer updates of large buffers, batch norm
    and ReLU on large batches).

    The CPUs this process may run on, unless ``XPNET_NUM_THREADS`` or
    :func:`set_num_threads` says otherwise.  NumPy's BLAS and torch keep their own settings.
    """
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n: int) -> int:
    """Set the threads of xpnet's own NumPy kernels; returns the previous value."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    old = get_num_threads()
    global _num_threads
    _num_threads = n
    return old


def thread_pool(workers: int) -> Any:
    """A shared pool with at least ``workers`` threads.

    A pool is never shut down (another thread may be about to submit to it): a bigger one
    replaces it for new callers, and the old one ends when nobody holds it.  A forked child
    (``multiprocessing`` on Linux) inherits the pool object but not its threads, so a pool made
    in another process is replaced too.
    """
    global _pool
    pid = os.getpid()
    pool = _pool
    if pool is not None and pool[0] == pid and pool[1] >= workers:
        return pool[2]
    with _pool_lock:
        if _pool is None or _pool[0] != pid or _pool[1] < workers:
            _pool = (pid, workers, concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="xpnet-kernels"))
        return _pool[2]
