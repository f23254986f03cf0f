"""Pooled Grad-CAM weights without the backward pass of the evidence layer's consumer.

Pooled Grad-CAM sees ``G = ds/dA`` only through its means ``a_k = mean_hw G_k``. When
``A`` (shape ``(n, K, H, W)``) reaches the score only through one convolution ``Z =
conv(pad(A), W)`` (zero padding, one group), the mean needs no input gradient of that
convolution: with ``D = ds/dZ`` and ``M`` the ones of ``A``'s positions inside the
padded input,

``sum_hw G[n, k] = <conv^T(D, W)[n, k], M> = sum_o <D[n, o], conv(M, W[o, k])>``,

so ``a = einsum("nop,okp->nk", D, C) / (H W)`` with the maps ``C[o, k] = conv(M, W[o,
k])``, which are ``W`` against a fixed 0/1 matrix ``T`` of kernel taps by output positions
(:meth:`PooledPlan.taps`). Differentiating the evidence
then also skips that convolution's tangent and weight-gradient terms of the double
backward: for CCNN (evidence layer ``conv1``, consumer ``conv2``) a knowledge-guided step
needs about 1.87 instead of 2.0 plain steps of arithmetic. The weights are the same
function of the network's parameters as the mean of ``G``, with the same gradient.

:class:`ConsumerCapture` finds the convolution during the forward pass and checks, on
the autograd graph, that nothing else consumes ``A``; where it cannot show that, or the
convolution or its padding is a subclass that overrides PyTorch's code for it, the
caller takes the mean of ``G`` as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


__all__ = ["ConsumerCapture", "PooledPlan", "pooled_weights"]

# Pads whose output is A surrounded by zeros.
_ZERO_PADS = (nn.ZeroPad2d, nn.ConstantPad2d)


@dataclass
class PooledPlan:
    """The convolution that alone consumes the evidence activations, as run in one pass.

    Attributes
    ----------
    activations : torch.Tensor, shape (n, K, H, W)
        ``A``.
    output : torch.Tensor, shape (n, O, H', W')
        ``Z``, the convolution's output in the same pass.
    weight : torch.Tensor, shape (O, K, kh, kw)
        The weight the convolution used (a masked weight where pruning masks it).
    conv : torch.nn.Conv2d
    padding : tuple of int
        ``(left, right, top, bottom)`` zeros added to ``A`` before the convolution.
    """

    activations: torch.Tensor
    output: torch.Tensor
    weight: torch.Tensor
    conv: nn.Conv2d
    padding: tuple[int, int, int, int]

    def taps(self) -> torch.Tensor:
        """``T``, shape ``(kh * kw, H' * W')``: 1 where a kernel tap of an output position
        lands on one of ``A``'s positions (not on padding). Shared between calls: do not
        modify it."""
        height, width = self.activations.shape[-2:]
        weight, conv = self.weight, self.conv
        key = (int(height), int(width), tuple(self.padding), tuple(weight.shape[-2:]),
               tuple(conv.dilation), tuple(conv.padding), tuple(conv.stride), weight.dtype,
               weight.device)
        # Only real tensors are kept: a fake or meta tensor (tracing, export) made once
        # must not be handed to a later real pass.
        cacheable = (type(weight) in (torch.Tensor, nn.Parameter)
                     and weight.device.type != "meta" and not torch.compiler.is_compiling())
        taps = _TAPS.get(key) if cacheable else None
        if taps is None:
            taps = _make_taps(*key)
            if cacheable and type(taps) is torch.Tensor:
                if len(_TAPS) >= _TAPS_KEPT:
                    _TAPS.pop(next(iter(_TAPS)))
                _TAPS[key] = taps
        return taps


# One matrix per layer geometry, made once: every training step of a fit asks again.
_TAPS: dict = {}
_TAPS_KEPT = 64


def _make_taps(height, width, padding, kernel_size, dilation, conv_padding, stride, dtype,
               device):
    # A normal tensor even when first asked for under inference mode: autograd saves it.
    with torch.inference_mode(False), torch.no_grad():
        ones = torch.ones((1, 1, height, width), dtype=dtype, device=device)
        ones = nn.functional.pad(ones, padding)
        return nn.functional.unfold(ones, kernel_size, dilation, conv_padding, stride)[0]


def _edges_into(root, targets: set) -> dict:
    """How many edges of the autograd graph below ``root`` end at each node of ``targets``."""
    counts = dict.fromkeys(targets, 0)
    seen, stack = {root}, [root]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            if child in counts:
                counts[child] += 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return counts


class ConsumerCapture:
    """Record, during a forward pass, the convolution that consumes a layer's output.

    Use as a context manager around the forward pass, beside
    :class:`~skkgp.knowledge.evidence.ActivationCapture`; :meth:`plan` then returns a
    :class:`PooledPlan` when the pooled weights may skip that convolution's backward,
    else ``None``.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    layer : torch.nn.Module
        The evidence layer.
    """

    def __init__(self, module: nn.Module, layer: nn.Module):
        self.module = module
        self.layer = layer
        self._handles: list = []
        self._reset()

    def _reset(self) -> None:
        self._activations = None
        self._padded = None  # (padded tensor, (left, right, top, bottom))
        self._found: list[tuple[nn.Conv2d, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _on_layer(self, layer, inputs, output):
        self._activations = output if isinstance(output, torch.Tensor) else None

    def _on_pad(self, pad, inputs, output):
        if self._activations is not None and inputs and inputs[0] is self._activations \
                and (isinstance(pad, nn.ZeroPad2d) or pad.value == 0):
            self._padded = (output, tuple(int(p) for p in pad.padding))

    def _on_conv(self, conv, inputs, output):
        x = inputs[0] if inputs else None
        if x is None or self._activations is None:
            return
        if x is self._activations or (self._padded is not None and x is self._padded[0]):
            self._found.append((conv, x, output, conv.weight))

    def __enter__(self) -> ConsumerCapture:
        self._reset()
        self._handles = [self.layer.register_forward_hook(self._on_layer)]
        for sub in self.module.modules():
            # The plan is PyTorch's own padding and convolution with ``conv.weight``: a
            # subclass that overrides that code (weight standardisation, say) is no
            # consumer it can stand for.
            kind = type(sub)
            if isinstance(sub, _ZERO_PADS) and kind.forward is nn.ConstantPad2d.forward:
                self._handles.append(sub.register_forward_hook(self._on_pad))
            elif (isinstance(sub, nn.Conv2d) and kind.forward is nn.Conv2d.forward
                    and kind._conv_forward is nn.Conv2d._conv_forward
                    and sub.groups == 1 and sub.padding_mode == "zeros"
                    and not isinstance(sub.padding, str)):
                self._handles.append(sub.register_forward_hook(self._on_conv))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def plan(self, logits: torch.Tensor) -> PooledPlan | None:
        """The plan of the last forward pass, or ``None`` where it would not be exact.

        Parameters
        ----------
        logits : torch.Tensor, shape (n_samples, n_classes)
            Output of that pass.
        """
        A = self._activations
        if (A is None or A.dim() != 4 or len(self._found) != 1 or logits.grad_fn is None
                or A.grad_fn is None):
            return None
        conv, x, output, weight = self._found[0]
        if output.grad_fn is None or weight.shape[1] != A.shape[1]:
            return None
        padding = (0, 0, 0, 0)
        watched = {A.grad_fn}
        if x is not A:
            padding = self._padded[1]
            if x.grad_fn is None:
                return None
            watched.add(x.grad_fn)
        # Exact only if A (and its padded copy) reach the score through the convolution
        # alone: one edge into each of their nodes, from the pad or the convolution.
        counts = _edges_into(logits.grad_fn, watched)
        if any(count != 1 for count in counts.values()):
            return None
        return PooledPlan(A, output, weight, conv, padding)


def pooled_weights(score: torch.Tensor, plan: PooledPlan, *, create_graph: bool = True,
                   score_gradient: torch.Tensor | None = None):
    """Pooled Grad-CAM weights ``a = mean_hw ds/dA`` through ``plan``'s convolution.

    Parameters
    ----------
    score : torch.Tensor
        The scalar explained (the sum of the explained logits over the batch), or, with
        ``score_gradient``, the tensor whose gradient that is.
    plan : PooledPlan
    create_graph : bool, default=True
        Keep the graph, to differentiate the weights.
    score_gradient : torch.Tensor or None, default=None
        The gradient of the explained scalar with respect to ``score`` (the one-hot rows
        of the explained classes, for ``score`` the logits); ``None`` for a scalar score.

    Returns
    -------
    weights : torch.Tensor, shape (n_samples, K)
    """
    (grad_output,) = torch.autograd.grad(
        score, plan.output, score_gradient, create_graph=create_graph, retain_graph=True
    )
    out_channels, in_channels, kh, kw = plan.weight.shape
    taps = plan.taps().to(grad_output.dtype)
    # a[n, k] = sum_o,p D[n, o, p] C[o, k, p] with C[o, k, p] = sum_q W[o, k, q] T[q, p]:
    # first E = D T' (what each kernel tap q of filter o sees of D), then E against W. Two
    # matrix products of (n O P Q + n O Q K) multiply-adds, fewer than with C itself.
    seen = grad_output.flatten(2) @ taps.t()
    weight = plan.weight.reshape(out_channels, in_channels, kh * kw).transpose(1, 2)
    weights = seen.flatten(1) @ weight.reshape(-1, in_channels).to(grad_output.dtype)
    height, width = plan.activations.shape[-2:]
    return weights / (height * width)
