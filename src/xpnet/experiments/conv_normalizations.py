"""Experiment 11: batch, group, instance, layer and no normalization on the book's conv net.

cs231n lecture 7's picture of the normalization family (Wu & He 2018, figure 2,
https://arxiv.org/abs/1803.08494): every method normalizes a feature map ``(N, C, H, W)`` by the
mean and variance of a different set of its values -- batch norm over ``(N, H, W)`` per channel,
layer norm over ``(C, H, W)`` per sample, instance norm over ``(H, W)`` per sample and channel,
group norm over ``(C/G, H, W)`` per sample and group of channels -- and here each is put between
the convolution and the ReLU of the book's chapter-7 ``SimpleConvNet`` (conv 30x5x5 - relu -
pool 2 - 100 - relu - 10, ``weight_init_std=0.01``, Adam lr 0.001, batch 100, as
``ch07/train_convnet.py``), trained side by side from the same initial weights on the same
mini-batches: 8,000 training digits, test accuracy on 2,000 after every epoch.

What to expect: with the book's small initial weights (std 0.01) the convolution's outputs are
tiny and the network without normalization is slow to start; every normalization rescales them
and learns faster in the first epochs.  Batch norm uses statistics of the whole mini-batch (and
running averages at inference); the other three use each image's own statistics, so they work
the same at any batch size -- the reason group norm exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, smooth_curve, subtitle
from xpnet.progress import progress as progress_bar

NAME = "conv_normalizations"
TITLE = "Normalizations of the conv net's feature maps"

#: the methods compared, in the order of the figure (``"none"``: the book's network)
NORMALIZATIONS = ("none", "batch", "layer", "instance", "group")

FULL = {
    "n_train": 8000,
    "n_test": None,
    "filter_num": 30,
    "filter_size": 5,
    "hidden_size": 100,
    "weight_init_std": 0.01,
    "num_groups": None,  # SimpleConvNet's default: 6 for 30 filters
    "batch_size": 100,
    "epochs": 10,
    "optimizer": "Adam",
    "lr": 0.001,
    "normalizations": list(NORMALIZATIONS),
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"n_train": 1000, "n_test": 500, "epochs": 3, "filter_num": 12, "hidden_size": 50}


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train one conv net per normalization with the Trainer (same seed: same initial weights
    and mini-batches).

    Result keys: ``"runs"`` maps each normalization to ``{"normalization", "num_groups",
    "train_loss" (every step), "train_acc", "test_acc" (every epoch), "final_test_acc",
    "mean_test_acc" (the area under the test curve: how fast it learns), "epoch_time_s"}``.
    """
    from xpnet import SimpleConvNet, Trainer

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    unknown = sorted(set(cfg["normalizations"]) - set(NORMALIZATIONS))
    if unknown:
        raise ValueError(f"unknown normalizations {unknown}; valid: {', '.join(NORMALIZATIONS)}")
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], n_test=cfg["n_test"],
                                                           source=cfg["source"])
    runs = {}
    with _common.Stopwatch(be) as sw:
        for norm in progress_bar(cfg["normalizations"], desc=NAME, enabled=progress):
            net = SimpleConvNet(
                input_dim=(1, 28, 28),
                conv_param={"filter_num": cfg["filter_num"], "filter_size": cfg["filter_size"],
                            "pad": 0, "stride": 1},
                hidden_size=cfg["hidden_size"], output_size=10,
                weight_init_std=cfg["weight_init_std"], backend=be, dtype=cfg["dtype"],
                seed=seed, normalization=None if norm == "none" else norm,
                num_groups=cfg["num_groups"] if norm == "group" else None,
            )
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=cfg["epochs"],
                              mini_batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
                              optimizer_param={"lr": cfg["lr"]}, verbose=False, seed=seed)
            trainer.train()
            runs[norm] = {
                "normalization": norm,
                "num_groups": net.num_groups,
                "train_loss": list(trainer.train_loss_list),
                "train_acc": list(trainer.train_acc_list),
                "test_acc": list(trainer.test_acc_list),
                "final_test_acc": float(trainer.test_acc_list[-1]),
                "mean_test_acc": float(np.mean(trainer.test_acc_list)),
                "epoch_time_s": float(np.median(trainer.epoch_times)),
            }
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_train), n_test=len(x_test), runs=runs,
        iter_per_epoch=max(len(x_train) // cfg["batch_size"], 1),
        timings={"total_s": sw.seconds},
    )


# -- the figure ------------------------------------------------------------------------------

#: which values of the ``(N, C, H*W)`` cube each method averages over, as ``(n0, n1), (c0,
#: c1)`` in units of the drawn cube (all of H*W always): Wu & He's figure 2
_SETS = {
    "batch": ((0.0, 1.0), (5 / 6, 1.0)),
    "layer": ((0.0, 1 / 6), (0.0, 1.0)),
    "instance": ((0.0, 1 / 6), (5 / 6, 1.0)),
    "group": ((0.0, 1 / 6), (0.5, 1.0)),
}


