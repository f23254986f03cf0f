"""scikit-learn transformers for EEG windows: band features, baseline removal, grids.

The usual chain for the grid models of the paper (CCNN, FBCCNN) is::

    raw windows (n, n_chans, n_times)
      -> BandDifferentialEntropy     (n, n_chans, n_bands)
      -> BaselineRemoval             (n, n_chans, n_bands)   DE minus the baseline's DE
      -> ToGrid                      (n, n_bands, 9, 9)

Feature extraction and grid mapping learn nothing from the data, so they can run once
outside a cross-validation loop without leaking; :class:`ChannelStandardizer` does learn
(per-channel mean and scale) and belongs inside the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import signal
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._input import eeg_input
from .layout import get_channels, get_layout, grid_cells, grid_shape

__all__ = [
    "DEFAULT_BANDS",
    "BandDifferentialEntropy",
    "BaselineRemoval",
    "ChannelStandardizer",
    "ToGrid",
    "segment_mean_features",
]

#: The paper's bands in Hz: theta, alpha, beta, gamma.
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0),
    "gamma": (31.0, 49.0),
}

# All 76,800 DEAP windows at once would need several GB of filtered bands. Windows are
# processed in chunks whose transient arrays stay within this many bytes: a window's
# filtered bands grow with its length, so the bound is in bytes, not in windows.
_CHUNK_BYTES = 64 * 2**20


def _windows_per_chunk(bytes_per_window: int) -> int:
    """How many windows of ``bytes_per_window`` transient bytes fit in one chunk."""
    return max(1, _CHUNK_BYTES // max(1, bytes_per_window))


def _check_array(X, *, name: str = "X", ndim: int | tuple[int, ...] = 3,
                 shape_hint: str = "(n_samples, n_chans, n_times)") -> np.ndarray:
    """Numeric, finite array of the expected number of dimensions (no copy if possible)."""
    X = eeg_input(X).X  # mne.Epochs: the EEG channels' data
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array of shape {shape_hint}: {exc}") from None
    if X.dtype == object or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ValueError(f"{name} must be a real numeric array; got dtype {X.dtype}.")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if X.ndim not in allowed:
        raise ValueError(f"{name} must have shape {shape_hint} ({' or '.join(map(str, allowed))}"
                         f"-D); got a {X.ndim}-D array of shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples (shape {X.shape}).")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return X


class BandDifferentialEntropy(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Differential entropy of band-passed EEG windows, one value per channel and band.

    Each window is band-passed with a zero-phase Butterworth filter
    (``scipy.signal.sosfiltfilt``) and summarised by the differential entropy of a
    Gaussian of the same variance, ``DE = 0.5 * log(2 * pi * e * var)``. The transformer
    learns nothing: ``fit`` only checks the parameters.

    Parameters
    ----------
    bands : mapping of str to (float, float) or sequence of (float, float), default=None
        Frequency bands in Hz, ``low < high < sfreq / 2``. ``None`` means
        :data:`DEFAULT_BANDS` (theta 4-8, alpha 8-14, beta 14-31, gamma 31-49 Hz).
    sfreq : float, default=128.0
        Sampling frequency in Hz.
    order : int, default=4
        Butterworth order of each band-pass filter.

    Attributes
    ----------
    band_names_ : list of str
        Names of the bands, in output order (``"band0"``, ... for unnamed bands).
    n_chans_ : int
        Number of channels seen in ``fit``.

    Notes
    -----
    A window must be longer than the filter's padding (``sosfiltfilt``'s ``padlen``);
    shorter windows raise a ``ValueError`` that gives the minimum. A flat channel has
    zero variance; its DE is clipped at ``0.5 * log(2 * pi * e * 1e-20)`` (about
    -21.6), whatever its constant value. Each window's mean is removed in float64
    before filtering (no band passes it), so float32 windows, which are filtered in
    float32, give the DE of float64 to about 1e-6 whatever their offset. The output
    is 3-D, so it stays an array under ``sklearn.set_config(transform_output="pandas")``
    (a DataFrame holds 2-D tables only); the transformer has no ``set_output``.

    References
    ----------
    Duan, Zhu & Lu (2013), "Differential entropy feature for EEG-based emotion
    classification", IEEE/EMBS NER.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((5, 32, 128))
    >>> BandDifferentialEntropy().fit_transform(X).shape
    (5, 32, 4)
    """

    def __init__(self, bands=None, sfreq: float = 128.0, order: int = 4):
        self.bands = bands
        self.sfreq = sfreq
        self.order = order

    def _resolved_bands(self) -> tuple[list[str], list[tuple[float, float]]]:
        bands = DEFAULT_BANDS if self.bands is None else self.bands
        if isinstance(bands, Mapping):
            names, edges = list(bands.keys()), list(bands.values())
        else:
            edges = list(bands)
            names = [f"band{i}" for i in range(len(edges))]
        if not edges:
            raise ValueError("bands must contain at least one (low, high) pair; got none.")
        sfreq = float(self.sfreq)
        if not np.isfinite(sfreq) or sfreq <= 0:
            raise ValueError(f"sfreq must be a positive number of Hz; got {self.sfreq!r}.")
        nyquist = sfreq / 2.0
        checked = []
        for name, edge in zip(names, edges, strict=True):
            try:
                low, high = (float(e) for e in edge)
            except (TypeError, ValueError):
                raise ValueError(f"Band {name!r} must be a (low, high) pair in Hz; got "
                                 f"{edge!r}.") from None
            if not 0 < low < high:
                raise ValueError(f"Band {name!r} needs 0 < low < high; got ({low}, {high}) Hz.")
            if high >= nyquist:
                raise ValueError(f"Band {name!r} ({low}-{high} Hz) reaches the Nyquist frequency "
                                 f"{nyquist} Hz of sfreq={sfreq}; lower the band or raise sfreq.")
            checked.append((low, high))
        if int(self.order) != self.order or self.order < 1:
            raise ValueError(f"order must be a positive int; got {self.order!r}.")
        return [str(n) for n in names], checked

    def _filters(self) -> list[np.ndarray]:
        _, edges = self._resolved_bands()
        return [signal.butter(int(self.order), edge, btype="bandpass", fs=float(self.sfreq),
                              output="sos") for edge in edges]

    def _windows(self, X) -> np.ndarray:
        X, _, _, sfreq = eeg_input(X)
        if sfreq is not None and sfreq != float(self.sfreq):
            raise ValueError(f"X is Epochs sampled at {sfreq:g} Hz but sfreq={self.sfreq!r}: use "
                             f"BandDifferentialEntropy(sfreq={sfreq:g}).")
        return _check_array(X)

    @staticmethod
    def _padlen(sos: np.ndarray) -> int:
        # sosfiltfilt's default padding, from its own source.
        return 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))

    def fit(self, X, y=None):
        """Check the parameters and the shape of ``X``.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_times), or mne.Epochs
            Raw EEG windows.
        y : ignored

        Returns
        -------
        self : BandDifferentialEntropy
        """
        X = self._windows(X)
        self.band_names_, _ = self._resolved_bands()
        self.n_chans_ = X.shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        """Band differential entropy of each window.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_times), or mne.Epochs
            Raw EEG windows.

        Returns
        -------
        de : ndarray of float32, shape (n_samples, n_chans, n_bands)
        """
        X = self._windows(X)
        if hasattr(self, "n_chans_") and X.shape[1] != self.n_chans_:
            raise ValueError(f"X has {X.shape[1]} channels; BandDifferentialEntropy was fitted "
                             f"on {self.n_chans_}.")
        filters = self._filters()
        n_times = X.shape[-1]
        needed = max(self._padlen(sos) for sos in filters) + 1
        if n_times < needed:
            raise ValueError(f"X has windows of {n_times} samples; band-pass filtering at order "
                             f"{self.order} needs at least {needed} samples per window.")
        # sosfiltfilt (odd padding, initial conditions scaled by the first sample) is linear
        # in the window, so for a fixed length it is one matrix: filtering every window is
        # then a single BLAS product, ~30x faster than calling sosfiltfilt on each row.
        # float32 windows are filtered in float32 (2.4x less CPU; the DE moves by ~1e-6),
        # anything else in float64. The band-passes reject a constant, so each window's
        # mean is removed first, in float64: a DC offset would otherwise leak through the
        # float32 product's rounding (a flat channel at 5.0 gave a DE of -14.5, not the
        # floor of -21.6).
        dtype = np.float32 if X.dtype in (np.float16, np.float32) else np.float64
        operators = self._centred_filter_operators(filters, n_times, dtype)
        n, n_chans = X.shape[:2]
        out = np.empty((n, n_chans, len(filters)), dtype=np.float32)
        # Per window: the float64 copy, its cast and one band's filtered rows.
        itemsize = np.dtype(dtype).itemsize
        step = _windows_per_chunk(n_chans * n_times * (8 + 2 * itemsize))
        for start in range(0, n, step):
            chunk = np.array(X[start:start + step], dtype=np.float64)  # a copy: changed below
            chunk -= chunk.mean(axis=-1, keepdims=True)
            chunk = chunk.astype(dtype, copy=False)
            rows = chunk.reshape(-1, n_times)
            for band, operator in enumerate(operators):
                centred = rows @ operator  # (rows, n_times): the band, mean removed
                variance = np.maximum(np.einsum("rt,rt->r", centred, centred) / n_times,
                                      1e-20, dtype=np.float64)
                out[start:start + step, :, band] = 0.5 * np.log(
                    2 * np.pi * np.e * variance).reshape(len(chunk), n_chans)
        return out

    @staticmethod
    def _centred_filter_operators(filters: list[np.ndarray], n_times: int,
                                  dtype: type) -> list[np.ndarray]:
        """One ``(n_times, n_times)`` matrix per band: window -> mean-removed band.

        Row ``i`` is the filtered unit impulse at ``i``, minus its mean over time; the
        operators take ``n_bands * n_times**2`` values of ``dtype`` (64 MB in float32 for
        4 bands of 2000 samples), built one band at a time in float64.
        """
        identity = np.eye(n_times)
        operators = []
        for sos in filters:
            impulses = signal.sosfiltfilt(sos, identity, axis=-1)
            impulses -= impulses.mean(axis=1, keepdims=True)
            operators.append(impulses.astype(dtype, copy=False))
            del impulses
        return operators

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Band names, the last axis of the output."""
        names, _ = self._resolved_bands()
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def segment_mean_features(transformer, signals, segment: int) -> np.ndarray:
    """Mean features of consecutive segments of longer signals (e.g. DEAP's 3 s baseline).

    Parameters
    ----------
    transformer : transformer
        Maps ``(n, n_chans, segment)`` to ``(n, n_chans, n_features)``, e.g.
        :class:`BandDifferentialEntropy`. Only its ``transform`` is called: pass a
        fit-free or already fitted transformer.
    signals : ndarray, shape (n_signals, n_chans, n_times)
        Signals at least ``segment`` samples long; a remainder shorter than ``segment``
        is ignored.
    segment : int
        Segment length in samples (the window length of the data).

    Returns
    -------
    features : ndarray of float32, shape (n_signals, n_chans, n_features)
        Average over the ``n_times // segment`` segments.

    Examples
    --------
    The paper's baseline removal on DEAP (``baseline="return"``)::

        deap = load_deap(path, baseline="return")
        de = BandDifferentialEntropy()
        base = segment_mean_features(de, deap.baseline, 128)[deap.baseline_index]
        features = BaselineRemoval().fit_transform(de.transform(deap.X), baseline=base)
    """
    signals = _check_array(signals, name="signals")
    segment = int(segment)
    n, n_chans, n_times = signals.shape
    if segment < 1 or n_times < segment:
        raise ValueError(f"segment must be between 1 and the signal length {n_times}; got "
                         f"{segment}.")
    n_segments = n_times // segment
    pieces = signals[..., : n_segments * segment].reshape(n, n_chans, n_segments, segment)
    pieces = pieces.transpose(0, 2, 1, 3).reshape(n * n_segments, n_chans, segment)
    features = np.asarray(transformer.transform(pieces))
    return features.reshape(n, n_segments, n_chans, -1).mean(axis=1).astype(np.float32)


class BaselineRemoval(TransformerMixin, BaseEstimator):
    """Subtract each window's baseline features (e.g. the DE of the pre-trial rest).

    The baseline travels with the samples, so that cross-validation splits it along
    with ``X``. Give it as the ``baseline`` argument of ``fit_transform``/``transform``
    (aligned with ``X``, one row per window), or, when it is the same for every window,
    as the ``baseline`` parameter. In a :class:`~sklearn.pipeline.Pipeline`, route it
    with scikit-learn's metadata routing::

        sklearn.set_config(enable_metadata_routing=True)
        step = BaselineRemoval().set_fit_request(baseline=True).set_transform_request(
            baseline=True)
        cross_validate(make_pipeline(step, ...), X, y, params={"baseline": base})

    Parameters
    ----------
    baseline : ndarray, shape (n_chans, n_features) or (n_samples, n_chans, n_features), \
default=None
        Baseline used when none is passed to ``transform``. ``None``: one must be passed.

    Attributes
    ----------
    n_chans_ : int
        Number of channels seen in ``fit``.
    n_features_per_chan_ : int
        Size of the last axis seen in ``fit``.

    See Also
    --------
    segment_mean_features : average features over the 1 s segments of DEAP's baseline.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((2, 3, 4)); base = np.full((2, 3, 4), 0.25)
    >>> BaselineRemoval().fit_transform(X, baseline=base)[0, 0]
    array([0.75, 0.75, 0.75, 0.75], dtype=float32)
    """

    def __init__(self, baseline=None):
        self.baseline = baseline

    def fit(self, X, y=None, baseline=None):
        """Record the input shape (nothing is learned).

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_features)
        y : ignored
        baseline : ndarray, shape (n_samples, n_chans, n_features) or (n_chans, n_features), \
