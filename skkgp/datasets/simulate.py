"""A SIMULATION of DEAP-shaped EEG with a known ground truth (not real data).

The generator mimics what emotion-recognition models pick up in DEAP, with effect sizes
as parameters:

- background: spatially correlated 1/f ("pink") noise; neighbouring electrodes of the
  9x9 grid share more of it;
- subject variability: per-subject channel gains, alpha peak frequency, alpha
  asymmetry offset and strength of the emotion effects;
- valence: frontal alpha asymmetry (lower alpha on the left frontal electrodes for
  positive valence, Davidson's model) and more prefrontal theta;
- arousal: more beta and gamma power everywhere;
- uninformative distractors: occipital alpha bursts and eye blinks on Fp1/Fp2 (and,
  weaker, AF3/AF4 and the frontal row; strongest on the vEOG channel).

``scenario="shortcut"`` adds a label-correlated signal outside the frontal region that
holds in one half of each subject's trials and is reversed in the other half: the
"right for the right reasons" case of a knowledge prior (see :func:`make_deap_like`).

The 3 s baseline before each trial has the subject's traits and the trial's electrode
gains but no emotion effect, so baseline removal can cancel those nuisances. Ratings
are drawn uniformly on 1-9; dominance and liking correlate with valence.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.io import savemat
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from .._atomic import atomic_file
from ..layout import DEAP_CHANNELS, DEAP_GRID, REGIONS
from ._checks import check_positive_int, refuse_overwrite
from ._safe_pickle import dump_py2_arrays
from .deap import (
    DEAP_BASELINE_SAMPLES,
    DEAP_N_TRIALS,
    DEAP_PERIPHERAL_CHANNELS,
    DEAP_SFREQ,
    DEAP_TRIAL_SAMPLES,
    FOLDERS,
    SUFFIXES,
    assemble,
    check_window_args,
)

__all__ = ["make_deap_like", "write_deap_like", "simulate_subject", "SCENARIOS",
           "SHORTCUT_CHANNELS"]

#: Values of ``make_deap_like(scenario=...)``.
SCENARIOS = ("default", "shortcut")

#: Electrodes of the shortcut signal of ``scenario="shortcut"`` and their gains:
#: temporal-muscle activity is strongest on T7/T8 and spreads to the neighbouring
#: fronto- and centro-parietal-temporal sites. None is frontal, parietal or occipital.
SHORTCUT_CHANNELS: dict[str, float] = {"T7": 1.0, "T8": 1.0, "FC5": 0.5, "FC6": 0.5,
                                       "CP5": 0.5, "CP6": 0.5}

_SIM_NOTE = ("SIMULATED DEAP-like EEG from skkgp.datasets.make_deap_like: NOT real data. "
             "Valence is carried by frontal alpha asymmetry and prefrontal theta, arousal by "
             "beta/gamma power; occipital alpha bursts and eye blinks are distractors.")
_SHORTCUT_NOTE = (" Scenario 'shortcut': temporal muscle (EMG, 40 Hz band) power on T7/T8 "
                  "(half on FC5/FC6/CP5/CP6) rises with valence in the trials with "
                  "shortcut == +1 and falls with it in those with shortcut == -1.")

_N_EEG = len(DEAP_CHANNELS)
_UPPER = [name.upper() for name in DEAP_CHANNELS]


def _indices(names) -> np.ndarray:
    return np.array([_UPPER.index(n) for n in names if n in _UPPER])


_LEFT_FRONTAL = _indices(REGIONS["frontal_left"])
_PREFRONTAL = _indices(REGIONS["prefrontal"])
_POSTERIOR = _indices(REGIONS["parietal"] + REGIONS["occipital"])
_OCCIPITAL = _indices(REGIONS["occipital"])
# Blink spread: Fp1/Fp2 full, AF3/AF4 half, the frontal row a fifth.
_BLINK_GAIN = np.zeros(_N_EEG)
_BLINK_GAIN[_indices(("FP1", "FP2"))] = 1.0
_BLINK_GAIN[_indices(("AF3", "AF4"))] = 0.5
_BLINK_GAIN[_indices(("F7", "F3", "FZ", "F4", "F8"))] = 0.2
_SHORTCUT_GAIN = np.zeros(_N_EEG)
_SHORTCUT_GAIN[_indices([name.upper() for name in SHORTCUT_CHANNELS])] = list(
    SHORTCUT_CHANNELS.values())
# Amplitude of the EMG at the shortcut sites without any valence effect (the std of
# the background's gamma is 0.2).
_SHORTCUT_AMPLITUDE = 0.3


def _spatial_mixing(length_scale: float = 1.5) -> np.ndarray:
    """Cholesky factor of an exponential covariance over 9x9 grid distances."""
    cells = np.array([DEAP_GRID[name] for name in DEAP_CHANNELS], dtype=float)
    distance = np.linalg.norm(cells[:, None] - cells[None], axis=-1)
    return np.linalg.cholesky(np.exp(-distance / length_scale) + 1e-9 * np.eye(_N_EEG))


_MIXING = _spatial_mixing()


def _shaped_noise(rng: np.random.Generator, shape: tuple[int, ...], gain: np.ndarray
                  ) -> np.ndarray:
    """float32 Gaussian noise with amplitude spectrum ``gain`` (n_times // 2 + 1 values).

    The spectrum is drawn directly (one inverse FFT, no forward one) and scaled to unit
    expected variance analytically: an empirical per-row std would cost as much again.
    """
    n_times = shape[-1]
    pairs = rng.standard_normal((*shape[:-1], len(gain), 2), dtype=np.float32)
    spectrum = pairs.view(np.complex64)[..., 0]
    spectrum *= gain.astype(np.float32)
    # E|X_k|^2 = 2 for complex bins; irfft keeps only the real part of DC and Nyquist.
    power = 4.0 * (gain[1:] ** 2).sum() + gain[0] ** 2
    if n_times % 2 == 0:
        power -= 3.0 * gain[-1] ** 2
    noise = np.fft.irfft(spectrum, n=n_times, axis=-1)
    noise *= np.float32(n_times / np.sqrt(power))
    return noise


def _band(freqs: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((freqs - centre) / width) ** 2)


def _events(rng: np.random.Generator, shape: tuple[int, int], rate: float, sfreq: float,
            kernel: np.ndarray) -> np.ndarray:
    """Poisson train of ``kernel`` shapes with random amplitudes, shape ``shape``."""
    impulses = (rng.random(shape) < rate / sfreq) * rng.uniform(0.6, 1.4, shape)
    return signal.oaconvolve(impulses, kernel[None, :], mode="same", axes=-1)


def _side_generator(rng: np.random.Generator, key: int) -> np.random.Generator:
    """An independent generator derived from ``rng``'s seed, leaving ``rng`` untouched.

    The draws of the shortcut scenario come from here, so that the rest of a subject
    (ratings, background, rhythms, distractors) is the same as in the default scenario.
    """
    seed_seq = rng.bit_generator.seed_seq
    child = np.random.SeedSequence(seed_seq.entropy,
                                   spawn_key=(*seed_seq.spawn_key, 0x5C0000 + key))
    return np.random.default_rng(child)


def _shortcut_signs(rng: np.random.Generator, n_trials: int) -> np.ndarray:
    """+1 for a random half of the trials (``n_trials // 2`` rounded up), -1 for the rest.

    Drawn from a generator derived from ``rng`` (``rng`` itself is not advanced).
    """
    signs = np.full(n_trials, -1, dtype=np.int8)
    signs[_side_generator(rng, 0).permutation(n_trials)[: n_trials - n_trials // 2]] = 1
    return signs


def simulate_subject(
    rng: np.random.Generator,
    n_trials: int = DEAP_N_TRIALS,
    n_samples: int = DEAP_TRIAL_SAMPLES,
    *,
    baseline_samples: int = DEAP_BASELINE_SAMPLES,
    sfreq: float = DEAP_SFREQ,
    valence_effect: float = 0.45,
    arousal_effect: float = 0.3,
    noise: float = 1.0,
    subject_variability: float = 0.3,
    blink_rate: float = 0.3,
    trial_variability: float = 0.4,
    scale: float = 10.0,
    shortcut_effect: float = 0.0,
    shortcut_sign: np.ndarray | None = None,
    emg_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One simulated subject in DEAP's layout (see :func:`make_deap_like`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness for this subject.
    n_trials, n_samples : int
        Trials and samples per trial (baseline included).
    baseline_samples : int
        Leading samples of each trial without emotion effect.
    sfreq : float
        Sampling frequency in Hz.
    valence_effect, arousal_effect, noise, subject_variability, blink_rate, \
trial_variability : float
        See :func:`make_deap_like`.
    scale : float
        Overall amplitude in microvolts.
    shortcut_effect : float, default=0.0
        Log-amplitude change of the shortcut EMG at the extreme valence ratings (see
        :func:`make_deap_like`); 0 adds no shortcut (and draws nothing for it). The EMG
        is drawn from ``emg_rng``, not from ``rng``: the other draws are those of the
        subject without the shortcut.
    shortcut_sign : ndarray of int, shape (n_trials,), optional
        +1 where the EMG rises with valence, -1 where it falls; all +1 when omitted.
    emg_rng : numpy.random.Generator, optional
        Source of the shortcut EMG. By default a fresh child of ``rng``'s seed sequence
        at each call, so two calls with one ``rng`` give two independent EMG signals.

    Returns
    -------
    data : ndarray of float64, shape (n_trials, 40, n_samples)
        32 EEG channels (DEAP order) then 8 peripheral channels, in microvolts.
    labels : ndarray of float64, shape (n_trials, 4)
        Ratings 1-9: valence, arousal, dominance, liking.
    """
    if emg_rng is None and shortcut_effect > 0:
        emg_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
    shape = (n_trials, _N_EEG, n_samples)
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sfreq)
    time = np.arange(n_samples)
    stimulus = (time >= baseline_samples).astype(float)  # effects start after the baseline

    # Ratings; dominance and liking follow valence as they do (loosely) in DEAP.
    valence = rng.uniform(1, 9, n_trials)
    arousal = rng.uniform(1, 9, n_trials)
    dominance = np.clip(0.6 * valence + 0.4 * rng.uniform(1, 9, n_trials), 1, 9)
    liking = np.clip(0.7 * valence + 0.3 * rng.uniform(1, 9, n_trials), 1, 9)
    labels = np.stack([valence, arousal, dominance, liking], axis=1)
    v = (valence - 5.0) / 4.0  # in [-1, 1]
    a = (arousal - 5.0) / 4.0

    # Subject traits.
    sv = subject_variability
    channel_gain = np.exp(sv * rng.standard_normal(_N_EEG))
    alpha_peak = rng.uniform(9.0, 11.5)
    asymmetry_offset = sv * rng.standard_normal()  # left-frontal alpha, all segments
    effect_gain = np.exp(0.5 * sv * rng.standard_normal())
    # Electrode contact changes from trial to trial; the baseline sees them too, so
    # baseline removal can cancel them.
    trial_gain = np.exp(trial_variability * rng.standard_normal((n_trials, _N_EEG, 1)))

    # 1/f background, mixed over neighbouring electrodes.
    pink = 1.0 / np.sqrt(np.maximum(freqs, 0.5))
    pink[0] = 0.0
    eeg = np.einsum("ij,tjn->tin", (noise * 1.2 * _MIXING).astype(np.float32),
                    _shaped_noise(rng, shape, pink))

    # Rhythms: narrow-band noise per channel, scaled by a topography and, after the
    # baseline only, by a per-(trial, channel) log-amplitude effect.
    v_eff = valence_effect * effect_gain * v
    a_eff = arousal_effect * effect_gain * a
    alpha_amp = np.full(_N_EEG, 0.8)
    alpha_amp[_POSTERIOR] = 1.2
    alpha_amp[_LEFT_FRONTAL] *= np.exp(asymmetry_offset)
    alpha_log = np.zeros((n_trials, _N_EEG))
    alpha_log[:, _LEFT_FRONTAL] = -v_eff[:, None]  # positive valence: less left alpha
    theta_amp = np.full(_N_EEG, 0.5)
    theta_amp[_PREFRONTAL] = 0.7
    theta_log = np.zeros((n_trials, _N_EEG))
    theta_log[:, _PREFRONTAL] = 0.6 * v_eff[:, None]
    fast_log = np.repeat(a_eff[:, None], _N_EEG, axis=1)
    # Beta (21 Hz) and gamma (39 Hz) share the arousal effect: one noise of their
    # summed power spectra is the same process as their sum.
    beta, gamma = _band(freqs, 21.0, 4.0), _band(freqs, 39.0, 5.0)
    fast = np.sqrt(0.35**2 * beta**2 / (beta**2).sum() + 0.2**2 * gamma**2 / (gamma**2).sum())
    fast_amp = np.full(_N_EEG, np.hypot(0.35, 0.2))  # std of beta + gamma

    def add_rhythm(gain_spectrum, amplitude, log_effect):
        rhythm = _shaped_noise(rng, shape, gain_spectrum)
        rhythm *= amplitude.astype(np.float32)[None, :, None]
        rhythm[..., baseline_samples:] *= np.exp(log_effect).astype(np.float32)[..., None]
        eeg[...] += rhythm
        return rhythm

    alpha = add_rhythm(_band(freqs, alpha_peak, 1.0), alpha_amp, alpha_log)
    add_rhythm(_band(freqs, 6.0, 1.0), theta_amp, theta_log)
    add_rhythm(fast, fast_amp, fast_log)

    # Distractors carrying no label information.
    burst_kernel = signal.windows.gaussian(int(sfreq), std=sfreq / 6)
    bursts = _events(rng, (n_trials, n_samples), 0.15, sfreq, burst_kernel)
    eeg[:, _OCCIPITAL] += 1.25 * bursts[:, None] * alpha[:, _OCCIPITAL][:, ::-1]
    blink_kernel = signal.windows.hann(int(0.3 * sfreq))
    blinks = _events(rng, (n_trials, n_samples), blink_rate, sfreq, blink_kernel) * 8.0
    eeg += (_BLINK_GAIN[None, :, None] * blinks[:, None]).astype(np.float32)

    if shortcut_effect > 0:
        sign = np.ones(n_trials) if shortcut_sign is None else np.asarray(shortcut_sign)
        if sign.shape != (n_trials,) or not np.isin(sign, (-1, 1)).all():
            raise ValueError(f"shortcut_sign must hold n_trials={n_trials} values of +1 or "
                             f"-1; got {shortcut_sign!r}.")
        # Its own generator: every other draw of the subject stays as without it.
        emg = _shaped_noise(emg_rng, shape, _band(freqs, 40.0, 4.0))
        emg *= (_SHORTCUT_AMPLITUDE * _SHORTCUT_GAIN).astype(np.float32)[None, :, None]
        log_effect = shortcut_effect * effect_gain * sign * v
        emg[..., baseline_samples:] *= np.exp(log_effect).astype(np.float32)[:, None, None]
        eeg += emg

    eeg *= (scale * channel_gain[None, :, None] * trial_gain).astype(np.float32)

    # Peripheral channels: plausible shapes, unused by the EEG models.
    seconds = time / sfreq
    peripheral = rng.standard_normal((n_trials, len(DEAP_PERIPHERAL_CHANNELS), n_samples))
    peripheral[:, 1] += 12.0 * blinks  # vEOG sees the blinks
    peripheral[:, 4] = 1e3 * (1 + 0.1 * a[:, None] * stimulus) + np.cumsum(
        peripheral[:, 4], axis=-1) * 0.5  # GSR: slow drift, higher with arousal
    breathing = rng.uniform(0.2, 0.35, (n_trials, 1))
    peripheral[:, 5] += 200 * np.sin(2 * np.pi * breathing * seconds)
    pulse = rng.uniform(1.0, 1.4, (n_trials, 1))
    peripheral[:, 6] += 50 * np.sin(2 * np.pi * pulse * seconds)
    peripheral[:, 7] = 32.0 + 0.01 * np.cumsum(peripheral[:, 7], axis=-1) / np.sqrt(n_samples)

    data = np.concatenate([eeg, peripheral], axis=1, dtype=np.float64)
    return data, labels


def _subject_rngs(random_state, n_subjects: int) -> list[np.random.Generator]:
    """One independent generator per subject: subject k is the same whatever n_subjects."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        if isinstance(random_state, bool) or (random_state is not None and random_state < 0):
            raise ValueError(f"random_state must be None, a non-negative int, a "
                             f"numpy Generator or RandomState; got {random_state!r}.")
        entropy = None if random_state is None else int(random_state)
    elif isinstance(random_state, np.random.Generator):
        entropy = int(random_state.integers(2**63))
    elif isinstance(random_state, np.random.RandomState):
        entropy = int(random_state.randint(2**31))
    else:
        raise ValueError(f"random_state must be None, a non-negative int, a numpy Generator "
                         f"or RandomState; got {random_state!r}.")
    seeds = np.random.SeedSequence(entropy).spawn(n_subjects)
    return [np.random.default_rng(seed) for seed in seeds]


def _check_sim_args(n_subjects, n_trials, duration, sfreq, window, params) -> int:
    check_positive_int(n_subjects, "n_subjects")
    check_positive_int(n_trials, "n_trials")
    try:
        n_stimulus = int(round(float(duration) * sfreq))
    except (TypeError, ValueError):
        raise ValueError(f"duration must be a number of seconds; got {duration!r}.") from None
    if not np.isfinite(float(duration)) or n_stimulus < window:
        raise ValueError(f"duration={duration!r} s gives {n_stimulus} samples per trial, "
                         f"fewer than window={window}.")
    for name, value in params.items():
        if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                or not np.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite non-negative number; got {value!r}.")
    return n_stimulus


def _simulated_subjects(rngs, n_trials, n_samples, params, signs=None
                        ) -> Iterator[tuple[int, np.ndarray, np.ndarray, str]]:
    for number, rng in enumerate(rngs, start=1):
        extra = {} if signs is None else {"shortcut_sign": signs[number - 1]}
        # Each rng here makes one subject: its EMG generator is derived from its seed,
        # so that a random_state always gives the same data.
        data, labels = simulate_subject(rng, n_trials, n_samples, **params, **extra,
                                        emg_rng=_side_generator(rng, 1))
        yield number, data, labels, f"simulated subject {number}"


def make_deap_like(
    n_subjects: int = 4,
    n_trials: int = 40,
    window: int = 128,
    duration: float = 10.0,
    random_state=None,
    *,
    target: str = "valence",
    threshold: float = 5.0,
    overlap: int = 0,
    baseline: str = "drop",
    eeg_only: bool = True,
    valence_effect: float = 0.45,
    arousal_effect: float = 0.3,
    noise: float = 1.0,
    subject_variability: float = 0.3,
    blink_rate: float = 0.3,
    trial_variability: float = 0.4,
    scenario: str = "default",
    shortcut_effect: float = 0.9,
    verbose: bool = False,
) -> Bunch:
    """Simulate DEAP-like EEG windows with known ground truth (a SIMULATION, not DEAP).

    Same output as :func:`load_deap`, at DEAP's 128 Hz and 32-channel montage. With
    ``duration=60`` and ``n_trials=40`` the windows equal
    ``load_deap(write_deap_like(dir, n_subjects, random_state=...))``.

    Parameters
    ----------
    n_subjects : int, default=4
        Number of simulated subjects.
    n_trials : int, default=40
        Trials per subject.
    window : int, default=128
        Window length in samples (1 s).
    duration : float, default=10.0
        Seconds of stimulus per trial after the 3 s baseline (DEAP: 60). The default
        gives 1,600 windows that simulate in about a second.
    random_state : int, numpy Generator or RandomState, default=None
        Seed. Subject k gets the same data whatever ``n_subjects`` is.
    target, threshold, overlap, baseline, eeg_only
        As in :func:`load_deap`.
    valence_effect : float, default=0.45
        Log-amplitude change of left-frontal alpha (and 0.6 times that of prefrontal
        theta) at the extreme ratings; 0 removes the valence signal.
    arousal_effect : float, default=0.3
        Log-amplitude change of beta and gamma at the extreme arousal ratings.
    noise : float, default=1.0
        Scale of the 1/f background relative to the default.
    subject_variability : float, default=0.3
        Spread (log scale) of channel gains, alpha asymmetry offset and effect strength
        across subjects.
    blink_rate : float, default=0.3
        Eye blinks per second.
    trial_variability : float, default=0.4
        Spread (log scale) of per-trial, per-channel gains (electrode contact). The
        trial's baseline shares them, so baseline removal can cancel them.
    scenario : {"default", "shortcut"}, default="default"
        ``"shortcut"`` simulates the textbook case for a knowledge prior, "right for
        the right reasons" (Ross et al. 2017): beside the valence signal, which stays
        inside the frontal region and holds in every trial, a *shortcut* signal outside
        it follows valence in the trials used for training and contradicts it in those
        held out. Exactly:

        - the shortcut is temporal-muscle activity (EMG): band-limited noise at 40 Hz
          (Gaussian band, 4 Hz wide: DEAP's gamma band), amplitude 0.3 (the
          background's gamma has 0.2) on T7 and T8 and half that on FC5, FC6, CP5 and
          CP6 (:data:`SHORTCUT_CHANNELS`: none is frontal, parietal or occipital);
        - after the baseline seconds its log-amplitude changes by
          ``shortcut_effect * s * v``, with ``v`` the valence rating mapped to
          [-1, 1] (scaled by the subject's effect strength, like the valence effect)
          and ``s`` the trial's sign: +1 in a random half of each subject's trials
          (``ceil(n_trials / 2)``, drawn per subject) and -1 in the others, where
          the relation is reversed;
        - the signs are returned in ``shortcut`` (one per window; also a column of
          ``frame``). Train on the windows with ``shortcut == 1`` and test on those
          with ``shortcut == -1`` (``skkgp reproduce --scenario shortcut`` keeps, in
          every trial-grouped fold, the +1 trials of the training side and the -1
          trials of the test side): in training the shortcut predicts the label as
          well as, or better than, the valence signal; on the test trials it
          predicts the opposite label, while the valence signal still holds.

        Everything else (ratings, background, valence and arousal signals,
        distractors) is drawn exactly as in ``"default"`` with the same
        ``random_state``: the shortcut's draws come from generators of their own.
    shortcut_effect : float, default=0.9
        Log-amplitude change of the shortcut EMG at the extreme valence ratings, used
        by ``scenario="shortcut"`` only. The default is twice the default
        ``valence_effect`` on an electrode group with little background power in
        its band, so that the shortcut is the easier cue, as shortcuts are.
    verbose : bool, default=False
        Progress bar over subjects.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Fields of :func:`load_deap`: ``X`` float32 (n_windows, n_chans, window), ``y``,
        ``groups`` (subject), ``trials``, ``ch_names``, ``sfreq``, ``frame``, and
        ``baseline``/``baseline_index`` with ``baseline="return"``. ``DESCR`` says it is
        simulated. With ``scenario="shortcut"`` also ``shortcut``: int8 array, shape
        (n_windows,), the sign of the shortcut's relation to valence in each window's
        trial (+1 follows, -1 reversed).

    References
    ----------
    .. [1] Ross, A. S., Hughes, M. C., & Doshi-Velez, F. (2017). Right for the right
       reasons: training differentiable models by constraining their explanations.
       IJCAI 2017, 2662-2670.

    Examples
    --------
    >>> from skkgp.datasets import make_deap_like
    >>> data = make_deap_like(n_subjects=2, random_state=0)
    >>> data.X.shape, data.X.dtype.name
    ((800, 32, 128), 'float32')
    """
    window, overlap, threshold = check_window_args(window, overlap, target, threshold,
                                                   baseline, eeg_only)
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(map(repr, SCENARIOS))}; "
                         f"got {scenario!r}.")
    params = dict(valence_effect=valence_effect, arousal_effect=arousal_effect, noise=noise,
                  trial_variability=trial_variability,
                  subject_variability=subject_variability, blink_rate=blink_rate)
    n_stimulus = _check_sim_args(n_subjects, n_trials, duration, DEAP_SFREQ, window,
                                 {**params, "shortcut_effect": shortcut_effect})
    rngs = _subject_rngs(random_state, n_subjects)
    signs = None
    description = _SIM_NOTE
    if scenario == "shortcut":
        signs = [_shortcut_signs(rng, n_trials) for rng in rngs]
        params["shortcut_effect"] = shortcut_effect
        description += _SHORTCUT_NOTE
    data = assemble(
        _simulated_subjects(rngs, n_trials, DEAP_BASELINE_SAMPLES + n_stimulus, params, signs),
        n_subjects, window=window, overlap=overlap, target=target, threshold=threshold,
        baseline=baseline, eeg_only=eeg_only, baseline_samples=DEAP_BASELINE_SAMPLES,
        sfreq=DEAP_SFREQ, description=description, verbose=verbose,
        desc="simulating subjects",
    )
    if signs is not None:
        # Global trial ids are (subject - 1) * n_trials + trial - 1, subjects in order.
        data.shortcut = np.concatenate(signs)[data.trials]
        data.frame["shortcut"] = data.shortcut
    return data


def write_deap_like(
    directory: str | os.PathLike,
    n_subjects: int = 2,
    random_state=None,
    *,
    format: str = "python",
    n_trials: int = DEAP_N_TRIALS,
    duration: float = 60.0,
    overwrite: bool = False,
    valence_effect: float = 0.45,
    arousal_effect: float = 0.3,
    noise: float = 1.0,
    subject_variability: float = 0.3,
    blink_rate: float = 0.3,
    trial_variability: float = 0.4,
    verbose: bool = False,
) -> Path:
    """Write the simulation as files in the exact layout of the preprocessed DEAP release.

    ``directory/data_preprocessed_python/s01.dat`` ... are Python-2-style pickles of
    ``{"data": (40, 40, 8064) float64, "labels": (40, 4) float64}``;
    ``directory/data_preprocessed_matlab/s01.mat`` ... hold the same arrays. About
    103 MB per subject and format. The content is SIMULATED (see
    :func:`make_deap_like`).

    Parameters
    ----------
    directory : str or path-like
        Release root to create or fill.
    n_subjects : int, default=2
        Subjects ``s01`` .. ``sNN``.
    random_state : int, numpy Generator or RandomState, default=None
        Seed, as in :func:`make_deap_like`.
    format : {"python", "matlab", "both"}, default="python"
        Which release(s) to write.
    n_trials : int, default=40
        Trials per subject (DEAP: 40).
    duration : float, default=60.0
        Seconds per trial after the 3 s baseline (DEAP: 60, i.e. 8064 samples in all).
    overwrite : bool, default=False
        Replace existing ``sXX`` files; otherwise an existing file raises
        ``FileExistsError`` before anything is written.
    valence_effect, arousal_effect, noise, subject_variability, blink_rate, \
trial_variability
        As in :func:`make_deap_like`.
    verbose : bool, default=False
        Progress bar over subjects.

    Returns
    -------
    root : pathlib.Path
        ``directory``, ready for :func:`load_deap`.
    """
    if format not in ("python", "matlab", "both"):
        raise ValueError(f"format must be 'python', 'matlab' or 'both'; got {format!r}.")
    params = dict(valence_effect=valence_effect, arousal_effect=arousal_effect, noise=noise,
                  trial_variability=trial_variability,
                  subject_variability=subject_variability, blink_rate=blink_rate)
    n_stimulus = _check_sim_args(n_subjects, n_trials, duration, DEAP_SFREQ, 1, params)
    if n_subjects > 99:
        raise ValueError(f"n_subjects must be at most 99 for write_deap_like (DEAP's file names "
                         f"s01..s99 have two digits); got {n_subjects}.")
    root = Path(os.fspath(directory)).expanduser()
    kinds = ["python", "matlab"] if format == "both" else [format]
    targets = {kind: [root / FOLDERS[kind] / f"s{k:02d}{SUFFIXES[kind]}"
                      for k in range(1, n_subjects + 1)] for kind in kinds}
    refuse_overwrite([path for paths in targets.values() for path in paths], overwrite)
    for kind in kinds:
        (root / FOLDERS[kind]).mkdir(parents=True, exist_ok=True)
    rngs = _subject_rngs(random_state, n_subjects)
    subjects = _simulated_subjects(rngs, n_trials, DEAP_BASELINE_SAMPLES + n_stimulus, params)
    for number, data, labels, _ in tqdm(subjects, total=n_subjects, desc="writing subjects",
                                        unit="subject", disable=not verbose):
        content = {"labels": labels.astype(np.float64), "data": data.astype(np.float64)}
        for kind in kinds:
            _write_atomically(targets[kind][number - 1], content, kind)
    return root


def _write_atomically(path: Path, content: dict[str, np.ndarray], kind: str) -> None:
    # A crash mid-write must not leave a truncated sXX file that looks complete.
    with atomic_file(path) as f:
        if kind == "python":
            dump_py2_arrays(content, f)
        else:
            savemat(f, content, format="5", do_compression=False)
