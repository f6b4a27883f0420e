"""Micro-benchmarks behind the README's claims about single operations.

    python bench/micro.py

Each line times one operation on a C2-sized batch (512 x 1024 float32) in this process: the
alternative xpnet avoids, then what it does instead. Medians of repeated timings; absolute times
drift on a shared machine, the ratios on one line are what to read.

A loop that frees every 2 MB array it allocates makes glibc hand the memory back to the kernel
each time, and each call then pays about a thousand page faults -- which a training step does
not (it keeps enough memory alive: a few page faults per C2 step).  On glibc, this script
therefore asks malloc to keep freed memory (``mallopt``), and prints the page faults per call of
the whole run so that the effect can be checked.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

_calls_and_faults = [0, 0]


def _ms(fn, number: int = 10, repeat: int = 7) -> float:
    """Median milliseconds per call of ``fn`` (after one warm-up call)."""
    fn()
    f0 = _faults()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    _calls_and_faults[0] += number * repeat
    _calls_and_faults[1] += _faults() - f0
    return 1e3 * statistics.median(times)


def _keep_freed_memory() -> bool:
    """glibc only: no trimming of the heap top, no mmap for large blocks (see the docstring)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_trim_threshold, 1 << 30)
                    and libc.mallopt(m_mmap_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _faults() -> int:
    try:
        import resource
    except ImportError:  # not on Unix
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    import xpnet
    from xpnet.backend._numpy import NumpyKernels

    rng = np.random.default_rng(0)
    a, b = (rng.random((512, 1024), dtype=np.float32) for _ in range(2))
    kept = _keep_freed_memory()
    ms = _ms(lambda: np.vecdot(a, b, axis=0))
    print(f"column dot product, numpy:  np.vecdot(a, b, axis=0) {ms:.2f} ms"
          f"  einsum {_ms(lambda: NumpyKernels.col_dot(a, b)):.3f} ms")
    try:
        import array_api_compat.torch as xpt
        import torch
    except ImportError:
        print("column dot product, torch:  skipped (torch is not installed)")
    else:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        print("column dot product, torch:  array_api_compat vecdot(axis=-2) "
              f"{_ms(lambda: xpt.vecdot(ta, tb, axis=-2)):.2f} ms  torch.linalg.vecdot(dim=0) "
              f"{_ms(lambda: torch.linalg.vecdot(ta, tb, dim=0)):.3f} ms")
    mask = a > 0.5
    k = NumpyKernels()
    ms = _ms(lambda: np.where(mask, b, np.float32(0)))
    print(f"ReLU backward, numpy:       np.where {ms:.3f} ms"
          f"  bitwise AND {_ms(lambda: k.relu_backward(b, mask)):.3f} ms")

    net = xpnet.MultiLayerNetExtend(784, [1024] * 3, 10, use_batchnorm=True, use_dropout=True,
                                    dropout_ration=0.2, seed=0)
    opt = xpnet.Adam()
    grads = net.gradient(rng.random((512, 784), dtype=np.float32), np.arange(512) % 10)
    old = xpnet.get_num_threads()
    line = f"Adam update of {net.params.flat.size:,} float32 parameters:"
    for n in sorted({1, old}):
        xpnet.set_num_threads(n)
        ms = _ms(lambda: opt.update(net.params, grads))
        line += f"  {n} thread{'s' if n > 1 else ''} {ms:.2f} ms"
    xpnet.set_num_threads(old)
    print(line)
    calls, faults = _calls_and_faults
    print(f"(page faults per timed call: {faults / calls:.1f}; "
          f"malloc asked to keep freed memory: {'yes' if kept else 'no'})")


if __name__ == "__main__":
    main()
