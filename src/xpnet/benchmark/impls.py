"""The compared implementations: how each one builds its training step (or inference pass).

Each builder returns an :class:`Impl` -- a ``step()`` closure, a ``sync()`` that waits for the
device, and a few facts (parameter bytes, a note).  The builders run inside a benchmark *worker*
process (:mod:`xpnet.benchmark.worker`), one implementation per process, so that no two
libraries' thread pools live in the process being timed.

Implementations (``Spec.impl``):

``xpnet``
    ``MultiLayerNetExtend`` (or ``SimpleConvNet``) + ``xpnet.Adam`` on one backend and dtype.
``torch-eager`` / ``torch-fused``
    The same model in ``torch.nn`` with ``torch.optim.Adam(foreach=False)`` or ``fused=True``.
``jax-jit``
    The same model as one ``jax.jit``-compiled function: forward, loss, ``jax.value_and_grad``
    and the book's Adam (hand-written, no optax), state donated; inference is a second jitted
    function.
``gemm``
    Only the matrix products of one step at the same shapes, float32, into preallocated outputs
    (NumPy, torch or CuPy): a lower bound for any implementation of the step.
``book``
    The book's own ``common/`` code in float64 (:mod:`xpnet.benchmark.book`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------
# Configurations
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One benchmark configuration (a network, a batch, training or inference)."""

    name: str
    kind: str  # "train" or "infer"
    description: str
    hidden: tuple[int, ...] = ()
    batch: int = 100
    dropout: float = 0.2
    batchnorm: bool = True
    conv: bool = False
    input_size: int = 784
    output_size: int = 10

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        d = dict(d)
        d["hidden"] = tuple(int(h) for h in d.get("hidden", ()))
        return cls(**d)

    def gemm_shapes(self) -> list[tuple[str, int, int, int]]:
        """The matrix products of one step: ``(kind, m, k, n)`` for an ``(m, k) @ (k, n)``.

        Forward ``X_i @ W_i`` for every layer; training adds ``X_i.T @ dY_i`` (dW) for every
        layer and ``dY_i @ W_i.T`` (dX) for every layer but the first (nothing needs the input's
        gradient).  Empty for the conv net.
        """
        if self.conv:
            return []
        sizes = [self.input_size, *self.hidden, self.output_size]
        n = self.batch
        out = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            out.append(("fwd", n, n_in, n_out))
            if self.kind == "train":
                out.append(("dW", n_in, n, n_out))
                if i > 0:
                    out.append(("dX", n, n_out, n_in))
        return out

    def gemm_flops(self) -> int:
        """Floating-point operations of :meth:`gemm_shapes` (2 m k n each)."""
        return sum(2 * m * k * n for _, m, k, n in self.gemm_shapes())


CONFIGS: dict[str, Config] = {
    "C1": Config(
        "C1", "train", "784-[100]x5-10, batch norm + dropout 0.2, batch 100, Adam",
        hidden=(100,) * 5, batch=100,
    ),
    "C2": Config(
        "C2", "train", "784-[1024]x3-10, batch norm + dropout 0.2, batch 512, Adam",
        hidden=(1024,) * 3, batch=512,
    ),
    "C3": Config(
        "C3", "train",
        "SimpleConvNet 1x28x28, conv 30x5x5 - ReLU - pool 2 - 100 - ReLU - 10, batch 100, Adam",
        batch=100, conv=True, batchnorm=False, dropout=0.0,
    ),
    "C1-infer": Config(
        "C1-infer", "infer", "C1 network, predict(x, train_flg=False) on 10,000 rows",
        hidden=(100,) * 5, batch=10_000,
    ),
}


def mlp_config(width: int, batch: int, depth: int = 3, kind: str = "train") -> Config:
    """A C2-like network ``784-[width]xdepth-10`` with batch norm and dropout 0.2 (scaling)."""
    return Config(
        f"w{width}-b{batch}", kind,
        f"784-[{width}]x{depth}-10, batch norm + dropout 0.2, batch {batch}, Adam",
        hidden=(int(width),) * depth, batch=int(batch),
    )


