"""Grid cells checked once, for the training loop's hot path.

The public evidence functions check every ``cells`` they are given (a negative index
would silently wrap to the far side of the grid). Checking a tensor on a GPU reads it
back to the host, which a training step must not do; the knowledge-guided recovery
checks its cells once when training begins and wraps the tensor in :class:`CheckedCells`,
which the evidence functions take as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["CheckedCells"]


@dataclass(frozen=True)
class CheckedCells:
    """Grid cells that have passed :func:`skkgp.knowledge.evidence.check_cells`.

    Parameters
    ----------
    tensor : torch.Tensor of int64, shape (n_electrodes, 2)
        ``(row, col)`` of each electrode, on the device the evidence is computed on.
    """

    tensor: torch.Tensor
