"""``prune``: one entry point for every pruning method, and the method checks."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from skkgp._training import is_channels_last
from skkgp.pruning.base import (
    PruningMethod,
    PruningRequest,
    TrainingBatch,
    check_example_inputs,
    check_per_layer_scope,
    check_ratios,
    check_round_to,
)
from skkgp.pruning.counting import (
    count_macs,
    count_nonzero_macs,
    count_nonzero_params,
    count_paper_flops,
    count_paper_params,
    count_params,
)
from skkgp.pruning.fpgm import FPGM
from skkgp.pruning.kgi import KnowledgeGuidedImportance
from skkgp.pruning.lamp import LAMP
from skkgp.pruning.lfp import LFP
from skkgp.pruning.masks import masked_tensors
from skkgp.pruning.nsfp import NSFP
from skkgp.pruning.report import PruningReport
from skkgp.pruning.sfp import SFP
from skkgp.pruning.taylor import Taylor
from skkgp.pruning.umwp import UMWP
from skkgp.pruning.units import find_last_layer, resolve_layers

__all__ = [
    "METHODS",
    "prune",
    "check_method",
    "applicable_methods",
    "get_method",
    "is_origin_callback",
    "method_options",
]

_REGISTRY: dict[str, PruningMethod] = {
    m.name: m
    for m in (LFP(), NSFP(), UMWP(), SFP(), Taylor(), FPGM(), LAMP(), KnowledgeGuidedImportance())
}

#: Names of the pruning methods, as passed to :func:`prune`.
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def get_method(method: str, options: Mapping | None = None) -> PruningMethod:
    """The :class:`~skkgp.pruning.base.PruningMethod` called ``method``, with ``options``.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    options : mapping, optional
        Keyword arguments of the method (``{"scope": "conv"}`` for ``"umwp"``); see
        :func:`method_options`.

    Returns
    -------
    pruning_method : PruningMethod
        The method, with its options and its training-time hooks.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`METHODS`, or an option is unknown to it or
        has a bad value.
    """
    if not (isinstance(method, str) and method.lower() in _REGISTRY):
        raise ValueError(f"Unknown pruning method {method!r}; choose one of {list(METHODS)}.")
    default = _REGISTRY[method.lower()]
    if not options:
        return default
    if not isinstance(options, Mapping):
        raise TypeError(
            f"method_options must be a dict of option names to values, got "
            f"{type(options).__name__}: {options!r}."
        )
    unknown = sorted(set(options) - set(default.option_names))
    if unknown:
        known = list(default.option_names) or "none"
        raise ValueError(
            f"method {default.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {known}."
        )
    return type(default)(**options)


def method_options(method: str) -> dict:
    """The options of ``method`` with their default values.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    options : dict
        ``{}`` for a method without options; ``{"scope": "all"}`` for ``"umwp"``.
    """
    return get_method(method).options()


def is_origin_callback(callback) -> bool:
    """Whether a skorch ``callbacks`` entry is a method's origin-training part.

    Such a callback (:class:`~skkgp.pruning.NetworkSlimming`) shapes the origin fit
    for its method and has no place in the recovery of a pruned network.

    Parameters
    ----------
    callback : Callback, Callback class or (str, Callback)
    """
    return any(m.owns_origin_callback(callback) for m in _REGISTRY.values())


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
    ratio: float | Mapping[str, float],
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    ignored_layers: Sequence[nn.Module | str] | None = None,
    global_pruning: bool | None = None,
    round_to: int | None = None,
    method_options: Mapping | None = None,
    batch: TrainingBatch | None = None,
) -> PruningReport:
    """Prune ``module`` in place and report what went.

    Structural methods (``"lfp"``, ``"nsfp"``, ``"sfp"``) remove filters physically
    with torch-pruning. ``ratio`` is, for ``"lfp"``, the fraction of filters (output
    channels) removed from each prunable layer, ``floor(n * (1 - ratio))`` of ``n``
    kept and at least one; for ``"sfp"`` ``floor(n * ratio)`` removed from each
    (soft filter pruning's rule); for ``"nsfp"`` (ranked globally by default) the
    fraction of all BatchNorm-scaled channels, the lowest ``|gamma|`` below the
    threshold ``sorted[floor(n * ratio)]``. ``"umwp"`` masks the fraction ``ratio`` of
    the weights in its scope (``method_options={"scope": ...}``: ``"all"`` conv and
    linear weights, the default, or ``"conv"`` weights only, as the paper) with the
    smallest magnitudes, globally by default; the masks stay through later training.
    The layer that produces the network's output (the classifier's last layer) never
    loses outputs, and submodule names are kept.

    The report holds skkgp's realized counts and the paper's
    (:func:`~skkgp.pruning.count_paper_params`,
    :func:`~skkgp.pruning.count_paper_flops`); for ``"sfp"`` the paper's are of the
    soft-pruned network, the removed filters zeroed but still in place.

    Parameters
    ----------
    module : torch.nn.Module
        The network; modified in place.
    method : {"lfp", "nsfp", "umwp", "sfp", "taylor", "fpgm", "lamp", "kgi"}
        Pruning method (:data:`METHODS`).
    ratio : float in (0, 1), or dict of str to float
        Fraction of filters (structural methods) or weights (``"umwp"``) to remove. A
        dict gives a ratio per layer (structural methods, ranked per layer): keys are
        the root layers of ``kept_channels`` (``"conv2.1"``), and layers it does not
        name keep all their filters.
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
    method_options : dict, optional
        Options of the method: ``{"scope": "conv" | "all"}`` for ``"umwp"`` (see
        :func:`method_options`); the other methods have none.
    batch : TrainingBatch, optional
        Training samples with their labels, for the criteria that rank filters on data:
        ``"taylor"`` (gradients of the cross-entropy of the batch) and ``"kgi"``
        (Grad-CAM evidence of the batch, and the batch's ``region_mask``). Other
        methods ignore it.

    Returns
    -------
    report : PruningReport

    Raises
    ------
    ValueError
        Unknown method, method not applicable to ``module``, ``ratio`` outside (0, 1),
        an option the method does not have, a data-driven method without ``batch``.

    Warns
    -----
    UserWarning
        When a structural method at a positive ratio removed no channel, with the
        reason (``"nsfp"``: BatchNorm scales tied with the threshold; others: a ratio
        too small for the layers' filter counts).

    Examples
    --------
    >>> import torch
    >>> from skkgp.models import CCNN
    >>> from skkgp.pruning import prune
    >>> net = CCNN()
    >>> report = prune(net, "lfp", 0.1, torch.randn(2, 4, 9, 9))
    >>> report.kept_channels["conv1.1"]
    (57, 64)
    >>> report = prune(CCNN(), "umwp", 0.1, torch.randn(2, 4, 9, 9),
    ...                method_options={"scope": "conv"})
    >>> round(report.paper_params_after / 1e6, 2)
    6.14
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    check_method(method, module)
    pruning_method = get_method(method, method_options)
    ratio = check_ratios(ratio)
    if isinstance(ratio, dict):
        if not pruning_method.structural:
            raise ValueError(
                f"per-layer ratios (a dict) apply to the structural methods; "
                f"method={method!r} takes one float ratio."
            )
        check_per_layer_scope(ratio, global_pruning)
        global_pruning = False
    round_to = check_round_to(round_to)
    example_inputs = check_example_inputs(example_inputs)
    if pruning_method.uses_batch:
        batch = _check_batch(batch, pruning_method)
    if pruning_method.structural:
        masked = sorted(masked_tensors(module))
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
    paper_params_before = count_paper_params(module)
    paper_flops_before = count_paper_flops(module, example_inputs)
    channels_last = is_channels_last(module)
    request = PruningRequest(
        ratio, example_inputs, tuple(ignored), global_pruning=bool(global_pruning),
        round_to=round_to, batch=batch if pruning_method.uses_batch else None,
    )
    # The paper counts a soft-pruned network before its hard step (sfp): count it first.
    soft = pruning_method.soft_network(module, request)
    paper_after = None
    if soft is not None:
        paper_after = count_paper_params(soft), count_paper_flops(soft, example_inputs)
    del soft
    kept = pruning_method.apply(module, request)
    if paper_after is None:
        paper_after = count_paper_params(module), count_paper_flops(module, example_inputs)
    _warn_if_nothing_removed(pruning_method, ratio, kept)
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
        method_options=pruning_method.options(),
        paper_params_before=paper_params_before,
        paper_params_after=paper_after[0],
        paper_flops_before=paper_flops_before,
        paper_flops_after=paper_after[1],
    )


def _warn_if_nothing_removed(pruning_method: PruningMethod, ratio, kept) -> None:
    # A ratio above 0 that leaves the network whole would otherwise pass unnoticed: the
    # recovered network is then the origin retrained.
    ratios = ratio.values() if isinstance(ratio, Mapping) else (ratio,)
    if (pruning_method.structural and kept and any(r > 0 for r in ratios)
            and all(n_kept == n for n_kept, n in kept.values())):
        shown = dict(ratio) if isinstance(ratio, Mapping) else ratio
        warnings.warn(
            f"method={pruning_method.name!r} at ratio {shown} removed no channel: "
            f"{pruning_method.nothing_removed_reason()}.",
            UserWarning, stacklevel=3,
        )


def _check_batch(batch, pruning_method: PruningMethod) -> TrainingBatch:
    if not isinstance(batch, TrainingBatch):
        raise ValueError(
            f"method={pruning_method.name!r} ranks filters on training data: pass "
            "batch=skkgp.pruning.TrainingBatch(inputs, targets"
            + "".join(f", {need}=..." for need in pruning_method.batch_needs)
            + f"), got batch={batch!r}."
        )
    for need in pruning_method.batch_needs:
        if getattr(batch, need) is None:
            raise ValueError(
                f"method={pruning_method.name!r} needs the batch's {need}; got "
                f"TrainingBatch({need}=None)."
            )
    return batch
