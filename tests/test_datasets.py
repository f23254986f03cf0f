"""Tests of skkgp.datasets: the DEAP loader, its safety, and the DEAP-like simulator."""

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import FunctionTransformer, make_pipeline
from sklearn.preprocessing import StandardScaler

from skkgp.datasets import (
    DEAP_PERIPHERAL_CHANNELS,
    SHORTCUT_CHANNELS,
    load_deap,
    make_deap_like,
    simulate_subject,
    write_deap_like,
)
from skkgp.datasets._matfile import read_mat, write_mat
from skkgp.datasets._safe_pickle import UnsafePickleError, dump_py2_arrays, load_arrays
from skkgp.layout import DEAP_CHANNELS
from skkgp.transforms import BandDifferentialEntropy, segment_mean_features

SMALL = dict(n_subjects=2, n_trials=3, duration=4.0, random_state=7)


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """Two subjects, 3 short trials each, in both formats (kept small for speed)."""
    root = tmp_path_factory.mktemp("deap_small")
    return write_deap_like(root, format="both", **SMALL)


@pytest.fixture(scope="module")
def full_release(tmp_path_factory):
    """One subject in the exact DEAP format: 40 trials x 40 channels x 8064 samples."""
    root = tmp_path_factory.mktemp("deap_full")
    return write_deap_like(root, n_subjects=1, random_state=11, format="both")


def _copy_release(release: Path, destination: Path) -> Path:
    shutil.copytree(release, destination)
    return destination


def _digest(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the simulator ----------------------------------------------------------------------


def test_make_deap_like_fields_and_shapes():
    data = make_deap_like(n_subjects=2, n_trials=5, duration=3.0, random_state=0)
    assert data.X.shape == (2 * 5 * 3, 32, 128) and data.X.dtype == np.float32
    assert np.isfinite(data.X).all()
    assert data.ch_names == list(DEAP_CHANNELS) and data.sfreq == 128.0
    assert data.y.dtype.kind == "i" and set(np.unique(data.y)) <= {0, 1}
    np.testing.assert_array_equal(data.groups, np.repeat([1, 2], 15))
    # one trial id per (subject, trial), unique across subjects
    pairs = set(zip(data.frame.subject, data.frame.trial, strict=True))
    assert len(np.unique(data.trials)) == len(pairs) == 10
    assert list(data.frame.columns) == ["subject", "trial", "trial_id", "window", "start",
                                        "valence", "arousal", "dominance", "liking"]
    assert len(data.frame) == len(data.X)
    np.testing.assert_array_equal(data.y, (data.frame.valence >= 5.0).astype(int))
    assert data.frame.start.iloc[:3].tolist() == [384, 512, 640]
    ratings = data.frame[["valence", "arousal", "dominance", "liking"]].to_numpy()
    assert ratings.min() >= 1 and ratings.max() <= 9
    assert "SIMULATED" in data.DESCR


def test_make_deap_like_is_reproducible_and_subject_wise_stable():
    a = make_deap_like(n_subjects=2, n_trials=2, duration=2.0, random_state=3)
    b = make_deap_like(n_subjects=2, n_trials=2, duration=2.0, random_state=3)
    c = make_deap_like(n_subjects=1, n_trials=2, duration=2.0, random_state=3)
    d = make_deap_like(n_subjects=1, n_trials=2, duration=2.0, random_state=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.X[: len(c.X)], c.X)  # subject 1 independent of n_subjects
    assert not np.allclose(c.X, d.X)


def test_make_deap_like_overlap_baseline_and_targets():
    data = make_deap_like(n_subjects=1, n_trials=2, duration=2.0, window=128, overlap=64,
                          baseline="return", target="arousal", threshold=4.0, random_state=0)
    assert data.X.shape[0] == 2 * 3  # (256 - 128) // 64 + 1 windows per trial
    np.testing.assert_array_equal(data.X[1, :, :64], data.X[0, :, 64:])
    assert data.baseline.shape == (2, 32, 384) and data.baseline.dtype == np.float32
    np.testing.assert_array_equal(data.baseline_index, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.y, (data.frame.arousal >= 4.0).astype(int))
    everything = make_deap_like(n_subjects=1, n_trials=2, duration=2.0, eeg_only=False,
                                random_state=0)
    assert everything.X.shape[1] == 40
    assert everything.ch_names[32:] == list(DEAP_PERIPHERAL_CHANNELS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_trials": 1.5}, "n_trials"),
        ({"window": 0}, "window"),
        ({"overlap": 128}, "overlap"),
        ({"target": "happiness"}, "target"),
        ({"threshold": "high"}, "threshold"),
        ({"baseline": "subtract"}, "baseline"),
        ({"duration": 0.5}, "fewer than window"),
        ({"noise": -1.0}, "noise"),
        ({"valence_effect": np.nan}, "valence_effect"),
        ({"random_state": "seed"}, "random_state"),
        ({"scenario": "decoy"}, "scenario must be one of 'default', 'shortcut'"),
        ({"scenario": None}, "scenario must be one of"),
        ({"scenario": "shortcut", "shortcut_effect": -0.5}, "shortcut_effect"),
        ({"shortcut_effect": np.inf}, "shortcut_effect"),
    ],
)
def test_make_deap_like_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_deap_like(**{"n_subjects": 1, "n_trials": 2, "duration": 2.0, **kwargs})


