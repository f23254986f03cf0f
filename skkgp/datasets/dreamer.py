"""The DREAMER emotion dataset: read ``DREAMER.mat`` as labelled windows.

DREAMER (Katsigiannis & Ramzan, 2018) has 23 subjects x 18 film clips recorded with a
14-channel Emotiv EPOC headset at 128 Hz, each clip preceded by a 61 s neutral
baseline, and self-assessed valence, arousal and dominance scores 1-5. The release is
one MATLAB v5 file, ``DREAMER.mat``, holding a struct ``DREAMER``:

- ``Data`` : 1 x 23 cell of 1 x 1 structs, one per subject, with ``Age``, ``Gender``,
  ``EEG`` (struct of ``baseline`` and ``stimuli``, each an 18 x 1 cell of
  (n_samples, 14) arrays), ``ECG`` (the same at 256 Hz), and ``ScoreValence``,
  ``ScoreArousal``, ``ScoreDominance`` (18 x 1);
- ``EEG_SamplingRate`` (128), ``ECG_SamplingRate`` (256), ``EEG_Electrodes``
  (1 x 14 cell of names), ``noOfSubjects``, ``noOfVideoSequences`` and text fields.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from ..layout import DREAMER_CHANNELS
from ._matfile import checked_variable, is_mat_v73, read_mat
from ._checks import (
    check_positive_int,
    check_threshold,
    check_windowing,
    clip_windows,
    refuse_overwrite,
    warn_short_clips,
)

__all__ = [
    "DREAMER_SFREQ",
    "DREAMER_SCORES",
    "DREAMER_SCORE_RANGE",
    "DREAMER_N_CLIPS",
    "DREAMER_BASELINE_SECONDS",
    "load_dreamer",
    "write_dreamer_like",
]

DREAMER_SFREQ = 128.0
DREAMER_N_CLIPS = 18
DREAMER_BASELINE_SECONDS = 61
#: The scores of each clip, 1-5, in the order of the output frame.
DREAMER_SCORES: tuple[str, ...] = ("valence", "arousal", "dominance")
#: The scale of the self-assessment scores.
DREAMER_SCORE_RANGE: tuple[int, int] = (1, 5)
_SCORE_FIELDS = {"valence": "ScoreValence", "arousal": "ScoreArousal",
                 "dominance": "ScoreDominance"}


class _Reader:
    """Walks scipy's view of the MATLAB structs, naming the path on every failure."""

    def __init__(self, file: Path):
        self.source = str(file)

    def fail(self, where: str, problem: str):
        return ValueError(f"{self.source!r}: {where} {problem}")

    def struct(self, value, where: str) -> np.void:
        """A 1 x 1 MATLAB struct."""
        if not isinstance(value, np.ndarray) or value.dtype.names is None or value.size != 1:
            raise self.fail(where, f"must be a 1 x 1 struct; got "
                                   f"{getattr(value, 'shape', type(value).__name__)}.")
        return value.reshape(-1)[0]

    def field(self, record: np.void, name: str, where: str):
        names = record.dtype.names or ()
        if name not in names:
            raise self.fail(where, f"has no field {name!r} (fields: {list(names)}).")
        return record[name]

    def cells(self, value, where: str) -> list:
        """A cell array (or struct array) as a flat list."""
        if not isinstance(value, np.ndarray) or (value.dtype != object
                                                 and value.dtype.names is None):
            raise self.fail(where, f"must be a cell array; got "
                                   f"{getattr(value, 'dtype', type(value).__name__)}.")
        return list(value.reshape(-1, order="F"))

    def numbers(self, value, where: str) -> np.ndarray:
        if (not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu"
                or value.size == 0):
            raise self.fail(where, f"must be numeric; got "
                                   f"{getattr(value, 'dtype', type(value).__name__)}.")
        return value

    def signal(self, value, where: str, n_chans: int) -> np.ndarray:
        """A (n_samples, n_chans) recording, returned as (n_chans, n_samples)."""
        # Struct paths are written bare in messages, as MATLAB indexes them.
        return checked_variable(self.numbers(value, where), source=self.source, name=where,
                                label=where, axes=("samples", "channels"),
                                sizes={"channels": n_chans},
                                why={"channels": f"DREAMER.EEG_Electrodes names {n_chans}"}).T


