"""Normalization layers: the book's ``BatchNormalization`` and cs231n lecture 7's
``SpatialBatchNormalization``, ``LayerNormalization``, ``GroupNormalization`` and
``InstanceNormalization``.

Layer, group and instance normalization share one core, :func:`_normalize_rows` and its
backward :func:`_normalize_rows_backward`: every row of a 2-D array normalized over its
columns -- the features of a sample (layer norm), the ``C/G * H * W`` values of a group of
channels (group norm) or the ``H * W`` values of one channel (instance norm = group norm with
``C`` groups).  Spatial batch norm reuses the book's ``BatchNormalization`` on ``(N*H*W, C)``.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

from xpnet.backend import backend_of
from xpnet.layers.base import Layer, write_into
from xpnet.validation import as_float

#: The book's ``10e-7``.
BATCHNORM_EPS = 1e-6


class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167).

    ``out = gamma * (x - mean) / sqrt(var + eps) + beta`` with batch statistics while training
    and running statistics at inference.

    Conventions (the book's, which differ from ``torch.nn.BatchNorm1d``):

    * ``momentum`` is the fraction of the running statistics *kept* at each step:
      ``running = momentum * running + (1 - momentum) * batch``.  The book's ``momentum=0.9``
      equals PyTorch's ``momentum=0.1``.
    * The running variance is updated with the *biased* batch variance (PyTorch uses the
      unbiased one), and running statistics start at zero, not at zero mean / unit variance.
    * ``eps`` is ``1e-6`` (the book's ``10e-7``); PyTorch's default is ``1e-5``.
    * 4-D input ``(N, C, H, W)`` is flattened to ``(N, C*H*W)`` and every element is normalized
      on its own, as in the book; ``gamma`` then has ``C*H*W`` entries.  (PyTorch's
      ``BatchNorm2d`` normalizes per channel.)

    Parameters
    ----------
    gamma, beta : array, shape (D,)
        Scale and shift, kept by reference (updated in place by optimizers).
    momentum : float
        Keep-fraction of the running statistics.
    running_mean, running_var : array, optional
        Start values; zeros of the input's width when omitted.
    eps : float
        Added to the variance.
    allow_batch_of_one : bool
        Train on a batch of one row as the book's layer does (outputs ``beta``, zero gradients
        but ``dbeta``) instead of raising; :mod:`xpnet.book`'s networks set it, for the book's
        ``batch_norm_gradient_check.py``, which checks gradients on one digit.  Also an
        attribute.

    Raises
    ------
    ValueError
        From ``forward`` while training on a batch of fewer than two rows: the batch variance
        of one row is zero, every output is ``beta`` and every gradient but ``dbeta`` is zero
        (PyTorch raises too: "Expected more than 1 value per channel when training").  A shape
        check, no device wait.  Not with ``allow_batch_of_one``.
    """

    def __init__(self, gamma: Any, beta: Any, momentum: float = 0.9,
                 running_mean: Any = None, running_var: Any = None, *,
                 eps: float = BATCHNORM_EPS, allow_batch_of_one: bool = False):
        super().__init__()
        self.allow_batch_of_one = bool(allow_batch_of_one)
        self.gamma = gamma
        self.beta = beta
        self.momentum = as_float(momentum, "momentum", low=0.0, high=1.0)
        self.eps = as_float(eps, "eps", low=0.0, low_open=True)
        self._xp = array_namespace(gamma, beta)
        self._xp_type = type(gamma)
        kernels = backend_of(gamma).kernels
        self._col_dot = kernels.col_dot or self._portable_col_dot
        self._col_sum = kernels.col_sum or self._portable_col_sum
        self._train_kernel = kernels.batchnorm_train
        self._backward_kernel = kernels.batchnorm_backward
        self.input_shape: tuple[int, ...] | None = None
        self.running_mean = running_mean
        self.running_var = running_var
        # kept for backward (the book's names; ``xn`` is computed on demand, and so are ``xc``
        # and ``std`` where the backend's fused kernel ran: it keeps (x, mean, 1/std) instead)
        self.batch_size = None
        self._xn = None
        self._xc = None
        self._std = None
        self._saved = None
        self.dgamma = None
        self.dbeta = None
        #: optional preallocated arrays that ``backward`` writes ``dgamma`` / ``dbeta`` into
        #: (networks set them to views of their flat gradient buffer)
        self.dgamma_out = None
        self.dbeta_out = None

    @property
    def xn(self) -> Any:
        """The normalized input ``(x - mean) / std`` of the last training forward pass
        (computed on demand; a subclass in the book's style may also assign it)."""
        if self._xn is not None:
            return self._xn
        return None if self.xc is None else self.xc / self.std

    @xn.setter
    def xn(self, value: Any) -> None:
        self._xn = value

    @property
    def xc(self) -> Any:
        """The centred input ``x - mean`` of the last training forward pass."""
        if self._xc is None and self._saved is not None:
            x, mean, _ = self._saved
            self._xc = x - mean
        return self._xc

    @xc.setter
    def xc(self, value: Any) -> None:
        self._xc, self._saved = value, None

    @property
    def std(self) -> Any:
        """``sqrt(var + eps)`` of the last training forward pass, per feature."""
        if self._std is None and self._saved is not None:
            self._std = 1.0 / self._saved[2]
        return self._std

    @std.setter
    def std(self, value: Any) -> None:
        self._std, self._saved = value, None

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        xp = self._xp
        self.input_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], -1))
        out = self._forward(x, train_flg)
        return xp.reshape(out, self.input_shape) if len(self.input_shape) != 2 else out

    def _forward(self, x: Any, train_flg: bool) -> Any:
        xp = self._xp
        if train_flg and x.shape[0] < 2 and not self.allow_batch_of_one:
            raise ValueError(
                f"batch normalization in training needs at least 2 values per feature, got "
                f"{x.shape[0]} (a batch of one): the variance of one value is zero and every "
                "gradient but dbeta vanishes; use larger batches, or train_flg=False for "
                "inference")
        if self.running_mean is None:
            self._init_running_stats(x)
        fused = None
        if train_flg and self._train_kernel is not None:
            fused = self._train_kernel(x, self.gamma, self.beta, self.eps, self.running_mean,
                                       self.running_var, self.momentum)
        if fused is not None:
            out, mean, inv_std, self.running_mean, self.running_var = fused
            self.batch_size = x.shape[0]
            self._xn = self._xc = self._std = None
            self._saved = (x, mean, inv_std)
            return out
        if train_flg:
            inv_n = 1.0 / x.shape[0]
            mu = self._col_sum(x) * inv_n  # (xp.mean is slower on NumPy)
            xc = x - mu
            var = self._col_dot(xc, xc) * inv_n
            std = xp.sqrt(var + self.eps)
            self.batch_size = x.shape[0]
            self._xn = None
            self.xc = xc
            self.std = std
            m = self.momentum
            self.running_mean = m * self.running_mean + (1.0 - m) * mu
            self.running_var = m * self.running_var + (1.0 - m) * var
            # gamma * xn + beta, with xn = xc / std folded into one per-feature scale (xn
            # itself is never stored: one pass over the batch fewer)
            out = xc * (self.gamma / std)
        else:
            out = (x - self.running_mean) * (self.gamma / xp.sqrt(self.running_var + self.eps))
        out += self.beta
        return out

    def _init_running_stats(self, x: Any) -> None:
        """Zero running statistics of ``x``'s width, dtype and device (the book's start)."""
        d = x.shape[1]
        self.running_mean = self._xp.zeros((d,), dtype=x.dtype, device=_device(x))
        self.running_var = self._xp.zeros((d,), dtype=x.dtype, device=_device(x))

    def forward_inplace(self, x: Any, scale: float = 1.0) -> Any:
        """Inference only: ``scale * (gamma * (x - mean) / sqrt(var + eps) + beta)`` with the
        running statistics, computed in place as ``x * a + c`` (``a``, ``c`` per feature)."""
        xp = self._xp
        shape = tuple(x.shape)
        z = xp.reshape(x, (shape[0], -1)) if x.ndim != 2 else x
        if self.running_mean is None:
            self._init_running_stats(z)
        a = self.gamma / xp.sqrt(self.running_var + self.eps)
        c = self.beta - self.running_mean * a
        if scale != 1.0:
            a = a * scale
            c = c * scale
        z *= a
        z += c
        return xp.reshape(z, shape) if x.ndim != 2 else z

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        if dout.ndim != 2:
            dout = xp.reshape(dout, (dout.shape[0], -1))
        dx = self._backward(dout)
        return xp.reshape(dx, self.input_shape) if len(self.input_shape) != 2 else dx

    def _backward(self, dout: Any) -> Any:
        if self._saved is not None:  # the backend's fused forward ran
            dx, self.dgamma, self.dbeta = self._backward_kernel(
                dout, *self._saved, self.gamma, self.eps, self.dgamma_out, self.dbeta_out)
            return dx
        # The book's chain of steps, collapsed to the closed form
        #   dx = k * (dout - sum(dout) / n - xn * sum(xn * dout) / n),   k = gamma / std
        # with the two sums being dbeta and dgamma, and xn = xc / std.
        xc = self.xc
        inv_std = 1.0 / self.std
        self.dbeta = self._col_sum(dout, out=self.dbeta_out)
        dgamma = self._col_dot(xc, dout, out=self.dgamma_out)
        dgamma *= inv_std  # sum(xn * dout)
        self.dgamma = dgamma
        k = self.gamma * inv_std
        a = k * (1.0 / self.batch_size)
        dx = dout * k
        dx -= xc * (a * inv_std * dgamma)
        dx -= a * self.dbeta
        return dx

    def __repr__(self) -> str:
        return f"BatchNormalization({self.gamma.shape[0]}, momentum={self.momentum})"


