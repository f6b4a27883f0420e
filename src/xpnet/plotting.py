"""Figures: the book's curve smoothing and the plots of ``xpnet train`` and the experiments.

Matplotlib is an optional dependency (``pip install xpnet[plot]``) and is imported only when a
figure is drawn; :func:`smooth_curve` needs NumPy only.  Figures are built with
:class:`matplotlib.figure.Figure`, not ``pyplot``, so drawing them neither opens windows nor
touches pyplot's global state, and works without a display.

>>> from xpnet.plotting import smooth_curve
>>> smooth_curve([1.0] * 12).round(6).tolist()[:3]
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import array_api_compat
import numpy as np

__all__ = ["new_figure", "plot_loss_curves", "plot_training", "smooth_curve", "subtitle"]

#: Window length and shape parameter of the book's ``smooth_curve`` (``common/util.py``).
SMOOTH_WINDOW = 11
SMOOTH_BETA = 2


def smooth_curve(x: Iterable[Any]) -> np.ndarray:
    """The book's ``smooth_curve``: a normalized Kaiser window of 11 points (beta 2).

    Parameters
    ----------
    x : iterable of scalars, shape (n,)
        Python floats, NumPy values, or 0-d arrays of any backend (converted with one device
        transfer per library and device, see :func:`xpnet.devicelog.to_floats`); or a 1-D
        array of any backend.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        ``y[i] = sum_k w[k] e[i + k - 5] / sum(w)`` with ``w = numpy.kaiser(11, 2)``, where the
        curve ``e`` is extended past its ends as the book does: mirrored without repeating the
        first point on the left (``e[-j] = x[j]``) and with repeating the last point on the
        right (``e[n - 1 + j] = x[n - j]``).  Curves shorter than 11 points are returned
        unchanged.

    Notes
    -----
    The book (``common/util.py``, used by ``ch06/optimizer_compare_mnist.py``) smooths loss
    curves with this window; it cites http://glowingpython.blogspot.jp/2012/02/convolution-with-numpy.html.
    Same numbers, plus the input conversion and the short-curve case.

    Examples
    --------
    >>> smooth_curve([0.0, 1.0]).tolist()
    [0.0, 1.0]
    >>> y = smooth_curve(range(30))
    >>> y.shape, round(float(y[15]), 6)
    ((30,), 15.0)
    """
    x = _host_curve(x)
    n = SMOOTH_WINDOW
    if len(x) < n:
        return x
    s = np.r_[x[n - 1:0:-1], x, x[-1:-n:-1]]
    w = np.kaiser(n, SMOOTH_BETA)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[n // 2:len(y) - n // 2]


def _host_curve(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=np.float64).reshape(-1)
    if array_api_compat.is_array_api_obj(x) and getattr(x, "ndim", 0) >= 1:
        from xpnet.backend import to_host

        return np.asarray(to_host(x), dtype=np.float64).reshape(-1)
    from xpnet.devicelog import to_floats

    return np.asarray(to_floats(x), dtype=np.float64)


def new_figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Any:
    """A :class:`matplotlib.figure.Figure` outside pyplot (renders with Agg on ``savefig``).

    Parameters
    ----------
    figsize : (float, float)
        Width and height in inches.
    layout : str or None
        ``"constrained"`` (default) or None.  Constrained layout is slow with many axes:
        figures with dozens of panels pass None and place them with ``subplots_adjust``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def subtitle(result: Mapping[str, Any]) -> str:
    """A one-line provenance note for figure footers: backend, device, seed, quick mode.

    Examples
    --------
    >>> subtitle({"backend": "numpy", "device": "cpu", "seed": 0, "quick": True})
    'xpnet · backend numpy on cpu · seed 0 (quick)'
    """
    q = " (quick)" if result.get("quick") else ""
    return (f"xpnet · backend {result.get('backend')} on {result.get('device')} · "
            f"seed {result.get('seed')}{q}")


