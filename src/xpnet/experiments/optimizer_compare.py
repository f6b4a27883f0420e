"""Experiment 2: optimizers on MNIST (the book's figure 6-9, ``optimizer_compare_mnist.py``).

A 784-100-100-100-100-10 ReLU network (He init) per optimizer, all fed the same mini-batches of
128 for 2,000 iterations, with the book's default learning rates (SGD, Momentum and AdaGrad 0.01,
Adam 0.001).  Nesterov (lr 0.01) and RMSprop (lr 0.001; 0.01 is too large for it here)
are added to the book's four.

Book result: SGD learns slowest; Momentum, AdaGrad and Adam all drop the loss much faster, with
AdaGrad often a little ahead on this task.
"""

from __future__ import annotations

from typing import Any

from xpnet.experiments import _common
from xpnet.plotting import plot_loss_curves

NAME = "optimizer_compare"
TITLE = "Optimizers on MNIST (4×100 ReLU, batch 128)"

FULL = {
    "n_train": None,  # all training digits
    "hidden": [100, 100, 100, 100],
    "batch_size": 128,
    "iterations": 2000,
    "optimizers": {
        "SGD": {"lr": 0.01},
        "Momentum": {"lr": 0.01},
        "AdaGrad": {"lr": 0.01},
        "Adam": {"lr": 0.001},
        "Nesterov": {"lr": 0.01},
        "RMSprop": {"lr": 0.001},
    },
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"iterations": 150, "n_train": 2000, "hidden": [50, 50, 50, 50],
         "optimizers": {k: FULL["optimizers"][k] for k in ("SGD", "Momentum", "AdaGrad", "Adam")}}

MARKERS = {"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D", "Nesterov": "^",
           "RMSprop": "v"}


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train one network per optimizer on the same batches; record every iteration's loss.

    Result keys: ``"loss"`` (name -> per-iteration training loss), ``"final_loss"`` (mean of the
    last 10 % of iterations), ``"test_acc"`` (name -> test accuracy after training).
    """
    from xpnet import MultiLayerNet
    from xpnet.optim import get_optimizer

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], source=cfg["source"])
    runs = {}
    for name, opt_params in cfg["optimizers"].items():
        net = MultiLayerNet(784, list(cfg["hidden"]), 10, activation="relu",
                            weight_init_std="relu", backend=be, dtype=cfg["dtype"], seed=seed)
        runs[name] = (net, get_optimizer(name, **opt_params))
    data = (x_train, t_train, x_test, t_test)
    return _common.compare_runs(NAME, be, seed, quick, cfg, runs, data, progress)


def plot(result: dict, path) -> None:
    """Smoothed training loss per iteration for each optimizer (book: ylim 0..1)."""
    plot_loss_curves(result, path, title=TITLE, ymax=1, markers=MARKERS)

