"""What a CUDA graph of a training step needs, checked without a GPU.

A graph replays kernels; it cannot replay a value read back to the host in the middle
of a step (``.item()``, ``.tolist()``, ``nonzero``, boolean indexing), and CUDA refuses
to capture one. Copies from host memory to the device (``torch.tensor(list,
device=...)``) cannot be told from CPU work here; the GPU tests in ``test_cuda.py`` run
the graphed steps themselves, and the step checks itself for host synchronisation
before its first capture.
"""

import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skkgp import layout
from skkgp.classifier import EEGClassifier
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

#: ATen operations that make the host wait for a device's result (their output's size
#: or value is needed on the host).
READS_BACK = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique",
                        "_unique", "_unique2", "unique_dim", "unique_consecutive", "equal",
                        "is_nonzero", "bincount", "repeat_interleave"})
#: Tensor methods that hand values to Python without an ATen operation.
HOST_METHODS = ("tolist", "numpy")


class HostReads(TorchDispatchMode):
    """The operations of the block that read a result back to the host, with their caller."""

    def __init__(self):
        super().__init__()
        self.reads = []
        self._methods = {}

    def __enter__(self):
        for name in HOST_METHODS:
            method = self._methods[name] = getattr(torch.Tensor, name)

            def recording(tensor, *args, _name=name, _method=method, **kwargs):
                self.reads.append((_name,))
                return _method(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, recording)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, method in self._methods.items():
            setattr(torch.Tensor, name, method)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        boolean_index = name.startswith("index") and any(
            isinstance(arg, (list, tuple)) and any(
                isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in arg)
            for arg in args)
        if name in READS_BACK or boolean_index:
            caller = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                      if "skkgp" in f.filename][-1:]
            self.reads.append((name, *caller))
        return func(*args, **(kwargs or {}))


SHAPES = {"ccnn": (4, 9, 9), "fbccnn": (4, 9, 9), "eegnet": (32, 128), "tsception": (32, 128)}


@pytest.mark.parametrize("model", list(SHAPES))
@pytest.mark.parametrize("knowledge", [False, True], ids=["fit", "knowledge-guided"])
def test_a_training_step_reads_nothing_back_to_the_host(model, knowledge):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, *SHAPES[model])).astype(np.float32)
    y = np.arange(8) % 2
    # SGD keeps no step count; Adam's is read on the host unless capturable (which the
    # graphed step switches on).
    common = dict(max_epochs=1, batch_size=4, random_state=0, optimizer=torch.optim.SGD)
    if knowledge:
        mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
        net = KnowledgeGuidedClassifier(model, region_mask=mask, **common).fit(X, y)
        net.on_train_begin(net, X=X, y=y)
    else:
        net = EEGClassifier(model, **common).fit(X, y)
    # Record the batch values as a GPU step does: as tensors, read once per epoch.
    net._defer_loss_sync = lambda: True
    batch = (torch.from_numpy(X[:4]), torch.from_numpy(net.encode_labels(y[:4])))
    with HostReads() as reads:
        step = net.train_step(batch)
    assert torch.isfinite(step["loss"])
    assert reads.reads == []


def test_host_reads_are_seen():
    # On a CPU the knowledge-guided step records its region share with .item(): the
    # detector above must see that read.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4, 9, 9)).astype(np.float32)
    y = np.arange(8) % 2
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    net = KnowledgeGuidedClassifier("ccnn", region_mask=mask, max_epochs=1, batch_size=4,
                                    random_state=0, optimizer=torch.optim.SGD).fit(X, y)
    net.on_train_begin(net, X=X, y=y)
    batch = (torch.from_numpy(X[:4]), torch.from_numpy(net.encode_labels(y[:4])))
    with HostReads() as reads:
        net.train_step(batch)
    assert [name for name, *_ in reads.reads] == ["_local_scalar_dense"] * 2
    with HostReads() as reads:
        torch.arange(3).tolist()
        torch.arange(3).numpy()
        torch.repeat_interleave(torch.tensor([1, 2]))
    assert [name for name, *_ in reads.reads] == ["tolist", "numpy", "repeat_interleave"]
