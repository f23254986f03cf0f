"""``mne.Epochs`` at the input door of the estimators and transformers.

:func:`eeg_input` turns an :class:`mne.Epochs` (or the list of one-epoch Epochs that
scikit-learn's cross-validation makes of it) into the arrays skkgp works on: the EEG
channels that are not marked bad, in microvolts (the unit of the public releases),
with their names, the sampling frequency and the event codes as labels. Anything else
passes through unchanged, and ``mne`` is never imported for it.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np

__all__ = ["EEGInput", "eeg_input", "is_epochs"]


class EEGInput(NamedTuple):
    """What :func:`eeg_input` returns."""

    #: (n_epochs, n_eeg_channels, n_times) float64 in microvolts, or the input unchanged.
    X: Any
    #: The labels given, or the event codes of the Epochs when none were given.
    y: Any
    #: Names of the EEG channels kept; ``None`` for array input.
    ch_names: list[str] | None
    #: Sampling frequency in Hz; ``None`` for array input.
    sfreq: float | None


def is_epochs(X) -> bool:
    """Whether ``X`` is an :class:`mne.Epochs`-like object or a list of them."""
    mne = sys.modules.get("mne")  # whoever has Epochs has imported mne
    if mne is None:
        return False
    if isinstance(X, mne.BaseEpochs):
        return True
    return (isinstance(X, (list, tuple)) and len(X) > 0
            and all(isinstance(item, mne.BaseEpochs) for item in X))


def _eeg_picks(epochs) -> tuple[np.ndarray, list[str]]:
    import mne

    from .layout import electrode_positions

    picks = mne.pick_types(epochs.info, eeg=True, exclude="bads")
    if picks.size == 0:
        types = sorted(set(epochs.get_channel_types()))
        raise ValueError(
            f"The Epochs have no EEG channel that is not marked bad (channel types {types}, "
            f"bads {epochs.info['bads']}). skkgp uses EEG channels: set their type with "
            "epochs.set_channel_types({name: 'eeg'}) or clear info['bads']."
        )
    names = [epochs.ch_names[i] for i in picks]
    unplaced = []
    for index, name in zip(picks, names, strict=True):
        location = epochs.info["chs"][index]["loc"][:3]
        if np.isfinite(location).all() and np.any(location != 0):
            continue
        try:
            electrode_positions([name])
        except ValueError:
            unplaced.append(name)
    if unplaced:
        raise ValueError(
            f"The EEG channels {unplaced} of the Epochs have no position and are not names of "
            "the standard 10-20 system, so no region or grid can place them: set a montage "
            "(epochs.set_montage(...)) or rename them to 10-20 names (e.g. 'Fp1', 'Cz')."
        )
    return picks, names


def _one(epochs) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    picks, names = _eeg_picks(epochs)
    data = epochs.get_data(picks=picks, units="uV")
    return data, epochs.events[:, 2], names, float(epochs.info["sfreq"])


def eeg_input(X, y=None) -> EEGInput:
    """Arrays, channel names and sampling frequency of ``X`` when it is Epochs.

    Parameters
    ----------
    X : mne.Epochs, list of mne.Epochs, or anything else
        Epochs (or the list of Epochs that scikit-learn's indexing makes of them) are
        converted; anything else is returned unchanged.
    y : array-like or None, default=None
        Labels; ``None`` with Epochs takes the event codes (``epochs.events[:, 2]``).

    Returns
    -------
    EEGInput
        ``X`` (n_epochs, n_chans, n_times) in microvolts, ``y``, ``ch_names``,
        ``sfreq``; for other input ``(X, y, None, None)``.

    Raises
    ------
    ValueError
        Epochs without EEG channels, EEG channels without position, or a list of Epochs
        whose channels or sampling frequencies differ.
    """
    if not is_epochs(X):
        return EEGInput(X, y, None, None)
    parts = [_one(X)] if not isinstance(X, (list, tuple)) else [_one(item) for item in X]
    _, _, names, sfreq = parts[0]
    for _, _, other_names, other_sfreq in parts[1:]:
        if other_names != names or other_sfreq != sfreq:
            raise ValueError(
                "The Epochs of the list differ: channels "
                f"{names} at {sfreq} Hz and {other_names} at {other_sfreq} Hz."
            )
    data = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    if y is None:
        y = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return EEGInput(data, y, names, sfreq)
