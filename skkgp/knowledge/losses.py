"""The knowledge-guided loss terms of Rao & Zhong (2023): region share, region-wise loss,
evidence-based sample weights, and the total recovery loss.

For a batch, the evidence ``E_b(e) >= 0`` of sample ``b`` on electrode ``e`` is
normalised to ``sum_e E_b(e) = 1`` (uniform where it is all zero). With ``m`` the mask
of the knowledge region, ``alpha = region_weight`` and ``beta = sample_weighting``:

- region share ``r_b = sum_e m_e E_b(e)``;
- region-wise loss ``L_region = mean_b (1 - r_b)``;
- sample weights ``w_b = sg(r_b) / mean_b sg(r_b)`` (``sg``: stop-gradient; all ones
  where the mean is 0);
- total loss ``L = mean_b[(1 - beta + beta * w_b) * CE_b] + alpha * L_region``.

The region-wise loss comes in three variants (``variant`` of :func:`region_loss` and
:func:`knowledge_guided_loss`; ``region_loss`` of the estimators), which differ only in
samples whose evidence is all zero and in the gradient behind the evidence's ReLU:

- ``"literal"``: the formulas as written. All-zero evidence takes the uniform share and
  has no gradient; an electrode whose map is below zero has no gradient either.
- ``"dead_aware"``: an all-zero sample counts as ``r_b = 0`` (term 1, the worst), and
  gets a gradient that raises the region's signed map until its evidence is positive
  again; every other sample has the exact gradient of the formula.
- ``"straight_through"``: ``"dead_aware"``, and on the region's electrodes of every
  sample the gradient passes the ReLU (straight-through), so a region electrode below
  zero is raised too. The loss can then push every sample's share to 1.

The region share as a statistic, the normalised evidence and the sample weights keep the
uniform fallback in every variant.

Every function accepts torch tensors (and stays differentiable) or numpy arrays (and
returns numpy values where no input is a tensor). Evidence is checked to be finite and
non-negative, and a mask to be 0/1, tensors included, except in
:func:`knowledge_guided_terms`, the training step's function, which checks tensors' shapes
only: reading their values would make the step wait for the GPU.
"""

from __future__ import annotations

from numbers import Real
from typing import NamedTuple

import numpy as np
import torch

from skkgp._validation import Interval, Options, validate_params

__all__ = [
    "AUTO_REGION_LOSS",
    "DEFAULT_REGION_LOSS",
    "ESTIMATOR_REGION_LOSS",
    "REGION_LOSS",
    "REGION_LOSSES",
    "KnowledgeTerms",
    "knowledge_guided_loss",
    "knowledge_guided_terms",
    "normalize_evidence",
    "region_loss",
    "resolve_region_loss",
    "region_share",
    "sample_weights",
]

#: The range of ``alpha = region_weight`` wherever it is a parameter: the pruner, the
#: knowledge-guided classifier and :func:`knowledge_guided_loss`.
REGION_WEIGHT = Interval(Real, 0, None, closed="left")
#: The range of ``beta = sample_weighting``: a mixing weight between uniform and
#: evidence-based sample weights.
SAMPLE_WEIGHTING = Interval(Real, 0, 1, closed="both")


#: The variants of the region-wise loss (see the module docstring).
REGION_LOSSES = ("literal", "dead_aware", "straight_through")
#: The variant the estimators use unless told otherwise.
DEFAULT_REGION_LOSS = "straight_through"
#: The constraint on ``variant`` of the loss functions.
REGION_LOSS = Options(REGION_LOSSES)
#: ``region_loss="auto"`` of the estimators: per evidence kind, the variant measured to
#: move the held-out evidence (see :func:`resolve_region_loss`).
AUTO_REGION_LOSS = {
    "gradcam": "straight_through",
    "hirescam": "straight_through",
    "input_x_gradient": "dead_aware",
}
#: The constraint on the estimators' ``region_loss`` parameter.
ESTIMATOR_REGION_LOSS = Options(("auto", *REGION_LOSSES))


