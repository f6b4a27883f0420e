"""Time xpnet against PyTorch, the GEMM-only lower bound and the book's code, in one process.

Every compared implementation is built first, warmed up, then timed round-robin: each repeat
visits every implementation once (in a rotated order), so a burst of load on a shared machine
lands on all of them rather than on one.  Each sample is a block of steps bracketed by the
implementation's ``synchronize()``; the report quotes the median per step and the spread
(quartiles, min, max).  See ``bench/README.md`` for the commands.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xpnet.backend import get_num_threads, set_num_threads

# ------------------------------------------------------------------------------------------------
# Configurations
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One benchmark configuration."""

    name: str
    kind: str  # "train" or "infer"
    description: str
    hidden: tuple[int, ...] = ()
    batch: int = 100
    dropout: float = 0.2
    batchnorm: bool = True
    conv: bool = False
    input_size: int = 784
    output_size: int = 10


CONFIGS: dict[str, Config] = {
    "C1": Config(
        "C1", "train", "784-[100]x5-10, batch norm + dropout 0.2, batch 100, Adam",
        hidden=(100,) * 5, batch=100,
    ),
    "C2": Config(
        "C2", "train", "784-[1024]x3-10, batch norm + dropout 0.2, batch 512, Adam",
        hidden=(1024,) * 3, batch=512,
    ),
    "C3": Config(
        "C3", "train",
        "SimpleConvNet 1x28x28, conv 30x5x5 - ReLU - pool 2 - 100 - ReLU - 10, batch 100, Adam",
        batch=100, conv=True, batchnorm=False, dropout=0.0,
    ),
    "C1-infer": Config(
        "C1-infer", "infer", "C1 network, predict(x, train_flg=False) on 10,000 rows",
        hidden=(100,) * 5, batch=10_000,
    ),
}

#: Per-kind defaults (full mode, quick mode): repeats, warm-up steps, target seconds per sample.
_DEFAULTS = {
    "C1": dict(repeats=(60, 3), warmup=(50, 2), sample_s=(0.025, 0.002)),
    "C2": dict(repeats=(20, 2), warmup=(10, 1), sample_s=(0.0, 0.0)),
    "C3": dict(repeats=(20, 2), warmup=(10, 1), sample_s=(0.0, 0.0)),
    "C1-infer": dict(repeats=(30, 3), warmup=(5, 1), sample_s=(0.0, 0.0)),
}

GROWTH_STEPS = (2000, 30)  # memory-growth check: steps in full mode, quick mode


# ------------------------------------------------------------------------------------------------
# Host memory
# ------------------------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    """The process's current resident set size (Linux /proc), or None where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (getrusage)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# ------------------------------------------------------------------------------------------------
# Candidates: one implementation at one backend/device/dtype
# ------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    key: str
    impl: str  # "xpnet", "torch.nn", "torch.nn fused", "gemm", "book"
    backend: str
    device: str
    dtype: str
    step: Callable[[], Any] | None = None
    sync: Callable[[], None] = lambda: None
    device_memory: Callable[[], int | None] = lambda: None
    host_arrays: bool = False  # arrays live in NumPy/host memory (tracemalloc sees them)
    param_bytes: int | None = None
    note: str = ""
    status: str = "ok"
    reason: str = ""
    samples: list[float] = field(default_factory=list)
    steps_per_sample: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        where = self.backend if self.device in ("", "cpu") else f"{self.backend} {self.device}"
        return f"{self.impl} [{where}] {self.dtype}"

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label(),
            "impl": self.impl,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
            "status": self.status,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        if self.status == "ok" and self.samples:
            ms = np.asarray(self.samples) * 1e3
            q25, med, q75 = np.percentile(ms, [25, 50, 75])
            out.update(
                median_ms=float(med),
                q25_ms=float(q25),
                q75_ms=float(q75),
                iqr_ms=float(q75 - q25),
                min_ms=float(ms.min()),
                max_ms=float(ms.max()),
                n_samples=len(self.samples),
                steps_per_sample=self.steps_per_sample,
                samples_ms=[round(float(v), 4) for v in ms],
            )
        out["param_bytes"] = self.param_bytes
        out.update(self.extra)
        return out


def _unavailable(key, impl, backend, device, dtype, reason, status="unavailable") -> Candidate:
    return Candidate(key, impl, backend, device, dtype, status=status, reason=reason)


# -- data -----------------------------------------------------------------------------------------


