"""EEG datasets: loaders of the public releases, and simulators that write their layouts.

:func:`load_deap` reads the preprocessed DEAP release (Python pickles through a
restricted unpickler, or MATLAB files); :func:`load_seed` reads SEED and SEED-IV (raw
EEG or the released DE features) and :func:`write_seed_like` writes a simulation in
their layout. :func:`make_deap_like` simulates DEAP-shaped EEG
with known ground truth and :func:`write_deap_like` writes that simulation in the
release's exact file format. Every function returns the same
:class:`~sklearn.utils.Bunch`: ``X`` (n_windows, n_chans, n_times) float32, ``y``,
``groups`` (subject), ``trials`` (trial id), ``ch_names``, ``sfreq`` and ``frame``.
"""

from .deap import (
    DEAP_BASELINE_SAMPLES,
    DEAP_N_TRIALS,
    DEAP_PERIPHERAL_CHANNELS,
    DEAP_SFREQ,
    DEAP_TRIAL_SAMPLES,
    RATINGS,
    load_deap,
)
from .seed import (
    SEED_DE_BANDS,
    SEED_IV_LABELS,
    SEED_LABELS,
    SEED_SFREQ,
    SEED_VERSIONS,
    load_seed,
    write_seed_like,
)
from .simulate import make_deap_like, simulate_subject, write_deap_like

__all__ = [
    "load_deap",
    "load_seed",
    "write_seed_like",
    "make_deap_like",
    "write_deap_like",
    "simulate_subject",
    "DEAP_SFREQ",
    "DEAP_BASELINE_SAMPLES",
    "DEAP_N_TRIALS",
    "DEAP_TRIAL_SAMPLES",
    "DEAP_PERIPHERAL_CHANNELS",
    "RATINGS",
    "SEED_SFREQ",
    "SEED_LABELS",
    "SEED_IV_LABELS",
    "SEED_DE_BANDS",
    "SEED_VERSIONS",
]
