"""Bad input for every public entry point, one table.

Each row is ``(entry point, description, call, expected exception, regex)``: ``call``
takes the shared fitted objects and must raise the exception, with a message that
matches the regex, i.e. names the problem. A second table lists edge cases that must
*work* (one sample, labels unseen at fit when scoring, ...). ``test_table_covers_every_
entry_point`` prints how many cases each entry point got (run with ``-s``).

Decisions recorded here:

- ``score`` with labels unseen at ``fit`` works and counts them as wrong, as every
  scikit-learn classifier does; ``partial_fit`` and ``guided_gradcam`` refuse them
  (they would train on or explain a class the network has no output for).
- ``predict`` on one sample works; ``fit`` on one sample fails (one class).
- An array of numbers of any real dtype (int, float64, bool) is accepted and used as
  float32; strings, objects and complex numbers are refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

import skkgp
from skkgp import EEGClassifier, KnowledgeGuidedPruner, layout, pruning
from skkgp.knowledge import evidence, losses
from skkgp.cli import main as cli_main
from skkgp.datasets import load_deap, make_deap_like, write_deap_like
from skkgp.models import CCNN, EEGNet
from skkgp.transforms import (
    BandDifferentialEntropy,
    BaselineRemoval,
    ChannelStandardizer,
    ToGrid,
)

pytestmark = pytest.mark.filterwarnings("ignore::skkgp.pruner.ConstantPredictorWarning")

N_CHANS, N_TIMES = 8, 32
CH_NAMES = list(layout.DEAP_CHANNELS[:N_CHANS])  # Fp1 ... T7


class CommandFailed(Exception):
    """``skkgp ...`` ended with a non-zero status; the message is its stderr."""


def _cli(*argv: str) -> None:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            status = cli_main(list(argv))
    except SystemExit as exit_:  # argparse errors
        status = exit_.code
    if status != 0:
        raise CommandFailed(f"exit status {status}: {stderr.getvalue()}")


# ----------------------------------------------------------------------------- shared state
class Context:
    """Lazily built fitted objects and files shared by all cases of the module."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._cache: dict[str, Any] = {}
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((12, N_CHANS, N_TIMES)).astype("float32")
        self.y = np.array([0, 1] * 6)
        self.grid = rng.standard_normal((12, 4, 9, 9)).astype("float32")

    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def clf(self) -> EEGClassifier:
        return self._get("clf", lambda: net().fit(self.X, self.y))

    @property
    def kgp(self) -> KnowledgeGuidedPruner:
        return self._get("kgp", lambda: pruner().fit(self.X, self.y))

    @property
    def deap(self) -> Path:
        """A tiny valid release (1 subject, 2 trials of 2 s), both formats."""
        return self._get("deap", lambda: write_deap_like(
            self.tmp / "deap", n_subjects=1, random_state=0, n_trials=2, duration=2,
            format="both"))

    def deap_folder(self, name: str, files: dict[str, bytes | dict]) -> Path:
        """A folder ``name`` holding ``files`` (bytes, or a dict saved as .dat/.mat)."""
        folder = self.tmp / name
        folder.mkdir(exist_ok=True)
        for file, content in files.items():
            if isinstance(content, bytes):
                (folder / file).write_bytes(content)
            elif file.endswith(".mat"):
                scipy.io.savemat(folder / file, content)
            else:
                (folder / file).write_bytes(pickle.dumps(content))
        return folder


def net(module="eegnet", **kwargs) -> EEGClassifier:
    params = dict(max_epochs=1, batch_size=6, random_state=0)
    params.update(kwargs)
    return EEGClassifier(module, **params)


def pruner(module="eegnet", **kwargs) -> KnowledgeGuidedPruner:
    params = dict(method="umwp", ch_names=CH_NAMES, random_state=0)
    params.update(kwargs)
    return KnowledgeGuidedPruner(net(module), **params)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Context:
    return Context(tmp_path_factory.mktemp("bad_input"))


def _with(X, index, value):
    X = np.array(X, dtype=np.float64)
    X[index] = value
    return X


def _strings(shape):
    return np.full(shape, "a", dtype=object)


def _deap_content(n_trials=2, n_chans=40, n_samples=384 + 256, **override):
    content = {"data": np.zeros((n_trials, n_chans, n_samples)),
               "labels": np.full((n_trials, 4), 5.0)}
    content.update(override)
    return content


class _Payload:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_deap(c: Context):
    marker = c.tmp / "owned-by-dat"
    folder = c.deap_folder("crafted", {"s01.dat": pickle.dumps(_Payload(marker), protocol=2)})
    try:
        load_deap(folder)
    finally:
        assert not marker.exists(), "the pickled payload ran"


