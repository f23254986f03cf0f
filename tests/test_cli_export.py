"""Tests of ``skkgp export``: model files to ONNX, and refusals that write nothing."""

from __future__ import annotations

import pickle

import numpy as np
import onnxruntime
import pytest
import torch

import skkgp
from skkgp import EEGClassifier
from skkgp.cli import main
from skkgp.export import QuantizationWarning

SHAPE = (8, 64)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, *SHAPE)).astype(np.float32)
    y = np.arange(16) % 2
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=8, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "eegnet.skkgp"
    skkgp.save(net, path)
    return path, net, X


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _proba(path, X):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": X})[0]


def test_export_writes_a_file_that_predicts_as_the_model(model_file, tmp_path, capsys):
    path, net, X = model_file
    out = tmp_path / "net.onnx"
    status, stdout, _ = _run(["export", path, out], capsys)
    assert status == 0 and str(out) in stdout
    np.testing.assert_allclose(_proba(out, X), net.predict_proba(X), rtol=0, atol=1e-5)


def test_int8_export_with_a_calibration_file(model_file, tmp_path, capsys):
    path, net, X = model_file
    calibration = tmp_path / "cal.npy"
    np.save(calibration, X[:8])
    out = tmp_path / "q.onnx"
    # Eight samples: it works, and the user is told that they are few.
    with pytest.warns(QuantizationWarning, match="calibrates on 8 sample"):
        status, _, err = _run(["export", path, out, "--quantize", "int8", "--calibration",
                               calibration], capsys)
    assert status == 0, err
    assert _proba(out, X).shape == (len(X), 2)


def test_existing_output_is_kept_without_overwrite(model_file, tmp_path, capsys):
    path, _, X = model_file
    out = tmp_path / "net.onnx"
    out.write_bytes(b"keep me")
    status, _, err = _run(["export", path, out], capsys)
    assert status == 2 and "--overwrite" in err
    assert out.read_bytes() == b"keep me"
    status, _, err = _run(["export", path, out, "--overwrite"], capsys)
    assert status == 0, err
    assert _proba(out, X).shape == (len(X), 2)


def _damaged(path, tmp_path):
    bad = tmp_path / "damaged.skkgp"
    bad.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return bad


def _tampered(path, tmp_path):
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["tensors"]))
    payload["tensors"][key] = payload["tensors"][key] + 1
    bad = tmp_path / "tampered.skkgp"
    torch.save(payload, bad)
    return bad


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickled_code(path, tmp_path):
    bad = tmp_path / "crafted.skkgp"
    torch.save({"format": "skkgp", "payload": _Exploit(tmp_path / "ran")}, bad)
    return bad


def _plain_pickle(path, tmp_path):
    bad = tmp_path / "plain.skkgp"
    bad.write_bytes(pickle.dumps(_Exploit(tmp_path / "ran")))
    return bad


def _not_a_file(path, tmp_path):
    return tmp_path / "missing.skkgp"


@pytest.mark.parametrize("make, message", [
    (_damaged, "not a readable skkgp model file"),
    (_tampered, "failed its checksum"),
    (_pickled_code, "not a safe skkgp model file"),
    (_plain_pickle, "not a torch zip archive"),
    (_not_a_file, "No skkgp model file"),
])
def test_damaged_or_crafted_model_file_fails_clearly(model_file, tmp_path, capsys, make,
                                                     message):
    bad = make(model_file[0], tmp_path)
    out = tmp_path / "net.onnx"
    status, stdout, err = _run(["export", bad, out], capsys)
    assert status == 2
    assert err.startswith("skkgp export: error:") and message in err
    assert "Traceback" not in err and stdout == ""
    assert not out.exists()
    assert not (tmp_path / "ran").exists()  # no pickled code ran


def test_bad_calibration_fails_clearly(model_file, tmp_path, capsys):
    path, _, X = model_file
    out = tmp_path / "q.onnx"
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, X[:4, :, :32])
    cases = [
        (["--quantize", "int8"], "needs --calibration"),
        (["--calibration", wrong], "serves --quantize int8 only"),
        (["--quantize", "int8", "--calibration", tmp_path / "none.npy"], "no calibration file"),
        (["--quantize", "int8", "--calibration", objects], "pickled objects are refused"),
        (["--quantize", "int8", "--calibration", wrong], "shape (4, 8, 32)"),
    ]
    for extra, message in cases:
        status, _, err = _run(["export", path, out, *extra], capsys)
        assert status == 2 and message in err, (extra, err)
        assert not out.exists()


def test_unfitted_model_file_fails_clearly(tmp_path, capsys):
    path = tmp_path / "unfitted.skkgp"
    skkgp.save(EEGClassifier("ccnn"), path)
    status, _, err = _run(["export", path, tmp_path / "x.onnx"], capsys)
    assert status == 2 and "not fitted" in err.lower()
