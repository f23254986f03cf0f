"""Prune to a budget: the smallest ratio whose pruned network meets a MAC or parameter budget.

Users think in costs ("at most 10 MMACs", "under 1 M parameters"), pruning methods in
ratios. :func:`prune_to_budget` searches the ratio by bisection: every trial prunes a
deep copy of the network with :func:`~skkgp.pruning.prune` and counts it with the
same counters the report uses (:func:`~skkgp.pruning.count_macs`,
:func:`~skkgp.pruning.count_params`; their non-zero variants for the masked
``"umwp"``), so the budget is met as the report counts it. The cost only falls as the
ratio grows (every layer keeps ``floor(n * (1 - ratio))`` filters), and the search
stops once the ratio is known to within half of ``1 / N``, ``N`` the number of
prunable filters (weights for ``"umwp"``, at most to :data:`RATIO_TOLERANCE`): finer
than any one-filter step, so the network found is the largest that meets the budget,
within one rounding step. The search goes no higher than the largest ratio at which
every layer keeps a filter (structural methods keep one at any ratio) or, for
``"umwp"``, a weight (:class:`~skkgp.pruning.base.LayerCollapseError`): a budget met
only by emptying whole layers is not met.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch import nn

from skkgp.pruning.api import get_method, prune
from skkgp.pruning.base import LayerCollapseError, TrainingBatch, check_example_inputs
from skkgp.pruning.counting import (
    MAC_LAYER_TYPES,
    count_macs,
    count_nonzero_macs,
    count_nonzero_params,
    count_params,
)
from skkgp.pruning.report import PruningReport
from skkgp.pruning.units import UnitGraph, find_last_layer

__all__ = [
    "MAX_RATIO",
    "RATIO_TOLERANCE",
    "BudgetSearch",
    "budget_costs",
    "check_budget",
    "find_budget_ratio",
    "prunable_widths",
    "prune_to_budget",
    "refuse_met_budget",
]

#: The finest the search resolves the ratio (reached for masked weights only).
RATIO_TOLERANCE = 1e-6
#: The largest ratio tried: structural methods keep one filter per layer there; masked
#: weights stop lower where a layer would lose all of them.
MAX_RATIO = 0.999


@dataclass(frozen=True)
class BudgetSearch:
    """The outcome of a budget search.

    Parameters
    ----------
    ratio : float
        The smallest ratio found whose pruned network meets the budget.
    missed_ratio : float
        The largest ratio tried whose pruned network does not (0 for the origin).
    macs, params : int
        MACs and parameters of the network pruned at ``ratio`` (non-zero counts for
        masked methods).
    trials : int
        Networks pruned and counted.
    """

    ratio: float
    missed_ratio: float
    macs: int
    params: int
    trials: int


def _check_budget(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return int(value)


def budget_costs(module: nn.Module, example_inputs, method: str) -> tuple[int, int]:
    """MACs per sample and parameters of ``module`` as a budget of ``method`` counts them.

    Dense counts for structural methods, non-zero counts for masked ones (``"umwp"``).
    """
    if get_method(method).structural:
        return count_macs(module, example_inputs), count_params(module)
    return count_nonzero_macs(module, example_inputs), count_nonzero_params(module)


def prunable_widths(module: nn.Module, example_inputs) -> dict[str, int]:
    """Output channels of each prunable channel unit of ``module`` (the classifier's
    output layer excluded), by unit name."""
    last = find_last_layer(module, example_inputs)
    graph = UnitGraph(module, example_inputs, [] if last is None else [last])
    return {unit.name: unit.n_channels for unit in graph.units}


def _n_prunable(module: nn.Module, method: str, example_inputs) -> int:
    """Filters (or, for masked methods, weights) a ratio is a fraction of."""
    if get_method(method).structural:
        return max(1, sum(prunable_widths(module, example_inputs).values()))
    return max(1, sum(
        layer.weight.numel() for layer in module.modules() if isinstance(layer, MAC_LAYER_TYPES)
    ))


def _meets(costs: tuple[int, int], target_macs: int | None, target_params: int | None) -> bool:
    macs, params = costs
    return (target_macs is None or macs <= target_macs) and (
        target_params is None or params <= target_params
    )


def _describe(costs: tuple[int, int], target_macs: int | None,
              target_params: int | None) -> str:
    macs, params = costs
    parts = []
    if target_macs is not None:
        parts.append(f"{macs:,} MACs (target_macs={target_macs:,})")
    if target_params is not None:
        parts.append(f"{params:,} parameters (target_params={target_params:,})")
    return " and ".join(parts)


class _Budget:
    """A budget for ``method`` on ``module``: trials on deep copies, and its checks."""

    def __init__(self, module, method, example_inputs, target_macs, target_params,
                 prune_options):
        self.target_macs = _check_budget("target_macs", target_macs)
        self.target_params = _check_budget("target_params", target_params)
        if self.target_macs is None and self.target_params is None:
            raise ValueError("give a budget: target_macs and/or target_params.")
        example_inputs = check_example_inputs(example_inputs)
        # One sample counts MACs per sample as well as many, and traces faster.
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = example_inputs[:1]
        self.module, self.method, self.example_inputs = module, method, example_inputs
        self.prune_options = prune_options
        self.trials = 0
        #: The largest ratio the search may try (set by :meth:`check`).
        self.high_ratio = MAX_RATIO

    def meets(self, costs: tuple[int, int]) -> bool:
        return _meets(costs, self.target_macs, self.target_params)

    def describe(self, costs: tuple[int, int]) -> str:
        return _describe(costs, self.target_macs, self.target_params)

    def trial(self, ratio: float) -> tuple[int, int]:
        """The costs of a deep copy pruned at ``ratio``."""
        self.trials += 1
        pruned = copy.deepcopy(self.module)
        prune(pruned, self.method, ratio, self.example_inputs, **self.prune_options)
        return budget_costs(pruned, self.example_inputs, self.method)

    def check(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The origin's costs and those at the largest ratio (:data:`MAX_RATIO`, or
        below it the largest at which every layer keeps a weight); errors when the
        origin meets the budget already or the largest ratio does not."""
        try:
            high_costs = self.trial(MAX_RATIO)
        except LayerCollapseError as error:
            if error.largest_ratio <= 0:
                raise
            self.high_ratio = error.largest_ratio
            high_costs = self.trial(self.high_ratio)
        origin_costs = budget_costs(self.module, self.example_inputs, self.method)
        refuse_met_budget(origin_costs, target_macs=self.target_macs,
                          target_params=self.target_params)
        if not self.meets(high_costs):
            if self.high_ratio < MAX_RATIO:
                where = (f"ratio {self.high_ratio:g}, the largest at which every layer "
                         "keeps a weight (a higher one would mask whole layers)")
            else:
                where = f"ratio {MAX_RATIO} (one filter or a few weights left per layer)"
            raise ValueError(
                f"the budget cannot be reached with method={self.method!r}: pruned at "
                f"{where} the network still has {self.describe(high_costs)}. Ask for "
                "more, or use another method or model."
            )
        return origin_costs, high_costs