def plot_loss_curves(result: Mapping[str, Any], path: str | os.PathLike[str], *, title: str,
                     ymax: float, markers: Mapping[str, str]) -> None:
    """Smoothed loss per iteration, one curve per run, test accuracy in the legend.

    The figure of the book's ``optimizer_compare_mnist.py`` and ``weight_init_compare.py``.

    Parameters
    ----------
    result : dict
        With ``"loss"`` (label -> per-iteration losses), ``"test_acc"`` (label -> float),
        ``"config"["hidden"]``, ``"n_train"`` and the :func:`subtitle` keys.
    path : str or os.PathLike
        The PNG to write.
    title : str
    ymax : float
        Upper limit of the loss axis.
    markers : dict
        label -> matplotlib marker (``"."`` for labels not in it).
    """
    fig = new_figure((8, 5.5))
    ax = fig.subplots()
    n_iter = len(next(iter(result["loss"].values())))
    every = max(1, n_iter // 20)
    for label, curve in result["loss"].items():
        acc = result["test_acc"][label]
        ax.plot(np.arange(len(curve)), smooth_curve(curve), marker=markers.get(label, "."),
                markevery=every, label=f"{label} (test acc {acc:.3f})")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_ylim(0, ymax)
    ax.grid(True, alpha=0.3)
    ax.legend()
    hidden = "-".join(str(h) for h in result["config"]["hidden"])
    ax.set_title(f"{title}\n784-{hidden}-10, {result['n_train']} training digits, "
                 "loss smoothed (Kaiser window 11)", fontsize=10)
    fig.suptitle(subtitle(result), fontsize=8)
    fig.savefig(path, dpi=90)


def plot_training(record: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The learning curves of one training run, as ``xpnet train`` draws them.

    Left: the training loss of every step and its :func:`smooth_curve`, against epochs.
    Right: training and test accuracy per epoch.

    Parameters
    ----------
    record : dict
        What ``xpnet train`` writes to ``train_history.json``: ``"history"``
        (:attr:`xpnet.Trainer.history`), ``"test_acc"``, ``"config"`` (``layers``,
        ``activation``, ``batchnorm``, ``dropout``, ``optimizer``, ``optimizer_param``,
        ``batch_size``, ``n_train``; with ``model='convnet'`` also ``conv_param``,
        ``hidden_size``, ``normalization``), ``"backend"``, ``"device"``,
        ``"seconds_per_epoch"``.
    path : str or os.PathLike
        The PNG to write.
    """
    h = record["history"]
    fig = new_figure((11, 4.3))
    ax_loss, ax_acc = fig.subplots(1, 2)
    loss = h["train_loss"]
    ipe = max(1, int(h["iter_per_epoch"]))
    x = np.arange(1, len(loss) + 1) / ipe
    ax_loss.plot(x, loss, color="C0", alpha=0.3, linewidth=0.8, label="per step")
    ax_loss.plot(x, smooth_curve(loss), color="C0", label="smoothed")
    ax_loss.set_xlabel("epochs")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_ylim(bottom=0)
    ax_loss.grid(True, alpha=0.3)
    ax_loss.legend()
    ax_loss.set_title("loss")
    ep = np.arange(1, len(h["test_acc"]) + 1)
    ax_acc.plot(ep, h["train_acc"], "o-", label="train")
    ax_acc.plot(ep, h["test_acc"], "s-", label=f"test (final {record['test_acc']:.4f})")
    ax_acc.set_xlabel("epochs")
    ax_acc.set_ylabel("accuracy")
    lo = min([*h["train_acc"], *h["test_acc"], 0.9])
    ax_acc.set_ylim(max(0.0, lo - 0.02), 1.0)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(loc="lower right")
    ax_acc.set_title("accuracy")
    c = record["config"]
    if c.get("model") == "convnet":
        cp = c["conv_param"]
        norm = f", {c['normalization']} norm" if c.get("normalization") else ""
        net = (f"SimpleConvNet conv {cp['filter_num']}x{cp['filter_size']}x{cp['filter_size']}"
               f" - pool 2 - {c['hidden_size']} - 10{norm}")
    else:
        dropout = f", dropout {c['dropout']:g}" if c["dropout"] else ""
        net = (f"{'-'.join(map(str, c['layers']))} {c['activation']}"
               f"{', batch norm' if c['batchnorm'] else ''}{dropout}")
    fig.suptitle(
        f"xpnet train: {net}, {c['optimizer']} "
        f"lr {c['optimizer_param']['lr']:g}, batch {c['batch_size']}; {c['n_train']} training "
        f"digits\nbackend {record['backend']} on {record['device']}, "
        f"{record['seconds_per_epoch']:.2f} s/epoch", fontsize=10)
    fig.savefig(path, dpi=90)
