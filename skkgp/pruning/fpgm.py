"""FPGM: filter pruning via the geometric median (He et al. 2019).

A filter close to all the others of its layer is redundant: they can stand in for
it. Each channel is scored by the sum of the Euclidean distances between its
(element-wise squared) weights and those of the other channels of its unit, over
every layer of the unit (torch-pruning's
:class:`~torch_pruning.pruner.importance.FPGMImportance`), and the channels with the
smallest sums, those nearest the geometric median, are removed. Ranked per unit by
default.

References
----------
.. [1] He, Y., Liu, P., Wang, Z., Hu, Z., & Yang, Y. (2019). Filter pruning via
   geometric median for deep convolutional neural networks acceleration. CVPR.
"""

from __future__ import annotations

from torch_pruning.pruner.importance import FPGMImportance

from skkgp.pruning.criteria import GroupImportancePruning

__all__ = ["FPGM"]


class FPGM(GroupImportancePruning):
    """Remove the filters nearest their unit's geometric median."""

    name = "fpgm"

    def importance(self) -> FPGMImportance:
        return FPGMImportance(p=2, group_reduction="mean", normalizer=None)
