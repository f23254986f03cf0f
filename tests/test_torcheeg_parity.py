"""Interop with torcheeg: the zoo has exactly torcheeg's parameter counts, and torcheeg model
classes work as ``EEGClassifier`` modules.

torcheeg is an optional extra (its release pins scipy<=1.10.1 and its model package needs a
compiled torch_scatter), so this file runs in CI's separate torcheeg environment
(see ``.ci/run``) and is skipped where torcheeg's models cannot be imported.
"""

import numpy as np
import pytest

from skkgp import models as zoo

torcheeg_models = pytest.importorskip("torcheeg.models")


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


CONFIGS = [
    ("CCNN", dict(in_channels=4, grid_size=(9, 9), num_classes=2)),
    ("CCNN", dict(in_channels=5, grid_size=(9, 9), num_classes=3)),
    ("CCNN", dict(in_channels=4, grid_size=(8, 9), num_classes=2)),
    ("FBCCNN", dict(in_channels=4, grid_size=(9, 9), num_classes=2)),
    ("FBCCNN", dict(in_channels=5, grid_size=(9, 9), num_classes=3)),
    ("EEGNet", dict(chunk_size=151, num_electrodes=60, num_classes=2)),
    ("EEGNet", dict(chunk_size=128, num_electrodes=32, F1=4, D=2, F2=8)),
    ("EEGNet", dict(chunk_size=256, num_electrodes=14, num_classes=3)),
    ("TSCeption", dict(num_electrodes=28, sampling_rate=128, num_classes=2)),
    ("TSCeption", dict(num_electrodes=32, sampling_rate=128, num_classes=2)),
    ("TSCeption", dict(num_electrodes=62, sampling_rate=200, num_classes=3)),
]


@pytest.mark.parametrize("name, config", CONFIGS)
def test_parameter_counts_equal_torcheeg(name, config):
    ours = getattr(zoo, name)(**config)
    theirs = getattr(torcheeg_models, name)(**config)
    assert _n_params(ours) == _n_params(theirs)
    if name in ("CCNN", "FBCCNN"):  # the raw models' layer names are skkgp's own
        assert {n for n, _ in ours.named_parameters()} == {
            n for n, _ in theirs.named_parameters()
        }


def test_torcheeg_model_class_as_module():
    from skkgp import EEGClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4, 9, 9)).astype("float32")
    y = np.tile([0, 1], 8)
    clf = EEGClassifier(torcheeg_models.CCNN, max_epochs=1, random_state=0).fit(X, y)
    assert clf.module_kwargs_ == {"in_channels": 4, "grid_size": (9, 9), "num_classes": 2}
    assert clf.predict(X).shape == (16,)
