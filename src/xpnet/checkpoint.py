"""Checkpoints: a network (and optionally its optimizer) in one ``.safetensors`` file.

:func:`save` writes, :func:`load` rebuilds (on any backend, device and dtype), :func:`read`
reads and verifies a file without building anything (the :class:`~xpnet.Trainer` uses it to
resume).  ``net.save(path)`` is :func:`save`; ``xpnet.load`` is :func:`load`.

The file is a plain `safetensors <https://github.com/huggingface/safetensors>`_ file, so
``safetensors.torch.load_file(path)`` (or ``safetensors.numpy.load_file``) reads the arrays
without xpnet:

* ``param/W1``, ``param/b1``, ... -- the network's ``params``;
* ``buffer/BatchNorm1.running_mean``, ... -- state that is not a parameter, by layer key
  (:meth:`xpnet.network.Network.buffers`);
* ``optim/m/W1``, ``optim/v/W1``, ... -- the optimizer's state arrays, by state name and
  parameter (when saved with ``optimizer=``).

Its string metadata holds one entry, ``"xpnet"``: a JSON document with the format name and
version, the network's class name, constructor configuration and dtype, the optimizer's class,
hyperparameters and step counters, the random streams of the layers (dropout masks), the caller's
``extra`` (the Trainer's history and counters) and a SHA-256 of every array; a second entry,
``"xpnet.sha256"``, is the SHA-256 of that document.

Loading never unpickles anything: the file is parsed by safetensors (no code in it is run) and
every byte is checked -- the arrays against their digests, the document against its own -- so a
truncated, bit-flipped or foreign file is refused with a :class:`~xpnet.CheckpointError` naming
the file and what is wrong, before anything is built or copied.  A network is rebuilt from its
class (looked up in :data:`xpnet.network.NETWORKS`, never imported by name) and configuration;
names, shapes and dtypes are checked against it before any value is copied in.

Saving goes through :func:`xpnet.io.atomic_write`: a crash or a kill in the middle of a save
leaves the previous file as it was (and at worst a hidden ``.NAME.XXXX.tmp`` beside it).

Examples
--------
>>> import os, tempfile, numpy as np, xpnet
>>> net = xpnet.MultiLayerNetExtend(4, [8], 3, use_batchnorm=True, seed=0)
>>> opt = xpnet.Adam(lr=0.01)
>>> x, t = np.ones((5, 4), dtype=np.float32), np.array([0, 1, 2, 1, 0])
>>> opt.update(net.params, net.gradient(x, t))
>>> path = net.save(os.path.join(tempfile.mkdtemp(), "net.safetensors"), optimizer=opt)
>>> net2, opt2 = xpnet.load(path, backend="array_api_strict", with_optimizer=True)
>>> opt2.iter, bool(np.allclose(np.asarray(net2.predict(x)), net.predict(x)))
(1, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from xpnet.backend import Backend, get_backend, to_host
from xpnet.errors import CheckpointError
from xpnet.io import atomic_write, to_jsonable
from xpnet.optim import OPTIMIZER_CLASSES, Optimizer
from xpnet.version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NETWORKS",
    "Checkpoint",
    "RandomStreamWarning",
    "load",
    "network_name",
    "read",
    "register_network",
    "save",
]

#: Network classes by name: what a checkpoint's ``"class"`` is looked up in (subclasses of
#: :class:`xpnet.network.Network` register themselves when they are defined).
NETWORKS: dict[str, type] = {}


def network_name(cls: type) -> str:
    """The name a network class is saved under: its own ``checkpoint_name`` attribute (set in
    the class body, not inherited) or else its class name."""
    return cls.__dict__.get("checkpoint_name") or cls.__name__


def register_network(cls: type, name: str | None = None) -> type:
    """Make a network class loadable from checkpoints under ``name`` (default:
    :func:`network_name`).

    Subclasses of :class:`xpnet.network.Network` are registered when they are defined; call
    this for a class that is not one, or to register an alias.  A later class of the same name
    replaces the earlier one (as redefining it in a notebook does); a class that keeps another's
    class name (``xpnet.book``'s networks) sets ``checkpoint_name`` in its body instead.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_network takes a class, not {type(cls).__name__}")
    NETWORKS[network_name(cls) if name is None else str(name)] = cls
    return cls

#: The ``format`` field of the metadata document.
FORMAT = "xpnet.checkpoint"
#: The version this xpnet writes; files of a higher version are refused.
FORMAT_VERSION = 1
#: The keys of the metadata document and of its SHA-256 in the safetensors header.
METADATA_KEY = "xpnet"
DIGEST_KEY = "xpnet.sha256"

PARAM, BUFFER, OPTIM = "param/", "buffer/", "optim/"

#: safetensors dtype codes this module reads
_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64,
           "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


class RandomStreamWarning(UserWarning):
    """A saved random stream could not be continued here (another library's generator)."""


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def save(network: Any, path: str | os.PathLike[str], *, optimizer: Optimizer | None = None,
         extra: Any = None) -> Path:
    """Write ``network`` (and ``optimizer``'s state) to a ``.safetensors`` checkpoint.

    Parameters
    ----------
    network : xpnet.network.Network
        A registered network class (``MultiLayerNet``, ``MultiLayerNetExtend``, any subclass of
        :class:`~xpnet.network.Network`) on any backend.
    path : str or os.PathLike
        The file; its folder must exist.  Replaced atomically if it exists.
    optimizer : xpnet.Optimizer, optional
        Saved with its class, hyperparameters, step counters and state arrays; it must be the
        optimizer of ``network`` (its state fits ``network.params``).
    extra : optional
        Anything :func:`xpnet.io.to_jsonable` takes (NaN becomes None), stored in the metadata
        and returned by :attr:`Checkpoint.extra`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        For a network that is not a registered xpnet network, a configuration that is not
        plain JSON, an optimizer of a class xpnet does not know.
    ValueError
        For an optimizer whose state belongs to another network.
    """
    path = _as_path(path)
    if not hasattr(network, "get_config"):
        raise TypeError(f"network must be an xpnet network (a subclass of "
                        f"xpnet.network.Network), not {type(network).__name__}")
    name = network_name(type(network))
    if NETWORKS.get(name) is not type(network):
        raise TypeError(f"{name} is not the class registered under that name; call "
                        "xpnet.network.register_network on it")
    be: Backend = network.backend
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xpnet_version": _version(),
        "network": {"class": name, "config": network.get_config(),
                    "dtype": be.dtype_name(network.dtype)},
        "saved_on": {"backend": be.name, "device": be.device_name},
    }
    tensors: dict[str, np.ndarray] = {}
    for key, value in network.params.items():
        tensors[PARAM + key] = _host(value)
    unset = []
    for key, value in network.buffers().items():
        if value is None:
            unset.append(key)
        else:
            tensors[BUFFER + key] = _host(value)
    header["unset_buffers"] = unset
    header["rng"] = network.rng_states()
    header["optimizer"] = None
    if optimizer is not None:
        header["optimizer"] = _optimizer_part(optimizer, network, tensors)
    header["extra"] = None if extra is None else to_jsonable(extra)
    header["tensors"] = {k: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": _sha(a)}
                         for k, a in tensors.items()}
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    blob = safetensors.numpy.save(tensors, metadata={METADATA_KEY: text,
                                                      DIGEST_KEY: _text_digest(text)})
    with atomic_write(path) as f:
        f.write(blob)
    return path