def _host_batches(cfg: Config, n_pool: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A few synthetic MNIST-shaped batches (pixels in [0, 1), labels 0..9), float64 on the host.

    Timings do not depend on the pixel values; synthetic data keeps the bench self-contained.
    """
    rng = np.random.default_rng(seed)
    shape = (cfg.batch, 1, 28, 28) if cfg.conv else (cfg.batch, cfg.input_size)
    return [
        (rng.random(shape), rng.integers(0, cfg.output_size, cfg.batch))
        for _ in range(n_pool)
    ]


def _book_loop_step(net, opt, batches):  # noqa: ANN001, ANN202
    """One training step of the book's loop over the cycled ``batches``."""
    nxt = _cycle(batches)

    def step():
        x, t = nxt()
        opt.update(net.params, net.gradient(x, t))

    return step


def _cycle(items):
    state = {"i": 0}

    def nxt():
        i = state["i"]
        state["i"] = (i + 1) % len(items)
        return items[i]

    return nxt


# -- xpnet ----------------------------------------------------------------------------------------


def _xpnet_net(cfg: Config, backend, dtype: str, seed: int = 0):
    import xpnet

    if cfg.conv:
        cls = getattr(xpnet, "SimpleConvNet", None)
        if cls is None:
            raise LookupError("xpnet has no SimpleConvNet yet (the techniques issue adds it)")
        return cls(
            input_dim=(1, 28, 28),
            conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
            hidden_size=100, output_size=10, weight_init_std=0.01,
            backend=backend, dtype=dtype, seed=seed,
        )
    return xpnet.MultiLayerNetExtend(
        cfg.input_size, list(cfg.hidden), cfg.output_size,
        activation="relu", weight_init_std="relu",
        use_dropout=cfg.dropout > 0, dropout_ration=cfg.dropout, use_batchnorm=cfg.batchnorm,
        backend=backend, dtype=dtype, seed=seed,
    )


def _nbytes(arrays) -> int | None:
    total = 0
    for a in arrays:
        n = getattr(a, "nbytes", None)
        if n is None:
            try:
                n = a.numel() * a.element_size()
            except AttributeError:
                return None
        total += int(n)
    return total


def _device_label(be) -> str:
    """'' for the default CPU device of numpy/strict, else a short device name."""
    return "" if be.is_default_device else be.device_name


def xpnet_candidate(cfg: Config, be, dtype: str, host) -> Candidate:
    """xpnet's MultiLayerNetExtend (or SimpleConvNet) + Adam on one backend."""
    import xpnet

    dev = _device_label(be)
    c = Candidate(f"xpnet-{be.name}-{dtype}", "xpnet", be.name, dev, dtype)
    c.sync = be.synchronize
    c.device_memory = be.memory_in_use
    c.host_arrays = be.numpy_memory
    net = _xpnet_net(cfg, be, dtype)
    c.param_bytes = _nbytes(net.params.values())
    if cfg.kind == "infer":
        x = be.asarray(host[0][0], dtype=dtype)
        c.step = lambda: net.predict(x, train_flg=False)
        return c
    batches = [(be.asarray(x, dtype=dtype), be.asarray(t)) for x, t in host]
    c.step = _book_loop_step(net, xpnet.Adam(lr=0.001), batches)
    return c


# -- PyTorch torch.nn reference -----------------------------------------------------------------


def _torch_model(cfg: Config, torch):
    nn = torch.nn
    if cfg.conv:
        return nn.Sequential(
            nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10),
        )
    layers: list[Any] = []
    sizes = [cfg.input_size, *cfg.hidden]
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(n_in, n_out))
        if cfg.batchnorm:
            # eps as the book's 10e-7; torch's momentum=0.1 is the book's keep-fraction 0.9
            layers.append(nn.BatchNorm1d(n_out, eps=1e-6, momentum=0.1))
        layers.append(nn.ReLU())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Linear(sizes[-1], cfg.output_size))
    return nn.Sequential(*layers)


