"""Plain float64 NumPy transcriptions of the book's code (oreilly-japan/deep-learning-from-scratch,
``common/``), the oracles of tests/test_book*.py.  Nothing here imports xpnet.

- the six optimizers of ``common/optimizer.py``, as published (``params[key] -= ...``);
- ``MultiLayerNetExtend`` with batch normalization and ReLU (``common/multi_layer_net_extend.py``
  with the layers of ``common/layers.py``): the loss and its backpropagated gradients;
- ``numerical_gradient`` of ``common/gradient.py``, ``smooth_curve`` and ``shuffle_dataset`` of
  ``common/util.py``.
"""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------------------------- optimizers


class _Book:
    def __init__(self, lr, **hp):
        self.lr, self.hp, self.state, self.iter = lr, hp, {}, 0

    def zeros(self, params, *names):
        if not self.state:
            for name in names:
                self.state[name] = {k: np.zeros_like(v) for k, v in params.items()}


class SGD(_Book):
    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum(_Book):
    def update(self, params, grads):
        self.zeros(params, "v")
        v, m = self.state["v"], self.hp.get("momentum", 0.9)
        for key in params.keys():
            v[key] = m * v[key] - self.lr * grads[key]
            params[key] += v[key]


class Nesterov(_Book):
    def update(self, params, grads):
        self.zeros(params, "v")
        v, m = self.state["v"], self.hp.get("momentum", 0.9)
        for key in params.keys():
            params[key] += m * m * v[key]
            params[key] -= (1 + m) * self.lr * grads[key]
            v[key] *= m
            v[key] -= self.lr * grads[key]


class AdaGrad(_Book):
    def update(self, params, grads):
        self.zeros(params, "h")
        h = self.state["h"]
        for key in params.keys():
            h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


class RMSprop(_Book):
    def update(self, params, grads):
        self.zeros(params, "h")
        h, d = self.state["h"], self.hp.get("decay_rate", 0.99)
        for key in params.keys():
            h[key] *= d
            h[key] += (1 - d) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


class Adam(_Book):
    def update(self, params, grads):
        self.zeros(params, "m", "v")
        m, v = self.state["m"], self.state["v"]
        b1, b2 = self.hp.get("beta1", 0.9), self.hp.get("beta2", 0.999)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - b2**self.iter) / (1.0 - b1**self.iter)
        for key in params.keys():
            m[key] += (1 - b1) * (grads[key] - m[key])
            v[key] += (1 - b2) * (grads[key]**2 - v[key])
            params[key] -= lr_t * m[key] / (np.sqrt(v[key]) + 1e-7)


OPTIMIZERS = {c.__name__: c for c in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}

#: The learning rates of the book's optimizer_compare_naive.py (RMSprop: ours).
PATH_LR = {"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.2,
           "Adam": 0.3}


def df(x, y):
    """Gradient of the book's f(x, y) = x**2 / 20 + y**2."""
    return x / 10.0, 2.0 * y


def path(name: str, steps: int = 30, lr: float | None = None) -> tuple[list[float], list[float]]:
    """The book's optimizer on f from (-7, 2), parameters as 0-d float64 arrays (updated in
    place, as the book updates arrays); the points before each step."""
    opt = OPTIMIZERS[name](PATH_LR[name] if lr is None else lr)
    params = {"x": np.array(-7.0), "y": np.array(2.0)}
    xs, ys = [], []
    for _ in range(steps):
        xs.append(float(params["x"]))
        ys.append(float(params["y"]))
        gx, gy = df(params["x"], params["y"])
        opt.update(params, {"x": gx, "y": gy})
    return xs, ys


# -------------------------------------------------------------- the batch-norm network


def bn_net_loss_and_grads(P: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray,
                          hidden: int) -> tuple[float, dict[str, np.ndarray]]:
    """The book's MultiLayerNetExtend(use_batchnorm=True, activation='relu') in training mode:
    ``(loss, grads)`` for one-hot ``t``.  Batch norm as in common/layers.py (``10e-7`` inside
    the square root), ReLU's backward zero where ``x <= 0``."""
    cache = []
    h = x
    for i in range(1, hidden + 1):
        a = h @ P[f"W{i}"] + P[f"b{i}"]
        mu = a.mean(axis=0)
        xc = a - mu
        var = np.mean(xc**2, axis=0)
        std = np.sqrt(var + 10e-7)
        xn = xc / std
        z = P[f"gamma{i}"] * xn + P[f"beta{i}"]
        mask = z <= 0
        out = z.copy()
        out[mask] = 0
        cache.append((h, xc, std, xn, mask))
        h = out
    last = hidden + 1
    s = h @ P[f"W{last}"] + P[f"b{last}"]
    s = s - s.max(axis=-1, keepdims=True)
    y = np.exp(s) / np.sum(np.exp(s), axis=-1, keepdims=True)
    n = x.shape[0]
    labels = t.argmax(axis=1)
    loss = -np.sum(np.log(y[np.arange(n), labels] + 1e-7)) / n

    g = {}
    dout = (y - t) / n
    g[f"W{last}"] = h.T @ dout
    g[f"b{last}"] = dout.sum(axis=0)
    dout = dout @ P[f"W{last}"].T
    for i in range(hidden, 0, -1):
        h_in, xc, std, xn, mask = cache[i - 1]
        dout = dout.copy()
        dout[mask] = 0
        g[f"beta{i}"] = dout.sum(axis=0)
        g[f"gamma{i}"] = np.sum(xn * dout, axis=0)
        dxn = P[f"gamma{i}"] * dout
        dxc = dxn / std
        dstd = -np.sum((dxn * xc) / (std * std), axis=0)
        dvar = 0.5 * dstd / std
        dxc += (2.0 / n) * xc * dvar
        dmu = np.sum(dxc, axis=0)
        da = dxc - dmu / n
        g[f"W{i}"] = h_in.T @ da
        g[f"b{i}"] = da.sum(axis=0)
        dout = da @ P[f"W{i}"].T
    return float(loss), g


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