def _optimizer_part(optimizer: Any, network: Any, tensors: dict[str, np.ndarray]
                    ) -> dict[str, Any]:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an xpnet optimizer, not {type(optimizer).__name__}")
    name = type(optimizer).__name__
    if OPTIMIZER_CLASSES.get(name) is not type(optimizer):
        raise TypeError(f"{name} is not the optimizer class registered under that name (another "
                        "class of the same name was defined after it)")
    sd = optimizer.state_dict()
    params = network.params
    for sname, per_key in sd["state"].items():
        for key, a in per_key.items():
            if key not in params or tuple(a.shape) != tuple(params[key].shape):
                raise ValueError(
                    f"this {name}'s state does not belong to this network: it has {sname!r} for "
                    f"{key!r} of shape {tuple(a.shape)}, the network "
                    + (f"{tuple(params[key].shape)}" if key in params else "no such parameter"))
            tensors[f"{OPTIM}{sname}/{key}"] = _host(a)
    return {"class": name, "hyperparameters": sd["hyperparameters"],
            "counters": sd["counters"], "state_names": list(optimizer.state_names)}


def _host(x: Any) -> np.ndarray:
    a = to_host(x)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version() -> str:
    return __version__


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    return Path(path)


# --------------------------------------------------------------------------------------------
# reading and verifying
# --------------------------------------------------------------------------------------------


