"""
Loading DEAP files
==================

:func:`skkgp.datasets.load_deap` reads the *preprocessed* DEAP release, in either of its
two formats: ``data_preprocessed_python`` (one pickled ``sXX.dat`` per subject) or
``data_preprocessed_matlab`` (one ``sXX.mat`` per subject). Each file holds ``data``,
``(40 trials, 40 channels, 8064 samples)`` at 128 Hz (3 s of baseline, then 60 s of
video), and ``labels``, ``(40 trials, 4 ratings)``.

DEAP itself must be requested from its authors, so this example writes *simulated*
files in exactly that format with :func:`skkgp.datasets.write_deap_like` into a
temporary folder and reads them back. Replace the folder by your copy of the release to
run the same code on the real data.
"""

# %%
# Write a small release
# ---------------------
# Two subjects in both formats. Real subjects have 40 trials of 60 s; four trials of
# 10 s keep the files small here (the files are otherwise identical in layout).
import pickle
import tempfile
from pathlib import Path

import numpy as np

from skkgp.datasets import load_deap, write_deap_like
from skkgp.transforms import BandDifferentialEntropy, BaselineRemoval, segment_mean_features

tmp = tempfile.TemporaryDirectory()
root = write_deap_like(tmp.name, n_subjects=2, n_trials=4, duration=10, format="both",
                       random_state=0)
for path in sorted(Path(root).rglob("s*.*")):
    print(path.relative_to(root), f"{path.stat().st_size / 1e6:.1f} MB")

# %%
# Read it
# -------
# ``path`` may be the release root or one of its ``data_preprocessed_*`` folders. The
# trials are cut into 1 s windows (``window=128`` samples) and labelled
# ``valence >= 5``; ``groups`` holds the subject of each window and ``trials`` a trial
# id that is unique across subjects, ready for grouped cross-validation.
deap = load_deap(root, target="valence", threshold=5.0, window=128)
print(deap.X.shape, deap.X.dtype, deap.sfreq)
print("subjects:", np.unique(deap.groups), "trials:", np.unique(deap.trials))
print(deap.frame.head().to_string())

# %%
# Both formats hold the same recordings:
deap_mat = load_deap(Path(root) / "data_preprocessed_matlab")
print("MATLAB release equals the Python release:", np.array_equal(deap.X, deap_mat.X))

# %%
# Baseline removal, as in the paper
# ---------------------------------
# With ``baseline="return"`` the 3 s pre-trial baseline of each trial comes back too
# (``baseline``, one row per trial, and ``baseline_index``, the row of each window). The
# paper subtracts from each window's band differential entropy the mean DE of the three
# 1 s baseline segments of its trial.
deap = load_deap(root, baseline="return")
de = BandDifferentialEntropy()
features = de.fit_transform(deap.X)  # (n_windows, 32, 4)
base = segment_mean_features(de, deap.baseline, 128)[deap.baseline_index]
features = BaselineRemoval().fit_transform(features, baseline=base)
print(deap.baseline.shape, features.shape)

# %%
# Files are read safely
# ---------------------
# The Python release is a pickle, a format that can run code when it is loaded.
# ``load_deap`` reads it with a restricted unpickler that admits numpy arrays and plain
# containers only, so a crafted file fails with a clear error before anything runs.


class Payload:
    def __reduce__(self):
        return (print, ("this would have run",))


evil = Path(tmp.name) / "evil" / "data_preprocessed_python"
evil.mkdir(parents=True)
with open(evil / "s01.dat", "wb") as file:
    pickle.dump({"data": Payload(), "labels": np.zeros((40, 4))}, file)
try:
    load_deap(evil)
except ValueError as error:
    print("refused:", error)

tmp.cleanup()
