"""What can run here: backends and GPUs, probed in a separate process.

The benchmark's driver imports no array library but NumPy (so that no thread pool of torch or
JAX lives beside the workers), so it asks a short-lived process instead:
``python -m xpnet.benchmark.probe '{"backends": [...], "device": null, "gpu": true}'`` prints a
JSON answer.  :func:`probe` runs it and returns the answer.

The GPU part also names the device and looks up its peak FP32 rate (:data:`PEAK_FP32_TFLOPS`)
for the report's arithmetic floor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Peak dense FP32 rate (TFLOP/s, no tensor cores, boost clock) from the vendors' datasheets,
#: matched as a case-insensitive substring of the device name, first match wins.  The floor a
#: step cannot beat is ``FLOPs / peak``; ``--peak-tflops`` overrides the table.
PEAK_FP32_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 67.0),
    ("H100 PCIe", 51.2),
    ("H100", 67.0),  # SXM
    ("GH200", 67.0),
    ("A100", 19.5),
    ("A800", 19.5),
    ("L40S", 91.6),
    ("L40", 90.5),
    ("L4", 30.3),
    ("A10G", 31.2),
    ("A10", 31.2),
    ("A40", 37.4),
    ("A6000", 38.7),
    ("RTX 4090", 82.6),
    ("RTX 3090", 35.6),
    ("V100", 15.7),
    ("T4", 8.1),
)


def peak_tflops(device_name: str | None) -> tuple[float, str] | None:
    """``(peak FP32 TFLOP/s, the table entry that matched)`` for a device name, or None."""
    if not device_name:
        return None
    name = device_name.lower()
    for key, value in PEAK_FP32_TFLOPS:
        if key.lower() in name:
            return value, key
    return None


def _probe_backend(name: str, device: Any) -> dict[str, Any]:
    from xpnet.backend import get_backend

    dev = device if name in ("torch", "cupy") else None
    if name == "cupy" and isinstance(dev, str) and dev.isdigit():
        dev = int(dev)
    try:
        be = get_backend(name, dev)
    except ValueError as exc:
        return {"ok": False, "usage": True, "reason": str(exc)}
    except Exception as exc:  # BackendUnavailableError, ImportError
        return {"ok": False, "reason": str(exc)}
    return {"ok": True, "device": be.device_name}


def _probe_gpu() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import torch

        if torch.cuda.is_available():
            out["torch"] = {"ok": True, "device_name": torch.cuda.get_device_name(0),
                            "cuda": torch.version.cuda, "count": torch.cuda.device_count()}
        else:
            out["torch"] = {"ok": False, "reason": f"torch {torch.__version__} sees no CUDA "
                            "device" + ("" if torch.version.cuda else " (a CPU-only build)")}
    except ImportError:
        out["torch"] = {"ok": False, "reason": "torch is not installed"}
    try:
        import cupy

        try:
            n = cupy.cuda.runtime.getDeviceCount()
            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            out["cupy"] = {"ok": n > 0, "count": n,
                           "device_name": name.decode() if isinstance(name, bytes) else name}
            if n == 0:
                out["cupy"]["reason"] = "CuPy sees no CUDA device"
        except Exception as exc:
            out["cupy"] = {"ok": False, "reason": f"CuPy sees no CUDA device ({exc})"}
    except ImportError:
        out["cupy"] = {"ok": False, "reason": "CuPy is not installed"}
    if not (out["torch"]["ok"] or out["cupy"]["ok"]):
        out["jax"] = {"ok": False, "reason": "no CUDA device"}  # (importing JAX takes seconds)
    else:
        try:
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            out["jax"] = {"ok": bool(gpus), "reason": "" if gpus else "JAX sees no GPU"}
        except Exception as exc:
            out["jax"] = {"ok": False, "reason": f"JAX is not usable ({type(exc).__name__})"}
    name = next((v["device_name"] for v in out.values() if v.get("device_name")), None)
    out["device_name"] = name
    peak = peak_tflops(name)
    out["peak_fp32_tflops"] = None if peak is None else peak[0]
    out["peak_source"] = None if peak is None else f"table entry {peak[1]!r}"
    return out


def main(argv: list[str] | None = None) -> int:
    """Answer the JSON request in ``argv[0]`` on stdout."""
    args = sys.argv[1:] if argv is None else argv
    req = json.loads(args[0]) if args else {}
    answer: dict[str, Any] = {
        "backends": {n: _probe_backend(n, req.get("device")) for n in req.get("backends", [])},
    }
    if req.get("gpu"):
        answer["gpu"] = _probe_gpu()
    print(json.dumps(answer))
    return 0


def probe(backends: list[str] = (), device: Any = None, gpu: bool = False,
          timeout: float = 300.0) -> dict[str, Any]:
    """Run the probe in a fresh process and return its answer."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    req = json.dumps({"backends": list(backends), "device": device, "gpu": gpu})
    proc = subprocess.run([sys.executable, "-m", "xpnet.benchmark.probe", req],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the probe failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
