"""The model zoo: CCNN, FBCCNN, EEGNet and TSCeption, and name resolution.

Each zoo model takes exactly the arrays an :class:`skkgp.EEGClassifier` receives
(grids ``(n, n_bands, 9, 9)`` or raw windows ``(n, n_chans, n_times)``) and declares
its evidence layer (:class:`EvidenceSpec`).
"""

from __future__ import annotations

from torch import nn

from skkgp.models.base import EvidenceSpec, ZooModule, infer_module_kwargs
from skkgp.models.ccnn import CCNN
from skkgp.models.eegnet import EEGNet
from skkgp.models.fbccnn import FBCCNN
from skkgp.models.tsception import TSCeption

__all__ = [
    "CCNN",
    "FBCCNN",
    "EEGNet",
    "TSCeption",
    "MODELS",
    "EvidenceSpec",
    "ZooModule",
    "get_model_class",
    "infer_module_kwargs",
]

#: Zoo names accepted wherever a model is named (``EEGClassifier("ccnn")``).
MODELS: dict[str, type[ZooModule]] = {
    "ccnn": CCNN,
    "fbccnn": FBCCNN,
    "eegnet": EEGNet,
    "tsception": TSCeption,
}


def get_model_class(module: str | type[nn.Module]) -> type[nn.Module]:
    """Resolve a zoo name or a module class to a ``torch.nn.Module`` class.

    Parameters
    ----------
    module : str or type
        A zoo name (case-insensitive: ``"ccnn"``, ``"fbccnn"``, ``"eegnet"``,
        ``"tsception"``) or a ``torch.nn.Module`` subclass.

    Returns
    -------
    module_cls : type
    """
    if isinstance(module, str):
        try:
            return MODELS[module.lower()]
        except KeyError:
            raise ValueError(
                f"Unknown model {module!r}; choose one of {sorted(MODELS)} or pass a "
                "torch.nn.Module class."
            ) from None
    if isinstance(module, type) and issubclass(module, nn.Module):
        return module
    raise TypeError(
        f"module must be a zoo name or a torch.nn.Module class, got {type(module).__name__}: "
        f"{module!r}."
    )
