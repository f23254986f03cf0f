"""LAMP: layer-adaptive magnitude-based pruning scores (Lee et al. 2021).

A channel's squared L2 norm (over every layer of its unit: filters, BatchNorm scales,
the consumers' input weights) is divided by the sum of the norms of the channels of
its unit that are not smaller than it (torch-pruning's
:class:`~torch_pruning.pruner.importance.LAMPImportance`). These scores are
comparable across layers, so LAMP ranks all channels together by default
(``global_pruning=True``): layers whose filters matter less lose more of them. Per
unit, LAMP ranks exactly as the norm does.

References
----------
.. [1] Lee, J., Park, S., Mo, S., Ahn, S., & Shin, J. (2021). Layer-adaptive sparsity
   for the magnitude-based pruning. ICLR.
"""

from __future__ import annotations

from torch_pruning.pruner.importance import LAMPImportance

from skkgp.pruning.criteria import GroupImportancePruning

__all__ = ["LAMP"]


class LAMP(GroupImportancePruning):
    """Remove the channels with the smallest layer-adaptive magnitude scores."""

    name = "lamp"
    default_global = True
    # LAMP's normalisation is what makes layers comparable: rank the scores as they are.
    normalize_global = False

    def importance(self) -> LAMPImportance:
        return LAMPImportance(p=2, group_reduction="mean")
