"""Data of a ``skkgp reproduce`` run: the windows, each model's inputs, and the folds.

Every function here is a pure function of the configuration, cached per process, so
that the main process and each Dask worker build exactly the same arrays and splits
without shipping them around.
"""

from __future__ import annotations

import inspect
import os
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils import Bunch

from skkgp.reproduce.config import DATASETS, ConfigError, ReproduceConfig

__all__ = [
    "DataSpec",
    "load_windows",
    "window_features",
    "model_inputs",
    "input_shape",
    "fold_indices",
    "n_folds",
    "check_data_path",
    "check_folds",
    "LEAKAGE_WARNING",
]

LEAKAGE_WARNING = (
    "--protocol paper pools the windows of all subjects and splits them with shuffled "
    "KFold, as the paper does: windows of one trial fall on both sides of the split, "
    "so test accuracy is inflated. Use --protocol trial or subject for honest estimates."
)


class DataSpec(NamedTuple):
    """The data options of a run: hashable, so that loading can be cached per process."""

    data: str
    dataset: str
    n_subjects: int
    n_trials: int
    trial_seconds: int
    target: str
    seed: int
    scenario: str = "default"

    @classmethod
    def from_config(cls, config: ReproduceConfig) -> DataSpec:
        if not config.synthetic:
            # A release is the same data whatever the seed and the simulation's sizes:
            # one cache key, so that more seeds do not read it again.
            return cls(config.data, config.dataset, 0, 0, 0, config.target, 0)
        return cls(config.data, config.dataset, config.n_subjects, config.n_trials,
                   config.trial_seconds, config.target, config.seed, config.scenario)


def check_data_path(path: str, dataset: str = "deap") -> None:
    """Refuse a data path that does not exist before any work starts.

    Raises
    ------
    ConfigError
    """
    wanted = {
        "deap": "the DEAP release folder (holding data_preprocessed_python/ or "
                "data_preprocessed_matlab/) or one of those folders",
        "seed": "the SEED release folder (holding Preprocessed_EEG/) or that folder",
        "dreamer": "DREAMER.mat or the folder holding it",
    }[dataset]
    if not os.path.exists(path):
        what = "file or folder" if dataset == "dreamer" else "folder"
        raise ConfigError(f"--data {path!r}: no such {what}. Give {wanted}, or 'synthetic' "
                          "for the built-in simulation.")
    if not os.path.isdir(path) and dataset != "dreamer":
        raise ConfigError(f"--data {path!r} is a file; give {wanted}.")


def _accepted(function, **kwargs: Any) -> dict[str, Any]:
    names = inspect.signature(function).parameters
    return {name: value for name, value in kwargs.items() if name in names}


@lru_cache(maxsize=2)
def load_windows(spec: DataSpec) -> Bunch:
    """The windows of the run: simulated, or read from the ``--dataset`` release.

    Returns
    -------
    data : Bunch
        ``X`` (n_windows, n_chans, n_times) float32, ``y``, ``groups`` (subject),
        ``trials`` (global trial id), ``ch_names``, ``sfreq``; ``shortcut`` in the
        simulation's shortcut scenario.
    """
    from skkgp import datasets

    data, dataset, n_subjects, n_trials, trial_seconds, target, seed, scenario = spec
    if data == "synthetic":
        kwargs = _accepted(
            datasets.make_deap_like,
            n_subjects=n_subjects,
            n_trials=n_trials,
            trial_seconds=trial_seconds,
            duration=trial_seconds,
            target=target,
            baseline="return",
            random_state=seed,
        )
        if scenario != "default":
            kwargs["scenario"] = scenario
        return datasets.make_deap_like(**kwargs)
    check_data_path(data, dataset)
    try:
        if dataset == "seed":
            # 1 s raw windows of the 62 channels; the clips' emotions are the labels.
            return datasets.load_seed(data, features="raw", version="seed", window=200)
        if dataset == "dreamer":
            return datasets.load_dreamer(data, target=target, baseline="return")
        return datasets.load_deap(data, target=target, baseline="return")
    except (OSError, ValueError) as error:
        raise ConfigError(f"--data {data!r}: {error}") from error