class Checkpoint:
    """A checkpoint file, read and verified; nothing built yet.  Made by :func:`read`.

    Attributes
    ----------
    path : pathlib.Path
    header : dict
        The metadata document.
    tensors : dict of str to numpy.ndarray
        Every array of the file (read-only host arrays).
    """

    def __init__(self, path: Path, header: dict[str, Any], tensors: dict[str, np.ndarray]):
        self.path = path
        self.header = header
        self.tensors = tensors

    # -- what is in it ------------------------------------------------------------------------

    @property
    def network_class(self) -> str:
        """The network's class name."""
        return self.header["network"]["class"]

    @property
    def config(self) -> dict[str, Any]:
        """The network's constructor configuration."""
        return dict(self.header["network"]["config"])

    @property
    def dtype(self) -> str:
        """The network's dtype when saved (``"float32"``, ...)."""
        return self.header["network"]["dtype"]

    @property
    def extra(self) -> Any:
        """What was passed as ``extra`` to :func:`save` (None if nothing)."""
        return self.header.get("extra")

    @property
    def has_optimizer(self) -> bool:
        return self.header.get("optimizer") is not None

    def params(self) -> dict[str, np.ndarray]:
        return _with_prefix(self.tensors, PARAM)

    def buffers(self) -> dict[str, np.ndarray]:
        return _with_prefix(self.tensors, BUFFER)

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's :meth:`~xpnet.Optimizer.state_dict` (host arrays), or None."""
        opt = self.header.get("optimizer")
        if opt is None:
            return None
        state: dict[str, dict[str, np.ndarray]] = {n: {} for n in opt["state_names"]}
        for name, a in _with_prefix(self.tensors, OPTIM).items():
            sname, _, key = name.partition("/")
            state[sname][key] = a
        return {"class": opt["class"], "hyperparameters": dict(opt["hyperparameters"]),
                "counters": dict(opt["counters"]), "state": state}

    def __repr__(self) -> str:
        opt = self.header.get("optimizer")
        return (f"Checkpoint({str(self.path)!r}, {self.network_class}, {self.dtype}"
                + (f", {opt['class']}" if opt else "") + ")")

    # -- building and restoring ---------------------------------------------------------------

    def _fail(self, problem: str) -> CheckpointError:
        return CheckpointError(self.path, problem)

    def build(self, backend: Any = None, device: Any = None, dtype: Any = None, *,
              with_optimizer: bool = False) -> Any:
        """The network (and optimizer) rebuilt and restored; see :func:`load`."""
        be = get_backend(backend, device)  # a bad backend or device is the caller's mistake
        dt = be.dtype_name(be.dtype(self.dtype if dtype is None else dtype))
        cls = NETWORKS.get(self.network_class)
        if cls is None:
            raise self._fail(
                f"holds a {self.network_class!r}, which is not a network class xpnet knows "
                f"(known: {', '.join(sorted(NETWORKS))}); import the module that defines it "
                "first")
        opt = None
        if with_optimizer:
            opt = self._build_optimizer()
        try:
            net = cls(**self.config, backend=be, dtype=dt)
        except (TypeError, ValueError) as exc:
            raise self._fail(f"its configuration does not build a {self.network_class}: "
                             f"{exc}") from exc
        self.restore(net, opt)
        return (net, opt) if with_optimizer else net

    def _build_optimizer(self) -> Optimizer:
        opt = self.header.get("optimizer")
        if opt is None:
            raise self._fail("holds no optimizer state (it was saved without optimizer=); "
                             "load it with with_optimizer=False")
        cls = OPTIMIZER_CLASSES.get(opt["class"])
        if cls is None:
            raise self._fail(f"holds a {opt['class']!r} optimizer, which xpnet does not know "
                             f"(known: {', '.join(OPTIMIZER_CLASSES)}); import the module that "
                             "defines it first")
        try:
            return cls(**opt["hyperparameters"])
        except (TypeError, ValueError) as exc:
            raise self._fail(f"its {opt['class']} hyperparameters are not valid: {exc}") from exc

    def restore(self, network: Any, optimizer: Optimizer | None = None) -> None:
        """Copy the saved state into ``network`` (and ``optimizer``), in place.

        Everything is checked first -- the network's class, every name, shape and dtype, the
        optimizer's class, hyperparameters and state, the random states -- and only then is
        anything copied: on an error, ``network`` and ``optimizer`` are unchanged.  Values are
        cast to the network's dtype.  A random stream saved from another library's generator
        cannot continue here: its layer goes on from a seed derived from the saved state, with a
        :class:`RandomStreamWarning`.

        Raises
        ------
        CheckpointError
            If the checkpoint does not fit.
        """
        copies = self._plan(network, optimizer)
        for copy in copies:
            copy()
        reseeded = [key for key, state in (self.header.get("rng") or {}).items()
                    if state is not None and state.get("kind") != network.backend.random(0).kind]
        if reseeded:
            kinds = sorted({self.header["rng"][k].get("kind") for k in reseeded})
            warnings.warn(
                f"{self.path}: the random streams of {', '.join(reseeded)} were saved from "
                f"{' / '.join(map(str, kinds))} generators, which cannot continue on "
                f"{network.backend.name}; they go on from seeds derived from the saved states "
                "(same distribution, other masks than the saved run would have drawn)",
                RandomStreamWarning, stacklevel=2)

    def _plan(self, network: Any, optimizer: Optimizer | None) -> list[Any]:
        """Check everything; return the copies to make, as callables."""
        if network_name(type(network)) != self.network_class:
            raise self._fail(f"holds a {self.network_class}, not a {network_name(type(network))}")
        be: Backend = network.backend
        net_dtype = be.dtype_name(network.dtype)
        saved_dtype = self.dtype
        copies: list[Any] = []

        # parameters
        saved = self.params()
        params = network.params
        self._same_names("parameters", set(saved), set(params))
        for key, p in params.items():
            self._same_shape(PARAM + key, saved[key], tuple(p.shape))
            self._dtype_is(PARAM + key, saved[key], saved_dtype)
        copies.append(lambda: network.set_params_from_host(saved, net_dtype))

        # buffers (running statistics)
        buffers = self.buffers()
        unset = set(self.header.get("unset_buffers", []))
        slots = network.buffers()
        self._same_names("buffers", set(buffers) | unset, set(slots))
        for name, host in buffers.items():
            layer, attr = network.buffer_owner(name)
            current = slots[name]
            shape = _expected_buffer_shape(layer, current)
            if shape is not None:
                self._same_shape(BUFFER + name, host, shape)
            if current is not None:
                dt = be.dtype_name(current.dtype)
            else:  # the network's dtype, unless the buffer was kept in another one
                dt = net_dtype if host.dtype.name == saved_dtype else host.dtype.name
            copies.append(lambda layer=layer, attr=attr, host=host, dt=dt:
                          setattr(layer, attr, be.asarray(host, dtype=dt, copy=True)))
        for name in unset:
            layer, attr = network.buffer_owner(name)
            copies.append(lambda layer=layer, attr=attr: setattr(layer, attr, None))

        # random streams
        rng = self.header.get("rng") or {}
        layers = network.rng_layers()
        self._same_names("random streams", set(rng), set(layers))
        probe_kind = be.random(0).kind if rng else None
        for key, state in rng.items():
            copies.append(self._rng_copy(key, layers[key], state, be, probe_kind))

        # optimizer
        if optimizer is not None:
            sd = self.optimizer_state()
            if sd is None:
                raise self._fail("holds no optimizer state (it was saved without optimizer=)")
            try:
                optimizer.check_state_dict(sd, params)
            except (TypeError, ValueError) as exc:
                raise self._fail(f"its optimizer state does not fit: {exc}") from exc
            copies.append(lambda: optimizer.load_state_dict(sd, network.params))
        return copies

    def _rng_copy(self, key: str, layer: Any, state: Any, be: Backend, kind: str | None) -> Any:
        if state is None:
            return lambda: layer.set_rng_state(None)
        if not isinstance(state, dict):
            raise self._fail(f"the random state of {key} is malformed")
        if state.get("kind") == kind:
            try:
                be.random(0).set_state(state)  # malformed states fail here, before any copy
            except ValueError as exc:
                raise self._fail(f"the random state of {key}: {exc}") from exc
            return lambda: layer.set_rng_state(state)
        seed = _seed_from(state)  # another library's stream (restore() warns)

        def reseed() -> None:
            layer.seed = seed
            layer.set_rng_state(None)

        return reseed

    def _same_names(self, what: str, saved: set[str], wanted: set[str]) -> None:
        if saved != wanted:
            parts = []
            if wanted - saved:
                parts.append(f"missing {sorted(wanted - saved)}")
            if saved - wanted:
                parts.append(f"unexpected {sorted(saved - wanted)}")
            raise self._fail(f"its {what} do not match the {self.network_class} its "
                             f"configuration builds: {'; '.join(parts)}")

    def _same_shape(self, name: str, host: np.ndarray, shape: tuple[int, ...]) -> None:
        if tuple(host.shape) != tuple(shape):
            raise self._fail(f"{name} has shape {tuple(host.shape)}, but the "
                             f"{self.network_class} needs {tuple(shape)}")

    def _dtype_is(self, name: str, host: np.ndarray, dtype: str) -> None:
        if host.dtype.name != dtype:
            raise self._fail(f"{name} is {host.dtype.name}, but the network was saved in {dtype}")