def _check_affine(name: str, gamma: Any, beta: Any) -> int:
    """The length of ``gamma``/``beta`` (1-D, same shape), or a ValueError naming the layer."""
    if getattr(gamma, "ndim", None) != 1 or getattr(beta, "shape", None) != gamma.shape:
        raise ValueError(f"{name}: gamma and beta must be arrays of the same shape (D,), got "
                         f"{getattr(gamma, 'shape', type(gamma).__name__)} and "
                         f"{getattr(beta, 'shape', type(beta).__name__)}")
    return int(gamma.shape[0])


def _normalize_rows(xp: Any, z: Any, eps: float) -> tuple[Any, Any]:
    """Normalize every row of the 2-D ``z`` over its columns: ``(xn, inv_std)`` with
    ``xn = (z - mean) * inv_std``, ``inv_std = 1 / sqrt(var + eps)`` of shape ``(R, 1)``
    (biased variance, as layer/group/instance norm define it)."""
    inv_m = 1.0 / z.shape[1]
    zc = z - xp.sum(z, axis=1, keepdims=True) * inv_m
    var = xp.sum(zc * zc, axis=1, keepdims=True) * inv_m
    inv_std = 1.0 / xp.sqrt(var + eps)
    return zc * inv_std, inv_std


def _normalize_rows_backward(xp: Any, dxn: Any, xn: Any, inv_std: Any) -> Any:
    """The input gradient of :func:`_normalize_rows` given ``dxn = dL/dxn``:
    ``inv_std * (dxn - mean(dxn) - xn * mean(dxn * xn))``, means over each row (the book's
    batch-norm backward with rows in place of columns)."""
    inv_m = 1.0 / dxn.shape[1]
    dx = dxn - xp.sum(dxn, axis=1, keepdims=True) * inv_m
    dx -= xn * (xp.sum(dxn * xn, axis=1, keepdims=True) * inv_m)
    dx *= inv_std
    return dx


