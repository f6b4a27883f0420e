"""The ``xpnet`` command: train a network, reproduce the chapter-6 experiments, inspect backends.

::

    xpnet train [--backend torch] [--epochs 10] ...   train MultiLayerNetExtend on MNIST
    xpnet train --model convnet ...                    the book's chapter-7 SimpleConvNet
    xpnet train --checkpoint-dir DIR --resume          continue an interrupted run
    xpnet predict MODEL [--input FILE]                 predicted digits of a saved network
    xpnet evaluate MODEL [--input FILE --labels FILE]  its accuracy
    xpnet experiment NAME|all|list [--quick] ...       reproduce a figure (PNG + JSON)
    xpnet search [--trials N] [--workers N | ...]      the book's random search (xpnet.search)
    xpnet info                                         backends, devices, library versions
    xpnet bench ...                                    the benchmark harness (xpnet.benchmark)

User mistakes (an unknown backend or optimizer, bad sizes, a backend that is not installed)
end with a one-line message on stderr and a non-zero exit status: 2 for bad arguments, 1 for
failures at run time (a damaged checkpoint, a diverged run), 130 when Ctrl-C (SIGINT) stopped
``xpnet train`` -- after it saved its checkpoint -- and 143 for SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import xpnet
from xpnet.backend import BACKEND_NAMES, resolve_name

PROG = "xpnet"
DEFAULT_OUT = "xpnet-out"
OPTIMIZERS = tuple(xpnet.optim.OPTIMIZERS)
ACTIVATIONS = tuple(xpnet.nets.ACTIVATIONS)
MODELS = ("mlp", "convnet")
CONV_NORMALIZATIONS = ("none", *xpnet.convnet.CONV_NORMALIZATIONS)
#: the flags of one model only, each the attribute it sets
MODEL_FLAGS = {
    "mlp": ("activation", "batchnorm", "dropout", "weight_decay"),
    "convnet": ("filters", "filter_size", "normalization", "num_groups"),
}

#: optimizer-specific flags, each the keyword it sets; which optimizers take one is read from
#: their signatures
OPTIMIZER_FLAGS = ("momentum", "beta1", "beta2", "decay_rate")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" suffix, left off where the default is ``None``.

    ``None`` means "resolved later" here (from the environment, the model or the optimizer),
    and each such option's help says what it resolves to.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class UserError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 1."""


# --------------------------------------------------------------------------------------------
# argument types (raise ArgumentTypeError -> argparse prints usage + message, exit 2)
# --------------------------------------------------------------------------------------------


def _backend_name(s: str) -> str:
    try:
        return resolve_name(s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _hidden_sizes(s: str) -> list[int]:
    parts = [p.strip() for p in s.split(",")]
    if s.strip() == "":
        return []
    sizes = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"hidden sizes must be comma-separated positive integers (e.g. 100,100,100), "
                f"not {s!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {v} in {s!r}")
        sizes.append(v)
    return sizes


def _optimizer_name(s: str) -> str:
    for name in OPTIMIZERS:
        if name.lower() == s.lower():
            return name
    raise argparse.ArgumentTypeError(
        f"unknown optimizer {s!r}; valid names are: {', '.join(OPTIMIZERS)}")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def _hyperparameter(name: str):
    """An argparse type for optimizer hyperparameter ``name``: the library's own range check
    (:func:`xpnet.optim.check_hyperparameter`), reported by argparse (exit 2)."""
    def parse(s: str) -> float:
        try:
            return xpnet.optim.check_hyperparameter(name, float(s))
        except ValueError as exc:
            msg = str(exc) if "must" in str(exc) else f"{name} must be a number, got {s!r}"
            raise argparse.ArgumentTypeError(msg) from None
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _ratio(s: str) -> float:
    v = _nonneg_float(s)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"the dropout ratio must be in [0, 1), got {s!r}")
    return v


