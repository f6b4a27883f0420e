"""Experiment 10: activations and normalizations side by side on one task.

Every activation is trained with every normalization of a fully connected network on the same
task -- 2,000 MNIST training digits, a 784-100-100-100-100-10 network, SGD (lr 0.05, batch 100),
20 epochs, initial weights Xavier for sigmoid/tanh and He for the ReLU family -- and the test
accuracy is recorded per epoch.

DESIGN.md asks for batch, layer, instance and group normalization and sigmoid, tanh, ReLU,
leaky ReLU, PReLU, ELU and maxout.  The activations and the normalizations of 2-D activations
(none, batch, layer) are all here (:data:`ACTIVATIONS`, :data:`NORMALIZATIONS`).  Instance and
group normalization (and per-channel batch norm) normalize feature maps ``(N, C, H, W)``: they
belong to the convolutional network's experiment ``conv_normalizations`` (:data:`ELSEWHERE`),
which the result and the figure point to.  Each combination is still probed when the
experiment runs (by building a network with it) and one that cannot be built is reported under
``"unavailable"`` with the reason instead of failing; with this xpnet that list is empty.

What to expect: ReLU learns fastest, tanh next, sigmoid slowest (vanishing gradients through
four saturating layers); batch normalization speeds all of them up and narrows the differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar

NAME = "compare"
TITLE = "Activations × normalizations on one task"

#: activation name -> weight_init_std that suits it
ACTIVATIONS = {
    "sigmoid": "xavier",
    "tanh": "xavier",
    "relu": "he",
    "leaky_relu": "he",
    "prelu": "he",
    "elu": "he",
    "maxout": "he",
}

#: normalization name -> MultiLayerNetExtend keywords that switch it on
NORMALIZATIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "batch": {"normalization": "batch"},
    "layer": {"normalization": "layer"},
}

#: normalizations of feature maps, compared where they belong: name -> where
ELSEWHERE: dict[str, str] = {
    "instance": "conv_normalizations",
    "group": "conv_normalizations",
}

FULL = {
    "n_train": 2000,
    "n_test": None,
    "hidden": [100, 100, 100, 100],
    "batch_size": 100,
    "epochs": 20,
    "optimizer": "SGD",
    "lr": 0.05,
    "activations": list(ACTIVATIONS),
    "normalizations": list(NORMALIZATIONS),
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"n_train": 500, "n_test": 500, "epochs": 10, "hidden": [50, 50, 50]}


def _build(act: str, norm: str, cfg: dict, be, seed: int):
    from xpnet import MultiLayerNetExtend

    return MultiLayerNetExtend(784, list(cfg["hidden"]), 10, activation=act,
                               weight_init_std=ACTIVATIONS.get(act, "he"), backend=be,
                               dtype=cfg["dtype"], seed=seed, **NORMALIZATIONS[norm])


def available(cfg: dict, be, seed: int = 0) -> tuple[list[str], list[str], dict[str, str]]:
    """Which activations and normalizations this xpnet provides; reasons for the others."""
    missing: dict[str, str] = {}
    acts, norms = [], []
    for act in cfg["activations"]:
        try:
            _build(act, "none", {**cfg, "hidden": [2]}, be, seed)
            acts.append(act)
        except (TypeError, ValueError, KeyError) as exc:
            missing[f"activation:{act}"] = str(exc)
    for norm in cfg["normalizations"]:
        try:
            _build(acts[0] if acts else "relu", norm, {**cfg, "hidden": [2]}, be, seed)
            norms.append(norm)
        except (TypeError, ValueError, KeyError) as exc:
            missing[f"normalization:{norm}"] = str(exc)
    return acts, norms, missing


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Train every available (activation, normalization) pair with the Trainer.

    Result keys: ``"runs"`` maps ``"<activation>/<normalization>"`` to ``{"activation",
    "normalization", "test_acc", "train_acc", "final_test_acc", "mean_test_acc",
    "epoch_time_s"}``; ``"activations"`` and ``"normalizations"`` list what ran;
    ``"unavailable"`` maps what could not be built to the reason (empty with this xpnet);
    ``"elsewhere"`` maps the feature-map normalizations to the experiment that compares them.
    """
    from xpnet import Trainer

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x_train, t_train, x_test, t_test = _common.load_digits(cfg["n_train"], n_test=cfg["n_test"],
                                                           source=cfg["source"])
    acts, norms, missing = available(cfg, be, seed)
    pairs = [(a, n) for n in norms for a in acts]
    runs = {}
    with _common.Stopwatch(be) as sw:
        for act, norm in progress_bar(pairs, desc=NAME, enabled=progress):
            net = _build(act, norm, cfg, be, seed)
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=cfg["epochs"],
                              mini_batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
                              optimizer_param={"lr": cfg["lr"]}, verbose=False, seed=seed)
            trainer.train()
            runs[f"{act}/{norm}"] = {
                "activation": act,
                "normalization": norm,
                "test_acc": list(trainer.test_acc_list),
                "train_acc": list(trainer.train_acc_list),
                "final_test_acc": float(trainer.test_acc_list[-1]),
                "mean_test_acc": float(np.mean(trainer.test_acc_list)),
                "epoch_time_s": sum(trainer.epoch_times) / max(1, len(trainer.epoch_times)),
            }
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_train), n_test=len(x_test),
        activations=acts, normalizations=norms, unavailable=missing, elsewhere=dict(ELSEWHERE),
        runs=runs,
        timings={"total_s": sw.seconds},
    )


