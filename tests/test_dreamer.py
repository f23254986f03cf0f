"""DREAMER: the loader on a DREAMER.mat written in the release's layout, and bad files."""

import shutil

import numpy as np
import pytest
import scipy.io

from skkgp.datasets import load_dreamer, write_dreamer_like
from skkgp.datasets._matfile import write_mat
from skkgp.layout import DREAMER_CHANNELS, DREAMER_GRID, region_grid_mask
from skkgp.transforms import BandDifferentialEntropy, ToGrid


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_dreamer_like(tmp_path_factory.mktemp("dreamer"), n_subjects=3, random_state=0)


def _raw(file):
    return scipy.io.loadmat(file)


def test_file_has_the_release_layout_as_torcheeg_indexes_it(release):
    # The indexing of torcheeg's DREAMER reader, on the written file.
    top = _raw(release)["DREAMER"][0, 0]
    assert len(top["Data"][0]) == 3
    subject = top["Data"][0, 1]
    assert len(subject["EEG"][0, 0]["stimuli"][0, 0]) == 18
    assert subject["EEG"][0, 0]["baseline"][0, 0][4, 0].shape == (512, 14)
    assert subject["EEG"][0, 0]["stimuli"][0, 0][4, 0].shape[1] == 14
    assert 1 <= subject["ScoreValence"][0, 0][4, 0] <= 5
    assert [str(c[0]) for c in top["EEG_Electrodes"][0]] == list(DREAMER_CHANNELS)
    assert float(top["EEG_SamplingRate"][0, 0]) == 128.0


def test_load_dreamer_windows_labels_and_groups(release):
    data = load_dreamer(release)
    raw = _raw(release)["DREAMER"][0, 0]["Data"][0, 2]
    assert data.X.dtype == np.float32 and data.X.shape[1:] == (14, 128)
    assert data.ch_names == list(DREAMER_CHANNELS) and data.sfreq == 128.0
    assert set(data.groups) == {1, 2, 3} and np.unique(data.trials).size == 3 * 18
    frame = data.frame
    rows = np.flatnonzero((frame.subject == 3) & (frame.trial == 5))
    np.testing.assert_allclose(data.X[rows[1]], raw["EEG"][0, 0]["stimuli"][0, 0][4, 0][128:256].T)
    assert (frame.valence.to_numpy()[rows] == raw["ScoreValence"][0, 0][4, 0]).all()
    assert np.array_equal(data.y, (frame.valence.to_numpy() >= 3).astype(int))
    arousal = load_dreamer(release.parent, target="arousal", threshold=4, subjects=[2])
    assert set(arousal.groups) == {2}
    assert np.array_equal(arousal.y, (arousal.frame.arousal.to_numpy() >= 4).astype(int))


