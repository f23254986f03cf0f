"""Tests of skkgp.export: ONNX files that predict as the PyTorch network does."""

from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import torch
from sklearn.pipeline import make_pipeline
from torch.nn.utils import prune as torch_prune

import skkgp
from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    QuantizationWarning,
    calibration_inputs,
    export_onnx,
    inference_copy,
)
from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption
from skkgp.pruning import TrainingBatch, applicable_methods, prune
from skkgp.transforms import ChannelStandardizer

GRID = (4, 9, 9)
RAW = (8, 64)
ZOO = {
    "ccnn": (CCNN, GRID, {}),
    "fbccnn": (FBCCNN, GRID, {}),
    "eegnet": (EEGNet, RAW, {"num_electrodes": 8, "chunk_size": 64}),
    "tsception": (TSCeption, RAW, {"num_electrodes": 8, "chunk_size": 64}),
}
CASES = [(name, method) for name, (cls, _, kwargs) in ZOO.items()
         for method in applicable_methods(cls(**kwargs))]
TOLERANCE = 1e-5


def _session(path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_proba(path, X) -> np.ndarray:
    return _session(path).run([OUTPUT_NAME], {INPUT_NAME: np.asarray(X, np.float32)})[0]


def _pruned_estimator(name, method, rng, ratio=0.5):
    """An EEGClassifier around a zoo network pruned at initialisation (no training)."""
    cls, shape, kwargs = ZOO[name]
    torch.manual_seed(0)
    network = cls(**kwargs)
    X = rng.standard_normal((6, *shape)).astype(np.float32)
    # Data-driven criteria (taylor, kgi) rank on the samples; the region: a few electrodes.
    n_electrodes = 32 if len(shape) == 3 else shape[0]
    batch = TrainingBatch(
        torch.as_tensor(X), torch.arange(6) % 2, region_mask=np.arange(n_electrodes) < 4
    )
    prune(network, method, ratio, torch.as_tensor(X[:2]), batch=batch)
    estimator = EEGClassifier(network, max_epochs=0).fit(X, np.arange(6) % 2)
    return estimator, shape


def test_every_method_can_prune_the_cases():
    # The test grid covers every zoo model and every method that applies to it.
    assert len(CASES) == 15 + 4 * 4  # and taylor, fpgm, lamp, kgi on every model
    assert ("ccnn", "nsfp") not in CASES


@pytest.mark.parametrize("name, method", CASES)
def test_pruned_zoo_network_matches_pytorch(name, method, rng, tmp_path):
    estimator, shape = _pruned_estimator(name, method, rng)
    path = export_onnx(estimator, tmp_path / "net.onnx")
    # Another batch size than the export's: the batch axis is dynamic.
    X = rng.standard_normal((5, *shape)).astype(np.float32)
    proba = _onnx_proba(path, X)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba, estimator.predict_proba(X), rtol=0, atol=TOLERANCE)
    one = _onnx_proba(path, X[:1])
    np.testing.assert_allclose(one, proba[:1], rtol=0, atol=TOLERANCE)


def test_masks_are_folded_into_a_copy_only(rng, tmp_path):
    estimator, shape = _pruned_estimator("ccnn", "umwp", rng, ratio=0.7)
    module = estimator.module_
    masked = [layer for layer in module.modules() if hasattr(layer, "weight_mask")]
    assert masked  # the user's network keeps its reparametrisation
    path = export_onnx(estimator, tmp_path / "umwp.onnx")
    assert all(hasattr(layer, "weight_mask") and hasattr(layer, "weight_orig")
               for layer in masked)
    assert any(isinstance(h, torch_prune.BasePruningMethod)
               for layer in masked for h in layer._forward_pre_hooks.values())
    # In the file, the masked weights are plain initializers holding the zeros.
    model = onnx.load(path)
    names = {init.name for init in model.graph.initializer}
    assert not any("mask" in n or "orig" in n for n in names)
    zeros = sum(int((onnx.numpy_helper.to_array(i) == 0).sum())
                for i in model.graph.initializer if i.name.endswith("weight"))
    masked_zeros = sum(int((layer.weight_mask == 0).sum()) for layer in masked)
    assert zeros >= masked_zeros > 0


def test_channels_last_network_exports_its_values(rng, tmp_path, weights_layout):
    X = rng.standard_normal((16, *GRID)).astype(np.float32)
    y = np.arange(16) % 2
    estimator = EEGClassifier("ccnn", channels_last=True, max_epochs=1, batch_size=8,
                              random_state=0).fit(X, y)
    assert weights_layout(estimator.module_) == "channels_last"
    path = export_onnx(estimator, tmp_path / "cl.onnx")
    assert weights_layout(estimator.module_) == "channels_last"  # untouched
    np.testing.assert_allclose(_onnx_proba(path, X), estimator.predict_proba(X),
                               rtol=0, atol=TOLERANCE)


