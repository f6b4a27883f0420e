"""Weight initialization: the book's ``weight_init_std``, drawn on the host from a seed.

Weights are drawn with NumPy's ``default_rng(seed)`` in float64 on the host, scaled, cast to the
network's dtype and only then copied to the backend's device -- so one seed gives bit-identical
initial weights on NumPy, CuPy, torch and array-api-strict, and a GPU learning curve can be laid
over a CPU one.

Examples
--------
>>> init_std("he", 100)
0.1414213562373095
>>> init_std("xavier", 100)
0.1
>>> init_std(0.01, 100)
0.01
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["INIT_NAMES", "draw_conv_net_params", "draw_network_params", "draw_weights",
           "init_std"]

#: Random streams drawn from as they are (anything else seeds ``numpy.random.default_rng``).
_STREAMS = (np.random.Generator, np.random.RandomState)

#: Names accepted for ``weight_init_std`` besides a positive float.
INIT_NAMES = ("relu", "he", "sigmoid", "xavier")


def init_std(weight_init_std: Any, fan_in: int) -> float:
    """The standard deviation of the weights of a layer with ``fan_in`` inputs.

    Parameters
    ----------
    weight_init_std : float or str
        A float is used as is.  ``'relu'``/``'he'``: ``sqrt(2 / fan_in)`` (He et al. 2015,
        https://arxiv.org/abs/1502.01852).  ``'sigmoid'``/``'xavier'``: ``sqrt(1 / fan_in)``
        (the book's simplification of Glorot & Bengio 2010).

        ``'relu'``/``'he'`` means ``sqrt(2 / fan_in)`` for the whole ReLU family -- leaky
        ReLU, PReLU, ELU and maxout too.  (He et al.'s exact gain for a slope ``a`` on the
        negative side is ``sqrt(2 / ((1 + a**2) * fan_in))``, i.e. 0.97 of that at PReLU's
        initial ``a = 0.25``, and PyTorch's ``kaiming_normal_(a=...)`` uses it; the book and
        xpnet keep ``sqrt(2 / fan_in)``.)
    fan_in : int
        Number of inputs of the layer (the previous layer's width).
    """
    if fan_in <= 0:
        raise ValueError(f"fan_in must be positive, got {fan_in}")
    if isinstance(weight_init_std, str):
        name = weight_init_std.lower()
        if name in ("relu", "he"):
            return math.sqrt(2.0 / fan_in)
        if name in ("sigmoid", "xavier"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(
            f"unknown weight_init_std {weight_init_std!r}; use a positive float or one of "
            f"{', '.join(INIT_NAMES)}"
        )
    try:
        std = float(weight_init_std)
    except (TypeError, ValueError):
        raise ValueError(
            f"weight_init_std must be a float or a name, not {weight_init_std!r}"
        ) from None
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"weight_init_std must be a finite float >= 0, got {weight_init_std!r}")
    return std


def draw_weights(sizes: list[int], weight_init_std: Any, seed: Any = None,
                 dtype: Any = np.float32) -> list[tuple[np.ndarray, np.ndarray]]:
    """Host (NumPy) weights and zero biases for consecutive layer ``sizes``.

    Returns ``[(W1, b1), (W2, b2), ...]`` with ``W_i`` of shape ``(sizes[i-1], sizes[i])``,
    each ``std * standard_normal`` from one ``numpy.random.default_rng(seed)`` stream.  ``seed``
    may also be a ``Generator`` or a legacy ``numpy.random.RandomState``, drawn from as it is
    (with NumPy's global ``RandomState`` the weights are the book's ``std * np.random.randn``).
    """
    rng = seed if isinstance(seed, _STREAMS) else np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        std = init_std(weight_init_std, fan_in)
        w = (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)
        out.append((w, np.zeros(fan_out, dtype=dtype)))
    return out


def draw_network_params(sizes: list[int], weight_init_std: Any, seed: Any = None, *,
                        batchnorm: bool = False, float64: bool = False,
                        maxout_pieces: int = 1, prelu_alpha: float | None = None,
                        dropout: bool = True
                        ) -> tuple[np.ndarray, dict[str, tuple[int, ...]], int | None]:
    """Host parameters of a book network, packed into one flat array.

    Returns ``(flat, shapes, dropout_seed)``: ``flat`` holds ``W1, b1, W2, b2, ...``, then
    ``gamma1, beta1, ...`` (ones and zeros) when ``batchnorm`` (any normalization with a scale
    and a shift per hidden unit: batch or layer norm), then ``alpha1, alpha2, ...`` (every entry
    ``prelu_alpha``) when ``prelu_alpha`` is given, in the order of ``shapes``;
    ``dropout_seed`` is drawn from the same stream (None without a seed) so that dropout masks
    are reproducible too.  ``seed`` may be a ``numpy.random.RandomState`` (see
    :func:`draw_weights`); from one, the dropout seed is drawn only when ``dropout``, so that a
    network without dropout takes exactly the book's draws from it.

    ``maxout_pieces > 1`` gives every hidden ``W{i}`` (and ``b{i}``) ``maxout_pieces`` times the
    columns, for :class:`~xpnet.layers.Maxout` layers; the standard deviation still comes from
    the layer's ``fan_in``.

    Examples
    --------
    >>> flat, shapes, _ = draw_network_params([3, 2, 2], "he", 0, maxout_pieces=2,
    ...                                       prelu_alpha=0.25)
    >>> shapes
    {'W1': (3, 4), 'b1': (4,), 'W2': (2, 2), 'b2': (2,), 'alpha1': (2,)}
    """
    pieces = int(maxout_pieces)
    if pieces < 1:
        raise ValueError(f"maxout_pieces must be >= 1, got {maxout_pieces!r}")
    dtype = np.float64 if float64 else np.float32
    rng = seed if isinstance(seed, _STREAMS) else np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    n_hidden = len(sizes) - 2
    # the random stream is consumed layer by layer in the same order for every architecture
    # (a wider maxout W draws more numbers, which changes the later layers' draws)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), 1):
        cols = fan_out * pieces if i <= n_hidden else fan_out
        std = init_std(weight_init_std, fan_in)
        arrays[f"W{i}"] = (std * rng.standard_normal((fan_in, cols))).astype(dtype)
        arrays[f"b{i}"] = np.zeros(cols, dtype=dtype)
    if batchnorm:
        for i in range(1, n_hidden + 1):
            arrays[f"gamma{i}"] = np.ones(sizes[i], dtype)
            arrays[f"beta{i}"] = np.zeros(sizes[i], dtype)
    if prelu_alpha is not None:
        for i in range(1, n_hidden + 1):
            arrays[f"alpha{i}"] = np.full(sizes[i], float(prelu_alpha), dtype)
    flat = np.concatenate([a.reshape(-1) for a in arrays.values()])
    if isinstance(rng, np.random.RandomState):
        dropout_seed = int(rng.randint(2**31)) if dropout else None
    else:
        dropout_seed = None if seed is None else int(rng.integers(2**31))
    return flat, {k: a.shape for k, a in arrays.items()}, dropout_seed


def draw_conv_net_params(weight_shapes: list[tuple[int, ...]], fan_ins: list[int],
                         weight_init_std: Any, seed: Any = None, *, norm_channels: int = 0,
                         float64: bool = False) -> tuple[np.ndarray, dict[str, tuple[int, ...]]]:
    """Host parameters of a convolutional network, packed into one flat array.

    ``W1, b1, W2, b2, ...`` for the weights of ``weight_shapes`` (the first axis of a
    convolution's ``(FN, C, FH, FW)`` and the last of an affine ``(D, M)`` give the bias width),
    each ``init_std(weight_init_std, fan_in) * standard_normal(shape)`` from one
    ``numpy.random.default_rng(seed)`` stream in that order, biases zero; then ``gamma1`` (ones)
    and ``beta1`` (zeros) of ``norm_channels`` entries when it is positive.  The book's
    ``SimpleConvNet`` draws the same way from the legacy global generator.

    Returns ``(flat, shapes)`` as :func:`draw_network_params`.

    Examples
    --------
    >>> flat, shapes = draw_conv_net_params([(2, 1, 3, 3), (8, 4)], [9, 8], 0.01, seed=0)
    >>> shapes
    {'W1': (2, 1, 3, 3), 'b1': (2,), 'W2': (8, 4), 'b2': (4,)}
    >>> flat.dtype.name, flat.size
    ('float32', 56)
    """
    dtype = np.float64 if float64 else np.float32
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for i, (shape, fan_in) in enumerate(zip(weight_shapes, fan_ins, strict=True), 1):
        std = init_std(weight_init_std, fan_in)
        arrays[f"W{i}"] = (std * rng.standard_normal(shape)).astype(dtype)
        width = shape[0] if len(shape) == 4 else shape[-1]
        arrays[f"b{i}"] = np.zeros(width, dtype)
    if norm_channels > 0:
        arrays["gamma1"] = np.ones(norm_channels, dtype)
        arrays["beta1"] = np.zeros(norm_channels, dtype)
    flat = np.concatenate([a.reshape(-1) for a in arrays.values()])
    return flat, {k: a.shape for k, a in arrays.items()}
