"""Pickle-free model files: :func:`save` and :func:`load` for fitted skkgp estimators.

A pickle runs code when it is loaded, so a model file received from someone else is
as dangerous as a program from them. :func:`save` writes a fitted
:class:`~skkgp.EEGClassifier`, :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier` or
:class:`~skkgp.KnowledgeGuidedPruner` as one :func:`torch.save` file that holds only
tensors, strings and numbers, and :func:`load` reads it with
``torch.load(weights_only=True)``, which refuses anything else.

File layout (a dict)::

    format    "skkgp"
    version   1
    kind      class name of the saved estimator
    meta      JSON text: estimator classes and parameters, fitted attributes, and for
              each network its class, constructor arguments, the shape attributes of
              every layer (pruning shrinks them) and its pruning masks
    tensors   {name: tensor}: every network's state dict (and masks)
    checksum  sha256 of meta and every tensor (name, dtype, shape, bytes)

Classes are stored by their import path and re-created on loading from an allow-list
only: the zoo, skkgp's own classes, torch losses and optimizers, and a few skorch
helpers. Any other class (your own ``torch.nn.Module``, say) is loaded only when you
pass it in ``trusted_classes``; a path in a file is never imported on its own.

The checksum catches damaged and edited files; it is not a signature (whoever edits
a file can recompute it). Safety against a malicious file comes from the pickle-free
format and the allow-list, and a file whose weights contradict its layers is refused.
The optimizer's state (e.g. Adam's moments) is not stored: training a loaded model
further starts a fresh optimizer.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from skkgp._atomic import atomic_file
from skkgp._training import lay_out, uncompiled
from skkgp.pruning.umwp import register_detach_hook

__all__ = ["save", "load", "FORMAT", "VERSION"]

#: Value of the ``format`` key of every skkgp model file.
FORMAT = "skkgp"
#: Version of the file layout written by :func:`save`.
VERSION = 1

# Exact classes from skorch and scikit-learn that may be re-created from a file: other
# skorch callbacks load or write files (LoadInitState, Checkpoint), so no prefix rule.
_SKORCH_ALLOWED = {
    "skorch.dataset:Dataset",
    "skorch.dataset:ValidSplit",
    "skorch.callbacks.logging:EpochTimer",
    "skorch.callbacks.logging:PrintLog",
    "skorch.callbacks.logging:ProgressBar",
    "skorch.callbacks.scoring:EpochScoring",
    "skorch.callbacks.scoring:BatchScoring",
    "skorch.callbacks.scoring:PassthroughScoring",
    "skorch.callbacks.training:EarlyStopping",
    "skorch.callbacks.lr_scheduler:LRScheduler",
    "skorch.callbacks.regularization:GradientNormClipping",
    "torch.utils.data.dataloader:DataLoader",
    "sklearn.pipeline:Pipeline",
}
# Packages whose classes are safe to construct from plain arguments.
_ALLOWED_PREFIXES = ("skkgp.", "torch.nn.", "torch.optim.")

# Layer attributes that structural pruning changes and that forward() may read.
_LAYER_ATTRS = (
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "in_features",
    "out_features",
    "num_groups",
    "num_channels",
    "normalized_shape",
    "embed_dim",
    "num_heads",
    "hidden_size",
    "input_size",
)

# skorch bookkeeping rebuilt by ``initialize()``; not part of what a fit learned.
_NET_SKIP = {
    "initialized_",
    "virtual_params_",
    "init_context_",
    "callbacks_",
    "prefixes_",
    "cuda_dependent_attributes_",
    "module_",
    "criterion_",
    "optimizer_",
    "history_",
}


# ---------------------------------------------------------------------- public API
def save(estimator: Any, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``estimator`` (fitted or not) to ``path`` without pickle.

    The network's architecture (pruned layers included: torch-pruning shrinks them in
    place, magnitude pruning leaves masks), weights, parameters and fitted attributes
    are stored as tensors and JSON text. The file is written to a temporary file of
    the same folder and moved into place, so a crash never leaves half a file.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedClassifier or KnowledgeGuidedPruner
        The estimator to store, or a :class:`sklearn.pipeline.Pipeline` of skkgp
        transformers and estimators.
    path : path-like
        Destination file (by convention ``*.skkgp`` or ``*.pt``); its folder must exist.
    overwrite : bool, default=False
        Replace an existing file. By default an existing ``path`` raises
        :class:`FileExistsError` and is left untouched: a model file is often the
        result of hours of training.

    Raises
    ------
    ValueError
        If a parameter cannot be stored safely (a lambda, a local class, an arbitrary
        object). Callbacks that cannot be stored are dropped with a warning: they act
        during training only, so predictions do not change.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import skkgp  # doctest: +SKIP
    >>> skkgp.save(fitted_pruner, "pruned.skkgp")  # doctest: +SKIP
    >>> again = skkgp.load("pruned.skkgp")  # doctest: +SKIP
    """
    encoder = _Encoder()
    meta = {"estimator": encoder.estimator(estimator), "modules": encoder.modules()}
    meta_text = json.dumps(meta, sort_keys=True, allow_nan=True, separators=(",", ":"))
    tensors = encoder.tensors
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": type(estimator).__name__,
        "meta": meta_text,
        "tensors": tensors,
        "checksum": _checksum(FORMAT, VERSION, type(estimator).__name__, meta_text, tensors),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_file(path, overwrite=overwrite) as stream:
        stream.write(buffer.getbuffer())