@lru_cache(maxsize=4)
def window_features(spec: DataSpec, input_kind: str) -> np.ndarray:
    """What a model of ``input_kind`` is built from, for every window.

    Raw models (EEGNet, TSCeption) take the windows ``(n, n_chans, n_times)``; grid
    models (CCNN, FBCCNN) the band differential entropy ``(n, n_chans, 4)`` of each
    window (the bands of the ``--dataset``: theta to gamma, or SEED's five), minus that
    of its trial's baseline seconds where the release has them (DEAP's 3 s, as in the
    paper; DREAMER's 61 s). Both work window by window (nothing is learnt from
    other windows), so computing them once before the split leaks nothing.
    """
    from skkgp.transforms import BandDifferentialEntropy, BaselineRemoval, segment_mean_features

    bunch = load_windows(spec)
    X = np.asarray(bunch.X, dtype=np.float32)
    if input_kind == "raw":
        return X
    choice = DATASETS[spec.dataset]
    entropy = BandDifferentialEntropy(bands=band_set(spec.dataset), sfreq=float(bunch.sfreq))
    features = entropy.fit_transform(X)
    baseline = bunch.get("baseline")
    if (choice.baseline and baseline is not None
            and bunch.get("baseline_index") is not None):
        base = segment_mean_features(entropy, baseline, X.shape[-1])[bunch.baseline_index]
        features = BaselineRemoval().fit_transform(features, baseline=base)
    return np.asarray(features, dtype=np.float32)


