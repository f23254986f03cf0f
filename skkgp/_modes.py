"""Train/eval mode of a network: run it in eval mode, then give every submodule its mode back.

``module.train(was_training)`` after ``module.eval()`` would set one flag on the whole
tree: a submodule the user had kept in eval mode inside a training network (a frozen
BatchNorm, say) would come back in train mode and update its running statistics from
then on. :func:`eval_mode` records each submodule's own flag and restores it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode inside the block; restore each submodule's mode on exit.

    Parameters
    ----------
    module : torch.nn.Module

    Yields
    ------
    module : torch.nn.Module
        The same module, in eval mode.
    """
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training