def _trial_level_shuffle(y, trials, rng):
    """Permute labels between trials (every window of a trial keeps one label)."""
    ids, first = np.unique(trials, return_index=True)
    permuted = dict(zip(ids, rng.permutation(y[first]), strict=True))
    return np.array([permuted[t] for t in trials])


def test_band_power_classifier_beats_chance_and_shuffled_labels_do_not():
    data = make_deap_like(n_subjects=4, n_trials=40, duration=5.0, random_state=0)
    features = BandDifferentialEntropy().fit_transform(data.X)
    pipe = make_pipeline(FunctionTransformer(lambda F: F.reshape(len(F), -1)),
                         StandardScaler(), LogisticRegression(max_iter=500))
    cv = GroupKFold(n_splits=5)  # windows of a trial never straddle train and test
    score = cross_val_score(pipe, features, data.y, groups=data.trials, cv=cv).mean()
    shuffled = _trial_level_shuffle(data.y, data.trials, np.random.default_rng(0))
    chance = cross_val_score(pipe, features, shuffled, groups=data.trials, cv=cv).mean()
    # 160 independent trials: accuracy at chance has a std of about 0.04, so 0.5 +- 0.12
    # is a 3-sigma band; across seeds the real score sits at 0.71-0.77.
    assert score > 0.65, score
    assert abs(chance - 0.5) < 0.12, chance
    assert score - chance > 0.1


# --- the shortcut scenario -------------------------------------------------------------


def test_shortcut_scenario_adds_the_shortcut_and_nothing_else():
    kwargs = dict(n_subjects=2, n_trials=7, duration=2.0, random_state=3)
    default = make_deap_like(**kwargs)
    shortcut = make_deap_like(**kwargs, scenario="shortcut")
    np.testing.assert_array_equal(shortcut.y, default.y)
    assert "shortcut" not in default and "shortcut" not in default.frame
    sites = [DEAP_CHANNELS.index(name) for name in SHORTCUT_CHANNELS]
    others = np.setdiff1d(np.arange(32), sites)
    np.testing.assert_array_equal(shortcut.X[:, others], default.X[:, others])
    assert not np.allclose(shortcut.X[:, sites], default.X[:, sites])
    # One sign per trial; ceil(7 / 2) = 4 trials of each subject follow valence.
    assert shortcut.shortcut.dtype == np.int8
    for trial in np.unique(shortcut.trials):
        assert np.unique(shortcut.shortcut[shortcut.trials == trial]).size == 1
    for subject in (1, 2):
        in_subject = shortcut.groups == subject
        first = np.unique(shortcut.trials[in_subject], return_index=True)[1]
        assert sorted(shortcut.shortcut[in_subject][first].tolist()) == [-1] * 3 + [1] * 4
    np.testing.assert_array_equal(shortcut.frame["shortcut"], shortcut.shortcut)
    assert "shortcut" in shortcut.DESCR


