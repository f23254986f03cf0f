"""Export a fitted network to ONNX, in float32 or statically quantized to int8.

:func:`export_onnx` writes the network of a fitted :class:`~skkgp.EEGClassifier`,
:class:`~skkgp.KnowledgeGuidedPruner` (its pruned, recovered network) or
:class:`~sklearn.pipeline.Pipeline` ending in one as an ONNX file that runs without
Python's torch, e.g. in onnxruntime on a phone, a headset's processor or a server.

The file holds:

- One input, ``"input"``, float32 of shape ``(batch, *input_shape)``: exactly the
  arrays the estimator itself receives, i.e. ``(batch, n_bands, rows, cols)`` grids for
  CCNN and FBCCNN and ``(batch, n_chans, n_times)`` raw windows for EEGNet and
  TSCeption. The batch axis is dynamic.
- One output, ``"probabilities"`` (:data:`OUTPUT_NAME`), float32 of shape
  ``(batch, n_classes)``: the softmax of the network's logits, columns in the order
  of the estimator's ``classes_``.
- Metadata (``metadata_props``): ``classes`` (JSON list of the class labels),
  ``input_shape`` (JSON list), ``preprocessing`` (JSON list of the pipeline steps
  that stay in Python, empty for a bare estimator) and ``skkgp_version``.

The network is exported from a copy, in eval mode (no dropout; BatchNorm with its
running statistics): magnitude-pruning masks (``torch.nn.utils.prune``) are folded
into the weights, channels-last weights are written in ONNX's plain layout, and the
max-norm constraint of EEGNet's spatial filters is applied to the weights once.
The estimator and its network are never changed.

Pipeline steps before the network (e.g. :class:`~skkgp.transforms.BandDifferentialEntropy`
and :class:`~skkgp.transforms.ToGrid`) are *not* exported: run them in Python (or
re-implement them where the model runs) and feed their output to the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skkgp._atomic import atomic_write_bytes, check_destination
from skkgp._estimators import fitted_net
from skkgp._input import eeg_input
from skkgp._training import uncompiled
from skkgp.pruning.masks import copy_module, fold_masks

__all__ = [
    "export_onnx",
    "calibration_inputs",
    "knowledge_ranking",
    "supported_opsets",
    "network_estimator",
    "inference_copy",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "QUANTIZED_OP_TYPES",
    "QuantizationWarning",
    "MIN_CALIBRATION_SAMPLES",
    "MIN_INT8_AGREEMENT",
    "MAX_INT8_MEAN_CHANGE",
]

#: Name of the input of every exported file.
INPUT_NAME = "input"
#: Name of the output of every exported file: class probabilities.
OUTPUT_NAME = "probabilities"
#: Operators quantized by ``quantize="int8"``: those that carry the weights and the MACs.
#: Softmax, pooling, BatchNorm and activations stay float, so the probabilities keep
#: float resolution.
QUANTIZED_OP_TYPES = ("Conv", "Gemm", "MatMul")

#: Fewer calibration samples than this draw a :class:`QuantizationWarning`.
MIN_CALIBRATION_SAMPLES = 16
#: An int8 file that agrees with the float network on a smaller share of the calibration
#: samples' classes, or moves their probabilities by more on average, draws a
#: :class:`QuantizationWarning`.
MIN_INT8_AGREEMENT = 0.95
MAX_INT8_MEAN_CHANGE = 0.05

_QUANTIZE = (None, "int8")
_CALIBRATION_STRATEGIES = ("random", "knowledge")


class QuantizationWarning(UserWarning):
    """An int8 export that may predict unlike its float network.

    Raised when the calibration holds few samples, or when the quantized file's
    outputs on the calibration inputs stray from the float network's.
    """


class _Probabilities(nn.Module):
    """The network followed by a softmax over classes."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x), dim=1)