def refuse_met_budget(
    costs: tuple[int, int],
    *,
    target_macs: float | None = None,
    target_params: float | None = None,
) -> None:
    """Refuse a budget that the unpruned network meets already.

    The unpruned cost depends on the architecture and the input shape only (a masked
    method's non-zero counts are at most the dense ones), so the costs of a freshly
    built network can refuse a budget before any training.

    Parameters
    ----------
    costs : tuple of int
        The unpruned network's MACs per sample and parameters.
    target_macs, target_params : number, optional
        The budget, as for :func:`find_budget_ratio`.

    Raises
    ------
    ValueError
        When ``costs`` are within the budget: there is nothing to prune.
    """
    target_macs = _check_budget("target_macs", target_macs)
    target_params = _check_budget("target_params", target_params)
    if _meets(costs, target_macs, target_params):
        raise ValueError(
            f"the budget is not below the unpruned network's cost: it has "
            f"{_describe(costs, target_macs, target_params)}; nothing to prune. Ask for "
            "less, or leave the network as it is."
        )


def check_budget(
    module: nn.Module,
    method: str,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    target_macs: float | None = None,
    target_params: float | None = None,
    global_pruning: bool | None = None,
    round_to: int | None = None,
    batch: TrainingBatch | None = None,
    method_options: Mapping | None = None,
) -> tuple[int, int]:
    """Check that ``method`` can bring ``module`` within a budget, without searching.

    One trial at :data:`MAX_RATIO` (or, for ``"umwp"``, the largest ratio at which
    every layer keeps a weight, when lower) on a deep copy; ``module`` is not changed.

    Parameters
    ----------
    module, method, example_inputs, target_macs, target_params, global_pruning, \
round_to, batch, method_options
        As for :func:`find_budget_ratio`.

    Returns
    -------
    costs : tuple of int
        The unpruned network's MACs per sample and parameters, as the budget counts
        them (:func:`budget_costs`).

    Raises
    ------
    ValueError
        As :func:`find_budget_ratio`.
    """
    budget = _Budget(module, method, example_inputs, target_macs, target_params, dict(
        global_pruning=global_pruning, round_to=round_to, batch=batch,
        method_options=method_options))
    return budget.check()[0]


