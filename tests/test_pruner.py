"""Tests of skkgp.pruner.KnowledgeGuidedPruner: the fit flow, every pruning method and
recovery, raw and grid inputs, scikit-learn composition, persistence and bad input."""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, LeaveOneGroupOut, cross_val_score
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback

from skkgp import layout
from skkgp.classifier import EEGClassifier
from skkgp.datasets import make_deap_like
from skkgp.pruner import ConstantPredictorWarning, KnowledgeGuidedPruner
from skkgp.pruning import NetworkSlimming, count_paper_flops, count_paper_params, prune
from skkgp.pruning.base import kept_count
from skkgp.knowledge.evidence import guided_gradcam, mean_region_share
from skkgp.knowledge.losses import region_share
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
from skkgp.models import EEGNet
from skkgp.transforms import BandDifferentialEntropy, ToGrid

N_SUBJECTS = 3

# One epoch on 24 windows often leaves CCNN predicting one class; the warning that says
# so is tested on its own (test_constant_origin_warns) and is noise elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")


@pytest.fixture(scope="module")
def raw():
    """A few DEAP-shaped windows of 3 simulated subjects: X (n, 32, 128), y, groups."""
    # 8 one-second windows per subject keep a CCNN epoch (6 M parameters) near half a
    # second on one core; every subject has both classes.
    data = make_deap_like(n_subjects=N_SUBJECTS, n_trials=4, duration=2, random_state=0)
    return data.X, data.y, data.groups


@pytest.fixture(scope="module")
def grid(raw):
    X, y, groups = raw
    return Pipeline([("de", BandDifferentialEntropy()), ("grid", ToGrid())]).fit_transform(X), y


def _net(module="ccnn", **kwargs):
    params = dict(max_epochs=1, batch_size=16, lr=1e-3, random_state=0)
    params.update(kwargs)
    return EEGClassifier(module, **params)


def _pruner(module="ccnn", net_kwargs=None, **kwargs):
    params = dict(random_state=0)
    params.update(kwargs)
    return KnowledgeGuidedPruner(_net(module, **(net_kwargs or {})), **params)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# ----------------------------------------------------------------------------- the flow
def test_pipeline_on_grids(raw):
    X, y, _ = raw
    pipe = Pipeline([("de", BandDifferentialEntropy()), ("grid", ToGrid()), ("kgp", _pruner())])
    pipe.fit(X, y)
    kgp = pipe[-1]
    assert isinstance(kgp.estimator_, KnowledgeGuidedClassifier)
    np.testing.assert_array_equal(kgp.classes_, np.unique(y))
    assert pipe.predict(X).shape == y.shape
    proba = pipe.predict_proba(X)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert 0.0 <= pipe.score(X, y) <= 1.0
    # Structurally smaller, and the report says by how much.
    report = kgp.pruning_report_
    assert report.method == "lfp"
    assert report.params_after == _n_params(kgp.estimator_.module_)
    assert report.params_before == _n_params(kgp.origin_module_) > report.params_after
    # Grid inputs: the electrodes are the layout's; the default region is front-left.
    assert kgp.electrodes_ == layout.DEAP_CHANNELS
    assert kgp.region == layout.DEFAULT_REGION == "frontal_left"
    assert sorted(np.asarray(kgp.electrodes_)[kgp.region_mask_]) == ["AF3", "F3", "F7", "Fp1"]
    np.testing.assert_array_equal(kgp.estimator_.region_mask_, kgp.region_mask_)
    assert 0.0 <= kgp.origin_score_ <= 1.0
    assert kgp.estimator_.max_epochs == 1

    # Evidence where users look for it: the pipeline, the pruner, its networks.
    X_grid = pipe[:-1].transform(X)
    by_pipeline = guided_gradcam(pipe, X, y)
    np.testing.assert_array_equal(by_pipeline, guided_gradcam(kgp, X_grid, y))
    np.testing.assert_array_equal(by_pipeline, guided_gradcam(kgp.estimator_, X_grid, y))
    assert by_pipeline.shape == (len(y), 32)
    origin = guided_gradcam(kgp.origin_estimator_, X_grid, y)  # a plain EEGClassifier
    assert origin.shape == (len(y), 32) and not np.array_equal(origin, by_pipeline)
    # Held-out evidence share: the method, the function on the pipeline, by hand.
    by_hand = region_share(by_pipeline, kgp.region_mask_).mean()
    assert kgp.region_share(X_grid, y) == pytest.approx(by_hand, rel=1e-6)
    assert mean_region_share(pipe, X, y) == pytest.approx(by_hand, rel=1e-6)
    by_hand_origin = region_share(origin, kgp.region_mask_).mean()
    assert kgp.region_share(X_grid, y, which="origin") == pytest.approx(by_hand_origin, rel=1e-6)
    assert mean_region_share(pipe, X, y, which="origin") == pytest.approx(by_hand_origin,
                                                                           rel=1e-6)
    # Another kind than the recovery's: its layer (conv1) does not apply, on either network.
    for which, network in (("pruned", kgp.estimator_), ("origin", kgp.origin_estimator_)):
        other = region_share(guided_gradcam(network, X_grid, y, evidence="input_x_gradient"),
                             kgp.region_mask_).mean()
        assert mean_region_share(pipe, X, y, which=which, evidence="input_x_gradient") == (
            pytest.approx(other, rel=1e-6))
    with pytest.raises(ValueError, match="which must be 'pruned' or 'origin'"):
        kgp.region_share(X_grid, y, which="both")
    with pytest.raises(ValueError, match="which='origin' needs a fitted KnowledgeGuidedPruner"):
        mean_region_share(kgp.estimator_, X_grid, y, which="origin")
    with pytest.raises(ValueError, match="region_mask is None"):
        mean_region_share(kgp.origin_estimator_, X_grid, y)
    with pytest.raises(ValueError, match="not fitted"):
        guided_gradcam(_pruner(), X_grid)
    with pytest.raises(NotFittedError):
        _pruner().region_share(X_grid)


