"""Training-time parts of pruning methods: the hooks of each method, NetworkSlimming
(NSFP's origin callback) and SoftFilterPruning (SFP's recovery callback)."""

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

from skkgp.models import CCNN, FBCCNN, EEGNet
from skkgp.pruning import (
    METHODS,
    NetworkSlimming,
    SoftFilterPruning,
    count_paper_flops,
    count_paper_params,
    get_method,
    is_origin_callback,
    prune,
)


def _grid_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4, 3, 3)).astype(np.float32)
    y = (X[:, 0, 1, 1] > 0).astype(np.int64)
    return X, y


def _net(module, callbacks, max_epochs=2, **kwargs):
    params = dict(
        criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.SGD, lr=0.01,
        max_epochs=max_epochs, batch_size=16, train_split=None, verbose=0,
        callbacks=callbacks,
    )
    params.update(kwargs)
    return NeuralNetClassifier(module, **params)


def _gammas(module):
    return torch.cat([
        m.weight.detach().clone() for m in module.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ])


def test_methods_own_their_training_time_parts():
    hooks = {
        name: (
            [type(c) for _, c in get_method(name).origin_callbacks()],
            [type(c) for _, c in get_method(name).recovery_callbacks(0.3)],
            get_method(name).prunes_after_recovery,
        )
        for name in METHODS
    }
    assert hooks == {
        "lfp": ([], [], False),
        "nsfp": ([NetworkSlimming], [], False),
        "umwp": ([], [], False),
        "sfp": ([], [SoftFilterPruning], True),
        **{criterion: ([], [], False) for criterion in ("taylor", "fpgm", "lamp", "kgi")},
    }
    (_, soft), = get_method("sfp").recovery_callbacks(0.3)
    assert soft.ratio == 0.3 and soft.global_pruning is False
    (_, soft), = get_method("sfp").recovery_callbacks(0.3, global_pruning=True)
    assert soft.global_pruning is True
    # A fresh callback each time: a pruner never shares one between two fits.
    assert get_method("nsfp").origin_callbacks()[0][1] is not (
        get_method("nsfp").origin_callbacks()[0][1]
    )


@pytest.mark.parametrize(
    "entry, expected",
    [
        (NetworkSlimming(), True),
        (NetworkSlimming, True),
        (("slim", NetworkSlimming(1e-3)), True),
        (SoftFilterPruning(0.5), False),
        (("soft", SoftFilterPruning(0.5)), False),
        ("print_log", False),
    ],
)
def test_is_origin_callback(entry, expected):
    assert is_origin_callback(entry) is expected


def test_network_slimming_adds_l1_subgradient():
    """With lr * penalty large and the loss gradient switched off, each SGD step moves
    every gamma by exactly -lr * penalty * sign(gamma)."""
    X, y = _grid_data()
    torch.manual_seed(0)
    module = FBCCNN(grid_size=(3, 3))
    start = _gammas(module)
    net = _net(module, [NetworkSlimming(penalty=0.5)], max_epochs=1, criterion__reduction="sum")
    # Scaling the loss to zero leaves only the penalty's gradient.
    net.set_params(criterion__weight=torch.zeros(2))
    net.fit(X, y)
    steps = 2  # 32 samples, batch 16, one epoch
    expected = start - steps * 0.01 * 0.5 * torch.sign(start)
    torch.testing.assert_close(_gammas(net.module_), expected)


def test_network_slimming_shrinks_gammas_and_feeds_nsfp():
    X, y = _grid_data()
    torch.manual_seed(0)
    plain = _net(FBCCNN(grid_size=(3, 3)), [], max_epochs=3).fit(X, y)
    torch.manual_seed(0)
    slim = _net(FBCCNN(grid_size=(3, 3)), [NetworkSlimming(penalty=1e-2)], max_epochs=3).fit(X, y)
    assert _gammas(slim.module_).abs().sum() < _gammas(plain.module_).abs().sum()
    report = prune(slim.module_, "nsfp", 0.5, torch.as_tensor(X[:2]))
    assert report.macs_after < report.macs_before
    assert slim.module_(torch.as_tensor(X)).shape == (32, 2)


def test_network_slimming_refuses_network_without_batchnorm():
    X, y = _grid_data()
    net = _net(CCNN(grid_size=(3, 3)), [NetworkSlimming()])
    with pytest.raises(ValueError, match="NetworkSlimming needs BatchNorm.*CCNN"):
        net.fit(X, y)


