"""Tests of skkgp.knowledge.evidence: against captum, and on models whose evidence is known."""

import contextlib
import copy
import warnings

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
    evidence_from_activations,
    evidence_map,
    filter_contributions,
    gradcam_map,
    guided_gradcam,
    reduce_to_electrodes,
    resolve_evidence,
    resolve_evidence_layer,
)
from skkgp.knowledge.losses import knowledge_guided_loss
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
    evidence = guided_gradcam(module, X, target.numpy(), evidence="gradcam")
    n_electrodes = 32 if kind == "grid" else X.shape[1]
    assert evidence.shape == (len(X), n_electrodes)
    np.testing.assert_allclose(evidence, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["ccnn", "eegnet", "tsception"])
def test_filter_contributions_sum_to_the_signed_map(name, rng):
    """Summed over filters, the per-filter terms are the signed Grad-CAM map reduced to
    electrodes, whose ReLU is the evidence."""
    module, X = _zoo(name, rng)
    _, kind, layer = resolve_evidence_layer(module)
    target = torch.as_tensor(np.arange(len(X)) % 2)
    cells = default_cells() if kind == "grid" else None
    with ActivationCapture(layer) as capture:
        logits = module(X)
    activations = capture.get()
    terms = filter_contributions(logits, activations, target, kind, cells)
    n_electrodes = 32 if kind == "grid" else X.shape[1]
    assert terms.shape == (len(X), activations.shape[1], n_electrodes)
    evidence, signed = evidence_from_activations(
        logits, activations, target, kind, cells, create_graph=False, return_scores=True
    )
    torch.testing.assert_close(terms.sum(1), signed.detach(), rtol=1e-4, atol=1e-6)
    assert not terms.requires_grad and terms.abs().max() > 0


def test_guided_saliency_matches_captum_guided_backprop(rng):
    module, X = _zoo("fbccnn", rng)  # ReLU activations only: captum's rule applies to all
    target = torch.as_tensor(np.arange(len(X)) % 2)
    saliency = CaptumGuidedBackprop(module).attribute(X, target=target).abs().sum(dim=1)
    guided_part = reduce_to_electrodes(saliency, "grid", default_cells()).numpy()
    plain = guided_gradcam(module, X, target.numpy())
    guided = guided_gradcam(module, X, target.numpy(), guided=True)
    assert np.abs(guided).max() > 0
    np.testing.assert_allclose(guided, plain * guided_part, rtol=1e-5, atol=1e-9)


