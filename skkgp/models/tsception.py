"""TSCeption (Ding et al. 2022): multi-scale temporal and asymmetric spatial kernels."""

from __future__ import annotations

import torch
from torch import nn

from skkgp.models.base import EvidenceSpec, ZooModule

__all__ = ["TSCeption", "MultiScaleTemporal"]

_INCEPTION_WINDOWS = (0.5, 0.25, 0.125)


def _conv_block(in_channels: int, out_channels: int, kernel, stride, pool: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride),
        nn.LeakyReLU(),
        nn.AvgPool2d(kernel_size=(1, pool), stride=(1, pool)),
    )


class MultiScaleTemporal(nn.Module):
    """TSCeption's temporal inception: three kernel lengths, outputs joined in time.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output feature maps of each branch.
    kernels : sequence of int
        Temporal kernel length of each branch.
    pools : sequence of int
        Average-pooling length of each branch.

    Notes
    -----
    Input ``(n, in_channels, C, T)``; output ``(n, out_channels, C, T')`` with the three
    branches concatenated along time. Being one module, its output is TSCeption's
    evidence layer: it keeps the electrode axis.
    """

    def __init__(self, in_channels: int, out_channels: int, kernels, pools):
        super().__init__()
        for index, (kernel, pool) in enumerate(zip(kernels, pools, strict=True)):
            block = _conv_block(in_channels, out_channels, (1, kernel), 1, pool)
            self.add_module(f"Tception{index + 1}", block)
        self.n_branches = len(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [getattr(self, f"Tception{i + 1}")(x) for i in range(self.n_branches)]
        return torch.cat(branches, dim=-1)


class TSCeption(ZooModule):
    """TSCeption: temporal inception, hemisphere-aware spatial convs, fusion layer.

    Parameter counts equal torcheeg's ``TSCeption`` for the same configuration.

    Parameters
    ----------
    num_electrodes : int, default=28
        Number of EEG channels (at least 2).
    num_T : int, default=15
        Filters of each temporal branch.
    num_S : int, default=15
        Filters of each spatial branch.
    in_channels : int, default=1
        Input feature maps (1 for raw EEG).
    hid_channels : int, default=32
        Hidden units of the classifier head.
    num_classes : int, default=2
        Number of classes.
    sampling_rate : int, default=128
        Sampling rate in Hz: the temporal kernels span 0.5, 0.25 and 0.125 s.
    dropout : float, default=0.5
        Dropout probability in the head.
    chunk_size : int or None, default=None
        Window length in samples. When given, kernels and pools are clipped so that
        windows shorter than the kernels still run (e.g. 50 samples at 100 Hz).

    Notes
    -----
    Input: ``(n_samples, num_electrodes, n_times)``, as the estimators take it; called
    directly, the module also takes ``(n, 1, C, T)`` (the estimators refuse that shape).
    The evidence layer is ``temporal``, the multi-scale temporal block; the knowledge-guided losses
    use input x gradient by default (``evidence="auto"``, see
    :mod:`skkgp.knowledge.evidence`).

    References
    ----------
    .. [1] Ding, Y. et al. (2022). TSception: capturing temporal dynamics and spatial
       asymmetry from EEG for emotion recognition. IEEE Transactions on Affective Computing.
    """

    input_kind = "raw"
    # As for EEGNet: the temporal-only evidence layer leaves pooled Grad-CAM no way to
    # follow the spatial weights; input x gradient moved most (docs/user_guide/method.rst).
    evidence = EvidenceSpec(layer="temporal", electrode_axis="channels",
                            auto="input_x_gradient")
    # Contiguous by default, as EEGNet (figures in docs/user_guide/performance.rst).
    channels_last_devices = ()

    def __init__(
        self,
        num_electrodes: int = 28,
        num_T: int = 15,
        num_S: int = 15,
        in_channels: int = 1,
        hid_channels: int = 32,
        num_classes: int = 2,
        sampling_rate: int = 128,
        dropout: float = 0.5,
        chunk_size: int | None = None,
    ):
        super().__init__()
        if num_electrodes < 2:
            raise ValueError(f"TSCeption needs at least 2 electrodes, got {num_electrodes}.")
        self.num_electrodes = num_electrodes
        self.num_T, self.num_S = num_T, num_S
        self.in_channels = in_channels
        self.hid_channels = hid_channels
        self.num_classes = num_classes
        self.sampling_rate = sampling_rate
        self.dropout = dropout
        self.chunk_size = chunk_size

        kernels = [max(1, int(w * sampling_rate)) for w in _INCEPTION_WINDOWS]
        pools = [8] * len(kernels)
        pool_s, pool_f = 2, 4
        if chunk_size is not None:
            kernels = [min(k, chunk_size) for k in kernels]
            lengths = [chunk_size - k + 1 for k in kernels]
            pools = [min(8, n) for n in lengths]
            t_cat = sum(n // p for n, p in zip(lengths, pools, strict=True))
            pool_s = min(pool_s, t_cat)
            pool_f = min(pool_f, t_cat // pool_s)

        half = max(1, num_electrodes // 2)
        rows = 1 + (num_electrodes - half) // half + 1
        self.temporal = MultiScaleTemporal(in_channels, num_T, kernels, pools)
        self.BN_t = nn.BatchNorm2d(num_T)
        self.Sception1 = _conv_block(num_T, num_S, (num_electrodes, 1), 1, pool_s)
        self.Sception2 = _conv_block(num_T, num_S, (half, 1), (half, 1), pool_s)
        self.BN_s = nn.BatchNorm2d(num_S)
        self.fusion_layer = _conv_block(num_S, num_S, (min(3, rows), 1), 1, pool_f)
        self.BN_fusion = nn.BatchNorm2d(num_S)
        self.fc = nn.Sequential(
            nn.Linear(num_S, hid_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hid_channels, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        out = self.BN_t(self.temporal(x))
        out = torch.cat((self.Sception1(out), self.Sception2(out)), dim=2)
        out = self.BN_fusion(self.fusion_layer(self.BN_s(out)))
        # Average over time, then over whatever spatial rows remain (one for even
        # electrode counts, as in the original; more only for odd counts).
        out = out.mean(dim=-1).mean(dim=-1)
        return self.fc(out)