class _RowNormalization(Layer):
    """What layer, group and instance normalization share: parameters, checks, and the
    training/inference surface (no running statistics: ``train_flg`` changes nothing)."""

    _name = "Normalization"

    def __init__(self, gamma: Any, beta: Any, eps: float):
        super().__init__()
        self.num_features = _check_affine(self._name, gamma, beta)
        self.eps = as_float(eps, f"{self._name}: eps", low=0.0, low_open=True)
        self.gamma = gamma
        self.beta = beta
        self._xp = array_namespace(gamma, beta)
        self._xp_type = type(gamma)
        self.input_shape: tuple[int, ...] | None = None
        #: the normalized input of the last forward pass, in the input's shape
        self.xn = None
        self._inv_std = None
        self.dgamma = None
        self.dbeta = None
        #: optional preallocated arrays that ``backward`` writes ``dgamma`` / ``dbeta`` into
        self.dgamma_out = None
        self.dbeta_out = None

    def _ns(self, x: Any) -> Any:
        return self._xp

    def _normalize(self, x: Any, rows: tuple[int, int]) -> Any:
        """``xn`` of ``x`` normalized over ``rows = (R, M)`` (kept for backward)."""
        xp = self._xp
        xn, inv_std = _normalize_rows(xp, xp.reshape(x, rows), self.eps)
        self.input_shape = tuple(x.shape)
        self._inv_std = inv_std
        self.xn = xp.reshape(xn, self.input_shape)
        return self.xn

    def _normalize_backward(self, dxn: Any, rows: tuple[int, int]) -> Any:
        xp = self._xp
        dx = _normalize_rows_backward(xp, xp.reshape(dxn, rows), xp.reshape(self.xn, rows),
                                      self._inv_std)
        return xp.reshape(dx, self.input_shape)

    @property
    def std(self) -> Any:
        """``sqrt(var + eps)`` of every normalized row of the last forward pass, shape
        ``(R, 1)`` (computed on demand from the ``1 / std`` that backward keeps)."""
        return None if self._inv_std is None else 1.0 / self._inv_std