def test_guided_evidence_warns_when_no_activation_module_can_be_hooked(rng):
    class Functional(nn.Module):
        """F.relu instead of nn.ReLU: nothing for guided backpropagation to hook."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 3, 3, padding=1)
            self.head = nn.Linear(3 * 9 * 9, 2)

        def forward(self, x):
            return self.head(nn.functional.relu(self.conv(x)).flatten(1))

    X = torch.as_tensor(rng.standard_normal((4, 4, 9, 9)), dtype=torch.float32)
    with pytest.warns(UserWarning, match="no activation module in Functional.*F.relu"):
        guided_gradcam(Functional(), X, layer="conv", electrode_axis="grid", guided=True)
    module, X = _zoo("fbccnn", rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ReLU modules: nothing to say
        guided_gradcam(module, X, guided=True)


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
    evidence = guided_gradcam(module, X, y, layer="layer", electrode_axis="channels")
    # ds/dA = head weight of the class everywhere, so CAM = ReLU(v_y * 2 * x) on `keep`.
    head = np.array([-1.0, 0.5])
    expected = np.zeros((4, n_chans))
    for b in range(4):
        expected[b, keep] = np.maximum(head[y[b]] * 2.0 * X[b, keep].numpy(), 0).sum()
    np.testing.assert_allclose(evidence, expected, rtol=1e-6)
    assert np.all(np.delete(evidence, keep, axis=1) == 0)
    assert np.all(evidence[:, keep] > 0)


class SpatiallyWeighted(nn.Module):
    """A temporal-only evidence layer (one scale per filter) under fixed electrode
    weights ``s_e``: ``z_k = sum_(e,t) s_e a_k x_(e,t)``, logits ``V z``."""

    def __init__(self, spatial):
        super().__init__()
        self.register_buffer("spatial", torch.as_tensor(spatial, dtype=torch.float32))
        self.layer = nn.Conv2d(1, 2, 1, bias=False)
        self.head = nn.Linear(2, 2, bias=False)

    def forward(self, x):
        activations = self.layer(x.unsqueeze(1))
        return self.head((activations * self.spatial[:, None]).sum(dim=(2, 3)))


def test_known_evidence_of_each_kind_and_what_pooling_loses(rng):
    X = _raw(rng, n=4, chans=3, times=5)
    y = np.array([0, 1, 1, 0])
    spatial = np.array([1.0, -2.0, 0.5])
    module = SpatiallyWeighted(spatial)
    with torch.no_grad():
        module.layer.weight.copy_(torch.tensor([1.5, -0.5]).view(2, 1, 1, 1))
        module.head.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, 2.0]]))
    a, V, x = np.array([1.5, -0.5]), module.head.weight.detach().numpy(), X.numpy().astype(float)
    c = V[y] @ a  # the class score is sum_(e,t) c s_e x_(e,t)
    kinds = {k: guided_gradcam(module, X, y, evidence=k, electrode_axis="channels",
                               layer=None if k == "input_x_gradient" else "layer")
             for k in ("gradcam", "hirescam", "input_x_gradient")}
    # Grad-CAM: a_k = mean(ds/dA_k) = v_k mean(s), so the map ignores the spatial weights.
    gradcam = np.maximum(c[:, None, None] * spatial.mean() * x, 0).sum(axis=2)
    hirescam = np.maximum(c[:, None, None] * spatial[None, :, None] * x, 0).sum(axis=2)
    input_x_gradient = np.maximum(c[:, None] * spatial * x.sum(axis=2), 0)
    np.testing.assert_allclose(kinds["gradcam"], gradcam, rtol=1e-5)
    np.testing.assert_allclose(kinds["hirescam"], hirescam, rtol=1e-5)
    np.testing.assert_allclose(kinds["input_x_gradient"], input_x_gradient, rtol=1e-5)
    # Other spatial weights: the Grad-CAM profile over electrodes stays, the others move.
    other = SpatiallyWeighted(spatial[::-1].copy())
    other.load_state_dict({**module.state_dict(), "spatial": other.spatial})

    def profile(net, kind):
        e = guided_gradcam(net, X, y, evidence=kind, electrode_axis="channels",
                           layer=None if kind == "input_x_gradient" else "layer")
        return e / np.maximum(e.sum(axis=1, keepdims=True), 1e-12)

    assert np.allclose(profile(other, "gradcam"), profile(module, "gradcam"), atol=1e-6)
    assert not np.allclose(profile(other, "hirescam"), profile(module, "hirescam"), atol=1e-3)
    assert not np.allclose(profile(other, "input_x_gradient"),
                           profile(module, "input_x_gradient"), atol=1e-3)


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
    evidence = guided_gradcam(module, X, layer="layer", electrode_axis="grid")
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
        return evidence_from_activations(logits, activations, target, "channels")

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
    with pytest.raises(ValueError, match="electrode_axis"):
        guided_gradcam(module, X, electrode_axis="cells")
    with pytest.raises(ValueError, match="inside the 9x9 grid"):
        guided_gradcam(module, X, cells=np.array([[0, 9]]))
    with pytest.raises(ValueError, match="declares no evidence layer"):
        guided_gradcam(nn.Sequential(nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(162, 2)), X)
    with pytest.raises(ValueError, match="evidence must be 'auto' or one of"):
        guided_gradcam(module, X, evidence="gradient")
    # Input x gradient of a grid input needs to know its electrode axis.
    with pytest.raises(ValueError, match="electrode_axis='grid'"):
        guided_gradcam(nn.Sequential(nn.Conv2d(4, 2, 1), nn.Flatten(), nn.Linear(162, 2)), X,
                       evidence="input_x_gradient")


@pytest.mark.parametrize("target, match", [
    (torch.tensor([0, 1]), r"shape \(4,\).*got shape \(2,\)"),
    (torch.tensor([[0, 1], [1, 0]]), r"shape \(4,\).*got shape \(2, 2\)"),
    (torch.tensor([0.9, 1.2, 0.1, 1.0]), "integer class indices.*float32"),
    (torch.tensor([True, False, True, False]), "integer class indices.*bool"),
], ids=["short", "2-d", "float", "bool"])
@pytest.mark.parametrize("evidence", ["gradcam", "hirescam"])
def test_a_target_that_is_not_one_class_index_per_sample_is_refused(target, match, evidence):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 81, 2))
    with ActivationCapture(net[1]) as capture:
        logits = net(torch.randn(4, 4, 9, 9))
    with pytest.raises(ValueError, match=match):
        evidence_map(logits, capture.get(), target, evidence=evidence)
    with pytest.raises(ValueError, match=match):
        evidence_from_activations(logits, capture.get(), target, "grid", default_cells(),
                                  evidence=evidence)
    # One index per sample, of any integer dtype or as a list, is explained as given.
    expected = evidence_map(logits, capture.get(), torch.tensor([0, 1, 1, 0]))
    for good in (torch.tensor([0, 1, 1, 0], dtype=torch.int32), [0, 1, 1, 0]):
        torch.testing.assert_close(evidence_map(logits, capture.get(), good), expected)


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
        nn.BatchNorm2d(4, momentum=None), nn.Tanh(), nn.ZeroPad2d((1, 2, 0, 1)),
        nn.Conv2d(4, 6, 2, dilation=2), nn.Flatten(), nn.LazyLinear(3),
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
        evidence = evidence_from_activations(logits, capture.get(), target, "channels")
        loss = torch.nn.functional.cross_entropy(logits, target) + evidence.square().mean()
        loss.backward()
        return [p.grad for p in net.parameters()], [b.clone() for b in net.buffers()]

    native = copy.deepcopy(module)
    expected_grads, expected_buffers = knowledge_step(native)
    if channels_last:  # as skkgp.EEGClassifier lays out zoo networks on CPU
        module.to(memory_format=torch.channels_last)
    with fast_double_backward(module):
        assert "_conv_forward" in vars(module[3]) and "forward" in vars(module[2])
        assert "forward" in vars(module[6])  # the zero padding
        grads, buffers = knowledge_step(module)
    assert "_conv_forward" not in vars(module[3]) and "forward" not in vars(module[2])
    assert "forward" not in vars(module[6])
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
        evidence = evidence_from_activations(logits.float(), activations, target, "channels")
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


# ---------------------------------------------------------------- every kind, every zoo model
_GRID_CELLS = np.array([[0, 0], [1, 3], [2, 2], [4, 1], [3, 4], [0, 4]])
_KINDS = ("gradcam", "hirescam", "input_x_gradient")


def _tiny_double(name):
    """A small float64 zoo network without dropout, its input, and its electrode mapping."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    if name in ("ccnn", "fbccnn"):
        module = (CCNN(in_channels=2, grid_size=(5, 5), dropout=0.0) if name == "ccnn"
                  else FBCCNN(in_channels=2, grid_size=(5, 5)))
        X = torch.randn(4, 2, 5, 5, generator=generator, dtype=torch.float64)
        cells, mask = _GRID_CELLS, torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.float64)
    else:
        module = (EEGNet(chunk_size=16, num_electrodes=4, F1=2, F2=4, D=2, kernel_1=4,
                         kernel_2=4, dropout=0.0) if name == "eegnet"
                  else TSCeption(num_electrodes=4, num_T=2, num_S=2, hid_channels=4,
                                 sampling_rate=16, dropout=0.0, chunk_size=16))
        X = torch.randn(4, 4, 16, generator=generator, dtype=torch.float64)
        cells, mask = None, torch.tensor([1, 0, 1, 0], dtype=torch.float64)
    return module.double().train(), X, cells, mask


