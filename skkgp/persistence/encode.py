"""Encoding: fitted estimators and their networks as a JSON-ready tree and tensors.

:class:`Encoder` walks an estimator's parameters and fitted attributes and each
network's constructor arguments, layer shapes, masks and state dict;
:func:`checksum` seals what :func:`skkgp.save` writes. The file layout is described in
:mod:`skkgp.persistence`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from skkgp._training import uncompiled
from skkgp.pruning.masks import mask_state_keys, masked_tensors

__all__ = ["FORMAT", "VERSION", "LAYER_ATTRIBUTES", "NET_BOOKKEEPING", "Encoder",
           "Unrepresentable", "checksum", "class_path"]

#: Value of the ``format`` key of every skkgp model file.
FORMAT = "skkgp"
#: Version of the file layout written by :func:`save`.
VERSION = 1

#: Layer attributes that a file stores per layer (and :func:`skkgp.load` sets, nothing
#: else): those that structural pruning changes and that ``forward()`` may read.
LAYER_ATTRIBUTES = (
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

#: skorch bookkeeping rebuilt by ``initialize()``: never stored as a fitted attribute
#: (not part of what a fit learned).
NET_BOOKKEEPING = frozenset({
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
})


def checksum(fmt: str, version: int, kind: str, meta_text: str, tensors: Mapping) -> str:
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


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class Unrepresentable(ValueError):
    """A value that a model file cannot hold without pickle."""


# Fitted attributes of a KnowledgeGuidedPruner that hold its unpruned origin network;
# predicting never reads them (save(..., include_origin=False) leaves them out).
_ORIGIN_ATTRIBUTES = ("origin_estimator_", "origin_module_")


def _holds_origin(estimator: Any) -> bool:
    from skkgp.pruner import KnowledgeGuidedPruner

    return isinstance(estimator, KnowledgeGuidedPruner)


class Encoder:
    """Turns estimators into JSON-ready trees, collecting tensors on the side."""

    def __init__(self, *, include_origin: bool = True) -> None:
        self.include_origin = include_origin
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
        record: dict[str, Any] = {"class": class_path(cls)}
        encoded_params = {}
        drop_origin = not self.include_origin and _holds_origin(est)
        for name, value in params.items():
            if name == "callbacks":
                encoded_params[name] = self._callbacks(value)
                continue
            if drop_origin and name == "estimator":
                from sklearn.base import clone

                value = clone(value)  # a prefit origin, stored unfitted
            try:
                encoded_params[name] = self.value(value)
            except Unrepresentable as error:
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
                except Unrepresentable as error:
                    warnings.warn(
                        f"skkgp.save drops the training history of {cls.__name__}: {error}.",
                        UserWarning,
                        stacklevel=3,
                    )
                    record["history_"] = {"__history__": []}
            names = [n for n in vars(est) if n.endswith("_") and not n.startswith("_")
                     and n not in NET_BOOKKEEPING]
        else:
            names = [n for n in vars(est) if n.endswith("_") and not n.startswith("_")]
        if drop_origin:
            names = [n for n in names if n not in _ORIGIN_ATTRIBUTES]
        for name in sorted(names):
            value = getattr(est, name)
            if isinstance(est, NeuralNet) and isinstance(value, (nn.Module, torch.optim.Optimizer)):
                continue
            try:
                fitted[name] = self.value(value)
            except Unrepresentable as error:
                raise ValueError(
                    f"Cannot save fitted attribute {name} of {cls.__name__}: {error}."
                ) from None
        record["fitted"] = fitted
        record.update(self._requests(est))
        return record

    @staticmethod
    def _requests(est: Any) -> dict:
        """Metadata-routing requests and the ``set_output`` choice set on ``est``.

        Both live in private attributes that ``set_<method>_request`` and ``set_output``
        write; a routed pipeline fails to predict without them. They are stored as plain
        data (requests: ``True``, ``False``, ``None`` or an alias) and replayed through
        the same public setters on loading.
        """
        stored: dict[str, Any] = {}
        if "_metadata_request" in vars(est):
            routing = est.get_metadata_routing()
            stored["metadata_request"] = {
                method: dict(request.requests) for method, request in vars(routing).items()
                if method != "owner" and getattr(request, "requests", None)
            }
        output = vars(est).get("_sklearn_output_config")
        if output:
            stored["output_config"] = {str(k): str(v) for k, v in output.items()}
        return stored

    def _callbacks(self, callbacks: Any) -> Any:
        if callbacks is None or isinstance(callbacks, str):
            return callbacks
        kept = []
        for item in callbacks:
            try:
                kept.append(self.value(item))
            except Unrepresentable as error:
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
            raise Unrepresentable(
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
                raise Unrepresentable("dict keys must be strings")
            return {"__dict__": {k: self.value(v) for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biufc":
                # torch takes native byte order only; "dtype" restores the original one.
                native = np.array(value, dtype=value.dtype.newbyteorder("="))
                return {"__ndarray__": self._tensor(torch.from_numpy(native)),
                        "dtype": value.dtype.str}
            if value.dtype.kind in "UO":
                items = [self.value(v) for v in value.ravel().tolist()]
                return {"__ndarray_items__": items, "dtype": value.dtype.str,
                        "shape": list(value.shape)}
            raise Unrepresentable(f"arrays of dtype {value.dtype} are not supported")
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
            return {"__class__": class_path(value)}
        if dataclasses.is_dataclass(value):
            self._check_class(type(value), what="class")
            fields = {f.name: self.value(getattr(value, f.name))
                      for f in dataclasses.fields(value) if f.init}
            return {"__dataclass__": class_path(type(value)), "fields": fields}
        if inspect.isroutine(value) or isinstance(value, functools.partial):
            raise Unrepresentable(f"functions such as {value!r} cannot be stored safely")
        return self._object(value)

    def _object(self, obj: Any) -> dict:
        """An object re-creatable from the constructor arguments it stores by name."""
        cls = type(obj)
        self._check_class(cls, what="class")
        try:
            signature = inspect.signature(cls.__init__)
        except (TypeError, ValueError):
            raise Unrepresentable(f"cannot inspect the constructor of {cls.__name__}") from None
        kwargs = {}
        for name, parameter in list(signature.parameters.items())[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if not hasattr(obj, name):
                raise Unrepresentable(
                    f"{cls.__name__} does not keep its constructor argument {name!r}"
                )
            value = getattr(obj, name)
            if value is parameter.default:
                continue  # e.g. EarlyStopping(sink=print): the constructor restores it
            kwargs[name] = self.value(value)
        return {"__object__": class_path(cls), "kwargs": kwargs}

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
                raise Unrepresentable(
                    f"module {cls.__name__} does not keep its constructor argument {name!r} "
                    "as an attribute, so it cannot be rebuilt"
                )
        layers = {}
        for name, sub in module.named_modules():
            attrs = {}
            for attr in LAYER_ATTRIBUTES:
                value = getattr(sub, attr, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    attrs[attr] = value
                elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                    attrs[attr] = {"__tuple__": list(value)}
            layers[name] = {"type": class_path(type(sub)), "attrs": attrs}
        masks = masked_tensors(module)
        mask_keys = mask_state_keys(masks)
        # Masks hold only 0 and 1: stored as bool they take a quarter of the space.
        state = {k: self._tensor(v.bool() if k in mask_keys else v)
                 for k, v in module.state_dict().items()}
        index = len(self._module_records)
        self._modules[id(module)] = index
        self._module_records.append(None)  # reserve the index (modules may nest)
        self._module_records[index] = {
            "class": class_path(cls),
            "kwargs": kwargs,
            "layers": layers,
            "masks": masks,
            "state_dict": state,
            "training": module.training,
        }
        return index

    def modules(self) -> list:
        return self._module_records
