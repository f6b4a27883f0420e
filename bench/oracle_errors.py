"""The largest error of every xpnet layer with a backward against three independent oracles.

    PYTHONPATH=src python bench/oracle_errors.py [--layers Affine,Relu] [--backends numpy,torch]
        [--out bench/results] [--no-write]

For each layer (forward output, the input gradient ``dx`` and every parameter gradient) on each
backend (numpy, torch, array_api_strict), in float64 and float32, against:

- the NumPy float64 transcriptions of the published formulas in ``tests/oracles.py``;
- PyTorch autograd through ``torch.nn.functional`` in float64 (where torch is installed);
- a central-difference numerical gradient (float64, ``h = 1e-5``) of xpnet's own float64
  forward pass, of the scalar ``sum(out * dout)`` (the gradients only).

Error = ``max |xpnet - oracle| / max(1, |oracle|)`` over every entry of every quantity of the
row.  The float32 runs take the float64 inputs rounded to float32 and are compared with the
float64 oracle evaluated at those rounded inputs (the error is the layer's arithmetic, not the
rounding of its inputs).  Inputs are seeded and kept away from kinks (ReLU-type activations at 0,
equal maxima in max pooling and maxout) by more than the numerical step.  A table cell is the
largest error over the backends, with the backend (and, for gradients, the quantity) that gave
it.  Writes ``oracle_errors.md`` and ``oracle_errors.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import oracles  # noqa: E402  (tests/oracles.py: NumPy float64, imports no xpnet)
import xpnet  # noqa: E402
from xpnet import layers as L  # noqa: E402

BACKENDS = ("numpy", "torch", "array_api_strict")
#: the central-difference step (float64): truncation ~h**2, rounding ~1e-16 / h
H = 1e-5
#: inputs of ReLU-like layers and maxima of pooling/maxout are kept this far from a kink
MARGIN = 0.05
BN_EPS = 1e-6
NORM_EPS = 1e-5
COLUMNS = ("numpy_f64", "torch_f64", "numerical_f64", "numpy_f32")
HEADERS = ("vs NumPy oracle f64", "vs torch f64", "vs numerical f64", "vs NumPy oracle f32")


# ------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One layer set-up: how to draw its inputs, build it, and compute its oracles.

    ``wrt`` names the differentiated inputs: ``"x"`` is the layer's input (its gradient is what
    ``backward`` returns); any other name ``p`` is a parameter whose gradient the layer keeps in
    ``d<p>``.  ``build(arrays)`` gets the inputs on the backend and returns the layer;
    ``forward(layer, arrays)`` runs it.  ``numpy(a, dout, extra)`` returns ``(out, grads)``;
    ``torch(T, extra)`` returns the output tensor (or ``(out, scalar to differentiate)``).
    ``extra(layer)`` reads what an oracle needs from the layer after the forward pass (the
    dropout mask).
    """

    name: str
    layer: str
    inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    wrt: tuple[str, ...]
    build: Callable[[Any, dict[str, Any]], Any]
    numpy: Callable[[dict[str, np.ndarray], Any, dict[str, Any]], tuple[Any, dict[str, Any]]]
    torch: Callable[[dict[str, Any], dict[str, Any]], Any]
    forward: Callable[[Any, dict[str, Any]], Any] = field(
        default=lambda layer, a: layer.forward(a["x"]))
    extra: Callable[[Any], dict[str, Any]] = field(default=lambda layer: {})
    backward: bool = True
    #: inputs that are not floating point (labels): moved as they are
    ints: tuple[str, ...] = ()


def _away_from_zero(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x + MARGIN, x - MARGIN)


def _dense(rng: np.random.Generator, kink: bool = False) -> np.ndarray:
    x = rng.standard_normal((4, 6))
    return _away_from_zero(x) if kink else x


def _images(rng: np.random.Generator, c: int = 3) -> np.ndarray:
    return rng.standard_normal((2, c, 6, 6))


def _distinct_images(rng: np.random.Generator) -> np.ndarray:
    """(2, 3, 6, 6) values all at least 2/216 apart: every pooling window has one clear max."""
    n = 2 * 3 * 6 * 6
    return (rng.permutation(n).reshape(2, 3, 6, 6) * (4.0 / n) - 2.0)


