"""CCNN: the continuous convolutional network of Yang et al. (2018) on band-DE grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skkgp.models.base import EvidenceSpec, ZooModule

__all__ = ["CCNN"]


def _same_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # The asymmetric (1, 2, 1, 2) padding keeps a 9x9 grid at 9x9 under a kernel of 4.
    return nn.Sequential(
        nn.ZeroPad2d((1, 2, 1, 2)),
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=1),
        nn.ReLU(),
    )


class CCNN(ZooModule):
    """Continuous convolutional neural network on electrode grids.

    Four blocks ``ZeroPad2d((1, 2, 1, 2)) -> Conv2d(kernel 4) -> ReLU`` with 64, 128,
    256 and 64 filters, then ``Linear(rows * cols * 64, 1024) -> SELU -> Dropout ->
    Linear(1024, num_classes)``. Parameter names follow torcheeg's ``CCNN``; on a
    ``(4, 9, 9)`` input with 2 classes it has 6,233,602 parameters and 79,960,064 MACs.

    Parameters
    ----------
    in_channels : int, default=4
        Number of feature maps of the grid (frequency bands).
    grid_size : tuple of int, default=(9, 9)
        Rows and columns of the electrode grid.
    num_classes : int, default=2
        Number of classes.
    dropout : float, default=0.5
        Dropout probability before the last layer.

    Notes
    -----
    Input: ``(n_samples, in_channels, rows, cols)``; output: logits
    ``(n_samples, num_classes)``. The evidence layer is ``conv1``, whose output keeps
    one cell per grid position (one per electrode).

    References
    ----------
    .. [1] Yang, Y., Wu, Q., Fu, Y., & Chen, X. (2018). Continuous convolutional neural
       network with 3D input for EEG-based emotion recognition. ICONIP.
    """

    input_kind = "grid"
    evidence = EvidenceSpec(layer="conv1", electrode_axis="grid")
    # Channels-last weights: faster steps on CPU and GPU at the same float32 accuracy
    # (figures in docs/user_guide/performance.rst).
    channels_last_devices = ("cpu", "cuda")

    def __init__(
        self,
        in_channels: int = 4,
        grid_size: Sequence[int] = (9, 9),
        num_classes: int = 2,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.grid_size = tuple(grid_size)
        self.num_classes = num_classes
        self.dropout = dropout
        self.conv1 = _same_block(in_channels, 64)
        self.conv2 = _same_block(64, 128)
        self.conv3 = _same_block(128, 256)
        self.conv4 = _same_block(256, 64)
        rows, cols = self.grid_size
        self.lin1 = nn.Sequential(nn.Linear(rows * cols * 64, 1024), nn.SELU(), nn.Dropout(dropout))
        self.lin2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.lin2(self.lin1(x.flatten(start_dim=1)))
