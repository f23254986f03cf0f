"""SFP: soft filter pruning (He et al. 2018), its hard final step.

While the network trains, the :class:`~skkgp.pruning.SoftFilterPruning` callback
zeroes, at every epoch end, the ``floor(n * ratio)`` filters with the smallest L2
norms of each unit of ``n`` filters (He et al.'s rule, and Rao & Zhong's: at ratio
0.1 a CCNN loses 6/12/25/6 of its 64/128/256/64 filters, where LFP's
``floor(n * (1 - ratio))`` kept loses 7/13/26/7); zeroed filters keep training and
may grow back. This final step removes physically the filters with the smallest L2
norms at the same ratio: after the callback's last zeroing those are exactly the
zeroed ones (their channels output zero), so removing them does not change the
network's output.

The paper counts the soft-pruned network, its zeroed filters still in place
(:meth:`SFP.soft_network`), not the smaller one this step leaves.

References
----------
.. [1] He, Y., Kang, G., Dong, X., Fu, Y., & Yang, Y. (2018). Soft filter pruning for
   accelerating deep convolutional neural networks. IJCAI.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

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

    def kept(self, n_channels: int, ratio: float, round_to: int | None = None) -> int:
        """``n_channels - floor(n_channels * ratio)``, at least one, rounded up to ``round_to``."""
        # The epsilon keeps 10 * 0.3 = 3.0000000000000004 at 3 and 100 * 0.29 at 29.
        kept = max(1, n_channels - math.floor(n_channels * ratio + 1e-9))
        if round_to:
            kept = round_to * math.ceil(kept / round_to)
        return min(n_channels, kept)

    def soft_network(
        self,
        module: nn.Module,
        ratio: float,
        example_inputs,
        *,
        ignored_layers: Sequence[nn.Module],
        global_pruning: bool,
        round_to: int | None,
    ) -> nn.Module:
        """A copy of ``module`` with the filters the hard step removes set to zero.

        Only the filters' conv weights are zeroed, as the authors' soft step does: the
        network the paper counts for SFP (its zero conv weights are left out of the
        parameters and FLOPs). On a network the soft step has already zeroed, the copy
        equals it.
        """
        graph, removed = self.plan(
            module, ratio, example_inputs, ignored_layers=ignored_layers,
            global_pruning=global_pruning, round_to=round_to,
        )
        soft = copy.deepcopy(module)
        modules = dict(soft.named_modules())
        with torch.no_grad():
            for unit in graph.units:
                chosen = set(removed.get(unit.name, ()))
                for piece in unit.filters:
                    rows = [i for i, root in zip(piece.index, piece.root_index, strict=True)
                            if root in chosen]
                    modules[piece.layer].weight[rows] = 0
        return soft
