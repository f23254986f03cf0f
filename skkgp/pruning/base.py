"""The interface every pruning method implements, and the checks shared by all."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn

__all__ = [
    "LayerCollapseError",
    "PruningMethod",
    "PruningRequest",
    "TrainingBatch",
    "check_example_inputs",
    "check_per_layer_scope",
    "check_ratio",
    "check_ratios",
    "check_round_to",
    "kept_count",
]


class LayerCollapseError(ValueError):
    """A ratio would prune away every weight of some layers (layer collapse).

    A layer left without weights outputs a constant, whatever its input. Masked
    pruning (``"umwp"``) raises it rather than return such a network; the structural
    methods keep at least one filter per layer instead.

    Parameters
    ----------
    message : str
    layers : list of str
        The layers that would lose all their weights.
    largest_ratio : float
        The largest ratio at which every layer keeps a weight (0 when none does).
    """

    def __init__(self, message: str, layers: Sequence[str], largest_ratio: float):
        super().__init__(message)
        self.layers = list(layers)
        self.largest_ratio = float(largest_ratio)

    @property
    def usable_ratio(self) -> float:
        """:attr:`largest_ratio` rounded down to 4 decimals, so that the ratio shown
        to a user is one that works (0 when none does)."""
        return math.floor(self.largest_ratio * 1e4) / 1e4 or self.largest_ratio

    def __reduce__(self):
        # Pickle rebuilds an exception from its args, which hold the message only: a
        # worker process that sends this error must send every __init__ argument.
        return type(self), (str(self), self.layers, self.largest_ratio), self.__dict__


@dataclass(frozen=True)
class TrainingBatch:
    """Training samples that data-driven criteria rank filters on.

    First-order Taylor importance takes the gradient of the cross-entropy of
    ``(inputs, targets)``; the knowledge-guided importance takes the Grad-CAM
    evidence of the same samples and the knowledge region.

    Parameters
    ----------
    inputs : Tensor, shape (n_samples, ...)
        Samples as the module takes them, on its device.
    targets : Tensor of int, shape (n_samples,)
        Class index of each sample (``0 .. n_classes - 1``).
    region_mask : ndarray of bool, shape (n_electrodes,), optional
        Which electrodes belong to the knowledge region (knowledge-guided importance).
    cells : ndarray of int, shape (n_electrodes, 2), optional
        Grid cell of each electrode, for grid inputs; None takes the DEAP grid.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    region_mask: np.ndarray | None = None
    cells: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, torch.Tensor) or not isinstance(
            self.targets, torch.Tensor
        ):
            raise TypeError(
                "TrainingBatch needs torch tensors: inputs (n_samples, ...) and targets "
                f"(n_samples,), got {type(self.inputs).__name__} and "
                f"{type(self.targets).__name__}."
            )
        if self.targets.dim() != 1 or len(self.targets) != len(self.inputs):
            raise ValueError(
                f"TrainingBatch: targets must have shape ({len(self.inputs)},), one class "
                f"index per sample of inputs; got {tuple(self.targets.shape)}."
            )


@dataclass(frozen=True)
class PruningRequest:
    """What :func:`skkgp.pruning.prune` asks of a method, validated: one value for
    every step of the method (planning, the soft network, the pruning itself).

    Attributes
    ----------
    ratio : float in (0, 1), or dict of str to float
        Fraction of filters or weights to remove (per root layer for a dict).
    example_inputs : Tensor or sequence of Tensor
        A few input samples that trace the network.
    ignored_layers : sequence of torch.nn.Module, default=()
        Layers whose output channels (or weights) stay untouched.
    global_pruning : bool, default=False
        Rank channels (weights) across layers rather than per layer.
    round_to : int or None, default=None
        Round the channels each layer keeps up to a multiple of ``round_to``.
    batch : TrainingBatch or None, default=None
        Training samples, for the methods that rank on data (``uses_batch``).
    """

    ratio: float | Mapping[str, float]
    example_inputs: Any
    ignored_layers: Sequence[nn.Module] = ()
    global_pruning: bool = False
    round_to: int | None = None
    batch: TrainingBatch | None = None


