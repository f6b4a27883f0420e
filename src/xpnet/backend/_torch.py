"""PyTorch's room: tensors on the CPU, a CUDA GPU or Apple's MPS, and torch's fused kernels.

Everything xpnet knows about torch lives here.  torch is imported lazily (inside the methods), so
``import xpnet`` works without it; the raw ``torch`` module is not standard-compliant, so the
namespace is ``array_api_compat.torch``.
"""

from __future__ import annotations

import base64
import binascii
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backend._base import (
    Backend,
    BackendUnavailableError,
    Generator,
    Kernels,
    import_library,
    register,
)


class TorchKernels(Kernels):
    """torch's fused in-place tensor methods (``addcmul_``, ``addcdiv_``, ``out=``) and its own
    convolution and max pooling (aten's ``convolution``/``convolution_backward`` and
    ``max_pool2d_with_indices``/its backward: what ``torch.nn.Conv2d``/``MaxPool2d`` run)."""

    name = "torch"

    def __init__(self) -> None:
        #: (N, dtype, device, value) -> a (N, 1) tensor of ``value``, for the loss's backward
        self._fills: dict[tuple, Any] = {}

    @staticmethod
    def matmul_into(a, b, out):  # noqa: ANN001, ANN205
        import torch

        return torch.matmul(a, b, out=out)

    # -- whole layers: one aten call where the portable code makes several (each a kernel
    # launch on a GPU; ``python bench/opcount.py`` counts them)

    @staticmethod
    def affine(x, W, b):  # noqa: ANN001, ANN205
        import torch

        return torch.addmm(b, x, W)

    @staticmethod
    def relu(x):  # noqa: ANN001, ANN205
        import torch

        return torch.relu(x)

    @staticmethod
    def relu_backward(dout, saved):  # noqa: ANN001, ANN205
        import torch

        # 0 where the output is <= 0, i.e. where x <= 0 (the book's convention at 0)
        return torch.ops.aten.threshold_backward(dout, saved, 0)

    @staticmethod
    def batchnorm_train(x, gamma, beta, eps, running_mean, running_var, momentum):  # noqa: ANN001, ANN205
        import torch

        var, mean = torch.var_mean(x, 0, correction=0)  # exact biased variance, for running
        # aten's fused normalization (no running statistics: torch's own update uses the
        # unbiased variance, the book's the biased one)
        out, _, inv_std = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, eps)
        w = 1.0 - momentum
        return (out, mean, inv_std, torch.lerp(running_mean, mean, w),
                torch.lerp(running_var, var, w))

    @staticmethod
    def batchnorm_backward(dout, x, mean, inv_std, gamma, eps, dgamma_out, dbeta_out):  # noqa: ANN001, ANN205
        import torch

        bw = torch.ops.aten.native_batch_norm_backward
        mask = [True, True, True]
        if dgamma_out is None and dbeta_out is None:
            return bw(dout, x, gamma, None, None, mean, inv_std, True, eps, mask)
        if dgamma_out is None or dbeta_out is None:  # one given: write that one all the same
            dgamma_out = torch.empty_like(gamma) if dgamma_out is None else dgamma_out
            dbeta_out = torch.empty_like(gamma) if dbeta_out is None else dbeta_out
        dx = torch.empty_like(x)
        bw.out(dout, x, gamma, None, None, mean, inv_std, True, eps, mask,
               out0=dx, out1=dgamma_out, out2=dbeta_out)
        return dx, dgamma_out, dbeta_out

    @staticmethod
    def softmax_cross_entropy(x, t):  # noqa: ANN001, ANN205
        import torch

        if t.ndim != 1 or t.dtype != torch.int64 or x.ndim != 2:
            return None
        y = torch.softmax(x, 1)
        picked = torch.gather(y, 1, t.unsqueeze(1))
        loss = torch.log(picked.add_(1e-7)).sum() * (-1.0 / x.shape[0])
        return loss, y

    def softmax_cross_entropy_backward(self, y, t, dout):  # noqa: ANN001, ANN201
        import torch

        n = y.shape[0]
        if not isinstance(dout, (int, float)):
            return (y - torch.nn.functional.one_hot(t, y.shape[1]).to(y.dtype)) * (dout / n)
        key = (n, y.dtype, y.device, float(dout))
        fill = self._fills.get(key)
        if fill is None:
            if len(self._fills) > 16:
                self._fills.clear()
            fill = self._fills[key] = torch.full((n, 1), -dout / n, dtype=y.dtype,
                                                 device=y.device)
        return torch.mul(y, dout / n).scatter_add_(1, t.unsqueeze(1), fill)

    @staticmethod
    def relu_(x):  # noqa: ANN001, ANN205
        return x.relu_()

    @staticmethod
    def col_dot(a, b, out=None):  # noqa: ANN001, ANN205
        import torch

        # array_api_compat's vecdot(axis=-2) on torch took 10-12 ms at 512x1024, this 0.2 ms
        # (``python bench/micro.py``)
        return torch.linalg.vecdot(a, b, dim=0, out=out)

    @staticmethod
    def col_sum(x, out=None):  # noqa: ANN001, ANN205
        import torch

        return torch.sum(x, 0, out=out)

    @staticmethod
    def conv2d(x, W, b, stride, pad):  # noqa: ANN001, ANN205
        import torch

        # aten's convolution (oneDNN on the CPU, cuDNN on CUDA): no column matrix
        return torch.nn.functional.conv2d(x, W, b, stride=stride, padding=pad)

    @staticmethod
    def conv2d_backward(dout, x, W, stride, pad, need_dx):  # noqa: ANN001, ANN205
        import torch

        # the backward autograd itself calls for conv2d: dx, dW and db in one call
        return torch.ops.aten.convolution_backward(
            dout, x, W, [W.shape[0]], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1,
            [bool(need_dx), True, True])

    #: Use torch's max pooling on the CPU too.  Off: at C3's size (100x30x24x24, one thread)
    #: aten's NCHW ``max_pool2d_with_indices`` and its backward took 7.1 ms of CPU time against
    #: 3.9 ms for the portable strided-slice code on torch tensors (``python bench/c3_step.py
    #: --profile torch-eager`` shows the same kernel at 37% of torch.nn's own step); on CUDA the
    #: one fused kernel replaces the portable code's dozen launches.  The tests turn it on.
    pool_on_cpu = False

    def max_pool2d(self, x, pool_h, pool_w, stride, pad):  # noqa: ANN001, ANN201
        import torch

        if 2 * pad > min(pool_h, pool_w):
            return None  # torch allows pad <= pool / 2 only: the portable code does the rest
        if x.device.type == "cpu" and not self.pool_on_cpu:
            return None
        # state: the input (for its shape) and torch's indices, the flat position of each
        # window's maximum in its input plane (the first maximum on ties on the CPU)
        out, idx = torch.nn.functional.max_pool2d(x, (pool_h, pool_w), stride, pad,
                                                  return_indices=True)
        return out, (x, idx)

    @staticmethod
    def max_pool2d_backward(dout, state, input_shape, pool_h, pool_w,  # noqa: ANN001, ANN205
                            stride, pad):  # noqa: ANN001
        import torch

        x, idx = state
        return torch.ops.aten.max_pool2d_with_indices_backward(
            dout, x, [pool_h, pool_w], [stride, stride], [pad, pad], [1, 1], False, idx)

    @staticmethod
    def adam(p, g, m, v, lr_t, beta1, beta2, eps, decay=1.0):  # noqa: ANN001, ANN205
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        if decay != 1.0:  # AdamW: p *= 1 - lr * weight_decay
            p.mul_(decay)
        p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)