def _trial_correlations(data, channels, band):
    """Per trial: valence rating and baseline-corrected mean DE of ``channels`` in ``band``."""
    entropy = BandDifferentialEntropy()
    features = entropy.fit_transform(data.X)
    base = segment_mean_features(entropy, data.baseline, data.X.shape[-1])
    features = features - base[data.baseline_index]
    picks = [DEAP_CHANNELS.index(name) for name in channels]
    trials = np.unique(data.trials)
    power = np.array([features[data.trials == t][:, picks, band].mean() for t in trials])
    valence = np.array([data.frame["valence"][data.trials == t].iloc[0] for t in trials])
    sign = np.array([data.shortcut[data.trials == t][0] for t in trials])
    return {s: np.corrcoef(power[sign == s], valence[sign == s])[0, 1] for s in (1, -1)}


def test_shortcut_follows_valence_in_training_trials_and_is_reversed_in_held_out_ones():
    data = make_deap_like(n_subjects=2, n_trials=30, duration=2.0, random_state=0,
                          scenario="shortcut", baseline="return")
    # Gamma (band 3) power on T7/T8: the shortcut.
    emg = _trial_correlations(data, ("T7", "T8"), 3)
    assert emg[1] > 0.6 and emg[-1] < -0.6, emg
    # Left-frontal alpha (band 1): the true signal, the same in both halves.
    alpha = _trial_correlations(data, ("Fp1", "AF3", "F3", "F7"), 1)
    assert alpha[1] < -0.5 and alpha[-1] < -0.5, alpha
    # Without the shortcut, temporal gamma says nothing about valence.
    default = make_deap_like(n_subjects=2, n_trials=30, duration=2.0, random_state=0,
                             baseline="return")
    default.shortcut = data.shortcut
    assert max(abs(r) for r in _trial_correlations(default, ("T7", "T8"), 3).values()) < 0.4


# --- write_deap_like -> load_deap -------------------------------------------------------


def test_written_files_have_the_exact_deap_format(full_release):
    dat = full_release / "data_preprocessed_python" / "s01.dat"
    with open(dat, "rb") as f:  # the way DEAP's documentation reads it
        content = pickle.load(f, encoding="latin1")
    assert set(content) == {"data", "labels"}
    assert content["data"].shape == (40, 40, 8064) and content["data"].dtype == np.float64
    assert content["labels"].shape == (40, 4) and content["labels"].dtype == np.float64
    assert content["labels"].min() >= 1 and content["labels"].max() <= 9
    mat = loadmat(full_release / "data_preprocessed_matlab" / "s01.mat")
    np.testing.assert_array_equal(mat["data"], content["data"])
    np.testing.assert_array_equal(mat["labels"], content["labels"])


def test_round_trip_matches_the_simulation_for_both_releases(full_release):
    from_python = load_deap(full_release, baseline="return")
    from_matlab = load_deap(full_release / "data_preprocessed_matlab", baseline="return")
    simulated = make_deap_like(n_subjects=1, duration=60.0, random_state=11,
                               baseline="return")
    assert from_python.X.shape == (40 * 60, 32, 128) and from_python.X.dtype == np.float32
    for loaded in (from_python, from_matlab):
        np.testing.assert_array_equal(loaded.X, simulated.X)
        np.testing.assert_array_equal(loaded.y, simulated.y)
        np.testing.assert_array_equal(loaded.trials, simulated.trials)
        np.testing.assert_array_equal(loaded.baseline, simulated.baseline)
        assert loaded.frame.equals(simulated.frame)
        assert loaded.ch_names == simulated.ch_names
    assert "SIMULATED" not in from_python.DESCR


