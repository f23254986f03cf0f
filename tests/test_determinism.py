"""Determinism on CPU: the same ``random_state`` gives the same fitted model.

Two fits with the same integer ``random_state`` must predict identical probabilities
(bit for bit) for EEGClassifier and for the whole KnowledgeGuidedPruner flow (origin
fit, pruning, knowledge-guided recovery); another seed must give another model, so
the comparison can fail. What holds on a GPU is documented in the README
("Reproducibility"), not tested here: the CI has no GPU.
"""

import numpy as np
import pytest
import torch

from skkgp import EEGClassifier, KnowledgeGuidedPruner, layout

pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")

CH_NAMES = list(layout.DEAP_CHANNELS[:8])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 8, 32)).astype("float32")
    y = np.array([0, 1] * 8)
    return X, y


def _net(module="eegnet", **kwargs):
    params = dict(max_epochs=2, batch_size=4, random_state=0)  # 8 shuffled batches
    params.update(kwargs)
    return EEGClassifier(module, **params)


def _pruner(random_state=0, **kwargs):
    params = dict(method="lfp", prune_ratio=0.5, ch_names=CH_NAMES, random_state=random_state)
    params.update(kwargs)
    return KnowledgeGuidedPruner(_net(max_epochs=1), **params)


def _same(a, b):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("module", ["eegnet", "tsception"])
def test_classifier_same_seed_same_model(data, module):
    X, y = data
    first = _net(module).fit(X, y)
    second = _net(module).fit(X, y)
    _same(first.predict_proba(X), second.predict_proba(X))
    for (name, a), (_, b) in zip(first.module_.state_dict().items(),
                                 second.module_.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert first.history_[:, "train_loss"] == second.history_[:, "train_loss"]
    other = _net(module, random_state=1).fit(X, y)
    assert not np.array_equal(other.predict_proba(X), first.predict_proba(X))


def test_classifier_seed_does_not_depend_on_global_state(data):
    X, y = data
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what we vary
    first = _net().fit(X, y).predict_proba(X)
    torch.manual_seed(999)
    np.random.seed(999)  # noqa: NPY002
    torch.rand(10)  # advance the global generator
    _same(_net().fit(X, y).predict_proba(X), first)


def test_classifier_deterministic_algorithms_change_nothing_on_cpu(data):
    # CPU kernels are deterministic already: forcing torch's deterministic mode (what a
    # GPU run needs) neither fails nor changes the result.
    X, y = data
    expected = _net().fit(X, y).predict_proba(X)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        got = _net().fit(X, y).predict_proba(X)
    finally:
        torch.use_deterministic_algorithms(previous)
    _same(got, expected)


@pytest.mark.parametrize(
    "params",
    [
        dict(method="lfp"),
        dict(method="umwp", recovery="scratch"),
        dict(method="sfp", region_weight=0.5, sample_weighting=0.5),
    ],
    ids=["lfp-finetune", "umwp-scratch", "sfp-weights"],
)
def test_pruner_same_seed_same_model(data, params):
    X, y = data
    first = _pruner(**params).fit(X, y)
    second = _pruner(**params).fit(X, y)
    _same(first.predict_proba(X), second.predict_proba(X))
    _same(first.origin_estimator_.predict_proba(X), second.origin_estimator_.predict_proba(X))
    assert first.pruning_report_.to_dict() == second.pruning_report_.to_dict()
    other = _pruner(random_state=1, **params).fit(X, y)
    assert not np.array_equal(other.predict_proba(X), first.predict_proba(X))


def test_pruner_falls_back_to_the_estimators_seed(data):
    X, y = data
    # random_state=None on the pruner: the estimator's own random_state decides.
    first = _pruner(random_state=None).fit(X, y).predict_proba(X)
    _same(_pruner(random_state=None).fit(X, y).predict_proba(X), first)
