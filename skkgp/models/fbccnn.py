"""FBCCNN: the frequency-band correlation CNN of Pan & Zheng (2021) on band-DE grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skkgp.models.base import EvidenceSpec, ZooModule

__all__ = ["FBCCNN"]

_WIDTHS = (12, 32, 64, 128, 256, 128, 32)


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=1),
        nn.ReLU(),
        nn.BatchNorm2d(out_channels),
    )


class FBCCNN(ZooModule):
    """Frequency band correlation convolutional neural network on electrode grids.

    Seven blocks ``Conv2d(3x3, padding 1) -> ReLU -> BatchNorm2d`` with 12, 32, 64,
    128, 256, 128 and 32 filters, then ``Linear(rows * cols * 32, 512) -> ReLU ->
    Linear(512, 128) -> ReLU -> Linear(128, num_classes)``. Parameter names follow
    torcheeg's ``FBCCNN``; on a ``(4, 9, 9)`` input with 2 classes it has 2,118,230
    parameters. Its BatchNorm layers make it the zoo's network-slimming (NSFP) target.

    Parameters
    ----------
    in_channels, grid_size, num_classes
        As in :class:`~skkgp.models.CCNN` (defaults 4, ``(9, 9)`` and 2).

    Notes
    -----
    Input: ``(n_samples, in_channels, rows, cols)``; output: logits
    ``(n_samples, num_classes)``. The evidence layer is ``block1``.

    References
    ----------
    .. [1] Pan, B., & Zheng, W. (2021). Emotion recognition based on EEG using generative
       adversarial nets and convolutional neural network. Computational and
       Mathematical Methods in Medicine.
    """

    input_kind = "grid"
    evidence = EvidenceSpec(layer="block1", electrode_axis="grid")
    # Contiguous by default although channels-last steps are faster: channels-last
    # BatchNorm loses float32 accuracy (figures in docs/user_guide/performance.rst).
    channels_last_devices = ()

    def __init__(
        self,
        in_channels: int = 4,
        grid_size: Sequence[int] = (9, 9),
        num_classes: int = 2,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.grid_size = tuple(grid_size)
        self.num_classes = num_classes
        widths = (in_channels, *_WIDTHS)
        for index in range(len(_WIDTHS)):
            self.add_module(f"block{index + 1}", _block(widths[index], widths[index + 1]))
        rows, cols = self.grid_size
        self.lin1 = nn.Sequential(nn.Linear(rows * cols * _WIDTHS[-1], 512), nn.ReLU())
        self.lin2 = nn.Sequential(nn.Linear(512, 128), nn.ReLU())
        self.lin3 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(len(_WIDTHS)):
            x = getattr(self, f"block{index + 1}")(x)
        return self.lin3(self.lin2(self.lin1(x.flatten(start_dim=1))))
