"""Prunable channel units: the filters that structural pruning removes together.

A *channel unit* is the set of output channels of one convolution (its *root*)
together with everything that must shrink with them, found by torch-pruning's
:class:`~torch_pruning.DependencyGraph`: the following BatchNorm, the input channels of
the consumers, the features of a ``Linear`` after a flatten, the parallel branches of a
concatenation. Structural methods rank the channels of each unit and remove the
lowest; soft filter pruning zeroes them instead (:func:`zero_channels`), and the later
removal of zeroed channels leaves the output unchanged.

Two structures need more than torch-pruning 1.6 gives:

- A *channel-multiplier* convolution (``groups == in_channels``, ``out_channels = D *
  in_channels``; EEGNet's depthwise spatial conv with ``D = 2``). torch-pruning prunes
  its input channels without shrinking ``groups`` and crashes in its importance code.
  Here input channel ``i`` owns output channels ``i*D .. i*D + D-1``: removing it
  removes its group, and the unit extends through those ``D`` outputs downstream
  (BatchNorm, depthwise and pointwise convs), so EEGNet's temporal filters are pruned
  together with their spatial filters and ``groups`` shrinks accordingly. Its outputs
  are never a root of their own, since pruning one of a group's ``D`` filters would
  leave groups of unequal size.
- Concatenations along a non-channel axis (TSCeption's temporal branches joined in
  time, its spatial branches joined along electrodes) couple the branches' channels
  one-to-one; torch-pruning's index mapping recognises them, and the tests check it by
  removing zeroed channels.

Channels are pruned only if no output channel of an ignored layer (the classifier's
last layer, say) would go with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from skkgp._modes import eval_mode

__all__ = [
    "ChannelSlice",
    "ChannelUnit",
    "UnitGraph",
    "find_last_layer",
    "resolve_layers",
    "zero_channels",
]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class ChannelSlice:
    """Output channels of one layer that belong to a unit.

    Parameters
    ----------
    layer : str
        Qualified name of the layer.
    kind : {"filter", "multiplier", "depthwise", "norm", "linear", "other"}
        ``"filter"``: an ordinary conv whose filters ARE the unit's channels (they rank
        it); ``"multiplier"``: a channel-multiplier conv (``D`` filters per channel);
        ``"depthwise"``: a depthwise conv carried along; ``"norm"``: a BatchNorm;
        ``"linear"``: a linear layer's output features; ``"other"``: any other layer
        with parameters.
    index : tuple of int
        Channel index in the layer, one per entry.
    root_index : tuple of int
        The unit channel each entry belongs to (same length as ``index``).
    """

    layer: str
    kind: str
    index: tuple[int, ...]
    root_index: tuple[int, ...]


@dataclass(frozen=True)
class ChannelUnit:
    """One prunable set of channels and the output slices that go with it.

    Parameters
    ----------
    name : str
        Qualified name of the root convolution (the key of ``kept_channels``).
    n_channels : int
        Number of channels of the unit.
    slices : tuple of ChannelSlice
        Every parametrised output slice of the unit.
    multiplier : str or None
        Name of the channel-multiplier conv this unit feeds, if any.
    depth : int
        Depth multiplier ``D`` of that conv (1 when there is none).
    extension : tuple of str
        Layers reached through the channel multiplier (``D`` channels per unit channel).
    """

    name: str
    n_channels: int
    slices: tuple[ChannelSlice, ...]
    multiplier: str | None = None
    depth: int = 1
    extension: tuple[str, ...] = ()

    @property
    def filters(self) -> tuple[ChannelSlice, ...]:
        """Slices of the convolutions whose filters are the unit's channels."""
        return tuple(s for s in self.slices if s.kind == "filter")

    @property
    def norms(self) -> tuple[ChannelSlice, ...]:
        """BatchNorm slices that scale the unit's channels directly (not through a
        channel multiplier)."""
        return tuple(s for s in self.slices if s.kind == "norm" and s.layer not in self.extension)


