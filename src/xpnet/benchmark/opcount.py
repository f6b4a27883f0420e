"""Operations per training step: what each backend is asked to do, counted.

On a GPU every operation is a kernel launch (5-25 us each), so for small networks the number of
operations, not the arithmetic, predicts the step time.  Three counters:

**torch** (:func:`torch_step_counts`): ``torch.profiler`` around one step (after three warm-up
steps).  Two numbers:

* ``aten_leaf_ops`` -- leaf ``aten::`` events (no ``aten::`` child) minus views, allocations and
  metadata (:data:`TORCH_NOT_OPS`): the count ``DESIGN.md`` describes (xpnet's C1 step: 249 when
  the harness was written).  It misses operations that call a view internally (``aten::mm``
  calls ``resolve_conj``; batch norm allocates), so it undercounts;
* ``aten_kernels`` -- the same tree with views, allocations and metadata pruned first: an event
  counts when none of its remaining descendants does (so ``mm`` counts, and a composite such as
  ``linear`` is counted through its parts), or when it is one of the operations that reduce or
  multiply after preparing their output with a counted child (:data:`TORCH_SELF_WORK`:
  ``sum`` fills, then reduces); an ``aten::to`` or ``contiguous`` that did nothing is dropped.
  Closer to the kernels a GPU would launch, still an estimate.

``item_calls`` counts ``aten::_local_scalar_dense`` (``.item()``), in neither number: a
device-to-host copy and a stall when the tensor lives on a GPU (``torch.optim.Adam`` reads its step
counters this way; they stay on the CPU unless ``capturable=True``).

**array_api_strict** (the portable path, exact): every namespace function and every ``Array``
operator (``__add__``, ``__matmul__``, ``__setitem__``, ...) called from outside the library
during one step is counted, by wrapping them for the duration of the count.

**numpy** (the NumPy backend with its fused kernels): arrays are NumPy arrays, whose operators
cannot be wrapped, so the count builds the network on a counting variant of the backend whose
arrays are a counting ``ndarray`` subclass: every ufunc call (operators and in-place operators
included), array function, ``astype``/``copy``/``fill`` and item assignment reached from outside
NumPy is counted.  Buffers allocated with ``np.empty``/``np.zeros`` during the count are of that
subclass too, so the kernels' scratch buffers are seen; this needs a fresh process (the kernels
cache their scratch), which :func:`count_in_subprocess` provides.

For the two namespace counters, calls are sorted into ``ops`` (compute: the number that is
pinned), ``views`` (reshape, transpose, basic slicing), ``allocs`` (``empty``), ``draws`` (one per
random-generator call) and ``meta`` (dtype queries).  A call counts once, where it enters the
library: what a namespace function does inside is not counted again.

``python bench/opcount.py`` prints the counts; ``--update`` rewrites the pins that
``tests/test_opcount.py`` holds the C1 step to (see :data:`PINS_PATH`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.benchmark import impls as I

#: where the pinned counts live in a source checkout (``bench/opcount_pins.json``)
PINS_PATH = Path(__file__).resolve().parents[3] / "bench" / "opcount_pins.json"

# ------------------------------------------------------------------------------------------------
# torch: the profiler
# ------------------------------------------------------------------------------------------------

#: aten events that are views, allocations or metadata, not operations on data
TORCH_NOT_OPS = frozenset({
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::as_strided",
    "aten::view", "aten::_unsafe_view", "aten::_reshape_alias", "aten::alias", "aten::detach",
    "aten::resolve_conj", "aten::resolve_neg", "aten::lift_fresh", "aten::result_type",
    "aten::_local_scalar_dense",
})
#: composite views: pruned with their children in the kernel count
TORCH_VIEWS = frozenset({
    "aten::t", "aten::transpose", "aten::expand", "aten::expand_as", "aten::permute",
    "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::reshape",
    "aten::view_as", "aten::numpy_T", "aten::mT", "aten::matrix_H", "aten::flatten",
    "aten::unflatten", "aten::split", "aten::chunk", "aten::narrow", "aten::unbind",
    "aten::broadcast_to", "aten::movedim", "aten::swapaxes", "aten::detach_",
})
#: no-ops unless they have a counted descendant (a copy)
TORCH_MAYBE_NOOP = frozenset({"aten::to", "aten::contiguous", "aten::type_as"})
#: operations that do their own work after preparing their output with a counted child
#: (``sum`` fills its output, then reduces into it): counted in the kernel count even so
TORCH_SELF_WORK = frozenset({
    "aten::sum", "aten::mean", "aten::amax", "aten::amin", "aten::max", "aten::min",
    "aten::prod", "aten::norm", "aten::linalg_vector_norm", "aten::var", "aten::std",
    "aten::var_mean", "aten::argmax", "aten::argmin", "aten::logsumexp", "aten::all",
    "aten::any", "aten::count_nonzero", "aten::cumsum", "aten::mm", "aten::addmm", "aten::bmm",
    "aten::baddbmm", "aten::addmv", "aten::mv", "aten::dot", "aten::cat",
    "aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::_softmax",
    "aten::_log_softmax", "aten::_softmax_backward_data", "aten::_log_softmax_backward_data",
    "aten::nll_loss_forward", "aten::nll_loss_backward", "aten::convolution_backward",
    "aten::mkldnn_convolution", "aten::max_pool2d_with_indices",
    "aten::max_pool2d_with_indices_backward",
})


def _torch_counts(events: list[Any]) -> dict[str, Any]:
    aten = [e for e in events if e.name.startswith("aten::")]

    def aten_children(e: Any) -> list[Any]:
        return [c for c in e.cpu_children if c.name.startswith("aten::")]

    leaves = Counter(e.name for e in aten if not aten_children(e))
    leaf_ops = {k: v for k, v in leaves.items() if k not in TORCH_NOT_OPS}

    skip = TORCH_NOT_OPS | TORCH_VIEWS | TORCH_MAYBE_NOOP
    memo: dict[int, bool] = {}

    def counted_below(e: Any) -> bool:
        """Whether an event below ``e`` counts (then ``e`` is a composite and does not)."""
        key = id(e)
        if key not in memo:
            memo[key] = any(c.name not in skip or counted_below(c) for c in aten_children(e))
        return memo[key]

    kernels = Counter(e.name for e in aten if e.name not in skip
                      and (e.name in TORCH_SELF_WORK or not counted_below(e)))
    return {
        "counter": "torch.profiler",
        "aten_leaf_ops": sum(leaf_ops.values()),
        "aten_kernels": sum(kernels.values()),
        "item_calls": sum(1 for e in aten if e.name == "aten::_local_scalar_dense"),
        "leaf_ops_by_name": dict(sorted(leaf_ops.items(), key=lambda kv: -kv[1])),
        "kernels_by_name": dict(sorted(kernels.items(), key=lambda kv: -kv[1])),
    }


def torch_step_counts(step: Callable[[], Any], sync: Callable[[], None] = lambda: None,
                      warm: int = 3) -> dict[str, Any]:
    """Count the aten operations of one call of ``step`` (after ``warm`` calls)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warm):
        step()
    sync()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        sync()
    return _torch_counts(list(prof.events()))