def load(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    trusted_classes: Iterable[type] = (),
) -> Any:
    """Read an estimator written by :func:`save`, without unpickling anything.

    The file is read with ``torch.load(weights_only=True)`` (which refuses pickled
    code), its checksum is verified, every class is resolved from the allow-list or
    ``trusted_classes``, each network is rebuilt with its pruned layer shapes and
    masks, and its weights are loaded. The estimator predicts exactly as when it was
    saved, without refitting.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.
    device : str, torch.device or None, default=None
        Where the networks go, e.g. ``"cpu"`` or ``"cuda"``; the estimators' ``device``
        parameter is set to it. ``None`` keeps the saved ``device``, falling back to
        ``"cpu"`` (with a warning) when the file was saved on a GPU and none is
        available.
    trusted_classes : iterable of type, default=()
        Classes outside the allow-list (skkgp's zoo and estimators, torch losses and
        optimizers, a few skorch helpers) that the file may instantiate, such as your
        own ``torch.nn.Module`` subclass. Matched by import path; nothing named in the
        file is imported unless it is allow-listed or given here.

    Returns
    -------
    estimator : object
        The restored estimator.

    Raises
    ------
    ValueError
        If the file is not a skkgp model file, is corrupt or was tampered with
        (checksum mismatch, missing keys), or names a class that is not trusted.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if device is not None:
        try:
            wanted = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not a torch device (cpu, cuda, ...).") from None
        if wanted.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no CUDA device on this machine.")
    if not path.is_file():
        raise FileNotFoundError(f"No skkgp model file at {str(path)!r}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{str(path)!r} is not a readable skkgp model file: it is not a torch zip archive "
            "(skkgp.save writes those; a legacy or plain pickle is refused unopened)."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{str(path)!r} is not a safe skkgp model file: torch.load(weights_only=True) "
            f"refused it ({_first_line(error)}). It may hold pickled code; it was not run."
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure to parse is a damaged file
        raise ValueError(
            f"{str(path)!r} is not a readable skkgp model file (truncated, corrupt or not a "
            f"torch file): {_first_line(error)}"
        ) from None
    meta = _check_payload(payload, path)
    trusted_classes = list(trusted_classes)
    for cls in trusted_classes:
        if not isinstance(cls, type):
            raise TypeError(f"trusted_classes must hold classes, got {cls!r}.")
    trusted = {_class_path(cls): cls for cls in trusted_classes}
    decoder = _Decoder(payload["tensors"], trusted, device)
    decoder.module_records = meta["modules"]
    try:
        return decoder.estimator(meta["estimator"])
    except (TypeError, KeyError, AttributeError, IndexError) as error:
        raise ValueError(
            f"{str(path)!r} is damaged or inconsistent: rebuilding the estimator failed with "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None


# ---------------------------------------------------------------------- file checks
def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _checksum(fmt: str, version: int, kind: str, meta_text: str, tensors: Mapping) -> str:
    digest = hashlib.sha256()
    header = json.dumps([fmt, version, kind], separators=(",", ":"))
    for part in (header, meta_text):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    for name in sorted(tensors):
        tensor = tensors[name]
        head = json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode("utf-8")
        digest.update(len(head).to_bytes(8, "little"))
        digest.update(head)
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _check_payload(payload: Any, path: Path) -> dict:
    where = repr(str(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{where} is not a skkgp model file (format {found!r}, expected {FORMAT!r}); "
            "write one with skkgp.save."
        )
    missing = [k for k in ("version", "kind", "meta", "tensors", "checksum") if k not in payload]
    if missing:
        raise ValueError(f"{where} is damaged: missing keys {missing}.")
    if payload["version"] != VERSION:
        raise ValueError(
            f"{where} has file version {payload['version']!r}; this skkgp reads version "
            f"{VERSION}. Save the model again with a matching skkgp."
        )
    tensors = payload["tensors"]
    if not isinstance(payload["meta"], str) or not isinstance(tensors, dict) or not all(
        isinstance(t, torch.Tensor) for t in tensors.values()
    ):
        raise ValueError(f"{where} is damaged: 'meta' must be text and 'tensors' tensors.")
    expected = _checksum(FORMAT, VERSION, str(payload["kind"]), payload["meta"], tensors)
    if payload["checksum"] != expected:
        raise ValueError(
            f"{where} failed its checksum: its content was changed after skkgp.save wrote "
            "it (tampered with or damaged). Refusing to load it."
        )
    try:
        meta = json.loads(payload["meta"])
    except ValueError as error:
        raise ValueError(f"{where} is damaged: its metadata is not JSON ({error}).") from None
    for key in ("estimator", "modules"):
        if not isinstance(meta, dict) or key not in meta:
            raise ValueError(f"{where} is damaged: missing key {key!r} in its metadata.")
    return meta


# ---------------------------------------------------------------------- classes
def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_allowed(path: str) -> bool:
    module = path.split(":", 1)[0]
    if "__main__" in module.split("."):
        return False  # importing a __main__ module may run a program
    return path in _SKORCH_ALLOWED or (module + ".").startswith(_ALLOWED_PREFIXES)


def _import_path(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------- encoding
class _Unrepresentable(ValueError):
    pass


class _Encoder:
    """Turns estimators into JSON-ready trees, collecting tensors on the side."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._modules: dict[int, int] = {}  # id(module) -> index, for shared modules
        self._module_records: list = []

    # -- estimators ----------------------------------------------------------------
    def estimator(self, est: Any) -> dict:
        from sklearn.base import BaseEstimator
        from skorch import NeuralNet

        if not isinstance(est, (BaseEstimator, NeuralNet)):
            raise TypeError(
                "skkgp.save stores skkgp estimators (EEGClassifier, KnowledgeGuidedPruner, "
                f"...); got {type(est).__name__}."
            )
        cls = type(est)
        self._check_class(cls, what="estimator class")
        params = est.get_params(deep=False)
        record: dict[str, Any] = {"class": _class_path(cls)}
        encoded_params = {}
        for name, value in params.items():
            if name == "callbacks":
                encoded_params[name] = self._callbacks(value)
                continue
            try:
                encoded_params[name] = self.value(value)
            except _Unrepresentable as error:
                raise ValueError(
                    f"Cannot save parameter {name}={value!r} of {cls.__name__} without "
                    f"pickle: {error}. Use a zoo name or an importable class instead."
                ) from None
        record["params"] = encoded_params
        fitted = {}
        if isinstance(est, NeuralNet):
            if getattr(est, "initialized_", False) and hasattr(est, "module_"):
                record["module_"] = self.value(est.module_)
                try:
                    record["history_"] = self.value(est.history_)
                except _Unrepresentable as error:
                    warnings.warn(
                        f"skkgp.save drops the training history of {cls.__name__}: {error}.",
                        UserWarning,
                        stacklevel=3,
                    )
                    record["history_"] = {"__history__": []}
            names = [n for n in vars(est) if n.endswith("_") and not n.startswith("_")
                     and n not in _NET_SKIP]
        else:
            names = [n for n in vars(est) if n.endswith("_") and not n.startswith("_")]
        for name in sorted(names):
            value = getattr(est, name)
            if isinstance(est, NeuralNet) and isinstance(value, (nn.Module, torch.optim.Optimizer)):
                continue
            try:
                fitted[name] = self.value(value)
            except _Unrepresentable as error:
                raise ValueError(
                    f"Cannot save fitted attribute {name} of {cls.__name__}: {error}."
                ) from None
        record["fitted"] = fitted
        return record

    def _callbacks(self, callbacks: Any) -> Any:
        if callbacks is None or isinstance(callbacks, str):
            return callbacks
        kept = []
        for item in callbacks:
            try:
                kept.append(self.value(item))
            except _Unrepresentable as error:
                warnings.warn(
                    f"skkgp.save drops the callback {item!r}: {error}. Callbacks act during "
                    "training only; predictions of the loaded model are unaffected.",
                    UserWarning,
                    stacklevel=4,
                )
        return {"__list__": kept}

    @staticmethod
    def _check_class(cls: type, *, what: str) -> None:
        if "<locals>" in cls.__qualname__ or "<lambda>" in cls.__qualname__:
            raise _Unrepresentable(
                f"{what} {cls.__qualname__} is defined inside a function and cannot be "
                "imported again"
            )

    # -- values --------------------------------------------------------------------
    def value(self, value: Any) -> Any:
        from sklearn.base import BaseEstimator
        from skorch import NeuralNet
        from skorch.history import History

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float):
            return {"__float__": repr(value)} if not np.isfinite(value) else value
        if isinstance(value, np.generic):
            return {"__npscalar__": value.dtype.str, "value": self.value(value.item())}
        if isinstance(value, History):
            return {"__history__": [self.value(row) for row in value]}
        if isinstance(value, tuple):
            return {"__tuple__": [self.value(v) for v in value]}
        if isinstance(value, list):
            return {"__list__": [self.value(v) for v in value]}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise _Unrepresentable("dict keys must be strings")
            return {"__dict__": {k: self.value(v) for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biufc":
                return {"__ndarray__": self._tensor(torch.from_numpy(np.array(value))),
                        "dtype": value.dtype.str}
            if value.dtype.kind in "UO":
                items = [self.value(v) for v in value.ravel().tolist()]
                return {"__ndarray_items__": items, "dtype": value.dtype.str,
                        "shape": list(value.shape)}
            raise _Unrepresentable(f"arrays of dtype {value.dtype} are not supported")
        if isinstance(value, torch.Tensor):
            return {"__tensor__": self._tensor(value)}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, torch.dtype):
            return {"__torch_dtype__": str(value).replace("torch.", "")}
        if isinstance(value, nn.Module):
            return {"__module__": self._module(value)}
        if isinstance(value, (BaseEstimator, NeuralNet)):
            return {"__estimator__": self.estimator(value)}
        if isinstance(value, type):
            self._check_class(value, what="class")
            return {"__class__": _class_path(value)}
        if dataclasses.is_dataclass(value):
            self._check_class(type(value), what="class")
            fields = {f.name: self.value(getattr(value, f.name))
                      for f in dataclasses.fields(value) if f.init}
            return {"__dataclass__": _class_path(type(value)), "fields": fields}
        if inspect.isroutine(value) or isinstance(value, functools.partial):
            raise _Unrepresentable(f"functions such as {value!r} cannot be stored safely")
        return self._object(value)

    def _object(self, obj: Any) -> dict:
        """An object re-creatable from the constructor arguments it stores by name."""
        cls = type(obj)
        self._check_class(cls, what="class")
        try:
            signature = inspect.signature(cls.__init__)
        except (TypeError, ValueError):
            raise _Unrepresentable(f"cannot inspect the constructor of {cls.__name__}") from None
        kwargs = {}
        for name, parameter in list(signature.parameters.items())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if not hasattr(obj, name):
                raise _Unrepresentable(
                    f"{cls.__name__} does not keep its constructor argument {name!r}"
                )
            value = getattr(obj, name)
            if value is parameter.default:
                continue  # e.g. EarlyStopping(sink=print): the constructor restores it
            kwargs[name] = self.value(value)
        return {"__object__": _class_path(cls), "kwargs": kwargs}

    def _tensor(self, tensor: torch.Tensor) -> str:
        key = f"t{len(self.tensors)}"
        self.tensors[key] = tensor.detach().cpu().clone()
        return key

    def _module(self, module: nn.Module) -> int:
        # A torch.compile wrapper: store the network it wraps (load compiles it again).
        module = uncompiled(module)
        if id(module) in self._modules:
            return self._modules[id(module)]
        cls = type(module)
        self._check_class(cls, what="module class")
        # Constructor arguments: what the module stores under each argument's name
        # (every zoo model does).
        kwargs = {}
        for name, parameter in list(inspect.signature(cls.__init__).parameters.items())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if hasattr(module, name) and not isinstance(getattr(module, name), nn.Module):
                kwargs[name] = self.value(getattr(module, name))
            elif parameter.default is parameter.empty:
                raise _Unrepresentable(
                    f"module {cls.__name__} does not keep its constructor argument {name!r} "
                    "as an attribute, so it cannot be rebuilt"
                )
        layers = {}
        masks = {}
        for name, sub in module.named_modules():
            attrs = {}
            for attr in _LAYER_ATTRS:
                value = getattr(sub, attr, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    attrs[attr] = value
                elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                    attrs[attr] = {"__tuple__": list(value)}
            layers[name] = {"type": _class_path(type(sub)), "attrs": attrs}
            for hook in sub._forward_pre_hooks.values():
                if isinstance(hook, torch_prune.BasePruningMethod):
                    masks.setdefault(name, []).append(hook._tensor_name)
        mask_keys = {f"{name}.{t}_mask" if name else f"{t}_mask"
                     for name, tensor_names in masks.items() for t in tensor_names}
        # Masks hold only 0 and 1: stored as bool they take a quarter of the space.
        state = {k: self._tensor(v.bool() if k in mask_keys else v)
                 for k, v in module.state_dict().items()}
        index = len(self._module_records)
        self._modules[id(module)] = index
        self._module_records.append(None)  # reserve the index (modules may nest)
        self._module_records[index] = {
            "class": _class_path(cls),
            "kwargs": kwargs,
            "layers": layers,
            "masks": masks,
            "state_dict": state,
            "training": module.training,
        }
        return index

    def modules(self) -> list:
        return self._module_records


# ---------------------------------------------------------------------- decoding
class _Decoder:
    """Rebuilds estimators and networks from the tree and tensors of a file."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], trusted: Mapping[str, type],
                 device: str | torch.device | None) -> None:
        self.tensors = tensors
        self.trusted = trusted
        self.device = None if device is None else str(device)
        self.module_records: list = []
        self._modules: dict[int, nn.Module] = {}

    # -- classes -------------------------------------------------------------------
    def resolve(self, path: str, *, base: type | None = None, what: str = "class") -> type:
        if not isinstance(path, str) or ":" not in path:
            raise ValueError(f"The model file is damaged: bad class reference {path!r}.")
        if path in self.trusted:
            cls = self.trusted[path]
        elif _is_allowed(path):
            try:
                cls = _import_path(path)
            except (ImportError, AttributeError):
                raise ValueError(
                    f"The model file names {what} {path!r}, which this installation does "
                    "not have (saved with another version of skkgp or torch?)."
                ) from None
        else:
            raise ValueError(
                f"The model file names {what} {path!r}, which is not on skkgp's allow-list. "
                "Loading would import and run it; if you trust this file, pass the class "
                f"itself: skkgp.load(path, trusted_classes=[{path.split(':')[-1]}])."
            )
        if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
            raise ValueError(f"The model file names {path!r} as {what}, but it is not one.")
        return cls

    # -- values --------------------------------------------------------------------
    def tensor(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise ValueError(f"The model file is damaged: tensor {key!r} is missing.")
        return self.tensors[key]

    def value(self, tree: Any) -> Any:
        if tree is None or isinstance(tree, (bool, int, float, str)):
            return tree
        if isinstance(tree, list):
            raise ValueError("The model file is damaged: untagged list in its metadata.")
        if not isinstance(tree, dict) or len(tree) == 0:
            raise ValueError(f"The model file is damaged: unexpected value {tree!r}.")
        tag = next(k for k in tree if k.startswith("__")) if any(
            k.startswith("__") for k in tree) else None
        if tag == "__float__":
            return float(tree[tag])
        if tag == "__npscalar__":
            return np.dtype(tree[tag]).type(self.value(tree["value"]))
        if tag == "__history__":
            from skorch.history import History

            return History([self.value(row) for row in tree[tag]])
        if tag == "__tuple__":
            return tuple(self.value(v) for v in tree[tag])
        if tag == "__list__":
            return [self.value(v) for v in tree[tag]]
        if tag == "__dict__":
            return {k: self.value(v) for k, v in tree[tag].items()}
        if tag == "__ndarray__":
            array = self.tensor(tree[tag]).numpy().copy()
            return array.astype(np.dtype(tree["dtype"]), copy=False)
        if tag == "__ndarray_items__":
            items = [self.value(v) for v in tree[tag]]
            dtype = np.dtype(tree["dtype"])
            if dtype.kind == "O":
                array = np.empty(len(items), dtype=object)
                array[:] = items
            else:
                array = np.array(items, dtype=dtype)
            return array.reshape(tree["shape"])
        if tag == "__tensor__":
            return self.tensor(tree[tag]).clone()
        if tag == "__device__":
            return torch.device(tree[tag])
        if tag == "__torch_dtype__":
            dtype = getattr(torch, str(tree[tag]), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"The model file is damaged: unknown dtype {tree[tag]!r}.")
            return dtype
        if tag == "__module__":
            return self.module(tree[tag])
        if tag == "__estimator__":
            return self.estimator(tree[tag])
        if tag == "__class__":
            return self.resolve(tree[tag])
        if tag == "__dataclass__":
            cls = self.resolve(tree[tag])
            if not dataclasses.is_dataclass(cls):
                raise ValueError(f"The model file names {tree[tag]!r} as a dataclass.")
            return cls(**{k: self.value(v) for k, v in tree["fields"].items()})
        if tag == "__object__":
            cls = self.resolve(tree[tag], what="object class")
            return cls(**{k: self.value(v) for k, v in tree["kwargs"].items()})
        raise ValueError(f"The model file is damaged: unknown entry {sorted(tree)!r}.")

    # -- networks ------------------------------------------------------------------
    def module(self, index: int) -> nn.Module:
        if index in self._modules:
            return self._modules[index]
        if not isinstance(index, int) or not 0 <= index < len(self.module_records):
            raise ValueError(f"The model file is damaged: no network number {index!r}.")
        record = self.module_records[index]
        try:
            cls = self.resolve(record["class"], base=nn.Module, what="network class")
            kwargs = {k: self.value(v) for k, v in record["kwargs"].items()}
            module = cls(**kwargs)
            state = {k: self.tensor(v) for k, v in record["state_dict"].items()}
            _reshape_layers(module, record["layers"], state, record["masks"])
            for name, tensor_names in record["masks"].items():
                layer = module.get_submodule(name)
                for tensor_name in tensor_names:
                    key = f"{name}.{tensor_name}_mask" if name else f"{tensor_name}_mask"
                    dtype = getattr(layer, tensor_name).dtype
                    state[key] = state[key].to(dtype)
                    torch_prune.custom_from_mask(layer, tensor_name, state[key])
            module.load_state_dict(state, strict=True)
            for name, tensor_names in record["masks"].items():
                for tensor_name in tensor_names:
                    # keeps the masked net deep-copyable after a forward pass with gradients
                    register_detach_hook(module.get_submodule(name), tensor_name)
            _check_layer_shapes(module)
        except KeyError as error:
            raise ValueError(f"The model file is damaged: missing key {error}.") from None
        except RuntimeError as error:
            raise ValueError(
                f"The weights in the model file do not fit the rebuilt "
                f"{record.get('class')!r} network: {_first_line(error)}"
            ) from None
        module.train(bool(record.get("training", False)))
        self._modules[index] = module
        return module

    # -- estimators ----------------------------------------------------------------
    def estimator(self, record: dict) -> Any:
        from sklearn.base import BaseEstimator
        from skorch import NeuralNet

        try:
            cls = self.resolve(record["class"], what="estimator class")
            if not issubclass(cls, (BaseEstimator, NeuralNet)):
                raise ValueError(f"The model file names {record['class']!r} as an estimator.")
            params = {k: self.value(v) for k, v in record["params"].items()}
            fitted = {k: self.value(v) for k, v in record["fitted"].items()}
        except KeyError as error:
            raise ValueError(f"The model file is damaged: missing key {error}.") from None
        if issubclass(cls, NeuralNet):
            return self._net(cls, params, fitted, record)
        est = cls(**params)
        for name, value in fitted.items():
            setattr(est, name, value)
        return est

    def _net(self, cls: type, params: dict, fitted: dict, record: dict) -> Any:
        saved_device = params.get("device", "cpu")
        device = self.device
        if device is None:
            device = str(saved_device) if saved_device is not None else "cpu"
            if torch.device(device).type == "cuda" and not torch.cuda.is_available():
                warnings.warn(
                    f"The model was saved with device={saved_device!r} but CUDA is not "
                    "available; loading it on the CPU (device='cpu').",
                    UserWarning,
                    stacklevel=4,
                )
                device = "cpu"
        if "device" in params:
            params["device"] = device
        from skkgp.classifier import EEGClassifier

        if "channels_last" not in params and issubclass(cls, EEGClassifier):
            # Written before skkgp had the parameter: those nets trained contiguous.
            params["channels_last"] = False
        net = cls(**params)
        for name, value in fitted.items():
            setattr(net, name, value)
        if "module_" not in record:
            return net
        module = self.value(record["module_"])
        with warnings.catch_warnings():
            # Re-initialising a net whose parameters were just set warns in skorch.
            warnings.simplefilter("ignore")
            net.initialize()
        # The layout fit would give it (channels_last): predictions round as when saved.
        channels_last = getattr(net, "channels_last", False)
        module = lay_out(module, channels_last, net.device)
        net.module_ = net.torch_compile(module.to(device), name="module")
        net.initialize_optimizer()
        net.history_ = self.value(record["history_"])
        return net


def _reshape_layers(module: nn.Module, layers: Mapping, state: Mapping,
                    masks: Mapping) -> None:
    """Give every layer of a freshly built ``module`` the shapes it had when saved."""
    for name, layer_record in layers.items():
        try:
            layer = module.get_submodule(name) if name else module
        except AttributeError:
            raise ValueError(
                f"The model file has a layer {name!r} that the rebuilt network lacks."
            ) from None
        saved_type = layer_record["type"]
        if _class_path(type(layer)) != saved_type:
            raise ValueError(
                f"Layer {name!r} is a {saved_type} in the model file but a "
                f"{_class_path(type(layer))} in the rebuilt network."
            )
        for attr, value in layer_record["attrs"].items():
            if isinstance(value, dict) and "__tuple__" in value:
                value = tuple(value["__tuple__"])
            setattr(layer, attr, value)
    masked = {(layer, t) for layer, names in masks.items() for t in names}
    for key, tensor in state.items():
        owner_name, _, attr = key.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if attr.endswith("_mask") and (owner_name, attr[: -len("_mask")]) in masked:
            continue  # created by custom_from_mask
        if attr.endswith("_orig") and (owner_name, attr[: -len("_orig")]) in masked:
            attr = attr[: -len("_orig")]
        current = getattr(owner, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        replacement = torch.empty(tensor.shape, dtype=current.dtype)
        if isinstance(current, nn.Parameter):
            setattr(owner, attr, nn.Parameter(replacement, requires_grad=current.requires_grad))
        elif attr in owner._buffers:
            owner._buffers[attr] = replacement


def _check_layer_shapes(module: nn.Module) -> None:
    """Refuse weights whose shapes contradict their layer's own attributes."""
    for name, layer in module.named_modules():
        expected: dict[str, tuple] = {}
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            expected["weight"] = (layer.out_channels, layer.in_channels // layer.groups,
                                  *layer.kernel_size)
            expected["bias"] = (layer.out_channels,)
        elif isinstance(layer, nn.Linear):
            expected["weight"] = (layer.out_features, layer.in_features)
            expected["bias"] = (layer.out_features,)
        elif isinstance(layer, nn.modules.batchnorm._NormBase):
            for attr in ("weight", "bias", "running_mean", "running_var"):
                expected[attr] = (layer.num_features,)
        for attr, shape in expected.items():
            tensor = getattr(layer, attr, None)
            if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) != shape:
                raise RuntimeError(
                    f"layer {name!r}: {attr} has shape {tuple(tensor.shape)}, its attributes "
                    f"imply {shape}"
                )