def plot(result: dict, path) -> None:
    """One panel per normalization (test accuracy per epoch, a line per activation) and a
    table of final test accuracies."""
    acts, norms, runs = result["activations"], result["normalizations"], result["runs"]
    n = len(norms) + 1
    fig = new_figure((4.4 * n, 4.6))
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
    for ax, norm in zip(axes, norms, strict=False):
        for i, act in enumerate(acts):
            r = runs[f"{act}/{norm}"]
            x = np.arange(1, len(r["test_acc"]) + 1)
            ax.plot(x, r["test_acc"], color=f"C{i}", marker="o", markersize=3,
                    markevery=max(1, len(x) // 10), label=f"{act} ({r['final_test_acc']:.3f})")
        ax.set_title(f"normalization: {norm}")
        ax.set_xlabel("epochs")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    ax = axes[len(norms)]
    table = np.array([[runs[f"{a}/{nm}"]["final_test_acc"] for nm in norms] for a in acts])
    im = ax.imshow(table, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(norms)), norms)
    ax.set_yticks(range(len(acts)), acts)
    for (i, j), v in np.ndenumerate(table):
        ax.text(j, i, f"{v:.3f}", ha="center", va="center",
                color="white" if v < 0.6 else "black", fontsize=9)
    ax.set_title("final test accuracy")
    fig.colorbar(im, ax=ax, shrink=0.8)
    missing = sorted(k.split(":", 1)[1] for k in result.get("unavailable", {}))
    notes = [f"{', '.join(names)} normalization: on feature maps, see experiment {where}"
             for where, names in _by_place(result.get("elsewhere", {})).items()]
    if missing:
        notes.append(f"could not be built: {', '.join(missing)}")
    note = "; ".join(notes)
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    fig.suptitle(
        f"{TITLE}: {result['n_train']} MNIST training digits, 784-{hidden}-10, "
        f"{cfg['optimizer']} lr {cfg['lr']}, batch {cfg['batch_size']}; test on "
        f"{result['n_test']} digits\n{note}\n{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=90)


def _by_place(elsewhere: dict[str, str]) -> dict[str, list[str]]:
    places: dict[str, list[str]] = {}
    for name, where in elsewhere.items():
        places.setdefault(where, []).append(name)
    return places
