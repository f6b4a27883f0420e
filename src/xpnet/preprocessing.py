"""Data preprocessing of cs231n lecture 7: centering, standardization, PCA and whitening.

Transformers in scikit-learn's shape: ``fit(x)`` learns statistics from the *training* data and
returns ``self``; ``transform(x)`` applies them to any data (training, validation, test);
``fit_transform(x)``; ``inverse_transform(x)``; fitted attributes end in an underscore
(``mean_``, ``components_``, ...).  Written against the Array API, so they run on every xpnet
backend; the fitted attributes live on the device of the data they were fitted on.

Which backend
    ``backend=`` / ``device=`` fix it (host data such as NumPy arrays or lists is moved there);
    otherwise the backend of the array given to ``fit`` -- for host data (NumPy arrays, lists)
    the default backend (:func:`xpnet.set_default_backend`; NumPy unless one was chosen), as
    for the networks.  ``transform`` moves its input to the fitted backend and returns arrays
    there.

Which dtype
    Floating input keeps its dtype; integer input (``uint8`` images) becomes the default float
    dtype (:func:`xpnet.default_dtype`, float32 unless one was chosen).  The
    statistics (sums, variances, the covariance matrix and its eigendecomposition) are computed
    in **float64** whatever the input's dtype, in row blocks of at most :data:`CHUNK_ROWS`
    rows so a float32 training set is never copied whole to float64, and the fitted attributes
    are then stored in the input's dtype (float32 input -> float32 ``mean_``, ``components_``,
    ... and float32 outputs).  On a device without float64 (array-api-strict's ``no_float64``
    device, Apple's MPS) the statistics are computed on the host with NumPy in float64 (each
    block is copied there) and the results are copied back: fitting is a one-off, and float32
    eigenvectors of a 784x784 covariance are visibly worse than float64 ones.

As in the course: statistics are computed on the training set only, then applied unchanged to
validation and test data (fitting on the test set leaks it into the model).

Examples
--------
>>> import numpy as np
>>> from xpnet.preprocessing import Centering, Standardization, PCA, Whitening
>>> x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
>>> Centering().fit(x).mean_.tolist()
[3.0, 20.0]
>>> Standardization().fit_transform(x)[:, 0].round(4).tolist()
[-1.2247, 0.0, 1.2247]
>>> PCA(1).fit(x).components_.shape
(1, 2)
>>> w = Whitening(eps=0.0).fit_transform(x)
>>> (np.round(w.T @ w / 3, 6) + 0.0).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

from xpnet.backend import Backend, backend_of, default_dtype, get_backend

__all__ = [
    "CHUNK_ROWS",
    "PCA",
    "Centering",
    "NotFittedError",
    "Standardization",
    "Whitening",
]

#: Rows per block when statistics are accumulated in float64 (bounds the float64 temporaries).
CHUNK_ROWS = 4096


class NotFittedError(ValueError, AttributeError):
    """``transform`` / ``inverse_transform`` called before ``fit`` (as scikit-learn's)."""


# --------------------------------------------------------------------------------------------
# shared plumbing
# --------------------------------------------------------------------------------------------


def _own_backend(x: Any) -> Backend | None:
    """The backend ``x`` is an array of, or None for lists and other host data."""
    try:
        return backend_of(x)
    except TypeError:
        return None


def _dtype_name(xp: Any, dt: Any) -> str:
    for name in ("float16", "float32", "float64"):
        if hasattr(xp, name) and dt == getattr(xp, name):
            return name
    return str(dt)


class _Float64:
    """Where float64 statistics are computed: on the data's own backend when its device has
    float64, else on the host (NumPy), block by block."""

    def __init__(self, be: Backend):
        self.src = be
        self.be = be if be.has_float64 else get_backend("numpy")
        self.xp = self.be.xp
        self.on_host = self.be is not be

    def blocks(self, x: Any) -> Iterator[Any]:
        """``x`` in row blocks of at most :data:`CHUNK_ROWS`, as float64 on the compute
        backend."""
        xp = self.xp
        n = x.shape[0]
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)  # out-of-bounds slices are undefined
            c = x[start:stop, ...]
            if self.on_host:
                c = self.be.asarray(self.src.to_numpy(c))
            yield xp.astype(c, xp.float64, copy=False)

    def back(self, a: Any, dtype: Any) -> Any:
        """A float64 result -> ``dtype`` on the data's device."""
        if self.on_host:
            xp = self.xp
            name = _dtype_name(self.src.xp, dtype)
            host = xp.astype(a, self.be.dtype(name))
            return self.src.asarray(self.be.to_numpy(host), dtype=dtype)
        return self.src.xp.astype(a, dtype)