class PruningMethod(ABC):
    """One pruning method: what it needs and how it prunes a module in place.

    Subclasses set ``name`` (the string users pass to :func:`skkgp.pruning.prune`),
    ``structural`` (physically smaller network, or masks),
    ``default_global`` (rank channels or weights across layers, or per layer),
    ``option_names`` (the keyword arguments of their constructor, the options users
    pass as ``method_options``).

    A method also owns its training-time parts, as Torch-Pruning's pruners own
    ``regularize``: the skorch callbacks its origin network trains with
    (:meth:`origin_callbacks`), those its recovery trains with
    (:meth:`recovery_callbacks`), and whether its structural step comes before the
    recovery or as a final hard step after it (``prunes_after_recovery``).
    :class:`skkgp.KnowledgeGuidedPruner` runs origin -> prune -> recover through
    these hooks without knowing which method it runs.

    A method that ranks on training data sets ``uses_batch`` (and lists in
    ``batch_needs`` what its :class:`TrainingBatch` must hold beyond samples and
    labels): :func:`~skkgp.pruning.prune` then checks the request's ``batch``.
    """

    name: ClassVar[str]
    structural: ClassVar[bool]
    default_global: ClassVar[bool]
    uses_batch: ClassVar[bool] = False
    #: What the batch must hold beyond samples and labels ("region_mask").
    batch_needs: ClassVar[tuple[str, ...]] = ()
    option_names: ClassVar[tuple[str, ...]] = ()

    def options(self) -> dict:
        """The method's options, ``{name: value}`` for each of ``option_names``."""
        return {name: getattr(self, name) for name in self.option_names}

    def soft_network(self, module: nn.Module, request: PruningRequest) -> nn.Module | None:
        """The network the paper counts instead of the pruned one, or None.

        A method whose published counts are of a network before its final step (soft
        filter pruning: zeroed filters still in place) returns it here, built from
        ``module`` before :meth:`apply`, without changing ``module``. None: the paper
        counts the pruned network.
        """
        return None

    #: Whether :meth:`apply` runs after the recovery (a final hard step, as soft filter
    #: pruning's) instead of before it.
    prunes_after_recovery: ClassVar[bool] = False

    def origin_callbacks(self) -> list[tuple[str, Callback]]:
        """Named skorch callbacks the origin network trains with (none by default)."""
        return []

    def owns_origin_callback(self, callback) -> bool:
        """Whether a skorch ``callbacks`` entry is one of :meth:`origin_callbacks`.

        Parameters
        ----------
        callback : Callback, Callback class or (str, Callback)
            An entry of a skorch net's ``callbacks`` or ``callbacks_``.
        """
        return False

    def origin_warning(self, net) -> str | None:
        """Why a network fitted elsewhere is a poor origin for the method, or None.

        Parameters
        ----------
        net : skkgp.EEGClassifier
            A fitted origin, e.g. the ``estimator`` of a pruner with ``prefit=True``.
        """
        return None

    def nothing_removed_reason(self) -> str:
        """Why a structural prune at a positive ratio may remove no channel at all."""
        return ("the ratio is too small for the layers' filter counts (a layer of n "
                "filters loses floor(n * ratio) or fewer)")

    def recovery_callbacks(
        self, ratio: float, *, global_pruning: bool = False
    ) -> list[tuple[str, Callback]]:
        """Named skorch callbacks the pruned network recovers with (none by default).

        Parameters
        ----------
        ratio : float in (0, 1)
            The pruning ratio.
        global_pruning : bool, default=False
            Whether the final step ranks channels across layers: the callbacks rank
            them the same way.
        """
        return []

    def reason_not_applicable(self, module: nn.Module) -> str | None:
        """Why the method cannot prune ``module``, or None when it can."""
        return None

    @abstractmethod
    def apply(self, module: nn.Module, request: PruningRequest) -> dict[str, tuple[int, int]]:
        """Prune ``module`` in place.

        Parameters
        ----------
        module : torch.nn.Module
        request : PruningRequest
            The ratio, example inputs, ignored layers, ranking and rounding.

        Returns
        -------
        kept_channels : dict of str to (int, int)
            Root layer -> (channels kept, channels before).
        """


