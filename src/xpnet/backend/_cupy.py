"""CuPy's room: NVIDIA GPUs, one fused ``ElementwiseKernel`` per optimizer update, and the
``im2col``/``col2im`` gathers of the convolution.

Everything xpnet knows about CuPy lives here, including the one probe that decides whether a GPU
is usable (``cupy.cuda.runtime.getDeviceCount()``).  CuPy is imported lazily.

No GPU was available to develop this project: this room is exercised by its tests on a machine
with one (``nox -s tests-cupy``); everywhere else the same portable code runs under
``array_api_strict`` and torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backend._base import Backend, BackendUnavailableError, Generator, Kernels, register

#: The body of the ``im2col`` kernel: one thread per element ``i`` of the column matrix in the
#: book's layout ``(N, OH, OW, C, KH, KW)``, gathering its pixel (0 on the padding).  Every
#: division and remainder is of non-negative integers, where C's and Python's agree: the tests
#: run these sources, translated line by line to Python, on machines without a GPU.
IM2COL_SOURCE = """
ptrdiff_t kx = i % kw;
ptrdiff_t ky = i / kw % kh;
ptrdiff_t c = i / (kw * kh) % ch;
ptrdiff_t ox = i / (kw * kh * ch) % out_w;
ptrdiff_t oy = i / (kw * kh * ch * out_w) % out_h;
ptrdiff_t n = i / (kw * kh * ch * out_w * out_h);
ptrdiff_t y = oy * sy + ky - ph;
ptrdiff_t x = ox * sx + kx - pw;
col = 0;
if (y >= 0 && y < h && x >= 0 && x < w) {
    col = img[((n * ch + c) * h + y) * w + x];
}
"""

#: The body of the ``col2im`` kernel: one thread per pixel ``i`` of the image ``(N, C, H, W)``,
#: summing the column entries of every window that covers it in the order ``ky``, ``kx`` (the
#: portable code's order: the same sums, no atomics).
COL2IM_SOURCE = """
ptrdiff_t x = i % w;
ptrdiff_t y = i / w % h;
ptrdiff_t c = i / (w * h) % ch;
ptrdiff_t n = i / (w * h * ch);
img = 0;
for (ptrdiff_t ky = 0; ky < kh; ky++) {
    ptrdiff_t ty = y + ph - ky;
    if (ty >= 0 && ty % sy == 0 && ty / sy < out_h) {
        for (ptrdiff_t kx = 0; kx < kw; kx++) {
            ptrdiff_t tx = x + pw - kx;
            if (tx >= 0 && tx % sx == 0 && tx / sx < out_w) {
                ptrdiff_t row = (n * out_h + ty / sy) * out_w + tx / sx;
                img += col[((row * ch + c) * kh + ky) * kw + kx];
            }
        }
    }
}
"""

_GEOMETRY = ("int32 h, int32 w, int32 ch, int32 out_h, int32 out_w, int32 kh, int32 kw, "
             "int32 sy, int32 sx, int32 ph, int32 pw")


class CupyKernels(Kernels):
    """One fused CUDA ``ElementwiseKernel`` per optimizer update, and ``im2col``/``col2im`` as
    one gather kernel each (DeZero's approach, after Chainer's; compiled on first use).  CuPy
    14 has no cuDNN binding, so the convolution stays the layer's GEMMs on these columns."""

    name = "cupy"

    def __init__(self) -> None:
        self._adam = None
        self._im2col = None
        self._col2im = None

    def im2col(self, x, filter_h, filter_w, stride, pad):  # noqa: ANN001, ANN201
        import cupy

        n, c, h, w = x.shape
        out_h = (h + 2 * pad - filter_h) // stride + 1
        out_w = (w + 2 * pad - filter_w) // stride + 1
        if self._im2col is None:
            self._im2col = cupy.ElementwiseKernel(
                "raw T img, " + _GEOMETRY, "T col", IM2COL_SOURCE, "xpnet_im2col")
        col = cupy.empty((n * out_h * out_w, c * filter_h * filter_w), dtype=x.dtype)
        self._im2col(cupy.ascontiguousarray(x), h, w, c, out_h, out_w, filter_h, filter_w,
                     stride, stride, pad, pad, col)
        return col

    def col2im(self, col, input_shape, filter_h, filter_w, stride, pad):  # noqa: ANN001, ANN201
        import cupy

        n, c, h, w = input_shape
        out_h = (h + 2 * pad - filter_h) // stride + 1
        out_w = (w + 2 * pad - filter_w) // stride + 1
        if self._col2im is None:
            self._col2im = cupy.ElementwiseKernel(
                "raw T col, " + _GEOMETRY, "T img", COL2IM_SOURCE, "xpnet_col2im")
        img = cupy.empty((n, c, h, w), dtype=col.dtype)
        self._col2im(cupy.ascontiguousarray(col), h, w, c, out_h, out_w, filter_h, filter_w,
                     stride, stride, pad, pad, img)
        return img

    @staticmethod
    def relu_(x):  # noqa: ANN001, ANN205
        import cupy

        return cupy.maximum(x, 0, out=x)

    def adam(self, p, g, m, v, lr_t, beta1, beta2, eps, decay=1.0):  # noqa: ANN001, ANN201
        import cupy

        if self._adam is None:
            # ``decay * p``: AdamW's decoupled weight decay (1 * p is exact for Adam)
            self._adam = cupy.ElementwiseKernel(
                "T g, T lr_t, T b1c, T b2c, T eps, T decay", "T p, T m, T v",
                "m += b1c * (g - m); v += b2c * (g * g - v); "
                "p = decay * p - lr_t * m / (sqrt(v) + eps);",
                "xpnet_adam",
            )
        c = p.dtype.type
        self._adam(g, c(lr_t), c(1.0 - beta1), c(1.0 - beta2), c(eps), c(decay), p, m, v)