# ------------------------------------------------------------------------------------------------
# The namespace counters
# ------------------------------------------------------------------------------------------------

VIEW_NAMES = frozenset({
    "reshape", "permute_dims", "matrix_transpose", "expand_dims", "squeeze", "broadcast_to",
    "broadcast_arrays", "T", "mT", "getitem", "transpose", "swapaxes", "moveaxis", "ravel",
    "view", "unstack", "atleast_1d", "atleast_2d",
})
ALLOC_NAMES = frozenset({"empty", "empty_like"})
META_NAMES = frozenset({
    "result_type", "can_cast", "finfo", "iinfo", "isdtype", "__array_namespace_info__",
    "shape", "ndim", "size", "dtype", "device", "get_array_api_strict_flags",
    "set_array_api_strict_flags", "reset_array_api_strict_flags", "ArrayAPIStrictFlags",
    "to_device", "__array_namespace__", "may_share_memory", "shares_memory",
})


def kind_of(name: str) -> str:
    """``ops``, ``views``, ``allocs``, ``meta`` for a namespace or array call's name."""
    base = name.rsplit(".", 1)[-1].strip("_") if not name.startswith("__array") else name
    if base in VIEW_NAMES or name in VIEW_NAMES:
        return "views"
    if base in ALLOC_NAMES:
        return "allocs"
    if base in META_NAMES or name in META_NAMES:
        return "meta"
    return "ops"