def test_load_deap_options(small_release):
    both = load_deap(small_release)
    assert both.X.shape == (2 * 3 * 4, 32, 128)
    one = load_deap(small_release / "data_preprocessed_python", subjects=[2], window=256,
                    overlap=128, target="liking", eeg_only=False)
    assert one.X.shape == (3 * 3, 40, 256)
    np.testing.assert_array_equal(one.groups, 2)
    assert one.trials.min() == 3  # subject 2's first trial: (2 - 1) * 3 trials + 0
    np.testing.assert_array_equal(one.y, (one.frame.liking >= 5).astype(int))
    matlab_only = load_deap(small_release, format="matlab", subjects=2)
    np.testing.assert_array_equal(matlab_only.X, both.X[12:])


# --- bad input --------------------------------------------------------------------------


def test_missing_folder_and_files(tmp_path, small_release):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_deap(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no data_preprocessed_python or"):
        load_deap(tmp_path)
    with pytest.raises(FileNotFoundError, match="s07.dat"):
        load_deap(small_release, subjects=[1, 7])
    (tmp_path / "data_preprocessed_python").mkdir()
    with pytest.raises(FileNotFoundError, match="No sXX.dat subject files"):
        load_deap(tmp_path)
    with pytest.raises(ValueError, match="subjects"):
        load_deap(small_release, subjects=[0])


@pytest.mark.parametrize("kind", ["python", "matlab"])
def test_truncated_files_raise_naming_the_file(tmp_path, small_release, kind):
    release = _copy_release(small_release, tmp_path / "release")
    folder = release / f"data_preprocessed_{kind}"
    victim = folder / f"s02.{'dat' if kind == 'python' else 'mat'}"
    victim.write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"s02\.(dat|mat).*truncated"):
        load_deap(folder)


def test_matlab_v73_release_loads_like_the_v5_release(tmp_path, small_release):
    release = _copy_release(small_release, tmp_path / "release")
    for file in (release / "data_preprocessed_matlab").glob("s*.mat"):
        write_mat(file, read_mat(file, what="test"), format="v7.3")
        assert file.read_bytes()[:10] == b"MATLAB 7.3"
    v73 = load_deap(release, format="matlab")
    v5 = load_deap(small_release, format="matlab")
    np.testing.assert_array_equal(v73.X, v5.X)
    np.testing.assert_array_equal(v73.y, v5.y)


@pytest.mark.parametrize("kind", ["python", "matlab"])
def test_samples_beyond_float32_are_refused_naming_the_file(tmp_path, small_release, kind):
    # A corrupt sample of 1e300 used to become inf in the float32 windows, with only a
    # numpy overflow warning.
    release = _copy_release(small_release, tmp_path / "release")
    folder = release / f"data_preprocessed_{kind}"
    victim = folder / f"s02.{'dat' if kind == 'python' else 'mat'}"
    content = (load_arrays(open(victim, "rb"), encoding="latin1") if kind == "python"
               else read_mat(victim, what="test"))
    content["data"][1, 3, 700] = 1e300
    with open(victim, "wb") as f:
        dump_py2_arrays(content, f) if kind == "python" else savemat(f, content)
    with pytest.raises(ValueError, match=r"s02\.(dat|mat)'.*beyond float32's range"):
        load_deap(folder)


@pytest.mark.parametrize("kind", ["python", "matlab"])
@pytest.mark.parametrize(("rescale", "found"), [
    (lambda labels: labels * 10, r"\d+(\.\d+)?\.\.\d+(\.\d+)?"),  # a x10 scale
    (lambda labels: labels - 1, r"0(\.\d+)?\.\.\d+(\.\d+)?"),  # 0-based
], ids=["x10", "0-based"])
def test_ratings_outside_one_to_nine_are_refused_naming_the_file(tmp_path, small_release, kind,
                                                                 rescale, found):
    # They used to load: x10 ratings gave every window label 1 at threshold 5.
    release = _copy_release(small_release, tmp_path / "release")
    folder = release / f"data_preprocessed_{kind}"
    victim = folder / f"s02.{'dat' if kind == 'python' else 'mat'}"
    content = (load_arrays(open(victim, "rb"), encoding="latin1") if kind == "python"
               else read_mat(victim, what="test"))
    content["labels"] = rescale(content["labels"])
    with open(victim, "wb") as f:
        dump_py2_arrays(content, f) if kind == "python" else savemat(f, content)
    with pytest.raises(ValueError, match=rf"s02\.(dat|mat)': 'labels' holds ratings {found} "
                                         r"\(outside in valence.*\); DEAP's self-assessments "
                                         r"are 1\.\.9"):
        load_deap(folder)
    assert load_deap(folder, subjects=1).X.shape[0] > 0  # the other file still loads


