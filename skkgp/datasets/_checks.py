"""Checks shared by the dataset loaders and writers: samples that float32 windows can hold,
arguments, and files a writer must not overwrite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["check_positive_int", "check_samples", "check_threshold", "check_windowing",
           "existing_folder", "refuse_overwrite"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_samples(values: np.ndarray, *, source: str, name: str,
                  float32: bool = True) -> None:
    """Refuse samples that are not finite or that overflow float32.

    The loaders return float32 windows: a finite float64 sample beyond float32's range
    (a corrupt file) would turn into ``inf`` with only a numpy warning.

    Parameters
    ----------
    values : ndarray
        Numeric samples.
    source : str
        The file, for the message.
    name : str
        The variable in the file, for the message.
    float32 : bool, default=True
        Also refuse finite values beyond float32's range; ``False`` for values kept as
        float64 (ratings).

    Raises
    ------
    ValueError
    """
    if values.dtype.kind != "f" or values.size == 0:
        return
    # min and max propagate NaN and need no temporary array the size of the data.
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{source!r}: {name!r} contains NaN or infinite values.")
    if float32 and max(-low, high) > _FLOAT32_MAX:
        raise ValueError(f"{source!r}: {name!r} holds values beyond float32's range "
                         f"(up to {max(-low, high):.3g}); the file is corrupt.")


def existing_folder(path, *, dataset: str, hint: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` to a folder that exists.

    Parameters
    ----------
    path : str or path-like
    dataset : str
        The dataset's name, for messages (``"DEAP"``).
    hint : str
        What to give instead, for the message when ``path`` is a file.

    Raises
    ------
    ValueError
        ``path`` is not a path.
    FileNotFoundError, NotADirectoryError
    """
    try:
        root = Path(os.fspath(path)).expanduser()
    except TypeError:
        raise ValueError(f"path must be a folder path; got {path!r}.") from None
    if not root.exists():
        raise FileNotFoundError(f"{dataset} folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"{dataset} path {str(root)!r} is not a folder; {hint}.")
    return root


def check_windowing(window, overlap) -> tuple[int, int]:
    """``window`` and ``overlap`` in samples, checked: ``window >= 1``, ``0 <= overlap < window``.

    Raises
    ------
    ValueError
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int (samples); got {window!r}.")
    if (isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer))
            or not 0 <= overlap < window):
        raise ValueError(f"overlap must be an int in [0, window={window}) (samples); got "
                         f"{overlap!r}.")
    return int(window), int(overlap)


def check_threshold(threshold) -> float:
    """A rating threshold as a finite float.

    Raises
    ------
    ValueError
    """
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number; got {threshold!r}.") from None
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite; got {threshold!r}.")
    return threshold


def check_positive_int(value, name: str) -> int:
    """``value`` as an int, refused unless it is a positive int (``True`` is not).

    Raises
    ------
    ValueError
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def refuse_overwrite(paths, overwrite: bool) -> None:
    """Refuse, before anything is written, to replace existing files unless ``overwrite``.

    Parameters
    ----------
    paths : iterable of pathlib.Path
        The files a writer is about to write.
    overwrite : bool
        Whether existing files may be replaced.

    Raises
    ------
    FileExistsError
        Naming the first existing files.
    """
    if overwrite:
        return
    existing = [str(path) for path in paths if path.exists()]
    if len(existing) == 1:
        raise FileExistsError(f"Refusing to overwrite {existing[0]!r}; pass overwrite=True.")
    if existing:
        raise FileExistsError(f"Refusing to overwrite {existing[:3]}"
                              f"{' ...' if len(existing) > 3 else ''}; pass overwrite=True.")