def torch_candidate(cfg: Config, device: str, dtype: str, host, fused: bool) -> Candidate:
    """The equivalent ``torch.nn`` model with ``torch.optim.Adam`` (eager, or fused)."""
    import torch

    dev = torch.device(device)
    tdt = getattr(torch, dtype)
    impl = "torch.nn fused" if fused else "torch.nn"
    c = Candidate(
        f"torch-{'fused' if fused else 'eager'}-{dev}-{dtype}", impl, "torch",
        "" if dev.type == "cpu" else str(dev), dtype,
    )
    if dev.type == "cuda":
        c.sync = lambda: torch.cuda.synchronize(dev)
        c.device_memory = lambda: int(torch.cuda.memory_allocated(dev))
    torch.manual_seed(0)
    model = _torch_model(cfg, torch).to(device=dev, dtype=tdt)
    c.param_bytes = _nbytes(model.parameters())
    if cfg.kind == "infer":
        model.eval()
        x = torch.as_tensor(host[0][0], dtype=tdt, device=dev)

        def infer():
            with torch.inference_mode():
                return model(x)

        c.step = infer
        c.note = "model.eval(), torch.inference_mode()"
        return c
    model.train()
    batches = [
        (torch.as_tensor(x, dtype=tdt, device=dev), torch.as_tensor(t, device=dev))
        for x, t in host
    ]
    nxt = _cycle(batches)
    loss_fn = torch.nn.CrossEntropyLoss()
    if fused:
        try:
            opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, fused=True)
            model(batches[0][0]).sum().backward()  # fused support is checked on the first step
            opt.step()
            opt.zero_grad(set_to_none=True)
            c.note = "torch.optim.Adam(fused=True)"
        except (RuntimeError, ValueError, TypeError) as exc:
            opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, foreach=True)
            c.note = f"fused Adam unsupported here ({exc}); foreach=True instead"
            c.impl = "torch.nn foreach"
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, foreach=False)
        c.note = "torch.optim.Adam(foreach=False): one kernel sequence per parameter"

    def step():
        x, t = nxt()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()

    c.step = step
    return c


# -- GEMM-only lower bound ------------------------------------------------------------------------


def gemm_candidate(cfg: Config, lib: str, device: str = "cpu") -> Candidate:
    """Only the matrix products of one step, at the same shapes, into preallocated outputs.

    Training: forward ``X_i @ W_i`` for every layer, backward ``X_i.T @ dY_i`` for every layer and
    ``dY_i @ W_i.T`` for every layer but the first (nothing needs the input's gradient).
    Inference: the forward products only.  float32.
    """
    sizes = [cfg.input_size, *cfg.hidden, cfg.output_size]
    n = cfg.batch
    rng = np.random.default_rng(1)
    suffix = "" if device == "cpu" or lib == "cupy" else f"-{device}"
    c = Candidate(f"gemm-{lib}{suffix}", "GEMM bound", lib, "" if device == "cpu" else device,
                  "float32")
    ops: list[tuple[Any, Any, Any]] = []  # (a, b, out)

    def arr(shape):
        return rng.standard_normal(shape, dtype=np.float32)

    host_ops = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        x, w, dy = arr((n, n_in)), arr((n_in, n_out)), arr((n, n_out))
        host_ops.append(("fwd", x, w, (n, n_out)))
        if cfg.kind == "train":
            host_ops.append(("dW", x, dy, (n_in, n_out)))
            if i > 0:
                host_ops.append(("dX", dy, w, (n, n_in)))
    if lib == "numpy":
        for kind, a, b, shape in host_ops:
            a2, b2 = (a.T, b) if kind == "dW" else (a, b.T) if kind == "dX" else (a, b)
            ops.append((a2, b2, np.empty(shape, np.float32)))

        def step():
            for a, b, out in ops:
                np.matmul(a, b, out=out)

        c.host_arrays = True
    elif lib == "torch":
        import torch

        dev = torch.device(device)
        for kind, a, b, shape in host_ops:
            ta, tb = torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev)
            ta, tb = (ta.T, tb) if kind == "dW" else (ta, tb.T) if kind == "dX" else (ta, tb)
            ops.append((ta, tb, torch.empty(shape, dtype=torch.float32, device=dev)))

        def step():
            for a, b, out in ops:
                torch.matmul(a, b, out=out)

        if dev.type == "cuda":
            c.sync = lambda: torch.cuda.synchronize(dev)
    elif lib == "cupy":
        import cupy

        for kind, a, b, shape in host_ops:
            ca, cb = cupy.asarray(a), cupy.asarray(b)
            ca, cb = (ca.T, cb) if kind == "dW" else (ca, cb.T) if kind == "dX" else (ca, cb)
            ops.append((ca, cb, cupy.empty(shape, dtype=cupy.float32)))

        def step():
            for a, b, out in ops:
                cupy.matmul(a, b, out=out)

        c.sync = lambda: cupy.cuda.get_current_stream().synchronize()
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(lib)
    flops = 0
    for kind, a, _b, shape in host_ops:
        inner = a.shape[0] if kind == "dW" else a.shape[1]
        flops += 2 * shape[0] * shape[1] * inner
    c.extra["gflop_per_step"] = round(flops / 1e9, 4)
    c.note = f"{len(ops)} matmuls, {flops / 1e9:.3f} GFLOP per step"
    c.step = step
    return c


# -- the book's float64 code ----------------------------------------------------------------------