def _truncated(c: Context, kind: str) -> Path:
    source = c.deap / f"data_preprocessed_{kind}" / f"s01.{'dat' if kind == 'python' else 'mat'}"
    data = source.read_bytes()
    return c.deap_folder(f"truncated_{kind}", {source.name: data[: len(data) // 3]})


def _saved(c: Context) -> Path:
    path = c.tmp / "clf.skkgp"
    if not path.exists():
        skkgp.save(c.clf, path)
    return path


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    entry: str
    what: str
    call: Callable[[Context], Any]
    error: type[BaseException] | tuple[type[BaseException], ...]
    match: str


FIT = "EEGClassifier.fit"
PREDICT = "EEGClassifier.predict"
KGP_FIT = "KnowledgeGuidedPruner.fit"
KGP_PREDICT = "KnowledgeGuidedPruner.predict"
TRANSFORMS = "transforms"
PRUNE = "pruning.prune"
GRADCAM = "evidence.guided_gradcam"
LOSSES = "losses"
DEAP = "datasets.load_deap"
SIMULATE = "datasets.make_deap_like"
REGION = "layout.region_mask"
CLI = "skkgp reproduce"
PERSIST = "skkgp.save/load"

ENTRY_POINTS = (FIT, PREDICT, KGP_FIT, KGP_PREDICT, TRANSFORMS, PRUNE, GRADCAM, LOSSES, DEAP,
                SIMULATE, REGION, CLI, PERSIST)

CASES = [
    # ------------------------------------------------------------ EEGClassifier.fit
    Case(FIT, "1-D X", lambda c: net().fit(np.zeros(12), c.y), ValueError, "1D array"),
    Case(FIT, "2-D X for a raw model", lambda c: net().fit(c.X[:, :, 0], c.y), ValueError,
         r"raw inputs of shape \(n_samples, n_chans, n_times\).*got samples of shape \(8,\)"),
    Case(FIT, "5-D X", lambda c: net().fit(c.X[:, None, :, :, None], c.y), ValueError,
         "raw inputs of shape"),
    Case(FIT, "raw X for a grid model", lambda c: net("ccnn").fit(c.X, c.y), ValueError,
         "grid inputs.*BandDifferentialEntropy"),
    Case(FIT, "grid X for a raw model", lambda c: net().fit(c.grid, c.y), ValueError,
         r"raw inputs.*got samples of shape \(4, 9, 9\)"),
    Case(FIT, "NaN in X", lambda c: net().fit(_with(c.X, (0, 0, 0), np.nan), c.y), ValueError,
         "NaN"),
    Case(FIT, "Inf in X", lambda c: net().fit(_with(c.X, (3, 1, 2), np.inf), c.y), ValueError,
         "infinity"),
    Case(FIT, "empty X", lambda c: net().fit(c.X[:0], c.y[:0]), ValueError, "0 sample"),
    Case(FIT, "one sample", lambda c: net().fit(c.X[:1], c.y[:1]), ValueError, "one class"),
    Case(FIT, "strings in X", lambda c: net().fit(_strings(c.X.shape), c.y), ValueError,
         "X must hold numbers"),
    Case(FIT, "ragged X (windows of different lengths)",
         lambda c: net().fit([np.zeros((8, 32)), np.zeros((8, 16))] * 6, c.y), ValueError,
         "inhomogeneous"),
    Case(FIT, "complex X", lambda c: net().fit(c.X + 1j, c.y), ValueError, "[Cc]omplex"),
    Case(FIT, "a single class", lambda c: net().fit(c.X, np.zeros(12)), ValueError,
         "only one class"),
    Case(FIT, "y of another length", lambda c: net().fit(c.X, c.y[:5]), ValueError,
         "different numbers of samples: 12 and 5"),
    Case(FIT, "y is None", lambda c: net().fit(c.X, None), ValueError, "requires y"),
    Case(FIT, "NaN in y", lambda c: net().fit(c.X, _with(c.y, 0, np.nan)), ValueError, "NaN"),
    Case(FIT, "continuous y", lambda c: net().fit(c.X, np.linspace(0, 1, 12)), ValueError,
         "continuous"),
    Case(FIT, "2-D y", lambda c: net().fit(c.X, np.stack([c.y, c.y], 1)), ValueError,
         "1d array"),
    Case(FIT, "unknown model name", lambda c: net("resnet").fit(c.X, c.y), ValueError,
         "Unknown model 'resnet'"),
    Case(FIT, "module is a number", lambda c: net(3).fit(c.X, c.y), TypeError,
         "module must be a zoo name or a torch.nn.Module class"),
    Case(FIT, "unknown precision", lambda c: net(precision="fp8").fit(c.X, c.y), ValueError,
         "precision must be one of"),
    # ------------------------------------------------------------ EEGClassifier.predict
    Case(PREDICT, "not fitted", lambda c: net().predict(c.X), NotFittedError, "not fitted"),
    Case(PREDICT, "fewer channels than at fit", lambda c: c.clf.predict(c.X[:, :6]), ValueError,
         r"shape \(6, 32\).*fitted on samples of shape \(8, 32\)"),
    Case(PREDICT, "shorter windows than at fit", lambda c: c.clf.predict(c.X[:, :, :16]),
         ValueError, r"shape \(8, 16\).*\(8, 32\)"),
    Case(PREDICT, "2-D X", lambda c: c.clf.predict(c.X[:, :, 0]), ValueError,
         r"samples of shape \(8,\)"),
    Case(PREDICT, "NaN in X", lambda c: c.clf.predict(_with(c.X, (1, 1, 1), np.nan)),
         ValueError, "NaN"),
    Case(PREDICT, "Inf in X (predict_proba)",
         lambda c: c.clf.predict_proba(_with(c.X, (1, 1, 1), -np.inf)), ValueError, "infinity"),
    Case(PREDICT, "empty X", lambda c: c.clf.predict(c.X[:0]), ValueError, "0 sample"),
    Case(PREDICT, "strings in X", lambda c: c.clf.predict(_strings(c.X.shape)), ValueError,
         "X must hold numbers"),
    Case(PREDICT, "score with another channel count", lambda c: c.clf.score(c.X[:, :4], c.y),
         ValueError, r"shape \(4, 32\)"),
    Case(PREDICT, "partial_fit with labels unseen at fit",
         lambda c: c.clf.partial_fit(c.X, np.array([0, 1, 7] * 4)), ValueError,
         r"labels not seen at fit: \[7\]"),
    # ------------------------------------------------------------ KnowledgeGuidedPruner.fit
    Case(KGP_FIT, "prune_ratio 0", lambda c: pruner(prune_ratio=0.0).fit(c.X, c.y), ValueError,
         "prune_ratio"),
    Case(KGP_FIT, "prune_ratio 1", lambda c: pruner(prune_ratio=1.0).fit(c.X, c.y), ValueError,
         "prune_ratio"),
    Case(KGP_FIT, "prune_ratio < 0", lambda c: pruner(prune_ratio=-0.2).fit(c.X, c.y),
         ValueError, "prune_ratio"),
    Case(KGP_FIT, "prune_ratio > 1", lambda c: pruner(prune_ratio=1.5).fit(c.X, c.y),
         ValueError, "prune_ratio"),
    Case(KGP_FIT, "prune_ratio NaN", lambda c: pruner(prune_ratio=float("nan")).fit(c.X, c.y),
         ValueError, "prune_ratio"),
    Case(KGP_FIT, "unknown method", lambda c: pruner(method="magic").fit(c.X, c.y), ValueError,
         "method.*magic"),
    Case(KGP_FIT, "unknown recovery", lambda c: pruner(recovery="rewind").fit(c.X, c.y),
         ValueError, "recovery.*rewind"),
    Case(KGP_FIT, "unknown region", lambda c: pruner(region="limbic").fit(c.X, c.y),
         ValueError, "region.*limbic"),
    Case(KGP_FIT, "unknown electrode in region",
         lambda c: pruner(region=["Fp1", "XYZ"]).fit(c.X, c.y), ValueError, "XYZ"),
    Case(KGP_FIT, "region with no electrode in ch_names",
         lambda c: pruner(region="occipital").fit(c.X, c.y), ValueError,
         "occipital.*(no electrode|No electrode)"),
    Case(KGP_FIT, "nsfp on ccnn (no BatchNorm)",
         lambda c: pruner("ccnn", method="nsfp", ch_names=None).fit(c.grid, c.y), ValueError,
         "nsfp.*does not apply.*BatchNorm"),
    Case(KGP_FIT, "ch_names of another length",
         lambda c: pruner(ch_names=CH_NAMES[:3]).fit(c.X, c.y), ValueError,
         "ch_names has 3 names but X has 8 channels"),
    Case(KGP_FIT, "8 channels and no ch_names", lambda c: pruner(ch_names=None).fit(c.X, c.y),
         ValueError, "X has 8 channels but layout='deap' has 32.*ch_names"),
    Case(KGP_FIT, "estimator is not an EEGClassifier",
         lambda c: KnowledgeGuidedPruner(LogisticRegression()).fit(c.X, c.y), TypeError,
         "estimator must be an skkgp.EEGClassifier"),
    Case(KGP_FIT, "2-D X", lambda c: pruner().fit(c.X[:, :, 0], c.y), ValueError,
         r"raw windows .* or electrode grids"),
    Case(KGP_FIT, "NaN in X", lambda c: pruner().fit(_with(c.X, (0, 0, 0), np.nan), c.y),
         ValueError, "NaN"),
    Case(KGP_FIT, "strings in X", lambda c: pruner().fit(_strings(c.X.shape), c.y),
         ValueError, "(numbers|numeric|convert)"),
    Case(KGP_FIT, "one sample", lambda c: pruner().fit(c.X[:1], c.y[:1]), ValueError,
         "1 sample"),
    Case(KGP_FIT, "a single class", lambda c: pruner().fit(c.X, np.ones(12)), ValueError,
         "only one class"),
    Case(KGP_FIT, "y of another length", lambda c: pruner().fit(c.X, c.y[:4]), ValueError,
         "12 and 4|inconsistent numbers of samples"),
    Case(KGP_FIT, "negative region_weight",
         lambda c: pruner(region_weight=-1.0).fit(c.X, c.y), ValueError, "region_weight"),
    Case(KGP_FIT, "sample_weighting > 1", lambda c: pruner(sample_weighting=2.0).fit(c.X, c.y),
         ValueError, "sample_weighting"),
    Case(KGP_FIT, "unknown layout", lambda c: pruner(layout="biosemi").fit(c.X, c.y),
         ValueError, "layout"),
    Case(KGP_FIT, "recovery_epochs 0", lambda c: pruner(recovery_epochs=0).fit(c.X, c.y),
         ValueError, "recovery_epochs"),
    # ------------------------------------------------------------ KnowledgeGuidedPruner.predict
    Case(KGP_PREDICT, "not fitted", lambda c: pruner().predict(c.X), NotFittedError,
         "not fitted"),
    Case(KGP_PREDICT, "fewer channels than at fit", lambda c: c.kgp.predict(c.X[:, :5]),
         ValueError, r"shape \(5, 32\).*\(8, 32\)"),
    Case(KGP_PREDICT, "NaN in X (predict_proba)",
         lambda c: c.kgp.predict_proba(_with(c.X, (2, 2, 2), np.nan)), ValueError, "NaN"),
    Case(KGP_PREDICT, "empty X", lambda c: c.kgp.predict(c.X[:0]), ValueError, "0 sample"),
    Case(KGP_PREDICT, "grid X to a raw model (score)", lambda c: c.kgp.score(c.grid, c.y),
         ValueError, r"\(4, 9, 9\)"),
    # ------------------------------------------------------------ transforms
    Case(TRANSFORMS, "BandDifferentialEntropy: 2-D X",
         lambda c: BandDifferentialEntropy().fit_transform(c.X[:, :, 0]), ValueError,
         "3-D.*got a 2-D array"),
    Case(TRANSFORMS, "BandDifferentialEntropy: NaN",
         lambda c: BandDifferentialEntropy().fit_transform(_with(c.X, (0, 0, 0), np.nan)),
         ValueError, "NaN"),
    Case(TRANSFORMS, "BandDifferentialEntropy: strings",
         lambda c: BandDifferentialEntropy().fit_transform(_strings(c.X.shape)), ValueError,
         "real numeric array"),
    Case(TRANSFORMS, "BandDifferentialEntropy: ragged windows",
         lambda c: BandDifferentialEntropy().fit([np.zeros((8, 32)), np.zeros((8, 16))]),
         ValueError, "numeric array.*inhomogeneous"),
    Case(TRANSFORMS, "BandDifferentialEntropy: empty",
         lambda c: BandDifferentialEntropy().fit_transform(c.X[:0]), ValueError, "no samples"),
    Case(TRANSFORMS, "BandDifferentialEntropy: windows too short to filter",
         lambda c: BandDifferentialEntropy().fit_transform(c.X[:, :, :8]), ValueError,
         "8 samples.*needs at least"),
    Case(TRANSFORMS, "BandDifferentialEntropy: band above Nyquist",
         lambda c: BandDifferentialEntropy(bands={"hi": (40, 70)}).fit(c.X), ValueError,
         "Band 'hi'.*Nyquist"),
    Case(TRANSFORMS, "BandDifferentialEntropy: low >= high",
         lambda c: BandDifferentialEntropy(bands=[(12, 8)]).fit(c.X), ValueError,
         "low < high"),
    Case(TRANSFORMS, "BandDifferentialEntropy: sfreq 0",
         lambda c: BandDifferentialEntropy(sfreq=0).fit(c.X), ValueError, "sfreq"),
    Case(TRANSFORMS, "BaselineRemoval: no baseline",
         lambda c: BaselineRemoval().fit_transform(c.X), ValueError, "needs a baseline"),
    Case(TRANSFORMS, "BaselineRemoval: baseline of another shape",
         lambda c: BaselineRemoval().fit_transform(c.X, baseline=c.X[:, :3]), ValueError,
         "does not match"),
    Case(TRANSFORMS, "ToGrid: 8 channels on the 32-channel DEAP layout",
         lambda c: ToGrid().fit_transform(c.X), ValueError, "X has 8 channels.*expects 32"),
    Case(TRANSFORMS, "ToGrid: unknown electrode",
         lambda c: ToGrid(ch_names=[*CH_NAMES[:7], "XYZ"]).fit_transform(c.X), ValueError,
         "XYZ"),
    Case(TRANSFORMS, "ToGrid: transform with another channel count",
         lambda c: ToGrid(ch_names=CH_NAMES).fit(c.X).transform(c.X[:, :4]), ValueError,
         "4 channels.*fitted on 8"),
    Case(TRANSFORMS, "ChannelStandardizer: transform with another channel count",
         lambda c: ChannelStandardizer().fit(c.X).transform(c.X[:, :4]), ValueError,
         r"\(4, 32\).*fitted on \(8, 32\)"),
    Case(TRANSFORMS, "ChannelStandardizer: 1-D X",
         lambda c: ChannelStandardizer().fit(np.zeros(5)), ValueError, "1-D"),
    Case(TRANSFORMS, "ChannelStandardizer: Inf",
         lambda c: ChannelStandardizer().fit(_with(c.X, (0, 0, 0), np.inf)), ValueError,
         "infinite"),
    Case(TRANSFORMS, "ChannelStandardizer: per_feature not a bool",
         lambda c: ChannelStandardizer(per_feature="yes").fit(c.X), ValueError,
         "per_feature must be a bool"),
    # ------------------------------------------------------------ pruning.prune
    *[
        Case(PRUNE, f"ratio {ratio!r}",
             lambda c, ratio=ratio: pruning.prune(EEGNet(N_TIMES, N_CHANS), "lfp", ratio,
                                                  torch.as_tensor(c.X[:2])),
             ValueError, "ratio must be a float strictly between 0 and 1")
        for ratio in (0.0, 1.0, -0.1, 1.5, float("nan"), "half", True)
    ],
    Case(PRUNE, "unknown method",
         lambda c: pruning.prune(EEGNet(N_TIMES, N_CHANS), "magic", 0.5, torch.as_tensor(c.X)),
         ValueError, "Unknown pruning method 'magic'"),
    Case(PRUNE, "nsfp on CCNN (no BatchNorm)",
         lambda c: pruning.prune(CCNN(), "nsfp", 0.5, torch.as_tensor(c.grid[:2])), ValueError,
         "nsfp.*does not apply.*BatchNorm"),
    Case(PRUNE, "module is not a torch module",
         lambda c: pruning.prune(c.clf, "lfp", 0.5, torch.as_tensor(c.X[:2])), TypeError,
         "module must be a torch.nn.Module"),
    Case(PRUNE, "example_inputs is a numpy array",
         lambda c: pruning.prune(EEGNet(N_TIMES, N_CHANS), "lfp", 0.5, c.X[:2]), TypeError,
         "example_inputs must be a torch.Tensor"),
    Case(PRUNE, "example_inputs without samples",
         lambda c: pruning.prune(EEGNet(N_TIMES, N_CHANS), "lfp", 0.5, torch.zeros(0, 8, 32)),
         ValueError, "at least one sample"),
    Case(PRUNE, "example_inputs with another channel count",
         lambda c: pruning.prune(EEGNet(N_TIMES, N_CHANS), "lfp", 0.5, torch.zeros(2, 5, 32)),
         ValueError, "example_inputs"),
    # ------------------------------------------------------------ evidence.guided_gradcam
    Case(GRADCAM, "unfitted estimator", lambda c: evidence.guided_gradcam(net(), c.X),
         ValueError, "not fitted"),
    Case(GRADCAM, "2-D X", lambda c: evidence.guided_gradcam(c.clf, c.X[:, :, 0]), ValueError,
         "3 or 4 axes"),
    Case(GRADCAM, "labels unseen at fit",
         lambda c: evidence.guided_gradcam(c.clf, c.X, np.full(12, 5)), ValueError,
         r"labels \[5\] the estimator never saw"),
    Case(GRADCAM, "y of another length",
         lambda c: evidence.guided_gradcam(c.clf, c.X, c.y[:3]), ValueError,
         "y has 3 labels but X has 12"),
    Case(GRADCAM, "unknown layer",
         lambda c: evidence.guided_gradcam(c.clf, c.X, layer="conv99"), ValueError,
         "layer='conv99' is not a submodule"),
    Case(GRADCAM, "unknown electrode axis",
         lambda c: evidence.guided_gradcam(c.clf, c.X, electrode_axis="pixels"), ValueError,
         "electrode_axis must be one of"),
    Case(GRADCAM, "unknown evidence kind",
         lambda c: evidence.guided_gradcam(c.clf, c.X, evidence="saliency"), ValueError,
         "evidence must be 'auto' or one of"),
    Case(GRADCAM, "batch_size 0",
         lambda c: evidence.guided_gradcam(c.clf, c.X, batch_size=0), ValueError,
         "batch_size must be a positive int"),
    Case(GRADCAM, "empty X", lambda c: evidence.guided_gradcam(c.clf, c.X[:0]), ValueError,
         "no samples"),
    Case(GRADCAM, "cells of the wrong shape",
         lambda c: evidence.guided_gradcam(CCNN(), c.grid, cells=np.zeros((32, 3), int)),
         ValueError, r"cells must be an int array of shape \(n_electrodes, 2\)"),
    Case(GRADCAM, "strings in X",
         lambda c: evidence.guided_gradcam(c.clf, _strings(c.X.shape)), (TypeError, ValueError),
         "object|numeric|numbers"),
    Case(GRADCAM, "NaN in X",
         lambda c: evidence.guided_gradcam(c.clf, _with(c.X, (0, 0, 0), np.nan)), ValueError,
         "NaN"),
    Case(GRADCAM, "another channel count than the network's",
         lambda c: evidence.guided_gradcam(c.clf, c.X[:, :5]), ValueError,
         r"(channels|shape).*\b5\b"),
    # ------------------------------------------------------------ losses
    Case(LOSSES, "1-D evidence", lambda c: losses.region_loss(np.ones(4), [True] * 4),
         ValueError, r"shape \(n_samples, n_electrodes\)"),
    Case(LOSSES, "negative evidence",
         lambda c: losses.region_loss(-np.ones((2, 4)), [1, 0, 0, 0]), ValueError,
         "non-negative"),
    Case(LOSSES, "mask of another length",
         lambda c: losses.region_share(np.ones((2, 4)), [True, False]), ValueError,
         "one entry per electrode"),
    Case(LOSSES, "mask not boolean",
         lambda c: losses.sample_weights(np.ones((2, 4)), [0.5, 0, 0, 1]), ValueError,
         "boolean"),
    Case(LOSSES, "negative region_weight",
         lambda c: losses.knowledge_guided_loss(np.ones(2), np.ones((2, 4)), [1, 0, 0, 0],
                                                -1.0, 0.5), ValueError,
         "region_weight must be a finite number >= 0"),
    Case(LOSSES, "NaN sample_weighting",
         lambda c: losses.knowledge_guided_loss(np.ones(2), np.ones((2, 4)), [1, 0, 0, 0],
                                                1.0, float("nan")), ValueError, "sample_weighting"),
    Case(LOSSES, "ce_per_sample of another length",
         lambda c: losses.knowledge_guided_loss(np.ones(3), np.ones((2, 4)), [1, 0, 0, 0],
                                                1.0, 1.0), ValueError,
         r"ce_per_sample must have shape \(2,\)"),
    Case(LOSSES, "NaN evidence",
         lambda c: losses.region_loss(_with(np.ones((2, 4)), (0, 0), np.nan), [1, 0, 0, 0]),
         ValueError, "NaN|finite"),
    Case(LOSSES, "strings as evidence",
         lambda c: losses.region_loss(np.full((2, 4), "a"), [1, 0, 0, 0]), ValueError,
         "evidence"),
    Case(LOSSES, "evidence without samples",
         lambda c: losses.region_loss(np.ones((0, 4)), [1, 0, 0, 0]), ValueError,
         "no samples|empty"),
    # ------------------------------------------------------------ datasets.load_deap
    Case(DEAP, "missing folder", lambda c: load_deap(c.tmp / "nowhere"), FileNotFoundError,
         "does not exist"),
    Case(DEAP, "a file instead of a folder",
         lambda c: load_deap(c.deap / "data_preprocessed_python" / "s01.dat"),
         NotADirectoryError, "not a folder"),
    Case(DEAP, "folder without subject files",
         lambda c: load_deap(c.deap_folder("empty", {})), FileNotFoundError, "holds no"),
    Case(DEAP, "missing subject", lambda c: load_deap(c.deap, subjects=[7]), FileNotFoundError,
         "s07"),
    Case(DEAP, "truncated .dat", lambda c: load_deap(_truncated(c, "python")), ValueError,
         "not a readable DEAP pickle"),
    Case(DEAP, "truncated .mat", lambda c: load_deap(_truncated(c, "matlab")), ValueError,
         "not a readable DEAP .mat"),
    Case(DEAP, "random bytes as .dat",
         lambda c: load_deap(c.deap_folder("noise", {"s01.dat": os.urandom(4096)})),
         ValueError, "not a readable DEAP pickle"),
    Case(DEAP, "pickled code in a .dat (never runs)", _crafted_deap, ValueError,
         "s01.dat"),
    Case(DEAP, ".dat without 'labels'",
         lambda c: load_deap(c.deap_folder("nolabels", {"s01.dat": {"data": np.zeros(3)}})),
         ValueError, "no 'labels' entry"),
    Case(DEAP, ".mat without the expected keys",
         lambda c: load_deap(c.deap_folder("badmat", {"s01.mat": {"eeg": np.zeros((2, 2))}})),
         ValueError, "no 'data' entry"),
    Case(DEAP, ".dat with 10 channels",
         lambda c: load_deap(c.deap_folder("chans", {"s01.dat": _deap_content(n_chans=10)})),
         ValueError, "10 channels"),
    Case(DEAP, ".dat with NaN samples",
         lambda c: load_deap(c.deap_folder("nan", {"s01.dat": _deap_content(
             data=_with(np.zeros((2, 40, 640)), (0, 0, 500), np.nan))})),
         ValueError, "NaN or infinite"),
    Case(DEAP, ".dat with a sample beyond float32 (was inf after a numpy warning)",
         lambda c: load_deap(c.deap_folder("overflow", {"s01.dat": _deap_content(
             data=_with(np.zeros((2, 40, 640)), (0, 3, 500), 1e300))})),
         ValueError, r"s01\.dat'.*beyond float32's range"),
    Case(DEAP, "unknown target", lambda c: load_deap(c.deap, target="joy"), ValueError,
         "target must be one of"),
    Case(DEAP, "window 0", lambda c: load_deap(c.deap, window=0), ValueError,
         "window must be a positive int"),
    Case(DEAP, "overlap >= window", lambda c: load_deap(c.deap, overlap=128), ValueError,
         "overlap"),
    Case(DEAP, "empty subject list", lambda c: load_deap(c.deap, subjects=[]), ValueError,
         "subjects is empty"),
    # ------------------------------------------------------------ datasets.make_deap_like
    Case(SIMULATE, "no subjects", lambda c: make_deap_like(n_subjects=0), ValueError,
         "n_subjects must be a positive int"),
    Case(SIMULATE, "negative duration", lambda c: make_deap_like(1, 2, duration=-1),
         ValueError, "duration"),
    Case(SIMULATE, "negative noise", lambda c: make_deap_like(1, 2, noise=-1.0), ValueError,
         "noise must be a finite non-negative number"),
    Case(SIMULATE, "bad random_state", lambda c: make_deap_like(1, 2, random_state="x"),
         ValueError, "random_state"),
    # ------------------------------------------------------------ layout.region_mask
    Case(REGION, "unknown region", lambda c: layout.region_mask("limbic", CH_NAMES),
         ValueError, "Unknown region 'limbic'"),
    Case(REGION, "unknown electrode",
         lambda c: layout.region_mask(["Fp1", "XYZ"], layout.DEAP_CHANNELS), ValueError,
         "XYZ"),
    Case(REGION, "region with no electrode in ch_names",
         lambda c: layout.region_mask("occipital", CH_NAMES), ValueError,
         "No electrode of region 'occipital'"),
    Case(REGION, "empty electrode list", lambda c: layout.region_mask([], CH_NAMES),
         ValueError, "at least one electrode"),
    Case(REGION, "ch_names holds numbers", lambda c: layout.region_mask("frontal", [1, 2]),
         ValueError, "ch_names must contain electrode names"),
    Case(REGION, "ch_names is one string",
         lambda c: layout.region_mask("frontal", "Fp1"), ValueError, "got the string"),
    # ------------------------------------------------------------ skkgp reproduce
    Case(CLI, "--prune-ratio 0", lambda c: _cli("reproduce", "--prune-ratio", "0"),
         CommandFailed, "(?s)exit status 2.*--prune-ratio"),
    Case(CLI, "--prune-ratio 1.5", lambda c: _cli("reproduce", "--prune-ratio", "1.5"),
         CommandFailed, "(?s)exit status 2.*--prune-ratio"),
    Case(CLI, "unknown method", lambda c: _cli("reproduce", "--methods", "magic"),
         CommandFailed, "(?s)exit status 2.*magic"),
    Case(CLI, "unknown model", lambda c: _cli("reproduce", "--models", "resnet"),
         CommandFailed, "(?s)exit status 2.*resnet"),
    Case(CLI, "unknown recovery", lambda c: _cli("reproduce", "--recovery", "rewind"),
         CommandFailed, "(?s)exit status 2.*rewind"),
    Case(CLI, "unknown region", lambda c: _cli("reproduce", "--region", "limbic"),
         CommandFailed, "(?s)exit status 2.*limbic"),
    Case(CLI, "nsfp on ccnn",
         lambda c: _cli("reproduce", "--models", "ccnn", "--methods", "nsfp", "--out",
                        str(c.tmp / "cli-nsfp")), CommandFailed,
         "(?s)exit status 2.*nsfp.*does not apply"),
    Case(CLI, "missing data folder",
         lambda c: _cli("reproduce", "--data", str(c.tmp / "nowhere"), "--out",
                        str(c.tmp / "cli-missing")), CommandFailed, "(?s)exit status 2.*nowhere"),
    Case(CLI, "corrupt DEAP file",
         lambda c: _cli("reproduce", "--data", str(c.deap_folder(
             "cli-noise", {"s01.dat": os.urandom(2048)})), "--out", str(c.tmp / "cli-corrupt"),
             "--quiet"), CommandFailed, "(?s)exit status [12].*s01.dat"),
    Case(CLI, "--folds 1", lambda c: _cli("reproduce", "--folds", "1"), CommandFailed,
         "(?s)exit status 2.*--folds"),
    Case(CLI, "unknown subcommand", lambda c: _cli("reprodce"), CommandFailed,
         "(?s)exit status 2.*reprodce"),
    # ------------------------------------------------------------ persistence
    Case(PERSIST, "load a missing file", lambda c: skkgp.load(c.tmp / "none.skkgp"),
         FileNotFoundError, "none.skkgp"),
    Case(PERSIST, "load a text file",
         lambda c: skkgp.load(c.deap_folder("txt", {"m.skkgp": b"not a model"}) / "m.skkgp"),
         ValueError, "not a readable skkgp model file"),
    Case(PERSIST, "save into a missing folder",
         lambda c: skkgp.save(c.clf, c.tmp / "no" / "m.skkgp"), FileNotFoundError,
         "does not exist"),
    Case(PERSIST, "save over an existing file without overwrite",
         lambda c: skkgp.save(c.clf, c.deap_folder("precious", {"thesis.tex": b"x"})
                              / "thesis.tex"),
         FileExistsError, "thesis.tex.*overwrite=True"),
    Case(PERSIST, "load onto a device that does not exist",
         lambda c: skkgp.load(c.tmp / "none.skkgp", device="tpu:9"), ValueError,
         "device='tpu:9'"),
    Case(PERSIST, "trusted_classes holds a string",
         lambda c: skkgp.load(_saved(c), trusted_classes=["mymodule:Net"]), TypeError,
         "trusted_classes must hold classes"),
    Case(PERSIST, "save something that is not an estimator",
         lambda c: skkgp.save(object(), c.tmp / "o.skkgp"), TypeError, "skkgp estimators"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.entry}: {c.what}" for c in CASES])
def test_bad_input_fails_clearly(ctx, case):
    with pytest.raises(case.error, match=case.match):
        case.call(ctx)


# ----------------------------------------------------------------------------- edge cases that work
def _score_unseen(est, c):
    y = c.y.copy()
    y[:3] = 9  # a label never seen at fit: counted as wrong, like scikit-learn does
    pred = est.predict(c.X)
    expected = float(np.mean(pred == y))
    assert est.score(c.X, y) == pytest.approx(expected)
    assert expected <= 9 / 12


ACCEPTED = [
    (PREDICT, "one sample", lambda c: c.clf.predict(c.X[:1]).shape == (1,)),
    (PREDICT, "float64 X", lambda c: np.array_equal(c.clf.predict(c.X.astype(np.float64)),
                                                    c.clf.predict(c.X))),
    (PREDICT, "object array of numbers",
     lambda c: np.array_equal(c.clf.predict(c.X.astype(object)), c.clf.predict(c.X))),
    (PREDICT, "int X", lambda c: c.clf.predict(np.ones(c.X.shape, dtype=int)).shape == (12,)),
    (PREDICT, "score with labels unseen at fit", lambda c: _score_unseen(c.clf, c) is None),
    (KGP_PREDICT, "one sample", lambda c: c.kgp.predict_proba(c.X[:1]).shape == (1, 2)),
    (KGP_PREDICT, "score with labels unseen at fit", lambda c: _score_unseen(c.kgp, c) is None),
    (FIT, "string labels", lambda c: list(net().fit(c.X, np.where(c.y, "hi", "lo")).classes_)
     == ["hi", "lo"]),
    (TRANSFORMS, "ToGrid on one sample",
     lambda c: ToGrid(ch_names=CH_NAMES).fit_transform(c.X[:1, :, :4]).shape == (1, 4, 9, 9)),
    (LOSSES, "all-zero evidence is uniform",
     lambda c: losses.region_share(np.zeros((1, 4)), [1, 0, 0, 0])[0] == 0.25),
    (DEAP, "a valid tiny release loads", lambda c: load_deap(c.deap).X.shape == (4, 32, 128)),
]


@pytest.mark.parametrize("entry, what, check", ACCEPTED, ids=[f"{a[0]}: {a[1]}" for a in ACCEPTED])
def test_edge_cases_that_work(ctx, entry, what, check):
    assert check(ctx)


def test_table_covers_every_entry_point():
    counts = Counter(case.entry for case in CASES)
    print("\nbad-input cases per entry point:")
    for entry in ENTRY_POINTS:
        print(f"  {entry:<32} {counts[entry]:>3}")
    print(f"  {'total':<32} {sum(counts.values()):>3}  (+ {len(ACCEPTED)} edge cases that work)")
    assert set(counts) == set(ENTRY_POINTS)
    assert all(counts[entry] >= 3 for entry in ENTRY_POINTS)