def _box(ax, x0: float, n, c, face, edge, alpha) -> None:
    """The visible faces (front, top, and right when it is the cube's) of the block ``n x c x
    [0, 1]`` of the unit cube drawn at ``x0``, in an oblique projection."""
    from matplotlib.patches import Polygon

    dx, dy = 0.45, 0.3  # the depth axis (H, W)
    (n0, n1), (c0, c1) = (x0 + n[0], x0 + n[1]), c
    faces = [
        [(n0, c0), (n1, c0), (n1, c1), (n0, c1)],
        [(n0, c1), (n1, c1), (n1 + dx, c1 + dy), (n0 + dx, c1 + dy)],
    ]
    if n[1] >= 1.0:
        faces.append([(n1, c0), (n1 + dx, c0 + dy), (n1 + dx, c1 + dy), (n1, c1)])
    for shade, pts in zip((1.0, 0.8, 0.65), faces, strict=False):
        ax.add_patch(Polygon(pts, closed=True, facecolor=face, edgecolor=edge,
                             alpha=alpha * shade, linewidth=0.8))


def _cubes(ax, names) -> None:
    """Wu & He's figure 2: one cube per method, the values normalized together shaded."""
    for i, name in enumerate(names):
        x0 = i * 1.9
        ax.text(x0 + 0.7, 1.55, name, ha="center", fontsize=9)
        if name not in _SETS:
            ax.text(x0 + 0.7, 0.5, "(no\nnormalization)", ha="center", va="center",
                    fontsize=8, color="0.4")
            continue
        n, c = _SETS[name]
        _box(ax, x0, (0.0, 1.0), (0.0, 1.0), "white", "0.3", 1.0)
        _box(ax, x0, n, c, "tab:blue", "tab:blue", 0.75)
        ax.text(x0 + 0.5, -0.12, "N", ha="center", va="top", fontsize=8)
        ax.text(x0 - 0.08, 0.5, "C", ha="right", va="center", fontsize=8)
        ax.text(x0 + 1.3, 0.05, "H, W", ha="left", va="bottom", fontsize=8, rotation=33)
    ax.set_xlim(-0.3, 1.9 * len(names))
    ax.set_ylim(-0.35, 1.75)
    ax.set_aspect("equal")
    ax.axis("off")


def plot(result: dict, path) -> None:
    """Top: which values each method normalizes together (Wu & He's figure 2).  Bottom: the
    training loss per step (smoothed) and the test accuracy per epoch of every method."""
    runs = result["runs"]
    names = list(runs)
    fig = new_figure((12, 8.2))
    grid = fig.add_gridspec(2, 2, height_ratios=[0.8, 1.4])
    _cubes(fig.add_subplot(grid[0, :]), names)
    ax_loss, ax_acc = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    ipe = max(1, int(result.get("iter_per_epoch", 1)))
    for i, name in enumerate(names):
        r = runs[name]
        label = name if name != "group" else f"group ({r['num_groups']} groups)"
        loss = r["train_loss"]
        ax_loss.plot(np.arange(1, len(loss) + 1) / ipe, smooth_curve(loss), color=f"C{i}",
                     label=label)
        ep = np.arange(1, len(r["test_acc"]) + 1)
        ax_acc.plot(ep, r["test_acc"], marker="o", markersize=3, color=f"C{i}",
                    label=f"{label}: {r['final_test_acc']:.4f}, {r['epoch_time_s']:.2f} s/epoch")
    ax_loss.set_xlabel("epochs")
    ax_loss.set_ylabel("training loss (smoothed)")
    ax_loss.set_ylim(bottom=0)
    ax_loss.grid(True, alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_acc.set_xlabel("epochs")
    ax_acc.set_ylabel("test accuracy")
    lo = min(min(r["test_acc"]) for r in runs.values())
    ax_acc.set_ylim(max(0.0, min(lo, 0.9) - 0.02), 1.0)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right", title="final test acc, time")
    cfg = result["config"]
    fig.suptitle(
        f"{TITLE} (cs231n lecture 7; Wu & He 2018, fig. 2): SimpleConvNet conv "
        f"{cfg['filter_num']}x{cfg['filter_size']}x{cfg['filter_size']} - [norm] - relu - pool 2"
        f" - {cfg['hidden_size']} - 10, init std {cfg['weight_init_std']}\n{cfg['optimizer']} lr "
        f"{cfg['lr']}, batch {cfg['batch_size']}, {result['n_train']} training digits, test on "
        f"{result['n_test']}\n{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=90)
