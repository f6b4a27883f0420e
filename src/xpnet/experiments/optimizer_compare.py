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

import numpy as np

from xpnet.experiments import _common

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


def run(*, backend: Any = "numpy", seed: int = 0, quick: bool = False, device: Any = None,
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
    with _common.Stopwatch(be) as sw:
        loss = _common.train_side_by_side(
            be, runs, x_train, t_train, iterations=cfg["iterations"],
            batch_size=cfg["batch_size"], seed=seed, dtype=cfg["dtype"],
            desc=NAME, enabled=progress,
        )
    test_acc = {k: _common.accuracy(be, net, x_test, t_test, cfg["dtype"])
                for k, (net, _) in runs.items()}
    tail = max(1, len(next(iter(loss.values()))) // 10)
    final = {k: float(np.mean(v[-tail:])) for k, v in loss.items()}
    return _common.result_dict(
        NAME, be, seed, quick, cfg,
        n_train=len(x_train), n_test=len(x_test),
        loss=loss, final_loss=final, test_acc=test_acc,
        timings={"train_s": sw.seconds,
                 "per_iteration_ms": 1e3 * sw.seconds / max(1, cfg["iterations"])},
    )


def plot(result: dict, path) -> None:
    """Smoothed training loss per iteration for each optimizer (book: ylim 0..1)."""
    fig = _common.new_figure((8, 5.5))
    ax = fig.subplots()
    n_iter = len(next(iter(result["loss"].values())))
    every = max(1, n_iter // 20)
    for name, curve in result["loss"].items():
        x = np.arange(len(curve))
        acc = result["test_acc"][name]
        ax.plot(x, _common.smooth_curve(curve), marker=MARKERS.get(name, "."), markevery=every,
                label=f"{name} (test acc {acc:.3f})")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend()
    hidden = "-".join(str(h) for h in result["config"]["hidden"])
    ax.set_title(f"{TITLE}\n784-{hidden}-10, {result['n_train']} training digits, "
                 f"loss smoothed (Kaiser window 11)", fontsize=10)
    fig.suptitle(_common.subtitle(result), fontsize=8)
    fig.savefig(path, dpi=90)

