"""EEGNet (Lawhern et al. 2018): a compact CNN on raw EEG windows."""

from __future__ import annotations

import torch
from torch import nn

from skkgp.models.base import EvidenceSpec, ZooModule

__all__ = ["EEGNet", "Conv2dWithConstraint"]


class Conv2dWithConstraint(nn.Conv2d):
    """``Conv2d`` whose filters are renormalised to an L2 norm of at most ``max_norm``.

    EEGNet applies this max-norm constraint to its depthwise spatial filters. As in the
    PyTorch ports of EEGNet (braindecode, torcheeg), a forward pass in training mode
    projects the weights in place first; the original Keras model projects them after
    each update, which the next training forward does here. In eval mode the forward
    pass computes with the projected filters without writing them back, so that
    evaluating a network (predicting, explaining) never changes its weights.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`torch.nn.Conv2d`.
    max_norm : float, default=1.0
        Largest L2 norm of one output filter.
    """

    def __init__(self, *args, max_norm: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_norm = max_norm

    def constrain_(self) -> None:
        """Renormalise the filters in place to an L2 norm of at most ``max_norm``."""
        # The constraint is a projection, not part of the graph: no gradient flows through it.
        with torch.no_grad():
            self.weight.copy_(torch.renorm(self.weight, p=2, dim=0, maxnorm=self.max_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # An ONNX export traces a copy whose filters were projected beforehand
        # (skkgp.export_onnx): an in-place update of a weight has no ONNX form.
        if torch.onnx.is_in_onnx_export():
            return super().forward(x)
        if self.training:
            self.constrain_()
            return super().forward(x)
        return self._conv_forward(x, self._projected_weight(), self.bias)

    def _projected_weight(self) -> torch.Tensor:
        """``renorm(weight)`` as a product with a constant per-filter scale.

        Gradients still reach ``weight`` (Taylor importance takes them in eval mode),
        scaled as the projection scales the filter, so that ``weight * grad`` is what it
        is for the projected weights.
        """
        with torch.no_grad():
            norms = self.weight.flatten(1).norm(dim=1)
            # torch.renorm's factor, for the filters above max_norm only.
            scale = torch.where(norms > self.max_norm, self.max_norm / (norms + 1e-7),
                                torch.ones_like(norms))
        return self.weight * scale.view(-1, *([1] * (self.weight.dim() - 1)))


class EEGNet(ZooModule):
    """EEGNet: temporal conv, depthwise spatial conv, separable conv.

    ``Conv2d(1, F1, (1, kernel_1)) -> BN -> depthwise Conv2d(F1, F1*D, (C, 1)) with
    max-norm -> BN -> ELU -> AvgPool(1, 4) -> Dropout -> depthwise Conv2d(F1*D, F1*D,
    (1, kernel_2)) -> pointwise Conv2d(F1*D, F2, 1) -> BN -> ELU -> AvgPool(1, 8) ->
    Dropout -> Linear(F2 * T', num_classes)``. Parameter counts equal torcheeg's
    ``EEGNet`` for the same configuration.

    Parameters
    ----------
    chunk_size : int, default=151
        Number of time samples of one window.
    num_electrodes : int, default=60
        Number of EEG channels.
    F1 : int, default=8
        Number of temporal filters.
    F2 : int, default=16
        Number of pointwise filters.
    D : int, default=2
        Depth multiplier: spatial filters per temporal filter.
    num_classes : int, default=2
        Number of classes.
    kernel_1 : int, default=64
        Temporal kernel length (half the sampling rate in the original paper). Clipped
        to ``chunk_size`` so that short windows never crash.
    kernel_2 : int, default=16
        Kernel length of the separable conv, clipped likewise.
    dropout : float, default=0.25
        Dropout probability.

    Notes
    -----
    Input: ``(n_samples, num_electrodes, chunk_size)``; the singleton input channel is
    added inside ``forward`` (called directly, the module also takes a 4-D ``(n, 1, C, T)``
    input; the estimators refuse that shape). The pooling
    sizes shrink for windows too short for them. The evidence layer is
    ``temporal_conv``, whose output ``(n, F1, C, T)`` keeps the electrode axis; the
    knowledge-guided losses use input x gradient by default (``evidence="auto"``), as
    pooled Grad-CAM on a temporal-only layer cannot be steered towards a region (see
    :mod:`skkgp.knowledge.evidence`).

    References
    ----------
    .. [1] Lawhern, V. J. et al. (2018). EEGNet: a compact convolutional neural network
       for EEG-based brain-computer interfaces. Journal of Neural Engineering, 15(5).
    """

    input_kind = "raw"
    # Grad-CAM's pooled weights cannot steer the electrode profile of this temporal-only
    # layer; input x gradient is the kind the region-wise loss moved most (figures in
    # docs/user_guide/method.rst).
    evidence = EvidenceSpec(layer="temporal_conv", electrode_axis="channels",
                            auto="input_x_gradient")
    # Contiguous by default: channels-last is slower on GPUs and its BatchNorm loses
    # float32 accuracy on CPUs (figures in docs/user_guide/performance.rst).
    channels_last_devices = ()

    def __init__(
        self,
        chunk_size: int = 151,
        num_electrodes: int = 60,
        F1: int = 8,
        F2: int = 16,
        D: int = 2,
        num_classes: int = 2,
        kernel_1: int = 64,
        kernel_2: int = 16,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.chunk_size = chunk_size
        self.num_electrodes = num_electrodes
        self.F1, self.F2, self.D = F1, F2, D
        self.num_classes = num_classes
        self.kernel_1, self.kernel_2 = kernel_1, kernel_2
        self.dropout = dropout

        k1 = max(1, min(kernel_1, chunk_size))
        t1 = chunk_size + 2 * (k1 // 2) - k1 + 1
        pool_1 = min(4, t1)
        t2 = t1 // pool_1
        k2 = max(1, min(kernel_2, t2))
        t3 = t2 + 2 * (k2 // 2) - k2 + 1
        pool_2 = min(8, t3)
        t4 = t3 // pool_2

        self.temporal_conv = nn.Conv2d(1, F1, (1, k1), padding=(0, k1 // 2), bias=False)
        self.temporal_bn = nn.BatchNorm2d(F1, momentum=0.01, eps=1e-3)
        self.spatial_conv = Conv2dWithConstraint(
            F1, F1 * D, (num_electrodes, 1), groups=F1, bias=False, max_norm=1.0
        )
        self.spatial_bn = nn.BatchNorm2d(F1 * D, momentum=0.01, eps=1e-3)
        self.spatial_act = nn.ELU()
        self.pool_1 = nn.AvgPool2d((1, pool_1), stride=(1, pool_1))
        self.dropout_1 = nn.Dropout(dropout)
        self.separable_depthwise = nn.Conv2d(
            F1 * D, F1 * D, (1, k2), padding=(0, k2 // 2), groups=F1 * D, bias=False
        )
        self.separable_pointwise = nn.Conv2d(F1 * D, F2, 1, bias=False)
        self.separable_bn = nn.BatchNorm2d(F2, momentum=0.01, eps=1e-3)
        self.separable_act = nn.ELU()
        self.pool_2 = nn.AvgPool2d((1, pool_2), stride=(1, pool_2))
        self.dropout_2 = nn.Dropout(dropout)
        self.lin = nn.Linear(F2 * t4, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.temporal_bn(self.temporal_conv(x))
        x = self.spatial_act(self.spatial_bn(self.spatial_conv(x)))
        x = self.dropout_1(self.pool_1(x))
        x = self.separable_pointwise(self.separable_depthwise(x))
        x = self.separable_act(self.separable_bn(x))
        x = self.dropout_2(self.pool_2(x))
        return self.lin(x.flatten(start_dim=1))