class Tally:
    """Calls counted where they enter the array library (nested calls are not counted)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.active = False
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def call(self, name: str, kind: str | None = None) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if self.active and depth == 0:
            with self._lock:
                self.counts[(kind or kind_of(name), name)] += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth

    def summary(self) -> dict[str, Any]:
        """Totals per kind (``ops``, ``views``, ...) and the calls by name."""
        by_kind: dict[str, Counter[str]] = {}
        for (kind, name), n in self.counts.items():
            by_kind.setdefault(kind, Counter())[name] += n
        out: dict[str, Any] = {k: sum(by_kind.get(k, Counter()).values())
                               for k in ("ops", "views", "allocs", "draws", "meta", "syncs")}
        out["ops_by_name"] = dict(by_kind.get("ops", Counter()).most_common())
        out["views_by_name"] = dict(by_kind.get("views", Counter()).most_common())
        out["draws_by_name"] = dict(by_kind.get("draws", Counter()).most_common())
        return out


class _Patches:
    """Attribute replacements, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any, bool]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        had = name in vars(owner)
        self._undo.append((owner, name, vars(owner).get(name), had))
        setattr(owner, name, value)

    def undo(self) -> None:
        for owner, name, old, had in reversed(self._undo):
            if had:
                setattr(owner, name, old)
            else:
                delattr(owner, name)
        self._undo.clear()


def _wrap(fn: Callable, tally: Tally, name: str, kind: str | None = None,
          after: Callable[[Any], Any] | None = None) -> Callable:
    def wrapper(*args, **kwargs):
        with tally.call(name, kind):
            out = fn(*args, **kwargs)
        return out if after is None else after(out)

    wrapper.__name__ = getattr(fn, "__name__", name)
    wrapper.__wrapped__ = fn
    return wrapper


_SYNC_DUNDERS = ("__float__", "__int__", "__bool__", "__index__", "__complex__", "__dlpack__")
_SKIP_DUNDERS = frozenset({
    "__init__", "__new__", "__repr__", "__str__", "__getattribute__", "__getattr__",
    "__setattr__", "__delattr__", "__class__", "__dir__", "__format__", "__hash__",
    "__reduce__", "__reduce_ex__", "__sizeof__", "__subclasshook__", "__init_subclass__",
    "__array_namespace__", "__dlpack_device__", "__len__", "__iter__", "__array__",
    "__buffer__", "__copy__", "__deepcopy__", "__getstate__", "__setstate__",
    *_SYNC_DUNDERS,
})


@contextlib.contextmanager
def counting_strict(tally: Tally) -> Iterator[None]:
    """Count array_api_strict's namespace functions and ``Array`` operators while inside."""
    import array_api_strict as xps

    array_type = type(xps.asarray(0.0))
    patches = _Patches()
    try:
        for modname, mod in (("", xps), ("linalg.", getattr(xps, "linalg", None)),
                             ("fft.", getattr(xps, "fft", None))):
            if mod is None:
                continue
            for name in dir(mod):
                obj = getattr(mod, name)
                if name.startswith("_") or not isinstance(obj, types.FunctionType):
                    continue
                patches.set(mod, name, _wrap(obj, tally, modname + name))
        for name, obj in list(vars(array_type).items()):
            if not name.startswith("__") or name in _SKIP_DUNDERS:
                continue
            if callable(obj):
                short = "getitem" if name == "__getitem__" else (
                    "setitem" if name == "__setitem__" else name)
                patches.set(array_type, name, _wrap(obj, tally, short))
        for name in _SYNC_DUNDERS:
            obj = vars(array_type).get(name)
            if callable(obj):
                patches.set(array_type, name, _wrap(obj, tally, name, "syncs"))
        for prop in ("T", "mT"):
            obj = vars(array_type).get(prop)
            if isinstance(obj, property):
                patches.set(array_type, prop, property(_wrap(obj.fget, tally, prop)))
        # the properties that only describe an array are not counted
        yield
    finally:
        patches.undo()


# -- numpy ----------------------------------------------------------------------------------------

_TALLY: Tally | None = None


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, CountedArray) else x


def _counted(x: Any) -> Any:
    if type(x) is np.ndarray:
        return x.view(CountedArray)
    if isinstance(x, tuple):
        return tuple(_counted(v) for v in x)
    return x


def _hit(name: str, kind: str | None = None) -> contextlib.AbstractContextManager:
    return _TALLY.call(name, kind) if _TALLY is not None else contextlib.nullcontext()


