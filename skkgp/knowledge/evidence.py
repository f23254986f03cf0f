"""Evidence of an EEG network on each electrode: Grad-CAM, HiResCAM and input x gradient.

Each kind explains the score ``s`` of one class through the activations ``A`` of a
layer whose output still resolves electrodes (or through the input itself), with
``G = ds/dA``:

- ``"gradcam"`` (Selvaraju et al. 2017; the evidence of Rao & Zhong 2023): one weight per
  filter, ``a_k = mean(G_k)``, and ``CAM = ReLU(sum_k a_k A_k)``;
- ``"hirescam"`` (Draelos & Carin 2020): ``CAM = ReLU(sum_k G_k * A_k)``, element-wise, so
  the map keeps *where* in the layer the gradient flows;
- ``"input_x_gradient"``: ``X * ds/dX`` of the input, summed over the electrode's values
  (time samples or bands), then rectified. It needs no layer: any network whose input has
  an electrode axis has it.

The maps are reduced to electrodes by the layer's (or the input's) electrode axis:

- ``electrode_axis="channels"``: ``A`` has shape ``(n, K, n_electrodes, n_times)``
  (raw inputs ``(n, n_electrodes, n_times)``); the map is summed over time;
- ``electrode_axis="grid"``: ``A`` has shape ``(n, K, rows, cols)``; electrode ``e`` takes
  the map value of its grid cell ``cells[e]``.

Which kind can a region-wise loss steer? Pooled Grad-CAM weights ``a_k`` average the
gradient over the whole map, electrodes included. On a layer that is temporal only (the
first convolution of EEGNet and TSCeption: each filter slides along time, the same on
every electrode) ``A_k(e, t)`` is filter ``k`` applied to electrode ``e``'s signal, so the
electrode profile of ``sum_k a_k A_k`` is set by the input and the temporal filters; the
spatial weights the network learns further up enter only through the ``K`` numbers
``a_k``. HiResCAM keeps ``G_k(e, t)``, which carries those spatial weights, and input x
gradient carries every layer's. On CCNN and FBCCNN the first layer mixes neighbouring
cells, and pooled Grad-CAM stays the default there so that the paper's method is
reproduced. ``evidence="auto"`` takes the kind each zoo model declares
(:class:`skkgp.models.EvidenceSpec`), and Grad-CAM for other modules.

The *guided* variant multiplies any kind by the guided-backpropagation saliency of the
input (Springenberg et al. 2015), reduced to electrodes the same way.

:func:`guided_gradcam` computes detached evidence for analysis and plots.
:func:`evidence_from_activations` is the differentiable core that the knowledge-guided
recovery (:class:`skkgp.knowledge.KnowledgeGuidedClassifier`) calls on the activations
captured, by :class:`ActivationCapture`, in the very forward pass that made the
prediction.

References
----------
.. [1] Selvaraju, R. R. et al. (2017). Grad-CAM: visual explanations from deep networks
   via gradient-based localization. ICCV.
.. [2] Draelos, R. L., & Carin, L. (2020). Use HiResCAM instead of Grad-CAM for faithful
   explanations of convolutional neural networks. arXiv:2011.08891.
.. [3] Springenberg, J. T. et al. (2015). Striving for simplicity: the all convolutional
   net. ICLR workshop.
.. [4] Rao, & Zhong (2023). Knowledge-guided network pruning for EEG-based emotion
   recognition. IEEE BIBM.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from skkgp._estimators import fitted_net
from skkgp._input import eeg_input
from skkgp._modes import eval_mode
from skkgp.knowledge._cells import CheckedCells
from skkgp.knowledge._pooled import PooledPlan, pooled_weights

__all__ = [
    "ActivationCapture",
    "ELECTRODE_AXES",
    "EVIDENCE_KINDS",
    "GuidedBackprop",
    "check_cells",
    "default_cells",
    "evidence_from_activations",
    "evidence_map",
    "filter_contributions",
    "gradcam_map",
    "guided_gradcam",
    "guided_saliency",
    "mean_region_share",
    "reduce_to_electrodes",
    "resolve_evidence",
    "resolve_evidence_layer",
]

#: The evidence kinds (see the module docstring).
EVIDENCE_KINDS = ("gradcam", "hirescam", "input_x_gradient")
#: How a layer's output (or the input) maps to electrodes.
ELECTRODE_AXES = ("grid", "channels")

# Activations whose backward pass guided backpropagation rectifies. Only module
# activations can be hooked; a functional ``F.relu`` inside ``forward`` is left alone.
_RECTIFIED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU)


def _check_axis(electrode_axis) -> str:
    if electrode_axis not in ELECTRODE_AXES:
        raise ValueError(
            f"electrode_axis must be one of {ELECTRODE_AXES}, got {electrode_axis!r}."
        )
    return electrode_axis


def _check_kind(evidence) -> str:
    if evidence not in EVIDENCE_KINDS:
        raise ValueError(
            f"evidence must be 'auto' or one of {EVIDENCE_KINDS}, got {evidence!r}."
        )
    return evidence


def resolve_evidence_layer(
    module: nn.Module, layer: str | None = None, electrode_axis: str | None = None
) -> tuple[str, str, nn.Module]:
    """Find the electrode-resolving layer of a network.

    Parameters
    ----------
    module : torch.nn.Module
        The network. Zoo modules declare their layer in ``module.evidence``.
    layer : str or None, default=None
        Dotted submodule name (as in ``module.named_modules()``); ``None`` uses
        ``module.evidence.layer``.
    electrode_axis : {"grid", "channels"} or None, default=None
        How the layer's output maps to electrodes; ``None`` uses
        ``module.evidence.electrode_axis``.

    Returns
    -------
    layer : str
        The submodule name.
    electrode_axis : str
        ``"grid"`` or ``"channels"``.
    submodule : torch.nn.Module
        The submodule itself.
    """
    spec = getattr(module, "evidence", None)
    if layer is None:
        if spec is None:
            raise ValueError(
                f"{type(module).__name__} declares no evidence layer: pass layer=<name of the "
                "submodule whose output keeps an electrode axis> and electrode_axis='grid' or "
                "'channels' (or evidence='input_x_gradient', which needs no layer)."
            )
        layer = spec.layer
    if electrode_axis is None:
        if spec is None:
            raise ValueError(
                f"electrode_axis is None and {type(module).__name__} declares no evidence "
                f"layer: pass electrode_axis='grid' or 'channels' for layer {layer!r}."
            )
        electrode_axis = spec.electrode_axis
    _check_axis(electrode_axis)
    try:
        submodule = module.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in module.named_modules() if name]
        raise ValueError(
            f"layer={layer!r} is not a submodule of {type(module).__name__}; its submodules "
            f"are {names[:20]}{' ...' if len(names) > 20 else ''}."
        ) from None
    return layer, electrode_axis, submodule


def resolve_evidence(
    module: nn.Module,
    evidence: str = "auto",
    layer: str | None = None,
    electrode_axis: str | None = None,
    input_ndim: int | None = None,
) -> tuple[str, str | None, str, nn.Module | None]:
    """The evidence kind, layer and electrode axis a network's evidence is taken from.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    evidence : {"auto", "gradcam", "hirescam", "input_x_gradient"}, default="auto"
        ``"auto"`` takes ``module.evidence.auto`` (declared by every zoo model), and
        ``"gradcam"`` for a module that declares nothing.
    layer : str or None, default=None
        The evidence layer (``"input_x_gradient"`` takes none and refuses one); see
        :func:`resolve_evidence_layer`.
    electrode_axis : {"grid", "channels"} or None, default=None
        ``None`` uses the module's declaration; for ``"input_x_gradient"`` on a module
        that declares nothing, raw inputs (``input_ndim=3``) have ``"channels"``.
    input_ndim : int or None, default=None
        Number of axes of the input batch, when known.

    Returns
    -------
    evidence : str
        The kind, never ``"auto"``.
    layer : str or None
        The layer name (``None`` for ``"input_x_gradient"``).
    electrode_axis : str
    submodule : torch.nn.Module or None
    """
    spec = getattr(module, "evidence", None)
    if evidence == "auto":
        evidence = getattr(spec, "auto", "gradcam")
    evidence = _check_kind(evidence)
    if evidence != "input_x_gradient":
        return (evidence, *resolve_evidence_layer(module, layer, electrode_axis))
    if layer is not None:
        resolve_evidence_layer(module, layer, electrode_axis or "channels")  # a valid name?
        raise ValueError(
            f"layer={layer!r} was given, but the evidence is 'input_x_gradient' (the input's, "
            "which needs no layer; evidence='auto' picks it for this model): pass "
            "evidence='gradcam' or 'hirescam' to explain that layer, or leave layer=None."
        )
    if electrode_axis is None and spec is not None:
        electrode_axis = spec.electrode_axis
    if electrode_axis is None and input_ndim == 3:
        electrode_axis = "channels"
    if electrode_axis is None:
        raise ValueError(
            f"evidence='input_x_gradient' on {type(module).__name__}, which declares no "
            "evidence layer: pass electrode_axis='grid' (inputs (n, n_bands, rows, cols)) or "
            "'channels' (inputs (n, n_electrodes, n_times))."
        )
    return evidence, None, _check_axis(electrode_axis), None


def default_cells() -> np.ndarray:
    """Grid cells of the 32 DEAP electrodes, in DEAP order.

    Returns
    -------
    cells : ndarray of int, shape (32, 2)
        ``(row, col)`` of each electrode of :data:`skkgp.layout.DEAP_CHANNELS`.
    """
    from skkgp import layout

    return np.asarray(layout.grid_cells(layout.DEAP_CHANNELS), dtype=np.int64)


class ActivationCapture:
    """Keep the output of one submodule during a forward pass.

    Use as a context manager around the forward pass whose prediction the evidence
    explains; the hook is removed on exit.

    The output must keep its values to the end of the pass: :meth:`get` refuses it when
    a later operation changed it in place (``nn.ReLU(inplace=True)`` right after the
    layer, say), since the evidence would then be computed on the changed values. The
    check compares the tensor's version counter on the host, at no cost on the device.

    Parameters
    ----------
    layer : torch.nn.Module
        The submodule whose output is kept.
    network : torch.nn.Module or None, default=None
        The network ``layer`` belongs to; only used to name its in-place modules when
        the output was changed in place.

    Attributes
    ----------
    activations : torch.Tensor or None
        The output of ``layer`` in the last forward pass inside the context.

    Examples
    --------
    >>> with ActivationCapture(net.conv1) as capture:  # doctest: +SKIP
    ...     logits = net(X)
    >>> capture.activations.shape  # doctest: +SKIP
    torch.Size([n, 64, 9, 9])
    """

    def __init__(self, layer: nn.Module, network: nn.Module | None = None):
        self.layer = layer
        self.network = network
        self.activations: torch.Tensor | None = None
        self._calls = 0
        self._version: int | None = None
        self._handle = None

    def _hook(self, module, inputs, output):
        self._calls += 1
        self.activations = output
        # Every in-place write bumps a tensor's version counter (an int on the host).
        self._version = (output._version if isinstance(output, torch.Tensor)
                         and not output.is_inference() else None)

    def __enter__(self) -> ActivationCapture:
        self.activations = None
        self._calls = 0
        self._version = None
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.remove()
        self._handle = None

    def get(self) -> torch.Tensor:
        """The captured activations, checked.

        Returns
        -------
        activations : torch.Tensor, shape (n, K, rows, cols) or (n, K, n_electrodes, n_times)
        """
        if self._calls != 1 or not isinstance(self.activations, torch.Tensor):
            raise RuntimeError(
                f"The evidence layer {type(self.layer).__name__} ran {self._calls} times in one "
                "forward pass (or returned no tensor); Grad-CAM needs a layer that runs exactly "
                "once and returns a tensor."
            )
        if self.activations.dim() != 4:
            raise RuntimeError(
                "The evidence layer must output a 4-D tensor (n, filters, rows, cols) or (n, "
                f"filters, electrodes, times); got shape {tuple(self.activations.shape)}."
            )
        if self._version is not None and self.activations._version != self._version:
            raise RuntimeError(self._changed_in_place())
        return self.activations

    def _changed_in_place(self) -> str:
        grad_fn = self.activations.grad_fn
        by = "" if grad_fn is None else f" (last by {type(grad_fn).__name__})"
        inplace = [] if self.network is None else [
            f"{name or '<network>'} ({type(module).__name__})"
            for name, module in self.network.named_modules()
            if getattr(module, "inplace", False) is True
        ]
        culprits = (f" The network's in-place modules: {', '.join(inplace)}." if inplace
                    else "")
        return (
            f"The output of the evidence layer {type(self.layer).__name__} was changed in "
            f"place later in the forward pass{by}, so the evidence would be computed on the "
            f"changed values, not on the layer's.{culprits} Build those modules with "
            "inplace=False (e.g. nn.ReLU(inplace=False)) or avoid in-place operations on "
            "the layer's output."
        )


class GuidedBackprop:
    """Rectify the backward pass of the ReLU-like activations of a network.

    Inside the context, every output of an ``nn.ReLU``, ``nn.ReLU6``, ``nn.LeakyReLU``,
    ``nn.ELU``, ``nn.SELU`` or ``nn.CELU`` module computed in a forward pass gets a
    gradient hook. While :attr:`active` is true, the hook passes only the positive part
    of the gradient (guided backpropagation); otherwise it changes nothing, so the same
    forward pass serves ordinary gradients and the guided saliency.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Attributes
    ----------
    active : bool
        Whether gradients are rectified now.
    n_hooked : int
        Number of activation modules found.

    Warns
    -----
    UserWarning
        When the network has no such module (activations called as functions, e.g.
        ``F.relu``, cannot be hooked): the guided saliency is then the plain gradient
        magnitude.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.active = False
        self._handles: list = []
        self.n_hooked = 0

    def _rectify(self, grad: torch.Tensor) -> torch.Tensor | None:
        return grad.clamp(min=0) if self.active else None

    def _forward_hook(self, module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(self._rectify)

    def __enter__(self) -> GuidedBackprop:
        activations = [m for m in self.module.modules() if isinstance(m, _RECTIFIED)]
        self.n_hooked = len(activations)
        if not activations:
            warnings.warn(
                f"Guided backpropagation found no activation module in "
                f"{type(self.module).__name__} (nn.ReLU, nn.ELU, ...; functional calls such "
                "as F.relu cannot be hooked): the guided saliency is then the plain gradient "
                "magnitude. Use activation modules to guide it.", UserWarning, stacklevel=2,
            )
        self._handles = [m.register_forward_hook(self._forward_hook) for m in activations]
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.active = False

    @contextlib.contextmanager
    def rectifying(self) -> Iterator[None]:
        """Rectify the gradients of backward passes run inside this block."""
        self.active = True
        try:
            yield
        finally:
            self.active = False


def _score_gradient(logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """``ds/dlogits`` of the explained score ``s`` (the target logits summed over the batch):
    one-hot rows, in the logits' dtype.

    Handed to ``torch.autograd.grad`` as the logits' gradient, it gives the gradient of
    ``s`` without the score itself: no gather and sum forward, and no zero-filled
    scatter and gradient of ones backward, for the same one-hot rows.
    """
    if logits.dim() != 2:
        raise ValueError(
            f"logits must have shape (n_samples, n_classes); got {tuple(logits.shape)}."
        )
    if target is None:
        target = logits.detach().argmax(dim=1)
    target = torch.as_tensor(target, device=logits.device)
    n_samples = logits.shape[0]
    if tuple(target.shape) != (n_samples,):
        raise ValueError(
            f"target must hold one class index per sample, shape ({n_samples},) as the "
            f"logits have {n_samples} rows; got shape {tuple(target.shape)}."
        )
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ValueError(
            f"target must hold integer class indices; got dtype {target.dtype}. Pass the "
            f"class indices (estimator.classes_ positions), not labels or probabilities."
        )
    return torch.zeros_like(logits).scatter_(1, target.long().reshape(-1, 1), 1.0)


def _as_maps(tensor: torch.Tensor) -> torch.Tensor:
    # Raw input windows (n, n_electrodes, n_times) read as one feature map.
    return tensor.unsqueeze(1) if tensor.dim() == 3 else tensor


def evidence_map(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None = None,
    *,
    evidence: str = "gradcam",
    create_graph: bool = True,
    rectify: bool = True,
    consumer: PooledPlan | None = None,
) -> torch.Tensor:
    """Class-activation map of one layer (or of the input), before the electrode reduction.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of the forward pass that produced ``activations``.
    activations : torch.Tensor, shape (n_samples, K, H, W)
        Output of the evidence layer in that forward pass; for
        ``evidence="input_x_gradient"`` the input of the pass (it must require grad),
        also ``(n_samples, n_electrodes, n_times)``.
    target : torch.Tensor of int, shape (n_samples,), or None, default=None
        Class whose logit ``s`` is explained; ``None`` takes the predicted class.
    evidence : {"gradcam", "hirescam", "input_x_gradient"}, default="gradcam"
        ``"gradcam"``: ``sum_k mean(G_k) A_k``; the others: ``sum_k G_k * A_k``
        element-wise, with ``G = ds/dA``.
    create_graph : bool, default=True
        Keep the graph of ``G`` so that the map can be differentiated (training).
    rectify : bool, default=True
        Apply a ReLU; ``False`` returns the signed map.
    consumer : PooledPlan or None, default=None
        For ``evidence="gradcam"``: the convolution that alone consumes ``activations``
        in this pass (found by ``skkgp.knowledge._pooled.ConsumerCapture``); the same
        weights ``a_k`` are then computed without that convolution's backward pass.

    Returns
    -------
    cam : torch.Tensor, shape (n_samples, H, W)

    Notes
    -----
    The gradient is that of the sum of the explained logits over the batch. In eval mode
    the samples do not interact, so each sample gets exactly its own gradient; in
    training mode BatchNorm's batch statistics couple them slightly, as they couple the
    gradients of the training loss.
    """
    _check_kind(evidence)
    create_graph = bool(create_graph)  # torch takes a Python bool only
    if evidence == "gradcam":
        weights = _gradcam_weights(logits, activations, target, create_graph=create_graph,
                                   consumer=consumer)
        # One batched product instead of a weighted copy of the activations and a sum.
        cam = torch.einsum("nk,nkhw->nhw", weights, _as_maps(activations))
    else:
        grads = _explained_gradients(logits, activations, target, create_graph=create_graph)
        cam = (_as_maps(grads) * _as_maps(activations)).sum(dim=1)
    return torch.relu(cam) if rectify else cam


def _explained_gradients(
    logits: torch.Tensor, activations: torch.Tensor, target: torch.Tensor | None, *,
    create_graph: bool,
) -> torch.Tensor:
    """``G = ds/dA``, ``s`` the explained logits summed over the batch."""
    # Summing over the batch gives every sample its own gradient in one backward pass,
    # as the samples of a forward pass in eval mode do not interact.
    (grads,) = torch.autograd.grad(
        logits, activations, _score_gradient(logits, target), create_graph=create_graph,
        retain_graph=True,
    )
    return grads


def _gradcam_weights(
    logits: torch.Tensor, activations: torch.Tensor, target: torch.Tensor | None, *,
    create_graph: bool, consumer: PooledPlan | None = None,
) -> torch.Tensor:
    """Grad-CAM's filter weights ``a_k = mean_hw G_k``, shape (n_samples, K)."""
    if consumer is not None and consumer.activations is activations:
        return pooled_weights(logits, consumer, create_graph=create_graph,
                              score_gradient=_score_gradient(logits, target))
    grads = _explained_gradients(logits, activations, target, create_graph=create_graph)
    return _as_maps(grads).mean(dim=(2, 3))


def gradcam_map(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None = None,
    *,
    create_graph: bool = True,
    rectify: bool = True,
) -> torch.Tensor:
    """Grad-CAM map ``ReLU(sum_k a_k A_k)`` of one layer, ``a_k = mean(ds/dA_k)``.

    :func:`evidence_map` with ``evidence="gradcam"``.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of the forward pass that produced ``activations``.
    activations : torch.Tensor, shape (n_samples, K, H, W)
        Output of the evidence layer in that forward pass.
    target : torch.Tensor of int, shape (n_samples,), or None, default=None
        Class whose logit is explained; ``None`` takes the predicted class.
    create_graph : bool, default=True
        Keep the graph of the gradient so that the map can be differentiated.
    rectify : bool, default=True
        Apply the ReLU; ``False`` returns the signed map.

    Returns
    -------
    cam : torch.Tensor, shape (n_samples, H, W)
    """
    return evidence_map(logits, activations, target, evidence="gradcam",
                        create_graph=create_graph, rectify=rectify)


def reduce_to_electrodes(
    maps: torch.Tensor, electrode_axis: str, cells: np.ndarray | torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce per-position maps to one value per electrode.

    Parameters
    ----------
    maps : torch.Tensor, shape (n_samples, H, W)
        ``electrode_axis="channels"``: ``H`` is the electrode axis and ``W`` time.
        ``electrode_axis="grid"``: ``(H, W)`` is the electrode grid.
    electrode_axis : {"grid", "channels"}
    cells : array of int, shape (n_electrodes, 2), or None
        ``(row, col)`` of each electrode (``electrode_axis="grid"`` only); ``None`` takes
        the DEAP electrodes (:func:`default_cells`).

    Returns
    -------
    evidence : torch.Tensor, shape (n_samples, n_electrodes)
    """
    if electrode_axis == "channels":
        return maps.sum(dim=2)
    _check_axis(electrode_axis)
    cells = _cells_tensor(cells, maps.shape[1:], maps.device)
    return maps[:, cells[:, 0], cells[:, 1]]


def check_cells(cells, grid_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate the grid cells of the electrodes.

    Parameters
    ----------
    cells : array-like or torch.Tensor of int, shape (n_electrodes, 2), or None
        ``(row, col)`` of each electrode; ``None`` takes :func:`default_cells`.
    grid_shape : tuple of int or None, default=None
        ``(rows, cols)`` of the grid the cells must lie in; ``None`` skips that check.

    Returns
    -------
    cells : ndarray of int64, shape (n_electrodes, 2)
    """
    if isinstance(cells, torch.Tensor):
        cells = cells.detach().cpu().numpy()
    cells_np = default_cells() if cells is None else np.asarray(cells)
    if (cells_np.ndim != 2 or cells_np.shape[1] != 2
            or not np.issubdtype(cells_np.dtype, np.integer)):
        raise ValueError(
            f"cells must be an int array of shape (n_electrodes, 2); got dtype "
            f"{cells_np.dtype} and shape {cells_np.shape}."
        )
    if cells_np.size and cells_np.min() < 0:
        raise ValueError(
            f"cells must be non-negative (row, col) pairs; got {cells_np.min()} (a negative "
            "index would wrap to the far side of the grid)."
        )
    if grid_shape is not None and cells_np.size:
        rows, cols = int(grid_shape[0]), int(grid_shape[1])
        if cells_np[:, 0].max() >= rows or cells_np[:, 1].max() >= cols:
            raise ValueError(
                f"cells must lie inside the {rows}x{cols} grid of the evidence layer; got rows "
                f"{cells_np[:, 0].min()}..{cells_np[:, 0].max()} and columns "
                f"{cells_np[:, 1].min()}..{cells_np[:, 1].max()}."
            )
    return cells_np.astype(np.int64)


def _cells_tensor(cells, grid_shape, device) -> torch.Tensor:
    if isinstance(cells, CheckedCells):
        # Checked once when training began: the training loop's hot path.
        return cells.tensor.to(device)
    return torch.as_tensor(check_cells(cells, tuple(grid_shape)), device=device)


def evidence_from_activations(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None,
    electrode_axis: Literal["grid", "channels"],
    cells: np.ndarray | torch.Tensor | None = None,
    *,
    evidence: str = "gradcam",
    create_graph: bool = True,
    return_scores: bool = False,
    consumer: PooledPlan | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-electrode evidence, differentiable, from one forward pass.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of the forward pass.
    activations : torch.Tensor, shape (n_samples, K, H, W)
        Output of the evidence layer captured in the same forward pass (see
        :class:`ActivationCapture`); for ``evidence="input_x_gradient"`` the input of
        the pass, which must require grad.
    target : torch.Tensor of int, shape (n_samples,), or None
        Explained class (the true class while training); ``None`` takes the predicted one.
    electrode_axis : {"grid", "channels"}
        How ``(H, W)`` maps to electrodes (see :func:`reduce_to_electrodes`).
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode, for ``electrode_axis="grid"``.
    evidence : {"gradcam", "hirescam", "input_x_gradient"}, default="gradcam"
        The kind (see the module docstring).
    create_graph : bool, default=True
        Make the evidence differentiable with respect to the network's parameters.
    return_scores : bool, default=False
        Also return the signed (not rectified) map reduced to electrodes the same way.
    consumer : PooledPlan or None, default=None
        Passed to :func:`evidence_map`.

    Returns
    -------
    evidence : torch.Tensor, shape (n_samples, n_electrodes)
        Non-negative evidence of each electrode: the rectified map summed over each
        electrode's positions (Grad-CAM, HiResCAM), or the electrode's summed input x
        gradient, rectified.
    scores : torch.Tensor, shape (n_samples, n_electrodes)
        Only with ``return_scores=True``: the signed map reduced to electrodes.
        :func:`skkgp.knowledge.losses.knowledge_guided_loss` takes its gradient where a
        sample's evidence is all zero (the ReLU has no gradient there).
    """
    maps = evidence_map(logits, activations, target, evidence=evidence,
                        create_graph=create_graph, rectify=False, consumer=consumer)
    scores = reduce_to_electrodes(maps, electrode_axis, cells)
    if evidence == "input_x_gradient" or electrode_axis == "grid":
        # Input x gradient: one attribution per electrode, its sign that of the
        # electrode's net contribution to the score. A grid's reduction picks one cell per
        # electrode, so that rectifying the picked scores is rectifying the map first.
        result = torch.relu(scores)
    else:
        result = reduce_to_electrodes(torch.relu(maps), electrode_axis, cells)
    return (result, scores) if return_scores else result


def filter_contributions(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None,
    electrode_axis: Literal["grid", "channels"],
    cells: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Each filter's term ``a_k A_k`` of the Grad-CAM map, reduced to electrodes.

    The Grad-CAM map before its ReLU is the sum of these terms over the filters
    ``k`` of the evidence layer (Grad-CAM's, ``evidence="gradcam"``), so they say where
    on the head each filter's share of the evidence lies.

    Parameters
    ----------
    logits, activations, target, electrode_axis, cells
        As in :func:`evidence_from_activations` (``activations`` the evidence layer's
        output, shape ``(n_samples, K, H, W)``).

    Returns
    -------
    contributions : torch.Tensor, shape (n_samples, K, n_electrodes)
        Signed, detached; summed over ``K`` they give the signed map reduced to
        electrodes.
    """
    weights = _gradcam_weights(logits, activations, target, create_graph=False)
    terms = weights[:, :, None, None] * _as_maps(activations.detach())
    n, k, h, w = terms.shape
    reduced = reduce_to_electrodes(terms.reshape(n * k, h, w), electrode_axis, cells)
    return reduced.reshape(n, k, -1)


def guided_saliency(
    logits: torch.Tensor,
    inputs: torch.Tensor,
    target: torch.Tensor | None,
    guide: GuidedBackprop,
    electrode_axis: Literal["grid", "channels"],
    cells: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Guided-backpropagation saliency of the input, reduced to electrodes.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of a forward pass run inside ``guide`` on ``inputs``.
    inputs : torch.Tensor
        The input of that forward pass (``requires_grad=True``): grids
        ``(n_samples, n_bands, rows, cols)`` for ``electrode_axis="grid"``, raw windows
        ``(n_samples, n_electrodes, n_times)`` (or ``(n_samples, 1, n_electrodes,
        n_times)``) for ``electrode_axis="channels"``.
    target : torch.Tensor of int, shape (n_samples,), or None
        Explained class; ``None`` takes the predicted one.
    guide : GuidedBackprop
        The context the forward pass ran in.
    electrode_axis : {"grid", "channels"}
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode, for ``electrode_axis="grid"``.

    Returns
    -------
    saliency : torch.Tensor, shape (n_samples, n_electrodes)
        ``|dX|`` summed over time (raw) or over bands at each electrode's cell (grid).
        Detached: the guided part weights the evidence but is not differentiated.
    """
    with guide.rectifying():
        (grads,) = torch.autograd.grad(logits, inputs, _score_gradient(logits, target),
                                       retain_graph=True)
    magnitude = grads.detach().abs()
    if electrode_axis == "channels":
        if magnitude.dim() == 4:
            magnitude = magnitude.sum(dim=1)
        if magnitude.dim() != 3:
            raise ValueError(
                "Guided saliency of raw inputs needs X of shape (n_samples, n_electrodes, "
                f"n_times); got {tuple(inputs.shape)}."
            )
        return magnitude.sum(dim=2)
    if magnitude.dim() != 4:
        raise ValueError(
            "Guided saliency of grid inputs needs X of shape (n_samples, n_bands, rows, "
            f"cols); got {tuple(inputs.shape)}."
        )
    return reduce_to_electrodes(magnitude.sum(dim=1), "grid", cells)


def _resolve_model(model, X):
    """The net or module that holds the network, and ``X`` as that network takes it.

    A :class:`~sklearn.pipeline.Pipeline` transforms ``X`` through its earlier steps; a
    fitted :class:`~skkgp.KnowledgeGuidedPruner` stands for its pruned, recovered network;
    :class:`mne.Epochs` become their arrays as at ``fit``.
    """
    net, preprocessing = fitted_net(model, "guided_gradcam", modules=True)
    for _, step in preprocessing:
        try:
            X = step.transform(X)
        except Exception as error:  # noqa: BLE001 - any unfitted or failing step
            raise ValueError(
                "The pipeline's steps before its last could not transform X "
                f"({type(error).__name__}: {error}); fit the pipeline first."
            ) from error
    return net, eeg_input(X).X  # mne.Epochs: the EEG channels fit takes, in microvolts


def _fitted_evidence(estimator) -> dict:
    """Evidence settings a fitted knowledge-guided classifier was trained with."""
    names = {"evidence": "evidence_", "layer": "evidence_layer_",
             "electrode_axis": "electrode_axis_", "cells": "cells_", "guided": "guided"}
    return {key: getattr(estimator, attr) for key, attr in names.items()
            if getattr(estimator, attr, None) is not None}


def _applicable_settings(fitted: dict, evidence: str | None) -> dict:
    """The trained evidence settings that apply when ``evidence`` is asked for.

    All of them for the trained kind (or ``evidence=None``, which means it); for another
    kind, only the electrodes' grid cells and the guidance: the trained layer and
    electrode axis belong to the trained kind.
    """
    if evidence is None or evidence == fitted.get("evidence", evidence):
        return fitted
    return {key: fitted[key] for key in ("cells", "guided") if key in fitted}


def _class_indices(estimator, y, n_samples: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n_samples:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n_samples} samples.")
    classes = getattr(estimator, "classes_", None) if not isinstance(estimator, nn.Module) else None
    if classes is not None:
        classes = np.asarray(classes)
        unknown = np.setdiff1d(np.unique(y), classes)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown.tolist()} the estimator never saw; its "
                             f"classes_ are {classes.tolist()}.")
        order = np.argsort(classes, kind="stable")  # classes_ need not be sorted
        return order[np.searchsorted(classes, y, sorter=order)]
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold class indices (int) for a bare module; got dtype {y.dtype}.")
    return y


def _check_class_range(targets: np.ndarray, n_classes: int) -> None:
    outside = np.unique(targets[(targets < 0) | (targets >= n_classes)])
    if outside.size:
        raise ValueError(
            f"y holds class indices {outside.tolist()} outside 0..{n_classes - 1}: the network "
            f"has {n_classes} classes (outputs); pass one class index per sample in that range."
        )


def _same_device(a: torch.device, b: torch.device) -> bool:
    # "cuda" and "cuda:0" name the same card when the current device is 0.
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return a.index == b.index or None in (a.index, b.index)
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (
        b.index if b.index is not None else current)


def guided_gradcam(
    module,
    X,
    y=None,
    *,
    evidence: str | None = None,
    layer: str | None = None,
    electrode_axis: Literal["grid", "channels"] | None = None,
    cells: np.ndarray | None = None,
    guided: bool | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Per-electrode evidence of a network (Grad-CAM family), for analysis and plots.

    The network runs in eval mode (no dropout, BatchNorm running statistics), and each of
    its modules is put back in its former mode afterwards; its weights are not changed.

    Parameters
    ----------
    module : torch.nn.Module, fitted estimator, KnowledgeGuidedPruner or Pipeline
        The network; or a fitted estimator holding it in ``module_`` (an
        :class:`skkgp.EEGClassifier` or
        :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier`); or a fitted
        :class:`skkgp.KnowledgeGuidedPruner` (its pruned, recovered network, with the
        evidence kind, electrodes, grid cells and guidance it was recovered with); or a fitted
        :class:`~sklearn.pipeline.Pipeline` ending in one of these (``X`` then passes
        through the earlier steps first).
    X : array-like, torch.Tensor or mne.Epochs, shape (n_samples, ...)
        Inputs: what the network takes (grids ``(n_samples, n_bands, rows, cols)`` or
        raw windows ``(n_samples, n_electrodes, n_times)``), or what the pipeline takes.
        Epochs are read as ``fit`` reads them (EEG channels not marked bad, in
        microvolts).
    y : array-like of shape (n_samples,) or None, default=None
        Class explained for each sample: class labels (of ``classes_`` for an estimator,
        indices for a bare module). ``None`` explains the predicted class.
    evidence : {"auto", "gradcam", "hirescam", "input_x_gradient"} or None, default=None
        The evidence kind (see :mod:`skkgp.knowledge.evidence`). ``None`` takes the kind
        a knowledge-guided classifier or pruner was trained with, and ``"auto"``
        otherwise: the kind the zoo model declares, Grad-CAM for other modules.
    layer : str or None, default=None
        Name of the electrode-resolving submodule; ``None`` uses the layer a
        knowledge-guided estimator was trained with (when ``evidence`` is ``None`` or
        that kind), else ``module.evidence``. Not used by ``"input_x_gradient"``.
    electrode_axis : {"grid", "channels"} or None, default=None
        How the layer's output (or the input) maps to electrodes; ``None`` uses the
        trained one (as for ``layer``), else ``module.evidence``.
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode for ``electrode_axis="grid"``; ``None`` takes those a
        knowledge-guided estimator was trained with, else the 32 DEAP electrodes in DEAP
        order.
    guided : bool or None, default=None
        Multiply by the guided-backpropagation saliency of the input. ``None`` takes the
        ``guided`` parameter of a knowledge-guided classifier (of a pruner's recovered
        network: that of its estimator when it is one, else ``False``), and ``False``
        for other estimators and modules.
    batch_size : int, default=256
        Samples per forward pass.
    device : str or torch.device or None, default=None
        Where to compute; ``None`` uses the device of the network's parameters. On
        another device the evidence is computed with a copy of the network there (the
        network itself is not moved).

    Returns
    -------
    evidence : ndarray, shape (n_samples, n_electrodes)
        Non-negative evidence of each electrode for each sample.

    See Also
    --------
    evidence_from_activations : The differentiable core used while training.
    skkgp.knowledge.losses.region_share : The share of this evidence on a region.

    Examples
    --------
    >>> evidence = guided_gradcam(net, X_grid)  # doctest: +SKIP
    >>> evidence.shape  # doctest: +SKIP
    (n_samples, 32)
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "guided_gradcam needs gradients, which torch.inference_mode() switches off: call "
            "it outside the inference_mode block (torch.no_grad() around it is fine)."
        )
    estimator, X = _resolve_model(module, X)
    net = estimator if isinstance(estimator, nn.Module) else estimator.module_
    fitted = {} if isinstance(estimator, nn.Module) else _fitted_evidence(estimator)
    fitted = _applicable_settings(fitted, evidence)
    if evidence is None:
        evidence = fitted.get("evidence", "auto")
    if layer is None:
        layer = fitted.get("layer")
    if electrode_axis is None:
        electrode_axis = fitted.get("electrode_axis")
    if cells is None:
        cells = fitted.get("cells")
    if guided is None:
        guided = bool(fitted.get("guided", False))
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    param = next(net.parameters(), None)
    home = param.device if param is not None else torch.device("cpu")
    device = home if device is None else torch.device(device)
    if not _same_device(device, home):
        # Compute on a copy: the caller's network stays where it is.
        net = copy.deepcopy(net).to(device)
    X = torch.as_tensor(X) if not isinstance(X, torch.Tensor) else X
    if X.is_inference():
        X = X.clone()  # a tensor made under inference_mode can never require grad
    if X.dim() < 3:
        raise ValueError(
            f"X must have shape (n_samples, ...) with 3 or 4 axes; got {tuple(X.shape)}."
        )
    evidence, _, electrode_axis, submodule = resolve_evidence(
        net, evidence, layer, electrode_axis, X.dim()
    )
    if X.is_floating_point() and not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values.")
    fitted_shape = getattr(estimator, "input_shape_", None)
    if fitted_shape is not None and tuple(X.shape[1:]) != tuple(fitted_shape):
        raise ValueError(
            f"X has samples of shape {tuple(X.shape[1:])}; the estimator was fitted on samples "
            f"of shape {tuple(fitted_shape)} (the number of channels or the sample shape "
            "differs)."
        )
    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    targets = _class_indices(estimator, y, X.shape[0])

    chunks = []
    with eval_mode(net):
        for start in range(0, X.shape[0], batch_size):
            # A fresh leaf that requires grad: the graph exists even for frozen weights.
            batch = X[start:start + batch_size].detach().to(device=device, dtype=dtype)
            batch.requires_grad_(True)
            target = (
                None if targets is None
                else torch.as_tensor(targets[start:start + batch_size], device=device)
            )
            guide = GuidedBackprop(net) if guided else contextlib.nullcontext()
            capture = (ActivationCapture(submodule, net) if submodule is not None
                       else contextlib.nullcontext())
            with torch.enable_grad(), capture, guide:
                logits = net(batch)
                if start == 0 and targets is not None:
                    _check_class_range(targets, logits.shape[1])
                if target is None:
                    target = logits.detach().argmax(dim=1)
                source = batch if submodule is None else capture.get()
                values = evidence_from_activations(
                    logits, source, target, electrode_axis, cells, evidence=evidence,
                    create_graph=False,
                )
                if guided:
                    values = values * guided_saliency(
                        logits, batch, target, guide, electrode_axis, cells
                    )
            chunks.append(values.detach().cpu())
    if not chunks:
        raise ValueError("X has no samples.")
    return torch.cat(chunks).numpy()


def mean_region_share(
    model,
    X,
    y=None,
    *,
    region_mask=None,
    which: Literal["pruned", "origin"] = "pruned",
    **evidence_params,
) -> float:
    """Mean share of a network's normalised evidence that falls on the knowledge region.

    "How much of the held-out evidence lies in the region": the mean over samples of
    :func:`skkgp.knowledge.losses.region_share` of :func:`guided_gradcam`.

    Parameters
    ----------
    model : KnowledgeGuidedPruner, KnowledgeGuidedClassifier, Pipeline, estimator or module
        Fitted; anything :func:`guided_gradcam` takes.
    X : array-like or mne.Epochs, shape (n_samples, ...)
        Inputs (held-out data, for a held-out share).
    y : array-like of shape (n_samples,) or None, default=None
        Classes explained; ``None`` explains the predicted ones.
    region_mask : array-like of bool, shape (n_electrodes,), or None, default=None
        The region; ``None`` takes the ``region_mask_`` of a fitted pruner or
        knowledge-guided classifier.
    which : {"pruned", "origin"}, default="pruned"
        For a pruner (or a pipeline ending in one): the pruned, recovered network, or
        the unpruned origin, explained with the evidence kind and electrodes of the
        recovery.
    **evidence_params
        ``evidence``, ``layer``, ``electrode_axis``, ``cells``, ``guided``,
        ``batch_size``, ``device`` of :func:`guided_gradcam`; those not given are, as
        there, the settings a knowledge-guided classifier or pruner was trained with
        (``guided`` included; for another ``evidence`` kind than the trained one, only
        its ``cells`` and ``guided``).

    Returns
    -------
    share : float
        In ``[0, 1]``; the uniform share ``region_mask.mean()`` means no preference.

    See Also
    --------
    skkgp.KnowledgeGuidedPruner.region_share : The same, as a method.
    """
    from sklearn.pipeline import Pipeline

    from skkgp.knowledge.losses import region_share

    if which not in ("pruned", "origin"):
        raise ValueError(f"which must be 'pruned' or 'origin', got {which!r}.")
    if isinstance(model, Pipeline):
        if len(model.steps) > 1:
            X = model[:-1].transform(X)
        model = model[-1]
    holder = model
    if which == "origin":
        if not hasattr(model, "origin_estimator_"):
            raise ValueError(
                f"which='origin' needs a fitted KnowledgeGuidedPruner (or a pipeline ending in "
                f"one); got {type(model).__name__}"
                f"{'' if hasattr(model, 'estimator') else ' (it has no origin network)'}."
            )
        settings = _applicable_settings(_fitted_evidence(model.estimator_),
                                        evidence_params.get("evidence"))
        evidence_params = {**settings, **evidence_params}
        model = model.origin_estimator_
    if region_mask is None:
        region_mask = getattr(holder, "region_mask_", None)
        if region_mask is None:
            region_mask = getattr(getattr(holder, "estimator_", None), "region_mask_", None)
        if region_mask is None:
            raise ValueError(
                f"region_mask is None and this {type(holder).__name__} has no region_mask_: "
                "pass region_mask (skkgp.layout.region_mask makes one)."
            )
    evidence = guided_gradcam(model, X, y, **evidence_params)
    return float(np.mean(region_share(evidence, np.asarray(region_mask, dtype=bool))))
