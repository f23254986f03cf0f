"""Tests of skkgp.knowledge.recovery.KnowledgeGuidedClassifier: real skorch training, tiny data."""

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from skorch.dataset import ValidSplit
from torch.nn.utils import prune

from skkgp import layout
from skkgp.classifier import EEGClassifier
from skkgp.datasets import make_deap_like
from skkgp.knowledge.evidence import ActivationCapture, evidence_from_activations, guided_gradcam
from skkgp.knowledge.losses import knowledge_guided_loss, region_share
from skkgp.models import EEGNet
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

N_CHANS = 6
RAW_MASK = np.array([True, True, False, False, False, False])
GRID_MASK = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)


@pytest.fixture
def raw_data(rng):
    X = rng.standard_normal((48, N_CHANS, 64)).astype("float32")
    y = np.array(["neg", "pos"] * 24)
    X[y == "pos", 4] += 1.0  # class information on an electrode outside the region
    return X, y


@pytest.fixture
def grid_data(rng):
    X = rng.standard_normal((24, 4, 9, 9)).astype("float32")
    return X, np.arange(24) % 2


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_zero_weights_train_exactly_like_eeg_classifier(raw_data, grid_data):
    X, y = raw_data
    params = dict(max_epochs=2, batch_size=16, random_state=3)
    plain = EEGClassifier("eegnet", **params).fit(X, y)
    guided = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, region_weight=0,
                                       sample_weighting=0, guided=True, **params).fit(X, y)
    assert _same_weights(plain.module_, guided.module_)
    assert "train_region_share" not in guided.history_[-1]  # no evidence was computed
    Xg, yg = grid_data
    plain = EEGClassifier("ccnn", max_epochs=1, batch_size=12, random_state=0).fit(Xg, yg)
    guided = KnowledgeGuidedClassifier("ccnn", region_weight=0, sample_weighting=0, max_epochs=1,
                                       batch_size=12, random_state=0).fit(Xg, yg)
    assert _same_weights(plain.module_, guided.module_)


def test_training_step_is_the_design_loss_from_one_forward(raw_data):
    X, y = raw_data
    net = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, region_weight=2.0,
                                    sample_weighting=0.5, evidence="gradcam",
                                    module__dropout=0.0, max_epochs=1, random_state=0).fit(X, y)
    net.on_train_begin(net)
    Xb = torch.as_tensor(X[:16])
    yb = torch.as_tensor(net.encode_labels(y[:16]))
    start = copy.deepcopy(net.module_.state_dict())

    # By hand: one forward in training mode, the evidence of its activations, the loss.
    module = net.module_
    module.train()
    module.zero_grad()
    with ActivationCapture(module.temporal_conv) as capture:
        logits = module(Xb)
    evidence, scores = evidence_from_activations(logits, capture.get(), yb, "channels",
                                                return_scores=True)
    ce = F.cross_entropy(logits, yb, reduction="none")
    expected = knowledge_guided_loss(ce, evidence, torch.as_tensor(RAW_MASK), 2.0, 0.5,
                                     scores=scores)
    expected.backward()
    expected_grads = [p.grad.clone() for p in module.parameters()]
    # The CE alone gives other gradients: the evidence term reaches the weights.
    module.zero_grad()
    F.cross_entropy(module(Xb), yb).backward()
    assert not torch.allclose(module.lin.weight.grad, expected_grads[-1])

    module.load_state_dict(start)  # the BN running stats moved: start again from the same state
    module.zero_grad()
    step = net.train_step_single((Xb, yb))
    torch.testing.assert_close(step["loss"], expected)
    for grad, param in zip(expected_grads, module.parameters(), strict=True):
        torch.testing.assert_close(param.grad, grad)
    # BatchNorm saw exactly one forward pass of the batch.
    torch.testing.assert_close(module.temporal_bn.num_batches_tracked,
                               start["temporal_bn.num_batches_tracked"] + 1)


