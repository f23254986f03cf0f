"""Guided Grad-CAM evidence of an EEG network, reduced to one value per electrode.

Grad-CAM (Selvaraju et al. 2017) weights the activations ``A`` of a layer by the mean
gradient of a class score over each feature map: with ``G = ds/dA``,
``a_k = mean(G_k)`` and ``CAM = ReLU(sum_k a_k A_k)``. skkgp takes ``A`` from a layer
whose output still resolves electrodes, and reduces the map to electrodes:

- kind ``"channels"``: ``A`` has shape ``(n, K, n_electrodes, n_times)``; the map is
  summed over time;
- kind ``"grid"``: ``A`` has shape ``(n, K, rows, cols)``; electrode ``e`` takes the map
  value of its grid cell ``cells[e]``.

The *guided* variant multiplies this by the guided-backpropagation saliency of the
input (Springenberg et al. 2015), reduced to electrodes the same way.

:func:`guided_gradcam` computes detached evidence for analysis and plots.
:func:`gradcam_from_activations` is the differentiable core that the knowledge-guided
recovery (:class:`skkgp.knowledge.KnowledgeGuidedClassifier`) calls on the activations
captured, by :class:`ActivationCapture`, in the very forward pass that made the
prediction.

References
----------
.. [1] Selvaraju, R. R. et al. (2017). Grad-CAM: visual explanations from deep networks
   via gradient-based localization. ICCV.
.. [2] Springenberg, J. T. et al. (2015). Striving for simplicity: the all convolutional
   net. ICLR workshop.
.. [3] Rao, & Zhong (2023). Knowledge-guided network pruning for EEG-based emotion
   recognition. IEEE BIBM.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from skkgp.knowledge._autograd import input_grads_only

__all__ = [
    "ActivationCapture",
    "check_cells",
    "GuidedBackprop",
    "EVIDENCE_KINDS",
    "default_cells",
    "gradcam_map",
    "gradcam_from_activations",
    "guided_gradcam",
    "guided_saliency",
    "reduce_to_electrodes",
    "resolve_evidence_layer",
]

EVIDENCE_KINDS = ("grid", "channels")

# Activations whose backward pass guided backpropagation rectifies. Only module
# activations can be hooked; a functional ``F.relu`` inside ``forward`` is left alone.
_RECTIFIED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU)


def resolve_evidence_layer(
    module: nn.Module, layer: str | None = None, kind: str | None = None
) -> tuple[str, str, nn.Module]:
    """Find the electrode-resolving layer of a network.

    Parameters
    ----------
    module : torch.nn.Module
        The network. Zoo modules declare their layer in ``module.evidence``.
    layer : str or None, default=None
        Dotted submodule name (as in ``module.named_modules()``); ``None`` uses
        ``module.evidence.layer``.
    kind : {"grid", "channels"} or None, default=None
        How the layer's output maps to electrodes; ``None`` uses
        ``module.evidence.kind``.

    Returns
    -------
    layer : str
        The submodule name.
    kind : str
        ``"grid"`` or ``"channels"``.
    submodule : torch.nn.Module
        The submodule itself.
    """
    spec = getattr(module, "evidence", None)
    if layer is None:
        if spec is None:
            raise ValueError(
                f"{type(module).__name__} declares no evidence layer: pass layer=<name of the "
                "submodule whose output keeps an electrode axis> and kind='grid' or 'channels'."
            )
        layer = spec.layer
    if kind is None:
        if spec is None:
            raise ValueError(
                f"kind is None and {type(module).__name__} declares no evidence kind: pass "
                f"kind='grid' or kind='channels' for layer {layer!r}."
            )
        kind = spec.kind
    if kind not in EVIDENCE_KINDS:
        raise ValueError(f"kind must be one of {EVIDENCE_KINDS}, got {kind!r}.")
    try:
        submodule = module.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in module.named_modules() if name]
        raise ValueError(
            f"layer={layer!r} is not a submodule of {type(module).__name__}; its submodules "
            f"are {names[:20]}{' ...' if len(names) > 20 else ''}."
        ) from None
    return layer, kind, submodule


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

    Parameters
    ----------
    layer : torch.nn.Module
        The submodule whose output is kept.

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

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.activations: torch.Tensor | None = None
        self._calls = 0
        self._handle = None

    def _hook(self, module, inputs, output):
        self._calls += 1
        self.activations = output

    def __enter__(self) -> ActivationCapture:
        self.activations = None
        self._calls = 0
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
        return self.activations


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


def _target_scores(logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if logits.dim() != 2:
        raise ValueError(
            f"logits must have shape (n_samples, n_classes); got {tuple(logits.shape)}."
        )
    if target is None:
        target = logits.detach().argmax(dim=1)
    target = torch.as_tensor(target, device=logits.device).long().reshape(-1, 1)
    return logits.gather(1, target)


def gradcam_map(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None = None,
    *,
    create_graph: bool = True,
    rectify: bool = True,
) -> torch.Tensor:
    """Grad-CAM map of the activations of one layer.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of the forward pass that produced ``activations``.
    activations : torch.Tensor, shape (n_samples, K, H, W)
        Output of the evidence layer in that forward pass.
    target : torch.Tensor of int, shape (n_samples,), or None, default=None
        Class whose logit ``s`` is explained; ``None`` takes the predicted class.
    create_graph : bool, default=True
        Keep the graph of ``G = ds/dA`` so that the map can be differentiated (training).
    rectify : bool, default=True
        Apply the ReLU; ``False`` returns the signed map ``sum_k a_k A_k`` (the
        knowledge-guided recovery needs it where the rectified map is all zero).

    Returns
    -------
    cam : torch.Tensor, shape (n_samples, H, W)
        ``ReLU(sum_k a_k A_k)`` with ``a_k`` the mean of ``ds/dA_k`` over ``(H, W)``
        (without the ReLU when ``rectify=False``).

    Notes
    -----
    The gradient is that of the sum of the explained logits over the batch. In eval mode
    the samples do not interact, so each sample gets exactly its own gradient; in
    training mode BatchNorm's batch statistics couple them slightly, as they couple the
    gradients of the training loss.
    """
    score = _target_scores(logits, target).sum()
    # Summing over the batch gives every sample its own gradient in one backward pass,
    # as the samples of a forward pass in eval mode do not interact.
    with input_grads_only():
        (grads,) = torch.autograd.grad(
            score, activations, create_graph=create_graph, retain_graph=True
        )
    weights = grads.mean(dim=(2, 3))
    # One batched product instead of a weighted copy of the activations and a sum.
    cam = torch.einsum("nk,nkhw->nhw", weights, activations)
    return torch.relu(cam) if rectify else cam


def reduce_to_electrodes(
    maps: torch.Tensor, kind: str, cells: np.ndarray | torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce per-position maps to one value per electrode.

    Parameters
    ----------
    maps : torch.Tensor, shape (n_samples, H, W)
        ``kind="channels"``: ``H`` is the electrode axis and ``W`` time.
        ``kind="grid"``: ``(H, W)`` is the electrode grid.
    kind : {"grid", "channels"}
    cells : array of int, shape (n_electrodes, 2), or None
        ``(row, col)`` of each electrode (``kind="grid"`` only); ``None`` takes the DEAP
        electrodes (:func:`default_cells`).

    Returns
    -------
    evidence : torch.Tensor, shape (n_samples, n_electrodes)
    """
    if kind == "channels":
        return maps.sum(dim=2)
    if kind != "grid":
        raise ValueError(f"kind must be one of {EVIDENCE_KINDS}, got {kind!r}.")
    cells = _cells_tensor(cells, maps.shape[1:], maps.device)
    return maps[:, cells[:, 0], cells[:, 1]]


