"""Experiment 7: dropout against overfitting (the book's figure 6-23, ``overfit_dropout.py``).

The overfitting setup of experiment 6 -- a 784-(100×6)-10 ReLU network, 300 training digits,
SGD lr 0.01, batch 100 -- trained with :class:`xpnet.Trainer` for 301 epochs, once without and
once with dropout (ratio 0.2, the book's non-inverted dropout).

Book result: without dropout training accuracy hits 100 % and the test accuracy stays far below;
with dropout the gap between training and test accuracy shrinks.
"""

from __future__ import annotations

from typing import Any

from xpnet.experiments import _common
from xpnet.experiments.overfit_weight_decay import gap, plot_runs
from xpnet.progress import progress as progress_bar

NAME = "dropout"
TITLE = "Dropout against overfitting"

FULL = {
    "n_train": 300,
    "n_test": None,
    "hidden": [100, 100, 100, 100, 100, 100],
    "batch_size": 100,
    "epochs": 301,
    "optimizer": "SGD",
    "lr": 0.01,
    "dropout_ratios": [0.0, 0.2],
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"epochs": 80, "n_test": 500, "lr": 0.05}  # a larger step: dropout learns in 80 epochs


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train one network per dropout ratio (0 = no dropout layers) with the Trainer.

    Result keys: ``"runs"`` maps ``str(ratio)`` to ``{"dropout_ratio", "train_acc",
    "test_acc", "train_loss", "gap", "epoch_time_s"}``.
    """
    from xpnet import MultiLayerNetExtend, Trainer

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], n_test=cfg["n_test"],
                                                           source=cfg["source"])
    runs = {}
    with _common.Stopwatch(be) as sw:
        for ratio in progress_bar(cfg["dropout_ratios"], desc=NAME, enabled=progress):
            net = MultiLayerNetExtend(784, list(cfg["hidden"]), 10, use_dropout=ratio > 0,
                                      dropout_ration=ratio or 0.5, backend=be,
                                      dtype=cfg["dtype"], seed=seed)
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=cfg["epochs"],
                              mini_batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
                              optimizer_param={"lr": cfg["lr"]}, verbose=False, seed=seed)
            trainer.train()
            runs[str(ratio)] = {
                "dropout_ratio": float(ratio),
                "train_acc": list(trainer.train_acc_list),
                "test_acc": list(trainer.test_acc_list),
                "train_loss": list(trainer.train_loss_list),
                "gap": gap(trainer.train_acc_list, trainer.test_acc_list),
                "epoch_time_s": sum(trainer.epoch_times) / max(1, len(trainer.epoch_times)),
            }
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_train), n_test=len(x_test), runs=runs,
        timings={"total_s": sw.seconds},
    )


def plot(result: dict, path) -> None:
    """Training and test accuracy per epoch, without (left) and with (right) dropout."""
    plot_runs(result, path, TITLE,
              lambda key, r: "no dropout" if r["dropout_ratio"] == 0
              else f"dropout ratio {r['dropout_ratio']:g}")
