"""Checks of what users hand to xpnet, made once where it enters -- never in the hot path.

Every check raises a ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind, wrong
value) whose message names the argument, says what was expected and what was found, *before*
any work is done or any state changes.  Where a check sits, and what it costs:

* **Scalars** (hyperparameters, sizes): :func:`as_float`, :func:`as_int` -- at construction.
  NumPy scalars, 0-d arrays of any backend and other objects with ``__float__`` /
  ``__index__`` count as numbers; ``bool``, strings, complex numbers and arrays with more than
  one element do not (``lr=True`` is a bug, not ``lr=1.0``).
* **Data** (network inputs and labels): :func:`check_features`, :func:`check_labels` -- at a
  network's entry (``predict``, ``loss``, ``accuracy``, ``gradient``) and once in
  :class:`~xpnet.Trainer`, not in the layers.  Shape, dtype and width are metadata: free on any
  backend.  *Values* (labels in range, inputs finite) need a pass over the data and, for an
  array on a GPU, a wait for the device; they are checked only when the caller asks
  (``values=True``), which the networks do by default only for labels in host memory (see
  :class:`~xpnet.MultiLayerNetExtend`'s ``check_values``).

Examples
--------
>>> as_float(0.9, "momentum", low=0.0, high=1.0, high_open=True)
0.9
>>> as_float(5, "momentum", low=0.0, high=1.0, high_open=True)
Traceback (most recent call last):
    ...
ValueError: momentum must be in [0, 1), got 5
>>> as_int(2.5, "epochs")
Traceback (most recent call last):
    ...
TypeError: epochs must be an integer, got 2.5 (float)
"""

from __future__ import annotations

import math
import operator
from typing import Any

from array_api_compat import array_namespace, is_array_api_obj

from xpnet.backend import check_usable, to_host, value_range

__all__ = ["as_float", "as_int", "check_features", "check_finite", "check_labels", "host_array"]


# --------------------------------------------------------------------------------------------
# scalars
# --------------------------------------------------------------------------------------------


#: (dtype, namespace) -> kind, for the dtypes of libraries without NumPy's ``dtype.kind``
_KINDS: dict[tuple[Any, int], str] = {}


