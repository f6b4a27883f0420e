"""The exceptions xpnet raises for faults at run time (not for bad arguments, which are
``ValueError`` / ``TypeError``).

* :class:`NonFiniteError` -- a loss, gradient or parameter holds NaN or infinity
  (``gradient(..., check_finite=True)``, ``optimizer.update(..., check_finite=True)``).
* :class:`TrainingDivergedError` -- :class:`~xpnet.Trainer` saw a non-finite step loss.
* :class:`TrainingInterrupted` -- :class:`~xpnet.Trainer` stopped on SIGINT/SIGTERM after saving.
* :class:`CheckpointError` -- a checkpoint file cannot be read: truncated, corrupted, not a
  checkpoint, or from a newer xpnet.

>>> import xpnet
>>> issubclass(xpnet.TrainingDivergedError, FloatingPointError)
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "NonFiniteError", "TrainingDivergedError", "TrainingInterrupted"]


class NonFiniteError(FloatingPointError):
    """A loss, gradient or parameter holds NaN or infinity.

    Attributes
    ----------
    names : list of str
        What was non-finite (``"loss"``, parameter names such as ``"W1"``).
    """

    def __init__(self, message: str, names: list[str] | None = None):
        super().__init__(message)
        self.names = list(names or [])


class TrainingDivergedError(NonFiniteError):
    """Training produced a non-finite loss; raised by :meth:`xpnet.Trainer.train`.

    Attributes
    ----------
    epoch : int
        The epoch (1-based) in which the loss first became non-finite.
    step : int
        The global step (1-based) of the first non-finite loss.
    step_range : tuple of int
        The steps ``(first, last)`` checked together (one epoch's, or those up to an
        interruption): the host saw them in one transfer.
    lr : float
        The optimizer's learning rate.
    last_finite_loss : float or None
        The last finite step loss before it (None if there was none).
    checkpoint : pathlib.Path or None
        The last good checkpoint, kept as it was (None without ``checkpoint_dir``).
    """

    def __init__(self, message: str, *, epoch: int, step: int, step_range: tuple[int, int],
                 lr: float, last_finite_loss: float | None, checkpoint: Any = None):
        super().__init__(message, ["loss"])
        self.epoch = epoch
        self.step = step
        self.step_range = step_range
        self.lr = lr
        self.last_finite_loss = last_finite_loss
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """:meth:`xpnet.Trainer.train` stopped on SIGINT or SIGTERM after the current step.

    A ``KeyboardInterrupt``, so code that lets Ctrl-C end a script keeps doing so; the state was
    saved first (when the trainer has a ``checkpoint_dir``) and the history is complete up to
    the last step.

    Attributes
    ----------
    signal : int
        The signal number (``signal.SIGINT`` or ``signal.SIGTERM``).
    checkpoint : pathlib.Path or None
        The checkpoint written (None without ``checkpoint_dir``).
    """

    def __init__(self, message: str, *, signal: int, checkpoint: Any = None):
        super().__init__(message)
        self.signal = signal
        self.checkpoint = checkpoint


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and what is wrong.

    Attributes
    ----------
    path : str
        The file.
    """

    def __init__(self, path: Any, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


for _cls in (NonFiniteError, TrainingDivergedError, TrainingInterrupted, CheckpointError):
    _cls.__module__ = "xpnet"  # where users import them from
del _cls
