"""skkgp: knowledge-guided network pruning of EEG deep-learning models.

skkgp prunes a fitted EEG network (L1 filter pruning, network slimming, magnitude
weight pruning, soft filter pruning) and recovers its accuracy with two loss terms
built from guided Grad-CAM evidence: a region-wise loss that pulls the evidence
towards a brain region chosen from neuroscience, and a sample-wise loss that weights
samples by how well their evidence agrees with it (Rao & Zhong, IEEE BIBM 2023).
Every estimator follows the scikit-learn contract.

Submodules are imported on first use so that ``import skkgp`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> submodule that defines it. Resolved lazily by ``__getattr__``.
_LAZY_NAMES = {
    "EEGClassifier": "skkgp.classifier",
    "KnowledgeGuidedPruner": "skkgp.pruner",
    "save": "skkgp.persistence",
    "load": "skkgp.persistence",
    "export_onnx": "skkgp.export",
}
_SUBMODULES = {
    "classifier",
    "datasets",
    "export",
    "models",
    "layout",
    "knowledge",
    "pruner",
    "pruning",
    "transforms",
    "persistence",
}

__all__ = ["EEGClassifier", "KnowledgeGuidedPruner", "save", "load", "export_onnx",
           "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        module = importlib.import_module(_LAZY_NAMES[name])
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"skkgp.{name}")
    raise AttributeError(f"module 'skkgp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
