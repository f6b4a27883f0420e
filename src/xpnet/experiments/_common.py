"""Shared plumbing for the experiments: configs, data, device-side logs, progress, saving.

Nothing here is part of the public API; each experiment module exposes ``run`` and ``plot``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.backend import Backend, get_backend

__all__ = [
    "DeviceLog",
    "Stopwatch",
    "batch_indices",
    "load_digits",
    "make_config",
    "new_figure",
    "progress",
    "result_dict",
    "save",
    "smooth_curve",
    "to_jsonable",
]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def make_config(
    full: Mapping[str, Any], quick_changes: Mapping[str, Any], quick: bool, overrides: Mapping
) -> dict:
    """The full config, shrunk by ``quick_changes`` when ``quick``, then ``overrides`` applied.

    Unknown override keys raise ``TypeError`` (as an unknown keyword argument would).
    """
    cfg = dict(full)
    if quick:
        cfg.update(quick_changes)
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise TypeError(
            f"unknown experiment option(s) {', '.join(unknown)}; "
            f"valid options are: {', '.join(sorted(cfg))}"
        )
    cfg.update(overrides)
    return cfg


def result_dict(name: str, be: Backend, seed: int, quick: bool, cfg: Mapping, **parts) -> dict:
    """The common head of every experiment's result."""
    out = {
        "experiment": name,
        "backend": be.name,
        "device": str(be.device),
        "seed": int(seed),
        "quick": bool(quick),
        "config": dict(cfg),
    }
    out.update(parts)
    return to_jsonable(out)


def resolve_backend(backend: Any, device: Any = None) -> Backend:
    return get_backend(backend, device)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _mnist(source: str) -> tuple:
    from xpnet.datasets import load_mnist

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_mnist(normalize=True, flatten=True, one_hot_label=False, source=source)
    # say the fallback once per process (the cache keeps it from repeating)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return data


def load_digits(
    n_train: int | None = None, *, source: str = "auto", seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST as the book's scripts use it: ``x_train[:n_train]`` and the whole test set.

    Returns host (NumPy) arrays ``x_train, t_train, x_test, t_test``; images flattened to 784
    floats in [0, 1], integer labels.  With ``seed`` the training subset is a seeded random one
    rather than the first ``n_train``.
    """
    (x_train, t_train), (x_test, t_test) = _mnist(source)
    if n_train is not None:
        if seed is not None:
            idx = np.random.default_rng(seed).permutation(len(x_train))[:n_train]
            x_train, t_train = x_train[idx], t_train[idx]
        else:
            x_train, t_train = x_train[:n_train], t_train[:n_train]
    return x_train, t_train, x_test, t_test


def batch_indices(rng: np.random.Generator, n: int, batch_size: int) -> np.ndarray:
    """The book's ``np.random.choice(train_size, batch_size)`` (with replacement), on the host."""
    return rng.integers(0, n, size=batch_size)


# --------------------------------------------------------------------------------------------
# device-side logs: no host sync per step
# --------------------------------------------------------------------------------------------


class DeviceLog:
    """Collects per-step scalars (0-d device arrays) and converts them in batches.

    ``append`` never synchronizes; ``values()`` (or ``flush()``) stacks whatever is pending into
    one array and copies it to the host at once.
    """

    def __init__(self, be: Backend, flush_every: int = 200):
        self.be = be
        self.flush_every = int(flush_every)
        self._pending: list = []
        self._host: list[float] = []

    def append(self, value: Any) -> None:
        self._pending.append(value)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if all(isinstance(v, (int, float)) for v in pending):
            self._host.extend(float(v) for v in pending)
            return
        xp = self.be.xp
        arrs = [v if self.be.is_array(v) else self.be.asarray(v) for v in pending]
        arrs = [xp.reshape(a, ()) if a.ndim else a for a in arrs]
        stacked = self.be.to_numpy(xp.stack(arrs))
        self._host.extend(float(v) for v in np.asarray(stacked, dtype=np.float64).ravel())

    def values(self) -> list[float]:
        self.flush()
        return list(self._host)

    def __len__(self) -> int:
        return len(self._host) + len(self._pending)


# --------------------------------------------------------------------------------------------
# progress and time
# --------------------------------------------------------------------------------------------


def _want_progress(flag: bool | None) -> bool:
    if flag is not None:
        return bool(flag)
    if os.environ.get("XPNET_PROGRESS", "").lower() in ("0", "false", "no"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             enabled: bool | None = None, **kw: Any):
    """A tqdm progress bar when tqdm is installed and wanted, else a silent stand-in."""
    if _want_progress(enabled):
        try:
            from tqdm.auto import tqdm

            return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, **kw)
        except ImportError:
            pass
    return _Silent(iterable, total)


