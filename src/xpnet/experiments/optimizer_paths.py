"""Experiment 1: optimizer paths on f(x, y) = x²/20 + y² (the book's figures 6-3 to 6-8).

Each optimizer starts at (-7, 2) and takes 30 steps, with the book's learning rates: SGD 0.95,
Momentum 0.1, AdaGrad 1.5, Adam 0.3.  RMSprop (not in the book's figure) is added with lr 0.1 and
decay 0.99.  The "parameters" are two one-element arrays on the chosen backend, updated in place
by :mod:`xpnet.optim` exactly as the network's weights are.

Book result: SGD zig-zags along y and crawls along x; Momentum rolls like a ball and overshoots;
AdaGrad's shrinking step along the steep y direction makes it end closest to the minimum; Adam
moves like Momentum with damped oscillation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.plotting import new_figure, subtitle

NAME = "optimizer_paths"
TITLE = "Optimizer paths on f(x, y) = x²/20 + y²"

#: The optimizers of the book's figure, in its order.
BOOK_OPTIMIZERS = ("SGD", "Momentum", "AdaGrad", "Adam")

FULL = {
    "start": [-7.0, 2.0],
    "steps": 30,
    "optimizers": {
        "SGD": {"lr": 0.95},
        "Momentum": {"lr": 0.1},
        "AdaGrad": {"lr": 1.5},
        "Adam": {"lr": 0.3},
        "RMSprop": {"lr": 0.1, "decay_rate": 0.99},
    },
    "dtype": "float64",
}
QUICK: dict[str, Any] = {}  # already takes milliseconds


def f(x, y):
    """The book's test function: an elongated bowl, 20 times steeper along y than along x."""
    return x**2 / 20.0 + y**2


def df(x, y):
    """Its gradient (x / 10, 2 y)."""
    return x / 10.0, 2.0 * y


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Run every optimizer from the start point and record its path.

    Returns a dict whose ``"paths"`` maps an optimizer name to ``{"x": [...], "y": [...]}``
    (``steps + 1`` points: the start and the position after each step) and whose
    ``"final_distance"`` maps it to the distance of its last point from the minimum (0, 0).
    """
    from xpnet.optim import get_optimizer

    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    xp = be.xp
    paths: dict[str, dict[str, list[float]]] = {}
    final: dict[str, float] = {}
    with _common.Stopwatch(be) as sw:
        for name, opt_params in cfg["optimizers"].items():
            optimizer = get_optimizer(name, **opt_params)
            params = {
                "x": be.asarray([cfg["start"][0]], dtype=cfg["dtype"]),
                "y": be.asarray([cfg["start"][1]], dtype=cfg["dtype"]),
            }
            history = []
            for _ in range(int(cfg["steps"])):
                history.append(xp.concat([params["x"], params["y"]]))  # a copy, on the device
                gx, gy = df(params["x"], params["y"])
                optimizer.update(params, {"x": gx, "y": gy})
            history.append(xp.concat([params["x"], params["y"]]))
            pts = be.to_numpy(xp.stack(history)).astype(np.float64)  # one host copy per path
            paths[name] = {"x": pts[:, 0].tolist(), "y": pts[:, 1].tolist()}
            final[name] = float(math.hypot(pts[-1, 0], pts[-1, 1]))
    nearest = min((k for k in final if k in BOOK_OPTIMIZERS), key=final.get, default=None)
    return _common.result_dict(
        NAME, be, seed, quick, cfg,
        paths=paths,
        final_distance=final,
        nearest_of_book_optimizers=nearest,
        timings={"total_s": sw.seconds},
    )


def plot(result: dict, path) -> None:
    """One contour panel per optimizer, as in the book, plus distance-to-minimum per step."""
    paths = result["paths"]
    names = list(paths)
    n = len(names) + 1
    cols = 3
    rows = math.ceil(n / cols)
    fig = new_figure((4.6 * cols, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()

    gx = np.arange(-10, 10, 0.05)
    gy = np.arange(-5, 5, 0.05)
    X, Y = np.meshgrid(gx, gy)
    Z = f(X, Y)
    levels = [0.25, 0.5, 1, 2, 3, 4, 5, 6, 7]
    opt_cfg = result["config"]["optimizers"]
    for ax, name in zip(axes, names, strict=False):
        p = paths[name]
        ax.contour(X, Y, Z, levels=levels, colors="0.6", linewidths=0.8)
        ax.plot(p["x"], p["y"], "o-", color="red", markersize=3, linewidth=1)
        ax.plot(0, 0, "+", color="black", markersize=12, markeredgewidth=2)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        lr = ", ".join(f"{k}={v:g}" for k, v in opt_cfg[name].items())
        ax.set_title(f"{name} ({lr})")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        d = result["final_distance"][name]
        ax.text(0.03, 0.04, f"after {len(p['x']) - 1} steps: |(x, y)| = {d:.3g}",
                transform=ax.transAxes, fontsize=8, color="0.2")

    ax = axes[len(names)]
    for name in names:
        p = paths[name]
        dist = np.hypot(p["x"], p["y"])
        ax.semilogy(np.arange(len(dist)), np.maximum(dist, 1e-12), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("distance to the minimum (0, 0)")
    ax.set_title("Distance to the minimum")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{TITLE}, start (-7, 2)\n{subtitle(result)}", fontsize=11)
    fig.savefig(path, dpi=90)