def resolve_region_loss(region_loss: str, evidence: str) -> str:
    """The variant an estimator's ``region_loss`` names for evidence of kind ``evidence``.

    ``"auto"`` takes ``"straight_through"`` for the rectified Grad-CAM maps, whose
    evidence dies behind the ReLU without its gradient (CCNN's held-out evidence was all
    zero in 96 % of windows with ``"literal"``), and ``"dead_aware"`` for input x gradient,
    whose evidence the straight-through gradient hardly moves (EEGNet, simulated data,
    8 seeds: held-out region share +0.29 [+0.25, +0.33] over the baseline with
    ``"dead_aware"``, +0.01 with ``"straight_through"``; the figures and commands are in
    the user guide's method page).

    Parameters
    ----------
    region_loss : {"auto", "literal", "dead_aware", "straight_through"}
    evidence : str
        The resolved evidence kind.

    Returns
    -------
    variant : str
        One of :data:`REGION_LOSSES`.
    """
    if region_loss != "auto":
        return region_loss
    return AUTO_REGION_LOSS.get(evidence, DEFAULT_REGION_LOSS)


def _check_evidence_values(array) -> None:
    """Refuse NaN, infinite and negative evidence (numpy array or tensor)."""
    if isinstance(array, torch.Tensor):
        array = array.detach()
        if not bool(torch.isfinite(array).all()):
            raise ValueError("evidence contains NaN or infinite values.")
        smallest = float(array.min()) if array.numel() else 0.0
    else:
        if not np.isfinite(array).all():
            raise ValueError("evidence contains NaN or infinite values.")
        smallest = float(array.min()) if array.size else 0.0
    if smallest < 0:
        raise ValueError(f"evidence must be non-negative; its smallest value is {smallest}.")


def _as_tensor(evidence, check_values: bool = True) -> tuple[torch.Tensor, bool]:
    """Evidence as a float tensor, and whether the caller gave numpy (wants numpy back).

    ``check_values=False`` leaves a tensor's values unchecked (no read back to the host).
    """
    if isinstance(evidence, torch.Tensor):
        tensor, is_numpy = evidence, False
        if check_values:
            _check_evidence_values(tensor)
    else:
        try:
            array = np.asarray(evidence, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"evidence must be a numeric array of shape (n_samples, n_electrodes): {error}"
            ) from None
        _check_evidence_values(array)
        tensor, is_numpy = torch.from_numpy(array), True
    if tensor.dim() != 2:
        raise ValueError(
            f"evidence must have shape (n_samples, n_electrodes); got {tuple(tensor.shape)}."
        )
    if tensor.shape[0] == 0:
        raise ValueError(f"evidence has no samples (shape {tuple(tensor.shape)}).")
    if tensor.shape[1] == 0:
        raise ValueError(
            f"evidence has no electrodes (shape {tuple(tensor.shape)}): a region share needs "
            "at least one electrode."
        )
    if not tensor.is_floating_point():
        tensor = tensor.double()
    return tensor, is_numpy


def _as_mask(mask, evidence: torch.Tensor, check_values: bool = True) -> torch.Tensor:
    if isinstance(mask, torch.Tensor):
        mask_t = mask
        if check_values and mask_t.dtype != torch.bool and not bool(
            ((mask_t == 0) | (mask_t == 1)).all()
        ):
            raise ValueError(
                f"mask must be boolean (or 0/1) over electrodes; got {mask_t.tolist()!r}."
            )
    else:
        mask_np = np.asarray(mask)
        if mask_np.dtype != bool and not np.isin(mask_np, (0, 1)).all():
            raise ValueError(f"mask must be boolean (or 0/1) over electrodes; got {mask_np!r}.")
        mask_t = torch.from_numpy(mask_np.astype(bool))
    if mask_t.shape != (evidence.shape[1],):
        raise ValueError(
            f"mask must have one entry per electrode, shape ({evidence.shape[1]},); got "
            f"{tuple(mask_t.shape)}."
        )
    return mask_t.to(device=evidence.device, dtype=evidence.dtype)