def _affine_params(rng: np.random.Generator, d_in: int, d_out: int) -> dict[str, np.ndarray]:
    return {"W": 0.5 * rng.standard_normal((d_in, d_out)), "b": 0.1 * rng.standard_normal(d_out)}


def _norm_params(rng: np.random.Generator, d: int) -> dict[str, np.ndarray]:
    return {"gamma": 1.0 + 0.2 * rng.standard_normal(d), "beta": 0.2 * rng.standard_normal(d)}


def _maxout_inputs(rng: np.random.Generator, pieces: int = 2) -> dict[str, np.ndarray]:
    """Maxout inputs whose winning piece leads the next by more than MARGIN everywhere."""
    while True:
        a = {"x": _dense(rng), **_affine_params(rng, 6, 3 * pieces)}
        z = (a["x"] @ a["W"] + a["b"]).reshape(4, 3, pieces)
        top = np.sort(z, axis=2)
        if np.min(top[:, :, -1] - top[:, :, -2]) > MARGIN:
            return a


def _book_softmax_loss_torch(T: dict[str, Any], extra: dict[str, Any]) -> Any:
    import torch
    import torch.nn.functional as F

    x, t = T["x"], T["t"]
    y = torch.softmax(x, dim=1)
    # forward: the book's -mean(log(y[t] + 1e-7)); gradient: autograd of the exact
    # cross-entropy, whose gradient (softmax - onehot) / N is the book's backward
    book = -torch.mean(torch.log(y[torch.arange(x.shape[0]), t] + oracles.CROSS_ENTROPY_DELTA))
    return book, F.cross_entropy(x, t)