# ------------------------------------------------------------------------------------------------
# What is compared
# ------------------------------------------------------------------------------------------------

#: implementation -> (label, the library whose threads it uses)
IMPLS = {
    "xpnet": "xpnet",
    "torch-eager": "torch.nn",
    "torch-fused": "torch.nn fused",
    "jax-jit": "JAX jit",
    "gemm": "GEMM bound",
    "book": "book",
}

#: the peers of the targets: xpnet is compared with the fastest of these (float32)
PEERS = ("torch-eager", "torch-fused", "jax-jit")


@dataclass(frozen=True)
class Spec:
    """One implementation at one backend/device/dtype (what a worker builds)."""

    impl: str
    backend: str = "numpy"  # xpnet's backend; the GEMM bound's library
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def key(self) -> str:
        dev = "" if self.device in ("", "cpu", None) else f"-{self.device}"
        if self.impl == "xpnet":
            return f"xpnet-{self.backend}{dev}-{self.dtype}"
        if self.impl in ("torch-eager", "torch-fused", "jax-jit"):
            return f"{self.impl}-{self.device or 'cpu'}-{self.dtype}"
        if self.impl == "gemm":
            return f"gemm-{self.backend}{dev}"
        return "book-numpy-float64"

    @property
    def library(self) -> str:
        """The array library that does the work (its thread pool is the one that matters)."""
        if self.impl in ("torch-eager", "torch-fused"):
            return "torch"
        if self.impl == "jax-jit":
            return "jax"
        if self.impl == "book":
            return "numpy"
        return "numpy" if self.backend == "array_api_strict" else self.backend

    @property
    def label(self) -> str:
        where = self.backend if self.impl in ("xpnet", "gemm", "book") else (
            "torch" if self.impl.startswith("torch") else "jax")
        if self.device not in ("", "cpu", None) and self.backend != "cupy":
            where = f"{where} {self.device}"
        return f"{IMPLS[self.impl]} [{where}] {self.dtype}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Impl:
    """A built implementation: its step and what the report says about it."""

    step: Callable[[], Any]
    sync: Callable[[], None] = lambda: None
    device_memory: Callable[[], int | None] = lambda: None
    host_arrays: bool = False  # arrays are NumPy buffers (tracemalloc sees them)
    param_bytes: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: for memory-growth checks: the xpnet backend object (None for peers)
    backend: Any = None


class Unavailable(Exception):
    """The implementation cannot run here (a library or a model is missing): a reason, not a
    failure."""


# -- data -----------------------------------------------------------------------------------------


