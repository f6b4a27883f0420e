"""NumPy's room: the reference CPU backend and its fused kernels.

Everything xpnet knows about NumPy as a *device* library lives here: how the backend is built,
its array type, host copies (none needed), its generator (SFC64 on the host, which is its device)
and :class:`NumpyKernels`, the blocked and threaded in-place ufunc kernels.
"""

from __future__ import annotations

import concurrent.futures
import threading
from types import ModuleType
from typing import Any

import numpy as np

from xpnet.backend._base import Backend, HostGenerator, Kernels, register, to_host
from xpnet.backend._threads import get_num_threads, thread_pool


class NumpyKernels(Kernels):
    """In-place ufuncs with ``out=`` into scratch buffers, blocked so that each optimizer
    update streams through memory once, and split across threads on large buffers.

    An unblocked in-place update still makes about a dozen passes over every state array; on a
    few million parameters that is memory-bound.  Working through blocks of ``block`` elements
    (about a MiB for all arrays together, so they stay in cache) makes the same
    dozen ufunc calls per block but reads and writes each array from main memory once.
    (numexpr was tried for this and was slower than blocked ufuncs here.)

    NumPy's ufuncs run on one core while its BLAS uses them all.  Buffers of at least
    ``2 * min_per_thread`` elements are cut into contiguous parts, one per thread of
    :func:`~xpnet.backend.get_num_threads` (ufuncs release the GIL); each element is still
    updated by the same arithmetic, so the result does not depend on the number of threads.
    """

    name = "numpy"
    #: elements per block (measured on a 2-core EPYC over 2.9 M float32 parameters: 64-128 Ki
    #: beat 4-32 Ki and unblocked on one thread; 128-256 Ki were best on two, where smaller
    #: blocks lose to the GIL taken around every ufunc call)
    block = 131072
    #: fewest elements worth handing to another thread
    min_per_thread = 262144

    def __init__(self) -> None:
        # Scratch blocks are per thread: two optimizers updating at once from two threads (or
        # the parts of one update) must never share one.
        self._local = threading.local()

    def _tmp(self, n: int, dtype: np.dtype) -> np.ndarray:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = {}
        key = (n, np.dtype(dtype).str)
        buf = scratch.get(key)
        if buf is None:
            if len(scratch) > 8:
                scratch.clear()
            buf = scratch[key] = np.empty(n, dtype)
        return buf

    def _each_block(self, body, *arrays: np.ndarray) -> None:  # noqa: ANN001
        """Call ``body(block views of arrays..., scratch)`` over the flattened ``arrays``,
        in parallel parts when they are large (see the class docstring)."""
        if not all(a.flags.c_contiguous for a in arrays):
            # reshape(-1) would copy, and the in-place update would land in the copy: work on
            # the arrays as they are, in one piece (ufuncs handle any layout)
            body(*arrays, np.empty_like(arrays[0]))
            return
        flat = [a.reshape(-1) for a in arrays]
        n = flat[0].size
        _in_parts(lambda a, b: self._run_part(body, flat, a, b), n, self._parts(n))

    def _parts(self, size: int, items: int | None = None) -> int:
        """How many threads ``size`` elements are worth (at most ``items`` parts)."""
        parts = min(get_num_threads(), size // self.min_per_thread)
        return max(1, parts if items is None else min(parts, items))

    def _run_part(self, body, flat, start, stop):  # noqa: ANN001, ANN202
        n = stop - start
        # small buffers stay in cache anyway: one block saves the per-block calls
        step = (n if n <= 4 * self.block else self.block) or 1
        s = self._tmp(step, flat[0].dtype)
        for a in range(start, stop, step):
            b = min(a + step, stop)
            body(*(f[a:b] for f in flat), s[: b - a])

    @staticmethod
    def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)

    @staticmethod
    def relu_(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0, out=x)

    # -- layers on large batches: the elementwise passes split over the kernel threads (NumPy's
    # ufuncs use one core while its BLAS uses all).  Below ``2 * min_per_thread`` values, or on
    # one thread, they decline (return None) and the portable code runs: splitting gains
    # nothing there, and the portable code's fewer calls are what small layers need.

    def relu(self, x: np.ndarray) -> np.ndarray | None:
        if x.ndim == 0 or self._parts(x.size, x.shape[0]) < 2:
            return None
        out = np.empty(x.shape, x.dtype)  # C order, so that the 2-D view below is a view
        rows = x.reshape(x.shape[0], -1)  # (a copy when x is not C-contiguous: read only)
        o = out.reshape(rows.shape)
        _in_parts(lambda a, b: np.maximum(rows[a:b], 0, out=o[a:b]), rows.shape[0],
                  self._parts(x.size, rows.shape[0]))
        return out

    def batchnorm_train(self, x, gamma, beta, eps, running_mean, running_var, momentum):  # noqa: ANN001, ANN201
        n, d = x.shape
        if self._parts(x.size, d) < 2:
            return None
        c = x.dtype.type
        inv_n, keep, take, eps = c(1.0 / n), c(momentum), c(1.0 - momentum), c(eps)
        out = np.empty_like(x)
        mean, inv_std = np.empty(d, x.dtype), np.empty(d, x.dtype)
        new_mean, new_var = np.empty_like(running_mean), np.empty_like(running_var)

        def columns(a: int, b: int) -> None:
            xs, xc, mu = x[:, a:b], out[:, a:b], mean[a:b]
            np.add.reduce(xs, 0, out=mu)
            mu *= inv_n
            np.subtract(xs, mu, out=xc)  # the centred input, in the output's memory
            var = np.einsum("ij,ij->j", xc, xc)
            var *= inv_n
            np.multiply(running_mean[a:b], keep, out=new_mean[a:b])
            new_mean[a:b] += take * mu
            np.multiply(running_var[a:b], keep, out=new_var[a:b])
            new_var[a:b] += take * var
            var += eps
            np.sqrt(var, out=var)
            np.divide(c(1.0), var, out=inv_std[a:b])
            xc *= gamma[a:b] * inv_std[a:b]
            xc += beta[a:b]

        _in_parts(columns, d, self._parts(x.size, d))
        return out, mean, inv_std, new_mean, new_var

    def batchnorm_backward(self, dout, x, mean, inv_std, gamma, eps, dgamma_out, dbeta_out):  # noqa: ANN001, ANN201
        n, d = dout.shape
        dx = np.empty_like(dout)
        dgamma = np.empty(d, dout.dtype) if dgamma_out is None else dgamma_out
        dbeta = np.empty(d, dout.dtype) if dbeta_out is None else dbeta_out
        inv_n = dout.dtype.type(1.0 / n)

        def columns(a: int, b: int) -> None:
            do, xc, inv = dout[:, a:b], dx[:, a:b], inv_std[a:b]
            np.add.reduce(do, 0, out=dbeta[a:b])
            np.subtract(x[:, a:b], mean[a:b], out=xc)  # the centred input, in dx's memory
            dg = np.einsum("ij,ij->j", xc, do, out=dgamma[a:b])
            dg *= inv  # sum(xn * dout)
            k = gamma[a:b] * inv
            kn = k * inv_n
            # dx = k * dout - xc * (k / n * inv_std * dgamma) - k / n * dbeta
            xc *= -(kn * inv * dg)
            xc += do * k
            xc -= kn * dbeta[a:b]

        _in_parts(columns, d, self._parts(dout.size, d))
        return dx, dgamma, dbeta

    @staticmethod
    def col_dot(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # ``np.vecdot(a, b, axis=0)`` took about 6 ms at 512x1024 float32 against 0.12 ms for
        # this einsum, and was no faster at 100x100 (``python bench/micro.py``).
        return np.einsum("ij,ij->j", a, b, out=out)

    @staticmethod
    def col_sum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # the ufunc method itself: array_api_compat's ``sum`` wrapper costs 5 us a call
        return np.add.reduce(x, 0, out=out)

    _SAME_WIDTH_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}

    def relu_backward(self, dout: np.ndarray, saved: np.ndarray) -> np.ndarray:
        # ``saved``: the output of :meth:`relu` (the layer's path with this kernel set) or the
        # boolean mask ``x > 0``.  ``np.where(mask, dout, 0)`` is ~10x slower than this bitwise
        # AND of dout's bits with 0 / all-ones (same result, bit for bit: dout where mask, +0.0
        # elsewhere; inf and nan are dropped where the mask is off, as ``where`` does).
        is_mask = saved.dtype == np.bool_
        it = self._SAME_WIDTH_INT.get(dout.dtype)
        if it is None or dout.ndim == 0 or dout.size == 0:  # (no rows to split)
            return np.where(saved if is_mask else saved > 0, dout, dout.dtype.type(0))
        dx = np.empty(dout.shape, dout.dtype)  # C order: ``x2`` below is a view of it
        shape2 = (dout.shape[0], -1)
        d2, s2, x2 = dout.reshape(shape2), saved.reshape(shape2), dx.reshape(shape2)

        def rows(a: int, b: int) -> None:
            mask = s2[a:b] if is_mask else s2[a:b] > 0
            ones = np.negative(mask.view(np.int8), dtype=it)
            np.bitwise_and(d2[a:b].view(it), ones, out=x2[a:b].view(it))

        _in_parts(rows, d2.shape[0], self._parts(dout.size, d2.shape[0]))
        return dx

    def adam(self, p, g, m, v, lr_t, beta1, beta2, eps, decay=1.0):  # noqa: ANN001, ANN201
        c = p.dtype.type
        b1c, b2c, eps, lr_t = c(1.0 - beta1), c(1.0 - beta2), c(eps), c(lr_t)
        keep = None if decay == 1.0 else c(decay)

        def body(p_, g_, m_, v_, s):  # noqa: ANN001, ANN202
            np.subtract(g_, m_, out=s)  # m += (1 - beta1) * (g - m)
            s *= b1c
            m_ += s
            np.multiply(g_, g_, out=s)  # v += (1 - beta2) * (g * g - v)
            s -= v_
            s *= b2c
            v_ += s
            if keep is not None:  # AdamW: p *= 1 - lr * weight_decay
                p_ *= keep
            _rms_step(p_, m_, v_, s, lr_t, eps)  # p -= lr_t * m / (sqrt(v) + eps)

        self._each_block(body, p, g, m, v)

    def rmsprop(self, p, g, h, lr, decay_rate, eps):  # noqa: ANN001, ANN201
        c = p.dtype.type
        d, dc, lr, eps = c(decay_rate), c(1.0 - decay_rate), c(lr), c(eps)

        def body(p_, g_, h_, s):  # noqa: ANN001, ANN202
            h_ *= d  # h = decay * h + (1 - decay) * g * g
            np.multiply(g_, g_, out=s)
            s *= dc
            h_ += s
            _rms_step(p_, g_, h_, s, lr, eps)  # p -= lr * g / (sqrt(h) + eps)

        self._each_block(body, p, g, h)

    def adagrad(self, p, g, h, lr, eps):  # noqa: ANN001, ANN201
        c = p.dtype.type
        lr, eps = c(lr), c(eps)

        def body(p_, g_, h_, s):  # noqa: ANN001, ANN202
            np.multiply(g_, g_, out=s)  # h += g * g
            h_ += s
            _rms_step(p_, g_, h_, s, lr, eps)  # p -= lr * g / (sqrt(h) + eps)

        self._each_block(body, p, g, h)

    def momentum(self, p, g, v, lr, momentum):  # noqa: ANN001, ANN201
        c = p.dtype.type
        lr, mom = c(lr), c(momentum)

        def body(p_, g_, v_, s):  # noqa: ANN001, ANN202
            v_ *= mom  # v = momentum * v - lr * g
            np.multiply(g_, lr, out=s)
            v_ -= s
            p_ += v_  # p += v

        self._each_block(body, p, g, v)


