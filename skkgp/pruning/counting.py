"""Parameter and multiply-accumulate (MAC) counts of a network, dense and non-zero.

Convention (the paper's): MACs are the multiply-accumulates of the convolution and
linear layers only, for ONE input sample; FLOPs = 2 x MACs. Bias additions,
activations, normalisation and pooling are not counted. torch-pruning's
``tp.utils.count_ops_and_params`` counts those too (for CCNN on a ``(4, 9, 9)`` grid
it reports 80,044,034 against the 79,960,064 conv/linear MACs counted here), so skkgp
counts with a small hook-based counter instead; :func:`count_macs` with
``per_layer=True`` shows where the MACs are.

Weights masked by :mod:`torch.nn.utils.prune` are counted twice over: as parameters
(``weight_orig`` is still stored and trained) and, in the *non-zero* counts, through
the effective weight ``weight_orig * weight_mask``. A layer whose weight has a
fraction ``q`` of non-zero entries is charged ``q`` times its dense MACs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "count_params",
    "count_nonzero_params",
    "count_macs",
    "count_nonzero_macs",
    "MAC_LAYER_TYPES",
]

#: Layer types whose multiply-accumulates are counted.
MAC_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _effective_tensors(module: nn.Module):
    """``(qualified name, tensor)`` of every parameter as the forward pass uses it.

    A parameter ``<name>_orig`` left by :mod:`torch.nn.utils.prune` is replaced by the
    masked tensor ``<name>_orig * <name>_mask``.
    """
    for owner_name, owner in module.named_modules():
        for name, param in owner.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(owner, name[: -len("_orig")] + "_mask"):
                base = name[: -len("_orig")]
                tensor = param.detach() * getattr(owner, base + "_mask")
                name = base
            else:
                tensor = param.detach()
            yield (f"{owner_name}.{name}" if owner_name else name), tensor


def count_params(module: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor, zero or not).

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    n_params : int
    """
    return int(sum(param.numel() for param in module.parameters()))


def count_nonzero_params(module: nn.Module) -> int:
    """Number of non-zero parameter entries, with pruning masks applied.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    n_nonzero : int
    """
    return int(sum(int(torch.count_nonzero(t)) for _, t in _effective_tensors(module)))


def _one_sample(example_inputs) -> tuple:
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return tuple(x[:1] if isinstance(x, torch.Tensor) else x for x in inputs)


def count_macs(
    module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor], *,
    per_layer: bool = False,
) -> int | dict[str, int]:
    """Multiply-accumulates of the conv and linear layers for one input sample.

    A convolution producing ``n_out`` output elements per sample costs ``n_out *
    in_channels / groups * prod(kernel_size)`` MACs, a linear layer ``n_out *
    in_features``. Only the first sample of ``example_inputs`` is run.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor or sequence of Tensor
        Inputs of ``module.forward``, shape ``(n_samples, ...)``.
    per_layer : bool, default=False
        Return ``{layer name: MACs}`` instead of the total.

    Returns
    -------
    macs : int or dict of str to int
    """
    counts: dict[str, int] = {}
    handles = []

    def hook(name):
        def record(layer, inputs, output):
            per_sample = output.numel() // max(1, output.shape[0])
            if isinstance(layer, nn.Linear):
                macs = per_sample * layer.in_features
            else:
                macs = per_sample * (layer.in_channels // layer.groups) * math.prod(
                    layer.kernel_size
                )
            counts[name] = counts.get(name, 0) + int(macs)

        return record

    for name, layer in module.named_modules():
        if isinstance(layer, MAC_LAYER_TYPES):
            handles.append(layer.register_forward_hook(hook(name)))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(*_one_sample(example_inputs))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return counts if per_layer else int(sum(counts.values()))


def count_nonzero_macs(
    module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor]
) -> int:
    """MACs of the conv and linear layers, each scaled by its weight's non-zero share.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor or sequence of Tensor
        Inputs of ``module.forward``, shape ``(n_samples, ...)``.

    Returns
    -------
    macs : int
        ``sum_layer macs_layer * nnz(weight_layer) / numel(weight_layer)``, rounded.
    """
    per_layer = count_macs(module, example_inputs, per_layer=True)
    weights = dict(_effective_tensors(module))
    total = 0.0
    for name, macs in per_layer.items():
        weight = weights.get(f"{name}.weight" if name else "weight")
        share = 1.0 if weight is None else int(torch.count_nonzero(weight)) / weight.numel()
        total += macs * share
    return int(round(total))
