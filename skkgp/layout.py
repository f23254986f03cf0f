"""Electrode layouts: channel lists, 9x9 grids, knowledge regions, positions.

A layout is a 2-D arrangement of electrodes, as in MNE: the grids place each electrode
of a recording system on a 9x9 image, as the CCNN and
FBCCNN models expect (the layouts are those of torcheeg's ``DEAP_CHANNEL_LOCATION_DICT``
and ``SEED_CHANNEL_LOCATION_DICT``). Regions are sets of electrode *names*, so one
region works on any layout that has some of its electrodes. All electrode names are
matched case-insensitively (``"FP1"`` is ``"Fp1"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from numbers import Integral

import numpy as np

__all__ = [
    "DEAP_CHANNELS",
    "DEAP_GRID",
    "SEED_CHANNELS",
    "SEED_GRID",
    "DREAMER_CHANNELS",
    "DREAMER_GRID",
    "CHANNELS",
    "LAYOUTS",
    "REGIONS",
    "DEFAULT_REGION",
    "GRID_SIZE",
    "get_channels",
    "get_layout",
    "grid_shape",
    "grid_cells",
    "region_mask",
    "region_grid_mask",
    "region_channels",
    "electrode_positions",
    "make_info",
]

#: Layout argument accepted everywhere: a built-in name or a name -> (row, col) mapping.
Layout = str | Mapping[str, Sequence[int]]

GRID_SIZE: tuple[int, int] = (9, 9)

#: The 32 EEG channels of DEAP, in the order of the preprocessed release.
DEAP_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3",
    "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8",
    "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip

#: DEAP electrode -> (row, col) on the 9x9 grid (torcheeg's DEAP layout).
DEAP_GRID: dict[str, tuple[int, int]] = {
    "Fp1": (0, 3), "Fp2": (0, 5),
    "AF3": (1, 3), "AF4": (1, 5),
    "F7": (2, 0), "F3": (2, 2), "Fz": (2, 4), "F4": (2, 6), "F8": (2, 8),
    "FC5": (3, 1), "FC1": (3, 3), "FC2": (3, 5), "FC6": (3, 7),
    "T7": (4, 0), "C3": (4, 2), "Cz": (4, 4), "C4": (4, 6), "T8": (4, 8),
    "CP5": (5, 1), "CP1": (5, 3), "CP2": (5, 5), "CP6": (5, 7),
    "P7": (6, 0), "P3": (6, 2), "Pz": (6, 4), "P4": (6, 6), "P8": (6, 8),
    "PO3": (7, 3), "PO4": (7, 5),
    "O1": (8, 3), "Oz": (8, 4), "O2": (8, 5),
}  # fmt: skip

# SEED's 62-channel (Neuroscan) layout, row by row; "-" is an empty cell.
_SEED_ROWS = (
    ("-", "-", "-", "FP1", "FPZ", "FP2", "-", "-", "-"),
    ("-", "-", "-", "AF3", "-", "AF4", "-", "-", "-"),
    ("F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8"),
    ("FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8"),
    ("T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8"),
    ("TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8"),
    ("P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8"),
    ("-", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "-"),
    ("-", "-", "CB1", "O1", "OZ", "O2", "CB2", "-", "-"),
)

#: The 62 EEG channels of SEED, in the order of the released recordings.
SEED_CHANNELS: tuple[str, ...] = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6",
    "F8", "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3",
    "C1", "CZ", "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4",
    "CP6", "TP8", "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7", "PO5",
    "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)  # fmt: skip

#: SEED electrode -> (row, col) on the 9x9 grid (torcheeg's SEED layout).
SEED_GRID: dict[str, tuple[int, int]] = {
    name: (row, col)
    for row, names in enumerate(_SEED_ROWS)
    for col, name in enumerate(names)
    if name != "-"
}

#: The 14 EEG channels of DREAMER (Emotiv EPOC), in the order of ``DREAMER.mat``.
DREAMER_CHANNELS: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip

#: DREAMER electrode -> (row, col): the cells of the same electrodes on the DEAP grid
#: (torcheeg's DREAMER layout).
DREAMER_GRID: dict[str, tuple[int, int]] = {name: DEAP_GRID[name] for name in DREAMER_CHANNELS}

#: The built-in channel lists by name (``"deap"``, ``"seed"``, ``"dreamer"``), as
#: :func:`get_channels` resolves them.
CHANNELS: dict[str, tuple[str, ...]] = {
    "deap": DEAP_CHANNELS, "seed": SEED_CHANNELS, "dreamer": DREAMER_CHANNELS,
}
#: The built-in grid layouts by name (``"deap"``, ``"seed"``, ``"dreamer"``), as
#: :func:`get_layout` resolves them.
LAYOUTS: dict[str, dict[str, tuple[int, int]]] = {
    "deap": DEAP_GRID, "seed": SEED_GRID, "dreamer": DREAMER_GRID,
}

#: Knowledge regions as electrode names (upper case). ``frontal_left``,
#: ``frontal_right`` and ``frontal`` are the front-left, front-right and all-front
#: regions of Rao & Zhong's code on the DEAP grid. The older 10-20 names of a site sit
#: in the region of its 10-10 name: T3/T4 (T7/T8) are temporal, T5/T6 (P7/P8) parietal.
REGIONS: dict[str, tuple[str, ...]] = {
    "prefrontal": ("FP1", "FPZ", "FP2", "AF7", "AF3", "AFZ", "AF4", "AF8"),
    "frontal_left": ("FP1", "AF3", "F7", "F3"),
    "frontal_right": ("FP2", "AF4", "F4", "F8"),
    "frontal": ("FP1", "FP2", "AF3", "AF4", "F7", "F3", "FZ", "F4", "F8"),
    "temporal": ("FT9", "FT7", "FT8", "FT10", "T9", "T7", "T8", "T10", "TP9", "TP7",
                 "TP8", "TP10", "T3", "T4"),
    "central": ("FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "C5", "C3", "C1", "CZ",
                "C2", "C4", "C6", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6"),
    "parietal": ("P9", "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "P10", "T5",
                 "T6"),
    "occipital": ("PO9", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "PO10", "O9",
                  "O1", "OZ", "O2", "O10", "IZ", "CB1", "CB2"),
}  # fmt: skip

#: The region the knowledge-guided estimators and ``skkgp reproduce`` use unless told
#: otherwise: the front-left region of Rao & Zhong's code, where frontal alpha asymmetry
#: puts the valence signal (docs: the regions guide says why).
DEFAULT_REGION = "frontal_left"

# Cerebellar electrodes of the Neuroscan cap are missing from the standard 10-20 montage;
# the nearest standard sites stand in for them on plots.
_POSITION_ALIASES = {"CB1": "O9", "CB2": "O10"}


def _canonical(names: Iterable[str], argument: str) -> list[str]:
    if isinstance(names, str):
        raise ValueError(f"{argument} must be a sequence of electrode names, got the string "
                         f"{names!r}.")
    out = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{argument} must contain electrode names (str); got {name!r}.")
        out.append(name.strip().upper())
    duplicated = sorted({n for n in out if out.count(n) > 1})
    if duplicated:
        raise ValueError(f"{argument} names electrodes more than once (case-insensitive): "
                         f"{duplicated}.")
    return out


def get_channels(layout: str) -> tuple[str, ...]:
    """Channel list of a built-in layout.

    Parameters
    ----------
    layout : {"deap", "seed", "dreamer"}
        Layout name (case-insensitive).

    Returns
    -------
    ch_names : tuple of str
    """
    key = str(layout).lower()
    if key not in CHANNELS:
        raise ValueError(f"Unknown layout {layout!r}; expected one of {sorted(CHANNELS)}.")
    return CHANNELS[key]


def get_layout(layout: Layout = "deap") -> dict[str, tuple[int, int]]:
    """Resolve a layout to an upper-case electrode name -> (row, col) dict.

    Parameters
    ----------
    layout : {"deap", "seed", "dreamer"} or mapping of str to (int, int)
        A built-in layout name, or a mapping from electrode name to grid cell.

    Returns
    -------
    layout : dict of str to (int, int)
        Electrode names in upper case.
    """
    if isinstance(layout, str):
        key = layout.lower()
        if key not in LAYOUTS:
            raise ValueError(f"Unknown layout {layout!r}; expected one of {sorted(LAYOUTS)} "
                             "or a mapping electrode name -> (row, col).")
        layout = LAYOUTS[key]
    if not isinstance(layout, Mapping) or not layout:
        raise ValueError(f"layout must be a built-in layout name or a non-empty mapping electrode "
                         f"name -> (row, col); got {layout!r}.")
    names = _canonical(layout.keys(), "layout")
    resolved: dict[str, tuple[int, int]] = {}
    owner: dict[tuple[int, int], str] = {}
    for name, cell in zip(names, layout.values(), strict=True):
        try:
            row, col = cell
        except (TypeError, ValueError):
            row = col = None
        # int() would truncate 1.7 to 1 and read "1" as 1: a cell is a pair of integers.
        if not all(isinstance(c, Integral) and not isinstance(c, bool)
                   for c in (row, col)):
            raise ValueError(f"layout cell of {name!r} must be a (row, col) pair of "
                             f"non-negative ints; got {cell!r}.")
        row, col = int(row), int(col)
        if row < 0 or col < 0:
            raise ValueError(f"layout cell of {name!r} must be non-negative; got {cell!r}.")
        if (row, col) in owner:
            raise ValueError(f"layout puts {owner[(row, col)]!r} and {name!r} on the same "
                             f"cell {(row, col)}.")
        owner[(row, col)] = name
        resolved[name] = (row, col)
    return resolved


def grid_shape(layout: Layout = "deap") -> tuple[int, int]:
    """Shape ``(rows, cols)`` of the grid a layout is drawn on: at least 9x9.

    Parameters
    ----------
    layout : {"deap", "seed", "dreamer"} or mapping of str to (int, int)

    Returns
    -------
    shape : tuple of int
    """
    cells = np.array(list(get_layout(layout).values()))
    return (max(GRID_SIZE[0], int(cells[:, 0].max()) + 1),
            max(GRID_SIZE[1], int(cells[:, 1].max()) + 1))


def grid_cells(ch_names: Sequence[str], layout: Layout = DEAP_GRID) -> np.ndarray:
    """Grid cell of each electrode.

    Parameters
    ----------
    ch_names : sequence of str, length n_chans
        Electrode names (case-insensitive).
    layout : {"deap", "seed", "dreamer"} or mapping of str to (int, int), default=DEAP_GRID
        Electrode name -> (row, col).

    Returns
    -------
    cells : ndarray of int, shape (n_chans, 2)
        ``(row, col)`` of each electrode.

    Examples
    --------
    >>> grid_cells(["Fp1", "FP2"]).tolist()
    [[0, 3], [0, 5]]
    """
    resolved = get_layout(layout)
    names = _canonical(ch_names, "ch_names")
    missing = [orig for orig, name in zip(ch_names, names, strict=True) if name not in resolved]
    if missing:
        raise ValueError(f"Electrodes {missing} are not in the layout "
                         f"(known: {sorted(resolved)}).")
    return np.array([resolved[name] for name in names], dtype=np.int64).reshape(-1, 2)


def region_channels(region: str | Sequence[str]) -> tuple[str, ...]:
    """Electrode names (upper case) of a region.

    Parameters
    ----------
    region : str or sequence of str
        A key of :data:`REGIONS` (case-insensitive) or a list of electrode names.

    Returns
    -------
    names : tuple of str
    """
    if isinstance(region, str):
        key = region.lower()
        if key not in REGIONS:
            raise ValueError(f"Unknown region {region!r}; expected one of {sorted(REGIONS)} "
                             "or a list of electrode names.")
        return REGIONS[key]
    names = _canonical(region, "region")
    if not names:
        raise ValueError("region must name at least one electrode; got an empty list.")
    return tuple(names)


def region_mask(region: str | Sequence[str], ch_names: Sequence[str]) -> np.ndarray:
    """Boolean mask of the electrodes of ``ch_names`` that belong to ``region``.

    Parameters
    ----------
    region : str or sequence of str
        A key of :data:`REGIONS` (e.g. ``"prefrontal"``; the electrodes of the region
        missing from ``ch_names`` are ignored) or a list of electrode names (each must be
        in ``ch_names``).
    ch_names : sequence of str, length n_chans
        Electrode names of the data (case-insensitive).

    Returns
    -------
    mask : ndarray of bool, shape (n_chans,)

    Raises
    ------
    ValueError
        Unknown region, an electrode of an explicit list missing from ``ch_names``, or no
        electrode of the region in ``ch_names``.

    Examples
    --------
    >>> region_mask("frontal_left", DEAP_CHANNELS).sum()
    np.int64(4)
    """
    names = _canonical(ch_names, "ch_names")
    members = region_channels(region)
    if not isinstance(region, str):
        missing = [m for m in members if m not in names]
        if missing:
            raise ValueError(f"Region electrodes {missing} are not in ch_names {list(ch_names)}.")
    mask = np.isin(np.array(names, dtype=object), np.array(members, dtype=object))
    if not mask.any():
        raise ValueError(f"No electrode of region {region!r} ({list(members)}) is in ch_names "
                         f"{list(ch_names)}.")
    return mask


def region_grid_mask(region: str | Sequence[str], layout: Layout = "deap",
                     ch_names: Sequence[str] | None = None) -> np.ndarray:
    """Boolean image of the grid cells of a region, for grid models (CCNN, FBCCNN).

    Parameters
    ----------
    region : str or sequence of str
        As in :func:`region_mask`.
    layout : {"deap", "seed", "dreamer"} or mapping of str to (int, int), default="deap"
        Electrode name -> (row, col).
    ch_names : sequence of str, default=None
        Electrodes present on the grid; ``None``: every electrode of the layout.

    Returns
    -------
    mask : ndarray of bool, shape (rows, cols)
        ``True`` on the cells of the region's electrodes; see :func:`grid_shape`.
    """
    resolved = get_layout(layout)
    names = list(resolved) if ch_names is None else list(ch_names)
    cells = grid_cells(names, resolved)[region_mask(region, names)]
    mask = np.zeros(grid_shape(resolved), dtype=bool)
    mask[cells[:, 0], cells[:, 1]] = True
    return mask


@lru_cache(maxsize=1)
def _standard_positions() -> dict[str, np.ndarray]:
    import mne

    # MNE >= 1.13 renames 'standard_1020' to 'colin27_1020' (same positions).
    builtin = mne.channels.get_builtin_montages()
    kind = "colin27_1020" if "colin27_1020" in builtin else "standard_1020"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        montage = mne.channels.make_standard_montage(kind)
    positions = montage.get_positions()["ch_pos"]
    return {name.upper(): np.asarray(pos, dtype=float) for name, pos in positions.items()}


def electrode_positions(ch_names: Sequence[str]) -> np.ndarray:
    """3-D head positions of electrodes from MNE's standard 10-20 system.

    Parameters
    ----------
    ch_names : sequence of str, length n_chans
        Electrode names (case-insensitive). SEED's cerebellar CB1/CB2 are placed at O9/O10.

    Returns
    -------
    positions : ndarray, shape (n_chans, 3)
        Positions in metres, MNE head coordinates.
    """
    names = _canonical(ch_names, "ch_names")
    table = _standard_positions()
    lookup = [_POSITION_ALIASES.get(n, n) for n in names]
    missing = [orig for orig, name in zip(ch_names, lookup, strict=True) if name not in table]
    if missing:
        raise ValueError(f"Electrodes {missing} have no position in the standard 10-20 montage.")
    return np.stack([table[n] for n in lookup]).reshape(-1, 3)


def make_info(ch_names: Sequence[str], sfreq: float = 128.0):
    """An :class:`mne.Info` of EEG channels with standard positions, for topomaps.

    Parameters
    ----------
    ch_names : sequence of str, length n_chans
        Electrode names (kept as given).
    sfreq : float, default=128.0
        Sampling frequency in Hz.

    Returns
    -------
    info : mne.Info
        Usable as ``mne.viz.plot_topomap(values, info)``.
    """
    import mne

    positions = electrode_positions(ch_names)
    info = mne.create_info(list(ch_names), float(sfreq), ch_types="eeg")
    montage = mne.channels.make_dig_montage(
        ch_pos=dict(zip(ch_names, positions, strict=True)), coord_frame="head"
    )
    info.set_montage(montage)
    return info
