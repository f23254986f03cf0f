"""SEED and SEED-IV: the loader on files written in the releases' layouts, and bad files."""

import shutil

import numpy as np
import pytest
import scipy.io

from skkgp.datasets import (
    SEED_DE_BANDS,
    SEED_IV_LABELS,
    SEED_LABELS,
    load_seed,
    write_seed_like,
)
from skkgp.datasets._matfile import is_mat_v73, read_mat, write_mat
from skkgp.layout import SEED_CHANNELS
from skkgp.transforms import BandDifferentialEntropy


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """SEED and SEED-IV, raw and DE, as MATLAB v5 and v7.3 files: 2 subjects x 2 sessions."""
    out = {}
    for version in ("seed", "seed-iv"):
        for fmt in ("v5", "v7.3"):
            root = tmp_path_factory.mktemp(f"{version}-{fmt}")
            out[version, fmt] = write_seed_like(root, n_subjects=2, n_sessions=2,
                                                version=version, format=fmt, random_state=0)
    return out


def _copy(release, tmp_path):
    return shutil.copytree(release, tmp_path / "release")


def _refused(root, message):
    """``load_seed(root)`` raises a ValueError whose text matches ``message``."""
    with pytest.raises(ValueError, match=message):
        load_seed(root)


@pytest.mark.parametrize("version", ["seed", "seed-iv"])
@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_raw_release_loads_with_its_labels_sessions_and_clips(releases, version, fmt):
    root = releases[version, fmt]
    folder = root / ("Preprocessed_EEG" if version == "seed" else "eeg_raw_data")
    some_file = sorted(folder.rglob("1_*.mat"))[0]
    assert is_mat_v73(some_file) == (fmt == "v7.3")
    data = load_seed(root, version=version)
    n_clips = 15 if version == "seed" else 24
    assert data.X.dtype == np.float32 and data.X.shape[1:] == (62, 200)
    assert data.ch_names == list(SEED_CHANNELS) and data.sfreq == 200.0
    assert set(np.unique(data.groups)) == {1, 2} and set(np.unique(data.sessions)) == {1, 2}
    assert np.unique(data.trials).size == 2 * 2 * n_clips
    frame = data.frame
    for row in frame.drop_duplicates("trial_id").itertuples():
        expected = (SEED_LABELS[row.clip - 1] if version == "seed"
                    else SEED_IV_LABELS[row.session - 1][row.clip - 1])
        assert row.emotion == expected
    assert np.array_equal(data.y, frame.emotion.to_numpy())
    # The first window is the clip's first second, exactly as written.
    content = read_mat(some_file, what="test")
    first = next(v for k, v in content.items() if k.endswith("_eeg1"))
    row = np.flatnonzero((frame.subject == 1) & (frame.session == 1) & (frame["clip"] == 1))[0]
    np.testing.assert_allclose(data.X[row], first[:, :200].astype(np.float32))


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_de_release_is_the_differential_entropy_of_the_raw_seconds(releases, fmt):
    root = releases["seed", fmt]
    raw = load_seed(root, version="seed", window=200)
    de = load_seed(root, features="de", version="seed")
    assert de.X.shape[1:] == (62, 5) and de.feature_names == list(SEED_DE_BANDS)
    assert np.array_equal(de.frame[["subject", "session", "clip", "window"]].to_numpy(),
                          raw.frame[["subject", "session", "clip", "window"]].to_numpy())
    ours = BandDifferentialEntropy(bands=SEED_DE_BANDS, sfreq=200.0).fit_transform(raw.X[:50])
    np.testing.assert_allclose(de.X[:50], ours, atol=1e-3)


def test_seed_iv_de_windows_are_four_seconds(releases):
    de = load_seed(releases["seed-iv", "v5"], features="de", version="seed-iv")
    assert de.X.shape[1:] == (62, 5)
    assert set(np.diff(de.frame.start.to_numpy())[de.frame["window"].to_numpy()[1:] > 0]) == {800}


def test_options_select_subjects_sessions_windows_and_smoothing(releases):
    root = releases["seed", "v5"]
    data = load_seed(root, subjects=[2], sessions=2, window=100, overlap=50)
    assert set(data.groups) == {2} and set(data.sessions) == {2}
    assert data.X.shape[1:] == (62, 100)
    steps = np.diff(data.frame.start.to_numpy())[data.frame["window"].to_numpy()[1:] > 0]
    assert set(steps) == {50}
    moving = load_seed(root / "ExtractedFeatures", features="de", smoothing="movingAve")
    assert moving.X.shape == load_seed(root, features="de").X.shape


