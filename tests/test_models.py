"""Tests of the model zoo: sizes by hand, MACs, short windows, evidence layers, torcheeg parity."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skkgp.models import (
    CCNN,
    FBCCNN,
    MODELS,
    EEGNet,
    TSCeption,
    get_model_class,
    infer_module_kwargs,
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_params(k_h, k_w, c_in, c_out, groups=1, bias=True):
    return k_h * k_w * (c_in // groups) * c_out + (c_out if bias else 0)


def linear_params(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def bn_params(channels):
    return 2 * channels


def measured_macs(module, x):
    """Multiply-accumulates of every Conv2d and Linear in one forward pass (bias excluded)."""
    total = []

    def hook(layer, _inputs, output):
        if isinstance(layer, nn.Conv2d):
            k_h, k_w = layer.kernel_size
            per_output = k_h * k_w * layer.in_channels // layer.groups
            total.append(output.numel() // output.shape[0] * per_output)
        else:
            total.append(output.numel() // output.shape[0] * layer.in_features)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module.eval()(x)
    for handle in handles:
        handle.remove()
    return sum(total)


# ---------------------------------------------------------------------------- sizes
def test_ccnn_parameter_count_by_hand():
    convs = [(4, 64), (64, 128), (128, 256), (256, 64)]
    expected = sum(conv_params(4, 4, c_in, c_out) for c_in, c_out in convs)
    expected += linear_params(9 * 9 * 64, 1024) + linear_params(1024, 2)
    assert expected == 6_233_602
    assert n_params(CCNN(in_channels=4, grid_size=(9, 9), num_classes=2)) == expected


def test_ccnn_macs_by_hand():
    # Every conv keeps the 9x9 grid (81 positions); MACs = positions * k*k*c_in*c_out.
    convs = [(4, 64), (64, 128), (128, 256), (256, 64)]
    expected = sum(81 * 4 * 4 * c_in * c_out for c_in, c_out in convs)
    expected += 81 * 64 * 1024 + 1024 * 2
    assert expected == 79_960_064
    assert measured_macs(CCNN(), torch.zeros(1, 4, 9, 9)) == expected


def test_fbccnn_parameter_count_by_hand():
    widths = [4, 12, 32, 64, 128, 256, 128, 32]
    expected = sum(
        conv_params(3, 3, c_in, c_out) + bn_params(c_out)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
    )
    expected += linear_params(81 * 32, 512) + linear_params(512, 128) + linear_params(128, 2)
    assert expected == 2_118_230
    assert n_params(FBCCNN(in_channels=4, grid_size=(9, 9), num_classes=2)) == expected
    # 81 positions per conv, plus the three linear layers: about 6.0e7 MACs.
    macs = sum(81 * 9 * c_in * c_out for c_in, c_out in zip(widths[:-1], widths[1:], strict=True))
    macs += 81 * 32 * 512 + 512 * 128 + 128 * 2
    assert measured_macs(FBCCNN(), torch.zeros(1, 4, 9, 9)) == macs
    assert 5.9e7 < macs < 6.1e7


def _eegnet_expected(C, T, F1=8, D=2, F2=16, k1=64, k2=16, n_classes=2):
    k1 = min(k1, T)
    t1 = T + 2 * (k1 // 2) - k1 + 1
    t2 = t1 // min(4, t1)
    k2 = min(k2, t2)
    t3 = t2 + 2 * (k2 // 2) - k2 + 1
    t4 = t3 // min(8, t3)
    return (
        conv_params(1, k1, 1, F1, bias=False) + bn_params(F1)
        + conv_params(C, 1, F1, F1 * D, groups=F1, bias=False) + bn_params(F1 * D)
        + conv_params(1, k2, F1 * D, F1 * D, groups=F1 * D, bias=False)
        + conv_params(1, 1, F1 * D, F2, bias=False) + bn_params(F2)
        + linear_params(F2 * t4, n_classes, bias=False)
    )


@pytest.mark.parametrize("C, T", [(60, 151), (32, 128), (3, 50), (2, 8)])
def test_eegnet_parameter_count_by_hand(C, T):
    model = EEGNet(chunk_size=T, num_electrodes=C)
    assert n_params(model) == _eegnet_expected(C, T)


def _tsception_expected(C, fs, num_T=15, num_S=15, hid=32, n_classes=2):
    kernels = [int(w * fs) for w in (0.5, 0.25, 0.125)]
    return (
        sum(conv_params(1, k, 1, num_T) for k in kernels) + bn_params(num_T)
        + conv_params(C, 1, num_T, num_S) + conv_params(C // 2, 1, num_T, num_S)
        + bn_params(num_S) + conv_params(3, 1, num_S, num_S) + bn_params(num_S)
        + linear_params(num_S, hid) + linear_params(hid, n_classes)
    )


@pytest.mark.parametrize("C, fs", [(28, 128), (32, 128), (14, 200)])
def test_tsception_parameter_count_by_hand(C, fs):
    model = TSCeption(num_electrodes=C, sampling_rate=fs)
    assert n_params(model) == _tsception_expected(C, fs)


# ---------------------------------------------------------------------------- robustness
RAW_CASES = [(2, 8, 128), (3, 50, 100), (5, 50, 100), (32, 128, 128), (7, 17, 256)]


@pytest.mark.parametrize("cls", [EEGNet, TSCeption])
@pytest.mark.parametrize("C, T, fs", RAW_CASES)
def test_raw_models_any_channels_and_short_windows(cls, C, T, fs):
    kwargs = infer_module_kwargs(cls, (C, T), 3)
    if cls is TSCeption:
        kwargs["sampling_rate"] = fs
    model = cls(**kwargs)
    x = torch.randn(4, C, T)
    out = model.train()(x)
    assert out.shape == (4, 3)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model(x[:, None]).shape == (4, 3)  # (n, 1, C, T) accepted as well


@pytest.mark.parametrize("cls", [CCNN, FBCCNN])
@pytest.mark.parametrize("shape", [(4, 9, 9), (5, 8, 9)])
def test_grid_models_forward_backward(cls, shape):
    model = cls(**infer_module_kwargs(cls, shape, 2))
    out = model.train()(torch.randn(3, *shape))
    assert out.shape == (3, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_tsception_needs_two_electrodes():
    with pytest.raises(ValueError, match="at least 2 electrodes"):
        TSCeption(num_electrodes=1)


# ---------------------------------------------------------------------------- evidence
@pytest.mark.parametrize("name", sorted(MODELS))
def test_evidence_layer_resolves_and_keeps_electrode_axis(name):
    cls = MODELS[name]
    if cls.input_kind == "grid":
        shape = (4, 9, 9)
    else:
        shape = (6, 64)
    model = cls(**infer_module_kwargs(cls, shape, 2)).eval()
    layer = dict(model.named_modules())[cls.evidence.layer]
    captured = {}
    layer.register_forward_hook(lambda _m, _i, out: captured.setdefault("out", out))
    model(torch.randn(2, *shape))
    out = captured["out"]
    assert out.dim() == 4 and out.shape[0] == 2
    if cls.evidence.electrode_axis == "grid":
        assert out.shape[2:] == (9, 9)
    else:
        assert cls.evidence.electrode_axis == "channels" and out.shape[2] == 6


def test_infer_module_kwargs_and_names():
    assert infer_module_kwargs(CCNN, (4, 9, 9), 3) == {
        "in_channels": 4, "grid_size": (9, 9), "num_classes": 3
    }
    assert infer_module_kwargs(EEGNet, (32, 128), 2) == {
        "num_electrodes": 32, "chunk_size": 128, "num_classes": 2
    }
    with pytest.raises(ValueError, match="BandDifferentialEntropy"):
        infer_module_kwargs(CCNN, (32, 128), 2)

    class Tabular(nn.Module):
        def __init__(self, in_features, n_classes):
            super().__init__()

    assert infer_module_kwargs(Tabular, (10,), 2) == {"in_features": 10, "n_classes": 2}
    assert get_model_class("CCNN") is CCNN
    with pytest.raises(ValueError, match="Unknown model"):
        get_model_class("resnet")


def test_zoo_is_deterministic_under_seed():
    torch.manual_seed(0)
    a = np.concatenate([p.detach().numpy().ravel() for p in EEGNet(128, 4).parameters()])
    torch.manual_seed(0)
    b = np.concatenate([p.detach().numpy().ravel() for p in EEGNet(128, 4).parameters()])
    np.testing.assert_array_equal(a, b)


def test_eegnet_max_norm_writes_weights_only_in_training():
    from skkgp.knowledge.evidence import guided_gradcam

    torch.manual_seed(0)
    module = EEGNet(chunk_size=64, num_electrodes=8)
    spatial = module.spatial_conv
    with torch.no_grad():
        spatial.weight.mul_(10.0)  # filters far above max_norm, as after an optimizer step
    before = spatial.weight.detach().clone()
    X = torch.randn(4, 8, 64)
    module.eval()
    evaluated = module(X)
    guided_gradcam(module, X)
    assert torch.equal(spatial.weight, before)  # evaluating and explaining change nothing
    # Eval mode computes with the projected filters, as after a training step's projection.
    projected = copy.deepcopy(module)
    projected.spatial_conv.train()
    projected.spatial_conv(torch.randn(1, 8, 8, 1))  # a training forward writes them back
    torch.testing.assert_close(projected.spatial_conv.weight.detach(),
                               torch.renorm(before, p=2, dim=0, maxnorm=spatial.max_norm),
                               rtol=0, atol=0)
    projected.eval()
    torch.testing.assert_close(projected(X), evaluated)  # to rounding: a product, not renorm
    # Gradients still reach the weight in eval mode (Taylor importance takes them).
    module(X).sum().backward()
    assert spatial.weight.grad is not None and spatial.weight.grad.abs().sum() > 0