def _zero_filters(module, name):
    weight = dict(module.named_modules())[name].weight.detach()
    return int((weight.flatten(1).abs().sum(1) == 0).sum())


def test_soft_filter_pruning_zeroes_and_hard_prune_is_exact():
    X, y = _grid_data()
    torch.manual_seed(0)
    callback = SoftFilterPruning(0.3)
    net = _net(FBCCNN(grid_size=(3, 3)), [callback], max_epochs=2, lr=0.05).fit(X, y)
    module = net.module_
    # After the last epoch end, floor(n * 0.3) of every layer's filters are zero
    # (soft filter pruning's rule; LFP's would zero 4 and 77).
    for name, n_zero in [("block1.0", 3), ("block5.0", 76)]:
        assert _zero_filters(module, name) == n_zero
        assert len(callback.zeroed_[name]) == n_zero
    bn = module.block5[2]
    zeroed = callback.zeroed_["block5.0"]
    assert torch.all(bn.bias[zeroed] == 0) and torch.all(bn.running_mean[zeroed] == 0)
    assert torch.all(bn.weight[zeroed] != 0)  # scales kept: gradients can pass
    module.eval()
    x = torch.as_tensor(X)
    before = module(x)
    soft_counts = count_paper_params(module), count_paper_flops(module, x[:2])
    report = prune(module, "sfp", 0.3, x[:2])
    torch.testing.assert_close(module(x), before, rtol=1e-5, atol=1e-6)
    assert report.kept_channels["block5.0"] == (180, 256)
    # The paper's counts are of the soft-pruned network, before the hard step.
    assert (report.paper_params_after, report.paper_flops_after) == soft_counts
    assert report.paper_params_after > report.params_after
    assert _zero_filters(module, "block5.0") == 0
    assert np.array_equal(net.predict(X), before.argmax(1).numpy())


def test_soft_filter_pruning_on_eegnet_and_validation():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 8, 64)).astype(np.float32)
    y = np.arange(16) % 2
    callback = SoftFilterPruning(0.5)
    net = _net(EEGNet(chunk_size=64, num_electrodes=8), [callback], max_epochs=1).fit(X, y)
    assert _zero_filters(net.module_, "temporal_conv") == 4
    zeroed = callback.zeroed_["temporal_conv"]
    # The BatchNorm shifts after the two spatial filters of each zeroed temporal
    # filter are zeroed with it: the whole branch outputs zero.
    assert torch.all(net.module_.spatial_bn.bias.detach().view(8, 2)[zeroed] == 0)
    assert torch.all(net.module_.temporal_bn.bias.detach()[zeroed] == 0)
    # Through EEGNet's BatchNorm a gradient reaches the zeroed filters: they regrow.
    net.set_params(callbacks=[])
    net.initialize_callbacks()
    net.partial_fit(X, y)
    assert _zero_filters(net.module_, "temporal_conv") < 4
    with pytest.raises(ValueError, match="ratio"):
        _net(EEGNet(chunk_size=64, num_electrodes=8), [SoftFilterPruning(1.0)]).fit(X, y)


def test_fitted_callbacks_clone_with_their_parameters_only():
    """A net fitted with skkgp's callbacks clones (what they learnt while training is
    not a parameter), and the clone trains."""
    from sklearn.base import clone

    from skkgp.reproduce.progress import EpochBar

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 8, 64)).astype(np.float32)
    y = np.arange(16) % 2
    callbacks = [
        ("soft", SoftFilterPruning(0.5, global_pruning=True)),
        ("slim", NetworkSlimming(1e-3)),
        ("bar", EpochBar(desc="test")),
    ]
    net = _net(EEGNet(chunk_size=64, num_electrodes=8), callbacks, max_epochs=1).fit(X, y)
    assert net.callbacks[0][1].zeroed_  # it has trained state
    copy = clone(net)
    assert [(name, type(c), c.get_params()) for name, c in copy.callbacks] == [
        (name, type(c), c.get_params()) for name, c in callbacks
    ]
    assert copy.callbacks[0][1].get_params() == {
        "ratio": 0.5, "global_pruning": True, "round_to": None,
    }
    copy.fit(X, y)
    assert _zero_filters(copy.module_, "temporal_conv") == 4
