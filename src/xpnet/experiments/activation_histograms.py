"""Experiment 3: activation histograms per layer (book figures 6-10 to 6-14; cs231n lecture 7).

Book part: 1,000 Gaussian inputs of 100 features go through 5 layers of 100 nodes with no bias;
the weights are drawn with std 1, 0.01, Xavier (``1/sqrt(n)``) or He (``sqrt(2/n)``), and the
activation is sigmoid, tanh or ReLU.  Each layer's outputs are histogrammed in 30 bins.

cs231n part: 16 Gaussian inputs through 6 tanh layers of 4,096 units, weights std 0.01, 0.05 or
Xavier; the mean and standard deviation of every layer's activations.

Book result: sigmoid with std 1 piles activations at 0 and 1 (vanishing gradients); std 0.01
squeezes them around 0.5 (no expressive power); Xavier keeps them spread.  For ReLU, std 0.01
collapses the activations to zero layer after layer while He keeps the same spread in every
layer.  cs231n: with 0.01 the tanh activations shrink to zero, with 0.05 they saturate at ±1,
with Xavier they stay well scaled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.experiments import _common
from xpnet.init import init_std
from xpnet.plotting import new_figure, subtitle
from xpnet.progress import progress as progress_bar

NAME = "activation_histograms"
TITLE = "Activation distributions per layer"

FULL = {
    "n_samples": 1000,
    "width": 100,
    "layers": 5,
    "activations": ["sigmoid", "tanh", "relu"],
    "inits": ["1", "0.01", "xavier", "he"],
    "bins": 30,
    "near_zero": 0.01,
    "cs231n_width": 4096,
    "cs231n_layers": 6,
    "cs231n_batch": 16,
    "cs231n_inits": ["0.01", "0.05", "xavier"],
    "dtype": "float32",
}
QUICK = {"n_samples": 500, "cs231n_width": 2048}

#: The histogram range of each activation (the book uses (0, 1) for sigmoid and ReLU).
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 1.0)}
INIT_LABELS = {"1": "std=1", "0.01": "std=0.01", "0.05": "std=0.05",
               "xavier": "Xavier 1/√n", "he": "He √(2/n)"}


def _std(init: str, fan_in: int) -> float:
    """'xavier', 'he' or a number given as a string (the config keys) -> the weight std."""
    return init_std(init if init in ("xavier", "he") else float(init), fan_in)


def _activation(name: str):
    from xpnet import functions as F

    return {"sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu}[name]


def _forward(be, gen, x, n_layers: int, width: int, init: str, act, dtype: str, *, bins: int,
             value_range: tuple[float, float], near_zero: float,
             omit_zeros: bool = False) -> list[dict]:
    """Push ``x`` through ``n_layers`` bias-free layers; statistics of each layer's output."""
    stats = []
    for _ in range(n_layers):
        fan_in = x.shape[1]
        w = gen.normal((fan_in, width), dtype=dtype) * _std(init, fan_in)
        x = act(x @ w)
        # mean/std on the device; one host copy of the layer for the histogram
        z = be.to_numpy(x).astype(np.float64).ravel()
        # ReLU's exact zeros (half of any layer) would flatten every histogram into its first
        # bin; they are counted separately, in "frac_zero", and left out of "hist".
        counts, _ = np.histogram(z[z != 0] if omit_zeros else z, bins=bins, range=value_range)
        stats.append({
            "mean": float(z.mean()),
            "std": float(z.std()),
            "frac_zero": float(np.mean(z == 0)),
            "frac_near_zero": float(np.mean(np.abs(z) < near_zero)),
            "frac_saturated": float(np.mean(np.abs(z) > 0.99)),
            "hist": counts.tolist(),
        })
    return stats


def run(*, backend: Any = None, seed: int = 0, quick: bool = False, device: Any = None,
        progress: bool | None = None, **overrides: Any) -> dict:
    """Compute both parts.

    Result keys: ``"book"`` maps ``"<activation>/<init>"`` to a list (one per layer) of
    ``{"mean", "std", "frac_zero", "frac_near_zero", "frac_saturated", "hist"}`` (for ReLU the
    histogram leaves out the exact zeros, counted in ``frac_zero``); ``"cs231n"`` maps each
    init to the same per-layer list for the 4,096-wide tanh net.
    """
    cfg = _common.make_config(FULL, QUICK, quick, overrides)
    be = _common.resolve_backend(backend, device)
    dtype = cfg["dtype"]
    book: dict[str, list[dict]] = {}
    cs: dict[str, list[dict]] = {}
    combos = [(a, i) for a in cfg["activations"] for i in cfg["inits"]]
    with _common.Stopwatch(be) as sw:
        bar = progress_bar(total=len(combos) + len(cfg["cs231n_inits"]), desc=NAME,
                           enabled=progress)
        for k, (act_name, init) in enumerate(combos):
            gen = be.random(seed + k)
            x = gen.normal((cfg["n_samples"], cfg["width"]), dtype=dtype)
            book[f"{act_name}/{init}"] = _forward(
                be, gen, x, cfg["layers"], cfg["width"], init, _activation(act_name), dtype,
                bins=cfg["bins"], value_range=RANGES[act_name], near_zero=cfg["near_zero"],
                omit_zeros=act_name == "relu")
            bar.update()
        for k, init in enumerate(cfg["cs231n_inits"]):
            gen = be.random(seed + 1000 + k)
            x = gen.normal((cfg["cs231n_batch"], cfg["cs231n_width"]), dtype=dtype)
            cs[init] = _forward(
                be, gen, x, cfg["cs231n_layers"], cfg["cs231n_width"], init,
                _activation("tanh"), dtype, bins=cfg["bins"], value_range=(-1.0, 1.0),
                near_zero=cfg["near_zero"])
            bar.update()
        bar.close()
    return _common.result_dict(NAME, be, seed, quick, cfg, book=book, cs231n=cs,
                               timings={"total_s": sw.seconds})