def _read(file: Path) -> np.void:
    if not file.is_file():
        raise FileNotFoundError(f"DREAMER file {str(file)!r} does not exist.")
    if is_mat_v73(file):
        # v7.3 keeps structs and cells as HDF5 object references; the release is v5.
        raise ValueError(f"{str(file)!r} is a MATLAB v7.3 (HDF5) file; DREAMER.mat is "
                         "released as MATLAB v5, whose structs skkgp reads: use the original "
                         "file, or re-save it in MATLAB with save(..., '-v7').")
    content = read_mat(file, what="DREAMER.mat file", variable_names=["DREAMER"])
    if "DREAMER" not in content:
        raise ValueError(f"{str(file)!r} has no 'DREAMER' variable (found {sorted(content)}).")
    return _Reader(file).struct(content["DREAMER"], "DREAMER")


def _check_args(target, threshold, window, overlap, baseline):
    if target not in DREAMER_SCORES:
        raise ValueError(f"target must be one of {DREAMER_SCORES}; got {target!r}.")
    threshold = check_threshold(threshold)
    window, overlap = check_windowing(window, overlap)
    if baseline not in ("drop", "return"):
        raise ValueError(f"baseline must be 'drop' or 'return'; got {baseline!r}.")
    return threshold, window, overlap


