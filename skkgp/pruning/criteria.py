"""Importance criteria of torch-pruning, ranked over skkgp's channel units.

:class:`GroupImportancePruning` hands each unit's torch-pruning group (see
:meth:`skkgp.pruning.units.UnitGraph.importance_group`) to one of torch-pruning's
importance classes (:mod:`torch_pruning.pruner.importance`) and removes the
channels it ranks lowest, as every other structural method does. The groups are
skkgp's units, so EEGNet's channel-multiplier conv and TSCeption's concatenations are
handled as for LFP; torch-pruning only scores them.

Three criteria are built on it, each in its own module: first-order Taylor
(:mod:`~skkgp.pruning.taylor`), FPGM (:mod:`~skkgp.pruning.fpgm`) and LAMP
(:mod:`~skkgp.pruning.lamp`).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn
from torch_pruning.pruner.importance import Importance

from skkgp.pruning.base import TrainingBatch
from skkgp.pruning.structured import StructuredPruning
from skkgp.pruning.units import UnitGraph

__all__ = ["GroupImportancePruning"]


class GroupImportancePruning(StructuredPruning):
    """Rank each unit's channels with a torch-pruning importance class.

    Subclasses return the importance object from :meth:`importance`; it is called
    on the unit's whole group (the filters, the BatchNorms, the consumers' input
    channels), so a channel's score accounts for every weight that goes with it.
    """

    @abstractmethod
    def importance(self) -> Importance:
        """A fresh torch-pruning importance object."""

    def unit_scores(
        self, module: nn.Module, graph: UnitGraph, batch: TrainingBatch | None
    ) -> dict[str, torch.Tensor]:
        importance = self.importance()
        scores = {}
        for unit in graph.units:
            unit_scores = importance(graph.importance_group(unit))
            if unit_scores is not None:
                scores[unit.name] = unit_scores.detach().double().cpu()
        return scores
