"""
A knowledge region for another task and another cap
===================================================

Nothing in skkgp is tied to emotion or to DEAP's 32 channels. This example prunes a
raw-signal :class:`~skkgp.models.EEGNet` recorded with an 8-channel cap, with a
knowledge region of three central electrodes (C3, Cz, C4), the region one would choose
for motor imagery.

The recording is simulated by taking eight channels of the DEAP-like simulation (the
label is high versus low *arousal*, which the simulation carries in beta and gamma
power on every channel); with
real data, ``X`` would be your ``(n_windows, 8, n_times)`` array and ``ch_names`` your
channel names. An explicit list of electrodes as ``region`` is matched by name against
``ch_names``, so any naming scheme works.
"""

# %%
import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.transforms import ChannelStandardizer

cap = ["Fz", "F3", "F4", "C3", "Cz", "C4", "Pz", "Oz"]
data = make_deap_like(n_subjects=2, n_trials=30, duration=5, target="arousal",
                      random_state=1)
picks = [data.ch_names.index(name) for name in cap]
X = data.X[:, picks]  # (n_windows, 8, 128)
print(X.shape)

train, test = next(GroupShuffleSplit(test_size=0.25, random_state=0).split(
    X, data.y, groups=data.trials))

# %%
# The pruner needs the channel names: with 8 channels it cannot take DEAP's 32 names.
# ``ChannelStandardizer`` z-scores each channel with statistics of the training data.
pipe = make_pipeline(
    ChannelStandardizer(),
    KnowledgeGuidedPruner(
        EEGClassifier("eegnet", max_epochs=10, batch_size=32, random_state=0),
        method="lfp",
        prune_ratio=0.5,
        region=["C3", "Cz", "C4"],
        ch_names=cap,
        recovery_epochs=5,
        random_state=0,
    ),
)
pipe.fit(X[train], data.y[train])
kgp = pipe[-1]
print("electrodes:", kgp.electrodes_)
print("region mask:", kgp.region_mask_.astype(int))
print(f"held-out accuracy {pipe.score(X[test], data.y[test]):.2f}")
print(kgp.pruning_report_)

# %%
# The mean share of the training evidence on the region, epoch by epoch of the
# recovery, is in the recovered network's history:
print(np.round(kgp.estimator_.history[:, "train_region_share"], 3))