def load_dreamer(
    path: str | os.PathLike,
    target: str = "valence",
    threshold: float = 3.0,
    window: int = 128,
    overlap: int = 0,
    subjects: Iterable[int] | int | None = None,
    baseline: str = "drop",
    verbose: bool = False,
) -> Bunch:
    """Load ``DREAMER.mat`` as labelled windows of the stimulus EEG.

    Parameters
    ----------
    path : str or path-like
        ``DREAMER.mat``, or the folder holding it. Opened read-only; nothing in it is
        unpickled or evaluated.
    target : {"valence", "arousal", "dominance"}, default="valence"
        Score that defines the label.
    threshold : float, default=3.0
        Label is ``score >= threshold`` (1) or below (0); scores are 1-5.
    window : int, default=128
        Window length in samples (128 = 1 s). A clip shorter than ``window`` gives no
        window (a ``UserWarning`` counts such clips and names the shortest; the
        release's shortest film lasts 65 s, 8320 samples); if every clip is shorter, a
        ``ValueError`` names the longest.
    overlap : int, default=0
        Samples shared by consecutive windows, ``0 <= overlap < window``.
    subjects : int or iterable of int, default=None
        Subject numbers (1-based positions in ``DREAMER.Data``); ``None`` loads all.
    baseline : {"drop", "return"}, default="drop"
        Each clip's 61 s pre-clip baseline is not part of the windows. ``"return"``
        also returns it, once per clip, for
        :func:`~skkgp.transforms.segment_mean_features` and
        :class:`~skkgp.transforms.BaselineRemoval`, as for DEAP.
    verbose : bool, default=False
        Show a progress bar over subjects.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X`` : ndarray of float32, shape (n_windows, 14, window)
        - ``y`` : ndarray of int, shape (n_windows,), ``score >= threshold``
        - ``groups`` : ndarray of int, subject number
        - ``trials`` : ndarray of int, clip id unique across subjects,
          ``(subject - 1) * n + clip - 1`` with ``n`` the most clips of a loaded
          subject (18 in the release, where every subject has 18)
        - ``ch_names`` : list of str (the file's ``EEG_Electrodes``); ``sfreq`` : float
        - ``frame`` : DataFrame, one row per window: ``subject``, ``trial`` (clip,
          1-based), ``trial_id``, ``window``, ``start``, ``valence``, ``arousal``,
          ``dominance``
        - ``baseline`` : ndarray of float32, shape (n_clips, 14, n_baseline_samples),
          and ``baseline_index`` : ndarray of int, shape (n_windows,); only with
          ``baseline="return"``
        - ``target_name``, ``threshold``, ``DESCR``

    Raises
    ------
    FileNotFoundError
        No ``DREAMER.mat``.
    ValueError
        A corrupt, truncated or MATLAB v7.3 file, a missing field, recordings with
        another channel count, scores that do not match the clips or lie outside 1..5, values that are not
        finite, or a bad argument; each message names the file and the field.

    References
    ----------
    Katsigiannis & Ramzan (2018), "DREAMER: A database for emotion recognition
    through EEG and ECG signals from wireless low-cost off-the-shelf devices", IEEE
    Journal of Biomedical and Health Informatics 22(1).
    """
    threshold, window, overlap = _check_args(target, threshold, window, overlap, baseline)
    try:
        file = Path(os.fspath(path)).expanduser()
    except TypeError:
        raise ValueError(f"path must be a file or folder path; got {path!r}.") from None
    if file.is_dir():
        file = file / "DREAMER.mat"
    top = _read(file)
    reader = _Reader(file)
    sfreq = float(reader.numbers(reader.field(top, "EEG_SamplingRate", "DREAMER"),
                                 "DREAMER.EEG_SamplingRate").reshape(-1)[0])
    if not sfreq > 0:
        raise reader.fail("DREAMER.EEG_SamplingRate", f"must be positive; got {sfreq}.")
    names = []
    for cell in reader.cells(reader.field(top, "EEG_Electrodes", "DREAMER"),
                             "DREAMER.EEG_Electrodes"):
        text = np.asarray(cell).reshape(-1)
        if text.size != 1 or text.dtype.kind != "U":
            raise reader.fail("DREAMER.EEG_Electrodes", "must hold electrode names.")
        names.append(str(text[0]))
    n_chans = len(names)
    records = reader.cells(reader.field(top, "Data", "DREAMER"), "DREAMER.Data")
    chosen = _chosen_subjects(subjects, len(records), file)
    step = window - overlap
    short: list[tuple[str, int]] = []  # clips shorter than window: (field, samples)
    blocks, bases, columns = [], [], {key: [] for key in (
        "subject", "trial", "trial_id", "window", "start", *DREAMER_SCORES, "baseline_row")}
    subject_cells = [(subject, *_subject(reader, records, subject)) for subject in chosen]
    # Ids stay unique when subjects have different clip counts, and do not depend on
    # which subjects are loaded unless one has more than the release's 18 clips: loads
    # of different subjects can be joined. With 18 clips each they are
    # (subject - 1) * 18 + clip - 1.
    ids_per_subject = max(DREAMER_N_CLIPS,
                          *(len(stimuli) for _, _, stimuli, _, _ in subject_cells))
    for subject, where, stimuli, base, scores in tqdm(
            subject_cells, desc="DREAMER subjects", unit="subject", disable=not verbose):
        for clip, (recording, rest) in enumerate(zip(stimuli, base, strict=True), start=1):
            field = f"{where}.EEG.stimuli{{{clip}}}"
            signal = reader.signal(recording, field, n_chans)
            if signal.shape[1] < window:
                short.append((field, signal.shape[1]))
            blocks.append(clip_windows(signal, window, step).astype(np.float32))
            n = len(blocks[-1])
            if baseline == "return":
                bases.append((f"{where}.EEG.baseline{{{clip}}}",
                              reader.signal(rest, f"{where}.EEG.baseline{{{clip}}}", n_chans)))
            columns["subject"].append(np.full(n, subject))
            columns["trial"].append(np.full(n, clip))
            columns["trial_id"].append(np.full(n, (subject - 1) * ids_per_subject + clip - 1))
            columns["baseline_row"].append(np.full(n, len(bases) - 1))
            columns["window"].append(np.arange(n))
            columns["start"].append(np.arange(n) * step)
            for name in DREAMER_SCORES:
                columns[name].append(np.full(n, scores[name][clip - 1]))
    X = np.concatenate(blocks)
    if len(X) == 0:
        field, samples = max(short, key=lambda item: item[1])
        raise ValueError(f"{str(file)!r}: every clip is shorter than window={window} samples "
                         f"(the longest: {field}, {samples} samples); choose a window of at "
                         f"most {samples} samples.")
    warn_short_clips(short, len(blocks), window, "DREAMER")
    baseline_rows = np.concatenate(columns.pop("baseline_row")).astype(np.int64)
    frame = pd.DataFrame({key: np.concatenate(value) for key, value in columns.items()})
    result = Bunch(
        X=X,
        y=(frame[target].to_numpy() >= threshold).astype(np.int64),
        groups=frame["subject"].to_numpy(np.int64),
        trials=frame["trial_id"].to_numpy(np.int64),
        ch_names=names,
        sfreq=sfreq,
        frame=frame,
        target_name=target,
        threshold=threshold,
        DESCR=f"DREAMER read from {str(file)!r}.",
    )
    if baseline == "return":
        lengths = {signal.shape[1] for _, signal in bases}
        if len(lengths) > 1:
            raise ValueError(f"{str(file)!r}: the baselines have different lengths "
                             f"{sorted(lengths)}; DREAMER's are all {DREAMER_BASELINE_SECONDS} s.")
        result.baseline = np.stack([signal for _, signal in bases]).astype(np.float32)
        result.baseline_index = baseline_rows  # rows of the baselines in reading order
    return result


