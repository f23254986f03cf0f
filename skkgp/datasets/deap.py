"""The DEAP dataset: read the preprocessed release and cut it into labelled windows.

DEAP (Koelstra et al., 2012) has 32 subjects x 40 one-minute music-video trials,
downsampled to 128 Hz: 32 EEG and 8 peripheral channels, a 3 s pre-trial baseline plus
60 s of stimulus (8064 samples), and self-assessed ratings 1-9 of valence, arousal,
dominance and liking. The preprocessed release comes as Python pickles
(``data_preprocessed_python/sXX.dat``) and as MATLAB files
(``data_preprocessed_matlab/sXX.mat``); both hold ``data`` (40, 40, 8064) and
``labels`` (40, 4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from ..layout import DEAP_CHANNELS
from ._matfile import checked_variable, read_mat
from ._safe_pickle import UnsafePickleError, load_arrays
from ._checks import check_samples, check_threshold, check_windowing, existing_folder

__all__ = [
    "DEAP_SFREQ",
    "DEAP_BASELINE_SAMPLES",
    "DEAP_N_TRIALS",
    "DEAP_TRIAL_SAMPLES",
    "DEAP_PERIPHERAL_CHANNELS",
    "DEAP_RATING_RANGE",
    "RATINGS",
    "load_deap",
]

DEAP_SFREQ = 128.0
DEAP_BASELINE_SAMPLES = 384  # 3 s pre-trial baseline
DEAP_N_TRIALS = 40
DEAP_TRIAL_SAMPLES = 8064  # 3 s baseline + 60 s stimulus
DEAP_PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration belt", "Plethysmograph", "Temperature",
)  # fmt: skip
RATINGS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
#: The scale of the self-assessment ratings.
DEAP_RATING_RANGE: tuple[int, int] = (1, 9)

#: The release's folder and file suffix of each format, shared with the simulator's writer.
FOLDERS = {"python": "data_preprocessed_python", "matlab": "data_preprocessed_matlab"}
SUFFIXES = {"python": ".dat", "matlab": ".mat"}
_SUBJECT_FILE = re.compile(r"^s(\d{2})\.(dat|mat)$")


# --- argument checks shared with the simulator ---------------------------------------------


def check_window_args(window, overlap, target, threshold, baseline, eeg_only):
    """Validate the windowing arguments of :func:`load_deap` and the simulator."""
    window, overlap = check_windowing(window, overlap)
    if target not in RATINGS:
        raise ValueError(f"target must be one of {RATINGS}; got {target!r}.")
    threshold = check_threshold(threshold)
    if baseline not in ("drop", "return"):
        raise ValueError(f"baseline must be 'drop' or 'return'; got {baseline!r}.")
    if eeg_only not in (True, False):
        raise ValueError(f"eeg_only must be a bool; got {eeg_only!r}.")
    return window, overlap, threshold


def _n_windows(n_stimulus: int, window: int, step: int) -> int:
    return 0 if n_stimulus < window else (n_stimulus - window) // step + 1


# --- windowing: one subject's trials -> rows of the output ----------------------------------


class _WindowAssembler:
    """Fills preallocated float32 outputs subject by subject (no float64 copy of all)."""

    def __init__(self, *, n_subjects, n_trials, n_chans, n_samples, window, overlap,
                 baseline_samples, target, threshold, baseline, ch_names, sfreq, source):
        self.window, self.step = window, window - overlap
        self.baseline_samples = baseline_samples
        self.n_trials, self.n_chans, self.n_samples = n_trials, n_chans, n_samples
        self.per_trial = _n_windows(n_samples - baseline_samples, window, self.step)
        if self.per_trial == 0:
            raise ValueError(f"{source}: trials have {n_samples - baseline_samples} samples "
                             f"after the {baseline_samples}-sample baseline, fewer than "
                             f"window={window}.")
        self.target, self.threshold, self.baseline = target, threshold, baseline
        self.ch_names, self.sfreq = list(ch_names), sfreq
        n_rows = n_subjects * n_trials * self.per_trial
        self.X = np.empty((n_rows, n_chans, window), dtype=np.float32)
        self.base = (np.empty((n_subjects * n_trials, n_chans, baseline_samples), np.float32)
                     if baseline == "return" else None)
        self.meta: list[dict[str, np.ndarray]] = []
        self.filled = 0

    def add(self, subject: int, data: np.ndarray, labels: np.ndarray, source: str) -> None:
        if (data.shape[0] != self.n_trials or data.shape[1] < self.n_chans
                or data.shape[2] != self.n_samples):
            raise ValueError(f"{source}: data has shape {data.shape}, expected "
                             f"({self.n_trials}, {self.n_chans}, {self.n_samples}) like the "
                             "first subject.")
        data = data[:, : self.n_chans]
        stimulus = data[:, :, self.baseline_samples:]
        views = np.lib.stride_tricks.sliding_window_view(stimulus, self.window, axis=-1)
        views = views[:, :, :: self.step][:, :, : self.per_trial]  # (trials, C, W, window)
        rows = slice(self.filled, self.filled + self.n_trials * self.per_trial)
        target = self.X[rows].reshape(self.n_trials, self.per_trial, self.n_chans, self.window)
        np.copyto(target, views.transpose(0, 2, 1, 3), casting="same_kind")
        subject_index = len(self.meta)
        if self.base is not None:
            start = subject_index * self.n_trials
            self.base[start:start + self.n_trials] = data[:, :, : self.baseline_samples]
        trial = np.repeat(np.arange(1, self.n_trials + 1), self.per_trial)
        window_index = np.tile(np.arange(self.per_trial), self.n_trials)
        meta = {
            "subject": np.full(trial.size, subject),
            "trial": trial,
            "trial_id": (subject - 1) * self.n_trials + trial - 1,
            "window": window_index,
            "start": self.baseline_samples + window_index * self.step,
            "baseline_index": subject_index * self.n_trials + trial - 1,
        }
        for column, name in enumerate(RATINGS):
            meta[name] = np.repeat(labels[:, column].astype(np.float64), self.per_trial)
        self.meta.append(meta)
        self.filled = rows.stop

    def bunch(self, description: str) -> Bunch:
        columns = {key: np.concatenate([m[key] for m in self.meta]) for key in self.meta[0]}
        frame = pd.DataFrame({key: columns[key] for key in
                              ("subject", "trial", "trial_id", "window", "start", *RATINGS)})
        result = Bunch(
            X=self.X[: self.filled],
            y=(columns[self.target] >= self.threshold).astype(np.int64),
            groups=columns["subject"].astype(np.int64),
            trials=columns["trial_id"].astype(np.int64),
            ch_names=self.ch_names,
            sfreq=float(self.sfreq),
            frame=frame,
            target_name=self.target,
            threshold=self.threshold,
            DESCR=description,
        )
        if self.base is not None:
            result.baseline = self.base[: len(self.meta) * self.n_trials]
            result.baseline_index = columns["baseline_index"].astype(np.int64)
        return result


def assemble(subjects: Iterator[tuple[int, np.ndarray, np.ndarray, str]], n_subjects: int, *,
              window, overlap, target, threshold, baseline, eeg_only, baseline_samples,
              sfreq, description, verbose, desc) -> Bunch:
    """Window every subject yielded by ``subjects`` into one Bunch."""
    assembler = None
    for subject, data, labels, source in tqdm(subjects, total=n_subjects, desc=desc,
                                              unit="subject", disable=not verbose):
        if assembler is None:
            n_chans = len(DEAP_CHANNELS) if eeg_only else data.shape[1]
            ch_names = (DEAP_CHANNELS + DEAP_PERIPHERAL_CHANNELS)[:n_chans]
            if n_chans > len(ch_names):
                ch_names = ch_names + tuple(f"ch{i}" for i in range(len(ch_names), n_chans))
            assembler = _WindowAssembler(
                n_subjects=n_subjects, n_trials=data.shape[0], n_chans=n_chans,
                n_samples=data.shape[2], window=window, overlap=overlap,
                baseline_samples=baseline_samples, target=target, threshold=threshold,
                baseline=baseline, ch_names=ch_names, sfreq=sfreq, source=source)
        assembler.add(subject, data, labels, source)
    if assembler is None:
        raise ValueError("No subject to load.")
    return assembler.bunch(description)


# --- the release on disk -----------------------------------------------------------------


def _resolve_release(path, fmt: str | None) -> tuple[Path, str]:
    """The folder holding the sXX files, and its format."""
    if fmt not in (None, "python", "matlab"):
        raise ValueError(f"format must be None, 'python' or 'matlab'; got {fmt!r}.")
    root = existing_folder(path, dataset="DEAP", hint="give the release root or its "
                           "data_preprocessed_python/_matlab folder")
    candidates = [fmt] if fmt else ["python", "matlab"]
    folders = [(root / FOLDERS[kind], kind) for kind in candidates
               if (root / FOLDERS[kind]).is_dir()]
    for folder, kind in folders:  # the release root: prefer a folder that has subjects
        if any(folder.glob(f"s[0-9][0-9]{SUFFIXES[kind]}")):
            return folder, kind
    if folders:
        return folders[0]
    for kind in candidates:  # the data_preprocessed_* folder itself
        if root.name == FOLDERS[kind] or any(root.glob(f"s[0-9][0-9]{SUFFIXES[kind]}")):
            return root, kind
    wanted = " or ".join(FOLDERS[k] for k in candidates)
    raise FileNotFoundError(f"{str(root)!r} holds no {wanted} folder and no sXX"
                            f"{'/'.join(SUFFIXES[k] for k in candidates)} files.")


def _subject_files(folder: Path, kind: str, subjects) -> list[tuple[int, Path]]:
    suffix = SUFFIXES[kind]
    if subjects is None:
        found = sorted((int(m.group(1)), folder / name) for name in os.listdir(folder)
                       if (m := _SUBJECT_FILE.match(name)) and name.endswith(suffix))
        if not found:
            raise FileNotFoundError(f"No sXX{suffix} subject files in {str(folder)!r}.")
        return found
    if isinstance(subjects, (int, np.integer)):
        subjects = [subjects]
    chosen = []
    for subject in subjects:
        if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)) or not (
                1 <= subject <= 99):
            raise ValueError(f"subjects must be subject numbers 1..99 (s01 is 1); got "
                             f"{subject!r}.")
        file = folder / f"s{int(subject):02d}{suffix}"
        if not file.is_file():
            raise FileNotFoundError(f"DEAP subject file {str(file)!r} does not exist.")
        chosen.append((int(subject), file))
    if not chosen:
        raise ValueError("subjects is empty; give subject numbers or None for all.")
    if len({s for s, _ in chosen}) != len(chosen):
        raise ValueError(f"subjects lists a subject twice: {list(subjects)}.")
    return chosen


def _read_python(file: Path) -> dict:
    with open(file, "rb") as f:  # read-only: loading never touches the release
        try:
            # encoding="bytes" hands Python 2 strings (the 100 MB array buffers) to numpy
            # as they are; "latin1" gives the same arrays after a decode/encode round
            # trip that costs a third of the load time. Only the keys need decoding.
            content = load_arrays(f, source=str(file), encoding="bytes")
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated or corrupt: EOFError, UnpicklingError, ...
            raise ValueError(f"{str(file)!r} is not a readable DEAP pickle "
                             f"({type(exc).__name__}: {exc}); is it truncated?") from exc
    if isinstance(content, dict):
        content = {k.decode("latin1") if isinstance(k, bytes) else k: v
                   for k, v in content.items()}
    return content


def _read_matlab(file: Path) -> dict:
    return read_mat(file, what="DEAP .mat file", variable_names=("data", "labels"))


def _read_subject(file: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    content = _read_python(file) if kind == "python" else _read_matlab(file)
    if not isinstance(content, dict):
        raise ValueError(f"{str(file)!r} holds a {type(content).__name__}, not DEAP's dict with "
                         "'data' and 'labels'.")
    for key in ("data", "labels"):
        if key not in content:
            raise ValueError(f"{str(file)!r} has no {key!r} entry (found "
                             f"{sorted(k for k in content if not str(k).startswith('__'))}).")
    source = str(file)
    # The samples are checked as they are windowed: only the channels that are kept.
    data = checked_variable(content["data"], source=source, name="data",
                            axes=("trials", "channels", "samples"), values="unchecked")
    layout = (f"DEAP's layout is (trials, channels, samples), ({DEAP_N_TRIALS}, "
              f"{len(DEAP_CHANNELS) + len(DEAP_PERIPHERAL_CHANNELS)}, {DEAP_TRIAL_SAMPLES}) in "
              "the release")
    if data.shape[1] > data.shape[2]:
        raise ValueError(f"{source!r}: 'data' has shape {data.shape}, more channels than "
                         f"samples; {layout}. Saved as (trials, samples, channels)? Save "
                         "data.transpose(0, 2, 1).")
    if data.shape[2] <= DEAP_BASELINE_SAMPLES:
        raise ValueError(f"{source!r}: 'data' has shape {data.shape}: {data.shape[2]} samples "
                         f"per trial, none after the {DEAP_BASELINE_SAMPLES}-sample (3 s) "
                         f"pre-trial baseline; {layout}.")
    if data.shape[1] < len(DEAP_CHANNELS):
        raise ValueError(f"{source!r}: 'data' has {data.shape[1]} channels; DEAP files have "
                         f"{len(DEAP_CHANNELS)} EEG channels first.")
    labels = checked_variable(
        content["labels"], source=source, name="labels", axes=("trials", "ratings"),
        sizes={"trials": data.shape[0], "ratings": len(RATINGS)}, values="finite",
        why=dict.fromkeys(("trials", "ratings"), f"'labels' must be one row of the "
                          f"{len(RATINGS)} ratings ({', '.join(RATINGS)}) per trial of 'data'"))
    low, high = float(labels.min()), float(labels.max())
    if low < DEAP_RATING_RANGE[0] or high > DEAP_RATING_RANGE[1]:
        outside = (labels < DEAP_RATING_RANGE[0]) | (labels > DEAP_RATING_RANGE[1])
        columns = [name for name, bad in zip(RATINGS, outside.any(axis=0), strict=True) if bad]
        raise ValueError(f"{source!r}: 'labels' holds ratings {low:g}..{high:g} (outside in "
                         f"{', '.join(columns)}); DEAP's "
                         f"self-assessments are {DEAP_RATING_RANGE[0]}..{DEAP_RATING_RANGE[1]} "
                         "(a file on another scale, such as 0-based or x10, would give wrong "
                         "labels at the threshold): rescale the ratings to 1..9.")
    return data, labels


def _iter_files(files: Sequence[tuple[int, Path]], kind: str, eeg_only: bool,
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray, str]]:
    for subject, file in files:
        data, labels = _read_subject(file, kind)
        check_samples(data[:, : len(DEAP_CHANNELS) if eeg_only else None], source=str(file),
                      name="data")
        yield subject, data, labels, str(file)


def load_deap(
    path: str | os.PathLike,
    target: str = "valence",
    threshold: float = 5.0,
    window: int = 128,
    overlap: int = 0,
    subjects: Iterable[int] | int | None = None,
    baseline: str = "drop",
    eeg_only: bool = True,
    format: str | None = None,
    verbose: bool = False,
) -> Bunch:
    """Load the preprocessed DEAP release as labelled windows.

    Parameters
    ----------
    path : str or path-like
        The release root (holding ``data_preprocessed_python`` or
        ``data_preprocessed_matlab``) or one of those folders. Files are opened
        read-only and never modified.
    target : {"valence", "arousal", "dominance", "liking"}, default="valence"
        Rating that defines the label.
    threshold : float, default=5.0
        Label is ``rating >= threshold`` (1) or below (0).
    window : int, default=128
        Window length in samples (128 = 1 s).
    overlap : int, default=0
        Samples shared by consecutive windows, ``0 <= overlap < window``.
    subjects : int or iterable of int, default=None
        Subject numbers to load (1 = ``s01``); ``None`` loads every ``sXX`` file found.
    baseline : {"drop", "return"}, default="drop"
        The 3 s pre-trial baseline (384 samples) is cut off the trials. ``"return"``
        also returns it, once per trial, for :class:`skkgp.transforms.BaselineRemoval`.
    eeg_only : bool, default=True
        Keep the 32 EEG channels only; ``False`` keeps the 8 peripheral channels too.
    format : {None, "python", "matlab"}, default=None
        Which release to read; ``None`` prefers the Python pickles when both exist.
        MATLAB files may be v5 (as released) or v7.3 (HDF5, read with h5py).
    verbose : bool, default=False
        Show a progress bar over subjects.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X`` : ndarray of float32, shape (n_windows, n_chans, window)
        - ``y`` : ndarray of int, shape (n_windows,), ``rating >= threshold``
        - ``groups`` : ndarray of int, shape (n_windows,), subject number
        - ``trials`` : ndarray of int, shape (n_windows,), trial id unique across
          subjects, ``(subject - 1) * 40 + trial - 1``
        - ``ch_names`` : list of str; ``sfreq`` : float (128.0)
        - ``frame`` : DataFrame, one row per window: ``subject``, ``trial`` (1..40),
          ``trial_id``, ``window`` (index in the trial), ``start`` (first sample in the
          8064-sample recording), ``valence``, ``arousal``, ``dominance``, ``liking``
        - ``baseline`` : ndarray of float32, shape (n_trials, n_chans, 384), and
          ``baseline_index`` : ndarray of int, shape (n_windows,), row of ``baseline``
          for each window; only with ``baseline="return"``
        - ``target_name``, ``threshold``, ``DESCR``

    Raises
    ------
    FileNotFoundError
        Missing folder or subject file.
    ValueError
        Truncated or corrupt file, a file without ``data``/``labels``, ratings outside
        1..9, samples that are not finite or beyond float32's range, a pickle that names anything but numpy
        arrays (it is refused before any code could run), or a bad argument.

    Notes
    -----
    The whole of DEAP in 1 s windows is 76,800 x 32 x 128 float32 values (1.26 GB);
    subjects are read one at a time and cut straight into that array.

    References
    ----------
    Koelstra et al. (2012), "DEAP: A database for emotion analysis using physiological
    signals", IEEE Transactions on Affective Computing 3(1).

    Examples
    --------
    >>> from skkgp.datasets import load_deap, write_deap_like
    >>> root = write_deap_like(tmp_path, n_subjects=1)  # doctest: +SKIP
    >>> load_deap(root).X.shape  # doctest: +SKIP
    (2400, 32, 128)
    """
    window, overlap, threshold = check_window_args(window, overlap, target, threshold,
                                                    baseline, eeg_only)
    folder, kind = _resolve_release(path, format)
    files = _subject_files(folder, kind, subjects)
    return assemble(
        _iter_files(files, kind, eeg_only), len(files), window=window, overlap=overlap,
        target=target, threshold=threshold, baseline=baseline, eeg_only=eeg_only,
        baseline_samples=DEAP_BASELINE_SAMPLES, sfreq=DEAP_SFREQ,
        description=f"DEAP preprocessed release ({kind}) read from {str(folder)!r}.",
        verbose=verbose, desc="DEAP subjects",
    )
