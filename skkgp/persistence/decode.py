"""Decoding: estimators and networks rebuilt from the tree and tensors of a model file.

:func:`check_payload` verifies a loaded file (format, version, checksum, metadata);
:class:`Decoder` re-creates classes from the allow-list or the caller's trusted
classes only, rebuilds each network with its pruned layer shapes and masks, and loads
its weights. The file layout is described in :mod:`skkgp.persistence`.
"""

from __future__ import annotations

import dataclasses
import functools
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
    NET_BOOKKEEPING,
    VERSION,
    checksum,
    class_path,
)
from skkgp.pruning.masks import effective_tensor, restore_masks, state_attribute

__all__ = ["Decoder", "allowed_classes", "check_payload", "first_line"]

# Learning-rate policies skorch's LRScheduler may name; LambdaLR and MultiplicativeLR
# call a function of the caller's, and the chaining ones hold other schedulers, so
# neither kind is ever in a file skkgp.save writes.
_SCHEDULERS = ("StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
               "PolynomialLR", "CosineAnnealingLR", "ReduceLROnPlateau", "CyclicLR",
               "OneCycleLR", "CosineAnnealingWarmRestarts")

# Criteria: torch's losses that hold no layer of their own (LinearCrossEntropyLoss and
# AdaptiveLogSoftmaxWithLoss build one as large as their arguments say) and call no
# function of the caller's (TripletMarginWithDistanceLoss does).
_LOSSES = ("L1Loss", "NLLLoss", "PoissonNLLLoss", "GaussianNLLLoss", "KLDivLoss", "MSELoss",
           "BCELoss", "BCEWithLogitsLoss", "HingeEmbeddingLoss", "MultiLabelMarginLoss",
           "SmoothL1Loss", "HuberLoss", "SoftMarginLoss", "CrossEntropyLoss",
           "MultiLabelSoftMarginLoss", "CosineEmbeddingLoss", "MarginRankingLoss",
           "MultiMarginLoss", "TripletMarginLoss", "CTCLoss")
# numpy kinds a file may hold: numbers, and text in arrays of labels. A void dtype
# (numpy.void(n) allocates n bytes) or an object dtype is never written.
_SCALAR_KINDS = "biufcUS"
_ARRAY_KINDS = "biufc"
_ITEM_KINDS = "UO"


@functools.cache
@functools.cache
def allowed_classes() -> Mapping[str, type]:
    """Every class :func:`skkgp.save` writes, by path: all that a file may name.

    The zoo's networks, skkgp's estimators, transformers and callbacks, torch's losses,
    optimizers and learning-rate policies, and the skorch and scikit-learn helpers that
    skkgp's estimators take. Each was read for what its constructor does: it stores its
    arguments and nothing else (no files, processes, imports or calls of an argument).
    A network class is built only from its stored record (see :meth:`Decoder.module`).

    Returns
    -------
    classes : mapping of str to type
        ``module:qualname`` -> class (read-only, built once: every class reference
        of every file is looked up in it).
    """
    from skorch.callbacks import (
        BatchScoring,
        EarlyStopping,
        EpochScoring,
        EpochTimer,
        GradientNormClipping,
        LRScheduler,
        PassthroughScoring,
        PrintLog,
        ProgressBar,
    )
    from skorch.dataset import Dataset, ValidSplit
    from sklearn.pipeline import Pipeline
    from torch.utils.data import DataLoader

    from skkgp._training import TensorBatchIterator, TensorData
    from skkgp.classifier import EEGClassifier
    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
    from skkgp.models import MODELS
    from skkgp.pruner import KnowledgeGuidedPruner
    from skkgp.pruning.nsfp import NetworkSlimming
    from skkgp.pruning.report import PruningReport
    from skkgp.pruning.sfp import SoftFilterPruning
    from skkgp.reproduce.progress import EpochBar
    from skkgp.transforms import (
        BandDifferentialEntropy,
        BaselineRemoval,
        ChannelStandardizer,
        ToGrid,
    )

    losses = [getattr(nn, name) for name in _LOSSES if hasattr(nn, name)]
    optimizers = [cls for cls in vars(torch.optim).values()
                  if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
                  and cls is not torch.optim.Optimizer]
    schedulers = [getattr(torch.optim.lr_scheduler, name) for name in _SCHEDULERS
                  if hasattr(torch.optim.lr_scheduler, name)]
    classes = [
        EEGClassifier, KnowledgeGuidedClassifier, KnowledgeGuidedPruner, Pipeline,
        BandDifferentialEntropy, BaselineRemoval, ChannelStandardizer, ToGrid,
        *MODELS.values(), *losses, *optimizers, *schedulers,
        TensorBatchIterator, TensorData, Dataset, ValidSplit, DataLoader,
        BatchScoring, EarlyStopping, EpochScoring, EpochTimer, GradientNormClipping,
        LRScheduler, PassthroughScoring, PrintLog, ProgressBar,
        NetworkSlimming, SoftFilterPruning, EpochBar, PruningReport,
    ]
    return types.MappingProxyType({class_path(cls): cls for cls in classes})


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
    except RecursionError:
        raise ValueError(f"{where} is damaged: its metadata is nested too deeply.") from None
    except ValueError as error:
        raise ValueError(f"{where} is damaged: its metadata is not JSON ({error}).") from None
    for key in ("estimator", "modules"):
        if not isinstance(meta, dict) or key not in meta:
            raise ValueError(f"{where} is damaged: missing key {key!r} in its metadata.")
    return meta


