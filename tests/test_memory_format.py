"""The channels-last layout of EEGClassifier's networks: chosen per zoo model and device,
kept through pruning and saving, computing the same gradients."""

import numpy as np
import pytest
import torch
from torch import nn

import skkgp
from skkgp import EEGClassifier, layout
from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption
from skkgp.pruning import prune
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

SHAPES = {"ccnn": (4, 9, 9), "fbccnn": (4, 9, 9), "eegnet": (4, 64), "tsception": (4, 128)}


def _data(shape, n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype("float32"), np.arange(n) % 2


def _one_step_gradients(clf, X, y):
    """The gradients of one training step of a fitted ``clf`` on ``(X, y)``."""
    clf.module_.zero_grad()
    batch = (torch.as_tensor(X), torch.as_tensor(clf.encode_labels(y)))
    with torch.random.fork_rng():
        torch.manual_seed(0)  # same dropout draws
        clf.train_step_single(batch)
    return [p.grad.detach().clone() for p in clf.module_.parameters()]


def _assert_same_gradients(a, b, tolerance=1e-5):
    # Relative to the largest gradient entry of the network: parameters whose gradient is
    # zero in exact arithmetic (a conv bias before BatchNorm) carry pure rounding noise.
    scale = max(g.abs().max() for g in a)
    worst = max((ga - gb).abs().max() for ga, gb in zip(a, b, strict=True))
    assert worst <= tolerance * scale, (worst, scale)


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_auto_follows_the_zoo_declaration_on_cpu(model, weights_layout):
    X, y = _data(SHAPES[model])
    auto = EEGClassifier(model, max_epochs=1, batch_size=16, random_state=0).fit(X, y)
    declared = "cpu" in type(auto.module_).channels_last_devices
    assert weights_layout(auto.module_) == ("channels_last" if declared else "contiguous")
    forced = EEGClassifier(model, max_epochs=1, random_state=0, channels_last=True).fit(X, y)
    assert weights_layout(forced.module_) == "channels_last"
    off = EEGClassifier(model, max_epochs=1, random_state=0, channels_last=False).fit(X, y)
    assert weights_layout(off.module_) == "contiguous"


@pytest.mark.parametrize("model, tolerance", [
    ("ccnn", 1e-5), ("tsception", 1e-5),
    # PyTorch's channels-last BatchNorm for CPUs sums its statistics less accurately
    # (errors growing with batch x positions): why "auto" keeps these two contiguous.
    ("fbccnn", 2e-2), ("eegnet", 2e-2),
])
def test_layouts_give_the_same_gradients(model, tolerance, weights_layout):
    X, y = _data(SHAPES[model])
    common = dict(max_epochs=0, random_state=0)
    if model != "fbccnn":  # FBCCNN has no dropout to switch off
        common["module__dropout"] = 0.0
    start = [EEGClassifier(model, channels_last=flag, **common).fit(X, y)
             for flag in (True, False)]
    assert [weights_layout(f.module_) for f in start] == ["channels_last", "contiguous"]
    _assert_same_gradients(*(_one_step_gradients(f, X, y) for f in start), tolerance)


def test_a_seed_fixes_a_channels_last_fit(weights_layout):
    X, y = _data(SHAPES["ccnn"])
    fits = [EEGClassifier("ccnn", max_epochs=2, batch_size=16, random_state=3).fit(X, y)
            for _ in range(2)]
    assert weights_layout(fits[0].module_) == "channels_last"
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


def test_zoo_declarations_are_device_types():
    for cls in (CCNN, FBCCNN, EEGNet, TSCeption):
        assert set(cls.channels_last_devices) <= {"cpu", "cuda"}
    # Where BatchNorm runs on CPU, channels-last costs accuracy (see above).
    assert "cpu" not in FBCCNN.channels_last_devices + EEGNet.channels_last_devices


class _ViewNet(nn.Module):
    """A user network whose ``view`` breaks on channels-last activations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.out = nn.Linear(8 * 9 * 9, 2)

    def forward(self, x):
        h = self.conv(x)
        return self.out(h.view(h.shape[0], -1))


def test_auto_leaves_user_modules_alone_and_true_converts_them(weights_layout):
    X, y = _data((4, 9, 9))
    net = EEGClassifier(_ViewNet, max_epochs=1, random_state=0).fit(X, y)
    assert weights_layout(net.module_) == "contiguous"
    # Forced on, the user's .view meets channels-last activations; the error is torch's.
    with pytest.raises(RuntimeError, match="view"):
        EEGClassifier(_ViewNet, max_epochs=1, channels_last=True).fit(X, y)
    instance = EEGClassifier(CCNN(grid_size=(9, 9)), max_epochs=1, channels_last=True).fit(X, y)
    assert weights_layout(instance.module_) == "channels_last"


@pytest.mark.parametrize("value", ["yes", None, 1.0, "channels_last"])
def test_bad_channels_last_values_raise(value):
    X, y = _data((4, 9, 9))
    with pytest.raises(ValueError, match="channels_last must be 'auto', True or False"):
        EEGClassifier("ccnn", max_epochs=1, channels_last=value).fit(X, y)


@pytest.mark.parametrize("method", ["lfp", "umwp"])
def test_pruning_keeps_the_layout(method, weights_layout):
    X = torch.randn(2, 4, 9, 9)
    for fmt, name in ((torch.channels_last, "channels_last"),
                      (torch.contiguous_format, "contiguous")):
        net = CCNN(grid_size=(9, 9)).to(memory_format=fmt)
        prune(net, method, 0.5, X)
        weights = [p for n, p in net.named_parameters() if p.dim() == 4]
        assert weights and weights_layout(net) == name
        net(X).sum().backward()  # and the pruned network still trains


def test_knowledge_guided_step_in_either_layout_agrees(weights_layout):
    X, y = _data((4, 9, 9), n=48)
    mask = layout.region_mask("prefrontal", layout.DEAP_CHANNELS)
    fits = [
        KnowledgeGuidedClassifier("ccnn", region_mask=mask, max_epochs=2, random_state=0,
                                  module__dropout=0.0, channels_last=flag).fit(X, y)
        for flag in (True, False)
    ]
    # A trained start (CCNN has no BatchNorm: the layouts agree to rounding throughout).
    fits[1].module_.load_state_dict(fits[0].module_.state_dict())
    assert [weights_layout(f.module_) for f in fits] == ["channels_last", "contiguous"]
    # The double backward of the region-wise loss included.
    _assert_same_gradients(*(_one_step_gradients(f, X, y) for f in fits))


def test_saved_channels_last_model_loads_in_its_layout(tmp_path, weights_layout):
    X, y = _data((4, 9, 9))
    net = EEGClassifier("fbccnn", max_epochs=1, random_state=0, channels_last=True).fit(X, y)
    skkgp.save(net, tmp_path / "m.skkgp")
    loaded = skkgp.load(tmp_path / "m.skkgp")
    assert loaded.get_params()["channels_last"] is True
    assert weights_layout(loaded.module_) == "channels_last"
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


# Random labels and one epoch: the origin may well be constant; the layout is the point.
@pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")
@pytest.mark.parametrize("flag, expected", [("auto", "channels_last"), (False, "contiguous")])
def test_pruner_keeps_the_estimators_layout_through_pruning_and_recovery(
    flag, expected, weights_layout
):
    X, y = _data((4, 9, 9), n=48)
    net = EEGClassifier("ccnn", max_epochs=1, batch_size=16, random_state=0, channels_last=flag)
    kgp = skkgp.KnowledgeGuidedPruner(net, method="lfp", prune_ratio=0.3, recovery_epochs=1,
                                      random_state=0).fit(X, y)
    assert weights_layout(kgp.origin_estimator_.module_) == expected
    assert weights_layout(kgp.estimator_.module_) == expected
    assert kgp.estimator_.get_params()["channels_last"] == flag
