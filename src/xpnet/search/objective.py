"""The book's objective: train a network on a training split, score it on a validation split.

:class:`NetworkObjective` is the set-up of the book's ``ch06/hyperparameter_optimization.py``
(experiment 8) as a picklable callable for :func:`xpnet.search.random_search`: the validation
rows are cut from the *training* data after the book's shuffle, a network is trained with a
:class:`~xpnet.Trainer` for ``budget`` epochs, and the validation accuracy is the metric.  The
test set is never given to it during a search; :meth:`SearchResult.evaluate_best
<xpnet.search.SearchResult.evaluate_best>` uses it once, for the best trial, at the end.
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from xpnet.backend import Backend, default_dtype, get_backend, resolve_name, to_host
from xpnet.nets import MultiLayerNet, MultiLayerNetExtend
from xpnet.optim import OPTIMIZERS
from xpnet.trainer import Trainer

__all__ = ["NetworkObjective"]

NETS = {"MultiLayerNet": MultiLayerNet, "MultiLayerNetExtend": MultiLayerNetExtend}
#: network keywords the objective sets itself
_NET_OWN = ("input_size", "output_size", "backend", "device", "dtype", "seed")
#: space keys with a meaning of their own
_SPECIAL = ("lr", "weight_decay", "optimizer", "batch_size")
#: the book's experiment-8 network: six hidden layers of 100
BOOK_HIDDEN = [100, 100, 100, 100, 100, 100]


def _optimizer_name(name: Any) -> str:
    for known in OPTIMIZERS:
        if str(name).lower() == known.lower():
            return known
    raise ValueError(f"unknown optimizer {name!r}; valid names are: {', '.join(OPTIMIZERS)}")


def _keywords(cls: type) -> set[str]:
    return {name for name, p in inspect.signature(cls).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


class NetworkObjective:
    """Train the book's network on a training split; report its validation accuracy.

    Parameters
    ----------
    x : array, shape (N, D)
        Training inputs (host NumPy arrays, or arrays of any backend: copied to the host).
        Never the test set.
    t : array, shape (N,) or (N, C)
        Labels (class indices) or one-hot rows.
    validation : float or int
        The fraction of rows held out for validation (the book's ``validation_rate = 0.20``:
        ``int(N * 0.2)`` rows), or their number.
    net : {"MultiLayerNet", "MultiLayerNetExtend"} or class
        The network.  It is built as ``net(input_size=D, output_size=C, **net_kwargs,
        weight_decay_lambda=..., backend=..., device=..., dtype=..., seed=trial_seed)``.
    net_kwargs : dict, optional
        Further network keywords; default ``{"hidden_size_list": [100] * 6}`` (the book's).
    optimizer : str
        ``"SGD"`` (the book's), ``"Momentum"``, ``"Nesterov"``, ``"AdaGrad"``, ``"RMSprop"``,
        ``"Adam"``.
    optimizer_kwargs : dict, optional
        Fixed optimizer keywords (the space's win).
    epochs : int
        Epochs when the search gives no budget (a search without halving); default 50.
    batch_size : int
        Mini-batch size; default 100.
    backend : str, Backend, module or None
        Where the trials train.  A name (``"numpy"``, ``"cupy"``, ``"torch"``,
        ``"array_api_strict"``) is built where the trial runs -- a Dask worker with a GPU
        builds CuPy on its GPU, a driver without one need not have CuPy.  None: this
        process's default backend (:func:`xpnet.set_default_backend`, ``XPNET_BACKEND``),
        resolved now and sent to the workers by name.  ``"worker"``: each worker's own
        default (its ``XPNET_BACKEND``, else NumPy).
    device : str, optional
        The device on the trial's backend (a string: ``"cuda:1"``, ``"device1"``...).  None:
        the backend's default device where the trial runs (for CuPy, the worker's current GPU:
        with ``CUDA_VISIBLE_DEVICES=i`` that is GPU ``i``).  ``"worker"``: each worker's
        ``XPNET_DEVICE`` (e.g. ``XPNET_DEVICE=cuda:1 dask worker ...``), else the default.
    dtype : {"float32", "float64"}, optional
        Default: this process's default dtype (``XPNET_DTYPE``, else float32).
    seed : int
        Seeds the validation split (the book's ``shuffle_dataset``).  The trials' own seeds
        (weights, mini-batch order) come from the search.

    Attributes
    ----------
    train_index, val_index : numpy.ndarray of int
        The rows of ``x`` in the training and validation splits (disjoint, together all rows).
    x_train, t_train, x_val, t_val : numpy.ndarray

    Notes
    -----
    Space keys: ``lr`` (the optimizer's learning rate), ``weight_decay`` (the network's
    ``weight_decay_lambda``), ``optimizer`` (a name), ``batch_size``, and any keyword of the
    optimizer (``momentum``, ``beta1``...) or of the network (``activation``,
    ``use_batchnorm``, ``dropout_ration``...).  An unknown key is refused before the search
    starts.

    Called as ``objective(params, *, seed, budget)`` it trains a fresh network for ``budget``
    epochs (``epochs`` when None) and returns ``val_acc``, ``train_acc``, ``train_loss``
    (the last epoch's mean), ``epochs``, ``curves`` (``val_acc``, ``train_acc``,
    ``train_loss`` per epoch), ``backend`` and ``device``.

    Unlike the book, the shuffle is seeded (the book's ``np.random.permutation`` is not), and
    the trials' weights and mini-batches are seeded too, so a search is reproducible.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.search import NetworkObjective
    >>> rng = np.random.default_rng(0)
    >>> x, t = rng.random((50, 8), dtype=np.float32), rng.integers(0, 3, 50)
    >>> obj = NetworkObjective(x, t, net_kwargs={"hidden_size_list": [10]}, epochs=2,
    ...                        batch_size=10, backend="numpy")
    >>> len(obj.x_train), len(obj.x_val)
    (40, 10)
    >>> sorted(obj({"lr": 0.1, "weight_decay": 1e-6}, seed=1, budget=None)["curves"])
    ['train_acc', 'train_loss', 'val_acc']
    """

    def __init__(self, x: Any, t: Any, *, validation: float | int = 0.2,
                 net: str | type = "MultiLayerNet", net_kwargs: Mapping[str, Any] | None = None,
                 optimizer: str = "SGD", optimizer_kwargs: Mapping[str, Any] | None = None,
                 epochs: int = 50, batch_size: int = 100, backend: Any = None,
                 device: Any = None, dtype: Any = None, seed: int = 0):
        x = np.asarray(to_host(x))
        t = np.asarray(to_host(t))
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, D), got {x.shape}")
        if t.ndim not in (1, 2) or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape (N,) or (N, C) with N = {x.shape[0]} rows of x, "
                             f"got {t.shape}")
        n = x.shape[0]
        n_val = self._n_val(validation, n)
        for what, v in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{what} must be a positive integer, got {v!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")

        if isinstance(net, str):
            if net not in NETS:
                raise ValueError(f"unknown net {net!r}; valid names are: {', '.join(NETS)}")
            self.net = net
        elif isinstance(net, type):
            self.net = net
        else:
            raise TypeError(f"net must be a name ({', '.join(NETS)}) or a class, got {net!r}")
        kw = {"hidden_size_list": list(BOOK_HIDDEN)} if net_kwargs is None else dict(net_kwargs)
        taken = sorted(set(kw) & {"backend", "device", "dtype", "seed"})
        if taken:
            raise ValueError(f"net_kwargs may not set {', '.join(taken)}: they are "
                             "NetworkObjective's own arguments (seed comes from the search)")
        unknown = sorted(set(kw) - _keywords(self._net_class))
        if unknown:
            raise ValueError(f"net_kwargs has keyword(s) {', '.join(unknown)} that "
                             f"{self._net_class.__name__} does not take")
        self.net_kwargs = kw
        self.optimizer = _optimizer_name(optimizer)
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.backend, self.device = self._where(backend, device)
        self.dtype = str(default_dtype() if dtype is None else dtype)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.seed = int(seed)

        # the book's shuffle_dataset, then the first int(N * rate) rows for validation
        perm = np.random.default_rng(self.seed).permutation(n)
        self.val_index, self.train_index = perm[:n_val], perm[n_val:]
        self.x_val, self.t_val = x[self.val_index], t[self.val_index]
        self.x_train, self.t_train = x[self.train_index], t[self.train_index]
        self.input_size = int(x.shape[1])
        self.output_size = int(t.shape[1]) if t.ndim == 2 else int(t.max()) + 1
        self._data_digest = _digest(self.x_train, self.t_train, self.x_val, self.t_val)

    # -- set-up -------------------------------------------------------------------------------

    @staticmethod
    def _n_val(validation: Any, n: int) -> int:
        if isinstance(validation, bool):
            raise TypeError("validation must be a fraction in (0, 1) or a number of rows")
        if isinstance(validation, numbers.Integral):
            n_val = int(validation)
        elif isinstance(validation, numbers.Real) and 0 < validation < 1:
            n_val = int(n * float(validation))
        else:
            raise ValueError(f"validation must be a fraction in (0, 1) or a number of rows, "
                             f"got {validation!r}")
        if not 1 <= n_val < n:
            raise ValueError(f"validation leaves {n_val} of {n} rows for validation; it needs at "
                             "least one row for validation and one for training")
        return n_val

    @staticmethod
    def _where(backend: Any, device: Any) -> tuple[str, str | None]:
        if device is not None and not isinstance(device, str):
            if isinstance(device, numbers.Integral) and not isinstance(device, bool):
                device = str(int(device))
            else:
                raise TypeError(f"device must be a string (it is sent to the workers), got "
                                f"{device!r}")
        if isinstance(backend, str):
            if backend == "worker":
                return "worker", device
            return resolve_name(backend), device
        if backend is None:
            be = get_backend(None)  # this process's default, sent by name
            name = be.name
            if device is None and not be.is_default_device:
                device = be.device_name
            return name, device
        be = backend if isinstance(backend, Backend) else get_backend(backend)
        if device is None and not be.is_default_device:
            device = be.device_name
        return be.name, device

    @property
    def _net_class(self) -> type:
        return NETS[self.net] if isinstance(self.net, str) else self.net

    def valid_keys(self, optimizers: list[str] | None = None) -> set[str]:
        """The space keys this objective understands (for the given optimizer names)."""
        names = [self.optimizer] if optimizers is None else [_optimizer_name(o)
                                                              for o in optimizers]
        keys = set(_SPECIAL)
        for name in names:
            keys |= _keywords(OPTIMIZERS[name])
        keys |= _keywords(self._net_class) - set(_NET_OWN)
        return keys

    def validate_space(self, space: Mapping[str, Any]) -> None:
        """Refuse a space with a key the objective cannot use (before any trial runs)."""
        from xpnet.search.spaces import Choice

        opt = space.get("optimizer")
        if isinstance(opt, Choice):
            names = [str(o) for o in opt.options]
        elif opt is not None:
            names = [str(opt)]
        else:
            names = None
        valid = self.valid_keys(names)
        unknown = sorted(set(space) - valid)
        if unknown:
            raise ValueError(f"the space has key(s) {', '.join(unknown)} that NetworkObjective "
                             f"does not use; valid keys: {', '.join(sorted(valid))}")

    def describe(self) -> dict[str, Any]:
        """What makes two objectives the same (stored in the results file): the data (a
        digest of both splits), network, optimizer, epochs, batch size, backend and dtype.
        The device is left out, so a search may resume on other hardware."""
        net = self.net if isinstance(self.net, str) else \
            f"{self.net.__module__}.{self.net.__qualname__}"
        return {
            "type": "xpnet.search.NetworkObjective",
            "data": self._data_digest,
            "n_train": int(len(self.x_train)),
            "n_val": int(len(self.x_val)),
            "split_seed": self.seed,
            "net": net,
            "net_kwargs": self.net_kwargs,
            "optimizer": self.optimizer,
            "optimizer_kwargs": self.optimizer_kwargs,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "backend": self.backend,
            "dtype": self.dtype,
        }

    def __repr__(self) -> str:
        return (f"NetworkObjective({len(self.x_train)} training / {len(self.x_val)} validation "
                f"rows, {self.net if isinstance(self.net, str) else self.net.__name__}, "
                f"{self.optimizer}, epochs={self.epochs}, backend={self.backend!r})")

    # -- training -----------------------------------------------------------------------------

    def get_backend(self) -> Backend:
        """The backend a trial uses in this process (``"worker"`` resolved here)."""
        backend = None if self.backend == "worker" else self.backend
        device = self.device
        if device == "worker":
            device = os.environ.get("XPNET_DEVICE", "").strip() or None
        if backend is None:
            return get_backend(None, device)
        return get_backend(backend, device)

    def _split_params(self, params: Mapping[str, Any]) -> tuple[str, dict, dict, int]:
        params = dict(params)
        optimizer = _optimizer_name(params.pop("optimizer", self.optimizer))
        batch_size = params.pop("batch_size", self.batch_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        opt_keys = _keywords(OPTIMIZERS[optimizer])
        net_keys = _keywords(self._net_class) - set(_NET_OWN)
        opt_kw = dict(self.optimizer_kwargs)
        net_kw = dict(self.net_kwargs)
        if "weight_decay" in params:
            net_kw["weight_decay_lambda"] = params.pop("weight_decay")
        for key, value in params.items():
            if key in opt_keys:
                opt_kw[key] = value
            elif key in net_keys:
                net_kw[key] = value
            else:
                raise TypeError(f"parameter {key!r} is neither a keyword of {optimizer} nor of "
                                f"{self._net_class.__name__}")
        return optimizer, opt_kw, net_kw, int(batch_size)

    def fit(self, params: Mapping[str, Any], *, seed: int,
            budget: int | None = None) -> tuple[Any, Trainer]:
        """Build and train one network; returns ``(network, trainer)``."""
        epochs = self.epochs if budget is None else budget
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
            raise ValueError(f"budget must be a positive number of epochs, got {budget!r}")
        optimizer, opt_kw, net_kw, batch_size = self._split_params(params)
        be = self.get_backend()
        net_kw.setdefault("input_size", self.input_size)
        net_kw.setdefault("output_size", self.output_size)
        net = self._net_class(**net_kw, backend=be, dtype=self.dtype, seed=int(seed))
        trainer = Trainer(net, self.x_train, self.t_train, self.x_val, self.t_val,
                          epochs=int(epochs), mini_batch_size=batch_size, optimizer=optimizer,
                          optimizer_param=opt_kw, verbose=False, progress=False, seed=int(seed))
        trainer.train()
        return net, trainer

    def __call__(self, params: Mapping[str, Any], *, seed: int,
                 budget: int | None = None) -> dict[str, Any]:
        net, tr = self.fit(params, seed=seed, budget=budget)
        ipe = max(1, tr.iter_per_epoch)
        losses = np.asarray(tr.train_loss_list, dtype=np.float64)
        loss_curve = [float(np.mean(losses[i:i + ipe])) for i in range(0, len(losses), ipe)]
        val, train = [float(v) for v in tr.test_acc_list], [float(v) for v in tr.train_acc_list]
        be = net.backend
        return {
            "val_acc": val[-1],
            "train_acc": train[-1],
            "train_loss": loss_curve[-1],
            "epochs": tr.current_epoch,
            "curves": {"val_acc": val, "train_acc": train, "train_loss": loss_curve},
            "backend": be.name,
            "device": be.device_name,
        }

    def evaluate(self, params: Mapping[str, Any], *, seed: int, budget: int | None,
                 x_test: Any = None, t_test: Any = None,
                 save: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train trial ``(params, seed, budget)`` again; score it on a test set and/or save it.

        Returns ``{"test_acc", "val_acc", "path", "backend", "device"}``: ``test_acc`` (None
        without a test set); ``val_acc``, which lets the caller check that the network is the
        trial's (bit-identical on NumPy); ``path``, the checkpoint written with ``save``
        (``net.save(save, optimizer=...)``: read it back with :func:`xpnet.load`), else None.
        A network class without a ``save`` method is refused before any training.
        """
        if (x_test is None) != (t_test is None):
            raise ValueError("give both x_test and t_test, or neither")
        if x_test is not None:
            x_test, t_test = np.asarray(to_host(x_test)), np.asarray(to_host(t_test))
            if x_test.ndim != 2 or x_test.shape[1] != self.input_size:
                raise ValueError(f"x_test must have shape (M, {self.input_size}), got "
                                 f"{x_test.shape}")
            if t_test.shape[:1] != x_test.shape[:1]:
                raise ValueError(f"t_test must have {x_test.shape[0]} rows, got {t_test.shape}")
        if save is not None and not callable(getattr(self._net_class, "save", None)):
            raise RuntimeError(f"{self._net_class.__name__} has no save method: cannot save "
                               "the best network")
        net, tr = self.fit(params, seed=seed, budget=budget)
        test_acc = None if x_test is None else float(net.accuracy(x_test, t_test))
        path = None
        if save is not None:
            path = net.save(save, optimizer=tr.optimizer)
            path = str(save if path is None else path)
        return {"test_acc": test_acc, "val_acc": float(tr.test_acc_list[-1]), "path": path,
                "backend": net.backend.name, "device": net.backend.device_name}
