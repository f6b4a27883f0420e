"""Experiment 4: weight initialization on MNIST (book figure 6-15, ``weight_init_compare.py``).

Three 784-100-100-100-100-10 ReLU networks, identical but for the std of their initial weights
-- 0.01, Xavier (``1/sqrt(n)``) and He (``sqrt(2/n)``) -- trained by SGD (lr 0.01) on the same
mini-batches of 128 for 2,000 iterations.

Book result: with std 0.01 the network does not learn at all (the loss stays at ln 10 ≈ 2.3:
the signal vanishes layer by layer); Xavier learns; He learns fastest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.experiments import _common

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


def run(*, backend: Any = "numpy", seed: int = 0, quick: bool = False, device: Any = None,
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
    """Smoothed training loss per iteration for each initialization (book: ylim 0..2.5)."""
    fig = _common.new_figure((8, 5.5))
    ax = fig.subplots()
    n_iter = len(next(iter(result["loss"].values())))
    every = max(1, n_iter // 20)
    for name, curve in result["loss"].items():
        acc = result["test_acc"][name]
        ax.plot(np.arange(len(curve)), _common.smooth_curve(curve),
                marker=MARKERS.get(name, "."), markevery=every,
                label=f"{name} (test acc {acc:.3f})")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_ylim(0, 2.5)
    ax.grid(True, alpha=0.3)
    ax.legend()
    hidden = "-".join(str(h) for h in result["config"]["hidden"])
    ax.set_title(f"{TITLE}\n784-{hidden}-10, {result['n_train']} training digits, "
                 "loss smoothed (Kaiser window 11)", fontsize=10)
    fig.suptitle(_common.subtitle(result), fontsize=8)
    fig.savefig(path, dpi=90)
