"""The ``device="cuda"`` path end to end: pruning, knowledge-guided recovery, evidence,
mixed precision and persistence across machines.

Every test here needs a CUDA GPU and is skipped without one (CI has none): run this
file on a machine with one.
"""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from skkgp import layout
from skkgp.classifier import EEGClassifier
from skkgp.datasets import make_deap_like
from skkgp.knowledge.evidence import guided_gradcam
from skkgp.persistence import load, save
from skkgp.pruner import KnowledgeGuidedPruner
from skkgp.transforms import BandDifferentialEntropy, ToGrid

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning"),
]


@pytest.fixture(scope="module")
def raw():
    data = make_deap_like(n_subjects=2, n_trials=4, duration=4, random_state=0)
    return data.X, data.y


@pytest.fixture(scope="module")
def grid(raw):
    X, y = raw
    return ToGrid().fit_transform(BandDifferentialEntropy().fit_transform(X)), y


def _pruner(model, method, **net_kwargs):
    net = EEGClassifier(model, max_epochs=2, batch_size=16, lr=1e-3, device="cuda",
                        random_state=0, **net_kwargs)
    return KnowledgeGuidedPruner(net, method=method, prune_ratio=0.3, recovery_epochs=2,
                                 region_weight=0.5, sample_weighting=0.5, random_state=0)


def _on_cuda(module):
    return all(p.is_cuda for p in module.parameters())


@pytest.mark.parametrize(
    "model, method", [("ccnn", "lfp"), ("fbccnn", "nsfp"), ("ccnn", "umwp"), ("fbccnn", "sfp")]
)
def test_every_method_prunes_and_recovers_on_cuda(grid, model, method):
    X, y = grid
    kgp = _pruner(model, method).fit(X, y)
    assert _on_cuda(kgp.estimator_.module_)
    report = kgp.pruning_report_
    assert report.nonzero_params_after < report.params_before
    proba = kgp.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_raw_model_recovers_on_cuda_in_bf16(raw):
    X, y = raw
    kgp = _pruner("eegnet", "lfp", precision="bf16").fit(X, y)
    assert _on_cuda(kgp.estimator_.module_)
    losses = kgp.estimator_.history[:, "train_loss"]
    assert np.isfinite(losses).all()
    # On a GPU the per-batch records are read from the device once per epoch: by then
    # every one of them is a plain float.
    for key in ("train_loss", "train_region_share", "train_zero_evidence"):
        values = kgp.estimator_.history[-1, "batches", :, key]
        assert values and all(type(v) is float for v in values), key
    assert kgp.predict(X).shape == y.shape


def test_tsception_slims_and_recovers_on_cuda(raw):
    X, y = raw
    kgp = _pruner("tsception", "nsfp").fit(X, y)
    assert _on_cuda(kgp.estimator_.module_)
    assert kgp.pruning_report_.params_after < kgp.pruning_report_.params_before
    assert np.isfinite(kgp.predict_proba(X)).all()


def test_evidence_on_cuda_matches_cpu(grid):
    X, y = grid
    net = EEGClassifier("ccnn", max_epochs=1, batch_size=16, random_state=0).fit(X, y)
    cpu = guided_gradcam(net, X[:12], y[:12], guided=True)
    cuda = guided_gradcam(net.module_, X[:12], net.encode_labels(y[:12]), guided=True,
                          device="cuda")
    assert cuda.shape == cpu.shape == (12, len(layout.DEAP_CHANNELS))
    assert all(p.is_cpu for p in net.module_.parameters())  # computed on a copy
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-5)