class LayerNormalization(_RowNormalization):
    """Layer normalization (Ba, Kiros & Hinton 2016, https://arxiv.org/abs/1607.06450): every
    sample normalized over its own features.

    ``out = gamma * (x - mean) / sqrt(var + eps) + beta`` with the mean and (biased) variance
    of each row of ``x`` -- ``torch.nn.functional.layer_norm(x, (D,), gamma, beta, eps)``.
    The same computation while training and at inference: there are no running statistics and
    ``train_flg`` is accepted for the book's surface only.  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    gamma, beta : array, shape (D,)
        Scale and shift per feature, kept by reference (updated in place by optimizers).
    eps : float > 0
        Added to the variance; PyTorch's default ``1e-5``.

    Attributes
    ----------
    dgamma, dbeta : array, shape (D,)
        Gradients after :meth:`backward`.
    xn : array, shape (N, D)
        The normalized input of the last forward pass; ``std`` is ``sqrt(var + eps)`` per row,
        shape (N, 1).

    Input must be 2-D ``(N, D)``.  (For feature maps ``(N, C, H, W)``,
    :class:`GroupNormalization` with one group normalizes each sample over ``C*H*W`` with a
    per-channel ``gamma``; ``torch.nn.LayerNorm((C, H, W))`` instead has one per element.)

    Examples
    --------
    >>> import array_api_strict as xp
    >>> ln = LayerNormalization(xp.ones(2), xp.zeros(2))
    >>> ln.forward(xp.asarray([[1.0, 3.0]]))
    Array([[-0.999995,  0.999995]], dtype=array_api_strict.float64)
    """

    _name = "LayerNormalization"

    def __init__(self, gamma: Any, beta: Any, eps: float = 1e-5):
        super().__init__(gamma, beta, eps)

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        d = self.num_features
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"LayerNormalization expects input of shape (N, {d}), got shape "
                             f"{tuple(x.shape)}")
        out = self._normalize(x, tuple(x.shape)) * self.gamma
        out += self.beta
        return out

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        self.dbeta = write_into(self.dbeta_out, xp.sum(dout, axis=0))
        self.dgamma = write_into(self.dgamma_out, xp.sum(dout * self.xn, axis=0))
        return self._normalize_backward(dout * self.gamma, self.input_shape)

    def __repr__(self) -> str:
        return f"LayerNormalization({self.num_features}, eps={self.eps})"


