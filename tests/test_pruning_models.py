"""Every zoo model x every applicable method x ratios 0.1 .. 0.9: prune, forward, train.

Grid models run on small grids and raw models on 32 channels x 128 samples, so the
whole matrix stays fast; the filter structure is the zoo's own.
"""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption
from skkgp.pruning import METHODS, TrainingBatch, applicable_methods, prune
from skkgp.pruning.api import get_method
from skkgp.pruning.base import LayerCollapseError, PruningRequest, kept_count
from skkgp.pruning.masks import masked_tensors
from skkgp.pruning.units import UnitGraph, find_last_layer, zero_channels

RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)


def make_small_model(name):
    """A zoo network on small inputs, and a batch of four of them (seeded)."""
    # The weights too: whether a random network's output is constant must not depend on
    # which tests ran before.
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    if name == "ccnn":
        return CCNN(grid_size=(3, 3)), torch.randn(4, 4, 3, 3, generator=generator)
    if name == "fbccnn":
        return FBCCNN(grid_size=(3, 3)), torch.randn(4, 4, 3, 3, generator=generator)
    raw = torch.randn(4, 32, 128, generator=generator)
    if name == "eegnet":
        return EEGNet(chunk_size=128, num_electrodes=32), raw
    return TSCeption(num_electrodes=32, chunk_size=128), raw


MODELS = ("ccnn", "fbccnn", "eegnet", "tsception")
CRITERIA = ("taylor", "fpgm", "lamp", "kgi")


def _batch(x):
    """A labelled batch with a knowledge region: the first third of the electrodes."""
    targets = torch.arange(len(x)) % 2
    if x.dim() == 4:  # grids: every cell is an electrode
        rows, cols = x.shape[2:]
        cells = np.array([(r, c) for r in range(rows) for c in range(cols)])
    else:
        cells = None
    n_electrodes = len(cells) if cells is not None else x.shape[1]
    mask = np.arange(n_electrodes) < n_electrodes // 3
    return TrainingBatch(x, targets, region_mask=mask, cells=cells)
CASES = [(m, meth) for m in MODELS for meth in applicable_methods(make_small_model(m)[0])]


def _randomize_batchnorm(module):
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are 0/1)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                n = layer.num_features
                layer.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
                layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                layer.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                layer.bias.copy_(torch.rand(n, generator=generator) * 2 - 1)