def _override(s: str) -> tuple[str, Any]:
    key, sep, value = s.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {s!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _range(s: str) -> tuple[float, float]:
    parts = s.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW,HIGH (two positive numbers, e.g. 1e-6,1e-2), got {s!r}") from None
    if not 0 < low < high < float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 < LOW < HIGH, got {s!r}")
    return low, high


def _fraction(s: str) -> float:
    v = _positive_float(s)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {s!r}")
    return v


def _init(s: str) -> str | float:
    low = s.lower()
    if low in ("auto", "he", "relu", "xavier", "sigmoid"):
        return low
    try:
        return _positive_float(s)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--init must be auto, he, xavier or a positive std, not {s!r}") from None


# --------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------


def _experiment_names() -> list[str]:
    from xpnet.experiments import EXPERIMENTS

    return list(EXPERIMENTS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Deep Learning from Scratch, chapter 6, on NumPy, CuPy, PyTorch or "
                    "array-api-strict: train a network, reproduce the book's experiments, "
                    "benchmark backends.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {xpnet.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    backend_help = (f"array backend: {', '.join(BACKEND_NAMES)} (default: XPNET_BACKEND, "
                    "else numpy)")

    # -- train --------------------------------------------------------------------------------
    t = sub.add_parser(
        "train", help="train MultiLayerNetExtend or SimpleConvNet on MNIST",
        description="Train MultiLayerNetExtend (--model mlp) or the book's chapter-7 "
                    "SimpleConvNet (--model convnet) on MNIST (the bundled 8,000/2,000 real "
                    "digits when the full set cannot be downloaded) and write a learning-curve "
                    "PNG and a history JSON.",
        formatter_class=_HelpFormatter,
    )
    t.add_argument("--model", choices=MODELS, default="mlp",
                   help="mlp: MultiLayerNetExtend; convnet: SimpleConvNet (conv - relu - pool "
                        "- affine - relu - affine)")
    t.add_argument("--backend", type=_backend_name, default=None, help=backend_help)
    t.add_argument("--device", default=None,
                   help="device of the backend, e.g. cpu, cuda:0, 1 (CuPy), device1 (strict)")
    t.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="parameter dtype (default: XPNET_DTYPE, else float32)")
    t.add_argument("--hidden", type=_hidden_sizes, default=None,
                   metavar="N,N,...", help="hidden layer sizes (default: 256,128 for mlp; "
                                           "one size, 100, for convnet)")
    t.add_argument("--activation", choices=ACTIVATIONS, default=None,
                   help="mlp only (default relu)")
    t.add_argument("--init", type=_init, default="auto",
                   help="initial weight std: he, xavier, a number, or auto (He for the ReLU "
                        "family and maxout, Xavier for sigmoid and tanh; the book's chapter-7 "
                        "network uses 0.01)")
    t.add_argument("--optimizer", type=_optimizer_name, default="Adam",
                   help=f"one of {', '.join(OPTIMIZERS)} (any case)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 0.001 for Adam, 0.01 otherwise)")
    t.add_argument("--momentum", type=_hyperparameter("momentum"), default=None,
                   help="Momentum/Nesterov momentum, in [0, 1) (default 0.9)")
    t.add_argument("--beta1", type=_hyperparameter("beta1"), default=None,
                   help="Adam beta1, in [0, 1) (default 0.9)")
    t.add_argument("--beta2", type=_hyperparameter("beta2"), default=None,
                   help="Adam beta2, in [0, 1) (default 0.999)")
    t.add_argument("--decay-rate", dest="decay_rate", type=_hyperparameter("decay_rate"),
                   default=None, help="RMSprop decay rate, in [0, 1) (default 0.99)")
    t.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                   help="mlp only: batch normalization after every hidden affine layer "
                        "(default on)")
    t.add_argument("--dropout", type=_ratio, default=None, metavar="RATIO",
                   help="mlp only: dropout ratio after every hidden layer (default 0: none)")
    t.add_argument("--weight-decay", dest="weight_decay", type=_nonneg_float, default=None,
                   metavar="LAMBDA", help="mlp only: L2 weight decay λ (default 0)")
    t.add_argument("--filters", type=_positive_int, default=None, metavar="FN",
                   help="convnet only: number of filters (default 30)")
    t.add_argument("--filter-size", dest="filter_size", type=_positive_int, default=None,
                   metavar="FS", help="convnet only: filter size (default 5)")
    t.add_argument("--normalization", choices=CONV_NORMALIZATIONS, default=None,
                   help="convnet only: normalization of the feature maps after the "
                        "convolution (default none)")
    t.add_argument("--num-groups", dest="num_groups", type=_positive_int, default=None,
                   metavar="G", help="convnet with --normalization group: groups (default: "
                                     "the divisor of the filter count nearest its square root)")
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--batch-size", dest="batch_size", type=_positive_int, default=100)
    t.add_argument("--seed", type=_nonneg_int, default=0, help="random seed")
    t.add_argument("--source", choices=("auto", "bundled", "full"), default="auto",
                   help="MNIST: full 70,000 digits (download), the bundled 10,000, or auto "
                        "(full when available, else bundled)")
    t.add_argument("--out", default=DEFAULT_OUT,
                   help="output directory (created, and checked writable, before training)")
    t.add_argument("--check-data", dest="check_data", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="check once, before training, that the inputs are finite and the "
                        "labels in range (one pass over the data: ~10 ms for 60,000 digits)")
    t.add_argument("--checkpoint-dir", dest="checkpoint_dir", default=None, metavar="DIR",
                   help="where last.safetensors (every epoch, and on Ctrl-C/SIGTERM) and "
                        "best.safetensors (best test accuracy) go (default: OUT/checkpoints)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved in the checkpoint folder: its network, "
                        "optimizer and data options are used (--epochs may raise the total)")
    t.add_argument("--save", default=None, metavar="FILE",
                   help="also write the trained network to FILE (.safetensors) at the end, for "
                        "'xpnet predict' / 'xpnet evaluate' / xpnet.load")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(subparser=t)

    # -- predict / evaluate -------------------------------------------------------------------
    model_help = ("a checkpoint (.safetensors, from 'xpnet train --save', net.save or a "
                  "checkpoint folder's files) or a checkpoint folder (its best.safetensors, "
                  "else last.safetensors)")
    input_help = ("images: a .npy file of shape (N, 784) or (N, 28, 28) (uint8 pixels are "
                  "scaled to [0, 1]) or an MNIST IDX images file (.gz too); default: the 2,000 "
                  "bundled test digits")
    for cmd, helptext in (("predict", "print the digits a saved network predicts"),
                          ("evaluate", "report the accuracy of a saved network")):
        c = sub.add_parser(cmd, help=helptext, description=helptext[0].upper() + helptext[1:]
                           + " (loads on any backend).",
                           formatter_class=_HelpFormatter)
        c.add_argument("model", metavar="MODEL", help=model_help)
        c.add_argument("--input", default=None, metavar="FILE", help=input_help)
        c.add_argument("--labels", default=None, metavar="FILE",
                       help="labels for --input: .npy of class indices or an IDX labels file")
        c.add_argument("--backend", type=_backend_name, default=None, help=backend_help)
        c.add_argument("--device", default=None, help="device of the backend")
        c.add_argument("--batch-size", dest="batch_size", type=_positive_int, default=1000,
                       help="inputs per forward pass")
        c.set_defaults(subparser=c)

    # -- experiment ---------------------------------------------------------------------------
    names = _experiment_names()
    e = sub.add_parser(
        "experiment", help="reproduce a chapter-6 experiment (PNG + JSON)",
        description="Reproduce one of the book's experiments (or all) and write NAME.png and "
                    "NAME.json.  Experiments: " + ", ".join(names) + ".",
        formatter_class=_HelpFormatter,
    )
    e.add_argument("name", metavar="NAME", choices=[*names, "all", "list"],
                   help="an experiment, 'all', or 'list' to print their names: "
                        + ", ".join(names))
    e.add_argument("--backend", type=_backend_name, default=None, help=backend_help)
    e.add_argument("--device", default=None, help="device of the backend")
    e.add_argument("--seed", type=_nonneg_int, default=0, help="random seed")
    e.add_argument("--quick", action="store_true",
                   help="a few seconds each: fewer iterations, trials and scales")
    e.add_argument("--out", default=DEFAULT_OUT,
                   help="output directory (created, and checked writable, before running)")
    e.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                   metavar="KEY=VALUE",
                   help="change one entry of the experiment's config (VALUE is JSON, else a "
                        "string), e.g. --set epochs=50 --set workers=2; repeatable")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(subparser=e)

    # -- search -------------------------------------------------------------------------------
    r = sub.add_parser(
        "search", help="the book's random search over lr and weight decay (xpnet.search)",
        description="Random search over the learning rate and weight decay on MNIST (the "
                    "book's experiment 8: 500 digits, 20% of them for validation, 100 trials "
                    "of 50 epochs), in this process, on a process pool or on a Dask cluster.  "
                    "Every finished trial is appended to the results file; run the same command "
                    "again to resume.  Writes search_curves.png and search_scatter.png.",
        formatter_class=_HelpFormatter,
    )
    r.add_argument("--trials", type=_positive_int, default=100)
    r.add_argument("--epochs", type=_positive_int, default=50,
                   help="epochs per trial (with --halving: of the last rung)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="a pool of N worker processes (one BLAS thread each); 1: in this "
                            "process")
    where.add_argument("--dask-local", dest="dask_local", type=_positive_int, default=None,
                       metavar="N", help="a local Dask cluster of N one-thread worker processes")
    where.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="a running Dask scheduler, e.g. tcp://10.0.0.1:8786 (see "
                            "'dask scheduler' / 'dask worker')")
    r.add_argument("--results", default=None, metavar="FILE",
                   help="JSON Lines results file, resumed when it holds this search "
                        "(default: OUT/search.jsonl)")
    r.add_argument("--halving", action="store_true",
                   help="successive halving: all trials for --min-epochs, the best 1/eta on "
                        "with eta times the epochs, up to --epochs")
    r.add_argument("--min-epochs", dest="min_epochs", type=_positive_int, default=2,
                   help="epochs of the first halving rung")
    r.add_argument("--eta", type=_positive_int, default=3, help="halving's reduction factor")
    r.add_argument("--lr", type=_range, default=(1e-6, 1e-2), metavar="LOW,HIGH",
                   help="log-uniform learning-rate range")
    r.add_argument("--weight-decay", dest="weight_decay", type=_range, default=(1e-8, 1e-4),
                   metavar="LOW,HIGH", help="log-uniform weight-decay range")
    r.add_argument("--n-train", dest="n_train", type=_positive_int, default=500,
                   help="training digits (the first N), validation included")
    r.add_argument("--validation", type=_fraction, default=0.2,
                   help="fraction of the training digits held out for validation")
    r.add_argument("--hidden", type=_hidden_sizes, default=[100] * 6, metavar="N,N,...",
                   help="hidden layer sizes")
    r.add_argument("--optimizer", type=_optimizer_name, default="SGD")
    r.add_argument("--batch-size", dest="batch_size", type=_positive_int, default=100)
    r.add_argument("--backend", type=_backend_name, default=None, help=backend_help)
    r.add_argument("--device", default=None,
                   help="device of the backend where each trial runs ('worker': each "
                        "worker's XPNET_DEVICE)")
    r.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="parameter dtype (default: XPNET_DTYPE, else float32)")
    r.add_argument("--seed", type=_nonneg_int, default=0, help="the search's seed")
    r.add_argument("--source", choices=("auto", "bundled", "full"), default="auto",
                   help="MNIST source (see 'xpnet train --help')")
    r.add_argument("--top", type=_positive_int, default=20,
                   help="trials listed and drawn in the grid of curves")
    r.add_argument("--test", action="store_true",
                   help="at the end, train the best trial again and report its test accuracy "
                        "(the test set is used for nothing else)")
    r.add_argument("--save-best", dest="save_best", default=None, metavar="FILE",
                   help="train the best trial again and save it as a checkpoint (.safetensors; "
                        "'xpnet evaluate FILE', xpnet.load)")
    r.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(subparser=r)

    # -- info / bench -------------------------------------------------------------------------
    sub.add_parser("info", help="backends that work here, devices, library versions",
                   description="Show which backends work on this machine (and why the others "
                               "don't), their devices, and the versions of the libraries.")
    sub.add_parser("bench", help="benchmark backends (xpnet.benchmark; see 'xpnet bench --help')",
                   add_help=False)
    return parser


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def _note(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


@contextlib.contextmanager
def _warnings_as_notes(said: set[str]):
    """Warnings raised in the block, each said once as one line on stderr after it.

    The MNIST fallback (:class:`xpnet.datasets.DatasetFallbackWarning`, told apart by its class)
    becomes a plain sentence; other warnings keep their class name and first line.
    """
    from xpnet.datasets import DatasetFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in deliberately bad nets
        yield
    for w in caught:
        if issubclass(w.category, DatasetFallbackWarning):
            line = ("the full MNIST set is not available (no network, not cached): using the "
                    "bundled 8,000 training / 2,000 test digits")
        else:
            text = str(w.message)
            line = f"{w.category.__name__}: {text.splitlines()[0] if text else ''}"
        if line not in said:
            said.add(line)
            _note(line)


def _writable_dir(path: str) -> Path:
    """``--out``: created if missing and proved writable (a temporary file is made and removed)
    before any work, so that a long run cannot end in "cannot write" and lose its results."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"--out {path}: cannot create or write to this directory ({reason}); "
                        "choose a writable directory with --out") from None
    return out


#: ``xpnet train`` options that define a run: on ``--resume`` they come from the checkpoint
RUN_OPTIONS = ("hidden", "activation", "init", "optimizer", "lr", "momentum", "beta1", "beta2",
               "decay_rate", "batchnorm", "dropout", "weight_decay", "batch_size", "seed",
               "source", "dtype", "model", "filters", "filter_size", "normalization",
               "num_groups")
#: run options added after the first checkpoints: a run saved without them had these values
LATER_RUN_OPTIONS = {"model": "mlp", "filters": None, "filter_size": None,
                     "normalization": None, "num_groups": None}


def _explicit_options(args: argparse.Namespace) -> set[str]:
    """The destinations of the options given on the command line (not left at defaults)."""
    sub = args.subparser
    saved = [(a, a.default) for a in sub._actions]
    for a, _ in saved:
        a.default = argparse.SUPPRESS
    try:
        given = sub.parse_args(args.argv)
    finally:
        for a, default in saved:
            a.default = default
    return set(vars(given))


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _resume_options(args: argparse.Namespace, ckdir: Path) -> None:
    """Take the run-defining options from the checkpoint being resumed."""
    from xpnet.checkpoint import read
    from xpnet.trainer import LAST_CHECKPOINT

    last = ckdir / LAST_CHECKPOINT
    if not last.is_file():
        raise UserError(f"nothing to resume: {last} does not exist (run without --resume to "
                        "start a run there)")
    extra = read(last).extra  # a damaged file: CheckpointError, one line, exit 1
    saved = ((extra or {}).get("user") or {}).get("cli") if isinstance(extra, dict) else None
    if isinstance(saved, dict):
        saved = {**LATER_RUN_OPTIONS, **saved}
    if not isinstance(saved, dict) or any(k not in saved for k in RUN_OPTIONS):
        raise UserError(f"{last} was not written by 'xpnet train': continue it from Python "
                        "with Trainer(..., checkpoint_dir=..., resume=True)")
    optimizer = xpnet.optim.OPTIMIZERS.get(saved["optimizer"])
    if optimizer is not None:  # runs saved before the effective values were: their defaults
        accepted = inspect.signature(optimizer).parameters
        for dest in ("lr", *OPTIMIZER_FLAGS):
            if saved[dest] is None and dest in accepted:
                saved[dest] = accepted[dest].default
    explicit = _explicit_options(args)
    for dest in RUN_OPTIONS:
        if dest in explicit and _jsonable(getattr(args, dest)) != saved[dest]:
            args.subparser.error(
                f"{_flag(dest)} {getattr(args, dest)} differs from the run being resumed "
                f"({saved[dest]}); --resume continues that run as it was (drop the option, or "
                "start a new run with another --checkpoint-dir)")
        setattr(args, dest, saved[dest])
    if "epochs" not in explicit:
        args.epochs = saved.get("epochs", args.epochs)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _model_args(args: argparse.Namespace) -> None:
    """Check the model-specific flags (a flag of the other model is a usage error) and fill in
    each model's defaults."""
    other = "convnet" if args.model == "mlp" else "mlp"
    for attr in MODEL_FLAGS[other]:
        if getattr(args, attr) is not None:
            flag = "--" + attr.replace("_", "-")
            if attr == "batchnorm" and not args.batchnorm:
                flag = "--no-batchnorm"
            args.subparser.error(f"{flag} applies to --model {other}, not --model {args.model}")
    if args.model == "mlp":
        args.hidden = [256, 128] if args.hidden is None else args.hidden
        args.activation = args.activation or "relu"
        args.batchnorm = True if args.batchnorm is None else args.batchnorm
        args.dropout = args.dropout or 0.0
        args.weight_decay = args.weight_decay or 0.0
        return
    args.hidden = [100] if args.hidden is None else args.hidden
    if len(args.hidden) != 1:
        args.subparser.error(f"--model convnet has one hidden layer: give one size to "
                             f"--hidden, not {','.join(map(str, args.hidden))}")
    args.filters = args.filters or 30
    args.filter_size = args.filter_size or 5
    if args.filter_size > 27:
        args.subparser.error(f"--filter-size must leave a 2x2 pooling window on 28x28 digits "
                             f"(at most 27), got {args.filter_size}")
    if args.normalization == "none":
        args.normalization = None
    if args.num_groups is not None:
        if args.normalization != "group":
            args.subparser.error("--num-groups applies to --normalization group")
        if args.filters % args.num_groups:
            args.subparser.error(f"--num-groups must divide the {args.filters} filters, got "
                                 f"{args.num_groups}")


def _build_network(args: argparse.Namespace, be: Any, init: Any, n_inputs: int
                   ) -> tuple[Any, dict[str, Any], str]:
    """The network ``args`` ask for, its part of the record's config, and a one-line
    description."""
    from xpnet import MultiLayerNetExtend, SimpleConvNet

    if args.model == "convnet":
        net = SimpleConvNet(
            input_dim=(1, 28, 28),
            conv_param={"filter_num": args.filters, "filter_size": args.filter_size,
                        "pad": 0, "stride": 1},
            hidden_size=args.hidden[0], output_size=10, weight_init_std=init, backend=be,
            dtype=args.dtype, seed=args.seed, normalization=args.normalization,
            num_groups=args.num_groups,
        )
        config = {"model": "convnet", "input_dim": list(net.input_dim),
                  "conv_param": net.conv_param, "hidden_size": net.hidden_size,
                  "normalization": net.normalization, "num_groups": net.num_groups,
                  "layers": [n_inputs, *args.hidden, 10], "activation": "relu",
                  "batchnorm": net.normalization == "batch", "dropout": 0.0,
                  "weight_decay": 0.0}
        norm = f", {net.normalization} norm" if net.normalization else ""
        desc = (f"SimpleConvNet (conv {args.filters}x{args.filter_size}x{args.filter_size} - "
                f"relu - pool 2 - {args.hidden[0]} - relu - 10{norm})")
        return net, config, desc
    net = MultiLayerNetExtend(
        n_inputs, args.hidden, 10, activation=args.activation, weight_init_std=init,
        weight_decay_lambda=args.weight_decay, use_dropout=args.dropout > 0,
        dropout_ration=args.dropout or 0.5, use_batchnorm=args.batchnorm, backend=be,
        dtype=args.dtype, seed=args.seed,
    )
    config = {"model": "mlp", "layers": [n_inputs, *args.hidden, 10],
              "activation": args.activation, "batchnorm": args.batchnorm,
              "dropout": args.dropout, "weight_decay": args.weight_decay}
    sizes = "-".join(str(s) for s in config["layers"])
    extras = [e for e in ("batch norm" if args.batchnorm else "",
                          f"dropout {args.dropout:g}" if args.dropout else "") if e]
    desc = f"{sizes} {args.activation} net" + (f" ({', '.join(extras)})" if extras else "")
    return net, config, desc


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import numpy as np

    from xpnet import Trainer, get_backend
    from xpnet.trainer import LAST_CHECKPOINT

    ckdir = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(args.out) / "checkpoints"
    if args.resume:
        _resume_options(args, ckdir)
    _model_args(args)
    if args.save is not None:
        _check_writable_file("--save", Path(args.save), args)

    accepted = inspect.signature(xpnet.optim.OPTIMIZERS[args.optimizer]).parameters
    opt_kw: dict[str, Any] = {}
    for kw in OPTIMIZER_FLAGS:
        value = getattr(args, kw)
        if value is None:
            continue
        if kw not in accepted:
            args.subparser.error(f"--{kw.replace('_', '-')} does not apply to {args.optimizer}")
        opt_kw[kw] = value
    lr = args.lr if args.lr is not None else accepted["lr"].default  # the book's default
    opt_kw = {"lr": lr, **opt_kw}
    init = args.init
    if init == "auto":
        init = "xavier" if args.activation in ("sigmoid", "tanh") else "he"  # ReLU family

    from xpnet.datasets import load_mnist_cached

    be = get_backend(args.backend, args.device)  # BackendUnavailableError/ValueError -> exit 1
    args.dtype = args.dtype or xpnet.default_dtype()
    out = _writable_dir(args.out)
    with _warnings_as_notes(set()):
        (x_train, t_train), (x_test, t_test) = load_mnist_cached(args.source)
    net, net_config, desc = _build_network(args, be, init, x_train.shape[1])
    if not args.quiet:
        _note(f"training {desc} with {args.optimizer} "
              f"{', '.join(f'{k}={v:g}' for k, v in opt_kw.items())} on "
              f"{len(x_train)} digits, backend {be.name} ({be.device})")
    if not args.resume and (ckdir / LAST_CHECKPOINT).exists():
        _note(f"{ckdir} holds the checkpoints of an earlier run; this run replaces them "
              "(--resume continues that one instead)")
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param=opt_kw, verbose=False, progress=not args.quiet,
                      seed=args.seed, check_data=args.check_data,
                      checkpoint_dir=ckdir, resume=args.resume)
    effective = {dest: getattr(args, dest) for dest in RUN_OPTIONS}
    effective.update((kw, accepted[kw].default) for kw in OPTIMIZER_FLAGS
                     if kw in accepted and effective[kw] is None)
    effective["lr"] = lr  # the values this run used, so that --resume can compare them
    trainer.checkpoint_metadata = {"cli": {
        "command": "train", "epochs": args.epochs,
        **{dest: _jsonable(value) for dest, value in effective.items()}}}
    if args.resume and not args.quiet:
        _note(f"resuming {ckdir / LAST_CHECKPOINT} at epoch {trainer.current_epoch}"
              + (f", step {trainer.checkpoint_state()['step_in_epoch']}"
                 if trainer.checkpoint_state()["step_in_epoch"] else "")
              + f" of {args.epochs}")
    t0 = time.perf_counter()
    try:
        trainer.train()  # a progress bar with the loss and the accuracies of each epoch
    except xpnet.TrainingInterrupted as exc:
        _note(f"interrupted: {exc}")
        if exc.checkpoint is not None:
            _note(f"continue with: xpnet train --checkpoint-dir {ckdir} --resume")
        return 128 + int(exc.signal)
    total = time.perf_counter() - t0
    test_acc = net.accuracy(trainer.x_test, trainer.t_test)

    history = trainer.history
    epoch_times = history["epoch_times"]
    per_epoch = float(np.median(epoch_times)) if epoch_times else float("nan")
    record = {
        "command": "train",
        "xpnet_version": xpnet.__version__,
        "config": {
            **net_config,
            "weight_init_std": init, "optimizer": args.optimizer, "optimizer_param": opt_kw,
            "epochs": args.epochs,
            "batch_size": args.batch_size, "seed": args.seed, "dtype": args.dtype,
            "source": args.source, "n_train": len(x_train), "n_test": len(x_test),
            "check_data": args.check_data,
        },
        "backend": be.name,
        "device": str(be.device),
        "test_acc": test_acc,
        "seconds_per_epoch": per_epoch,
        "total_seconds": total,
        "history": history,
    }
    from xpnet.io import write_json
    from xpnet.plotting import plot_training

    json_path = write_json(out / "train_history.json", record)
    png_path = out / "train_curve.png"
    plot_training(record, png_path)
    print(f"test accuracy  {test_acc:.4f}  ({len(x_test)} digits)")
    print(f"time per epoch {per_epoch:.2f} s  (median of {len(epoch_times)}; total "
          f"{total:.1f} s)")
    print(f"backend        {be.name} on {be.device}, {args.dtype}")
    print(f"wrote          {png_path}, {json_path}")
    print(f"checkpoints    {ckdir}")
    if args.save is not None:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        print(f"saved model    {net.save(args.save)}")
    return 0


