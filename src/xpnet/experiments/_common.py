"""What only the experiments share: configs, the result head, the book's data and batches,
the side-by-side loss comparison of experiments 2 and 4, and saving.

The general plumbing lives in public modules: :mod:`xpnet.progress` (bars),
:mod:`xpnet.devicelog` (per-step scalars), :func:`xpnet.trainer.train_steps` (the step loop),
:mod:`xpnet.plotting` (figures, ``smooth_curve``), :mod:`xpnet.io` (JSON, atomic writes) and
:func:`xpnet.datasets.load_mnist_cached`.  Nothing here is public API.
"""

from __future__ import annotations

import numbers
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.backend import Backend, get_backend
from xpnet.devicelog import DeviceLog
from xpnet.io import to_jsonable, write_json
from xpnet.progress import progress
from xpnet.trainer import train_steps


def make_config(full: Mapping[str, Any], quick_changes: Mapping[str, Any], quick: bool,
                overrides: Mapping) -> dict:
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
    for key, value in overrides.items():
        _check_override(key, value, cfg[key])
    cfg.update(overrides)
    return cfg


def _check_override(key: str, value: Any, default: Any) -> None:
    """An override must have the kind of its default (a number for a number, a list for a
    list, ...): ``--set steps=abc`` fails here, naming the option, not deep in the run."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, numbers.Integral):
        ok, what = isinstance(value, numbers.Integral) and not isinstance(value, bool), \
            "an integer"
    elif isinstance(default, numbers.Real):
        ok, what = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
    elif isinstance(default, (list, tuple)):
        ok, what = isinstance(value, (list, tuple)), "a list (JSON, e.g. [1, 2])"
    elif isinstance(default, Mapping):
        ok, what = isinstance(value, Mapping), "a JSON object (e.g. {\"a\": 1})"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise TypeError(f"experiment option {key} must be {what} like its default "
                        f"{default!r}, got {value!r} ({type(value).__name__})")


def result_dict(name: str, be: Backend, seed: int, quick: bool, cfg: Mapping, **parts) -> dict:
    """The common head of every experiment's result, as plain JSON types."""
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


def save(result: Mapping, out_dir: str | os.PathLike, name: str, plot) -> tuple[Path, Path]:
    """Write ``NAME.json`` (atomically, floats to 6 digits) and ``NAME.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(out / f"{name}.json", result, digits=6)
    png_path = out / f"{name}.png"
    plot(result, png_path)
    return json_path, png_path


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


# -- the book's data and mini-batches ----------------------------------------------------------


def load_digits(n_train: int | None = None, *, n_test: int | None = None, source: str = "auto",
                seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST as the book's scripts use it: ``x_train[:n_train]`` and the whole test set (or
    its first ``n_test``).

    Host (NumPy, read-only) arrays ``x_train, t_train, x_test, t_test``; with ``seed`` the
    training subset is a seeded random one rather than the first ``n_train``.
    """
    from xpnet.datasets import load_mnist_cached

    (x_train, t_train), (x_test, t_test) = load_mnist_cached(source)
    if n_train is not None:
        if seed is not None:
            idx = np.random.default_rng(seed).permutation(len(x_train))[:n_train]
            x_train, t_train = x_train[idx], t_train[idx]
        else:
            x_train, t_train = x_train[:n_train], t_train[:n_train]
    if n_test is not None:
        x_test, t_test = x_test[:n_test], t_test[:n_test]
    return x_train, t_train, x_test, t_test


def book_batches(be: Backend, rng: np.random.Generator, n: int, batch_size: int,
                 count: int | None = None) -> Iterator[Any]:
    """The book's ``np.random.choice(train_size, batch_size)`` (with replacement) per step,
    drawn on the host and moved to the device; ``count`` batches (endless when None)."""
    i = 0
    while count is None or i < count:
        yield be.asarray(rng.integers(0, n, size=batch_size))
        i += 1


# -- experiments 2 and 4: several networks, the same mini-batches ------------------------------


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
                 data: tuple, enabled: bool | None) -> dict:
    """Train ``runs`` (label -> (net, optimizer)) on the same book mini-batches and return the
    result of a loss-curve comparison.

    Keys: ``"loss"`` (label -> the loss of every iteration's gradient pass), ``"final_loss"``
    (mean of the last 10 %), ``"test_acc"`` (label -> test accuracy after training).
    """
    x_train, t_train, x_test, t_test = data
    iterations = int(cfg["iterations"])
    rng = np.random.default_rng(seed)
    logs = {k: DeviceLog(be, flush_every=200) for k in runs}
    with Stopwatch(be) as sw:
        xd = be.asarray(x_train, dtype=cfg["dtype"])  # the training set goes over once
        td = be.asarray(np.asarray(t_train, dtype=np.int64))
        batches = book_batches(be, rng, len(x_train), cfg["batch_size"], iterations)
        with progress(total=iterations, desc=name, enabled=enabled) as bar:
            train_steps(runs, xd, td, batches, logs, bar, xp=be.xp)
        loss = {k: log.values() for k, log in logs.items()}
    test_acc = {k: accuracy(be, net, x_test, t_test, cfg["dtype"])
                for k, (net, _) in runs.items()}
    tail = max(1, len(next(iter(loss.values()))) // 10)
    final = {k: float(np.mean(v[-tail:])) for k, v in loss.items()}
    return result_dict(
        name, be, seed, quick, cfg,
        n_train=len(x_train), n_test=len(x_test),
        loss=loss, final_loss=final, test_acc=test_acc,
        timings={"train_s": sw.seconds, "per_iteration_ms": 1e3 * sw.seconds / max(1, iterations)},
    )
