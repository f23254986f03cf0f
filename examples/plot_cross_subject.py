"""
Per-subject cross-validation
============================

EEG differs from one person to the next, so a model meant for new users must be tested
on subjects it has never seen. :class:`~sklearn.model_selection.LeaveOneGroupOut` with
the subject of each window as its group trains on all subjects but one and tests on the
one left out, once per subject.

This example compares, subject by subject, the *baseline* recovery of the pruned network
(plain cross-entropy: ``region_weight=0, sample_weighting=0``) with the *knowledge-guided*
recovery, on raw windows with an :class:`~skkgp.models.EEGNet`. The origin network of
each fold is scored too: ``return_estimator`` and ``return_indices`` of
:func:`~sklearn.model_selection.cross_validate` give back each fold's fitted pipeline
and its test windows.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, cross_validate
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.transforms import ChannelStandardizer

data = make_deap_like(n_subjects=4, n_trials=20, duration=3, target="arousal",
                      random_state=0)
print(data.X.shape, "subjects:", np.unique(data.groups))


def pipeline(region_weight, sample_weighting):
    return make_pipeline(
        ChannelStandardizer(),
        KnowledgeGuidedPruner(
            EEGClassifier("eegnet", max_epochs=8, batch_size=32),
            method="lfp", prune_ratio=0.5, region="prefrontal",
            region_weight=region_weight, sample_weighting=sample_weighting,
            recovery_epochs=4, random_state=0,
        ),
    )


# %%
# One call per configuration; each runs one fit per left-out subject.
cv = LeaveOneGroupOut()
results = {
    name: cross_validate(pipeline(alpha, beta), data.X, data.y, groups=data.groups, cv=cv,
                         return_estimator=True, return_indices=True)
    for name, (alpha, beta) in {"baseline": (0.0, 0.0), "knowledge-guided": (1.0, 1.0)}.items()
}

# %%
# The origin network of a fold is the same in both configurations (same seed, same
# data), so it is scored once.
first = results["baseline"]
origin = [
    fitted[-1].origin_estimator_.score(fitted[:-1].transform(data.X[test]), data.y[test])
    for fitted, test in zip(first["estimator"], first["indices"]["test"], strict=True)
]
scores = {"origin (unpruned)": np.array(origin)}
scores.update({name: result["test_score"] for name, result in results.items()})
for name, values in scores.items():
    print(f"{name:18s} {values.mean():.2f} +- {values.std():.2f}  "
          f"per subject {np.round(values, 2)}")

# %%
# Four simulated subjects of one minute each are far too few to tell the settings
# apart; with real data, this is the comparison that matters for new users.
subjects = np.unique(data.groups)
fig, ax = plt.subplots(figsize=(6, 3))
width = 0.25
for i, (name, values) in enumerate(scores.items()):
    ax.bar(np.arange(len(subjects)) + (i - 1) * width, values, width, label=name)
ax.axhline(0.5, color="gray", lw=0.8, ls="--")
ax.set_xticks(np.arange(len(subjects)), [f"subject {s}" for s in subjects])
ax.set_ylabel("accuracy on the left-out subject")
ax.set_ylim(0, 1)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
