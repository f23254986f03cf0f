"""NSFP: network slimming (Liu et al. 2017).

The origin network is trained with an L1 penalty on its BatchNorm scales (the
:class:`~skkgp.pruning.NetworkSlimming` callback); then the channels whose BatchNorm
scale ``|gamma|`` falls below one threshold shared by the whole network are removed
physically. ``ratio`` is the fraction of all BatchNorm-scaled channels removed (each
unit keeps at least one); units without a BatchNorm are left alone. A network without
BatchNorm (CCNN) cannot be slimmed.

References
----------
.. [1] Liu, Z., Li, J., Shen, Z., Huang, G., Yan, S., & Zhang, C. (2017). Learning
   efficient convolutional networks through network slimming. ICCV.
"""

from __future__ import annotations

import torch
from torch import nn

from skkgp.pruning.structured import StructuredPruning
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
