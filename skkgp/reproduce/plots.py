"""Figures of a ``skkgp reproduce`` run: evidence topomaps (MNE), accuracy per cell, and
accuracy against cost over the ratios of ``--ratios``.

All draw with matplotlib's non-interactive Agg backend, so they work on machines
without a display and inside Dask workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from skkgp._atomic import atomic_file  # noqa: E402

__all__ = ["plot_accuracy", "plot_evidence", "plot_pareto"]

_STAGES = ("origin", "baseline", "proposed")
_STAGE_TITLES = {"origin": "Origin", "baseline": "Baseline recovery",
                 "proposed": "Proposed recovery"}
_COLORS = {"origin": "0.6", "baseline": "tab:blue", "proposed": "tab:orange"}


def _save_figure(fig, path) -> None:
    # An interrupted run must not leave a half-written PNG next to finished results.
    try:
        with atomic_file(path) as stream:
            fig.savefig(stream, format="png", dpi=110)
    finally:
        plt.close(fig)


def plot_accuracy(summary: pd.DataFrame, path: str | Path, *, n_classes: int = 2) -> Path:
    """Bar chart of held-out accuracy per cell (origin, baseline, proposed), mean +- std.

    Parameters
    ----------
    summary : DataFrame
        Output of :func:`skkgp.reproduce.report.summarize`.
    path : path-like
        PNG file to write.
    n_classes : int, default=2
        Classes of the data: the dotted chance line is drawn at ``100 / n_classes`` %.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    _save_figure(_accuracy_figure(summary, n_classes), path)
    return path


