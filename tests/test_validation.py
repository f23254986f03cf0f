"""Parameter constraints (skkgp._validation) and the one range of each knowledge weight."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pytest

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp._validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    validate_params,
)
from skkgp.knowledge.losses import knowledge_guided_loss
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier


@pytest.mark.parametrize(
    "constraint, good, bad",
    [
        (Interval(Real, 0, 1, closed="neither"), [0.5, 1e-9, np.float32(0.3)],
         [0, 1, -0.1, float("nan"), True, "0.5"]),
        (Interval(Real, 0, None, closed="left"), [0, 3, 1e6], [-1e-9, float("inf"), False]),
        (Interval(Integral, 1, None, closed="left"), [1, np.int64(5)], [0, 1.0, True]),
        (Options({"a", "b"}), ["a", "b"], ["c", None, ["a"]]),
        (HasMethods(["fit"]), [EEGClassifier()], [object()]),
    ],
)
def test_constraints_admit_and_refuse(constraint, good, bad):
    assert all(constraint.is_satisfied_by(value) for value in good)
    assert not any(constraint.is_satisfied_by(value) for value in bad)


def test_message_names_the_parameter_the_range_and_the_value():
    constraints = {"ratio": [Interval(Real, 0, 1, closed="neither")], "mode": [Options({"x"}), None]}
    validate_params(constraints, {"ratio": 0.5, "mode": None, "other": object()})
    with pytest.raises(InvalidParameterError, match=r"^ratio must be a finite number in "
                       r"\(0, 1\), got 1\.5\.$"):
        validate_params(constraints, {"ratio": 1.5})
    with pytest.raises(ValueError, match=r"^mode must be 'x' or None, got 3\.$"):
        validate_params(constraints, {"mode": 3})


def _knowledge_fits(**weights):
    """The three places that take the knowledge weights, each with ``weights``."""
    X = np.zeros((4, 4, 9, 9), dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    mask = np.zeros(32, dtype=bool)
    mask[:4] = True
    return {
        "pruner": lambda: KnowledgeGuidedPruner(
            EEGClassifier("ccnn", max_epochs=1), **weights).fit(X, y),
        "classifier": lambda: KnowledgeGuidedClassifier(
            "ccnn", region_mask=mask, max_epochs=1, **weights).fit(X, y),
        "loss": lambda: knowledge_guided_loss(
            np.ones(2), np.ones((2, 32)), mask, weights.get("region_weight", 1.0),
            weights.get("sample_weighting", 1.0)),
    }


@pytest.mark.parametrize("where", ["pruner", "classifier", "loss"])
@pytest.mark.parametrize(
    "weights, name",
    [
        ({"region_weight": -0.1}, "region_weight"),
        ({"region_weight": float("inf")}, "region_weight"),
        ({"sample_weighting": 1.5}, "sample_weighting"),
        ({"sample_weighting": -0.5}, "sample_weighting"),
    ],
)
def test_one_range_per_knowledge_weight(where, weights, name):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        _knowledge_fits(**weights)[where]()
