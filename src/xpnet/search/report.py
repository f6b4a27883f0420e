"""A search's report: the book's list of best trials, its grid of curves, and a scatter.

* :func:`format_best` -- the book's printout, ``Best-1(val acc:0.83) | lr:0.0092, weight
  decay:3.86e-07``, one line per trial.
* :func:`plot_curves` -- the book's figure 6-24: the top 20 trials' validation (solid) and
  training (dashed) accuracy per epoch, in a grid.
* :func:`plot_scatter` -- the metric of every trial over two parameters of the space (log axes
  for log-uniform ones), the top trials circled, failed ones crossed.
* :func:`write_report` -- both PNGs into a folder.

Matplotlib is needed for the figures only (``pip install xpnet[plot]``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.plotting import new_figure

__all__ = ["draw_curves", "draw_scatter", "format_best", "plot_curves", "plot_scatter",
           "scatter_params", "write_report"]


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _short(name: str) -> str:
    """A parameter's name for a small title: initials of a snake_case name (``wd``)."""
    return "".join(w[:1] for w in name.split("_")) if "_" in name else name[:8]


def format_best(result: Any, k: int = 20) -> str:
    """The book's list of the best trials, one per line.

    >>> class R:                        # any SearchResult-like object
    ...     metric = "val_acc"
    ...     def top(self, k):
    ...         return [{"trial": 7, "params": {"lr": 0.0092, "weight_decay": 3.86e-07},
    ...                  "metrics": {"val_acc": 0.83}, "rung": None, "budget": None}]
    >>> print(format_best(R()))
    Best-1 (val acc 0.83) | lr 0.0092, weight decay 3.86e-07   [trial 7]
    """
    lines = []
    name = result.metric.replace("_", " ")
    for i, r in enumerate(result.top(k)):
        params = ", ".join(f"{p.replace('_', ' ')} {_fmt(v)}" for p, v in r["params"].items())
        rung = "" if r.get("rung") is None else \
            f", rung {r['rung']} ({r['budget']} epoch{'s' if r['budget'] != 1 else ''})"
        lines.append(f"Best-{i + 1} ({name} {r['metrics'][result.metric]:.4g}) | {params}   "
                     f"[trial {r['trial']}{rung}]")
    return "\n".join(lines)


def _curve_pairs(rec: Mapping[str, Any], metric: str) -> list[tuple[str, str]]:
    """(curve name, line style) to draw for a trial: the metric's curve solid, its training
    twin (``val_X`` -> ``train_X``) dashed; else every curve."""
    curves = rec.get("curves") or {}
    if metric in curves:
        out = [(metric, "-")]
        if metric.startswith("val_") and "train_" + metric[4:] in curves:
            out.append(("train_" + metric[4:], "--"))
        return out
    return [(name, "-") for name in curves]


def draw_curves(fig: Any, trials: Sequence[Mapping[str, Any]], metric: str, *,
                cols: int = 5) -> list[Any]:
    """Draw the grid of :func:`plot_curves` into a figure (or subfigure); returns the axes."""
    rows = max(1, math.ceil(len(trials) / cols))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, (ax, r) in enumerate(zip(axes, trials, strict=False)):
        for name, style in _curve_pairs(r, metric):
            y = [np.nan if v is None else v for v in r["curves"][name]]
            ax.plot(np.arange(1, len(y) + 1), y, style, marker="." if len(y) < 4 else None,
                    label="validation" if name == metric else
                    "training" if name == "train_" + metric[4:] else name.replace("_", " "))
        params = ", ".join(f"{_short(p)} {_fmt(v)}" for p, v in list(r["params"].items())[:2])
        ax.set_title(f"Best-{i + 1}: {r['metrics'][metric]:.3f}\n{params}", fontsize=8)
        if metric.endswith("acc"):
            ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        if i % cols:
            ax.tick_params(labelleft=False)
        if i < len(trials) - cols:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("epochs", fontsize=8)
    for ax in axes[len(trials):]:
        ax.set_visible(False)
    if trials:
        axes[0].legend(fontsize=7, loc="best")
    return list(axes)


