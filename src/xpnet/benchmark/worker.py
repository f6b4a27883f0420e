"""A benchmark worker: one process that builds one implementation and times it when told to.

Started by the driver (:mod:`xpnet.benchmark.harness`) as ``python -m xpnet.benchmark.worker``
with its thread setting already in the environment (:func:`xpnet.benchmark.threads.thread_env`).
It speaks JSON lines: one request on stdin, one reply on the original stdout (file descriptor 1
is pointed at stderr, so that whatever a library prints cannot break the protocol).

Requests (``cmd``):

``build``   ``{"config": {...}, "spec": {...}, "threads": n}`` -> pid, threads seen, facts
``warmup``  ``{"steps": w, "sample_s": s}`` -> steps per sample, the warm-up's median step
``sample``  ``{}`` -> seconds per step over one block of steps between two ``sync()``, and the
            process's CPU seconds during the block (its threads' work: at most ``threads``
            times the wall time)
``memory``  ``{"steps": k}`` -> peak RSS, current RSS, NumPy bytes allocated during ``k`` steps
``growth``  ``{"steps": n, "budget_s": b}`` -> RSS (and device memory) before and after ``n`` steps
``opcount`` ``{}`` -> operations per step (torch profiler) for torch-based rows
``exit``

Python's garbage collector is off while a block runs and is run after it, as ``timeit`` does.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
import tracemalloc
from typing import Any

from xpnet.benchmark import impls as I
from xpnet.benchmark.threads import apply_in_worker, threads_seen


def rss_bytes() -> int | None:
    """The process's resident set size now (Linux /proc), or None where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (getrusage)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class Worker:
    """The state of one worker process: the config, the spec and the built implementation."""

    def __init__(self) -> None:
        self.cfg: I.Config | None = None
        self.spec: I.Spec | None = None
        self.impl: I.Impl | None = None
        self.threads = 0
        self.steps_per_sample = 1

    # -- requests -------------------------------------------------------------------------------

    def build(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.cfg = I.Config.from_dict(msg["config"])
        self.spec = I.Spec(**msg["spec"])
        self.threads = int(msg.get("threads", 0))
        self.impl = None
        gc.collect()
        rss0 = rss_bytes()
        if self.threads:
            apply_in_worker(self.threads, self.spec.library)
        try:
            self.impl = I.build(self.cfg, self.spec, seed=int(msg.get("seed", 0)))
        except I.Unavailable as exc:
            return {"status": "unavailable", "reason": str(exc)}
        return {"status": "ok", "note": self.impl.note, "param_bytes": self.impl.param_bytes,
                "extra": self.impl.extra, "rss_before_build_bytes": rss0,
                "rss_after_build_bytes": rss_bytes()}

    def _block(self, n: int) -> tuple[float, float]:
        impl = self.impl
        impl.sync()
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(n):
            impl.step()
        impl.sync()
        wall = time.perf_counter() - t0
        return wall, time.process_time() - c0

    def warmup(self, msg: dict[str, Any]) -> dict[str, Any]:
        steps = max(1, int(msg.get("steps", 1)))
        sample_s = float(msg.get("sample_s", 0.0))
        times = [self._block(1)[0] for _ in range(steps)]
        est = sorted(times[len(times) // 2:])[len(times[len(times) // 2:]) // 2]
        self.steps_per_sample = max(1, min(200, round(sample_s / est))) if est > 0 else 1
        if "steps_per_sample" in msg:
            self.steps_per_sample = max(1, int(msg["steps_per_sample"]))
        gc.collect()
        out = {"steps_per_sample": self.steps_per_sample, "warmup_median_s": est,
               "threads_seen": threads_seen(), "rss_after_warmup_bytes": rss_bytes()}
        dev = self.impl.device_memory()
        if dev is not None:
            out["device_memory_bytes"] = dev
        return out

    def sample(self, msg: dict[str, Any]) -> dict[str, Any]:
        n = int(msg.get("steps", self.steps_per_sample))
        gc.disable()
        try:
            wall, cpu = self._block(n)
        finally:
            gc.enable()
        gc.collect()
        return {"s": wall / n, "wall": wall, "cpu": cpu, "steps": n}

    def memory(self, msg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"peak_rss_bytes": peak_rss_bytes(), "rss_bytes": rss_bytes()}
        steps = int(msg.get("steps", 1))
        if self.impl.host_arrays and steps > 0:
            # NumPy reports its buffers to tracemalloc; torch and JAX do not
            gc.collect()
            tracemalloc.start()
            try:
                for _ in range(steps):
                    self.impl.step()
                out["step_peak_bytes"] = int(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        return out

    def growth(self, msg: dict[str, Any]) -> dict[str, Any]:
        steps = int(msg["steps"])
        budget = msg.get("budget_s")
        impl = self.impl
        impl.sync()
        gc.collect()
        rss0, dev0 = rss_bytes(), impl.device_memory()
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            k = min(50, steps - done)
            for _ in range(k):
                impl.step()
            done += k
            if budget is not None and time.perf_counter() - t0 > float(budget):
                break
        impl.sync()
        elapsed = time.perf_counter() - t0
        gc.collect()
        rss1, dev1 = rss_bytes(), impl.device_memory()
        out = {"status": "ok", "steps": done, "steps_asked": steps, "rss_before_bytes": rss0,
               "rss_after_bytes": rss1, "device_before_bytes": dev0, "device_after_bytes": dev1,
               "peak_rss_bytes": peak_rss_bytes(), "seconds": round(elapsed, 3)}
        if rss0 is not None and rss1 is not None:
            out["rss_growth_bytes"] = rss1 - rss0
        if dev0 is not None and dev1 is not None:
            out["device_growth_bytes"] = dev1 - dev0
        return out

    def opcount(self, msg: dict[str, Any]) -> dict[str, Any]:
        from xpnet.benchmark import opcount

        if self.spec.library != "torch":
            return {"status": "unavailable", "reason": "the profiler count is for torch rows"}
        return {"status": "ok", **opcount.torch_step_counts(self.impl.step, self.impl.sync)}

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one request; returns its reply."""
        cmd = msg.get("cmd")
        if cmd == "build":
            return self.build(msg)
        if self.impl is None:
            return {"status": "error", "reason": f"{cmd!r} before a successful build"}
        handler = {"warmup": self.warmup, "sample": self.sample, "memory": self.memory,
                   "growth": self.growth, "opcount": self.opcount}.get(cmd)
        if handler is None:
            return {"status": "error", "reason": f"unknown request {cmd!r}"}
        return handler(msg)


def main() -> int:
    """Serve requests from stdin until ``exit`` (see the module docstring)."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what libraries print goes to stderr
    worker = Worker()
    hello = {"status": "ok", "pid": os.getpid(), "ppid": os.getppid(),
             "python": sys.executable}
    proto.write(json.dumps(hello) + "\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg.get("cmd") == "exit":
            proto.write(json.dumps({"status": "ok"}) + "\n")
            break
        try:
            reply = worker.handle(msg)
        except Exception as exc:  # reported, the driver decides
            reply = {"status": "error", "reason": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc(limit=8)}
        reply.setdefault("pid", os.getpid())
        proto.write(json.dumps(reply, default=_json_default) + "\n")
    return 0


def _json_default(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


if __name__ == "__main__":
    raise SystemExit(main())
