"""
Evidence topomaps before and after pruning
==========================================

Where does a network look? :func:`skkgp.knowledge.evidence.guided_gradcam` gives, for each
sample, one non-negative value per electrode: the Grad-CAM evidence of the explained
class on the network's electrode-resolving layer. Averaged over samples and drawn on the
scalp with :func:`mne.viz.plot_topomap`, it shows which electrodes a network relies on.

This example prunes one CCNN twice, with the *baseline* recovery (plain cross-entropy,
``region_weight=0, sample_weighting=0``) and with the *knowledge-guided* recovery, and
compares the evidence of the origin network and of both pruned networks. The knowledge
region here is the left-frontal region of the authors' code (Fp1, AF3, F3, F7).

With a few hundred simulated windows and three recovery epochs the differences between
the maps are small; the point here is how to compute and draw them. ``skkgp reproduce``
writes the same maps for its full runs.
"""

# %%
# Data and features
# -----------------
# The band differential entropy is computed once, outside the estimators (it learns
# nothing, so this does not leak across the split); the standardiser is fitted on the
# training windows only.
import matplotlib.pyplot as plt
import mne
import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from skkgp import EEGClassifier, KnowledgeGuidedPruner, layout
from skkgp.datasets import make_deap_like
from skkgp.knowledge.evidence import guided_gradcam
from skkgp.knowledge.losses import region_share
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

data = make_deap_like(n_subjects=3, n_trials=20, duration=4, random_state=0)
train, test = next(GroupShuffleSplit(test_size=0.25, random_state=0).split(
    data.X, data.y, groups=data.trials))
de = BandDifferentialEntropy().fit_transform(data.X)  # (n, 32, 4)
scaler = ChannelStandardizer(per_feature=True).fit(de[train])
grids = ToGrid().fit_transform(scaler.transform(de))  # (n, 4, 9, 9)

# %%
# Baseline and knowledge-guided recovery
# --------------------------------------
# Both pruners clone the same estimator with the same ``random_state``, so they start
# from the same origin network and prune it identically; only the recovery differs.
region = "frontal_left"
common = dict(method="lfp", prune_ratio=0.5, region=region, recovery_epochs=3,
              random_state=0)
origin = EEGClassifier("ccnn", max_epochs=4, batch_size=32)
baseline = KnowledgeGuidedPruner(origin, region_weight=0.0, sample_weighting=0.0, **common)
guided = KnowledgeGuidedPruner(origin, region_weight=1.0, sample_weighting=1.0, **common)
baseline.fit(grids[train], data.y[train])
guided.fit(grids[train], data.y[train])

# %%
# Evidence on the held-out windows
# --------------------------------
# ``guided_gradcam`` accepts a fitted pruner, a pipeline ending in one, a fitted
# estimator or a bare ``torch.nn.Module``: the origin network is kept by the pruner in
# ``origin_module_``. (``guided.region_share(X, y)`` gives the mean share directly.) Each sample's evidence is
# normalised to sum to 1 before averaging, as in the losses, so the maps are shares.
networks = {
    "origin": baseline.origin_module_,
    "pruned, baseline recovery": baseline.estimator_,
    "pruned, knowledge-guided": guided.estimator_,
}
mask = layout.region_mask(region, layout.DEAP_CHANNELS)
maps = {}
for name, network in networks.items():
    evidence = guided_gradcam(network, grids[test])  # (n_test, 32)
    total = evidence.sum(axis=1, keepdims=True)
    shares = np.divide(evidence, total, out=np.full_like(evidence, 1 / 32), where=total > 0)
    maps[name] = shares.mean(axis=0)
    print(f"{name:28s} region share {region_share(evidence, mask).mean():.2f}")

print(f"accuracy: origin {baseline.origin_estimator_.score(grids[test], data.y[test]):.2f}, "
      f"baseline {baseline.score(grids[test], data.y[test]):.2f}, "
      f"knowledge-guided {guided.score(grids[test], data.y[test]):.2f}")

# %%
# Topomaps
# --------
# :func:`skkgp.layout.make_info` builds an :class:`mne.Info` with standard 10-20
# positions for the DEAP electrodes; the region's electrodes are marked.
info = layout.make_info(layout.DEAP_CHANNELS)
vmax = max(values.max() for values in maps.values())
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, (name, values) in zip(axes, maps.items(), strict=True):
    image, _ = mne.viz.plot_topomap(
        values, info, axes=ax, show=False, cmap="Reds", vlim=(0, vmax), mask=mask,
        mask_params=dict(marker="o", markerfacecolor="k", markersize=5),
    )
    ax.set_title(name, fontsize=10)
fig.colorbar(image, ax=axes, shrink=0.7, label="share of the evidence")
plt.show()