default=None
            Checked against ``X`` when given.

        Returns
        -------
        self : BaselineRemoval
        """
        X = _check_array(X, shape_hint="(n_samples, n_chans, n_features)")
        self._resolve(X, baseline)
        self.n_chans_, self.n_features_per_chan_ = X.shape[1], X.shape[2]
        return self

    def _resolve(self, X: np.ndarray, baseline) -> np.ndarray:
        if baseline is None:
            baseline = self.baseline
        if baseline is None:
            raise ValueError("BaselineRemoval needs a baseline: pass baseline=... to "
                             "transform/fit_transform (aligned with X) or set the baseline "
                             "parameter.")
        baseline = _check_array(baseline, name="baseline", ndim=(2, 3),
                                shape_hint="(n_chans, n_features) or (n_samples, n_chans, "
                                           "n_features)")
        if baseline.shape != X.shape and baseline.shape != X.shape[1:]:
            raise ValueError(f"baseline of shape {baseline.shape} does not match X of shape "
                             f"{X.shape}; expected {X.shape} or {X.shape[1:]}.")
        return baseline

    def transform(self, X, baseline=None) -> np.ndarray:
        """``X - baseline``.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_features)
        baseline : ndarray, shape (n_samples, n_chans, n_features) or (n_chans, \
n_features), default=None
            Overrides the ``baseline`` parameter.

        Returns
        -------
        X_new : ndarray of float32, shape (n_samples, n_chans, n_features)
        """
        check_is_fitted(self, "n_chans_")
        X = _check_array(X, shape_hint="(n_samples, n_chans, n_features)")
        if X.shape[1:] != (self.n_chans_, self.n_features_per_chan_):
            raise ValueError(f"X has samples of shape {X.shape[1:]}; BaselineRemoval was fitted "
                             f"on {(self.n_chans_, self.n_features_per_chan_)}.")
        baseline = self._resolve(X, baseline)
        return np.subtract(X, baseline, dtype=np.float32)

    def fit_transform(self, X, y=None, baseline=None) -> np.ndarray:
        """Fit, then transform with the same ``baseline``.

        Parameters
        ----------
        X, y, baseline
            As in :meth:`fit`; ``baseline`` has one row per window or one for all.

        Returns
        -------
        X_new : ndarray of float32, shape (n_samples, n_chans, n_features)
        """
        return self.fit(X, y, baseline=baseline).transform(X, baseline=baseline)


class ToGrid(TransformerMixin, BaseEstimator):
    """Place channel features on the 2-D electrode grid the CCNN/FBCCNN models read.

    Parameters
    ----------
    layout : {"deap", "seed", "dreamer"} or mapping of str to (int, int), default="deap"
        Electrode name -> (row, col). The grid is 9x9 (larger if a custom layout needs it).
    ch_names : sequence of str, default=None
        Names of the channels of ``X``, in order. ``None``: the layout's channel list
        (DEAP's 32 or SEED's 62 channels), or the order of the keys of a custom layout.

    Attributes
    ----------
    cells_ : ndarray of int, shape (n_chans, 2)
        Grid cell of each channel.
    grid_shape_ : tuple of int
        ``(rows, cols)``.

    Examples
    --------
    >>> import numpy as np
    >>> ToGrid().fit_transform(np.ones((2, 32, 4))).shape
    (2, 4, 9, 9)
    """

    def __init__(self, layout="deap", ch_names: Sequence[str] | None = None):
        self.layout = layout
        self.ch_names = ch_names

    def _channels(self) -> list[str]:
        layout = get_layout(self.layout)  # validates the layout first
        if self.ch_names is not None:
            return list(self.ch_names)
        if isinstance(self.layout, str):
            return list(get_channels(self.layout))
        return list(layout)

    def fit(self, X, y=None):
        """Resolve the layout and check the channel count.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_features)
        y : ignored

        Returns
        -------
        self : ToGrid
        """
        X = _check_array(X, shape_hint="(n_samples, n_chans, n_features)")
        self.cells_, self.grid_shape_ = self._cells_for(X)
        return self

    def _cells_for(self, X: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        channels = self._channels()
        if X.shape[1] != len(channels):
            raise ValueError(f"X has {X.shape[1]} channels but the layout {self._layout_name()} "
                             f"expects {len(channels)} ({channels[:4]}...); pass ch_names to "
                             "name the channels of X.")
        return grid_cells(channels, self.layout), grid_shape(self.layout)

    def _layout_name(self) -> str:
        return repr(self.layout) if isinstance(self.layout, str) else "given"

    def transform(self, X) -> np.ndarray:
        """Scatter the features of each channel onto its grid cell; empty cells are 0.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, n_features)

        Returns
        -------
        grid : ndarray of float32, shape (n_samples, n_features, rows, cols)
        """
        X = _check_array(X, shape_hint="(n_samples, n_chans, n_features)")
        if hasattr(self, "cells_"):
            if X.shape[1] != len(self.cells_):
                raise ValueError(f"X has {X.shape[1]} channels; ToGrid was fitted on "
                                 f"{len(self.cells_)}.")
            cells, shape = self.cells_, self.grid_shape_
        else:  # fit-free: nothing is learned from the data
            cells, shape = self._cells_for(X)
        n, _, n_features = X.shape
        grid = np.zeros((n, n_features, *shape), dtype=np.float32)
        grid[:, :, cells[:, 0], cells[:, 1]] = X.transpose(0, 2, 1)
        return grid

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def _channel_moments(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (1 where 0) over axes 0 and 2 of ``flat`` (n, C, m), in float64.

    Two passes over chunks of samples: float32 accumulation drifts on tens of millions
    of values, and a whole float64 copy of DEAP would take 2.5 GB.
    """
    n, n_chans, m = flat.shape
    count = n * m
    step = _windows_per_chunk(n_chans * m * 8)  # the float64 deviations of a sample
    total = np.zeros(n_chans)
    for start in range(0, n, step):
        total += flat[start:start + step].sum(axis=(0, 2), dtype=np.float64)
    mean = total / count
    squares = np.zeros(n_chans)
    for start in range(0, n, step):
        deviation = flat[start:start + step] - mean[None, :, None]
        squares += np.einsum("ncm,ncm->c", deviation, deviation)
    std = np.sqrt(squares / count)
    return mean, np.where(std > 0, std, 1.0)


