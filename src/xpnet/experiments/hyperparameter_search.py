"""Experiment 8: random search over learning rate and weight decay (the book's figure 6-24).

500 training digits, 20 % of them held out for validation; 100 trials of a 784-(100×6)-10 ReLU
network trained by SGD for 50 epochs with ``lr = 10^U(-6, -2)`` and weight decay
``λ = 10^U(-8, -4)``; the 20 trials with the best final validation accuracy are drawn.

A thin layer over :mod:`xpnet.search`: the space is two :func:`~xpnet.search.loguniform`
distributions, the objective a :class:`~xpnet.search.NetworkObjective`, and
:func:`~xpnet.search.random_search` runs the trials -- one after the other by default,
``workers=N`` on a process pool (``executor="thread"`` a thread pool, ``executor="dask"`` a
local Dask cluster of N workers).  Every trial's point and seed come from the experiment's seed
and its number, so the results do not depend on how the trials were scheduled.
``results="FILE.jsonl"`` keeps every finished trial in a file and resumes from it;
``halving=True`` runs successive halving from ``min_epochs`` up to ``epochs``.

Book result: the best trials have learning rates around 10^-3 to 10^-2 and weight decay
anywhere in 10^-8 to 10^-5: the learning rate matters far more; the search range can be narrowed
to those learning rates and repeated.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle
from xpnet.search import (
    Halving,
    NetworkObjective,
    SearchResult,
    local_cluster,
    loguniform,
    process_pool,
    random_search,
)
from xpnet.search.report import draw_curves, draw_scatter

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
    "results": None,
    "halving": False,
    "min_epochs": 2,
    "eta": 3,
    "source": "auto",
    "dtype": "float32",
}
QUICK = {"trials": 6, "epochs": 10, "top": 6, "hidden": [50, 50, 50], "min_epochs": 1}


@contextlib.contextmanager
def _executor(kind: str, workers: int) -> Iterator[Any]:
    """None for one worker, else a thread pool, a process pool or a Dask client."""
    if workers <= 1:
        yield None
    elif kind == "thread":
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            yield pool
    elif kind == "process":
        with process_pool(workers) as pool:
            yield pool
    elif kind == "dask":
        with local_cluster(workers) as client:
            yield client
    else:
        raise ValueError(f"unknown executor {kind!r}; use 'process', 'thread' or 'dask'")


def space(cfg: dict) -> dict:
    """The book's space: ``lr = 10^U(lr_exp)``, ``weight_decay = 10^U(weight_decay_exp)``."""
    lo, hi = cfg["lr_exp"]
    wlo, whi = cfg["weight_decay_exp"]
    return {"lr": loguniform(10.0 ** lo, 10.0 ** hi),
            "weight_decay": loguniform(10.0 ** wlo, 10.0 ** whi)}


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Run the search and rank the trials by final validation accuracy.

    Result keys: ``"trials"`` (the search's trial records, best first, failed ones last:
    ``trial``, ``params`` (``lr``, ``weight_decay``), ``metrics`` (``val_acc``,
    ``train_acc``...), ``curves`` (per epoch), ``status``, ``seed``, ``wall_s``...),
    ``"best"``, ``"search"`` (the results file's header and lines, from which
    :class:`xpnet.search.SearchResult` can be rebuilt), ``"halving"`` (the saving, with
    ``halving=True``) and ``"timings"``.
    """
    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    if cfg["executor"] not in ("process", "thread", "dask"):
        raise ValueError(f"unknown executor {cfg['executor']!r}; use 'process', 'thread' or "
                         "'dask'")
    be = _common.resolve_backend(backend, device)
    x, t, _, _ = _common.load_digits(cfg["n_train"], source=cfg["source"])
    objective = NetworkObjective(
        x, t, validation=cfg["validation_rate"],
        net_kwargs={"hidden_size_list": list(cfg["hidden"])}, optimizer="SGD",
        epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]), backend=be,
        dtype=cfg["dtype"], seed=seed)
    halving = Halving(int(cfg["min_epochs"]), int(cfg["epochs"]), int(cfg["eta"])) \
        if cfg["halving"] else None
    with _executor(cfg["executor"], int(cfg["workers"])) as executor, \
            _common.Stopwatch(be) as sw:
        res = random_search(space(cfg), objective, int(cfg["trials"]), seed=seed,
                            executor=executor, results=cfg["results"], halving=halving,
                            progress=progress)
    ranked = res.top() + res.failed
    secs = [r["wall_s"] for r in res.records if r.get("wall_s") is not None]
    return _common.result_dict(
        NAME, be, seed, quick, cfg, n_train=len(objective.x_train), n_val=len(objective.x_val),
        trials=ranked, best=res.best,
        search={"header": res.header, "records": res.records + res.rungs},
        halving=res.halving_saving(),
        timings={"total_s": sw.seconds, "trial_s_mean": float(np.mean(secs)) if secs else 0.0,
                 "trials_run": res.ran},
    )


def plot(result: dict, path) -> None:
    """The book's grid of the best trials' curves, plus validation accuracy against lr and λ."""
    search = SearchResult(result["search"]["header"], result["search"]["records"])
    k = int(result["config"]["top"])
    top = search.top(k)
    cols = 5
    rows = max(1, -(-len(top) // cols))
    fig = new_figure((14, 2.1 * rows + 4.2))
    grid_fig, scatter_fig = fig.subfigures(2, 1, height_ratios=[2.1 * rows, 4.0])
    draw_curves(grid_fig, top, search.metric, cols=cols)
    grid_fig.suptitle(f"Top {len(top)} of {len(search.trials)} trials (solid: validation, "
                      "dashed: training accuracy)", fontsize=10)
    ax1, ax2 = scatter_fig.subplots(1, 2)
    sc = draw_scatter(ax1, search, ("lr", True), ("weight_decay", True), top=k)
    ax1.set_xlabel("learning rate")
    ax1.set_ylabel("weight decay λ")
    ax1.set_title("final validation accuracy of every trial", fontsize=10)
    if sc is not None:
        scatter_fig.colorbar(sc, ax=ax1, label="validation accuracy")
    draw_scatter(ax2, search, ("lr", True), None, top=k)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("learning rate")
    ax2.set_ylabel("final validation accuracy")
    ax2.set_title("the learning rate decides", fontsize=10)
    cfg = result["config"]
    hidden = "-".join(str(h) for h in cfg["hidden"])
    halving = result.get("halving")
    how = (f"successive halving {cfg['min_epochs']}→{cfg['epochs']} epochs (η={cfg['eta']}, "
           f"{100 * halving['saved_fraction']:.0f}% of the epochs saved)" if halving
           else f"{cfg['epochs']} epochs")
    fig.suptitle(
        f"{TITLE}: lr = 10^U({cfg['lr_exp'][0]:g}, {cfg['lr_exp'][1]:g}), λ (wd) = "
        f"10^U({cfg['weight_decay_exp'][0]:g}, {cfg['weight_decay_exp'][1]:g})\n"
        f"{result['n_train']} training / {result['n_val']} validation digits, 784-{hidden}-10, "
        f"SGD, {how}; {subtitle(result)}", fontsize=10)
    fig.savefig(path, dpi=80)