def test_region_loss_pulls_evidence_into_the_region(raw_data):
    X, y = raw_data
    params = dict(max_epochs=8, batch_size=16, lr=3e-3, random_state=0, module__dropout=0.0)
    baseline = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, region_weight=0,
                                         sample_weighting=0, **params).fit(X, y)
    guided = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, region_weight=5.0,
                                       sample_weighting=0, **params).fit(X, y)
    shares = guided.history_[:, "train_region_share"]
    assert len(shares) == 8 and all(0 <= s <= 1 for s in shares)
    assert shares[-1] > shares[0]
    held = {name: region_share(guided_gradcam(net, X, y), RAW_MASK).mean()
            for name, net in [("baseline", baseline), ("guided", guided)]}
    assert held["guided"] > held["baseline"] + 0.1


def test_region_loss_does_not_kill_the_ccnn_evidence():
    # The region-wise loss once drove conv1's Grad-CAM of CCNN to all zero (the ReLU's
    # dead zone, where the uniform fallback share scored better than living evidence
    # and no gradient came back): 100 % of these windows by epoch 3 (measured).
    data = make_deap_like(n_subjects=1, n_trials=8, duration=6.0, random_state=2)
    features = make_pipeline(BandDifferentialEntropy(), ChannelStandardizer(per_feature=True),
                             ToGrid())
    X = features.fit_transform(data.X)
    mask = layout.region_mask("prefrontal", layout.DEAP_CHANNELS)
    net = KnowledgeGuidedClassifier("ccnn", region_mask=mask, lr=1e-4, max_epochs=4,
                                    batch_size=16, random_state=2).fit(X, data.y)
    zero = net.history_[:, "train_zero_evidence"]
    shares = net.history_[:, "train_region_share"]
    assert max(zero) < 0.5, zero
    assert shares[-1] > shares[0] + 0.1, shares
    held = guided_gradcam(net, X, data.y)
    assert np.mean(held.sum(axis=1) == 0) < 0.5


def test_grid_guided_and_validation_is_plain_cross_entropy(grid_data):
    X, y = grid_data
    net = KnowledgeGuidedClassifier(
        "ccnn", region_mask=GRID_MASK, guided=True, max_epochs=1, batch_size=8, random_state=0,
        train_split=ValidSplit(4, stratified=True),
    ).fit(X, y)
    assert 0 <= net.history_[-1, "train_region_share"] <= 1
    assert net.cells_.shape == (32, 2) and net.evidence_layer_ == "conv1"
    _, valid = net.get_split_datasets(X, y)  # same deterministic split as in fit
    net.module_.eval()
    with torch.no_grad():
        logits = net.module_(valid.dataset.X[valid.indices])
    expected = F.cross_entropy(logits, valid.dataset.targets[valid.indices]).item()
    assert net.history_[-1, "valid_loss"] == pytest.approx(expected, rel=1e-5)


def test_recovers_a_structurally_pruned_network(grid_data):
    X, y = grid_data
    origin = EEGClassifier("ccnn", max_epochs=1, random_state=0).fit(X, y)
    module = copy.deepcopy(origin.module_)
    pruner = tp.pruner.MagnitudePruner(
        module, torch.as_tensor(X[:2]), importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5, ignored_layers=[module.lin2],
    )
    pruner.step()
    assert module.conv1[1].out_channels == 32
    net = KnowledgeGuidedClassifier(module, region_mask=GRID_MASK, max_epochs=1,
                                    random_state=0).fit(X, y)
    # the net trains a copy of the pruned module and keeps its structure
    assert net.module_ is not module and net.module_.conv1[1].out_channels == 32
    assert np.isfinite(net.history_[-1, "train_loss"])
    assert guided_gradcam(net, X[:3]).shape == (3, 32)