def check_cells(cells, grid_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate the grid cells of the electrodes.

    Parameters
    ----------
    cells : array-like of int, shape (n_electrodes, 2), or None
        ``(row, col)`` of each electrode; ``None`` takes :func:`default_cells`.
    grid_shape : tuple of int or None, default=None
        ``(rows, cols)`` of the grid the cells must lie in; ``None`` skips that check.

    Returns
    -------
    cells : ndarray of int64, shape (n_electrodes, 2)
    """
    cells_np = default_cells() if cells is None else np.asarray(cells)
    if (cells_np.ndim != 2 or cells_np.shape[1] != 2
            or not np.issubdtype(cells_np.dtype, np.integer)):
        raise ValueError(
            f"cells must be an int array of shape (n_electrodes, 2); got dtype "
            f"{cells_np.dtype} and shape {cells_np.shape}."
        )
    if grid_shape is not None and cells_np.size:
        rows, cols = int(grid_shape[0]), int(grid_shape[1])
        if cells_np.min() < 0 or cells_np[:, 0].max() >= rows or cells_np[:, 1].max() >= cols:
            raise ValueError(
                f"cells must lie inside the {rows}x{cols} grid of the evidence layer; got rows "
                f"{cells_np[:, 0].min()}..{cells_np[:, 0].max()} and columns "
                f"{cells_np[:, 1].min()}..{cells_np[:, 1].max()}."
            )
    return cells_np.astype(np.int64)


def _cells_tensor(cells, grid_shape, device) -> torch.Tensor:
    if isinstance(cells, torch.Tensor) and cells.device == device and cells.dtype == torch.long:
        return cells  # checked once by the caller: the training loop's hot path
    return torch.as_tensor(check_cells(cells, tuple(grid_shape)), device=device)


def gradcam_from_activations(
    logits: torch.Tensor,
    activations: torch.Tensor,
    target: torch.Tensor | None,
    kind: Literal["grid", "channels"],
    cells: np.ndarray | torch.Tensor | None = None,
    *,
    create_graph: bool = True,
    return_scores: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-electrode Grad-CAM evidence, differentiable, from one forward pass.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of the forward pass.
    activations : torch.Tensor, shape (n_samples, K, H, W)
        Output of the evidence layer captured in the same forward pass (see
        :class:`ActivationCapture`).
    target : torch.Tensor of int, shape (n_samples,), or None
        Explained class (the true class while training); ``None`` takes the predicted one.
    kind : {"grid", "channels"}
        How ``(H, W)`` maps to electrodes (see :func:`reduce_to_electrodes`).
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode, for ``kind="grid"``.
    create_graph : bool, default=True
        Make the evidence differentiable with respect to the network's parameters.
    return_scores : bool, default=False
        Also return the signed (not rectified) map reduced to electrodes the same way.

    Returns
    -------
    evidence : torch.Tensor, shape (n_samples, n_electrodes)
        Non-negative evidence of each electrode.
    scores : torch.Tensor, shape (n_samples, n_electrodes)
        Only with ``return_scores=True``: ``sum_k a_k A_k`` before the ReLU, reduced to
        electrodes. :func:`skkgp.knowledge.losses.knowledge_guided_loss` takes its gradient where
        a sample's evidence is all zero (the ReLU has no gradient there).
    """
    maps = gradcam_map(logits, activations, target, create_graph=create_graph, rectify=False)
    evidence = reduce_to_electrodes(torch.relu(maps), kind, cells)
    if return_scores:
        return evidence, reduce_to_electrodes(maps, kind, cells)
    return evidence


def guided_saliency(
    logits: torch.Tensor,
    inputs: torch.Tensor,
    target: torch.Tensor | None,
    guide: GuidedBackprop,
    kind: Literal["grid", "channels"],
    cells: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Guided-backpropagation saliency of the input, reduced to electrodes.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_samples, n_classes)
        Output of a forward pass run inside ``guide`` on ``inputs``.
    inputs : torch.Tensor
        The input of that forward pass (``requires_grad=True``): grids
        ``(n_samples, n_bands, rows, cols)`` for ``kind="grid"``, raw windows
        ``(n_samples, n_electrodes, n_times)`` (or ``(n_samples, 1, n_electrodes,
        n_times)``) for ``kind="channels"``.
    target : torch.Tensor of int, shape (n_samples,), or None
        Explained class; ``None`` takes the predicted one.
    guide : GuidedBackprop
        The context the forward pass ran in.
    kind : {"grid", "channels"}
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode, for ``kind="grid"``.

    Returns
    -------
    saliency : torch.Tensor, shape (n_samples, n_electrodes)
        ``|dX|`` summed over time (raw) or over bands at each electrode's cell (grid).
        Detached: the guided part weights the evidence but is not differentiated.
    """
    score = _target_scores(logits, target).sum()
    with guide.rectifying(), input_grads_only():
        (grads,) = torch.autograd.grad(score, inputs, retain_graph=True)
    magnitude = grads.detach().abs()
    if kind == "channels":
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


def _unwrap(module) -> nn.Module:
    if isinstance(module, nn.Module):
        return module
    if hasattr(module, "module_"):
        if not isinstance(module.module_, nn.Module):
            raise ValueError(
                f"The estimator's module_ is not a torch.nn.Module: {module.module_!r}."
            )
        return module.module_
    if hasattr(module, "module") and hasattr(module, "fit"):
        raise ValueError(
            f"This {type(module).__name__} is not fitted yet: call fit before computing evidence."
        )
    raise TypeError(
        "module must be a torch.nn.Module or a fitted estimator with a module_ attribute; got "
        f"{type(module).__name__}."
    )


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
    layer: str | None = None,
    kind: Literal["grid", "channels"] | None = None,
    cells: np.ndarray | None = None,
    guided: bool = False,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Per-electrode (guided) Grad-CAM evidence of a network, for analysis and plots.

    The network runs in eval mode (no dropout, BatchNorm running statistics) and is put
    back in its former mode afterwards; its weights are not changed.

    Parameters
    ----------
    module : torch.nn.Module or fitted estimator
        The network, or a fitted estimator holding it in ``module_`` (an
        :class:`skkgp.EEGClassifier`, say).
    X : array-like or torch.Tensor, shape (n_samples, ...)
        Inputs as the network takes them: grids ``(n_samples, n_bands, rows, cols)`` or
        raw windows ``(n_samples, n_electrodes, n_times)``.
    y : array-like of shape (n_samples,) or None, default=None
        Class explained for each sample: class labels (of ``classes_`` for an estimator,
        indices for a bare module). ``None`` explains the predicted class.
    layer : str or None, default=None
        Name of the electrode-resolving submodule; ``None`` uses ``module.evidence``.
    kind : {"grid", "channels"} or None, default=None
        How the layer's output maps to electrodes; ``None`` uses ``module.evidence``.
    cells : array of int, shape (n_electrodes, 2), or None, default=None
        Grid cell of each electrode for ``kind="grid"``; ``None`` takes the 32 DEAP
        electrodes in DEAP order.
    guided : bool, default=False
        Multiply by the guided-backpropagation saliency of the input.
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
    gradcam_from_activations : The differentiable core used while training.

    Examples
    --------
    >>> evidence = guided_gradcam(net, X_grid)  # doctest: +SKIP
    >>> evidence.shape  # doctest: +SKIP
    (n_samples, 32)
    """
    net = _unwrap(module)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    param = next(net.parameters(), None)
    home = param.device if param is not None else torch.device("cpu")
    device = home if device is None else torch.device(device)
    if not _same_device(device, home):
        # Compute on a copy: the caller's network stays where it is.
        net = copy.deepcopy(net).to(device)
    _, kind, submodule = resolve_evidence_layer(net, layer, kind)
    X = torch.as_tensor(X) if not isinstance(X, torch.Tensor) else X
    if X.dim() < 3:
        raise ValueError(
            f"X must have shape (n_samples, ...) with 3 or 4 axes; got {tuple(X.shape)}."
        )
    if X.is_floating_point() and not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values.")
    fitted_shape = getattr(module, "input_shape_", None)
    if fitted_shape is not None and tuple(X.shape[1:]) != tuple(fitted_shape):
        raise ValueError(
            f"X has samples of shape {tuple(X.shape[1:])}; the estimator was fitted on samples "
            f"of shape {tuple(fitted_shape)} (the number of channels or the sample shape "
            "differs)."
        )
    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    targets = _class_indices(module, y, X.shape[0])

    was_training = net.training
    net.eval()
    chunks = []
    try:
        for start in range(0, X.shape[0], batch_size):
            # A fresh leaf that requires grad: the graph exists even for frozen weights.
            batch = X[start:start + batch_size].detach().to(device=device, dtype=dtype)
            batch.requires_grad_(True)
            target = (
                None if targets is None
                else torch.as_tensor(targets[start:start + batch_size], device=device)
            )
            guide = GuidedBackprop(net) if guided else contextlib.nullcontext()
            with torch.enable_grad(), ActivationCapture(submodule) as capture, guide:
                logits = net(batch)
                if target is None:
                    target = logits.detach().argmax(dim=1)
                evidence = gradcam_from_activations(
                    logits, capture.get(), target, kind, cells, create_graph=False
                )
                if guided:
                    evidence = evidence * guided_saliency(
                        logits, batch, target, guide, kind, cells
                    )
            chunks.append(evidence.detach().cpu())
    finally:
        net.train(was_training)
    if not chunks:
        raise ValueError("X has no samples.")
    return torch.cat(chunks).numpy()
