"""Tests of skkgp.knowledge.losses on hand-computed values."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skkgp.knowledge.losses import (
    knowledge_guided_loss,
    knowledge_guided_terms,
    normalize_evidence,
    region_loss,
    region_share,
    sample_weights,
)

# Three samples, three electrodes; the region is electrodes 0 and 2.
EVIDENCE = np.array([[1.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]])
MASK = np.array([True, False, True])
# Normalised rows: [1/4, 1/4, 1/2], uniform [1/3] * 3 (all zero), [3/4, 0, 1/4].
SHARES = np.array([3 / 4, 2 / 3, 1.0])
MEAN_SHARE = (3 / 4 + 2 / 3 + 1) / 3
# The region-wise loss counts the all-zero row as share 0 (term 1), not the uniform 2/3.
LOSS_SHARES = np.array([3 / 4, 0.0, 1.0])
CE = np.array([1.0, 2.0, 3.0])
# Signed Grad-CAM scores whose ReLU is EVIDENCE: the all-zero row is all negative.
SCORES = np.array([[1.0, 1.0, 2.0], [-1.0, -2.0, -1.0], [3.0, -1.0, 1.0]])


def test_normalize_evidence_sums_to_one_and_is_uniform_where_zero():
    normalized = normalize_evidence(EVIDENCE)
    np.testing.assert_allclose(normalized[0], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(normalized[1], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(normalized[2], [0.75, 0.0, 0.25])


def test_region_share_and_loss_hand_values():
    np.testing.assert_allclose(region_share(EVIDENCE, MASK), SHARES)
    # The all-zero row is a loss term of 1: vanished evidence is not rewarded.
    expected = ((1 - 3 / 4) + 1.0 + 0.0) / 3
    assert region_loss(EVIDENCE, MASK) == pytest.approx(expected, abs=1e-15)
    assert isinstance(region_loss(EVIDENCE, MASK), float)
    # The signed scores change gradients only, never the value.
    assert region_loss(EVIDENCE, MASK, SCORES) == pytest.approx(expected, abs=1e-15)


def test_dying_evidence_scores_worse_than_any_living_evidence():
    outside = np.array([[0.0, 5.0, 0.0]])  # alive, no evidence on the region: share 0
    assert region_loss(outside, MASK) == 1.0
    assert region_loss(np.zeros((1, 3)), MASK) == 1.0
    mostly_outside = np.array([[0.1, 5.0, 0.0]])
    assert region_loss(mostly_outside, MASK) == pytest.approx(1 - 0.1 / 5.1)


def test_sample_weights_hand_values_and_mean_one():
    weights = sample_weights(EVIDENCE, MASK)
    np.testing.assert_allclose(weights, SHARES / MEAN_SHARE)
    assert weights.mean() == pytest.approx(1.0)


def test_sample_weights_are_ones_when_every_share_is_zero():
    evidence = np.array([[0.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(sample_weights(evidence, MASK), [1.0, 1.0])


def test_knowledge_guided_loss_hand_value():
    alpha, beta = 0.5, 0.25
    # The weights keep the uniform share of the all-zero row; the region loss counts it 0.
    weights = (1 - beta) + beta * SHARES / MEAN_SHARE
    expected = np.mean(weights * CE) + alpha * np.mean(1 - LOSS_SHARES)
    loss = knowledge_guided_loss(CE, EVIDENCE, MASK, alpha, beta)
    assert loss == pytest.approx(expected, abs=1e-12)
    # beta = 1: the weights replace the uniform ones entirely.
    expected_full = np.mean(SHARES / MEAN_SHARE * CE)
    assert knowledge_guided_loss(CE, EVIDENCE, MASK, 0, 1) == pytest.approx(expected_full)


def test_zero_weights_give_exactly_the_plain_mean_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(7, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    evidence = torch.rand(7, 3, requires_grad=True)
    ce = F.cross_entropy(logits, target, reduction="none")
    loss = knowledge_guided_loss(ce, evidence, torch.tensor(MASK), 0.0, 0.0)
    assert torch.equal(loss, ce.mean())
    assert torch.equal(loss, F.cross_entropy(logits, target))


def test_torch_inputs_stay_differentiable_and_weights_carry_no_gradient():
    evidence = torch.tensor(EVIDENCE, requires_grad=True)
    ce = torch.tensor(CE, requires_grad=True)
    mask = torch.tensor(MASK)
    # Sample weights alone: the loss depends on the evidence only through sg(r).
    (grad,) = torch.autograd.grad(knowledge_guided_loss(ce, evidence, mask, 0.0, 1.0), evidence,
                                  allow_unused=True, materialize_grads=True)
    assert torch.count_nonzero(grad) == 0
    # Region loss: d(1 - r_0)/dE_0 = -(m - r_0) / (3 * sum E_0) for the first sample.
    (grad,) = torch.autograd.grad(region_loss(evidence, mask), evidence)
    expected_row0 = -(MASK - 3 / 4) / (3 * 4.0)
    np.testing.assert_allclose(grad[0].numpy(), expected_row0)
    # Without scores the all-zero row gets a finite (zero) gradient, not NaN.
    assert torch.isfinite(grad).all()
    np.testing.assert_array_equal(grad[1].numpy(), 0.0)


def test_scores_give_dead_rows_and_negative_region_electrodes_a_gradient_up():
    scores = torch.tensor(SCORES, requires_grad=True)
    evidence = torch.relu(scores)
    mask = torch.tensor(MASK)
    loss = region_loss(evidence, mask, scores)
    (grad,) = torch.autograd.grad(loss, scores)
    # Dead row: gradient of -(sum_e m_e z_e / sum_e |z_e|) / 3, with sum |z| = 4.
    np.testing.assert_allclose(grad[1].numpy(), -MASK.astype(float) / (3 * 4.0))
    # Living rows: the exact share's gradient -(m_e - r_b) / (3 * S_b) where z_e > 0.
    np.testing.assert_allclose(grad[0].numpy(), -(MASK - 3 / 4) / (3 * 4.0))
    # Row 2 has all its evidence on the region (r = 1): nothing to gain; its z_1 < 0 lies
    # outside the region, where the ReLU stops the gradient as before.
    np.testing.assert_array_equal(grad[2].numpy(), 0.0)
    # A region electrode below zero in a living row is still pulled up (straight-through).
    scores = torch.tensor([[-1.0, 2.0, -3.0]], requires_grad=True)
    (grad,) = torch.autograd.grad(region_loss(torch.relu(scores), mask, scores), scores)
    np.testing.assert_allclose(grad[0].numpy(), [-(1 - 0) / 2, 0.0, -(1 - 0) / 2])


def test_scores_leave_the_sample_weights_and_the_loss_value_unchanged():
    with_scores = knowledge_guided_loss(CE, EVIDENCE, MASK, 0.7, 0.4, scores=SCORES)
    assert with_scores == pytest.approx(knowledge_guided_loss(CE, EVIDENCE, MASK, 0.7, 0.4))
    ce = torch.tensor(CE, requires_grad=True)
    loss = knowledge_guided_loss(ce, torch.tensor(EVIDENCE), torch.tensor(MASK), 0.0, 1.0,
                                 scores=torch.tensor(SCORES))
    (grad,) = torch.autograd.grad(loss, ce)
    np.testing.assert_allclose(grad.numpy(), SHARES / MEAN_SHARE / 3)
    with pytest.raises(ValueError, match="scores must have the shape"):
        region_loss(EVIDENCE, MASK, SCORES[:2])


def test_torch_and_numpy_agree():
    torch_loss = knowledge_guided_loss(torch.tensor(CE), torch.tensor(EVIDENCE),
                                       torch.tensor(MASK), 2.0, 0.5)
    assert torch_loss.item() == pytest.approx(knowledge_guided_loss(CE, EVIDENCE, MASK, 2.0, 0.5))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"evidence": -EVIDENCE}, "non-negative"),
        ({"evidence": EVIDENCE[0]}, "shape"),
        ({"mask": MASK[:2]}, "one entry per electrode"),
        ({"mask": np.array([0, 2, 1])}, "boolean"),
        ({"region_weight": -1.0}, "region_weight"),
        ({"sample_weighting": float("nan")}, "sample_weighting"),
        ({"ce_per_sample": CE[:2]}, "ce_per_sample"),
        ({"variant": "paper"}, "variant must be one of"),
        ({"variant": None}, "variant must be one of"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    arguments = {"ce_per_sample": CE, "evidence": EVIDENCE, "mask": MASK,
                 "region_weight": 1.0, "sample_weighting": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        knowledge_guided_loss(**arguments)


def test_region_loss_variants_hand_values_and_gradients():
    mask = torch.tensor(MASK)
    # Values: only the all-zero row differs (uniform share 2/3 in the literal formula).
    literal = ((1 - 3 / 4) + (1 - 2 / 3) + 0.0) / 3
    assert region_loss(EVIDENCE, MASK, SCORES, variant="literal") == pytest.approx(literal)
    dead_counts_one = ((1 - 3 / 4) + 1.0 + 0.0) / 3
    for variant in ("dead_aware", "straight_through"):
        assert region_loss(EVIDENCE, MASK, SCORES, variant=variant) == pytest.approx(
            dead_counts_one)
    # Gradients, on a dead row and on a living row with a region electrode below zero.
    scores = torch.tensor([[-1.0, -2.0, -1.0], [-1.0, 2.0, -3.0], [1.0, 1.0, 2.0]],
                          dtype=torch.float64,
                          requires_grad=True)
    grads = {}
    for variant in ("literal", "dead_aware", "straight_through"):
        loss = region_loss(torch.relu(scores), mask, scores, variant=variant)
        (grads[variant],) = torch.autograd.grad(loss, scores)
    exact_living = -(MASK - 3 / 4) / (3 * 4.0)  # row 2: share 3/4, sum 4
    for variant, grad in grads.items():
        np.testing.assert_allclose(grad[2].numpy(), exact_living, err_msg=variant)
    # literal: dead stays dead, the ReLU stops the gradient of the negative electrodes.
    np.testing.assert_array_equal(grads["literal"][:2].numpy(), 0.0)
    # dead_aware: the dead row is pulled up on the region; the living row's negative
    # region electrodes are not (exact gradient behind the ReLU).
    np.testing.assert_allclose(grads["dead_aware"][0].numpy(), -MASK.astype(float) / (3 * 4.0))
    np.testing.assert_array_equal(grads["dead_aware"][1].numpy(), 0.0)
    # straight_through: both.
    np.testing.assert_allclose(grads["straight_through"][0].numpy(), -MASK.astype(float) / (3 * 4.0))
    np.testing.assert_allclose(grads["straight_through"][1].numpy(),
                               [-1 / (3 * 2.0), 0.0, -1 / (3 * 2.0)])
    with pytest.raises(ValueError, match="variant must be one of"):
        region_loss(EVIDENCE, MASK, variant="exact")


def test_resolve_region_loss_keeps_explicit_variants_and_maps_auto_per_kind():
    from skkgp.knowledge.losses import AUTO_REGION_LOSS, REGION_LOSSES, resolve_region_loss

    for kind, variant in AUTO_REGION_LOSS.items():
        assert variant in REGION_LOSSES
        assert resolve_region_loss("auto", kind) == variant
        for explicit in REGION_LOSSES:
            assert resolve_region_loss(explicit, kind) == explicit
    assert resolve_region_loss("auto", "input_x_gradient") == "dead_aware"
    assert resolve_region_loss("auto", "gradcam") == "straight_through"


def _composed_loss(ce, evidence, mask, alpha, beta, scores, variant):
    """knowledge_guided_loss written as its definition: the public terms composed."""
    loss = ce.mean()
    if beta:
        weights = (1 - beta) + beta * sample_weights(evidence, mask)
        loss = (weights * ce).mean()
    if alpha:
        loss = loss + alpha * region_loss(evidence, mask, scores, variant=variant)
    return loss


def _knowledge_inputs(seed, n=7, n_electrodes=5):
    """ReLU evidence of signed scores, with rows all zero, and per-sample CE (float64)."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(n, n_electrodes, generator=generator, dtype=torch.float64)
    raw[1] = -raw[1].abs() - 0.1  # all below zero: all-zero evidence
    raw[4] = -raw[4].abs() - 0.1
    scores = raw.clone().requires_grad_(True)
    evidence = torch.relu(scores)
    ce = torch.rand(n, generator=generator, dtype=torch.float64).requires_grad_(True)
    mask = torch.tensor([True, False, True, False, False])
    return ce, scores, evidence, mask