def _evidence_and_scores(module, X, target, kind, cells, parameters=None):
    _, layer, axis, submodule = resolve_evidence(module, kind)
    X = X.detach().requires_grad_(kind == "input_x_gradient")
    capture = ActivationCapture(submodule) if submodule is not None else contextlib.nullcontext()
    with capture:
        logits = module(X) if parameters is None else torch.func.functional_call(
            module, parameters, (X,))
    source = X if submodule is None else capture.get()
    evidence, scores = evidence_from_activations(
        logits, source, target, axis, cells, evidence=kind, return_scores=True
    )
    return logits, evidence, scores


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("name", ["ccnn", "fbccnn", "eegnet", "tsception"])
def test_fast_path_gives_autograds_knowledge_guided_gradients_in_float64(name, kind):
    """The fast double backward's parameter gradients of the whole knowledge-guided loss
    equal PyTorch's own double backward, for every evidence kind on every zoo model."""
    module, X, cells, mask = _tiny_double(name)
    target = torch.tensor([0, 1, 1, 0])

    def gradients(net, fast):
        net.zero_grad()
        with fast_double_backward(net) if fast else contextlib.nullcontext():
            logits, evidence, scores = _evidence_and_scores(net, X, target, kind, cells)
            ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
            loss = knowledge_guided_loss(ce, evidence, mask, 1.0, 0.5, scores=scores)
            loss.backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    plain = gradients(copy.deepcopy(module), fast=False)
    fast = gradients(module, fast=True)
    assert plain.keys() == fast.keys() and len(plain) > 0
    for param_name, expected in plain.items():
        torch.testing.assert_close(fast[param_name], expected, rtol=1e-9, atol=1e-12,
                                   msg=f"{name}/{kind}: {param_name}")
    # The evidence term reaches the parameters: without it the gradients differ.
    module.zero_grad()
    logits, _, _ = _evidence_and_scores(module, X, target, kind, cells)
    torch.nn.functional.cross_entropy(logits, target).backward()
    assert any(not torch.allclose(p.grad, fast[n]) for n, p in module.named_parameters()
               if p.grad is not None)


