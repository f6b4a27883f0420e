"""The book's fully connected networks: ``MultiLayerNet`` and ``MultiLayerNetExtend``.

Both follow ``common/multi_layer_net.py`` and ``common/multi_layer_net_extend.py`` name for name
(``params``, ``layers``, ``last_layer``, ``predict``, ``loss``, ``accuracy``, ``gradient``,
``numerical_gradient``) and add one switch: ``backend=`` (plus ``device=``, ``dtype=``, ``seed=``).

Examples
--------
>>> import numpy as np
>>> from xpnet import MultiLayerNet, SGD
>>> net = MultiLayerNet(4, [8], 3, seed=0)              # backend="numpy" by default
>>> x = np.random.default_rng(0).standard_normal((5, 4))
>>> t = np.array([0, 1, 2, 1, 0])
>>> grads = net.gradient(x, t)
>>> SGD(lr=0.1).update(net.params, grads)
>>> sorted(net.params)
['W1', 'W2', 'b1', 'b2']
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

from xpnet.backend import Backend, default_dtype, get_backend
from xpnet.gradient import numerical_gradient
from xpnet.init import draw_network_params
from xpnet.layers import (
    Affine,
    BatchNormalization,
    Dropout,
    Elu,
    LayerNormalization,
    LeakyRelu,
    Maxout,
    PRelu,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)
from xpnet.network import Network
from xpnet.params import ParamDict, allocate
from xpnet.validation import as_float, as_int, check_features, check_labels, host_array

__all__ = ["ACTIVATIONS", "ACTIVATION_PARAMS", "NORMALIZATIONS", "MultiLayerNet",
           "MultiLayerNetExtend"]

#: Activation names accepted by the networks, and the layer each builds.  ``"maxout"`` replaces
#: a hidden layer's ``Affine`` and activation by one :class:`~xpnet.layers.Maxout` layer.
ACTIVATIONS: dict[str, type] = {
    "relu": Relu,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "leaky_relu": LeakyRelu,
    "prelu": PRelu,
    "elu": Elu,
    "maxout": Maxout,
}

#: The ``activation_params`` each activation takes, with their defaults: the slope of leaky
#: ReLU, PReLU's *initial* slope (He et al.'s 0.25; learned from there), ELU's saturation,
#: maxout's pieces per unit.
ACTIVATION_PARAMS: dict[str, dict[str, Any]] = {
    "relu": {},
    "sigmoid": {},
    "tanh": {},
    "leaky_relu": {"alpha": 0.01},
    "prelu": {"alpha": 0.25},
    "elu": {"alpha": 1.0},
    "maxout": {"pieces": 2},
}

#: ``normalization=`` names of :class:`MultiLayerNetExtend` and the layer each builds (the 4-D
#: normalizations belong to :class:`~xpnet.layers.Convolution` networks).
NORMALIZATIONS: dict[str, type] = {"batch": BatchNormalization, "layer": LayerNormalization}

#: layers whose ``forward`` takes the book's ``train_flg``
_TAKES_TRAIN_FLAG = (Dropout, BatchNormalization, LayerNormalization)
#: activations through which a positive scale passes: ``f(k z) = k f(z)`` for ``k > 0``
_HOMOGENEOUS = (Relu, LeakyRelu, PRelu)


def _inplace_forward(layer: Any) -> Any:
    """A layer's inference step, in place on a block the network owns where it can be."""
    if hasattr(layer, "forward_inplace"):
        return layer.forward_inplace
    if isinstance(layer, _TAKES_TRAIN_FLAG):
        return lambda x, f=layer.forward: f(x, False)
    return layer.forward


def _affine_stage(fused: Any, W: Any, b: Any) -> Any:
    """``x @ W + b`` through the backend's ``affine`` kernel ``fused`` where it has one."""
    if fused is not None:
        return lambda x: fused(x, W, b)

    def affine(x: Any) -> Any:
        z = x @ W
        z += b
        return z
    return affine


