"""Tests of the paired comparison of proposed and baseline recoveries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from skkgp.reproduce.stats import MIN_PAIRS, PairedComparison, paired_comparison

PROPOSED = [0.71, 0.80, 0.65, 0.90, 0.62, 0.77, 0.70, 0.84]
BASELINE = [0.60, 0.75, 0.70, 0.80, 0.60, 0.70, 0.70, 0.79]


def test_statistics_match_scipy_on_known_inputs():
    result = paired_comparison(PROPOSED, BASELINE, random_state=0)
    difference = np.subtract(PROPOSED, BASELINE)
    assert result.n_pairs == 8 and result.n_excluded == 0
    assert result.mean_difference == pytest.approx(difference.mean())
    assert result.median_difference == pytest.approx(np.median(difference))
    assert result.ttest_p == pytest.approx(stats.ttest_rel(PROPOSED, BASELINE).pvalue)
    # One pair is tied; Wilcoxon drops it (Wilcoxon's own zero_method). The others, in
    # hundredths (three of them equal in magnitude: their ranks tie).
    assert np.allclose(100 * difference, [11, 5, -5, 10, 2, 7, 0, 5])
    assert result.wilcoxon_p == pytest.approx(stats.wilcoxon([11, 5, -5, 10, 2, 7, 5]).pvalue)
    assert (result.n_up, result.n_down, result.n_tied) == (6, 1, 1)


def test_equal_differences_tie_in_wilcoxon_ranks_whatever_their_last_bits():
    # Every difference is +-0.1, but 0.8 - 0.7 and 0.3 - 0.2 differ in their last bits.
    baseline = np.array([6, 7, 2, 3, 1, 5, 4]) / 10
    proposed = np.array([7, 8, 3, 4, 2, 4, 5]) / 10
    assert len(set(np.abs(proposed - baseline))) > 1
    result = paired_comparison(proposed, baseline)
    # Six equal ranks up, one down: the value of exactly equal differences.
    assert result.wilcoxon_p == pytest.approx(stats.wilcoxon([1, 1, 1, 1, 1, -1, 1]).pvalue)
    assert result.wilcoxon_p == pytest.approx(0.125)


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    result = paired_comparison(PROPOSED, BASELINE, n_boot=2000, random_state=3)
    assert result.ci_low <= result.mean_difference <= result.ci_high
    assert result.ci_low < result.ci_high
    assert result == paired_comparison(PROPOSED, BASELINE, n_boot=2000, random_state=3)
    other = paired_comparison(PROPOSED, BASELINE, n_boot=2000, random_state=4)
    assert (other.ci_low, other.ci_high) != (result.ci_low, result.ci_high)
    # A wider confidence gives a wider interval from the same resamples.
    wide = paired_comparison(PROPOSED, BASELINE, n_boot=2000, random_state=3,
                             confidence=0.99)
    assert wide.ci_low <= result.ci_low and wide.ci_high >= result.ci_high


def test_bootstrap_interval_is_the_percentile_interval_of_resampled_means():
    differences = np.subtract(PROPOSED, BASELINE)
    rng = np.random.default_rng(5)
    means = differences[rng.integers(0, 8, size=(500, 8))].mean(axis=1)
    result = paired_comparison(PROPOSED, BASELINE, n_boot=500, random_state=5)
    assert result.ci_low == pytest.approx(min(np.percentile(means, 2.5), result.mean_difference))
    assert result.ci_high == pytest.approx(np.percentile(means, 97.5))


def test_excluded_pairs_are_counted_and_left_out():
    proposed = [*PROPOSED, 0.5, math.nan]
    baseline = [*BASELINE, 0.9, math.nan]
    result = paired_comparison(proposed, baseline, exclude=[False] * 8 + [True, True],
                               random_state=0)
    assert result.n_excluded == 2
    expected = paired_comparison(PROPOSED, BASELINE, random_state=0)
    assert result.mean_difference == expected.mean_difference
    assert result.wilcoxon_p == expected.wilcoxon_p
    assert "(2 collapsed left out)" in result.verdict()


def test_direction_follows_the_interval():
    high, low = [0.8, 0.9, 0.85, 0.7, 0.75], [0.6, 0.7, 0.7, 0.6, 0.7]
    up = paired_comparison(high, low, random_state=0)
    assert up.ci_low > 0 and up.direction == "higher"
    down = paired_comparison(low, high, random_state=0)
    assert down.ci_high < 0 and down.direction == "lower"
    mixed = paired_comparison(PROPOSED[:5], [0.6, 0.9, 0.6, 0.95, 0.6], random_state=0)
    assert mixed.ci_low < 0 < mixed.ci_high and mixed.direction == "no difference"
    # Fewer than MIN_PAIRS pairs: the interval is printed, no direction is read from it.
    few = paired_comparison(high[:MIN_PAIRS - 1], low[:MIN_PAIRS - 1], random_state=0)
    assert few.ci_low > 0 and few.direction == "too few pairs to tell"
    assert few.verdict().endswith(": too few pairs to tell")


def test_verdict_line():
    result = PairedComparison(
        n_pairs=15, n_excluded=0, mean_difference=0.004, median_difference=0.0,
        ci_low=-0.012, ci_high=0.02, confidence=0.95, wilcoxon_p=0.41, ttest_p=0.35,
        n_up=8, n_down=6, n_tied=1, n_boot=10_000,
    )
    assert result.verdict() == (
        "proposed vs baseline: +0.4 points [-1.2, +2.0] (95 % bootstrap), Wilcoxon p = 0.41, "
        "paired t p = 0.35; 8 up, 6 down, 1 tied of 15 pairs: no difference"
    )
    assert result.verdict(scale=1, unit="", decimals=3, subject="share").startswith(
        "share: +0.004 [-0.012, +0.020] (95 % bootstrap)")
    small = paired_comparison([0.8, 0.9, 0.85, 0.7, 0.8, 0.9, 0.85, 0.7, 0.75, 0.8],
                              [0.6, 0.7, 0.7, 0.6, 0.6, 0.7, 0.7, 0.6, 0.6, 0.7])
    assert "Wilcoxon p = 0.002" in small.verdict() and small.verdict().endswith(": higher")
    assert result.as_dict()["direction"] == "no difference"


def test_degenerate_inputs():
    single = paired_comparison([0.7], [0.6])
    assert single.mean_difference == pytest.approx(0.1)
    assert single.ci_low == single.ci_high == pytest.approx(0.1)
    assert math.isnan(single.ttest_p)
    constant = paired_comparison([0.7, 0.8], [0.6, 0.7])
    assert math.isnan(constant.ttest_p)  # equal differences: no t statistic
    tied = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert math.isnan(tied.wilcoxon_p) and tied.n_tied == 2
    assert tied.direction == "too few pairs to tell"
    empty = paired_comparison([0.5], [0.6], exclude=[True])
    assert empty.n_pairs == 0 and math.isnan(empty.mean_difference)
    assert empty.direction == "no pairs"
    assert empty.verdict() == "proposed vs baseline: no pairs to compare (1 left out)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(proposed=[0.5, 0.6], baseline=[0.5]), "must pair up"),
        (dict(proposed=[[0.5]], baseline=[[0.5]]), "one-dimensional"),
        (dict(proposed=[0.5, math.nan], baseline=[0.5, 0.6]), "pass those pairs in exclude"),
        (dict(proposed=[0.5], baseline=[0.5], exclude=[True, False]), "one flag per pair"),
        (dict(proposed=[0.5], baseline=[0.5], n_boot=0), "n_boot must be a positive int"),
        (dict(proposed=[0.5], baseline=[0.5], n_boot=1.5), "n_boot must be a positive int"),
        (dict(proposed=[0.5], baseline=[0.5], confidence=1.0), "confidence must lie in"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_comparison(**kwargs)


def test_docstring_examples_print_what_they_show():
    import doctest

    import skkgp.reproduce.stats

    failed, attempted = doctest.testmod(skkgp.reproduce.stats, verbose=False)
    assert attempted >= 3 and failed == 0