def host_batches(cfg: Config, n_pool: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A few synthetic MNIST-shaped batches (pixels in [0, 1), labels 0..9), float64 on the host.

    Timings do not depend on the pixel values; synthetic data keeps the bench self-contained.
    """
    rng = np.random.default_rng(seed)
    shape = (cfg.batch, 1, 28, 28) if cfg.conv else (cfg.batch, cfg.input_size)
    return [
        (rng.random(shape), rng.integers(0, cfg.output_size, cfg.batch))
        for _ in range(n_pool)
    ]


def _cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": 0}

    def nxt():
        i = state["i"]
        state["i"] = (i + 1) % len(items)
        return items[i]

    return nxt


def _book_loop_step(net: Any, opt: Any, batches: list[Any]) -> Callable[[], None]:
    """One training step of the book's loop over the cycled ``batches``."""
    nxt = _cycle(batches)

    def step():
        x, t = nxt()
        opt.update(net.params, net.gradient(x, t))

    return step


def _nbytes(arrays: Any) -> int | None:
    total = 0
    for a in arrays:
        n = getattr(a, "nbytes", None)
        if n is None:
            try:
                n = a.numel() * a.element_size()
            except AttributeError:
                return None
        total += int(n)
    return total


def pool_size(cfg: Config) -> int:
    """How many distinct batches a training step cycles through (1 for inference)."""
    return 1 if cfg.kind == "infer" else 8


# -- xpnet ----------------------------------------------------------------------------------------


def xpnet_net(cfg: Config, backend: Any, dtype: str, seed: int = 0) -> Any:
    """xpnet's network for ``cfg`` (``MultiLayerNetExtend``, or ``SimpleConvNet`` for C3)."""
    import xpnet

    if cfg.conv:
        cls = getattr(xpnet, "SimpleConvNet", None)
        if cls is None:
            raise Unavailable("xpnet has no SimpleConvNet yet (the techniques issue adds it)")
        return cls(
            input_dim=(1, 28, 28),
            conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
            hidden_size=100, output_size=10, weight_init_std=0.01,
            backend=backend, dtype=dtype, seed=seed,
        )
    return xpnet.MultiLayerNetExtend(
        cfg.input_size, list(cfg.hidden), cfg.output_size,
        activation="relu", weight_init_std="relu",
        use_dropout=cfg.dropout > 0, dropout_ration=cfg.dropout, use_batchnorm=cfg.batchnorm,
        backend=backend, dtype=dtype, seed=seed,
    )


def build_xpnet(cfg: Config, spec: Spec, host: list[Any], backend: Any = None) -> Impl:
    """xpnet's network + ``xpnet.Adam(lr=0.001)`` on ``spec.backend`` (or ``backend``)."""
    import xpnet

    if backend is None:
        dev = None if spec.device in ("", "cpu") and spec.backend != "torch" else spec.device
        try:
            backend = xpnet.get_backend(spec.backend, dev)
        except xpnet.BackendUnavailableError as exc:
            raise Unavailable(str(exc)) from exc
    be = backend
    net = xpnet_net(cfg, be, spec.dtype)
    impl = Impl(step=lambda: None, sync=be.synchronize, device_memory=be.memory_in_use,
                host_arrays=be.numpy_memory, param_bytes=_nbytes(net.params.values()),
                backend=be)
    if cfg.kind == "infer":
        x = be.asarray(host[0][0], dtype=spec.dtype)
        impl.step = lambda: net.predict(x, train_flg=False)
        impl.note = "predict(x, train_flg=False)"
        return impl
    batches = [(be.asarray(x, dtype=spec.dtype), be.labels(t, spec.dtype)) for x, t in host]
    impl.step = _book_loop_step(net, xpnet.Adam(lr=0.001), batches)
    return impl


# -- PyTorch torch.nn -----------------------------------------------------------------------------


def torch_model(cfg: Config, torch: Any) -> Any:
    """The ``torch.nn`` equivalent of xpnet's network for ``cfg``."""
    nn = torch.nn
    if cfg.conv:
        return nn.Sequential(
            nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10),
        )
    layers: list[Any] = []
    sizes = [cfg.input_size, *cfg.hidden]
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(n_in, n_out))
        if cfg.batchnorm:
            # eps as the book's 10e-7; torch's momentum=0.1 is the book's keep-fraction 0.9
            layers.append(nn.BatchNorm1d(n_out, eps=1e-6, momentum=0.1))
        layers.append(nn.ReLU())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Linear(sizes[-1], cfg.output_size))
    return nn.Sequential(*layers)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable("torch is not installed (pip install torch==2.13.0 for the CPU "
                          "wheel)") from exc
    return torch


