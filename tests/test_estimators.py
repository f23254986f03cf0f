"""Tests of ``skkgp._estimators.fitted_net``: what export and evidence unwrap, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp._estimators import fitted_net
from skkgp.export import network_estimator
from skkgp.knowledge.evidence import guided_gradcam

N_CHANS, N_TIMES = 32, 64  # DEAP's 32 electrodes: the pruner's default layout


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, N_CHANS, N_TIMES)).astype(np.float32)
    y = np.arange(16) % 2
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=8, random_state=0)
    pruner = KnowledgeGuidedPruner(net, method="lfp", prune_ratio=0.5, recovery_epochs=1,
                                   region="frontal", random_state=0).fit(X, y)
    return X, pruner


def test_unwraps_the_net_of_a_pruner_and_the_steps_of_a_pipeline(fitted):
    X, pruner = fitted
    assert fitted_net(pruner, "test") == (pruner.estimator_, [])
    identity = FunctionTransformer()
    pipe = make_pipeline(identity, "passthrough", pruner)
    net, steps = fitted_net(pipe, "test")
    assert net is pruner.estimator_
    assert steps == [("functiontransformer", identity)]
    module = torch.nn.Linear(2, 2)
    assert fitted_net(module, "test", modules=True) == (module, [])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda X, p: EEGClassifier("eegnet"),
         r"This EEGClassifier is not fitted yet: call fit before doing it\."),
        (lambda X, p: KnowledgeGuidedPruner(EEGClassifier("eegnet")),
         r"This KnowledgeGuidedPruner is not fitted yet: call fit before doing it\."),
        (lambda X, p: make_pipeline(StandardScaler(), EEGClassifier("eegnet")),
         r"This EEGClassifier \(the pipeline's last step\) is not fitted yet"),
    ],
)
def test_unfitted_estimators_are_refused_by_name(fitted, make, message):
    with pytest.raises(NotFittedError, match=message):
        fitted_net(make(*fitted), "doing it")


@pytest.mark.parametrize(
    ("make", "got"),
    [
        (lambda X, p: torch.nn.Linear(2, 2), "got Linear."),
        (lambda X, p: StandardScaler(), "got StandardScaler."),
        (lambda X, p: p.estimator_.module_, "got EEGNet."),
        (lambda X, p: make_pipeline(p, StandardScaler()),
         "got a Pipeline ending in StandardScaler."),
        (lambda X, p: make_pipeline(StandardScaler(), "passthrough"),
         "got a Pipeline ending in 'passthrough'."),
    ],
)
def test_wrong_types_are_refused_with_what_was_passed(fitted, make, got):
    with pytest.raises(TypeError, match="doing it takes a fitted skkgp.EEGClassifier, "
                                        "KnowledgeGuidedPruner or a Pipeline ending in one; "
                                        + got.replace(".", r"\.")):
        fitted_net(make(*fitted), "doing it")


def test_export_and_evidence_give_the_same_errors(fitted, tmp_path):
    X, pruner = fitted
    wrong = make_pipeline(pruner, StandardScaler())
    with pytest.raises(TypeError, match="export_onnx takes .*; got a Pipeline ending in "
                                        "StandardScaler"):
        network_estimator(wrong)
    # Evidence also takes a bare module, and says so.
    with pytest.raises(TypeError, match="guided_gradcam takes a torch.nn.Module, a fitted "
                                        ".*; got a Pipeline ending in StandardScaler"):
        guided_gradcam(wrong, X)
    for call in (network_estimator, lambda e: guided_gradcam(e, X)):
        with pytest.raises(NotFittedError, match="This KnowledgeGuidedPruner is not fitted"):
            call(KnowledgeGuidedPruner(EEGClassifier("eegnet")))
