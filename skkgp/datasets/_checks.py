"""Checks shared by the dataset loaders and writers: samples that float32 windows can hold,
arguments, files a writer must not overwrite, and the windows of one clip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["check_positive_int", "check_samples", "check_threshold", "check_windowing",
           "clip_windows", "existing_folder", "refuse_overwrite", "warn_short_clips"]

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


def clip_windows(signal: np.ndarray, window: int, step: int) -> np.ndarray:
    """The windows of one clip, shape (n_windows, n_chans, window), as a view.

    A clip shorter than ``window`` gives no window (an empty block) instead of numpy's
    "window shape cannot be larger than input array shape".

    Parameters
    ----------
    signal : ndarray, shape (n_chans, n_samples)
    window, step : int
        Window length and the samples between window starts.

    Returns
    -------
    windows : ndarray, shape (n_windows, n_chans, window)
        ``n_windows = (n_samples - window) // step + 1``, or 0 for a short clip.
    """
    n_samples = signal.shape[-1]
    if n_samples < window:
        return np.empty((0, signal.shape[0], window), dtype=signal.dtype)
    n = (n_samples - window) // step + 1
    views = np.lib.stride_tricks.sliding_window_view(signal, window, axis=-1)[:, ::step][:, :n]
    return views.transpose(1, 0, 2)


def warn_short_clips(short: list[tuple[str, int]], n_clips: int, window: int,
                     dataset: str) -> None:
    """Warn that clips shorter than ``window`` were left out.

    Parameters
    ----------
    short : list of (str, int)
        Where each short clip is (file and variable or field) and its samples.
    n_clips : int
        Clips read in all.
    window : int
    dataset : str
        The dataset's name, for the message.
    """
    if not short or len(short) == n_clips:
        return  # all short: the loader raises instead
    import warnings

    where, samples = min(short, key=lambda item: item[1])
    warnings.warn(f"{len(short)} of {n_clips} {dataset} clips are shorter than window={window} "
                  f"samples and give no window (the shortest: {where}, {samples} samples).",
                  UserWarning, stacklevel=3)


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