def test_eegnet_max_norm_is_applied_once(rng, tmp_path):
    estimator, shape = _pruned_estimator("eegnet", "lfp", rng)
    spatial = estimator.module_.spatial_conv
    with torch.no_grad():
        spatial.weight.mul_(10.0)  # filters far above max_norm, as after an optimizer step
    before = spatial.weight.detach().clone()
    copy = inference_copy(estimator.module_)
    assert copy.spatial_conv.weight.flatten(1).norm(dim=1).max() <= 1.0 + 1e-6
    assert torch.equal(spatial.weight, before)
    X = rng.standard_normal((4, *shape)).astype(np.float32)
    path = export_onnx(estimator, tmp_path / "eegnet.onnx")
    np.testing.assert_allclose(_onnx_proba(path, X), estimator.predict_proba(X),
                               rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def fitted_pruners():
    rng = np.random.default_rng(1)
    grids = rng.standard_normal((32, *GRID)).astype(np.float32)
    raw = rng.standard_normal((32, 32, 64)).astype(np.float32)
    # Labels carried by the inputs, so that the networks learn something in one epoch.
    grids[:16, 0] += 2.0
    raw[:16, :4] *= 3.0
    y = (np.arange(32) < 16).astype(int)
    ccnn = KnowledgeGuidedPruner(
        EEGClassifier("ccnn", max_epochs=1, batch_size=16, lr=3e-4), method="lfp", prune_ratio=0.5,
        random_state=0,
    ).fit(grids, y)
    eegnet = make_pipeline(
        ChannelStandardizer(),
        KnowledgeGuidedPruner(EEGClassifier("eegnet", max_epochs=5, batch_size=16, lr=1e-2),
                              method="umwp", prune_ratio=0.5, random_state=0),
    ).fit(raw, y)
    return {"ccnn": (ccnn, grids, y), "eegnet": (eegnet, raw, y)}


def test_fitted_pruner_exports_its_recovered_network(fitted_pruners, tmp_path):
    pruner, X, _ = fitted_pruners["ccnn"]
    path = export_onnx(pruner, tmp_path / "pruner.onnx")
    np.testing.assert_allclose(_onnx_proba(path, X), pruner.predict_proba(X),
                               rtol=0, atol=TOLERANCE)
    # The pruned network: its first layer kept half of the origin's 64 filters.
    weights = {i.name: i for i in onnx.load(path).graph.initializer}
    first = next(w for name, w in weights.items() if name.endswith("conv1.1.weight"))
    assert first.dims[0] == 32
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["classes"]) == [0, 1]
    assert json.loads(meta["input_shape"]) == list(GRID)
    assert json.loads(meta["preprocessing"]) == []


def test_pipeline_exports_the_network_and_names_its_preprocessing(fitted_pruners, tmp_path):
    pipe, X, _ = fitted_pruners["eegnet"]
    path = export_onnx(pipe, tmp_path / "pipe.onnx")
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["preprocessing"]) == ["channelstandardizer"]
    features = pipe[:-1].transform(X)  # the steps that stay in Python
    np.testing.assert_allclose(_onnx_proba(path, features), pipe.predict_proba(X),
                               rtol=0, atol=TOLERANCE)


def test_top_level_name_is_lazy():
    assert skkgp.export_onnx is export_onnx
    assert "export_onnx" in skkgp.__all__


# ---------------------------------------------------------------------- refusals
def test_existing_file_is_never_overwritten_without_overwrite(rng, tmp_path):
    estimator, _ = _pruned_estimator("eegnet", "lfp", rng)
    path = tmp_path / "net.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(estimator, path)
    assert path.read_bytes() == b"precious"
    export_onnx(estimator, path, overwrite=True)
    onnx.checker.check_model(onnx.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]  # no temporary left


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_is_named_as_one(rng, tmp_path, overwrite):
    estimator, _ = _pruned_estimator("eegnet", "lfp", rng)
    folder = tmp_path / "net.onnx"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        export_onnx(estimator, folder, overwrite=overwrite)
    assert folder.is_dir() and not any(folder.iterdir())


def test_opset_outside_what_torch_exports_is_refused_first(rng, tmp_path):
    from skkgp.export import supported_opsets

    estimator, shape = _pruned_estimator("eegnet", "lfp", rng)
    opsets = supported_opsets()
    assert opsets.start == 7 and 20 <= opsets[-1] < 100
    for opset in (6, opsets[-1] + 1, 2.0, True):
        with pytest.raises(ValueError, match=rf"opset must be an int from 7 to {opsets[-1]}"):
            export_onnx(estimator, tmp_path / "x.onnx", opset=opset)
    assert not (tmp_path / "x.onnx").exists()
    path = export_onnx(estimator, tmp_path / "x.onnx", opset=opsets[-1] if opsets[-1] <= 20
                       else 20)
    assert onnx.load(path).opset_import[0].version == min(opsets[-1], 20)