def test_estimator_is_never_modified(raw):
    X, y, _ = raw
    net = _net("eegnet", lr=2e-3, module__dropout=0.3)
    before = {k: repr(v) for k, v in net.get_params(deep=False).items()}
    kgp = KnowledgeGuidedPruner(net, method="lfp", random_state=3).fit(X, y)
    after = {k: repr(v) for k, v in net.get_params(deep=False).items()}
    assert before == after
    assert kgp.estimator is net
    assert not net.initialized_
    assert not hasattr(net, "module_") and not hasattr(net, "classes_inferred_")
    # The random_state of the pruner reached the clones, not the estimator.
    assert net.random_state == 0
    assert kgp.origin_estimator_.random_state == 3
    # module__ arguments shaped the origin; the recovery trains the pruned instance.
    assert kgp.origin_module_.dropout == 0.3
    assert isinstance(kgp.estimator_.module, torch.nn.Module)
    assert kgp.estimator_.get_params_for("module") == {}
    shapes = [p.shape for p in kgp.estimator_.module_.parameters()]
    assert shapes == [p.shape for p in kgp.estimator_.module.parameters()]
    assert _n_params(kgp.estimator_.module_) < _n_params(kgp.origin_module_)


def test_zero_weights_are_exactly_the_baseline(raw):
    X, y, _ = raw
    kwargs = dict(method="lfp", prune_ratio=0.5, random_state=1, recovery_epochs=2)
    zero = _pruner("eegnet", region_weight=0.0, sample_weighting=0.0, **kwargs).fit(X, y)

    # The baseline by hand: same origin, same pruning, plain cross-entropy recovery.
    origin = _net("eegnet").set_params(random_state=1).fit(X, y)
    module = copy.deepcopy(origin.module_)
    prune(module, "lfp", 0.5, torch.as_tensor(X[:2]))
    baseline = _net(module, max_epochs=2, random_state=1).fit(X, y)

    _assert_same_state(_state(zero.origin_module_), _state(origin.module_))
    _assert_same_state(_state(zero.estimator_.module_), _state(baseline.module_))
    np.testing.assert_array_equal(zero.predict_proba(X), baseline.predict_proba(X))

    # The knowledge terms do change the recovered weights.
    proposed = _pruner("eegnet", region_weight=1.0, sample_weighting=1.0, **kwargs).fit(X, y)
    _assert_same_state(_state(proposed.origin_module_), _state(origin.module_))
    differs = [
        not torch.equal(a, b)
        for a, b in zip(
            proposed.estimator_.module_.state_dict().values(),
            baseline.module_.state_dict().values(),
            strict=True,
        )
    ]
    assert any(differs)


@pytest.mark.parametrize(
    "module, method, recovery",
    [
        ("eegnet", "lfp", "scratch"),
        ("fbccnn", "nsfp", "finetune"),
        ("eegnet", "nsfp", "scratch"),
        ("eegnet", "umwp", "finetune"),
        ("eegnet", "umwp", "scratch"),
        ("fbccnn", "sfp", "finetune"),
        ("eegnet", "sfp", "scratch"),
    ],
)
def test_every_method_and_recovery(raw, grid, module, method, recovery):
    # EEGNet (raw windows) is cheap; FBCCNN covers the grid path of nsfp and sfp.
    X, y = grid if module == "fbccnn" else raw[:2]
    kgp = _pruner(module, method=method, recovery=recovery, prune_ratio=0.5).fit(X, y)
    report = kgp.pruning_report_
    pruned = kgp.estimator_.module_
    assert report.method == method
    if method == "umwp":
        # Masks: same shapes, fewer non-zero weights, and zeros that stayed zero.
        assert _n_params(pruned) == _n_params(kgp.origin_module_)
        assert report.nonzero_params_after < report.params_before
        masked = [m for m in pruned.modules() if hasattr(m, "weight_mask")]
        assert masked
        for layer in masked:
            assert torch.all(layer.weight[layer.weight_mask == 0] == 0)
    else:
        assert _n_params(pruned) == report.params_after < report.params_before
    if method == "nsfp":
        # The origin trained with the network-slimming callback.
        names = [name for name, _ in kgp.origin_estimator_.callbacks_]
        assert "network_slimming" in names
    if method == "sfp":
        # Filters were zeroed during recovery, then removed; the soft step is over.
        names = [name for name, _ in kgp.estimator_.callbacks_]
        assert "soft_filter_pruning" not in names
        assert kgp.pruning_report_.params_before == _n_params(kgp.origin_module_)
    # The paper's counts start from the origin, for sfp too (whose hard step sees the
    # soft-pruned network), and end lower.
    assert report.paper_params_before == count_paper_params(kgp.origin_module_)
    assert report.paper_flops_before == count_paper_flops(
        kgp.origin_module_, torch.as_tensor(X[:1], dtype=torch.float32)
    )
    assert report.paper_params_after < report.paper_params_before
    assert kgp.predict(X).shape == y.shape
    # The recovered net still predicts after the hard step of SFP (optimizer rebuilt too).
    kgp.estimator_.partial_fit(X, y)