class CountedArray(np.ndarray):
    """An ndarray that counts the NumPy operations applied to it (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):  # noqa: ANN001, ANN204
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        with _hit(name, "ops"):
            args = [_plain(x) for x in inputs]
            if out is not None:
                kwargs["out"] = tuple(_plain(o) for o in out)
            result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _counted(result)

    def __array_function__(self, func, types, args, kwargs):  # noqa: ANN001, ANN204
        with _hit(func.__name__):
            result = super().__array_function__(func, types, args, kwargs)
        return _counted(result)

    def __getitem__(self, index):  # noqa: ANN001, ANN204
        with _hit("getitem", "views"):
            return super().__getitem__(index)

    def __setitem__(self, index, value):  # noqa: ANN001, ANN204
        with _hit("setitem", "ops"):
            super().__setitem__(index, value)

    def astype(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        with _hit("astype", "ops"):
            return super().astype(*args, **kwargs)

    def copy(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        with _hit("copy", "ops"):
            return super().copy(*args, **kwargs)

    def fill(self, value):  # noqa: ANN001, ANN201
        with _hit("fill", "ops"):
            return super().fill(value)

    def __float__(self):  # noqa: ANN204
        with _hit("__float__", "syncs"):
            return super().__float__()


@contextlib.contextmanager
def counting_numpy(tally: Tally) -> Iterator[None]:
    """Make ``np.empty``/``zeros``/``ones``/``full`` return counting arrays while inside."""
    global _TALLY
    patches = _Patches()
    _TALLY = tally
    try:
        for name in ("empty", "zeros", "ones", "full"):
            fn = getattr(np, name)
            patches.set(np, name, _wrap(fn, tally, name, after=_counted))
        yield
    finally:
        patches.undo()
        _TALLY = None


class _CountingGenerator:
    """A backend generator whose every draw counts as one ``draws`` call."""

    def __init__(self, inner: Any, tally: Tally, place: Callable[[Any], Any]):
        self._inner, self._tally, self._place = inner, tally, place

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in ("uniform", "normal", "integers", "bernoulli_mask"):
            return _wrap(attr, self._tally, f"random.{name}", "draws", after=self._place)
        return attr


def counting_backend(name: str, tally: Tally) -> Any:
    """A variant of backend ``name`` whose arrays and generator are counted."""
    from xpnet.backend import get_backend

    base = get_backend(name)
    place = _counted if name == "numpy" else (lambda x: x)

    class CountingBackend(type(base)):
        def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None) -> Any:
            return place(super().asarray(x, dtype, copy=copy))

        def random(self, seed: int | None = None) -> Any:
            return _CountingGenerator(super().random(seed), tally, place)

    CountingBackend.__name__ = f"Counting{type(base).__name__}"
    return CountingBackend(base.xp, base.device, base.module)


def namespace_step_counts(cfg: I.Config, backend: str, dtype: str = "float32",
                          warm: int = 2) -> dict[str, Any]:
    """Count one xpnet training step of ``cfg`` on ``backend`` (numpy or array_api_strict).

    Run it in a fresh process for NumPy (:func:`count_in_subprocess`): the NumPy kernels keep
    scratch buffers allocated by earlier steps, which the counter would not see.
    """
    import xpnet

    tally = Tally()
    ctx = counting_numpy(tally) if backend == "numpy" else counting_strict(tally)
    old_threads = xpnet.set_num_threads(1)  # the kernels' split into parts depends on it
    try:
        with ctx:
            be = counting_backend(backend, tally)
            impl = I.build_xpnet(cfg, I.Spec("xpnet", backend, "cpu", dtype),
                                 I.host_batches(cfg, 2), backend=be)
            for _ in range(warm):
                impl.step()
            tally.active = True
            impl.step()
            tally.active = False
    finally:
        xpnet.set_num_threads(old_threads)
    return {"counter": "namespace", **tally.summary()}


def xpnet_torch_step_counts(cfg: I.Config, dtype: str = "float32") -> dict[str, Any]:
    """The profiler count of one xpnet training step on the torch backend (CPU)."""
    impl = I.build_xpnet(cfg, I.Spec("xpnet", "torch", "cpu", dtype), I.host_batches(cfg, 2))
    return torch_step_counts(impl.step, impl.sync)


def count(cfg: I.Config, backends: list[str], dtype: str = "float32") -> dict[str, Any]:
    """Counts of one xpnet training step per backend (numpy first: see
    :func:`namespace_step_counts`); a backend that cannot run gets a reason."""
    out: dict[str, Any] = {}
    for name in backends:
        try:
            if name == "torch":
                try:
                    import torch  # noqa: F401
                except ImportError:
                    out[name] = {"status": "unavailable", "reason": "torch is not installed"}
                    continue
                out[name] = {"status": "ok", **xpnet_torch_step_counts(cfg, dtype)}
            elif name in ("numpy", "array_api_strict"):
                if name == "array_api_strict":
                    try:
                        import array_api_strict  # noqa: F401
                    except ImportError:
                        out[name] = {"status": "unavailable",
                                     "reason": "array_api_strict is not installed"}
                        continue
                out[name] = {"status": "ok", **namespace_step_counts(cfg, name, dtype)}
            else:
                out[name] = {"status": "unavailable", "reason": f"no counter for {name}"}
        except Exception as exc:
            out[name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    return out


def count_in_subprocess(config: str | I.Config, backends: list[str], dtype: str = "float32",
                        timeout: float = 300.0) -> dict[str, Any]:
    """:func:`count` in a fresh Python process (one thread everywhere); returns its JSON."""
    cfg = I.CONFIGS[config] if isinstance(config, str) else config
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "XPNET_NUM_THREADS"):
        env[var] = "1"
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "xpnet.benchmark.opcount", "--json", "--config-json",
         json.dumps(cfg.to_dict()), "--backend", ",".join(backends), "--dtype", dtype],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the counting process failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------------------
# Pins
# ------------------------------------------------------------------------------------------------

#: what is pinned per backend (every number must not grow)
PINNED = {"numpy": ("ops",), "array_api_strict": ("ops",),
          "torch": ("aten_leaf_ops", "aten_kernels")}


def pins_from(counts: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The pinned numbers (:data:`PINNED`) of a :func:`count` result."""
    return {b: {k: int(c[k]) for k in PINNED[b]} for b, c in counts.items()
            if c.get("status") == "ok" and b in PINNED}