@pytest.mark.parametrize(("model", "method"), CASES)
def test_prune_forward_and_train_step(model, method):
    origin, x = make_small_model(model)
    _randomize_batchnorm(origin)
    y = torch.tensor([0, 1, 0, 1])
    macs = []
    for ratio in RATIOS:
        net = copy.deepcopy(origin)
        try:
            report = prune(net, method, ratio, x[:2], batch=_batch(x))
        except LayerCollapseError as error:
            # A global threshold empties the layers of small weights first (umwp):
            # refused, and the largest ratio it names leaves every layer a weight.
            assert method == "umwp" and error.largest_ratio < ratio and error.layers
            assert not masked_tensors(net)
            report = prune(net, method, error.largest_ratio, x[:2], batch=_batch(x))
            assert all(layer.weight_mask.any() for layer in net.modules()
                       if hasattr(layer, "weight_mask"))
        names = {name for name, _ in net.named_modules()}
        assert names == {name for name, _ in origin.named_modules()}
        assert type(net).evidence.layer in names
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        optimizer.zero_grad()
        out = net(x)
        assert out.shape == (4, 2)
        torch.nn.functional.cross_entropy(out, y).backward()
        optimizer.step()
        net.eval()
        assert torch.isfinite(net(x)).all()
        assert report.macs_reduction > 0 and report.params_reduction > 0
        macs.append(report.nonzero_macs_after)
        if report.structural:
            for layer, (kept, total) in report.kept_channels.items():
                assert 1 <= kept <= total
                assert dict(net.named_modules())[layer].out_channels == kept
            if method not in ("nsfp", "lamp"):  # global ranking: unequal shares
                # lfp keeps floor(n * (1 - ratio)), sfp removes floor(n * ratio).
                for kept, total in report.kept_channels.values():
                    assert kept == get_method(method).kept(total, ratio)
    assert macs == sorted(macs, reverse=True)  # more pruning, fewer MACs


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_removing_zeroed_channels_keeps_outputs(model, ratio):
    """Zero random channels of every unit (filters, biases, BatchNorm scale and shift),
    then prune at the ratio that removes that many: L1 norms of zero are the lowest,
    so exactly the zeroed channels go, and the output must not change. Checks the
    units: EEGNet's grouped spatial conv, TSCeption's time and electrode concats."""
    net, x = make_small_model(model)
    _randomize_batchnorm(net)
    net.eval()
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    generator = torch.Generator().manual_seed(2)
    zeroed = {}
    for unit in graph.units:
        n_zero = unit.n_channels - kept_count(unit.n_channels, ratio)
        zeroed[unit.name] = torch.randperm(unit.n_channels, generator=generator)[:n_zero]
        zero_channels(net, unit, zeroed[unit.name].tolist())
    kept_filters = {
        unit.name: dict(net.named_modules())[unit.name].weight.detach()[
            [c for c in range(unit.n_channels) if c not in set(zeroed[unit.name].tolist())]
        ].clone()
        for unit in graph.units
    }
    before = net(x)
    prune(net, "lfp", ratio, x[:2])
    after = net(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    if ratio < 0.9:  # one channel left may be dead after a ReLU
        assert not torch.allclose(before[0], before[1])  # the output is not a constant
    for name, filters in kept_filters.items():
        root = dict(net.named_modules())[name]
        # Kept filters are the non-zeroed ones, in order (their input channels may shrink).
        assert root.weight.shape[0] == filters.shape[0]
        if root.weight.shape[1:] == filters.shape[1:]:
            assert torch.equal(root.weight.detach(), filters)


def test_eegnet_groups_shrink_with_temporal_filters():
    net, x = make_small_model("eegnet")
    prune(net, "lfp", 0.5, x[:2])
    assert net.temporal_conv.out_channels == 4
    assert net.spatial_conv.groups == net.spatial_conv.in_channels == 4
    assert net.spatial_conv.out_channels == 8  # D = 2 spatial filters per temporal filter
    assert net.spatial_bn.num_features == net.separable_depthwise.groups == 8
    assert net.separable_pointwise.in_channels == 8
    assert net.separable_pointwise.out_channels == 8


def test_tsception_branches_stay_consistent():
    net, x = make_small_model("tsception")
    prune(net, "lfp", 0.3, x[:2])
    temporal = [getattr(net.temporal, f"Tception{i}")[0].out_channels for i in (1, 2, 3)]
    assert temporal == [10, 10, 10] and net.BN_t.num_features == 10
    assert net.Sception1[0].out_channels == net.Sception2[0].out_channels == 10
    assert net.Sception1[0].in_channels == net.Sception2[0].in_channels == 10
    assert net.BN_s.num_features == net.fusion_layer[0].in_channels == 10


@settings(max_examples=12, deadline=None)
@given(
    F1=st.integers(2, 6),
    D=st.integers(1, 3),
    F2=st.integers(2, 8),
    ratio=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**16),
)
def test_eegnet_any_depth_and_ratio_removes_exactly_the_zeroed_channels(F1, D, F2, ratio, seed):
    """D = 1 is a depthwise conv (torch-pruning's own path), D > 1 a channel multiplier."""
    net = EEGNet(chunk_size=32, num_electrodes=4, F1=F1, D=D, F2=F2, kernel_1=8, kernel_2=4)
    _randomize_batchnorm(net)
    net.eval()
    x = torch.randn(3, 4, 32, generator=torch.Generator().manual_seed(seed))
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    assert [u.name for u in graph.units] == ["temporal_conv", "separable_pointwise"]
    generator = torch.Generator().manual_seed(seed)
    for unit in graph.units:
        n_zero = unit.n_channels - kept_count(unit.n_channels, ratio)
        zero_channels(net, unit, torch.randperm(unit.n_channels, generator=generator)[:n_zero])
    before = net(x)
    report = prune(net, "lfp", ratio, x[:2])
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-6)
    kept = kept_count(F1, ratio)
    assert report.kept_channels["temporal_conv"] == (kept, F1)
    assert net.spatial_conv.out_channels == kept * D and net.spatial_conv.groups == kept