def _subject(reader: _Reader, records: list, subject: int):
    """The stimuli and baseline cells and the checked scores of one subject's struct."""
    where = f"DREAMER.Data({subject})"
    record = records[subject - 1]
    if not isinstance(record, np.void):  # a cell holding a 1 x 1 struct
        record = reader.struct(record, where)
    if record.dtype.names is None:
        raise reader.fail(where, "must be a struct.")
    eeg = reader.struct(reader.field(record, "EEG", where), f"{where}.EEG")
    stimuli = reader.cells(reader.field(eeg, "stimuli", f"{where}.EEG"),
                           f"{where}.EEG.stimuli")
    base = reader.cells(reader.field(eeg, "baseline", f"{where}.EEG"),
                        f"{where}.EEG.baseline")
    scores = {name: reader.numbers(reader.field(record, field, where), f"{where}.{field}"
                                   ).reshape(-1).astype(np.float64)
              for name, field in _SCORE_FIELDS.items()}
    for name, values in scores.items():
        if values.size != len(stimuli):
            raise reader.fail(f"{where}.{_SCORE_FIELDS[name]}",
                              f"has {values.size} scores for {len(stimuli)} clips.")
        if not np.isfinite(values).all():
            raise reader.fail(f"{where}.{_SCORE_FIELDS[name]}", "contains NaN or infinite "
                                                                "scores.")
        low, high = values.min(), values.max()
        if low < DREAMER_SCORE_RANGE[0] or high > DREAMER_SCORE_RANGE[1]:
            raise reader.fail(f"{where}.{_SCORE_FIELDS[name]}",
                              f"holds scores {low:g}..{high:g}; DREAMER's self-assessments "
                              f"are {DREAMER_SCORE_RANGE[0]}..{DREAMER_SCORE_RANGE[1]} (a "
                              "file on another scale would give wrong labels at the "
                              "threshold): rescale the scores to 1..5.")
    if len(base) != len(stimuli):
        raise reader.fail(f"{where}.EEG.baseline", f"has {len(base)} recordings for "
                                                   f"{len(stimuli)} clips.")
    return where, stimuli, base, scores


def _chosen_subjects(subjects, n_subjects: int, file: Path) -> list[int]:
    if subjects is None:
        if n_subjects == 0:
            raise ValueError(f"{str(file)!r}: DREAMER.Data holds no subject.")
        return list(range(1, n_subjects + 1))
    if isinstance(subjects, (int, np.integer)) and not isinstance(subjects, bool):
        subjects = [subjects]
    chosen = []
    for subject in subjects:
        if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)):
            raise ValueError(f"subjects must be subject numbers; got {subject!r}.")
        if not 1 <= subject <= n_subjects:
            raise ValueError(f"subject {subject} is not in {str(file)!r}, which holds subjects "
                             f"1..{n_subjects}.")
        chosen.append(int(subject))
    if not chosen:
        raise ValueError("subjects is empty; give subject numbers or None for all.")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"subjects lists a subject twice: {chosen}.")
    return chosen


# --- writing: a simulation in the release's layout ----------------------------------------


def _cell(arrays: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(arrays), 1), dtype=object)
    for row, array in enumerate(arrays):
        cell[row, 0] = array
    return cell


def _subject_cells(records: list[dict]) -> np.ndarray:
    # Each subject is a 1 x 1 struct in a cell: the nesting torcheeg's DREAMER reader
    # indexes (Data[0, s]["EEG"][0, 0]["stimuli"][0, 0][clip, 0]).
    out = np.empty((1, len(records)), dtype=object)
    for column, record in enumerate(records):
        struct = np.empty((1, 1), dtype=[(name, object) for name in record])
        for name, value in record.items():
            struct[0, 0][name] = value
        out[0, column] = struct
    return out


