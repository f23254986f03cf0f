"""Tests of skkgp.pruning.budget and skkgp.pruning.schedule: pruning to a MAC or
parameter budget, within one rounding step, on every zoo model; step schedules."""

import copy
import pickle

import pytest
import torch

from skkgp.models import CCNN
from skkgp.pruning import count_macs, count_nonzero_params, count_params, prune
from skkgp.pruning.base import LayerCollapseError
from skkgp.pruning.budget import find_budget_ratio, prune_to_budget
from skkgp.pruning.masks import masked_tensors
from skkgp.pruning.schedule import budget_targets, keep_fractions, split_epochs, step_ratios

from test_pruning_models import make_small_model

MODELS = ("ccnn", "fbccnn", "eegnet", "tsception")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("share", [0.7, 0.3])
def test_mac_budget_met_within_one_rounding_step(model, share):
    net, x = make_small_model(model)
    origin_macs = count_macs(net, x)
    target = int(origin_macs * share)
    search = find_budget_ratio(net, "lfp", x, target_macs=target)
    assert count_macs(net, x) == origin_macs  # the search prunes copies only
    pruned = copy.deepcopy(net)
    report = prune_to_budget(pruned, "lfp", x, target_macs=target)
    assert report.ratio == search.ratio and report.target_macs == target
    assert count_macs(pruned, x) == report.macs_after == search.macs <= target
    # One rounding step larger (the largest ratio that missed) is over the budget...
    larger = copy.deepcopy(net)
    missed = prune(larger, "lfp", search.missed_ratio, x)
    assert missed.macs_after > target
    # ...and that step is one filter more in some layers, never more than one.
    steps = [
        missed.kept_channels[name][0] - kept
        for name, (kept, _) in report.kept_channels.items()
    ]
    assert max(steps) == 1 and min(steps) >= 0
    assert "budget: MACs <=" in str(report)


@pytest.mark.parametrize("model, method", [("eegnet", "lamp"), ("tsception", "lfp")])
def test_param_budget_with_global_ranking(model, method):
    net, x = make_small_model(model)
    target = int(count_params(net) * 0.4)
    report = prune_to_budget(net, method, x, target_params=target, global_pruning=True)
    assert count_params(net) == report.params_after <= target
    assert report.target_params == target and report.target_macs is None


def test_masked_budget_counts_non_zero_weights():
    """umwp's budget is of non-zero parameters (biases and BatchNorm stay: the ratio of
    weights masked is above the share asked); a step less masking misses it."""
    net, x = make_small_model("eegnet")
    target = int(count_params(net) * 0.5)
    search = find_budget_ratio(net, "umwp", x, target_params=target)
    report = prune_to_budget(copy.deepcopy(net), "umwp", x, target_params=target)
    assert report.nonzero_params_after <= target < report.params_after
    assert 0.5 < report.ratio == search.ratio < 0.6
    missed = prune(copy.deepcopy(net), "umwp", search.missed_ratio, x)
    assert missed.nonzero_params_after > target


def test_budget_errors():
    net, x = make_small_model("eegnet")
    macs = count_macs(net, x)
    with pytest.raises(ValueError, match="not below the unpruned network's cost"):
        find_budget_ratio(net, "lfp", x, target_macs=macs)
    with pytest.raises(ValueError, match="cannot be reached"):
        find_budget_ratio(net, "lfp", x, target_macs=10)
    with pytest.raises(ValueError, match="give a budget"):
        find_budget_ratio(net, "lfp", x)
    with pytest.raises(ValueError, match="target_params must be a positive number"):
        find_budget_ratio(net, "lfp", x, target_params=-3)


def _emptied_layers(module):
    return [name for name, layer in module.named_modules()
            if hasattr(layer, "weight_mask") and not layer.weight_mask.any()]


