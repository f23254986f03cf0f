"""
Grid search over the prune ratio and the loss weights
=====================================================

:class:`~skkgp.KnowledgeGuidedPruner` is an ordinary scikit-learn estimator, so its
parameters can be tuned with :class:`~sklearn.model_selection.GridSearchCV`. Here the
grid crosses two prune ratios with two settings of the loss weights: the baseline
recovery (``region_weight=0, sample_weighting=0``) and the knowledge-guided one.

The folds group windows by *trial* (:class:`~sklearn.model_selection.GroupKFold` with
``groups=data.trials``), so that no trial has windows on both sides of a split (see
:ref:`evaluation`). With Dask, the same search runs on a cluster (see :ref:`dask`).
"""

# %%
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.transforms import ChannelStandardizer

data = make_deap_like(n_subjects=2, n_trials=20, duration=4, target="arousal",
                      random_state=0)

pipe = Pipeline([
    ("scale", ChannelStandardizer()),
    ("kgp", KnowledgeGuidedPruner(
        EEGClassifier("eegnet", max_epochs=8, batch_size=32),
        method="lfp", recovery_epochs=4, random_state=0,
    )),
])

# %%
# The loss weights move together, so the grid is a list of two sub-grids.
param_grid = [
    {"kgp__prune_ratio": [0.3, 0.7], "kgp__region_weight": [0.0], "kgp__sample_weighting": [0.0]},
    {"kgp__prune_ratio": [0.3, 0.7], "kgp__region_weight": [1.0], "kgp__sample_weighting": [1.0]},
]
search = GridSearchCV(pipe, param_grid, cv=GroupKFold(n_splits=3))
search.fit(data.X, data.y, groups=data.trials)

results = pd.DataFrame(search.cv_results_)
results["recovery"] = results["param_kgp__region_weight"].map(
    {0.0: "baseline", 1.0: "knowledge-guided"})
table = results.pivot(index="param_kgp__prune_ratio", columns="recovery",
                      values="mean_test_score")
print(table.round(3))
print("best:", search.best_params_)

# %%
# With this little simulated data (two subjects, 80 s of EEG each) every score is
# near chance and the differences between cells are noise: the example shows the
# search, not the merits of a setting. ``skkgp reproduce`` runs the comparison at scale.
#
# The refitted best pipeline, and how much of the network its pruning removed:
best = search.best_estimator_[-1]
print(f"parameters {best.pruning_report_.params_before} -> {best.pruning_report_.params_after}"
      f" ({best.pruning_report_.params_reduction:.0f} % fewer)")

ax = table.plot(kind="bar", figsize=(5, 3), rot=0)
ax.set_xlabel("prune ratio")
ax.set_ylabel("mean accuracy over folds")
ax.set_ylim(0, 1)
ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()
