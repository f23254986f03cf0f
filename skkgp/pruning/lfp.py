"""LFP: L1-norm filter pruning (Li et al. 2017).

Each unit's filters are ranked by the L1 norm of their weights (a unit whose channels
come from several parallel convs, like TSCeption's temporal branches, by the L1 norm
of all of a channel's filters) and the fraction ``ratio`` with the smallest norms is
removed physically from every prunable unit. Norms are taken from the unpruned
network (the paper's "independent" strategy).

References
----------
.. [1] Li, H., Kadav, A., Durdanovic, I., Samet, H., & Graf, H. P. (2017). Pruning
   filters for efficient ConvNets. ICLR.
"""

from __future__ import annotations

import torch
from torch import nn

from skkgp.pruning.structured import StructuredPruning, filter_norms
from skkgp.pruning.units import ChannelUnit

__all__ = ["LFP"]


class LFP(StructuredPruning):
    """L1-norm filter pruning: remove the filters with the smallest L1 norms."""

    name = "lfp"

    def scores(self, module: nn.Module, unit: ChannelUnit) -> torch.Tensor:
        return filter_norms(module, unit, p=1)