def find_budget_ratio(
    module: nn.Module,
    method: str,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    target_macs: float | None = None,
    target_params: float | None = None,
    global_pruning: bool | None = None,
    round_to: int | None = None,
    batch: TrainingBatch | None = None,
    method_options: Mapping | None = None,
) -> BudgetSearch:
    """The smallest ratio at which ``method`` makes ``module`` meet a budget.

    ``module`` is not changed: every trial prunes a deep copy.

    Parameters
    ----------
    module : torch.nn.Module
    method : str
        One of :data:`skkgp.pruning.METHODS`.
    example_inputs : Tensor or sequence of Tensor
        As for :func:`~skkgp.pruning.prune`; they count the MACs per sample.
    target_macs, target_params : number, optional
        The budget: MACs per sample and/or parameters at most (non-zero counts for the
        masked ``"umwp"``). At least one.
    global_pruning, round_to, batch, method_options
        As for :func:`~skkgp.pruning.prune`.

    Returns
    -------
    search : BudgetSearch

    Raises
    ------
    ValueError
        No budget, a budget the unpruned network already meets (nothing to prune),
        or one that even :data:`MAX_RATIO` does not reach (for ``"umwp"``, nor the
        largest ratio at which every layer keeps a weight).
    """
    budget = _Budget(module, method, example_inputs, target_macs, target_params, dict(
        global_pruning=global_pruning, round_to=round_to, batch=batch,
        method_options=method_options))
    tolerance = max(RATIO_TOLERANCE, 0.5 / _n_prunable(module, method, budget.example_inputs))
    _, high_costs = budget.check()
    low, high = 0.0, budget.high_ratio
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        costs = budget.trial(middle)
        if budget.meets(costs):
            high, high_costs = middle, costs
        else:
            low = middle
    return BudgetSearch(
        ratio=high, missed_ratio=low, macs=high_costs[0], params=high_costs[1],
        trials=budget.trials,
    )


def prune_to_budget(
    module: nn.Module,
    method: str,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    **options: Any,
) -> PruningReport:
    """Prune ``module`` in place to the largest network that meets a budget.

    :func:`find_budget_ratio` finds the ratio; ``module`` is then pruned at it.

    Parameters
    ----------
    module : torch.nn.Module
        Modified in place.
    method, example_inputs
        As for :func:`find_budget_ratio`.
    **options
        The keyword arguments of :func:`find_budget_ratio` (``target_macs``,
        ``target_params``, ``global_pruning``, ``round_to``, ``batch``,
        ``method_options``); those of :func:`~skkgp.pruning.prune` prune at the ratio found.

    Returns
    -------
    report : PruningReport
        With ``ratio`` the ratio found and ``target_macs``/``target_params`` the budget.

    Examples
    --------
    >>> import torch
    >>> from skkgp.models import CCNN
    >>> from skkgp.pruning import count_macs
    >>> from skkgp.pruning.budget import prune_to_budget
    >>> net, grid = CCNN(), torch.randn(2, 4, 9, 9)
    >>> report = prune_to_budget(net, "lfp", grid, target_macs=20_000_000)
    >>> count_macs(net, grid) <= 20_000_000
    True
    """
    search = find_budget_ratio(module, method, example_inputs, **options)
    pruning = {name: options[name] for name in ("global_pruning", "round_to", "batch",
                                                "method_options") if name in options}
    report = prune(module, method, search.ratio, example_inputs, **pruning)
    report.target_macs = _check_budget("target_macs", options.get("target_macs"))
    report.target_params = _check_budget("target_params", options.get("target_params"))
    return report