def _cases() -> list[Case]:
    import_f = _torch_functional
    cases = [
        Case("Affine", "Affine",
             lambda r: {"x": _dense(r), **_affine_params(r, 6, 5)}, ("x", "W", "b"),
             lambda be, a: L.Affine(a["W"], a["b"]),
             lambda a, d, e: _pack(oracles.affine_forward(a["x"], a["W"], a["b"]),
                                   oracles.affine_backward(a["x"], a["W"], d), ("x", "W", "b")),
             lambda T, e: import_f().linear(T["x"], T["W"].T, T["b"])),
        Case("Relu", "Relu", lambda r: {"x": _dense(r, kink=True)}, ("x",),
             lambda be, a: L.Relu(backend=be),
             lambda a, d, e: (oracles.relu_forward(a["x"]),
                              {"x": oracles.relu_backward(a["x"], d)}),
             lambda T, e: import_f().relu(T["x"])),
        Case("Sigmoid", "Sigmoid", lambda r: {"x": 2.0 * _dense(r)}, ("x",),
             lambda be, a: L.Sigmoid(backend=be),
             lambda a, d, e: _activation(oracles.sigmoid_forward, oracles.sigmoid_backward,
                                         a["x"], d),
             lambda T, e: _torch().sigmoid(T["x"])),
        Case("Tanh", "Tanh", lambda r: {"x": 2.0 * _dense(r)}, ("x",),
             lambda be, a: L.Tanh(backend=be),
             lambda a, d, e: _activation(oracles.tanh_forward, oracles.tanh_backward, a["x"], d),
             lambda T, e: _torch().tanh(T["x"])),
        Case("LeakyRelu (alpha 0.1)", "LeakyRelu", lambda r: {"x": _dense(r, kink=True)},
             ("x",), lambda be, a: L.LeakyRelu(0.1, backend=be),
             lambda a, d, e: (oracles.leaky_relu_forward(a["x"], 0.1),
                              {"x": oracles.leaky_relu_backward(a["x"], d, 0.1)}),
             lambda T, e: import_f().leaky_relu(T["x"], 0.1)),
        Case("Elu (alpha 1)", "Elu", lambda r: {"x": 2.0 * _dense(r, kink=True)}, ("x",),
             lambda be, a: L.Elu(1.0, backend=be),
             lambda a, d, e: (oracles.elu_forward(a["x"], 1.0),
                              {"x": oracles.elu_backward(a["x"], d, 1.0)}),
             lambda T, e: import_f().elu(T["x"], 1.0)),
        Case("PRelu", "PRelu",
             lambda r: {"x": _dense(r, kink=True), "alpha": 0.25 + 0.1 * r.standard_normal(6)},
             ("x", "alpha"), lambda be, a: L.PRelu(a["alpha"]),
             lambda a, d, e: _pack(oracles.prelu_forward(a["x"], a["alpha"]),
                                   oracles.prelu_backward(a["x"], a["alpha"], d),
                                   ("x", "alpha")),
             lambda T, e: import_f().prelu(T["x"], T["alpha"])),
        Case("Maxout (pieces 2)", "Maxout", _maxout_inputs, ("x", "W", "b"),
             lambda be, a: L.Maxout(a["W"], a["b"], pieces=2),
             lambda a, d, e: _pack(oracles.maxout_forward(a["x"], a["W"], a["b"], 2),
                                   oracles.maxout_backward(a["x"], a["W"], a["b"], d, 2),
                                   ("x", "W", "b")),
             lambda T, e: import_f().linear(T["x"], T["W"].T, T["b"]).view(4, 3, 2).amax(-1)),
        Case("SoftmaxWithLoss", "SoftmaxWithLoss",
             lambda r: {"x": 2.0 * r.standard_normal((4, 5)), "t": r.integers(0, 5, 4)},
             ("x",), lambda be, a: L.SoftmaxWithLoss(backend=be),
             _numpy_softmax_loss, _book_softmax_loss_torch,
             forward=lambda layer, a: layer.forward(a["x"], a["t"]), ints=("t",)),
        Case("BatchNormalization (train)", "BatchNormalization",
             lambda r: {"x": _dense(r), **_norm_params(r, 6)}, ("x", "gamma", "beta"),
             lambda be, a: L.BatchNormalization(a["gamma"], a["beta"], eps=BN_EPS),
             _numpy_batchnorm,
             lambda T, e: import_f().batch_norm(T["x"], None, None, T["gamma"], T["beta"],
                                                training=True, eps=BN_EPS)),
        Case("BatchNormalization (eval)", "BatchNormalization",
             lambda r: {"x": _dense(r), **_norm_params(r, 6),
                        "running_mean": 0.2 * r.standard_normal(6),
                        "running_var": 0.5 + r.random(6)},
             ("x", "gamma", "beta"),
             lambda be, a: L.BatchNormalization(a["gamma"], a["beta"], 0.9, a["running_mean"],
                                                a["running_var"], eps=BN_EPS),
             _numpy_batchnorm_eval,
             lambda T, e: import_f().batch_norm(T["x"], T["running_mean"], T["running_var"],
                                                T["gamma"], T["beta"], training=False,
                                                eps=BN_EPS),
             forward=lambda layer, a: layer.forward(a["x"], train_flg=False), backward=False),
        Case("LayerNormalization", "LayerNormalization",
             lambda r: {"x": _dense(r), **_norm_params(r, 6)}, ("x", "gamma", "beta"),
             lambda be, a: L.LayerNormalization(a["gamma"], a["beta"], eps=NORM_EPS),
             lambda a, d, e: _cached(oracles.layernorm_forward(a["x"], a["gamma"], a["beta"],
                                                               NORM_EPS),
                                     oracles.layernorm_backward, d, ("x", "gamma", "beta")),
             lambda T, e: import_f().layer_norm(T["x"], (6,), T["gamma"], T["beta"], NORM_EPS)),
        Case("GroupNormalization (C=4, 2 groups)", "GroupNormalization",
             lambda r: {"x": _images(r, 4), **_norm_params(r, 4)}, ("x", "gamma", "beta"),
             lambda be, a: L.GroupNormalization(a["gamma"], a["beta"], 2, eps=NORM_EPS),
             lambda a, d, e: _cached(oracles.groupnorm_forward(a["x"], a["gamma"], a["beta"],
                                                               2, NORM_EPS),
                                     oracles.groupnorm_backward, d, ("x", "gamma", "beta")),
             lambda T, e: import_f().group_norm(T["x"], 2, T["gamma"], T["beta"], NORM_EPS)),
        Case("InstanceNormalization", "InstanceNormalization",
             lambda r: {"x": _images(r), **_norm_params(r, 3)}, ("x", "gamma", "beta"),
             lambda be, a: L.InstanceNormalization(a["gamma"], a["beta"], eps=NORM_EPS),
             lambda a, d, e: _cached(oracles.groupnorm_forward(a["x"], a["gamma"], a["beta"],
                                                               3, NORM_EPS),
                                     oracles.groupnorm_backward, d, ("x", "gamma", "beta")),
             lambda T, e: import_f().instance_norm(T["x"], weight=T["gamma"], bias=T["beta"],
                                                   eps=NORM_EPS)),
        Case("SpatialBatchNormalization (train)", "SpatialBatchNormalization",
             lambda r: {"x": _images(r), **_norm_params(r, 3)}, ("x", "gamma", "beta"),
             lambda be, a: L.SpatialBatchNormalization(a["gamma"], a["beta"], eps=BN_EPS),
             _numpy_spatial_batchnorm,
             lambda T, e: import_f().batch_norm(T["x"], None, None, T["gamma"], T["beta"],
                                                training=True, eps=BN_EPS)),
        Case("Dropout (book, 0.5)", "Dropout", lambda r: {"x": _dense(r)}, ("x",),
             lambda be, a: L.Dropout(0.5, seed=0, backend=be),
             lambda a, d, e: (oracles.dropout_forward(a["x"], e["mask"], 0.5),
                              {"x": oracles.dropout_backward(e["mask"], d)}),
             lambda T, e: T["x"] * _torch().as_tensor(e["mask"]),
             extra=lambda layer: {"mask": _host(layer.mask)}),
        Case("Dropout (inverted, 0.5)", "Dropout", lambda r: {"x": _dense(r)}, ("x",),
             lambda be, a: L.Dropout(0.5, inverted=True, seed=0, backend=be),
             lambda a, d, e: (oracles.inverted_dropout_forward(a["x"], e["mask"], 0.5),
                              {"x": oracles.inverted_dropout_backward(e["mask"], d, 0.5)}),
             lambda T, e: T["x"] * _torch().as_tensor(e["mask"]) / 0.5,
             extra=lambda layer: {"mask": _host(layer.mask)}),
    ]
    for stride, pad in ((1, 1), (2, 0)):
        cases.append(Case(
            f"Convolution (3x3, stride {stride}, pad {pad})", "Convolution",
            lambda r: {"x": _images(r), "W": 0.3 * r.standard_normal((4, 3, 3, 3)),
                       "b": 0.1 * r.standard_normal(4)}, ("x", "W", "b"),
            lambda be, a, s=stride, p=pad: L.Convolution(a["W"], a["b"], stride=s, pad=p),
            lambda a, d, e, s=stride, p=pad: _pack(
                oracles.convolution_forward(a["x"], a["W"], a["b"], s, p),
                oracles.convolution_backward(a["x"], a["W"], d, s, p), ("x", "W", "b")),
            lambda T, e, s=stride, p=pad: import_f().conv2d(T["x"], T["W"], T["b"], s, p)))
    for k, stride, pad in ((2, 2, 0), (3, 2, 1)):
        cases.append(Case(
            f"Pooling ({k}x{k}, stride {stride}, pad {pad})", "Pooling",
            lambda r: {"x": _distinct_images(r)}, ("x",),
            lambda be, a, k=k, s=stride, p=pad: L.Pooling(k, k, s, p, backend=be),
            lambda a, d, e, k=k, s=stride, p=pad: (
                oracles.max_pool_forward(a["x"], k, k, s, p)[0],
                {"x": oracles.max_pool_backward(a["x"], k, k, s, p, d)}),
            lambda T, e, k=k, s=stride, p=pad: import_f().max_pool2d(T["x"], k, s, p)))
    return cases


