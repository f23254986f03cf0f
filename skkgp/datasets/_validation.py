"""Checks shared by the dataset loaders: samples that float32 windows can hold."""

from __future__ import annotations

import numpy as np

__all__ = ["check_samples"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_samples(values: np.ndarray, *, source: str, name: str) -> None:
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
    if max(-low, high) > _FLOAT32_MAX:
        raise ValueError(f"{source!r}: {name!r} holds values beyond float32's range "
                         f"(up to {max(-low, high):.3g}); the file is corrupt.")