def plot(result: dict, path) -> None:
    """Book grid (rows: activation × init, columns: layers) above the cs231n tanh net."""
    cfg = result["config"]
    book, cs = result["book"], result["cs231n"]
    rows = list(book)
    n_layers = cfg["layers"]
    cs_layers = cfg["cs231n_layers"]
    fig = new_figure((2.1 * max(n_layers, cs_layers), 1.25 * len(rows) + 6.2),
                             layout=None)  # ~90 axes: constrained layout would take seconds
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25 * len(rows), 6.0])
    top.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.03, hspace=0.35, wspace=0.08)
    bottom.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08, hspace=0.6, wspace=0.3)

    axes = top.subplots(len(rows), n_layers, sharey="row", squeeze=False)
    for r, key in enumerate(rows):
        act_name, init = key.split("/")
        lo, hi = RANGES[act_name]
        edges = np.linspace(lo, hi, cfg["bins"] + 1)
        for c, layer in enumerate(book[key]):
            ax = axes[r, c]
            ax.stairs(layer["hist"], edges, fill=True, color="C0")
            ax.set_xlim(lo, hi)
            ax.set_xticks([lo, (lo + hi) / 2, hi])
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(f"{c + 1}-layer", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{act_name}\n{INIT_LABELS.get(init, init)}", fontsize=8)
            else:
                ax.tick_params(labelleft=False)
            note = f"std {layer['std']:.2g}"
            if act_name == "relu":
                note += f"\n{100 * layer['frac_zero']:.0f}% zeros (not shown)"
            ax.text(0.97, 0.92, note, transform=ax.transAxes,
                    ha="right", va="top", fontsize=6, color="0.25")
    top.suptitle(
        f"{TITLE}\n{subtitle(result)}\n"
        f"Book: {cfg['n_samples']}×{cfg['width']} Gaussian input, {n_layers} layers × "
        f"{cfg['width']} nodes; histogram of each layer's activations (30 bins)", fontsize=10)

    gs = bottom.add_gridspec(len(cs) + 1, cs_layers)
    edges = np.linspace(-1, 1, cfg["bins"] + 1)
    for r, (init, layers) in enumerate(cs.items()):
        for c, layer in enumerate(layers):
            ax = bottom.add_subplot(gs[r, c])
            ax.stairs(layer["hist"], edges, fill=True, color="C1")
            ax.set_xlim(-1, 1)
            ax.set_xticks([-1, 0, 1])
            ax.tick_params(labelsize=6, labelleft=False)
            ax.set_title(f"layer {c + 1}: mean {layer['mean']:+.2f}, std {layer['std']:.2f}",
                         fontsize=7)
            if c == 0:
                ax.set_ylabel(f"tanh\nW {INIT_LABELS.get(init, init)}", fontsize=8)
    half = cs_layers // 2
    ax_mean = bottom.add_subplot(gs[len(cs), :half])
    ax_std = bottom.add_subplot(gs[len(cs), half:])
    x = np.arange(1, cs_layers + 1)
    for init, layers in cs.items():
        lab = INIT_LABELS.get(init, init)
        ax_mean.plot(x, [lyr["mean"] for lyr in layers], "o-", label=lab)
        ax_std.plot(x, [lyr["std"] for lyr in layers], "o-", label=lab)
    for ax, what in ((ax_mean, "mean"), (ax_std, "std")):
        ax.set_xlabel("layer")
        ax.set_ylabel(f"activation {what}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax_mean.set_ylim(-1, 1)
    ax_std.set_ylim(0, 1)
    bottom.suptitle(
        f"cs231n: {cfg['cs231n_batch']} Gaussian inputs, {cs_layers} tanh layers × "
        f"{cfg['cs231n_width']} units", fontsize=10)
    fig.savefig(path, dpi=70)
