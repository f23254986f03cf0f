"""Tests of skkgp.knowledge.evidence: against captum, and on models whose evidence is known."""

import copy

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import LayerGradCam
from torch import nn

from skkgp import layout
from skkgp.classifier import EEGClassifier
from skkgp.knowledge._autograd import fast_double_backward
from skkgp.knowledge.evidence import (
    ActivationCapture,
    GuidedBackprop,
    default_cells,
    gradcam_from_activations,
    gradcam_map,
    guided_gradcam,
    reduce_to_electrodes,
    resolve_evidence_layer,
)
from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")


def _grid(rng, n=6):
    return torch.as_tensor(rng.standard_normal((n, 4, 9, 9)), dtype=torch.float32)


def _raw(rng, n=6, chans=8, times=64):
    return torch.as_tensor(rng.standard_normal((n, chans, times)), dtype=torch.float32)


def _zoo(name, rng):
    torch.manual_seed(0)
    if name == "ccnn":
        return CCNN().eval(), _grid(rng)
    if name == "fbccnn":
        return FBCCNN().eval(), _grid(rng)
    if name == "eegnet":
        return EEGNet(chunk_size=64, num_electrodes=8).eval(), _raw(rng)
    return TSCeption(num_electrodes=8, num_T=4, num_S=4, chunk_size=64).eval(), _raw(rng)


@pytest.mark.parametrize("name", ["ccnn", "fbccnn", "eegnet", "tsception"])
def test_gradcam_map_matches_captum_layer_gradcam(name, rng):
    module, X = _zoo(name, rng)
    layer_name, kind, layer = resolve_evidence_layer(module)
    target = torch.as_tensor(np.arange(len(X)) % 2)
    reference = LayerGradCam(module, layer).attribute(X, target=target, relu_attributions=True)
    with ActivationCapture(layer) as capture:
        logits = module(X)
    ours = gradcam_map(logits, capture.get(), target, create_graph=False)
    assert reference.shape == (len(X), 1, *ours.shape[1:])
    assert ours.abs().max() > 0
    np.testing.assert_allclose(ours.detach().numpy(), reference[:, 0].detach().numpy(),
                               rtol=1e-5, atol=1e-7)
    # The public function reduces the same map to electrodes.
    cells = default_cells() if kind == "grid" else None
    expected = reduce_to_electrodes(reference[:, 0], kind, cells).detach().numpy()
    evidence = guided_gradcam(module, X, target.numpy())
    n_electrodes = 32 if kind == "grid" else X.shape[1]
    assert evidence.shape == (len(X), n_electrodes)
    np.testing.assert_allclose(evidence, expected, rtol=1e-5, atol=1e-7)


def test_guided_saliency_matches_captum_guided_backprop(rng):
    module, X = _zoo("fbccnn", rng)  # ReLU activations only: captum's rule applies to all
    target = torch.as_tensor(np.arange(len(X)) % 2)
    saliency = CaptumGuidedBackprop(module).attribute(X, target=target).abs().sum(dim=1)
    guided_part = reduce_to_electrodes(saliency, "grid", default_cells()).numpy()
    plain = guided_gradcam(module, X, target.numpy())
    guided = guided_gradcam(module, X, target.numpy(), guided=True)
    assert np.abs(guided).max() > 0
    np.testing.assert_allclose(guided, plain * guided_part, rtol=1e-5, atol=1e-9)


class OneElectrodeRaw(nn.Module):
    """Evidence layer: a (1 x 1) conv gated to electrode ``keep``; logits from its sum."""

    def __init__(self, n_chans, keep):
        super().__init__()
        gate = torch.zeros(1, 1, n_chans, 1)
        gate[0, 0, keep] = 1.0
        self.register_buffer("gate", gate)
        self.layer = nn.Conv2d(1, 1, 1, bias=False)
        self.head = nn.Linear(1, 2, bias=False)

    def forward(self, x):
        activations = self.layer(x.unsqueeze(1) * self.gate)
        return self.head(activations.sum(dim=(1, 2, 3)).unsqueeze(1))


def test_known_evidence_on_one_electrode_raw(rng):
    n_chans, keep = 5, 3
    module = OneElectrodeRaw(n_chans, keep)
    with torch.no_grad():
        module.layer.weight.fill_(2.0)
        module.head.weight.copy_(torch.tensor([[-1.0], [0.5]]))
    X = _raw(rng, n=4, chans=n_chans, times=10)
    y = np.array([0, 1, 0, 1])
    evidence = guided_gradcam(module, X, y, layer="layer", kind="channels")
    # ds/dA = head weight of the class everywhere, so CAM = ReLU(v_y * 2 * x) on `keep`.
    head = np.array([-1.0, 0.5])
    expected = np.zeros((4, n_chans))
    for b in range(4):
        expected[b, keep] = np.maximum(head[y[b]] * 2.0 * X[b, keep].numpy(), 0).sum()
    np.testing.assert_allclose(evidence, expected, rtol=1e-6)
    assert np.all(np.delete(evidence, keep, axis=1) == 0)
    assert np.all(evidence[:, keep] > 0)


