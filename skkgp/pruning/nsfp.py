"""NSFP: network slimming (Liu et al. 2017).

The origin network is trained with an L1 penalty on its BatchNorm scales (the
:class:`NetworkSlimming` callback, :meth:`NSFP.origin_callbacks`); then the channels whose BatchNorm
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
from skorch.callbacks import Callback
from torch import nn

from skkgp.pruning.base import PruningRequest
from skkgp.pruning.structured import StructuredPruning, round_removals
from skkgp.pruning.units import ChannelUnit

__all__ = ["NSFP", "NetworkSlimming", "has_batchnorm"]


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` holds an affine BatchNorm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine for m in module.modules())


class NetworkSlimming(Callback):
    """L1 sparsity on BatchNorm scales while training (network slimming, NSFP).

    After every backward pass the subgradient of ``penalty * sum |gamma|`` over the
    scales ``gamma`` of every affine BatchNorm layer, ``penalty * sign(gamma)``, is
    added to their gradients, so that the optimizer step minimises the loss plus the
    penalty. Channels whose scales the penalty drives to zero are then removed by
    ``prune(module, "nsfp", ratio, ...)``.

    Parameters
    ----------
    penalty : float, default=1e-4
        Weight ``s`` of the L1 term (1e-4 in the paper for VGG on CIFAR).

    References
    ----------
    .. [1] Liu, Z. et al. (2017). Learning efficient convolutional networks through
       network slimming. ICCV.

    Examples
    --------
    >>> from skkgp import EEGClassifier
    >>> net = EEGClassifier("fbccnn", callbacks=[("slim", NetworkSlimming(1e-4))])
    """

    def __init__(self, penalty: float = 1e-4):
        self.penalty = penalty

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if not isinstance(self.penalty, (int, float)) or isinstance(self.penalty, bool) or (
            self.penalty < 0
        ):
            raise ValueError(
                f"penalty must be a non-negative float, got {self.penalty!r}."
            )
        if not has_batchnorm(net.module_):
            raise ValueError(
                "NetworkSlimming needs BatchNorm layers (network slimming penalises their "
                f"scales), but {type(net.module_).__name__} has none; prune it with 'lfp', "
                "'umwp' or 'sfp' instead."
            )

    def on_grad_computed(self, net, named_parameters, X=None, y=None, training=None, **kw):
        if not self.penalty:
            return
        with torch.no_grad():
            for layer in net.module_.modules():
                if (
                    isinstance(layer, nn.modules.batchnorm._BatchNorm)
                    and layer.affine
                    and layer.weight.grad is not None
                ):
                    layer.weight.grad.add_(torch.sign(layer.weight), alpha=self.penalty)


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

    def origin_callbacks(self) -> list[tuple[str, Callback]]:
        """NSFP's sparsity term: ``[("network_slimming", NetworkSlimming())]``."""
        return [("network_slimming", NetworkSlimming())]

    def owns_origin_callback(self, callback) -> bool:
        if isinstance(callback, tuple) and len(callback) == 2:
            callback = callback[1]
        if isinstance(callback, type):
            return issubclass(callback, NetworkSlimming)
        return isinstance(callback, NetworkSlimming)

    def origin_warning(self, net) -> str | None:
        callbacks = getattr(net, "callbacks_", None) or net.get_params(deep=False).get(
            "callbacks"
        )
        if isinstance(callbacks, (list, tuple)) and any(
            self.owns_origin_callback(callback) for callback in callbacks
        ):
            return None
        return (
            "method='nsfp' with prefit=True: the origin was trained without the "
            "skkgp.pruning.NetworkSlimming callback, so its BatchNorm gammas were not "
            "made sparse and the gamma threshold prunes a network that network slimming "
            "would have trained otherwise."
        )

    def nothing_removed_reason(self) -> str:
        return ("channels whose |gamma| ties with the threshold all stay, and alike "
                "BatchNorm scales (an origin trained briefly, or without the "
                "NetworkSlimming callback) tie with it")

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
        self, scores: dict[str, torch.Tensor], request: PruningRequest
    ) -> dict[str, list[int]]:
        if not request.global_pruning or not scores:
            return super().select(scores, request)
        ratio = request.ratio
        values = torch.sort(torch.cat(list(scores.values()))).values
        # The epsilon keeps 10 * 0.3 = 3.0000000000000004 at 3 and 100 * 0.29 at 29.
        threshold = values[min(math.floor(values.numel() * ratio + 1e-9), values.numel() - 1)]
        removed = {}
        for name, unit_scores in scores.items():
            below = torch.nonzero(unit_scores < threshold).flatten().tolist()
            if len(below) == len(unit_scores):
                # Every unit keeps its largest-scaled channel.
                below.remove(int(torch.argmax(unit_scores)))
            removed[name] = below
        return round_removals(removed, scores, request.round_to)