def write_dreamer_like(
    directory: str | os.PathLike,
    n_subjects: int = 2,
    random_state=None,
    *,
    n_clips: int = DREAMER_N_CLIPS,
    clip_seconds: float = 6.0,
    baseline_seconds: float = 4.0,
    overwrite: bool = False,
) -> Path:
    """Write SIMULATED EEG as ``DREAMER.mat`` in the exact layout of the release.

    The content is a simulation (1/f-like noise whose frontal alpha follows the clip's
    valence score), not real data; the struct, its fields, the cells and their shapes
    are those of the release, so that :func:`load_dreamer` is tested on a real-format
    file. Clip lengths vary by up to a second.

    Parameters
    ----------
    directory : str or path-like
        Folder to create or fill; the file is ``directory/DREAMER.mat``.
    n_subjects : int, default=2
    random_state : int or None, default=None
        Seed of the simulation.
    n_clips : int, default=18
        Clips per subject (the release: 18).
    clip_seconds : float, default=6.0
        Typical clip length (the release's films last 65-393 s).
    baseline_seconds : float, default=4.0
        Length of each baseline (the release: 61 s).
    overwrite : bool, default=False
        Replace an existing ``DREAMER.mat``; otherwise it raises ``FileExistsError``.

    Returns
    -------
    file : pathlib.Path
        The written ``DREAMER.mat``, ready for :func:`load_dreamer`.
    """
    from scipy.io import savemat
    from scipy.signal import lfilter

    from .._atomic import atomic_file

    check_positive_int(n_subjects, "n_subjects")
    check_positive_int(n_clips, "n_clips")
    for name, value in (("clip_seconds", clip_seconds), ("baseline_seconds", baseline_seconds)):
        if not np.isfinite(value) or value < 1.5:
            raise ValueError(f"{name} must be at least 1.5 s; got {value!r}.")
    root = Path(os.fspath(directory)).expanduser()
    file = root / "DREAMER.mat"
    refuse_overwrite([file], overwrite)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(random_state)
    n_chans = len(DREAMER_CHANNELS)
    frontal = np.isin(DREAMER_CHANNELS, ("AF3", "F7", "F3", "F4", "F8", "AF4"))

    def recording(seconds: float, valence: float | None, sfreq: float, channels: int):
        n = int(round(seconds * sfreq))
        noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal((channels, n)), axis=1)
        if valence is not None:
            t = np.arange(n) / sfreq
            alpha = np.sin(2 * np.pi * 10.0 * t + rng.uniform(0, 2 * np.pi))
            noise[frontal] += (valence - 1.0) * 1.5 * alpha
        return 4000.0 + noise.T  # Emotiv samples sit near 4000 uV, (samples, channels)

    subjects = []
    for _ in range(n_subjects):
        scores = {field: rng.integers(1, 6, size=(n_clips, 1)).astype(np.float64)
                  for field in _SCORE_FIELDS.values()}
        lengths = clip_seconds + rng.uniform(-0.5, 0.5, size=n_clips)
        eeg = {
            "baseline": _cell([recording(baseline_seconds, None, DREAMER_SFREQ, n_chans)
                               for _ in range(n_clips)]),
            "stimuli": _cell([recording(seconds, scores["ScoreValence"][clip, 0],
                                        DREAMER_SFREQ, n_chans)
                              for clip, seconds in enumerate(lengths)]),
        }
        ecg = {
            "baseline": _cell([recording(baseline_seconds, None, 256.0, 2)
                               for _ in range(n_clips)]),
            "stimuli": _cell([recording(seconds, None, 256.0, 2) for seconds in lengths]),
        }
        subjects.append({"Age": str(int(rng.integers(22, 34))),
                         "Gender": str(rng.choice(["male", "female"])),
                         "EEG": eeg, "ECG": ecg, **scores})
    electrodes = np.empty((1, n_chans), dtype=object)
    electrodes[0, :] = list(DREAMER_CHANNELS)
    content = {"DREAMER": {
        "Data": _subject_cells(subjects),
        "EEG_SamplingRate": float(DREAMER_SFREQ),
        "ECG_SamplingRate": 256.0,
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(n_subjects),
        "noOfVideoSequences": float(n_clips),
        "Disclaimer": "SIMULATED data written by skkgp.datasets.write_dreamer_like.",
        "Provider": "skkgp (simulation)",
        "Version": "1.0.2",
        "Acknowledgement": "Not the DREAMER recordings: a simulation in their layout.",
    }}
    with atomic_file(file) as f:  # a crash mid-write leaves no half-written DREAMER.mat
        savemat(f, content, format="5", do_compression=False)
    return file
