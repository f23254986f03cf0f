"""EEG from MNE and MOABB: :class:`mne.Epochs` and MOABB datasets as the loaders' Bunch.

:func:`from_epochs` turns epochs into the Bunch :func:`~skkgp.datasets.load_deap`
returns; :func:`load_moabb` runs a MOABB paradigm on a MOABB dataset and does the same.
The estimators and transformers also take :class:`mne.Epochs` directly as ``X``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from .._input import eeg_input

__all__ = ["from_epochs", "load_moabb"]

#: Frame columns from_epochs makes itself; metadata columns of these names are refused.
_OWN_COLUMNS = ("trial", "event")


def from_epochs(epochs, y=None, groups=None) -> Bunch:
    """The EEG of :class:`mne.Epochs` as the Bunch of the dataset loaders.

    Parameters
    ----------
    epochs : mne.Epochs
        Epochs with EEG channels that have positions (a montage) or standard 10-20
        names. Channels marked bad and channels of other types are left out.
    y : array-like of shape (n_epochs,), default=None
        Labels; ``None`` takes the event codes (``epochs.events[:, 2]``).
    groups : array-like of shape (n_epochs,), default=None
        Subject of each epoch; ``None`` takes the ``subject`` column of
        ``epochs.metadata`` when there is one, else 1 for all. Given groups that
        differ from that column are used, with a warning.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X`` : ndarray of float32, shape (n_epochs, n_eeg_chans, n_times), in
          microvolts (the unit of the public releases)
        - ``y`` : ndarray, shape (n_epochs,)
        - ``groups`` : ndarray, subject of each epoch; ``trials`` : ndarray of int, the
          epoch's index (each epoch is its own trial)
        - ``sessions`` : ndarray, only when the metadata have a ``session`` column
        - ``ch_names`` : list of str; ``sfreq`` : float
        - ``frame`` : DataFrame, one row per epoch: ``subject`` (``groups``),
          ``trial`` (the epoch's index), ``event`` (the event code) and the other
          columns of ``epochs.metadata``
        - ``DESCR``

    Raises
    ------
    ValueError
        Not an Epochs object, no EEG channel, EEG channels without position,
        ``y``/``groups`` of another length, or metadata with a ``trial`` or ``event``
        column (the frame's own; rename it first).

    Examples
    --------
    >>> data = from_epochs(epochs)  # doctest: +SKIP
    >>> cross_val_score(pipeline, data.X, data.y, groups=data.groups,
    ...                 cv=GroupKFold(3))  # doctest: +SKIP
    """
    import mne

    if not isinstance(epochs, mne.BaseEpochs):
        raise ValueError(f"epochs must be an mne.Epochs; got {type(epochs).__name__}.")
    X, labels, ch_names, sfreq = eeg_input(epochs, y)
    n = len(X)
    metadata = epochs.metadata
    given_groups = groups is not None
    if groups is None:
        groups = (metadata["subject"].to_numpy() if metadata is not None
                  and "subject" in metadata else np.ones(n, dtype=np.int64))
    labels, groups = np.asarray(labels), np.asarray(groups)
    for name, values in (("y", labels), ("groups", groups)):
        if values.shape != (n,):
            raise ValueError(f"{name} must have one entry per epoch ({n}); got shape "
                             f"{values.shape}.")
    frame = pd.DataFrame({"subject": groups, "trial": np.arange(n),
                          "event": epochs.events[:, 2]})
    if metadata is not None:
        # The metadata's subject column is the frame's (or gives way to groups); any
        # other name the frame already has would become a second column of that name.
        clashing = [name for name in metadata.columns if name in _OWN_COLUMNS]
        if clashing:
            renames = ", ".join(f"{name!r}: 'epoch_{name}'" for name in clashing)
            raise ValueError(f"epochs.metadata has columns {clashing}, which from_epochs "
                             f"writes itself ({', '.join(_OWN_COLUMNS)}); rename them first, "
                             f"e.g. epochs.metadata = epochs.metadata.rename(columns="
                             f"{{{renames}}}).")
        if given_groups and "subject" in metadata:
            differ = int(np.sum(metadata["subject"].to_numpy() != groups))
            if differ:
                warnings.warn(
                    f"groups differs from epochs.metadata['subject'] at {differ} of {n} "
                    "epochs; the subjects are taken from groups (the metadata's column is "
                    "left out of the frame).", UserWarning, stacklevel=2,
                )
        extra = metadata.reset_index(drop=True).drop(columns=["subject"], errors="ignore")
        frame = pd.concat([frame, extra], axis=1)
    result = Bunch(
        X=np.asarray(X, dtype=np.float32),
        y=labels,
        groups=groups,
        trials=np.arange(n, dtype=np.int64),
        ch_names=list(ch_names),
        sfreq=float(sfreq),
        frame=frame,
        DESCR=f"{n} epochs of {len(ch_names)} EEG channels at {sfreq:g} Hz from mne.Epochs.",
    )
    if "session" in frame:
        result.sessions = frame["session"].to_numpy()
    return result


def _paradigm_for(dataset) -> Any:
    from moabb import paradigms

    kind = getattr(dataset, "paradigm", None)
    n_classes = len(getattr(dataset, "event_id", {}) or {})
    if kind == "imagery":
        return paradigms.MotorImagery(n_classes=n_classes or None)
    if kind == "p300":
        return paradigms.P300()
    if kind == "ssvep":
        return paradigms.SSVEP(n_classes=n_classes or None)
    raise ValueError(f"No default MOABB paradigm for {type(dataset).__name__} (paradigm "
                     f"{kind!r}); pass paradigm=, e.g. moabb.paradigms.MotorImagery().")


def load_moabb(dataset, paradigm=None, subjects: Iterable[int] | None = None) -> Bunch:
    """A MOABB dataset, through a MOABB paradigm, as the Bunch of the dataset loaders.

    MOABB downloads the dataset's files on first use (into ``MNE_DATA`` or MOABB's
    configured folder); :class:`moabb.datasets.fake.FakeDataset` needs no download.

    Parameters
    ----------
    dataset : moabb dataset or str
        A MOABB dataset object, or the name of a class of :mod:`moabb.datasets`
        (``"BNCI2014_001"``).
    paradigm : moabb paradigm, default=None
        How epochs are cut and filtered; ``None`` picks the dataset's own paradigm
        (``MotorImagery`` with all its classes for motor imagery, ``P300``, ``SSVEP``).
    subjects : iterable of int, default=None
        Subjects to load; ``None`` loads ``dataset.subject_list``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`from_epochs`, with ``y`` the paradigm's labels (event names),
        ``groups`` the subject, and ``sessions`` and the ``session``/``run`` columns of
        ``frame`` from MOABB's metadata.

    Raises
    ------
    ValueError
        An unknown dataset name, a dataset without a default paradigm, or subjects
        that the dataset does not have.

    Notes
    -----
    For motor imagery the knowledge region is the motor strip: ``region="central"``
    (or ``region=["C3", "Cz", "C4"]``) in :class:`~skkgp.KnowledgeGuidedPruner`.
    """
    import moabb.datasets

    if isinstance(dataset, str):
        cls = getattr(moabb.datasets, dataset, None)
        if not isinstance(cls, type):
            raise ValueError(f"Unknown MOABB dataset {dataset!r}; give a moabb.datasets class "
                             "name such as 'BNCI2014_001' or a dataset object.")
        dataset = cls()
    if paradigm is None:
        paradigm = _paradigm_for(dataset)
    available = list(dataset.subject_list)
    subjects = available if subjects is None else [int(s) for s in subjects]
    unknown = [s for s in subjects if s not in available]
    if unknown or not subjects:
        raise ValueError(f"subjects {unknown or subjects} are not in {type(dataset).__name__}, "
                         f"whose subjects are {available}.")
    epochs, labels, metadata = paradigm.get_data(dataset, subjects=subjects,
                                                 return_epochs=True)
    epochs.metadata = metadata.reset_index(drop=True)
    result = from_epochs(epochs, y=np.asarray(labels), groups=metadata["subject"].to_numpy())
    result.DESCR = (f"{type(dataset).__name__} through {type(paradigm).__name__}: "
                    f"{result.DESCR}")
    return result
