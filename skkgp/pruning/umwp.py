"""UMWP: unstructured magnitude weight pruning (Han et al. 2015), with masks.

The fraction ``ratio`` of the weights in scope with the smallest magnitudes is
masked, globally (or per layer with ``global_pruning=False``). The scope is an
option of the method: ``scope="all"`` (the default) ranks the weights of every
conv and linear layer but the classifier's last layer and the ignored layers;
``scope="conv"`` ranks the conv weights only, as the paper does (one global
threshold over all conv weights, linear layers untouched). On CCNN the difference
is large: 5.3 M of its 6.2 M weights sit in its first linear layer, so masking 10 %
of all weights removes 0.62 M, of the conv weights only 0.09 M. Masks come from
:func:`torch.nn.utils.prune.custom_from_mask`. The threshold is the k-th smallest
magnitude with ``k = round(ratio * n)`` (``torch.kthvalue``, linear time, where
``global_unstructured``'s ``topk`` takes seconds on CCNN's 6 M weights); weights
tied with it go too. (The authors' code masks ``|w| <= sorted[int(n * ratio)]``:
one weight more, 92,161 rather than 92,160 of CCNN's 921,600 conv weights at 0.1.) The
A ratio that would mask every weight of a layer (a layer that then outputs a constant;
a global ranking reaches it first on layers of small weights, such as a wide linear
layer's) is refused with a :class:`~skkgp.pruning.base.LayerCollapseError` that names
the layers and the largest ratio at which every layer keeps a weight. The
masks stay: the layer's ``weight`` is recomputed as
``weight_orig * weight_mask`` before every forward pass, the gradient of a masked
entry is zero, so a pruned weight is exactly zero whatever the optimizer does. The
network keeps its shape; only its non-zero counts shrink.

How masks are applied, found, counted, copied and saved is
:mod:`skkgp.pruning.masks`' business.

References
----------
.. [1] Han, S., Pool, J., Tran, J., & Dally, W. (2015). Learning both weights and
   connections for efficient neural networks. NeurIPS.
"""

from __future__ import annotations


import torch
from torch import nn


from skkgp.pruning.base import LayerCollapseError, PruningMethod, PruningRequest
from skkgp.pruning.counting import CONV_LAYER_TYPES, MAC_LAYER_TYPES
from skkgp.pruning.masks import apply_mask, effective_tensor
from skkgp.pruning.units import UnitGraph

__all__ = ["UMWP", "SCOPES"]

#: UMWP's scopes: the layers whose weights are ranked and masked.
SCOPES = {"all": MAC_LAYER_TYPES, "conv": CONV_LAYER_TYPES}


def _kth_smallest(values: torch.Tensor, ratio: float) -> torch.Tensor | None:
    """The ``round(ratio * n)``-th smallest value (None when nothing is to go)."""
    k = int(round(ratio * values.numel()))
    if k < 1:
        return None
    return torch.kthvalue(values.cpu(), k).values.to(values.device)


def _largest_ratio(magnitudes: list[torch.Tensor], global_pruning: bool) -> float:
    """The largest ratio at which every layer keeps a weight.

    Parameters
    ----------
    magnitudes : list of Tensor
        Weight magnitudes of each layer in scope.
    global_pruning : bool
        One threshold for all layers, or one per layer.

    Returns
    -------
    ratio : float
        ``k / n`` for the largest count ``k`` of weights masked (of ``n``) that leaves
        every layer a weight: below the smallest of the layers' largest magnitudes
        (globally), or below each layer's own largest magnitude (per layer). 0 when a
        layer has no non-zero weight.
    """
    if global_pruning:
        values = torch.cat([m.flatten() for m in magnitudes])
        smallest_largest = min(m.max() for m in magnitudes)
        return int((values < smallest_largest).sum()) / values.numel()
    return min(int((m < m.max()).sum()) / m.numel() for m in magnitudes)


class UMWP(PruningMethod):
    """Global magnitude pruning of individual weights with persistent masks.

    Parameters
    ----------
    scope : {"all", "conv"}, default="all"
        Weights ranked and masked: of every conv and linear layer (``"all"``), or of
        the conv layers only (``"conv"``, the paper's).
    """

    name = "umwp"
    structural = False
    default_global = True
    option_names = ("scope",)

    def __init__(self, scope: str = "all"):
        if scope not in SCOPES:
            raise ValueError(
                f"UMWP's scope must be one of {sorted(SCOPES)} ('conv': the conv weights "
                f"only, as the paper; 'all': conv and linear weights), got {scope!r}."
            )
        self.scope = scope

    def apply(self, module: nn.Module, request: PruningRequest) -> dict[str, tuple[int, int]]:
        ratio = request.ratio
        ignored = {id(m) for layer in request.ignored_layers for m in layer.modules()}
        targets = [
            (qualified, layer)
            for qualified, layer in module.named_modules()
            if isinstance(layer, SCOPES[self.scope]) and id(layer) not in ignored
        ]
        magnitudes = [layer.weight.detach().abs() for _, layer in targets]
        if request.global_pruning:
            threshold = _kth_smallest(torch.cat([m.flatten() for m in magnitudes]), ratio)
            thresholds = [threshold] * len(targets)
        else:
            thresholds = [_kth_smallest(m.flatten(), ratio) for m in magnitudes]
        masks = [
            magnitude > threshold if threshold is not None
            else torch.ones_like(magnitude, dtype=torch.bool)
            for magnitude, threshold in zip(magnitudes, thresholds, strict=True)
        ]
        emptied = [qualified for (qualified, _), mask in zip(targets, masks, strict=True)
                   if not mask.any()]
        if emptied:
            largest = _largest_ratio(magnitudes, request.global_pruning)
            raise _collapse_error(ratio, emptied, largest, request.global_pruning)
        for (_, layer), magnitude, mask in zip(targets, magnitudes, masks, strict=True):
            apply_mask(layer, "weight", mask.to(magnitude.dtype))
        # A filter counts as kept while one of its weights is non-zero.
        graph = UnitGraph(module, request.example_inputs, request.ignored_layers)
        modules = dict(module.named_modules())
        kept = {}
        for unit in graph.units:
            alive = torch.zeros(unit.n_channels, dtype=torch.bool)
            for piece in unit.filters:
                layer = modules[piece.layer]
                weight = effective_tensor(layer, "weight")
                rows = weight[list(piece.index)].flatten(1).ne(0).any(1).cpu()
                alive[list(piece.root_index)] |= rows
            kept[unit.name] = (int(alive.sum()), unit.n_channels)
        return kept


def _collapse_error(ratio: float, emptied: list[str], largest: float,
                    global_pruning: bool) -> LayerCollapseError:
    ranking = "one threshold for all layers" if global_pruning else "a threshold per layer"
    error = LayerCollapseError("", emptied, largest)
    if largest <= 0:
        advice = "no ratio leaves every layer a weight: these layers have none left."
    else:
        advice = (
            f"the largest ratio at which every layer keeps a weight is "
            f"{error.usable_ratio:g}; pass at most that"
            + (", or global_pruning=False." if global_pruning else ".")
        )
    error.args = (
        f"method='umwp' at ratio {ratio:g} ({ranking}) would mask every weight of "
        f"{emptied}, which would then output a constant whatever the input: {advice}",
    )
    return error
