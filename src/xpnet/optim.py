"""The book's optimizers (``common/optimizer.py``), in the book's order, and ``AdamW``.

Every optimizer has ``update(params, grads)``: ``params`` and ``grads`` are dicts of arrays with
the same keys, and the arrays of ``params`` are updated **in place** -- so a layer that holds
``net.params['W1']`` by reference sees the update.  Optimizer state (velocities, squared-gradient
sums, moments) is created on the parameter's device, in its dtype, the first time a key is seen.
Step sizes are Python floats, so float32 parameters stay float32.

A parameter may also be a number -- a Python ``float``/``int`` or a NumPy scalar, as in the
book's ``ch06/optimizer_compare_naive.py`` (``params['x'] = -7.0``).  Numbers cannot change in
place, so the dict entry is *rebound* to the new value, which is what the book's
``params[key] -= ...`` does to a number; its gradient may be a number or a 0-d array of any
backend.  Such a key is stepped on the host in float64 with the book's formula, in the book's
order of operations, and its state is kept as Python floats (``opt.v['x']``).  (A 0-d *array*
is an array: updated in place, as the book's code does to a 0-d ``ndarray``.)

Examples
--------
>>> import numpy as np
>>> from xpnet.optim import SGD
>>> params = {"w": np.array([1.0, 2.0])}
>>> SGD(lr=0.5).update(params, {"w": np.array([1.0, 1.0])})
>>> params["w"].tolist()
[0.5, 1.5]
>>> point = {"x": -7.0}                       # a number: the entry is rebound, as in the book
>>> SGD(lr=0.95).update(point, {"x": -0.7})
>>> point["x"]
-6.335
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

from xpnet.backend import Kernels, backend_of, get_backend, kernels_of, to_host
from xpnet.errors import NonFiniteError
from xpnet.params import Layout, non_finite_names
from xpnet.validation import as_float

__all__ = [
    "HYPERPARAMETER_CHOICES",
    "HYPERPARAMETER_RANGES",
    "OPTIMIZERS",
    "OPTIMIZER_CLASSES",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSprop",
    "check_hyperparameter",
    "get_optimizer",
]


#: The valid range of every optimizer hyperparameter, by name: ``(low, high, low_open,
#: high_open)`` (None: unbounded).  Checked by :func:`check_hyperparameter` when an optimizer
#: is built.  ``momentum``, ``decay_rate`` and the betas must be below 1: at 1 the running
#: averages never forget (Momentum and RMSprop diverge or stall; Adam's bias correction
#: divides by ``1 - beta1**t = 0``).  ``eps`` must be positive: it keeps a division away from
#: zero, and a negative one can make the denominator vanish.
HYPERPARAMETER_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr": (0.0, None, False, False),
    "momentum": (0.0, 1.0, False, True),
    "decay_rate": (0.0, 1.0, False, True),
    "beta1": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "eps": (0.0, None, True, False),
    "weight_decay": (0.0, None, False, False),
}

#: The hyperparameters that are a choice among names, not a number, and their choices.
HYPERPARAMETER_CHOICES: dict[str, tuple[str, ...]] = {
    "eps_style": ("book", "torch"),
}


def check_hyperparameter(name: str, value: Any) -> float:
    """``value`` as a float in the range :data:`HYPERPARAMETER_RANGES` gives ``name``.

    Python and NumPy numbers and 0-d arrays of any backend (a ``torch.tensor(0.9)``) are
    accepted; ``bool``, strings, complex numbers, arrays of several elements, NaN and
    infinities are refused with a ``TypeError`` / ``ValueError`` naming the hyperparameter.

    >>> check_hyperparameter("momentum", 0.9)
    0.9
    >>> check_hyperparameter("beta1", 1.0)
    Traceback (most recent call last):
        ...
    ValueError: beta1 must be in [0, 1), got 1.0
    """
    low, high, low_open, high_open = HYPERPARAMETER_RANGES[name]
    return as_float(value, name, low=low, high=high, low_open=low_open, high_open=high_open)


#: Every optimizer class by name (subclasses register themselves when defined): what a
#: checkpoint's optimizer class is looked up in.  :data:`OPTIMIZERS` lists the book's.
OPTIMIZER_CLASSES: dict[str, type] = {}


class Optimizer:
    """Base class: holds hyperparameters and per-parameter state; subclasses define ``_step``.

    When ``params`` and ``grads`` are both :class:`~xpnet.params.ParamDict` views of flat
    buffers with one layout (as xpnet's networks hand out), the update runs once over the whole
    buffer; the state then lives in flat buffers too, and ``state[name][key]`` (the book's
    ``opt.v['W1']``, ...) are views of them.  ``fused=True`` lets the backend's fused kernel
    (:class:`xpnet.backend.Kernels`) run the update where it has one; ``fused=False`` forces the
    portable reference code.

    An update steps every parameter or none: keys and shapes of ``params``, ``grads`` and the
    state are checked before anything is written.  State belongs to the parameters it was built
    for: an optimizer handed parameters of other shapes (another network) raises ``ValueError``
    -- make one optimizer per network.

    Hyperparameters are checked when the optimizer is built (:data:`HYPERPARAMETER_RANGES`),
    so a bad one fails before the first step rather than as NaN weights after it.
    """

    #: names of the state arrays each parameter gets, created as zeros on first sight
    state_names: tuple[str, ...] = ()
    #: integer attributes that count steps (Adam's ``iter``), saved with the state
    counters: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPTIMIZER_CLASSES[cls.__name__] = cls  # checkpoints find optimizers by class name

    def __init__(self, lr: float, *, fused: bool = True):
        self.lr = check_hyperparameter("lr", lr)
        self.fused = bool(fused)
        self.state: dict[str, dict[str, Any]] = {name: {} for name in self.state_names}
        #: whole-buffer state (name -> flat array) and the layout it was built for
        self._flat_state: dict[str, Any] = {}
        self._flat_layout: Layout | None = None
        self._xp = None
        self._xp_type: type | None = None
        self._kernels: Kernels = Kernels()

    def _ns(self, x: Any) -> Any:
        if type(x) is not self._xp_type:
            self._xp = array_namespace(x)
            self._xp_type = type(x)
            self._kernels = kernels_of(x) if self.fused else Kernels()
        return self._xp

    def _kernel(self, name: str) -> Any:
        """The backend's fused kernel for this update, or None for the portable code."""
        return getattr(self._kernels, name)

    # -- checks (before any step) -------------------------------------------------------------

    def _check_keys_and_shapes(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """Every parameter has a gradient of its shape, and no gradient is extra."""
        missing = [k for k in params if k not in grads]
        extra = [k for k in grads if k not in params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no gradient for {missing}")
            if extra:
                parts.append(f"gradients for unknown parameters {extra}")
            raise ValueError(f"grads must have the keys of params: {'; '.join(parts)}")
        for key, p in params.items():
            if isinstance(p, bool):
                raise TypeError(f"params[{key!r}] is a bool; expected an array or a number")
            g = grads[key]
            if tuple(_shape(g)) != tuple(_shape(p)):
                raise ValueError(
                    f"grads[{key!r}] has shape {tuple(_shape(g))} but params[{key!r}] has "
                    f"shape {tuple(_shape(p))}"
                )
        if self.state_names:
            store = self.state[self.state_names[0]]
            for key, p in params.items():
                old = store.get(key)
                if old is not None and _shape(old) != _shape(p):
                    raise ValueError(
                        f"this {type(self).__name__} holds state for a parameter {key!r} of shape "
                        f"{_shape(old)}, but params[{key!r}] has shape {_shape(p)}: "
                        "an optimizer's state belongs to one network; make a new optimizer "
                        "for each network"
                    )
                if old is not None and not _is_number(old) and not _is_number(p):
                    self._check_placement(key, p)  # numbers and their state live on the host

    def _check_layout(self, layout: Layout) -> None:
        mine = self._flat_layout
        if mine is not None and mine is not layout and mine.shapes != layout.shapes:
            raise ValueError(
                f"this {type(self).__name__} holds state for parameters {_describe(mine)}, but "
                f"was given {_describe(layout)}: an optimizer's state belongs to one network; "
                "make a new optimizer for each network"
            )

    def _check_placement(self, key: str | None, p: Any) -> None:
        """ValueError, naming both, when the state of ``key`` (None: the flat state) lives on
        another library or device than the parameter ``p`` (the book's NumPy/CuPy mix)."""
        if not self.state_names:
            return
        s = self._state(self.state_names[0], key)
        if type(s) is type(p) and (type(p).__module__ == "numpy"
                                   or _device(s) == _device(p)):
            return
        where = "its state" if key is None else f"its state for {key!r}"
        raise ValueError(
            f"this {type(self).__name__} keeps {where} on {_placement(s)}, but was handed "
            f"parameters on {_placement(p)}: move the optimizer with "
            f"optimizer.to(backend=..., device=...) (or move the network back), or make a new "
            "optimizer"
        )

    def _check_finite(self, grads: dict[str, Any]) -> None:
        """NonFiniteError naming the gradients that hold NaN or infinity."""
        if not grads:
            return
        bad = [k for k, g in grads.items()
               if isinstance(g, numbers.Real) and not math.isfinite(g)]
        arrays = {k: g for k, g in grads.items() if not isinstance(g, numbers.Real)}
        if arrays:
            xp = array_namespace(next(iter(arrays.values())))
            flat = grads.flat_view() if hasattr(grads, "flat_view") else None
            bad += non_finite_names(xp, arrays, flat=flat)
        if bad:
            raise NonFiniteError(
                f"non-finite gradients (NaN or inf) for {', '.join(bad)}: nothing was updated",
                bad)

    # -- saving, loading and moving the state -------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state: class, hyperparameters, step counters and state arrays.

        Returns
        -------
        dict
            ``{"class": "Adam", "hyperparameters": {...}, "counters": {"iter": 12},
            "state": {"m": {"W1": array, ...}, "v": {...}}}`` -- the state arrays are the
            optimizer's own (views of its flat buffers; copy them to keep them past the next
            update).  Empty per-name dicts before the first update.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.optim import Adam
        >>> opt = Adam(lr=0.1)
        >>> opt.update({"w": np.ones(2)}, {"w": np.ones(2)})
        >>> sd = opt.state_dict()
        >>> sd["class"], sd["counters"], sorted(sd["state"])
        ('Adam', {'iter': 1}, ['m', 'v'])
        """
        return {
            "class": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "counters": {c: int(getattr(self, c)) for c in self.counters},
            "state": {name: dict(self.state[name]) for name in self.state_names},
        }

    def load_state_dict(self, state: dict[str, Any], params: dict[str, Any] | None = None
                        ) -> None:
        """Continue from a :meth:`state_dict` (of an optimizer of this class).

        Hyperparameters and counters are taken from ``state`` (as ``torch.optim`` does).  The
        state arrays may be of any backend (NumPy arrays from a checkpoint, say); given
        ``params`` (the network's ``params``), they are checked against its keys and shapes and
        placed on its backend, device and dtype -- as one flat buffer per state name when
        ``params`` is a :class:`~xpnet.params.ParamDict`, so the next update continues exactly.
        Without ``params`` they are kept as given.

        Raises
        ------
        ValueError
            For another optimizer class, unknown or missing hyperparameters, values out of
            range, or state arrays that do not fit ``params`` -- before anything changes.
        """
        hp, counters, arrays, probe = self._checked_state(state, params)
        for k in hp:
            setattr(self, k, getattr(probe, k))
        for c, v in counters.items():
            setattr(self, c, v)
        self.state = {name: {} for name in self.state_names}
        self._flat_state = {}
        self._flat_layout = None
        self._xp_type = None
        layout = getattr(params, "layout", None)
        flat = params.flat_view() if hasattr(params, "flat_view") else None
        complete = all(set(arrays[name]) == set(layout.shapes) for name in self.state_names) \
            if layout is not None else False
        if flat is not None and complete and self.state_names:
            be = backend_of(flat)
            xp = be.xp
            for name in self.state_names:
                host = [to_host(arrays[name][key]).reshape(-1) for key in layout.shapes]
                buf = be.asarray(_concat(host), dtype=flat.dtype, copy=True)
                self._flat_state[name] = buf
                self.state[name] = layout.views(xp, buf)
            self._flat_layout = layout
            return
        for name in self.state_names:
            for key, a in arrays[name].items():
                if params is not None:
                    p = params[key]
                    a = backend_of(p).asarray(to_host(a), dtype=p.dtype, copy=True)
                self.state[name][key] = a

    def check_state_dict(self, state: Any, params: dict[str, Any] | None = None) -> None:
        """Raise what :meth:`load_state_dict` would raise for ``state``, changing nothing."""
        self._checked_state(state, params)

    def _checked_state(self, state: Any, params: dict[str, Any] | None) -> tuple[Any, ...]:
        """(hyperparameters, counters, arrays, an optimizer built from the hyperparameters)."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), not {type(state).__name__}")
        missing = [k for k in ("class", "hyperparameters", "counters", "state") if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing} (not from {name}.state_dict()?)")
        if state["class"] != name:
            raise ValueError(f"state is of a {state['class']} optimizer; this is a {name}")
        hp = state["hyperparameters"]
        want = set(self.hyperparameters())
        if not isinstance(hp, dict) or set(hp) != want:
            raise ValueError(f"{name} hyperparameters must be {sorted(want)}, got "
                             f"{sorted(hp) if isinstance(hp, dict) else hp!r}")
        counters = state["counters"]
        if not isinstance(counters, dict) or set(counters) != set(self.counters):
            raise ValueError(f"{name} counters must be {list(self.counters)}, got {counters!r}")
        for c, v in counters.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"counter {c} must be an integer >= 0, got {v!r}")
        arrays = state["state"]
        if not isinstance(arrays, dict) or set(arrays) != set(self.state_names):
            raise ValueError(f"{name} state must have the arrays {list(self.state_names)}, got "
                             f"{sorted(arrays) if isinstance(arrays, dict) else arrays!r}")
        keys = None
        for sname, per_key in arrays.items():
            if not isinstance(per_key, dict):
                raise ValueError(f"state[{sname!r}] must be a dict of arrays by parameter name")
            if keys is None:
                keys = set(per_key)
            elif set(per_key) != keys:
                raise ValueError(f"state arrays {list(self.state_names)} cover different "
                                 "parameters")
            for key, a in per_key.items():
                shape = _shape(a)
                if params is not None:
                    if key not in params:
                        raise ValueError(f"state[{sname!r}] has an array for {key!r}, which is "
                                         "not a parameter")
                    if shape != _shape(params[key]):
                        raise ValueError(
                            f"state[{sname!r}][{key!r}] has shape {shape}, but params[{key!r}] "
                            f"has shape {_shape(params[key])}")
        # the constructor checks the values: the book's class this one is (a subclass may have
        # a constructor of its own)
        base = next((c for c in type(self).__mro__ if c in OPTIMIZERS.values()), type(self))
        try:
            probe = base(**hp, fused=self.fused)
        except TypeError as exc:
            raise ValueError(f"{name} hyperparameters {hp!r}: {exc}") from exc
        return dict(hp), dict(counters), arrays, probe

    def to(self, backend: Any = None, device: Any = None, dtype: Any = None) -> Optimizer:
        """Move the state arrays to another backend, device or dtype, in place; returns self.

        ``backend=None`` keeps the state's library (``opt.to(device="cuda:1")``), ``dtype=None``
        its dtype.  An optimizer without state yet has nothing to move.  Use it with
        :meth:`xpnet.MultiLayerNetExtend.to`::

            net.to("torch"); opt.to("torch")
        """
        arrays = list(self._flat_state.values())
        if not arrays:  # (the state of number parameters stays on the host)
            arrays = [a for store in self.state.values() for a in store.values()
                      if not _is_number(a)]
        if not arrays:
            if backend is not None or device is not None:
                get_backend(backend, device)  # still refuse an unknown backend or device
            return self
        here = backend_of(arrays[0])
        target = get_backend(here if backend is None else backend, device)

        def move(a: Any) -> Any:
            dt = a.dtype if dtype is None else target.dtype(dtype)
            if target.is_array(a):
                return target.asarray(a, dtype=dt, copy=True)
            host = to_host(a)
            if dtype is None:
                return target.asarray(host, copy=True)
            return target.asarray(host, dtype=dt, copy=True)

        if self._flat_state:
            layout = self._flat_layout
            for name in self.state_names:
                buf = move(self._flat_state[name])
                self._flat_state[name] = buf
                self.state[name] = layout.views(target.xp, buf)
        else:
            for name in self.state_names:
                self.state[name] = {k: a if _is_number(a) else move(a)
                                    for k, a in self.state[name].items()}
        self._xp_type = None  # namespace and kernels are looked up again at the next step
        return self

    # -- state --------------------------------------------------------------------------------

    def _build(self, params: dict[str, Any]) -> None:
        """Create zero state for parameters seen for the first time (Keras' ``build``).

        Numbers (see :func:`_is_number`) get theirs in :meth:`_step_number`."""
        for key, p in params.items():
            if _is_number(p):
                continue
            for name in self.state_names:
                store = self.state[name]
                old = store.get(key)
                if old is None:
                    store[key] = self._ns(p).zeros_like(p)
                elif _is_number(old):  # the key was a number before: carry its state over
                    store[key] = self._ns(p).full_like(p, float(old))

    def _build_flat(self, params: Any, flat: Any) -> None:
        """Create flat zero state for a :class:`~xpnet.params.ParamDict`; per-key entries
        become views of it (carrying over any per-key state built before)."""
        if self._flat_layout is not None:
            return
        xp = self._ns(flat)
        for name in self.state_names:
            store = self.state[name]
            buf = xp.zeros_like(flat)
            for key, view in params.layout.views(xp, buf).items():
                if key in store:
                    view[...] = store[key]
                store[key] = view
            self._flat_state[name] = buf
        self._flat_layout = params.layout

    # -- the update ---------------------------------------------------------------------------

    def update(self, params: dict[str, Any], grads: dict[str, Any], *,
               check_finite: bool = False) -> None:
        """Update ``params`` in place from ``grads`` (same keys and shapes).

        Arrays are updated in place; a parameter that is a number (Python ``float``/``int``,
        NumPy scalar) is replaced in ``params`` by its new value, as the book's
        ``params[key] -= ...`` does.

        ``check_finite=True`` first checks the gradients for NaN and infinity (one wait for the
        device) and raises :class:`xpnet.NonFiniteError` naming them, before anything is
        updated.

        Raises
        ------
        ValueError
            If a parameter has no gradient, a gradient has no parameter or another shape, the
            optimizer's state was built for other parameters, or it lives on another backend or
            device than the parameters -- before anything is updated.
        TypeError
            If a parameter is a ``bool``, or the gradient of a number is not a number or a
            0-d array -- before anything is updated.
        NonFiniteError
            With ``check_finite=True``, for non-finite gradients.
        """
        if check_finite:
            self._check_finite(grads)
        flat_p = params.flat_view() if hasattr(params, "flat_view") else None
        if flat_p is not None and getattr(grads, "layout", None) is params.layout:
            flat_g = grads.flat_view()
            if flat_g is not None:
                self._check_layout(params.layout)
                if self._flat_layout is None:
                    self._check_keys_and_shapes(params, grads)  # per-key state built before
                else:
                    self._check_placement(None, flat_p)
                self._begin_step()
                self._ns(flat_p)
                if self.state_names:
                    self._build_flat(params, flat_p)
                self._step(None, flat_p, flat_g)  # the whole buffer at once
                return
        self._check_keys_and_shapes(params, grads)
        numbers_ = {key: _number_grad(key, p, grads[key])
                    for key, p in params.items() if _is_number(p)}
        self._begin_step()
        if self.state_names:
            self._build(params)
        for key, p in params.items():
            if key in numbers_:
                # the type the book's arithmetic gives (float, np.float32, ...; ints -> float)
                kind = type(p * 0.0)
                params[key] = kind(self._step_number(key, float(p), numbers_[key]))
            else:
                g = grads[key]
                if _is_number(g):  # a number for a 0-d array: the fused kernels want arrays
                    g = self._ns(p).full_like(p, float(g))
                self._step(key, p, g)

    def _state(self, name: str, key: str | None) -> Any:
        """State array ``name`` of parameter ``key`` (``None``: the whole flat buffer)."""
        return self._flat_state[name] if key is None else self.state[name][key]

    def _begin_step(self) -> None:
        """Hook run once per ``update`` (Adam counts its steps here)."""

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _step_number(self, key: str, p: float, g: float) -> float:
        """The new value of a number parameter (float64, the book's order of operations)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _number_state(self, name: str, key: str) -> float:
        return float(self.state[name].get(key, 0.0))

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({hp})"

    def hyperparameters(self) -> dict[str, float]:
        """The constructor arguments, as a dict."""
        return {"lr": self.lr}


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def _placement(x: Any) -> str:
    """``"numpy (cpu)"``, ``"torch (cuda:0)"``: where an array lives, for messages."""
    try:
        be = backend_of(x)
    except TypeError:
        return type(x).__name__
    return f"{be.name} ({be.device_name})"


def _concat(parts: list[Any]) -> Any:
    """Host 1-D arrays joined into one (NumPy, through the arrays' own namespace)."""
    xp = array_namespace(parts[0])
    return xp.concat(parts) if len(parts) > 1 else parts[0]


def _is_number(x: Any) -> bool:
    """A Python or NumPy real number (not an array, not a bool): stepped by rebinding."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _number_grad(key: str, p: Any, g: Any) -> float:
    """The gradient of number parameter ``key`` as a float (checked before any step)."""
    if isinstance(g, bool):
        raise TypeError(f"grads[{key!r}] is a bool; expected a number")
    try:
        return float(g)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"params[{key!r}] is a number ({p!r}), so grads[{key!r}] must be a number or a 0-d "
            f"array, not {type(g).__name__}"
        ) from exc


def _describe(layout: Layout) -> str:
    items = list(layout.shapes.items())
    text = ", ".join(f"{k}{tuple(s)}" for k, s in items[:4])
    return "{" + text + (", ..." if len(items) > 4 else "") + f"}} ({layout.size} values)"


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.  Same as ``torch.optim.SGD(lr)``."""

    def __init__(self, lr: float = 0.01, *, fused: bool = True):
        super().__init__(lr, fused=fused)

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        p -= self.lr * g

    def _step_number(self, key: str, p: float, g: float) -> float:
        return p - self.lr * g


class Momentum(Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``.

    Equal to ``torch.optim.SGD(lr, momentum)`` (whose buffer is ``-v / lr``) for a fixed ``lr``.
    """

    state_names = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *, fused: bool = True):
        super().__init__(lr, fused=fused)
        self.momentum = check_hyperparameter("momentum", momentum)

    @property
    def v(self) -> dict[str, Any]:
        """Velocities by parameter name (the book's ``self.v``)."""
        return self.state["v"]

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        v = self._state("v", key)
        kernel = self._kernel("momentum")
        if kernel is not None:
            kernel(p, g, v, self.lr, self.momentum)
            return
        v *= self.momentum
        v -= self.lr * g
        p += v

    def _step_number(self, key: str, p: float, g: float) -> float:
        v = self.momentum * self._number_state("v", key) - self.lr * g
        self.state["v"][key] = v
        return p + v

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov's accelerated gradient (https://arxiv.org/abs/1212.0901).

    ``p += momentum**2 * v - (1 + momentum) * lr * g``, then ``v = momentum * v - lr * g``:
    the parameters are moved with the *old* velocity first.  This is the corrected order (the
    book's first printing updated ``v`` first), and equals
    ``torch.optim.SGD(lr, momentum, nesterov=True)``.
    """

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        m = self.momentum
        v = self._state("v", key)
        p += (m * m) * v
        p -= ((1.0 + m) * self.lr) * g
        v *= m
        v -= self.lr * g

    def _step_number(self, key: str, p: float, g: float) -> float:
        m = self.momentum
        v = self._number_state("v", key)
        p = p + m * m * v
        p = p - (1 + m) * self.lr * g
        self.state["v"][key] = v * m - self.lr * g
        return p


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + eps)``.

    Equals ``torch.optim.Adagrad(lr, eps=eps)`` (PyTorch's default ``eps`` is ``1e-10``; the
    book's is ``1e-7``).
    """

    state_names = ("h",)

    def __init__(self, lr: float = 0.01, *, eps: float = 1e-7, fused: bool = True):
        super().__init__(lr, fused=fused)
        self.eps = check_hyperparameter("eps", eps)

    @property
    def h(self) -> dict[str, Any]:
        """Sums of squared gradients by parameter name (the book's ``self.h``)."""
        return self.state["h"]

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        xp = self._ns(p)
        h = self._state("h", key)
        kernel = self._kernel("adagrad")
        if kernel is not None:
            kernel(p, g, h, self.lr, self.eps)
            return
        h += g * g
        p -= self.lr * g / (xp.sqrt(h) + self.eps)

    def _step_number(self, key: str, p: float, g: float) -> float:
        h = self._number_state("h", key) + g * g
        self.state["h"][key] = h
        return p - self.lr * g / (math.sqrt(h) + self.eps)

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g*g; p -= lr * g / (sqrt(h) + eps)``.

    Equals ``torch.optim.RMSprop(lr, alpha=decay_rate, eps=eps)`` (PyTorch's defaults are
    ``alpha=0.99``, ``eps=1e-8``; the book's ``eps`` is ``1e-7``).
    """

    state_names = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, *, eps: float = 1e-7,
                 fused: bool = True):
        super().__init__(lr, fused=fused)
        self.decay_rate = check_hyperparameter("decay_rate", decay_rate)
        self.eps = check_hyperparameter("eps", eps)

    @property
    def h(self) -> dict[str, Any]:
        """Running averages of squared gradients by parameter name (the book's ``self.h``)."""
        return self.state["h"]

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        xp = self._ns(p)
        h = self._state("h", key)
        kernel = self._kernel("rmsprop")
        if kernel is not None:
            kernel(p, g, h, self.lr, self.decay_rate, self.eps)
            return
        h *= self.decay_rate
        h += (1.0 - self.decay_rate) * (g * g)
        p -= self.lr * g / (xp.sqrt(h) + self.eps)

    def _step_number(self, key: str, p: float, g: float) -> float:
        h = self._number_state("h", key) * self.decay_rate
        h = h + (1 - self.decay_rate) * g * g
        self.state["h"][key] = h
        return p - self.lr * g / (math.sqrt(h) + self.eps)

    def hyperparameters(self) -> dict[str, float]:
        return {"lr": self.lr, "decay_rate": self.decay_rate, "eps": self.eps}


class Adam(Optimizer):
    """Adam (Kingma & Ba, https://arxiv.org/abs/1412.6980), by default the book's formulation.

    ``m += (1 - beta1) * (g - m)``, ``v += (1 - beta2) * (g*g - v)``,
    ``p -= lr_t * m / (sqrt(v) + eps)`` with ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``.

    The bias correction is folded into the step size, so ``eps`` is added to the *uncorrected*
    ``sqrt(v)``.  ``torch.optim.Adam`` adds its ``eps`` to the corrected ``sqrt(v_hat)``: the
    two agree exactly when ``eps=0`` and otherwise differ by the effective ``eps`` (book:
    ``eps / sqrt(1 - beta2**t)``).  The book's ``eps`` is ``1e-7``, PyTorch's ``1e-8``.

    ``eps_style="torch"`` places ``eps`` as ``torch.optim.Adam`` does --
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``:
    ``Adam(lr, beta1, beta2, eps=1e-8, eps_style="torch")`` is ``torch.optim.Adam(params, lr,
    betas=(beta1, beta2))`` (``eps`` keeps the book's default ``1e-7`` unless given).  The
    fused kernels compute it as the book's form with ``lr_t`` and ``eps * sqrt(1 -
    beta2**t)``: the same numbers up to rounding.

    Parameters
    ----------
    lr, beta1, beta2 : float
    eps : float
        The book's ``1e-7``; PyTorch's default is ``1e-8``.
    eps_style : {'book', 'torch'}
        Where ``eps`` goes: to the uncorrected ``sqrt(v)`` (the book) or to the bias-corrected
        ``sqrt(v_hat)`` (PyTorch).
    fused : bool
        See :class:`Optimizer`.

    Examples
    --------
    >>> Adam(lr=0.01, eps=1e-8, eps_style="torch")
    Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, eps_style='torch')
    """

    state_names = ("m", "v")
    counters = ("iter",)

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, *,
                 eps: float = 1e-7, eps_style: str = "book", fused: bool = True):
        if eps_style not in HYPERPARAMETER_CHOICES["eps_style"]:
            raise ValueError(f"eps_style must be 'book' or 'torch', got {eps_style!r}")
        super().__init__(lr, fused=fused)
        self.beta1 = check_hyperparameter("beta1", beta1)
        self.beta2 = check_hyperparameter("beta2", beta2)
        self.eps = check_hyperparameter("eps", eps)
        self.eps_style = eps_style
        self.iter = 0
        self._lr_t = 0.0
        #: torch's placement: the step size ``lr / (1 - beta1**t)`` and ``sqrt(1 - beta2**t)``
        self._step_size = 0.0
        self._bc2_sqrt = 1.0

    @property
    def m(self) -> dict[str, Any]:
        """First moments by parameter name (the book's ``self.m``)."""
        return self.state["m"]

    @property
    def v(self) -> dict[str, Any]:
        """Second moments by parameter name (the book's ``self.v``)."""
        return self.state["v"]

    def _begin_step(self) -> None:
        self.iter += 1
        t = self.iter
        bc1, bc2 = 1.0 - self.beta1**t, 1.0 - self.beta2**t
        self._lr_t = self.lr * math.sqrt(bc2) / bc1
        self._step_size = self.lr / bc1
        self._bc2_sqrt = math.sqrt(bc2)

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        self._adam_step(key, p, g, 1.0)

    def _adam_step(self, key: str | None, p: Any, g: Any, decay: float) -> None:
        """``p *= decay`` (AdamW's decoupled weight decay; 1 for Adam), then Adam's step."""
        xp = self._ns(p)
        m = self._state("m", key)
        v = self._state("v", key)
        torch_eps = self.eps_style == "torch"
        kernel = self._kernel("adam")
        if kernel is not None:
            # torch's placement is the book's with eps * sqrt(1 - beta2**t) (see the docstring)
            eps = self.eps * self._bc2_sqrt if torch_eps else self.eps
            kernel(p, g, m, v, self._lr_t, self.beta1, self.beta2, eps, decay)
            return
        if decay != 1.0:
            p *= decay
        if not torch_eps:
            m += (1.0 - self.beta1) * (g - m)
            v += (1.0 - self.beta2) * (g * g - v)
            p -= self._lr_t * m / (xp.sqrt(v) + self.eps)
            return
        # torch.optim.Adam's own order of operations (``_single_tensor_adam``)
        m += (1.0 - self.beta1) * (g - m)  # exp_avg.lerp_(grad, 1 - beta1)
        v *= self.beta2  # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        v += (1.0 - self.beta2) * (g * g)
        denom = xp.sqrt(v) / self._bc2_sqrt + self.eps
        p -= self._step_size * (m / denom)

    def _step_number(self, key: str, p: float, g: float) -> float:
        return self._adam_number(key, p, g, 1.0)

    def _adam_number(self, key: str, p: float, g: float, decay: float) -> float:
        """:meth:`_adam_step` for a number, in the same order of operations."""
        m = self._number_state("m", key)
        v = self._number_state("v", key)
        if decay != 1.0:
            p = p * decay
        m = m + (1 - self.beta1) * (g - m)
        if self.eps_style != "torch":
            v = v + (1 - self.beta2) * (g * g - v)
            p = p - self._lr_t * m / (math.sqrt(v) + self.eps)
        else:
            v = v * self.beta2 + (1 - self.beta2) * (g * g)
            p = p - self._step_size * (m / (math.sqrt(v) / self._bc2_sqrt + self.eps))
        self.state["m"][key], self.state["v"][key] = m, v
        return p

    def hyperparameters(self) -> dict[str, Any]:
        hp: dict[str, Any] = {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                              "eps": self.eps}
        if self.eps_style != "book":
            hp["eps_style"] = self.eps_style
        return hp


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101): Adam with decoupled
    weight decay, exactly ``torch.optim.AdamW``'s update.

    ``p *= 1 - lr * weight_decay``, then Adam's step with ``eps`` placed as PyTorch places it
    (``Adam(eps_style="torch")``): ``p -= lr / (1 - beta1**t) * m / (sqrt(v) /
    sqrt(1 - beta2**t) + eps)``.  Not in the book.  Unlike the networks'
    ``weight_decay_lambda`` (an L2 term in the loss, on the weights ``W`` only), the decay
    shrinks *every* parameter it is given -- biases, normalization and PReLU parameters too --
    as ``torch.optim.AdamW`` does with one parameter group; with Adam's per-parameter scaling
    the two are not the same (that is the paper's point).

    Parameters
    ----------
    lr, beta1, beta2, eps : float
        PyTorch's defaults (``betas=(beta1, beta2)``).
    weight_decay : float >= 0
        Decoupled decay rate (PyTorch's default 0.01); the step multiplies by
        ``1 - lr * weight_decay`` with the current ``lr``.
    fused : bool
        See :class:`Optimizer`; the fused kernels are Adam's, given the decay factor.

    Examples
    --------
    >>> import numpy as np
    >>> params = {"w": np.array([1.0])}
    >>> AdamW(lr=0.1, weight_decay=0.5).update(params, {"w": np.array([0.0])})
    >>> params["w"].tolist()  # only the decay moves it: 1 * (1 - 0.1 * 0.5)
    [0.95]
    """

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, *, fused: bool = True):
        wd = check_hyperparameter("weight_decay", weight_decay)
        super().__init__(lr, beta1, beta2, eps=eps, eps_style="torch", fused=fused)
        self.weight_decay = wd

    def _step(self, key: str | None, p: Any, g: Any) -> None:
        self._adam_step(key, p, g, 1.0 - self.lr * self.weight_decay)

    def _step_number(self, key: str, p: float, g: float) -> float:
        return self._adam_number(key, p, g, 1.0 - self.lr * self.weight_decay)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


#: The optimizers by class name, in the book's order (:func:`get_optimizer` takes any case).
OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.__name__: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, AdamW)
}
_BY_LOWER_NAME = {name.lower(): cls for name, cls in OPTIMIZERS.items()}


def get_optimizer(name: str, **params: Any) -> Optimizer:
    """Build an optimizer from its (case-insensitive) name and keyword hyperparameters.

    >>> get_optimizer("adam", lr=0.01)
    Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-07)
    """
    if isinstance(name, Optimizer):
        return name
    cls = _BY_LOWER_NAME.get(str(name).lower())
    if cls is None:
        valid = ", ".join(OPTIMIZERS)
        raise ValueError(f"unknown optimizer {name!r}; valid names are: {valid}")
    accepted = inspect.signature(cls).parameters
    unknown = sorted(k for k in params if k not in accepted)
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameter {', '.join(unknown)}; its "
                         f"parameters are: {', '.join(accepted)}")
    return cls(**params)  # a bad value raises TypeError / ValueError naming it
