"""Parameter, multiply-accumulate (MAC) and FLOP counts of a network, in two conventions.

skkgp's realized counts (:func:`count_params`, :func:`count_macs` and their non-zero
variants): MACs are the multiply-accumulates of the convolution and linear layers
only, for ONE input sample; FLOPs = 2 x MACs. Bias additions, activations,
normalisation and pooling are not counted. torch-pruning's
``tp.utils.count_ops_and_params`` counts those too (for CCNN on a ``(4, 9, 9)`` grid
it reports 80,044,034 against the 79,960,064 conv/linear MACs counted here), so skkgp
counts with a small hook-based counter instead; :func:`count_macs` with
``per_layer=True`` shows where the MACs are.

Weights masked by :mod:`torch.nn.utils.prune` are counted twice over: as parameters
(``weight_orig`` is still stored and trained) and, in the *non-zero* counts, through
the effective weight ``weight_orig * weight_mask``. A layer whose weight has a
fraction ``q`` of non-zero entries is charged ``q`` times its dense MACs.

The paper's convention (:func:`count_paper_params`, :func:`count_paper_flops`) is
the counter of Rao & Zhong's published code (after simochen/model-tools), applied to
the network as it stands: parameters are every trainable entry minus the zero
entries of convolution weights; FLOPs are, for one sample, ``2 x`` the non-zero
weights of each convolution times its output positions plus one bias addition per
output element, ``2 x`` every linear weight plus its biases (zeros included), two
per element entering a BatchNorm, one per element entering a ``ReLU``, and
``prod(kernel_size)`` per output element of max- and average-pooling. Other layers
(``ELU``, ``SELU``, ``LeakyReLU``, dropout, padding) cost nothing there. Masked
network (UMWP) and soft-pruned network (SFP) are counted with their zeros in place,
so their dense shapes stay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from skkgp._modes import eval_mode
from skkgp.pruning.masks import effective_tensor, effective_tensors

__all__ = [
    "count_params",
    "count_nonzero_params",
    "count_macs",
    "count_nonzero_macs",
    "count_paper_params",
    "count_paper_flops",
    "CONV_LAYER_TYPES",
    "MAC_LAYER_TYPES",
]

#: Convolution layer types (the weights the paper's counts look at for zeros).
CONV_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Layer types whose multiply-accumulates are counted.
MAC_LAYER_TYPES = (*CONV_LAYER_TYPES, nn.Linear)

_POOL_LAYER_TYPES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
)


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
        As in :func:`count_params`.

    Returns
    -------
    n_nonzero : int
    """
    return int(sum(int(torch.count_nonzero(t)) for _, t in effective_tensors(module)))


def _one_sample(example_inputs) -> tuple:
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return tuple(x[:1] if isinstance(x, torch.Tensor) else x for x in inputs)


def _per_layer_costs(module: nn.Module, example_inputs, layer_types, cost) -> dict[str, int]:
    """``{layer name: cost}`` summed over the calls of each layer of ``layer_types``.

    ``cost(layer, inputs, output)`` is evaluated in a forward hook while ``module``
    runs the first sample of ``example_inputs`` in eval mode without gradients.
    """
    counts: dict[str, int] = {}
    handles = []

    def hook(name):
        def record(layer, inputs, output):
            counts[name] = counts.get(name, 0) + int(cost(layer, inputs, output))

        return record

    for name, layer in module.named_modules():
        if isinstance(layer, layer_types):
            handles.append(layer.register_forward_hook(hook(name)))
    try:
        with eval_mode(module), torch.no_grad():
            module(*_one_sample(example_inputs))
    finally:
        for handle in handles:
            handle.remove()
    return counts


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
    def cost(layer, inputs, output) -> int:
        per_sample = output.numel() // max(1, output.shape[0])
        if isinstance(layer, nn.Linear):
            return per_sample * layer.in_features
        return per_sample * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)

    counts = _per_layer_costs(module, example_inputs, MAC_LAYER_TYPES, cost)
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
    weights = dict(effective_tensors(module))
    total = 0.0
    for name, macs in per_layer.items():
        weight = weights.get(f"{name}.weight" if name else "weight")
        share = 1.0 if weight is None else int(torch.count_nonzero(weight)) / weight.numel()
        total += macs * share
    return int(round(total))


def count_paper_params(module: nn.Module) -> int:
    """Parameters as the paper counts them: trainable entries minus zero conv weights.

    A weight masked by :mod:`torch.nn.utils.prune` is counted once (its stored
    ``weight_orig``) and subtracted when masked; zero filters of a soft-pruned network
    are subtracted although they stay in it. Zeros of linear layers, biases and
    BatchNorm are not subtracted (the paper's counter does not look for them).

    Parameters
    ----------
    module : torch.nn.Module
        Dense, masked or soft-pruned.

    Returns
    -------
    n_params : int

    See Also
    --------
    count_params, count_nonzero_params : skkgp's realized counts.
    """
    total = sum(p.numel() for p in module.parameters() if p.requires_grad)
    zeros = sum(
        int((effective_tensor(layer) == 0).sum())
        for layer in module.modules()
        if isinstance(layer, CONV_LAYER_TYPES)
    )
    return int(total - zeros)


def count_paper_flops(
    module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor], *,
    per_layer: bool = False,
) -> int | dict[str, int]:
    """FLOPs of one input sample as the paper counts them (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor or sequence of Tensor
        Inputs of ``module.forward``, shape ``(n_samples, ...)``; only the first
        sample is run.
    per_layer : bool, default=False
        Return ``{layer name: FLOPs}`` (layers that cost something) instead of the total.

    Returns
    -------
    flops : int or dict of str to int

    See Also
    --------
    count_macs, count_nonzero_macs : skkgp's realized counts (FLOPs = 2 x MACs).
    """
    def cost(layer, inputs, output) -> int:
        if isinstance(layer, CONV_LAYER_TYPES):
            positions = output[0].numel() // layer.out_channels
            nonzero = int(torch.count_nonzero(effective_tensor(layer)))
            bias = layer.out_channels if layer.bias is not None else 0
            return (2 * nonzero + bias) * positions
        if isinstance(layer, nn.Linear):
            # The paper's counter charges a linear layer once per sample of a 2-D input,
            # once in all for any other input.
            rows = inputs[0].shape[0] if inputs[0].dim() == 2 else 1
            bias = layer.bias.numel() if layer.bias is not None else 0
            return rows * (2 * layer.weight.numel() + bias)
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            return 2 * inputs[0].numel()
        if isinstance(layer, nn.ReLU):
            return inputs[0].numel()
        kernel = layer.kernel_size
        n_dims = inputs[0].dim() - 2
        kernel = (kernel,) * n_dims if isinstance(kernel, int) else tuple(kernel)
        return math.prod(kernel) * output.numel()

    counted = (*MAC_LAYER_TYPES, nn.modules.batchnorm._BatchNorm, nn.ReLU, *_POOL_LAYER_TYPES)
    counts = _per_layer_costs(module, example_inputs, counted, cost)
    return counts if per_layer else int(sum(counts.values()))
