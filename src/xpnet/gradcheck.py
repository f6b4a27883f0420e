"""Gradient checking: backpropagation against central differences, with warnings for checks
that prove nothing.

The book checks its backprop with ``gradient_check.py`` (``ch05``, and
``ch06/batch_norm_gradient_check.py``), printing the mean absolute difference per parameter as
``key + ":" + str(diff)``; cs231n's notes add what can make such a check lie: float32, kinks of
ReLU / maxout, dropout's random masks, and (for batch norm) a batch of one.
:func:`gradient_check` does the check and warns (:class:`GradientCheckWarning`) in each of those
cases.

Examples
--------
>>> import numpy as np
>>> from xpnet import MultiLayerNet, gradient_check
>>> net = MultiLayerNet(4, [5], 3, activation="tanh", dtype="float64", seed=0)
>>> x, t = np.random.default_rng(0).standard_normal((3, 4)), np.array([0, 1, 2])
>>> errors = gradient_check(net, x, t)
>>> max(errors.values()) < 1e-5
True
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from xpnet.backend import Backend, backend_of
from xpnet.layers import BatchNormalization, Dropout

__all__ = [
    "KINK_DISTANCES",
    "GradientCheckResult",
    "GradientCheckWarning",
    "gradient_check",
    "relative_error",
]


class GradientCheckWarning(UserWarning):
    """A gradient check that was changed (float32 -> float64 copy, dropout masks held) or may
    not mean what it seems (kinks, a single sample through batch norm)."""


class GradientCheckResult(dict):
    """Relative error per parameter name (Python floats), printed in the book's format.

    ``str(result)`` gives one ``name:error`` line per parameter (``W1:1.2e-10``), as the book's
    ``print(key + ":" + str(diff))``; ``notes`` holds the messages of the warnings issued.

    Examples
    --------
    >>> print(GradientCheckResult({"W1": 1.23e-10, "b1": 4.5e-11}))
    W1:1.2e-10
    b1:4.5e-11
    """

    def __init__(self, *args: Any, notes: Iterable[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.notes = list(notes)

    def __str__(self) -> str:
        return "\n".join(f"{key}:{value:.2g}" for key, value in self.items())

    def __repr__(self) -> str:
        return f"GradientCheckResult({dict.__repr__(self)})"


def relative_error(a: Any, n: Any, *, xp: Any = None) -> Any:
    """``max|a - n| / max(max(|a| + |n|), tiny)`` as a 0-d array (``tiny``: the smallest
    normal float of the dtype).

    One ratio per parameter, of the largest difference to the largest magnitude -- not
    cs231n's ``max(|a - n| / max(|a| + |n|, 1e-8))`` taken element by element, which reports
    large errors for entries where both gradients are tiny (a ReLU unit that is dead on most
    of a batch).  0 for identical arrays.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.1]))), 6)  # 0.1/4.1
    0.02439
    """
    if xp is None:
        xp = backend_of(a).xp
    num = xp.max(xp.abs(a - n))
    den = xp.max(xp.abs(a) + xp.abs(n))
    return num / xp.maximum(den, xp.finfo(a.dtype).smallest_normal)


# --------------------------------------------------------------------------------------------
# kinks
# --------------------------------------------------------------------------------------------


def _relu_distance(layer: Any, x: Any, xp: Any) -> Any:
    """ReLU's kink is at 0: the distance of each input to it."""
    return xp.abs(x)


def _maxout_distance(layer: Any, x: Any, xp: Any) -> Any:
    """Maxout (Goodfellow et al. 2013, https://arxiv.org/abs/1302.4389) with ``W`` ``(D, M *
    pieces)``, ``b`` and ``pieces``, taking the max over each group of ``pieces`` consecutive
    columns of ``x @ W + b``: its kinks are where a group's two largest values tie, so the
    distance is their gap.  None when ``pieces < 2`` (no kinks)."""
    pieces = int(layer.pieces)
    if pieces < 2:
        return None
    x2 = xp.reshape(x, (x.shape[0], -1)) if x.ndim != 2 else x
    z = x2 @ layer.W + layer.b
    z = xp.reshape(z, (z.shape[0], -1, pieces))
    s = xp.sort(z, axis=-1)
    return s[..., -1] - s[..., -2]


