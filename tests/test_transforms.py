"""Tests of skkgp.transforms: band DE, baseline removal, grids, standardisation."""

import pickle

import numpy as np
import pytest
import sklearn
from scipy import signal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate
from sklearn.pipeline import FunctionTransformer, make_pipeline

from skkgp.layout import DEAP_CHANNELS, DEAP_GRID, SEED_CHANNELS, SEED_GRID
from skkgp.transforms import (
    DEFAULT_BANDS,
    BandDifferentialEntropy,
    BaselineRemoval,
    ChannelStandardizer,
    ToGrid,
    segment_mean_features,
)

SFREQ = 128.0


@pytest.fixture
def windows(rng):
    return rng.standard_normal((6, 32, 128)).astype(np.float32) * 10


# --- BandDifferentialEntropy ------------------------------------------------------------


def test_de_matches_sosfiltfilt_reference(windows):
    de = BandDifferentialEntropy().fit(windows)
    out = de.transform(windows)
    assert out.shape == (6, 32, 4) and out.dtype == np.float32
    for band, (low, high) in enumerate(DEFAULT_BANDS.values()):
        sos = signal.butter(4, (low, high), btype="bandpass", fs=SFREQ, output="sos")
        filtered = signal.sosfiltfilt(sos, windows.astype(np.float64), axis=-1)
        expected = 0.5 * np.log(2 * np.pi * np.e * filtered.var(axis=-1))
        np.testing.assert_allclose(out[..., band], expected, atol=1e-5)
    assert list(de.get_feature_names_out()) == ["theta", "alpha", "beta", "gamma"]


def test_de_finds_the_band_of_a_sinusoid_and_is_log_scale(rng):
    t = np.arange(256) / SFREQ
    x = np.sin(2 * np.pi * 11.0 * t)[None, None] + 0.01 * rng.standard_normal((1, 2, 256))
    out = BandDifferentialEntropy().fit_transform(x)
    assert np.all(out.argmax(axis=-1) == 1)  # alpha
    scaled = BandDifferentialEntropy().fit_transform(3.0 * x)
    np.testing.assert_allclose(scaled - out, np.log(3.0), atol=1e-5)


def test_de_custom_bands_and_sfreq(rng):
    x = rng.standard_normal((2, 3, 512))
    de = BandDifferentialEntropy(bands=[(1, 4), (70, 90)], sfreq=256.0)
    assert de.fit_transform(x).shape == (2, 3, 2)
    assert list(de.get_feature_names_out()) == ["band0", "band1"]


@pytest.mark.parametrize(
    ("params", "X", "match"),
    [
        ({}, np.zeros((2, 32, 20)), "at least 28 samples"),
        ({"bands": {"high": (40, 70)}}, np.zeros((2, 32, 128)), "Nyquist"),
        ({"bands": [(8, 4)]}, np.zeros((2, 32, 128)), "low < high"),
        ({"bands": []}, np.zeros((2, 32, 128)), "at least one"),
        ({"sfreq": -1}, np.zeros((2, 32, 128)), "sfreq"),
        ({"order": 0}, np.zeros((2, 32, 128)), "order"),
        ({}, np.zeros((32, 128)), "3-D"),
        ({}, np.full((2, 3, 128), np.nan), "NaN"),
        ({}, np.full((2, 3, 128), np.inf), "infinite"),
        ({}, np.array([[["a"] * 128] * 3] * 2), "numeric"),
        ({}, np.zeros((0, 3, 128)), "no samples"),
    ],
)
def test_de_bad_input(params, X, match):
    with pytest.raises(ValueError, match=match):
        BandDifferentialEntropy(**params).fit_transform(X)


def test_de_of_flat_channel_is_finite():
    out = BandDifferentialEntropy().fit_transform(np.zeros((1, 2, 128)))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_de_of_flat_channel_with_offset_is_clipped(dtype):
    # A constant (a DC offset) has no power in any band: its DE is the documented floor,
    # in float32 as in float64.
    floor = 0.5 * np.log(2 * np.pi * np.e * 1e-20)
    out = BandDifferentialEntropy().fit_transform(np.full((1, 2, 128), 5.0, dtype))
    np.testing.assert_allclose(out, floor, rtol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e4, 1e5])
