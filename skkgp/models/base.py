"""What every zoo model declares: its input kind, its evidence layer, and how the
shapes of ``X`` map onto its constructor arguments."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import nn

__all__ = ["EvidenceSpec", "ZooModule", "infer_module_kwargs"]


@dataclass(frozen=True)
class EvidenceSpec:
    """Where a model's electrode-resolving activations live.

    Parameters
    ----------
    layer : str
        Dotted name of the submodule (as in ``module.named_modules()``) whose output
        still has an electrode axis. Grad-CAM hooks this module's output.
    electrode_axis : {"grid", "channels"}
        ``"grid"``: the output has shape ``(n, n_filters, rows, cols)`` and each grid
        cell is one electrode of the layout's grid (CCNN, FBCCNN). ``"channels"``: the
        output has shape ``(n, n_filters, n_electrodes, n_times)`` and axis 2 is the
        electrode axis (EEGNet, TSCeption). The model's input maps to electrodes the
        same way (grids, or raw windows with channels on axis 1).
    auto : {"gradcam", "hirescam", "input_x_gradient"}, default="gradcam"
        The evidence kind that ``evidence="auto"`` picks for this model: the one a
        region-wise loss was measured to move (see :mod:`skkgp.knowledge.evidence`).
    """

    layer: str
    electrode_axis: Literal["grid", "channels"]
    auto: Literal["gradcam", "hirescam", "input_x_gradient"] = "gradcam"


class ZooModule(nn.Module):
    """Base class of the zoo: a ``torch.nn.Module`` that knows its input kind.

    Subclasses set ``input_kind`` (``"grid"`` for ``(n, n_bands, rows, cols)``
    inputs, ``"raw"`` for ``(n, n_chans, n_times)`` inputs) and ``evidence``, and may
    set ``channels_last_devices``: the device types (``"cpu"``, ``"cuda"``) on which
    the network trains faster, at the same float32 accuracy, with its convolution
    weights in the channels-last memory format (:class:`skkgp.EEGClassifier` uses it
    with ``channels_last="auto"``).
    """

    input_kind: ClassVar[Literal["grid", "raw"]]
    evidence: ClassVar[EvidenceSpec]
    channels_last_devices: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def input_kwargs(cls, input_shape: Sequence[int]) -> dict:
        """Constructor arguments implied by the shape of one input sample.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of ``X`` without the sample axis: ``(n_bands, rows, cols)`` for grid
            models, ``(n_chans, n_times)`` for raw models.

        Returns
        -------
        kwargs : dict
            Keyword arguments for ``cls(...)``.
        """
        input_shape = tuple(int(s) for s in input_shape)
        if cls.input_kind == "grid":
            if len(input_shape) != 3:
                raise ValueError(
                    f"{cls.__name__} expects grid inputs of shape (n_samples, n_bands, rows, "
                    f"cols); got samples of shape {input_shape}. Map raw windows with "
                    "skkgp.transforms.BandDifferentialEntropy and ToGrid first."
                )
            return {"in_channels": input_shape[0], "grid_size": input_shape[1:]}
        if len(input_shape) != 2:
            raise ValueError(
                f"{cls.__name__} expects raw inputs of shape (n_samples, n_chans, n_times); "
                f"got samples of shape {input_shape}."
            )
        return {"num_electrodes": input_shape[0], "chunk_size": input_shape[1]}


# Names that foreign (e.g. torcheeg) module classes use for shape arguments.
_FOREIGN_GRID = {"in_channels": 0, "grid_size": slice(1, 3)}
_FOREIGN_RAW = {"num_electrodes": 0, "chunk_size": 1, "n_chans": 0, "n_times": 1}
# Tabular (n_samples, n_features) inputs, as scikit-learn's own checks feed them.
_FOREIGN_TABULAR = {"in_features": 0, "n_features": 0, "n_features_in": 0}
_CLASS_ARGS = ("num_classes", "n_classes", "n_outputs")


def infer_module_kwargs(module_cls: type, input_shape: Sequence[int], n_classes: int) -> dict:
    """Constructor arguments of ``module_cls`` inferred from the data.

    Zoo classes answer through :meth:`ZooModule.input_kwargs`. Other classes (a
    torcheeg model, say) get those of the torcheeg-style names ``in_channels``,
    ``grid_size`` (3-D samples), ``num_electrodes``, ``chunk_size`` (2-D samples),
    ``in_features``/``n_features`` (1-D samples) and ``num_classes`` that their
    signature accepts.

    Parameters
    ----------
    module_cls : type
        A ``torch.nn.Module`` subclass.
    input_shape : tuple of int
        Shape of one sample of ``X``.
    n_classes : int
        Number of classes seen at fit.

    Returns
    -------
    kwargs : dict
    """
    input_shape = tuple(int(s) for s in input_shape)
    if isinstance(module_cls, type) and issubclass(module_cls, ZooModule):
        kwargs = module_cls.input_kwargs(input_shape)
        kwargs["num_classes"] = int(n_classes)
        return kwargs
    try:
        accepted = set(inspect.signature(module_cls).parameters)
    except (TypeError, ValueError):
        return {}
    kwargs: dict = {}
    mapping = {1: _FOREIGN_TABULAR, 2: _FOREIGN_RAW, 3: _FOREIGN_GRID}.get(len(input_shape), {})
    for name, where in mapping.items():
        if name in accepted:
            value = input_shape[where]
            kwargs[name] = tuple(value) if isinstance(value, tuple) else int(value)
    for name in _CLASS_ARGS:
        if name in accepted:
            kwargs[name] = int(n_classes)
    return kwargs