@pytest.mark.parametrize("variant", ["literal", "dead_aware", "straight_through"])
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.7, 0.0), (0.0, 0.4), (0.3, 0.6)])
@pytest.mark.parametrize("with_scores", [True, False])
def test_fused_loss_equals_its_definition_in_value_and_gradient(variant, alpha, beta,
                                                                with_scores):
    # knowledge_guided_terms differentiates in closed form; its value and its gradients
    # with respect to CE, the evidence and the signed scores are those of the composition.
    results = []
    for fused in (True, False):
        ce, scores, evidence, mask = _knowledge_inputs(0)
        given = scores if with_scores else None
        if fused:
            terms = knowledge_guided_terms(ce, evidence, mask, alpha, beta, given,
                                           variant=variant)
            loss = terms.loss
            np.testing.assert_allclose(terms.share, region_share(evidence.detach(), mask),
                                       rtol=1e-14)
            np.testing.assert_array_equal(terms.zero, evidence.sum(dim=1) <= 0)
        else:
            loss = _composed_loss(ce, evidence, mask, alpha, beta, given, variant)
        loss.backward()
        results.append((loss.detach(), ce.grad, scores.grad))
    (fused_loss, *fused_grads), (loss, *grads) = results
    torch.testing.assert_close(fused_loss, loss, rtol=1e-13, atol=1e-15)
    for fused_grad, grad in zip(fused_grads, grads):
        torch.testing.assert_close(fused_grad, grad, rtol=1e-12, atol=1e-15)
    # The all-zero rows get a gradient through their scores exactly when the variant
    # gives them one.
    revived = alpha != 0 and with_scores and variant != "literal"
    scores_grad = fused_grads[1]
    assert (scores_grad is not None and bool(scores_grad[[1, 4]].abs().sum() > 0)) == revived


