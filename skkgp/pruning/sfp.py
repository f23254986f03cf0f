"""SFP: soft filter pruning (He et al. 2018).

While the pruned network recovers, the :class:`SoftFilterPruning` callback
(:meth:`SFP.recovery_callbacks`) zeroes, at every epoch end, the ``floor(n * ratio)``
filters with the smallest L2 norms of each unit of ``n`` filters (He et al.'s rule, and
Rao & Zhong's: at ratio 0.1 a CCNN loses 6/12/25/6 of its 64/128/256/64 filters, where
LFP's ``floor(n * (1 - ratio))`` kept loses 7/13/26/7); zeroed filters keep training and
may grow back. The final hard step, after the recovery (``SFP.prunes_after_recovery``),
removes physically the filters with the smallest L2 norms at the same ratio: after the
callback's last zeroing those are exactly the zeroed ones (their channels output zero),
so removing them does not change the network's output.

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

import torch
from skorch.callbacks import Callback
from torch import nn

from skkgp.pruning.base import PruningRequest, check_ratio, check_round_to
from skkgp.pruning.structured import StructuredPruning, filter_norms
from skkgp.pruning.units import ChannelUnit, UnitGraph, find_last_layer, zero_channels

__all__ = ["SFP", "SoftFilterPruning"]


class SFP(StructuredPruning):
    """Soft filter pruning: zero the lowest-L2 filters while recovering, then remove them."""

    name = "sfp"
    prunes_after_recovery = True

    def recovery_callbacks(
        self, ratio: float, *, global_pruning: bool = False
    ) -> list[tuple[str, Callback]]:
        """SFP's per-epoch zeroing: ``[("soft_filter_pruning", SoftFilterPruning(ratio))]``.

        The callback ranks as the final hard step does (``global_pruning``), so that
        this step removes the filters it zeroed last.
        """
        return [("soft_filter_pruning",
                 SoftFilterPruning(ratio, global_pruning=global_pruning))]

    def scores(self, module: nn.Module, unit: ChannelUnit) -> torch.Tensor:
        return filter_norms(module, unit, p=2)

    def kept(self, n_channels: int, ratio: float, round_to: int | None = None) -> int:
        """``n_channels - floor(n_channels * ratio)``, at least one, rounded up to ``round_to``."""
        # The epsilon keeps 10 * 0.3 = 3.0000000000000004 at 3 and 100 * 0.29 at 29.
        kept = max(1, n_channels - math.floor(n_channels * ratio + 1e-9))
        if round_to:
            kept = round_to * math.ceil(kept / round_to)
        return min(n_channels, kept)

    def soft_network(self, module: nn.Module, request: PruningRequest) -> nn.Module:
        """A copy of ``module`` with the filters the hard step removes set to zero.

        Only the filters' conv weights are zeroed, as the authors' soft step does: the
        network the paper counts for SFP (its zero conv weights are left out of the
        parameters and FLOPs). On a network the soft step has already zeroed, the copy
        equals it.
        """
        graph, removed = self.plan(module, request)
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


class SoftFilterPruning(Callback):
    """Zero the lowest-L2 filters of every prunable layer at each epoch end (SFP).

    At the end of every epoch, in each prunable unit of ``n`` filters (see
    :mod:`skkgp.pruning.units`), the ``floor(n * ratio)`` filters with the smallest
    L2 norms are set to zero, with their biases and the shift and running mean of the
    BatchNorm that follows, so that the channel outputs exactly zero
    (:func:`~skkgp.pruning.units.zero_channels`). The network keeps its shape and the
    zeroed filters keep training: they grow back where a gradient reaches them
    (through a BatchNorm in training mode, as in the paper's ResNets, or a leaky
    activation: EEGNet, TSCeption); behind a plain ReLU (CCNN, FBCCNN) the gradient
    at exactly zero is zero and they stay zero. ``prune(module, "sfp", ratio, ...)``
    afterwards removes the filters zeroed last without changing the network's output.

    Parameters
    ----------
    ratio : float in (0, 1)
        Fraction of filters zeroed per layer (``floor(n * ratio)`` of ``n``, at least
        one kept, as ``prune(module, "sfp", ratio, ...)`` removes them).
    global_pruning : bool, default=False
        Rank filters across layers (norms divided by their layer mean) instead.
    round_to : int, optional
        Round the kept filters up to a multiple of ``round_to``.

    Attributes
    ----------
    zeroed_ : dict of str to list of int
        Filters zeroed at the last epoch end, by unit.

    References
    ----------
    .. [1] He, Y. et al. (2018). Soft filter pruning for accelerating deep
       convolutional neural networks. IJCAI.
    """

    def __init__(self, ratio: float, *, global_pruning: bool = False, round_to=None):
        self.ratio = ratio
        self.global_pruning = global_pruning
        self.round_to = round_to

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        check_ratio(self.ratio)
        check_round_to(self.round_to)
        # Units are found by tracing the network on the first training batch. Like
        # zeroed_, they end in "_": skorch takes every other attribute for a parameter,
        # which clone would pass to the constructor.
        self.example_ = None
        self.units_ = None
        self.zeroed_ = {}

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training and getattr(self, "example_", None) is None:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            if isinstance(inputs, torch.Tensor):
                self.example_ = inputs[:2].detach().clone()

    def on_epoch_end(self, net, **kwargs):
        example = getattr(self, "example_", None)
        if example is None:
            return
        module = net.module_
        if getattr(self, "units_", None) is None:
            last = find_last_layer(module, example)
            self.units_ = UnitGraph(module, example, [] if last is None else [last]).units
        scores = {}
        for unit in self.units_:
            norms = filter_norms(module, unit, p=2)
            if self.global_pruning:
                norms = norms / norms.mean().clamp_min(1e-12)
            scores[unit.name] = norms
        chosen = SFP().select(scores, PruningRequest(
            float(self.ratio), example, global_pruning=self.global_pruning,
            round_to=self.round_to,
        ))
        for unit in self.units_:
            zero_channels(module, unit, chosen[unit.name])
        self.zeroed_ = chosen

    def __getstate__(self):
        # The traced example and units are scratch state: a clone starts afresh.
        state = dict(self.__dict__)
        state.pop("example_", None)
        state.pop("units_", None)
        return state