def _check_eps(eps: Any) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps must be a non-negative number, got {eps!r}") from None
    if not e >= 0.0 or e == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return e


class _Transformer:
    """Backend handling and input checks shared by the transformers."""

    #: whether the transformer takes (N, C, H, W) input per channel
    _min_ndim = 2
    _max_ndim: int | None = None

    def __init__(self, *, backend: Any = None, device: Any = None):
        # resolved now, so an unknown name fails before any work
        self._fixed: Backend | None = (
            None if backend is None and device is None else get_backend(backend, device)
        )
        self.backend = backend
        self.device = device
        self._be: Backend | None = None
        self._dtype: Any = None

    # -- inputs -----------------------------------------------------------------------------

    def _input(self, x: Any, be: Backend | None, name: str = "x") -> tuple[Backend, Any]:
        """``x`` on backend ``be`` (chosen from ``x`` when None) as a floating array."""
        if be is None:
            be = self._fixed
        if be is None:
            own = _own_backend(x)
            # host data (NumPy arrays, lists) goes where code that names no backend goes
            be = own if own is not None and own.name != "numpy" else get_backend(None)
        try:
            arr = be.asarray(x)
        except Exception as exc:
            raise TypeError(f"{name} must be an array or array-like of numbers: {exc}") from exc
        xp = be.xp
        if not xp.isdtype(arr.dtype, "real floating"):
            if not xp.isdtype(arr.dtype, ("integral", "bool")):
                raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
            arr = xp.astype(arr, be.dtype(default_dtype()))
        if arr.ndim < self._min_ndim or (self._max_ndim is not None
                                         and arr.ndim > self._max_ndim):
            want = "(N, D)" if self._max_ndim == 2 else "(N, D) or (N, C, H, W)"
            raise ValueError(
                f"{name} must have shape {want} (samples first), got shape {tuple(arr.shape)}"
                + ("; flatten images with reshape(N, -1) first" if self._max_ndim == 2 else "")
            )
        return be, arr

    def _fit_input(self, x: Any, min_samples: int = 1) -> tuple[Backend, Any]:
        be, arr = self._input(x, None)
        if arr.shape[0] < min_samples:
            raise ValueError(
                f"x must have at least {min_samples} sample(s) to fit, got {arr.shape[0]}"
            )
        return be, arr

    def _transform_input(self, x: Any, name: str = "x") -> Any:
        if self._be is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(x_train) first"
            )
        be, arr = self._input(x, self._be, name)
        if arr.dtype != self._dtype:
            arr = be.xp.astype(arr, self._dtype)
        return arr

    # -- scikit-learn's shape ---------------------------------------------------------------

    def fit(self, x: Any) -> _Transformer:  # pragma: no cover - overridden
        raise NotImplementedError

    def transform(self, x: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def fit_transform(self, x: Any) -> Any:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def _backend_repr(self) -> str:
        parts = []
        if self.backend is not None:
            parts.append(f"backend={self.backend!r}")
        if self.device is not None:
            parts.append(f"device={self.device!r}")
        return ", ".join(parts)


def _signs(xp: Any, rows: Any) -> Any:
    """+1/-1 per row so that the row's entry of largest magnitude is positive after the flip
    (scikit-learn's ``svd_flip`` on the components): deterministic signs on every backend."""
    hi = xp.max(rows, axis=1)
    lo = xp.min(rows, axis=1)
    one = xp.ones_like(hi)
    return xp.where(hi >= -lo, one, -one)


def _covariance_eigh(f: _Float64, x: Any, mean: Any, ddof: int) -> tuple[Any, Any]:
    """Eigenvalues (descending) and eigenvectors (columns, sign-fixed) of the covariance
    ``(x - mean).T @ (x - mean) / (N - ddof)``, in float64 on ``f``'s backend."""
    xp = f.xp
    d = x.shape[1]
    cov = xp.zeros((d, d), dtype=xp.float64, device=f.be.device)
    for c in f.blocks(x):
        c = c - mean
        cov = cov + xp.matrix_transpose(c) @ c
    cov = cov / float(x.shape[0] - ddof)
    cov = 0.5 * (cov + xp.matrix_transpose(cov))  # exactly symmetric for eigh
    w, u = xp.linalg.eigh(cov)
    w = xp.flip(w, axis=0)
    u = xp.flip(u, axis=1)
    u = u * _signs(xp, xp.matrix_transpose(u))  # column j times sign j
    return w, u


def _mean(f: _Float64, x: Any, axes: tuple[int, ...]) -> tuple[Any, int]:
    """Float64 mean of ``x`` over ``axes`` (0 among them), and the count it averaged."""
    xp = f.xp
    total = None
    for c in f.blocks(x):
        s = xp.sum(c, axis=axes)
        total = s if total is None else total + s
    count = 1
    for a in axes:
        count *= x.shape[a]
    return total / float(count), count


def _var(f: _Float64, x: Any, mean: Any, axes: tuple[int, ...], count: int) -> Any:
    """Biased float64 variance of ``x`` over ``axes`` given its mean (two-pass)."""
    xp = f.xp
    total = None
    for c in f.blocks(x):
        d = c - mean
        s = xp.sum(d * d, axis=axes)
        total = s if total is None else total + s
    return total / float(count)


# --------------------------------------------------------------------------------------------
# centering and standardization
# --------------------------------------------------------------------------------------------


class _PerFeatureOrChannel(_Transformer):
    def __init__(self, *, per_channel: bool = False, backend: Any = None, device: Any = None):
        if not isinstance(per_channel, bool):
            raise TypeError(f"per_channel must be True or False, got {per_channel!r}")
        super().__init__(backend=backend, device=device)
        self.per_channel = per_channel

    def _axes(self, x: Any) -> tuple[int, ...]:
        if self.per_channel:
            if x.ndim != 4:
                raise ValueError(
                    "per_channel=True needs x of shape (N, C, H, W), got shape "
                    f"{tuple(x.shape)}"
                )
            return (0, 2, 3)
        return (0,)

    def _broadcast(self, xp: Any, stat: Any) -> Any:
        """A fitted per-channel statistic ``(C,)`` shaped ``(1, C, 1, 1)``."""
        if self.per_channel:
            return xp.reshape(stat, (1, stat.shape[0], 1, 1))
        return stat

    def _check_shape(self, x: Any, name: str = "x") -> None:
        want = self.mean_.shape
        if self.per_channel:
            if x.ndim != 4 or x.shape[1] != want[0]:
                raise ValueError(
                    f"{name} must have shape (N, {want[0]}, H, W) (fitted per channel on "
                    f"{want[0]} channels), got shape {tuple(x.shape)}"
                )
        elif tuple(x.shape[1:]) != tuple(want):
            raise ValueError(
                f"{name} must have shape (N, {', '.join(map(str, want))}) as the data it was "
                f"fitted on, got shape {tuple(x.shape)}"
            )

    def _fit_mean(self, x: Any) -> tuple[_Float64, Any, Any, Any, tuple[int, ...], int]:
        """Fit-time input checks and the float64 mean (flat and broadcastable)."""
        be, arr = self._fit_input(x)
        axes = self._axes(arr)
        f = _Float64(be)
        mean64, count = _mean(f, arr, axes)
        if self.per_channel:
            mean64_b = f.xp.reshape(mean64, (1, mean64.shape[0], 1, 1))
        else:
            mean64_b = mean64
        self._be, self._dtype = be, arr.dtype
        self.n_samples_seen_ = int(arr.shape[0])
        return f, arr, mean64, mean64_b, axes, count

    def __repr__(self) -> str:
        args = ["per_channel=True"] if self.per_channel else []
        extra = self._backend_repr()
        return f"{type(self).__name__}({', '.join(args + ([extra] if extra else []))})"


class Centering(_PerFeatureOrChannel):
    """Subtract the training mean: per feature, or per channel of images.

    ``x - mean_``, the first step of cs231n's preprocessing ("zero-center the data").

    Parameters
    ----------
    per_channel : bool
        False (default): one mean per feature, ``mean_`` of shape ``x.shape[1:]`` -- for images
        ``(N, C, H, W)`` that is AlexNet's *mean image* ``(C, H, W)``.  True: one mean per
        channel of ``(N, C, H, W)`` input, ``mean_`` of shape ``(C,)`` -- VGG's per-channel
        mean (then any ``H, W`` can be transformed).
    backend, device : optional
        Fix the backend (see :mod:`xpnet.preprocessing`); default: the data's own.

    Attributes
    ----------
    mean_ : array, shape ``x.shape[1:]`` or ``(C,)``
        On the data's device, in its dtype (computed in float64).
    n_samples_seen_ : int

    Notes
    -----
    scikit-learn has no separate centering class (``StandardScaler(with_std=False)``); its
    statistics are per feature of 2-D data only.

    Examples
    --------
    >>> Centering().fit_transform([[1.0, 2.0], [3.0, 6.0]]).tolist()
    [[-1.0, -2.0], [1.0, 2.0]]
    """

    def fit(self, x: Any) -> Centering:
        """Learn the mean of ``x`` (the training data).  Returns ``self``."""
        f, arr, mean64, _, _, _ = self._fit_mean(x)
        self.mean_ = f.back(mean64, arr.dtype)
        return self

    def transform(self, x: Any) -> Any:
        """``x - mean_`` on the fitted backend, in the fitted dtype."""
        arr = self._transform_input(x)
        self._check_shape(arr)
        return arr - self._broadcast(self._be.xp, self.mean_)

    def inverse_transform(self, x: Any) -> Any:
        """``x + mean_``."""
        arr = self._transform_input(x)
        self._check_shape(arr)
        return arr + self._broadcast(self._be.xp, self.mean_)


class Standardization(_PerFeatureOrChannel):
    """Zero mean and unit variance: ``(x - mean_) / scale_``, per feature or per channel.

    Parameters
    ----------
    per_channel : bool
        As in :class:`Centering`: per feature (default) or per channel of ``(N, C, H, W)``.
    eps : float
        Added to the variance inside the square root: ``scale_ = sqrt(var_ + eps)``.  The
        default 0 gives exactly scikit-learn's ``StandardScaler``.
    backend, device : optional
        Fix the backend; default: the data's own.

    Attributes
    ----------
    mean_ : array
    var_ : array
        The *biased* variance (divided by ``N``, or ``N*H*W`` per channel), as
        ``StandardScaler``'s ``var_``.
    scale_ : array
        ``sqrt(var_ + eps)``, except 1 where a feature is constant (scikit-learn's rule: a
        variance within rounding of zero), so constant features are centered, not blown up.
    n_samples_seen_ : int

    Notes
    -----
    Differs from cs231n's ``X /= np.std(X, axis=0)`` only for constant features (it divides by
    zero).  Differs from ``torch.nn.BatchNorm``-style normalization in that the statistics are
    fixed after ``fit``.

    Examples
    --------
    >>> Standardization().fit_transform([[0.0, 1.0], [2.0, 1.0]]).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """

    def __init__(self, *, per_channel: bool = False, eps: float = 0.0, backend: Any = None,
                 device: Any = None):
        self.eps = _check_eps(eps)
        super().__init__(per_channel=per_channel, backend=backend, device=device)

    def fit(self, x: Any) -> Standardization:
        """Learn mean and variance of ``x`` (the training data).  Returns ``self``."""
        f, arr, mean64, mean64_b, axes, count = self._fit_mean(x)
        xp = f.xp
        var64 = _var(f, arr, mean64_b, axes, count)
        # scikit-learn's _is_constant_feature: a variance within rounding of zero
        eps64 = xp.finfo(xp.float64).eps
        bound = count * eps64 * var64 + (count * eps64 * mean64) ** 2
        scale64 = xp.where(var64 <= bound, 1.0, xp.sqrt(var64 + self.eps))
        self.mean_ = f.back(mean64, arr.dtype)
        self.var_ = f.back(var64, arr.dtype)
        self.scale_ = f.back(scale64, arr.dtype)
        return self

    def transform(self, x: Any) -> Any:
        """``(x - mean_) / scale_`` on the fitted backend."""
        arr = self._transform_input(x)
        self._check_shape(arr)
        xp = self._be.xp
        return (arr - self._broadcast(xp, self.mean_)) / self._broadcast(xp, self.scale_)

    def inverse_transform(self, x: Any) -> Any:
        """``x * scale_ + mean_``."""
        arr = self._transform_input(x)
        self._check_shape(arr)
        xp = self._be.xp
        return arr * self._broadcast(xp, self.scale_) + self._broadcast(xp, self.mean_)

    def __repr__(self) -> str:
        base = super().__repr__()
        if self.eps:
            base = base[:-1] + (", " if base[-2] != "(" else "") + f"eps={self.eps})"
        return base


# --------------------------------------------------------------------------------------------
# PCA and whitening
# --------------------------------------------------------------------------------------------


class PCA(_Transformer):
    """Principal component analysis: project centered data on the top eigenvectors of its
    covariance.

    ``transform(x) = (x - mean_) @ components_.T`` (divided by ``sqrt(explained_variance_ +
    eps)`` when ``whiten``), cs231n's ``Xrot_reduced = np.dot(X, U[:, :k])``.

    Parameters
    ----------
    n_components : int, optional
        How many components to keep, ``1 <= n_components <= min(N, D)``; None keeps
        ``min(N, D)``.
    whiten : bool
        Divide each projected coordinate by ``sqrt(explained_variance_ + eps)`` (unit variance).
    eps : float
        Added to the variances when whitening (scikit-learn adds nothing).
    backend, device : optional
        Fix the backend; default: the data's own.

    Attributes
    ----------
    components_ : array, shape (n_components, D)
        Unit principal axes as rows, by decreasing variance; each row's entry of largest
        magnitude is positive (scikit-learn's sign rule).
    explained_variance_ : array, shape (n_components,)
        Variance along each component, with the *unbiased* (``N - 1``) covariance, as
        scikit-learn's ``PCA``.
    explained_variance_ratio_ : array, shape (n_components,)
        ``explained_variance_`` over the total variance (the covariance's trace).
    mean_ : array, shape (D,)
    n_components_ : int

    Notes
    -----
    Computed as the eigendecomposition of the float64 covariance ``Xc.T @ Xc / (N - 1)``
    (``xp.linalg.eigh``, part of the standard's ``linalg`` extension), accumulated over row
    blocks -- cs231n's recipe, which needs ``D x D`` memory rather than the ``N x D`` of an SVD
    of the data; scikit-learn computes an SVD of the centered data.  The results agree up to
    rounding (and the sign rule above), except for components whose variances tie.

    Examples
    --------
    >>> PCA(1).fit([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]]).explained_variance_.round(6).tolist()
    [8.0]
    """

    _max_ndim = 2

    def __init__(self, n_components: int | None = None, whiten: bool = False,
                 eps: float = 1e-5, *, backend: Any = None, device: Any = None):
        if n_components is not None:
            try:
                ok = not isinstance(n_components, bool) and operator.index(n_components) >= 1
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"n_components must be a positive integer or None, got {n_components!r}"
                )
            n_components = operator.index(n_components)
        if not isinstance(whiten, bool):
            raise TypeError(f"whiten must be True or False, got {whiten!r}")
        self.eps = _check_eps(eps)
        super().__init__(backend=backend, device=device)
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, x: Any) -> PCA:
        """Learn the mean and the principal axes of ``x`` ``(N, D)``.  Returns ``self``."""
        be, arr = self._fit_input(x, min_samples=2)
        n, d = arr.shape
        k = min(n, d) if self.n_components is None else self.n_components
        if k > min(n, d):
            raise ValueError(
                f"n_components={k} must be <= min(n_samples, n_features) = {min(n, d)}"
            )
        f = _Float64(be)
        xp = f.xp
        mean64, _ = _mean(f, arr, (0,))
        w, u = _covariance_eigh(f, arr, mean64, ddof=1)
        w = xp.maximum(w, 0.0)  # rounding can leave tiny negative eigenvalues
        total = xp.sum(w)
        ev = w[:k]
        self._be, self._dtype = be, arr.dtype
        self.n_components_ = k
        self.n_samples_seen_ = int(n)
        self.mean_ = f.back(mean64, arr.dtype)
        self.components_ = f.back(xp.matrix_transpose(u[:, :k]), arr.dtype)
        self.explained_variance_ = f.back(ev, arr.dtype)
        self.explained_variance_ratio_ = f.back(ev / total, arr.dtype)
        self._whiten_scale = f.back(xp.sqrt(ev + self.eps), arr.dtype)
        return self

    def _check(self, arr: Any, width: int, name: str) -> None:
        if arr.shape[1] != width:
            raise ValueError(f"{name} must have {width} columns, got shape {tuple(arr.shape)}")

    def transform(self, x: Any) -> Any:
        """Coordinates ``(N, n_components)`` of ``x`` ``(N, D)`` on the principal axes."""
        arr = self._transform_input(x)
        self._check(arr, self.mean_.shape[0], "x")
        z = (arr - self.mean_) @ self._be.xp.matrix_transpose(self.components_)
        return z / self._whiten_scale if self.whiten else z

    def inverse_transform(self, x: Any) -> Any:
        """Back from ``(N, n_components)`` coordinates to ``(N, D)``: the reconstruction."""
        arr = self._transform_input(x)
        self._check(arr, self.n_components_, "x")
        if self.whiten:
            arr = arr * self._whiten_scale
        return arr @ self.components_ + self.mean_

    def __repr__(self) -> str:
        args = [f"n_components={self.n_components!r}"]
        if self.whiten:
            args += ["whiten=True", f"eps={self.eps}"]
        extra = self._backend_repr()
        return f"PCA({', '.join(args + ([extra] if extra else []))})"


