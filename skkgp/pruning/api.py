"""``prune``: one entry point for every pruning method, and the method checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from skkgp._training import is_channels_last
from skkgp.pruning.base import (
    PruningMethod,
    check_example_inputs,
    check_ratio,
    check_round_to,
)
from skkgp.pruning.counting import (
    count_macs,
    count_nonzero_macs,
    count_nonzero_params,
    count_params,
)
from skkgp.pruning.lfp import LFP
from skkgp.pruning.nsfp import NSFP
from skkgp.pruning.report import PruningReport
from skkgp.pruning.sfp import SFP
from skkgp.pruning.umwp import UMWP
from skkgp.pruning.units import find_last_layer, resolve_layers

__all__ = ["METHODS", "prune", "check_method", "applicable_methods", "get_method"]

_REGISTRY: dict[str, PruningMethod] = {m.name: m for m in (LFP(), NSFP(), UMWP(), SFP())}

#: Names of the pruning methods, as passed to :func:`prune`.
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def get_method(method: str) -> PruningMethod:
    """The :class:`~skkgp.pruning.base.PruningMethod` called ``method``.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`METHODS`.
    """
    if isinstance(method, str) and method.lower() in _REGISTRY:
        return _REGISTRY[method.lower()]
    raise ValueError(f"Unknown pruning method {method!r}; choose one of {list(METHODS)}.")


def check_method(method: str, module: nn.Module) -> None:
    """Raise a clear error unless ``method`` can prune ``module``.

    Only the module's layer types are inspected, so a module on the ``meta`` device
    (no memory) can be checked before training.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    module : torch.nn.Module

    Raises
    ------
    ValueError
        For an unknown method, or a method that does not apply (``"nsfp"`` on a
        network without BatchNorm, such as CCNN).
    """
    pruning_method = get_method(method)
    reason = pruning_method.reason_not_applicable(module)
    if reason is not None:
        others = [m for m in applicable_methods(module)]
        raise ValueError(
            f"method={method!r} does not apply: {reason}. Methods that apply: {others}."
        )


def applicable_methods(module: nn.Module) -> tuple[str, ...]:
    """Names of the methods of :data:`METHODS` that can prune ``module``.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    methods : tuple of str
    """
    return tuple(
        name for name, m in _REGISTRY.items() if m.reason_not_applicable(module) is None
    )


def prune(
    module: nn.Module,
    method: str,
    ratio: float,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    ignored_layers: Sequence[nn.Module | str] | None = None,
    global_pruning: bool | None = None,
    round_to: int | None = None,
) -> PruningReport:
    """Prune ``module`` in place and report what went.

    Structural methods (``"lfp"``, ``"nsfp"``, ``"sfp"``) remove filters physically
    with torch-pruning: ``ratio`` is the fraction of filters (output channels) removed
    from each prunable layer, ``floor(n * (1 - ratio))`` kept and at least one (for
    ``"nsfp"``, ranked globally by default: the fraction of all BatchNorm-scaled
    channels). ``"umwp"`` masks the fraction ``ratio`` of the conv and linear weights
    with the smallest magnitudes (globally by default); the masks stay through later
    training. The layer that produces the network's output (the classifier's last
    layer) never loses outputs, and submodule names are kept.

    Parameters
    ----------
    module : torch.nn.Module
        The network; modified in place.
    method : {"lfp", "nsfp", "umwp", "sfp"}
        Pruning method (:data:`METHODS`).
    ratio : float in (0, 1)
        Fraction of filters (structural methods) or weights (``"umwp"``) to remove.
    example_inputs : Tensor or sequence of Tensor
        A few input samples, shape ``(n_samples, ...)`` as ``module`` takes them, on
        the module's device; they trace the network's dependencies and count its MACs.
    ignored_layers : sequence of (torch.nn.Module or str), optional
        Further layers (objects or qualified names) whose outputs must not change.
    global_pruning : bool, optional
        Rank channels (weights) across layers rather than per layer. Default: True
        for ``"nsfp"`` and ``"umwp"``, False for ``"lfp"`` and ``"sfp"``.
    round_to : int, optional
        Round the channels each layer keeps up to a multiple of ``round_to``
        (structural methods only).

    Returns
    -------
    report : PruningReport

    Raises
    ------
    ValueError
        Unknown method, method not applicable to ``module``, ``ratio`` outside (0, 1).

    Examples
    --------
    >>> import torch
    >>> from skkgp.models import CCNN
    >>> from skkgp.pruning import prune
    >>> net = CCNN()
    >>> report = prune(net, "lfp", 0.1, torch.randn(2, 4, 9, 9))
    >>> report.kept_channels["conv1.1"]
    (57, 64)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    check_method(method, module)
    pruning_method = get_method(method)
    ratio = check_ratio(ratio)
    round_to = check_round_to(round_to)
    example_inputs = check_example_inputs(example_inputs)
    if pruning_method.structural:
        masked = sorted(
            name for name, layer in module.named_modules()
            if any(isinstance(h, torch_prune.BasePruningMethod)
                   for h in layer._forward_pre_hooks.values())
        )
        if masked:
            raise ValueError(
                f"method={method!r} removes filters physically, but layers {masked} carry "
                "torch.nn.utils.prune masks (from 'umwp'); make them permanent first with "
                "torch.nn.utils.prune.remove(layer, 'weight')."
            )
    if global_pruning is None:
        global_pruning = pruning_method.default_global
    ignored = resolve_layers(module, ignored_layers)
    try:
        last = find_last_layer(module, example_inputs)
    except RuntimeError as error:
        inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        raise ValueError(
            f"example_inputs of shape {[tuple(x.shape) for x in inputs]} do not fit "
            f"{type(module).__name__}: {str(error).strip().splitlines()[0]}"
        ) from error
    if last is not None:
        ignored.append(last)

    params_before = count_params(module)
    macs_before = count_macs(module, example_inputs)
    channels_last = is_channels_last(module)
    kept = pruning_method.apply(
        module,
        ratio,
        example_inputs,
        ignored_layers=ignored,
        global_pruning=bool(global_pruning),
        round_to=round_to,
    )
    if channels_last:
        # torch-pruning's slices of the weights come out contiguous: keep the layout the
        # owner chose (skkgp.EEGClassifier's channels_last), and with it the rounding.
        module.to(memory_format=torch.channels_last)
    return PruningReport(
        method=pruning_method.name,
        ratio=ratio,
        params_before=params_before,
        params_after=count_params(module),
        macs_before=macs_before,
        macs_after=count_macs(module, example_inputs),
        nonzero_params_after=count_nonzero_params(module),
        nonzero_macs_after=count_nonzero_macs(module, example_inputs),
        kept_channels=kept,
        structural=pruning_method.structural,
    )
