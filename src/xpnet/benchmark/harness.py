"""Time each implementation in a process of its own, interleaved over rounds.

The driver (this module) starts one *worker* process (:mod:`xpnet.benchmark.worker`) per
implementation and thread setting, with the setting in the worker's environment before it imports
anything (:func:`xpnet.benchmark.threads.thread_env`).  Each worker builds its implementation and
warms it up, one worker at a time.  Then come the rounds: in each round every worker is woken once,
in a rotated order, and times one *sample* (a block of steps between two ``sync()`` calls) while
all the others sleep on their pipes.  So no two libraries' thread pools live in a timed process,
and a burst of load from elsewhere lands on every implementation rather than on one.

Two checks make the isolation visible in the report:

* before a sample the driver waits until the other workers have used no CPU for a short window
  (their idle threads may spin for a while after their own sample: OpenBLAS, OpenMP), and it
  records the CPU the other workers used *during* the sample (``peer_cpu_ms``; ideally 0);
* each worker reports the CPU its own process used during the sample: ``cpu_per_wall`` is at
  most the thread count it was given (about 1 for a one-thread worker on a quiet machine).

The driver itself imports no array library but NumPy and never times anything.
"""

from __future__ import annotations

import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from xpnet.benchmark.impls import CONFIGS, Config, Spec  # noqa: F401  (re-exported)
from xpnet.benchmark.threads import thread_env

#: Per-config defaults (full mode, quick mode): rounds, warm-up steps, target seconds per sample.
DEFAULTS = {
    "train-small": dict(repeats=(60, 3), warmup=(50, 2), sample_s=(0.025, 0.002)),
    "train": dict(repeats=(20, 2), warmup=(10, 1), sample_s=(0.0, 0.0)),
    "infer": dict(repeats=(30, 3), warmup=(5, 1), sample_s=(0.0, 0.0)),
}

GROWTH_STEPS = (2000, 30)  # memory-growth check: steps in full mode, quick mode

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def defaults_for(cfg: Config) -> dict[str, tuple]:
    """The defaults of a config: small training steps are batched into ~25 ms samples."""
    if cfg.kind == "infer":
        return DEFAULTS["infer"]
    small = not cfg.conv and max(cfg.hidden, default=0) <= 256 and cfg.batch <= 256
    return DEFAULTS["train-small" if small else "train"]


# ------------------------------------------------------------------------------------------------
# Worker processes
# ------------------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker died, hung or could not start."""


class WorkerProcess:
    """One worker process, driven by JSON lines over its stdin/stdout."""

    def __init__(self, spec: Spec, threads: int, env: dict[str, str] | None = None):
        self.spec = spec
        self.threads = threads
        self.pid: int | None = None
        self.hello: dict[str, Any] = {}
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        env = thread_env(threads, spec.library, env)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (src, env.get("PYTHONPATH", "")) if p)  # the same xpnet as the driver
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xpnet.benchmark.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True, bufsize=1,
        )
        self.pid = self.proc.pid

    def _read(self, timeout: float) -> dict[str, Any]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise WorkerError(f"no answer within {timeout:.0f} s{self._tail()}")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            raise WorkerError(f"the worker exited (status {self.proc.returncode}){self._tail()}")
        return json.loads(line)

    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the worker's greeting (its pid); returns it."""
        self.hello = self._read(timeout)
        return self.hello

    def send(self, msg: dict[str, Any]) -> None:
        """Write one request line."""
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"the worker is gone ({exc}){self._tail()}") from exc

    def request(self, msg: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        """Send one request and wait for its reply (:class:`WorkerError` on death or timeout)."""
        self.send(msg)
        return self._read(timeout)

    def cpu_seconds(self) -> float:
        """CPU time of the whole process (all threads) so far: the scheduler's nanosecond
        counters of every thread (``/proc/PID/task/*/schedstat``), else user + system clock
        ticks (10 ms resolution), else 0."""
        total = 0
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        if total:
            return total / 1e9
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / _HZ
        except (OSError, ValueError, IndexError):
            return 0.0

    def _tail(self, n: int = 1500) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - n))
            text = self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its stderr ends with: {text[-n:]}" if text else ""

    def close(self) -> None:
        """Ask the worker to exit (kill it if it does not), close the pipes."""
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "exit"})
                self.proc.wait(timeout=10)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                f.close()
            except (OSError, AttributeError):
                pass


