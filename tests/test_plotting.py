"""xpnet.plotting: the book's smooth_curve against an independent computation, and the figures."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet.plotting import plot_training, smooth_curve, subtitle


def _smooth_reference(x: np.ndarray) -> np.ndarray:
    """The book's smoothing written from its definition, without np.kaiser or np.convolve.

    Kaiser window w[k] = I0(beta * sqrt(1 - (2k/(M-1) - 1)^2)) / I0(beta), M = 11, beta = 2;
    y[i] = sum_d w[d+5] e[i+d] / sum(w), with the book's extension of the curve past its ends:
    e[-j] = x[j] on the left, e[n-1+j] = x[n-j] on the right.
    """
    m, beta = 11, 2.0
    k = np.arange(m)
    w = np.i0(beta * np.sqrt(1 - (2 * k / (m - 1) - 1) ** 2)) / np.i0(beta)
    n = len(x)

    def e(j: int) -> float:
        if j < 0:
            return x[-j]
        if j >= n:
            return x[n - 1 - (j - n)]
        return x[j]

    return np.array([sum(w[d + 5] * e(i + d) for d in range(-5, 6)) / w.sum()
                     for i in range(n)])


@pytest.mark.parametrize("n", [11, 12, 40])
def test_smooth_curve_matches_the_definition(n):
    x = np.random.default_rng(n).standard_normal(n).cumsum()
    got = smooth_curve(list(x))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, _smooth_reference(x), rtol=1e-12, atol=1e-12)


def test_smooth_curve_keeps_constants_and_short_curves():
    np.testing.assert_allclose(smooth_curve([1.5] * 30), np.full(30, 1.5), rtol=1e-12)
    assert smooth_curve([3.0, 1.0]).tolist() == [3.0, 1.0]
    assert smooth_curve([]).shape == (0,)


def test_smooth_curve_takes_numpy_values():
    x = np.linspace(0.0, 1.0, 25) ** 2
    values = [np.float32(v) if i % 2 else np.asarray(v) for i, v in enumerate(x)]
    np.testing.assert_allclose(smooth_curve(values),
                               _smooth_reference(np.array([float(v) for v in values])),
                               rtol=1e-12, atol=1e-12)


def test_smooth_curve_takes_0d_device_arrays_in_one_transfer(backend, monkeypatch):
    x = (np.sin(np.arange(30) / 3.0) + 2.0).astype(np.float32)
    calls = []
    real = type(backend).to_numpy

    def counting(self, a):
        calls.append(a)
        return real(self, a)

    monkeypatch.setattr(type(backend), "to_numpy", counting)
    got = smooth_curve([backend.asarray(v) for v in x])
    want = _smooth_reference(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(calls) == (0 if backend.name == "numpy" else 1)
    # a whole 1-D array of the backend works as well
    np.testing.assert_allclose(smooth_curve(backend.asarray(x)), want, rtol=1e-12, atol=1e-12)


def test_subtitle():
    assert subtitle({"backend": "torch", "device": "cuda:0", "seed": 3}) == (
        "xpnet · backend torch on cuda:0 · seed 3")


def test_plot_training_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    loss = list(np.linspace(2.3, 0.3, 40))
    record = {
        "history": {"train_loss": loss, "train_acc": [0.8, 0.9], "test_acc": [0.79, 0.88],
                    "iter_per_epoch": 20},
        "test_acc": 0.88, "backend": "numpy", "device": "cpu", "seconds_per_epoch": 0.5,
        "config": {"layers": [784, 50, 10], "activation": "relu", "batchnorm": True,
                   "dropout": 0.1, "optimizer": "Adam", "optimizer_param": {"lr": 0.001},
                   "batch_size": 100, "n_train": 8000},
    }
    path = tmp_path / "curve.png"
    plot_training(record, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
