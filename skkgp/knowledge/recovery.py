"""Knowledge-guided training: an :class:`~skkgp.EEGClassifier` whose training loss adds
the region-wise loss and the evidence-based sample weights of Rao & Zhong (2023).

Each training step runs one forward pass, keeps the activations of the evidence layer
(or the input) from that pass, computes the evidence of the true class from them
(Grad-CAM, HiResCAM or input x gradient; differentiable when the region-wise loss is on),
and minimises
``mean_b[(1 - beta + beta * w_b) * CE_b] + alpha * L_region`` (:mod:`skkgp.knowledge.losses`).
Validation and prediction use the plain cross-entropy.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from skorch.callbacks import PassthroughScoring
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from skkgp._training import uncompiled
from skkgp.classifier import EEGClassifier
from skkgp.knowledge._autograd import fast_double_backward
from skkgp.knowledge._cells import CheckedCells
from skkgp._validation import Options
from skkgp.knowledge._pooled import ConsumerCapture
from skkgp.knowledge.evidence import (
    ELECTRODE_AXES,
    EVIDENCE_KINDS,
    ActivationCapture,
    GuidedBackprop,
    check_cells,
    evidence_from_activations,
    guided_saliency,
    resolve_evidence,
)
from skkgp.knowledge.losses import (
    ESTIMATOR_REGION_LOSS,
    REGION_WEIGHT,
    SAMPLE_WEIGHTING,
    knowledge_guided_terms,
    resolve_region_loss,
)

__all__ = ["KnowledgeGuidedClassifier"]


class KnowledgeGuidedClassifier(EEGClassifier):
    """EEG classifier trained with knowledge-guided losses on its evidence maps.

    While training, the loss of a batch is

    ``L = mean_b[(1 - beta + beta * w_b) * CE_b] + alpha * L_region``

    with ``alpha = region_weight``, ``beta = sample_weighting``, ``L_region = mean_b(1 -
    r_b)``, ``w_b = sg(r_b) / mean_b sg(r_b)`` and ``r_b`` the share of sample ``b``'s
    normalised evidence that falls on the electrodes of ``region_mask``. The evidence
    (``evidence``: Grad-CAM, HiResCAM or input x gradient, see
    :mod:`skkgp.knowledge.evidence`) explains the true class, on the network's
    electrode-resolving layer or its input, taken from the same forward pass that gave
    the prediction (one forward pass: dropout masks and BatchNorm statistics are those of
    the prediction), and it is differentiated exactly (double backward,
    ``create_graph``) when ``region_weight > 0``. Validation and prediction use the
    plain cross-entropy.

    With ``region_weight=0`` and ``sample_weighting=0`` no evidence is computed and the
    training is exactly that of :class:`~skkgp.EEGClassifier` (same ``random_state``,
    same weights).

    A knowledge-guided step costs about twice a plain one (the exact gradient of the
    evidence needs a second backward pass through the layers above the evidence layer;
    :doc:`/user_guide/performance` has the figures). With ``compile=True`` these
    steps run the network uncompiled, since ``torch.compile`` has no double backward;
    validation and prediction use the compiled network.

    Parameters
    ----------
    module : str, type or torch.nn.Module, default="ccnn"
        As in :class:`~skkgp.EEGClassifier`; a module instance (a pruned network, say)
        is trained as given.
    region_mask : array-like of bool, shape (n_electrodes,), or None, default=None
        Electrodes of the knowledge region, in the order of the evidence (the channels of
        raw inputs; the electrodes of ``cells`` for grid inputs). Required unless both
        weights are 0. :func:`skkgp.layout.region_mask` makes one from a region name.
    region_weight : float >= 0, default=1.0
        ``alpha``, weight of the region-wise loss.
    sample_weighting : float in [0, 1], default=1.0
        ``beta``, how much the evidence-based sample weights replace uniform ones.
    region_loss : {"auto", "literal", "dead_aware", "straight_through"}, default="auto"
        How the region-wise loss treats evidence the ReLU zeroed
        (:func:`skkgp.knowledge.losses.region_loss`): ``"auto"``, the variant measured to
        move each evidence kind (:func:`skkgp.knowledge.losses.resolve_region_loss`:
        ``"straight_through"`` for Grad-CAM and HiResCAM, ``"dead_aware"`` for input x
        gradient); ``"literal"``, the formulas as
        written (all-zero evidence takes the uniform share, no gradient behind the
        ReLU); ``"dead_aware"``, all-zero evidence counts as the worst share and gets a
        gradient back; ``"straight_through"``, that and a gradient through the ReLU on
        the region's electrodes of every sample.
    guided : bool, default=False
        Multiply the Grad-CAM evidence by the guided-backpropagation saliency of the
        input (a second backward pass through the whole network per batch). The
        saliency is a weight without gradient.
    evidence : {"auto", "gradcam", "hirescam", "input_x_gradient"}, default="auto"
        The evidence the loss terms see. ``"gradcam"``: the paper's Grad-CAM, one pooled
        weight per filter of the evidence layer. ``"hirescam"``: element-wise gradient x
        activation on that layer, summed over filters (keeps where in the layer the
        gradient flows). ``"input_x_gradient"``: input x gradient summed over each
        electrode's values (needs no layer). ``"auto"``: the kind the zoo model declares
        (Grad-CAM for CCNN and FBCCNN; see :mod:`skkgp.knowledge.evidence` for EEGNet and
        TSCeption and why), Grad-CAM for other modules.
    evidence_layer : str or None, default=None
        Name of the electrode-resolving submodule; ``None`` uses ``module.evidence``
        (declared by every zoo model).
    electrode_axis : {"grid", "channels"} or None, default=None
        How that layer's output (or the input, for ``"input_x_gradient"``) maps to
        electrodes; ``None`` uses ``module.evidence``.
    cells : array-like of int, shape (n_electrodes, 2), or None, default=None
        ``(row, col)`` grid cell of each electrode for ``electrode_axis="grid"``;
        ``None`` takes the 32 DEAP electrodes in DEAP order.
    **kwargs
        Any :class:`~skkgp.EEGClassifier` parameter (``max_epochs``, ``lr``,
        ``random_state``...).

    Attributes
    ----------
    region_mask_ : ndarray of bool, shape (n_electrodes,) or None
        The validated region mask (``None`` when both weights are 0 and no mask is given).
    evidence_ : str
        The evidence kind used (``"auto"`` resolved).
    region_loss_ : str
        The region-wise loss variant used (``"auto"`` resolved).
    evidence_layer_ : str or None
        The evidence layer used (``None`` for ``"input_x_gradient"``).
    electrode_axis_ : str
        ``"grid"`` or ``"channels"``.
    cells_ : ndarray of int, shape (n_electrodes, 2), or None
        Grid cells of the electrodes (grid evidence only).
    history_ : skorch.History
        Besides ``train_loss``, ``train_region_share``: the mean share of the training
        evidence on the region in each epoch, and ``train_zero_evidence``: the fraction
        of training samples whose evidence is all zero (both recorded while the knowledge
        terms are on).

    Notes
    -----
    With ``region_loss="dead_aware"`` or ``"straight_through"``, a sample whose evidence
    is all zero (every value of the signed map below 0) counts as ``r_b = 0`` in the
    region-wise loss, not as the uniform share of the literal normalisation, and gets a
    gradient that revives it. With the literal formulas, on CCNN (layer ``conv1``,
    region ``"prefrontal"``) the recovery drove the evidence of every held-out window
    to zero (3 of 3 seeds; see :func:`skkgp.knowledge.losses.region_loss`). The sample
    weights and the recorded ``train_region_share`` keep the uniform fallback.

    See Also
    --------
    skkgp.KnowledgeGuidedPruner : prunes a fitted network and recovers it with this class.
    skkgp.knowledge.evidence.guided_gradcam : the same evidence, for analysis.
    skkgp.knowledge.losses : the loss terms.

    References
    ----------
    .. [1] Rao, & Zhong (2023). Knowledge-guided network pruning for EEG-based emotion
       recognition. IEEE BIBM.

    Examples
    --------
    >>> import numpy as np
    >>> from skkgp import layout
    >>> from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((32, 4, 9, 9)).astype("float32")
    >>> y = np.arange(32) % 2
    >>> mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    >>> clf = KnowledgeGuidedClassifier("ccnn", region_mask=mask, max_epochs=1,
    ...                                 random_state=0).fit(X, y)
    >>> bool(0.0 <= clf.history_[-1, "train_region_share"] <= 1.0)
    True
    """

    def __init__(
        self,
        module="ccnn",
        *,
        region_mask=None,
        region_weight=1.0,
        sample_weighting=1.0,
        region_loss="auto",
        guided=False,
        evidence="auto",
        evidence_layer=None,
        electrode_axis=None,
        cells=None,
        **kwargs,
    ):
        super().__init__(module, **kwargs)
        self.region_mask = region_mask
        self.region_weight = region_weight
        self.sample_weighting = sample_weighting
        self.region_loss = region_loss
        self.guided = guided
        self.evidence = evidence
        self.evidence_layer = evidence_layer
        self.electrode_axis = electrode_axis
        self.cells = cells

    _parameter_constraints: dict = {
        **EEGClassifier._parameter_constraints,
        "region_weight": [REGION_WEIGHT],
        "sample_weighting": [SAMPLE_WEIGHTING],
        "region_loss": [ESTIMATOR_REGION_LOSS],
        "guided": ["boolean"],
        "evidence": [Options({"auto", *EVIDENCE_KINDS})],
        "electrode_axis": [Options(ELECTRODE_AXES), None],
    }

    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        names = [name for name, _ in callbacks]
        position = names.index("print_log") if "print_log" in names else len(callbacks)
        share = PassthroughScoring(name="train_region_share", lower_is_better=False,
                                   on_train=True)
        callbacks.insert(position, ("train_region_share", share))
        zero = PassthroughScoring(name="train_zero_evidence", lower_is_better=True,
                                  on_train=True)
        callbacks.insert(position + 1, ("train_zero_evidence", zero))
        return callbacks

    # ------------------------------------------------------------------ validation
    def _knowledge_on(self) -> bool:
        return self._weights() != (0.0, 0.0)

    def _weights(self) -> tuple[float, float]:
        # Python floats: a grid search's numpy scalars would make the flags derived from
        # them numpy booleans, which torch refuses as create_graph.
        return float(self.region_weight), float(self.sample_weighting)

    def _knowledge_setup(self) -> dict:
        """The evidence kind, layer and electrode axis, the grid cells and the region mask,
        checked against the built network and the input shapes (nothing is set here)."""
        input_shape = getattr(self, "input_shape_", None)
        kind, layer, axis, _ = resolve_evidence(
            uncompiled(self.module_), self.evidence, self.evidence_layer, self.electrode_axis,
            None if input_shape is None else len(input_shape) + 1,
        )
        cells = None
        if axis == "grid":
            cells = check_cells(self.cells, getattr(self, "grid_size_", None))
        setup = {"evidence_": kind, "evidence_layer_": layer, "electrode_axis_": axis,
                 "cells_": cells, "region_mask_": None,
                 "region_loss_": resolve_region_loss(self.region_loss, kind)}
        if self.region_mask is None:
            if self._knowledge_on():
                raise ValueError(
                    f"region_mask is None but region_weight={self.region_weight!r} and "
                    f"sample_weighting={self.sample_weighting!r}: pass a boolean mask over the "
                    "electrodes (skkgp.layout.region_mask makes one), or set both weights to 0."
                )
            return setup
        mask = np.asarray(self.region_mask)
        if mask.ndim != 1 or (mask.dtype != bool and not np.isin(mask, (0, 1)).all()):
            raise ValueError(
                f"region_mask must be a 1-D boolean array over electrodes; got {mask!r}."
            )
        mask = mask.astype(bool)
        if not mask.any():
            raise ValueError("region_mask selects no electrode: the region-wise loss would be "
                             "constant. Select at least one electrode.")
        if cells is not None and len(mask) != len(cells):
            raise ValueError(
                f"region_mask has {len(mask)} entries but there are {len(cells)} "
                "electrodes (rows of cells): give one entry per electrode."
            )
        if axis == "channels" and getattr(self, "n_chans_", None) not in (None, len(mask)):
            raise ValueError(
                f"region_mask has {len(mask)} entries but X has {self.n_chans_} channels: give "
                "one entry per channel."
            )
        setup["region_mask_"] = mask
        return setup

    def _graph_settings(self) -> tuple:
        # Read at every step (a callback may ramp them): a CUDA graph bakes them in.
        return (*super()._graph_settings(), self.region_weight, self.sample_weighting,
                self.guided)

    # ------------------------------------------------------------------ skorch hooks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Validate the knowledge parameters and place the mask and cells on the device."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.__dict__.update(self._knowledge_setup())
        device = self.device
        self._knowledge_tensors_ = {
            # In the evidence's usual dtype, so that the loss need not convert it each step.
            "mask": None if self.region_mask_ is None
            else torch.as_tensor(self.region_mask_, dtype=torch.float32, device=device),
            # Checked by _knowledge_setup: the steps index with them unchecked.
            "cells": None if self.cells_ is None
            else CheckedCells(torch.as_tensor(self.cells_, device=device)),
        }

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Drop the device copies of the mask and cells."""
        self.__dict__.pop("_knowledge_tensors_", None)
        super().on_train_end(net, X=X, y=y, **kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_knowledge_tensors_", None)
        return state

    def _per_sample_loss(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        criterion = uncompiled(self.criterion_)
        if not hasattr(criterion, "reduction"):
            raise TypeError(
                f"The knowledge-guided loss needs a per-sample criterion; "
                f"{type(criterion).__name__} has no 'reduction' attribute to set to 'none'."
            )
        reduction = criterion.reduction
        criterion.reduction = "none"
        try:
            losses = criterion(y_pred, y_true)
        finally:
            criterion.reduction = reduction
        if losses.dim() != 1:
            raise ValueError(
                f"The criterion gave per-sample losses of shape {tuple(losses.shape)}; "
                "expected (n_samples,)."
            )
        return losses

    def train_step_single(self, batch, **fit_params):
        """One training step: forward, knowledge-guided loss, one backward pass.

        Parameters
        ----------
        batch : tuple of torch.Tensor
            ``(X_batch, y_batch)``, ``y_batch`` holding encoded class indices.
        **fit_params : dict
            Passed to the module's ``forward``.

        Returns
        -------
        step : dict
            ``{"loss": loss, "y_pred": logits}``.
        """
        if not self._knowledge_on():
            # Exactly the plain cross-entropy step: no hook, no evidence.
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if getattr(self, "_knowledge_tensors_", None) is None:  # a step outside fit
            self.on_train_begin(self)
        # torch.compile has no double backward: these steps run the network uncompiled.
        module = uncompiled(self.module_)
        from_input = self.evidence_layer_ is None  # input x gradient
        guided = bool(self.guided)
        if guided or from_input:
            Xi = to_tensor(Xi, device=self.device).detach().requires_grad_(True)
        guide = GuidedBackprop(module) if guided else contextlib.nullcontext()
        capture = (contextlib.nullcontext() if from_input
                   else ActivationCapture(module.get_submodule(self.evidence_layer_), module))
        # Pooled Grad-CAM's weights can skip the backward of the layer's consumer
        # (skkgp.knowledge._pooled); the other kinds need the whole gradient of A.
        pooled = (ConsumerCapture(module, module.get_submodule(self.evidence_layer_))
                  if self.evidence_ == "gradcam" and not from_input
                  else contextlib.nullcontext())
        differentiate = self._weights()[0] != 0
        with contextlib.ExitStack() as stack:
            if differentiate:
                stack.enter_context(fast_double_backward(module))
            with capture, guide, pooled:
                y_pred = self._infer_on(module, Xi, **fit_params)
            source = Xi if from_input else capture.get()
            consumer = pooled.plan(y_pred) if isinstance(pooled, ConsumerCapture) else None
            terms = self._knowledge_loss(Xi, yi, y_pred, source, guide, differentiate, consumer)
            terms.loss.backward()
        self._record_batch_value("train_region_share", terms.share.mean())
        self._record_batch_value("train_zero_evidence",
                                 torch.mean(terms.zero, dtype=torch.float64))
        return {"loss": terms.loss, "y_pred": y_pred}

    def _knowledge_loss(self, Xi, yi, y_pred, source, guide, differentiate, consumer=None):
        """The loss terms of one batch from its forward pass
        (:class:`~skkgp.knowledge.losses.KnowledgeTerms`)."""
        mask, cells = self._knowledge_tensors_["mask"], self._knowledge_tensors_["cells"]
        y_true = to_tensor(yi, device=self.device)
        ce = self._per_sample_loss(y_pred, y_true)
        evidence, scores = evidence_from_activations(
            y_pred, source, y_true, self.electrode_axis_, cells, evidence=self.evidence_,
            # The sample weights alone are stop-gradient: no graph needed then.
            create_graph=differentiate, return_scores=True, consumer=consumer,
        )
        if self.guided:
            saliency = guided_saliency(y_pred, Xi, y_true, guide, self.electrode_axis_, cells)
            evidence, scores = evidence * saliency, scores * saliency
        if evidence.shape[1] != mask.shape[0]:
            raise ValueError(
                f"region_mask has {mask.shape[0]} entries but the {self.evidence_} evidence "
                f"resolves {evidence.shape[1]} electrodes."
            )
        # The signed scores give all-zero evidence a gradient back (skkgp.knowledge.losses.region_loss).
        region_weight, sample_weighting = self._weights()
        return knowledge_guided_terms(ce, evidence, mask, region_weight,
                                      sample_weighting, scores=scores,
                                      variant=self.region_loss_)
