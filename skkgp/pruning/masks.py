"""Weight masks of :mod:`torch.nn.utils.prune`, as UMWP leaves them: everything skkgp
knows about masked networks, in one place.

A masked tensor ``<name>`` of a layer is stored as the trained parameter
``<name>_orig`` and the buffer ``<name>_mask``; a forward pre-hook recomputes
``<name> = <name>_orig * <name>_mask`` before every forward pass, so a masked entry is
exactly zero whatever the optimizer does. The pruning methods, the estimators,
the counts and the model files ask this module how to apply, find, count, copy,
re-initialise, save and restore such masks.

torch.nn.utils.prune leaves the computed ``<name>`` (a non-leaf tensor) on the layer
after each forward pass, and ``copy.deepcopy`` refuses non-leaf tensors, so cloning an
estimator holding the network would fail. A small forward hook
(:class:`DetachMaskedWeight`) replaces it by its detached value once the forward pass
is done (autograd keeps its own reference), so masked networks deep-copy, pickle and
clone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

__all__ = [
    "DetachMaskedWeight",
    "apply_mask",
    "copy_module",
    "effective_tensor",
    "effective_tensors",
    "fold_masks",
    "mask_state_keys",
    "masked_tensors",
    "register_detach_hook",
    "restore_masks",
    "state_attribute",
    "store_derived_tensors",
]


class DetachMaskedWeight:
    """Forward hook: replace a masked layer's computed ``weight`` by a detached copy.

    Parameters
    ----------
    name : str, default="weight"
        Name of the masked parameter.
    """

    def __init__(self, name: str = "weight"):
        self.name = name

    def __call__(self, layer: nn.Module, inputs=None, output=None) -> None:
        # Only while the mask is in place (prune.remove turns weight into a Parameter).
        if self.name + "_orig" in layer._parameters:
            value = getattr(layer, self.name, None)
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                setattr(layer, self.name, value.detach())


def register_detach_hook(layer: nn.Module, name: str = "weight") -> None:
    """Make a layer masked by :mod:`torch.nn.utils.prune` deep-copyable (idempotent).

    Parameters
    ----------
    layer : torch.nn.Module
        A layer with a mask on ``name``.
    name : str, default="weight"
    """
    hook = DetachMaskedWeight(name)
    if not any(
        isinstance(h, DetachMaskedWeight) and h.name == name
        for h in layer._forward_hooks.values()
    ):
        layer.register_forward_hook(hook)
    hook(layer)


def apply_mask(layer: nn.Module, name: str, mask: torch.Tensor) -> None:
    """Mask the tensor ``name`` of ``layer`` with ``mask`` (1 keeps, 0 zeroes), for good.

    Parameters
    ----------
    layer : torch.nn.Module
    name : str
        The masked parameter, e.g. ``"weight"``.
    mask : Tensor
        Of the parameter's shape and dtype.
    """
    torch_prune.custom_from_mask(layer, name, mask)
    register_detach_hook(layer, name)


def masked_tensors(module: nn.Module) -> dict[str, list[str]]:
    """The masked tensors of ``module``: qualified layer name -> masked tensor names.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    masks : dict of str to list of str
        Empty for a network without masks.
    """
    masks: dict[str, list[str]] = {}
    for name, layer in module.named_modules():
        for hook in layer._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                masks.setdefault(name, []).append(hook._tensor_name)
    return masks


def fold_masks(module: nn.Module) -> list[str]:
    """Make every mask of ``module`` permanent, in place.

    Each masked tensor becomes a plain parameter holding ``<name>_orig * <name>_mask``
    (the zeros stay) and the reparametrisation (``<name>_orig``, ``<name>_mask``, the
    pre-hook) goes, as an exported or deployed network needs. The masks no longer
    stay applied in later training.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    folded : list of str
        ``"layer.tensor"`` names of the tensors whose masks were folded.
    """
    folded = []
    for name, tensors in masked_tensors(module).items():
        layer = module.get_submodule(name) if name else module
        for tensor in tensors:
            torch_prune.remove(layer, tensor)
            folded.append(f"{name}.{tensor}" if name else tensor)
    return folded


def mask_state_keys(masks: Mapping[str, list[str]]) -> set[str]:
    """The state-dict keys of the masks listed in ``masks`` (see :func:`masked_tensors`)."""
    return {
        f"{name}.{tensor}_mask" if name else f"{tensor}_mask"
        for name, tensors in masks.items()
        for tensor in tensors
    }


def restore_masks(module: nn.Module, masks: Mapping[str, list[str]], state: dict) -> None:
    """Mask a freshly built ``module`` as listed in ``masks``, before loading ``state``.

    The masks come from ``state`` (stored in any dtype; converted, in place in
    ``state``, to the dtype of the tensors they mask), so that ``state`` then loads
    with ``module.load_state_dict(state, strict=True)``.

    Parameters
    ----------
    module : torch.nn.Module
    masks : dict of str to list of str
        As :func:`masked_tensors` lists them.
    state : dict of str to Tensor
        The state dict of the masked network.
    """
    for name, tensors in masks.items():
        layer = module.get_submodule(name)
        for tensor in tensors:
            key = f"{name}.{tensor}_mask" if name else f"{tensor}_mask"
            state[key] = state[key].to(getattr(layer, tensor).dtype)
            apply_mask(layer, tensor, state[key])


def state_attribute(owner: str, attr: str, masks: Mapping[str, list[str]]) -> str | None:
    """The attribute an unmasked layer has for the state-dict entry ``owner.attr``.

    Parameters
    ----------
    owner : str
        Qualified name of the layer holding the entry.
    attr : str
        The entry's name on that layer.
    masks : dict of str to list of str
        The masked tensors of the network the state dict comes from.

    Returns
    -------
    attr : str or None
        ``<name>`` for ``<name>_orig`` of a masked tensor, None for its mask (a buffer
        only :func:`restore_masks` creates), ``attr`` itself for anything else.
    """
    masked = {(layer, tensor) for layer, names in masks.items() for tensor in names}
    if attr.endswith("_mask") and (owner, attr[: -len("_mask")]) in masked:
        return None
    if attr.endswith("_orig") and (owner, attr[: -len("_orig")]) in masked:
        return attr[: -len("_orig")]
    return attr


def effective_tensor(layer: nn.Module, name: str = "weight") -> torch.Tensor:
    """The tensor ``name`` of ``layer`` as the forward pass uses it (its mask applied),
    detached."""
    if hasattr(layer, name + "_orig") and hasattr(layer, name + "_mask"):
        return getattr(layer, name + "_orig").detach() * getattr(layer, name + "_mask")
    return getattr(layer, name).detach()


def effective_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(qualified name, tensor)`` of every parameter as the forward pass uses it.

    A parameter ``<name>_orig`` is replaced by the masked tensor
    ``<name>_orig * <name>_mask``, under the name ``<name>`` (see
    :func:`effective_tensor`).
    """
    for owner_name, owner in module.named_modules():
        for name, _ in owner.named_parameters(recurse=False):
            if name.endswith("_orig") and hasattr(owner, name[: -len("_orig")] + "_mask"):
                name = name[: -len("_orig")]
            yield (f"{owner_name}.{name}" if owner_name else name), effective_tensor(owner, name)


def store_derived_tensors(layer: nn.Module) -> None:
    """Copy the masked tensors of ``layer`` into the ``<name>_orig`` parameters it trains.

    ``reset_parameters`` initialises a masked layer's derived ``<name>``, which the
    next forward pass recomputes from ``<name>_orig``: copy it there so that the
    re-initialisation holds (the mask keeps the zeros).
    """
    with torch.no_grad():
        for name, param in layer.named_parameters(recurse=False):
            if name.endswith("_orig"):
                param.copy_(getattr(layer, name[: -len("_orig")]))


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that also works on masked networks."""
    for layer in module.modules():
        for hook in layer._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                # The masked tensor (weight_orig * mask) is a non-leaf that deepcopy refuses;
                # the pre-hook recomputes it at the next forward, so a detached value is exact.
                name = hook._tensor_name
                setattr(layer, name, getattr(layer, name).detach())
    return copy.deepcopy(module)
