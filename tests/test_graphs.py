"""What a CUDA graph of a training step needs, checked without a GPU.

A graph replays kernels; it cannot replay a value read back to the host in the middle
of a step (``.item()``, ``.tolist()``, ``nonzero``, boolean indexing), and CUDA refuses
to capture one. Copies from host memory to the device (``torch.tensor(list,
device=...)``) cannot be told from CPU work here; the GPU tests in ``test_cuda.py`` run
the graphed steps themselves, and the step checks itself for host synchronisation
before its first capture.
"""

import re
import threading
import traceback
import warnings

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skkgp import layout
from skkgp._graphs import (WARNING_MESSAGE, GraphedTrainingStep, RecaptureGuard,
                           describe_graph_steps, host_state, make_capturable, sync_reason)
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


# ------------------------------------------- decisions of the graphed step, on a CPU
def _small_fit(**kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4, 9, 9)).astype(np.float32)
    y = np.arange(32) % 2
    return EEGClassifier("ccnn", max_epochs=1, batch_size=8, random_state=0,
                         **kwargs).fit(X, y), X, y


def test_an_optimizer_saved_while_capturable_loads_with_its_own_setting(tmp_path):
    # What a graphed fit does to Adam at its first step, and what skorch's Checkpoint
    # (f_optimizer) then writes at an epoch end and loads with load_best.
    net, X, y = _small_fit()
    switch = make_capturable(net.optimizer_)
    assert net.optimizer_.param_groups[0]["capturable"] is True
    net.save_params(f_optimizer=tmp_path / "optimizer.pt")
    assert torch.load(tmp_path / "optimizer.pt")["param_groups"][0]["capturable"] is False
    other, _, _ = _small_fit()
    other.load_params(f_optimizer=tmp_path / "optimizer.pt")
    assert other.optimizer_.param_groups[0]["capturable"] is False
    other.partial_fit(X, y)  # a capturable Adam refuses CPU parameters
    assert np.isfinite(other.history_[-1, "train_loss"])
    # Loaded while the fit is graphed, the state is switched too, and counted: its new
    # state tensors need a new capture.
    net.load_params(f_optimizer=tmp_path / "optimizer.pt")
    assert net.optimizer_.param_groups[0]["capturable"] is True
    assert switch.loads == 1
    switch.restore()
    assert net.optimizer_.param_groups[0]["capturable"] is False
    # Restored, the optimizer saves what it has, a capturable=True its user set included.
    net.optimizer_.param_groups[0]["capturable"] = True
    assert net.optimizer_.state_dict()["param_groups"][0]["capturable"] is True


def _stepped(optimizer_cls, **kwargs):
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = optimizer_cls([param], lr=0.1, **kwargs)
    param.grad = torch.ones(3)
    optimizer.step()
    return optimizer


def test_optimizers_that_count_steps_on_the_host_are_refused():
    # Adagrad has no capturable option and counts steps in a CPU tensor: a replay would
    # repeat the captured count, and its learning-rate decay with it.
    reason = host_state([_stepped(torch.optim.Adagrad, lr_decay=0.01)])
    assert reason is not None and "Adagrad" in reason and "'step'" in reason
    assert host_state([_stepped(torch.optim.SGD, momentum=0.9)]) is None
    adam = _stepped(torch.optim.Adam)
    assert host_state([adam]) is not None  # its step count, until made capturable
    make_capturable(adam)
    assert host_state([adam]) is None


def _skorch_step(net):
    from skorch import NeuralNetClassifier

    def step(batch, **fit_params):
        return NeuralNetClassifier.train_step(net, batch)

    return step


@pytest.mark.parametrize("fit_params", [{}, {"sample_weight": None}],
                         ids=["cpu-batches", "fit-params"])