# ------------------------------------------------------------------------------------------------
# One implementation at one thread setting
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One worker's results: one implementation at one thread setting."""

    spec: Spec
    threads: int
    worker: WorkerProcess | None = None
    status: str = "ok"
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)  # seconds per step
    walls: list[float] = field(default_factory=list)  # seconds per sample
    cpu_per_wall: list[float] = field(default_factory=list)
    peer_cpu_s: list[float] = field(default_factory=list)
    settle_s: list[float] = field(default_factory=list)

    def fail(self, status: str, reason: str) -> None:
        """Mark this run as not timed (``error`` or ``unavailable``), with the reason."""
        self.status, self.reason = status, reason

    def stats(self) -> dict[str, Any]:
        """Median, quartiles, extremes, every sample, CPU/wall and peer CPU of this run."""
        out: dict[str, Any] = {"threads": self.threads, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.worker is not None:
            out["worker_pid"] = self.worker.pid
        out.update(self.info)
        if self.samples:
            ms = np.asarray(self.samples) * 1e3
            q25, med, q75 = np.percentile(ms, [25, 50, 75])
            wall_total = sum(self.walls)
            out.update(
                median_ms=float(med), q25_ms=float(q25), q75_ms=float(q75),
                iqr_ms=float(q75 - q25), min_ms=float(ms.min()), max_ms=float(ms.max()),
                n_samples=len(self.samples), samples_ms=[round(float(v), 4) for v in ms],
                cpu_per_wall=float(np.median(self.cpu_per_wall)) if self.cpu_per_wall else None,
                peer_cpu_ms=round(1e3 * sum(self.peer_cpu_s), 1),
                peer_cpu_fraction=(sum(self.peer_cpu_s) / wall_total) if wall_total else None,
                settle_ms=float(np.median(self.settle_s)) * 1e3 if self.settle_s else None,
            )
        return out


def _peer_cpu(workers: list[WorkerProcess]) -> float:
    return sum(w.cpu_seconds() for w in workers)


def settle(peers: list[WorkerProcess], window: float = 0.015, quiet: float = 0.0005,
           max_wait: float = 0.5) -> tuple[float, float]:
    """Wait until the ``peers`` used less than ``quiet`` CPU seconds in a ``window`` (or
    ``max_wait`` passed): idle OpenBLAS and OpenMP threads spin for a while after their work.

    Returns the seconds waited and the peers' CPU seconds at the end.
    """
    t0 = time.perf_counter()
    if not peers:
        return 0.0, 0.0
    last = _peer_cpu(peers)
    while True:
        time.sleep(window)
        cur = _peer_cpu(peers)
        if cur - last < quiet or time.perf_counter() - t0 > max_wait:
            return time.perf_counter() - t0, cur
        last = cur


def run_config(cfg: Config, specs: list[Spec], threads: list[int], *, repeats: int, warmup: int,
               sample_s: float, budget_s: float | None, log: Callable[[str], None],
               memory_steps: int = 1, growth_steps: int = 0, growth_budget_s: float | None = None,
               opcount: bool = True, steps_per_sample: int | None = None,
               env: dict[str, str] | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time every ``spec`` at every thread count in ``threads``, each in its own worker.

    ``env`` is the workers' base environment (default: this process's); each worker's thread
    setting is put on top of it.

    Returns the result rows (one per spec, the thread settings inside) and facts about the run.
    """
    runs = [Run(s, n) for s in specs for n in threads]
    started = time.perf_counter()
    try:
        _start(cfg, runs, log, env)
        _warm(runs, warmup, sample_s, steps_per_sample, log)
        rounds = _rounds(runs, repeats, budget_s, log)
        for r in runs:
            if r.status == "ok" and memory_steps >= 0:
                reply = _guard(r, lambda r=r: r.worker.request(
                    {"cmd": "memory", "steps": memory_steps}))
                if reply is not None:
                    r.info["memory"] = reply
        rows = _rows(specs, runs)
        if growth_steps > 0:
            for row in rows:
                if row["impl"] != "xpnet" or row["status"] != "ok":
                    continue
                best = next(r for r in runs if r.spec.key == row["key"]
                            and r.threads == row["best_threads"])
                log(f"   memory growth {row['key']}: {growth_steps} steps")
                reply = _guard(best, lambda b=best: b.worker.request(
                    {"cmd": "growth", "steps": growth_steps, "budget_s": growth_budget_s}))
                row["memory_growth"] = reply if reply is not None else {
                    "status": "error", "reason": best.reason}
        if opcount and cfg.kind == "train":
            for row in rows:
                if row["status"] != "ok" or row["library"] != "torch" or row["impl"] == "xpnet":
                    continue
                run = next(r for r in runs if r.spec.key == row["key"] and r.status == "ok")
                reply = _guard(run, lambda r=run: r.worker.request({"cmd": "opcount"}))
                if reply is not None:
                    row["ops"] = reply
    finally:
        for r in runs:
            if r.worker is not None:
                r.worker.close()
    facts = {"rounds": rounds, "seconds": round(time.perf_counter() - started, 2),
             "threads": threads}
    return rows, facts


def _guard(run: Run, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        reply = fn()
    except WorkerError as exc:
        run.fail("error", str(exc))
        return None
    if reply.get("status") == "error":
        run.fail("error", reply.get("reason", "?"))
        return None
    return reply


def _start(cfg: Config, runs: list[Run], log: Callable[[str], None],
           env: dict[str, str] | None = None) -> None:
    """Start every worker and build its implementation (workers import in parallel)."""
    for r in runs:
        try:
            r.worker = WorkerProcess(r.spec, r.threads, env)
        except OSError as exc:
            r.fail("error", f"could not start a worker: {exc}")
    for r in runs:
        if r.worker is None:
            continue
        try:
            r.worker.start()
            r.worker.send({"cmd": "build", "config": cfg.to_dict(), "spec": r.spec.to_dict(),
                           "threads": r.threads})
        except WorkerError as exc:
            r.fail("error", str(exc))
    for r in runs:
        if r.status != "ok":
            continue
        try:
            reply = r.worker._read(600.0)
        except WorkerError as exc:
            r.fail("error", str(exc))
            continue
        if reply.get("status") != "ok":
            r.fail(reply.get("status", "error"), reply.get("reason", "?"))
            if r.status == "error":
                log(f"   {r.spec.key} @{r.threads}t: could not build: {r.reason}")
            continue
        r.info.update({k: reply[k] for k in ("note", "param_bytes", "extra",
                                              "rss_after_build_bytes") if k in reply})
        r.info["worker_pid"] = reply.get("pid")
        r.info["driver_pid"] = os.getpid()


def _warm(runs: list[Run], warmup: int, sample_s: float, steps_per_sample: int | None,
          log: Callable[[str], None]) -> None:
    """Warm the workers up one at a time (so that each warm-up runs alone)."""
    for r in runs:
        if r.status != "ok":
            continue
        t0 = time.perf_counter()
        msg: dict[str, Any] = {"cmd": "warmup", "steps": warmup, "sample_s": sample_s}
        if steps_per_sample:
            msg["steps_per_sample"] = steps_per_sample
        reply = _guard(r, lambda r=r, m=msg: r.worker.request(m))
        if reply is None:
            log(f"   {r.spec.key} @{r.threads}t: warm-up failed: {r.reason}")
            continue
        r.info.update(steps_per_sample=reply["steps_per_sample"],
                      threads_seen=reply["threads_seen"],
                      rss_after_warmup_bytes=reply.get("rss_after_warmup_bytes"))
        if "device_memory_bytes" in reply:
            r.info["device_memory_bytes"] = reply["device_memory_bytes"]
        log(f"   warm-up {r.spec.key} @{r.threads}t: {warmup} steps in "
            f"{time.perf_counter() - t0:.1f} s, {reply['warmup_median_s'] * 1e3:.2f} ms/step")


def _rounds(runs: list[Run], repeats: int, budget_s: float | None,
            log: Callable[[str], None]) -> int:
    """Time one sample per live worker per round, in a rotated order; returns rounds done."""
    t_start = time.perf_counter()
    done = 0
    for rnd in range(repeats):
        live = [r for r in runs if r.status == "ok"]
        if not live:
            break
        if budget_s is not None and rnd >= 3 and time.perf_counter() - t_start > budget_s:
            log(f"   time budget of {budget_s:.0f} s reached after {rnd} rounds")
            break
        done += 1
        k = rnd % len(live)
        for r in live[k:] + live[:k]:
            if r.status != "ok":
                continue
            peers = [p.worker for p in live if p is not r and p.status == "ok"]
            waited, before = settle(peers)
            reply = _guard(r, lambda r=r: r.worker.request({"cmd": "sample"}))
            after = _peer_cpu(peers)
            if reply is None:
                log(f"   {r.spec.key} @{r.threads}t: ERROR {r.reason}")
                continue
            r.samples.append(reply["s"])
            r.walls.append(reply["wall"])
            r.cpu_per_wall.append(reply["cpu"] / reply["wall"] if reply["wall"] > 0 else 0.0)
            r.peer_cpu_s.append(max(0.0, after - before))
            r.settle_s.append(waited)
    return done


def _rows(specs: list[Spec], runs: list[Run]) -> list[dict[str, Any]]:
    """One row per implementation: every thread setting, and the best one's figures on top."""
    rows = []
    for spec in specs:
        mine = [r for r in runs if r.spec == spec]
        by = {str(r.threads): r.stats() for r in mine}
        row: dict[str, Any] = {
            "key": spec.key, "label": spec.label, "impl": spec.impl, "backend": spec.backend,
            "device": spec.device, "dtype": spec.dtype, "library": spec.library,
            "by_threads": by,
        }
        timed = [r for r in mine if r.status == "ok" and r.samples]
        if timed:
            best = min(timed, key=lambda r: float(np.median(r.samples)))
            b = by[str(best.threads)]
            row["status"] = "ok"
            row["best_threads"] = best.threads
            for k in ("median_ms", "q25_ms", "q75_ms", "iqr_ms", "min_ms", "max_ms", "n_samples",
                      "steps_per_sample", "samples_ms", "cpu_per_wall", "peer_cpu_ms",
                      "peer_cpu_fraction", "note", "param_bytes", "worker_pid", "driver_pid",
                      "threads_seen"):
                if k in b:
                    row[k] = b[k]
            mem = b.get("memory", {})
            row["peak_rss_bytes"] = mem.get("peak_rss_bytes")
            if "step_peak_bytes" in mem:
                row["step_peak_bytes"] = mem["step_peak_bytes"]
            row.update(b.get("extra", {}))
        else:
            bad = next((r for r in mine if r.status == "error"), None) or mine[0]
            row["status"] = bad.status if bad.status != "ok" else "error"
            row["reason"] = bad.reason or "no sample was taken"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# Environment
# ------------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Library versions, BLAS and the CPU: what a reader needs to compare runs.  Imports no
    array library but NumPy (the versions come from the installed distributions)."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "numpy": np.__version__,
        "load_average_at_start": load_average(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "GOTO", "VECLIB", "CUDA_VISIBLE",
                                 "XLA_", "XPNET_"))},
    }
    try:
        import xpnet

        env["xpnet"] = getattr(xpnet, "__version__", "?")
        env["xpnet_git"] = _git_commit(os.path.dirname(xpnet.__file__))
    except ImportError:  # pragma: no cover
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        env["numpy_blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration")
                             if blas.get(k) is not None}
    except Exception as exc:  # pragma: no cover - old numpy
        env["numpy_blas"] = f"unknown ({exc})"
    for mod, dist in (("array_api_compat", "array-api-compat"),
                      ("array_api_strict", "array-api-strict"), ("torch", "torch"),
                      ("jax", "jax"), ("jaxlib", "jaxlib"), ("cupy", None),
                      ("threadpoolctl", "threadpoolctl")):
        if dist is None:
            env[mod] = next((v for d in ("cupy-cuda12x", "cupy-cuda11x", "cupy")
                             if (v := _version(d))), None)
        else:
            env[mod] = _version(dist)
    return env


def _git_commit(path: str) -> str | None:
    """The commit (and '+dirty') of a source checkout xpnet runs from, else None."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, text=True,
                              capture_output=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=path, text=True,
                               capture_output=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (other processes compete for the cores)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
