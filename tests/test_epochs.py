"""mne.Epochs and MOABB as input: from_epochs, load_moabb, and Epochs given to the estimators."""

import warnings

import mne

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import from_epochs, load_moabb
from skkgp.export import calibration_inputs
from skkgp.knowledge.evidence import guided_gradcam, mean_region_share
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer

pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")

EEG = ["Fp1", "Fp2", "C3", "Cz", "C4", "O1"]


def _epochs(n_per_subject=12, n_subjects=3, sfreq=64.0, n_times=64, seed=0, names=EEG,
            montage=True):
    """EpochsArray with an EOG and a bad channel; class 2 has more 10 Hz on C3/C4."""
    rng = np.random.default_rng(seed)
    n = n_per_subject * n_subjects
    codes = np.tile([1, 2], n // 2)
    data = rng.standard_normal((n, len(names) + 1, n_times)) * 10e-6  # volts, as MNE keeps them
    t = np.arange(n_times) / sfreq
    for channel in (2, 4)[: len(names) - 2]:
        data[codes == 2, channel] += 30e-6 * np.sin(2 * np.pi * 10 * t)
    info = mne.create_info([*names, "EOG1"], sfreq, [*["eeg"] * len(names), "eog"])
    info["bads"] = [names[-1]]
    events = np.c_[np.arange(n) * n_times * 2, np.zeros(n, int), codes]
    epochs = mne.EpochsArray(data, info, events=events, event_id={"rest": 1, "move": 2},
                             verbose=False)
    if montage:
        builtin = mne.channels.get_builtin_montages()
        kind = "colin27_1020" if "colin27_1020" in builtin else "standard_1020"
        epochs.set_montage(kind, on_missing="ignore", verbose=False)
    epochs.metadata = pd.DataFrame(
        {"subject": np.repeat(np.arange(1, n_subjects + 1), n_per_subject),
         "session": np.tile(["a", "b"], n // 2)})
    return epochs


def test_from_epochs_picks_good_eeg_in_microvolts_with_events_and_subjects():
    epochs = _epochs()
    data = from_epochs(epochs)
    assert data.ch_names == EEG[:-1]  # EOG and the bad O1 left out
    assert data.X.shape == (36, 5, 64) and data.X.dtype == np.float32
    np.testing.assert_allclose(data.X, epochs.get_data(picks=EEG[:-1]) * 1e6, rtol=1e-5)
    assert np.array_equal(data.y, epochs.events[:, 2])
    assert np.array_equal(data.groups, np.repeat([1, 2, 3], 12))
    assert list(data.sessions[:2]) == ["a", "b"] and data.sfreq == 64.0
    assert list(data.frame.columns) == ["subject", "trial", "event", "session"]
    named = from_epochs(epochs, y=np.where(epochs.events[:, 2] == 2, "move", "rest"), groups=None)
    assert set(named.y) == {"move", "rest"}


def test_groups_that_contradict_the_metadata_subjects_are_used_with_a_warning():
    epochs = _epochs()
    groups = np.repeat([7, 8, 9], 12)
    with pytest.warns(UserWarning, match=r"differs from epochs.metadata\['subject'\] at 36 "
                                         r"of 36 epochs; the subjects are taken from groups"):
        data = from_epochs(epochs, groups=groups)
    assert np.array_equal(data.groups, groups)
    assert np.array_equal(data.frame["subject"], groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same subjects: nothing to say
        from_epochs(epochs, groups=epochs.metadata["subject"].to_numpy())


def test_metadata_columns_the_frame_makes_itself_are_refused_until_renamed():
    # They used to give a frame with two 'trial' columns.
    epochs = _epochs()
    epochs.metadata = epochs.metadata.assign(trial=np.arange(36) % 12, event="cue")
    with pytest.raises(ValueError, match=r"metadata has columns \['trial', 'event'\].*rename "
                                         r"them first.*'trial': 'epoch_trial', 'event': "
                                         r"'epoch_event'"):
        from_epochs(epochs)
    epochs.metadata = epochs.metadata.rename(columns={"trial": "epoch_trial",
                                                      "event": "epoch_event"})
    frame = from_epochs(epochs).frame
    assert list(frame.columns) == ["subject", "trial", "event", "session", "epoch_trial",
                                   "epoch_event"]
    assert np.array_equal(frame.trial, np.arange(36))
    assert np.array_equal(frame.epoch_trial, np.arange(36) % 12)


def test_bad_epochs_are_refused_with_the_reason():
    epochs = _epochs()
    no_eeg = epochs.copy().set_channel_types({name: "misc" for name in EEG},
                                             on_unit_change="ignore")
    with pytest.raises(ValueError, match=r"no EEG channel.*channel types \['eog', 'misc'\]"):
        from_epochs(no_eeg)
    all_bad = epochs.copy()
    all_bad.info["bads"] = list(EEG)
    with pytest.raises(ValueError, match="no EEG channel that is not marked bad"):
        EEGClassifier("eegnet").fit(all_bad)
    unplaced = _epochs(names=["E1", "E2", "Cz"], montage=False)
    with pytest.raises(ValueError, match=r"\['E1', 'E2'\] of the Epochs have no position"):
        from_epochs(unplaced)
    with pytest.raises(ValueError, match="y must have one entry per epoch"):
        from_epochs(epochs, y=[1, 2])
    with pytest.raises(ValueError, match="epochs must be an mne.Epochs"):
        from_epochs(epochs.get_data())
    with pytest.raises(ValueError, match="Epochs sampled at 64 Hz but sfreq=128.0"):
        BandDifferentialEntropy().fit_transform(epochs)


def test_epochs_array_through_a_pipeline_in_grouped_cross_validation():
    epochs = _epochs(n_per_subject=16)
    net = EEGClassifier("eegnet", max_epochs=3, batch_size=16, lr=3e-3, random_state=0)
    pipeline = make_pipeline(ChannelStandardizer(), net)
    groups = epochs.metadata["subject"].to_numpy()
    scores = cross_val_score(pipeline, epochs, epochs.events[:, 2], groups=groups,
                             cv=GroupKFold(n_splits=3))
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    # Without y the event codes are the labels; Epochs and their arrays predict alike.
    fitted = EEGClassifier("eegnet", max_epochs=1, batch_size=16, random_state=0).fit(epochs)
    assert set(fitted.classes_) == {1, 2}
    arrays = from_epochs(epochs)
    np.testing.assert_allclose(fitted.predict_proba(epochs), fitted.predict_proba(arrays.X),
                               rtol=1e-5, atol=1e-6)
    entropy = BandDifferentialEntropy(bands={"alpha": (8, 14), "beta": (14, 30)}, sfreq=64.0)
    np.testing.assert_allclose(entropy.fit_transform(epochs),
                               entropy.fit_transform(arrays.X), rtol=1e-5)


def test_pruner_takes_its_electrodes_from_the_epochs():
    epochs = _epochs(n_per_subject=8, n_subjects=2)
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=16, random_state=0)
    pruner = KnowledgeGuidedPruner(net, method="lfp", prune_ratio=0.3, region=["C3", "Cz", "C4"],
                                   random_state=0, recovery_epochs=1).fit(epochs)
    assert pruner.electrodes_ == tuple(EEG[:-1])
    assert pruner.region_mask_.tolist() == [False, False, True, True, True]
    assert pruner.score(epochs, epochs.events[:, 2]) >= 0


def test_evidence_and_calibration_take_epochs_as_fit_does():
    # Epochs are converted as at fit (EEG picks, bads dropped, microvolts): the evidence,
    # the region share and the int8 calibration inputs equal those of the arrays.
    epochs = _epochs(n_per_subject=8, n_subjects=2)
    arrays = from_epochs(epochs)
    codes = epochs.events[:, 2]
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=16, random_state=0)
    pruner = KnowledgeGuidedPruner(net, method="lfp", prune_ratio=0.3, region=["C3", "Cz", "C4"],
                                   random_state=0, recovery_epochs=1).fit(epochs)
    np.testing.assert_allclose(guided_gradcam(pruner, epochs), guided_gradcam(pruner, arrays.X),
                               rtol=1e-5, atol=1e-7)
    for which in ("pruned", "origin"):
        assert pruner.region_share(epochs, codes, which=which) == pytest.approx(
            pruner.region_share(arrays.X, codes, which=which), rel=1e-5)
    pipeline = make_pipeline(ChannelStandardizer(), EEGClassifier(
        "eegnet", max_epochs=1, batch_size=16, random_state=0)).fit(epochs, codes)
    np.testing.assert_allclose(mean_region_share(pipeline, epochs, region_mask=[1, 0, 0, 0, 0]),
                               mean_region_share(pipeline, arrays.X, region_mask=[1, 0, 0, 0, 0]),
                               rtol=1e-5)
    for strategy in ("random", "knowledge"):
        np.testing.assert_allclose(
            calibration_inputs(pruner, strategy, X=epochs, n_calibration=4),
            calibration_inputs(pruner, strategy, X=arrays.X, n_calibration=4), rtol=1e-6)
    np.testing.assert_allclose(calibration_inputs(pruner, epochs),
                               calibration_inputs(pruner, arrays.X), rtol=1e-6)


@pytest.fixture(scope="module")
def fake_moabb(tmp_path_factory):
    """MOABB's FakeDataset with every data folder in a temporary directory (no network)."""
    home = tmp_path_factory.mktemp("moabb_home")
    patch = pytest.MonkeyPatch()
    for name in ("MNE_DATA", "MNE_DATASETS_FAKE_PATH", "MOABB_RESULTS", "HOME"):
        patch.setenv(name, str(home))
    from moabb.datasets.fake import FakeDataset

    dataset = FakeDataset(event_list=("left_hand", "right_hand"), n_sessions=2, n_runs=1,
                          n_subjects=3, paradigm="imagery", duration=24, sfreq=128)
    try:
        yield dataset, home
    finally:
        patch.undo()


def test_load_moabb_fake_dataset_through_the_pruner_with_a_motor_prior(fake_moabb):
    dataset, home = fake_moabb
    data = load_moabb(dataset)
    assert data.ch_names == ["C3", "Cz", "C4"] and data.sfreq == 128.0
    assert set(data.groups) == {1, 2, 3} and set(data.sessions) == {"0", "1"}
    assert set(data.y) == {"left_hand", "right_hand"} and len(data.y) == len(data.X)
    assert {"session", "run"} <= set(data.frame.columns)
    assert not any(home.rglob("*.fif")) and not any(home.rglob("*.edf"))  # nothing downloaded
    with pytest.raises(ValueError, match=r"subjects \[9\] are not in FakeDataset"):
        load_moabb(dataset, subjects=[9])
    with pytest.raises(ValueError, match="Unknown MOABB dataset 'NoSuchSet'"):
        load_moabb("NoSuchSet")
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=32, random_state=0)
    pruner = KnowledgeGuidedPruner(net, method="lfp", prune_ratio=0.3, region="central",
                                   ch_names=data.ch_names, random_state=0, recovery_epochs=1)
    subset = np.flatnonzero(data.groups <= 2)
    pruner.fit(data.X[subset], data.y[subset])
    assert pruner.electrodes_ == ("C3", "Cz", "C4")
    assert pruner.region_mask_.all()  # the motor strip covers all three
    assert set(pruner.predict(data.X[:8])) <= {"left_hand", "right_hand"}
