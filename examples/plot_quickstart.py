"""
Quick start: prune a CCNN in a scikit-learn pipeline
====================================================

Raw EEG windows go through three transformers and one meta-estimator:

1. :class:`~skkgp.transforms.BandDifferentialEntropy` maps each window
   ``(n_chans, n_times)`` to the differential entropy of four frequency bands,
   ``(n_chans, 4)``;
2. :class:`~skkgp.transforms.ChannelStandardizer` z-scores each channel and band with
   statistics of the training windows;
3. :class:`~skkgp.transforms.ToGrid` places those values on the 9x9 electrode grid,
   ``(4, 9, 9)``, as the CCNN expects;
4. :class:`~skkgp.KnowledgeGuidedPruner` trains the CCNN
   (:class:`~skkgp.EEGClassifier`), prunes half of its filters with L1 filter pruning
   and recovers the pruned network with the knowledge-guided losses.
"""

# %%
# Data
# ----
# A small simulation of DEAP: 3 subjects, 20 trials cut short to 4 s, i.e. four
# 1-second windows of 32 channels at 128 Hz per trial. The valence label is carried,
# among other things, by frontal alpha asymmetry.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

data = make_deap_like(n_subjects=3, n_trials=20, duration=4, random_state=0)
print(data.X.shape, np.bincount(data.y))

# %%
# Hold out whole trials: windows of one trial are nearly identical, so a split that
# puts windows of the same trial on both sides would measure memory, not generalisation
# (see :ref:`evaluation`).
train, test = next(GroupShuffleSplit(test_size=0.25, random_state=0).split(
    data.X, data.y, groups=data.trials))

# %%
# The pipeline
# ------------
# ``region="prefrontal"`` is the knowledge: emotion-related evidence should sit on the
# prefrontal electrodes. ``region_weight`` and ``sample_weighting`` are the weights
# ``alpha`` and ``beta`` of the two loss terms (see :ref:`method`).
pipe = make_pipeline(
    BandDifferentialEntropy(),
    ChannelStandardizer(per_feature=True),
    ToGrid(),
    KnowledgeGuidedPruner(
        EEGClassifier("ccnn", max_epochs=4, batch_size=32, random_state=0),
        method="lfp",
        prune_ratio=0.5,
        region="prefrontal",
        region_weight=1.0,
        sample_weighting=1.0,
        recovery_epochs=3,
        random_state=0,
    ),
)
pipe.fit(data.X[train], data.y[train])
print(f"accuracy of the pruned network on held-out trials: "
      f"{pipe.score(data.X[test], data.y[test]):.2f}")

# %%
# What pruning removed
# --------------------
# The fitted pruner keeps the pruning report, the origin network and the pruned,
# recovered one.
kgp = pipe[-1]
report = kgp.pruning_report_
print(report)

# %%
# The origin network can be scored on the same held-out windows; the transformers of the
# pipeline prepare them.
grids = pipe[:-1].transform(data.X[test])
print(f"origin network: {kgp.origin_estimator_.score(grids, data.y[test]):.2f}, "
      f"pruned and recovered: {kgp.score(grids, data.y[test]):.2f}")

# %%
# Filters kept in each pruned layer:
layers = list(report.kept_channels)
kept = [report.kept_channels[name][0] for name in layers]
original = [report.kept_channels[name][1] for name in layers]
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(layers, original, color="lightgray", label="before")
ax.bar(layers, kept, color="tab:blue", label="after")
ax.set_ylabel("filters")
ax.set_title(f"CCNN, lfp at ratio {report.ratio}: {report.params_reduction:.0f} % fewer "
             "parameters")
ax.legend()
fig.tight_layout()
plt.show()