class GroupNormalization(_RowNormalization):
    """Group normalization (Wu & He 2018, https://arxiv.org/abs/1803.08494): the channels of
    each sample split into ``num_groups`` groups of ``C / num_groups`` consecutive channels,
    each group normalized over its channels and all positions.

    ``out[n, c] = gamma[c] * (x[n, c] - mean_g) / sqrt(var_g + eps) + beta[c]``, mean and
    (biased) variance over the group ``g`` of channel ``c`` in sample ``n`` --
    ``torch.nn.functional.group_norm(x, num_groups, gamma, beta, eps)``.  No running
    statistics: ``train_flg`` changes nothing.  ``num_groups=1`` is layer normalization over
    ``(C, H, W)`` with per-channel ``gamma``; ``num_groups=C`` is
    :class:`InstanceNormalization`.  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    gamma, beta : array, shape (C,)
        Scale and shift per channel, kept by reference.
    num_groups : int
        Must divide ``C``.
    eps : float > 0
        Added to the variance; PyTorch's default ``1e-5``.

    Attributes
    ----------
    dgamma, dbeta : array, shape (C,)
        Gradients after :meth:`backward`.
    xn : array, shape (N, C, H, W)
        The normalized input of the last forward pass; ``std`` has shape ``(N*num_groups, 1)``.

    Input must be 4-D ``(N, C, H, W)``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> gn = GroupNormalization(xp.ones(4), xp.zeros(4), num_groups=2)
    >>> gn.forward(xp.ones((8, 4, 3, 3))).shape
    (8, 4, 3, 3)
    """

    _name = "GroupNormalization"

    def __init__(self, gamma: Any, beta: Any, num_groups: int, eps: float = 1e-5):
        super().__init__(gamma, beta, eps)
        if isinstance(num_groups, bool) or not isinstance(num_groups, int):
            raise TypeError(f"{self._name}: num_groups must be an integer, got {num_groups!r}")
        if num_groups < 1 or self.num_features % num_groups:
            raise ValueError(f"{self._name}: num_groups must be a positive divisor of the "
                             f"{self.num_features} channels of gamma, got {num_groups}")
        self.num_groups = num_groups

    def _rows(self, x: Any) -> tuple[int, int]:
        c = self.num_features
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"{self._name} expects input of shape (N, {c}, H, W), got shape "
                             f"{tuple(x.shape)}")
        n = x.shape[0]
        return n * self.num_groups, math.prod(x.shape[1:]) // self.num_groups

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        xp = self._xp
        rows = self._rows(x)
        c = self.num_features
        out = self._normalize(x, rows) * xp.reshape(self.gamma, (c, 1, 1))
        out += xp.reshape(self.beta, (c, 1, 1))
        return out

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        c = self.num_features
        self.dbeta = write_into(self.dbeta_out, xp.sum(dout, axis=(0, 2, 3)))
        self.dgamma = write_into(self.dgamma_out, xp.sum(dout * self.xn, axis=(0, 2, 3)))
        n = self.input_shape[0]
        rows = (n * self.num_groups, math.prod(self.input_shape[1:]) // self.num_groups)
        return self._normalize_backward(dout * xp.reshape(self.gamma, (c, 1, 1)), rows)

    def __repr__(self) -> str:
        return (f"{self._name}({self.num_features}, num_groups={self.num_groups}, "
                f"eps={self.eps})")


class InstanceNormalization(GroupNormalization):
    """Instance normalization (Ulyanov, Vedaldi & Lempitsky 2016,
    https://arxiv.org/abs/1607.08022): every channel of every sample normalized over its
    ``H x W`` positions -- group normalization with one channel per group.

    ``torch.nn.functional.instance_norm(x, weight=gamma, bias=beta, eps=eps)`` (the input's
    own statistics, affine ``gamma``/``beta``; PyTorch's ``InstanceNorm2d`` defaults to no
    affine parameters and can also track running statistics, which this layer does not:
    ``train_flg`` changes nothing).  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    gamma, beta : array, shape (C,)
        Scale and shift per channel, kept by reference.
    eps : float > 0
        Added to the variance; PyTorch's default ``1e-5``.

    Attributes
    ----------
    dgamma, dbeta : array, shape (C,)
        Gradients after :meth:`backward`.
    xn : array, shape (N, C, H, W)
        The normalized input of the last forward pass.

    Input must be 4-D ``(N, C, H, W)``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> inorm = InstanceNormalization(xp.ones(3), xp.zeros(3))
    >>> inorm.forward(xp.ones((2, 3, 4, 4))).shape
    (2, 3, 4, 4)
    """

    _name = "InstanceNormalization"

    def __init__(self, gamma: Any, beta: Any, eps: float = 1e-5):
        c = _check_affine(self._name, gamma, beta)
        super().__init__(gamma, beta, c, eps)

    def __repr__(self) -> str:
        return f"InstanceNormalization({self.num_features}, eps={self.eps})"


class SpatialBatchNormalization(BatchNormalization):
    """Batch normalization per channel of feature maps (cs231n's spatial batch norm;
    ``torch.nn.BatchNorm2d``): each channel normalized over the batch and all positions.

    ``(N, C, H, W)`` is moved to ``(N*H*W, C)`` and handed to the book's
    :class:`BatchNormalization` (same training/inference behaviour, same closed-form
    backward), then moved back.  The book's conventions for the running statistics:

    * ``momentum`` is the fraction *kept*: ``running = momentum * running + (1 - momentum) *
      batch`` (PyTorch's ``momentum=0.1`` is this ``0.9``);
    * the running variance takes the *biased* batch variance over ``N*H*W`` values (PyTorch
      the unbiased one), and running statistics start at zero;
    * ``eps`` is ``1e-6`` (the book's ``10e-7``; PyTorch ``1e-5``).

    Parameters
    ----------
    gamma, beta : array, shape (C,)
        Scale and shift per channel, kept by reference.
    momentum : float
        Keep-fraction of the running statistics.
    running_mean, running_var : array, shape (C,), optional
        Start values; zeros when omitted.
    eps : float > 0

    Attributes
    ----------
    dgamma, dbeta, running_mean, running_var : array, shape (C,)
    xc, xn : array, shape (N*H*W, C)
        Backward's intermediates, in the channels-last layout it works in.

    The book's :class:`BatchNormalization` normalizes each of the ``C*H*W`` elements of a
    feature map on its own; this layer is the one convolutional networks use.  Input must be
    4-D ``(N, C, H, W)``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> sbn = SpatialBatchNormalization(xp.ones(3), xp.zeros(3))
    >>> sbn.forward(xp.ones((2, 3, 4, 4)), train_flg=True).shape
    (2, 3, 4, 4)
    """

    def __init__(self, gamma: Any, beta: Any, momentum: float = 0.9,
                 running_mean: Any = None, running_var: Any = None, *,
                 eps: float = BATCHNORM_EPS):
        c = _check_affine("SpatialBatchNormalization", gamma, beta)
        eps = as_float(eps, "SpatialBatchNormalization: eps", low=0.0, low_open=True)
        for name, value in (("running_mean", running_mean), ("running_var", running_var)):
            if value is not None and tuple(getattr(value, "shape", ())) != (c,):
                raise ValueError(f"SpatialBatchNormalization: {name} must have shape ({c},), "
                                 f"got {getattr(value, 'shape', type(value).__name__)}")
        super().__init__(gamma, beta, momentum, running_mean, running_var, eps=eps)

    def _check(self, x: Any) -> None:
        c = self.gamma.shape[0]
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"SpatialBatchNormalization expects input of shape (N, {c}, H, W), "
                             f"got shape {tuple(x.shape)}")

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        xp = self._xp
        self._check(x)
        n, c, h, w = x.shape
        self.input_shape = (n, c, h, w)
        z = xp.reshape(xp.permute_dims(x, (0, 2, 3, 1)), (n * h * w, c))
        out = self._forward(z, train_flg)
        return xp.permute_dims(xp.reshape(out, (n, h, w, c)), (0, 3, 1, 2))

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        n, c, h, w = self.input_shape
        dz = xp.reshape(xp.permute_dims(dout, (0, 2, 3, 1)), (n * h * w, c))
        dx = self._backward(dz)
        return xp.permute_dims(xp.reshape(dx, (n, h, w, c)), (0, 3, 1, 2))

    def forward_inplace(self, x: Any, scale: float = 1.0) -> Any:
        """Inference only: ``scale * (gamma * (x - mean) / sqrt(var + eps) + beta)`` per channel
        with the running statistics, computed in place as ``x * a + c``."""
        xp = self._xp
        self._check(x)
        c = x.shape[1]
        if self.running_mean is None:
            self.running_mean = xp.zeros((c,), dtype=x.dtype, device=_device(x))
            self.running_var = xp.zeros((c,), dtype=x.dtype, device=_device(x))
        a = self.gamma / xp.sqrt(self.running_var + self.eps)
        shift = self.beta - self.running_mean * a
        if scale != 1.0:
            a = a * scale
            shift = shift * scale
        x *= xp.reshape(a, (c, 1, 1))
        x += xp.reshape(shift, (c, 1, 1))
        return x

    def __repr__(self) -> str:
        return f"SpatialBatchNormalization({self.gamma.shape[0]}, momentum={self.momentum})"