def _accuracy_figure(summary: pd.DataFrame, n_classes: int):
    labels = [f"{r.model}\n{r.method} / {r.recovery}"
              + ("" if "ratio" not in summary or pd.isna(r.ratio) else f" @ {r.ratio:g}")
              for r in summary.itertuples()]
    positions = np.arange(len(labels))
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(labels) + 1.5), 4.0))
    for offset, stage in zip((-width, 0.0, width), _STAGES, strict=True):
        ax.bar(positions + offset, 100 * summary[f"{stage}_mean"], width,
               yerr=100 * summary[f"{stage}_std"], capsize=3, color=_COLORS[stage],
               label=_STAGE_TITLES[stage])
    ax.axhline(100 / n_classes, color="k", lw=0.8, ls=":",
               label=f"chance ({n_classes} classes)")
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_ylabel("held-out accuracy (%)")
    # Head room above 100 % keeps the legend off the bars.
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Accuracy per cell (mean ± std over (seed, fold) pairs)")
    ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def _mean_and_spread(part: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean of ``column`` and its spread: over seeds when there are several, else folds.

    With several seeds, each seed's folds are averaged first and the spread is the
    sample standard deviation of those per-seed means: the seed-to-seed variation a
    rerun with other seeds would show. With one seed, it is that of the folds.
    """
    values = part[column].astype(float)
    if part["seed"].nunique() > 1:
        values = part.assign(value=values).groupby("seed")["value"].mean()
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), spread


def plot_pareto(frame: pd.DataFrame, path: str | Path) -> Path:
    """Held-out accuracy against the MACs pruning kept, over the ratios of ``--ratios``.

    One panel per model and one curve per (method, recovery), baseline recovery
    dashed and proposed recovery solid in the same colour; each point is one ratio.
    x: the mean MACs per sample of the pruned networks, half of the ``flops_after``
    of ``results.csv``: the MACs of the conv and linear layers of the network
    pruning hands over, and for masked pruning (``umwp``) those whose weight is
    non-zero. y: mean held-out accuracy. Error bars: one sample standard deviation
    of the per-seed means (each seed's folds averaged) when the run has several
    seeds, of the folds otherwise; the panel title says which. The grey band is
    the unpruned origin's accuracy, mean +- the same spread, and the grey diamond
    marks it at the origin's MACs. (seed, fold) pairs
    whose origin collapsed to a constant predictor are left out, as in the table.

    Parameters
    ----------
    frame : DataFrame
        Output of :func:`skkgp.reproduce.report.results_frame` (``results.csv``):
        columns ``model``, ``method``, ``recovery``, ``ratio``, ``seed``, ``fold``,
        ``random_state``, ``origin_constant``, ``flops_before``, ``flops_after`` and the three
        ``*_accuracy``.
    path : path-like
        PNG file to write.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    models = list(dict.fromkeys(frame["model"]))
    frame = frame[~frame["origin_constant"].astype(bool)]
    spread_over = "seeds' means" if frame["seed"].nunique() > 1 else "folds"
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.0 * max(1, len(models)), 4.2),
                             squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        part = frame[frame["model"] == model]
        if part.empty:
            ax.set_title(f"{model}: every origin collapsed to a constant predictor", fontsize=8)
            ax.set_axis_off()
            continue
        # One origin per random_state (seed, family, fold), whatever the cells pruning it.
        origin, spread = _mean_and_spread(part.drop_duplicates("random_state"),
                                          "origin_accuracy")
        ax.axhspan(100 * (origin - spread), 100 * (origin + spread), color="0.88", lw=0,
                   label="origin (unpruned)")
        ax.axhline(100 * origin, color="0.6", lw=0.8)
        ax.plot(part["flops_before"].astype(float).mean() / 2, 100 * origin, "D", color="0.4",
                ms=5, label="origin's MACs")
        curves = part.groupby(["method", "recovery"], sort=False)
        for index, ((method, recovery), curve) in enumerate(curves):
            points = [(ratio, group) for ratio, group in curve.groupby("ratio")]
            macs = [group["flops_after"].astype(float).mean() / 2 for _, group in points]
            color = plt.get_cmap("tab10")(index % 10)
            for stage, style, marker in (("baseline", "--", "o"), ("proposed", "-", "s")):
                stats = [_mean_and_spread(group, f"{stage}_accuracy") for _, group in points]
                ax.errorbar(macs, [100 * m for m, _ in stats], yerr=[100 * e for _, e in stats],
                            ls=style, marker=marker, ms=4, capsize=2, color=color,
                            label=f"{method} / {recovery}, {stage}")
            for (ratio, _), x, (y, _) in zip(points, macs, stats, strict=True):
                ax.annotate(f"{ratio:g}", (x, 100 * y), textcoords="offset points",
                            xytext=(3, 3), fontsize=6, color=color)
        ax.set_xlabel("MACs per sample after pruning")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_title(f"{model}: accuracy vs cost (labels: ratio; mean ± std over "
                     f"{spread_over})", fontsize=8)
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    _save_figure(fig, path)
    return path


def plot_evidence(
    evidence: dict[str, np.ndarray],
    ch_names: Sequence[str],
    region: np.ndarray,
    path: str | Path,
    *,
    title: str,
    shares: dict[str, Any] | None = None,
) -> Path:
    """Topomaps of mean held-out electrode evidence of origin, baseline and proposed models.

    Parameters
    ----------
    evidence : dict
        ``"origin"``, ``"baseline"``, ``"proposed"`` -> ndarray, shape (n_electrodes,):
        the evidence share of each electrode (each sample's evidence normalised to sum
        1, averaged over held-out samples and folds).
    ch_names : sequence of str, length n_electrodes
        Electrode names; positions come from MNE's standard 10-20 montage.
    region : ndarray of bool, shape (n_electrodes,)
        The knowledge region, marked on every map.
    path : path-like
        PNG file to write.
    title : str
        Figure title (the cell).
    shares : dict, optional
        Stage -> share of evidence in the region, printed under each map.

    Returns
    -------
    path : Path
    """
    import mne

    from skkgp.layout import make_info

    path = Path(path)
    info = make_info(list(ch_names))
    values = {stage: np.asarray(evidence[stage], dtype=float) for stage in _STAGES}
    # One colour scale for the three maps, so that they can be compared by eye.
    vmax = max(float(v.max()) for v in values.values()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.4))
    for ax, stage in zip(axes, _STAGES, strict=True):
        image, _ = mne.viz.plot_topomap(
            values[stage], info, axes=ax, show=False, cmap="Reds", vlim=(0.0, vmax),
            mask=np.asarray(region, dtype=bool),
            mask_params={"marker": "o", "markerfacecolor": "k", "markersize": 4},
            contours=4,
        )
        label = _STAGE_TITLES[stage]
        if shares is not None and stage in shares:
            label += f"\nregion share {100 * shares[stage]:.0f}%"
        ax.set_title(label, fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.7, label="evidence share")
    fig.suptitle(title, fontsize=10)
    _save_figure(fig, path)
    return path