def _dtype_kind(x: Any, xp: Any = None) -> str:
    """``'b'`` (bool), ``'i'`` (signed or unsigned integer), ``'f'`` (real float), ``'c'``
    (complex) or ``'?'`` (anything else: strings, objects) for an array of any library."""
    dt = x.dtype
    kind = getattr(dt, "kind", None)  # NumPy (and CuPy) dtypes
    if isinstance(kind, str):
        return "i" if kind == "u" else kind if kind in "bifc" else "?"
    xp = array_namespace(x) if xp is None else xp
    key = (dt, id(xp))
    try:
        return _KINDS[key]
    except (KeyError, TypeError):
        pass
    kind = "?"
    for name, k in (("bool", "b"), ("integral", "i"), ("real floating", "f"),
                    ("complex floating", "c")):
        if xp.isdtype(dt, name):
            kind = k
            break
    try:
        _KINDS[key] = kind
    except TypeError:
        pass
    return kind


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def as_float(value: Any, name: str, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """``value`` as a Python float, checked against an interval.

    Parameters
    ----------
    value
        A Python or NumPy number, a 0-d array of any backend, or anything with ``__float__``.
    name : str
        The argument's name, for the message.
    low, high : float, optional
        Bounds (None: unbounded on that side); ``low_open`` / ``high_open`` exclude them.
    finite : bool
        Refuse ``inf`` (NaN is always refused).

    Raises
    ------
    TypeError
        For a bool, a string, a complex number, an array with more than one element, or an
        object that is not a number.
    ValueError
        For NaN, an infinity (unless ``finite=False``) or a value outside the interval.
    """
    if isinstance(value, (bool, str, bytes, complex)) or not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    if is_array_api_obj(value):
        shape = tuple(getattr(value, "shape", ()))
        kind = _dtype_kind(value)
        if shape != () or kind not in "if":
            what = f"an array of shape {shape}" if shape != () else f"a {kind!r}-kind scalar"
            raise TypeError(f"{name} must be a real number (a 0-d integer or float array "
                            f"will do), got {what}: {value!r}")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    below = low is not None and (v <= low if low_open else v < low)
    above = high is not None and (v >= high if high_open else v > high)
    if below or above:
        raise ValueError(f"{name} must be {_interval(low, high, low_open, high_open)}, "
                         f"got {value!r}")
    return v


def as_int(value: Any, name: str, *, low: int | None = 1, none_ok: bool = False) -> int | None:
    """``value`` as a Python int (``operator.index``: 2.5 and ``"3"`` are refused, not
    truncated or parsed), at least ``low`` (default 1: a positive size).

    >>> as_int(3, "epochs")
    3
    >>> as_int(None, "evaluate_sample_num_per_epoch", none_ok=True) is None
    True
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or (is_array_api_obj(value) and _dtype_kind(value) == "b"):
        raise TypeError(f"{name} must be an integer, got {value!r} (bool)")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r} "
                        f"({type(value).__name__})") from None
    if low is not None and v < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def host_array(x: Any, name: str) -> Any:
    """Host data (a list, a scalar, an array of another library) as a NumPy array, refusing
    what cannot be read as numbers (ragged lists) or cannot be copied (a torch tensor that
    requires grad or lives on the meta device) with a message naming ``name``."""
    check_usable(x, name)
    try:
        return to_host(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} cannot be read as an array of numbers: {exc}") from None


def check_features(x: Any, input_size: int, *, name: str = "x", finite: bool = False,
                   xp: Any = None) -> None:
    """Check a batch of inputs: at least 2-D, at least one row, ``input_size`` values per row
    (``(N, input_size)``, or ``(N, C, H, W)`` with ``C*H*W == input_size``), a real dtype
    (integers and bools are fine: they are cast), and -- when ``finite`` -- no NaN or inf.

    Only ``finite`` reads values (one pass; a device sync for a device array).  ``x`` comes
    from :func:`host_array` or is an array its backend can use (``Backend.why_unusable``).
    """
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise ValueError(
            f"{name} must be a batch of shape (N, {input_size}), got shape {shape}"
            + ("; for one sample use x.reshape(1, -1)" if len(shape) == 1 else ""))
    width = math.prod(shape[1:])
    if width != input_size:
        raise ValueError(f"{name} has {width} values per row (shape {shape}) but the network's "
                         f"input_size is {input_size}")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}): give at least one row")
    kind = _dtype_kind(x, xp)
    if kind not in "bif":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}"
                        + (" (drop the imaginary part first)" if kind == "c" else ""))
    if finite and kind == "f":
        check_finite(x, name, xp=xp)


def check_finite(x: Any, name: str, *, xp: Any = None) -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity, naming how many and the first
    row.  One pass over ``x`` and, for a device array, one wait for the device."""
    xp = array_namespace(x) if xp is None else xp
    ok = xp.isfinite(x)
    if bool(xp.all(ok)):
        return
    bad = xp.logical_not(xp.reshape(ok, (x.shape[0], -1)) if x.ndim > 1 else ok)
    count = int(xp.sum(xp.astype(bad, xp.int64)))
    rows = xp.any(bad, axis=1) if bad.ndim > 1 else bad
    first = int(xp.argmax(xp.astype(rows, xp.int8)))
    raise ValueError(f"{name} holds {count} non-finite value(s) (NaN or inf), the first in row "
                     f"{first}; clean or impute them (e.g. numpy.nan_to_num)")


def check_labels(t: Any, num_classes: int, n: int | None = None, *, name: str = "t",
                 values: bool = False, xp: Any = None) -> Any:
    """Check class labels and return them in a shape the network reads unambiguously.

    Accepted: class indices of an integer dtype, shape ``(N,)`` or a column ``(N, 1)`` (read
    as ``(N,)``, and returned so); one-hot (or probability) rows of shape ``(N, num_classes)``
    of a real or bool dtype.  Class indices as floats are refused (``1.5`` has no class, and a
    silent cast would truncate it): convert them with ``t.astype(int)``.

    Parameters
    ----------
    t : array
        The labels (a NumPy array or an array of any backend).
    num_classes : int
        The network's ``output_size``.
    n : int, optional
        The number of input rows; ``t`` must have as many labels.
    values : bool
        Also check the values: class indices in ``[0, num_classes)``, one-hot entries in
        ``[0, 1]``.  A min and a max (one transfer of two numbers from a device).
    xp : namespace, optional
        ``t``'s namespace when the caller knows it.
    """
    shape = tuple(t.shape)
    kind = _dtype_kind(t, xp)
    valid = (f"class indices of shape ({'N' if n is None else n},) or one-hot rows of shape "
             f"({'N' if n is None else n}, {num_classes})")
    if kind not in "bif":
        raise TypeError(f"{name} must be {valid}, got dtype {t.dtype}")
    if len(shape) not in (1, 2):
        raise ValueError(f"{name} must be {valid}, got shape {shape}")
    if n is not None and shape[0] != n:
        x_name = "x" + name[1:] if name.startswith("t") else "x"  # t_train -> x_train
        raise ValueError(f"{name} has {shape[0]} labels but {x_name} has {n} rows")
    one_hot = len(shape) == 2 and shape[1] == num_classes
    if not one_hot:
        if len(shape) == 2 and shape[1] != 1:
            raise ValueError(f"{name} has shape {shape}: one-hot rows must have "
                             f"{num_classes} columns (the network's output_size)")
        if kind != "i":
            raise TypeError(f"{name} holds class indices of dtype {t.dtype}; they must be "
                            f"integers (t.astype(int) after checking they are whole numbers), "
                            f"or give one-hot rows of shape (N, {num_classes})")
        if len(shape) == 2:  # a column of class indices
            xp = array_namespace(t) if xp is None else xp
            t = xp.reshape(t, (shape[0],))
    if values and shape[0] > 0:
        _check_label_values(t, num_classes, one_hot, name,
                            array_namespace(t) if xp is None else xp)
    return t


def _check_label_values(t: Any, num_classes: int, one_hot: bool, name: str, xp: Any) -> None:
    if one_hot:
        if _dtype_kind(t) == "b":
            return
        lo, hi = (float(v) for v in value_range(t))
        if not (lo >= 0.0 and hi <= 1.0):  # (NaN fails both)
            raise ValueError(f"{name} holds one-hot rows with values from {lo:g} to {hi:g}; "
                             "they must be in [0, 1]")
        return
    lo, hi = (int(v) for v in value_range(t))
    if lo < 0 or hi >= num_classes:
        bad = xp.logical_or(t < 0, t >= num_classes)
        first = int(xp.argmax(xp.astype(bad, xp.int8)))
        raise ValueError(
            f"{name} holds class index {int(t[first])} at position {first}, outside "
            f"[0, {num_classes}) for a network with output_size={num_classes} (labels range "
            f"from {lo} to {hi})")