def _zero_filters(module):
    return sum(
        int((layer.weight.detach().flatten(1).abs().sum(1) == 0).sum())
        for layer in module.modules() if isinstance(layer, torch.nn.Conv2d)
    )


def test_sfp_estimator_trains_on_without_the_soft_step(raw):
    """After SFP's hard step the estimator keeps the estimator's own callbacks only:
    partial_fit and a clone train the pruned network, zeroing no more filters."""
    from skorch.callbacks import EarlyStopping

    X, y, _ = raw
    stop = EarlyStopping(monitor="train_loss", patience=50)
    kgp = _pruner("eegnet", method="sfp", prune_ratio=0.5, recovery_epochs=2,
                  net_kwargs=dict(callbacks=[("stop", stop)])).fit(X, y)
    net = kgp.estimator_
    assert [name for name, _ in net.callbacks] == ["stop"]
    names = [name for name, _ in net.callbacks_]
    assert "stop" in names and "soft_filter_pruning" not in names
    assert _zero_filters(net.module_) == 0
    net.partial_fit(X, y)
    assert _zero_filters(net.module_) == 0
    copy_ = clone(net).fit(X, y)
    assert _zero_filters(copy_.module_) == 0
    assert copy_.module_.temporal_conv.out_channels == net.module_.temporal_conv.out_channels


def test_the_estimators_network_slimming_replaces_the_methods(raw):
    """A NetworkSlimming among the estimator's callbacks trains the origin in place of
    nsfp's default one (not beside it), and no NetworkSlimming reaches the recovery."""
    X, y, _ = raw
    kgp = _pruner("eegnet", method="nsfp", prune_ratio=0.3,
                  net_kwargs=dict(callbacks=[("slim", NetworkSlimming(1e-3))])).fit(X, y)
    slimming = [(name, c.penalty) for name, c in kgp.origin_estimator_.callbacks_
                if isinstance(c, NetworkSlimming)]
    assert slimming == [("slim", 1e-3)]
    assert not [c for _, c in kgp.estimator_.callbacks_ if isinstance(c, NetworkSlimming)]
    assert kgp.estimator_.callbacks is None


@pytest.mark.parametrize(
    "module, method",
    [("eegnet", "taylor"), ("fbccnn", "fpgm"), ("tsception", "lamp"), ("eegnet", "kgi"),
     ("fbccnn", "kgi")],
)
def test_importance_criteria_in_the_pruner(raw, grid, module, method):
    """The criteria prune inside the pruner, data-driven ones on the training data."""
    X, y = grid if module == "fbccnn" else raw[:2]
    kgp = _pruner(module, method=method, prune_ratio=0.5).fit(X, y)
    report = kgp.pruning_report_
    assert report.method == method
    assert _n_params(kgp.estimator_.module_) == report.params_after < report.params_before
    assert kgp.predict(X).shape == y.shape


@pytest.mark.parametrize("method", ["taylor", "kgi"])
@pytest.mark.parametrize("classes", [[1, 0], [1, 2, 0]])
def test_data_driven_criteria_rank_on_the_networks_own_targets(raw, method, classes):
    """With classes= in any order, taylor and kgi rank filters on the class indices the
    network was trained on, and prune exactly as with classes=None."""
    X, _, _ = raw
    y = np.arange(len(X)) % len(classes)
    kgp = _pruner("eegnet", net_kwargs={"classes": classes}, method=method,
                  prune_ratio=0.5).fit(X, y)
    origin = kgp.origin_estimator_
    assert origin.classes_.tolist() == sorted(classes)
    batch = kgp._training_batch(X, y, kgp.origin_module_, None)  # all rows: n < 256
    np.testing.assert_array_equal(batch.targets.numpy(), origin.encode_labels(y))
    reference = _pruner("eegnet", method=method, prune_ratio=0.5).fit(X, y)
    _assert_same_state(_state(kgp.estimator_.module_), _state(reference.estimator_.module_))


def test_prefit_origin_with_classes_in_another_order(raw):
    X, y, _ = raw
    origin = _net("eegnet", classes=[1, 0]).fit(X, y)
    kgp = KnowledgeGuidedPruner(origin, prefit=True, method="taylor", random_state=0).fit(X, y)
    assert kgp.classes_.tolist() == [0, 1]
    np.testing.assert_array_equal(kgp.origin_estimator_.predict(X), origin.predict(X))


def _cost(net, X, what):
    from skkgp.pruning import count_macs, count_params

    x = torch.as_tensor(X[:1], dtype=torch.float32)
    return count_macs(net, x) if what == "macs" else count_params(net)


@pytest.mark.parametrize("module", ["ccnn", "fbccnn", "eegnet", "tsception"])
def test_budget_in_steps_on_every_zoo_model(raw, grid, module):
    """A MAC budget reached in 3 geometric steps, one recovery epoch after each."""
    X, y = grid if module in ("ccnn", "fbccnn") else raw[:2]
    origin = _pruner(module, prune_ratio=0.1, recovery_epochs=1).fit(X, y).origin_estimator_
    target = int(_cost(origin.module_, X, "macs") * 0.4)
    kgp = KnowledgeGuidedPruner(
        origin, prefit=True, target_macs=target, n_steps=3, schedule="geometric",
        step_recovery="each", recovery_epochs=1, random_state=0,
    ).fit(X, y)
    report = kgp.pruning_report_
    assert _cost(kgp.estimator_.module_, X, "macs") == report.macs_after <= target
    assert report.target_macs == target and report.n_steps == 3
    assert report.macs_before == _cost(origin.module_, X, "macs")
    assert kgp.estimator_.max_epochs == 1
    assert kgp.predict(X).shape == y.shape