def test_de_in_float32_matches_float64_whatever_the_offset(rng, offset):
    windows = (offset + rng.standard_normal((4, 3, 128))).astype(np.float32)
    de = BandDifferentialEntropy()
    double_windows = windows.astype(np.float64)
    single, double = de.fit_transform(windows), de.transform(double_windows)
    np.testing.assert_allclose(single, double, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(double_windows, windows)  # the input is left as it was


def test_de_is_the_same_across_chunk_boundaries(rng, monkeypatch):
    import skkgp.transforms as transforms

    windows = rng.standard_normal((7, 3, 128)).astype(np.float32)
    whole = BandDifferentialEntropy().fit_transform(windows)
    # A bound of about two windows' bytes: chunks of 2, 2, 2 and 1 windows.
    per_window = 3 * 128 * (4 * 4 + 8)
    # Equal up to float32 rounding: BLAS blocks a product by its number of rows.
    monkeypatch.setattr(transforms, "_CHUNK_BYTES", 2 * per_window + 1)
    np.testing.assert_allclose(BandDifferentialEntropy().fit_transform(windows), whole,
                               rtol=0, atol=1e-6)
    monkeypatch.setattr(transforms, "_CHUNK_BYTES", 1)  # one window at a time
    np.testing.assert_allclose(BandDifferentialEntropy().fit_transform(windows), whole,
                               rtol=0, atol=1e-6)


def test_de_refuses_another_channel_count_once_fitted(rng):
    de = BandDifferentialEntropy().fit(rng.standard_normal((2, 32, 128)))
    with pytest.raises(ValueError, match="X has 31 channels; BandDifferentialEntropy was "
                                         "fitted on 32"):
        de.transform(rng.standard_normal((2, 31, 128)))
    # Unfitted, it learns nothing and takes any count.
    assert BandDifferentialEntropy().transform(rng.standard_normal((2, 31, 128))).shape == (
        2, 31, 4)


def test_de_output_stays_an_array_under_pandas_output(windows):
    expected = BandDifferentialEntropy().fit_transform(windows)
    with sklearn.config_context(transform_output="pandas"):
        out = BandDifferentialEntropy().fit_transform(windows)
        piped = make_pipeline(BandDifferentialEntropy(), ToGrid()).fit_transform(windows)
    assert isinstance(out, np.ndarray) and out.shape == (6, 32, 4)
    np.testing.assert_array_equal(out, expected)
    assert piped.shape == (6, 4, 9, 9)


# --- BaselineRemoval --------------------------------------------------------------------


def test_baseline_removal_aligned_and_broadcast(rng):
    X = rng.standard_normal((5, 4, 3))
    base = rng.standard_normal((5, 4, 3))
    out = BaselineRemoval().fit_transform(X, baseline=base)
    np.testing.assert_allclose(out, X - base, rtol=1e-6)
    assert out.dtype == np.float32
    fixed = BaselineRemoval(baseline=base[0]).fit(X)
    np.testing.assert_allclose(fixed.transform(X), X - base[0], rtol=1e-6)
    # A baseline passed to transform wins over the parameter.
    np.testing.assert_allclose(fixed.transform(X, baseline=base), X - base, rtol=1e-6)


def test_baseline_removal_errors(rng):
    X = rng.standard_normal((5, 4, 3))
    with pytest.raises(ValueError, match="needs a baseline"):
        BaselineRemoval().fit_transform(X)
    with pytest.raises(ValueError, match=r"baseline of shape \(5, 4, 2\) does not match"):
        BaselineRemoval().fit_transform(X, baseline=np.zeros((5, 4, 2)))
    with pytest.raises(ValueError, match="baseline contains NaN"):
        BaselineRemoval().fit_transform(X, baseline=np.full((4, 3), np.nan))
    fitted = BaselineRemoval(baseline=np.zeros((4, 3))).fit(X)
    with pytest.raises(ValueError, match="fitted on"):
        fitted.transform(np.zeros((5, 5, 3)))


def test_segment_mean_features_averages_segments(rng):
    baseline = rng.standard_normal((3, 2, 384))
    de = BandDifferentialEntropy()
    mean = segment_mean_features(de, baseline, 128)
    expected = np.mean([de.transform(baseline[..., i * 128:(i + 1) * 128]) for i in range(3)],
                       axis=0)
    np.testing.assert_allclose(mean, expected, atol=1e-6)
    with pytest.raises(ValueError, match="segment"):
        segment_mean_features(de, baseline, 500)


def test_baseline_travels_through_cross_validation_with_metadata_routing(rng):
    n = 60
    y = np.repeat([0, 1], n // 2)
    base = rng.standard_normal((n, 2, 1)) * 5  # large nuisance that the baseline explains
    X = base + y[:, None, None] + 0.1 * rng.standard_normal((n, 2, 1))
    flatten = FunctionTransformer(lambda Z: Z.reshape(len(Z), -1))
    with sklearn.config_context(enable_metadata_routing=True):
        removal = BaselineRemoval().set_fit_request(baseline=True).set_transform_request(
            baseline=True)
        pipe = make_pipeline(removal, flatten, LogisticRegression())
        scores = cross_validate(pipe, X, y, cv=3, params={"baseline": base})["test_score"]
    assert scores.mean() > 0.9


# --- ToGrid -----------------------------------------------------------------------------


def test_to_grid_places_each_channel_on_its_cell(rng):
    X = rng.standard_normal((3, 32, 4)).astype(np.float32)
    grid = ToGrid().fit_transform(X)
    assert grid.shape == (3, 4, 9, 9) and grid.dtype == np.float32
    for i, name in enumerate(DEAP_CHANNELS):
        row, col = DEAP_GRID[name]
        np.testing.assert_array_equal(grid[:, :, row, col], X[:, i, :])
    occupied = np.zeros((9, 9), bool)
    occupied[tuple(np.array(list(DEAP_GRID.values())).T)] = True
    assert np.all(grid[:, :, ~occupied] == 0)


def test_to_grid_seed_custom_layout_and_channel_order(rng):
    X = rng.standard_normal((2, 62, 5))
    grid = ToGrid(layout="seed").transform(X)  # fit-free
    row, col = SEED_GRID["CB2"]
    np.testing.assert_allclose(grid[:, :, row, col], X[:, SEED_CHANNELS.index("CB2")])
    ch_names = ["O2", "fp1"]
    grid = ToGrid(ch_names=ch_names).fit_transform(X[:, :2])
    np.testing.assert_allclose(grid[:, :, 8, 5], X[:, 0])
    np.testing.assert_allclose(grid[:, :, 0, 3], X[:, 1])
    custom = ToGrid(layout={"A": (0, 0), "B": (1, 1)}).fit_transform(X[:, :2])
    assert custom.shape == (2, 5, 9, 9)
    np.testing.assert_allclose(custom[:, :, 1, 1], X[:, 1])


def test_to_grid_errors():
    with pytest.raises(ValueError, match="31 channels but the layout 'deap' expects 32"):
        ToGrid().fit(np.zeros((2, 31, 4)))
    with pytest.raises(ValueError, match="Unknown layout"):
        ToGrid(layout="nope").fit(np.zeros((2, 32, 4)))
    with pytest.raises(ValueError, match=r"\['Xx'\]"):
        ToGrid(ch_names=["Fp1", "Xx"]).fit(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="3-D"):
        ToGrid().fit(np.zeros((2, 32)))
    fitted = ToGrid().fit(np.zeros((2, 32, 4)))
    with pytest.raises(ValueError, match="fitted on 32"):
        fitted.transform(np.zeros((2, 30, 4)))


# --- ChannelStandardizer ----------------------------------------------------------------


def test_channel_standardizer_learns_in_fit_only(rng):
    X = rng.normal([[1.0], [5.0], [-3.0]], [[1.0], [2.0], [0.5]], (200, 3, 16))
    scaler = ChannelStandardizer().fit(X)
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2)), 1, atol=1e-4)
    shifted = scaler.transform(X + 10.0)  # test data keeps the training statistics
    assert np.all(shifted.mean(axis=(0, 2)) > 1)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-4, atol=1e-4)