# A parameter below (or at) the evidence layer and one above it, per model.
_CHECKED_PARAMETER = {
    "ccnn": "conv2.1.bias",
    "fbccnn": "block2.2.weight",  # a training-mode BatchNorm: its closed-form double backward
    "eegnet": "separable_pointwise.weight",
    "tsception": "BN_t.weight",
}


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("name", ["ccnn", "fbccnn", "eegnet", "tsception"])
def test_fast_path_evidence_passes_gradcheck(name, kind):
    """Finite differences confirm the fast path's derivative of the evidence itself."""
    module, X, cells, _ = _tiny_double(name)
    target = torch.tensor([0, 1, 1, 0])
    param_name = _CHECKED_PARAMETER[name]
    start = dict(module.named_parameters())[param_name].detach().clone()
    if start.numel() > 8:
        start = start.flatten()[:8].clone()
    # One fixed projection per sample: as exact a check, a quarter of the backward passes.
    projection = torch.rand(len(_GRID_CELLS) if cells is not None else X.shape[1],
                            generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    full = dict(module.named_parameters())[param_name].detach()

    def evidence_of(values):
        weight = torch.cat([values, full.flatten()[values.numel():]]).view_as(full)
        swapped = {param_name: weight}
        if name == "eegnet":
            # Its max-norm forward rewrites the spatial weights in place: a fresh copy per
            # call keeps the tensors an earlier call's graph saved unchanged.
            swapped["spatial_conv.weight"] = module.spatial_conv.weight.detach().clone()
        with fast_double_backward(module):
            _, evidence, _ = _evidence_and_scores(module, X, target, kind, cells, swapped)
        return evidence @ projection

    values = start.flatten().requires_grad_(True)
    assert evidence_of(values).abs().sum() > 0
    assert torch.autograd.gradcheck(evidence_of, (values,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_input_x_gradient_matches_captum(rng):
    from captum.attr import InputXGradient

    module, X = _zoo("eegnet", rng)
    target = torch.as_tensor(np.arange(len(X)) % 2)
    reference = InputXGradient(module).attribute(X.clone().requires_grad_(True), target=target)
    expected = torch.relu(reference.sum(dim=2)).detach().numpy()
    evidence = guided_gradcam(module, X, target.numpy())  # "auto" is input x gradient here
    np.testing.assert_allclose(evidence, expected, rtol=1e-5, atol=1e-7)
    assert (evidence > 0).any()


def test_cells_given_as_a_tensor_are_checked(rng):
    maps = torch.rand(2, 9, 9)
    for cells, message in ((torch.tensor([[-1, 0]]), "non-negative"),
                           (torch.tensor([[0, 9]]), "inside the 9x9 grid")):
        with pytest.raises(ValueError, match=message):
            reduce_to_electrodes(maps, "grid", cells)
    module, X = _zoo("ccnn", rng)
    with pytest.raises(ValueError, match="non-negative"):
        guided_gradcam(module, X, cells=torch.tensor([[-1, 3]]))
    # A valid tensor gives what the same cells as an array give.
    cells = torch.as_tensor(default_cells())
    np.testing.assert_array_equal(guided_gradcam(module, X, cells=cells),
                                  guided_gradcam(module, X))


def test_guided_gradcam_under_inference_mode_says_so(rng):
    module, X = _zoo("ccnn", rng)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        guided_gradcam(module, X)
    with torch.no_grad():  # no_grad is fine: the evidence enables gradients itself
        expected = guided_gradcam(module, X)
    with torch.inference_mode():
        made_there = X.clone()  # an inference tensor, used outside the block
    np.testing.assert_array_equal(guided_gradcam(module, made_there), expected)


def test_class_indices_out_of_range_name_y_and_the_classes(rng):
    module, X = _zoo("ccnn", rng)
    for bad in (5, -1, 2):
        y = np.zeros(len(X), dtype=int)
        y[1] = bad
        with pytest.raises(ValueError, match=rf"y holds class indices \[{bad}\].*2 classes"):
            guided_gradcam(module, X, y)


def test_create_graph_takes_numpy_bools(rng):
    module, X = _zoo("ccnn", rng)
    with ActivationCapture(module.conv1) as capture:
        logits = module(X)
    for create_graph in (True, False):
        torch.testing.assert_close(
            gradcam_map(logits, capture.get(), create_graph=np.bool_(create_graph)),
            gradcam_map(logits, capture.get(), create_graph=create_graph))


def test_an_in_place_change_of_the_evidence_layers_output_is_refused(rng):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(4, 3, 1), nn.ReLU(inplace=True), nn.Flatten(),
                           nn.Linear(3 * 81, 2))
    X = _grid(rng)
    with pytest.raises(RuntimeError, match=r"changed in place.*1 \(ReLU\).*inplace=False"):
        guided_gradcam(module, X, layer="0", electrode_axis="grid")
    module[1].inplace = False  # the same network, computed on the layer's own output
    assert np.any(guided_gradcam(module, X, layer="0", electrode_axis="grid") > 0)
    # Without the network, the message still says what happened.
    module[1].inplace = True
    with ActivationCapture(module[0]) as capture:
        module(X)
    with pytest.raises(RuntimeError, match="changed in place"):
        capture.get()


@pytest.mark.parametrize("name", ["ccnn", "fbccnn", "eegnet", "tsception"])
def test_zoo_evidence_layers_keep_their_output(name, rng):
    module, X = _zoo(name, rng)
    layer = module.get_submodule(module.evidence.layer)
    for training in (False, True):
        module.train(training)
        with torch.enable_grad(), ActivationCapture(layer, module) as capture:
            module(X)
        assert capture.get().shape[0] == len(X)  # get() refuses a changed output