class CupyGenerator(Generator):
    """CuPy's ``default_rng`` (XORWOW) on the backend's device."""

    def __init__(self, backend: Backend, seed: int | None = None):
        super().__init__(backend, seed)
        with backend.device:
            self._gen = backend.module.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        with self.backend.device:
            return self._gen.random(tuple(int(s) for s in shape),
                                    dtype=self.backend.dtype(dtype))

    def normal(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        with self.backend.device:
            return self._gen.standard_normal(tuple(int(s) for s in shape),
                                             dtype=self.backend.dtype(dtype))

    def integers(self, high: int, size: int) -> Any:
        with self.backend.device:
            return self._gen.integers(0, int(high), int(size))

    kind = "cupy.XORWOW"

    def get_state(self) -> dict[str, Any]:
        """CuPy's XORWOW state is per-thread cuRAND state on the device, with no public way to
        read or restore it.  So capturing *re-seeds* the stream: a seed is drawn from it, the
        generator continues from that seed, and the state is the seed -- a run and its resumed
        copy continue alike from here, though not as a run that was never captured would."""
        with self.backend.device:
            seed = int(self._gen.integers(0, 2**62, 1).get()[0])
            self._gen = self.backend.module.random.default_rng(seed)
        return {"kind": self.kind, "seed": seed}

    def set_state(self, state: dict[str, Any]) -> None:
        self._check_kind(state)
        seed = state.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"malformed {self.kind} generator state: seed {seed!r}")
        with self.backend.device:
            self._gen = self.backend.module.random.default_rng(seed)


@register
class CupyBackend(Backend):
    """CuPy arrays on one CUDA device (an int, ``"cuda:N"`` or a ``cupy.cuda.Device``)."""

    name = "cupy"
    aliases = ("cp",)
    install_hint = "pip install 'xpnet[cupy]'  (CuPy for CUDA 12: cupy-cuda12x)"
    kernels_class = CupyKernels
    generator_class = CupyGenerator

    @classmethod
    def build(cls, device: Any = None) -> CupyBackend:
        try:
            cupy = importlib.import_module("cupy")
        except ImportError as exc:
            raise BackendUnavailableError(
                "backend 'cupy' needs CuPy, which is not installed: " + cls.install_hint
            ) from exc
        count = cls.device_count(cupy)
        import array_api_compat.cupy as xp

        if device is None:
            dev = cupy.cuda.Device()
        elif isinstance(device, cupy.cuda.Device):
            dev = device
        else:
            s = str(device)
            if s.startswith("cuda"):
                s = s.partition(":")[2] or "0"
            try:
                dev = cupy.cuda.Device(int(s))
            except ValueError as exc:
                raise ValueError(
                    f"CuPy device must be an int or 'cuda:N', not {device!r}") from exc
        if dev.id >= count:
            raise ValueError(f"CuPy sees {count} device(s); device {dev.id} does not exist")
        return cls(xp, dev, cupy)

    @staticmethod
    def device_count(cupy: ModuleType) -> int:
        """The number of CUDA devices CuPy sees; :class:`BackendUnavailableError` if none."""
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError, missing driver libraries
            raise BackendUnavailableError(
                "CuPy is installed but sees no CUDA device "
                f"({type(exc).__name__}: {exc}); run on a machine with an NVIDIA GPU and "
                "driver, or choose backend='numpy' / 'torch'"
            ) from exc
        if count == 0:
            raise BackendUnavailableError(
                "CuPy is installed but sees no CUDA device; run on a machine with an NVIDIA GPU"
            )
        return int(count)

    @staticmethod
    def owns(x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    @staticmethod
    def array_type(module: ModuleType) -> type:
        return module.ndarray

    @staticmethod
    def array_to_numpy(x: Any) -> np.ndarray:
        return x.get()

    def _from_host(self, host: np.ndarray, dt: Any, copy: bool | None) -> Any:
        with self.device:
            return self.module.asarray(host, dtype=dt)

    def _to_this_device(self, x: Any) -> Any:
        with self.device:
            return self.module.asarray(x)  # a peer copy

    def synchronize(self) -> None:
        self.module.cuda.get_current_stream().synchronize()

    def memory_in_use(self) -> int | None:
        return int(self.module.get_default_memory_pool().used_bytes())

    @property
    def device_name(self) -> str:
        return f"cuda:{self.device.id}"

    @classmethod
    def describe_devices(cls, module: ModuleType) -> list[str]:
        n = cls.device_count(module)
        return [f"cuda:{i}" for i in range(n)]
