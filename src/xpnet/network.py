"""What every xpnet network shares: its configuration, its state beyond ``params``, checkpoints
and moving between backends.  The registry of network classes by name (``NETWORKS``,
``register_network``) belongs to :mod:`xpnet.checkpoint`, which looks classes up in it; it is
re-exported here.

A network class that subclasses :class:`Network` is registered under its class name when it is
defined, and gets, without writing anything:

* :meth:`~Network.get_config` -- the arguments it was built with (recorded when the object is
  created), so a checkpoint can rebuild it (:func:`xpnet.load`);
* :meth:`~Network.buffers` -- state that is not a parameter (batch norm's running statistics),
  found in its ``layers`` by attribute name;
* :meth:`~Network.rng_states` -- the random streams of its layers (dropout masks);
* :meth:`~Network.save` and :meth:`~Network.to`.

What a network class must have for that: ``params`` (a dict of arrays, ideally a
:class:`~xpnet.params.ParamDict`), ``layers`` (a dict of layers by key), ``backend`` and ``dtype``,
and a constructor that takes ``backend=``, ``device=`` and ``dtype=`` plus arguments that are
plain JSON values (numbers, strings, lists, None).

Examples
--------
>>> import xpnet
>>> net = xpnet.MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, seed=0)
>>> net.get_config()["hidden_size_list"]
[5]
>>> sorted(net.buffers())
['BatchNorm1.running_mean', 'BatchNorm1.running_var']
>>> xpnet.network.NETWORKS["MultiLayerNetExtend"] is xpnet.MultiLayerNetExtend
True
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from xpnet.backend import get_backend, to_host
from xpnet.checkpoint import NETWORKS, network_name, register_network, save
from xpnet.errors import NonFiniteError
from xpnet.params import non_finite_names

__all__ = ["BUFFER_ATTRIBUTES", "NETWORKS", "Network", "network_name", "register_network"]

#: Layer attributes that hold state other than parameters (batch norm and the normalizations
#: with running statistics use these names).  A layer may list others in ``buffer_names``.
BUFFER_ATTRIBUTES: tuple[str, ...] = ("running_mean", "running_var")

#: Constructor arguments that say *where* a network lives, not what it is.
PLACEMENT_ARGUMENTS = ("backend", "device", "dtype")


def _json_value(owner: str, name: str, value: Any) -> Any:
    """``value`` as plain JSON types, or TypeError naming the argument."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{owner} argument {name}={value!r} is not finite")
        return v
    if isinstance(value, (list, tuple)):
        return [_json_value(owner, f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_value(owner, f"{name}[{k!r}]", v) for k, v in value.items()}
    raise TypeError(
        f"{owner} argument {name}={value!r} ({type(value).__name__}) is not a plain JSON value "
        "(number, string, list, dict, None), so a checkpoint cannot record it; pass a plain "
        f"value, or override {owner}.get_config()"
    )


class Network:
    """Base class of xpnet's networks (see the module docstring for what it provides)."""

    _signatures: dict[type, inspect.Signature] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_network(cls)

    def __new__(cls, *args: Any, **kwargs: Any) -> Network:
        self = super().__new__(cls)
        # Record the constructor's arguments (``__new__`` sees the same ones as ``__init__``):
        # what get_config() returns, without each class having to write it.
        sig = Network._signatures.get(cls)
        if sig is None:
            sig = Network._signatures[cls] = inspect.signature(cls.__init__)
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError:
            return self  # __init__ reports the mistake
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        params = list(sig.parameters.values())[1:]  # without self
        for p in params:
            value = bound.arguments.get(p.name)
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value or {})
            elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    return self  # not expressible as keywords: get_config() says so
            else:
                arguments[p.name] = value
        self._init_arguments = arguments
        return self

    # -- configuration ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (defaults included) as plain JSON values, without
        ``backend``, ``device`` and ``dtype``: ``type(net)(**net.get_config())`` builds the same
        network (the same initial weights, given a ``seed``) on the default backend.

        Raises
        ------
        TypeError
            If an argument is not a plain JSON value (override this method then).
        """
        args = self.__dict__.get("_init_arguments")
        name = type(self).__name__
        if args is None:
            raise TypeError(f"{name} did not record its constructor arguments (built without "
                            "calling the class, or with *args); override get_config()")
        return {k: _json_value(name, k, v) for k, v in args.items()
                if k not in PLACEMENT_ARGUMENTS}

    # -- state beyond the parameters --------------------------------------------------------

    def _state_layers(self) -> dict[str, Any]:
        layers = dict(getattr(self, "layers", None) or {})
        last = getattr(self, "last_layer", None)
        if last is not None and "last_layer" not in layers:
            layers["last_layer"] = last
        return layers

    def buffers(self) -> dict[str, Any]:
        """Non-parameter state by ``"LAYER.attribute"`` (``"BatchNorm1.running_mean"``).

        Found generically: every layer attribute named in :data:`BUFFER_ATTRIBUTES` or in the
        layer's own ``buffer_names``.  A value is None while the layer has not set it yet (batch
        norm creates its running statistics on its first pass).
        """
        out: dict[str, Any] = {}
        for key, layer in self._state_layers().items():
            names = getattr(layer, "buffer_names", None)
            if names is None:
                names = [a for a in BUFFER_ATTRIBUTES if hasattr(layer, a)]
            for attr in names:
                out[f"{key}.{attr}"] = getattr(layer, attr)
        return out

    def buffer_owner(self, name: str) -> tuple[Any, str]:
        """The layer and attribute of a :meth:`buffers` name."""
        key, _, attr = name.rpartition(".")
        layer = self._state_layers().get(key)
        if layer is None or not attr:
            raise KeyError(f"{type(self).__name__} has no buffer {name!r}")
        return layer, attr

    def rng_layers(self) -> dict[str, Any]:
        """The layers with a random stream of their own (``get_rng_state``), by key."""
        return {k: layer for k, layer in self._state_layers().items()
                if callable(getattr(layer, "get_rng_state", None))}

    def rng_states(self) -> dict[str, Any]:
        """The random streams of the layers (dropout masks) by layer key, as JSON-able states
        (None for a stream not started yet)."""
        return {k: layer.get_rng_state() for k, layer in self.rng_layers().items()}

    # -- checkpoints and devices --------------------------------------------------------------

    def save(self, path: Any, *, optimizer: Any = None, extra: Any = None) -> Any:
        """Write a checkpoint (see :func:`xpnet.checkpoint.save`); returns its path.

        >>> import tempfile, os, xpnet
        >>> net = xpnet.MultiLayerNet(4, [5], 3, seed=0)
        >>> path = net.save(os.path.join(tempfile.mkdtemp(), "net.safetensors"))
        >>> xpnet.load(path).get_config() == net.get_config()
        True
        """
        return save(self, path, optimizer=optimizer, extra=extra)

    def to(self, backend: Any = None, device: Any = None, dtype: Any = None) -> Network:
        """Move the network to another backend, device or dtype, in place; returns it.

        Parameters, running statistics and random streams move; the network is rebuilt on the
        target (so ``params`` are again views of one flat buffer and the layers hold them), and
        ``net.params`` is a new dict there: take it again after moving.  ``backend=None`` keeps
        the library (``net.to(device="cuda:1")``), ``dtype=None`` the dtype.  A dropout stream
        that cannot move to another library (each has its own generator) goes on from a seed
        drawn from it.  Move the optimizer too (:meth:`xpnet.Optimizer.to`).

        >>> import xpnet
        >>> net = xpnet.MultiLayerNet(4, [5], 3, seed=0)
        >>> net.to("array_api_strict", dtype="float64").backend.name
        'array_api_strict'
        """
        target = get_backend(self.backend if backend is None else backend, device)
        name = self.backend.dtype_name(self.dtype) if dtype is None else dtype
        new_dtype = target.dtype(name)
        if target == self.backend and target.dtype_name(new_dtype) == \
                self.backend.dtype_name(self.dtype):
            return self
        self._rebuild_on(target, target.dtype_name(new_dtype))
        return self

    def _rebuild_on(self, target: Any, dtype: str) -> None:
        """Rebuild this network on backend ``target`` in ``dtype`` and make this object that
        network (the work of :meth:`to`)."""
        old_be = self.backend
        params = {k: to_host(v) for k, v in self.params.items()}
        buffers = {k: (None if v is None else (to_host(v), old_be.dtype_name(v.dtype)))
                   for k, v in self.buffers().items()}
        old_dtype = old_be.dtype_name(self.dtype)
        new = type(self)(**self.get_config(), backend=target, dtype=dtype)
        new.set_params_from_host(params, dtype)
        for name, value in buffers.items():
            layer, attr = new.buffer_owner(name)
            if value is None:
                setattr(layer, attr, None)
                continue
            host, dt = value
            setattr(layer, attr, target.asarray(host, dtype=dtype if dt == old_dtype else dt,
                                                copy=True))
        new_kind = target.random(0).kind
        old_layers = self.rng_layers()
        for key, layer in new.rng_layers().items():
            old = old_layers[key]
            layer.seed = old.seed
            state = old.get_rng_state()
            if state is None:
                continue
            if state.get("kind") == new_kind:
                layer.set_rng_state(state)
            else:  # another library's stream: go on from a seed drawn from it
                layer.seed = old.draw_seed()
                layer.set_rng_state(None)
        # the object the caller holds becomes the new network (one shared __dict__, so methods
        # bound to either see the same state); attributes the user added are kept
        for k, v in self.__dict__.items():
            new.__dict__.setdefault(k, v)
        self.__dict__ = new.__dict__

    def set_params_from_host(self, host: Mapping[str, np.ndarray], dtype: str) -> None:
        """Copy host (NumPy) arrays, one per name of ``params``, into the parameters in place,
        as ``dtype``: through the flat buffer in one transfer where the network has one.
        Names and shapes are the caller's to check (:func:`xpnet.load` checks them first)."""
        be, params = self.backend, self.params
        flat = params.flat_view() if hasattr(params, "flat_view") else None
        np_dtype = np.dtype(dtype)
        if flat is not None:
            data = np.concatenate([host[k].reshape(-1) for k in params.layout.shapes])
            flat[...] = be.asarray(data.astype(np_dtype, copy=False), dtype=dtype)
            return
        for key, p in params.items():
            p[...] = be.asarray(host[key].astype(np_dtype, copy=False), dtype=dtype)

    # -- numerical faults ---------------------------------------------------------------------

    def _raise_if_non_finite(self, loss: Any, grads: dict[str, Any]) -> None:
        """NonFiniteError naming the loss and gradients holding NaN or infinity (one device
        read when all are finite)."""
        flat = getattr(getattr(self, "_grads", None), "flat", None)
        if flat is not None and getattr(grads, "flat", None) is not flat:
            flat = None
        bad = non_finite_names(self.xp, grads, flat=flat, extra={"loss": loss})
        if bad:
            raise NonFiniteError(
                f"non-finite values (NaN or inf) in {', '.join(bad)}: the input, the learning "
                "rate or the weights have made the network diverge", bad)
