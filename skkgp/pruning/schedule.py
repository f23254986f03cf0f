"""Iterative pruning schedules: how far each prune -> recover step goes.

``n_steps`` steps reach the final ratio (or budget) through intermediate targets:

- ``"linear"``: after step ``i`` of ``n``, the fraction ``1 - ratio * i / n`` of the
  origin's filters is kept (for a budget: the cost falls linearly from the origin's
  to the target);
- ``"geometric"``: the kept fraction is ``(1 - ratio) ** (i / n)`` (the cost
  ``origin * (target / origin) ** (i / n)``): every step removes the same share of
  what is left, so early steps remove more filters than under ``"linear"``.

The last step always lands on the final target: per-layer methods keep exactly the
filters one-shot pruning keeps (``floor(n * (1 - ratio))``), global rankings the same
total, and a budget is searched again on the last step's network.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

from skkgp.pruning.base import kept_count

__all__ = [
    "SCHEDULES",
    "STEP_RECOVERY",
    "budget_targets",
    "keep_fractions",
    "split_epochs",
    "step_ratios",
]

SCHEDULES = ("linear", "geometric")
#: How recovery epochs are spent: split across the steps, or each step's own.
STEP_RECOVERY = ("split", "each")


def _check(n_steps: int, schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")


def keep_fractions(ratio: float, n_steps: int, schedule: str = "linear") -> list[float]:
    """Fraction of the origin's filters (or weights) kept after each step.

    Parameters
    ----------
    ratio : float in (0, 1)
        The final ratio.
    n_steps : int
    schedule : {"linear", "geometric"}

    Returns
    -------
    fractions : list of float, length n_steps
        Decreasing; the last is ``1 - ratio``.
    """
    _check(n_steps, schedule)
    if schedule == "linear":
        fractions = [1.0 - ratio * i / n_steps for i in range(1, n_steps + 1)]
    else:
        fractions = [(1.0 - ratio) ** (i / n_steps) for i in range(1, n_steps + 1)]
    fractions[-1] = 1.0 - ratio
    return fractions


def budget_targets(origin: int, target: int, n_steps: int, schedule: str = "linear") -> list[int]:
    """Cost budget of each step, from the origin's cost down to ``target``.

    Parameters
    ----------
    origin, target : int
        Cost (MACs or parameters) of the origin and the final budget.
    n_steps : int
    schedule : {"linear", "geometric"}

    Returns
    -------
    targets : list of int, length n_steps
        The last is ``target``.
    """
    _check(n_steps, schedule)
    if schedule == "linear":
        targets = [origin - (origin - target) * i / n_steps for i in range(1, n_steps + 1)]
    else:
        targets = [origin * (target / origin) ** (i / n_steps) for i in range(1, n_steps + 1)]
    targets = [int(t) for t in targets]
    targets[-1] = int(target)
    return targets


def step_ratios(
    origin_channels: Mapping[str, int],
    current_channels: Mapping[str, int],
    keep_fraction: float | Mapping[str, float],
) -> dict[str, float]:
    """Per-layer ratios that take each layer from its current width to its step target.

    Each layer's target is ``floor(n * keep)`` of its origin width ``n`` (what one-shot
    pruning at ``1 - keep`` keeps, at least one), ``keep`` being ``keep_fraction`` or,
    for a dict, the layer's own entry.

    Parameters
    ----------
    origin_channels, current_channels : dict of str to int
        Width of each unit in the origin and now.
    keep_fraction : float in (0, 1], or dict of str to float in (0, 1]
        Fraction of its origin width each layer keeps after this step: one for every
        layer of ``current_channels``, or per layer (the schedule of per-layer ratios);
        a dict leaves the layers it does not name as they are.

    Returns
    -------
    ratios : dict of str to float
        For the layers that shrink in this step; the others are not named.

    Raises
    ------
    ValueError
        If a layer of ``keep_fraction`` (a dict) or of ``current_channels`` is missing
        from the widths, or a fraction is not in (0, 1].
    """
    missing = sorted(set(current_channels) - set(origin_channels))
    if missing:
        raise ValueError(
            f"current_channels names layers {missing} that origin_channels lacks; the "
            f"origin's layers are {sorted(origin_channels)}."
        )
    if isinstance(keep_fraction, Mapping):
        unknown = sorted(set(keep_fraction) - set(current_channels))
        if unknown:
            raise ValueError(
                f"keep_fraction names layers {unknown} that are not among the widths "
                f"given; the layers are {sorted(current_channels)}."
            )
        fractions = dict(keep_fraction)
    else:
        fractions = dict.fromkeys(current_channels, keep_fraction)
    ratios = {}
    for name, keep in fractions.items():
        if isinstance(keep, bool) or not isinstance(keep, Real) or not 0.0 < keep <= 1.0:
            raise ValueError(
                f"the kept fraction of layer {name!r} must be a float in (0, 1], got {keep!r}."
            )
        width = current_channels[name]
        target = kept_count(origin_channels[name], 1.0 - keep)
        if target < width:
            ratios[name] = 1.0 - target / width
    return ratios


def split_epochs(total: int, n_steps: int, mode: str = "split") -> list[int]:
    """Recovery epochs after each step.

    Parameters
    ----------
    total : int
        ``recovery_epochs``.
    n_steps : int
    mode : {"split", "each"}
        ``"split"``: the ``total`` epochs are shared by the steps (as equally as can
        be, the later steps getting the remainder), so iterative and one-shot pruning
        train equally long; ``"each"``: every step recovers ``total`` epochs.

    Returns
    -------
    epochs : list of int, length n_steps
        An earlier step may get 0 (no recovery before the next pruning step).
    """
    if mode not in STEP_RECOVERY:
        raise ValueError(f"step_recovery must be one of {STEP_RECOVERY}, got {mode!r}.")
    if mode == "each":
        return [total] * n_steps
    base, extra = divmod(total, n_steps)
    return [base + (1 if i >= n_steps - extra else 0) for i in range(n_steps)]