@pytest.mark.parametrize("method", ["lfp", "nsfp", "umwp", "kgi"])
@pytest.mark.filterwarnings("ignore:method='nsfp' with prefit=True")
def test_steps_reach_the_one_shot_size(raw, method):
    """Three linear steps (the 3 recovery epochs split 1, 1, 1) end with the one-shot
    network's widths: per layer for per-layer rankings, in total for global ones (nsfp,
    to one channel; which layers keep them depends on the recovery between steps), the
    same non-zero count for umwp."""
    X, y, _ = raw
    origin = _net("eegnet", max_epochs=1).fit(X, y)
    common = dict(prefit=True, method=method, prune_ratio=0.6, random_state=0,
                  recovery_epochs=3)
    one = KnowledgeGuidedPruner(origin, **common).fit(X, y).pruning_report_
    steps = KnowledgeGuidedPruner(origin, n_steps=3, **common).fit(X, y).pruning_report_
    assert steps.n_steps == 3 and steps.ratio == one.ratio == 0.6
    if method == "umwp":
        assert steps.nonzero_params_after == one.nonzero_params_after
    elif method == "nsfp":
        # NSFP's threshold rounds its own way (n - floor(n * ratio) kept): one channel.
        kept_steps = sum(k for k, _ in steps.kept_channels.values())
        assert abs(kept_steps - sum(k for k, _ in one.kept_channels.values())) <= 1
    else:
        assert steps.kept_channels == one.kept_channels
        assert steps.params_after == one.params_after


@pytest.mark.parametrize("method", ["lfp", "lamp", "nsfp"])
@pytest.mark.filterwarnings("ignore:method='nsfp' with prefit=True")
def test_per_layer_steps_reach_the_one_shot_size(raw, method):
    """Per-layer ratios in three steps end with the widths one shot gives, the layers
    they do not name untouched, for methods that rank globally by default too (lamp,
    nsfp): a dict ranks each layer on its own."""
    X, y, _ = raw
    origin = _net("eegnet", max_epochs=1).fit(X, y)
    names = sorted(prune(copy.deepcopy(origin.module_), "lfp", 0.5,
                         torch.as_tensor(X[:2])).kept_channels)
    ratios = {names[0]: 0.7, names[-1]: 0.4}
    common = dict(prefit=True, method=method, prune_ratio=ratios, random_state=0,
                  recovery_epochs=3)
    one = KnowledgeGuidedPruner(origin, **common).fit(X, y).pruning_report_
    steps = KnowledgeGuidedPruner(origin, n_steps=3, **common).fit(X, y).pruning_report_
    assert steps.n_steps == 3
    assert steps.kept_channels == one.kept_channels
    for name, (kept, total) in one.kept_channels.items():
        assert kept == (kept_count(total, ratios[name]) if name in ratios else total)


def test_sfp_ranks_globally_in_the_soft_and_the_hard_step(raw):
    """global_pruning reaches SFP's per-epoch zeroing and its final hard step, as it
    reaches the budget search: the budget found for a global ranking is met, and a
    global ranking keeps other widths than a per-layer one."""
    X, y, _ = raw
    origin = _net("tsception").fit(X, y)
    target = int(_cost(origin.module_, X, "macs") * 0.6)
    common = dict(prefit=True, method="sfp", random_state=0)
    kgp = KnowledgeGuidedPruner(origin, target_macs=target, global_pruning=True,
                                **common).fit(X, y)
    assert _cost(kgp.estimator_.module_, X, "macs") == kgp.pruning_report_.macs_after <= target
    by_layer = KnowledgeGuidedPruner(origin, prune_ratio=0.3, global_pruning=False,
                                     **common).fit(X, y).pruning_report_.kept_channels
    across = KnowledgeGuidedPruner(origin, prune_ratio=0.3, global_pruning=True,
                                   **common).fit(X, y).pruning_report_.kept_channels
    assert by_layer != across
    # floor(n * ratio) of all the filters go, as SFP removes them from each layer.
    total = sum(n for _, n in across.values())
    assert sum(k for k, _ in across.values()) == total - int(total * 0.3)


def test_budget_and_ratio_parameters(grid):
    X, y = grid
    kgp = _pruner("ccnn", target_params=2_000_000).fit(X, y)
    report = kgp.pruning_report_
    assert report.params_after <= 2_000_000 == report.target_params
    assert 0 < report.ratio < 1 and kgp.prune_ratio is None
    # prune_ratio=None without a budget is 0.5; get_params/clone keep None.
    kgp = _pruner("ccnn", method="lamp")
    assert kgp.get_params()["prune_ratio"] is None and clone(kgp).prune_ratio is None
    report = kgp.fit(X, y).pruning_report_
    assert report.ratio == 0.5
    kgp = _pruner("ccnn", prune_ratio={"conv1.1": 0.5}).fit(X, y)
    assert kgp.pruning_report_.kept_channels["conv1.1"] == (32, 64)
    assert kgp.pruning_report_.kept_channels["conv2.1"] == (128, 128)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"prune_ratio": 0.5, "target_macs": 1e6}, "pass one of them"),
        ({"target_macs": 1e12}, "not below the unpruned network's cost"),
        ({"target_params": 10}, "cannot be reached"),
        ({"n_steps": 2, "method": "sfp"}, "n_steps > 1 does not apply"),
        ({"n_steps": 2, "recovery": "scratch"}, "recovery='finetune'"),
        ({"prune_ratio": {"conv1.1": 0.5}, "method": "umwp"}, "per-layer ratios"),
        # Named as the pruner's prune_ratio: raised before the origin is trained.
        ({"prune_ratio": {"conv1.1": 0.5}, "global_pruning": True},
         r"\(prune_ratio as a dict\) .* global_pruning=True: leave global_pruning unset"),
        ({"prune_ratio": {"conv9": 0.5}}, "not prunable units"),
        ({"n_steps": 0}, "n_steps"),
        ({"schedule": "cosine"}, "schedule"),
        ({"step_recovery": "twice"}, "step_recovery"),
    ],
)
def test_bad_budgets_and_schedules(grid, params, match):
    X, y = grid
    with pytest.raises(ValueError, match=match):
        _pruner(**params).fit(X[:8], y[:8])


