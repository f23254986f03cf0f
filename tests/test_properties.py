"""Property-based tests (hypothesis) of the transforms and the knowledge-guided losses.

Finite outputs for finite inputs, output shapes, and the invariances the formulas
promise: DE(cX) = DE(X) + log|c|; ToGrid puts every channel on its own cell; a
standardised channel has zero mean and unit variance; region shares lie in [0, 1] and
do not change when the evidence is scaled; sample weights average 1; the loss with
both weights at 0 is the cross-entropy.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skkgp import layout
from skkgp.knowledge import losses
from skkgp.transforms import BandDifferentialEntropy, BaselineRemoval, ChannelStandardizer, ToGrid

FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
non_negative = st.floats(0, 1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def raw_windows(draw, min_times=32, max_times=80):
    """Gaussian EEG-like windows (n, c, t) from a drawn seed, scale and offset."""
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    t = draw(st.integers(min_times, max_times))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(1e-2, 1e2))
    offset = draw(st.floats(-1e2, 1e2))
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal((n, c, t))).astype(np.float32)


@st.composite
def evidence_and_mask(draw):
    n = draw(st.integers(1, 6))
    e = draw(st.integers(1, 8))
    evidence = draw(arrays(np.float64, (n, e), elements=non_negative))
    # Some rows entirely zero: the normalisation must fall back to uniform there.
    zero_rows = draw(arrays(np.bool_, (n,)))
    evidence[zero_rows] = 0.0
    mask = draw(arrays(np.bool_, (e,)))
    return evidence, mask


# ----------------------------------------------------------------------------- transforms
@FAST
@given(X=raw_windows())
def test_band_de_is_finite_with_one_value_per_channel_and_band(X):
    de = BandDifferentialEntropy().fit_transform(X)
    assert de.shape == (X.shape[0], X.shape[1], 4)
    assert de.dtype == np.float32
    assert np.isfinite(de).all()


@FAST
@given(X=raw_windows(), factor=st.floats(1e-2, 1e2), sign=st.sampled_from([-1.0, 1.0]))
def test_band_de_scale_invariance(X, factor, sign):
    # DE = 0.5 log(2 pi e var): scaling the signal by c adds log|c| (filtering is linear).
    de = BandDifferentialEntropy().fit_transform(X.astype(np.float64))
    de_scaled = BandDifferentialEntropy().fit_transform(X.astype(np.float64) * sign * factor)
    # Below the variance floor the identity cannot hold; DEAP-like signals are far above it.
    assume(de.min() > -20 and de_scaled.min() > -20)
    np.testing.assert_allclose(de_scaled, de + np.log(factor), atol=2e-3, rtol=0)


@FAST
@given(
    features=st.integers(1, 5),
    n=st.integers(1, 3),
    order=st.permutations(range(len(layout.DEAP_CHANNELS))),
    keep=st.integers(1, len(layout.DEAP_CHANNELS)),
    seed=st.integers(0, 2**31 - 1),
)
def test_togrid_places_each_channel_at_its_cell(features, n, order, keep, seed):
    names = [layout.DEAP_CHANNELS[i] for i in order[:keep]]
    X = np.random.default_rng(seed).standard_normal((n, keep, features)).astype(np.float32)
    grid = ToGrid(ch_names=names).fit_transform(X)
    assert grid.shape == (n, features, 9, 9)
    occupied = np.zeros((9, 9), dtype=bool)
    for channel, name in enumerate(names):
        row, col = layout.DEAP_GRID[name]
        np.testing.assert_array_equal(grid[:, :, row, col], X[:, channel, :])
        occupied[row, col] = True
    assert not grid[:, :, ~occupied].any()  # every other cell stays 0


@FAST
@given(X=raw_windows(min_times=2, max_times=20), per_feature=st.booleans())
def test_channel_standardizer_zero_mean_unit_variance(X, per_feature):
    Z = ChannelStandardizer(per_feature=per_feature).fit_transform(X)
    assert Z.shape == X.shape and np.isfinite(Z).all()
    axes = (0,) if per_feature else (0, 2)
    Z64, X64 = Z.astype(np.float64), X.astype(np.float64)
    spread = X64.std(axis=axes)
    informative = spread > 1e-3 * (np.abs(X64).max() + 1e-12)
    np.testing.assert_allclose(Z64.mean(axis=axes)[informative], 0, atol=1e-3)
    np.testing.assert_allclose(Z64.std(axis=axes)[informative], 1, atol=1e-3)


@FAST
@given(data=st.data())
def test_baseline_removal_subtracts_and_is_finite(data):
    shape = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)))
    X = data.draw(arrays(np.float32, shape, elements=finite))
    per_window = data.draw(st.booleans())
    base_shape = shape if per_window else shape[1:]
    base = data.draw(arrays(np.float32, base_shape, elements=finite))
    out = BaselineRemoval().fit_transform(X, baseline=base)
    assert out.shape == shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, X - base, rtol=1e-6, atol=1e-3)


# ----------------------------------------------------------------------------- losses
def _per_sample(values, evidence):
    """``values``, after checking that they are one finite number per sample of ``evidence``."""
    assert values.shape == (evidence.shape[0],)
    assert np.isfinite(values).all()
    return values


@FAST
@given(pair=evidence_and_mask())
def test_region_share_in_unit_interval_and_loss_is_its_complement(pair):
    evidence, mask = pair
    share = _per_sample(losses.region_share(evidence, mask), evidence)
    assert (share >= -1e-12).all() and (share <= 1 + 1e-12).all()
    # The region-wise loss counts all-zero evidence as share 0 (skkgp.knowledge.losses.region_loss).
    loss_share = np.where(evidence.sum(axis=1) > 0, share, 0.0)
    assert losses.region_loss(evidence, mask) == pytest.approx(np.mean(1 - loss_share))
    normalized = losses.normalize_evidence(evidence)
    np.testing.assert_allclose(normalized.sum(axis=1), 1.0, rtol=1e-9)


@FAST
@given(pair=evidence_and_mask(), factor=st.floats(1e-3, 1e3))
def test_region_share_ignores_the_scale_of_the_evidence(pair, factor):
    evidence, mask = pair
    np.testing.assert_allclose(losses.region_share(evidence * factor, mask),
                               losses.region_share(evidence, mask), rtol=1e-9, atol=1e-12)


@FAST
@given(pair=evidence_and_mask())
def test_sample_weights_have_mean_one(pair):
    evidence, mask = pair
    weights = _per_sample(losses.sample_weights(evidence, mask), evidence)
    assert (weights >= 0).all()
    assert weights.mean() == pytest.approx(1.0)
    if losses.region_share(evidence, mask).sum() == 0:
        np.testing.assert_array_equal(weights, 1.0)


@st.composite
def batches(draw):
    n = draw(st.integers(1, 6))
    k = draw(st.integers(2, 4))
    logits = draw(arrays(np.float32, (n, k), elements=st.floats(-20, 20, width=32)))
    target = draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    evidence, mask = draw(evidence_and_mask().filter(lambda p: p[0].shape[0] >= 1))
    evidence = np.resize(evidence, (n, evidence.shape[1]))
    return torch.from_numpy(logits), torch.from_numpy(target), evidence, mask


@FAST
@given(batch=batches())
def test_loss_with_zero_weights_is_cross_entropy(batch):
    logits, target, evidence, mask = batch
    ce = F.cross_entropy(logits, target, reduction="none")
    loss = losses.knowledge_guided_loss(ce, torch.from_numpy(evidence), mask, 0.0, 0.0)
    torch.testing.assert_close(loss, ce.mean(), rtol=0, atol=0)  # exactly, as documented
    # and the cross-entropy of the batch (torch's fused mean rounds differently)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target), rtol=1e-6, atol=1e-6)


@FAST
@given(batch=batches(), alpha=st.floats(0, 10), beta=st.floats(0, 1))
def test_loss_matches_its_formula_and_is_finite(batch, alpha, beta):
    logits, target, evidence, mask = batch
    ce = F.cross_entropy(logits, target, reduction="none").double()
    loss = losses.knowledge_guided_loss(ce, torch.from_numpy(evidence), mask, alpha, beta)
    share = losses.region_share(evidence, mask)
    weights = losses.sample_weights(evidence, mask)
    loss_share = np.where(evidence.sum(axis=1) > 0, share, 0.0)  # all-zero evidence: 0
    expected = (np.mean((1 - beta + beta * weights) * ce.numpy())
                + alpha * np.mean(1 - loss_share))
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@FAST
@given(pair=evidence_and_mask())
def test_region_loss_gradient_is_finite_even_for_all_zero_evidence(pair):
    evidence, mask = pair
    tensor = torch.tensor(evidence, requires_grad=True)
    loss = losses.region_loss(tensor, torch.from_numpy(mask))
    loss.backward()
    assert torch.isfinite(tensor.grad).all()