def _leaky_relu_distance(layer: Any, x: Any, xp: Any) -> Any:
    """Leaky ReLU's slope jumps from ``alpha`` to 1 at 0; with ``alpha == 1`` it is the
    identity (None: no kink)."""
    return None if float(layer.alpha) == 1.0 else xp.abs(x)


def _prelu_distance(layer: Any, x: Any, xp: Any) -> Any:
    """PReLU's kink is at 0 for every feature whose learned slope is not 1 (features on axis 1,
    as the layer takes them); a feature with slope exactly 1 has none (distance inf)."""
    a = layer.alpha
    a = xp.reshape(a, (1, a.shape[0]) + (1,) * (x.ndim - 2))
    return xp.where(a == 1.0, xp.inf, xp.abs(x))


def _elu_distance(layer: Any, x: Any, xp: Any) -> Any:
    """ELU is ``x`` for ``x > 0`` and ``alpha * (exp(x) - 1)`` below: value and slope meet at 0
    only when ``alpha == 1`` (slope ``alpha`` from the left, 1 from the right).  With
    ``alpha == 1`` there is no kink (None); see :data:`KINK_DISTANCES`."""
    return None if float(layer.alpha) == 1.0 else xp.abs(x)


#: Layer class name -> ``distance(layer, layer_input, xp)``: each unit's distance to the nearest
#: kink of the layer's function (a jump in its value or first derivative), or None where the
#: layer has none.  Looked up along the layer's class hierarchy (a subclass of ``Relu`` counts
#: as a ReLU); add an entry here for another piecewise-linear layer.
#:
#: * ``Relu``, ``LeakyRelu`` (unless ``alpha == 1``), ``PRelu`` (features whose slope is not
#:   1): ``|x|``, the kink at 0.
#: * ``Maxout``: the gap between a unit's two largest pieces.
#: * ``Elu``: ``|x|`` only when ``alpha != 1``.  With ELU's default ``alpha = 1`` the function
#:   and its first derivative are continuous at 0 and only the second derivative jumps (from 1
#:   to 0): a central difference straddling 0 then errs by ``O(h)`` instead of ``O(h**2)`` --
#:   at most ``h / 4`` relative to the slope, 2.5e-5 at ``h = 1e-4``, where a kink errs by
#:   ``O(1)`` -- so no warning is given.
KINK_DISTANCES: dict[str, Callable[[Any, Any, Any], Any]] = {
    "Relu": _relu_distance,
    "LeakyRelu": _leaky_relu_distance,
    "PRelu": _prelu_distance,
    "Elu": _elu_distance,
    "Maxout": _maxout_distance,
}


def _kink_function(layer: Any) -> Callable[[Any, Any, Any], Any] | None:
    for cls in type(layer).__mro__:
        fn = KINK_DISTANCES.get(cls.__name__)
        if fn is not None:
            return fn
    return None


# --------------------------------------------------------------------------------------------
# holding dropout masks fixed
# --------------------------------------------------------------------------------------------


class _HeldDraws:
    """Stands in for a dropout layer's generator: each kind of draw (method and arguments) is
    made once by a private generator and then repeated, so every loss evaluation of the check
    sees the same masks -- whatever the layer does with them."""

    def __init__(self, gen: Any):
        self._gen = gen
        self.backend = gen.backend
        self.seed = gen.seed
        self._draws: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        draw = getattr(self._gen, name)
        if not callable(draw):
            return draw

        def held(*args: Any, **kwargs: Any) -> Any:
            key = f"{name}{args!r}{sorted(kwargs.items())!r}"
            if key not in self._draws:
                self._draws[key] = draw(*args, **kwargs)
            return self._draws[key]

        return held


def _is_dropout_like(layer: Any) -> bool:
    return isinstance(layer, Dropout) or "dropout" in type(layer).__name__.lower()


# --------------------------------------------------------------------------------------------
# a float64 copy of a network
# --------------------------------------------------------------------------------------------