def _check_activation(activation: Any, activation_params: Any) -> tuple[str, dict[str, Any]]:
    """The activation's name and its complete parameters, or a ValueError/TypeError."""
    act = str(activation).lower()
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    params = dict(ACTIVATION_PARAMS[act])
    if activation_params is None:
        return act, params
    if not isinstance(activation_params, Mapping):
        raise TypeError(f"activation_params must be a dict such as {{'alpha': 0.1}}, got "
                        f"{activation_params!r}")
    unknown = sorted(set(activation_params) - set(params))
    if unknown:
        takes = ", ".join(repr(k) for k in params) or "none"
        raise ValueError(f"activation_params {unknown} do not apply to activation {act!r} "
                         f"(it takes: {takes})")
    params.update(activation_params)
    if "pieces" in params:
        pieces = params["pieces"]
        if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
            raise ValueError(f"activation_params['pieces'] must be an integer >= 1, got "
                             f"{pieces!r}")
    if "alpha" in params:
        try:
            alpha = float(params["alpha"])
        except (TypeError, ValueError):
            raise TypeError(f"activation_params['alpha'] must be a number, got "
                            f"{params['alpha']!r}") from None
        # PReLU's initial slope may be any real number (it is learned); the fixed slopes of
        # leaky ReLU and ELU must be >= 0 (the layers' own rule)
        if not math.isfinite(alpha) or (act != "prelu" and alpha < 0):
            raise ValueError(f"activation_params['alpha'] must be a finite number"
                             f"{'' if act == 'prelu' else ' >= 0'} for {act!r}, got "
                             f"{params['alpha']!r}")
        params["alpha"] = alpha
    return act, params


def _check_normalization(normalization: Any, use_batchnorm: Any) -> str | None:
    """``normalization`` (None, 'batch' or 'layer') reconciled with the book's
    ``use_batchnorm``, or a ValueError."""
    if normalization is None:
        return "batch" if use_batchnorm else None
    norm = str(normalization).lower()
    if norm not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; valid: None, "
                         f"{', '.join(repr(k) for k in NORMALIZATIONS)}")
    if use_batchnorm and norm != "batch":
        raise ValueError(f"use_batchnorm=True asks for batch normalization but "
                         f"normalization={normalization!r}; give one of them")
    return norm


def _check_sizes(input_size: Any, hidden_size_list: Any, output_size: Any) -> list[int]:
    sizes = [input_size, *list(hidden_size_list), output_size]
    for s in sizes:
        try:
            ok = not isinstance(s, bool) and operator.index(s) > 0
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(
                f"layer sizes must be positive integers, got input_size={input_size!r}, "
                f"hidden_size_list={hidden_size_list!r}, output_size={output_size!r}"
            )
    return [operator.index(s) for s in sizes]


