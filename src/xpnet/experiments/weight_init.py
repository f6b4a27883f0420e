"""Experiment 4: weight initialization on MNIST (book figure 6-15, ``weight_init_compare.py``).

Three 784-100-100-100-100-10 ReLU networks, identical but for the std of their initial weights
-- 0.01, Xavier (``1/sqrt(n)``) and He (``sqrt(2/n)``) -- trained by SGD (lr 0.01) on the same
mini-batches of 128 for 2,000 iterations.

Book result: with std 0.01 the network does not learn at all (the loss stays at ln 10 ≈ 2.3:
the signal vanishes layer by layer); Xavier learns; He learns fastest.
"""

from __future__ import annotations

from typing import Any

from xpnet.experiments import _common
from xpnet.plotting import plot_loss_curves

NAME = "weight_init"
TITLE = "Weight initialization on MNIST (4×100 ReLU, SGD lr 0.01, batch 128)"

FULL = {
    "n_train": None,
    "hidden": [100, 100, 100, 100],
    "batch_size": 128,
    "iterations": 2000,
    "lr": 0.01,
    "inits": {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"},
    "activation": "relu",
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"iterations": 300, "n_train": 2000, "hidden": [50, 50, 50, 50]}

MARKERS = {"std=0.01": "o", "Xavier": "s", "He": "D"}


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train one network per initialization on the same batches; record every iteration's loss.

    Result keys: ``"loss"`` (init -> per-iteration loss), ``"final_loss"`` (mean of the last
    10 %), ``"test_acc"`` (init -> test accuracy after training).
    """
    from xpnet import SGD, MultiLayerNet

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], source=cfg["source"])
    runs = {}
    for name, std in cfg["inits"].items():
        net = MultiLayerNet(784, list(cfg["hidden"]), 10, activation=cfg["activation"],
                            weight_init_std=std, backend=be, dtype=cfg["dtype"], seed=seed)
        runs[name] = (net, SGD(lr=cfg["lr"]))
    data = (x_train, t_train, x_test, t_test)
    return _common.compare_runs(NAME, be, seed, quick, cfg, runs, data, progress)


def plot(result: dict, path) -> None:
    """Smoothed training loss per iteration for each initialization (book: ylim 0..2.5)."""
    plot_loss_curves(result, path, title=TITLE, ymax=2.5, markers=MARKERS)