def _check_writable_file(option: str, path: Path, args: argparse.Namespace) -> None:
    """Before any work: ``path`` can be written (its nearest existing folder is a writable
    folder, and it is not a folder itself)."""
    if path.is_dir():
        args.subparser.error(f"{option} {path} is a folder; give a file name")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        args.subparser.error(f"{option} {path}: cannot write in {parent}")


def _model_path(model: str) -> Path:
    from xpnet.trainer import BEST_CHECKPOINT, LAST_CHECKPOINT

    path = Path(model)
    if path.is_dir():
        for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path} is a folder without {BEST_CHECKPOINT} or {LAST_CHECKPOINT}")
    if not path.exists():
        raise UserError(f"{path} does not exist (give a .safetensors checkpoint or a "
                        "checkpoint folder)")
    return path


def _read_array(path: str, kind: str) -> Any:
    """An input file as a NumPy array: ``.npy`` (never unpickled) or MNIST IDX."""
    import numpy as np

    from xpnet.datasets import read_idx

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--{'input' if kind == 'images' else 'labels'} {path} does not exist")
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise UserError(f"{path} is not a plain .npy array (object arrays are refused, "
                            f"xpnet never unpickles): {str(exc).splitlines()[0]}") from None
    return read_idx(p, kind)  # ValueError naming the file if it is not IDX