def test_fused_loss_passes_gradcheck():
    # Only the literal region term without sample weights is the true derivative of its
    # value (the other variants and the stop-gradient weights define their own gradient,
    # checked against the composition above); the weights' CE gradient is checked alone.
    ce, scores, _, mask = _knowledge_inputs(1)
    # Away from the ReLU's kink, so that finite differences hold.
    scores = scores.detach().where(scores.detach().abs() > 0.1, 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda ce, scores: knowledge_guided_terms(ce, torch.relu(scores), mask, 0.8, 0.0,
                                                  scores, variant="literal").loss,
        (ce, scores))
    evidence = torch.relu(scores.detach())
    assert torch.autograd.gradcheck(
        lambda ce: knowledge_guided_terms(ce, evidence, mask, 0.8, 0.5, None).loss, (ce,))


def test_knowledge_terms_keep_numpy_in_numpy_out():
    terms = knowledge_guided_terms(CE, EVIDENCE, MASK, 0.5, 1.0)
    assert isinstance(terms.loss, float)
    assert terms.loss == pytest.approx(knowledge_guided_loss(CE, EVIDENCE, MASK, 0.5, 1.0),
                                       abs=1e-15)
    np.testing.assert_allclose(terms.share, SHARES)
    np.testing.assert_array_equal(terms.zero, [False, True, False])


