"""SFP: soft filter pruning (He et al. 2018), its hard final step.

While the network trains, the :class:`~skkgp.pruning.SoftFilterPruning` callback
zeroes, at every epoch end, the fraction ``ratio`` of each unit's filters with the
smallest L2 norms; zeroed filters keep training and may grow back. This final step
removes physically the filters with the smallest L2 norms at the same ratio: after
the callback's last zeroing those are exactly the zeroed ones (their channels
output zero), so removing them does not change the network's output.

References
----------
.. [1] He, Y., Kang, G., Dong, X., Fu, Y., & Yang, Y. (2018). Soft filter pruning for
   accelerating deep convolutional neural networks. IJCAI.
"""

from __future__ import annotations

import torch
from torch import nn

from skkgp.pruning.structured import StructuredPruning, filter_norms
from skkgp.pruning.units import ChannelUnit

__all__ = ["SFP"]


class SFP(StructuredPruning):
    """Soft filter pruning's hard step: remove the filters with the smallest L2 norms."""

    name = "sfp"

    def scores(self, module: nn.Module, unit: ChannelUnit) -> torch.Tensor:
        return filter_norms(module, unit, p=2)