class TorchGenerator(Generator):
    """A ``torch.Generator`` on the backend's device (Philox on CUDA, MT19937 on the CPU)."""

    def __init__(self, backend: Backend, seed: int | None = None):
        super().__init__(backend, seed)
        torch = backend.module
        self._gen = torch.Generator(device=backend.device)
        if seed is None:
            self._gen.seed()
        else:
            self._gen.manual_seed(int(seed))

    @property
    def kind(self) -> str:  # type: ignore[override]
        # MT19937 on the CPU, Philox on CUDA: states of one device type only
        return f"torch.{self.backend.device.type}"

    def get_state(self) -> dict[str, Any]:
        raw = self._gen.get_state().cpu().numpy().tobytes()
        return {"kind": self.kind, "state": base64.b64encode(raw).decode("ascii")}

    def set_state(self, state: dict[str, Any]) -> None:
        self._check_kind(state)
        try:
            raw = base64.b64decode(state["state"], validate=True)
            size = self._gen.get_state().numel()
            if len(raw) != size:
                raise ValueError(f"expected {size} bytes, got {len(raw)}")
            self._gen.set_state(self.backend.module.frombuffer(bytearray(raw),
                                                               dtype=self.backend.module.uint8))
        except (KeyError, TypeError, ValueError, RuntimeError, binascii.Error) as exc:
            raise ValueError(f"malformed {self.kind} generator state: {exc}") from exc

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        be = self.backend
        return be.module.rand(tuple(int(s) for s in shape), generator=self._gen,
                              device=be.device, dtype=be.dtype(dtype))

    def normal(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        be = self.backend
        return be.module.randn(tuple(int(s) for s in shape), generator=self._gen,
                               device=be.device, dtype=be.dtype(dtype))

    def integers(self, high: int, size: int) -> Any:
        be = self.backend
        return be.module.randint(0, int(high), (int(size),), generator=self._gen,
                                 device=be.device)

    def bernoulli_mask(self, shape: tuple[int, ...], keep: float, dtype: Any = "float32") -> Any:
        """1.0 with probability ``keep``, else 0.0: one ``bernoulli_`` call (the portable
        ``uniform > 1 - keep`` then a cast is three)."""
        be = self.backend
        mask = be.module.empty(tuple(int(s) for s in shape), dtype=be.dtype(dtype),
                               device=be.device)
        return mask.bernoulli_(keep, generator=self._gen)


@register
class TorchBackend(Backend):
    """PyTorch tensors on any device torch knows (``"cpu"``, ``"cuda:0"``, ``"mps"``)."""

    name = "torch"
    aliases = ("pytorch",)
    install_hint = ("pip install 'xpnet[torch]'  (on CPU-only machines: "
                    "pip install torch==2.13.0)")
    default_device_name = "cpu"
    kernels_class = TorchKernels
    generator_class = TorchGenerator

    @classmethod
    def build(cls, device: Any = None) -> TorchBackend:
        torch = import_library("torch", cls.install_hint)
        import array_api_compat.torch as xp

        try:
            dev = torch.device("cpu" if device is None else device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"torch does not know the device {device!r}: {exc}") from exc
        if dev.type == "meta":
            raise ValueError("torch's 'meta' device holds shapes, not data: xpnet cannot "
                             "train or predict on it; use device='cpu' or 'cuda'")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"torch device {str(dev)!r} asked for, but torch sees no CUDA device "
                    "(this torch build or machine has no GPU); use device='cpu'"
                )
            count = torch.cuda.device_count()
            if dev.index is not None and dev.index >= count:
                raise ValueError(f"torch sees {count} CUDA device(s) (cuda:0 to "
                                 f"cuda:{count - 1}); device {str(dev)!r} does not exist")
        elif dev.type != "cpu":  # mps, xpu, ...: usable only if torch can allocate there
            try:
                torch.empty(0, device=dev)
            except (RuntimeError, AssertionError) as exc:
                raise BackendUnavailableError(
                    f"torch device {str(dev)!r} asked for, but this torch cannot use it "
                    f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                    "use device='cpu'") from exc
        return cls(xp, dev, torch)

    @staticmethod
    def owns(x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    @staticmethod
    def array_type(module: ModuleType) -> type:
        return module.Tensor

    @staticmethod
    def array_to_numpy(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    @staticmethod
    def why_unusable(x: Any) -> str | None:
        # A tensor that requires grad would grow an autograd graph through every xpnet
        # operation (xpnet computes its own gradients); a meta tensor has no values to copy.
        if x.is_meta:
            return ("is a torch tensor on the 'meta' device: it has a shape but no values; "
                    "create it on a real device ('cpu', 'cuda')")
        if x.requires_grad:
            return ("is a torch tensor that requires grad: pass x.detach() (xpnet computes "
                    "its own gradients; autograd would record a graph through every step)")
        return None

    def _from_host(self, host: np.ndarray, dt: Any, copy: bool | None) -> Any:
        if not host.flags.c_contiguous or not host.flags.writeable:
            host = host.copy()  # (np.ascontiguousarray would turn 0-d into 1-d)
        t = self.module.from_numpy(host)
        return t.to(device=self.device, dtype=dt, copy=bool(copy))

    def _to_this_device(self, x: Any) -> Any:
        return x.to(self.device)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.module.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            self.module.mps.synchronize()

    def memory_in_use(self) -> int | None:
        if self.device.type == "cuda":
            return int(self.module.cuda.memory_allocated(self.device))
        return None

    @classmethod
    def describe_devices(cls, module: ModuleType) -> list[str]:
        torch = module
        devs = ["cpu"]
        if torch.cuda.is_available():
            devs += [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                     for i in range(torch.cuda.device_count())]
        else:
            devs.append("no CUDA device")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devs.append("mps")
        return devs