def test_loading_never_modifies_the_release(releases):
    root = releases["seed", "v5"]
    before = {p: p.read_bytes() for p in root.rglob("*.mat")}
    load_seed(root)
    assert {p: p.read_bytes() for p in root.rglob("*.mat")} == before


def test_writer_refuses_to_overwrite(releases):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_seed_like(releases["seed", "v5"], n_subjects=1, n_sessions=1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"features": "psd"}, "features must be 'raw'"),
    ({"version": "seed-v"}, "version must be one of"),
    ({"window": 0}, "window must be a positive int"),
    ({"overlap": 200}, "overlap must be an int"),
    ({"subjects": [0]}, "subjects must be numbers"),
    ({"sessions": [4]}, "sessions must be numbers 1..3"),
    ({"smoothing": "kalman"}, "smoothing must be one of"),
])
def test_bad_arguments(releases, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_seed(releases["seed", "v5"], **kwargs)


# --- bad files: each error names the file --------------------------------------------------


def _rewrite(file, change, fmt="v5"):
    content = read_mat(file, what="test")
    change(content)
    write_mat(file, content, format=fmt)


def test_missing_folder_subject_and_label_file(releases, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_seed(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no Preprocessed_EEG folder"):
        load_seed(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"subjects \[7\] have no"):
        load_seed(releases["seed", "v5"], subjects=7)
    root = _copy(releases["seed", "v5"], tmp_path)
    (root / "Preprocessed_EEG" / "label.mat").unlink()
    with pytest.raises(FileNotFoundError, match="label.mat.*does not exist"):
        load_seed(root)
    with pytest.raises(FileNotFoundError, match=r"session folder '.*eeg_raw_data/3'"):
        load_seed(releases["seed-iv", "v5"], version="seed-iv", sessions=3)


def test_extra_files_are_named(releases, tmp_path):
    root = _copy(releases["seed", "v5"], tmp_path)
    folder = root / "Preprocessed_EEG"
    shutil.copy(folder / "label.mat", folder / "notes.mat")
    _refused(root, r"\['notes.mat'\]")
    (folder / "notes.mat").unlink()
    shutil.copy(next(folder.glob("1_2013*.mat")), folder / "1_20200101.mat")
    shutil.copy(next(folder.glob("1_2013*.mat")), folder / "1_20210101.mat")
    _refused(root, "subject 1 has 4 files.*1_20210101.mat")


def test_missing_clip_and_inconsistent_channel_count(releases, tmp_path):
    root = _copy(releases["seed", "v5"], tmp_path)
    file = next((root / "Preprocessed_EEG").glob("2_*.mat"))
    _rewrite(file, lambda c: c.pop("abx_eeg7"))
    _refused(root, rf"{file.name}.*missing clips \[7\]")
    _rewrite(file, lambda c: c.update(abx_eeg7=c["abx_eeg6"][:61]))
    _refused(root, rf"{file.name}.*'abx_eeg7' has 61 channels")
    de_file = next((root / "ExtractedFeatures").glob("2_*.mat"))
    _rewrite(de_file, lambda c: c.update(de_LDS3=c["de_LDS3"][:, :, :4]))
    with pytest.raises(ValueError, match=rf"{de_file.name}.*'de_LDS3' has 4 bands"):
        load_seed(root, features="de")


def test_labels_that_do_not_match_the_clips(releases, tmp_path):
    root = _copy(releases["seed", "v5"], tmp_path)
    label = root / "Preprocessed_EEG" / "label.mat"
    write_mat(label, {"label": np.ones((1, 14))})
    _refused(root, r"label.mat.*15 clip labels; got \(1, 14\)")
    write_mat(label, {"label": np.full((1, 15), 2.0)})
    _refused(root, r"label.mat.*-1, 0 or 1; got \[2.0\]")


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_non_finite_and_overflowing_values_are_named(releases, tmp_path, fmt):
    root = _copy(releases["seed", fmt], tmp_path)
    file = next((root / "Preprocessed_EEG").glob("1_*.mat"))

    def poison(content, value):
        content["aax_eeg2"] = content["aax_eeg2"].copy()
        content["aax_eeg2"][3, 10] = value

    _rewrite(file, lambda c: poison(c, np.nan), fmt)
    _refused(root, rf"{file.name}.*'aax_eeg2' contains NaN or infinite")
    _rewrite(file, lambda c: poison(c, 1e300), fmt)
    _refused(root, rf"{file.name}.*beyond float32's range")


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_truncated_files_are_named(releases, tmp_path, fmt):
    root = _copy(releases["seed", fmt], tmp_path)
    file = next((root / "Preprocessed_EEG").glob("1_*.mat"))
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    _refused(root, rf"{file.name}' is not a readable SEED raw file")


def test_v73_files_are_real_hdf5_that_scipy_refuses(releases):
    file = next((releases["seed", "v7.3"] / "Preprocessed_EEG").glob("1_*.mat"))
    assert file.read_bytes()[:10] == b"MATLAB 7.3"
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(file)


def test_clips_shorter_than_the_window_are_skipped_and_all_short_is_named(releases):
    # Simulated clips last 3.5-4.5 s (700-900 samples): window=800 leaves some out.
    root = releases["seed", "v5"]
    file = sorted((root / "Preprocessed_EEG").glob("1_*.mat"))[0]
    content = read_mat(file, what="test")
    lengths = {int(k.rsplit("eeg", 1)[1]): v.shape[1] for k, v in content.items()
               if "_eeg" in k}
    short = sorted(clip for clip, n in lengths.items() if n < 800)
    assert 0 < len(short) < 15
    with pytest.warns(UserWarning, match=rf"{len(short)} of 15 SEED clips are shorter than "
                                         r"window=800.*1_\d+\.mat clip"):
        data = load_seed(root, window=800, subjects=1, sessions=1)
    clips = data.frame["clip"].to_numpy()
    assert sorted(set(range(1, 16)) - set(clips)) == short
    for clip, n in lengths.items():  # each long clip keeps its one 800-sample window
        assert (clips == clip).sum() == (1 if n >= 800 else 0)
    long_clip = min(clip for clip, n in lengths.items() if n >= 800)
    signal = next(v for k, v in content.items() if k.endswith(f"_eeg{long_clip}"))
    row = np.flatnonzero(clips == long_clip)[0]
    np.testing.assert_allclose(data.X[row], signal[:, :800].astype(np.float32))
    longest = max(lengths.values())
    with pytest.raises(ValueError, match=rf"all shorter than window=2000 samples \(the longest: "
                                         rf".*clip \d+, {longest} samples\)"):
        load_seed(root, window=2000, subjects=1, sessions=1)


def test_de_files_without_any_window_are_named(releases, tmp_path):
    root = _copy(releases["seed", "v5"], tmp_path)
    for file in (root / "ExtractedFeatures").glob("1_*.mat"):
        _rewrite(file, lambda c: c.update({k: v[:, :0] for k, v in c.items()
                                           if k.startswith("de_")}))
    with pytest.raises(ValueError, match=r"SEED de files in .*ExtractedFeatures' hold no window"):
        load_seed(root, features="de", subjects=1)


@pytest.mark.parametrize("version", ["seed", "seed-iv"])
def test_writer_never_adds_a_recording_beside_another_of_the_same_subject(tmp_path, version):
    # A downloaded release: subject 1's file under the release's own date.
    root = write_seed_like(tmp_path, n_subjects=1, n_sessions=1, version=version,
                           features="raw", random_state=0)
    folder = root / ("Preprocessed_EEG" if version == "seed" else "eeg_raw_data/1")
    (written,) = folder.glob("1_*.mat")
    real = written.rename(folder / "1_20160518.mat")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    expected = load_seed(root, version=version)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"beside \[.*1_20160518\.mat'\].*another "
                                                  "folder"):
            write_seed_like(root, n_subjects=1, n_sessions=1, version=version,
                            features="raw", random_state=1, overwrite=overwrite)
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert np.array_equal(load_seed(root, version=version).X, expected.X)
    # overwrite=True replaces a file of the same name.
    real.rename(written)
    write_seed_like(root, n_subjects=1, n_sessions=1, version=version, features="raw",
                    random_state=1, overwrite=True)
    assert written.read_bytes() != before[real]
    assert load_seed(root, version=version).X.shape[1:] == (62, 200)