def test_masked_weights_stay_zero_during_recovery(raw_data):
    X, y = raw_data
    torch.manual_seed(0)
    module = EEGNet(chunk_size=64, num_electrodes=N_CHANS)
    prune.l1_unstructured(module.separable_pointwise, "weight", amount=0.5)
    net = KnowledgeGuidedClassifier(module, region_mask=RAW_MASK, max_epochs=2,
                                    random_state=0).fit(X, y)
    weight = net.module_.separable_pointwise.weight
    assert (weight == 0).sum() >= weight.numel() // 2
    assert "train_region_share" in net.history_[-1]


def test_clone_pickle_and_params(raw_data):
    X, y = raw_data
    net = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, region_weight=0.3,
                                    sample_weighting=0.7, evidence="gradcam",
                                    evidence_layer="temporal_conv",
                                    electrode_axis="channels", max_epochs=1, random_state=0)
    params = clone(net).get_params()
    assert params["region_weight"] == 0.3 and params["electrode_axis"] == "channels"
    np.testing.assert_array_equal(params["region_mask"], RAW_MASK)
    net.fit(X, y)
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict_proba(X), net.predict_proba(X))


def test_deferred_records_match_the_per_batch_ones(raw_data, monkeypatch):
    # On a GPU the region share and zero-evidence records are read once per epoch; the
    # history must be the one of the per-batch path.
    X, y = raw_data
    params = dict(region_mask=RAW_MASK, region_weight=1.0, sample_weighting=0.5, max_epochs=2,
                  batch_size=16, random_state=0)
    reference = KnowledgeGuidedClassifier("eegnet", **params).fit(X, y)
    deferred = KnowledgeGuidedClassifier("eegnet", **params)
    monkeypatch.setattr(deferred, "_defer_loss_sync", lambda: True)
    deferred.fit(X, y)
    for key in ("train_loss", "train_region_share", "train_zero_evidence"):
        got = deferred.history[-1, "batches", :, key]
        assert all(type(v) is float for v in got), key
        np.testing.assert_allclose(got, reference.history[-1, "batches", :, key], rtol=1e-6)
    assert _same_weights(deferred.module_, reference.module_)


def test_compiled_network_trains_with_the_knowledge_guided_loss(raw_data):
    # torch.compile has no double backward; the knowledge-guided steps run the network
    # uncompiled, so they train exactly as without compile. "aot_eager" goes through
    # AOTAutograd (the part without double backward) but needs no C compiler.
    X, y = raw_data
    params = dict(region_mask=RAW_MASK, region_weight=1.0, sample_weighting=0.5, max_epochs=2,
                  batch_size=16, random_state=0)
    plain = KnowledgeGuidedClassifier("eegnet", **params).fit(X, y)
    compiled = KnowledgeGuidedClassifier("eegnet", compile=True, compile__backend="aot_eager",
                                         **params).fit(X, y)
    assert hasattr(compiled.module_, "_orig_mod")  # it really was compiled
    assert _same_weights(plain.module_, compiled.module_._orig_mod)
    assert compiled.history_[:, "train_region_share"] == plain.history_[:, "train_region_share"]
    np.testing.assert_allclose(compiled.predict_proba(X), plain.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"region_mask": None}, "region_mask is None"),
        ({"region_mask": RAW_MASK[:4]}, "6 channels"),
        ({"region_mask": np.zeros(N_CHANS, bool)}, "selects no electrode"),
        ({"region_weight": -1}, "region_weight"),
        ({"sample_weighting": "high"}, "sample_weighting"),
        ({"evidence_layer": "nope"}, "layer='nope'"),
        ({"evidence_layer": "temporal_conv"}, "needs no layer"),
        ({"electrode_axis": "grid", "cells": np.zeros((3, 3), int)}, "cells"),
        ({"electrode_axis": "time"}, "electrode_axis must be one of"),
        ({"evidence": "gradient"}, "evidence must be one of.*'auto'"),
        ({"evidence": None}, "evidence must be one of.*'auto'"),
        ({"region_loss": "exact"}, "region_loss must be one of"),
    ],
)
def test_bad_parameters_raise_at_fit(raw_data, kwargs, match):
    X, y = raw_data
    params = {"region_mask": RAW_MASK, "max_epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        KnowledgeGuidedClassifier("eegnet", **params).fit(X, y)


@pytest.mark.parametrize("evidence", ["auto", "gradcam", "hirescam", "input_x_gradient"])
def test_every_evidence_kind_trains_and_is_recorded(raw_data, evidence):
    X, y = raw_data
    net = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, evidence=evidence,
                                    max_epochs=2, batch_size=16, random_state=0).fit(X, y)
    expected = EEGNet.evidence.auto if evidence == "auto" else evidence
    assert net.evidence_ == expected
    assert net.evidence_layer_ == (None if expected == "input_x_gradient" else "temporal_conv")
    shares = net.history_[:, "train_region_share"]
    assert len(shares) == 2 and all(0 <= v <= 1 for v in shares)
    # guided_gradcam explains the fitted classifier with the kind it was trained with.
    np.testing.assert_allclose(guided_gradcam(net, X[:5], y[:5]),
                               guided_gradcam(net.module_, X[:5], np.searchsorted(
                                   net.classes_, y[:5]), evidence=expected), rtol=1e-6)


