"""Experiment 8: random search over learning rate and weight decay (the book's figure 6-24).

500 training digits, 20 % of them held out for validation; 100 trials of a 784-(100×6)-10 ReLU
network trained by SGD for 50 epochs with ``lr = 10^U(-6, -2)`` and weight decay
``λ = 10^U(-8, -4)``; the 20 trials with the best final validation accuracy are drawn.

Trials are independent, so they may run in parallel: ``workers=N`` uses a
:class:`concurrent.futures.ProcessPoolExecutor` (``executor="thread"`` a thread pool,
``executor="dask"`` a ``dask.distributed`` local cluster when dask is installed); the default is
one trial after the other.  Every trial draws its hyperparameters and weights from the seed, so
the results do not depend on how they were scheduled.

Book result: the best trials have learning rates around 10^-3 to 10^-2 and weight decay
anywhere in 10^-8 to 10^-5: the learning rate matters far more; the search range can be narrowed
to those learning rates and repeated.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar

NAME = "hyperparameter_search"
TITLE = "Random search over learning rate and weight decay"

FULL = {
    "n_train": 500,
    "validation_rate": 0.2,
    "hidden": [100, 100, 100, 100, 100, 100],
    "batch_size": 100,
    "epochs": 50,
    "trials": 100,
    "lr_exp": [-6.0, -2.0],
    "weight_decay_exp": [-8.0, -4.0],
    "top": 20,
    "workers": 1,
    "executor": "process",
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"trials": 6, "epochs": 10, "top": 6, "hidden": [50, 50, 50]}


def _trial(job: dict) -> dict:
    """One trial; a top-level function so that process pools can pickle it."""
    from xpnet import MultiLayerNet, Trainer

    be = _common.resolve_backend(job["backend"], job["device"])
    net = MultiLayerNet(784, job["hidden"], 10, weight_decay_lambda=job["weight_decay"],
                        backend=be, dtype=job["dtype"], seed=job["seed"])
    trainer = Trainer(net, job["x_train"], job["t_train"], job["x_val"], job["t_val"],
                      epochs=job["epochs"], mini_batch_size=job["batch_size"], optimizer="SGD",
                      optimizer_param={"lr": job["lr"]}, verbose=False, seed=job["seed"])
    trainer.train()
    return {
        "trial": job["trial"],
        "lr": job["lr"],
        "weight_decay": job["weight_decay"],
        "val_acc": list(trainer.test_acc_list),
        "train_acc": list(trainer.train_acc_list),
        "final_val_acc": float(trainer.test_acc_list[-1]) if trainer.test_acc_list else 0.0,
        "seconds": float(sum(trainer.epoch_times)),
    }


def _executor(kind: str, workers: int):
    if kind == "thread":
        return cf.ThreadPoolExecutor(max_workers=workers), None
    if kind == "process":
        ctx = multiprocessing.get_context("spawn")  # safe with torch/CUDA in the parent
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx), None
    if kind == "dask":
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError("executor='dask' needs dask.distributed: "
                               "pip install 'dask[distributed]'") from exc
        cluster = LocalCluster(n_workers=workers, processes=True, threads_per_worker=1)
        client = Client(cluster)
        return client.get_executor(), (client, cluster)
    raise ValueError(f"unknown executor {kind!r}; use 'process', 'thread' or 'dask'")


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Run every trial and rank them by final validation accuracy.

    Result keys: ``"trials"`` (all of them, best first: ``{"trial", "lr", "weight_decay",
    "val_acc", "train_acc", "final_val_acc", "seconds"}``), ``"best"`` (the first of them).
    """
    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    x, t, _, _ = _common.load_digits(cfg["n_train"], source=cfg["source"])
    # the book's shuffle_dataset, then the first 20 % for validation
    perm = np.random.default_rng(seed).permutation(len(x))
    x, t = x[perm], t[perm]
    n_val = int(len(x) * cfg["validation_rate"])
    x_val, t_val, x_tr, t_tr = x[:n_val], t[:n_val], x[n_val:], t[n_val:]

    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(int(cfg["trials"])):
        wd = 10 ** rng.uniform(*cfg["weight_decay_exp"])
        lr = 10 ** rng.uniform(*cfg["lr_exp"])
        jobs.append({
            "trial": i, "lr": float(lr), "weight_decay": float(wd), "seed": seed + i,
            "backend": be.name, "device": be.device_name,
            "hidden": list(cfg["hidden"]), "epochs": int(cfg["epochs"]),
            "batch_size": int(cfg["batch_size"]), "dtype": cfg["dtype"],
            "x_train": x_tr, "t_train": t_tr, "x_val": x_val, "t_val": t_val,
        })
    workers = int(cfg["workers"])
    results = []
    with _common.Stopwatch(be) as sw:
        bar = progress_bar(total=len(jobs), desc=NAME, enabled=progress)
        if workers <= 1:
            for job in jobs:
                results.append(_trial(job))
                bar.update()
        else:
            pool, extra = _executor(cfg["executor"], workers)
            try:
                futures = [pool.submit(_trial, job) for job in jobs]
                for fut in cf.as_completed(futures):
                    results.append(fut.result())
                    bar.update()
            finally:
                pool.shutdown()
                if extra is not None:
                    for obj in extra:
                        obj.close()
        bar.close()
    results.sort(key=lambda r: (-r["final_val_acc"], r["trial"]))
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(x_tr), n_val=n_val, trials=results,
        best=results[0] if results else None,
        timings={"total_s": sw.seconds,
                 "trial_s_mean": float(np.mean([r["seconds"] for r in results]))},
    )