def export_onnx(
    estimator: Any,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    quantize: str | None = None,
    calibration: Any = None,
    X: Any = None,
    y: Any = None,
    n_calibration: int = 128,
    random_state: int | None = 0,
    overwrite: bool = False,
) -> Path:
    """Write the network of a fitted estimator to an ONNX file.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedPruner or Pipeline
        A fitted estimator. For a :class:`~skkgp.KnowledgeGuidedPruner` the pruned,
        recovered network (``estimator_``) is exported; for a
        :class:`~sklearn.pipeline.Pipeline`, the network of its last step (the
        steps before it stay in Python and are listed in the file's
        ``preprocessing`` metadata).
    path : path-like
        Destination file (by convention ``*.onnx``); its folder must exist. Written
        atomically: a failure leaves no partial file.
    opset : int or None, default=None
        ONNX opset, one of :func:`supported_opsets` (7 to 23 with torch 2.13); ``None``
        uses torch's default. Quantization needs at least 13.
    quantize : {None, "int8"}, default=None
        ``"int8"``: static quantization with onnxruntime
        (:func:`onnxruntime.quantization.quantize_static`, QDQ format, int8 weights
        per output channel, int8 activations) of the operators in
        :data:`QUANTIZED_OP_TYPES`. Activation ranges come from ``calibration``.
    calibration : array-like, shape (n_samples, ...), {"random", "knowledge"} or None, \
default=None
        Calibration inputs for ``quantize="int8"``, shaped like what ``estimator``
        takes (raw windows for a pipeline that starts from them): an array is used
        whole. ``"random"`` draws ``n_calibration`` samples of ``X``;
        ``"knowledge"`` takes the ``n_calibration`` samples of ``X`` whose evidence
        (:func:`skkgp.knowledge.evidence.guided_gradcam`) lies most in the knowledge
        region (:func:`skkgp.knowledge.losses.region_share`), which needs a network recovered
        with the knowledge-guided losses (a ``KnowledgeGuidedPruner`` or a
        ``KnowledgeGuidedClassifier``, which know their region).
    X : array-like, shape (n_samples, ...), or None, default=None
        Samples to choose calibration inputs from (``calibration="random"`` or
        ``"knowledge"``), e.g. the training data.
    y : array-like, shape (n_samples,), or None, default=None
        Labels of ``X`` for ``calibration="knowledge"``: the evidence of the true
        class; ``None`` explains the predicted class.
    n_calibration : int, default=128
        Number of calibration samples drawn from ``X``.
    random_state : int or None, default=0
        Seed of ``calibration="random"``.
    overwrite : bool, default=False
        Replace an existing ``path``. By default an existing file raises
        :class:`FileExistsError` before any work and is left untouched.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If ``onnx`` (or, for ``quantize``, ``onnxruntime``) is not installed: install
        the ``deploy`` extra (``pip install -e ".[deploy]"`` in skkgp's checkout).
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    IsADirectoryError
        If ``path`` is a folder.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    TypeError
        If ``estimator`` is none of the above (the message names it).
    ValueError
        For an unfitted estimator (:class:`~sklearn.exceptions.NotFittedError`), an
        unknown ``quantize`` or ``calibration``, an ``opset`` outside
        :func:`supported_opsets`, or calibration inputs of the wrong shape.

    Warns
    -----
    QuantizationWarning
        For ``quantize="int8"``, when the calibration holds fewer than
        :data:`MIN_CALIBRATION_SAMPLES` samples, or when the int8 file, run on the
        calibration inputs, predicts the float network's class for fewer than
        :data:`MIN_INT8_AGREEMENT` of them or moves their probabilities by more than
        :data:`MAX_INT8_MEAN_CHANGE` on average (the message gives both figures).

    See Also
    --------
    skkgp.save : The estimator itself, for Python.

    Notes
    -----
    The file computes in float32 whatever the estimator's ``precision`` (a network
    trained with ``precision="bf16"`` predicts under bfloat16 autocast in PyTorch,
    so its probabilities differ from the file's by that rounding). Float exports
    agree with :meth:`~skkgp.EEGClassifier.predict_proba` to about 1e-6.

    Examples
    --------
    >>> import skkgp  # doctest: +SKIP
    >>> skkgp.export_onnx(fitted_pruner, "pruned.onnx")  # doctest: +SKIP
    >>> import onnxruntime  # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("pruned.onnx")  # doctest: +SKIP
    >>> proba = session.run(["probabilities"], {"input": X_grid})[0]  # doctest: +SKIP
    """
    path = Path(path)
    if quantize not in _QUANTIZE:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}.")
    if quantize is None and (calibration is not None or X is not None):
        raise ValueError("calibration and X serve quantize='int8' only; pass quantize='int8' "
                         "or leave them out.")
    opsets = supported_opsets()
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)
                              or opset not in opsets):
        raise ValueError(f"opset must be an int from {opsets.start} to {opsets[-1]} (the "
                         f"opsets torch {torch.__version__} exports) or None, got {opset!r}.")
    if quantize is not None and opset is not None and opset < 13:
        raise ValueError(f"quantize='int8' needs opset >= 13, got opset={opset}.")
    check_destination(path, overwrite=overwrite)
    _require("onnx")
    if quantize is not None:
        _require("onnxruntime")

    net, preprocessing = network_estimator(estimator)
    network = inference_copy(net.module_)
    input_shape = tuple(int(s) for s in net.input_shape_)
    model = _export_float(network, input_shape, opset)
    metadata = {
        "classes": json.dumps(np.asarray(net.classes_).tolist()),
        "input_shape": json.dumps(list(input_shape)),
        "preprocessing": json.dumps([name for name, _ in preprocessing]),
        "skkgp_version": _skkgp_version(),
    }
    if quantize == "int8":
        inputs = calibration_inputs(estimator, calibration, X=X, y=y,
                                    n_calibration=n_calibration, random_state=random_state)
        if len(inputs) < MIN_CALIBRATION_SAMPLES:
            warnings.warn(
                f"quantize='int8' calibrates on {len(inputs)} sample(s): activation ranges "
                f"from fewer than {MIN_CALIBRATION_SAMPLES} may not cover the data the model "
                "will see, and the int8 file is checked against the float network on these "
                "samples only. Calibrate on more samples of the training data (e.g. "
                "calibration='random' with X=X_train).",
                QuantizationWarning,
                stacklevel=2,
            )
        quantized = _quantize_int8(model, inputs)
        _compare_int8(model, quantized, inputs)
        model = quantized
        metadata["quantization"] = "int8 static QDQ"
    data = _with_metadata(model, metadata)
    atomic_write_bytes(path, data, overwrite=overwrite)
    return path