class _NoDeclaredLayer(torch.nn.Module):
    """A user module with no evidence declaration: raw (n, C, T) in, two logits out."""

    def __init__(self, n_chans=N_CHANS, n_times=64, num_classes=2):
        super().__init__()
        self.spatial = torch.nn.Linear(n_chans, 3)
        self.head = torch.nn.Linear(3 * n_times, num_classes)

    def forward(self, x):
        return self.head(torch.tanh(self.spatial(x.transpose(1, 2))).flatten(1))


def test_input_x_gradient_needs_no_declared_layer(raw_data):
    X, y = raw_data
    net = KnowledgeGuidedClassifier(_NoDeclaredLayer, region_mask=RAW_MASK,
                                    evidence="input_x_gradient", max_epochs=2, batch_size=16,
                                    random_state=0).fit(X, y)
    assert net.electrode_axis_ == "channels" and net.evidence_layer_ is None
    region = net.history_[:, "train_region_share"]
    assert region[-1] > region[0]  # the region-wise loss moves this evidence
    # Grad-CAM needs a layer: the error says how to give one, or to use input x gradient.
    with pytest.raises(ValueError, match="input_x_gradient"):
        KnowledgeGuidedClassifier(_NoDeclaredLayer, region_mask=RAW_MASK,
                                  max_epochs=1).fit(X, y)


@pytest.mark.parametrize("evidence, expected", [
    ("auto", "dead_aware"),  # EEGNet's auto evidence is input x gradient
    ("input_x_gradient", "dead_aware"),
    ("gradcam", "straight_through"),
    ("hirescam", "straight_through"),
])
def test_region_loss_auto_takes_the_variant_of_the_evidence_kind(raw_data, evidence, expected):
    X, y = raw_data
    clf = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, evidence=evidence,
                                    max_epochs=1, batch_size=24, random_state=0).fit(X, y)
    assert clf.region_loss == "auto" and clf.region_loss_ == expected
    explicit = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, evidence=evidence,
                                         region_loss="literal", max_epochs=1, batch_size=24,
                                         random_state=0).fit(X, y)
    assert explicit.region_loss_ == "literal"


@pytest.mark.parametrize(
    "region_weight, sample_weighting",
    [(np.float32(1.0), np.float64(1.0)), (np.float64(0.5), np.float32(0.0)),
     (np.float64(0.0), np.float64(0.5))],
)
def test_numpy_scalar_weights_train_like_python_floats(raw_data, region_weight,
                                                        sample_weighting):
    # GridSearchCV over np.linspace or np.array grids sets numpy scalars.
    X, y = raw_data
    params = dict(region_mask=RAW_MASK, max_epochs=1, batch_size=16, random_state=0)
    given = KnowledgeGuidedClassifier("eegnet", region_weight=region_weight,
                                      sample_weighting=sample_weighting, **params).fit(X, y)
    floats = KnowledgeGuidedClassifier("eegnet", region_weight=float(region_weight),
                                       sample_weighting=float(sample_weighting),
                                       **params).fit(X, y)
    assert given.region_weight is region_weight  # the parameter itself stays as given
    assert _same_weights(given.module_, floats.module_)