def _inputs(args: argparse.Namespace, width: int) -> tuple[Any, Any, str]:
    """(x, t or None, description) for predict/evaluate."""
    import numpy as np

    if args.input is None:
        if args.labels is not None:
            args.subparser.error("--labels needs --input")
        from xpnet.datasets import load_mnist

        _, (x, t) = load_mnist(source="bundled")
        return x, t, f"the {len(x):,} bundled test digits"
    x = _read_array(args.input, "images")
    if x.ndim == 3:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[1] != width:
        raise UserError(f"--input {args.input} has shape {x.shape}, but the network takes "
                        f"{width} values per row: give (N, {width}) rows (or 28 x 28 images)")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    elif x.dtype.kind != "f":
        raise UserError(f"--input {args.input} holds {x.dtype} values; give floats or uint8 "
                        "pixels")
    if x.shape[0] == 0:
        raise UserError(f"--input {args.input} holds no rows")
    t = None
    if args.labels is not None:
        t = _read_array(args.labels, "labels")
        if t.ndim != 1 or t.shape[0] != x.shape[0] or t.dtype.kind not in "iu":
            raise UserError(f"--labels {args.labels} must be {x.shape[0]} integer class "
                            f"indices, got {t.dtype} of shape {t.shape}")
        t = t.astype(np.int64)
    return x, t, f"{x.shape[0]:,} rows of {args.input}"


