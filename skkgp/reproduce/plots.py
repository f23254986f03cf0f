"""Figures of a ``skkgp reproduce`` run: evidence topomaps (MNE) and accuracy per cell.

Both draw with matplotlib's non-interactive Agg backend, so they work on machines
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

__all__ = ["plot_accuracy", "plot_evidence"]

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


def plot_accuracy(summary: pd.DataFrame, path: str | Path) -> Path:
    """Bar chart of held-out accuracy per cell (origin, baseline, proposed), mean +- std.

    Parameters
    ----------
    summary : DataFrame
        Output of :func:`skkgp.reproduce.report.summarize`.
    path : path-like
        PNG file to write.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    labels = [f"{r.model}\n{r.method} / {r.recovery}" for r in summary.itertuples()]
    positions = np.arange(len(labels))
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(labels) + 1.5), 4.0))
    for offset, stage in zip((-width, 0.0, width), _STAGES, strict=True):
        ax.bar(positions + offset, 100 * summary[f"{stage}_mean"], width,
               yerr=100 * summary[f"{stage}_std"], capsize=3, color=_COLORS[stage],
               label=_STAGE_TITLES[stage])
    ax.axhline(50, color="k", lw=0.8, ls=":", label="chance (2 classes)")
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_ylabel("held-out accuracy (%)")
    # Head room above 100 % keeps the legend off the bars.
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Accuracy per cell (mean ± std over folds)")
    ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
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