def test_grid_search_over_a_numpy_grid_of_region_weights(grid_data):
    from sklearn.model_selection import GridSearchCV

    X, y = grid_data
    search = GridSearchCV(
        KnowledgeGuidedClassifier("ccnn", region_mask=GRID_MASK, max_epochs=1, batch_size=12,
                                  random_state=0),
        {"region_weight": np.array([0.5, 1.0]), "sample_weighting": np.linspace(0, 1, 2)},
        cv=2, error_score="raise",
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_evidence_of_a_guided_classifier_is_guided_unless_told_otherwise(raw_data):
    from skkgp.knowledge.evidence import mean_region_share

    X, y = raw_data
    clf = KnowledgeGuidedClassifier("eegnet", region_mask=RAW_MASK, guided=True, max_epochs=1,
                                    batch_size=16, random_state=0).fit(X, y)
    guided = guided_gradcam(clf, X, guided=True)
    plain = guided_gradcam(clf, X, guided=False)
    assert not np.allclose(guided, plain)
    np.testing.assert_array_equal(guided_gradcam(clf, X), guided)
    assert mean_region_share(clf, X) == pytest.approx(np.mean(region_share(guided, RAW_MASK)))
    assert mean_region_share(clf, X, guided=False) == pytest.approx(
        np.mean(region_share(plain, RAW_MASK)))
    # A plain classifier's evidence stays unguided.
    clf.set_params(guided=False)
    np.testing.assert_array_equal(guided_gradcam(clf, X), plain)


class _FrozenBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm that normalises with its running statistics even while training."""

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


class _CountedCenteredConv(torch.nn.Conv2d):
    """Weight-standardised convolution that counts its calls."""

    calls = 0

    def _conv_forward(self, x, weight, bias):
        self.calls += 1
        return super()._conv_forward(x, weight - weight.mean(dim=(1, 2, 3), keepdim=True),
                                     bias)


class _CountedPad(torch.nn.ZeroPad2d):
    calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class _SubclassNet(torch.nn.Module):
    """Grid input; its own BatchNorm, convolution and pad classes after the evidence layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU())
        self.pad = _CountedPad((1, 1, 1, 1))
        self.conv2 = _CountedCenteredConv(6, 6, 3)
        self.bn = _FrozenBatchNorm(6)
        self.head = torch.nn.Linear(6 * 81, 2)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv2(self.pad(self.conv1(x))))).flatten(1))


def test_user_subclasses_of_torch_layers_train_with_their_own_forward(grid_data):
    # The faster double backward (region_weight > 0) must not swap PyTorch's stock code
    # in for a subclass's forward: the frozen BatchNorm's statistics stay as set, and the
    # subclasses' own code runs as often as in the plain cross-entropy training.
    X, y = grid_data
    calls = []
    for region_weight in (0.0, 1.0):
        module = _SubclassNet()
        module.bn.running_mean.fill_(3.0)
        net = KnowledgeGuidedClassifier(module, region_mask=GRID_MASK,
                                        region_weight=region_weight, evidence_layer="conv1",
                                        electrode_axis="grid", max_epochs=1, batch_size=12,
                                        train_split=None, random_state=0).fit(X, y)
        bn = net.module_.bn
        assert bool((bn.running_mean == 3.0).all()) and int(bn.num_batches_tracked) == 0
        calls.append((net.module_.conv2.calls, net.module_.pad.calls))
    assert calls[0] == calls[1] and calls[0][0] >= 2  # two training batches at least