def test_bad_arguments_are_refused_with_their_name(rng, tmp_path):
    estimator, shape = _pruned_estimator("eegnet", "lfp", rng)
    path = tmp_path / "x.onnx"
    with pytest.raises(ValueError, match="quantize"):
        export_onnx(estimator, path, quantize="int4")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(estimator, path, opset=11, quantize="int8", calibration="random")
    with pytest.raises(ValueError, match="quantize='int8'"):
        export_onnx(estimator, path, calibration=np.zeros((2, *shape), np.float32))
    with pytest.raises(ValueError, match="calibration inputs"):
        export_onnx(estimator, path, quantize="int8")
    with pytest.raises(ValueError, match=r"shape \(3, 8, 32\).*\(8, 64\)"):
        export_onnx(estimator, path, quantize="int8",
                    calibration=np.zeros((3, 8, 32), np.float32))
    with pytest.raises(ValueError, match="pass X"):
        export_onnx(estimator, path, quantize="int8", calibration="random")
    with pytest.raises(ValueError, match="knowledge region"):
        export_onnx(estimator, path, quantize="int8", calibration="knowledge",
                    X=np.zeros((4, *shape), np.float32))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(estimator, tmp_path / "missing" / "x.onnx")
    with pytest.raises(TypeError, match="EEGClassifier"):
        export_onnx(torch.nn.Linear(2, 2), path)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        export_onnx(EEGClassifier("ccnn"), path)
    assert not path.exists()


# ---------------------------------------------------------------------- int8
def _int8_agreement(float_path, int8_path, X):
    """Share of samples with the same class, and the mean change of the probabilities."""
    float_proba, int8_proba = _onnx_proba(float_path, X), _onnx_proba(int8_path, X)
    agree = float(np.mean(float_proba.argmax(1) == int8_proba.argmax(1)))
    return agree, float(np.abs(float_proba - int8_proba).mean()), float_proba, int8_proba