class _RefuseTraining(Callback):
    def on_train_begin(self, net, **kwargs):
        raise RuntimeError("the origin started training")


@pytest.mark.parametrize("module, ratio, units", [
    ("ccnn", {"conv9": 0.5, "conv1.1": 0.5}, r"\['conv9'\].*'conv1.1', 'conv2.1'"),
    ("eegnet", {"conv1.1": 0.5}, r"\['conv1.1'\].*'temporal_conv'"),
])
def test_unknown_layer_in_ratio_dict_refused_before_the_origin_trains(
    grid, raw, module, ratio, units
):
    X, y = grid if module == "ccnn" else raw[:2]
    kgp = _pruner(module, net_kwargs={"callbacks": [("refuse", _RefuseTraining())]},
                  prune_ratio=ratio)
    with pytest.raises(ValueError, match="prune_ratio names layers " + units):
        kgp.fit(X[:8], y[:8])


@pytest.mark.parametrize("module, method, budget", [
    ("ccnn", "lfp", {"target_macs": 1e12}),
    ("ccnn", "umwp", {"target_params": 1e12}),
    ("eegnet", "sfp", {"target_macs": 1e12, "target_params": 1e12}),
])
def test_budget_the_origin_meets_refused_before_the_origin_trains(grid, raw, module, method,
                                                                   budget):
    # The unpruned cost depends on the architecture and the input shape only.
    X, y = grid if module == "ccnn" else raw[:2]
    kgp = _pruner(module, net_kwargs={"callbacks": [("refuse", _RefuseTraining())]},
                  method=method, **budget)
    with pytest.raises(ValueError, match="not below the unpruned network's cost: it has "):
        kgp.fit(X[:8], y[:8])