def build_torch(cfg: Config, spec: Spec, host: list[Any]) -> Impl:
    """``torch.nn`` model + ``torch.optim.Adam`` (``foreach=False``, or ``fused=True``)."""
    torch = _import_torch()
    fused = spec.impl == "torch-fused"
    dev = torch.device(spec.device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Unavailable(f"torch sees no CUDA device for {spec.device!r}")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # strict FP32, as xpnet
        torch.backends.cudnn.allow_tf32 = False
    tdt = getattr(torch, spec.dtype)
    impl = Impl(step=lambda: None)
    if dev.type == "cuda":
        impl.sync = lambda: torch.cuda.synchronize(dev)
        impl.device_memory = lambda: int(torch.cuda.memory_allocated(dev))
    torch.manual_seed(0)
    model = torch_model(cfg, torch).to(device=dev, dtype=tdt)
    impl.param_bytes = _nbytes(model.parameters())
    if cfg.kind == "infer":
        if fused:
            raise Unavailable("fused Adam is a training-step variant; inference has one torch row")
        model.eval()
        x = torch.as_tensor(host[0][0], dtype=tdt, device=dev)

        def infer():
            with torch.inference_mode():
                return model(x)

        impl.step = infer
        impl.note = "model.eval(), torch.inference_mode()"
        return impl
    model.train()
    batches = [
        (torch.as_tensor(x, dtype=tdt, device=dev), torch.as_tensor(t, device=dev))
        for x, t in host
    ]
    nxt = _cycle(batches)
    loss_fn = torch.nn.CrossEntropyLoss()
    if fused:
        try:
            opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, fused=True)
            model(batches[0][0]).sum().backward()  # fused support is checked on the first step
            opt.step()
            opt.zero_grad(set_to_none=True)
            impl.note = "torch.optim.Adam(fused=True)"
        except (RuntimeError, ValueError, TypeError) as exc:
            opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, foreach=True)
            impl.note = f"fused Adam unsupported here ({exc}); foreach=True instead"
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7, foreach=False)
        impl.note = "torch.optim.Adam(foreach=False): one kernel sequence per parameter"

    def step():
        x, t = nxt()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()

    impl.step = step
    return impl


# -- JAX jit --------------------------------------------------------------------------------------


def _import_jax(dtype: str) -> Any:
    try:
        import jax
    except ImportError as exc:
        raise Unavailable('jax is not installed (pip install "jax[cpu]==0.10.2", or '
                          "pip install 'xpnet[bench]')") from exc
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return jax


def jax_init(cfg: Config, seed: int = 0, dtype: str = "float32") -> dict[str, Any]:
    """Initial parameters and state of the JAX model, drawn on the host (He init as xpnet)."""
    rng = np.random.default_rng(seed)
    sizes = [cfg.input_size, *cfg.hidden, cfg.output_size]
    params: dict[str, Any] = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        params[f"W{i}"] = (rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in)
                           ).astype(dtype)
        params[f"b{i}"] = np.zeros(n_out, dtype)
        if cfg.batchnorm and i < len(sizes) - 1:
            params[f"gamma{i}"] = np.ones(n_out, dtype)
            params[f"beta{i}"] = np.zeros(n_out, dtype)
    running = {}
    if cfg.batchnorm:
        for i, n in enumerate(cfg.hidden, start=1):
            running[f"mean{i}"] = np.zeros(n, dtype)
            running[f"var{i}"] = np.zeros(n, dtype)
    return {"params": params, "running": running}