def _float64_copy(network: Any) -> Any:
    """The network rebuilt with its own constructor arguments and ``dtype="float64"``, with
    its parameters and batch-norm running statistics copied (converted to float64)."""
    cls = type(network)
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name == "dtype":
            kwargs[name] = "float64"
        elif name == "backend":
            kwargs[name] = network.backend  # carries the device
        elif name != "device" and hasattr(network, name):
            kwargs[name] = getattr(network, name)
    if "dtype" not in kwargs:
        raise TypeError(
            f"{cls.__name__} takes no dtype=, so gradient_check cannot build a float64 copy; "
            "build the network in float64 to check it"
        )
    try:
        copy = cls(**kwargs)
    except Exception as exc:
        raise TypeError(
            f"gradient_check could not rebuild {cls.__name__} in float64 from its attributes "
            f"({type(exc).__name__}: {exc}); build the network with dtype='float64' to check it"
        ) from exc
    xp = copy.xp if hasattr(copy, "xp") else network.backend.xp
    if set(copy.params) != set(network.params):
        raise TypeError(f"the float64 copy of {cls.__name__} has other parameters")
    for key, value in network.params.items():
        copy.params[key][...] = xp.astype(value, xp.float64)
    for name, layer in getattr(network, "layers", {}).items():
        for attr in ("running_mean", "running_var"):
            value = getattr(layer, attr, None)
            if value is not None:
                setattr(copy.layers[name], attr, xp.astype(value, xp.float64))
    return copy


# --------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------


def _warn(notes: list[str], message: str) -> None:
    notes.append(message)
    warnings.warn(message, GradientCheckWarning, stacklevel=3)


