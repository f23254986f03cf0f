"""The activations' double backward of skkgp.knowledge._autograd, in float64."""

from __future__ import annotations

import collections
import copy

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from skkgp.knowledge._autograd import fast_double_backward
from skkgp.knowledge.evidence import ActivationCapture


class _Operations(TorchDispatchMode):
    """Count the ATen operations of a block by name."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))


def _activation_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),  # the evidence layer's output
        nn.Conv2d(4, 5, 3, padding=1), nn.SELU(),
        nn.Conv2d(5, 4, 3, padding=1), nn.ELU(alpha=0.7),
        nn.Conv2d(4, 4, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(inplace=True), nn.Linear(8, 2),
    ).double()


def _knowledge_step(net, X, y):
    """A loss on ``G = ds/dA`` with its graph, as a knowledge-guided step differentiates it;
    the parameter gradients, and the operations of the training pass."""
    net.zero_grad()
    with ActivationCapture(net[1]) as capture:
        logits = net(X)
    A = capture.get()
    (G,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), A, create_graph=True)
    loss = nn.functional.cross_entropy(logits, y) + (G * A).sum(dim=(2, 3)).square().mean()
    with _Operations() as operations:
        loss.backward()
    return [p.grad.clone() for p in net.parameters()], operations.counts


def test_activations_double_backward_gives_pytorchs_gradients_without_zero_maps():
    net = _activation_net()
    X = torch.randn(5, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1])
    expected, native_ops = _knowledge_step(copy.deepcopy(net), X, y)
    with fast_double_backward(net):
        # The in-place ReLU keeps PyTorch's path (its output overwrites its input).
        assert all(("forward" in vars(layer)) == (not getattr(layer, "inplace", False))
                   for layer in net if isinstance(layer, (nn.ReLU, nn.ELU, nn.SELU)))
        got, fast_ops = _knowledge_step(net, X, y)
    assert not any("forward" in vars(layer) for layer in net)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    # PyTorch's double backward of a ReLU after A fills a map of zeros for the ReLU's
    # output and adds it to the output's other gradient; the patched ReLU does neither
    # (the in-place one in the linear head keeps PyTorch's path, and its zeros).
    assert native_ops["zeros_like"] == 2 and fast_ops["zeros_like"] == 1
    assert fast_ops["add"] == native_ops["add"] - 1
    # ELU and SELU: three elementwise passes fewer each.
    assert sum(fast_ops.values()) <= sum(native_ops.values()) - 2 - 2 * 3


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.SELU(), nn.ELU(alpha=0.7)],
                         ids=["relu", "selu", "elu"])
def test_patched_activation_passes_gradgradcheck(layer):
    # Away from 0, where the ReLU's and the ELUs' second derivatives jump.
    x = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x = (x + 0.2 * x.sign()).requires_grad_(True)
    with fast_double_backward(layer):
        out = layer(x)
        assert type(out.grad_fn).__name__ != "ReluBackward0"
        assert torch.autograd.gradcheck(layer, (x,))
        assert torch.autograd.gradgradcheck(layer, (x,))
    torch.testing.assert_close(out, type(layer).forward(layer, x), rtol=0, atol=0)


class FrozenBatchNorm(nn.BatchNorm2d):
    """BatchNorm that normalises with its running statistics even while training."""

    def forward(self, x):
        return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                        self.bias, False, 0.0, self.eps)


class CenteredConv(nn.Conv2d):
    """A convolution whose filters are centred before use (weight standardisation): it
    runs with another weight than ``conv.weight``."""

    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight - weight.mean(dim=(1, 2, 3), keepdim=True), bias)


class ScaledPad(nn.ZeroPad2d):
    """Zero padding, doubled."""

    def forward(self, x):
        return 2 * super().forward(x)


class _ShiftedReLU(nn.ReLU):
    def forward(self, x):
        return super().forward(x - 0.5)


class _ShiftedSELU(nn.SELU):
    def forward(self, x):
        return super().forward(x - 0.5)


@pytest.mark.parametrize("make", [
    lambda: FrozenBatchNorm(3), lambda: CenteredConv(3, 3, 3, padding=1),
    lambda: ScaledPad((1, 2, 1, 2)), _ShiftedReLU, _ShiftedSELU,
], ids=["batchnorm", "conv", "pad", "relu", "selu"])
def test_subclasses_that_override_the_forward_keep_it(make):
    # A subclass's own forward (or _conv_forward) is what the network computes: the
    # patch, which re-implements the stock one, leaves such layers alone.
    torch.manual_seed(0)
    layer = make().train()
    if isinstance(layer, nn.BatchNorm2d):
        layer.running_mean.fill_(3.0)
    x = torch.randn(4, 3, 6, 6)
    expected = copy.deepcopy(layer)(x)
    with fast_double_backward(layer):
        assert "forward" not in vars(layer) and "_conv_forward" not in vars(layer)
        got = layer(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    if isinstance(layer, nn.BatchNorm2d):
        assert bool((layer.running_mean == 3.0).all()) and int(layer.num_batches_tracked) == 0


@pytest.mark.parametrize("shape, eps", [((1, 3, 1, 1), 1e-5), ((4, 3, 2, 2), 0.0)],
                         ids=["one-value-per-channel", "zero-eps"])
def test_training_batchnorm_rejects_what_pytorch_rejects(shape, eps):
    layer = nn.BatchNorm2d(3, eps=eps).train()
    x = torch.randn(shape)
    with pytest.raises(ValueError) as plain:
        copy.deepcopy(layer)(x)
    with fast_double_backward(layer), pytest.raises(ValueError) as fast:
        layer(x)
    assert str(fast.value) == str(plain.value)