def jax_functions(cfg: Config, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                  momentum: float = 0.9, eps_bn: float = 1e-6) -> dict[str, Callable]:
    """The pure functions of the JAX model: ``forward``, ``loss``, ``train_step``, ``predict``.

    The same network as xpnet's ``MultiLayerNetExtend``: ``Affine -> BatchNorm -> ReLU ->
    Dropout`` per hidden layer (the book's batch norm: biased variance, eps 1e-6 -- the book's
    10e-7 -- inside the root, running averages with keep-fraction 0.9; the book's dropout: a 0/1
    mask while training, a ``1 - ratio`` scale at inference), softmax cross entropy, and the
    book's Adam (``lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)``,
    ``p -= lr_t m / (sqrt(v) + 1e-7)``).
    Not jitted here (see :func:`build_jax`).
    """
    import jax
    import jax.numpy as jnp

    n_hidden = len(cfg.hidden)
    keep = 1.0 - cfg.dropout

    def forward(params, running, x, key, train):
        h = x
        new_running = {}
        for i in range(1, n_hidden + 1):
            h = h @ params[f"W{i}"] + params[f"b{i}"]
            if cfg.batchnorm:
                if train:
                    mu = jnp.mean(h, axis=0)
                    xc = h - mu
                    var = jnp.mean(xc * xc, axis=0)
                    h = xc / jnp.sqrt(var + eps_bn)
                    new_running[f"mean{i}"] = (momentum * running[f"mean{i}"]
                                               + (1 - momentum) * mu)
                    new_running[f"var{i}"] = momentum * running[f"var{i}"] + (1 - momentum) * var
                else:
                    h = (h - running[f"mean{i}"]) / jnp.sqrt(running[f"var{i}"] + eps_bn)
                h = params[f"gamma{i}"] * h + params[f"beta{i}"]
            h = jnp.maximum(h, 0)
            if cfg.dropout > 0:
                if train:
                    key, sub = jax.random.split(key)
                    h = h * jax.random.bernoulli(sub, keep, h.shape).astype(h.dtype)
                else:
                    h = h * keep
        last = n_hidden + 1
        return h @ params[f"W{last}"] + params[f"b{last}"], new_running

    def loss(params, running, x, t, key):
        scores, new_running = forward(params, running, x, key, True)
        logp = jax.nn.log_softmax(scores, axis=-1)
        nll = -jnp.take_along_axis(logp, t[:, None], axis=1)
        return jnp.mean(nll), new_running

    grad_fn = jax.value_and_grad(loss, has_aux=True)

    def train_step(params, running, m, v, step, key, x, t):
        key, sub = jax.random.split(key)
        (value, new_running), grads = grad_fn(params, running, x, t, sub)
        step = step + 1
        lr_t = lr * jnp.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        m = jax.tree_util.tree_map(lambda m_, g: m_ + (1 - beta1) * (g - m_), m, grads)
        v = jax.tree_util.tree_map(lambda v_, g: v_ + (1 - beta2) * (g * g - v_), v, grads)
        params = jax.tree_util.tree_map(
            lambda p, m_, v_: p - (lr_t * m_ / (jnp.sqrt(v_) + 1e-7)).astype(p.dtype),
            params, m, v)
        return params, new_running, m, v, step, key, value

    def predict(params, running, x):
        return forward(params, running, x, None, False)[0]

    return {"forward": forward, "loss": loss, "train_step": train_step, "predict": predict}


def build_jax(cfg: Config, spec: Spec, host: list[Any]) -> Impl:
    """The model as one ``jax.jit`` function per step (and one for inference), on the CPU."""
    if cfg.conv:
        raise Unavailable("no JAX model for the conv net (C3)")
    jax = _import_jax(spec.dtype)
    import jax.numpy as jnp

    platform = "cpu" if spec.device in ("", "cpu", None) else "gpu"
    try:
        device = jax.devices(platform)[0]
    except RuntimeError as exc:
        raise Unavailable(f"JAX has no {platform} device: {exc}") from exc
    fns = jax_functions(cfg)
    init = jax_init(cfg, 0, spec.dtype)
    put = lambda a: jax.device_put(jnp.asarray(a), device)  # noqa: E731
    params = {k: put(v) for k, v in init["params"].items()}
    running = {k: put(v) for k, v in init["running"].items()}
    impl = Impl(step=lambda: None, param_bytes=_nbytes(params.values()))
    state: dict[str, Any] = {}
    impl.sync = lambda: jax.block_until_ready(state)
    if cfg.kind == "infer":
        predict = jax.jit(fns["predict"])
        x = put(host[0][0].astype(spec.dtype))

        def infer():
            state["out"] = predict(params, running, x)

        impl.step = infer
        impl.note = f"jax.jit(predict), jax {jax.__version__}"
        return impl
    batches = [(put(x.astype(spec.dtype)), put(t.astype(np.int32))) for x, t in host]
    nxt = _cycle(batches)
    step_fn = jax.jit(fns["train_step"], donate_argnums=(0, 1, 2, 3))
    zeros = {k: jnp.zeros_like(p) for k, p in params.items()}
    state.update(params=params, running=running, m=zeros,
                 v={k: jnp.zeros_like(p) for k, p in params.items()},
                 step=put(np.zeros((), spec.dtype)), key=jax.random.key(0))

    def step():
        x, t = nxt()
        s = state
        (s["params"], s["running"], s["m"], s["v"], s["step"], s["key"],
         s["loss"]) = step_fn(s["params"], s["running"], s["m"], s["v"], s["step"], s["key"],
                              x, t)

    impl.step = step
    impl.note = ("jax.jit(value_and_grad + the book's Adam), state donated, "
                 f"jax {jax.__version__}")
    return impl


