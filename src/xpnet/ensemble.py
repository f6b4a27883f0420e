"""Model ensembles and test-time augmentation (cs231n lecture 7, "model ensembles").

Two cheap ways to buy a point or two of test accuracy after training:

* :class:`Ensemble` -- train several networks independently (different seeds) and average
  their predicted class probabilities;
* :func:`tta_predict` -- average one network's probabilities over shifted copies of each test
  image (test-time augmentation).

Both work on the device: probabilities stay backend arrays, only accuracies come back as Python
floats.

Examples
--------
>>> import numpy as np
>>> from xpnet import Ensemble, MultiLayerNet, tta_predict
>>> nets = [MultiLayerNet(16, [8], 3, seed=s) for s in range(3)]
>>> x = np.random.default_rng(0).random((5, 16), dtype=np.float32)
>>> Ensemble(nets).predict(x).shape
(5, 3)
>>> tta_predict(nets[0], x, image_shape=(4, 4), shifts=1).sum(axis=1).round(5).tolist()
[1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from typing import Any

from array_api_compat import device as _device

from xpnet.backend import Backend
from xpnet.functions import softmax

__all__ = ["Ensemble", "tta_predict"]


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    try:
        ok = not isinstance(batch_size, bool) and operator.index(batch_size) > 0
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return operator.index(batch_size)


def _rows(n: int, batch_size: int | None) -> Iterable[tuple[int, int]]:
    step = n if not batch_size else batch_size
    for start in range(0, n, max(step, 1)):
        yield start, min(start + step, n)  # out-of-bounds slices are undefined in the standard


class Ensemble:
    """Average of the softmax probabilities of several networks.

    Parameters
    ----------
    networks : iterable of networks
        Trained networks with the book's ``predict(x, train_flg=False)`` returning scores
        ``(N, C)``, all on one backend and device (train them with different seeds: an
        ensemble of identical networks is one network).

    Attributes
    ----------
    networks : list
    backend : Backend
        The members' backend; results live there.

    Notes
    -----
    The members' *probabilities* are averaged (cs231n's recipe), not their scores: a member
    that is confident counts more than one that is not, and the result is a probability
    distribution per row.  Members in training mode are never used: ``predict`` runs each in
    inference mode (batch norm's running statistics, dropout scaled).

    Examples
    --------
    >>> from xpnet import MultiLayerNet
    >>> Ensemble([MultiLayerNet(2, [4], 2, seed=s) for s in range(2)]).predict([[0.0, 1.0]]).shape
    (1, 2)
    """

    def __init__(self, networks: Iterable[Any]):
        nets = list(networks)
        if not nets:
            raise ValueError("networks must hold at least one network")
        for i, net in enumerate(nets):
            if not hasattr(net, "predict") or not isinstance(
                getattr(net, "backend", None), Backend
            ):
                raise TypeError(
                    f"networks[{i}] is not an xpnet network (needs predict and a backend), "
                    f"got {type(net).__name__}"
                )
        be = nets[0].backend
        others = [i for i, net in enumerate(nets) if net.backend != be]
        if others:
            raise ValueError(
                f"networks must share one backend and device; networks[0] is on {be}, "
                f"networks[{others[0]}] on {nets[others[0]].backend}"
            )
        sizes = {getattr(net, "output_size", None) for net in nets} - {None}
        if len(sizes) > 1:
            raise ValueError(f"networks must have the same number of classes, got {sorted(sizes)}")
        self.networks = nets
        self.backend: Backend = be
        self.xp = be.xp

    def __len__(self) -> int:
        return len(self.networks)

    def _x(self, x: Any) -> Any:
        first = self.networks[0]
        return first._x(x) if hasattr(first, "_x") else self.backend.asarray(x)

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Mean of the members' softmax probabilities, ``(N, C)`` on the backend.

        Unlike a network's ``predict`` (scores), this returns probabilities: rows sum to 1.
        ``batch_size`` bounds the rows passed to a member at once (all by default).
        """
        bs = _check_batch_size(batch_size)
        x = self._x(x)
        xp = self.xp
        parts = []
        for start, stop in _rows(x.shape[0], bs):
            xb = x[start:stop, ...]
            total = None
            for net in self.networks:
                p = softmax(net.predict(xb, train_flg=False), xp=xp)
                total = p if total is None else total + p
            parts.append(total / float(len(self.networks)))
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)

    def accuracy(self, x: Any, t: Any, batch_size: int | None = None) -> float:
        """Fraction of rows whose arg-max averaged probability is the label (integer labels
        ``(N,)`` or one-hot rows ``(N, C)``), as a Python float."""
        return _accuracy(self.backend, self.networks[0], self.predict(x, batch_size), t)

    def __repr__(self) -> str:
        return f"Ensemble({len(self.networks)} networks, backend={self.backend.name!r})"


def _accuracy(be: Backend, net: Any, proba: Any, t: Any) -> float:
    xp = be.xp
    t = net._t(t) if hasattr(net, "_t") else be.labels(t, proba.dtype)
    if t.ndim != 1:
        t = xp.argmax(t, axis=1)
    if t.shape[0] != proba.shape[0]:
        raise ValueError(f"t has {t.shape[0]} labels for {proba.shape[0]} rows of x")
    if proba.shape[0] == 0:
        raise ValueError("accuracy of an empty batch")
    hit = xp.argmax(proba, axis=1) == xp.astype(t, xp.int64)
    return be.to_float(xp.count_nonzero(hit)) / proba.shape[0]