def test_pruner_fitted_on_cuda_loads_and_predicts_on_a_cpu_only_machine(
    grid, tmp_path, run_without_cuda
):
    X, y = grid
    kgp = _pruner("ccnn", "lfp").fit(X, y)
    proba = kgp.predict_proba(X)
    save(kgp, tmp_path / "kgp.skkgp")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "proba.npy", proba)
    script = (
        "import sys, numpy as np, torch\n"
        "from skkgp.persistence import load\n"
        "assert not torch.cuda.is_available()\n"
        "d = sys.argv[1]\n"
        "kgp = load(d + '/kgp.skkgp')\n"
        "assert all(not p.is_cuda for p in kgp.estimator_.module_.parameters())\n"
        "p = kgp.predict_proba(np.load(d + '/X.npy'))\n"
        # cuDNN's convolutions run in TF32 (PyTorch's default): GPU and CPU agree to
        # about 1e-5 (1.03e-5 measured with channels-last CCNN on an H200).
        "np.testing.assert_allclose(p, np.load(d + '/proba.npy'), atol=1e-4)\n"
    )
    done = run_without_cuda(script, tmp_path)
    assert done.returncode == 0, done.stderr
    # On this machine the same file can go straight back to the GPU.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load(tmp_path / "kgp.skkgp", device="cuda")
    assert _on_cuda(again.estimator_.module_)
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-5)


