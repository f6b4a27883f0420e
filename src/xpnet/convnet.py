"""The book's chapter-7 network, ``SimpleConvNet`` (``ch07/simple_convnet.py``), on any backend,
with an optional normalization of its feature maps (cs231n lecture 7).

``conv - [norm] - relu - pool - affine - relu - affine - softmax``, name for name as the book
(``params`` ``W1..W3``/``b1..b3``, ``layers`` ``Conv1, Relu1, Pool1, Affine1, Relu2, Affine2``,
``last_layer``, ``predict``, ``loss``, ``accuracy``, ``gradient``, ``numerical_gradient``), plus
the switches of every xpnet network: ``backend=``, ``device=``, ``dtype=``, ``seed=``.

Examples
--------
>>> import numpy as np
>>> from xpnet import Adam, SimpleConvNet
>>> net = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 4, "filter_size": 3},
...                     hidden_size=10, output_size=3, seed=0, normalization="group")
>>> x = np.random.default_rng(0).random((5, 1, 8, 8))
>>> grads = net.gradient(x, [0, 1, 2, 1, 0])
>>> Adam().update(net.params, grads)
>>> sorted(net.params)
['W1', 'W2', 'W3', 'b1', 'b2', 'b3', 'beta1', 'gamma1']
>>> net.predict(x).shape
(5, 3)
"""

from __future__ import annotations

import operator
from fractions import Fraction
from typing import Any

from xpnet.backend import Backend, default_dtype, get_backend
from xpnet.functions import conv_output_size
from xpnet.init import draw_conv_net_params
from xpnet.layers import (
    Affine,
    Convolution,
    GroupNormalization,
    InstanceNormalization,
    Pooling,
    Relu,
    SoftmaxWithLoss,
    SpatialBatchNormalization,
)
from xpnet.nets import MultiLayerNetExtend
from xpnet.network import Network
from xpnet.params import allocate
from xpnet.validation import as_int

__all__ = ["CONV_NORMALIZATIONS", "SimpleConvNet", "default_num_groups"]

#: The book's ``conv_param`` (``ch07/train_convnet.py``).
BOOK_CONV_PARAM = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}

#: ``normalization=`` names and the layer each puts after the convolution.
CONV_NORMALIZATIONS: dict[str, type] = {
    "batch": SpatialBatchNormalization,
    "group": GroupNormalization,
    "instance": InstanceNormalization,
    "layer": GroupNormalization,  # with one group: see SimpleConvNet's notes
}


def default_num_groups(channels: int) -> int:
    """The number of groups ``normalization="group"`` uses when ``num_groups`` is not given:
    the divisor of ``channels`` nearest to ``sqrt(channels)`` (the larger on a tie) -- the
    geometric middle between layer normalization (1 group) and instance normalization
    (``channels`` groups).

    >>> default_num_groups(30), default_num_groups(16), default_num_groups(7)
    (6, 4, 7)
    """
    def ratio(d: int) -> Fraction:  # exact: 5 and 6 are equally near sqrt(30)
        return Fraction(max(d * d, channels), min(d * d, channels))

    divisors = [d for d in range(1, channels + 1) if channels % d == 0]
    return min(divisors, key=lambda d: (ratio(d), -d))


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def _check_conv_param(conv_param: Any) -> dict[str, int]:
    if conv_param is None:
        return dict(BOOK_CONV_PARAM)
    if not isinstance(conv_param, dict):
        raise TypeError(f"conv_param must be a dict with the keys {', '.join(BOOK_CONV_PARAM)}, "
                        f"got {type(conv_param).__name__}")
    unknown = sorted(set(conv_param) - set(BOOK_CONV_PARAM))
    if unknown:
        raise ValueError(f"conv_param has unknown keys {unknown}; valid keys: "
                         f"{', '.join(BOOK_CONV_PARAM)}")
    cp = {**BOOK_CONV_PARAM, **conv_param}
    return {
        "filter_num": _positive("conv_param['filter_num']", cp["filter_num"]),
        "filter_size": _positive("conv_param['filter_size']", cp["filter_size"]),
        "pad": _positive("conv_param['pad']", cp["pad"], 0),
        "stride": _positive("conv_param['stride']", cp["stride"]),
    }