def _numpy_out(evidence_is_numpy: bool, *others) -> bool:
    """Whether to return numpy: the evidence was not a tensor, nor any other input."""
    return evidence_is_numpy and not any(isinstance(other, torch.Tensor) for other in others)


def _out(value: torch.Tensor, is_numpy: bool):
    if not is_numpy:
        return value
    value = value.detach().numpy()
    return float(value) if value.ndim == 0 else value


def _normalize(evidence: torch.Tensor) -> torch.Tensor:
    total = evidence.sum(dim=1, keepdim=True)
    positive = total > 0
    # The safe denominator keeps the gradient finite where the evidence is all zero.
    safe_total = torch.where(positive, total, 1.0)
    return torch.where(positive, evidence / safe_total, 1.0 / evidence.shape[1])


def _region_share(evidence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _normalize(evidence) @ mask


def _loss_share(
    evidence: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor | None,
    variant: str = DEFAULT_REGION_LOSS,
) -> torch.Tensor:
    """The share the region-wise loss uses, by variant.

    ``"literal"``: ``r_b`` as :func:`region_share` gives it. Otherwise 0 for all-zero
    evidence, whose gradient, given the signed scores ``z`` (``evidence = ReLU(z)``
    before the reduction to electrodes), is that of ``sum_e m_e z_e / sg(sum_e |z_e|)``:
    the exact share's gradient ``(1 - r_b) / sum_e E_b(e)`` at ``r_b = 0`` with the
    scale ``sum_e |z_e|`` in place of the zero sum. ``"straight_through"`` also lets
    the gradient through the ReLU on the region's electrodes (the value is unchanged),
    so that a region electrode below zero is still raised.
    """
    if variant == "literal":
        return _region_share(evidence, mask)
    dead = evidence.sum(dim=1) <= 0
    if scores is None:
        return torch.where(dead, 0.0, _region_share(evidence, mask))
    scores = scores.to(evidence.dtype)
    passed = evidence
    if variant == "straight_through":
        # Value: the evidence; gradient on the region's electrodes: that of the scores.
        passed = evidence + mask * ((scores - evidence) - (scores - evidence).detach())
    share = _region_share(passed, mask)
    scale = scores.detach().abs().sum(dim=1)
    safe_scale = torch.where(scale > 0, scale, 1.0)
    surrogate = (scores @ mask) / safe_scale
    # Straight-through: the value is exactly 0, only the gradient is the surrogate's.
    return torch.where(dead, surrogate - surrogate.detach(), share)


def _as_scores(scores, evidence: torch.Tensor) -> torch.Tensor | None:
    if scores is None:
        return None
    if not isinstance(scores, torch.Tensor):
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    if scores.shape != evidence.shape:
        raise ValueError(
            f"scores must have the shape of the evidence, {tuple(evidence.shape)}; got "
            f"{tuple(scores.shape)}."
        )
    return scores.to(device=evidence.device)


def _sample_weights(share: torch.Tensor) -> torch.Tensor:
    share = share.detach()
    mean = share.mean()
    # No safe denominator: the weights are stop-gradient, and share / 0 is never selected.
    return torch.where(mean > 0, share / mean, 1.0)


def normalize_evidence(evidence):
    """Normalise evidence to sum 1 over electrodes (uniform where it is all zero).

    Parameters
    ----------
    evidence : torch.Tensor or array-like, shape (n_samples, n_electrodes)
        Non-negative evidence.

    Returns
    -------
    normalized : torch.Tensor or ndarray, shape (n_samples, n_electrodes)
    """
    tensor, is_numpy = _as_tensor(evidence)
    return _out(_normalize(tensor), is_numpy)


def region_share(evidence, mask):
    """Share ``r_b`` of each sample's normalised evidence that falls on the region.

    Parameters
    ----------
    evidence : torch.Tensor or array-like, shape (n_samples, n_electrodes)
        Non-negative evidence.
    mask : torch.Tensor or array-like of bool, shape (n_electrodes,)
        ``True`` for electrodes of the knowledge region.

    Returns
    -------
    share : torch.Tensor or ndarray, shape (n_samples,)
        Values in ``[0, 1]``.
    """
    tensor, is_numpy = _as_tensor(evidence)
    return _out(_region_share(tensor, _as_mask(mask, tensor)), _numpy_out(is_numpy, mask))


def region_loss(evidence, mask, scores=None, *, variant=DEFAULT_REGION_LOSS):
    """Region-wise loss ``L_region = mean_b (1 - r_b)``.

    Parameters
    ----------
    evidence, mask
        As in :func:`region_share`.
    scores : torch.Tensor or array-like, shape (n_samples, n_electrodes), or None
        The signed Grad-CAM map ``z = sum_k a_k A_k`` reduced to electrodes like the
        evidence, which is that of ``ReLU(z)`` (``return_scores=True`` of
        :func:`skkgp.knowledge.evidence.evidence_from_activations`). They change the gradient,
        never the value (see Notes); ``None`` leaves the ReLU's dead zone without one.
    variant : {"literal", "dead_aware", "straight_through"}, default="straight_through"
        How all-zero evidence and the ReLU's dead zone count (see Notes and the module
        docstring).

    Returns
    -------
    loss : torch.Tensor (scalar) or float
        A float where no input is a tensor.

    Notes
    -----
    For every sample whose evidence is not all zero, the term is ``1 - r_b`` in every
    variant. With ``"dead_aware"`` and ``"straight_through"`` a sample whose evidence is
    all zero (every map value below 0) counts as ``r_b = 0``, term 1, and not as the
    uniform share ``|region| / n_electrodes`` of :func:`region_share` (``"literal"``).
    With the uniform share, vanishing evidence
    scored better than evidence mostly outside the region, and, behind the ReLU, got no
    gradient to come back: on CCNN (evidence layer ``conv1``, 4 of 32 electrodes) the
    recovery drove the evidence of every window to zero within two epochs. Given
    ``scores``, such a sample's gradient is that of ``sum_e m_e z_e / sg(sum_e
    |z_e|)`` (its value stays 0): it raises the region's scores until the evidence
    there is positive again, at the scale of the exact share's gradient; and on the
    region's electrodes of the other samples the ReLU passes the gradient
    (straight-through), so that a region electrode below zero is raised too: the share
    of CCNN's windows with all-zero held-out evidence falls to none
    (:doc:`/user_guide/performance` has the figures and their command).
    """
    validate_params({"variant": [REGION_LOSS]}, {"variant": variant})
    tensor, is_numpy = _as_tensor(evidence)
    share = _loss_share(tensor, _as_mask(mask, tensor), _as_scores(scores, tensor), variant)
    return _out((1 - share).mean(), _numpy_out(is_numpy, mask, scores))


def sample_weights(evidence, mask):
    """Evidence-based sample weights ``w_b = sg(r_b) / mean_b sg(r_b)``.

    Parameters
    ----------
    evidence, mask
        As in :func:`region_share`.

    Returns
    -------
    weights : torch.Tensor or ndarray, shape (n_samples,)
        Mean 1 (all ones where every share is 0); no gradient flows through them.
    """
    tensor, is_numpy = _as_tensor(evidence)
    return _out(_sample_weights(_region_share(tensor, _as_mask(mask, tensor))),
                _numpy_out(is_numpy, mask))


def knowledge_guided_loss(ce_per_sample, evidence, mask, region_weight, sample_weighting,
                          scores=None, *, variant=DEFAULT_REGION_LOSS):
    """Total recovery loss ``mean_b[(1 - beta + beta * w_b) * CE_b] + alpha * L_region``.

    Parameters
    ----------
    ce_per_sample : torch.Tensor or array-like, shape (n_samples,)
        Cross-entropy of each sample (``reduction="none"``).
    evidence : torch.Tensor or array-like, shape (n_samples, n_electrodes)
        Non-negative evidence from the forward pass that gave ``ce_per_sample``.
    mask : torch.Tensor or array-like of bool, shape (n_electrodes,)
        ``True`` for electrodes of the knowledge region.
    region_weight : float >= 0
        ``alpha``, weight of the region-wise loss.
    sample_weighting : float in [0, 1]
        ``beta``, how much the evidence-based sample weights replace uniform ones.
    scores : torch.Tensor or array-like, shape (n_samples, n_electrodes), or None
        Signed Grad-CAM scores of the evidence, for the gradient of samples whose
        evidence is all zero (see :func:`region_loss`).
    variant : {"literal", "dead_aware", "straight_through"}, default="straight_through"
        The region-wise loss variant (see :func:`region_loss`).

    Returns
    -------
    loss : torch.Tensor (scalar) or float
        With ``region_weight=0`` and ``sample_weighting=0`` exactly ``mean_b CE_b``. A
        tensor, differentiable in every tensor input, where any input is a tensor (numpy
        evidence then joins ``ce_per_sample``'s device and dtype); a float otherwise.

    See Also
    --------
    knowledge_guided_terms : the same loss with the shares and all-zero samples it saw.

    Notes
    -----
    ``L_region`` is :func:`region_loss` (with ``variant``).
    The sample weights ``w_b`` keep the uniform share for such a sample (about weight 1
    when the mean share is near the uniform one): evidence that vanished says nothing
    for or against the knowledge, and a weight of 0 would drop those samples from the
    cross-entropy.
    """
    alpha, beta, ce, tensor, is_numpy = _loss_inputs(
        ce_per_sample, evidence, mask, scores, region_weight, sample_weighting, variant
    )
    mask_t = _as_mask(mask, tensor)
    if alpha == 0 and beta == 0:
        return _out(ce.mean(), is_numpy)
    return _terms(alpha, beta, ce, tensor, is_numpy, mask_t, scores, variant).loss


def _loss_inputs(ce_per_sample, evidence, mask, scores, region_weight, sample_weighting,
                 variant, check_values=True):
    """The checked weights, cross-entropies and evidence of a loss call, and whether to
    return numpy."""
    validate_params(
        {"region_weight": [REGION_WEIGHT], "sample_weighting": [SAMPLE_WEIGHTING],
         "variant": [REGION_LOSS]},
        {"region_weight": region_weight, "sample_weighting": sample_weighting,
         "variant": variant},
    )
    tensor, is_numpy = _as_tensor(evidence, check_values)
    if isinstance(ce_per_sample, torch.Tensor):
        ce = ce_per_sample
        if is_numpy and ce.is_floating_point():
            # Evidence from numpy: on the device and in the dtype of the cross-entropies.
            tensor = tensor.to(device=ce.device, dtype=ce.dtype)
    else:
        ce = torch.as_tensor(np.asarray(ce_per_sample, dtype=np.float64))
    if ce.shape != (tensor.shape[0],):
        raise ValueError(
            f"ce_per_sample must have shape ({tensor.shape[0]},), one value per sample of the "
            f"evidence; got {tuple(ce.shape)}."
        )
    return (float(region_weight), float(sample_weighting), ce, tensor,
            _numpy_out(is_numpy, ce_per_sample, mask, scores))


class KnowledgeTerms(NamedTuple):
    """What :func:`knowledge_guided_terms` returns.

    Attributes
    ----------
    loss : torch.Tensor (scalar) or float
        :func:`knowledge_guided_loss`.
    share : torch.Tensor or ndarray, shape (n_samples,)
        :func:`region_share` of each sample (up to rounding), without gradient. The loss's
        backward pass reads this tensor: modifying it in place before then is an error.
    zero : torch.Tensor or ndarray of bool, shape (n_samples,)
        Whether the sample's evidence is all zero.
    """

    loss: object
    share: object
    zero: object


def knowledge_guided_terms(ce_per_sample, evidence, mask, region_weight, sample_weighting,
                           scores=None, *, variant=DEFAULT_REGION_LOSS) -> KnowledgeTerms:
    """:func:`knowledge_guided_loss`, with the region shares and all-zero samples it saw.

    A training step records the mean share and the fraction of all-zero evidence of
    each batch; taking them from the loss's own pass over the evidence spares computing
    them again. The loss is computed with its gradient in closed form (about half the
    tensor operations of the composition); its value, gradient and second derivatives
    are those of :func:`knowledge_guided_loss`'s formula, up to rounding.

    Parameters
    ----------
    ce_per_sample, evidence, mask, region_weight, sample_weighting, scores, variant
        As in :func:`knowledge_guided_loss`.

    Returns
    -------
    terms : KnowledgeTerms
        ``(loss, share, zero)``; numpy and float where no input was a tensor.

    Notes
    -----
    Unlike :func:`knowledge_guided_loss`, this function checks the values of tensor
    evidence and a tensor mask not at all (numpy ones it does check), only their shapes:
    checking values would read them back to the host and make a training step on a GPU
    wait. A training step gives it the evidence of its own forward pass, non-negative by
    construction, and the mask it checked at the start of fitting.
    """
    alpha, beta, ce, tensor, is_numpy = _loss_inputs(
        ce_per_sample, evidence, mask, scores, region_weight, sample_weighting, variant,
        check_values=False,
    )
    return _terms(alpha, beta, ce, tensor, is_numpy, _as_mask(mask, tensor, False), scores,
                  variant)


def _terms(alpha, beta, ce, tensor, is_numpy, mask_t, scores, variant) -> KnowledgeTerms:
    scores_t = _as_scores(scores, tensor) if alpha != 0 else None
    loss, share, zero, *_ = _FusedKnowledgeLoss.apply(ce, tensor, scores_t, mask_t, alpha,
                                                      beta, variant)
    return KnowledgeTerms(_out(loss, is_numpy), _out(share, is_numpy), _out(zero, is_numpy))


class _FusedKnowledgeLoss(torch.autograd.Function):
    """:func:`knowledge_guided_loss` with its gradient in closed form.

    The same function of ``(ce, evidence, scores)`` as the composition of
    :func:`region_loss` and :func:`sample_weights` (:func:`_composed_loss`), with the same
    gradient up to rounding (the tests hold the two against each other), in under half
    the tensor operations: a training step's loss is many small operations on ``(n,
    n_electrodes)`` tensors, each a kernel launch on a GPU, where a step at a small batch
    waits for the host. With ``r_b = sum_e m_e E_be / T_b`` (``T_b = sum_e E_be > 0``)
    and ``g = -alpha / n``: ``dL/dE_be = g (m_e - r_b) / T_b`` on samples with evidence,
    0 on the others; under ``"straight_through"`` the region's part ``m_e dL/dE_be``
    goes to the scores instead; samples without evidence (variants other than
    ``"literal"``, with scores) get ``dL/dz_be = g m_e / sum_e |z_be|``; ``dL/dCE_b =
    (1 - beta + beta w_b) / n``. Differentiated again (``create_graph=True``), the
    backward pass differentiates the composition instead, so that second derivatives
    are those of the composition too.

    Outputs: the loss, the shares and the all-zero flags, and for the backward pass the
    evidence totals, the flags' complement and the cross-entropy weights (``None``
    without sample weights).
    """

    @staticmethod
    def forward(ce, evidence, scores, mask, alpha, beta, variant):
        total = evidence.sum(dim=1)
        alive = total > 0
        # All-zero evidence takes the uniform share |region| / n_electrodes, kept on the
        # device (reading it to the host would wait for the GPU). The division by a zero
        # total is never selected and never differentiated: no safe denominator.
        share = torch.where(alive, (evidence @ mask) / total, mask.mean())
        coefficient = None
        weighted = ce
        if beta != 0:
            coefficient = ((1 - beta) + beta * _sample_weights(share)).to(ce.dtype)
            weighted = coefficient * ce
        if alpha != 0:
            # Value of the region term: every variant but "literal" counts all-zero
            # evidence as share 0 (its gradient, if any, is the surrogate's).
            kept = share if variant == "literal" else torch.where(alive, share, 0.0)
            # mean_b(c_b CE_b) + alpha mean_b(1 - r_b) as one mean: two passes fewer.
            loss = torch.sub(weighted, kept, alpha=alpha).mean() + alpha
        else:
            loss = weighted.mean()
        return loss, share, ~alive, total, alive, coefficient

    @staticmethod
    def setup_context(ctx, inputs, output):
        ce, evidence, scores, mask, alpha, beta, variant = inputs
        _, share, zero, total, alive, coefficient = output
        ctx.set_materialize_grads(False)  # no zero tensors for the outputs besides the loss
        # One call: a second would replace the first's list.
        ctx.mark_non_differentiable(
            share, zero, total, alive, *(() if coefficient is None else (coefficient,))
        )
        ctx.save_for_backward(ce, evidence, scores, mask, share, total, alive, coefficient)
        ctx.alpha, ctx.beta, ctx.variant = alpha, beta, variant

    @staticmethod
    def backward(ctx, grad_loss, *_):
        ce, evidence, scores, mask, share, total, alive, coefficient = ctx.saved_tensors
        need_ce, need_evidence, need_scores = ctx.needs_input_grad[:3]
        none = (None,) * 4
        if grad_loss is None:  # only the shares or the flags were used
            return (None, None, None, *none)
        if torch.is_grad_enabled():
            return (*_composed_gradients(ctx, grad_loss, ce, evidence, scores, mask), *none)
        n = evidence.shape[0]
        grad_ce = None
        if need_ce:
            grad_ce = (grad_loss / n if coefficient is None
                       else coefficient * (grad_loss / n))
            grad_ce = grad_ce.expand(alive.shape) if grad_ce.dim() == 0 else grad_ce
        if ctx.alpha == 0 or not (need_evidence or need_scores):
            return (grad_ce, None, None, *none)
        g = grad_loss.to(evidence.dtype) * (-ctx.alpha / n)
        per_sample = torch.where(alive, g / total, 0.0)
        grad_shared = per_sample[:, None] * (mask - share[:, None])
        if scores is None or ctx.variant == "literal":
            return (grad_ce, grad_shared, None, *none)
        scale = torch.linalg.vector_norm(scores, 1, dim=1)  # sum_e |z_be|
        # sum_e |z_be| = 0: the surrogate's denominator is 1, as in region_loss.
        dead = torch.where(alive, 0.0, g / torch.where(scale > 0, scale, 1.0))[:, None]
        if ctx.variant == "straight_through":
            region_part = grad_shared * mask
            return (grad_ce, grad_shared - region_part,
                    torch.addcmul(region_part, dead, mask), *none)
        return (grad_ce, grad_shared, dead * mask, *none)


def _composed_loss(ce, evidence, scores, mask, alpha, beta, variant):
    """:func:`knowledge_guided_loss` as its definition: the public terms composed."""
    loss = ce.mean()
    if beta != 0:
        weights = _sample_weights(_region_share(evidence, mask)).to(ce.dtype)
        loss = (((1 - beta) + beta * weights) * ce).mean()
    if alpha != 0:
        loss = loss + alpha * (1 - _loss_share(evidence, mask, scores, variant)).mean()
    return loss


def _composed_gradients(ctx, grad_loss, ce, evidence, scores, mask):
    """The gradients of :func:`_composed_loss`, with their own graph (a double backward)."""
    wanted = [i for i, need in enumerate(ctx.needs_input_grad[:3]) if need]
    with torch.enable_grad():
        # Partial derivatives: through fresh aliases, so that where one input depends on
        # another (evidence = ReLU(scores)), the gradient of the one does not also count
        # the path through the other (the engine adds that path itself).
        inputs = tuple(None if t is None else t.view_as(t) for t in (ce, evidence, scores))
        loss = _composed_loss(*inputs, mask, ctx.alpha, ctx.beta, ctx.variant)
        grads = torch.autograd.grad(loss, [inputs[i] for i in wanted], grad_loss,
                                    create_graph=True, allow_unused=True)
    result = [None, None, None]
    for i, grad in zip(wanted, grads, strict=True):
        result[i] = grad
    return result