def _is_multiplier(layer: nn.Module) -> bool:
    return (
        isinstance(layer, _CONV)
        and not layer.transposed
        and layer.groups > 1
        and layer.groups == layer.in_channels
        and layer.out_channels % layer.in_channels == 0
        and layer.out_channels > layer.in_channels
    )


def _is_depthwise(layer: nn.Module) -> bool:
    return (
        isinstance(layer, _CONV)
        and layer.groups > 1
        and layer.groups == layer.in_channels == layer.out_channels
    )


def resolve_layers(module: nn.Module, layers: Iterable | None) -> list[nn.Module]:
    """Submodules of ``module`` named or given in ``layers``.

    Parameters
    ----------
    module : torch.nn.Module
    layers : iterable of (str or torch.nn.Module) or None
        Qualified names (``"lin2"``, ``"fc.3"``) or submodules of ``module``.

    Returns
    -------
    resolved : list of torch.nn.Module
    """
    if layers is None:
        return []
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    named = dict(module.named_modules())
    owned = {id(m) for m in named.values()}
    resolved = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in named:
                raise ValueError(
                    f"ignored_layers names {layer!r}, which is not a submodule of "
                    f"{type(module).__name__}; known layers: {sorted(n for n in named if n)}."
                )
            resolved.append(named[layer])
        elif isinstance(layer, nn.Module) and id(layer) in owned:
            resolved.append(layer)
        else:
            raise ValueError(
                f"ignored_layers must hold names or submodules of the pruned module, got "
                f"{layer!r}."
            )
    return resolved


def find_last_layer(module: nn.Module, example_inputs) -> nn.Module | None:
    """The conv or linear layer that produces the network's output (its logits).

    The layer whose output tensor IS the network's output; failing that (an output
    computed after the last layer), the last conv or linear layer that ran.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor or sequence of Tensor

    Returns
    -------
    layer : torch.nn.Module or None
    """
    outputs: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [
        layer.register_forward_hook(lambda m, i, o: outputs.append((m, o)))
        for layer in module.modules()
        if isinstance(layer, (*_CONV, nn.Linear))
    ]
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    try:
        with eval_mode(module), torch.no_grad():
            result = module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    for layer, output in outputs:
        if output is result:
            return layer
    return outputs[-1][0] if outputs else None


