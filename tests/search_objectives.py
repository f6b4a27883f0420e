"""Objectives for tests/test_search.py, importable by worker processes (spawned interpreters,
Dask workers): a module of its own, not the test module, so that workers need not import pytest.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def score(params: dict, budget) -> float:
    """A deterministic 'validation accuracy': best at lr = 1e-3, a little better with budget."""
    b = 1 if budget is None else budget
    return 1.0 - abs(math.log10(params["lr"]) + 3.0) / 10.0 + 0.001 * b


def toy(params, *, seed, budget):
    """Metrics from the parameters, the seed and the budget alone."""
    return {"val_acc": score(params, budget), "seed_mod": float(seed % 1000),
            "curves": {"val_acc": [score(params, budget)] * (budget or 1)}}


def bad_trials(params, *, seed, budget):
    """Trial points with lr < 1e-4 raise, lr > 1e-2 give NaN, weight_decay < 1e-7 no metric."""
    if params["lr"] < 1e-4:
        raise ArithmeticError(f"diverged at lr={params['lr']:.2e}")
    if params["lr"] > 1e-2:
        return {"val_acc": float("nan")}
    if params.get("weight_decay", 1.0) < 1e-7:
        return {"train_acc": 0.5}
    return toy(params, seed=seed, budget=budget)


class Slow:
    """``toy`` after a pause (for the test that kills a search part-way)."""

    def __init__(self, pause: float):
        self.pause = pause

    def __call__(self, params, *, seed, budget):
        time.sleep(self.pause)
        return toy(params, seed=seed, budget=budget)

    def describe(self):
        return {"type": "Slow", "pause": self.pause}


class InterruptAt:
    """``toy``, but a KeyboardInterrupt (a crash of the driver) at one (trial point, budget)."""

    def __init__(self, lr: float, budget):
        self.lr, self.budget = lr, budget

    def __call__(self, params, *, seed, budget):
        if params["lr"] == self.lr and budget == self.budget:
            raise KeyboardInterrupt
        return toy(params, seed=seed, budget=budget)

    def describe(self):  # the same search as toy
        return {"callable": f"{toy.__module__}.toy"}


class DieOnce:
    """Kills its worker process (``os._exit``) on the trial with ``lr == lr``, the first time
    only (a marker file remembers); other trials are ``toy``."""

    def __init__(self, lr: float, marker: str, always: bool = False):
        self.lr, self.marker, self.always = lr, marker, always

    def __call__(self, params, *, seed, budget):
        if params["lr"] == self.lr:
            marker = Path(self.marker)
            if self.always or not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(17)
        return toy(params, seed=seed, budget=budget)


def where(params, *, seed, budget):
    """Reports the process it ran in and its thread and malloc settings."""
    env = {"openblas": "OPENBLAS_NUM_THREADS", "xpnet_threads": "XPNET_NUM_THREADS",
           "mmap_threshold": "MALLOC_MMAP_THRESHOLD_", "trim_threshold": "MALLOC_TRIM_THRESHOLD_"}
    out = {k: float(os.environ.get(v, "0")) for k, v in env.items()}
    return {"val_acc": 0.5, "pid": float(os.getpid()), **out}


def no_save_net_class():
    """A MultiLayerNet without a ``save`` method."""
    from xpnet import MultiLayerNet

    class NoSaveNet(MultiLayerNet):
        save = None

    return NoSaveNet


class Heavy:
    """``toy`` carrying 12 MB of data (as a NetworkObjective on 4,000 digits would)."""

    def __init__(self):
        import numpy as np

        self.data = np.zeros(3_000_000, dtype=np.float32)

    def __call__(self, params, *, seed, budget):
        return {**toy(params, seed=seed, budget=budget), "size": float(self.data.size)}
