"""The fitted network behind an estimator, for the functions that take either.

:func:`skkgp.export_onnx` and :func:`skkgp.knowledge.evidence.guided_gradcam` accept an
:class:`~skkgp.EEGClassifier`, a :class:`~skkgp.KnowledgeGuidedPruner` (its pruned,
recovered network) or a :class:`~sklearn.pipeline.Pipeline` ending in one;
:func:`fitted_net` unwraps them all the same way, with the same messages.
"""

from __future__ import annotations

from typing import Any

from sklearn.exceptions import NotFittedError
from torch import nn

__all__ = ["fitted_net"]


def fitted_net(
    estimator: Any, purpose: str, *, modules: bool = False
) -> tuple[Any, list[tuple[str, Any]]]:
    """The fitted net (or module) that holds the network, and the pipeline steps before it.

    Parameters
    ----------
    estimator : EEGClassifier, KnowledgeGuidedPruner, Pipeline or torch.nn.Module
        A fitted :class:`~skkgp.EEGClassifier` (or subclass), a fitted
        :class:`~skkgp.KnowledgeGuidedPruner`, or a :class:`~sklearn.pipeline.Pipeline`
        ending in one of them; with ``modules=True`` also a :class:`torch.nn.Module`.
    purpose : str
        What the caller does with the network, for the messages, e.g. ``"export_onnx"``.
    modules : bool, default=False
        Accept a bare :class:`torch.nn.Module` (returned as it is).

    Returns
    -------
    net : EEGClassifier or torch.nn.Module
        The fitted net (``estimator_`` of a pruner, the last step of a pipeline) with
        its network in ``module_``; or the module itself.
    preprocessing : list of (str, transformer)
        The pipeline's steps before the net (``"passthrough"`` and ``None`` steps left
        out); empty without a pipeline.

    Raises
    ------
    TypeError
        For anything else; the message names what was passed (and, for a pipeline, its
        last step).
    sklearn.exceptions.NotFittedError
        For an estimator that is not fitted yet (a :class:`ValueError`).
    """
    from sklearn.pipeline import Pipeline

    from skkgp.classifier import EEGClassifier
    from skkgp.pruner import KnowledgeGuidedPruner

    preprocessing: list[tuple[str, Any]] = []
    final, where = estimator, ""
    if isinstance(estimator, Pipeline):
        preprocessing = [(name, step) for name, step in estimator.steps[:-1]
                         if step is not None and step != "passthrough"]
        final, where = estimator.steps[-1][1], "a Pipeline ending in "
    if modules and isinstance(final, nn.Module):
        return final, preprocessing
    if isinstance(final, KnowledgeGuidedPruner):
        if not hasattr(final, "estimator_"):
            raise NotFittedError(_not_fitted(final, where, purpose))
        final = final.estimator_
    if not isinstance(final, EEGClassifier):
        accepted = ("a fitted skkgp.EEGClassifier, KnowledgeGuidedPruner or a Pipeline "
                    "ending in one")
        if modules:
            accepted = "a torch.nn.Module, " + accepted
        raise TypeError(f"{purpose} takes {accepted}; got {where}{_name(final)}.")
    if not hasattr(final, "input_shape_"):
        raise NotFittedError(_not_fitted(final, where, purpose))
    if not isinstance(getattr(final, "module_", None), nn.Module):
        raise ValueError(
            f"The {_name(final)} holds no network: its module_ is "
            f"{_name(getattr(final, 'module_', None))}, not a torch.nn.Module. Fit it again "
            f"before {purpose}."
        )
    return final, preprocessing


def _name(value: Any) -> str:
    # A pipeline may end in "passthrough" or None: those are named as they are.
    return repr(value) if value is None or isinstance(value, str) else type(value).__name__


def _not_fitted(final: Any, where: str, purpose: str) -> str:
    step = " (the pipeline's last step)" if where else ""
    return f"This {_name(final)}{step} is not fitted yet: call fit before {purpose}."
