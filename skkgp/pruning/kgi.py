"""Knowledge-guided importance: shed the filters that look where knowledge says nothing is.

Filters of the evidence layer (the electrode-resolving layer of the network, see
:class:`skkgp.models.EvidenceSpec`) are ranked by their L1 norm (as LFP) discounted by
the share of their Grad-CAM contribution that falls outside the knowledge region.
With ``A_k`` the evidence layer's activations for the samples ``b`` of a batch of
training data, ``a_k`` the mean gradient of the true class's logit over ``A_k``
(Grad-CAM's filter weight), ``c_bke`` the term ``a_k A_k`` reduced to electrode
``e`` (:func:`skkgp.knowledge.evidence.filter_contributions`) and ``m_e = 1`` for the
region's electrodes:

.. math::

   o_k = \\frac{\\sum_b \\sum_e (1 - m_e) |c_{bke}|}{\\sum_b \\sum_e |c_{bke}|},
   \\qquad s_k = \\lVert W_k \\rVert_1 \\, (1 - \\lambda\\, o_k)

(``o_k = 1`` for a filter that contributes nothing), with ``lambda =``
:data:`KNOWLEDGE_WEIGHT` ``= 0.5``: a filter whose contribution lies entirely outside
the region counts as much as one of half its norm that looks only inside. The
channels with the smallest ``s_k`` go. Units after the evidence layer have no
electrode axis to compare with the region: they are ranked by their L1 norms alone,
exactly as LFP ranks them.

The batch is a :class:`~skkgp.pruning.TrainingBatch` with a ``region_mask`` (and, for
grid inputs, the electrodes' ``cells``); :class:`~skkgp.KnowledgeGuidedPruner`
passes up to 256 training samples and its region.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from skkgp._modes import eval_mode
from skkgp.pruning.base import TrainingBatch
from skkgp.pruning.structured import StructuredPruning, filter_norms
from skkgp.pruning.units import ChannelUnit, UnitGraph

__all__ = ["KNOWLEDGE_WEIGHT", "KnowledgeGuidedImportance", "evidence_unit", "outside_shares"]

#: ``lambda``: how much looking outside the region discounts a filter's norm.
KNOWLEDGE_WEIGHT = 0.5

# Samples per forward pass while collecting contributions.
_CHUNK = 64


def outside_shares(
    module: nn.Module, batch: TrainingBatch, *, layer: str | None = None
) -> torch.Tensor:
    """``o_k``: the share of each evidence-layer filter's contribution outside the region.

    Parameters
    ----------
    module : torch.nn.Module
        The network (a zoo module, or one that declares ``evidence``); run in eval mode
        and put back in its mode afterwards.
    batch : TrainingBatch
        Samples, their classes (the explained logit) and the ``region_mask``.
    layer : str, optional
        Evidence layer; default ``module.evidence.layer``.

    Returns
    -------
    shares : Tensor of float64, shape (n_filters,)
        In [0, 1]; 1 for a filter that contributes nothing.
    """
    # Imported here: skkgp.knowledge imports the classifier, which imports skkgp.pruning.
    from skkgp.knowledge.evidence import (
        ActivationCapture,
        filter_contributions,
        resolve_evidence_layer,
    )

    _, axis, submodule = resolve_evidence_layer(module, layer)
    mask = torch.as_tensor(np.asarray(batch.region_mask, dtype=bool))
    inside = torch.zeros((), dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    with eval_mode(module):
        for start in range(0, len(batch.inputs), _CHUNK):
            inputs = batch.inputs[start:start + _CHUNK]
            targets = batch.targets[start:start + _CHUNK].to(inputs.device).long()
            with torch.enable_grad(), ActivationCapture(submodule, module) as capture:
                logits = module(inputs)
                terms = filter_contributions(
                    logits, capture.get(), targets, axis, batch.cells
                ).abs().double().cpu()
            if terms.shape[2] != mask.numel():
                raise ValueError(
                    f"region_mask has {mask.numel()} electrodes but the evidence layer "
                    f"resolves {terms.shape[2]}: pass one entry per electrode."
                )
            inside = inside + terms[:, :, mask].sum(dim=(0, 2))
            total = total + terms.sum(dim=(0, 2))
    shares = torch.ones_like(total)
    alive = total > 0
    shares[alive] = 1.0 - inside[alive] / total[alive]
    return shares.clamp(0.0, 1.0)


def evidence_unit(module: nn.Module, graph: UnitGraph) -> ChannelUnit | None:
    """The unit whose filters are the evidence layer's output channels, if any."""
    from skkgp.knowledge.evidence import resolve_evidence_layer

    layer, _, _ = resolve_evidence_layer(module)
    for unit in graph.units:
        if any(
            piece.layer == layer or piece.layer.startswith(layer + ".")
            for piece in unit.filters
        ):
            return unit
    return None


class KnowledgeGuidedImportance(StructuredPruning):
    """Remove the filters with small norms whose evidence lies outside the region."""

    name = "kgi"
    uses_batch = True
    batch_needs = ("region_mask",)

    def reason_not_applicable(self, module: nn.Module) -> str | None:
        if getattr(module, "evidence", None) is None:
            return (
                f"the knowledge-guided importance ('kgi') needs the network's evidence "
                f"layer, and {type(module).__name__} declares none (set its class "
                "attribute evidence = skkgp.models.EvidenceSpec(layer, electrode_axis))"
            )
        return None

    def unit_scores(
        self, module: nn.Module, graph: UnitGraph, batch: TrainingBatch | None
    ) -> dict[str, torch.Tensor]:
        scores = {unit.name: filter_norms(module, unit, p=1) for unit in graph.units}
        unit = evidence_unit(module, graph)
        if unit is not None:
            shares = outside_shares(module, batch)
            if shares.numel() != unit.n_channels:
                raise ValueError(
                    f"the evidence layer outputs {shares.numel()} channels but its unit "
                    f"{unit.name!r} has {unit.n_channels}: the knowledge-guided importance "
                    "needs an evidence layer whose channels are the unit's filters."
                )
            scores[unit.name] = scores[unit.name] * (1.0 - KNOWLEDGE_WEIGHT * shares)
        return scores
