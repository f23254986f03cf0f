"""EEG datasets: loaders of the public releases, and simulators that write their layouts.

:func:`load_deap` reads the preprocessed DEAP release (Python pickles through a
restricted unpickler, or MATLAB files); :func:`load_seed` reads SEED and SEED-IV (raw
EEG or the released DE features); :func:`load_dreamer` reads ``DREAMER.mat``;
:func:`from_epochs` and :func:`load_moabb` take EEG from MNE and MOABB.
:func:`make_deap_like` simulates DEAP-shaped EEG with known ground truth, and
:func:`write_deap_like`, :func:`write_seed_like` and :func:`write_dreamer_like` write
simulations in the releases' exact file formats. Every loader returns the same
:class:`~sklearn.utils.Bunch`: ``X`` (n_windows, n_chans, n_times) float32, ``y``,
``groups`` (subject), ``trials`` (trial id), ``ch_names``, ``sfreq`` and ``frame``.
"""

from .deap import (
    DEAP_BASELINE_SAMPLES,
    DEAP_N_TRIALS,
    DEAP_PERIPHERAL_CHANNELS,
    DEAP_RATING_RANGE,
    DEAP_SFREQ,
    DEAP_TRIAL_SAMPLES,
    RATINGS,
    load_deap,
)
from .dreamer import (
    DREAMER_BASELINE_SECONDS,
    DREAMER_N_CLIPS,
    DREAMER_SCORE_RANGE,
    DREAMER_SCORES,
    DREAMER_SFREQ,
    load_dreamer,
    write_dreamer_like,
)
from .epochs import from_epochs, load_moabb
from .seed import (
    SEED_DE_BANDS,
    SEED_IV_LABELS,
    SEED_LABELS,
    SEED_SFREQ,
    SEED_VERSIONS,
    load_seed,
    write_seed_like,
)
from .simulate import (
    SCENARIOS,
    SHORTCUT_CHANNELS,
    make_deap_like,
    simulate_subject,
    write_deap_like,
)

__all__ = [
    "load_deap",
    "load_seed",
    "write_seed_like",
    "load_dreamer",
    "write_dreamer_like",
    "from_epochs",
    "load_moabb",
    "make_deap_like",
    "write_deap_like",
    "simulate_subject",
    "DEAP_SFREQ",
    "DEAP_BASELINE_SAMPLES",
    "DEAP_N_TRIALS",
    "DEAP_TRIAL_SAMPLES",
    "DEAP_PERIPHERAL_CHANNELS",
    "DEAP_RATING_RANGE",
    "RATINGS",
    "SCENARIOS",
    "SHORTCUT_CHANNELS",
    "SEED_SFREQ",
    "SEED_LABELS",
    "SEED_IV_LABELS",
    "SEED_DE_BANDS",
    "SEED_VERSIONS",
    "DREAMER_SFREQ",
    "DREAMER_SCORE_RANGE",
    "DREAMER_SCORES",
    "DREAMER_N_CLIPS",
    "DREAMER_BASELINE_SECONDS",
]