def _load_model(args: argparse.Namespace) -> tuple[Any, Path]:
    from xpnet.checkpoint import RandomStreamWarning, load

    path = _model_path(args.model)
    be = xpnet.get_backend(args.backend, args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomStreamWarning)  # inference draws no masks
        return load(path, backend=be), path


def _predictions(net: Any, x: Any, batch_size: int) -> Any:
    import numpy as np

    be = net.backend
    out = []
    for start in range(0, x.shape[0], batch_size):
        y = net.predict(x[start:start + batch_size])
        out.append(be.to_numpy(net.xp.argmax(y, axis=1)))
    return np.concatenate(out)


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    net, path = _load_model(args)
    x, t, what = _inputs(args, net.input_size)
    pred = _predictions(net, x, args.batch_size)
    sys.stdout.write("".join(f"{int(p)}\n" for p in pred))
    if t is not None:
        correct = int((pred == t).sum())
        _note(f"accuracy {correct / len(t):.4f} ({correct:,} of {len(t):,}) on {what}")
    return 0


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.input is not None and args.labels is None:
        args.subparser.error("evaluate needs labels: give --labels with --input")
    net, path = _load_model(args)
    x, t, what = _inputs(args, net.input_size)
    pred = _predictions(net, x, args.batch_size)
    correct = int((pred == t).sum())
    be = net.backend
    print(f"accuracy {correct / len(t):.4f}  ({correct:,} of {len(t):,}, {what})")
    hidden = net.hidden_size_list if hasattr(net, "hidden_size_list") else [net.hidden_size]
    sizes = [net.input_size, *hidden, net.output_size]
    print(f"model    {path} ({type(net).__name__} {'-'.join(map(str, sizes))})")
    print(f"backend  {be.name} on {be.device}, {be.dtype_name(net.dtype)}")
    return 0