class ChannelStandardizer(TransformerMixin, BaseEstimator):
    """Z-score each channel with a mean and scale learned in ``fit``.

    Parameters
    ----------
    per_feature : bool, default=False
        ``False``: one mean and scale per channel, over samples and all trailing axes
        (raw signals). ``True``: one per (channel, feature), for 3-D feature arrays such
        as band DE, so that every band of every channel is standardised.

    Attributes
    ----------
    mean_ : ndarray, shape (n_chans, 1) or (n_chans, n_features)
    scale_ : ndarray, shape like ``mean_``
        Standard deviation; 1 where it is 0.
    n_chans_ : int
    input_shape_ : tuple of int
        Shape of one sample seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(3.0, 2.0, (100, 4, 8))
    >>> Z = ChannelStandardizer().fit_transform(X)
    >>> bool(abs(Z.mean()) < 1e-6)
    True
    """

    def __init__(self, per_feature: bool = False):
        self.per_feature = per_feature

    def fit(self, X, y=None):
        """Learn each channel's mean and standard deviation.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, ...)
        y : ignored

        Returns
        -------
        self : ChannelStandardizer
        """
        X = _check_array(X, ndim=(2, 3, 4), shape_hint="(n_samples, n_chans, ...)")
        if self.per_feature not in (True, False):
            raise ValueError(f"per_feature must be a bool; got {self.per_feature!r}.")
        if self.per_feature and X.ndim != 3:
            raise ValueError("per_feature=True needs X of shape (n_samples, n_chans, n_features)"
                             f"; got shape {X.shape}.")
        self.mean_, self.scale_ = _channel_moments(self._flatten(X, bool(self.per_feature)))
        if self.per_feature:
            self.mean_ = self.mean_.reshape(X.shape[1], X.shape[2])
            self.scale_ = self.scale_.reshape(X.shape[1], X.shape[2])
        else:
            self.mean_, self.scale_ = self.mean_[:, None], self.scale_[:, None]
        self.n_chans_ = X.shape[1]
        self.input_shape_ = tuple(X.shape[1:])
        return self

    @staticmethod
    def _flatten(X: np.ndarray, per_feature: bool) -> np.ndarray:
        if per_feature:
            # (n, C, F) -> (n, C*F, 1): every (channel, feature) is its own "channel".
            return X.reshape(X.shape[0], -1, 1)
        return X.reshape(X.shape[0], X.shape[1], -1)

    def transform(self, X) -> np.ndarray:
        """Standardise with the learned statistics.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, ...)

        Returns
        -------
        X_new : ndarray of float32, same shape as ``X``
        """
        check_is_fitted(self, "mean_")
        X = _check_array(X, ndim=(2, 3, 4), shape_hint="(n_samples, n_chans, ...)")
        if X.shape[1] != self.n_chans_ or (self.per_feature and X.shape[1:] != self.input_shape_):
            raise ValueError(f"X has samples of shape {X.shape[1:]}; ChannelStandardizer was "
                             f"fitted on {self.input_shape_}.")
        shape = (1, *self.mean_.shape) if self.per_feature else (1, self.n_chans_) + (1,) * (
            X.ndim - 2)
        mean = self.mean_.reshape(shape).astype(np.float32)
        scale = self.scale_.reshape(shape).astype(np.float32)
        return ((X - mean) / scale).astype(np.float32, copy=False)

    def inverse_transform(self, X) -> np.ndarray:
        """Undo :meth:`transform`.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_chans, ...)
            Standardised data of the shape seen in ``fit``.

        Returns
        -------
        X_orig : ndarray of float32, same shape as ``X``
        """
        check_is_fitted(self, "mean_")
        X = np.asarray(X)
        shape = (1, *self.mean_.shape) if self.per_feature else (1, self.n_chans_) + (1,) * (
            X.ndim - 2)
        return (X * self.scale_.reshape(shape) + self.mean_.reshape(shape)).astype(np.float32)
