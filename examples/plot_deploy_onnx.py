"""
Deploy a pruned network with ONNX
=================================

Prune and recover an EEGNet, export the pruned network as an ONNX file with
:func:`skkgp.export_onnx`, and run that file in onnxruntime, where the model runs
without torch: only numpy and onnxruntime are needed there. The file is also quantized
to int8, calibrated on the training windows whose evidence lies most in the knowledge
region. See :ref:`deploy`.
"""

# %%
# Prune and recover
# -----------------
# A small simulation of DEAP (raw 1-second windows, 32 channels at 128 Hz), split by
# trial. The pipeline standardises each channel and trains, prunes (L1 filter pruning,
# half of the filters) and recovers an EEGNet.
import tempfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

import skkgp
from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.transforms import ChannelStandardizer

data = make_deap_like(n_subjects=3, n_trials=16, duration=4, valence_effect=1.0, random_state=0)
train, test = next(GroupShuffleSplit(test_size=0.25, random_state=0).split(
    data.X, data.y, groups=data.trials))
pipe = make_pipeline(
    ChannelStandardizer(),
    KnowledgeGuidedPruner(EEGClassifier("eegnet", max_epochs=4, batch_size=32),
                          method="lfp", prune_ratio=0.5, recovery_epochs=2, random_state=0),
)
pipe.fit(data.X[train], data.y[train])
print(pipe[-1].pruning_report_)

# %%
# Four epochs on a small simulation leave the network near chance level on held-out
# trials; what this example shows is that the exported file predicts exactly what the
# pipeline predicts.
#
# Export
# ------
# Only the network goes into the file: its input is what the network receives, i.e.
# the output of the pipeline's steps before it (here the standardised windows,
# ``(batch, 32, 128)``), and its output is ``"probabilities"``, ``(batch, n_classes)``.
folder = Path(tempfile.mkdtemp())
float_path = skkgp.export_onnx(pipe, folder / "eegnet-pruned.onnx")
int8_path = skkgp.export_onnx(pipe, folder / "eegnet-pruned-int8.onnx", quantize="int8",
                              calibration="knowledge", X=data.X[train], y=data.y[train],
                              n_calibration=64)
for path in (float_path, int8_path):
    print(f"{path.name}: {path.stat().st_size / 1e3:.1f} kB")

# %%
# Run the file where the model runs
# ---------------------------------
# The preprocessing runs where the data are prepared (here, in Python); the network in
# onnxruntime. This function needs numpy and onnxruntime only.
features = pipe[:-1].transform(data.X[test]).astype(np.float32)


def predict(path, windows):
    import json

    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    classes = np.array(json.loads(session.get_modelmeta().custom_metadata_map["classes"]))
    proba = session.run(["probabilities"], {"input": windows})[0]
    return classes[proba.argmax(axis=1)], proba


labels, proba = predict(float_path, features)
int8_labels, _ = predict(int8_path, features)
print(f"largest difference to PyTorch's probabilities: "
      f"{np.abs(proba - pipe.predict_proba(data.X[test])).max():.1e}")
print(f"held-out accuracy: float32 file {np.mean(labels == data.y[test]):.2f}, "
      f"int8 file {np.mean(int8_labels == data.y[test]):.2f}; "
      f"int8 predicts the float32 class on {np.mean(int8_labels == labels):.0%} of windows")
