"""Paired comparison of two recoveries: the effect, its interval, and its tests.

Proposed and baseline recoveries of ``skkgp reproduce`` (and of
``benchmarks/knowledge_effect.py``) prune the same origin on the same split, so their
scores come in pairs, one per (seed, fold). :func:`paired_comparison` summarises the
differences ``proposed - baseline`` of those pairs:

- the mean difference with a percentile bootstrap interval (pairs resampled with
  replacement, seeded, so the interval is the same on every run);
- the two-sided Wilcoxon signed-rank and paired t-test p-values;
- how many pairs went up, down, or stayed tied;
- a direction: "higher" or "lower" when the interval excludes 0 (and there are at
  least :data:`MIN_PAIRS` pairs), else "no difference".

Pairs whose origin collapsed to a constant predictor compare nothing (both recoveries
start from a network that learnt no class boundary): they are passed as ``exclude``,
counted in ``n_excluded`` and left out of every statistic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["PairedComparison", "paired_comparison", "MIN_PAIRS"]

#: Fewest pairs for a verdict of "higher" or "lower". A percentile bootstrap interval
#: of fewer pairs cannot be wider than their spread and covers far less than its
#: nominal 95 %, so it is printed but not read as a direction.
MIN_PAIRS = 5

# Differences of accuracies k/n that are equal may differ in their last bits: those
# within 1e-12 of 0 are ties, and all are rounded to 12 decimals before they are ranked,
# so that equal magnitudes share a rank.
_TIE_TOLERANCE = 1e-12
_TIE_DECIMALS = 12


@dataclass(frozen=True)
class PairedComparison:
    """Summary of the paired differences ``proposed - baseline``.

    Attributes
    ----------
    n_pairs : int
        Pairs compared (excluded pairs not counted).
    n_excluded : int
        Pairs left out (e.g. collapsed origins).
    mean_difference : float
        Mean of the differences; ``nan`` without pairs.
    median_difference : float
        Median of the differences; ``nan`` without pairs.
    ci_low, ci_high : float
        Percentile bootstrap interval of the mean difference at ``confidence``;
        ``nan`` without pairs, the difference itself for a single pair.
    confidence : float
        Coverage of the interval, e.g. 0.95.
    wilcoxon_p : float
        Two-sided Wilcoxon signed-rank p-value (zero differences dropped, as
        Wilcoxon's original test does); ``nan`` when every difference is zero or
        there are no pairs.
    ttest_p : float
        Two-sided paired t-test p-value; ``nan`` with fewer than two pairs or
        differences that are all equal (no t statistic exists).
    n_up, n_down, n_tied : int
        Pairs where proposed is higher, lower, or equal.
    n_boot : int
        Bootstrap resamples drawn.
    """

    n_pairs: int
    n_excluded: int
    mean_difference: float
    median_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    wilcoxon_p: float
    ttest_p: float
    n_up: int
    n_down: int
    n_tied: int
    n_boot: int

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"`` when the interval excludes 0, else ``"no difference"``.

        Without pairs: ``"no pairs"``; with fewer than :data:`MIN_PAIRS`:
        ``"too few pairs to tell"``.
        """
        if self.n_pairs == 0:
            return "no pairs"
        if self.n_pairs < MIN_PAIRS:
            return "too few pairs to tell"
        if self.ci_low > 0:
            return "higher"
        if self.ci_high < 0:
            return "lower"
        return "no difference"

    def verdict(self, *, scale: float = 100.0, unit: str = "points", decimals: int = 1,
                subject: str = "proposed vs baseline") -> str:
        """One line: the difference, its interval, the p-values and the direction.

        Parameters
        ----------
        scale : float, default=100.0
            Factor applied to the differences (100: accuracies in [0, 1] as points).
        unit : str, default="points"
            Unit after the mean difference ("" for none).
        decimals : int, default=1
            Decimals of the difference and its interval.
        subject : str, default="proposed vs baseline"
            What is compared, leading the line.

        Returns
        -------
        line : str
            E.g. ``"proposed vs baseline: +0.4 points [-1.2, +2.0] (95 % bootstrap),
            Wilcoxon p = 0.41, paired t p = 0.35; 9 up, 5 down, 1 tied of 15 pairs:
            no difference"``.
        """
        if self.n_pairs == 0:
            excluded = f" ({self.n_excluded} left out)" if self.n_excluded else ""
            return f"{subject}: no pairs to compare{excluded}"
        def number(value: float) -> str:
            return f"{scale * value:+.{decimals}f}"

        line = (
            f"{subject}: {number(self.mean_difference)}{' ' + unit if unit else ''} "
            f"[{number(self.ci_low)}, {number(self.ci_high)}] "
            f"({100 * self.confidence:g} % bootstrap), Wilcoxon p = {_p(self.wilcoxon_p)}, "
            f"paired t p = {_p(self.ttest_p)}; {self.n_up} up, {self.n_down} down, "
            f"{self.n_tied} tied of {self.n_pairs} pairs"
        )
        if self.n_excluded:
            line += f" ({self.n_excluded} collapsed left out)"
        return f"{line}: {self.direction}"

    def as_dict(self) -> dict[str, Any]:
        """The fields and :attr:`direction`, as a flat dict (one CSV row)."""
        return {**asdict(self), "direction": self.direction}


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def _vector(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}.")
    return array


def paired_comparison(
    proposed: Sequence[float],
    baseline: Sequence[float],
    *,
    exclude: Sequence[bool] | None = None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> PairedComparison:
    """Compare paired scores ``proposed[i]`` and ``baseline[i]``.

    Parameters
    ----------
    proposed, baseline : sequence of float, length n
        Scores of the two methods on the same n splits (e.g. accuracies per seed and
        fold).
    exclude : sequence of bool, length n, optional
        Pairs to leave out of every statistic (e.g. collapsed origins); they are
        counted in ``n_excluded``. Their scores may be ``nan``.
    n_boot : int, default=10_000
        Bootstrap resamples of the pairs.
    confidence : float, default=0.95
        Coverage of the bootstrap interval, in (0, 1).
    random_state : int, numpy Generator or None, default=0
        Seed of the bootstrap: the same seed gives the same interval.

    Returns
    -------
    comparison : PairedComparison

    Raises
    ------
    ValueError
        Lengths that differ, ``nan`` or infinite scores in compared pairs, ``n_boot``
        below 1, or ``confidence`` outside (0, 1).

    Examples
    --------
    >>> from skkgp.reproduce.stats import paired_comparison
    >>> result = paired_comparison([0.70, 0.80, 0.75, 0.72, 0.78],
    ...                            [0.60, 0.70, 0.70, 0.68, 0.71], random_state=0)
    >>> round(result.mean_difference, 3), result.n_up, result.direction
    (0.072, 5, 'higher')
    >>> paired_comparison([0.7, 0.8, 0.75], [0.6, 0.7, 0.7]).direction
    'too few pairs to tell'
    """
    proposed_ = _vector(proposed, "proposed")
    baseline_ = _vector(baseline, "baseline")
    if proposed_.shape != baseline_.shape:
        raise ValueError(
            f"proposed and baseline must pair up: got {proposed_.size} and "
            f"{baseline_.size} scores."
        )
    if exclude is None:
        left_out = np.zeros(proposed_.size, dtype=bool)
    else:
        left_out = np.asarray(exclude, dtype=bool)
        if left_out.shape != proposed_.shape:
            raise ValueError(
                f"exclude must have one flag per pair ({proposed_.size}); got shape "
                f"{left_out.shape}."
            )
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int; got {n_boot!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}.")
    difference = proposed_[~left_out] - baseline_[~left_out]
    if not np.all(np.isfinite(difference)):
        raise ValueError(
            "proposed and baseline hold nan or infinite scores in compared pairs; "
            "pass those pairs in exclude."
        )
    n = difference.size
    tied = np.abs(difference) <= _TIE_TOLERANCE
    counts = dict(n_up=int(np.sum((difference > 0) & ~tied)),
                  n_down=int(np.sum((difference < 0) & ~tied)), n_tied=int(tied.sum()))
    if n == 0:
        return PairedComparison(0, int(left_out.sum()), *(math.nan,) * 4, float(confidence),
                                math.nan, math.nan, **counts, n_boot=int(n_boot))
    mean = float(difference.mean())
    rng = np.random.default_rng(random_state)
    # Resampling indices row by row keeps the memory at n_boot x n, small for any
    # realistic number of seeds x folds.
    resampled = difference[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(resampled, [tail, 100 - tail]))
    return PairedComparison(
        n_pairs=n,
        n_excluded=int(left_out.sum()),
        mean_difference=mean,
        median_difference=float(np.median(difference)),
        # Rounding of the resampled means may put the mean a hair outside.
        ci_low=min(low, mean),
        ci_high=max(high, mean),
        confidence=float(confidence),
        wilcoxon_p=_wilcoxon(difference, tied),
        ttest_p=_ttest(difference),
        **counts,
        n_boot=int(n_boot),
    )


def _wilcoxon(difference: np.ndarray, tied: np.ndarray) -> float:
    if tied.all():
        return math.nan
    with warnings.catch_warnings():
        # Small samples: scipy warns that the normal approximation is rough.
        warnings.simplefilter("ignore", UserWarning)
        return float(stats.wilcoxon(np.where(tied, 0.0, np.round(difference, _TIE_DECIMALS)))
                     .pvalue)


def _ttest(difference: np.ndarray) -> float:
    if difference.size < 2 or np.allclose(difference, difference[0], rtol=0,
                                          atol=_TIE_TOLERANCE):
        return math.nan
    return float(stats.ttest_1samp(difference, 0.0).pvalue)