class SimpleConvNet(Network):
    """The book's convolutional network: ``conv - relu - pool - affine - relu - affine -
    softmax`` (``ch07/simple_convnet.py``), optionally with a normalization after the
    convolution.

    Parameters
    ----------
    input_dim : tuple of int (C, H, W)
        One input image; ``(1, 28, 28)`` for MNIST.
    conv_param : dict, optional
        ``filter_num`` (FN), ``filter_size`` (FS), ``pad``, ``stride`` of the convolution; keys
        left out take the book's values ``{'filter_num': 30, 'filter_size': 5, 'pad': 0,
        'stride': 1}`` (the default).
    hidden_size : int
        Width of the hidden affine layer.
    output_size : int
        Number of classes.
    weight_init_std : float or {'relu', 'he', 'sigmoid', 'xavier'}
        Standard deviation of the initial weights (the book's ``0.01``), or a name for
        :func:`xpnet.init.init_std`, applied per layer with its fan-in (``C*FS*FS`` for the
        convolution).
    backend, device, dtype, seed
        As for :class:`~xpnet.MultiLayerNetExtend`: ``backend=None`` and ``dtype=None`` mean the
        default backend and dtype; the same ``seed`` gives the same initial weights on every
        backend (drawn on the host, then copied).
    normalization : {None, 'none', 'batch', 'group', 'instance', 'layer'}
        A normalization of the convolution's feature maps, between the convolution and its
        ReLU, with parameters ``gamma1``/``beta1`` of shape ``(FN,)`` (ones and zeros):

        * ``'batch'``: :class:`~xpnet.layers.SpatialBatchNormalization` (per channel over the
          batch and all positions; running statistics at inference, the book's conventions);
        * ``'group'``: :class:`~xpnet.layers.GroupNormalization` with ``num_groups`` groups;
        * ``'instance'``: :class:`~xpnet.layers.InstanceNormalization` (per channel of each
          sample);
        * ``'layer'``: layer normalization of each sample over its ``(C, H, W)`` values, as
          :class:`~xpnet.layers.GroupNormalization` with **one group** and a per-channel
          ``gamma``/``beta`` -- the layer norm of the group-norm paper's figure 2 and of
          ``torch.nn.GroupNorm(1, C)``.  (``torch.nn.LayerNorm((C, H, W))`` normalizes the same
          values but learns one ``gamma``/``beta`` per *element*, ``C*H*W`` of each.)
    num_groups : int, optional
        Groups of ``normalization='group'``, a divisor of ``filter_num``; default
        :func:`default_num_groups` (6 for the book's 30 filters).  Only for ``'group'``.
    check_values : bool or None
        What the entry checks read besides shapes and dtypes, as for
        :class:`~xpnet.MultiLayerNetExtend` (None: label values of host data).

    Attributes
    ----------
    params : dict
        ``W1`` ``(FN, C, FS, FS)``, ``b1`` ``(FN,)``, ``W2`` ``(FN*PH*PW, hidden_size)``,
        ``b2``, ``W3`` ``(hidden_size, output_size)``, ``b3``, and ``gamma1``/``beta1`` with a
        normalization: views of one flat buffer (see :mod:`xpnet.params`), updated in place by
        the optimizers.
    layers : dict
        ``Conv1``, [``Norm1``], ``Relu1``, ``Pool1``, ``Affine1``, ``Relu2``, ``Affine2``, in
        order; ``last_layer`` is the ``SoftmaxWithLoss``.
    conv_output_size, pool_output_size : tuple of int
        ``(OH, OW)`` of the convolution and of the 2x2 max pooling (stride 2).
    input_size : int
        ``C*H*W``, the values of one image (what a row of ``load_mnist(flatten=True)`` holds).
    last_loss
        The loss of the last :meth:`gradient` call, a 0-d array on the device.

    Notes
    -----
    Inputs to ``predict``, ``loss``, ``accuracy`` and ``gradient`` are images ``(N, C, H, W)``
    -- what ``load_mnist(flatten=False)`` gives -- or rows ``(N, C*H*W)`` (``flatten=True``),
    which are reshaped; NumPy arrays, lists or arrays of the backend, moved to its device and
    dtype once, on entry, after the checks of :class:`~xpnet.MultiLayerNetExtend` (the same
    code: ``C*H*W`` values per image, labels in ``[0, output_size)``, ...).  As an
    :class:`xpnet.network.Network` it has ``get_config``, ``save``, ``to`` and ``buffers``
    (batch norm's running statistics).

    Differences from the book: the pooling output size is ``(OH - 2) // 2 + 1`` (the book's
    ``int(FN * (OH/2) * (OW/2))`` only fits when the convolution's output is even); ``accuracy``
    counts the last partial batch (the book's drops it); the layers are the book's names in a
    dict (the book's print edition; its repository's later version keeps a list); and
    ``gradient`` returns views of one gradient buffer (``copy=True`` for arrays of their own).
    The book has no normalization in this network.  PyTorch's equivalent is
    ``nn.Sequential(nn.Conv2d(C, FN, FS, stride, pad), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(FN*PH*PW, hidden), nn.ReLU(), nn.Linear(hidden, out))`` with its
    own (Kaiming-uniform) initialization.
    """

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param: dict[str, int] | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: Any = 0.01, *, backend: Any = None,
                 device: Any = None, dtype: Any = None, seed: int | None = None,
                 normalization: str | None = None, num_groups: int | None = None,
                 check_values: bool | None = None):
        # -- check everything before any work --------------------------------------------------
        try:
            dims = tuple(input_dim)
        except TypeError:
            raise TypeError(f"input_dim must be a tuple (C, H, W), got {input_dim!r}") from None
        if len(dims) != 3:
            raise ValueError(f"input_dim must be a tuple (C, H, W), got {input_dim!r}")
        c, h, w = (_positive(f"input_dim[{i}]", d) for i, d in enumerate(dims))
        cp = _check_conv_param(conv_param)
        hidden_size = _positive("hidden_size", hidden_size)
        output_size = _positive("output_size", output_size)
        fn, fs, pad, stride = cp["filter_num"], cp["filter_size"], cp["pad"], cp["stride"]
        try:
            oh = conv_output_size(h, fs, stride, pad)
            ow = conv_output_size(w, fs, stride, pad)
        except ValueError as exc:
            raise ValueError(f"conv_param does not fit input_dim {dims}: {exc}") from None
        if oh < 2 or ow < 2:
            raise ValueError(f"the convolution's output ({oh}x{ow}) is smaller than the 2x2 "
                             f"pooling window: enlarge input_dim {dims} or change conv_param")
        ph, pw = (oh - 2) // 2 + 1, (ow - 2) // 2 + 1
        norm = None if normalization is None else str(normalization).lower()
        if norm == "none":
            norm = None
        if norm is not None and norm not in CONV_NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; valid: None, "
                             f"{', '.join(repr(k) for k in CONV_NORMALIZATIONS)}")
        if num_groups is not None:
            if norm != "group":
                raise ValueError("num_groups applies to normalization='group' only, got "
                                 f"normalization={normalization!r}")
            groups = _positive("num_groups", num_groups)
            if fn % groups:
                raise ValueError(f"num_groups must divide conv_param['filter_num'] = {fn}, "
                                 f"got {num_groups}")
        else:
            groups = default_num_groups(fn) if norm == "group" else None
        if check_values not in (None, True, False):
            raise TypeError(f"check_values must be None, True or False, not {check_values!r}")

        self.backend: Backend = get_backend(backend, device)
        self.xp = self.backend.xp
        self.dtype = self.backend.float_dtype(default_dtype() if dtype is None else dtype)
        # every constructor argument under its own name (a checkpoint rebuilds from them)
        self.input_dim = (c, h, w)
        self.conv_param = cp
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.weight_init_std = weight_init_std
        self.device = device
        self.seed = seed
        self.normalization = norm
        self.num_groups = groups
        self.check_values = check_values
        self.input_size = c * h * w
        self.conv_output_size = (oh, ow)
        self.pool_output_size = (ph, pw)

        be = self.backend
        flat_host, shapes = draw_conv_net_params(
            [(fn, c, fs, fs), (fn * ph * pw, hidden_size), (hidden_size, output_size)],
            [c * fs * fs, fn * ph * pw, hidden_size], weight_init_std, seed,
            norm_channels=fn if norm else 0, float64=self.dtype == self.xp.float64,
        )
        self.params, self._grads = allocate(be, flat_host, shapes, self.dtype)
        p = self.params

        self.layers: dict[str, Any] = {}
        self.layers["Conv1"] = Convolution(p["W1"], p["b1"], stride, pad)
        if norm == "batch":
            self.layers["Norm1"] = SpatialBatchNormalization(p["gamma1"], p["beta1"])
        elif norm == "instance":
            self.layers["Norm1"] = InstanceNormalization(p["gamma1"], p["beta1"])
        elif norm is not None:  # group, layer
            self.layers["Norm1"] = GroupNormalization(
                p["gamma1"], p["beta1"], num_groups=1 if norm == "layer" else groups)
        self.layers["Relu1"] = Relu(backend=be)
        self.layers["Pool1"] = Pooling(pool_h=2, pool_w=2, stride=2, backend=be)
        self.layers["Affine1"] = Affine(p["W2"], p["b2"])
        self.layers["Relu2"] = Relu(backend=be)
        self.layers["Affine2"] = Affine(p["W3"], p["b3"])
        self.last_layer = SoftmaxWithLoss(backend=be)
        # gradient() never uses the input gradient of the first layer: don't compute it
        self.layers["Conv1"].need_dx = False
        self._norm = self.layers.get("Norm1")
        self._weighted = {"1": self.layers["Conv1"], "2": self.layers["Affine1"],
                          "3": self.layers["Affine2"]}
        if self._grads is not None:
            # the layers write their gradients straight into the flat gradient buffer (never
            # handed out itself: ``gradient`` returns a new dict over it)
            for i, layer in self._weighted.items():
                layer.dW_out = self._grads[f"W{i}"]
                layer.db_out = self._grads[f"b{i}"]
            if self._norm is not None:
                self._norm.dgamma_out = self._grads["gamma1"]
                self._norm.dbeta_out = self._grads["beta1"]
        self.last_loss = None

    # -- inputs -----------------------------------------------------------------------------

    # The entry checks of MultiLayerNetExtend, shared (one implementation of the rules; they
    # read ``input_size``, ``output_size``, ``check_values`` and ``backend``)
    _reads_values = MultiLayerNetExtend._reads_values
    _own = MultiLayerNetExtend._own
    _t = MultiLayerNetExtend._t

    def _x(self, x: Any, *, name: str = "x", values: bool | None = None) -> Any:
        """Images to the device in the network's dtype as ``(N, C, H, W)``, checked first
        (``C*H*W`` values per image: rows ``(N, C*H*W)`` are reshaped); ``values=True`` also
        refuses NaN and inf."""
        x = MultiLayerNetExtend._x(self, x, name=name, values=values)
        if tuple(x.shape[1:]) == self.input_dim:
            return x
        return self.xp.reshape(x, (x.shape[0], *self.input_dim))

    # -- the book's API ---------------------------------------------------------------------

    def predict(self, x: Any, train_flg: bool = False) -> Any:
        """Scores (pre-softmax) of shape ``(N, output_size)`` on the backend.

        ``train_flg`` matters only with ``normalization='batch'`` (batch statistics while
        training, running statistics otherwise); the other normalizations use each sample's
        own statistics either way.  With ``train_flg=False`` the ReLUs (and batch norm) work in
        place on arrays the network owns; the caller's ``x`` is never written to.
        """
        return self._predict(self._x(x), train_flg)

    def _predict(self, x: Any, train_flg: bool) -> Any:
        """:meth:`predict` of an input already checked and on the device."""
        layers = self.layers
        x = layers["Conv1"].forward(x)  # a fresh array from here on
        norm = self._norm
        if norm is not None:
            if train_flg or not hasattr(norm, "forward_inplace"):
                x = norm.forward(x, train_flg)
            else:
                x = norm.forward_inplace(x)
        x = layers["Relu1"].forward(x) if train_flg else layers["Relu1"].forward_inplace(x)
        x = layers["Pool1"].forward(x)
        x = layers["Affine1"].forward(x)
        x = layers["Relu2"].forward(x) if train_flg else layers["Relu2"].forward_inplace(x)
        return layers["Affine2"].forward(x)

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> Any:
        """Mean cross entropy (the book's, ``log(y + 1e-7)``) as a 0-d array on the device."""
        return self._device_loss(x, t, train_flg)

    def _device_loss(self, x: Any, t: Any, train_flg: bool) -> Any:
        # what gradient() and numerical_gradient() use, whatever a subclass makes of loss()
        x = self._x(x)
        t = self._t(t, x.shape[0])  # both checked before any layer runs
        return self.last_layer.forward(self._predict(x, train_flg), t)

    def accuracy(self, x: Any, t: Any, batch_size: int = 100) -> float:
        """Fraction of images whose arg-max score matches the label (integer or one-hot),
        computed ``batch_size`` images at a time (bounded memory: the convolution's column
        matrix is ``batch_size * OH * OW`` rows); the last, partial batch counts (the book's
        ``accuracy`` drops it).  ``batch_size=None``: all at once."""
        batch_size = as_int(batch_size, "batch_size", none_ok=True)
        return MultiLayerNetExtend.accuracy(self, x, t, batch_size)

    def gradient(self, x: Any, t: Any, *, copy: bool = False,
                 check_finite: bool = False) -> dict[str, Any]:
        """Gradients of ``loss(x, t, train_flg=True)`` by backpropagation.

        Returns a new dict with the keys of ``params`` each call, whose arrays are views of one
        gradient buffer that the *next* call overwrites (as PyTorch's ``.grad``); ``copy=True``
        returns arrays of their own.  The loss of this forward pass is kept in ``last_loss``.
        ``check_finite=True`` raises :class:`xpnet.NonFiniteError` naming the loss and the
        gradients holding NaN or infinity (one wait for the device per call).
        """
        self.last_loss = self._device_loss(x, t, True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)  # None after Conv1 (need_dx=False)
        if self._grads is not None:  # the layers wrote into the buffer
            grads = self._grads.new_dict()
        else:
            grads = {}
            for i, layer in self._weighted.items():
                grads[f"W{i}"], grads[f"b{i}"] = layer.dW, layer.db
            if self._norm is not None:
                grads["gamma1"], grads["beta1"] = self._norm.dgamma, self._norm.dbeta
        if check_finite:
            self._raise_if_non_finite(self.last_loss, grads)
        if copy:
            return {k: self.xp.asarray(v, copy=True) for k, v in grads.items()}
        return grads

    def numerical_gradient(self, x: Any, t: Any, h: float = 1e-4) -> dict[str, Any]:
        """Central-difference gradients of ``loss(x, t, train_flg=True)`` (slow; for checks,
        with ``dtype='float64'`` and tiny inputs)."""
        return MultiLayerNetExtend.numerical_gradient(self, x, t, h)

    def __repr__(self) -> str:
        c, h, w = self.input_dim
        cp = self.conv_param
        norm = f", normalization={self.normalization!r}" if self.normalization else ""
        if self.normalization == "group":
            norm += f", num_groups={self.num_groups}"
        dt = "float64" if self.dtype == self.xp.float64 else "float32"
        return (f"SimpleConvNet({c}x{h}x{w}, conv {cp['filter_num']}x{cp['filter_size']}x"
                f"{cp['filter_size']} s{cp['stride']} p{cp['pad']} - pool 2 - "
                f"{self.hidden_size} - {self.output_size}{norm}, backend={self.backend.name!r}, "
                f"dtype={dt})")