class _BranchyNet(torch.nn.Module):
    """A user-supplied module: channel concat of two branches and a residual add."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn_a = torch.nn.BatchNorm2d(8)
        self.b1 = torch.nn.Conv2d(8, 6, 1)
        self.b2 = torch.nn.Conv2d(8, 10, 3, padding=1)
        self.c = torch.nn.Conv2d(16, 8, 1)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.bn_a(self.a(x)))
        h = h + self.c(torch.cat([self.b1(h), self.b2(h)], dim=1))
        return self.head(h.mean((2, 3)))


def test_user_module_with_concat_and_residual():
    torch.manual_seed(0)
    net = _BranchyNet()
    _randomize_batchnorm(net)
    net.eval()
    x = torch.randn(3, 3, 8, 8)
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    units = {u.name: u for u in graph.units}
    assert set(units) == {"a", "b1", "b2"}
    # The residual add couples a's filters with c's: one unit.
    assert {s.layer for s in units["a"].filters} == {"a", "c"}
    for unit in graph.units:
        zero_channels(net, unit, range(unit.n_channels - kept_count(unit.n_channels, 0.5)))
    before = net(x)
    report = prune(net, "lfp", 0.5, x[:2])
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-6)
    assert report.kept_channels == {"a": (4, 8), "b1": (3, 6), "b2": (5, 10)}
    assert net.c.in_channels == 8 and net.c.out_channels == 4 and net.head.out_features == 3


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", CRITERIA)
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_criteria_remove_channels_as_if_zeroed(model, method, ratio):
    """Whatever a criterion ranks lowest, removing it equals zeroing it: in float64, the
    pruned network's output is the output of the unpruned one with the chosen channels
    zeroed, to 1e-8."""
    net, x = make_small_model(model)
    _randomize_batchnorm(net)
    net = net.double().eval()
    x = x.double()
    batch = _batch(x)
    criterion = get_method(method)
    last = find_last_layer(net, x[:2])
    zeroed = copy.deepcopy(net)
    graph, removed = criterion.plan(zeroed, PruningRequest(
        ratio, x[:2], (find_last_layer(zeroed, x[:2]),),
        global_pruning=criterion.default_global, batch=batch,
    ))
    assert any(removed.values())
    for unit in graph.units:
        zero_channels(zeroed, unit, removed.get(unit.name, []))
    report = prune(net, method, ratio, x[:2], batch=batch)
    assert last is find_last_layer(net, x[:2])
    for name, (kept, total) in report.kept_channels.items():
        assert total - kept == len(removed[name])
    torch.testing.assert_close(net(x), zeroed(x), rtol=0, atol=1e-8)


STRUCTURAL = tuple(m for m in METHODS if get_method(m).structural)


@pytest.mark.parametrize("method", STRUCTURAL)
def test_scores_are_float64_on_the_cpu(method):
    """Every structural method's scores, from a float32 network whose parameters take
    gradients, are detached float64 CPU tensors with one score per channel: the form
    plan and select use them in, without converting them again."""
    assert set(CRITERIA) < set(STRUCTURAL)
    net, x = make_small_model("eegnet")
    _randomize_batchnorm(net)
    net.eval()
    assert method in applicable_methods(net)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in net.parameters())
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    widths = {unit.name: unit.n_channels for unit in graph.units}
    scores = get_method(method).unit_scores(net, graph, _batch(x))
    assert scores and set(scores) <= set(widths)
    for name, unit_scores in scores.items():
        assert unit_scores.dtype == torch.float64, name
        assert unit_scores.device == torch.device("cpu"), name
        assert not unit_scores.requires_grad, name
        assert unit_scores.shape == (widths[name],), name


@pytest.mark.parametrize("model", MODELS)
def test_taylor_scores_zeroed_channels_zero(model):
    """Zeroed channels (filters, BatchNorm scales and shifts) have no weight and pass
    no gradient: their Taylor importance is exactly 0, the lowest there is. (Channels
    dead after a ReLU on the batch score 0 too, so which of the ties go is left to the
    test above.)"""
    net, x = make_small_model(model)
    _randomize_batchnorm(net)
    net = net.double().eval()
    x = x.double()
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    generator = torch.Generator().manual_seed(3)
    zeroed = {}
    modules = dict(net.named_modules())
    for unit in graph.units:
        zeroed[unit.name] = sorted(
            torch.randperm(unit.n_channels, generator=generator)[: unit.n_channels // 2]
            .tolist()
        )
        zero_channels(net, unit, zeroed[unit.name])
        with torch.no_grad():
            for piece in unit.norms:
                rows = [i for i, r in zip(piece.index, piece.root_index, strict=True)
                        if r in set(zeroed[unit.name])]
                modules[piece.layer].weight[rows] = 0.0
    scores = get_method("taylor").unit_scores(net, graph, _batch(x))
    assert set(scores) == set(zeroed)
    for name, chosen in zeroed.items():
        assert scores[name][chosen].abs().max() == 0
        assert (scores[name] >= 0).all() and scores[name].max() > 0
    assert all(p.grad is None for p in net.parameters())  # gradients dropped again


@pytest.mark.parametrize("model", MODELS)
def test_kgi_sheds_filters_that_look_outside_the_region(model):
    """Two filters of equal norm in the evidence layer: the one whose evidence lies
    outside the region goes under kgi (LFP cannot tell them apart)."""
    from skkgp.pruning.kgi import evidence_unit, outside_shares

    net, x = make_small_model(model)
    net.eval()
    batch = _batch(x)
    graph = UnitGraph(net, x[:2], [find_last_layer(net, x[:2])])
    unit = evidence_unit(net, graph)
    assert unit is not None and unit.name in {u.name for u in graph.units}
    shares = outside_shares(net, batch)
    assert shares.shape == (unit.n_channels,)
    assert ((shares >= 0) & (shares <= 1)).all()
    # Filters equal in norm: the ranking is the knowledge term's.
    modules = dict(net.named_modules())
    with torch.no_grad():
        for piece in unit.filters:
            weight = modules[piece.layer].weight
            weight.div_(weight.flatten(1).abs().sum(1).view(-1, *[1] * (weight.dim() - 1)))
    shares = outside_shares(net, batch)
    _, removed = get_method("kgi").plan(
        net, PruningRequest(0.5, x[:2], (find_last_layer(net, x[:2]),), batch=batch)
    )
    n_removed = len(removed[unit.name])
    # Norms of filters spread over several branches (TSCeption) are sums: equal up to
    # that; the removed ones are those with the largest outside shares.
    norms = torch.stack([
        modules[p.layer].weight.detach().flatten(1).abs().sum(1).double() for p in unit.filters
    ]).sum(0)
    expected = torch.argsort(norms * (1 - 0.5 * shares), stable=True)[:n_removed]
    assert removed[unit.name] == sorted(expected.tolist())
    assert shares[removed[unit.name]].min() >= shares[
        [c for c in range(unit.n_channels) if c not in removed[unit.name]]
    ].max() - 1e-12


def test_data_driven_methods_need_a_batch():
    net, x = make_small_model("ccnn")
    with pytest.raises(ValueError, match="TrainingBatch"):
        prune(net, "taylor", 0.5, x[:2])
    batch = TrainingBatch(x, torch.zeros(len(x), dtype=torch.long))
    with pytest.raises(ValueError, match="region_mask"):
        prune(net, "kgi", 0.5, x[:2], batch=batch)
    with pytest.raises(ValueError, match="targets must have shape"):
        TrainingBatch(x, torch.zeros(len(x) + 1))
