"""The SEED and SEED-IV emotion datasets: read the official releases as labelled windows.

SEED (Zheng & Lu, 2015) has 15 subjects x 3 sessions x 15 film clips (positive,
neutral, negative), 62 channels of a Neuroscan cap, downsampled to 200 Hz. SEED-IV
(Zheng et al., 2019) has 15 subjects x 3 sessions x 24 clips (neutral, sad, fear,
happy) with the same cap. Each release comes as raw EEG and as extracted features:

========  ==========================================  ====================================
release   raw EEG                                     differential entropy (DE)
========  ==========================================  ====================================
SEED      ``Preprocessed_EEG/<subject>_<date>.mat``,  ``ExtractedFeatures/<subject>_<date>
          variables ``<initials>_eeg1`` ..            .mat``, ``de_LDS1`` .. ``de_LDS15``
          ``_eeg15`` (62, n_samples); labels in       (62, n_windows, 5), 1 s windows;
          ``label.mat`` (``label``, 1 x 15: -1/0/1)   ``label.mat`` beside them
SEED-IV   ``eeg_raw_data/<session>/<subject>_<date>   ``eeg_feature_smooth/<session>/...``,
          .mat``, ``<initials>_eeg1`` .. ``_eeg24``   ``de_LDS1`` .. ``de_LDS24``, 4 s windows
========  ==========================================  ====================================

SEED-IV has no label file: its labels are those of the release's ReadMe
(:data:`SEED_IV_LABELS`). SEED's session of a file is its rank by date among the
subject's files; SEED-IV's is its folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from ..layout import SEED_CHANNELS
from ._matfile import MAT_FORMATS, checked_variable, read_mat, write_mat
from ._checks import (
    check_windowing,
    clip_windows,
    existing_folder,
    refuse_overwrite,
    warn_short_clips,
)

__all__ = [
    "SEED_SFREQ",
    "SEED_LABELS",
    "SEED_IV_LABELS",
    "SEED_DE_BANDS",
    "SEED_VERSIONS",
    "load_seed",
    "write_seed_like",
]

SEED_SFREQ = 200.0
#: Emotion of SEED's 15 clips (1 positive, 0 neutral, -1 negative), as in ``label.mat``.
SEED_LABELS: tuple[int, ...] = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)
#: Emotion of SEED-IV's 24 clips per session (0 neutral, 1 sad, 2 fear, 3 happy),
#: from the release's ReadMe.
SEED_IV_LABELS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
)  # fmt: skip
#: The five bands of the released DE features, in Hz.
SEED_DE_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 14.0), "beta": (14.0, 31.0),
    "gamma": (31.0, 50.0),
}  # fmt: skip
SEED_VERSIONS: tuple[str, ...] = ("seed", "seed-iv")

_FOLDERS = {
    ("seed", "raw"): "Preprocessed_EEG", ("seed", "de"): "ExtractedFeatures",
    ("seed-iv", "raw"): "eeg_raw_data", ("seed-iv", "de"): "eeg_feature_smooth",
}  # fmt: skip
_N_CLIPS = {"seed": 15, "seed-iv": 24}
_N_SESSIONS = 3
_DE_SECONDS = {"seed": 1, "seed-iv": 4}  # window of the released DE features
_SMOOTHING = ("LDS", "movingAve")
_SUBJECT_FILE = re.compile(r"^(\d+)_(\d+)\.mat$")
_RAW_CLIP = re.compile(r"^[A-Za-z0-9]+_eeg(\d+)$")
_NAME = {"seed": "SEED", "seed-iv": "SEED-IV"}


# --- arguments -----------------------------------------------------------------------------


def _check_args(features, version, window, overlap, smoothing):
    if version not in SEED_VERSIONS:
        raise ValueError(f"version must be one of {SEED_VERSIONS}; got {version!r}.")
    if features not in ("raw", "de"):
        raise ValueError(f"features must be 'raw' (the EEG) or 'de' (the released differential "
                         f"entropy); got {features!r}.")
    if smoothing not in _SMOOTHING:
        raise ValueError(f"smoothing must be one of {_SMOOTHING}; got {smoothing!r}.")
    return check_windowing(window, overlap)


def _numbers(values, name: str, upper: int) -> list[int] | None:
    if values is None:
        return None
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                1 <= value <= upper):
            raise ValueError(f"{name} must be numbers 1..{upper}; got {value!r}.")
        out.append(int(value))
    if not out:
        raise ValueError(f"{name} is empty; give numbers or None for all.")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a number twice: {out}.")
    return out


# --- the release on disk -------------------------------------------------------------------


def _resolve_folder(path, version: str, features: str) -> Path:
    name = _FOLDERS[(version, features)]
    root = existing_folder(path, dataset=_NAME[version],
                           hint=f"give the release root or its {name} folder")
    if (root / name).is_dir():
        return root / name
    if root.name == name:
        return root
    if version == "seed" and any(_SUBJECT_FILE.match(f) for f in os.listdir(root)):
        return root
    if version == "seed-iv" and any((root / str(s)).is_dir() for s in (1, 2, 3)):
        return root
    raise FileNotFoundError(f"{str(root)!r} holds no {name} folder (the {_NAME[version]} "
                            f"{features} release) and no <subject>_<date>.mat files.")


def _scan(folder: Path, label_file: str | None) -> dict[int, list[tuple[str, Path]]]:
    """Subject -> [(date, file)] of one folder; unexpected .mat files are refused."""
    found: dict[int, list[tuple[str, Path]]] = {}
    unexpected = []
    for name in sorted(os.listdir(folder)):
        match = _SUBJECT_FILE.match(name)
        if match:
            found.setdefault(int(match.group(1)), []).append((match.group(2), folder / name))
        elif name.lower().endswith(".mat") and name != label_file:
            unexpected.append(name)
    if unexpected:
        raise ValueError(f"{str(folder)!r} holds .mat files that are not <subject>_<date>.mat "
                         f"recordings: {unexpected}; move them out of the release folder.")
    return found


def _session_files(folder: Path, version: str, subjects, sessions
                   ) -> list[tuple[int, int, str, Path]]:
    """(subject, session, date, file) of every recording to read, in order."""
    chosen = []
    if version == "seed":
        found = _scan(folder, "label.mat")
        for subject, files in found.items():
            if len(files) > _N_SESSIONS:
                raise ValueError(f"SEED subject {subject} has {len(files)} files in "
                                 f"{str(folder)!r} ({[f.name for _, f in files]}); SEED has "
                                 f"{_N_SESSIONS} sessions per subject: remove the extra files.")
            for session, (date, file) in enumerate(sorted(files), start=1):
                chosen.append((subject, session, date, file))
    else:
        for session in sessions or range(1, _N_SESSIONS + 1):
            session_folder = folder / str(session)
            if not session_folder.is_dir():
                if sessions is None and session > 1:
                    continue  # a partial download: the sessions present are read
                raise FileNotFoundError(f"SEED-IV session folder {str(session_folder)!r} does "
                                        "not exist.")
            for subject, files in _scan(session_folder, None).items():
                if len(files) > 1:
                    raise ValueError(f"SEED-IV subject {subject} has {len(files)} files in "
                                     f"{str(session_folder)!r} "
                                     f"({[f.name for _, f in files]}); one per session.")
                chosen.append((subject, session, files[0][0], files[0][1]))
    if sessions is not None:
        chosen = [c for c in chosen if c[1] in sessions]
    if subjects is not None:
        present = {c[0] for c in chosen}
        missing = [s for s in subjects if s not in present]
        if missing:
            raise FileNotFoundError(f"{_NAME[version]} subjects {missing} have no "
                                    f"<subject>_<date>.mat file in {str(folder)!r}.")
        chosen = [c for c in chosen if c[0] in subjects]
    if not chosen:
        raise FileNotFoundError(f"No {_NAME[version]} <subject>_<date>.mat files in "
                                f"{str(folder)!r}.")
    return sorted(chosen)


def _seed_labels(folder: Path) -> np.ndarray:
    file = folder / "label.mat"
    if not file.is_file():
        raise FileNotFoundError(f"SEED label file {str(file)!r} does not exist; the release "
                                "keeps label.mat beside the recordings.")
    content = read_mat(file, what="SEED label.mat file", variable_names=["label"])
    labels = content.get("label")
    if (not isinstance(labels, np.ndarray) or labels.dtype.kind not in "fiu"
            or labels.size != _N_CLIPS["seed"]):
        raise ValueError(f"{str(file)!r}: 'label' must hold the {_N_CLIPS['seed']} clip labels; "
                         f"got {getattr(labels, 'shape', type(labels).__name__)}.")
    labels = labels.ravel()
    if not np.isin(labels, (-1, 0, 1)).all():
        raise ValueError(f"{str(file)!r}: 'label' must hold -1, 0 or 1; got "
                         f"{sorted(set(labels.tolist()))}.")
    return labels.astype(np.int64)


def _clips(content: dict, file: Path, version: str, features: str, smoothing: str
           ) -> list[np.ndarray]:
    """The clips of one recording in clip order, each checked."""
    n_clips = _N_CLIPS[version]
    if features == "raw":
        numbered = {}
        for key, value in content.items():
            match = _RAW_CLIP.match(key)
            if match:
                number = int(match.group(1))
                if number in numbered:
                    raise ValueError(f"{str(file)!r} holds clip {number} twice "
                                     f"({numbered[number][0]!r} and {key!r}).")
                numbered[number] = (key, value)
        what = "<initials>_eeg<k>"
    else:
        prefix = f"de_{smoothing}"
        numbered = {int(key[len(prefix):]): (key, value) for key, value in content.items()
                    if key.startswith(prefix) and key[len(prefix):].isdigit()}
        what = f"{prefix}<k>"
    expected = set(range(1, n_clips + 1))
    if set(numbered) != expected:
        missing, extra = sorted(expected - set(numbered)), sorted(set(numbered) - expected)
        raise ValueError(f"{str(file)!r}: {_NAME[version]} files hold {what} for clips 1..{n_clips}"
                         f"; missing clips {missing}, unexpected clips {extra}.")
    axes = ("channels", "samples") if features == "raw" else ("channels", "windows", "bands")
    sizes = {"channels": len(SEED_CHANNELS), "bands": len(SEED_DE_BANDS)}
    why = {"channels": f"{_NAME[version]} recordings have {len(SEED_CHANNELS)} (SEED_CHANNELS)",
           "bands": f"the released DE features have {len(SEED_DE_BANDS)} "
                    f"({list(SEED_DE_BANDS)})"}
    return [checked_variable(numbered[number][1], source=str(file), name=numbered[number][0],
                             axes=axes, sizes=sizes, why=why)
            for number in range(1, n_clips + 1)]


def load_seed(
    path: str | os.PathLike,
    features: str = "raw",
    version: str = "seed",
    window: int = 200,
    overlap: int = 0,
    subjects: Iterable[int] | int | None = None,
    sessions: Iterable[int] | int | None = None,
    smoothing: str = "LDS",
    verbose: bool = False,
) -> Bunch:
    """Load the SEED or SEED-IV release as labelled windows.

    Parameters
    ----------
    path : str or path-like
        The release root (holding ``Preprocessed_EEG``/``ExtractedFeatures`` for SEED,
        ``eeg_raw_data``/``eeg_feature_smooth`` for SEED-IV) or that folder itself.
        Files are opened read-only; MATLAB v5 and v7.3 (HDF5) files are both read.
    features : {"raw", "de"}, default="raw"
        ``"raw"``: the EEG, cut into windows. ``"de"``: the released differential
        entropy features, one row per feature window (1 s for SEED, 4 s for SEED-IV).
    version : {"seed", "seed-iv"}, default="seed"
    window : int, default=200
        Raw windows' length in samples (200 = 1 s); ignored for ``"de"``. A clip
        shorter than ``window`` gives no window (a ``UserWarning`` counts such clips
        and names the shortest); if every clip is shorter, a ``ValueError`` names the
        longest.
    overlap : int, default=0
        Samples shared by consecutive raw windows, ``0 <= overlap < window``.
    subjects : int or iterable of int, default=None
        Subject numbers to load (the number before ``_`` in the file name); ``None``
        loads all found.
    sessions : int or iterable of int, default=None
        Sessions (1-3) to load; ``None`` loads all found.
    smoothing : {"LDS", "movingAve"}, default="LDS"
        Which smoothing of the DE features to read (``de_LDS<k>`` or
        ``de_movingAve<k>``); ignored for ``"raw"``.
    verbose : bool, default=False
        Show a progress bar over files.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X`` : ndarray of float32, shape (n_windows, 62, window) for ``"raw"``,
          (n_windows, 62, 5) for ``"de"`` (bands of :data:`SEED_DE_BANDS`)
        - ``y`` : ndarray of int, shape (n_windows,): -1/0/1 (SEED, negative, neutral,
          positive) or 0-3 (SEED-IV: neutral, sad, fear, happy)
        - ``groups`` : ndarray of int, subject number; ``sessions`` : ndarray of int, 1-3
        - ``trials`` : ndarray of int, clip id unique across subjects and sessions,
          ``((subject - 1) * 3 + session - 1) * n_clips + clip - 1``
        - ``ch_names`` : list of str (:data:`~skkgp.layout.SEED_CHANNELS`);
          ``sfreq`` : float (200.0)
        - ``frame`` : DataFrame, one row per window: ``subject``, ``session``, ``date``,
          ``clip`` (1-based), ``trial_id``, ``window`` (index in the clip), ``start``
          (first sample in the clip), ``emotion``
        - ``feature_names`` : band names (``"de"`` only); ``version``, ``features``,
          ``DESCR``

    Raises
    ------
    FileNotFoundError
        Missing folder, subject, session folder or ``label.mat``.
    ValueError
        A corrupt or truncated file, extra files, clips missing from a file, a clip with
        another channel count, labels that do not match the clips, values that are not
        finite, or a bad argument; each message names the file.

    References
    ----------
    Zheng & Lu (2015), "Investigating critical frequency bands and channels for
    EEG-based emotion recognition with deep neural networks", IEEE TAMD 7(3).
    Zheng et al. (2019), "EmotionMeter: a multimodal framework for recognizing human
    emotions", IEEE Transactions on Cybernetics 49(3).

    Examples
    --------
    >>> from skkgp.datasets import load_seed, write_seed_like
    >>> root = write_seed_like(tmp_path, n_subjects=1)  # doctest: +SKIP
    >>> load_seed(root).X.shape  # doctest: +SKIP
    (180, 62, 200)
    """
    window, overlap = _check_args(features, version, window, overlap, smoothing)
    subjects = _numbers(subjects, "subjects", 10**6)
    sessions = _numbers(sessions, "sessions", _N_SESSIONS)
    folder = _resolve_folder(path, version, features)
    files = _session_files(folder, version, subjects, sessions)
    seed_labels = _seed_labels(folder) if version == "seed" else None
    n_clips = _N_CLIPS[version]
    step = window - overlap
    blocks: list[np.ndarray] = []
    short: list[tuple[str, int]] = []  # raw clips shorter than window: (where, samples)
    n_read = 0
    columns: dict[str, list[np.ndarray]] = {key: [] for key in (
        "subject", "session", "date", "clip", "trial_id", "window", "start", "emotion")}
    for subject, session, date, file in tqdm(files, desc=f"{_NAME[version]} files", unit="file",
                                             disable=not verbose):
        content = read_mat(file, what=f"{_NAME[version]} {features} file")
        clips = _clips(content, file, version, features, smoothing)
        labels = (seed_labels if version == "seed"
                  else np.asarray(SEED_IV_LABELS[session - 1], dtype=np.int64))
        for clip_index, clip in enumerate(clips):
            n_read += 1
            if features == "raw":
                if clip.shape[1] < window:
                    short.append((f"{file.name} clip {clip_index + 1}", clip.shape[1]))
                rows = clip_windows(clip, window, step)
                starts = np.arange(len(rows)) * step
            else:
                rows = clip.transpose(1, 0, 2)  # (windows, channels, bands)
                starts = np.arange(len(rows)) * int(_DE_SECONDS[version] * SEED_SFREQ)
            blocks.append(rows.astype(np.float32))
            n = len(rows)
            columns["subject"].append(np.full(n, subject))
            columns["session"].append(np.full(n, session))
            columns["date"].append(np.full(n, date, dtype=object))
            columns["clip"].append(np.full(n, clip_index + 1))
            columns["trial_id"].append(
                np.full(n, ((subject - 1) * _N_SESSIONS + session - 1) * n_clips + clip_index))
            columns["window"].append(np.arange(n))
            columns["start"].append(starts)
            columns["emotion"].append(np.full(n, labels[clip_index]))
    X = np.concatenate(blocks) if blocks else np.empty((0, len(SEED_CHANNELS), window),
                                                       np.float32)
    if len(X) == 0 and short:
        where, samples = max(short, key=lambda item: item[1])
        raise ValueError(f"The {_NAME[version]} clips in {str(folder)!r} are all shorter than "
                         f"window={window} samples (the longest: {where}, {samples} "
                         f"samples); choose a window of at most {samples} samples.")
    if len(X) == 0:
        raise ValueError(f"The {_NAME[version]} {features} files in {str(folder)!r} hold no "
                         "window.")
    warn_short_clips(short, n_read, window, _NAME[version])
    frame = pd.DataFrame({key: np.concatenate(value) for key, value in columns.items()})
    result = Bunch(
        X=X,
        y=frame["emotion"].to_numpy(np.int64),
        groups=frame["subject"].to_numpy(np.int64),
        sessions=frame["session"].to_numpy(np.int64),
        trials=frame["trial_id"].to_numpy(np.int64),
        ch_names=list(SEED_CHANNELS),
        sfreq=SEED_SFREQ,
        frame=frame,
        version=version,
        features=features,
        DESCR=f"{_NAME[version]} release ({features}) read from {str(folder)!r}.",
    )
    if features == "de":
        result.feature_names = list(SEED_DE_BANDS)
    return result


# --- writing: a simulation in the release's layout ----------------------------------------


def _initials(subject: int) -> str:
    # The release names clips after the subject's initials; any letters do.
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[(subject - 1) // 26 % 26] + letters[(subject - 1) % 26] + "x"


def _simulated_clip(rng: np.random.Generator, n_samples: int, emotion: int,
                    frontal: np.ndarray) -> np.ndarray:
    """SIMULATED EEG: correlated 1/f-like noise plus an emotion-dependent frontal alpha."""
    from scipy.signal import lfilter

    n_chans = len(SEED_CHANNELS)
    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal((n_chans, n_samples)), axis=1)
    common = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n_samples))
    t = np.arange(n_samples) / SEED_SFREQ
    alpha = np.sin(2 * np.pi * (10.0 + rng.uniform(-0.5, 0.5)) * t + rng.uniform(0, 2 * np.pi))
    signal = noise + 0.5 * common
    signal[frontal] += (1.0 + 0.8 * float(emotion)) * 3.0 * alpha
    return signal


def _differential_entropy(windows: np.ndarray) -> np.ndarray:
    """DE of each (window, channel, band) of :data:`SEED_DE_BANDS`, as the release computes it."""
    from scipy.signal import butter, sosfiltfilt

    out = np.empty((*windows.shape[:2], len(SEED_DE_BANDS)))
    for band, edges in enumerate(SEED_DE_BANDS.values()):
        sos = butter(4, edges, btype="bandpass", fs=SEED_SFREQ, output="sos")
        variance = np.maximum(sosfiltfilt(sos, windows, axis=-1).var(axis=-1), 1e-20)
        out[:, :, band] = 0.5 * np.log(2 * np.pi * np.e * variance)
    return out


def _refuse_other_recordings(targets: Iterable[Path]) -> None:
    """Refuse to write beside another recording of a subject about to be written.

    A folder may hold one ``<subject>_<date>.mat`` per subject (SEED-IV) or one per
    session (SEED, whose session is the file's rank by date): a simulated file under
    another date would turn a release, real or simulated, into one :func:`load_seed`
    refuses or reads with shifted sessions. ``overwrite`` replaces files of the same
    name only, so such files are refused whatever it says.
    """
    written: dict[Path, set[str]] = {}
    for file in targets:
        written.setdefault(file.parent, set()).add(file.name)
    others = []
    for folder, names in written.items():
        if not folder.is_dir():
            continue
        subjects = {int(_SUBJECT_FILE.match(name).group(1)) for name in names}
        others += [str(folder / name) for name in sorted(os.listdir(folder))
                   if (match := _SUBJECT_FILE.match(name)) and int(match.group(1)) in subjects
                   and name not in names]
    if others:
        raise FileExistsError(
            f"Refusing to write simulated recordings beside {others[:3]}"
            f"{' ...' if len(others) > 3 else ''}: other recordings of the subjects about to "
            "be written, which write_seed_like does not replace (overwrite=True replaces "
            "files of the same name only) and with which the folder would no longer load. "
            "Write the simulation to another folder.")


def write_seed_like(
    directory: str | os.PathLike,
    n_subjects: int = 2,
    random_state=None,
    *,
    version: str = "seed",
    features: str = "both",
    n_sessions: int = 3,
    clip_seconds: float | None = None,
    format: str = "v5",
    overwrite: bool = False,
) -> Path:
    """Write SIMULATED EEG in the exact file layout of the SEED or SEED-IV release.

    The content is a simulation (1/f-like noise with a frontal alpha rhythm whose
    amplitude follows the clip's emotion), not real data; the files, variable names,
    shapes and label file are those of the release, so that :func:`load_seed` is tested
    on real-format files. Clip lengths vary by up to a second, as the films do.

    Parameters
    ----------
    directory : str or path-like
        Release root to create or fill.
    n_subjects : int, default=2
        Subjects ``1`` .. ``n_subjects``.
    random_state : int or None, default=None
        Seed of the simulation.
    version : {"seed", "seed-iv"}, default="seed"
    features : {"raw", "de", "both"}, default="both"
        Write the raw release, the DE release, or both. The DE features are computed
        from the simulated EEG (the LDS and moving-average smoothings are written
        unsmoothed, with identical values).
    n_sessions : int, default=3
        Sessions per subject (1-3).
    clip_seconds : float, default=None
        Typical clip length; ``None``: 4 s for SEED, 8 s for SEED-IV (two of its 4 s DE
        windows). The release's films last about 4 minutes.
    format : {"v5", "v7.3"}, default="v5"
        MATLAB v5 files, as released, or v7.3 (HDF5) files, as MATLAB's ``-v7.3`` saves.
    overwrite : bool, default=False
        Replace existing files of the names written; otherwise an existing file
        raises ``FileExistsError`` before anything is written. Other recordings of a
        subject about to be written (``<subject>_<date>.mat`` under another date, such
        as a downloaded release's files) are never replaced or removed: they raise
        ``FileExistsError`` whatever ``overwrite`` says, since the folder would no
        longer load with both.

    Returns
    -------
    root : pathlib.Path
        ``directory``, ready for :func:`load_seed`.
    """
    from ..layout import region_mask

    if version not in SEED_VERSIONS:
        raise ValueError(f"version must be one of {SEED_VERSIONS}; got {version!r}.")
    if features not in ("raw", "de", "both"):
        raise ValueError(f"features must be 'raw', 'de' or 'both'; got {features!r}.")
    if format not in MAT_FORMATS:
        raise ValueError(f"format must be one of {MAT_FORMATS}; got {format!r}.")
    for name, value, upper in (("n_subjects", n_subjects, 99), ("n_sessions", n_sessions, 3)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                1 <= value <= upper):
            raise ValueError(f"{name} must be an int in 1..{upper}; got {value!r}.")
    de_seconds = _DE_SECONDS[version]
    if clip_seconds is None:
        clip_seconds = 4.0 * de_seconds if version == "seed" else 2.0 * de_seconds
    if not np.isfinite(clip_seconds) or clip_seconds < de_seconds + 1:
        raise ValueError(f"clip_seconds must be at least {de_seconds + 1}; got {clip_seconds!r}.")
    kinds = ["raw", "de"] if features == "both" else [features]
    root = Path(os.fspath(directory)).expanduser()

    def target(kind: str, subject: int, session: int) -> Path:
        date = f"{2013 + session - 1}{(subject - 1) % 12 + 1:02d}{(subject - 1) % 28 + 1:02d}"
        folder = root / _FOLDERS[(version, kind)]
        if version == "seed-iv":
            folder = folder / str(session)
        return folder / f"{subject}_{date}.mat"

    targets = {(kind, subject, session): target(kind, subject, session) for kind in kinds
               for subject in range(1, n_subjects + 1) for session in range(1, n_sessions + 1)}
    label_files = [root / _FOLDERS[(version, kind)] / "label.mat"
                   for kind in kinds] if version == "seed" else []
    _refuse_other_recordings(targets.values())
    refuse_overwrite([*targets.values(), *label_files], overwrite)
    for file in [*targets.values(), *label_files]:
        file.parent.mkdir(parents=True, exist_ok=True)
    for file in label_files:
        write_mat(file, {"label": np.asarray(SEED_LABELS, dtype=np.float64).reshape(1, -1)},
                  format=format)
    frontal = region_mask("frontal", SEED_CHANNELS)
    de_window = int(de_seconds * SEED_SFREQ)
    rng = np.random.default_rng(random_state)
    for subject in range(1, n_subjects + 1):
        for session in range(1, n_sessions + 1):
            labels = SEED_LABELS if version == "seed" else SEED_IV_LABELS[session - 1]
            raw, de = {}, {}
            for clip, emotion in enumerate(labels, start=1):
                n_samples = int(round((clip_seconds + rng.uniform(-0.5, 0.5)) * SEED_SFREQ))
                raw[f"{_initials(subject)}_eeg{clip}"] = _simulated_clip(
                    rng, n_samples, emotion, frontal)
            if "de" in kinds:
                # One transform call for the whole session: the filter operator is built once.
                windows = [clip_windows(eeg, de_window, de_window) for eeg in raw.values()]
                values = _differential_entropy(np.concatenate(windows))
                bounds = np.cumsum([0] + [len(w) for w in windows])
                for clip in range(1, len(labels) + 1):
                    # (channels, windows, bands), as released
                    block = values[bounds[clip - 1]:bounds[clip]].transpose(1, 0, 2)
                    de[f"de_movingAve{clip}"] = block
                    de[f"de_LDS{clip}"] = block
            for kind, content in (("raw", raw), ("de", de)):
                if kind in kinds:
                    write_mat(targets[(kind, subject, session)], content, format=format)
    return root