class Decoder:
    """Rebuilds estimators and networks from the tree and tensors of a file."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], trusted: Mapping[str, type],
                 device: str | torch.device | None) -> None:
        self.tensors = tensors
        self.trusted = trusted
        self.device = None if device is None else str(device)
        self.module_records: list = []
        self._modules: dict[int, nn.Module] = {}
        self._building: set[int] = set()
        self._used: set[str] = set()

    # -- classes -------------------------------------------------------------------
    def resolve(self, path: str, *, base: type | None = None, what: str = "class") -> type:
        if not isinstance(path, str) or ":" not in path:
            raise ValueError(f"The model file is damaged: bad class reference {path!r}.")
        cls = self.trusted.get(path) or allowed_classes().get(path)
        if cls is None:
            raise ValueError(
                f"The model file names {what} {path!r}, which is not on skkgp's allow-list "
                "of the classes skkgp.save writes; nothing was created. If you trust this "
                "file, pass the class itself: "
                f"skkgp.load(path, trusted_classes=[{path.split(':')[-1]}])."
            )
        if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
            raise ValueError(f"The model file names {path!r} as {what}, but it is not one.")
        return cls

    # -- values --------------------------------------------------------------------
    def tensor(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise ValueError(f"The model file is damaged: tensor {key!r} is missing.")
        # skkgp.save writes a tensor per use; every use makes a copy, so a file naming
        # one tensor many times would multiply its size.
        if key in self._used:
            raise ValueError(
                f"The model file is damaged: it uses tensor {key!r} more than once, which "
                "skkgp.save never writes."
            )
        self._used.add(key)
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
            dtype = numpy_dtype(tree[tag], _SCALAR_KINDS)
            value = self.value(tree["value"])
            if dtype.kind in "US" and not isinstance(value, (str, bytes)):
                raise ValueError(f"The model file is damaged: a {dtype} scalar of {value!r}.")
            return dtype.type(value)
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
            dtype = numpy_dtype(tree["dtype"], _ARRAY_KINDS)
            array = self.tensor(tree[tag]).numpy().copy()
            return array.astype(dtype, copy=False)
        if tag == "__ndarray_items__":
            items = [self.value(v) for v in tree[tag]]
            dtype = numpy_dtype(tree["dtype"], _ITEM_KINDS)
            widest = max((len(str(v)) for v in items), default=0)
            if dtype.kind == "U" and dtype.itemsize > 4 * max(widest, 256):
                # A label array is as wide as its longest label (or what its author
                # chose); a width far beyond every item would only allocate memory.
                raise ValueError(
                    f"The model file is damaged: text array of dtype {tree['dtype']!r} for "
                    f"items of at most {widest} characters."
                )
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
            if issubclass(cls, nn.Module):
                # A network is rebuilt from its record only, where its stored weights
                # bound its size (see module()); skkgp.save never writes one as an object.
                raise ValueError(
                    f"The model file names {tree[tag]!r}, a network, as an object to create "
                    "from arguments: skkgp.save stores networks as network records, not an "
                    "object. It was edited; nothing was created."
                )
            return cls(**{k: self.value(v) for k, v in tree["kwargs"].items()})
        raise ValueError(f"The model file is damaged: unknown entry {sorted(tree)!r}.")

    # -- networks ------------------------------------------------------------------
    def module(self, index: int) -> nn.Module:
        if index in self._modules:
            return self._modules[index]
        if not isinstance(index, int) or not 0 <= index < len(self.module_records):
            raise ValueError(f"The model file is damaged: no network number {index!r}.")
        if index in self._building:
            raise ValueError(f"The model file is damaged: network {index} contains itself.")
        self._building.add(index)
        record = self.module_records[index]
        try:
            cls = self.resolve(record["class"], base=nn.Module, what="network class")
            kwargs = {k: self.value(v) for k, v in record["kwargs"].items()}
            state = {k: self.tensor(v) for k, v in record["state_dict"].items()}
            if record["class"] in self.trusted:
                # The caller's own class may compute tensors in its constructor, which
                # a network of shapes only would lose: it is built as it is.
                module = cls(**kwargs)
                reshape_layers(module, record["layers"], state, record["masks"])
            else:
                # The stored constructor arguments may promise any size: the network is
                # first built of shapes only, given the stored weights' shapes, and
                # only then allocated, as large as the weights in the file.
                with torch.device("meta"):
                    module = cls(**kwargs)
                reshape_layers(module, record["layers"], state, record["masks"])
                check_layer_shapes(module)
                module = module.to_empty(device="cpu")
            restore_masks(module, record["masks"], state)
            module.load_state_dict(state, strict=True)
            check_layer_shapes(module)
            check_all_stored(module, record["masks"])
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
            for name in record["fitted"]:
                check_fitted_name(cls, name)
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
        # The layout fit would give it (channels_last): predictions round as when saved.
        channels_last = getattr(net, "channels_last", False)
        module = lay_out(module, channels_last, net.device).to(device)

        def stored_module():
            net.module_ = module
            return net

        # initialize() would build the network the net's parameters describe (module__*,
        # module_kwargs_), at whatever size they say, only to replace it: for this one
        # call the stored network takes its place.
        net.initialize_module = stored_module
        try:
            with warnings.catch_warnings():
                # Re-initialising a net whose parameters were just set warns in skorch.
                warnings.simplefilter("ignore")
                net.initialize()
        finally:
            del net.initialize_module
        net.module_ = net.torch_compile(module, name="module")
        net.initialize_optimizer()
        net.history_ = self.value(record["history_"])
        return net


def check_fitted_name(cls: type, name: Any) -> None:
    """Refuse a stored fitted attribute of ``cls`` that :func:`skkgp.save` never writes.

    Fitted attributes are the estimator's own public ``name_`` attributes, less the
    bookkeeping skorch rebuilds; a name of the class itself (a method, a property,
    ``__class__``) would replace what the estimator does, not what it learned.
    """
    from skorch import NeuralNet

    if (not isinstance(name, str) or not name.isidentifier() or not name.endswith("_")
            or name.startswith("_") or hasattr(cls, name)
            or (issubclass(cls, NeuralNet) and name in NET_BOOKKEEPING)):
        raise ValueError(
            f"The model file sets fitted attribute {name!r} of {cls.__name__}, which "
            "skkgp.save never writes (fitted attributes are the estimator's own name_ "
            "attributes): it was edited; nothing was created."
        )


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


def numpy_dtype(text: Any, kinds: str) -> np.dtype:
    """The numpy dtype ``text`` names, refused unless its kind is one of ``kinds``."""
    try:
        dtype = np.dtype(str(text))
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in kinds:
        raise ValueError(
            f"The model file is damaged: it stores a value of dtype {text!r}, which "
            "skkgp.save never writes there."
        )
    return dtype


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
        replacement = torch.empty(tensor.shape, dtype=current.dtype, device=current.device)
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


def check_all_stored(module: nn.Module, masks: Mapping) -> None:
    """Refuse a network with buffers the file does not hold, and refresh masked tensors.

    A network rebuilt of shapes only holds nothing but what its state dict loaded: a
    buffer outside it (``persistent=False``) would be uninitialised memory. The masked
    tensors (``weight = weight_orig * weight_mask``) are computed again from the
    loaded ones.
    """
    stored = set(module.state_dict())
    for name, _ in module.named_buffers():
        if name not in stored:
            raise RuntimeError(f"buffer {name!r} is not stored in the file")
    for name, tensors in masks.items():
        layer = module.get_submodule(name)
        for tensor in tensors:
            setattr(layer, tensor, effective_tensor(layer, tensor))


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
