"""Experiment 9: batch normalization on a small tabular task, the Titanic passengers.

Features Pclass, Fare and Age (missing ages filled with the training median, standardized on
the training split) predict Survived.  Two networks with two hidden layers of 50 ReLU units --
with and without batch normalization -- are trained by :class:`xpnet.Trainer` (SGD lr 0.01,
batch 32) for 200 epochs on a stratified 80 / 20 split of the 1,309 passengers.

What to expect: these three features carry little information (about 70 % accuracy, against the
62 % of always answering "died"), and with standardized inputs and only two layers batch norm
has little to fix: both reach the same accuracy, batch norm's curves are noisier (each mini-batch
of 32 normalizes with its own statistics).  Compare with experiment 5, where depth and badly
scaled weights make batch norm decisive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar

NAME = "titanic"
TITLE = "Titanic survival (Pclass, Fare, Age): batch norm vs none"

FULL = {
    "features": ["Pclass", "Fare", "Age"],
    "test_ratio": 0.2,
    "hidden": [50, 50],
    "batch_size": 32,
    "epochs": 200,
    "optimizer": "SGD",
    "lr": 0.01,
    "dtype": "float32",
}
QUICK = {"epochs": 30, "batch_size": 100}


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train both networks with the Trainer.

    Result keys: ``"runs"`` maps ``"batchnorm"`` / ``"plain"`` to ``{"train_acc", "test_acc",
    "train_loss", "final_test_acc", "mean_test_acc", "epoch_time_s"}``; ``"majority_baseline"``
    is the test accuracy of always predicting the commonest training label.
    """
    from xpnet import MultiLayerNetExtend, Trainer
    from xpnet.datasets import load_titanic

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    (x_train, t_train), (x_test, t_test) = load_titanic(
        tuple(cfg["features"]), test_ratio=cfg["test_ratio"], seed=seed)
    majority = int(np.bincount(t_train).argmax())
    runs = {}
    with _common.Stopwatch(be) as sw:
        for key in progress_bar(["plain", "batchnorm"], desc=NAME, enabled=progress):
            net = MultiLayerNetExtend(x_train.shape[1], list(cfg["hidden"]), 2,
                                      use_batchnorm=key == "batchnorm", backend=be,
                                      dtype=cfg["dtype"], seed=seed)
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=cfg["epochs"],
                              mini_batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
                              optimizer_param={"lr": cfg["lr"]}, verbose=False, seed=seed)
            trainer.train()
            runs[key] = {
                "train_acc": list(trainer.train_acc_list),
                "test_acc": list(trainer.test_acc_list),
                "train_loss": list(trainer.train_loss_list),
                "iter_per_epoch": trainer.iter_per_epoch,
                "final_test_acc": float(trainer.test_acc_list[-1]),
                "mean_test_acc": float(np.mean(trainer.test_acc_list)),
                "epoch_time_s": sum(trainer.epoch_times) / max(1, len(trainer.epoch_times)),
            }
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_train), n_test=len(x_test), runs=runs,
        majority_baseline=float(np.mean(t_test == majority)),
        timings={"total_s": sw.seconds},
    )


def plot(result: dict, path) -> None:
    """Accuracy per epoch (train dashed, test solid) and the smoothed training loss."""
    runs = result["runs"]
    fig = new_figure((12, 4.8))
    ax_acc, ax_loss = fig.subplots(1, 2)
    labels = {"batchnorm": "Batch Normalization", "plain": "Normal (without BatchNorm)"}
    for i, (key, r) in enumerate(runs.items()):
        x = np.arange(1, len(r["test_acc"]) + 1)
        color = f"C{i}"
        ax_acc.plot(x, r["test_acc"], color=color,
                    label=f"{labels[key]}: test (final {r['final_test_acc']:.3f})")
        ax_acc.plot(x, r["train_acc"], "--", color=color, alpha=0.7, label=f"{labels[key]}: train")
        loss = np.asarray(r["train_loss"])
        ipe = max(1, int(r["iter_per_epoch"]))
        per_epoch = loss[: len(loss) // ipe * ipe].reshape(-1, ipe).mean(axis=1)
        ax_loss.plot(np.arange(1, len(per_epoch) + 1), per_epoch, color=color, label=labels[key])
    ax_acc.axhline(result["majority_baseline"], color="0.5", linestyle=":",
                   label=f"always 'died' ({result['majority_baseline']:.3f})")
    ax_acc.set_xlabel("epochs")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0.5, 0.8)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_acc.set_title("accuracy")
    ax_loss.set_xlabel("epochs")
    ax_loss.set_ylabel("training loss (mean per epoch)")
    ax_loss.grid(True, alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_loss.set_title("loss")
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    fig.suptitle(
        f"{TITLE}\n{result['n_train']} training / {result['n_test']} test passengers, "
        f"{len(cfg['features'])}-{hidden}-2 ReLU, {cfg['optimizer']} lr {cfg['lr']}, batch "
        f"{cfg['batch_size']}\n{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=90)