def _torch() -> Any:
    import torch

    return torch


def _torch_functional() -> Any:
    import torch.nn.functional as F

    return F


def _host(x: Any) -> np.ndarray:
    return np.asarray(xpnet.backend.to_host(x), dtype=np.float64)


def _pack(out: Any, grads: tuple[Any, ...], names: tuple[str, ...]) -> tuple[Any, dict]:
    return out, dict(zip(names, grads, strict=True))


def _activation(fwd: Callable, bwd: Callable, x: Any, dout: Any) -> tuple[Any, dict]:
    out = fwd(x)
    return out, {"x": bwd(out, dout)}


def _cached(fwd: tuple[Any, Any], bwd: Callable, dout: Any, names: tuple[str, ...]):
    out, cache = fwd
    return out, dict(zip(names, bwd(cache, dout), strict=True))


def _numpy_softmax_loss(a, dout, extra):
    loss, y = oracles.softmax_with_loss_forward(a["x"], a["t"])
    return loss, {"x": oracles.softmax_with_loss_backward(y, a["t"], dout)}


def _numpy_batchnorm(a, dout, extra):
    out, _, _, cache = oracles.batchnorm_forward(a["x"], a["gamma"], a["beta"], eps=BN_EPS)
    return _pack(out, oracles.batchnorm_backward(cache, dout), ("x", "gamma", "beta"))