class _Silent:
    def __init__(self, iterable, total):
        self.iterable = iterable if iterable is not None else range(total or 0)

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *a, **k) -> None:
        pass

    def set_description(self, *a, **k) -> None:
        pass

    def close(self) -> None:
        pass


class Stopwatch:
    """Wall time of a block, synchronizing the device at both ends."""

    def __init__(self, be: Backend | None = None):
        self.be = be
        self.seconds = 0.0

    def __enter__(self):
        if self.be is not None:
            self.be.synchronize()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.be is not None:
            self.be.synchronize()
        self.seconds = time.perf_counter() - self._t0


# --------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------


def smooth_curve(x: Iterable[float]) -> list[float]:
    """The book's ``smooth_curve``: a Kaiser window of 11 points, reflected at the ends."""
    x = np.asarray(list(x), dtype=np.float64)
    window_len = 11
    if len(x) < window_len:
        return x.tolist()
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5].tolist()


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """NumPy scalars/arrays, tuples and paths -> plain JSON types; non-finite floats -> None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _rounded(obj: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits (the JSON files stay small and readable)."""
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    return obj


def new_figure(figsize: tuple[float, float], layout: str | None = "constrained"):
    """A matplotlib Figure that does not touch pyplot's global state (renders with Agg).

    Constrained layout is slow with many axes; figures with dozens of panels pass
    ``layout=None`` and place them with ``subplots_adjust``.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def save(result: Mapping, out_dir: str | os.PathLike, name: str, plot) -> tuple[Path, Path]:
    """Write ``NAME.json`` and ``NAME.png`` under ``out_dir`` and return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    png_path = out / f"{name}.png"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_rounded(to_jsonable(result)), indent=1) + "\n")
    os.replace(tmp, json_path)
    plot(result, png_path)
    return json_path, png_path


def subtitle(result: Mapping) -> str:
    """A one-line provenance note for figure footers."""
    q = " (quick)" if result.get("quick") else ""
    return (f"xpnet · backend {result.get('backend')} on {result.get('device')} · "
            f"seed {result.get('seed')}{q}")


# --------------------------------------------------------------------------------------------
# the book's side-by-side loop: several networks, the same mini-batches
# --------------------------------------------------------------------------------------------


def train_side_by_side(
    be: Backend,
    runs: Mapping[str, tuple[Any, Any]],
    x_train: np.ndarray,
    t_train: np.ndarray,
    *,
    iterations: int,
    batch_size: int,
    seed: int,
    dtype: str = "float32",
    desc: str = "",
    enabled: bool | None = None,
) -> dict[str, list[float]]:
    """Train every ``(network, optimizer)`` of ``runs`` on the same mini-batches.

    The book's loop (``grads = net.gradient(x, t); optimizer.update(net.params, grads)``) with
    the training set copied to the device once, batch indices drawn on the host, and the loss of
    every step kept on the device until the log flushes.  Returns the per-iteration losses: the
    loss of the forward pass that computed the gradient (the book logs one more forward pass
    after the update; the curves are the same to the eye and this costs a third less).
    """
    xp = be.xp
    xd = be.asarray(x_train, dtype=dtype)
    td = be.asarray(np.asarray(t_train, dtype=np.int64))
    rng = np.random.default_rng(seed)
    logs = {k: DeviceLog(be) for k in runs}
    bar = progress(range(int(iterations)), desc=desc, enabled=enabled)
    for _ in bar:
        idx = be.asarray(batch_indices(rng, len(x_train), batch_size))
        xb = xp.take(xd, idx, axis=0)
        tb = xp.take(td, idx, axis=0)
        for key, (net, opt) in runs.items():
            grads = net.gradient(xb, tb)
            opt.update(net.params, grads)
            loss = getattr(net, "last_loss", None)  # the gradient's own forward pass
            logs[key].append(net.loss(xb, tb) if loss is None else loss)
    return {k: log.values() for k, log in logs.items()}