def test_umwp_refuses_to_mask_whole_layers():
    """A global threshold high enough to mask every weight of a layer (it would output
    a constant) is refused, naming the layers and the largest ratio that leaves each a
    weight; the network is left as it was. A budget only that reaches is not reached,
    and a budget search stays below that ratio."""
    torch.manual_seed(0)
    net, x = CCNN(), torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(0))
    with pytest.raises(LayerCollapseError, match=r"ratio 0\.99 .* every weight of "
                       r"\['conv4\.1', 'lin1\.0'\].* largest ratio .* is 0\.95") as caught:
        prune(net, "umwp", 0.99, x)
    assert caught.value.layers == ["conv4.1", "lin1.0"]
    # It pickles whole, as a worker process sends it: message and attributes.
    sent = pickle.loads(pickle.dumps(caught.value))
    assert (str(sent), sent.layers, sent.largest_ratio) == (
        str(caught.value), caught.value.layers, caught.value.largest_ratio)
    assert not masked_tensors(net)
    largest = caught.value.largest_ratio
    report = prune(copy.deepcopy(net), "umwp", largest, x)
    assert report.nonzero_params_after < report.params_before
    pruned = copy.deepcopy(net)
    prune(pruned, "umwp", largest, x)
    assert not _emptied_layers(pruned)
    # Per layer, 99 % of every layer's weights go and each keeps some.
    per_layer = copy.deepcopy(net)
    prune(per_layer, "umwp", 0.99, x, global_pruning=False)
    assert not _emptied_layers(per_layer)

    with pytest.raises(ValueError, match=r"cannot be reached.* every layer keeps a weight"):
        prune_to_budget(copy.deepcopy(net), "umwp", x, target_params=20_000)
    reachable = count_nonzero_params(pruned) + 1
    budgeted = copy.deepcopy(net)
    found = prune_to_budget(budgeted, "umwp", x, target_params=reachable)
    assert found.ratio <= largest and found.nonzero_params_after <= reachable
    assert not _emptied_layers(budgeted)


def test_per_layer_ratios():
    net, x = make_small_model("ccnn")
    report = prune(net, "lfp", {"conv2.1": 0.5, "conv4.1": 0.25}, x)
    assert report.kept_channels == {
        "conv1.1": (64, 64), "conv2.1": (64, 128), "conv3.1": (256, 256), "conv4.1": (48, 64)
    }
    with pytest.raises(ValueError, match="not prunable units.*conv1.1"):
        prune(copy.deepcopy(net), "lfp", {"lin1.0": 0.5}, x)
    with pytest.raises(ValueError, match=r"\(ratio as a dict\) .* global_pruning=False"):
        prune(copy.deepcopy(net), "lfp", {"conv2.1": 0.5}, x, global_pruning=True)
    with pytest.raises(ValueError, match="structural methods"):
        prune(copy.deepcopy(net), "umwp", {"conv2.1": 0.5}, x)
    with pytest.raises(ValueError, match="'conv2.1' must be a float"):
        prune(copy.deepcopy(net), "lfp", {"conv2.1": 1.5}, x)


def test_schedules():
    assert keep_fractions(0.5, 1) == [0.5]
    assert keep_fractions(0.6, 3, "linear") == pytest.approx([0.8, 0.6, 0.4])
    geometric = keep_fractions(0.75, 2, "geometric")
    assert geometric == pytest.approx([0.5, 0.25])
    assert budget_targets(1000, 100, 2, "linear") == [550, 100]
    assert budget_targets(1000, 10, 2, "geometric") == [100, 10]
    assert split_epochs(7, 3, "split") == [2, 2, 3]
    assert split_epochs(1, 3, "split") == [0, 0, 1]
    assert split_epochs(4, 3, "each") == [4, 4, 4]
    # Each layer heads for floor(n * keep) of its origin width.
    assert step_ratios({"a": 10, "b": 4}, {"a": 8, "b": 4}, 0.5) == {"a": 1 - 5 / 8, "b": 0.5}
    with pytest.raises(ValueError, match="schedule"):
        keep_fractions(0.5, 2, "cosine")
    with pytest.raises(ValueError, match="step_recovery"):
        split_epochs(3, 2, "some")


def test_step_ratios_per_layer_in_one_call():
    """A dict of kept fractions gives, in one call, what one call per layer gives; a
    layer already at its target, and the layers the dict does not name, are left out."""
    origin = {"a": 10, "b": 64, "c": 10, "d": 16}
    current = {"a": 8, "b": 40, "c": 9, "d": 16}
    keep = {"a": 0.5, "b": 0.3, "c": 0.9}  # targets 5, 19 and 9 (already reached)
    one_call = step_ratios(origin, current, keep)
    per_layer = {}
    for name, fraction in keep.items():
        per_layer.update(step_ratios({name: origin[name]}, {name: current[name]}, fraction))
    assert one_call == per_layer == {"a": 1 - 5 / 8, "b": 1 - 19 / 40}
    assert step_ratios(origin, current, {"c": 0.5}) == {"c": 1 - 5 / 9}
    with pytest.raises(ValueError, match=r"keep_fraction names layers \['e'\]"):
        step_ratios(origin, current, {"a": 0.5, "e": 0.5})
    with pytest.raises(
        ValueError, match=r"current_channels names layers \['e'\] that origin_channels lacks"
    ):
        step_ratios(origin, {**current, "e": 3}, 0.5)
    with pytest.raises(ValueError, match=r"layer 'b' must be a float in \(0, 1\]"):
        step_ratios(origin, current, {"a": 0.5, "b": 1.5})