def _numpy_batchnorm_eval(a, dout, extra):
    out = oracles.batchnorm_forward(a["x"], a["gamma"], a["beta"], a["running_mean"],
                                    a["running_var"], train_flg=False, eps=BN_EPS)[0]
    return out, {}


def _numpy_spatial_batchnorm(a, dout, extra):
    out, _, _, cache = oracles.spatial_batchnorm_forward(a["x"], a["gamma"], a["beta"],
                                                         eps=BN_EPS)
    return _pack(out, oracles.spatial_batchnorm_backward(cache, dout), ("x", "gamma", "beta"))


# ------------------------------------------------------------------------------------------
# running xpnet and the oracles
# ------------------------------------------------------------------------------------------


def _on_backend(be: Any, case: Case, arrays: dict[str, np.ndarray], dtype: str) -> dict:
    return {k: be.asarray(v) if k in case.ints else be.asarray(v, dtype=dtype)
            for k, v in arrays.items()}


def run_xpnet(case: Case, be: Any, arrays: dict[str, np.ndarray], dtype: str, dout: Any,
              backward: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Forward (and backward with ``dout``) of a fresh layer; everything back as float64."""
    a = _on_backend(be, case, arrays, dtype)
    layer = case.build(be, a)
    out = case.forward(layer, a)
    extra = case.extra(layer)
    grads = {}
    if backward and case.backward:
        d = dout if np.ndim(dout) == 0 else be.asarray(dout, dtype=dtype)
        grads["x"] = _host(layer.backward(d))
        for name in case.wrt[1:]:
            grads[name] = _host(getattr(layer, "d" + name))
    return _host(out), grads, extra


def run_torch(case: Case, arrays: dict[str, np.ndarray], dout: Any, extra: dict):
    torch = _torch()
    T = {k: torch.tensor(v, dtype=torch.int64 if k in case.ints else torch.float64,
                         requires_grad=k in case.wrt and case.backward)
         for k, v in arrays.items()}
    res = case.torch(T, extra)
    out, scalar = res if isinstance(res, tuple) else (res, None)
    grads = {}
    if case.backward:
        if scalar is None:
            scalar = (out * torch.as_tensor(np.asarray(dout, dtype=np.float64))).sum()
        got = torch.autograd.grad(scalar, [T[k] for k in case.wrt])
        grads = {k: g.detach().numpy() for k, g in zip(case.wrt, got, strict=True)}
    return out.detach().numpy(), grads


def run_numerical(case: Case, be: Any, arrays: dict[str, np.ndarray], dout: Any) -> dict:
    """Central differences of ``sum(xpnet_forward * dout)`` in float64, one entry at a time."""
    grads = {}
    for name in case.wrt:
        base = arrays[name]
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            vals = []
            for step in (H, -H):
                moved = dict(arrays)
                moved[name] = base.copy()
                moved[name][idx] += step
                out = run_xpnet(case, be, moved, "float64", dout, backward=False)[0]
                vals.append(float(np.sum(out * dout)))
            g[idx] = (vals[0] - vals[1]) / (2 * H)
        grads[name] = g
    return grads


def rel_error(got: Any, ref: Any) -> float:
    """``max |got - ref| / max(1, |ref|)`` over every entry."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"shape {got.shape} against the oracle's {ref.shape}")
    return float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))


