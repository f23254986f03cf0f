"""
Motor imagery from MOABB: BNCI2014_001 with the motor strip as prior
====================================================================

.. note::
   This example **downloads** the BNCI2014_001 recordings (about 700 MB, into
   ``MNE_DATA`` or MOABB's data folder) the first time it runs. It is not executed when
   the documentation is built, nor by CI: run it yourself with
   ``python examples/moabb_bnci2014_001.py`` (``pip install -e ".[moabb]"`` in the checkout).

BNCI2014_001 (BCI Competition IV 2a) has 9 subjects imagining left-hand, right-hand,
feet and tongue movements, recorded with 22 EEG channels at 250 Hz.
:func:`~skkgp.datasets.load_moabb` cuts the epochs with MOABB's ``MotorImagery``
paradigm (8-32 Hz) and returns the usual Bunch: ``groups`` is the subject, so
leave-one-subject-out cross-validation tests on people the network has never seen.
The knowledge region is the motor strip (``region="central"``: the C, FC and CP rows,
which hold C3, Cz and C4).
"""

# %%
import numpy as np
from moabb.datasets import BNCI2014_001
from moabb.paradigms import LeftRightImagery
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import load_moabb
from skkgp.transforms import ChannelStandardizer

data = load_moabb(BNCI2014_001(), paradigm=LeftRightImagery(resample=128),
                  subjects=[1, 2, 3])
print(data.X.shape, data.ch_names, data.sfreq, "subjects:", np.unique(data.groups))

# %%
# The pipeline: per-channel standardisation, then an EEGNet that is pruned by half
# with LFP and recovered with the motor strip as prior. ``ch_names`` names the 22
# channels so that ``"central"`` resolves to the electrodes present.
pipeline = make_pipeline(
    ChannelStandardizer(),
    KnowledgeGuidedPruner(
        EEGClassifier("eegnet", max_epochs=30, batch_size=64, lr=1e-3),
        method="lfp", prune_ratio=0.5, region="central", ch_names=data.ch_names,
        recovery_epochs=10, random_state=0,
    ),
)
scores = cross_val_score(pipeline, data.X, data.y, groups=data.groups, cv=LeaveOneGroupOut())
for subject, score in zip(np.unique(data.groups), scores, strict=True):
    print(f"subject {subject} left out: accuracy {score:.3f}")
