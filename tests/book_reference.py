"""Oracles of tests/test_book*.py: the book's code (oreilly-japan/deep-learning-from-scratch,
``common/``) in plain float64 NumPy.  Nothing here imports xpnet.

- the optimizers' paths on the book's f(x, y) = x**2/20 + y**2, and the batch-norm network's
  loss and gradients, from the transcriptions in tests/oracles.py;
- ``numerical_gradient`` of ``common/gradient.py``, ``smooth_curve`` and ``shuffle_dataset`` of
  ``common/util.py``, transcribed here.
"""

from __future__ import annotations

import numpy as np

import oracles

# ------------------------------------------------------------------------------- optimizers

#: The book's optimizers (tests/oracles.py), by class name.
OPTIMIZERS = oracles.BOOK_OPTIMIZERS

#: The learning rates of the book's optimizer_compare_naive.py (Nesterov, RMSprop: ours).
PATH_LR = {"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.2,
           "Adam": 0.3}


def df(x, y):
    """Gradient of the book's f(x, y) = x**2 / 20 + y**2."""
    return x / 10.0, 2.0 * y


def run(name: str, init: dict, lr: float) -> oracles.OptimizerRun:
    """The book's optimizer ``name`` stepping the float64 parameters ``init``."""
    return oracles.OptimizerRun(OPTIMIZERS[name], init, lr=lr)


def path(name: str, steps: int = 30, lr: float | None = None) -> tuple[list[float], list[float]]:
    """The book's optimizer on f from (-7, 2): the points before each step."""
    opt = run(name, {"x": -7.0, "y": 2.0}, PATH_LR[name] if lr is None else lr)
    xs, ys = [], []
    for _ in range(steps):
        x, y = float(opt.params["x"]), float(opt.params["y"])
        xs.append(x)
        ys.append(y)
        gx, gy = df(x, y)
        opt.update({"x": gx, "y": gy})
    return xs, ys


# -------------------------------------------------------------- the batch-norm network


def bn_net_loss_and_grads(P: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray,
                          hidden: int) -> tuple[float, dict[str, np.ndarray]]:
    """The book's MultiLayerNetExtend(use_batchnorm=True, activation='relu') in training mode
    (tests/oracles.py): ``(loss, grads)``."""
    loss, grads = oracles.multi_layer_net_extend_gradient(P, x, t, hidden, batchnorm=True)
    return float(loss), grads


def numerical_gradient(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """common/gradient.py's ``numerical_gradient`` (``x`` changed in place and restored)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        x[idx] = tmp_val + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
        it.iternext()
    return grad


# ------------------------------------------------------------------------------- util


def smooth_curve(x):
    """common/util.py's ``smooth_curve``."""
    window_len = 11
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def shuffle_dataset(x, t):
    """common/util.py's ``shuffle_dataset`` (NumPy's global random state)."""
    permutation = np.random.permutation(x.shape[0])  # noqa: NPY002
    x = x[permutation, :] if x.ndim == 2 else x[permutation, :, :, :]
    t = t[permutation]
    return x, t