class Whitening(_Transformer):
    """PCA or ZCA whitening: decorrelate the features and give each unit variance.

    With the covariance ``Xc.T @ Xc / N = U diag(S) U.T`` of the training data (cs231n's
    recipe, the *biased* covariance):

    * ``method="pca"``: ``(x - mean_) @ U @ diag(1 / sqrt(S + eps))`` (rotated coordinates);
    * ``method="zca"``: ``(x - mean_) @ U @ diag(1 / sqrt(S + eps)) @ U.T`` (rotated back: the
      whitened data that stays closest to the input, Bell & Sejnowski 1997).

    ``eps`` sits inside the square root, as in cs231n's ``Xwhite = Xrot / np.sqrt(S + 1e-5)``;
    the whitened training data then has covariance ``diag(S / (S + eps))`` (``U diag(...)
    U.T`` for ZCA): the identity for directions with ``S >> eps``, and smaller in the
    noise directions that the ``eps`` keeps from being amplified.

    Parameters
    ----------
    method : {'zca', 'pca'}
    eps : float
    backend, device : optional
        Fix the backend; default: the data's own.

    Attributes
    ----------
    mean_ : array, shape (D,)
    eigenvalues_ : array, shape (D,)
        ``S``, descending.
    eigenvectors_ : array, shape (D, D)
        ``U``, one unit eigenvector per column, each with its largest entry positive.
    whitening_matrix_ : array, shape (D, D)
        ``W`` with ``transform(x) = (x - mean_) @ W``.
    dewhitening_matrix_ : array, shape (D, D)
        Its inverse, used by ``inverse_transform`` (exact for ``eps > 0``).

    Notes
    -----
    scikit-learn's nearest thing is ``PCA(whiten=True)``, which uses the unbiased covariance,
    no ``eps`` and has no ZCA.  Fitting computes and inverts a ``D x D`` eigendecomposition:
    cheap for MNIST's 784 pixels, heavy for 3,072-pixel CIFAR images and beyond.

    Examples
    --------
    >>> Whitening("pca").fit([[0.0, 0.0], [4.0, 0.0], [0.0, 2.0], [4.0, 2.0]]).eigenvalues_.tolist()
    [4.0, 1.0]
    """

    _max_ndim = 2
    METHODS = ("zca", "pca")

    def __init__(self, method: str = "zca", eps: float = 1e-5, *, backend: Any = None,
                 device: Any = None):
        if not isinstance(method, str) or method.lower() not in self.METHODS:
            raise ValueError(f"method must be 'zca' or 'pca', got {method!r}")
        self.eps = _check_eps(eps)
        super().__init__(backend=backend, device=device)
        self.method = method.lower()

    def fit(self, x: Any) -> Whitening:
        """Learn mean and covariance of ``x`` ``(N, D)``.  Returns ``self``."""
        be, arr = self._fit_input(x, min_samples=2)
        f = _Float64(be)
        xp = f.xp
        mean64, _ = _mean(f, arr, (0,))
        s, u = _covariance_eigh(f, arr, mean64, ddof=0)
        s = xp.maximum(s, 0.0)
        ut = xp.matrix_transpose(u)
        root = xp.sqrt(s + self.eps)
        # U diag(1/root) [U.T] and its inverse diag(root) U.T [U ...], as column / row scalings
        w = u / root
        dw = ut * xp.reshape(root, (-1, 1))
        if self.method == "zca":
            w = w @ ut
            dw = u @ dw
        self._be, self._dtype = be, arr.dtype
        self.n_samples_seen_ = int(arr.shape[0])
        self.mean_ = f.back(mean64, arr.dtype)
        self.eigenvalues_ = f.back(s, arr.dtype)
        self.eigenvectors_ = f.back(u, arr.dtype)
        self.whitening_matrix_ = f.back(w, arr.dtype)
        self.dewhitening_matrix_ = f.back(dw, arr.dtype)
        return self

    def _check(self, arr: Any, name: str) -> None:
        d = self.mean_.shape[0]
        if arr.shape[1] != d:
            raise ValueError(f"{name} must have {d} columns, got shape {tuple(arr.shape)}")

    def transform(self, x: Any) -> Any:
        """``(x - mean_) @ whitening_matrix_``, shape ``(N, D)``."""
        arr = self._transform_input(x)
        self._check(arr, "x")
        return (arr - self.mean_) @ self.whitening_matrix_

    def inverse_transform(self, x: Any) -> Any:
        """``x @ dewhitening_matrix_ + mean_``."""
        arr = self._transform_input(x)
        self._check(arr, "x")
        return arr @ self.dewhitening_matrix_ + self.mean_

    def __repr__(self) -> str:
        extra = self._backend_repr()
        return (f"Whitening(method={self.method!r}, eps={self.eps}"
                + (f", {extra})" if extra else ")"))