class MultiLayerNetExtend(Network):
    """Fully connected network with optional batch or layer normalization and dropout.

    ``Affine -> [Normalization] -> activation -> [Dropout]`` for each hidden layer, then
    ``Affine -> SoftmaxWithLoss``.  With ``activation="maxout"`` each hidden layer is
    ``Maxout -> [Normalization] -> [Dropout]``: the maxout layer is the affine map and the
    activation in one, so a normalization follows it.

    Parameters
    ----------
    input_size : int
        Input width (784 for MNIST).
    hidden_size_list : list of int
        Widths of the hidden layers, e.g. ``[100, 100, 100]``.
    output_size : int
        Number of classes (10 for MNIST).
    activation : {'relu', 'sigmoid', 'tanh', 'leaky_relu', 'prelu', 'elu', 'maxout'}
        The book's three, and cs231n lecture 7's (:class:`~xpnet.layers.LeakyRelu`,
        :class:`~xpnet.layers.PRelu`, :class:`~xpnet.layers.Elu`,
        :class:`~xpnet.layers.Maxout`).  PReLU's slopes are parameters ``alpha1``, ``alpha2``,
        ... (one per hidden unit, starting at 0.25) and train like the weights; maxout's
        hidden ``W{i}``/``b{i}`` have ``pieces`` times the columns (``D_out * pieces``).
    weight_init_std : float or {'relu', 'he', 'sigmoid', 'xavier'}
        See :func:`xpnet.init.init_std` (``'relu'``/``'he'`` is ``sqrt(2 / n)`` for the whole
        ReLU family, maxout included).
    weight_decay_lambda : float
        L2 strength: ``loss += 0.5 * lambda * sum(W**2)`` over the weights ``W`` (not biases,
        normalization parameters nor PReLU slopes), ``dW += lambda * W``.
    use_dropout : bool
    dropout_ration : float
        The book's spelling; ``dropout_ratio`` is accepted too.  See
        :class:`~xpnet.layers.Dropout` for the (non-inverted) convention.
    use_batchnorm : bool
        The book's switch: ``True`` is ``normalization="batch"``.
    activation_params : dict, optional
        The activation layer's keywords: ``{"alpha": ...}`` for leaky ReLU (its slope, default
        0.01), ELU (default 1.0) and PReLU (the *initial* slope, default 0.25), ``{"pieces":
        ...}`` for maxout (default 2).  See :data:`ACTIVATION_PARAMS`.
    normalization : {None, 'batch', 'layer'}
        ``'batch'``: :class:`~xpnet.layers.BatchNormalization` (the book's); ``'layer'``:
        :class:`~xpnet.layers.LayerNormalization` (per-sample statistics, at inference too).
        Either has parameters ``gamma1``/``beta1``, ...  None (the default) follows
        ``use_batchnorm``.
    inverted_dropout : bool
        ``True``: PyTorch's (and cs231n's) inverted dropout, scaled by ``1 / (1 - ratio)`` while
        training and the identity at inference; ``False`` (the default): the book's.
    backend : str, module, Backend or None
        ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"array_api_strict"``; see
        :func:`xpnet.get_backend`.  None (the default): the default backend
        (:func:`xpnet.set_default_backend`, ``XPNET_BACKEND``, else NumPy).
    device : optional
        The backend's device (``"cuda:0"``, ``array_api_strict.Device("device1")``, ...).
    dtype : {'float32', 'float64'}, optional
        Parameter and activation dtype; float64 for gradient checks.  None (the default):
        the default dtype (:func:`xpnet.set_default_backend`, ``XPNET_DTYPE``, else float32).
    seed : int or numpy.random.RandomState, optional
        Seeds the initial weights (identical on every backend) and the dropout masks.  A
        ``RandomState`` is drawn from as the book does (``std * randn``, layer by layer), so
        ``np.random.mtrand._rand`` (NumPy's global state) gives the book's initial weights.
    check_values : bool or None
        What the entry checks read besides shapes and dtypes (see Notes).  None (the
        default): label values when the labels are host data; True: also inputs' finiteness,
        and device arrays too (a wait for the device on every call: for debugging); False:
        shapes and dtypes only.  An attribute of the same name can be changed later.

    Notes
    -----
    Inputs to ``predict``, ``loss``, ``accuracy`` and ``gradient`` may be NumPy arrays, lists or
    arrays of the network's backend; they are moved to its device and dtype on entry.  Outputs
    stay on the backend; ``loss`` is a 0-d array (convert with ``float`` when you need it, which
    waits for the device), ``accuracy`` a Python float.

    Inputs are checked once, on entry (not in every layer), before anything is computed: ``x``
    must be ``(N, input_size)`` (or ``(N, ...)`` with ``input_size`` values per row), ``N >= 1``,
    real (integers and bools are cast; complex numbers and strings are refused); labels ``t``
    integer class indices ``(N,)`` (a column ``(N, 1)`` is read as ``(N,)``) or one-hot rows
    ``(N, output_size)``, as many as ``x`` has rows.  These are metadata checks, free on every
    backend.  Label *values* (in ``[0, output_size)``) are read too when the labels are in host
    memory -- NumPy arrays or lists, on any backend -- where a min and a max cost microseconds
    and no device wait; labels already on a device are not read unless ``check_values=True``
    (a min/max there would stall a GPU every step).  :class:`~xpnet.Trainer` checks its whole
    data set, values included, once.  Errors are ``ValueError`` / ``TypeError`` naming the
    argument; nothing has changed when they are raised (parameters, running statistics and
    random streams are as before).

    Every parameter -- PReLU's slopes and maxout's wide weights too -- is a view of one flat
    parameter buffer, and every layer writes its gradient into one flat gradient buffer, so an
    optimizer updates them all with whole-buffer operations.  The constructor's arguments are
    kept as attributes of the same names.

    In PyTorch terms, a hidden layer is ``nn.Linear`` then ``nn.BatchNorm1d`` (with the book's
    conventions, see :class:`~xpnet.layers.BatchNormalization`) or ``nn.LayerNorm(D)``, then
    ``nn.ReLU`` / ``nn.Sigmoid`` / ``nn.Tanh`` / ``nn.LeakyReLU(alpha)`` / ``nn.PReLU(D,
    0.25)`` / ``nn.ELU(alpha)`` (maxout has no module), then ``nn.Dropout`` when inverted.

    Examples
    --------
    >>> net = MultiLayerNetExtend(4, [6, 6], 3, activation="prelu", normalization="layer",
    ...                           seed=0)
    >>> list(net.params)
    ['W1', 'b1', 'W2', 'b2', 'W3', 'b3', 'gamma1', 'beta1', 'gamma2', 'beta2', 'alpha1', 'alpha2']
    >>> MultiLayerNetExtend(4, [6], 3, activation="maxout",
    ...                     activation_params={"pieces": 3}).params["W1"].shape
    (4, 18)
    """

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False, *,
                 dropout_ratio: float | None = None, activation_params: dict | None = None,
                 normalization: str | None = None, inverted_dropout: bool = False,
                 backend: Any = None, device: Any = None, dtype: Any = None,
                 seed: Any = None, check_values: bool | None = None):
        sizes = _check_sizes(input_size, hidden_size_list, output_size)
        act, act_params = _check_activation(activation, activation_params)
        norm = _check_normalization(normalization, use_batchnorm)
        if not isinstance(inverted_dropout, bool):
            raise TypeError(f"inverted_dropout must be True or False, got {inverted_dropout!r}")
        if dropout_ratio is not None:
            dropout_ration = dropout_ratio
        wd = as_float(weight_decay_lambda, "weight_decay_lambda", low=0.0)
        ratio = as_float(dropout_ration, "dropout_ration", low=0.0, high=1.0, high_open=True)
        if check_values not in (None, True, False):
            raise TypeError(f"check_values must be None, True or False, not {check_values!r}")

        self.backend: Backend = get_backend(backend, device)
        self.xp = self.backend.xp
        self.dtype = self.backend.float_dtype(default_dtype() if dtype is None else dtype)
        self.input_size = sizes[0]
        self.hidden_size_list = sizes[1:-1]
        self.hidden_layer_num = len(self.hidden_size_list)
        self.output_size = sizes[-1]
        self.activation = act
        self.activation_params = None if activation_params is None else dict(activation_params)
        self.weight_init_std = weight_init_std
        self.weight_decay_lambda = wd
        self.use_dropout = bool(use_dropout)
        self.dropout_ration = ratio
        self.inverted_dropout = inverted_dropout
        self.normalization = norm
        self.use_batchnorm = norm == "batch"
        self.seed = seed
        self.check_values = check_values

        be = self.backend
        maxout = act == "maxout"
        # drawn on the host from one seed (identical on every backend), then copied once;
        # dropout masks get their own seed, derived from the same stream
        flat_host, shapes, dropout_seed = draw_network_params(
            sizes, weight_init_std, seed, batchnorm=norm is not None,
            float64=self.dtype == self.xp.float64,
            maxout_pieces=act_params["pieces"] if maxout else 1,
            prelu_alpha=act_params["alpha"] if act == "prelu" else None,
            dropout=self.use_dropout,
        )
        self.params, self._grads = self._allocate(flat_host, shapes)
        p = self.params

        self.layers: dict[str, Any] = {}
        #: parameter name -> (layer, name of its gradient attribute), in the order of params
        sources: dict[str, tuple[Any, str]] = {}
        norm_name = {"batch": "BatchNorm", "layer": "LayerNorm"}.get(norm)
        for i in range(1, self.hidden_layer_num + 1):
            if maxout:
                layer = Maxout(p[f"W{i}"], p[f"b{i}"], pieces=act_params["pieces"])
                self.layers[f"Maxout{i}"] = layer
            else:
                layer = self.layers[f"Affine{i}"] = Affine(p[f"W{i}"], p[f"b{i}"])
            sources[f"W{i}"], sources[f"b{i}"] = (layer, "dW"), (layer, "db")
            if norm is not None and not maxout:
                self._add_normalization(norm_name, i, sources)
            if act == "prelu":
                layer = self.layers[f"Activation_function{i}"] = PRelu(p[f"alpha{i}"])
                sources[f"alpha{i}"] = (layer, "dalpha")
            elif not maxout:
                kw = {"alpha": act_params["alpha"]} if "alpha" in act_params else {}
                self.layers[f"Activation_function{i}"] = ACTIVATIONS[act](**kw, backend=be)
            if norm is not None and maxout:
                self._add_normalization(norm_name, i, sources)
            if self.use_dropout:
                seed_i = None if dropout_seed is None else dropout_seed + i
                self.layers[f"Dropout{i}"] = Dropout(self.dropout_ration, inverted_dropout,
                                                     seed=seed_i, backend=be)
        last = self.hidden_layer_num + 1
        layer = self.layers[f"Affine{last}"] = Affine(p[f"W{last}"], p[f"b{last}"])
        sources[f"W{last}"], sources[f"b{last}"] = (layer, "dW"), (layer, "db")
        self.last_layer = SoftmaxWithLoss(backend=be)
        # gradient() never uses the input gradient of the first layer: don't compute it
        next(iter(self.layers.values())).need_dx = False
        self._grad_sources = {key: sources[key] for key in p}
        #: (name, layer) of every weight matrix (what weight decay applies to)
        self._weight_layers = [(k, layer) for k, (layer, attr) in self._grad_sources.items()
                               if attr == "dW"]
        self._train_layers = tuple(
            (layer, isinstance(layer, _TAKES_TRAIN_FLAG)) for layer in self.layers.values()
        )
        self._eval_plan = self._build_eval_plan()
        if self._grads is not None:
            # Layers write their gradients straight into the flat gradient buffer, which is
            # never handed out itself (``gradient`` returns a new dict over it): what a user
            # does to a returned dict cannot redirect these writes.  (``gradient`` sets each
            # weight's ``dW_out`` per call: under weight decay dW is the layer's own array.)
            for key, (layer, attr) in self._grad_sources.items():
                if attr != "dW":
                    setattr(layer, f"{attr}_out", self._grads[key])
        #: the loss of the last ``gradient`` call, a 0-d array on the device
        self.last_loss = None

    def _add_normalization(self, name: str, i: int, sources: dict[str, tuple[Any, str]]
                           ) -> None:
        layer = NORMALIZATIONS[self.normalization](self.params[f"gamma{i}"],
                                                   self.params[f"beta{i}"])
        self.layers[f"{name}{i}"] = layer
        sources[f"gamma{i}"], sources[f"beta{i}"] = (layer, "dgamma"), (layer, "dbeta")

    def _allocate(self, flat_host: Any, shapes: dict[str, tuple[int, ...]]
                  ) -> tuple[dict[str, Any], Any]:
        """Parameters on the device as views of one flat buffer, and a gradient buffer of the
        same layout (see :mod:`xpnet.params`); separate arrays where views don't alias."""
        return allocate(self.backend, flat_host, shapes, self.dtype)

    # -- inputs -----------------------------------------------------------------------------

    def _reads_values(self, a: Any, asked: bool | None, by_default: bool) -> bool:
        """Whether the entry checks read ``a``'s values (see the class Notes): as ``asked``
        when given, else as ``check_values`` when set, else ``by_default`` for data in host
        memory (not yet on the device, or on a backend whose arrays are NumPy's)."""
        if asked is not None:
            return bool(asked)
        if self.check_values is not None:
            return self.check_values
        be = self.backend
        return by_default and (be.host_native or not be.is_array(a))

    def _x(self, x: Any, *, name: str = "x", values: bool | None = None) -> Any:
        """Inputs to the device in the network's dtype, checked first (see the class Notes);
        ``values=True`` also refuses NaN and inf (one pass; a device wait for device data)."""
        be = self.backend
        x, xp = self._own(x, name)
        check_features(x, self.input_size, name=name, xp=xp,
                       finite=self._reads_values(x, values, False))
        return be.asarray(x, dtype=self.dtype)

    def _t(self, t: Any, n: int | None = None, *, name: str = "t",
           values: bool | None = None) -> Any:
        """Labels to the device, checked first against ``n`` rows and ``output_size`` classes
        (see the class Notes): integer labels keep an integer dtype, one-hot rows take the
        network's dtype."""
        t, xp = self._own(t, name)
        t = check_labels(t, self.output_size, n, name=name, xp=xp,
                         values=self._reads_values(t, values, True))
        return self.backend.labels(t, self.dtype)

    def _own(self, a: Any, name: str) -> tuple[Any, Any]:
        """``(a, xp)``: an array of this backend as it is (refused if its library cannot use
        it), anything else copied to the host (``xp`` None)."""
        be = self.backend
        if be.is_array(a):
            reason = be.why_unusable(a)
            if reason is not None:
                raise ValueError(f"{name} {reason}")
            return a, self.xp
        return host_array(a, name), None

    # -- the book's API ---------------------------------------------------------------------

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores (pre-softmax) of shape ``(N, output_size)`` on the backend.

        With ``train_flg=False`` the layers after the first one work in place where they can,
        on arrays the network owns (the caller's ``x`` is never written to), and a dropout
        scale after batch norm (+ ReLU) is folded into the batch-norm scale: the same numbers up
        to rounding, with fewer passes over memory.  Layer normalization is not folded: it
        normalizes each sample by its own statistics at inference too.
        """
        return self._predict(self._x(x), train_flg)

    def _predict(self, x: Any, train_flg: bool) -> Any:
        """:meth:`predict` of an input already checked and on the device."""
        if not train_flg:
            return self._infer(x)
        for layer, takes_flag in self._train_layers:
            x = layer.forward(x, train_flg) if takes_flag else layer.forward(x)
        return x

    # -- inference ----------------------------------------------------------------------------

    #: Rows per block at inference: about this many values of the widest layer's activations
    #: (1 MiB of float32), so that a block's activations stay in cache between the matrix
    #: product that makes them and the bias, activation and next product that read them.
    #: (Splitting the blocks over threads, with NumPy's BLAS held to one thread, was tried:
    #: 12.2 against 15.9 ms for C1-infer in a warm loop, but 19.7 against 16.4 ms in the
    #: bench harness, whose workers are woken from sleep -- on this 2-core VM the GIL handed
    #: over at every call of two threads then nearly serialized them.  Withdrawn.)
    EVAL_BLOCK_VALUES = 2**18

    def _build_eval_plan(self) -> list[tuple[str, Any, Any, Any]]:
        """The inference stages (see :meth:`_infer`): ``("affine", Affine, BatchNormalization
        or None, scale)`` -- the affine map with the batch norm after it and a dropout scale
        folded in -- or ``("layer", layer, None, scale)`` for any other layer, in place where
        it can be.

        A non-inverted dropout's inference scale ``k = 1 - ratio`` is folded into the affine
        (and batch norm) before it when only a positively homogeneous activation lies between
        (``f(k z) = k f(z)`` for ``k > 0``: ReLU, leaky ReLU, PReLU); inverted dropout is the
        identity at inference and drops out.  Layer normalization uses each sample's own
        statistics at inference too: it is never folded.
        """
        layers = list(self.layers.values())
        plan: list[tuple[str, Any, Any, Any]] = []
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, Dropout) and layer.inverted:
                i += 1
                continue
            if type(layer) is not Affine:
                plan.append(("layer", layer, None, 1.0))
                i += 1
                continue
            bn = None
            if i + 1 < len(layers) and type(layers[i + 1]) is BatchNormalization:
                bn = layers[i + 1]
                i += 1
            scale, j = 1.0, i + 1
            if j < len(layers) and isinstance(layers[j], _HOMOGENEOUS):
                j += 1
            if j < len(layers) and isinstance(layers[j], Dropout):
                if not layers[j].inverted:
                    scale = 1.0 - layers[j].dropout_ratio
                plan.append(("affine", layer, bn, scale))
                plan.extend(("layer", lyr, None, 1.0) for lyr in layers[i + 1:j])
                i = j + 1
                continue
            plan.append(("affine", layer, bn, 1.0))
            i += 1
        return plan

    def _folded_stages(self) -> list[Any]:
        """The plan with the current parameters folded in: a callable per stage."""
        xp = self.xp
        stages = []
        for kind, layer, bn, k in self._eval_plan:
            if kind == "layer":
                stages.append(_inplace_forward(layer))
                continue
            W, b = layer.W, layer.b
            if bn is not None:
                if bn.running_mean is None:  # never trained: the book's zero statistics
                    bn._init_running_stats(xp.reshape(b, (1, -1)))
                # bn(x @ W + b) = x @ (W * a) + ((b - mean) * a + beta),  a = gamma / std
                a = bn.gamma / xp.sqrt(bn.running_var + bn.eps)
                if k != 1.0:
                    a = a * k
                W, b = W * a, (b - bn.running_mean) * a + (bn.beta * k if k != 1.0 else bn.beta)
            elif k != 1.0:
                W, b = W * k, b * k
            stages.append(_affine_stage(self.backend.kernels.affine, W, b))
        return stages

    def _infer(self, x: Any) -> Any:
        """Inference in row blocks through the folded stages; the caller's ``x`` is never
        written to (the first stage allocates)."""
        xp = self.xp
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], -1))
        stages = self._folded_stages()
        n = x.shape[0]
        rows = max(8, self.EVAL_BLOCK_VALUES // max(self._widths()))
        if n <= rows:
            for stage in stages:
                x = stage(x)
            return x
        out = xp.empty((n, self.output_size), dtype=x.dtype, device=self.backend.device)

        for start in range(0, n, rows):
            z = x[start:min(start + rows, n), ...]
            for stage in stages:
                z = stage(z)
            out[start:min(start + rows, n), ...] = z
        return out

    def _widths(self) -> list[int]:
        return [self.input_size, *self.hidden_size_list, self.output_size]

    def _weight_decay(self) -> Any:
        lam = self.weight_decay_lambda
        if lam == 0:
            return 0.0
        xp = self.xp
        total = 0.0
        for idx in range(1, self.hidden_layer_num + 2):
            w = self.params[f"W{idx}"]
            total = total + xp.sum(w * w)
        return (0.5 * lam) * total

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> Any:
        """Mean cross entropy plus the weight-decay term, as a 0-d array on the device."""
        return self._device_loss(x, t, train_flg)

    def _device_loss(self, x: Any, t: Any, train_flg: bool) -> Any:
        # what gradient() and numerical_gradient() use, whatever a subclass makes of loss()
        x = self._x(x)
        t = self._t(t, x.shape[0])  # both checked before any layer runs
        y = self._predict(x, train_flg)
        loss = self.last_layer.forward(y, t)
        return loss + self._weight_decay() if self.weight_decay_lambda else loss

    def accuracy(self, x: Any, t: Any, batch_size: int | None = None) -> float:
        """Fraction of rows whose arg-max score matches the label (integer or one-hot).

        ``batch_size`` splits large inputs to bound memory (all of it at once by default).
        """
        xp = self.xp
        step = as_int(batch_size, "batch_size", none_ok=True)
        x = self._x(x)
        n = x.shape[0]
        t = self._t(t, n)
        if t.ndim != 1:
            t = xp.argmax(t, axis=1)
        if t.dtype != xp.int64:
            t = xp.astype(t, xp.int64)
        step = n if step is None else step
        correct = 0
        for start in range(0, n, step):
            stop = min(start + step, n)  # the standard leaves out-of-bounds slices undefined
            y = self.predict(x[start:stop, ...], train_flg=False)
            hit = xp.argmax(y, axis=1) == t[start:stop]
            correct = correct + xp.count_nonzero(hit)
        return self.backend.to_float(correct) / n

    def gradient(self, x: Any, t: Any, *, copy: bool = False,
                 check_finite: bool = False) -> dict[str, Any]:
        """Gradients of ``loss(x, t, train_flg=True)`` by backpropagation.

        Returns a dict with the keys of ``params``; arrays on the backend.  The loss of this
        forward pass is kept in ``last_loss`` (a 0-d device array).

        Each call returns a new dict, but its arrays are views of one gradient buffer that the
        *next* call overwrites (as PyTorch's ``.grad``): replacing an entry of the dict is
        harmless, keeping the arrays across calls is not.  ``copy=True`` returns arrays of their
        own, to keep (``dict(g)`` or ``g.copy()`` would still share them): views of a copy of
        the buffer (one copy), which optimizers still update in whole-buffer steps.

        ``check_finite=True`` raises :class:`xpnet.NonFiniteError` naming the loss and the
        gradients that hold NaN or infinity -- for the book's hand-written loop; it waits for
        the device once per call (:class:`xpnet.Trainer` checks once per epoch instead).
        """
        lam = self.weight_decay_lambda
        weights = self._weight_layers
        if self._grads is not None:
            # dW straight into the buffer -- except under weight decay, where the layer's dW
            # stays the data gradient (as in the book) and the buffer gets dW + lambda * W
            for key, layer in weights:
                layer.dW_out = None if lam else self._grads[key]
        self.last_loss = self._device_loss(x, t, True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)  # None after the first layer (need_dx=False)

        if self._grads is not None:  # the layers wrote their gradients into the buffer
            if lam:  # the layers' dW stay the data gradients, as in the book
                for key, layer in weights:
                    self._grads[key][...] = layer.dW + lam * layer.W
            grads = self._grads.new_dict()
        else:
            grads = {}
            for key, (layer, attr) in self._grad_sources.items():
                g = getattr(layer, attr)
                grads[key] = g + lam * layer.W if lam and attr == "dW" else g
        if check_finite:
            self._raise_if_non_finite(self.last_loss, grads)
        if copy:
            if self._grads is not None:
                return ParamDict(self.xp, self.xp.asarray(self._grads.flat, copy=True),
                                 self._grads.layout)
            return {k: self.xp.asarray(v, copy=True) for k, v in grads.items()}
        return grads

    def numerical_gradient(self, x: Any, t: Any, h: float = 1e-4) -> dict[str, Any]:
        """Central-difference gradients of ``loss(x, t, train_flg=True)`` (slow; for checks).

        Each parameter is varied in place, one element at a time, by
        :func:`xpnet.gradient.numerical_gradient`; the losses stay on the device until the
        end of each parameter.  Use ``dtype='float64'`` and dropout off: with dropout every
        loss evaluation draws a new mask.
        """
        h = as_float(h, "h", low=0.0, low_open=True)
        x = self._x(x)
        t = self._t(t, x.shape[0])

        def f(_: Any) -> Any:
            return self._device_loss(x, t, True)

        return {key: numerical_gradient(f, p, h) for key, p in self.params.items()}

    def __repr__(self) -> str:
        sizes = [self.input_size, *self.hidden_size_list, self.output_size]
        extras = []
        if self.activation_params:
            extras.append(", ".join(f"{k}={v!r}" for k, v in self.activation_params.items()))
        if self.normalization is not None:
            extras.append("batchnorm" if self.normalization == "batch" else "layernorm")
        if self.use_dropout:
            extras.append(f"{'inverted_' if self.inverted_dropout else ''}dropout="
                          f"{self.dropout_ration}")
        if self.weight_decay_lambda:
            extras.append(f"weight_decay={self.weight_decay_lambda}")
        tail = (", " + ", ".join(extras)) if extras else ""
        return (f"{type(self).__name__}({'-'.join(map(str, sizes))}, {self.activation}{tail}, "
                f"backend={self.backend.name!r}, dtype={self.xp.__name__}.{_dtname(self)})")


def _dtname(net: MultiLayerNetExtend) -> str:
    return "float64" if net.dtype == net.xp.float64 else "float32"


class MultiLayerNet(MultiLayerNetExtend):
    """Fully connected network, ``Affine -> activation`` per hidden layer, then softmax.

    The book's ``MultiLayerNet``: :class:`MultiLayerNetExtend` without normalization or
    dropout.  Same parameters otherwise (``activation_params`` included).

    Examples
    --------
    >>> MultiLayerNet(4, [5], 3, activation="leaky_relu", activation_params={"alpha": 0.1},
    ...               seed=0).layers["Activation_function1"]
    LeakyRelu(alpha=0.1)
    """

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, *, activation_params: dict | None = None,
                 backend: Any = None, device: Any = None, dtype: Any = None,
                 seed: Any = None, check_values: bool | None = None):
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda,
                         activation_params=activation_params, backend=backend, device=device,
                         dtype=dtype, seed=seed, check_values=check_values)