@pytest.mark.parametrize("variant", ["literal", "dead_aware", "straight_through"])
def test_fused_loss_second_derivatives_are_the_compositions(variant):
    # Differentiated twice (create_graph=True), the loss has the composition's curvature:
    # the gradient of |dL/dz|^2 agrees, all-zero rows and sample weights included.
    results = []
    for fused in (True, False):
        ce, scores, evidence, mask = _knowledge_inputs(2)
        loss = (knowledge_guided_terms(ce, evidence, mask, 0.8, 0.5, scores, variant=variant)
                .loss if fused else _composed_loss(ce, evidence, mask, 0.8, 0.5, scores,
                                                   variant))
        grad_ce, grad_scores = torch.autograd.grad(loss, (ce, scores), create_graph=True)
        (curvature,) = torch.autograd.grad((grad_scores ** 2).sum() + (grad_ce ** 2).sum(),
                                           scores)
        results.append(curvature)
    assert results[1].abs().sum() > 0
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-14)


def test_fused_loss_passes_gradgradcheck_and_works_under_torch_func():
    ce, scores, _, mask = _knowledge_inputs(3)
    scores = scores.detach().where(scores.detach().abs() > 0.1, 0.5).requires_grad_(True)

    def loss(ce, scores):
        return knowledge_guided_terms(ce, torch.relu(scores), mask, 0.8, 0.0, scores,
                                      variant="literal").loss

    assert torch.autograd.gradgradcheck(loss, (ce, scores))
    # torch.func transforms run it too, with the gradient of the composition.
    grads = torch.func.grad(loss, argnums=(0, 1))(ce.detach(), scores.detach())
    expected = torch.autograd.grad(
        _composed_loss(ce, torch.relu(scores), mask, 0.8, 0.0, scores, "literal"),
        (ce, scores))
    for grad, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-15)