def accuracy(be: Backend, net: Any, x: np.ndarray, t: np.ndarray, dtype: str = "float32",
             batch: int = 2000) -> float:
    """``net.accuracy`` over host data in chunks (bounded device memory)."""
    n = len(x)
    correct = 0.0
    for i in range(0, n, batch):
        xb = be.asarray(x[i:i + batch], dtype=dtype)
        tb = be.asarray(np.asarray(t[i:i + batch], dtype=np.int64))
        correct += float(net.accuracy(xb, tb)) * len(x[i:i + batch])
    return correct / max(n, 1)


def compare_runs(name: str, be: Backend, seed: int, quick: bool, cfg: Mapping, runs: dict,
                 data: tuple, progress: bool | None) -> dict:
    """Train ``runs`` (label -> (net, optimizer)) side by side on the same mini-batches and
    return the result of a loss-curve comparison (experiments 2 and 4).

    Keys: ``"loss"`` (label -> per-iteration loss), ``"final_loss"`` (mean of the last 10 %),
    ``"test_acc"`` (label -> test accuracy after training).
    """
    x_train, t_train, x_test, t_test = data
    with Stopwatch(be) as sw:
        loss = train_side_by_side(
            be, runs, x_train, t_train, iterations=cfg["iterations"],
            batch_size=cfg["batch_size"], seed=seed, dtype=cfg["dtype"],
            desc=name, enabled=progress,
        )
    test_acc = {k: accuracy(be, net, x_test, t_test, cfg["dtype"])
                for k, (net, _) in runs.items()}
    tail = max(1, len(next(iter(loss.values()))) // 10)
    final = {k: float(np.mean(v[-tail:])) for k, v in loss.items()}
    return result_dict(
        name, be, seed, quick, cfg,
        n_train=len(x_train), n_test=len(x_test),
        loss=loss, final_loss=final, test_acc=test_acc,
        timings={"train_s": sw.seconds,
                 "per_iteration_ms": 1e3 * sw.seconds / max(1, cfg["iterations"])},
    )


def plot_loss_curves(result: Mapping, path: Any, *, title: str, ymax: float,
                     markers: Mapping[str, str]) -> None:
    """Smoothed loss per iteration, one curve per run, with its test accuracy in the legend."""
    fig = new_figure((8, 5.5))
    ax = fig.subplots()
    n_iter = len(next(iter(result["loss"].values())))
    every = max(1, n_iter // 20)
    for label, curve in result["loss"].items():
        acc = result["test_acc"][label]
        ax.plot(np.arange(len(curve)), smooth_curve(curve), marker=markers.get(label, "."),
                markevery=every, label=f"{label} (test acc {acc:.3f})")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_ylim(0, ymax)
    ax.grid(True, alpha=0.3)
    ax.legend()
    hidden = "-".join(str(h) for h in result["config"]["hidden"])
    ax.set_title(f"{title}\n784-{hidden}-10, {result['n_train']} training digits, "
                 "loss smoothed (Kaiser window 11)", fontsize=10)
    fig.suptitle(subtitle(result), fontsize=8)
    fig.savefig(path, dpi=90)
