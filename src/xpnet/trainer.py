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

import contextlib
import copy
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.devicelog import DeviceLog
from xpnet.errors import CheckpointError, TrainingDivergedError, TrainingInterrupted
from xpnet.optim import Optimizer, get_optimizer
from xpnet.progress import progress as _progress
from xpnet.validation import as_float, as_int

__all__ = ["BEST_CHECKPOINT", "LAST_CHECKPOINT", "LR_SCHEDULES", "Trainer", "clip_grad_norm",
           "make_lr_schedule", "train_steps"]

#: File names in a Trainer's ``checkpoint_dir``.
LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
#: Version of the Trainer's part of a checkpoint's metadata.
TRAINER_STATE_VERSION = 1

#: The named learning-rate schedules: name -> (required, optional with defaults) parameters,
#: PyTorch's names.  ``T_max`` of ``"cosine"`` defaults to the number of epochs.
LR_SCHEDULES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "step": (("step_size",), {"gamma": 0.1}),
    "exponential": (("gamma",), {}),
    "cosine": ((), {"T_max": None, "eta_min": 0.0}),
}


def make_lr_schedule(lr_schedule: Any, base_lr: float, params: Mapping[str, Any] | None = None,
                     *, epochs: int | None = None) -> Callable[[int], float]:
    """The learning rate of each epoch, as ``torch.optim.lr_scheduler`` stepped once per epoch.

    Returns ``lr_at(epoch) -> float`` for the 0-based epoch:

    * ``"step"``: ``base_lr * gamma ** (epoch // step_size)`` -- ``StepLR(step_size,
      gamma=0.1)``;
    * ``"exponential"``: ``base_lr * gamma ** epoch`` -- ``ExponentialLR(gamma)``;
    * ``"cosine"``: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` --
      ``CosineAnnealingLR(T_max, eta_min=0)`` (``eta_min`` an absolute rate; past ``T_max`` the
      rate rises again, as PyTorch's does).  ``T_max`` defaults to ``epochs`` (PyTorch requires
      it);
    * a callable ``f``: ``base_lr * f(epoch)`` -- ``LambdaLR(f)``.

    PyTorch computes the rates recursively (``lr * gamma`` each step); these closed forms are
    the same numbers up to rounding.

    Parameters
    ----------
    lr_schedule : {'step', 'exponential', 'cosine'} or callable
    base_lr : float
        The optimizer's initial learning rate.
    params : dict, optional
        The schedule's parameters, PyTorch's names (see :data:`LR_SCHEDULES`).
    epochs : int, optional
        The default ``T_max`` of ``"cosine"``.

    Examples
    --------
    >>> lr_at = make_lr_schedule("step", 0.1, {"step_size": 2, "gamma": 0.5})
    >>> [lr_at(e) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """
    given = {} if params is None else params
    if not isinstance(given, Mapping):
        raise TypeError(f"lr_schedule_params must be a dict, got {params!r}")
    base = float(base_lr)
    if callable(lr_schedule) and not isinstance(lr_schedule, str):
        if given:
            raise ValueError(f"lr_schedule_params {sorted(given)} do not apply to a callable "
                             "lr_schedule (it gets the epoch, as torch's LambdaLR)")
        f = lr_schedule

        def lr_lambda(epoch: int) -> float:
            factor = f(epoch)
            try:
                value = float(factor)
            except (TypeError, ValueError):
                raise TypeError(f"lr_schedule({epoch}) must return a number, got "
                                f"{factor!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"lr_schedule({epoch}) returned {factor!r}; the factor must "
                                 "be a finite number >= 0")
            return base * value

        return lr_lambda
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; use None, a callable "
                         f"(epoch -> factor) or one of {', '.join(map(repr, LR_SCHEDULES))}")
    required, optional = LR_SCHEDULES[lr_schedule]
    unknown = sorted(set(given) - set(required) - set(optional))
    missing = [k for k in required if k not in given]
    if unknown or missing:
        takes = ", ".join([*required, *(f"{k}={v!r}" for k, v in optional.items())])
        problem = (f"unknown {unknown}" if unknown else "") + \
                  ("; " if unknown and missing else "") + (f"missing {missing}" if missing else "")
        raise ValueError(f"lr_schedule_params for {lr_schedule!r}: {problem} (it takes: "
                         f"{takes})")
    hp = {**optional, **given}

    def number(name: str, low: float, *, integer: bool = False, strict: bool = False) -> Any:
        v = hp[name]
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and (
            v > low if strict else v >= low) and (not integer or float(v).is_integer())
        if not ok:
            kind = "an integer" if integer else "a finite number"
            raise ValueError(f"lr_schedule_params[{name!r}] must be {kind} "
                             f"{'>' if strict else '>='} {low:g}, got {v!r}")
        return int(v) if integer else float(v)

    if lr_schedule == "step":
        step_size, gamma = number("step_size", 0, integer=True, strict=True), number("gamma", 0)
        return lambda epoch: base * gamma ** (epoch // step_size)
    if lr_schedule == "exponential":
        gamma = number("gamma", 0)
        return lambda epoch: base * gamma ** epoch
    if hp["T_max"] is None:
        hp["T_max"] = max(int(epochs or 0), 1)
    t_max, eta_min = number("T_max", 0, integer=True, strict=True), number("eta_min", 0)
    return lambda epoch: eta_min + (base - eta_min) * (1.0 + math.cos(math.pi * epoch / t_max)) / 2


def clip_grad_norm(grads: Mapping[str, Any], max_norm: float, *, xp: Any = None) -> Any:
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    ``torch.nn.utils.clip_grad_norm_(parameters, max_norm)``: with ``total`` the norm of all
    gradients together, every gradient is multiplied by ``min(max_norm / (total + 1e-6), 1)``.
    On a network's gradients (views of one flat buffer, :class:`~xpnet.params.ParamDict`) that
    is one norm and one multiplication over the buffer.  Everything stays on the device (no
    host synchronisation): the returned norm is a 0-d array.

    Parameters
    ----------
    grads : dict of arrays
        Modified in place.
    max_norm : float > 0
    xp : namespace, optional
        The gradients' array namespace; looked up when None.

    Returns
    -------
    array, 0-d
        The global norm before clipping (as PyTorch returns it).

    Examples
    --------
    >>> import numpy as np
    >>> g = {"a": np.array([3.0]), "b": np.array([4.0])}
    >>> float(clip_grad_norm(g, 1.0))
    5.0
    >>> [round(float(v[0]), 6) for v in g.values()]
    [0.6, 0.8]
    """
    flat = grads.flat_view() if hasattr(grads, "flat_view") else None
    arrays = [flat] if flat is not None else list(grads.values())
    if not arrays:
        raise ValueError("clip_grad_norm: grads is empty")
    if xp is None:
        from array_api_compat import array_namespace

        xp = array_namespace(*arrays)
    total = None
    for g in arrays:
        g1 = g if g.ndim == 1 else xp.reshape(g, (-1,))
        sq = xp.vecdot(g1, g1)  # no temporary (NumPy: 8x faster than sum(g * g) at 2.9 M)
        total = sq if total is None else total + sq
    total = xp.sqrt(total)
    coef = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)
    for g in arrays:
        g *= coef
    return total


def train_steps(runs: Mapping[Any, tuple[Any, Any]], x: Any, t: Any, batches: Iterable[Any],
                logs: Mapping[Any, Any] | None = None, bar: Any = None, *,
                xp: Any = None, grad_clip: float | None = None) -> int:
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
    grad_clip : float, optional
        Clip each step's gradients to this global L2 norm before the update
        (:func:`clip_grad_norm`).

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
            if grad_clip is not None:
                clip_grad_norm(grads, grad_clip, xp=xp)
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
    checkpoint_dir : str or os.PathLike, optional
        A folder (created if needed) for checkpoints (see :mod:`xpnet.checkpoint`):
        ``last.safetensors`` written at the end of every epoch and on an interruption, and
        ``best.safetensors`` whenever the test accuracy is the best so far.  Each holds the
        network, the optimizer's state and, in its metadata, everything else the run needs to
        continue: the history, the epoch and step counters and the batch-order stream (the
        dropout streams are saved with the network).  One file rather than a checkpoint plus
        a side-car JSON: it is replaced in one atomic rename, so the weights and the history
        can never be from different steps.  Files of an earlier run are replaced.
    resume : bool
        Continue the run saved in ``checkpoint_dir``'s ``last.safetensors``: it is read and
        restored here, into ``network`` and this Trainer's optimizer (same class; the saved
        hyperparameters win), and ``train()`` then runs until ``epochs`` epochs in all are done.
        Run with the same data, ``mini_batch_size`` and network, the result equals that of an
        uninterrupted run (bit for bit on NumPy and on the same device elsewhere).

    lr_schedule : {None, 'step', 'exponential', 'cosine'} or callable, optional
        Set the optimizer's ``lr`` at the start of every epoch, as PyTorch's ``StepLR`` /
        ``ExponentialLR`` / ``CosineAnnealingLR`` / ``LambdaLR`` (a callable gets the 0-based
        epoch and returns a factor of the initial ``lr``) stepped once per epoch; see
        :func:`make_lr_schedule`.  Not in the book.
    lr_schedule_params : dict, optional
        The schedule's parameters, PyTorch's names: ``step_size``, ``gamma`` (``"step"``,
        ``"exponential"``), ``T_max`` (default: ``epochs``), ``eta_min`` (an absolute rate;
        ``"cosine"``).
    grad_clip : float, optional
        Clip every step's gradients to this global L2 norm, as
        ``torch.nn.utils.clip_grad_norm_`` over all parameters (:func:`clip_grad_norm`; on the
        device, no host synchronisation).  Not in the book.

    Raises
    ------
    TrainingDivergedError
        From :meth:`train`, when a step loss is NaN or infinite (checked once per epoch, on the
        losses copied to the host anyway).  The last good checkpoint is kept.
    TrainingInterrupted
        From :meth:`train`, on SIGINT (Ctrl-C) or SIGTERM: training stops after the current
        step, saves ``last.safetensors`` (with ``checkpoint_dir``) and raises this
        ``KeyboardInterrupt``.  A second signal aborts at once.

    Attributes
    ----------
    train_loss_list : list of float
        The loss of every step.
    train_acc_list, test_acc_list : list of float
        Accuracies at the end of every epoch.
    epoch_times : list of float
        Wall time of every epoch in seconds (training and evaluation).
    lr_list : list of float
        The learning rate of every epoch.

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

    The signal handlers are installed only while :meth:`train` runs, and only in the main
    thread (Python delivers signals there); the previous handlers are put back afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import MultiLayerNet
    >>> x, t = np.eye(4, dtype=np.float32), np.arange(4)
    >>> trainer = Trainer(MultiLayerNet(4, [3], 4, seed=0), x, t, x, t, epochs=3,
    ...                   mini_batch_size=2, verbose=False, lr_schedule="exponential",
    ...                   lr_schedule_params={"gamma": 0.5}, grad_clip=1.0)
    >>> trainer.train()["lr"]
    [0.01, 0.005, 0.0025]
    """

    def __init__(self, network: Any, x_train: Any, t_train: Any, x_test: Any, t_test: Any,
                 epochs: int = 20, mini_batch_size: int = 100, optimizer: Any = "SGD",
                 optimizer_param: dict[str, Any] | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool = True,
                 *, seed: int | None = None, progress: bool | None = None,
                 on_epoch_end: Callable[[Trainer], Any] | None = None,
                 check_data: bool = True,
                 checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
                 lr_schedule: Any = None, lr_schedule_params: dict[str, Any] | None = None,
                 grad_clip: float | None = None):
        self.epochs = as_int(epochs, "epochs")
        self.batch_size = as_int(mini_batch_size, "mini_batch_size")
        self.evaluate_sample_num_per_epoch = as_int(
            evaluate_sample_num_per_epoch, "evaluate_sample_num_per_epoch", none_ok=True)
        grad_clip = None if grad_clip is None else as_float(grad_clip, "grad_clip", low=0.0,
                                                            low_open=True)
        if lr_schedule is None and lr_schedule_params:
            raise ValueError("lr_schedule_params given without an lr_schedule")
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
        self._lr_at = None if lr_schedule is None else make_lr_schedule(
            lr_schedule, self.optimizer.lr, lr_schedule_params, epochs=self.epochs)
        self.lr_schedule = lr_schedule
        self.lr_schedule_params = None if lr_schedule_params is None else dict(lr_schedule_params)
        self.grad_clip = grad_clip
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
        self.lr_list: list[float] = []
        self._init_checkpointing(checkpoint_dir, resume)

    # -- one epoch --------------------------------------------------------------------------

    def _run_epoch(self, bar: Any) -> bool:
        """Run the rest of the current epoch; False when a signal stopped it part-way."""
        be = self.backend
        t0 = time.perf_counter()
        start = self._step_in_epoch
        if start == 0:
            self._epoch_rng_state = copy.deepcopy(self._rng.bit_generator.state)
        else:  # continuing an epoch: its permutation again, from the state it was drawn with
            self._rng.bit_generator.state = copy.deepcopy(self._epoch_rng_state)
        if self._lr_at is not None:  # the epoch's rate (also when continuing it)
            self.optimizer.lr = self._lr_at(self.current_epoch)
        if start == 0:
            self.lr_list.append(self.optimizer.lr)
        order = be.asarray(self._rng.permutation(self.train_size))
        log = DeviceLog(be)  # flushed once, at the end of the epoch
        first_iter = self.current_iter
        try:
            train_steps({"net": (self.network, self.optimizer)}, self.x_train, self.t_train,
                        self._batches(order, start), {"net": log}, bar, xp=be.xp,
                        grad_clip=self.grad_clip)
        finally:  # an interrupted epoch keeps the losses of its completed steps
            losses = log.values()
            self.train_loss_list.extend(losses)
            self.current_iter += len(losses)
            self._step_in_epoch = start + len(losses)
            self._epoch_elapsed += time.perf_counter() - t0
        self._check_losses(losses, first_iter)
        if self._step_in_epoch < self.iter_per_epoch:
            return False
        t1 = time.perf_counter()
        self.current_epoch += 1
        self._step_in_epoch = 0
        self._evaluate()
        be.synchronize()
        self.epoch_times.append(self._epoch_elapsed + (time.perf_counter() - t1))
        self._epoch_elapsed = 0.0
        return True

    def _batches(self, order: Any, start: int) -> Iterator[Any]:
        """The index arrays of the epoch's steps from ``start``, until a signal asks to stop."""
        bs = self.batch_size
        for i in range(start, self.iter_per_epoch):
            if self._stop_signal is not None:
                return
            yield order[i * bs:(i + 1) * bs]

    def _check_losses(self, losses: list[float], first_iter: int) -> None:
        """TrainingDivergedError at the first non-finite loss (read on the host anyway)."""
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is None:
            return
        step = first_iter + bad + 1
        last = first_iter + bad - 1  # index of the loss before it, in train_loss_list
        last_finite = self.train_loss_list[last] if last >= 0 else None
        lr = float(getattr(self.optimizer, "lr", float("nan")))
        epoch = self.current_epoch + 1
        span = (first_iter + 1, first_iter + len(losses))
        saved = self._last_saved
        if saved is not None:
            kept = (f"the last good checkpoint is kept: {saved[0]} (epoch {saved[1]}"
                    + (f", step {saved[2]}" if saved[2] else "") + ")")
        else:
            kept = ("no checkpoint was written (give checkpoint_dir= to keep one)"
                    if self.checkpoint_dir is None else "no checkpoint was written yet")
        last_text = ("none before it" if last_finite is None
                     else f"{last_finite:.6g} at step {step - 1}")
        raise TrainingDivergedError(
            f"training diverged: the loss is {losses[bad]} at step {step} (epoch {epoch}; "
            f"steps {span[0]}-{span[1]} were checked together), lr={lr:g}; last finite loss "
            f"{last_text}; {kept}.  Try a smaller learning rate, or look for NaN/inf in the "
            "data.", epoch=epoch, step=step, step_range=span, lr=lr,
            last_finite_loss=last_finite, checkpoint=None if saved is None else saved[0])

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
        """Run all epochs; return :attr:`history`.

        Each call runs ``epochs`` more epochs, except after ``resume=True`` or an interruption,
        when it runs until the interrupted run's total is done.

        Raises
        ------
        TrainingDivergedError
            At the end of the epoch in which a step loss became NaN or infinite.
        TrainingInterrupted
            After SIGINT or SIGTERM, once the state is saved.
        """
        target = self._pending_target
        if target is None:
            target = self.current_epoch + self.epochs
        self._pending_target = None
        remaining = max(target - self.current_epoch, 0) * self.iter_per_epoch
        bar = self._progress_bar(max(remaining - self._step_in_epoch, 0))
        self._stop_signal = None
        try:
            with self._signal_handlers():
                while self.current_epoch < target and self._stop_signal is None:
                    if not self._run_epoch(bar):
                        break  # stopped by a signal part-way
                    self._save_epoch_checkpoints()
                    if self.progress:
                        self._report_epoch(bar)
                    if self.on_epoch_end is not None:
                        try:
                            self.on_epoch_end(self)
                        except StopIteration:
                            break
                if self._stop_signal is not None:
                    self._pending_target = target
                    self._stop_after_signal()
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
            "lr": list(self.lr_list),
            "iter_per_epoch": self.iter_per_epoch,
            "epochs": self.current_epoch,
            "optimizer": type(self.optimizer).__name__,
            "optimizer_param": self.optimizer.hyperparameters(),
            "batch_size": self.batch_size,
            "backend": self.backend.name,
            "device": str(self.backend.device),
        }

    def _progress_bar(self, total: int | None = None) -> Any:
        if not self.progress:
            return None
        return _progress(total=self.max_iter if total is None else total, desc="train",
                         unit="step", enabled=True, leave=True)

    # -- checkpoints, resuming and signals ----------------------------------------------------

    def _init_checkpointing(self, checkpoint_dir: Any, resume: bool) -> None:
        if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(f"checkpoint_dir must be a str or os.PathLike, not "
                            f"{type(checkpoint_dir).__name__}")
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= (the folder of the run to "
                             "continue)")
        #: plain JSON saved with every checkpoint (``xpnet train`` keeps its arguments here)
        self.checkpoint_metadata: dict[str, Any] = {}
        self.best_test_acc: float | None = None
        self.best_epoch: int | None = None
        self._step_in_epoch = 0  # steps of the current, unfinished epoch already taken
        self._epoch_rng_state: dict[str, Any] | None = None  # batch order before its draw
        self._epoch_elapsed = 0.0
        self._pending_target: int | None = None
        self._stop_signal: int | None = None
        self._last_saved: tuple[Path, int, int] | None = None
        if self.checkpoint_dir is not None:
            from xpnet.network import Network

            if not isinstance(self.network, Network):
                raise TypeError(f"checkpoint_dir needs an xpnet network (a subclass of "
                                f"xpnet.network.Network), not a {type(self.network).__name__}")
            self.network.get_config()  # a configuration a checkpoint cannot hold: now, not later
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            if resume:
                self.restore_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT)

    def checkpoint_state(self) -> dict[str, Any]:
        """The Trainer's own state (not the network's nor the optimizer's), as plain JSON."""
        mid_epoch = self._step_in_epoch > 0
        return {
            "version": TRAINER_STATE_VERSION,
            "epoch": self.current_epoch,
            "step_in_epoch": self._step_in_epoch,
            "iter": self.current_iter,
            "train_size": self.train_size,
            "batch_size": self.batch_size,
            "iter_per_epoch": self.iter_per_epoch,
            "batch_rng": copy.deepcopy(self._epoch_rng_state if mid_epoch
                                       else self._rng.bit_generator.state),
            "epoch_elapsed": self._epoch_elapsed,
            "history": {"train_loss": list(self.train_loss_list),
                        "train_acc": list(self.train_acc_list),
                        "test_acc": list(self.test_acc_list),
                        "epoch_times": list(self.epoch_times),
                        "lr": list(self.lr_list)},
            "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch,
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write everything needed to continue this run to ``path`` (one ``.safetensors``
        file): the network, the optimizer and :meth:`checkpoint_state`."""
        from xpnet.checkpoint import save

        path = save(self.network, path, optimizer=self.optimizer,
                    extra={"trainer": self.checkpoint_state(), "user": self.checkpoint_metadata})
        self._last_saved = (path, self.current_epoch, self._step_in_epoch)
        return path

    def restore_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Continue the run saved in ``path`` (what ``resume=True`` does with ``last.safetensors``).

        Everything is checked before anything changes: the file, the network (class, names,
        shapes), the optimizer's class, and that the data and ``mini_batch_size`` give the same
        epochs as the saved run.

        Raises
        ------
        FileNotFoundError
            If there is no such file.
        CheckpointError
            If the file is damaged, or was not written by a Trainer.
        ValueError
            If the run does not fit this Trainer.
        """
        from xpnet.checkpoint import read

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume: {path} does not exist (train "
                                    "without resume to start a run there)")
        ck = read(path)
        extra = ck.extra if isinstance(ck.extra, dict) else {}
        state = extra.get("trainer")
        if not isinstance(state, dict):
            raise CheckpointError(path, "holds no Trainer state (written by net.save, not by a "
                                        "Trainer): load it with xpnet.load instead")
        rng = self._checked_trainer_state(path, ck, state)
        ck.restore(self.network, self.optimizer)  # checks, then copies
        history = state["history"]
        self.train_loss_list = [float(v) for v in history["train_loss"]]
        self.train_acc_list = [float(v) for v in history["train_acc"]]
        self.test_acc_list = [float(v) for v in history["test_acc"]]
        self.epoch_times = [float(v) for v in history["epoch_times"]]
        self.lr_list = [float(v) for v in history.get("lr", [])]
        self.current_epoch = state["epoch"]
        self.current_iter = state["iter"]
        self._step_in_epoch = state["step_in_epoch"]
        self._epoch_elapsed = float(state.get("epoch_elapsed") or 0.0)
        self._rng = rng
        self._epoch_rng_state = copy.deepcopy(rng.bit_generator.state) \
            if self._step_in_epoch else None
        self.best_test_acc = state.get("best_test_acc")
        self.best_epoch = state.get("best_epoch")
        user = extra.get("user")
        self.checkpoint_metadata = dict(user) if isinstance(user, dict) else {}
        self._pending_target = self.epochs
        self._last_saved = (path, self.current_epoch, self._step_in_epoch)

    def _checked_trainer_state(self, path: Path, ck: Any, state: dict[str, Any]) -> Any:
        """Check the Trainer's part of a checkpoint; return the batch-order generator."""
        def bad(problem: str) -> CheckpointError:
            return CheckpointError(path, problem)

        version = state.get("version")
        if not isinstance(version, int) or version > TRAINER_STATE_VERSION:
            raise bad(f"holds Trainer state of version {version!r}; this xpnet reads "
                      f"{TRAINER_STATE_VERSION}: upgrade xpnet")
        for key, mine in (("train_size", self.train_size), ("batch_size", self.batch_size),
                          ("iter_per_epoch", self.iter_per_epoch)):
            if state.get(key) != mine:
                raise ValueError(
                    f"{path} continues a run with {key}={state.get(key)!r}, but this Trainer has "
                    f"{key}={mine}: resume with the same training data and mini_batch_size")
        if not ck.has_optimizer:
            raise bad("holds no optimizer state")
        saved_opt = ck.header["optimizer"]
        if saved_opt["class"] != type(self.optimizer).__name__:
            raise ValueError(f"{path} continues a run with the {saved_opt['class']} optimizer, "
                             f"but this Trainer's is {type(self.optimizer).__name__}")
        mine = self.optimizer.hyperparameters()
        saved_hp = dict(saved_opt["hyperparameters"])
        if self._lr_at is not None:  # the schedule sets lr every epoch: the saved one is its
            saved_hp.pop("lr", None)
            mine = {k: v for k, v in mine.items() if k != "lr"}
        if saved_hp != mine:
            warnings.warn(f"{path}: resuming with the saved {saved_opt['class']} "
                          f"hyperparameters {saved_opt['hyperparameters']}, not {mine}",
                          stacklevel=4)
        try:
            config = self.network.get_config()
        except (TypeError, ValueError):
            config = None
        if config is not None and config != ck.config:
            diff = sorted(k for k in set(config) | set(ck.config)
                          if config.get(k) != ck.config.get(k))
            warnings.warn(f"{path}: the network was saved with other arguments ({', '.join(diff)}"
                          f"); its saved state is loaded into this one", stacklevel=4)
        try:
            history = state["history"]
            lists = [history[k] for k in ("train_loss", "train_acc", "test_acc", "epoch_times")]
            epoch, step, it = state["epoch"], state["step_in_epoch"], state["iter"]
            ints = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in (epoch, step, it))
            consistent = ints and step < self.iter_per_epoch \
                and it == epoch * self.iter_per_epoch + step and len(lists[0]) == it \
                and len(lists[1]) == len(lists[2]) == epoch and len(lists[3]) == epoch
            values_ok = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for lst in lists for v in lst)
        except (KeyError, TypeError):
            consistent = values_ok = False
        if not (consistent and values_ok):
            raise bad("holds inconsistent Trainer state (counters and history do not agree)")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["batch_rng"]
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"holds a malformed batch-order random state ({exc})") from None
        return rng

    def _save_epoch_checkpoints(self) -> None:
        """``best`` when the test accuracy is the best so far, then ``last``."""
        if self.checkpoint_dir is None:
            return
        acc = self.test_acc_list[-1] if self.test_acc_list else None
        if acc is not None and (self.best_test_acc is None or acc > self.best_test_acc):
            self.best_test_acc, self.best_epoch = acc, self.current_epoch
            self.save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT)
        self.save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT)

    def _stop_after_signal(self) -> None:
        """Save (with a checkpoint_dir) and raise TrainingInterrupted."""
        signum = self._stop_signal
        path = None
        if self.checkpoint_dir is not None:
            path = self.checkpoint_dir / LAST_CHECKPOINT
            if self._last_saved != (path, self.current_epoch, self._step_in_epoch):
                self.save_checkpoint(path)
        name = signal.Signals(signum).name
        where = (f"epoch {self.current_epoch + 1}, step {self._step_in_epoch}/"
                 f"{self.iter_per_epoch}" if self._step_in_epoch
                 else f"the end of epoch {self.current_epoch}")
        saved = f"saved {path}" if path is not None else "nothing saved (no checkpoint_dir)"
        raise TrainingInterrupted(f"training stopped by {name} at {where}; {saved}",
                                  signal=signum, checkpoint=path)

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask to stop after the current step (a second one aborts), while the
        block runs in the main thread; the previous handlers are restored after it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:
                raise KeyboardInterrupt  # the second signal: stop at once
            self._stop_signal = signum
            print(f"\n{signal.Signals(signum).name}: stopping after this step and saving "
                  "(again to abort at once)", file=sys.stderr, flush=True)

        previous = {}
        try:
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                if sig is not None:
                    previous[sig] = signal.signal(sig, handler)
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, signal.SIG_DFL if old is None else old)

    def _report_epoch(self, bar: Any) -> None:
        loss = self.train_loss_list[-1] if self.train_loss_list else float("nan")
        msg = (f"epoch {self.current_epoch}/{self.epochs}  loss {loss:.4f}  "
               f"train acc {self.train_acc_list[-1]:.4f}  test acc {self.test_acc_list[-1]:.4f}")
        if bar is not None and not bar.disable:
            bar.set_postfix(loss=f"{loss:.4f}", train_acc=f"{self.train_acc_list[-1]:.3f}",
                            test_acc=f"{self.test_acc_list[-1]:.3f}")
        else:
            print(f"=== {msg} ===")