TORCH_EVIDENCE = torch.tensor(EVIDENCE)


BAD_TORCH_INPUTS = [
    (TORCH_EVIDENCE, torch.tensor([0.5, 0.0, 0.0]), "boolean"),
    (-TORCH_EVIDENCE, torch.tensor(MASK), "non-negative; its smallest value is -3"),
    (torch.where(TORCH_EVIDENCE > 2, float("nan"), TORCH_EVIDENCE), MASK, "NaN"),
    (torch.where(TORCH_EVIDENCE > 2, float("inf"), TORCH_EVIDENCE), MASK, "infinite"),
    (np.zeros((1, 0)), np.zeros(0, bool), "no electrodes"),
    (torch.zeros((1, 0)), torch.zeros(0, dtype=torch.bool), "no electrodes"),
]


@pytest.mark.parametrize(
    "function, evidence, mask, match",
    [(function, *case) for function in (region_share, region_loss, sample_weights,
                                         knowledge_guided_loss) for case in BAD_TORCH_INPUTS]
    # normalize_evidence takes no mask.
    + [(normalize_evidence, *case) for case in BAD_TORCH_INPUTS[1:]],
)
def test_torch_inputs_and_empty_electrodes_are_checked_like_numpy(function, evidence, mask,
                                                                  match):
    if function is normalize_evidence:
        arguments = (evidence,)
    elif function is knowledge_guided_loss:
        arguments = (torch.ones(len(evidence)), evidence, mask, 1.0, 1.0)
    else:
        arguments = (evidence, mask)
    with pytest.raises(ValueError, match=match):
        function(*arguments)


def test_knowledge_terms_trust_tensor_values():
    # The training step's function reads no tensor value back (it would wait for a GPU):
    # tensor evidence is used as given, shapes still checked.
    terms = knowledge_guided_terms(torch.tensor(CE), -TORCH_EVIDENCE, torch.tensor(MASK),
                                   1.0, 1.0)
    assert torch.isfinite(terms.loss)
    with pytest.raises(ValueError, match="no electrodes"):
        knowledge_guided_terms(torch.ones(1), torch.zeros((1, 0)), torch.zeros(0), 1.0, 1.0)


def test_a_tensor_among_numpy_inputs_gives_a_tensor_with_its_gradient():
    ce = torch.tensor(CE, dtype=torch.float32, requires_grad=True)
    loss = knowledge_guided_loss(ce, EVIDENCE, MASK, 1.0, 1.0)
    assert isinstance(loss, torch.Tensor) and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(knowledge_guided_loss(CE, EVIDENCE, MASK, 1.0, 1.0),
                                        rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(ce.grad.numpy(), SHARES / MEAN_SHARE / 3, rtol=1e-6)
    plain = knowledge_guided_loss(ce, EVIDENCE, MASK, 0.0, 0.0)
    assert isinstance(plain, torch.Tensor) and plain.requires_grad
    terms = knowledge_guided_terms(ce, EVIDENCE, MASK, 1.0, 1.0)
    assert isinstance(terms.loss, torch.Tensor) and isinstance(terms.share, torch.Tensor)
    # A tensor mask or scores make the result a tensor too.
    assert isinstance(region_share(EVIDENCE, torch.tensor(MASK)), torch.Tensor)
    assert isinstance(region_loss(EVIDENCE, MASK, torch.tensor(SCORES)), torch.Tensor)
    assert isinstance(sample_weights(EVIDENCE, torch.tensor(MASK)), torch.Tensor)
