"""Experiment 6: overfitting and weight decay (the book's figures 6-20 and 6-21).

A 784-(100×6)-10 ReLU network is trained on only 300 digits by SGD (lr 0.01, batch 100) for 201
epochs, once without weight decay and once with λ = 0.1 (L2 penalty ``λ/2 · ΣW²``), on the same
mini-batches; training and test accuracy are recorded once per epoch as in the book's
``overfit_weight_decay.py``.

Book result: without weight decay the training accuracy reaches 100 % while the test accuracy
stalls far below it -- overfitting.  With λ = 0.1 the gap between the two shrinks (and training
accuracy no longer reaches 100 %).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar
from xpnet.trainer import train_steps

NAME = "overfit_weight_decay"
TITLE = "Overfitting and weight decay"

FULL = {
    "n_train": 300,
    "n_test": None,  # the whole test set
    "hidden": [100, 100, 100, 100, 100, 100],
    "batch_size": 100,
    "epochs": 201,
    "lr": 0.01,
    "weight_decay_lambdas": [0.0, 0.1],
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"epochs": 80, "n_test": 500}


def gap(train_acc: list[float], test_acc: list[float], tail: float = 0.1) -> float:
    """Mean of train − test accuracy over the last ``tail`` fraction of the epochs."""
    k = max(1, int(round(len(train_acc) * tail)))
    return float(np.mean(np.asarray(train_acc[-k:]) - np.asarray(test_acc[-k:])))


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train one network per λ on the same mini-batches.

    Result keys: ``"runs"`` maps ``str(λ)`` to ``{"weight_decay_lambda", "train_acc",
    "test_acc", "gap"}`` (accuracies per epoch; gap = mean train − test over the last 10 % of
    the epochs).
    """
    from xpnet import SGD, MultiLayerNet

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], n_test=cfg["n_test"],
                                                           source=cfg["source"])
    dt = cfg["dtype"]
    xd, td = be.asarray(x_train, dtype=dt), be.asarray(np.asarray(t_train, dtype=np.int64))
    xe, te = be.asarray(x_test, dtype=dt), be.asarray(np.asarray(t_test, dtype=np.int64))
    nets = {
        lam: MultiLayerNet(784, list(cfg["hidden"]), 10, weight_decay_lambda=lam, backend=be,
                           dtype=dt, seed=seed)
        for lam in cfg["weight_decay_lambdas"]
    }
    runs = {lam: (net, SGD(lr=cfg["lr"])) for lam, net in nets.items()}
    hist = {lam: {"train_acc": [], "test_acc": []} for lam in nets}
    n = len(x_train)
    iter_per_epoch = max(n // cfg["batch_size"], 1)
    batches = _common.book_batches(be, np.random.default_rng(seed), n, cfg["batch_size"])
    epochs = int(cfg["epochs"])
    with _common.Stopwatch(be) as sw, progress_bar(total=epochs, desc=NAME,
                                                   enabled=progress) as bar:
        for _ in range(epochs):
            # the book's schedule: accuracies after the first step of each epoch
            train_steps(runs, xd, td, islice(batches, 1), xp=be.xp)
            for lam, net in nets.items():
                hist[lam]["train_acc"].append(net.accuracy(xd, td))
                hist[lam]["test_acc"].append(net.accuracy(xe, te))
            bar.update()
            train_steps(runs, xd, td, islice(batches, iter_per_epoch - 1), xp=be.xp)
    runs = {
        str(lam): {"weight_decay_lambda": float(lam), **h, "gap": gap(h["train_acc"],
                                                                     h["test_acc"])}
        for lam, h in hist.items()
    }
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=n, n_test=len(x_test), runs=runs,
        timings={"total_s": sw.seconds},
    )


def plot_runs(result: dict, path, title: str, label) -> None:
    """Side-by-side train/test accuracy panels, one per run (shared with ``dropout``)."""
    runs = result["runs"]
    fig = new_figure((5.5 * len(runs), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(runs), squeeze=False)).ravel()
    for ax, (key, r) in zip(axes, runs.items(), strict=False):
        x = np.arange(len(r["train_acc"]))
        every = max(1, len(x) // 20)
        ax.plot(x, r["train_acc"], marker="o", markevery=every, markersize=4, label="train")
        ax.plot(x, r["test_acc"], marker="s", markevery=every, markersize=4, label="test")
        ax.set_xlabel("epochs")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(f"{label(key, r)}\nfinal train {r['train_acc'][-1]:.3f}, test "
                     f"{r['test_acc'][-1]:.3f}, gap {r['gap']:.3f}", fontsize=10)
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    fig.suptitle(f"{title}: {result['n_train']} training digits, 784-{hidden}-10, SGD lr "
                 f"{cfg['lr']}, batch {cfg['batch_size']}; test on {result['n_test']} digits\n"
                 f"{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=90)


def plot(result: dict, path) -> None:
    """Training and test accuracy per epoch, without (left) and with (right) weight decay."""
    plot_runs(result, path, TITLE,
              lambda key, r: "no weight decay" if r["weight_decay_lambda"] == 0
              else f"weight decay λ = {r['weight_decay_lambda']:g}")