def plot(result: dict, path) -> None:
    """The book's grid of the best trials' curves, plus validation accuracy against lr and λ."""
    trials = result["trials"]
    top = trials[:int(result["config"]["top"])]
    cols = 5
    rows = max(1, math.ceil(len(top) / cols))
    fig = new_figure((14, 2.1 * rows + 4.2))
    grid_fig, scatter_fig = fig.subfigures(2, 1, height_ratios=[2.1 * rows, 4.0])
    axes = np.atleast_1d(grid_fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, (ax, r) in enumerate(zip(axes, top, strict=False)):
        x = np.arange(len(r["val_acc"]))
        ax.plot(x, r["val_acc"], label="validation")
        ax.plot(x, r["train_acc"], "--", label="train")
        ax.set_title(f"Best-{i + 1}: val {r['final_val_acc']:.2f}\n"
                     f"lr {r['lr']:.1e}, λ {r['weight_decay']:.1e}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        if i % cols:
            ax.tick_params(labelleft=False)
        if i < len(top) - cols:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("epochs", fontsize=8)
    for ax in axes[len(top):]:
        ax.set_visible(False)
    if top:
        axes[0].legend(fontsize=7, loc="upper left")
    grid_fig.suptitle(f"Top {len(top)} of {len(trials)} trials (solid: validation, dashed: "
                      "training accuracy)", fontsize=10)

    ax1, ax2 = scatter_fig.subplots(1, 2)
    lrs = np.array([r["lr"] for r in trials])
    wds = np.array([r["weight_decay"] for r in trials])
    acc = np.array([r["final_val_acc"] for r in trials])
    sc = ax1.scatter(lrs, wds, c=acc, cmap="viridis", vmin=0, vmax=1, s=25)
    if top:
        ax1.scatter([r["lr"] for r in top], [r["weight_decay"] for r in top], facecolors="none",
                    edgecolors="red", s=70, label=f"top {len(top)}")
        ax1.legend(fontsize=8, loc="lower left")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("learning rate")
    ax1.set_ylabel("weight decay λ")
    ax1.set_title("final validation accuracy of every trial", fontsize=10)
    scatter_fig.colorbar(sc, ax=ax1, label="validation accuracy")
    ax2.scatter(lrs, acc, s=18)
    ax2.set_xscale("log")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("learning rate")
    ax2.set_ylabel("final validation accuracy")
    ax2.grid(True, alpha=0.3)
    ax2.set_title("the learning rate decides", fontsize=10)
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    fig.suptitle(
        f"{TITLE}: lr = 10^U({cfg['lr_exp'][0]:g}, {cfg['lr_exp'][1]:g}), λ = "
        f"10^U({cfg['weight_decay_exp'][0]:g}, {cfg['weight_decay_exp'][1]:g}); "
        f"{result['n_train']} training / {result['n_val']} validation digits, 784-{hidden}-10, "
        f"SGD, {cfg['epochs']} epochs\n{subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=80)