class UnitGraph:
    """The channel units of a network, and the means to remove channels from them.

    Parameters
    ----------
    module : torch.nn.Module
        The network; :meth:`remove` edits it in place.
    example_inputs : Tensor or sequence of Tensor
        Inputs that trace the network (a couple of samples suffice).
    ignored_layers : sequence of torch.nn.Module, default=()
        Layers whose output channels must not change.

    Attributes
    ----------
    units : list of ChannelUnit
        Prunable units in the order of ``module.named_modules()``.
    graph : torch_pruning.DependencyGraph
    """

    def __init__(self, module: nn.Module, example_inputs, ignored_layers: Sequence = ()):
        self.module = module
        self._names = {m: n for n, m in module.named_modules()}
        self._modules = dict(module.named_modules())
        # Tracing must not update BatchNorm statistics.
        with eval_mode(module), torch.enable_grad():
            self.graph = tp.DependencyGraph().build_dependency(
                module, example_inputs=example_inputs, verbose=False
            )
        self._ignored = {id(m) for layer in ignored_layers for m in layer.modules()}
        self.units = self._find_units()

    # ------------------------------------------------------------------ discovery
    def _find_units(self) -> list[ChannelUnit]:
        graph = self.graph
        units = []
        covered: set[int] = set()
        for name, root in self.module.named_modules():
            if (
                not isinstance(root, _CONV)
                or root.transposed
                or root.groups != 1
                or root not in graph.module2node
                or id(root) in self._ignored
                or id(root) in covered
            ):
                continue
            n_channels = root.out_channels
            group = graph.get_pruning_group(
                root, tp.prune_conv_out_channels, list(range(n_channels))
            )
            items = self._collect(group, lambda r: r)
            if items is None:
                continue
            slices, multiplier = items
            depth = 1
            extension_layers: list[str] = []
            if multiplier is not None:
                depth = multiplier.out_channels // multiplier.in_channels
                expanded = list(range(multiplier.out_channels))
                extension = graph.get_pruning_group(
                    multiplier, tp.prune_conv_out_channels, expanded
                )
                more = self._collect(extension, lambda r, d=depth: r // d, skip=multiplier)
                if more is None or more[1] is not None:
                    continue
                extension_layers = [s.layer for s in more[0]]
                slices = slices + more[0] + [
                    ChannelSlice(
                        self._names[multiplier], "multiplier", tuple(expanded),
                        tuple(i // depth for i in expanded),
                    )
                ]
            unit = ChannelUnit(
                name=name,
                n_channels=n_channels,
                slices=tuple(slices),
                multiplier=None if multiplier is None else self._names[multiplier],
                depth=depth,
                extension=tuple(extension_layers),
            )
            for s in unit.slices:
                covered.add(id(self._modules[s.layer]))
            units.append(unit)
        return units

    def _collect(self, group, to_root, skip: nn.Module | None = None):
        """``(slices, multiplier)`` of a group, or None when it cannot be pruned."""
        graph = self.graph
        slices: list[ChannelSlice] = []
        multiplier = None
        for item in group:
            dep, idxs = item.dep, item.idxs
            layer = dep.target.module
            if not isinstance(layer, nn.Module) or layer is skip:
                continue
            out = graph.is_out_channel_pruning_fn(dep.handler)
            if isinstance(layer, _CONV) and layer.groups > 1 and not _is_depthwise(layer):
                if not out and _is_multiplier(layer) and multiplier is None:
                    multiplier = layer
                    continue
                return None  # any other grouped conv would be left with broken groups
            if not out or next(layer.parameters(recurse=False), None) is None:
                continue
            if id(layer) in self._ignored:
                return None
            if isinstance(layer, _CONV):
                kind = "depthwise" if _is_depthwise(layer) else "filter"
            elif isinstance(layer, _NORM):
                kind = "norm"
            elif isinstance(layer, nn.Linear):
                kind = "linear"
            else:
                kind = "other"
            slices.append(
                ChannelSlice(
                    self._names[layer], kind, tuple(int(i) for i in idxs),
                    tuple(int(to_root(r)) for r in item.root_idxs),
                )
            )
        return slices, multiplier

    # ------------------------------------------------------------------ importance
    def importance_group(self, unit: ChannelUnit) -> tp.dependency.Group:
        """A torch-pruning group of all of a unit's channels, for its importance classes.

        The group of the unit's root (its filters, BatchNorms, the input channels of
        its consumers) plus, through a channel multiplier, the layers of the unit's
        extension with their indices mapped back to the unit's channels (``D``
        entries per channel). The multiplier's own input-channel entry is left out:
        torch-pruning's importance classes index its weight as an ordinary grouped
        conv and fail on it; its filters come in through the extension.

        Parameters
        ----------
        unit : ChannelUnit
            A unit of :attr:`units`, not yet pruned.

        Returns
        -------
        group : torch_pruning.dependency.Group
            Indices cover every channel; ``root_idxs`` of each item are unit channels.
        """
        graph = self.graph
        root = self._modules[unit.name]
        channels = list(range(unit.n_channels))
        multiplier = None if unit.multiplier is None else self._modules[unit.multiplier]
        sources = [(graph.get_pruning_group(root, tp.prune_conv_out_channels, channels), 1)]
        if multiplier is not None:
            expanded = list(range(multiplier.out_channels))
            sources.append(
                (graph.get_pruning_group(multiplier, tp.prune_conv_out_channels, expanded),
                 unit.depth)
            )
        group = tp.dependency.Group()
        group._DG = graph
        for source, depth in sources:
            for item in source:
                is_out = graph.is_out_channel_pruning_fn(item.dep.handler)
                if item.dep.target.module is multiplier and not is_out:
                    continue
                group.add_dep(item.dep, list(item.idxs))
                group[len(group) - 1].root_idxs = [int(r) // depth for r in item.root_idxs]
        return group

    # ------------------------------------------------------------------ removal
    def remove(self, unit: ChannelUnit, channels: Sequence[int]) -> None:
        """Remove channels of a unit physically (in place).

        Parameters
        ----------
        unit : ChannelUnit
            A unit of :attr:`units`, not yet pruned.
        channels : sequence of int
            Unit channels to remove (indices in ``range(unit.n_channels)``).
        """
        channels = sorted({int(c) for c in channels})
        if not channels:
            return
        graph = self.graph
        root = self._modules[unit.name]
        groups = [graph.get_pruning_group(root, tp.prune_conv_out_channels, channels)]
        multiplier = None
        if unit.multiplier is not None:
            multiplier = self._modules[unit.multiplier]
            expanded = [c * unit.depth + d for c in channels for d in range(unit.depth)]
            groups.append(graph.get_pruning_group(multiplier, tp.prune_conv_out_channels, expanded))
        # All groups are built before anything changes: their index maps read the shapes.
        for group in groups:
            for item in group:
                if item.dep.target.module is multiplier and multiplier is not None:
                    continue
                item.dep(item.idxs)
        if multiplier is not None:
            _remove_multiplier_groups(multiplier, channels, unit.depth)


def _remove_multiplier_groups(layer: nn.Module, channels: Sequence[int], depth: int) -> None:
    """Remove input channels of a channel-multiplier conv with their ``depth`` filters."""
    removed = set(channels)
    keep_in = [c for c in range(layer.in_channels) if c not in removed]
    keep_out = [c * depth + d for c in keep_in for d in range(depth)]
    index = torch.as_tensor(keep_out, dtype=torch.long, device=layer.weight.device)
    layer.weight = nn.Parameter(layer.weight.detach().index_select(0, index))
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.detach().index_select(0, index))
    layer.in_channels = len(keep_in)
    layer.out_channels = len(keep_out)
    layer.groups = len(keep_in)


def zero_channels(module: nn.Module, unit: ChannelUnit, channels: Sequence[int]) -> None:
    """Make the given unit channels output exactly zero (in place, no gradient).

    Conv and linear filters and biases of the channels are set to 0, and so are the
    shift and running mean of the BatchNorm layers that follow (their scales and
    running variances are kept) and the biases of the convs carried along through a
    channel multiplier (their weights see a zero input). A zeroed channel then
    outputs zero in evaluation mode, and in training mode too (the batch statistics
    of a zero input are zero), so removing it later with :meth:`UnitGraph.remove`
    leaves the output unchanged.
    Its filters still get a gradient where a BatchNorm in training mode (or a leaky
    activation) passes one back, so they may regrow; behind a plain ReLU, whose
    gradient at exactly zero is zero, they stay zero.

    Parameters
    ----------
    module : torch.nn.Module
    unit : ChannelUnit
    channels : sequence of int
        Unit channels to zero.
    """
    chosen = {int(c) for c in channels}
    if not chosen:
        return
    modules = dict(module.named_modules())
    with torch.no_grad():
        for piece in unit.slices:
            layer = modules[piece.layer]
            rows = [i for i, r in zip(piece.index, piece.root_index, strict=True) if r in chosen]
            if not rows:
                continue
            if piece.kind == "norm":
                names = ("bias", "running_mean")
            elif piece.kind in ("multiplier", "depthwise"):
                # Their inputs are already zero; keeping their weights lets gradients
                # reach the zeroed filters upstream.
                names = ("bias",)
            else:
                names = ("weight", "bias")
            for name in names:
                tensor = getattr(layer, name, None)
                if not isinstance(tensor, torch.Tensor):
                    continue
                dim = 1 if name == "weight" and getattr(layer, "transposed", False) else 0
                tensor.index_fill_(dim, torch.as_tensor(rows, device=tensor.device), 0.0)
