"""Experiment 5: batch normalization over 16 weight scales (the book's figure 6-19).

For each initial weight std in ``logspace(0, -4, 16)``, two 784-100-100-100-100-100-10 ReLU
networks -- with and without batch normalization -- are trained side by side by SGD (lr 0.01,
batch 100) on the same 1,000 training digits for 20 epochs; training accuracy is recorded once
per epoch, as in the book's ``batch_norm_test.py``.

Book result: with batch normalization the network learns fast at almost every scale; without
it, learning is slow at most scales and does not happen at all when the weights are too small or
too large.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar
from xpnet.trainer import train_steps

NAME = "batch_norm"
TITLE = "Batch normalization vs none over initial weight scales"

FULL = {
    "n_train": 1000,
    "hidden": [100, 100, 100, 100, 100],
    "batch_size": 100,
    "epochs": 20,
    "lr": 0.01,
    "weight_scales": np.logspace(0, -4, num=16).tolist(),
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"epochs": 10, "n_train": 500, "weight_scales": np.logspace(0, -4, num=16)[::5].tolist()}


def _one_scale(be, w: float, cfg: dict, xd, td, n: int, seed: int) -> dict[str, list[float]]:
    from xpnet import SGD, MultiLayerNetExtend

    nets = {
        "bn": MultiLayerNetExtend(784, list(cfg["hidden"]), 10, weight_init_std=w,
                                  use_batchnorm=True, backend=be, dtype=cfg["dtype"], seed=seed),
        "plain": MultiLayerNetExtend(784, list(cfg["hidden"]), 10, weight_init_std=w,
                                     backend=be, dtype=cfg["dtype"], seed=seed),
    }
    runs = {k: (net, SGD(lr=cfg["lr"])) for k, net in nets.items()}
    acc: dict[str, list[float]] = {k: [] for k in nets}
    iter_per_epoch = max(n // cfg["batch_size"], 1)
    batches = _common.book_batches(be, np.random.default_rng(seed), n, cfg["batch_size"])
    for _ in range(int(cfg["epochs"])):
        # the book's schedule: accuracy after the first step of each epoch
        train_steps(runs, xd, td, islice(batches, 1), xp=be.xp)
        for k, net in nets.items():
            acc[k].append(net.accuracy(xd, td))
        train_steps(runs, xd, td, islice(batches, iter_per_epoch - 1), xp=be.xp)
    return acc


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train both networks at every weight scale.

    Result keys: ``"scales"``, a list (one per scale) of ``{"weight_scale", "bn_train_acc",
    "train_acc", "bn_mean_acc", "mean_acc"}`` (accuracy per epoch and its mean over the
    epochs -- the area under the curve, i.e. how fast it learns); ``"bn_faster_count"``: at how
    many scales batch norm's mean accuracy is higher.
    """
    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, _, _ = _common.load_digits(cfg["n_train"], source=cfg["source"])
    xd = be.asarray(x_train, dtype=cfg["dtype"])
    td = be.asarray(np.asarray(t_train, dtype=np.int64))
    scales = []
    with _common.Stopwatch(be) as sw:
        for w in progress_bar(cfg["weight_scales"], desc=NAME, enabled=progress):
            acc = _one_scale(be, float(w), cfg, xd, td, len(x_train), seed)
            scales.append({
                "weight_scale": float(w),
                "bn_train_acc": acc["bn"],
                "train_acc": acc["plain"],
                "bn_mean_acc": float(np.mean(acc["bn"])),
                "mean_acc": float(np.mean(acc["plain"])),
            })
    faster = sum(s["bn_mean_acc"] > s["mean_acc"] for s in scales)
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_train), scales=scales,
        bn_faster_count=int(faster), timings={"total_s": sw.seconds},
    )


def plot(result: dict, path) -> None:
    """The book's 4×4 grid: training accuracy per epoch, one panel per weight scale."""
    scales = result["scales"]
    n = len(scales)
    cols = 4 if n > 4 else n
    rows = -(-n // cols)
    fig = new_figure((3.2 * cols, 2.6 * rows + 0.8))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, (ax, s) in enumerate(zip(axes, scales, strict=False)):
        x = np.arange(len(s["bn_train_acc"]))
        ax.plot(x, s["bn_train_acc"], label="Batch Normalization", markevery=2, marker="o",
                markersize=3)
        ax.plot(x, s["train_acc"], linestyle="--", label="Normal (without BatchNorm)",
                markevery=2)
        ax.set_title(f"W: {s['weight_scale']:.3g}", fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        if i % cols:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("accuracy")
        if i < n - cols:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("epochs")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[n - 1].legend(loc="lower right", fontsize=7)
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    fig.suptitle(
        f"{TITLE}\ntraining accuracy on {result['n_train']} digits, 784-{hidden}-10 ReLU, SGD lr "
        f"{cfg['lr']}, batch {cfg['batch_size']}; W = initial weight std.  "
        f"BN learns faster at {result['bn_faster_count']} of {n} scales\n"
        f"{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=80)