def test_baseline_return_feeds_the_grid_chain(release):
    data = load_dreamer(release, baseline="return", subjects=[1, 3])
    assert data.baseline.shape == (36, 14, 512)
    raw = _raw(release)["DREAMER"][0, 0]["Data"][0, 2]
    first = np.flatnonzero((data.frame.subject == 3) & (data.frame.trial == 2))[0]
    row = data.baseline_index[first]
    np.testing.assert_allclose(data.baseline[row], raw["EEG"][0, 0]["baseline"][0, 0][1, 0].T)
    features = BandDifferentialEntropy().fit_transform(data.X[:20])
    grids = ToGrid(layout="dreamer", ch_names=data.ch_names).fit_transform(features)
    assert grids.shape == (20, 4, 9, 9)
    assert region_grid_mask("frontal", "dreamer").sum() == 6
    assert DREAMER_GRID["AF3"] == (1, 3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"target": "liking"}, "target must be one of"),
    ({"threshold": "high"}, "threshold must be a number"),
    ({"window": 0}, "window must be a positive int"),
    ({"overlap": -1}, "overlap must be an int"),
    ({"baseline": "subtract"}, "baseline must be 'drop' or 'return'"),
    ({"subjects": [4]}, "subject 4 is not in .*DREAMER.mat"),
    ({"subjects": []}, "subjects is empty"),
])
def test_bad_arguments(release, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dreamer(release, **kwargs)


def _edit(release, tmp_path, change):
    """A copy of the release with ``change(top)`` applied to the DREAMER struct."""
    content = scipy.io.loadmat(release)
    change(content["DREAMER"][0, 0])
    target = tmp_path / "DREAMER.mat"
    scipy.io.savemat(target, {"DREAMER": content["DREAMER"]})
    return target


def test_missing_file_and_v73_refusal(release, tmp_path):
    with pytest.raises(FileNotFoundError, match="DREAMER.mat' does not exist"):
        load_dreamer(tmp_path)
    write_mat(tmp_path / "DREAMER.mat", {"x": np.zeros(3)}, format="v7.3")
    with pytest.raises(ValueError, match="DREAMER.mat' is a MATLAB v7.3.*-v7"):
        load_dreamer(tmp_path)


def test_truncated_file_and_missing_variable(release, tmp_path):
    target = tmp_path / "DREAMER.mat"
    target.write_bytes(release.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="DREAMER.mat' is not a readable DREAMER.mat file"):
        load_dreamer(target)
    scipy.io.savemat(target, {"data": np.zeros(3)})
    with pytest.raises(ValueError, match="has no 'DREAMER' variable"):
        load_dreamer(target)


def test_missing_field_is_named(release, tmp_path):
    content = scipy.io.loadmat(release)
    top = content["DREAMER"][0, 0]
    fields = [name for name in top.dtype.names if name != "EEG_Electrodes"]
    slim = np.empty((1, 1), dtype=[(name, object) for name in fields])
    for name in fields:
        slim[0, 0][name] = top[name]
    scipy.io.savemat(tmp_path / "DREAMER.mat", {"DREAMER": slim})
    with pytest.raises(ValueError, match="DREAMER has no field 'EEG_Electrodes'"):
        load_dreamer(tmp_path)


def test_inconsistent_channel_count_is_named(release, tmp_path):
    def drop_channel(top):
        cell = top["Data"][0, 1]["EEG"][0, 0]["stimuli"][0, 0]
        cell[6, 0] = cell[6, 0][:, :13]

    target = _edit(release, tmp_path, drop_channel)
    with pytest.raises(ValueError,
                       match=r"DREAMER.Data\(2\).EEG.stimuli\{7\} has shape \(\d+, 13\)"):
        load_dreamer(target)


def test_scores_that_do_not_match_the_clips(release, tmp_path):
    def drop_score(top):
        subject = top["Data"][0, 0]
        subject["ScoreArousal"][0, 0] = subject["ScoreArousal"][0, 0][:17]

    target = _edit(release, tmp_path, drop_score)
    with pytest.raises(ValueError, match=r"DREAMER.Data\(1\).ScoreArousal has 17 scores for 18"):
        load_dreamer(target)


def test_non_finite_and_overflowing_samples_are_named(release, tmp_path):
    def poison(value):
        def change(top):
            top["Data"][0, 2]["EEG"][0, 0]["stimuli"][0, 0][3, 0][10, 2] = value
        return change

    with pytest.raises(ValueError, match=r"DREAMER.mat'.*stimuli\{4\}' contains NaN or infinite"):
        load_dreamer(_edit(release, tmp_path, poison(np.inf)))
    with pytest.raises(ValueError, match=r"stimuli\{4\}' holds values beyond float32's range"):
        load_dreamer(_edit(release, tmp_path, poison(-1e300)))


def test_loading_never_modifies_the_file_and_writer_refuses_overwrite(release, tmp_path):
    before = release.read_bytes()
    load_dreamer(release, baseline="return")
    assert release.read_bytes() == before
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_dreamer_like(release.parent)
    copy = shutil.copy(release, tmp_path / "DREAMER.mat")
    write_dreamer_like(tmp_path, n_subjects=1, n_clips=2, overwrite=True, random_state=1)
    assert load_dreamer(copy).X.shape[0] > 0


def test_clips_shorter_than_the_window_are_skipped_and_all_short_is_named(release):
    # Simulated clips last 5.5-6.5 s (704-832 samples): window=768 leaves some out.
    subject = _raw(release)["DREAMER"][0, 0]["Data"][0, 0]
    lengths = [cell[0].shape[0] for cell in subject["EEG"][0, 0]["stimuli"][0, 0]]
    short = [clip for clip, n in enumerate(lengths, start=1) if n < 768]
    assert 0 < len(short) < 18
    with pytest.warns(UserWarning, match=rf"{len(short)} of 18 DREAMER clips are shorter than "
                                         r"window=768.*DREAMER.Data\(1\).EEG.stimuli\{\d+\}"):
        data = load_dreamer(release, window=768, subjects=1, baseline="return")
    trials = data.frame.trial.to_numpy()
    assert sorted(set(range(1, 19)) - set(trials)) == short
    assert data.baseline.shape[0] == 18  # every clip keeps its baseline row
    long_clip = next(c for c, n in enumerate(lengths, start=1) if n >= 768)
    row = np.flatnonzero(trials == long_clip)[0]
    np.testing.assert_allclose(
        data.X[row], subject["EEG"][0, 0]["stimuli"][0, 0][long_clip - 1, 0][:768].T)
    np.testing.assert_allclose(
        data.baseline[data.baseline_index[row]],
        subject["EEG"][0, 0]["baseline"][0, 0][long_clip - 1, 0].T)
    with pytest.raises(ValueError, match=rf"every clip is shorter than window=900 samples "
                                         rf"\(the longest: .*, {max(lengths)} samples\)"):
        load_dreamer(release, window=900, subjects=1)


@pytest.mark.parametrize(("rescale", "found"), [
    (lambda scores: scores * 10, r"\d+\.\.\d+"),  # a x10 scale
    (lambda scores: scores - 1, r"0\.\.\d"),  # 0-based
], ids=["x10", "0-based"])
def test_scores_outside_one_to_five_are_refused_naming_the_field(release, tmp_path, rescale,
                                                                found):
    # They used to load: x10 scores gave every window label 1 at threshold 3.
    def change(top):
        subject = top["Data"][0, 1]
        subject["ScoreDominance"][0, 0] = rescale(subject["ScoreDominance"][0, 0])

    target = _edit(release, tmp_path, change)
    with pytest.raises(ValueError, match=rf"DREAMER.mat'.*DREAMER.Data\(2\).ScoreDominance holds "
                                         rf"scores {found}; DREAMER's self-assessments are "
                                         r"1\.\.5"):
        load_dreamer(target, target="valence")
    assert set(load_dreamer(target, subjects=[1, 3]).groups) == {1, 3}


def test_subjects_with_different_clip_counts_keep_unique_ids_and_their_baselines(release,
                                                                               tmp_path):
    # Subject 2 lacks its last three clips: ids used to collide across subjects and
    # baseline="return" failed with a bare KeyError.
    def drop_clips(top):
        subject = top["Data"][0, 1]
        for part in ("stimuli", "baseline"):
            subject["EEG"][0, 0][part][0, 0] = subject["EEG"][0, 0][part][0, 0][:15]
        for field in ("ScoreValence", "ScoreArousal", "ScoreDominance"):
            subject[field][0, 0] = subject[field][0, 0][:15]

    target = _edit(release, tmp_path, drop_clips)
    data = load_dreamer(target, baseline="return")
    frame = data.frame
    assert frame.groupby("trial_id").subject.nunique().max() == 1
    assert np.unique(data.trials).size == 18 + 15 + 18
    assert sorted(frame[frame.subject == 2].trial.unique()) == list(range(1, 16))
    assert data.baseline.shape[0] == 18 + 15 + 18
    raw = _raw(target)["DREAMER"][0, 0]["Data"][0]
    for subject, clip in ((1, 18), (2, 15), (3, 1), (3, 18)):
        row = np.flatnonzero((frame.subject == subject) & (frame.trial == clip))[0]
        np.testing.assert_allclose(data.baseline[data.baseline_index[row]],
                                   raw[subject - 1]["EEG"][0, 0]["baseline"][0, 0][clip - 1, 0].T)
    # With equal counts the ids are those of the release's formula.
    full = load_dreamer(release)
    assert np.array_equal(full.trials, (full.frame.subject - 1) * 18 + full.frame.trial - 1)
    # An id does not depend on which subjects are loaded: separate loads join.
    for subjects in ([2], [2, 3]):
        alone = load_dreamer(target, subjects=subjects)
        assert np.array_equal(alone.trials, data.trials[frame.subject.isin(subjects)])