def gradient_check(network: Any, x: Any, t: Any, *, h: float = 1e-4,
                   params: Iterable[str] | None = None) -> GradientCheckResult:
    """Compare ``network.gradient(x, t)`` with central differences of ``network.loss``.

    For every parameter (or those named in ``params``) the relative error
    ``max|a - n| / max(max(|a| + |n|), tiny)`` between the backprop gradient ``a`` and the
    numerical one ``n = (L(p + h) - L(p - h)) / 2h``, element by element, of the training-mode
    loss ``network.loss(x, t, train_flg=True)`` -- in float64 on the network's backend.

    Parameters
    ----------
    network
        A network with the book's interface: ``params``, ``layers``, ``gradient(x, t)``,
        ``loss(x, t, train_flg)``, and xpnet's ``backend``.
    x : array, shape (N, ...)
        A small batch (the check evaluates the loss twice per parameter entry).
    t : array, shape (N,) or (N, C)
        Labels.
    h : float
        The finite-difference step (the book's ``1e-4``).
    params : iterable of str, optional
        Names of the parameters to check; all when None.

    Returns
    -------
    GradientCheckResult
        A dict ``name -> relative error`` (float); ``print`` it for the book's lines
        ``W1:1.2e-10``.

    Warns
    -----
    GradientCheckWarning
        * a float32 network: it is checked on a float64 copy (same constructor arguments,
          ``dtype="float64"``, parameters and batch-norm running statistics copied); the
          network itself is not touched;
        * dropout active: its masks are held fixed for the whole check (one mask per layer),
          or, for a dropout-like layer whose generator cannot be swapped, that they cannot be
          (the numerical gradient is then noise);
        * kinks: some input of a ReLU (or maxout, see :data:`KINK_DISTANCES`) lies within
          ``h`` of a kink, where the central difference straddles a corner and disagrees with
          the one-sided backprop gradient;
        * a parameter whose gradient is zero up to rounding both ways (below the finite
          difference's resolution ``16 * eps * max(|loss|, 1) / h``, about 4e-11 for
          ``h=1e-4``): the loss does not depend on it -- a bias right before batch
          normalization -- and its relative error (about 1) compares rounding noise.

    Raises
    ------
    ValueError
        For ``h <= 0``, unknown names in ``params``, a device without float64, or a single
        sample through batch normalization (its normalized activations would all be 0 and
        everything before it would get a zero gradient both ways: the check would pass
        without testing those layers; batch normalization refuses it in training anyway).
    TypeError
        For an object without ``params`` / ``gradient`` / ``loss``.

    Notes
    -----
    How dropout masks are held: each ``Dropout`` layer's generator (its ``_rng``) is replaced,
    for the duration of the check, by a stand-in that makes each draw once (from a generator
    seeded with the layer's seed) and repeats it; the layer's own ``forward`` and ``backward``
    run unchanged.  Generators, masks and the layers' ``forward`` are restored afterwards,
    also when the check raises.  Kinks are found by recording each layer's input during one
    forward pass (a temporary ``forward`` wrapper on the instance, removed afterwards).

    A float64 network is checked in place: its parameters are restored exactly, and so are the
    batch-norm running statistics that the training-mode passes update; its gradient buffer
    holds the last ``gradient`` result afterwards.

    What a pass looks like: the book's loss is ``-mean(log(y + 1e-7))`` while backprop
    differentiates ``-mean(log(y))``, so even a correct network shows relative errors of about
    ``1e-7 / y`` for the smallest probability ``y`` of a true class: a few 1e-7 on a small
    untrained net, up to 1e-5 or more when some sample is confidently misclassified (check on
    inputs of modest scale); a real bug gives 1e-2 and more.

    Differences from the book's ``gradient_check.py``: a relative error instead of the mean
    absolute difference (scale-free: the same threshold whatever the size of the gradients),
    float64 enforced, and the warnings above.  PyTorch's
    ``torch.autograd.gradcheck`` compares full Jacobians element-wise against tolerances and
    raises; this returns one number per parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import MultiLayerNet
    >>> net = MultiLayerNet(3, [4], 2, activation="sigmoid", dtype="float64", seed=1)
    >>> x, t = np.random.default_rng(1).standard_normal((2, 3)), np.array([0, 1])
    >>> sorted(gradient_check(net, x, t, params=["W1", "b2"]))
    ['W1', 'b2']
    """
    for attr in ("params", "gradient", "loss"):
        if not hasattr(network, attr):
            raise TypeError(
                f"network must have the book's interface (params, gradient, loss); "
                f"{type(network).__name__} has no {attr!r}"
            )
    try:
        step = float(h)
    except (TypeError, ValueError):
        raise TypeError(f"h must be a positive number, got {h!r}") from None
    if not (step > 0.0 and math.isfinite(step)):
        raise ValueError(f"h must be a positive finite number, got {h!r}")
    if params is None:
        names = list(network.params)
    else:
        if isinstance(params, str):
            params = [params]
        names = list(params)
        unknown = [k for k in names if k not in network.params]
        if unknown:
            raise ValueError(
                f"params names unknown parameters {unknown}; the network has "
                f"{list(network.params)}"
            )
    be: Backend = getattr(network, "backend", None) or backend_of(
        next(iter(network.params.values()))
    )
    if not be.has_float64:
        raise ValueError(
            f"gradient_check works in float64, which the device {be.device!r} of the "
            f"{be.name} backend does not support; build the network on a device with float64 "
            "(the CPU, backend='numpy') to check its gradients"
        )
    xp = be.xp
    notes: list[str] = []

    net = network
    if any(p.dtype != xp.float64 for p in network.params.values()):
        _warn(notes, f"the network's parameters are not float64: gradients are checked on a "
                     f"float64 copy of {type(network).__name__} (the network is not changed)")
        net = _float64_copy(network)
    be = getattr(net, "backend", be)
    xp = be.xp
    x64 = net._x(x) if hasattr(net, "_x") else be.asarray(x, dtype="float64")
    t64 = net._t(t) if hasattr(net, "_t") else be.asarray(t)
    layers = dict(getattr(net, "layers", {}))

    n_samples = int(x64.shape[0])
    batchnorm = [name for name, layer in layers.items()
                 if isinstance(layer, BatchNormalization) or "batchnorm" in
                 type(layer).__name__.lower()]
    if n_samples == 1 and batchnorm:
        raise ValueError(
            f"a single sample through batch normalization ({', '.join(batchnorm)}) in "
            "training mode: the normalized activations are 0 and the layers before it get "
            "zero gradients both ways, so the check would prove nothing about them; use a "
            "batch of several samples")

    takes_flag = "train_flg" in inspect.signature(net.loss).parameters

    def loss() -> float:
        value = net.loss(x64, t64, train_flg=True) if takes_flag else net.loss(x64, t64)
        return be.to_float(value)

    # -- temporary changes, all undone in `finally` -----------------------------------------
    saved_stats = {name: (layer.running_mean, layer.running_var)
                   for name, layer in layers.items()
                   if hasattr(layer, "running_mean") and hasattr(layer, "running_var")}
    saved_rngs: dict[str, tuple[Any, Any]] = {}
    wrapped: dict[str, tuple[bool, Any]] = {}
    had_last_loss = hasattr(net, "last_loss")
    saved_last_loss = getattr(net, "last_loss", None)
    inputs: dict[str, Any] = {}
    recording = [True]
    try:
        for name, layer in layers.items():
            if not _is_dropout_like(layer):
                continue
            if hasattr(layer, "_rng") and hasattr(layer, "mask"):
                saved_rngs[name] = (layer._rng, layer.mask)
                seed = getattr(layer, "seed", None)
                layer._rng = _HeldDraws(be.random(0 if seed is None else seed))
            else:
                _warn(notes, f"dropout layer {name} ({type(layer).__name__}) is active in "
                             "training mode and its masks cannot be held fixed: every loss "
                             "evaluation draws new ones and the numerical gradient is noise; "
                             "check the network without dropout")
        if saved_rngs:
            _warn(notes, f"dropout is active ({', '.join(saved_rngs)}): its masks were drawn "
                         "once and held fixed for every loss evaluation of the check, which "
                         "therefore covers that one mask")
        for name, layer in layers.items():
            if _kink_function(layer) is None:
                continue
            own = "forward" in vars(layer)
            original = layer.forward
            wrapped[name] = (own, vars(layer).get("forward"))

            def record(x_in: Any, *args: Any, _name: str = name, _f: Any = original,
                       **kwargs: Any) -> Any:
                if recording[0]:
                    inputs[_name] = x_in
                return _f(x_in, *args, **kwargs)

            layer.forward = record

        loss0 = loss()  # one pass: records the kinks' inputs, draws the held dropout masks
        recording[0] = False
        for name, x_in in inputs.items():
            layer = layers[name]
            dist = _kink_function(layer)(layer, x_in, xp)
            if dist is None:
                continue
            close = be.to_float(xp.count_nonzero(dist < step))
            if close:
                _warn(notes, f"kink: {int(close)} of {math.prod(dist.shape)} inputs of "
                             f"{name} ({type(layer).__name__}) lie within h={step:g} of a kink "
                             "(smallest distance "
                             f"{be.to_float(xp.min(dist)):.2g}); the numerical gradient may "
                             "straddle it -- move the data or parameters off the kink, or "
                             "use a smaller h")

        grads = net.gradient(x64, t64)
        analytic = {k: xp.asarray(grads[k], copy=True) for k in names}

        numerical: dict[str, Any] = {}
        for key in names:
            p = net.params[key]
            host = be.to_numpy(p)  # exact float64 values to restore
            values = []
            for idx in itertools.product(*(range(n) for n in p.shape)):
                orig = float(host[idx])
                p[idx] = orig + step
                f_plus = loss()
                p[idx] = orig - step
                f_minus = loss()
                p[idx] = orig
                values.append((f_plus - f_minus) / (2.0 * step))
            numerical[key] = xp.reshape(be.asarray(values, dtype="float64"), tuple(p.shape))
    finally:
        for name, (own, previous) in wrapped.items():
            if own:
                layers[name].forward = previous
            else:
                vars(layers[name]).pop("forward", None)
        for name, (rng, mask) in saved_rngs.items():
            layers[name]._rng = rng
            layers[name].mask = mask
        for name, (mean, var) in saved_stats.items():
            layers[name].running_mean = mean
            layers[name].running_var = var
        if had_last_loss:
            net.last_loss = saved_last_loss

    result = {}
    flat = []
    resolution = 16.0 * float(xp.finfo(xp.float64).eps) * max(abs(loss0), 1.0) / step
    for k in names:
        a, n = analytic[k], numerical[k]
        result[k] = be.to_float(relative_error(a, n, xp=xp))
        if be.to_float(xp.max(xp.abs(a) + xp.abs(n))) <= resolution:
            flat.append(k)
    if flat:
        _warn(notes, f"{', '.join(flat)}: the gradient is zero up to rounding both ways "
                     f"(below the finite difference's resolution {resolution:.1g}): the loss "
                     "does not depend on these parameters here (a bias right before batch "
                     "normalization?) and their relative errors compare rounding noise")
    return GradientCheckResult(result, notes=notes)
