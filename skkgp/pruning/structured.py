"""Structural pruning shared by LFP, NSFP and SFP: rank the channels of every unit,
choose the lowest, remove them with torch-pruning.

The ``ratio`` of a structural method is the fraction of filters (output channels)
removed from each prunable unit (see :mod:`skkgp.pruning.units`); with
``global_pruning`` the same fraction of all prunable channels goes, ranked across
units, each unit keeping at least one channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from skkgp.pruning.base import PruningMethod, PruningRequest, TrainingBatch, kept_count
from skkgp.pruning.units import ChannelUnit, UnitGraph

__all__ = ["StructuredPruning", "select_channels", "round_removals", "filter_norms"]


def filter_norms(module: nn.Module, unit: ChannelUnit, p: float) -> torch.Tensor:
    """p-norm of each unit channel's filters (all its root convs' filters together).

    Parameters
    ----------
    module : torch.nn.Module
    unit : ChannelUnit
    p : float
        1 for the L1 norm (LFP), 2 for the L2 norm (SFP).

    Returns
    -------
    norms : Tensor of float64 on the CPU, shape (unit.n_channels,)
    """
    modules = dict(module.named_modules())
    total = torch.zeros(unit.n_channels, dtype=torch.float64)
    for piece in unit.filters:
        weight = modules[piece.layer].weight.detach()
        rows = weight[list(piece.index)].flatten(1).abs().pow(p).sum(1).double().cpu()
        total.index_add_(0, torch.as_tensor(piece.root_index), rows)
    return total.pow(1.0 / p)


def select_channels(
    scores: dict[str, torch.Tensor],
    ratio: float | Mapping[str, float],
    *,
    global_pruning: bool,
    round_to: int | None = None,
    kept: Callable[[int, float, int | None], int] = kept_count,
) -> dict[str, list[int]]:
    """Channels to remove from each unit: the lowest scores.

    Parameters
    ----------
    scores : dict of str to Tensor of float64 on the CPU, shape (n_channels,)
        Importance of each channel of each unit (higher = keep).
    ratio : float in (0, 1), or dict of str to float
        Fraction of each unit's channels to remove; a dict gives it per unit name
        (units it does not name keep all their channels) and ranks each unit on its
        own.
    global_pruning : bool
        Rank all channels together (a unit may lose more or less than ``ratio`` of its
        channels, never all) or each unit on its own. Not consulted for a dict
        ``ratio``: :func:`~skkgp.pruning.prune` and the pruner reject a dict with
        ``global_pruning=True``.
    round_to : int or None
        Round the channels each unit keeps up to a multiple of this.
    kept : callable, default=kept_count
        ``kept(n_channels, ratio, round_to)``: how many of ``n_channels`` channels stay
        (of each unit; with ``global_pruning``, of all of them, ``round_to=None``).

    Returns
    -------
    removed : dict of str to list of int
    """
    order = {name: torch.argsort(s, stable=True).tolist() for name, s in scores.items()}
    if isinstance(ratio, Mapping):
        return {
            name: sorted(order[name][: len(s) - kept(len(s), ratio[name], round_to)])
            if name in ratio else []
            for name, s in scores.items()
        }
    if not global_pruning:
        return {
            name: sorted(order[name][: len(s) - kept(len(s), ratio, round_to)])
            for name, s in scores.items()
        }
    total = sum(len(s) for s in scores.values())
    target = total - max(len(scores), kept(total, ratio, None))
    candidates = sorted(
        ((float(s[i]), name, i) for name, s in scores.items() for i in range(len(s))),
        key=lambda item: item[0],
    )
    removed: dict[str, list[int]] = {name: [] for name in scores}
    n_removed = 0
    for _, name, index in candidates:
        if n_removed >= target:
            break
        if len(removed[name]) + 1 >= len(scores[name]):
            continue  # every unit keeps one channel
        removed[name].append(index)
        n_removed += 1
    return round_removals(removed, scores, round_to)


def round_removals(
    removed: dict[str, list[int]], scores: dict[str, torch.Tensor], round_to: int | None
) -> dict[str, list[int]]:
    """Give back the highest-scored removals until each unit keeps a multiple of ``round_to``.

    Parameters
    ----------
    removed : dict of str to list of int
        Channels chosen for removal, by unit.
    scores : dict of str to Tensor
        The scores they were chosen by.
    round_to : int or None

    Returns
    -------
    removed : dict of str to list of int
        Sorted channel indices.
    """
    if not round_to:
        return {name: sorted(chosen) for name, chosen in removed.items()}
    rounded = {}
    for name, chosen in removed.items():
        n = len(scores[name])
        n_kept = min(n, round_to * math.ceil((n - len(chosen)) / round_to))
        lowest_first = sorted(chosen, key=lambda i: (float(scores[name][i]), i))
        rounded[name] = sorted(lowest_first[: n - n_kept])
    return rounded


class StructuredPruning(PruningMethod):
    """Rank each unit's channels with :meth:`scores`, remove the lowest physically.

    Criteria that need the whole network at once (torch-pruning's importance classes,
    gradients, evidence) override :meth:`unit_scores` instead.

    Scores are float64 tensors on the CPU without autograd history, whatever the
    module's dtype and device: :meth:`scores` and :meth:`unit_scores` return them so,
    and :meth:`plan` and :meth:`select` use them as they come.
    """

    structural = True
    default_global = False
    #: Divide each unit's scores by their mean before a global ranking (scores of
    #: different layers, such as filter norms, are not comparable otherwise).
    normalize_global: bool = True

    def scores(self, module: nn.Module, unit: ChannelUnit) -> torch.Tensor | None:
        """Importance of each channel of ``unit`` (None: the method skips the unit).

        A detached float64 tensor on the CPU, shape ``(unit.n_channels,)``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement scores() or unit_scores()."
        )

    def unit_scores(
        self, module: nn.Module, graph: UnitGraph, batch: TrainingBatch | None
    ) -> dict[str, torch.Tensor]:
        """Importance of the channels of every unit of ``graph`` (higher = keep).

        Parameters
        ----------
        module : torch.nn.Module
        graph : UnitGraph
            The module's units.
        batch : TrainingBatch or None
            Training samples, for methods with ``uses_batch``.

        Returns
        -------
        scores : dict of str to Tensor of float64 on the CPU, shape (n_channels,)
            Detached (no autograd history); units left out are not pruned.
        """
        scores = {}
        for unit in graph.units:
            unit_scores = self.scores(module, unit)
            if unit_scores is not None:
                scores[unit.name] = unit_scores
        return scores

    def kept(self, n_channels: int, ratio: float, round_to: int | None = None) -> int:
        """Channels of ``n_channels`` that stay at ``ratio``: :func:`kept_count`."""
        return kept_count(n_channels, ratio, round_to)

    def select(
        self, scores: dict[str, torch.Tensor], request: PruningRequest
    ) -> dict[str, list[int]]:
        """Channels to remove from each unit, given their :meth:`scores`."""
        return select_channels(
            scores, request.ratio, global_pruning=request.global_pruning,
            round_to=request.round_to, kept=self.kept,
        )

    def plan(
        self, module: nn.Module, request: PruningRequest
    ) -> tuple[UnitGraph, dict[str, list[int]]]:
        """The units of ``module`` and the channels :meth:`apply` would remove from each.

        ``module`` is left unchanged.
        """
        graph = UnitGraph(module, request.example_inputs, request.ignored_layers)
        if isinstance(request.ratio, Mapping):
            unknown = sorted(set(request.ratio) - {unit.name for unit in graph.units})
            if unknown:
                raise ValueError(
                    f"ratio names layers {unknown} that are not prunable units of "
                    f"{type(module).__name__}; its units are "
                    f"{[unit.name for unit in graph.units]}."
                )
        scores = {}
        for name, unit_scores in self.unit_scores(module, graph, request.batch).items():
            if request.global_pruning and self.normalize_global:
                unit_scores = unit_scores / unit_scores.mean().clamp_min(1e-12)
            scores[name] = unit_scores
        return graph, self.select(scores, request)

    def apply(self, module: nn.Module, request: PruningRequest) -> dict[str, tuple[int, int]]:
        graph, removed = self.plan(module, request)
        units = {unit.name: unit for unit in graph.units}
        for name, channels in removed.items():
            graph.remove(units[name], channels)
        return {
            name: (units[name].n_channels - len(removed.get(name, ())), units[name].n_channels)
            for name in units
        }
