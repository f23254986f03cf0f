"""Table 1 from the finished results: per-(seed, fold) rows, summary, paired statistics.

One row of the table is one (model, method, recovery) cell, or with ``--ratios`` one
(model, method, recovery, ratio) cell: accuracy mean +- std over
(seed, fold) pairs of the origin, baseline-recovered and proposed-recovered models;
parameters and FLOPs before and after pruning in two conventions, skkgp's realized
counts (2 x MACs of conv and linear layers; non-zero counts for masked pruning) with
their reductions and the paper's (:func:`skkgp.pruning.count_paper_params`,
:func:`skkgp.pruning.count_paper_flops`); and the paired comparison of proposed against baseline
(:func:`skkgp.reproduce.stats.paired_comparison`). Pairs whose origin collapsed to a
constant predictor are counted and left out of every mean and statistic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from skkgp.pruning import get_method
from skkgp.reproduce.config import Cell, ratio_key
from skkgp.reproduce.stats import MIN_PAIRS, PairedComparison, paired_comparison

__all__ = [
    "RESULT_COLUMNS",
    "results_frame",
    "summarize",
    "compare",
    "comparisons_frame",
    "verdicts",
    "cell_label",
    "evidence_note",
    "EVIDENCE_NAMES",
    "format_table",
    "TABLE_COLUMNS",
    "LEGEND",
    "BOOTSTRAP_RESAMPLES",
]

#: Bootstrap resamples of the paired interval (seeded: the same interval every run).
BOOTSTRAP_RESAMPLES = 10_000

#: Columns of ``results.csv``: one row per (cell, seed, fold).
RESULT_COLUMNS = (
    "model",
    "method",
    "method_options",
    "recovery",
    "ratio",
    "seed",
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
    "paper_params_before",
    "paper_params_after",
    "paper_flops_before",
    "paper_flops_after",
    "paper_params_reduction",
    "paper_flops_reduction",
    "origin_region_share",
    "baseline_region_share",
    "proposed_region_share",
    "evidence_kind",
    "origin_constant",
    "random_state",
    "origin_seconds",
    "seconds",
)

#: Column headers of the printed table and of ``table.md``.
TABLE_COLUMNS = (
    "Model",
    "Method",
    "Recovery",
    "Params (skkgp)",
    "Params red.",
    "FLOPs (skkgp)",
    "FLOPs red.",
    "Params (paper's count)",
    "FLOPs (paper's count)",
    "Origin acc.",
    "Baseline acc.",
    "Proposed acc.",
    "P - B [95% CI]",
    "p (Wilcoxon)",
    "Region share B / P",
    "Pairs",
)

#: What the table's columns mean, printed under it and written in ``table.md``.
LEGEND = (
    "Accuracy: held-out, mean ± sample std over (seed, fold) pairs (%). Params and FLOPs "
    "before → after pruning in two conventions. skkgp: the network skkgp hands over, "
    "stored parameters (non-zero ones for umwp) and 2 × the MACs of conv and linear "
    "layers. Paper's count: the counter of the authors' code, parameters minus zero conv "
    "weights and FLOPs from the non-zero conv weights plus linear, bias, BatchNorm, ReLU "
    "and pooling terms, with sfp counted before its hard step (zeroed filters in place); "
    "these compare with the paper's Table 1. P - B: mean paired "
    "difference of proposed and baseline accuracy (points) with its 95 % percentile "
    f"bootstrap interval ({BOOTSTRAP_RESAMPLES:,} resamples of the pairs, seeded); "
    "p (Wilcoxon): two-sided Wilcoxon signed-rank p-value over the pairs (n/a when all "
    "differences are 0). Region share: share of the held-out evidence (of the kind named "
    "below for each model) on the region's electrodes after baseline / proposed recovery; "
    "\"@ r\" after a method: pruned at ratio r. Pairs: (seed, fold) pairs "
    "compared; \"(k collapsed)\" counts origins that collapsed to a constant predictor on "
    "their training windows: they are left out of every mean and statistic. A verdict "
    "says \"higher\" or \"lower\" only when the interval excludes 0, over at least "
    f"{MIN_PAIRS} pairs."
)


#: How the table and the plots name each evidence kind of
#: :data:`skkgp.knowledge.evidence.EVIDENCE_KINDS`.
EVIDENCE_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM",
                  "input_x_gradient": "input x gradient"}


def results_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per-(cell, seed, fold) results as a frame with :data:`RESULT_COLUMNS`, in grid order.

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


def _cell_rows(frame: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    rows = ((frame["model"] == cell.model) & (frame["method"] == cell.method)
            & (frame["recovery"] == cell.recovery))
    if cell.ratio is not None:
        # By key, as the results are stored: close ratios of one run keep their rows.
        rows &= frame["ratio"].astype(float).map(ratio_key) == ratio_key(cell.ratio)
    return frame[rows].sort_values(["seed", "fold"])


def _ratio(row: dict[str, Any]) -> float | None:
    """The ``--ratios`` ratio of a summary row; None for a run with one prune ratio."""
    ratio = row.get("ratio")
    return None if ratio is None or pd.isna(ratio) else float(ratio)


def cell_label(row: dict[str, Any]) -> str:
    """``"model method recovery"``, and ``" @ ratio"`` for a cell of ``--ratios``."""
    ratio = _ratio(row)
    label = f"{row['model']} {row['method']} {row['recovery']}"
    return label if ratio is None else f"{label} @ {ratio:g}"


def compare(part: pd.DataFrame, metric: str = "accuracy") -> PairedComparison:
    """Paired comparison of proposed and baseline ``metric`` over the rows of ``part``.

    Parameters
    ----------
    part : DataFrame
        Rows of :func:`results_frame` of one cell.
    metric : {"accuracy", "region_share"}, default="accuracy"

    Returns
    -------
    comparison : PairedComparison
        Rows with a collapsed origin excluded (counted in ``n_excluded``).
    """
    return paired_comparison(
        part[f"proposed_{metric}"].astype(float).to_numpy(),
        part[f"baseline_{metric}"].astype(float).to_numpy(),
        exclude=part["origin_constant"].astype(bool).to_numpy(),
        n_boot=BOOTSTRAP_RESAMPLES,
        random_state=0,
    )


def summarize(frame: pd.DataFrame, cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell: means, standard deviations, counts and the paired comparison.

    Parameters
    ----------
    frame : DataFrame
        Output of :func:`results_frame`.
    cells : sequence of Cell
        The grid, in table order; cells without any finished result are left out.

    Returns
    -------
    summary : DataFrame, one row per cell with at least one result
        Means and standard deviations are over the pairs whose origin did not
        collapse (``nan`` when every origin collapsed); ``comparison`` holds the
        :class:`~skkgp.reproduce.stats.PairedComparison` of accuracy,
        ``share_comparison`` that of the region share; ``params_after`` and
        ``flops_after`` are what the network left has, the non-zero counts for a
        method that masks weights (``umwp``), as the reductions are; ``ratio`` is
        the cell's ``--ratios`` ratio (None without), ``evidence_kind`` the evidence
        its region shares were measured with. The comparisons' fields (mean difference,
        p-values, pairs left out, ...) are written out by :func:`comparisons_frame`.
    """
    rows = []
    for cell in cells:
        part = _cell_rows(frame, cell)
        if part.empty:
            continue
        kept = part[~part["origin_constant"].astype(bool)]
        options = part["method_options"].dropna().astype(str)
        row: dict[str, Any] = {"model": cell.model, "method": cell.method,
                               "method_options": options.iloc[0] if len(options) else "",
                               "recovery": cell.recovery, "ratio": cell.ratio,
                               "results": len(part),
                               "seeds": int(part["seed"].nunique())}
        for name in ("origin", "baseline", "proposed"):
            values = kept[f"{name}_accuracy"].astype(float)
            row[f"{name}_mean"] = float(values.mean()) if len(values) else math.nan
            # Sample standard deviation over pairs (ddof=1), 0 for a single pair.
            row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        for name in ("params_before", "params_after", "flops_before", "flops_after",
                     "params_reduction", "flops_reduction", "paper_params_before",
                     "paper_params_after", "paper_flops_before", "paper_flops_after",
                     "paper_params_reduction", "paper_flops_reduction"):
            # Results stored before the paper's counts existed have none: nan.
            row[name] = float(pd.to_numeric(part[name], errors="coerce").mean())
        if not get_method(cell.method).structural:
            # What a masking method leaves is its non-zero parameters: the count its
            # reduction and its FLOPs are of.
            row["params_after"] = float(
                pd.to_numeric(part["nonzero_params_after"], errors="coerce").mean())
        for name in ("baseline_region_share", "proposed_region_share"):
            values = kept[name].astype(float)
            row[name] = float(values.mean()) if len(values) else math.nan
        kinds = part["evidence_kind"].dropna().astype(str)
        row["evidence_kind"] = kinds.iloc[0] if len(kinds) else ""
        row["comparison"] = compare(part)
        row["share_comparison"] = compare(part, "region_share")
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The paired statistics of every cell, one row per (cell, metric): ``comparison.csv``.

    Parameters
    ----------
    summary : DataFrame
        Output of :func:`summarize`.

    Returns
    -------
    frame : DataFrame
        Columns ``model``, ``method``, ``recovery``, ``ratio`` (for a run of
        ``--ratios`` only: one row per ratio of each cell), ``metric`` (``accuracy`` or
        ``region_share``) and the fields of
        :meth:`~skkgp.reproduce.stats.PairedComparison.as_dict`.
    """
    records = summary.to_dict("records")
    with_ratio = any(_ratio(row) is not None for row in records)
    rows = []
    for row in records:
        for metric, key in (("accuracy", "comparison"), ("region_share", "share_comparison")):
            cell = {"model": row["model"], "method": row["method"], "recovery": row["recovery"]}
            if with_ratio:
                cell["ratio"] = _ratio(row)
            rows.append({**cell, "metric": metric, **row[key].as_dict()})
    return pd.DataFrame(rows)


def verdicts(summary: pd.DataFrame) -> list[str]:
    """One line per cell: proposed vs baseline accuracy, its interval, p-values, direction.

    Parameters
    ----------
    summary : DataFrame
        As in :func:`comparisons_frame`.

    Returns
    -------
    lines : list of str
        E.g. ``"ccnn lfp finetune: proposed vs baseline: +0.4 points [-1.2, +2.0] (95 %
        bootstrap), Wilcoxon p = 0.41, paired t p = 0.35; 8 up, 6 down, 1 tied of 15
        pairs: no difference"``; a cell of ``--ratios`` is named as in
        :func:`cell_label` (``"ccnn lfp finetune @ 0.3: ..."``).
    """
    return [f"{cell_label(row)}: {row['comparison'].verdict()}"
            for row in summary.to_dict("records")]


def evidence_note(summary: pd.DataFrame) -> str:
    """The evidence kind behind each model's region share, e.g. for under the legend.

    Parameters
    ----------
    summary : DataFrame
        As in :func:`comparisons_frame`.

    Returns
    -------
    line : str
        E.g. ``"Evidence: ccnn Grad-CAM; eegnet input x gradient."`` (the kind each
        model's recovery used, ``evidence="auto"``).
    """
    kinds = {}
    for row in summary.to_dict("records"):
        kinds.setdefault(row["model"], EVIDENCE_NAMES.get(row["evidence_kind"],
                                                          row["evidence_kind"] or "n/a"))
    return "Evidence: " + "; ".join(f"{model} {kind}" for model, kind in kinds.items()) + "."


def _count(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _paper_count(before: float, after: float, reduction: float) -> str:
    if math.isnan(after):
        return "n/a"
    return f"{_count(before)} → {_count(after)} (-{reduction:.1f}%)"


def _accuracy(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def _difference(comparison: PairedComparison) -> str:
    if comparison.n_pairs == 0:
        return "n/a"
    return (f"{100 * comparison.mean_difference:+.1f} [{100 * comparison.ci_low:+.1f}, "
            f"{100 * comparison.ci_high:+.1f}]")


def _table_rows(summary: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in summary.to_dict("records"):
        comparison = row["comparison"]
        p_value = "n/a" if math.isnan(comparison.wilcoxon_p) else f"{comparison.wilcoxon_p:.3f}"
        pairs = str(comparison.n_pairs)
        if comparison.n_excluded:
            pairs += f" ({comparison.n_excluded} collapsed)"
        method = row["method"]
        if row["method_options"]:
            method += f" ({row['method_options']})"
        if _ratio(row) is not None:
            method += f" @ {_ratio(row):g}"
        rows.append([
            row["model"],
            method,
            row["recovery"],
            f"{_count(row['params_before'])} → {_count(row['params_after'])}",
            f"{row['params_reduction']:.1f}%",
            f"{_count(row['flops_before'])} → {_count(row['flops_after'])}",
            f"{row['flops_reduction']:.1f}%",
            _paper_count(row["paper_params_before"], row["paper_params_after"],
                         row["paper_params_reduction"]),
            _paper_count(row["paper_flops_before"], row["paper_flops_after"],
                         row["paper_flops_reduction"]),
            _accuracy(row["origin_mean"], row["origin_std"]),
            _accuracy(row["baseline_mean"], row["baseline_std"]),
            _accuracy(row["proposed_mean"], row["proposed_std"]),
            _difference(comparison),
            p_value,
            f"{_percent(row['baseline_region_share'])} / "
            f"{_percent(row['proposed_region_share'])}",
            pairs,
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
