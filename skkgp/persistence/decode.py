"""Decoding: estimators and networks rebuilt from the tree and tensors of a model file.

:func:`check_payload` verifies a loaded file (format, version, checksum, metadata);
:class:`Decoder` re-creates classes from the allow-list or the caller's trusted
classes only, rebuilds each network with its pruned layer shapes and masks, and loads
its weights. The file layout is described in :mod:`skkgp.persistence`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skkgp._training import lay_out
from skkgp.persistence.encode import (
    FORMAT,
    LAYER_ATTRIBUTES,
    VERSION,
    checksum,
    class_path,
)
from skkgp.pruning.masks import restore_masks, state_attribute

__all__ = ["Decoder", "check_payload", "first_line", "is_allowed"]

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


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_payload(payload: Any, path: Path) -> dict:
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
    expected = checksum(FORMAT, VERSION, str(payload["kind"]), payload["meta"], tensors)
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


def is_allowed(path: str) -> bool:
    """Whether the class at ``path`` (``module:qualname``) may be re-created from a file."""
    module = path.split(":", 1)[0]
    if "__main__" in module.split("."):
        return False  # importing a __main__ module may run a program
    return path in _SKORCH_ALLOWED or (module + ".").startswith(_ALLOWED_PREFIXES)


def import_path(path: str) -> Any:
    """The class defined at ``path`` (``module:qualname``), looked up without detours.

    Only the module part is imported; the qualname is followed through classes only (a
    hop through a module, such as ``skkgp.export:np.f2py.subprocess.Popen``, would leave
    the allow-listed package), and the class found must be defined at ``path`` itself,
    so the allow-list judges where a class really lives, not where it was imported.

    Raises
    ------
    ImportError, AttributeError
        If the module or an attribute does not exist.
    LookupError
        If the path leads through a module or to something that is not a class
        defined at ``path``.
    """
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
        if isinstance(obj, types.ModuleType):
            raise LookupError(f"{part!r} is the module {obj.__name__}, not a class")
    if not isinstance(obj, type):
        raise LookupError(f"it is a {type(obj).__name__}, not a class")
    if class_path(obj) != path:
        raise LookupError(f"it is {class_path(obj)}, imported there")
    return obj


class Decoder:
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
        elif is_allowed(path):
            try:
                cls = import_path(path)
            except (ImportError, AttributeError):
                raise ValueError(
                    f"The model file names {what} {path!r}, which this installation does "
                    "not have (saved with another version of skkgp or torch?)."
                ) from None
            except LookupError as error:
                raise ValueError(
                    f"The model file names {what} {path!r}, which is not on skkgp's "
                    f"allow-list: {error}. skkgp.save stores every class under the path "
                    "where it is defined, so this file was edited; nothing was created."
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
            reshape_layers(module, record["layers"], state, record["masks"])
            restore_masks(module, record["masks"], state)
            module.load_state_dict(state, strict=True)
            check_layer_shapes(module)
        except KeyError as error:
            raise ValueError(f"The model file is damaged: missing key {error}.") from None
        except RuntimeError as error:
            raise ValueError(
                f"The weights in the model file do not fit the rebuilt "
                f"{record.get('class')!r} network: {first_line(error)}"
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
            est = self._net(cls, params, fitted, record)
        else:
            est = cls(**params)
            for name, value in fitted.items():
                setattr(est, name, value)
        replay_requests(est, record)
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


def replay_requests(est: Any, record: Mapping) -> None:
    """Set the metadata-routing requests and ``set_output`` choice stored for ``est``.

    Only requests that differ from the freshly built estimator's are replayed, through
    its public ``set_<method>_request`` methods (with routing enabled for the call:
    the setters refuse to run otherwise), so a file cannot reach anything else.
    """
    import sklearn

    requests = record.get("metadata_request") or {}
    output = record.get("output_config") or {}
    if not isinstance(requests, Mapping) or not isinstance(output, Mapping):
        raise ValueError("The model file is damaged: its stored requests are not mappings.")
    if requests:
        fresh = est.get_metadata_routing()
        for method, wanted in requests.items():
            current = getattr(getattr(fresh, str(method), None), "requests", None)
            setter = getattr(est, f"set_{method}_request", None)
            if not isinstance(wanted, Mapping) or current is None or setter is None:
                raise ValueError(
                    f"The model file is damaged: it stores metadata requests for "
                    f"{type(est).__name__}.{method}, which takes none."
                )
            changed = {}
            for param, value in wanted.items():
                if param not in current or not (value is None or isinstance(value, (bool, str))):
                    raise ValueError(
                        f"The model file is damaged: bad metadata request {param}={value!r} "
                        f"for {type(est).__name__}.{method}."
                    )
                if value != current[param]:
                    changed[param] = value
            if changed:
                with sklearn.config_context(enable_metadata_routing=True):
                    setter(**changed)
    if output:
        set_output = getattr(est, "set_output", None)
        if set_output is None or not all(isinstance(v, str) for v in output.values()):
            raise ValueError(
                f"The model file is damaged: it stores a set_output choice {dict(output)!r} "
                f"for {type(est).__name__}, which has no set_output."
            )
        set_output(**output)


def reshape_layers(module: nn.Module, layers: Mapping, state: Mapping,
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
        if class_path(type(layer)) != saved_type:
            raise ValueError(
                f"Layer {name!r} is a {saved_type} in the model file but a "
                f"{class_path(type(layer))} in the rebuilt network."
            )
        for attr, value in layer_record["attrs"].items():
            setattr(layer, attr, layer_attribute(name, attr, value))
    for key, tensor in state.items():
        owner_name, _, attr = key.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        attr = state_attribute(owner_name, attr, masks)
        if attr is None:
            continue  # a mask: restore_masks creates it
        current = getattr(owner, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        replacement = torch.empty(tensor.shape, dtype=current.dtype)
        if isinstance(current, nn.Parameter):
            setattr(owner, attr, nn.Parameter(replacement, requires_grad=current.requires_grad))
        elif attr in owner._buffers:
            owner._buffers[attr] = replacement


def layer_attribute(layer: str, attr: str, value: Any) -> int | tuple[int, ...]:
    """The value of a stored layer attribute, refused unless ``skkgp.save`` writes it.

    Only the shape attributes of :data:`~skkgp.persistence.encode.LAYER_ATTRIBUTES`,
    each an int or a tuple of ints, are set on a rebuilt layer: anything else (a
    stride, a padding, a dunder) would change what the network computes.
    """
    if attr not in LAYER_ATTRIBUTES:
        raise ValueError(
            f"The model file sets attribute {attr!r} of layer {layer!r}, which is not one "
            f"skkgp.save writes (only {', '.join(LAYER_ATTRIBUTES)}): it was edited."
        )
    if isinstance(value, dict) and set(value) == {"__tuple__"} and isinstance(
            value["__tuple__"], list):
        value = tuple(value["__tuple__"])
    items = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(
            f"The model file is damaged: layer {layer!r} has {attr}={value!r}, where an int "
            "or a tuple of ints belongs."
        )
    return value


def check_layer_shapes(module: nn.Module) -> None:
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