def supported_opsets() -> range:
    """The ONNX opsets that the installed torch exports (7 to 23 with torch 2.13).

    Returns
    -------
    opsets : range
    """
    try:
        # torch keeps its exporter's limits in a private module, with no public name.
        from torch.onnx import _constants

        return range(_constants.ONNX_MIN_OPSET, _constants.ONNX_MAX_OPSET + 1)
    except (ImportError, AttributeError):
        return range(7, 21)  # what torch's TorchScript exporter has long supported


# ---------------------------------------------------------------------- network
def network_estimator(estimator: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The fitted net that holds the network, and the pipeline steps before it.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedPruner or Pipeline
        Fitted.

    Returns
    -------
    net : EEGClassifier
        The fitted net (``estimator_`` of a pruner, the last step of a pipeline).
    preprocessing : list of (str, transformer)
        Pipeline steps that run before the network (empty without a pipeline).

    Raises
    ------
    TypeError
        For anything else (the message names what was passed).
    sklearn.exceptions.NotFittedError
        For an estimator that is not fitted yet.
    """
    return fitted_net(estimator, "export_onnx")


def inference_copy(module: nn.Module) -> nn.Module:
    """A float32, eval-mode, CPU copy of ``module`` ready for tracing.

    Masks of :mod:`torch.nn.utils.prune` are folded into the weights
    (``prune.remove`` on the copy), 4-D weights get the contiguous memory format, and
    layers with a weight constraint (``constrain_`` method, e.g. EEGNet's max-norm
    spatial filters) are projected once, as their forward pass would.

    Parameters
    ----------
    module : torch.nn.Module
        The network (a ``torch.compile`` wrapper is unwrapped). It is not changed.

    Returns
    -------
    copy : torch.nn.Module
    """
    result = copy_module(uncompiled(module)).cpu().float().eval()
    fold_masks(result)
    result = result.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for layer in result.modules():
            constrain = getattr(layer, "constrain_", None)
            if callable(constrain):
                constrain()
    for parameter in result.parameters():
        parameter.requires_grad_(False)
    return result


def _export_float(network: nn.Module, input_shape: tuple[int, ...], opset: int | None):
    import onnx

    wrapped = _Probabilities(network).eval()
    # Batch 2 so that nothing batch-dependent is constant-folded into the graph.
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    buffer = io.BytesIO()
    kwargs = {} if opset is None else {"opset_version": int(opset)}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; its output is the same plain ONNX graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # ZeroPad2d's negative-step slices are left to the runtime: a note, not a fault.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            wrapped,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
            dynamo=False,
            **kwargs,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model


def _with_metadata(model, metadata: dict[str, str]) -> bytes:
    import onnx

    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "skkgp"
    model.producer_version = _skkgp_version()
    return model.SerializeToString()


def _skkgp_version() -> str:
    import skkgp

    return skkgp.__version__


def _require(package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ImportError(
            f"export_onnx needs the {package!r} package: pip install -e \".[deploy]\" "
            "in skkgp's checkout (onnx and onnxruntime)."
        )


# ---------------------------------------------------------------------- int8
def calibration_inputs(
    estimator: Any,
    calibration: Any,
    *,
    X: Any = None,
    y: Any = None,
    n_calibration: int = 128,
    random_state: int | None = 0,
) -> np.ndarray:
    """The network inputs that calibrate a static int8 quantization.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedPruner or Pipeline
        Fitted. The inputs of a pipeline pass through its steps before the network.
    calibration : array-like, shape (n_samples, ...), or {"random", "knowledge"}
        Inputs to use whole, or how to choose ``n_calibration`` samples of ``X``.
    X : array-like, shape (n_samples, ...), or None
        Candidates for ``"random"`` and ``"knowledge"``.
    y : array-like, shape (n_samples,), or None
        Labels of ``X`` for ``"knowledge"`` (``None``: the predicted class).
    n_calibration : int, default=128
    random_state : int or None, default=0

    Returns
    -------
    inputs : ndarray of float32, shape (n, ...)
        As the network takes them.
    """
    net, preprocessing = network_estimator(estimator)
    shape = tuple(int(s) for s in net.input_shape_)
    if calibration is None:
        raise ValueError(
            "quantize='int8' needs calibration inputs: calibration=X_cal (an array of "
            "inputs), or calibration='random' or 'knowledge' with X=the training data."
        )
    if isinstance(calibration, str):
        if calibration not in _CALIBRATION_STRATEGIES:
            raise ValueError(f"calibration must be an array or one of "
                             f"{list(_CALIBRATION_STRATEGIES)}, got {calibration!r}.")
        if X is None:
            raise ValueError(f"calibration={calibration!r} chooses samples of X: pass X "
                             "(e.g. the training data).")
        if (isinstance(n_calibration, bool) or not isinstance(n_calibration, int)
                or n_calibration < 1):
            raise ValueError(f"n_calibration must be a positive int, got {n_calibration!r}.")
        candidates = _network_inputs(X, preprocessing, shape, "X")
        if calibration == "random":
            rng = np.random.default_rng(random_state)
            count = min(n_calibration, len(candidates))
            return candidates[np.sort(rng.choice(len(candidates), count, replace=False))]
        if y is not None and len(np.asarray(y)) != len(candidates):
            raise ValueError(f"X has {len(candidates)} samples but y has "
                             f"{len(np.asarray(y))}.")
        order = knowledge_ranking(estimator, candidates, y)
        return candidates[np.sort(order[:n_calibration])]
    if X is not None:
        raise ValueError("X chooses calibration samples for calibration='random' or "
                         "'knowledge'; with a calibration array, leave X out.")
    return _network_inputs(calibration, preprocessing, shape, "calibration")


def knowledge_ranking(estimator: Any, inputs: np.ndarray, y: Any = None) -> np.ndarray:
    """Indices of ``inputs``, highest share of evidence on the knowledge region first.

    Parameters
    ----------
    estimator : KnowledgeGuidedPruner, KnowledgeGuidedClassifier or Pipeline
        Fitted, with a knowledge region (``region_mask_``).
    inputs : ndarray, shape (n_samples, ...)
        Network inputs (after any pipeline preprocessing).
    y : array-like of shape (n_samples,) or None
        Class explained per sample; ``None`` explains the predicted class.

    Returns
    -------
    order : ndarray of int, shape (n_samples,)
    """
    from skkgp.knowledge.evidence import guided_gradcam
    from skkgp.knowledge.losses import region_share

    net, _ = network_estimator(estimator)
    mask = getattr(net, "region_mask_", None)
    if mask is None:
        raise ValueError(
            "calibration='knowledge' ranks samples by the share of their evidence on the "
            "knowledge region, but this network has none: export a KnowledgeGuidedPruner "
            "(or a KnowledgeGuidedClassifier with region_mask), or pass "
            "calibration='random' or an array."
        )
    # The evidence kind, layer, grid cells and guidance the network was recovered with.
    evidence = guided_gradcam(net, inputs, y)
    share = np.asarray(region_share(evidence, np.asarray(mask, dtype=bool)))
    return np.argsort(-share, kind="stable")


def _network_inputs(data: Any, preprocessing: Sequence[tuple[str, Any]],
                    shape: tuple[int, ...], what: str) -> np.ndarray:
    for _, step in preprocessing:
        data = step.transform(data)
    # mne.Epochs: the EEG channels fit takes, in microvolts
    array = np.asarray(eeg_input(data).X, dtype=np.float32)
    if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape:
        raise ValueError(
            f"{what} has shape {array.shape}, but the network takes samples of shape "
            f"{shape}" + (" (after the pipeline's preprocessing)" if preprocessing else "")
            + "."
        )
    if len(array) == 0:
        raise ValueError(f"{what} holds no sample.")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds NaN or infinite values.")
    return np.ascontiguousarray(array)


def _compare_int8(float_model, int8_model, inputs: np.ndarray) -> None:
    """Warn when the int8 model's probabilities on ``inputs`` stray from the float's."""
    import onnxruntime

    def probabilities(model) -> np.ndarray:
        session = onnxruntime.InferenceSession(model.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]

    float_proba, int8_proba = probabilities(float_model), probabilities(int8_model)
    agreement = float(np.mean(float_proba.argmax(1) == int8_proba.argmax(1)))
    mean_change = float(np.abs(float_proba - int8_proba).mean())
    if agreement < MIN_INT8_AGREEMENT or mean_change > MAX_INT8_MEAN_CHANGE:
        warnings.warn(
            f"The int8 file predicts the float network's class for {agreement:.1%} of the "
            f"{len(inputs)} calibration samples and moves their probabilities by "
            f"{mean_change:.3f} on average (mean |dproba|; expected: at least "
            f"{MIN_INT8_AGREEMENT:.0%} and at most {MAX_INT8_MEAN_CHANGE}). Its activation "
            "ranges fit the calibration inputs badly (an outlier widening a range, or "
            "inputs on another scale than the model's data): check them, or export float.",
            QuantizationWarning,
            stacklevel=3,
        )


def _quantize_int8(model, inputs: np.ndarray):
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        """Feeds the calibration inputs to onnxruntime in batches of 32."""

        def __init__(self) -> None:
            self.batches = iter(inputs[i:i + 32] for i in range(0, len(inputs), 32))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="skkgp-int8-") as folder:
        folder = Path(folder)
        source, prepared, target = (folder / name for name in
                                    ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(model, source)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return onnx.load(target)
