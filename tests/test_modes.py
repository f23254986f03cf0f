"""Every function that runs a network in eval mode gives each submodule its own mode back."""

import numpy as np
import pytest
import torch
from torch import nn

from skkgp import layout
from skkgp._modes import eval_mode
from skkgp.knowledge.evidence import guided_gradcam
from skkgp.models import FBCCNN
from skkgp.pruning.base import TrainingBatch
from skkgp.pruning.counting import count_macs
from skkgp.pruning.kgi import outside_shares
from skkgp.pruning.taylor import loss_gradients
from skkgp.pruning.units import UnitGraph, find_last_layer


def _batch():
    X = torch.as_tensor(np.random.default_rng(0).standard_normal((4, 4, 9, 9)),
                        dtype=torch.float32)
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    return TrainingBatch(X, torch.tensor([0, 1, 0, 1]), region_mask=mask)


def _taylor(module, batch):
    with loss_gradients(module, batch):
        pass


RUNS = {
    "guided_gradcam": lambda module, batch: guided_gradcam(module, batch.inputs),
    "outside_shares": outside_shares,
    "count_macs": lambda module, batch: count_macs(module, batch.inputs),
    "find_last_layer": lambda module, batch: find_last_layer(module, batch.inputs),
    "UnitGraph": lambda module, batch: UnitGraph(module, batch.inputs),
    "loss_gradients": _taylor,
}


@pytest.mark.parametrize("run", list(RUNS))
def test_a_frozen_batchnorm_stays_in_eval_mode(run):
    torch.manual_seed(0)
    module = FBCCNN().train()
    frozen = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)][0]
    frozen.eval()  # a user's frozen BatchNorm inside a training network
    modes = {name: m.training for name, m in module.named_modules()}
    RUNS[run](module, _batch())
    assert {name: m.training for name, m in module.named_modules()} == modes
    assert not frozen.training and module.training


def test_eval_mode_restores_each_mode_after_an_error():
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    module[1].eval()
    with pytest.raises(RuntimeError, match="inside"), eval_mode(module):
        assert not any(m.training for m in module.modules())
        raise RuntimeError("inside")
    assert module.training and module[0].training and not module[1].training