def _in_parts(run, n: int, parts: int) -> None:  # noqa: ANN001
    """``run(a, b)`` over ``parts`` contiguous parts of ``[0, n)``: the first in this thread,
    the others on the kernel threads.  Every part has finished before anything is raised (none
    writes afterwards); at interpreter shutdown, when the pool takes no more work, the parts
    run here."""
    if parts <= 1:
        run(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = []
    pool = thread_pool(parts - 1)
    for i in range(1, parts):
        try:
            futures.append(pool.submit(run, bounds[i], bounds[i + 1]))
        except RuntimeError:  # the interpreter is shutting down its pools: do it here
            run(bounds[i], bounds[i + 1])
    try:
        run(bounds[0], bounds[1])
    finally:
        concurrent.futures.wait(futures)
    for f in futures:
        f.result()


def _rms_step(p, num, sq, s, lr, eps):  # noqa: ANN001, ANN202
    """``p -= lr * num / (sqrt(sq) + eps)`` in place, through the scratch block ``s``."""
    np.sqrt(sq, out=s)
    s += eps
    np.divide(num, s, out=s)
    s *= lr
    p -= s


class NumpyGenerator(HostGenerator):
    """SFC64 draws; the host *is* NumPy's device, so nothing is copied."""

    def _place(self, host: np.ndarray) -> np.ndarray:
        return host


@register
class NumpyBackend(Backend):
    """NumPy on the CPU: the reference backend."""

    name = "numpy"
    aliases = ("np",)
    default_device_name = "cpu"
    kernels_class = NumpyKernels
    generator_class = NumpyGenerator
    numpy_memory = True
    host_native = True

    @classmethod
    def build(cls, device: Any = None) -> NumpyBackend:
        if device not in (None, "cpu") and str(device) != "cpu":
            raise ValueError(f"the numpy backend only has the device 'cpu', not {device!r}")
        import array_api_compat.numpy as xp

        return cls(xp, "cpu", np)

    @staticmethod
    def owns(x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    @staticmethod
    def array_type(module: ModuleType) -> tuple[type, ...]:
        return (np.ndarray, np.generic)

    @staticmethod
    def array_to_numpy(x: Any) -> np.ndarray:
        return np.asarray(x)

    @staticmethod
    def value_range(x: Any) -> tuple[Any, Any]:
        # the ufuncs' own reductions: a third of the cost of the generic stack (labels are
        # checked at every network entry)
        return np.minimum.reduce(x, axis=None), np.maximum.reduce(x, axis=None)

    def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None) -> Any:
        # the host is the device: one NumPy call (this runs at every network entry)
        dt = None if dtype is None else self.dtype(dtype)
        if not isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
            x = to_host(x)  # an array of another library
        return np.array(x, dtype=dt, copy=True) if copy else np.asarray(x, dtype=dt)

    @classmethod
    def describe_devices(cls, module: ModuleType) -> list[str]:
        return ["cpu"]
