"""NSFP: network slimming (Liu et al. 2017).

The origin network is trained with an L1 penalty on its BatchNorm scales (the
:class:`~skkgp.pruning.NetworkSlimming` callback); then the channels whose BatchNorm
scale ``|gamma|`` falls below one threshold shared by the whole network are removed
physically. The threshold is the authors' (Liu et al.'s, and Rao & Zhong's code):
with the ``n`` scales of all prunable BatchNorm-scaled channels sorted in ascending
order, ``threshold = sorted[floor(n * ratio)]``, and a channel stays when ``|gamma| >=
threshold``. ``ratio`` is so the fraction of those channels removed, fewer where
scales tie with the threshold (they all stay). Unlike the authors' code, each unit
keeps at least its largest-scaled channel (a layer left without channels cannot
run). Units without a BatchNorm are left alone; a network without BatchNorm (CCNN)
cannot be slimmed. With ``global_pruning=False`` each unit loses
``n - floor(n * (1 - ratio))`` of its own channels instead.

References
----------
.. [1] Liu, Z., Li, J., Shen, Z., Huang, G., Yan, S., & Zhang, C. (2017). Learning
   efficient convolutional networks through network slimming. ICCV.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skkgp.pruning.structured import StructuredPruning, round_removals
from skkgp.pruning.units import ChannelUnit

__all__ = ["NSFP", "has_batchnorm"]


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` holds an affine BatchNorm layer."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for m in module.modules()
    )


class NSFP(StructuredPruning):
    """Network slimming: remove the channels with the smallest BatchNorm scales."""

    name = "nsfp"
    default_global = True
    # The L1 penalty makes raw scales comparable across layers: rank them as they are.
    normalize_global = False

    def reason_not_applicable(self, module: nn.Module) -> str | None:
        if has_batchnorm(module):
            return None
        return (
            f"network slimming ('nsfp') ranks channels by their BatchNorm scales, but "
            f"{type(module).__name__} has no (affine) BatchNorm layer"
        )

    def scores(self, module: nn.Module, unit: ChannelUnit) -> torch.Tensor | None:
        modules = dict(module.named_modules())
        norms = [p for p in unit.norms if getattr(modules[p.layer], "affine", False)]
        if not norms:
            return None
        total = torch.zeros(unit.n_channels, dtype=torch.float64)
        for piece in norms:
            gamma = modules[piece.layer].weight.detach()[list(piece.index)].abs().double().cpu()
            total.index_add_(0, torch.as_tensor(piece.root_index), gamma)
        return total

    def select(
        self,
        scores: dict[str, torch.Tensor],
        ratio: float,
        *,
        global_pruning: bool,
        round_to: int | None,
    ) -> dict[str, list[int]]:
        if not global_pruning or not scores:
            return super().select(
                scores, ratio, global_pruning=global_pruning, round_to=round_to
            )
        values = torch.sort(torch.cat([s.double() for s in scores.values()])).values
        # The epsilon keeps 10 * 0.3 = 3.0000000000000004 at 3 and 100 * 0.29 at 29.
        threshold = values[min(math.floor(values.numel() * ratio + 1e-9), values.numel() - 1)]
        removed = {}
        for name, unit_scores in scores.items():
            below = torch.nonzero(unit_scores.double() < threshold).flatten().tolist()
            if len(below) == len(unit_scores):
                # Every unit keeps its largest-scaled channel.
                below.remove(int(torch.argmax(unit_scores)))
            removed[name] = below
        return round_removals(removed, scores, round_to)