def _with_prefix(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    n = len(prefix)
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix)}


def _expected_buffer_shape(layer: Any, current: Any) -> tuple[int, ...] | None:
    """The shape a buffer must have: its current one, else (running statistics not created
    yet) that of the layer's ``gamma``; None when neither is known."""
    if current is not None:
        return tuple(current.shape)
    gamma = getattr(layer, "gamma", None)
    return None if gamma is None else tuple(gamma.shape)


def _seed_from(state: Any) -> int:
    text = json.dumps(state, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 2


def read(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint file; build nothing.

    Raises
    ------
    CheckpointError
        For a file that is empty, truncated, corrupted (any byte changed), not a safetensors
        file (a pickle, a zip, a ``.npy``), a safetensors file without xpnet's metadata, or
        one written by a newer xpnet.
    OSError
        If the file cannot be read (missing, a folder, no permission).
    """
    path = _as_path(path)
    data = path.read_bytes()
    fail = lambda problem: CheckpointError(path, problem)  # noqa: E731
    if not data:
        raise fail("is empty (not a checkpoint)")
    foreign = _sniff(data)
    if foreign:
        raise fail(f"is {foreign}, not a safetensors checkpoint; xpnet never unpickles files")
    try:
        entries = safetensors.deserialize(data)
    except Exception as exc:  # SafetensorError and anything the parser raises on bad bytes
        raise fail(f"is not a valid safetensors file, or it is truncated or corrupted "
                   f"(safetensors says: {exc})") from None
    try:
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except (ValueError, AttributeError) as exc:  # the parser accepted it: should not happen
        raise fail(f"has an unreadable header ({exc})") from None
    doc = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if doc is None:
        names = [name for name, _ in entries][:5]
        raise fail(f"is a safetensors file without xpnet's metadata (arrays {names}...): not an "
                   "xpnet checkpoint; safetensors.numpy.load_file reads its arrays")
    if not isinstance(doc, str) or meta.get(DIGEST_KEY) != _text_digest(doc):
        raise fail("has corrupted metadata (its checksum does not match): the file was "
                   "changed or damaged after it was written")
    try:
        header = json.loads(doc)
    except ValueError as exc:
        raise fail(f"has corrupted metadata (not JSON: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise fail("has an 'xpnet' metadata entry that is not an xpnet checkpoint document")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(f"has a malformed format version {version!r}")
    if version > FORMAT_VERSION:
        raise fail(f"was written by a newer xpnet ({header.get('xpnet_version')}, checkpoint "
                   f"format {version}); this xpnet reads format {FORMAT_VERSION} and older: "
                   "upgrade xpnet to load it")
    tensors = _verified_tensors(fail, header, entries)
    _check_structure(fail, header)
    return Checkpoint(path, header, tensors)


def _sniff(data: bytes) -> str | None:
    """What a non-safetensors file looks like, from its first bytes."""
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return "a Python pickle"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save or numpy.savez output?)"
    if data[:6] == b"\x93NUMPY":
        return "a NumPy .npy file"
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        return "an HDF5 file (Keras .h5?)"
    return None


def _verified_tensors(fail: Any, header: dict[str, Any], entries: list[Any]
                      ) -> dict[str, np.ndarray]:
    table = header.get("tensors")
    if not isinstance(table, dict):
        raise fail("has no array table in its metadata")
    found = {name: info for name, info in entries}
    if set(found) != set(table):
        missing, unexpected = sorted(set(table) - set(found)), sorted(set(found) - set(table))
        raise fail(f"does not hold the arrays its metadata lists (missing {missing}, "
                   f"unexpected {unexpected})")
    tensors = {}
    for name, info in found.items():
        want = table[name]
        np_dtype = _DTYPES.get(info["dtype"])
        if np_dtype is None:
            raise fail(f"array {name} has dtype {info['dtype']}, which xpnet does not use")
        arr = np.frombuffer(info["data"], dtype=np_dtype).reshape(info["shape"])
        if not isinstance(want, dict) or want.get("dtype") != arr.dtype.name \
                or want.get("shape") != list(arr.shape):
            raise fail(f"array {name} is {arr.dtype.name} {list(arr.shape)}, but its metadata "
                       f"says {want!r}")
        if want.get("sha256") != _sha(arr):
            raise fail(f"array {name} is corrupted (its checksum does not match)")
        tensors[name] = arr
    return tensors


def _check_structure(fail: Any, header: dict[str, Any]) -> None:
    net = header.get("network")
    if not (isinstance(net, dict) and isinstance(net.get("class"), str)
            and isinstance(net.get("config"), dict) and isinstance(net.get("dtype"), str)):
        raise fail("has no valid network description (class, config, dtype) in its metadata")
    if not isinstance(header.get("unset_buffers", []), list):
        raise fail("has a malformed list of unset buffers")
    if not isinstance(header.get("rng", {}), dict):
        raise fail("has malformed random states")
    opt = header.get("optimizer")
    if opt is not None and not (
            isinstance(opt, dict) and isinstance(opt.get("class"), str)
            and isinstance(opt.get("hyperparameters"), dict)
            and isinstance(opt.get("counters"), dict)
            and isinstance(opt.get("state_names"), list)):
        raise fail("has a malformed optimizer description")
    if opt is not None:
        for name in header["tensors"]:
            if name.startswith(OPTIM):
                sname, sep, key = name[len(OPTIM):].partition("/")
                if not sep or sname not in opt["state_names"]:
                    raise fail(f"has an optimizer array {name} of no declared state")


# --------------------------------------------------------------------------------------------
# loading and moving
# --------------------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], backend: Any = None, device: Any = None,
         dtype: Any = None, *, with_optimizer: bool = False) -> Any:
    """Rebuild a network (and optimizer) from a checkpoint, on any backend and device.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save` / ``net.save`` / the :class:`~xpnet.Trainer`.
    backend, device : optional
        Where to build it (as for every xpnet object: None is the default backend,
        :func:`xpnet.set_default_backend`).  It need not be where it was saved.
    dtype : optional
        The network's dtype; None keeps the saved one.  Values are cast.
    with_optimizer : bool
        Also rebuild the optimizer saved with it and return ``(network, optimizer)``; the
        optimizer's next step continues exactly (bit for bit on the same backend).

    Returns
    -------
    network, or (network, optimizer)

    Raises
    ------
    CheckpointError
        A file that is damaged, foreign, from a newer xpnet, or (``with_optimizer=True``)
        saved without an optimizer -- see :func:`read`.
    ValueError, BackendUnavailableError
        A backend or device that cannot be used here.

    Examples
    --------
    >>> import os, tempfile, xpnet
    >>> path = xpnet.MultiLayerNet(4, [5], 3, seed=0).save(
    ...     os.path.join(tempfile.mkdtemp(), "a.safetensors"))
    >>> xpnet.load(path, dtype="float64")
    MultiLayerNet(4-5-3, relu, backend='numpy', dtype=array_api_compat.numpy.float64)
    """
    return read(path).build(backend, device, dtype, with_optimizer=with_optimizer)