def book_candidate(cfg: Config, host) -> Candidate:
    from xpnet.benchmark import book

    c = Candidate("book-numpy-float64", "book", "numpy", "", "float64", host_arrays=True)
    net = book.MultiLayerNetExtend(
        cfg.input_size, list(cfg.hidden), cfg.output_size, activation="relu",
        weight_init_std="relu", use_dropout=cfg.dropout > 0, dropout_ration=cfg.dropout,
        use_batchnorm=cfg.batchnorm, seed=0,
    )
    c.param_bytes = _nbytes(net.params.values())
    c.note = "the book's common/ code path (MultiLayerNetExtend + Adam), float64"
    if cfg.kind == "infer":
        x = np.array(host[0][0], dtype=np.float64)
        c.step = lambda: net.predict(x, train_flg=False)
        return c
    batches = [(np.array(x, np.float64), np.array(t)) for x, t in host]
    c.step = _book_loop_step(net, book.Adam(lr=0.001), batches)
    return c


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------


def _time_block(c: Candidate, n: int) -> float:
    c.sync()
    t0 = time.perf_counter()
    for _ in range(n):
        c.step()
    c.sync()
    return (time.perf_counter() - t0) / n


def _guard(c: Candidate, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # an implementation that breaks is reported, not fatal
        c.status = "error"
        c.reason = f"{type(exc).__name__}: {exc}"
        return None


def run_timed(cands: list[Candidate], repeats: int, warmup: int, sample_s: float,
              log: Callable[[str], None], budget_s: float | None = None) -> int:
    """Warm every candidate up, then time them round-robin; fills ``samples``.

    Stops after ``repeats`` rounds, or earlier once the rounds have taken ``budget_s`` seconds
    (at least 3 rounds are always done).  Returns the number of rounds done.
    """
    live = [c for c in cands if c.status == "ok"]
    for c in live:
        t0 = time.perf_counter()
        t = _guard(c, lambda c=c: [_time_block(c, 1) for _ in range(max(1, warmup))])
        if t is None:
            log(f"    {c.key}: ERROR {c.reason}")
            continue
        log(f"    warm-up {c.key}: {max(1, warmup)} steps in {time.perf_counter() - t0:.1f} s")
        est = float(np.median(t[-max(1, len(t) // 2):]))
        c.steps_per_sample = max(1, min(200, round(sample_s / est))) if est > 0 else 1
        extra = _guard(c, c.device_memory)
        if extra is not None:
            c.extra["device_memory_bytes"] = extra
    live = [c for c in live if c.status == "ok"]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # as timeit does; collections are done between rounds
    rounds = 0
    t_start = time.perf_counter()
    try:
        for r in range(repeats):
            if budget_s is not None and r >= 3 and time.perf_counter() - t_start > budget_s:
                log(f"    time budget of {budget_s:.0f} s reached after {r} rounds")
                break
            rounds += 1
            k = r % len(live) if live else 0
            for c in live[k:] + live[:k]:
                if c.status != "ok":
                    continue
                v = _guard(c, lambda c=c: _time_block(c, c.steps_per_sample))
                if v is not None:
                    c.samples.append(v)
            gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    return rounds


def measure_step_peak(c: Candidate, steps: int = 3) -> None:
    """Peak bytes allocated by host (NumPy) arrays during a few steps, via tracemalloc.

    NumPy reports its data buffers to tracemalloc; torch CPU tensors do not, so torch rows get
    no number here (their device memory, on CUDA, comes from ``memory_allocated``).
    """
    if c.status != "ok" or not c.host_arrays:
        return
    tracemalloc.start()
    try:
        for _ in range(steps):
            c.step()
        c.extra["step_peak_bytes"] = int(tracemalloc.get_traced_memory()[1])
    except Exception as exc:  # pragma: no cover
        c.extra["step_peak_error"] = str(exc)
    finally:
        tracemalloc.stop()


def memory_growth(be, dtype: str, steps: int, log, budget_s: float | None = None
                  ) -> dict[str, Any]:
    """RSS (and device memory) before and after ``steps`` C1 training steps of xpnet.

    With ``budget_s``, stops early once that many seconds have passed (``steps`` says how many
    were done).
    """
    cfg = CONFIGS["C1"]
    host = _host_batches(cfg, 8, seed=3)
    out: dict[str, Any] = {"backend": be.name, "device": str(be.device), "dtype": dtype,
                           "config": "C1", "steps": steps}
    try:
        c = xpnet_candidate(cfg, be, dtype, host)
        for _ in range(20):
            c.step()
        be.synchronize()
        gc.collect()
        rss0, dev0 = rss_bytes(), be.memory_in_use()
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            for _ in range(min(50, steps - done)):
                c.step()
            done += min(50, steps - done)
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
        be.synchronize()
        elapsed = time.perf_counter() - t0
        gc.collect()
        rss1, dev1 = rss_bytes(), be.memory_in_use()
    except Exception as exc:
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        return out
    out.update(status="ok", steps=done, steps_asked=steps, rss_before_bytes=rss0,
               rss_after_bytes=rss1, device_before_bytes=dev0, device_after_bytes=dev1,
               seconds=round(elapsed, 3))
    if rss0 is not None and rss1 is not None:
        out["rss_growth_bytes"] = rss1 - rss0
    if dev0 is not None and dev1 is not None:
        out["device_growth_bytes"] = dev1 - dev0
    log(f"    memory growth {be.name} {dtype}: RSS {_mb(rss0)} -> {_mb(rss1)} MiB, {done} steps")
    return out


def _mb(v) -> str:
    return "?" if v is None else f"{v / 2**20:.1f}"


# ------------------------------------------------------------------------------------------------
# Threads
# ------------------------------------------------------------------------------------------------


def _openblas_functions():
    """``(set, get)`` of the OpenBLAS that NumPy loaded, found in /proc/self/maps, or None."""
    import ctypes

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
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes = [ctypes.c_int]
                    getter.restype = ctypes.c_int
                    return setter, getter
    return None


def blas_threads() -> int | None:
    """The number of threads NumPy's OpenBLAS uses, where it can be asked."""
    fns = _openblas_functions()
    return int(fns[1]()) if fns else None


class thread_limit:
    """Set the threads of NumPy's BLAS, torch and xpnet's own NumPy kernels
    (:func:`xpnet.set_num_threads`) for a ``with`` block, then restore.

    NumPy's OpenBLAS is reached through ``threadpoolctl`` when it is installed, else through
    OpenBLAS's own ``openblas_set_num_threads`` (Linux).  ``n=None`` changes nothing.
    """

    def __init__(self, n: int | None):
        self.n = n
        self.applied: dict[str, Any] = {}
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> thread_limit:
        if self.n is None:
            return self
        n = int(self.n)
        try:
            from threadpoolctl import threadpool_limits

            ctl = threadpool_limits(limits=n, user_api="blas")
            self._undo.append(ctl.restore_original_limits)
            self.applied["numpy_blas"] = f"{n} (threadpoolctl)"
        except ImportError:
            fns = _openblas_functions()
            if fns is None:
                self.applied["numpy_blas"] = "unchanged (OpenBLAS not found; pip threadpoolctl)"
            else:
                setter, getter = fns
                old = int(getter())
                setter(n)
                self._undo.append(lambda: setter(old))
                self.applied["numpy_blas"] = f"{int(getter())} (openblas_set_num_threads)"
        old_x = set_num_threads(n)
        self._undo.append(lambda: set_num_threads(old_x))
        self.applied["xpnet"] = n
        try:
            import torch

            old_t = torch.get_num_threads()
            torch.set_num_threads(n)
            self._undo.append(lambda: torch.set_num_threads(old_t))
            self.applied["torch"] = torch.get_num_threads()
        except ImportError:
            pass
        return self

    def __exit__(self, *exc) -> None:
        for undo in reversed(self._undo):
            undo()


# ------------------------------------------------------------------------------------------------
# Environment
# ------------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Library versions, BLAS, threads and the CPU: what a reader needs to compare runs."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "numpy": np.__version__,
        "numpy_blas_threads": blas_threads(),
        "xpnet_threads": get_num_threads(),
        "load_average_at_start": load_average(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "GOTO", "VECLIB", "CUDA_VISIBLE"))},
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
    for mod in ("array_api_compat", "array_api_strict", "torch", "cupy", "threadpoolctl"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "?")
        except Exception:
            env[mod] = None
    if env.get("torch"):
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["torch_cuda"] = torch.cuda.is_available()
        try:
            env["torch_blas"] = [ln.strip() for ln in torch.__config__.show().splitlines()
                                 if "BLAS" in ln or "LAPACK" in ln][:4]
        except Exception:  # pragma: no cover
            pass
    if env.get("threadpoolctl"):
        try:
            from threadpoolctl import threadpool_info

            env["threadpools"] = [
                {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                for d in threadpool_info()
            ]
        except Exception:  # pragma: no cover
            pass
    return env


def _git_commit(path: str) -> str | None:
    """The commit (and '+dirty') of a source checkout xpnet runs from, else None."""
    import subprocess

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


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)