# -- GEMM-only lower bound ------------------------------------------------------------------------


def build_gemm(cfg: Config, spec: Spec) -> Impl:
    """Only the matrix products of one step (:meth:`Config.gemm_shapes`), float32, each into a
    preallocated output: the step loops over prebuilt ``(a, b, out)`` triples, so nothing in it
    allocates (the tests check this with ``tracemalloc`` for NumPy)."""
    shapes = cfg.gemm_shapes()
    if not shapes:
        raise Unavailable("no GEMM bound for the conv net")
    rng = np.random.default_rng(1)
    host = []
    for kind, m, k, n in shapes:
        # operands laid out as in the real step: dW = X.T @ dY, dX = dY @ W.T (transposed views)
        if kind == "dW":
            a = rng.standard_normal((k, m), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
        elif kind == "dX":
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((n, k), dtype=np.float32)
        else:
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
        host.append((kind, a, b, (m, n)))
    impl = Impl(step=lambda: None)
    ops: list[tuple[Any, Any, Any]] = []
    if spec.backend == "numpy":
        for kind, a, b, shape in host:
            a2, b2 = (a.T, b) if kind == "dW" else (a, b.T) if kind == "dX" else (a, b)
            ops.append((a2, b2, np.empty(shape, np.float32)))
        matmul = np.matmul
        impl.host_arrays = True
    elif spec.backend == "torch":
        torch = _import_torch()
        dev = torch.device(spec.device or "cpu")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise Unavailable(f"torch sees no CUDA device for {spec.device!r}")
            torch.backends.cuda.matmul.allow_tf32 = False
            impl.sync = lambda: torch.cuda.synchronize(dev)
        for kind, a, b, shape in host:
            ta, tb = torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev)
            ta, tb = (ta.T, tb) if kind == "dW" else (ta, tb.T) if kind == "dX" else (ta, tb)
            ops.append((ta, tb, torch.empty(shape, dtype=torch.float32, device=dev)))
        matmul = torch.matmul
    elif spec.backend == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise Unavailable("cupy is not installed") from exc
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise Unavailable(f"CuPy sees no CUDA device: {exc}") from exc
        dev = str(spec.device or "")
        cupy.cuda.Device(int(dev.partition(":")[2] or 0) if dev.startswith("cuda") else 0).use()
        for kind, a, b, shape in host:
            ca, cb = cupy.asarray(a), cupy.asarray(b)
            ca, cb = (ca.T, cb) if kind == "dW" else (ca, cb.T) if kind == "dX" else (ca, cb)
            ops.append((ca, cb, cupy.empty(shape, dtype=cupy.float32)))
        matmul = cupy.matmul
        impl.sync = lambda: cupy.cuda.get_current_stream().synchronize()
    elif spec.backend == "jax":
        return _jax_gemm(cfg, spec, host)
    else:
        raise ValueError(f"no GEMM bound for library {spec.backend!r}")

    def step():
        for a, b, out in ops:
            matmul(a, b, out=out)

    step.operands = ops  # for the tests: the (a, b, out) triples, in gemm_shapes() order
    impl.step = step
    flops = cfg.gemm_flops()
    impl.extra["gflop_per_step"] = round(flops / 1e9, 4)
    impl.note = f"{len(ops)} matmuls into preallocated outputs, {flops / 1e9:.3f} GFLOP per step"
    return impl