def check_ratio(ratio) -> float:
    """Validate a pruning ratio: a real number strictly between 0 and 1."""
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, Real)
        or not math.isfinite(float(ratio))
        or not 0.0 < float(ratio) < 1.0
    ):
        raise ValueError(
            f"ratio must be a float strictly between 0 and 1 (the fraction of filters or "
            f"weights to remove), got {ratio!r}."
        )
    return float(ratio)


def check_ratios(ratio) -> float | dict[str, float]:
    """Validate a ratio: one float in (0, 1), or a dict of layer name -> such a float."""
    if isinstance(ratio, Mapping):
        if not ratio:
            raise ValueError("a per-layer ratio dict must name at least one layer.")
        checked = {}
        for name, value in ratio.items():
            if not isinstance(name, str):
                raise ValueError(
                    f"per-layer ratios are keyed by layer name (str), got {name!r}."
                )
            try:
                checked[name] = check_ratio(value)
            except ValueError:
                raise ValueError(
                    f"the ratio of layer {name!r} must be a float strictly between 0 and 1, "
                    f"got {value!r}."
                ) from None
        return checked
    return check_ratio(ratio)


def check_per_layer_scope(ratio, global_pruning: bool | None, name: str = "ratio") -> None:
    """Reject per-layer ratios (a dict) together with ``global_pruning=True``.

    A dict ranks each layer it names on its own, which a global ranking across layers
    contradicts. ``global_pruning=None`` (the method's default) is allowed: per-layer
    ratios then rank per layer.

    Parameters
    ----------
    ratio : float or dict of str to float
    global_pruning : bool or None
    name : str, default="ratio"
        What the caller's user calls ``ratio`` (``"prune_ratio"`` for the pruner).

    Raises
    ------
    ValueError
        If ``ratio`` is a dict and ``global_pruning`` is true.
    """
    if isinstance(ratio, Mapping) and global_pruning:
        raise ValueError(
            f"per-layer ratios ({name} as a dict) rank each layer on its own and cannot be "
            "combined with global_pruning=True: leave global_pruning unset (or pass "
            f"global_pruning=False), or pass one float {name} to rank all layers together."
        )


def check_round_to(round_to) -> int | None:
    """Validate ``round_to``: None or a positive integer."""
    if round_to is None:
        return None
    if isinstance(round_to, bool) or not isinstance(round_to, Integral) or round_to < 1:
        raise ValueError(f"round_to must be None or a positive integer, got {round_to!r}.")
    return int(round_to)


def kept_count(n_channels: int, ratio: float, round_to: int | None = None) -> int:
    """Channels a layer keeps when the fraction ``ratio`` of its ``n_channels`` goes.

    ``floor(n_channels * (1 - ratio))`` (torch-pruning's convention: at ratio 0.1 a
    CCNN keeps 57/115/230/57 of its 64/128/256/64 filters, as in the paper), at least
    one, rounded up to a multiple of ``round_to`` when given, at most ``n_channels``.
    """
    # The epsilon keeps 10 * (1 - 0.7) = 2.9999999999999996 at 3.
    kept = max(1, math.floor(n_channels * (1.0 - ratio) + 1e-9))
    if round_to:
        kept = round_to * math.ceil(kept / round_to)
    return min(n_channels, kept)


def _as_tuple(example_inputs) -> tuple:
    return tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)


def check_example_inputs(example_inputs):
    """Validate ``example_inputs``: a tensor (or a sequence of them) with a sample axis."""
    inputs = _as_tuple(example_inputs)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise TypeError(
            "example_inputs must be a torch.Tensor (or a tuple of them) holding a few "
            f"input samples, got {type(example_inputs).__name__}."
        )
    if any(x.dim() == 0 or x.shape[0] < 1 for x in inputs):
        raise ValueError(
            "example_inputs must have a leading sample axis with at least one sample, got "
            f"shapes {[tuple(x.shape) for x in inputs]}."
        )
    return example_inputs