def measure_case(case: Case, be: Any, seed: int = 0, numerical: bool = True) -> dict:
    """Errors of one case on one backend: ``{oracle column: {quantity: error}}``."""
    rng = np.random.default_rng(seed)
    arrays = case.inputs(rng)
    shape_out = run_xpnet(case, be, arrays, "float64", 1.0, backward=False)[0].shape
    dout = 1.0 if shape_out == () else rng.standard_normal(shape_out)
    res: dict[str, dict[str, float]] = {}
    have_torch = _torch_available()
    dtypes = ["float64", "float32"] if be.has_float64 else ["float32"]
    for dtype in dtypes:
        # the inputs as the layer sees them (rounded to float32 in the float32 run)
        exact = {k: v if k in case.ints else v.astype(dtype).astype(np.float64)
                 for k, v in arrays.items()}
        d = dout if np.ndim(dout) == 0 else np.asarray(dout, dtype=dtype).astype(np.float64)
        out, grads, extra = run_xpnet(case, be, exact, dtype, d)
        got = {"out": out, **{"d" + k: v for k, v in grads.items()}}
        ref_out, ref_grads = case.numpy(exact, d, extra)
        ref = {"out": ref_out, **{"d" + k: v for k, v in ref_grads.items()}}
        suffix = "f64" if dtype == "float64" else "f32"
        res["numpy_" + suffix] = {q: rel_error(got[q], ref[q]) for q in got}
        if dtype == "float64" and have_torch:
            t_out, t_grads = run_torch(case, exact, d, extra)
            ref = {"out": t_out, **{"d" + k: v for k, v in t_grads.items()}}
            res["torch_f64"] = {q: rel_error(got[q], ref[q]) for q in got}
        if dtype == "float64" and numerical and case.backward:
            num = run_numerical(case, be, exact, d)
            res["numerical_f64"] = {"d" + k: rel_error(grads[k], v) for k, v in num.items()}
    return res


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _one_torch_thread():
    """torch on one intra-op thread meanwhile: thousands of tiny calls, and on a busy 2-core
    machine two spinning threads made the torch rows 20-50x slower (40 s instead of 1)."""
    if "torch" not in sys.modules:
        yield
        return
    torch = sys.modules["torch"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(cases: list[Case], backends: list[Any], numerical: bool = True) -> list[dict]:
    """One record per case: its quantities and, per backend, :func:`measure_case`'s errors."""
    records = []
    with _one_torch_thread():
        for case in cases:
            per_backend = {_label(be): measure_case(case, be, numerical=numerical)
                           for be in backends}
            grads = ["d" + k for k in case.wrt] if case.backward else []
            records.append({"case": case.name, "layer": case.layer,
                            "quantities": ["out", *grads], "errors": per_backend})
    return records


def _label(be: Any) -> str:
    return be.name if be.is_default_device else f"{be.name}:{be.device_name}"


def worst(record: dict, column: str, quantities: list[str]) -> tuple[float, str, str] | None:
    """The largest error of ``quantities`` in ``column`` over the backends:
    ``(error, backend, quantity)``, or None where nothing was measured."""
    best = None
    for be, cols in record["errors"].items():
        for q, err in cols.get(column, {}).items():
            if q in quantities and (best is None or err > best[0]):
                best = (err, be, q)
    return best


def rows(records: list[dict]) -> list[tuple[str, str, list[tuple[float, str, str] | None]]]:
    """Two table rows per case: the forward output, then every gradient together."""
    out = []
    for rec in records:
        groups = [["out"]]
        if len(rec["quantities"]) > 1:
            groups.append(rec["quantities"][1:])
        for qs in groups:
            out.append((rec["case"], ", ".join(qs), [worst(rec, c, qs) for c in COLUMNS]))
    return out


def _cell(w: tuple[float, str, str] | None, several: bool) -> str:
    if w is None:
        return "--"
    err, be, q = w
    return f"{err:.1e} ({be}, {q})" if several else f"{err:.1e} ({be})"


def markdown(records: list[dict], command: str, seconds: float, backends: list[str]) -> str:
    lines = [
        "# xpnet layers against independent oracles",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, "
        f"commit {_commit()}, {platform.node()}, run time {seconds:.1f} s  ",
        f"Backends: {', '.join(backends)}",
        "",
        "Error = max over every entry of `|xpnet - oracle| / max(1, |oracle|)`; each cell is "
        "the largest over the backends, with the backend (and the gradient) that gave it.  "
        "NumPy oracle: `tests/oracles.py` (float64 transcriptions of the published formulas); "
        "torch: autograd through `torch.nn.functional` in float64; numerical: central "
        f"differences (h = {H:g}) of xpnet's own float64 forward, gradients only.  The f32 "
        "column is the float32 layer against the float64 NumPy oracle at the same "
        "(float32-rounded) inputs.  `--`: not applicable (no gradient of a forward row; "
        "batch norm in eval mode has no backward).",
        "",
        "SoftmaxWithLoss's numerical column is not a defect: the forward is the book's "
        "`-mean(log(y[t] + 1e-7))` while the backward is `(y - onehot) / N`, the gradient of "
        "the exact cross-entropy (as in the book and PyTorch).  The two differ by "
        "`y[t] / (y[t] + 1e-7) - 1` times the exact gradient, 1.2e-6 here where one sample's "
        "`y[t]` is 0.02; the NumPy and torch columns compare with the exact gradient.",
        "",
        "| layer | quantity set | " + " | ".join(HEADERS) + " |",
        "|---|---|" + "---|" * len(HEADERS),
    ]
    for name, qs, cells in rows(records):
        several = "," in qs
        lines.append(f"| {name} | {qs} | " + " | ".join(_cell(w, several) for w in cells) + " |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def select(cases: list[Case], layers: str | None) -> list[Case]:
    if not layers:
        return cases
    want = [s.strip() for s in layers.split(",") if s.strip()]
    known = {c.layer for c in cases}
    unknown = sorted(set(want) - known)
    if unknown:
        raise ValueError(f"--layers: unknown layers {unknown}; known: {sorted(known)}")
    return [c for c in cases if c.layer in want]


def main(argv: list[str] | None = None, backends: list[Any] | None = None) -> list[dict]:
    """Measure, print the table, write the results (unless ``--no-write``); return the records.

    ``backends`` (Backend objects) replaces ``--backends`` when given (the tests pass theirs).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", help="comma-separated layer class names (default: all)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated backend names (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="folder for oracle_errors.md/.json (default: bench/results)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-numerical", action="store_true",
                        help="skip the numerical gradients (the slow column)")
    args = parser.parse_args(argv)
    try:
        cases = select(_cases(), args.layers)
    except ValueError as exc:
        parser.error(str(exc))
    if backends is None:
        backends = [xpnet.get_backend(name) for name in args.backends.split(",")]
    t0 = time.perf_counter()
    records = measure(cases, backends, numerical=not args.no_numerical)
    seconds = time.perf_counter() - t0
    command = "PYTHONPATH=src python bench/oracle_errors.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    labels = [_label(be) for be in backends]
    text = markdown(records, command, seconds, labels)
    print(text, end="")
    if not args.no_write:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "oracle_errors.md"), "w", encoding="utf-8") as fh:
            fh.write(text)
        meta = {"command": command, "date": datetime.datetime.now().astimezone().isoformat(),
                "commit": _commit(), "seconds": seconds, "backends": labels,
                "error": "max |xpnet - oracle| / max(1, |oracle|)", "h": H,
                "versions": _versions()}
        with open(os.path.join(args.out, "oracle_errors.json"), "w", encoding="utf-8") as fh:
            json.dump({**meta, "records": records}, fh, indent=1)
    return records


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "array_api_strict", "array_api_compat"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


if __name__ == "__main__":
    main()