class OneCellGrid(nn.Module):
    """Evidence layer sees only the grid cell ``cell``; logits from its sum."""

    def __init__(self, cell):
        super().__init__()
        gate = torch.zeros(1, 1, 9, 9)
        gate[0, 0, cell[0], cell[1]] = 1.0
        self.register_buffer("gate", gate)
        self.layer = nn.Conv2d(4, 3, 1, bias=False)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        activations = self.layer(x * self.gate)
        return self.head(activations.sum(dim=(2, 3)))


def test_known_evidence_on_one_grid_cell_maps_to_its_electrode(rng):
    fz = layout.DEAP_CHANNELS.index("Fz")
    torch.manual_seed(0)
    module = OneCellGrid(layout.DEAP_GRID["Fz"])
    X = _grid(rng, n=8)
    evidence = guided_gradcam(module, X, layer="layer", kind="grid")
    assert evidence.shape == (8, 32)
    assert np.all(np.delete(evidence, fz, axis=1) == 0)
    # ds/dA_k = head weight w_yk at every cell, so Fz gets ReLU(sum_k w_yk A_k(Fz)).
    with torch.no_grad():
        predicted = module(X).argmax(dim=1)
        row, col = layout.DEAP_GRID["Fz"]
        at_fz = module.layer(X)[:, :, row, col]
        expected = torch.relu((module.head.weight[predicted] * at_fz).sum(dim=1))
    np.testing.assert_allclose(evidence[:, fz], expected.numpy(), rtol=1e-5)
    assert (evidence[:, fz] > 0).sum() >= 2


def test_evidence_is_differentiable_gradcheck():
    torch.manual_seed(0)
    first = nn.Conv2d(1, 3, (1, 3)).double()
    rest = nn.Sequential(nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 6, 2)).double()
    X = torch.randn(3, 1, 4, 8, dtype=torch.float64)
    target = torch.tensor([0, 1, 1])

    def evidence_of(weight):
        activations = first(X)
        logits = torch.nn.functional.linear(rest[1](rest[0](activations)), weight, rest[2].bias)
        return gradcam_from_activations(logits, activations, target, "channels")

    weight = rest[2].weight.detach().clone().requires_grad_(True)
    assert evidence_of(weight).requires_grad
    assert torch.autograd.gradcheck(evidence_of, (weight,), eps=1e-6, atol=1e-5)


def test_guided_backprop_hooks_change_only_rectified_passes(rng):
    module, X = _zoo("fbccnn", rng)
    X.requires_grad_(True)
    plain_logits = module(X)
    (plain,) = torch.autograd.grad(plain_logits[:, 1].sum(), X)
    with GuidedBackprop(module) as guide:
        logits = module(X)
    assert guide.n_hooked == 9  # 7 conv blocks + 2 hidden linear layers, all ReLU
    (same,) = torch.autograd.grad(logits[:, 1].sum(), X, retain_graph=True)
    with guide.rectifying():
        (rectified,) = torch.autograd.grad(logits[:, 1].sum(), X)
    torch.testing.assert_close(same, plain)
    assert not torch.allclose(rectified, plain)


def test_guided_gradcam_on_fitted_estimator_with_string_labels(rng):
    X = rng.standard_normal((16, 4, 64)).astype("float32")
    y = np.array(["low", "high"] * 8)
    clf = EEGClassifier("eegnet", max_epochs=1, batch_size=8, random_state=0).fit(X, y)
    before = [p.detach().clone() for p in clf.module_.parameters()]
    clf.module_.train()
    by_label = guided_gradcam(clf, X, y, batch_size=5)
    indices = np.searchsorted(clf.classes_, y)
    by_index = guided_gradcam(clf.module_, X, indices, batch_size=5)
    np.testing.assert_array_equal(by_label, by_index)
    # Another batch size may change the rounding (with channels-last weights, oneDNN
    # blocks the batch differently), nothing more.
    np.testing.assert_allclose(guided_gradcam(clf.module_, X, indices), by_label, rtol=1e-5)
    assert by_label.shape == (16, 4) and np.all(by_label >= 0)
    assert clf.module_.training  # mode restored
    assert all(torch.equal(a, b) for a, b in zip(before, clf.module_.parameters(), strict=True))
    predicted = guided_gradcam(clf, X)  # y=None explains the predicted class
    pred_idx = np.searchsorted(clf.classes_, clf.predict(X))
    np.testing.assert_allclose(predicted, guided_gradcam(clf.module_, X, pred_idx), rtol=1e-6)
    with pytest.raises(ValueError, match="never saw"):
        guided_gradcam(clf, X, np.array(["mid"] * 16))


