"""skorch callbacks for the training-time parts of pruning.

- :class:`NetworkSlimming` adds NSFP's L1 sparsity term on BatchNorm scales while the
  origin network trains.
- :class:`SoftFilterPruning` zeroes SFP's lowest-L2 filters at every epoch end.
"""

from __future__ import annotations

import torch
from skorch.callbacks import Callback
from torch import nn

from skkgp.pruning.base import check_ratio, check_round_to
from skkgp.pruning.nsfp import has_batchnorm
from skkgp.pruning.sfp import SFP
from skkgp.pruning.structured import filter_norms
from skkgp.pruning.units import UnitGraph, find_last_layer, zero_channels

__all__ = ["NetworkSlimming", "SoftFilterPruning"]


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
        # Units are found by tracing the network on the first training batch.
        self._example = None
        self._units = None
        self.zeroed_ = {}

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training and getattr(self, "_example", None) is None:
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            if isinstance(inputs, torch.Tensor):
                self._example = inputs[:2].detach().clone()

    def on_epoch_end(self, net, **kwargs):
        example = getattr(self, "_example", None)
        if example is None:
            return
        module = net.module_
        if getattr(self, "_units", None) is None:
            last = find_last_layer(module, example)
            self._units = UnitGraph(module, example, [] if last is None else [last]).units
        scores = {}
        for unit in self._units:
            norms = filter_norms(module, unit, p=2)
            if self.global_pruning:
                norms = norms / norms.mean().clamp_min(1e-12)
            scores[unit.name] = norms
        chosen = SFP().select(
            scores, float(self.ratio), global_pruning=self.global_pruning,
            round_to=self.round_to,
        )
        for unit in self._units:
            zero_channels(module, unit, chosen[unit.name])
        self.zeroed_ = chosen

    def __getstate__(self):
        # The traced example and units are scratch state: a clone starts afresh.
        state = dict(self.__dict__)
        state.pop("_example", None)
        state.pop("_units", None)
        return state
