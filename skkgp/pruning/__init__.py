"""Pruning of EEG networks: LFP, NSFP, UMWP, SFP and further criteria behind one function.

:func:`prune` prunes a module in place with one of :data:`METHODS` and returns a
:class:`PruningReport` (params and MACs before and after, non-zero counts, kept
channels). Structural methods (``lfp``, ``nsfp``, ``sfp``) remove filters physically
with torch-pruning, ``umwp`` masks weights with :mod:`torch.nn.utils.prune`. Each
method owns its training-time parts, skorch callbacks it hands to the pruner:
:class:`NetworkSlimming` (NSFP's sparsity term while the origin trains) and
:class:`SoftFilterPruning` (SFP's per-epoch zeroing while the pruned network recovers).

Each method lives in its own module (:mod:`~skkgp.pruning.lfp`,
:mod:`~skkgp.pruning.nsfp`, :mod:`~skkgp.pruning.umwp`, :mod:`~skkgp.pruning.sfp`,
the importance criteria :mod:`~skkgp.pruning.taylor`, :mod:`~skkgp.pruning.fpgm`,
:mod:`~skkgp.pruning.lamp`, and the knowledge-guided importance
:mod:`~skkgp.pruning.kgi`, which ranks filters by where their evidence lies);
:mod:`~skkgp.pruning.units` finds what can be pruned together,
:mod:`~skkgp.pruning.counting` counts params and MACs (skkgp's realized counts, and
the paper's convention).
"""

from skkgp.pruning.api import (
    METHODS,
    applicable_methods,
    check_method,
    get_method,
    is_origin_callback,
    method_options,
    prune,
)
from skkgp.pruning.base import LayerCollapseError, TrainingBatch
from skkgp.pruning.counting import (
    count_macs,
    count_nonzero_macs,
    count_nonzero_params,
    count_paper_flops,
    count_paper_params,
    count_params,
)
from skkgp.pruning.nsfp import NetworkSlimming
from skkgp.pruning.report import PruningReport
from skkgp.pruning.sfp import SoftFilterPruning

__all__ = [
    "METHODS",
    "LayerCollapseError",
    "NetworkSlimming",
    "PruningReport",
    "SoftFilterPruning",
    "TrainingBatch",
    "applicable_methods",
    "check_method",
    "count_macs",
    "count_nonzero_macs",
    "count_nonzero_params",
    "count_paper_flops",
    "count_paper_params",
    "count_params",
    "get_method",
    "is_origin_callback",
    "method_options",
    "prune",
]
