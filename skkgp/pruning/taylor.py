"""First-order Taylor importance (Molchanov et al. 2019).

The loss change when a channel is removed is estimated to first order by
``|sum_w w * dL/dw|`` summed over its weights; skkgp uses torch-pruning's
:class:`~torch_pruning.pruner.importance.TaylorImportance`, which takes
``sum_w |w * dL/dw|`` over every layer of the channel's unit. The gradients are those
of the cross-entropy of a batch of training data (the ``batch`` of
:func:`skkgp.pruning.prune`, a :class:`~skkgp.pruning.TrainingBatch`; the
:class:`~skkgp.KnowledgeGuidedPruner` passes up to 256 samples of its training
data), computed in
evaluation mode (BatchNorm running statistics, no dropout) and dropped again
afterwards: the module's ``.grad`` fields are left as they were.

References
----------
.. [1] Molchanov, P., Mallya, A., Tyree, S., Frosio, I., & Kautz, J. (2019).
   Importance estimation for neural network pruning. CVPR.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch_pruning.pruner.importance import TaylorImportance

from skkgp._modes import eval_mode
from skkgp.pruning.base import TrainingBatch
from skkgp.pruning.criteria import GroupImportancePruning
from skkgp.pruning.units import UnitGraph

__all__ = ["Taylor", "loss_gradients"]


@contextlib.contextmanager
def loss_gradients(module: nn.Module, batch: TrainingBatch) -> Iterator[nn.Module]:
    """Fill the ``.grad`` of a module's parameters with those of a batch's loss.

    Inside the context, every parameter's ``.grad`` holds the gradient of the mean
    cross-entropy of ``batch`` in evaluation mode; on exit the previous ``.grad``
    values and the training mode come back.

    Parameters
    ----------
    module : torch.nn.Module
    batch : TrainingBatch
    """
    saved = [(p, p.grad) for p in module.parameters()]
    try:
        for p in module.parameters():
            p.grad = None
        with eval_mode(module):
            with torch.enable_grad():
                logits = module(batch.inputs)
                loss = nn.functional.cross_entropy(
                    logits, batch.targets.to(logits.device).long())
                loss.backward()
            yield module
    finally:
        for p, grad in saved:
            p.grad = grad


class Taylor(GroupImportancePruning):
    """Remove the channels whose removal changes the loss least, to first order."""

    name = "taylor"
    uses_batch = True

    def importance(self) -> TaylorImportance:
        return TaylorImportance(group_reduction="mean", normalizer=None)

    def unit_scores(
        self, module: nn.Module, graph: UnitGraph, batch: TrainingBatch | None
    ) -> dict[str, torch.Tensor]:
        with loss_gradients(module, batch):
            return super().unit_scores(module, graph, batch)