def test_steps_a_graph_cannot_take_are_trained_eagerly_with_a_warning(fit_params):
    net, X, y = _small_fit()
    graphed = GraphedTrainingStep(net)
    batch = (torch.from_numpy(X[:8]), torch.from_numpy(net.encode_labels(y[:8])))
    reason = "fit_params were given" if fit_params else "not CUDA tensors"
    with pytest.warns(RuntimeWarning, match=reason):
        step = graphed.run(batch, fit_params, _skorch_step(net))
    assert torch.isfinite(step["loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per fit
        graphed.run(batch, fit_params, _skorch_step(net))
    assert graphed.close() == {"captures": 0, "replayed": 0, "eager": 2,
                               "failure": graphed.failure}
    assert reason in graphed.failure


def test_graphs_replaced_after_one_batch_each_are_given_up_with_the_right_reason():
    # One full batch an epoch and a per-epoch schedule: each graph trains one batch.
    guard = RecaptureGuard()
    guard.captured()
    guard.replayed()
    assert guard.changed() is None
    guard.captured()
    guard.replayed()
    reason = guard.changed()
    assert reason is not None and "single batch" in reason
    assert "per-batch" not in reason
    # Graphs that train several batches each are captured again as often as needed.
    guard = RecaptureGuard()
    for _ in range(5):
        guard.captured()
        guard.replayed()
        guard.replayed()
        assert guard.changed() is None


def test_the_sync_check_names_the_place_of_the_step_that_waits():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("called a synchronizing CUDA operation\n(more)", UserWarning)
        line = traceback.extract_stack()[-1].lineno - 1
    reason = sync_reason(caught[0])
    assert "called a synchronizing CUDA operation" in reason and "(more)" not in reason
    assert f"test_graphs.py:{line}" in reason


def test_the_sync_check_leaves_other_threads_and_later_warnings_alone(monkeypatch):
    # The two CUDA-only parts are stood in for: the debug mode (the step below warns as
    # PyTorch's check would) and the side stream. Another thread enters a
    # warnings.catch_warnings block while the step is checked and leaves it after: the
    # check must leave nothing of its own that such a block could put back.
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    graphed = GraphedTrainingStep(_small_fit()[0])
    monkeypatch.setattr(graphed, "_side_stream", lambda eager_step, batch: eager_step(batch))
    checking, other_inside, check_done = threading.Event(), threading.Event(), threading.Event()
    shown = []
    places = []

    def show(message, category, filename, lineno, file=None, line=None):
        shown.append(str(message))

    def eager_step(batch):
        checking.set()
        other_inside.wait(10)
        warnings.warn("called a synchronizing CUDA operation (Triggered internally)")
        places.append(traceback.extract_stack()[-1].lineno - 1)
        warnings.warn("a note of the step")
        return {}

    def other_thread():
        checking.wait(10)
        with warnings.catch_warnings():
            warnings.warn("a note the user silenced")
            other_inside.set()
            check_done.wait(10)

    def fitting_thread():
        graphed._checked_warmup(eager_step, ())
        check_done.set()
        other.join()
        warnings.warn("a later warning of the fitting thread")

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("ignore", message="a note the user silenced")
        # The user silenced PyTorch's check; the step's check sees it all the same.
        warnings.filterwarnings("ignore", message="called a synchronizing")
        warnings.showwarning = show
        filters = list(warnings.filters)
        other = threading.Thread(target=other_thread)
        fitting = threading.Thread(target=fitting_thread)
        other.start()
        fitting.start()
        fitting.join()
        assert warnings.filters == filters
    assert "called a synchronizing CUDA operation" in graphed.failure
    assert f"test_graphs.py:{places[0]}" in graphed.failure
    assert shown[0] == "a note of the step"
    assert re.match(WARNING_MESSAGE, shown[1])
    assert shown[2:] == ["a later warning of the fitting thread"]


def test_how_the_steps_ran_is_said_plainly():
    from skkgp.reproduce.estimate import StepTimes

    replayed = {"captures": 1, "replayed": 9, "eager": 4, "failure": None}
    failed = {"captures": 0, "replayed": 0, "eager": 13,
              "failure": "Adagrad keeps its state 'step' on the host"}
    assert describe_graph_steps(replayed) == (
        "CUDA graphs: 9 steps replayed, 4 eager, 1 capture(s)")
    assert describe_graph_steps(failed).startswith("CUDA graphs FAILED")
    assert "Adagrad" in describe_graph_steps(failed)
    assert "not used" in describe_graph_steps(None)
    assert "no step replayed" in describe_graph_steps(dict(replayed, replayed=0))
    # A dry run's timed steps: one line per kind, after each worker count's times.
    times = StepTimes(1.0, 2.0, 0.5, graph_steps=(("plain", replayed), ("knowledge", failed)))
    assert times.graph_lines("ccnn") == [
        describe_graph_steps(replayed) + " (ccnn, plain steps timed)",
        describe_graph_steps(failed) + " (ccnn, knowledge-guided steps timed)"]
    assert StepTimes(1.0, 2.0, 0.5).graph_lines("ccnn") == []
    # The fallback's warning is what the timing scripts let through.
    with pytest.warns(RuntimeWarning) as caught:
        GraphedTrainingStep(_small_fit()[0])._fail("a reason")
    assert re.match(WARNING_MESSAGE, str(caught[0].message))
