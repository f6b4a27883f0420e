"""The book's own float64 code path: the baseline "the book's code (float64)" of the benchmark.

A faithful re-implementation of the ``common/`` package of *Deep Learning from Scratch*
(Koki Saito; the book's repository ``oreilly-japan/deep-learning-from-scratch`` is MIT-licensed,
Copyright (c) 2016 Koki Saito) for the models the benchmark times: ``MultiLayerNetExtend`` with
batch normalization and dropout, trained with the book's ``Adam``.  The code lives in
``xpnet.benchmark.book`` so that ``xpnet bench`` finds its baseline when xpnet is installed from
a wheel; this file re-exports it and, run as a script, times a few C1 steps of it alone::

    python bench/book_reference.py
"""

from __future__ import annotations

import time

import numpy as np

from xpnet.benchmark.book import (  # noqa: F401  (re-exported)
    Adam,
    Affine,
    BatchNormalization,
    Dropout,
    MultiLayerNetExtend,
    Relu,
    SoftmaxWithLoss,
    cross_entropy_error,
    softmax,
)


def _demo(steps: int = 200) -> None:
    rng = np.random.default_rng(0)
    x, t = rng.random((100, 784)), rng.integers(0, 10, 100)
    net = MultiLayerNetExtend(784, [100] * 5, 10, use_dropout=True, dropout_ration=0.2,
                              use_batchnorm=True, seed=0)
    opt = Adam(lr=0.001)
    loss0 = net.loss(x, t)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.update(net.params, net.gradient(x, t))
    ms = (time.perf_counter() - t0) / steps * 1e3
    print(f"book C1 step: {ms:.2f} ms (float64); loss on one batch {loss0:.3f} -> "
          f"{net.loss(x, t):.3f} after {steps} steps")


if __name__ == "__main__":
    _demo()