# --------------------------------------------------------------------------------------------
# test-time augmentation
# --------------------------------------------------------------------------------------------


def _shift(xp: Any, img: Any, dy: int, dx: int) -> Any:
    """``img`` ``(N, C, H, W)`` moved by ``dy`` rows down and ``dx`` columns right, the
    uncovered border zero-filled: slices and concatenations only (no roll, no writes)."""
    n, c, h, w = img.shape
    dev = _device(img)
    if dy:
        pad = xp.zeros((n, c, abs(dy), w), dtype=img.dtype, device=dev)
        img = (xp.concat([pad, img[:, :, :h - dy, :]], axis=2) if dy > 0
               else xp.concat([img[:, :, -dy:, :], pad], axis=2))
    if dx:
        pad = xp.zeros((n, c, h, abs(dx)), dtype=img.dtype, device=dev)
        img = (xp.concat([pad, img[:, :, :, :w - dx]], axis=3) if dx > 0
               else xp.concat([img[:, :, :, -dx:], pad], axis=3))
    return img


def tta_predict(network: Any, x: Any, image_shape: tuple[int, int] = (28, 28), shifts: int = 1,
                *, batch_size: int | None = None) -> Any:
    """Softmax probabilities averaged over each image and its shifted copies.

    Every ``(dy, dx)`` in ``[-shifts, shifts]**2`` is used: ``(2 * shifts + 1)**2`` copies
    (9 for ``shifts=1``), each moved by ``dy`` rows and ``dx`` columns with a zero-filled
    border (MNIST's background is 0).  ``shifts=0`` is the plain softmax of the network.

    Parameters
    ----------
    network : network or Ensemble
        A network (its ``predict(x, train_flg=False)`` scores go through a softmax) or an
        :class:`Ensemble` (its averaged probabilities are used: TTA of the ensemble).
    x : array, shape (N, C*H*W) or (N, C, H, W)
        Images, flattened (as ``load_mnist(flatten=True)``) or not.
    image_shape : (int, int)
        ``(H, W)`` of one image.
    shifts : int
        Largest shift in pixels, ``0 <= shifts < min(H, W)``.
    batch_size : int, optional
        Images per forward pass.  All shifted copies of a batch go through the network in
        **one** call of ``(2 * shifts + 1)**2 * batch_size`` rows (better matrix products than
        one call per shift); that costs as many times the memory of the batch (2,000 MNIST
        digits, 9 copies: 56 MB in float32).  None: the whole ``x`` at once.

    Returns
    -------
    array, shape (N, C)
        Probabilities (rows sum to 1) on the network's backend.

    Notes
    -----
    Shifting is the augmentation the book's chapter-8 networks and cs231n's notes use for
    digits; flips would be wrong for them.  With ``shifts`` up to 1 or 2 the average favours
    the centred copy's answer and smooths the others'.

    Examples
    --------
    >>> from xpnet import MultiLayerNet
    >>> net = MultiLayerNet(9, [4], 2, seed=0)
    >>> tta_predict(net, [[0.0] * 4 + [1.0] + [0.0] * 4], image_shape=(3, 3)).shape
    (1, 2)
    """
    ens = network if isinstance(network, Ensemble) else None
    if ens is None and (not hasattr(network, "predict")
                        or not isinstance(getattr(network, "backend", None), Backend)):
        raise TypeError(
            f"network must be an xpnet network or an Ensemble, got {type(network).__name__}"
        )
    try:
        h, w = (operator.index(v) for v in image_shape)
        ok = h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_shape must be two positive integers (H, W), got {image_shape!r}")
    try:
        s = operator.index(shifts)
        ok = not isinstance(shifts, bool) and 0 <= s < min(h, w)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"shifts must be an integer with 0 <= shifts < min(image_shape) = {min(h, w)}, "
            f"got {shifts!r}"
        )
    bs = _check_batch_size(batch_size)

    be: Backend = ens.backend if ens is not None else network.backend
    xp = be.xp
    to_x = ens._x if ens is not None else getattr(network, "_x", be.asarray)
    x = to_x(x)
    shape = tuple(x.shape)
    if x.ndim == 2 and shape[1] % (h * w) == 0 and shape[1] > 0:
        channels = shape[1] // (h * w)
    elif x.ndim == 4 and shape[2:] == (h, w):
        channels = shape[1]
    else:
        raise ValueError(
            f"x must have shape (N, C*{h}*{w}) or (N, C, {h}, {w}) for image_shape={(h, w)}, "
            f"got {shape}"
        )

    def proba(rows: Any) -> Any:
        if ens is not None:
            return ens.predict(rows)
        return softmax(network.predict(rows, train_flg=False), xp=xp)

    if s == 0:
        return proba(x)
    offsets = list(itertools.product(range(-s, s + 1), repeat=2))
    k = len(offsets)
    parts = []
    for start, stop in _rows(shape[0], bs):
        xb = x[start:stop, ...]
        n = xb.shape[0]
        img = xp.reshape(xb, (n, channels, h, w))
        copies = xp.concat([_shift(xp, img, dy, dx) for dy, dx in offsets], axis=0)
        copies = xp.reshape(copies, (k * n, *shape[1:]))
        p = proba(copies)
        p = xp.reshape(p, (k, n, p.shape[1]))
        parts.append(xp.mean(p, axis=0))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