def load_pins(path: Path = PINS_PATH) -> dict[str, Any]:
    """The pins file as a dict (``{"C1": {backend: {number: pin}}, ...}``)."""
    return json.loads(Path(path).read_text())


def compare(counts: dict[str, dict[str, Any]], pins: dict[str, dict[str, int]]
            ) -> tuple[list[str], list[str]]:
    """``(grew, shrank)``: messages for counts above and below their pins."""
    grew, shrank = [], []
    for backend, pinned in pins.items():
        c = counts.get(backend)
        if c is None or c.get("status") != "ok":
            continue
        for key, pin in pinned.items():
            v = c[key]
            if v > pin:
                grew.append(f"{backend} {key}: {v} > pinned {pin}")
            elif v < pin:
                shrank.append(f"{backend} {key}: {v} < pinned {pin}")
    return grew, shrank


def main(argv: list[str] | None = None) -> int:
    """``python bench/opcount.py``: print the counts, or ``--update`` the pins."""
    p = argparse.ArgumentParser(
        prog="python bench/opcount.py",
        description="Operations per xpnet training step per backend (torch: profiler; numpy, "
                    "array_api_strict: namespace counter). --update rewrites the pins that "
                    "tests/test_opcount.py checks.")
    p.add_argument("--config", default="C1", help="C1 or C2 (default C1)")
    p.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--backend", default="numpy,array_api_strict,torch")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--update", action="store_true",
                   help=f"write the C1 counts to {PINS_PATH} (in a fresh process)")
    args = p.parse_args(argv)
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    cfg = (I.Config.from_dict(json.loads(args.config_json)) if args.config_json
           else I.CONFIGS[args.config.upper()])
    if args.update:
        counts = count_in_subprocess("C1", ["numpy", "array_api_strict", "torch"], "float32")
        pins = pins_from(counts)
        doc = {
            "what": "operations per xpnet C1 training step (float32), pinned by "
                    "tests/test_opcount.py: a count may only go down",
            "update": "python bench/opcount.py --update (after a change that removes "
                      "operations; never to accept more)",
            "C1": pins,
        }
        PINS_PATH.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {PINS_PATH}: {json.dumps(pins)}")
        return 0
    counts = count(cfg, backends, args.dtype) if args.json else count_in_subprocess(
        cfg, backends, args.dtype)
    if args.json:
        print(json.dumps(counts))
        return 0
    for b, c in counts.items():
        if c.get("status") != "ok":
            print(f"{b}: {c.get('status')} ({c.get('reason')})")
        elif c["counter"] == "torch.profiler":
            print(f"{b}: {c['aten_leaf_ops']} aten leaf ops, {c['aten_kernels']} kernels, "
                  f"{c['item_calls']} .item() calls; leaf ops {c['leaf_ops_by_name']}")
        else:
            print(f"{b}: {c['ops']} ops, {c['views']} views, {c['draws']} draws, "
                  f"{c['allocs']} allocs; ops {c['ops_by_name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