@pytest.mark.parametrize("kind", ["python", "matlab"])
def test_data_with_swapped_axes_or_no_stimulus_is_refused_naming_the_file(tmp_path, kind):
    folder = tmp_path / f"data_preprocessed_{kind}"
    folder.mkdir()
    file = folder / f"s01.{'dat' if kind == 'python' else 'mat'}"
    labels = np.full((3, 4), 5.0)

    def write(data):
        with open(file, "wb") as f:
            content = {"data": data, "labels": labels}
            dump_py2_arrays(content, f) if kind == "python" else savemat(f, content)

    # (trials, samples, channels): used to fail with "Trials have -344 samples" and no file.
    write(np.zeros((3, 512, 40)))
    with pytest.raises(ValueError, match=r"s01\.(dat|mat)': 'data' has shape \(3, 512, 40\), "
                                         r"more channels than samples; DEAP's layout is "
                                         r"\(trials, channels, samples\), \(40, 40, 8064\)"):
        load_deap(folder)
    write(np.zeros((3, 40, 300)))
    with pytest.raises(ValueError, match=r"s01\.(dat|mat)': 'data' has shape \(3, 40, 300\): "
                                         r"300 samples per trial, none after the 384-sample"):
        load_deap(folder)
    write(np.zeros((3, 40, 512)))
    with pytest.raises(ValueError, match=r"s01\.(dat|mat): trials have 128 samples after the "
                                         r"384-sample baseline, fewer than window=256"):
        load_deap(folder, window=256)
    assert load_deap(folder).X.shape == (3, 32, 128)


def test_mat_without_expected_keys(tmp_path):
    folder = tmp_path / "data_preprocessed_matlab"
    folder.mkdir()
    savemat(folder / "s01.mat", {"eeg": np.zeros((2, 40, 500)), "labels": np.ones((2, 4))})
    with pytest.raises(ValueError, match=r"s01\.mat' has no 'data' entry"):
        load_deap(tmp_path)
    savemat(folder / "s01.mat", {"data": np.zeros((2, 40, 600)), "labels": np.ones((3, 4))})
    with pytest.raises(ValueError, match="'labels' must be"):
        load_deap(tmp_path)


def test_pickle_with_wrong_content(tmp_path):
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    with open(folder / "s01.dat", "wb") as f:
        dump_py2_arrays({"labels": np.ones((2, 4))}, f)
    with pytest.raises(ValueError, match="has no 'data' entry"):
        load_deap(folder)
    with open(folder / "s01.dat", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ValueError, match="holds a list"):
        load_deap(folder)