def model_inputs(
    spec: DataSpec, input_kind: str, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Training and test inputs of one fold for a model of ``input_kind``.

    Each channel (raw) or each (channel, band) (grid) is standardised with the mean
    and scale of the training windows only; grid models then get their features
    mapped onto the dataset's 9x9 electrode grid, ``(n, n_bands, 9, 9)``.

    Returns
    -------
    X_train : ndarray, shape (n_train, n_chans, n_times) or (n_train, n_bands, 9, 9)
    X_test : ndarray, shape (n_test, ...) like ``X_train``
    """
    from skkgp.transforms import ChannelStandardizer, ToGrid

    features = window_features(spec, input_kind)
    scaler = ChannelStandardizer(per_feature=input_kind == "grid").fit(features[train])
    X_train, X_test = scaler.transform(features[train]), scaler.transform(features[test])
    if input_kind == "grid":
        to_grid = ToGrid(layout=DATASETS[spec.dataset].layout,
                         ch_names=list(load_windows(spec).ch_names))
        X_train, X_test = to_grid.fit_transform(X_train), to_grid.transform(X_test)
    return np.asarray(X_train, dtype=np.float32), np.asarray(X_test, dtype=np.float32)


def band_set(dataset: str) -> dict | None:
    """The differential-entropy bands of ``--dataset`` (None: the default
    :data:`skkgp.transforms.DEFAULT_BANDS`, theta to gamma)."""
    from skkgp.datasets import SEED_DE_BANDS

    return SEED_DE_BANDS if DATASETS[dataset].bands == "seed" else None


def input_shape(model: str, bunch: Bunch, dataset: str = "deap") -> tuple[int, ...]:
    """Shape of one input window of ``model`` (what :func:`model_inputs` gives it).

    Raw models take ``(n_chans, n_times)``; grid models ``(n_bands, rows, cols)``, the
    bands of ``dataset`` (:func:`band_set`) on :data:`skkgp.layout.GRID_SIZE`.
    Nothing is computed from the windows.
    """
    from skkgp.layout import GRID_SIZE
    from skkgp.models import get_model_class
    from skkgp.transforms import DEFAULT_BANDS

    if get_model_class(model).input_kind == "raw":
        return tuple(int(n) for n in np.shape(bunch.X)[1:])
    return (len(band_set(dataset) or DEFAULT_BANDS), *GRID_SIZE)


def n_folds(config: ReproduceConfig, bunch: Bunch) -> int:
    """The number of folds the protocol gives on these data (``--folds`` or its default).

    Raises
    ------
    ConfigError
        When there are fewer groups (trials, subjects) or windows than folds.
    """
    n_subjects = int(np.unique(bunch.groups).size)
    if config.protocol == "subject":
        folds = n_subjects if config.folds is None else config.folds
        available, unit = n_subjects, "subjects"
    elif config.protocol == "trial":
        folds = 3 if config.folds is None else config.folds
        available, unit = int(np.unique(bunch.trials).size), "trials"
    else:
        folds = 3 if config.folds is None else config.folds
        available, unit = len(bunch.y), "windows"
    if folds < 2 and config.folds is None:
        raise ConfigError(
            f"--protocol subject leaves out one subject per fold and needs at least 2 "
            f"subjects; the data have {n_subjects}."
        )
    if folds < 2:
        raise ConfigError(f"--folds {folds}: need at least 2 folds.")
    if folds > available:
        raise ConfigError(
            f"--folds {folds} with --protocol {config.protocol}: the data have only "
            f"{available} {unit}; use at most {available} folds."
        )
    return folds


def check_folds(config: ReproduceConfig, bunch: Bunch) -> None:
    """Refuse folds a classifier cannot be trained or scored on, before any training.

    Raises
    ------
    ConfigError
        When the training windows of a fold hold a single class.
    """
    y = np.asarray(bunch.y)
    for fold in range(n_folds(config, bunch)):
        train, test = fold_indices(config, bunch, fold)
        for side, indices in (("trains", train), ("tests", test)):
            classes = np.unique(y[indices])
            if classes.size >= 2 or (side == "tests" and classes.size == 1):
                continue
            what = ("no windows" if classes.size == 0
                    else f"windows of the single class {classes[0].tolist()!r}")
            raise ConfigError(
                f"fold {fold} of --protocol {config.protocol}"
                + (f" (scenario {config.scenario})" if bunch.get("shortcut") is not None
                   else "")
                + f" {side} on {what}: the data have too few trials of each class for "
                f"{config.folds} folds. Use fewer --folds, or more subjects or trials."
            )


def fold_indices(config: ReproduceConfig, bunch: Bunch, fold: int) -> tuple[np.ndarray, ...]:
    """Train and test window indices of fold ``fold`` under the run's protocol.

    In the shortcut scenario (``bunch.shortcut`` present) each fold keeps, of its
    training side, the windows of trials where the shortcut follows valence (+1) and,
    of its test side, those where it is reversed (-1): the model learns where the
    shortcut holds and is tested where it misleads.
    """
    train, test = _protocol_fold(config, bunch, fold)
    shortcut = bunch.get("shortcut")
    if shortcut is not None:
        shortcut = np.asarray(shortcut)
        train, test = train[shortcut[train] == 1], test[shortcut[test] == -1]
    return train, test


def _protocol_fold(config: ReproduceConfig, bunch: Bunch, fold: int) -> tuple[np.ndarray, ...]:
    folds = n_folds(config, bunch)
    n = len(bunch.y)
    if config.protocol == "paper":
        splitter = KFold(n_splits=folds, shuffle=True, random_state=config.seed)
        groups = None
    elif config.protocol == "trial":
        splitter, groups = GroupKFold(n_splits=folds), bunch.trials
    else:
        # With one fold per subject this is leave-one-subject-out.
        splitter, groups = GroupKFold(n_splits=folds), bunch.groups
    for index, (train, test) in enumerate(splitter.split(np.zeros(n), bunch.y, groups)):
        if index == fold:
            return train, test
    raise IndexError(f"fold {fold} out of range for {folds} folds")