def cmd_experiment(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from xpnet import experiments
    from xpnet.backend import get_backend

    if args.name == "list":
        for name, mod in experiments.EXPERIMENTS.items():
            print(f"{name:24s} {mod.TITLE}")
        return 0
    names = list(experiments.EXPERIMENTS) if args.name == "all" else [args.name]
    overrides = dict(args.overrides)
    # a key is valid if the experiment (with 'all': any experiment) knows it; with 'all', each
    # experiment takes the overrides it knows
    known = {key for name in names for key in experiments.get(name).FULL}
    unknown = sorted(set(overrides) - known)
    if unknown:
        what = "no experiment has" if args.name == "all" else f"{args.name} has no"
        args.subparser.error(f"{what} option {', '.join(unknown)}; valid options are: "
                             f"{', '.join(sorted(known))}")
    own = {name: {k: v for k, v in overrides.items() if k in experiments.get(name).FULL}
           for name in names}
    for name in names:  # values of the wrong kind fail here, before anything runs
        experiments.config(name, quick=args.quick, **own[name])
    be = get_backend(args.backend, args.device)
    _writable_dir(args.out)
    progress = False if args.quiet else None
    said: set[str] = set()
    for name in names:
        t0 = time.perf_counter()
        with _warnings_as_notes(said):
            result = experiments.run(name, backend=be, seed=args.seed, quick=args.quick,
                                     progress=progress, **own[name])
        json_path, png_path = experiments.save(result, args.out)
        print(f"{name}: {time.perf_counter() - t0:.1f} s -> {png_path}, {json_path}",
              flush=True)
    return 0


def cmd_search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from xpnet import search
    from xpnet.datasets import load_mnist_cached

    halving = None
    if args.halving:
        if args.min_epochs > args.epochs:
            args.subparser.error(f"--min-epochs ({args.min_epochs}) must not exceed --epochs "
                                 f"({args.epochs})")
        if args.eta < 2:
            args.subparser.error(f"--eta must be at least 2, got {args.eta}")
        halving = search.Halving(args.min_epochs, args.epochs, args.eta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(args.results) if args.results else out / "search.jsonl"
    with _warnings_as_notes(set()):
        (x_train, t_train), (x_test, t_test) = load_mnist_cached(args.source)
    if args.n_train > len(x_train):
        raise UserError(f"--n-train {args.n_train} is more than the {len(x_train)} training "
                        "digits available")
    objective = search.NetworkObjective(
        x_train[:args.n_train], t_train[:args.n_train], validation=args.validation,
        net_kwargs={"hidden_size_list": args.hidden}, optimizer=args.optimizer,
        epochs=args.epochs, batch_size=args.batch_size, backend=args.backend,
        device=args.device, dtype=args.dtype)
    space = {"lr": search.loguniform(*args.lr),
             "weight_decay": search.loguniform(*args.weight_decay)}
    if args.dask_local:
        where = f"a local Dask cluster of {args.dask_local} workers"
        context: Any = search.local_cluster(args.dask_local)
    elif args.scheduler:
        where = f"the Dask scheduler at {args.scheduler}"
        context = contextlib.nullcontext(args.scheduler)
    elif args.workers > 1:
        where = f"{args.workers} worker processes"
        context = search.process_pool(args.workers)
    else:
        where = "this process"
        context = contextlib.nullcontext(None)
    if not args.quiet:
        _note(f"{args.trials} trials{' with successive halving' if halving else ''} on "
              f"{len(objective.x_train)} training / {len(objective.x_val)} validation digits, "
              f"backend {objective.backend}, in {where}; results in {results}")
    t0 = time.perf_counter()
    with context as executor, _warnings_as_notes(set()):
        result = search.random_search(space, objective, args.trials, seed=args.seed,
                                      executor=executor, results=results, halving=halving,
                                      progress=False if args.quiet else None)
    wall = time.perf_counter() - t0
    print(search.format_best(result, args.top) or "no trial succeeded")
    failed = len(result.failed)
    print(f"trials         {len(result.trials)}{f' ({failed} failed)' if failed else ''}; "
          f"{result.ran} run now, {wall:.1f} s")
    saving = result.halving_saving()
    if saving is not None:
        print(f"halving        {saving['epochs_used']} epochs of training instead of "
              f"{saving['epochs_full_search']} ({100 * saving['saved_fraction']:.0f}% saved)")
    if args.test and result.best is not None:
        acc = result.evaluate_best(x_test, t_test, save=args.save_best)
        print(f"test accuracy  {acc:.4f}  (best trial {result.best['trial']}, "
              f"{len(x_test)} test digits)")
    elif args.save_best and result.best is not None:
        result.save_best(args.save_best)
    if result.best_path is not None:
        print(f"saved          {result.best_path} (best trial {result.best['trial']})")
    paths = search.write_report(result, out, top=args.top)
    print(f"wrote          {', '.join(str(p) for p in paths.values())}, {results}")
    return 0 if result.best is not None else 1


def cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from xpnet.backend import get_backend

    print(f"xpnet {xpnet.__version__}  (Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{xpnet.get_num_threads()} threads for xpnet's NumPy kernels)")
    print("\nbackends:")
    for name in BACKEND_NAMES:
        try:
            be = get_backend(name)
        except Exception as exc:  # report every reason, whatever it is
            print(f"  {name:17s} unavailable: {str(exc).splitlines()[0]}")
            continue
        print(f"  {name:17s} ok, default device {be.device_name}{_devices(be)}")
    print("\nlibraries:")
    for dist in ("numpy", "array-api-compat", "array-api-strict", "torch", "cupy",
                 "cupy-cuda12x", "cupy-cuda11x", "matplotlib", "tqdm", "dask", "distributed"):
        v = _version(dist)
        if v is not None or dist in ("numpy", "array-api-compat", "array-api-strict", "torch",
                                     "cupy"):
            print(f"  {dist:17s} {v or 'not installed'}")
    return 0


def _devices(be) -> str:
    try:
        devs = be.describe_devices(be.module)
    except Exception as exc:  # informational only
        return f"; devices: ? ({exc})"
    return "; devices: " + ", ".join(devs) if devs else ""


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cmd_bench(argv: list[str]) -> int:
    try:
        from xpnet import benchmark
        bench_main = benchmark.main
    except (ImportError, AttributeError) as exc:
        raise UserError(f"the benchmark harness is not available in this xpnet ({exc})") from exc
    return int(bench_main(argv) or 0)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpnet`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "bench":
            return cmd_bench(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        args.argv = argv[1:]
        handler = {"train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate,
                   "experiment": cmd_experiment, "search": cmd_search, "info": cmd_info}
        return handler[args.command](args, parser)
    except KeyboardInterrupt:
        _note("interrupted")
        return 130
    except (UserError, ValueError, TypeError, OSError, RuntimeError,
            xpnet.NonFiniteError) as exc:
        # BackendUnavailableError is a RuntimeError; ValueError / TypeError cover bad devices,
        # dtypes, data, optimizer parameters, sizes and experiment options, reported by the
        # library itself with the fix.  XPNET_DEBUG=1 shows the traceback.
        if os.environ.get("XPNET_DEBUG"):
            raise
        _note(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return 1
    except Exception as exc:  # a bug: still one line, saying how to see and report more
        if os.environ.get("XPNET_DEBUG"):
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        _note(f"error: internal error ({type(exc).__name__}: {text}); rerun with "
              "XPNET_DEBUG=1 for the traceback and please report it")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