def test_channel_standardizer_per_feature_and_constant_channel(rng):
    X = rng.normal(0, 1, (100, 2, 3)) * np.array([1.0, 10.0, 100.0])
    X[:, 1] = 7.0  # constant channel
    Z = ChannelStandardizer(per_feature=True).fit_transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[:, 0].std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(Z[:, 1], 0)


def test_channel_standardizer_errors(rng):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ChannelStandardizer().transform(np.zeros((2, 3, 4)))
    scaler = ChannelStandardizer().fit(rng.standard_normal((5, 3, 4)))
    with pytest.raises(ValueError, match="fitted on"):
        scaler.transform(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="per_feature=True needs"):
        ChannelStandardizer(per_feature=True).fit(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        ChannelStandardizer().fit(np.full((2, 3, 4), np.nan))


# --- the scikit-learn contract ----------------------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    [
        BandDifferentialEntropy(bands={"a": (8, 13)}, sfreq=128.0, order=3),
        BaselineRemoval(baseline=np.zeros((32, 4))),
        ToGrid(layout="seed", ch_names=None),
        ChannelStandardizer(per_feature=True),
    ],
)
def test_clone_get_params_and_pickle(estimator):
    copy = clone(estimator)
    assert copy is not estimator
    params, copy_params = estimator.get_params(), copy.get_params()
    assert params.keys() == copy_params.keys()
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, copy_params[key])
        else:
            assert value == copy_params[key]
    assert type(pickle.loads(pickle.dumps(estimator))) is type(estimator)


def test_pipeline_to_grid_with_clone(windows):
    pipe = make_pipeline(BandDifferentialEntropy(), ChannelStandardizer(per_feature=True),
                         ToGrid())
    out = clone(pipe).fit_transform(windows)
    assert out.shape == (6, 4, 9, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, pipe.fit(windows).transform(windows))
