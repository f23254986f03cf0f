"""Table 1 from the finished (cell, fold) results: per-fold rows, summary, paired test.

One row of the table is one (model, method, recovery) cell: accuracy mean +- std over
folds of the origin, baseline-recovered and proposed-recovered models; parameters and
FLOPs (2 x MACs; non-zero counts for masked pruning) before and after pruning with
their reductions; and a paired t-test of proposed against baseline over folds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from skkgp.reproduce.config import Cell

__all__ = [
    "RESULT_COLUMNS",
    "results_frame",
    "summarize",
    "paired_test",
    "format_table",
    "TABLE_COLUMNS",
]

#: Columns of ``results.csv``: one row per (cell, fold).
RESULT_COLUMNS = (
    "model",
    "method",
    "recovery",
    "fold",
    "n_train",
    "n_test",
    "origin_train_accuracy",
    "origin_accuracy",
    "baseline_accuracy",
    "proposed_accuracy",
    "params_before",
    "params_after",
    "nonzero_params_after",
    "macs_before",
    "macs_after",
    "nonzero_macs_after",
    "flops_before",
    "flops_after",
    "params_reduction",
    "flops_reduction",
    "origin_region_share",
    "baseline_region_share",
    "proposed_region_share",
    "origin_constant",
    "seed",
    "origin_seconds",
    "seconds",
)

#: Column headers of the printed table and of ``table.md``.
TABLE_COLUMNS = (
    "Model",
    "Method",
    "Recovery",
    "Params",
    "Params red.",
    "FLOPs",
    "FLOPs red.",
    "Origin acc.",
    "Baseline acc.",
    "Proposed acc.",
    "P - B",
    "p (paired t)",
    "Region share B / P",
    "Folds",
)


def results_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per-(cell, fold) results as a frame with :data:`RESULT_COLUMNS`, in grid order.

    Parameters
    ----------
    results : iterable of dict
        Stored results (extra keys such as the evidence vectors are dropped).

    Returns
    -------
    frame : DataFrame, shape (n_results, len(RESULT_COLUMNS))
    """
    rows = [{name: result.get(name) for name in RESULT_COLUMNS} for result in results]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def paired_test(proposed: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Mean difference and two-sided paired t-test p-value of ``proposed - baseline``.

    Parameters
    ----------
    proposed, baseline : sequence of float, length n_folds
        Accuracies of the two recoveries on the same folds.

    Returns
    -------
    mean_difference : float
        ``nan`` for no folds.
    p_value : float
        ``nan`` when the test is undefined: fewer than two folds, or differences that
        are all equal (zero variance), where a t statistic does not exist.
    """
    difference = np.asarray(proposed, dtype=float) - np.asarray(baseline, dtype=float)
    if difference.size == 0:
        return math.nan, math.nan
    mean_difference = float(difference.mean())
    # Accuracies are ratios k/n: equal differences may differ in the last bits.
    if difference.size < 2 or np.allclose(difference, difference[0], rtol=0, atol=1e-12):
        return mean_difference, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_rel(proposed, baseline).pvalue)
    return mean_difference, p_value


def summarize(frame: pd.DataFrame, cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell: means, standard deviations, counts and the paired test.

    Parameters
    ----------
    frame : DataFrame
        Output of :func:`results_frame`.
    cells : sequence of Cell
        The grid, in table order; cells without any finished fold are left out.

    Returns
    -------
    summary : DataFrame, one row per cell with at least one fold
    """
    rows = []
    for cell in cells:
        part = frame[
            (frame["model"] == cell.model)
            & (frame["method"] == cell.method)
            & (frame["recovery"] == cell.recovery)
        ].sort_values("fold")
        if part.empty:
            continue
        row: dict[str, Any] = {"model": cell.model, "method": cell.method,
                               "recovery": cell.recovery, "folds": len(part)}
        for name in ("origin", "baseline", "proposed"):
            values = part[f"{name}_accuracy"].astype(float)
            row[f"{name}_mean"] = float(values.mean())
            # Sample standard deviation over folds (ddof=1), 0 for a single fold.
            row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        for name in ("params_before", "params_after", "flops_before", "flops_after",
                     "params_reduction", "flops_reduction", "baseline_region_share",
                     "proposed_region_share"):
            row[name] = float(part[name].astype(float).mean())
        row["difference"], row["p_value"] = paired_test(
            part["proposed_accuracy"].astype(float), part["baseline_accuracy"].astype(float)
        )
        row["constant_origins"] = int(part["origin_constant"].astype(bool).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _count(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _accuracy(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _table_rows(summary: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in summary.to_dict("records"):
        p_value = "n/a" if math.isnan(row["p_value"]) else f"{row['p_value']:.3f}"
        folds = str(row["folds"])
        if row["constant_origins"]:
            folds += f" ({row['constant_origins']} const.)"
        rows.append([
            row["model"],
            row["method"],
            row["recovery"],
            f"{_count(row['params_before'])} → {_count(row['params_after'])}",
            f"{row['params_reduction']:.1f}%",
            f"{_count(row['flops_before'])} → {_count(row['flops_after'])}",
            f"{row['flops_reduction']:.1f}%",
            _accuracy(row["origin_mean"], row["origin_std"]),
            _accuracy(row["baseline_mean"], row["baseline_std"]),
            _accuracy(row["proposed_mean"], row["proposed_std"]),
            f"{100 * row['difference']:+.1f}",
            p_value,
            f"{100 * row['baseline_region_share']:.0f}% / "
            f"{100 * row['proposed_region_share']:.0f}%",
            folds,
        ])
    return rows


def format_table(summary: pd.DataFrame, *, markdown: bool = False) -> str:
    """Table 1 as aligned text (console) or a Markdown table.

    Parameters
    ----------
    summary : DataFrame
        Output of :func:`summarize`.
    markdown : bool, default=False
        Markdown pipes instead of plain aligned columns.

    Returns
    -------
    table : str
    """
    header = list(TABLE_COLUMNS)
    rows = _table_rows(summary)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    # Text columns left-aligned, numbers right-aligned, as a reader scans them.
    left = {0, 1, 2}

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i in left else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded)

    if markdown:
        rule = "|" + "|".join(
            "-" * (w + 1) + (":" if i not in left else "-") for i, w in enumerate(widths)
        ) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
