"""Pooled Grad-CAM weights through the evidence layer's only consumer: exact, in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from skkgp.knowledge._autograd import fast_double_backward
from skkgp.knowledge._pooled import ConsumerCapture, PooledPlan, pooled_weights
from skkgp.knowledge.evidence import ActivationCapture, evidence_map
from skkgp.models import CCNN, FBCCNN

from test_autograd import CenteredConv, ScaledPad


class SkipNet(nn.Module):
    """The evidence layer's output also reaches the logits around the next convolution."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Linear(6 * 9 * 9, 2)

    def forward(self, x):
        a = self.conv1(x)
        return self.head((self.conv2(a) + a).flatten(1))


def _nets():
    torch.manual_seed(0)
    return {
        "ccnn": (CCNN(dropout=0.0), "conv1"),
        "fbccnn": (FBCCNN(), "block1"),
        "skip": (SkipNet(), "conv1"),
    }


def _knowledge_loss(net, layer, X, y, collapse, region):
    """A region loss on the Grad-CAM map, as the recovery differentiates it."""
    submodule = net.get_submodule(layer)
    with ActivationCapture(submodule) as capture, ConsumerCapture(net, submodule) as consumer:
        logits = net(X)
    A = capture.get()
    score = logits.gather(1, y[:, None]).sum()
    plan = consumer.plan(logits) if collapse else None
    if plan is None:
        (G,) = torch.autograd.grad(score, A, create_graph=True)
        weights = G.mean(dim=(2, 3))
    else:
        weights = pooled_weights(score, plan)
    cam = torch.relu(torch.einsum("nk,nkhw->nhw", weights, A))
    share = (cam * region).sum(dim=(1, 2)) / (cam.sum(dim=(1, 2)) + 1e-3)
    return nn.functional.cross_entropy(logits, y) + (1 - share).mean(), plan


@pytest.mark.parametrize("name", ["ccnn", "fbccnn", "skip"])
def test_collapsed_gradient_equals_pytorchs_double_backward(name):
    net, layer = _nets()[name]
    net = net.double().train()
    generator = torch.Generator().manual_seed(1)
    X = torch.randn(6, 4, 9, 9, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    region = torch.zeros(9, 9, dtype=torch.float64)
    region[:3, :4] = 1

    state = {k: v.clone() for k, v in net.state_dict().items()}
    reference, _ = _knowledge_loss(net, layer, X, y, collapse=False, region=region)
    expected = torch.autograd.grad(reference, list(net.parameters()))
    net.load_state_dict(state)  # BatchNorm's running statistics as before
    with fast_double_backward(net):
        loss, plan = _knowledge_loss(net, layer, X, y, collapse=True, region=region)
        got = torch.autograd.grad(loss, list(net.parameters()))
    # The skip connection is a second consumer: no plan, the mean of G as before.
    assert (plan is None) == (name == "skip")
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=1e-12)
    for (param_name, _), g, e in zip(net.named_parameters(), got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12, msg=param_name)


def test_weights_equal_the_mean_gradient_and_the_consumer_is_found():
    net, _ = _nets()["ccnn"]
    net = net.double()
    X = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    with ActivationCapture(net.conv1) as capture, ConsumerCapture(net, net.conv1) as consumer:
        logits = net(X)
    plan = consumer.plan(logits)
    # conv1's output goes through conv2's ZeroPad2d((1, 2, 1, 2)) into its Conv2d.
    assert plan.conv is net.conv2[1] and plan.padding == (1, 2, 1, 2)
    score = logits[:, 1].sum()
    (G,) = torch.autograd.grad(score, capture.get(), retain_graph=True)
    torch.testing.assert_close(pooled_weights(score, plan, create_graph=False),
                               G.mean(dim=(2, 3)), rtol=1e-12, atol=1e-14)


def test_taps_are_made_once_per_geometry_and_never_kept_from_a_meta_pass():
    conv = nn.Conv2d(3, 5, 4)

    def plan(device):
        weight = conv.weight.detach().to(device)
        activations = torch.zeros((2, 3, 9, 9), device=device)
        return PooledPlan(activations, torch.zeros((2, 5, 9, 9), device=device), weight,
                          conv, (1, 2, 1, 2))

    # A meta pass (shape analysis, tracing) gets meta taps that are not kept ...
    assert plan("meta").taps().device.type == "meta"
    real = plan("cpu").taps()
    assert real.device.type == "cpu" and type(real) is torch.Tensor
    # ... and real passes of the same geometry share one matrix, all ones and zeros,
    # every output position seeing at least one of A's positions.
    assert plan("cpu").taps() is real
    assert real.shape == (16, 81) and set(real.unique().tolist()) == {0.0, 1.0}
    assert bool((real.sum(dim=0) > 0).all())


class _ConvGradients(TorchDispatchMode):
    """Which gradients each convolution backward of the block computes: (input, weight)."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] == "convolution_backward":
            self.masks.append(tuple(args[-1][:2]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["ccnn", "fbccnn"])
def test_the_evidence_gradient_computes_no_weight_gradient(name):
    # ds/dA needs the input gradients of the layers after A only. The layers ask
    # autograd's engine which gradients the pass uses, which also holds on the device
    # thread where a GPU runs the backward pass.
    net, layer = _nets()[name]
    X, y = torch.randn(4, 4, 9, 9), torch.tensor([0, 1, 0, 1])
    with fast_double_backward(net):
        with ActivationCapture(net.get_submodule(layer)) as capture:
            logits = net(X)
        score = logits.gather(1, y[:, None]).sum()
        with _ConvGradients() as evidence_pass:
            (G,) = torch.autograd.grad(score, capture.get(), create_graph=True)
        with _ConvGradients() as training_pass:
            (logits.sum() + G.square().sum()).backward()
    assert evidence_pass.masks and all(not weight for _, weight in evidence_pass.masks)
    assert any(weight for _, weight in training_pass.masks)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("consumer", [
    lambda: [CenteredConv(6, 6, 3, padding=1)],
    lambda: [ScaledPad(1), nn.Conv2d(6, 6, 3)],
], ids=["conv-subclass", "pad-subclass"])
def test_a_consumer_with_its_own_code_keeps_the_mean_gradient(consumer):
    # The plan computes the weights from conv.weight and plain zero padding: a subclass
    # that transforms either is no such consumer, and the weights come from G itself.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), *consumer(), nn.ReLU(),
                        nn.Flatten(), nn.Linear(6 * 81, 2)).double()
    X = torch.randn(5, 4, 9, 9, dtype=torch.float64)
    with ActivationCapture(net[1]) as capture, ConsumerCapture(net, net[1]) as found:
        logits = net(X)
    plan = found.plan(logits)
    A = capture.get()
    torch.testing.assert_close(evidence_map(logits, A, create_graph=False, consumer=plan),
                               evidence_map(logits, A, create_graph=False),
                               rtol=1e-12, atol=1e-15)
    assert plan is None
