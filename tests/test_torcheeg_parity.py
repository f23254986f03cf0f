"""The zoo's models have exactly torcheeg's parameter counts for the same configuration.

torcheeg is an optional extra (its release pins scipy<=1.10.1 and its model package needs a
compiled torch_scatter), so this file runs in CI's separate torcheeg environment
(see ``.ci/run``) and is skipped where torcheeg's models cannot be imported.
"""

import pytest

from skkgp import models as zoo

torcheeg_models = pytest.importorskip("torcheeg.models")


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("in_channels, grid", [(4, (9, 9)), (5, (9, 9)), (4, (8, 9))])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_grid_models_match_torcheeg(in_channels, grid, num_classes):
    ours = zoo.CCNN(in_channels=in_channels, grid_size=grid, num_classes=num_classes)
    theirs = torcheeg_models.CCNN(in_channels=in_channels, grid_size=grid, num_classes=num_classes)
    assert _n_params(ours) == _n_params(theirs)
    ours = zoo.FBCCNN(in_channels=in_channels, grid_size=grid, num_classes=num_classes)
    theirs = torcheeg_models.FBCCNN(
        in_channels=in_channels, grid_size=grid, num_classes=num_classes
    )
    assert _n_params(ours) == _n_params(theirs)


@pytest.mark.parametrize("n_chans, n_times", [(32, 128), (60, 151), (14, 256), (62, 200)])
def test_raw_models_match_torcheeg(n_chans, n_times):
    ours = zoo.EEGNet(chunk_size=n_times, num_electrodes=n_chans, num_classes=2)
    theirs = torcheeg_models.EEGNet(chunk_size=n_times, num_electrodes=n_chans, num_classes=2)
    assert _n_params(ours) == _n_params(theirs)
    ours = zoo.TSCeption(
        num_electrodes=n_chans, num_classes=2, sampling_rate=128, chunk_size=n_times
    )
    theirs = torcheeg_models.TSCeption(num_electrodes=n_chans, num_classes=2, sampling_rate=128)
    assert _n_params(ours) == _n_params(theirs)