class _LazyHeadNet(torch.nn.Module):
    """A user's network whose classifier is a lazy layer, sized by its first input."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, (1, 5))
        self.act = torch.nn.ELU()
        self.fc = torch.nn.LazyLinear(2)

    def forward(self, x):
        return self.fc(self.act(self.conv(x.unsqueeze(1))).flatten(1))


def _lazy_data():
    X = np.random.default_rng(0).standard_normal((16, 32, 8)).astype(np.float32)
    return X, np.array([0, 1] * 8)


@pytest.mark.parametrize("options", [
    {"target_params": 600},
    {"target_macs": 2000},
    {"prune_ratio": {"conv": 0.5}},
])
def test_fit_leaves_the_users_module_instance_untouched(options):
    # The checks before the origin fit run a forward pass: on the user's own object it
    # would materialise the lazy layer from torch's global generator.
    X, y = _lazy_data()
    module = _LazyHeadNet()
    before = _state(module.conv)
    kgp = KnowledgeGuidedPruner(
        EEGClassifier(module, max_epochs=1, batch_size=8, random_state=0), method="lfp",
        recovery_epochs=1, evidence="input_x_gradient", random_state=0, **options,
    )
    kgp.fit(X, y)
    assert isinstance(module.fc, torch.nn.LazyLinear) and module.fc.has_uninitialized_params()
    _assert_same_state(_state(module.conv), before)
    assert kgp.pruning_report_.params_after < kgp.pruning_report_.params_before


def test_budget_on_a_lazy_module_instance_reproducible_under_any_global_seed():
    X, y = _lazy_data()
    probas = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        module = _LazyHeadNet()
        torch.manual_seed(global_seed)  # the user's unrelated use of the global generator
        kgp = KnowledgeGuidedPruner(
            EEGClassifier(module, max_epochs=1, batch_size=8, random_state=0),
            method="lfp", target_params=600, recovery_epochs=1,
            evidence="input_x_gradient", random_state=0,
        ).fit(X, y)
        probas.append(kgp.predict_proba(X))
    np.testing.assert_array_equal(probas[0], probas[1])


def test_budget_a_lazy_module_meets_refused_before_the_origin_trains():
    # Counted on a copy of the user's module, without drawing from the global generator.
    X, y = _lazy_data()
    module = _LazyHeadNet()
    kgp = KnowledgeGuidedPruner(
        EEGClassifier(module, max_epochs=1, batch_size=8,
                      callbacks=[("refuse", _RefuseTraining())]),
        target_params=1e12,
    )
    state = torch.random.get_rng_state()
    with pytest.raises(ValueError, match="not below the unpruned network's cost: it has "):
        kgp.fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert isinstance(module.fc, torch.nn.LazyLinear) and module.fc.has_uninitialized_params()


@pytest.mark.parametrize("method", ["lfp", "umwp"])
@pytest.mark.parametrize("recovery", ["finetune", "scratch"])
def test_finetune_keeps_and_scratch_reinitialises_the_pruned_weights(raw, method, recovery):
    X, y, _ = raw
    # lr=0: training leaves the conv weights where recovery started them.
    kgp = _pruner("eegnet", net_kwargs={"lr": 0.0}, method=method, recovery=recovery)
    kgp.fit(X, y)
    start = copy.deepcopy(kgp.origin_module_)
    prune(start, method, kgp.pruning_report_.ratio, torch.as_tensor(X[:2]))
    recovered = kgp.estimator_.module_.temporal_conv.weight
    pruned = start.temporal_conv.weight
    assert recovered.shape == pruned.shape
    if recovery == "finetune":
        torch.testing.assert_close(recovered, pruned, rtol=0, atol=0)
    else:
        assert not torch.allclose(recovered, pruned)
        if method == "umwp":  # re-initialised, yet the masks still hold
            assert torch.equal(recovered == 0, pruned == 0)


def test_raw_inputs_with_channel_names_and_region_list(raw):
    X, y, _ = raw
    picks = [0, 1, 2, 3, 16, 17, 18, 19]  # Fp1 AF3 F3 F7 Fp2 AF4 Fz F4
    names = [layout.DEAP_CHANNELS[i] for i in picks]
    X8 = X[:, picks, :]
    kgp = _pruner("eegnet", ch_names=names, region=["fp1", "F3"], prune_ratio=0.5).fit(X8, y)
    assert kgp.electrodes_ == tuple(names)
    np.testing.assert_array_equal(kgp.region_mask_, [1, 0, 1, 0, 0, 0, 0, 0])
    assert kgp.estimator_.electrode_axis_ == "channels"
    assert kgp.estimator_.evidence_ == EEGNet.evidence.auto  # evidence="auto"
    assert kgp.pruning_report_.params_after < kgp.pruning_report_.params_before
    assert kgp.predict(X8).shape == y.shape

    # Without ch_names, 8 channels do not match DEAP's 32: the error asks for them.
    with pytest.raises(ValueError, match="ch_names"):
        _pruner("eegnet").fit(X8, y)
    # With 32 channels the DEAP names are the default.
    kgp32 = _pruner("eegnet").fit(X, y)
    assert kgp32.electrodes_ == layout.DEAP_CHANNELS


# ------------------------------------------------------------------------- scikit-learn
def test_grid_search_with_group_kfold(raw):
    X, y, groups = raw
    pipe = Pipeline([("de", BandDifferentialEntropy()), ("grid", ToGrid()), ("kgp", _pruner())])
    search = GridSearchCV(
        pipe,
        {
            "kgp__prune_ratio": [0.3, 0.6],
            "kgp__region_weight": [0.5],
            "kgp__sample_weighting": [0.5],
            "kgp__estimator__lr": [5e-4],
        },
        cv=GroupKFold(n_splits=N_SUBJECTS),
    )
    search.fit(X, y, groups=groups)
    assert len(search.cv_results_["params"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_[-1]
    assert best.estimator.lr == 5e-4 and best.estimator_.lr == 5e-4
    assert best.estimator_.region_weight == 0.5 and best.estimator_.sample_weighting == 0.5
    ratio = search.best_params_["kgp__prune_ratio"]
    assert best.pruning_report_.ratio == ratio


def test_cross_val_score_leave_one_subject_out(raw):
    X, y, groups = raw
    keep = np.isin(groups, np.unique(groups)[:2])
    pipe = Pipeline([("de", BandDifferentialEntropy()), ("grid", ToGrid()), ("kgp", _pruner())])
    scores = cross_val_score(pipe, X[keep], y[keep], groups=groups[keep], cv=LeaveOneGroupOut())
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))


def test_clone_pickle_and_joblib(raw, tmp_path):
    X, y, _ = raw
    kgp = _pruner("eegnet", method="umwp", prune_ratio=0.3).fit(X, y)
    cloned = clone(kgp)
    assert not hasattr(cloned, "estimator_")
    assert cloned.get_params()["prune_ratio"] == 0.3
    assert cloned.estimator is not kgp.estimator and not hasattr(cloned.estimator, "module_")

    expected = kgp.predict_proba(X)
    restored = pickle.loads(pickle.dumps(kgp))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    path = tmp_path / "kgp.joblib"
    joblib.dump(kgp, path)
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X), expected)


def test_predict_before_fit_raises(grid):
    X, _ = grid
    with pytest.raises(NotFittedError):
        _pruner().predict(X)


def test_constant_origin_warns(raw):
    X, y, _ = raw
    # Identical inputs leave the network no way to tell samples apart.
    constant = np.zeros_like(X)
    with pytest.warns(ConstantPredictorWarning, match="single class"):
        kgp = _pruner("eegnet").fit(constant, y)
    assert kgp.origin_is_constant_
    assert kgp.origin_score_ == pytest.approx(max(np.mean(y == c) for c in np.unique(y)))


def test_collapsed_recovery_warns(raw):
    X, y, _ = raw
    origin = _net("eegnet").fit(X, y)
    # A recovery at a learning rate that destroys the pruned network; the origin is sound.
    origin.set_params(lr=1e6)
    kgp = KnowledgeGuidedPruner(origin, prefit=True, region_weight=0, sample_weighting=0,
                                random_state=0)
    with pytest.warns(ConstantPredictorWarning, match="recovery collapsed"):
        kgp.fit(X, y)
    assert not kgp.origin_is_constant_ and kgp.recovered_is_constant_


def test_healthy_origin_does_not_warn(raw, recwarn):
    X, y, _ = raw
    kgp = _pruner("eegnet").fit(X, y)  # seeded: this EEGNet predicts both classes
    assert not kgp.origin_is_constant_ and not kgp.recovered_is_constant_
    assert not [w for w in recwarn if issubclass(w.category, ConstantPredictorWarning)]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"prune_ratio": 0.0}, ValueError, "prune_ratio"),
        ({"prune_ratio": 1.5}, ValueError, "prune_ratio"),
        ({"method": "magic"}, ValueError, "method.*magic"),
        ({"recovery": "later"}, ValueError, "recovery.*later"),
        ({"region": "nowhere"}, ValueError, "nowhere"),
        ({"region": ["Fp1", "XX9"]}, ValueError, "XX9"),
        ({"region_weight": -1.0}, ValueError, "region_weight"),
        ({"sample_weighting": 2.0}, ValueError, "sample_weighting"),
        ({"recovery_epochs": 0}, ValueError, "recovery_epochs"),
        ({"layout": "mars"}, ValueError, "layout"),
        ({"evidence": "saliency"}, ValueError, "evidence must be one of.*got 'saliency'"),
        ({"region_loss": "paper"}, ValueError, "region_loss must be one of.*got 'paper'"),
        ({"method": "nsfp"}, ValueError, "(?i)batchnorm"),  # CCNN has no BatchNorm
    ],
)
def test_bad_params(grid, params, error, match):
    X, y = grid
    with pytest.raises(error, match=match):
        _pruner(**params).fit(X[:4], y[:4])


def test_estimator_must_be_an_eeg_classifier(grid):
    from sklearn.linear_model import LogisticRegression

    X, y = grid
    with pytest.raises(TypeError, match="EEGClassifier.*LogisticRegression"):
        KnowledgeGuidedPruner(LogisticRegression()).fit(X, y)


def test_bad_input_shape(grid):
    X, y = grid
    with pytest.raises(ValueError, match="shape"):
        _pruner().fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match=r"5x5 grids.*up to cell \(8, 8\);"):
        _pruner().fit(X[:, :, :5, :5], y)


def test_column_y_and_bad_y_shapes(raw):
    from sklearn.exceptions import DataConversionWarning

    X, y, _ = raw
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        kgp = _pruner("eegnet", method="taylor", prune_ratio=0.5).fit(X, y[:, None])
    reference = _pruner("eegnet", method="taylor", prune_ratio=0.5).fit(X, y)
    np.testing.assert_array_equal(kgp.predict_proba(X), reference.predict_proba(X))
    origin = _net("eegnet").fit(X, y)
    # Refused before any training, also for a prefit origin (which is not fitted again).
    for pruner in (_pruner("eegnet"), KnowledgeGuidedPruner(origin, prefit=True)):
        with pytest.raises(ValueError, match=r"y should be a 1d array.*\(24, 2\)"):
            pruner.fit(X, np.stack([y, y], axis=1))
        with pytest.raises(ValueError, match="different numbers of samples: 24 and 23"):
            pruner.fit(X, y[:-1])
        assert not hasattr(pruner, "origin_estimator_")


def test_n_features_in_follows_the_fitted_network(raw):
    X, y, _ = raw
    kgp = _pruner("eegnet", prune_ratio=0.5)
    assert not hasattr(kgp, "n_features_in_")
    with pytest.raises(AttributeError, match="no n_features_in_ yet: call fit"):
        kgp.n_features_in_
    kgp.fit(X, y)
    assert kgp.n_features_in_ == kgp.estimator_.n_features_in_ == 32
    assert not hasattr(clone(kgp), "n_features_in_")
    assert pickle.loads(pickle.dumps(kgp)).n_features_in_ == 32


# ------------------------------------------------------------------------------- prefit
def _params_repr(net):
    return {k: repr(v) for k, v in net.get_params(deep=False).items()}


@pytest.mark.parametrize(("module", "method"), [("eegnet", "lfp"), ("fbccnn", "nsfp")])
def test_prefit_gives_the_network_of_fitting_the_origin(raw, grid, module, method):
    X, y = grid if module == "fbccnn" else raw[:2]
    fitted_here = _pruner(module, method=method, random_state=4).fit(X, y)

    # The origin the pruner would fit: its clone with the pruner's random_state, and
    # for nsfp the network-slimming callback.
    callbacks = [("network_slimming", NetworkSlimming())] if method == "nsfp" else None
    origin = _net(module, random_state=4, callbacks=callbacks).fit(X, y)
    params, state = _params_repr(origin), _state(origin.module_)
    prefit = _pruner(module, method=method, random_state=4)
    prefit.set_params(estimator=origin, prefit=True).fit(X, y)

    _assert_same_state(_state(prefit.estimator_.module_), _state(fitted_here.estimator_.module_))
    np.testing.assert_array_equal(prefit.predict_proba(X), fitted_here.predict_proba(X))
    assert prefit.origin_score_ == fitted_here.origin_score_
    assert prefit.origin_is_constant_ == fitted_here.origin_is_constant_
    assert prefit.pruning_report_.to_dict() == fitted_here.pruning_report_.to_dict()
    # The given origin is used as it is, and left as it was.
    _assert_same_state(_state(prefit.origin_module_), state)
    _assert_same_state(_state(origin.module_), state)
    assert _params_repr(origin) == params
    assert prefit.origin_estimator_ is not origin and prefit.origin_module_ is not origin.module_
    assert len(origin.history) == 1  # not trained again
    # The recovery does not inherit the origin's sparsity term.
    names = [name for name, _ in prefit.estimator_.callbacks_]
    assert "network_slimming" not in names


def test_prefit_origin_serves_several_pruners(raw):
    X, y, _ = raw
    origin = _net("eegnet").fit(X, y)
    state = _state(origin.module_)
    baseline = KnowledgeGuidedPruner(origin, prefit=True, region_weight=0, sample_weighting=0,
                                     random_state=0).fit(X, y)
    proposed = KnowledgeGuidedPruner(origin, prefit=True, random_state=0).fit(X, y)
    _assert_same_state(_state(baseline.origin_module_), _state(proposed.origin_module_))
    _assert_same_state(_state(origin.module_), state)
    assert baseline.origin_score_ == proposed.origin_score_ == origin.score(X, y)


def test_prefit_needs_a_fitted_estimator(raw):
    X, y, _ = raw
    with pytest.raises(NotFittedError, match="prefit=True needs an estimator that is already"):
        KnowledgeGuidedPruner(_net("eegnet"), prefit=True).fit(X, y)
    # As for SelectFromModel(prefit=True), a clone holds an unfitted estimator.
    kgp = KnowledgeGuidedPruner(_net("eegnet").fit(X, y), prefit=True)
    cloned = clone(kgp)
    assert cloned.get_params()["prefit"] is True
    with pytest.raises(NotFittedError, match="clone"):
        cloned.fit(X, y)


def test_prefit_checks_shape_and_classes(raw):
    X, y, _ = raw
    origin = _net("eegnet").fit(X, y)
    names = list(layout.DEAP_CHANNELS[:8])
    with pytest.raises(ValueError, match=r"prefit=True.*\(32, 128\).*\(8, 128\)"):
        KnowledgeGuidedPruner(origin, prefit=True, ch_names=names, region=["Fp1"]).fit(
            X[:, :8], y
        )
    with pytest.raises(ValueError, match=r"prefit=True.*\(32, 128\).*\(32, 64\)"):
        KnowledgeGuidedPruner(origin, prefit=True).fit(X[:, :, :64], y)
    with pytest.raises(ValueError, match=r"prefit=True.*classes \[0, 1\].*\[0, 1, 2\]"):
        KnowledgeGuidedPruner(origin, prefit=True).fit(X, np.arange(len(y)) % 3)
    assert len(origin.history) == 1


def test_prefit_nsfp_without_network_slimming_warns(grid):
    X, y = grid
    origin = _net("fbccnn").fit(X, y)
    with pytest.warns(UserWarning, match="without the skkgp.pruning.NetworkSlimming"):
        kgp = KnowledgeGuidedPruner(origin, method="nsfp", prefit=True).fit(X, y)
    assert kgp.pruning_report_.params_after < kgp.pruning_report_.params_before


def test_umwp_scope_reaches_the_pruning_and_the_model_file(grid, tmp_path):
    import skkgp

    X, y = grid
    kgp = _pruner("ccnn", method="umwp", prune_ratio=0.1, method_options={"scope": "conv"},
                  recovery_epochs=1).fit(X, y)
    module = kgp.estimator_.module_
    assert not hasattr(module.lin1[0], "weight_mask")
    assert all(hasattr(module, name) and hasattr(getattr(module, name)[1], "weight_mask")
               for name in ("conv1", "conv2", "conv3", "conv4"))
    report = kgp.pruning_report_
    assert report.method_options == {"scope": "conv"}
    # 10 % of CCNN's 921,600 conv weights, as the paper counts them.
    assert report.paper_params_after == report.paper_params_before - 92_160
    assert clone(kgp).get_params()["method_options"] == {"scope": "conv"}
    path = tmp_path / "umwp.skkgp"
    skkgp.save(kgp, path)
    loaded = skkgp.load(path)
    assert loaded.get_params()["method_options"] == {"scope": "conv"}
    assert loaded.pruning_report_ == report
    np.testing.assert_array_equal(loaded.predict_proba(X), kgp.predict_proba(X))

    default = _pruner("ccnn", method="umwp", prune_ratio=0.1, recovery_epochs=1).fit(X, y)
    assert hasattr(default.estimator_.module_.lin1[0], "weight_mask")
    assert default.pruning_report_.method_options == {"scope": "all"}


def test_bad_method_options_fail_before_the_origin_fit(grid):
    from skkgp._validation import InvalidParameterError

    X, y = grid
    pruner = _pruner("ccnn", method="lfp", method_options={"scope": "conv"})
    with pytest.raises(ValueError, match="method 'lfp' has no option 'scope'"):
        pruner.fit(X, y)
    assert not hasattr(pruner.estimator, "module_")
    with pytest.raises(ValueError, match="UMWP's scope must be one of"):
        _pruner("ccnn", method="umwp", method_options={"scope": "linear"}).fit(X, y)
    with pytest.raises(InvalidParameterError, match="method_options"):
        _pruner("ccnn", method="umwp", method_options="conv").fit(X, y)


@pytest.mark.parametrize(
    "region_weight, sample_weighting",
    [(np.float32(1.0), np.float64(0.5)), (np.float64(0.0), np.float32(1.0))],
)
def test_numpy_scalar_weights_reach_the_recovery(grid, region_weight, sample_weighting):
    X, y = grid
    params = dict(prune_ratio=np.float32(0.5), method="lfp")
    given = _pruner(region_weight=region_weight, sample_weighting=sample_weighting,
                    **params).fit(X, y)
    floats = _pruner(region_weight=float(region_weight),
                     sample_weighting=float(sample_weighting), **params).fit(X, y)
    assert given.estimator_.region_weight == region_weight
    for a, b in zip(given.estimator_.module_.parameters(),
                    floats.estimator_.module_.parameters(), strict=True):
        assert torch.equal(a, b)
