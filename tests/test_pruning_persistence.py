"""Pruned networks survive deepcopy, pickle and joblib; estimators holding them clone."""

import copy
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from skkgp.models import FBCCNN, EEGNet, TSCeption
from skkgp.pruning import prune


def _pruned(method):
    torch.manual_seed(0)
    if method == "nsfp":
        net, x = FBCCNN(grid_size=(3, 3)), torch.randn(4, 4, 3, 3)
    elif method == "umwp":
        net, x = TSCeption(num_electrodes=8, chunk_size=64), torch.randn(4, 8, 64)
    else:
        net, x = EEGNet(chunk_size=64, num_electrodes=8), torch.randn(4, 8, 64)
    prune(net, method, 0.5, x[:2])
    return net.eval(), x


def _roundtrips(net):
    yield "deepcopy", copy.deepcopy(net)
    yield "pickle", pickle.loads(pickle.dumps(net))
    buffer = io.BytesIO()
    joblib.dump(net, buffer)
    buffer.seek(0)
    yield "joblib", joblib.load(buffer)


@pytest.mark.parametrize("method", ["lfp", "nsfp", "umwp", "sfp"])
def test_pruned_networks_roundtrip_with_identical_outputs(method):
    net, x = _pruned(method)
    expected = net(x)
    for how, other in _roundtrips(net):
        assert other is not net, how
        assert torch.equal(other(x), expected), how
        assert [p.shape for p in other.parameters()] == [p.shape for p in net.parameters()]
    if method == "umwp":
        # The masks come along and keep working: a masked weight stays zero after a step.
        other = pickle.loads(pickle.dumps(net))
        masked = [m for m in other.modules() if hasattr(m, "weight_mask")]
        assert masked
        optimizer = torch.optim.SGD(other.parameters(), lr=1.0, weight_decay=1.0)
        other.train()
        other(x).sum().backward()
        optimizer.step()
        other(x)
        for m in masked:
            assert torch.all(m.weight[m.weight_mask == 0] == 0)


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 8, 64)).astype(np.float32)
    return X, np.arange(16) % 2


def test_clone_of_classifier_holding_pruned_network_is_independent():
    from skkgp import EEGClassifier

    net, _ = _pruned("lfp")
    pruned_state = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data()
    clf = EEGClassifier(net, max_epochs=2, lr=0.05, batch_size=8, random_state=0)
    twin = clone(clf)
    assert twin.module is not net
    twin.fit(X, y)
    # The clone trained its own copy, with the pruned structure ...
    assert twin.module_.temporal_conv.out_channels == 4
    assert twin.module_.spatial_conv.groups == 4
    # ... and the network held by the original estimator is untouched.
    for key, value in clf.module.state_dict().items():
        assert torch.equal(value, pruned_state[key]), key


def test_clone_of_fitted_classifier_starts_from_pruned_weights():
    from skkgp import EEGClassifier

    net, _ = _pruned("lfp")
    pruned_state = {k: v.clone() for k, v in net.state_dict().items()}
    X, y = _data()
    clf = EEGClassifier(net, max_epochs=2, lr=0.05, batch_size=8, random_state=0).fit(X, y)
    again = clone(clf)
    for key, value in again.module.state_dict().items():
        assert torch.equal(value, pruned_state[key]), key