def test_reproduce_grid_on_cuda_then_resumed_on_a_cpu_only_machine(tmp_path, run_without_cuda):
    # Every model x method that applies, both recoveries, on the GPU; the same command on
    # a machine without a GPU must find every result and recompute none (--device is
    # not part of a run's identity).
    from skkgp.cli import main

    argv = ["reproduce", "--models", "fbccnn", "eegnet", "tsception",
            "--methods", "lfp", "nsfp", "umwp", "sfp", "--recovery", "finetune", "scratch",
            "--folds", "2", "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2",
            "--n-trials", "6", "--trial-seconds", "3", "--batch-size", "16", "--quiet",
            "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cuda"]) == 0
    results = tmp_path / "out" / "results.csv"
    frame = pd.read_csv(results)
    assert len(frame) == 3 * 4 * 2 * 2
    for stage in ("origin", "baseline", "proposed"):
        assert frame[f"{stage}_accuracy"].between(0, 1).all()
    assert (frame["params_after"] <= frame["params_before"]).all()
    before = results.read_bytes()
    script = (
        "import sys, torch\n"
        "from skkgp.cli import main\n"
        "assert not torch.cuda.is_available()\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = run_without_cuda(script, *argv, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "out" / "run.log").read_text().splitlines()
    assert "computed 0 and reused 48 of 48" in log[-1]
    assert results.read_bytes() == before


@pytest.mark.parametrize("model", ["ccnn", "fbccnn", "eegnet"])
def test_channels_last_on_cuda_follows_the_zoo_declaration(grid, raw, model, weights_layout):
    X, y = raw if model == "eegnet" else grid
    no_dropout = {} if model == "fbccnn" else {"module__dropout": 0.0}
    fits = {
        flag: EEGClassifier(model, max_epochs=0, device="cuda", random_state=0,
                            channels_last=flag, **no_dropout).fit(X, y)
        for flag in ("auto", True, False)
    }
    declared = "cuda" in type(fits["auto"].module_).channels_last_devices
    # EEGNet ran slower in channels-last; FBCCNN's BatchNorm lost float32 accuracy.
    assert declared == (model == "ccnn")

    assert weights_layout(fits["auto"].module_) == (
        "channels_last" if declared else "contiguous")
    assert weights_layout(fits[True].module_) == "channels_last"
    assert weights_layout(fits[False].module_) == "contiguous"
    # "auto"'s network: one step from the same weights, against a float64 copy. With TF32
    # off, channels-last is as accurate as contiguous; with PyTorch's default (cuDNN may
    # use TF32) the channels-last kernels cuDNN picks are TF32 ones (measured: 3e-4 of the
    # largest gradient on an H200 with torch 2.10, 5.4e-2 on an H100 with torch 2.11,
    # against 4e-7 contiguous): the bound below only catches a broken layout.
    if not declared:
        return
    Xb = torch.as_tensor(X[:32], dtype=torch.float32).cuda()
    yb = torch.as_tensor(fits[True].encode_labels(y[:32])).cuda()

    def gradients(module, dtype):
        module.zero_grad()
        module.train()
        torch.nn.functional.cross_entropy(module(Xb.to(dtype)), yb).backward()
        return [p.grad.double() for p in module.parameters()]

    reference = gradients(copy.deepcopy(fits[False].module_).double(), torch.float64)
    scale = max(g.abs().max() for g in reference)

    def error(flag):
        grads = gradients(fits[flag].module_, torch.float32)
        return max((g - r).abs().max() for g, r in zip(grads, reference, strict=True))

    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        errors = {flag: error(flag) for flag in (True, False)}
    assert errors[True] <= 4 * errors[False] + 1e-6 * scale, (errors, scale)
    assert error(True) <= 2e-1 * scale  # TF32 allowed


def test_knowledge_guided_loss_on_cuda_matches_cpu():
    from skkgp.knowledge.losses import knowledge_guided_terms

    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(16, 32, generator=generator, dtype=torch.float64)
    scores[3] = -scores[3].abs()  # a sample whose evidence is all zero
    ce = torch.rand(16, generator=generator, dtype=torch.float64)
    mask = torch.as_tensor(layout.region_mask("frontal_left", layout.DEAP_CHANNELS))
    results = []
    for device in ("cpu", "cuda"):
        z = scores.to(device).requires_grad_(True)
        c = ce.to(device).requires_grad_(True)
        terms = knowledge_guided_terms(c, torch.relu(z), mask.to(device), 0.7, 0.5, z)
        terms.loss.backward()
        results.append([t.detach().cpu() for t in (terms.loss, terms.share, c.grad, z.grad)])
    for on_cpu, on_cuda in zip(*results, strict=True):
        torch.testing.assert_close(on_cuda, on_cpu, rtol=1e-10, atol=1e-12)


def test_knowledge_guided_step_does_not_wait_for_the_gpu(grid):
    # A step that read a value to the host would make the host wait for the GPU at every
    # batch; at small batches the GPU then idles while the host prepares the next one.
    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

    X, y = grid
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    net = KnowledgeGuidedClassifier("ccnn", region_mask=mask, max_epochs=1, batch_size=16,
                                    device="cuda", random_state=0).fit(X, y)
    batch = (torch.as_tensor(X[:16], device="cuda"),
             torch.as_tensor(net.encode_labels(y[:16]), device="cuda"))
    net.on_train_begin(net, X=X, y=y)
    net.train_step(batch)  # Adam's state exists from here on
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        net.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --------------------------------------------------------------------- CUDA graphs
def _graphed_and_eager(net_cls, X, y, **kwargs):
    """The same seeded fit with and without CUDA graphs."""
    return [net_cls(cuda_graphs=flag, device="cuda", random_state=0, **kwargs).fit(X, y)
            for flag in (True, False)]


def _assert_same_training(graphed, eager, keys=("train_loss",)):
    for key in keys:
        np.testing.assert_allclose(graphed.history_[:, key], eager.history_[:, key],
                                   rtol=1e-3, err_msg=key)
    for (name, a), (_, b) in zip(graphed.module_.state_dict().items(),
                                 eager.module_.state_dict().items()):
        if a.is_floating_point():
            scale = max(1.0, b.abs().max().item())
            torch.testing.assert_close(a, b, rtol=0, atol=1e-3 * scale, msg=name)


@pytest.mark.parametrize("knowledge", [False, True], ids=["fit", "knowledge-guided"])
def test_cuda_graphs_train_as_eager_steps_do(grid, knowledge):
    # No dropout: graphs draw dropout masks in another order than eager steps.
    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

    X, y = grid
    n_full = len(X) // 5
    assert len(X) % 5 and n_full > 4  # full batches to replay and a smaller last one
    kwargs = dict(max_epochs=3, batch_size=5, module__dropout=0.0)
    if knowledge:
        mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
        graphed, eager = _graphed_and_eager(KnowledgeGuidedClassifier, X, y, module="ccnn",
                                            region_mask=mask, **kwargs)
        _assert_same_training(graphed, eager, ("train_loss", "train_region_share"))
    else:
        graphed, eager = _graphed_and_eager(EEGClassifier, X, y, module="ccnn", **kwargs)
        _assert_same_training(graphed, eager)
    # Three warm-up steps and each epoch's smaller last batch run eagerly.
    assert graphed.cuda_graph_steps_ == {"captures": 1, "replayed": 3 * n_full - 3,
                                         "eager": 3 + 3, "failure": None}
    assert not hasattr(eager, "cuda_graph_steps_")
    assert not hasattr(graphed, "_graphed_step_")  # its memory is freed after fit
    np.testing.assert_allclose(graphed.predict_proba(X[:8]), eager.predict_proba(X[:8]),
                               atol=1e-3)
    # The optimizer is given back as configured (Adam's default, not capturable), and
    # trains on eagerly from the device-side step counts.
    assert graphed.optimizer_.param_groups[0]["capturable"] is False
    graphed.set_params(cuda_graphs=False).partial_fit(X, y)
    assert np.isfinite(graphed.history_[-1, "train_loss"])


def test_cuda_graphs_capture_again_when_the_learning_rate_changes(grid):
    from skorch.callbacks import LRScheduler

    X, y = grid
    graphed, eager = _graphed_and_eager(
        EEGClassifier, X, y, module="ccnn", max_epochs=3, batch_size=5, module__dropout=0.0,
        callbacks=[LRScheduler(policy="StepLR", step_size=1, gamma=0.1)],
    )
    _assert_same_training(graphed, eager)
    assert graphed.cuda_graph_steps_["captures"] == 3  # once per learning rate


def test_cuda_graphs_capture_again_when_the_region_weight_changes(grid):
    from skorch.callbacks import Callback

    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

    class Ramp(Callback):
        def on_epoch_begin(self, net, **kwargs):
            net.region_weight = 0.25 * len(net.history)

    X, y = grid
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    graphed, eager = _graphed_and_eager(
        KnowledgeGuidedClassifier, X, y, module="ccnn", region_mask=mask, max_epochs=3,
        batch_size=5, module__dropout=0.0, callbacks=[Ramp()],
    )
    _assert_same_training(graphed, eager, ("train_loss", "train_region_share"))
    assert graphed.cuda_graph_steps_["captures"] == 3  # once per region weight


def test_a_graph_does_not_outlive_a_fit_that_raised(grid):
    from skorch.callbacks import Callback

    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

    class Boom(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise RuntimeError("boom")

    X, y = grid
    n_full = len(X) // 5
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    net = KnowledgeGuidedClassifier("ccnn", region_mask=mask, max_epochs=3, batch_size=5,
                                    device="cuda", cuda_graphs=True, random_state=0,
                                    callbacks=[("boom", Boom())])
    with pytest.raises(RuntimeError, match="boom"):
        net.fit(X, y)
    assert hasattr(net, "_graphed_step_")  # skorch skips on_train_end after an error
    # The next fit makes new region-mask tensors: it must warm up and capture afresh.
    net.set_params(callbacks__boom=None, max_epochs=1)
    net.partial_fit(X, y)
    assert net.cuda_graph_steps_ == {"captures": 1, "replayed": n_full - 3, "eager": 3 + 1,
                                     "failure": None}


@pytest.fixture
def deterministic_cudnn():
    backends = torch.backends.cudnn
    previous = backends.deterministic, backends.benchmark
    backends.deterministic, backends.benchmark = True, False
    yield
    backends.deterministic, backends.benchmark = previous


@pytest.mark.usefixtures("deterministic_cudnn")
def test_cuda_graphs_with_dropout_are_reproducible(grid, tmp_path):
    import pickle

    from skorch.callbacks import Checkpoint

    X, y = grid
    # The checkpoint pickles the whole net at every epoch end, while its graph exists.
    checkpoint = Checkpoint(monitor=None, f_params=None, f_optimizer=None, f_criterion=None,
                            f_history=None, f_pickle="net.pkl", dirname=str(tmp_path))
    first, second = (EEGClassifier("ccnn", max_epochs=2, batch_size=8, device="cuda",
                                   cuda_graphs=True, random_state=0,
                                   callbacks=[checkpoint]).fit(X, y)
                     for _ in range(2))
    assert first.cuda_graph_steps_["replayed"] > 0
    for a, b in zip(first.module_.parameters(), second.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with open(tmp_path / "net.pkl", "rb") as file:
        saved = pickle.load(file)
    np.testing.assert_allclose(saved.predict_proba(X), second.predict_proba(X), atol=1e-6)


def test_cuda_graphs_fall_back_to_eager_steps_with_a_warning(grid):
    X, y = grid

    class ReadsBack(torch.nn.Module):
        """A network whose forward reads a value to the host: not capturable."""

        def __init__(self, in_channels=4, grid_size=(9, 9), num_classes=2):
            super().__init__()
            self.linear = torch.nn.Linear(in_channels * grid_size[0] * grid_size[1],
                                          num_classes)

        def forward(self, x):
            if float(x.abs().sum()) < 0:
                x = -x
            return self.linear(x.flatten(1))

    with pytest.warns(RuntimeWarning, match="cannot be replayed from a CUDA graph"):
        net = EEGClassifier(ReadsBack, max_epochs=2, batch_size=5, device="cuda",
                            cuda_graphs=True, random_state=0).fit(X, y)
    steps = net.cuda_graph_steps_
    assert steps["failure"] is not None and steps["replayed"] == 0
    # The sync check names the place of the read back: this file's forward.
    assert "test_cuda.py:" in steps["failure"], steps["failure"]
    eager = EEGClassifier(ReadsBack, max_epochs=2, batch_size=5, device="cuda",
                          random_state=0).fit(X, y)
    np.testing.assert_allclose(net.history_[:, "train_loss"], eager.history_[:, "train_loss"],
                               rtol=1e-3)


def test_a_graphed_fit_with_checkpoints_ends_with_the_optimizer_as_configured(grid, tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = grid
    # Saved at each better epoch while the graph is on, loaded by load_best after the
    # graph closed.
    checkpoint = Checkpoint(monitor="train_loss_best", load_best=True, f_params="params.pt",
                            f_optimizer="optimizer.pt", f_criterion=None, f_history=None,
                            dirname=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = EEGClassifier("ccnn", max_epochs=3, batch_size=5, device="cuda",
                            cuda_graphs=True, random_state=0,
                            callbacks=[checkpoint]).fit(X, y)
    assert net.cuda_graph_steps_["replayed"] > 0
    # PyTorch's note on capturable optimizers stepping outside a capture is expected
    # at warm-up, and not shown.
    assert not [w for w in caught if "capturable=True" in str(w.message)]
    assert net.optimizer_.param_groups[0]["capturable"] is False
    saved = torch.load(tmp_path / "optimizer.pt", map_location="cpu")
    assert saved["param_groups"][0]["capturable"] is False
    # The checkpoint trains on where a capturable optimizer cannot: a CPU.
    cpu = EEGClassifier("ccnn", max_epochs=1, batch_size=5, random_state=0).fit(X, y)
    cpu.load_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "optimizer.pt")
    cpu.partial_fit(X, y)
    assert np.isfinite(cpu.history_[-1, "train_loss"])


def test_an_optimizer_counting_steps_on_the_host_trains_eagerly(grid):
    X, y = grid
    kwargs = dict(max_epochs=2, batch_size=5, device="cuda", random_state=0,
                  module__dropout=0.0, optimizer=torch.optim.Adagrad,
                  optimizer__lr_decay=0.01)
    with pytest.warns(RuntimeWarning, match="Adagrad keeps its state 'step' on the host"):
        net = EEGClassifier("ccnn", cuda_graphs=True, **kwargs).fit(X, y)
    steps = net.cuda_graph_steps_
    assert steps["replayed"] == 0 and steps["captures"] == 0 and "Adagrad" in steps["failure"]
    eager = EEGClassifier("ccnn", **kwargs).fit(X, y)
    _assert_same_training(net, eager)


def test_graph_steps_are_reported_for_every_graphed_fit(grid):
    X, y = grid
    common = dict(batch_size=5, device="cuda", cuda_graphs=True, random_state=0)
    net = EEGClassifier("ccnn", max_epochs=0, **common).fit(X, y)
    assert net.cuda_graph_steps_ == {"captures": 0, "replayed": 0, "eager": 0,
                                     "failure": None}
    from torch.utils.data import DataLoader, default_collate

    def on_the_cpu(samples):
        return tuple(part.cpu() for part in default_collate(samples))

    # Batches collated on the CPU, which skorch moves to the device in the step.
    with pytest.warns(RuntimeWarning, match="not CUDA tensors"):
        net = EEGClassifier("ccnn", max_epochs=1, iterator_train=DataLoader,
                            iterator_train__collate_fn=on_the_cpu, **common).fit(X, y)
    steps = net.cuda_graph_steps_
    assert steps["replayed"] == 0 and steps["eager"] == -(-len(X) // 5)
    assert "not CUDA tensors" in steps["failure"]


def test_parameter_gradients_follow_the_replays_after_an_eager_batch(grid):
    from skorch.callbacks import Callback

    class GradNorms(Callback):
        def initialize(self):
            self.norms_ = []
            return self

        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                self.norms_.append(net.module_.lin2.weight.grad.norm().item())

    X, y = grid
    graphed, eager = (EEGClassifier("ccnn", max_epochs=3, batch_size=5, device="cuda",
                                    module__dropout=0.0, cuda_graphs=flag, random_state=0,
                                    callbacks=[("norms", GradNorms())]).fit(X, y)
                      for flag in (True, False))
    assert len(X) % 5  # a smaller, eager, last batch in every epoch
    np.testing.assert_allclose(dict(graphed.callbacks_)["norms"].norms_,
                               dict(eager.callbacks_)["norms"].norms_, rtol=1e-3)
    # The graph's gradient tensors are released with it.
    assert all(p.grad is None for p in graphed.module_.parameters())


def test_fits_in_threads_of_one_process_each_replay_their_graphs(grid):
    import threading

    X, y = grid
    n_full = len(X) // 5
    nets = [EEGClassifier("ccnn", max_epochs=2, batch_size=5, device="cuda",
                          cuda_graphs=True, random_state=seed) for seed in range(3)]
    errors = []

    def fit(net):
        try:
            net.fit(X, y)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=fit, args=(net,)) for net in nets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert not [w for w in caught if "cannot be replayed" in str(w.message)]
    for net in nets:
        assert net.cuda_graph_steps_ == {"captures": 1, "replayed": 2 * n_full - 3,
                                         "eager": 3 + 2, "failure": None}
        assert np.isfinite(net.history_[:, "train_loss"]).all()


def test_timing_scripts_say_how_the_graphed_steps_ran(capsys, load_benchmark):
    import io

    from skkgp.cli import build_parser, config_from_args
    from skkgp.reproduce.estimate import dry_run

    bench = load_benchmark("train_speed")
    bench.main(["--device", "cuda", "--cuda-graphs", "--model", "eegnet", "--n-samples", "64",
                "--batch-sizes", "16", "--epochs", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "CUDA graphs" in line]
    # Two epochs of four batches: three warm-up steps, a capture, five replays.
    assert lines == [f"batch 16 repeat 0 {run}: CUDA graphs: 5 steps replayed, 3 eager, "
                     "1 capture(s)" for run in ("fit", "kg")]
    argv = ["reproduce", "--models", "eegnet", "--methods", "lfp", "--folds", "2",
            "--n-subjects", "2", "--n-trials", "6", "--trial-seconds", "4",
            "--batch-size", "8", "--device", "cuda", "--cuda-graphs", "--quiet"]
    result = dry_run(config_from_args(build_parser().parse_args(argv)),
                     stream=io.StringIO(), quiet=True, worker_counts=[1])
    said = [line for line in result.text.splitlines() if line.startswith("CUDA graphs")]
    assert [line.split(" (eegnet, ")[1] for line in said] == [
        "plain steps timed)", "knowledge-guided steps timed)"]
    assert all(re.match(r"CUDA graphs: [1-9]\d* steps replayed, ", line) for line in said)