def plot_curves(result: Any, path: str | os.PathLike[str], k: int = 20) -> Path:
    """The book's figure 6-24: the ``k`` best trials' curves, validation solid, training
    dashed."""
    top = result.top(k)
    cols = 5
    rows = max(1, math.ceil(len(top) / cols))
    fig = new_figure((14, 2.2 * rows + 0.8))
    draw_curves(fig, top, result.metric, cols=cols)
    fig.suptitle(f"Top {len(top)} of {len(result.trials)} trials by {result.metric} "
                 f"(solid: validation, dashed: training); seed {result.seed}", fontsize=10)
    fig.savefig(path, dpi=80)
    return Path(path)


def scatter_params(space: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """The numeric parameters of a (described) space to scatter over, log-uniform ones
    first: ``[(name, log_scale), ...]``."""
    log = [(n, True) for n, d in space.items() if d.get("dist") == "loguniform"]
    lin = [(n, False) for n, d in space.items() if d.get("dist") in ("uniform", "intuniform")]
    return log + lin


def draw_scatter(ax: Any, result: Any, x: tuple[str, bool], y: tuple[str, bool] | None, *,
                 top: int = 20) -> Any:
    """Draw the scatter of :func:`plot_scatter` on one axes; returns the mappable (or None)."""
    metric = result.metric
    ok = [r for r in result.trials if r["status"] == "ok"]
    bad = [r for r in result.trials if r["status"] != "ok"]
    xs = np.array([r["params"][x[0]] for r in ok], dtype=float)
    vals = np.array([r["metrics"][metric] for r in ok], dtype=float)
    best = result.top(top)
    sc = None
    if y is None:  # one parameter: the metric over it
        ax.scatter(xs, vals, s=18)
        ax.scatter([r["params"][x[0]] for r in best], [r["metrics"][metric] for r in best],
                   facecolors="none", edgecolors="red", s=60, label=f"top {len(best)}")
        ax.set_ylabel(metric)
    else:
        ys = np.array([r["params"][y[0]] for r in ok], dtype=float)
        lo, hi = (0.0, 1.0) if metric.endswith("acc") else (None, None)
        sc = ax.scatter(xs, ys, c=vals, cmap="viridis", vmin=lo, vmax=hi, s=25)
        ax.scatter([r["params"][x[0]] for r in best], [r["params"][y[0]] for r in best],
                   facecolors="none", edgecolors="red", s=70, label=f"top {len(best)}")
        if bad:
            ax.scatter([r["params"][x[0]] for r in bad], [r["params"][y[0]] for r in bad],
                       marker="x", color="grey", s=25, label=f"failed ({len(bad)})")
        ax.set_ylabel(y[0])
        if y[1]:
            ax.set_yscale("log")
    ax.set_xlabel(x[0])
    if x[1]:
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return sc


def plot_scatter(result: Any, path: str | os.PathLike[str], *, params: Sequence[str] | None = None,
                 top: int = 20) -> Path:
    """The metric of every trial over two parameters of the space (the first two log-uniform
    ones by default: ``lr`` and ``weight_decay`` in the book's search), on log axes where
    the distribution is log-uniform."""
    space = result.space
    if params is None:
        chosen = scatter_params(space)[:2]
    else:
        chosen = [(p, space.get(p, {}).get("dist") == "loguniform") for p in params][:2]
    if not chosen:
        raise ValueError("the space has no numeric parameter to draw a scatter over")
    fig = new_figure((7.5, 5.5))
    ax = fig.subplots()
    sc = draw_scatter(ax, result, chosen[0], chosen[1] if len(chosen) > 1 else None, top=top)
    if sc is not None:
        fig.colorbar(sc, ax=ax, label=result.metric)
    ax.set_title(f"{result.metric} of {len(result.trials)} trials (seed {result.seed})",
                 fontsize=10)
    fig.savefig(path, dpi=90)
    return Path(path)


def write_report(result: Any, out_dir: str | os.PathLike[str], *, prefix: str = "search",
                 top: int = 20) -> dict[str, Path]:
    """Write ``PREFIX_curves.png`` and ``PREFIX_scatter.png`` (when the space has a numeric
    parameter) under ``out_dir``; returns ``{"curves": path, "scatter": path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"curves": plot_curves(result, out / f"{prefix}_curves.png", k=top)}
    if scatter_params(result.space):
        paths["scatter"] = plot_scatter(result, out / f"{prefix}_scatter.png", top=top)
    return paths