def test_bad_arguments_raise_clear_errors(rng):
    module, X = _zoo("ccnn", rng)
    with pytest.raises(ValueError, match="not fitted"):
        guided_gradcam(EEGClassifier("ccnn"), X)
    with pytest.raises(ValueError, match="layer='conv9'"):
        guided_gradcam(module, X, layer="conv9")
    with pytest.raises(ValueError, match="kind"):
        guided_gradcam(module, X, kind="cells")
    with pytest.raises(ValueError, match="inside the 9x9 grid"):
        guided_gradcam(module, X, cells=np.array([[0, 9]]))
    with pytest.raises(ValueError, match="declares no evidence layer"):
        guided_gradcam(nn.Sequential(nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(162, 2)), X)


def test_activation_capture_refuses_a_layer_that_runs_twice():
    layer = nn.Conv2d(2, 2, 1)
    with ActivationCapture(layer) as capture:
        layer(layer(torch.randn(1, 2, 3, 3)))
    with pytest.raises(RuntimeError, match="ran 2 times"):
        capture.get()


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_double_backward_gives_the_same_gradients_and_statistics(channels_last):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ELU(), nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, (1, 3), stride=(1, 2), padding=(0, 1), groups=2, bias=False),
        nn.BatchNorm2d(4, momentum=None), nn.Tanh(), nn.Conv2d(4, 6, 2, dilation=2),
        nn.Flatten(), nn.LazyLinear(3),
    ).double()
    X = torch.randn(5, 2, 6, 9, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1, 0])
    module(X)  # materialise the lazy layer
    with torch.no_grad():
        module[2].weight.uniform_(0.5, 1.5)
        module[2].bias.uniform_(-0.5, 0.5)

    def knowledge_step(net):
        net.train()
        with ActivationCapture(net[1]) as capture:
            logits = net(X)
        evidence = gradcam_from_activations(logits, capture.get(), target, "channels")
        loss = torch.nn.functional.cross_entropy(logits, target) + evidence.square().mean()
        loss.backward()
        return [p.grad for p in net.parameters()], [b.clone() for b in net.buffers()]

    native = copy.deepcopy(module)
    expected_grads, expected_buffers = knowledge_step(native)
    if channels_last:  # as skkgp.EEGClassifier lays out zoo networks on CPU
        module.to(memory_format=torch.channels_last)
    with fast_double_backward(module):
        assert "_conv_forward" in vars(module[3]) and "forward" in vars(module[2])
        grads, buffers = knowledge_step(module)
    assert "_conv_forward" not in vars(module[3]) and "forward" not in vars(module[2])
    for a, b in zip(expected_grads, grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
    for a, b in zip(expected_buffers, buffers, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_fast_double_backward_under_bf16_autocast():
    # The patched convolutions follow autocast's rule (bf16 inputs) and give the
    # gradients of PyTorch's own path up to bf16 rounding.
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 9 * 9, 2),
    )
    X = torch.randn(16, 4, 9, 9)
    target = torch.arange(16) % 2
    kernels = []

    def knowledge_step(net):
        net.zero_grad()
        with ActivationCapture(net[0]) as capture, torch.autocast("cpu", dtype=torch.bfloat16):
            logits = net(X)
        activations = capture.get()
        assert activations.dtype == torch.bfloat16
        kernels.append(type(activations.grad_fn).__name__)
        evidence = gradcam_from_activations(logits.float(), activations, target, "channels")
        loss = (torch.nn.functional.cross_entropy(logits.float(), target)
                + 100 * evidence.float().square().mean())
        loss.backward()
        return [p.grad.clone() for p in net.parameters()]

    expected = knowledge_step(module)
    with fast_double_backward(module):
        got = knowledge_step(module)
    assert kernels == ["ConvolutionBackward0", "_Conv2dFunctionBackward"]
    for a, b in zip(expected, got, strict=True):
        assert b.dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cosine > 0.999, cosine
        torch.testing.assert_close(b.norm(), a.norm(), rtol=2e-2, atol=0)