class _RunsCode:
    """Unpickling this with plain pickle would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


@pytest.mark.parametrize("payload", [_RunsCode, _Evals])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_crafted_pickle_never_runs_code(tmp_path, payload, protocol):
    marker = tmp_path / "pwned"
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    crafted = {"data": payload(marker), "labels": np.ones((40, 4))}
    (folder / "s01.dat").write_bytes(pickle.dumps(crafted, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"s01\.dat.*refusing to load"):
        load_deap(tmp_path)
    assert not marker.exists()


def test_restricted_unpickler_reads_every_numpy_protocol(rng):
    import io

    arrays = {"data": rng.standard_normal((2, 3, 4)), "labels": np.arange(8.0).reshape(2, 4)}
    # Protocols 0-2 pickle the array buffers as _codecs.encode(text, "latin1").
    for protocol in range(6):
        loaded = load_arrays(io.BytesIO(pickle.dumps(arrays, protocol=protocol)))
        np.testing.assert_array_equal(loaded["data"], arrays["data"])
    buffer = io.BytesIO()
    dump_py2_arrays(arrays, buffer)
    np.testing.assert_array_equal(load_arrays(io.BytesIO(buffer.getvalue()))["labels"],
                                  arrays["labels"])


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_deap_file_re_pickled_by_python3_at_an_old_protocol_loads(tmp_path, small_release,
                                                                  protocol):
    # Used to be refused as "corrupt or crafted" (_codecs.encode was not allowed).
    source = small_release / "data_preprocessed_python" / "s01.dat"
    with open(source, "rb") as f:
        content = pickle.load(f, encoding="latin1")  # the DEAP documentation's way
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    with open(folder / "s01.dat", "wb") as f:
        pickle.dump(content, f, protocol=protocol)
    assert b"_codecs" in (folder / "s01.dat").read_bytes()
    ours = load_deap(folder, baseline="return")
    original = load_deap(small_release, subjects=1, baseline="return")
    np.testing.assert_array_equal(ours.X, original.X)
    np.testing.assert_array_equal(ours.y, original.y)
    np.testing.assert_array_equal(ours.baseline, original.baseline)


class _Encodes:
    """Pickles as _codecs.encode(text, encoding), the name Python 3 uses for bytes."""

    def __init__(self, text, encoding):
        self.text, self.encoding = text, encoding

    def __reduce__(self):
        import codecs

        return (codecs.encode, (self.text, self.encoding))


@pytest.mark.parametrize(("text", "encoding"), [
    ("eJzLSM3JyVcozy/KSQEAGgQEXQ==", "base64"),  # runs another codec
    ("hello", "rot13"),
    (b"\x00\x01", "latin1"),  # not text
    ("hello", None),
])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_codecs_encode_is_allowed_for_latin1_text_only(tmp_path, text, encoding, protocol):
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    crafted = {"data": _Encodes(text, encoding), "labels": np.ones((40, 4))}
    (folder / "s01.dat").write_bytes(pickle.dumps(crafted, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"s01\.dat.*refusing to load _codecs\.encode "
                                                r"with (str|bytes) and encoding"):
        load_deap(tmp_path)


def test_loading_never_modifies_input_files(small_release):
    before = _digest(small_release)
    load_deap(small_release, baseline="return")
    load_deap(small_release, format="matlab")
    assert _digest(small_release) == before


def test_write_deap_like_refuses_to_overwrite(tmp_path):
    root = write_deap_like(tmp_path, n_subjects=1, n_trials=1, duration=1.0, random_state=0)
    before = _digest(root)
    with pytest.raises(FileExistsError, match="s01.dat"):
        write_deap_like(tmp_path, n_subjects=1, n_trials=1, duration=1.0, random_state=1)
    assert _digest(root) == before
    with pytest.raises(ValueError, match="format"):
        write_deap_like(tmp_path, format="csv")


def test_simulate_subject_twice_with_one_rng_gives_independent_shortcut_emg():
    kwargs = dict(n_trials=4, n_samples=512, baseline_samples=128)
    sites = [DEAP_CHANNELS.index(name) for name in SHORTCUT_CHANNELS]
    others = np.setdiff1d(np.arange(32), sites)
    rng, plain_rng = np.random.default_rng(0), np.random.default_rng(0)
    emg = []
    for _ in range(2):
        with_emg, _ = simulate_subject(rng, shortcut_effect=0.9, **kwargs)
        without, _ = simulate_subject(plain_rng, shortcut_effect=0.0, **kwargs)
        # The EMG draws none of the main stream: the other channels are the same.
        np.testing.assert_array_equal(with_emg[:, others], without[:, others])
        emg.append((with_emg - without)[:, sites].ravel())
    assert abs(np.corrcoef(emg[0], emg[1])[0, 1]) < 0.1


def test_make_deap_like_has_no_file_limit_and_write_deap_like_names_its_own(tmp_path):
    assert make_deap_like(n_subjects=100, n_trials=1, duration=1.0, window=128,
                          random_state=0).groups.max() == 100
    with pytest.raises(ValueError, match=r"at most 99 .*s01\.\.s99"):
        write_deap_like(tmp_path, n_subjects=100, n_trials=1, duration=1.0)
    assert not any(tmp_path.iterdir())  # refused before writing anything