@pytest.mark.parametrize("name", ["ccnn", "eegnet"])
def test_int8_export_runs_and_agrees_with_float(name, fitted_pruners, tmp_path):
    model, X, _ = fitted_pruners[name]
    calibration = X[:16]
    float_path = export_onnx(model, tmp_path / "float.onnx")
    int8_path = export_onnx(model, tmp_path / "int8.onnx", quantize="int8",
                            calibration=calibration)
    ops = {node.op_type for node in onnx.load(int8_path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inputs = X if name == "ccnn" else model[:-1].transform(X)
    agree, mean_change, float_proba, int8_proba = _int8_agreement(float_path, int8_path,
                                                                  inputs)
    # The int8 steps of weights and activations move each probability by about 1e-3 on
    # average here (measured: at most 0.013 for EEGNet, 0.001 for CCNN), so a class can
    # only flip where the float probabilities are that close to 0.5.
    assert agree >= 0.9
    assert mean_change <= 0.02
    confident = np.abs(float_proba[:, 1] - 0.5) > 0.05
    assert np.array_equal(float_proba[confident].argmax(1), int8_proba[confident].argmax(1))


def test_int8_export_warns_when_it_strays_from_float(fitted_pruners, tmp_path):
    pipe, X, _ = fitted_pruners["eegnet"]
    # One outlier stretches every activation range a thousandfold: the other samples
    # fall into a few int8 steps and their classes flip (measured: 59 % agree).
    calibration = np.concatenate([X[:31], X[:1] * 1000])
    with pytest.warns(QuantizationWarning, match=r"class for (\d+\.\d)% of the 32 "
                      r"calibration samples and moves their probabilities by 0\.\d+") as seen:
        export_onnx(pipe, tmp_path / "outlier.onnx", quantize="int8", calibration=calibration)
    agreement = float(re.search(r"for ([\d.]+)%", str(seen[0].message)).group(1))
    assert agreement < 95
    # A single low-amplitude sample: too few to calibrate on.
    with pytest.warns(QuantizationWarning, match="calibrates on 1 sample"):
        export_onnx(pipe, tmp_path / "one.onnx", quantize="int8", calibration=X[:1] * 0.01)
    # Calibration on 16 plain samples draws no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        export_onnx(pipe, tmp_path / "fine.onnx", quantize="int8", calibration=X[:16])


@pytest.mark.filterwarnings("ignore::skkgp.export.QuantizationWarning")  # 8 samples: fast
def test_knowledge_calibration_takes_the_samples_with_most_region_evidence(fitted_pruners,
                                                                           tmp_path):
    from skkgp.knowledge.evidence import guided_gradcam
    from skkgp.knowledge.losses import region_share

    pruner, X, y = fitted_pruners["ccnn"]
    chosen = calibration_inputs(pruner, "knowledge", X=X, y=y, n_calibration=8)
    net = pruner.estimator_
    evidence = guided_gradcam(net, X, y)
    share = region_share(evidence, pruner.region_mask_)
    chosen_share = np.sort([share[np.flatnonzero((X == c).all(axis=(1, 2, 3)))[0]]
                            for c in chosen])
    assert chosen.shape == (8, *GRID)
    np.testing.assert_allclose(chosen_share, np.sort(share)[-8:])
    random = calibration_inputs(pruner, "random", X=X, n_calibration=8, random_state=0)
    assert random.shape == (8, *GRID)
    path = export_onnx(pruner, tmp_path / "k.onnx", quantize="int8", calibration="knowledge",
                       X=X, y=y, n_calibration=8)
    assert _onnx_proba(path, X).shape == (len(X), 2)


@pytest.mark.filterwarnings("ignore::skkgp.export.QuantizationWarning")  # 8 samples: fast
def test_int8_files_are_the_same_bytes_every_time(fitted_pruners, tmp_path):
    # The calibration samples are drawn with random_state (or ranked by evidence) and
    # onnxruntime's min-max calibration is deterministic: the same network gives the
    # same file.
    model, X, y = fitted_pruners["eegnet"]

    def write(name, **kwargs):
        return export_onnx(model, tmp_path / f"{name}.onnx", quantize="int8", X=X,
                           n_calibration=8, **kwargs).read_bytes()

    for calibration in ("random", "knowledge"):
        first = write(f"{calibration}-1", calibration=calibration, y=y)
        assert write(f"{calibration}-2", calibration=calibration, y=y) == first
    # Other calibration samples do change the file: the comparison can tell.
    assert write("other", calibration="random", random_state=1) != write(
        "random-again", calibration="random")


# ---------------------------------------------------------------------- benchmarks
def test_deploy_latency_benchmark_runs(capsys, load_benchmark):
    bench = load_benchmark("deploy_latency")
    rows = bench.main(["--models", "eegnet", "--ratios", "0.5", "--batches", "1",
                       "--threads", "1", "--repeats", "1", "--min-time", "0.001",
                       "--profile", "eegnet"])
    assert {(r["runtime"], r["net"]) for r in rows} == {("torch", "lfp 0.5"),
                                                        ("onnxruntime", "lfp 0.5")}
    for row in rows:
        assert row["origin_ms"] > 0 and row["pruned_ms"] > 0
        assert row["mac_reduction"] == pytest.approx(2.0, rel=0.1)  # half the filters
        assert row["efficiency"] == pytest.approx(row["speedup"] / row["mac_reduction"])
        assert row["pruned_mb"] < row["origin_mb"]
    out = capsys.readouterr().out
    assert "onnxruntime profile of eegnet" in out and "Conv" in out


@pytest.mark.filterwarnings("ignore::skkgp.export.QuantizationWarning")  # 4 samples: fast
def test_int8_accuracy_benchmark_runs(capsys, load_benchmark):
    bench = load_benchmark("int8_accuracy")
    argv = ["--models", "eegnet", "--seeds", "0", "--subjects", "2", "--trials", "8",
            "--duration", "3", "--epochs", "1", "--recovery-epochs", "1",
            "--n-calibration", "4", "--repeats", "1"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = bench.main(argv)
        # A second run trains on the same thread count, whatever the first left behind:
        # the same networks and files, to the last bit of their probabilities.
        again = bench.main(argv)
    finally:
        torch.set_num_threads(threads)
    same = [f"{what}_{name}" for what in ("acc", "agree", "dp") for name in bench.FILES]
    pd.testing.assert_frame_equal(again[same], results[same], check_exact=True)
    row = results.iloc[0]
    for name in bench.FILES:
        assert 0 <= row[f"acc_{name}"] <= 1 and row[f"mb_{name}"] > 0
        assert row[f"ms1_{name}"] > 0 and row[f"ms256_{name}"] > 0
    # The float file predicts what PyTorch predicts.
    assert row["acc_float"] == pytest.approx(row["acc_pytorch"])
    assert "int8 speed-up b1" in capsys.readouterr().out


def test_missing_onnx_names_the_install_from_the_checkout(rng, tmp_path, monkeypatch):
    # skkgp installs from its checkout, not from a package index, so the message gives
    # the command that works there.
    estimator, _ = _pruned_estimator("eegnet", "lfp", rng)
    monkeypatch.setitem(sys.modules, "onnx", None)  # find_spec then reports it absent
    with pytest.raises(ImportError, match=r"""'onnx' package: pip install -e "\.\[deploy\]\""""):
        export_onnx(estimator, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
