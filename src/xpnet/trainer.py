"""The book's ``Trainer`` (``common/trainer.py``), without a host sync on every step.

Examples
--------
>>> from xpnet import MultiLayerNet, Trainer
>>> from xpnet.datasets import load_mnist                          # doctest: +SKIP
>>> (x_train, t_train), (x_test, t_test) = load_mnist()           # doctest: +SKIP
>>> net = MultiLayerNet(784, [100, 100], 10, backend="torch")     # doctest: +SKIP
>>> trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=5,
...                   optimizer="Adam", optimizer_param={"lr": 1e-3})  # doctest: +SKIP
>>> history = trainer.train()                                     # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from xpnet.devicelog import DeviceLog
from xpnet.optim import Optimizer, get_optimizer
from xpnet.progress import progress as _progress
from xpnet.validation import as_int

__all__ = ["Trainer", "train_steps"]


def train_steps(runs: Mapping[Any, tuple[Any, Any]], x: Any, t: Any, batches: Iterable[Any],
                logs: Mapping[Any, Any] | None = None, bar: Any = None, *,
                xp: Any = None) -> int:
    """Take one gradient step per mini-batch, for every ``(network, optimizer)`` of ``runs``.

    The book's loop body -- ``grads = network.gradient(x_batch, t_batch)``,
    ``optimizer.update(network.params, grads)`` -- shared by :class:`Trainer` and the
    experiments that train several networks on the same mini-batches.  Nothing in it waits for
    the device: batches are gathered on the device and the losses go into device logs.

    Parameters
    ----------
    runs : mapping
        ``key -> (network, optimizer)``; every step trains each of them, in order, on the same
        batch.
    x : array, shape (N, ...)
        Training inputs, already on the networks' device.
    t : array, shape (N,) or (N, C)
        Labels (class indices or one-hot rows), on the same device.
    batches : iterable of arrays
        One 1-D integer index array (on the device) per step; row ``i`` of a batch is
        ``x[idx[i]]``.  :class:`Trainer` passes slices of a per-epoch permutation, the
        experiments the book's with-replacement draws.
    logs : mapping, optional
        ``key -> log`` with an ``append`` method (a :class:`~xpnet.devicelog.DeviceLog`) for
        the keys whose step losses should be kept: the loss of the forward pass that computed
        the gradient (``network.last_loss``); for networks that don't keep it, the book's
        ``network.loss(x_batch, t_batch)`` after the update.
    bar : progress bar, optional
        Advanced by one per step (see :func:`xpnet.progress.progress`).
    xp : namespace, optional
        The array namespace of ``x``; looked up once when None.

    Returns
    -------
    int
        The number of steps taken (batches consumed).

    Notes
    -----
    The book logs the loss of an extra forward pass after the update; here it is the one the
    gradient already computed (before the update, with dropout active), which costs a third
    less and gives the same curves to the eye.

    Examples
    --------
    >>> import numpy as np, xpnet
    >>> net = xpnet.MultiLayerNet(4, [5], 3, seed=0)
    >>> x, t = np.ones((6, 4), dtype=np.float32), np.array([0, 1, 2, 0, 1, 2])
    >>> log = DeviceLog()
    >>> train_steps({"net": (net, xpnet.SGD(lr=0.1))}, x, t,
    ...             [np.array([0, 1, 2]), np.array([3, 4, 5])], {"net": log})
    2
    >>> len(log.values())
    2
    """
    if not runs:
        raise ValueError("runs is empty: give at least one (network, optimizer) pair")
    logs = {} if logs is None else logs
    unknown = [k for k in logs if k not in runs]
    if unknown:
        raise ValueError(f"logs has keys that are not in runs: {unknown!r}")
    if xp is None:
        from array_api_compat import array_namespace

        xp = array_namespace(x, t)
    pairs = [(net, opt, logs.get(key)) for key, (net, opt) in runs.items()]
    steps = 0
    for idx in batches:
        x_batch = xp.take(x, idx, axis=0)
        t_batch = xp.take(t, idx, axis=0)
        for net, opt, log in pairs:
            grads = net.gradient(x_batch, t_batch)
            opt.update(net.params, grads)
            if log is not None:
                loss = getattr(net, "last_loss", None)  # the gradient's own forward pass
                log.append(net.loss(x_batch, t_batch) if loss is None else loss)
        steps += 1
        if bar is not None:
            bar.update(1)
    return steps


def _rows(a: Any) -> int | None:
    """The number of rows of array-like ``a`` (None when it has no length)."""
    shape = getattr(a, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    try:
        return len(a)
    except TypeError:
        return None


def _data_to_device(network: Any, x_train: Any, t_train: Any, x_test: Any, t_test: Any,
                    check_values: bool) -> tuple[Any, Any, Any, Any]:
    """The four data arrays checked (sizes first, from metadata) and moved to the device.

    Through the network's entry checks (``_x`` / ``_t``) when it has them, with value checks
    (finite inputs, labels in range) when ``check_values``: once for the whole data set, so
    the training steps need not read values again.
    """
    for xa, ta, which in ((x_train, t_train, "train"), (x_test, t_test, "test")):
        nx, nt = _rows(xa), _rows(ta)
        if nx == 0:
            raise ValueError(
                f"the {which} set is empty (x_{which} has 0 rows): "
                + ("give at least one training sample" if which == "train" else
                   "Trainer measures the test accuracy every epoch; give at least one test "
                   "sample (or hold out part of the training set)"))
        if nx is not None and nt is not None and nx != nt:
            raise ValueError(f"x_{which} has {nx} rows but t_{which} has {nt} labels")
    to_x = getattr(network, "_x", None)
    to_t = getattr(network, "_t", None)
    if to_x is None or to_t is None:  # a network without entry checks: sizes only
        be = network.backend
        return tuple(be.asarray(a) for a in (x_train, t_train, x_test, t_test))
    xs = [to_x(x, name=f"x_{w}", values=check_values) for x, w in
          ((x_train, "train"), (x_test, "test"))]
    ts = [to_t(t, x.shape[0], name=f"t_{w}", values=check_values) for t, x, w in
          ((t_train, xs[0], "train"), (t_test, xs[1], "test"))]
    return xs[0], ts[0], xs[1], ts[1]


class Trainer:
    """Train a network with mini-batch gradient descent and record its learning curves.

    Parameters
    ----------
    network
        A network with the book's interface (``params``, ``gradient``, ``loss``, ``accuracy``)
        and, for xpnet networks, a ``backend``.
    x_train, t_train, x_test, t_test
        Data as NumPy arrays (or arrays of the network's backend).  The training set is copied
        to the device once.  Neither set may be empty.
    epochs, mini_batch_size : int
        Positive integers (``2.5`` or ``True`` are refused, not truncated).  A
        ``mini_batch_size`` larger than the training set is reduced to its size.
    optimizer : str or Optimizer
        A name for :func:`xpnet.get_optimizer` (``'SGD'``, ``'Momentum'``, ``'Nesterov'``,
        ``'AdaGrad'``, ``'RMSprop'``, ``'Adam'``, any case) or an optimizer object.
    optimizer_param : dict
        Keyword arguments of the optimizer (default ``{'lr': 0.01}``); only with a name (an
        optimizer object carries its own: giving both raises ``ValueError``).
    evaluate_sample_num_per_epoch : int, optional
        Evaluate accuracies on the first this-many samples of each set (all when None); a
        positive integer.
    verbose : bool
        A progress bar (tqdm, when installed; else one line per epoch) and the final accuracy.
    seed : int, optional
        Seeds the mini-batch order.
    progress : bool, optional
        Show the progress bar; defaults to ``verbose``.  ``verbose=False, progress=True`` gives
        the bar without the book's final accuracy print.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(trainer)`` after every epoch's evaluation (for logging,
        checkpoints or early stopping: raise ``StopIteration`` to end training there).
    check_data : bool
        Check the data's *values* once, here, before training: inputs finite (no NaN or
        inf: one NaN spreads to most weights within a few steps and training then runs to
        the end on NaN) and labels within ``[0, output_size)``.  Shapes, dtypes and sizes are
        checked either way.  Cost: one pass over the float inputs (about 11 ms for MNIST's
        60,000 x 784 float32 on one core, a third of the float64 -> float32 copy the data
        needs anyway; nothing for integer inputs) and a min/max of the labels; for data
        already on a GPU, one wait for the device per array.  ``False`` skips it.

    Attributes
    ----------
    train_loss_list : list of float
        The loss of every step.
    train_acc_list, test_acc_list : list of float
        Accuracies at the end of every epoch.
    epoch_times : list of float
        Wall time of every epoch in seconds (training and evaluation).

    Notes
    -----
    Differences from the book's ``Trainer``, none of which changes what is learned on average:

    * Mini-batches are drawn **without** replacement from a fresh permutation each epoch (the
      book draws every batch with replacement); an epoch is ``max(N // mini_batch_size, 1)``
      steps.
    * The recorded step loss is the one of the forward pass that computed the gradient (before
      the update, with dropout active), instead of an extra forward pass after the update.
    * Losses stay on the device during an epoch and are copied to the host once per epoch, so a
      GPU never waits for the host inside an epoch.
    * Accuracies are recorded at the end of each epoch (the book records after the first step of
      each epoch).

    If training is interrupted (``KeyboardInterrupt`` or an error), every completed step's loss
    is still in ``train_loss_list``.
    """

    def __init__(self, network: Any, x_train: Any, t_train: Any, x_test: Any, t_test: Any,
                 epochs: int = 20, mini_batch_size: int = 100, optimizer: Any = "SGD",
                 optimizer_param: dict[str, Any] | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool = True,
                 *, seed: int | None = None, progress: bool | None = None,
                 on_epoch_end: Callable[[Trainer], Any] | None = None,
                 check_data: bool = True):
        self.epochs = as_int(epochs, "epochs")
        self.batch_size = as_int(mini_batch_size, "mini_batch_size")
        self.evaluate_sample_num_per_epoch = as_int(
            evaluate_sample_num_per_epoch, "evaluate_sample_num_per_epoch", none_ok=True)
        be = getattr(network, "backend", None)
        if be is None:
            raise TypeError("Trainer needs an xpnet network (with a .backend)")
        if isinstance(optimizer, Optimizer):
            if optimizer_param is not None:
                raise ValueError("optimizer_param applies only when optimizer is a name; "
                                 f"{optimizer!r} carries its own hyperparameters")
            self.optimizer = optimizer
        else:
            params = {"lr": 0.01} if optimizer_param is None else dict(optimizer_param)
            self.optimizer = get_optimizer(optimizer, **params)
        self.network = network
        self.verbose = verbose
        self.progress = verbose if progress is None else bool(progress)
        self.on_epoch_end = on_epoch_end
        self.backend = be
        (self.x_train, self.t_train, self.x_test,
         self.t_test) = _data_to_device(network, x_train, t_train, x_test, t_test,
                                        bool(check_data))
        self.train_size = int(self.x_train.shape[0])
        self.batch_size = min(self.batch_size, self.train_size)
        self.iter_per_epoch = max(self.train_size // self.batch_size, 1)
        self.max_iter = self.epochs * self.iter_per_epoch
        self.current_iter = 0
        self.current_epoch = 0
        self._rng = np.random.default_rng(seed)

        self.train_loss_list: list[float] = []
        self.train_acc_list: list[float] = []
        self.test_acc_list: list[float] = []
        self.epoch_times: list[float] = []

    # -- one epoch --------------------------------------------------------------------------

    def _run_epoch(self, bar: Any) -> None:
        be = self.backend
        t0 = time.perf_counter()
        order = be.asarray(self._rng.permutation(self.train_size))
        bs = self.batch_size
        batches = (order[i * bs:(i + 1) * bs] for i in range(self.iter_per_epoch))
        log = DeviceLog(be)  # flushed once, at the end of the epoch
        try:
            train_steps({"net": (self.network, self.optimizer)}, self.x_train, self.t_train,
                        batches, {"net": log}, bar, xp=be.xp)
        finally:  # an interrupted epoch keeps the losses of its completed steps
            losses = log.values()
            self.train_loss_list.extend(losses)
            self.current_iter += len(losses)
        self.current_epoch += 1
        self._evaluate()
        be.synchronize()
        self.epoch_times.append(time.perf_counter() - t0)

    def _evaluate(self) -> None:
        n = self.evaluate_sample_num_per_epoch
        x_tr, t_tr, x_te, t_te = self.x_train, self.t_train, self.x_test, self.t_test
        if n is not None:
            n_tr, n_te = min(n, x_tr.shape[0]), min(n, x_te.shape[0])
            x_tr, t_tr = x_tr[:n_tr, ...], t_tr[:n_tr, ...]
            x_te, t_te = x_te[:n_te, ...], t_te[:n_te, ...]
        self.train_acc_list.append(self.network.accuracy(x_tr, t_tr))
        self.test_acc_list.append(self.network.accuracy(x_te, t_te))

    # -- public -----------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run all epochs; return :attr:`history`."""
        bar = self._progress_bar()
        try:
            for _ in range(self.epochs):
                self._run_epoch(bar)
                if self.progress:
                    self._report_epoch(bar)
                if self.on_epoch_end is not None:
                    try:
                        self.on_epoch_end(self)
                    except StopIteration:
                        break
        finally:
            if bar is not None:
                bar.close()
        if self.verbose and self.x_test.shape[0] > 0:
            acc = self.network.accuracy(self.x_test, self.t_test)
            print("=============== Final Test Accuracy ===============")
            print(f"test acc: {acc:.4f}")
        return self.history

    @property
    def history(self) -> dict[str, Any]:
        """The learning curves and timings so far, as plain Python lists (JSON-able)."""
        return {
            "train_loss": list(self.train_loss_list),
            "train_acc": list(self.train_acc_list),
            "test_acc": list(self.test_acc_list),
            "epoch_times": list(self.epoch_times),
            "iter_per_epoch": self.iter_per_epoch,
            "epochs": self.current_epoch,
            "optimizer": type(self.optimizer).__name__,
            "optimizer_param": self.optimizer.hyperparameters(),
            "batch_size": self.batch_size,
            "backend": self.backend.name,
            "device": str(self.backend.device),
        }

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        return _progress(total=self.max_iter, desc="train", unit="step", enabled=True,
                         leave=True)

    def _report_epoch(self, bar: Any) -> None:
        loss = self.train_loss_list[-1] if self.train_loss_list else float("nan")
        msg = (f"epoch {self.current_epoch}/{self.epochs}  loss {loss:.4f}  "
               f"train acc {self.train_acc_list[-1]:.4f}  test acc {self.test_acc_list[-1]:.4f}")
        if bar is not None and not bar.disable:
            bar.set_postfix(loss=f"{loss:.4f}", train_acc=f"{self.train_acc_list[-1]:.3f}",
                            test_acc=f"{self.test_acc_list[-1]:.3f}")
        else:
            print(f"=== {msg} ===")