def _jax_gemm(cfg: Config, spec: Spec, host: list[Any]) -> Impl:
    """The same products as one jitted function (XLA has no ``out=``: it allocates the outputs
    from its own pool).  Not a bound for NumPy's rows -- XLA's GEMM is not OpenBLAS -- but the
    floor of JAX's own step."""
    jax = _import_jax("float32")
    import jax.numpy as jnp

    platform = "cpu" if spec.device in ("", "cpu", None) else "gpu"
    try:
        device = jax.devices(platform)[0]
    except RuntimeError as exc:
        raise Unavailable(f"JAX has no {platform} device: {exc}") from exc
    kinds = tuple(kind for kind, *_ in host)
    operands = [(jax.device_put(jnp.asarray(a), device), jax.device_put(jnp.asarray(b), device))
                for _, a, b, _ in host]

    @jax.jit
    def products(ops):
        return [a.T @ b if k == "dW" else a @ b.T if k == "dX" else a @ b
                for k, (a, b) in zip(kinds, ops, strict=True)]

    state: dict[str, Any] = {}

    def step():
        state["out"] = products(operands)

    step.state = state  # for the tests: the last outputs
    flops = cfg.gemm_flops()
    return Impl(step=step, sync=lambda: jax.block_until_ready(state),
                extra={"gflop_per_step": round(flops / 1e9, 4)},
                note=f"{len(kinds)} matmuls in one jax.jit (XLA allocates the outputs), "
                     f"{flops / 1e9:.3f} GFLOP per step")


# -- the book's float64 code ----------------------------------------------------------------------


def build_book(cfg: Config, spec: Spec, host: list[Any]) -> Impl:
    """The book's ``common/`` code path (``MultiLayerNetExtend`` + ``Adam``), float64."""
    from xpnet.benchmark import book

    if cfg.conv:
        raise Unavailable("the book's conv net is not part of the baseline")
    net = book.MultiLayerNetExtend(
        cfg.input_size, list(cfg.hidden), cfg.output_size, activation="relu",
        weight_init_std="relu", use_dropout=cfg.dropout > 0, dropout_ration=cfg.dropout,
        use_batchnorm=cfg.batchnorm, seed=0,
    )
    impl = Impl(step=lambda: None, host_arrays=True, param_bytes=_nbytes(net.params.values()),
                note="the book's common/ code path (MultiLayerNetExtend + Adam), float64")
    if cfg.kind == "infer":
        x = np.array(host[0][0], dtype=np.float64)
        impl.step = lambda: net.predict(x, train_flg=False)
        return impl
    batches = [(np.array(x, np.float64), np.array(t)) for x, t in host]
    impl.step = _book_loop_step(net, book.Adam(lr=0.001), batches)
    return impl


def build(cfg: Config, spec: Spec, seed: int = 0) -> Impl:
    """Build ``spec`` for ``cfg``; raises :class:`Unavailable` with a reason when it cannot
    run here."""
    host = host_batches(cfg, pool_size(cfg), seed)
    if spec.impl == "xpnet":
        return build_xpnet(cfg, spec, host)
    if spec.impl in ("torch-eager", "torch-fused"):
        return build_torch(cfg, spec, host)
    if spec.impl == "jax-jit":
        return build_jax(cfg, spec, host)
    if spec.impl == "gemm":
        return build_gemm(cfg, spec)
    if spec.impl == "book":
        return build_book(cfg, spec, host)
    raise ValueError(f"unknown implementation {spec.impl!r}; use one of {', '.join(IMPLS)}")
