"""What one ``skkgp reproduce`` run computes: its options, the two presets, and the grid.

A :class:`ReproduceConfig` holds every option after the preset (quick default or
``--full``) has filled what the user left out. Its :meth:`~ReproduceConfig.identity`
is what ``config.json`` stores in the output folder: two runs may share a folder (and
resume each other) only when their identities are equal.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any

from skkgp.layout import DEFAULT_REGION

__all__ = [
    "ConfigError",
    "ReproduceConfig",
    "Cell",
    "QUICK",
    "FULL",
    "ALL_MODELS",
    "MODEL_LR",
    "ALL_METHODS",
    "CRITERIA",
    "METHOD_CHOICES",
    "ALL_RECOVERIES",
    "PROTOCOLS",
    "SCENARIOS",
    "DATASETS",
    "DatasetChoice",
    "method_family",
    "ratio_key",
    "stable_seed",
]

ALL_MODELS = ("ccnn", "fbccnn", "eegnet", "tsception")
ALL_METHODS = ("lfp", "nsfp", "umwp", "sfp")
#: Further importance criteria of :mod:`skkgp.pruning` that ``--methods`` accepts; they
#: are not part of Table 1 nor of ``--full``'s grid.
CRITERIA = ("taylor", "fpgm", "lamp", "kgi")
#: What ``--methods`` accepts: Table 1's methods, then :data:`CRITERIA`.
METHOD_CHOICES = (*ALL_METHODS, *CRITERIA)
ALL_RECOVERIES = ("finetune", "scratch")
PROTOCOLS = ("paper", "trial", "subject")
# The same as skkgp.datasets.SCENARIOS (a test checks): the command line reads this
# module before it imports any data code.
#: Simulated data sets of ``--data synthetic`` (see :func:`skkgp.datasets.make_deap_like`).
SCENARIOS = ("default", "shortcut")


@dataclass(frozen=True)
class DatasetChoice:
    """How ``skkgp reproduce`` treats one release (``--dataset``)."""

    #: Electrode grid of the grid models (a layout name of :mod:`skkgp.layout`).
    layout: str
    #: Knowledge region when ``--region`` is not given.
    region: str
    #: Ratings ``--target`` may name; empty when the labels are fixed (SEED's emotions).
    targets: tuple[str, ...]
    #: Band set of the grid models' differential entropy: "paper" (theta, alpha, beta,
    #: gamma) or "seed" (SEED's five bands, delta to gamma).
    bands: str
    #: Whether each window's features are taken relative to its trial's baseline.
    baseline: bool
    #: What the release is, for --help and the report.
    description: str


#: ``--dataset``: the releases ``skkgp reproduce`` reads from ``--data PATH``.
DATASETS: dict[str, DatasetChoice] = {
    "deap": DatasetChoice(
        layout="deap", region="frontal_left",
        targets=("valence", "arousal", "dominance", "liking"), bands="paper", baseline=True,
        description="DEAP (32 channels, 128 Hz; rating >= 5; DE minus the 3 s baseline's)"),
    "seed": DatasetChoice(
        layout="seed", region="temporal", targets=(), bands="seed", baseline=False,
        description="SEED raw EEG (62 channels, 200 Hz; positive/neutral/negative clips; "
                    "5 DE bands, no baseline)"),
    "dreamer": DatasetChoice(
        layout="dreamer", region="frontal_left", targets=("valence", "arousal", "dominance"),
        bands="paper", baseline=True,
        description="DREAMER (14 Emotiv channels, 128 Hz; score >= 3; DE minus the clip's "
                    "61 s baseline's)"),
}

# Options that change what a run computes. Output, display and execution options
# (--out, --quiet, --scheduler, --device, --cuda-graphs, --threads, --workers, --overwrite)
# are left out:
# they change where or how fast, not what. The seeds are left out too: each seed's
# results are stored apart, so a run with more seeds reuses those of fewer.
_IDENTITY_FIELDS = (
    "data",
    "dataset",
    "models",
    "methods",
    "recoveries",
    "prune_ratio",
    "ratios",
    "umwp_scope",
    "region",
    "region_weight",
    "sample_weighting",
    "epochs",
    "recovery_epochs",
    "folds",
    "protocol",
    "batch_size",
    "lr",
    "n_subjects",
    "n_trials",
    "trial_seconds",
    "target",
    "scenario",
)

#: The default run: synthetic data, small and fast (about a minute on a 2-core CPU).
QUICK: dict[str, Any] = {
    "data": "synthetic",
    "models": ("ccnn", "eegnet"),
    "methods": ("lfp",),
    "recoveries": ("finetune",),
    "prune_ratio": 0.5,
    # The paper's UMWP masks conv weights only; skkgp's own default ("all") also masks
    # linear weights, where most of them are.
    "umwp_scope": "conv",
    "region": DEFAULT_REGION,
    "region_weight": 1.0,
    "sample_weighting": 1.0,
    "epochs": 10,
    "recovery_epochs": 6,
    "folds": 3,
    "protocol": "trial",
    "batch_size": 64,
    "lr": None,
    "n_subjects": 4,
    "n_trials": 16,
    "trial_seconds": 10,
    "target": "valence",
    "scenario": "default",
}

#: ``--full``: the whole grid of the paper's Table 1 (plus the raw-signal models) with
#: its protocol (pooled shuffled 10-fold) and longer training. The paper does not
#: publish every hyper-parameter; the epochs below are skkgp's choice for a
#: converged origin, the learning rates those of :data:`MODEL_LR`.
#: Table 1's LFP row keeps 57/115/230/57 of CCNN's 64/128/256/64 filters: ratio 0.1.
FULL: dict[str, Any] = {
    "models": ALL_MODELS,
    "methods": ALL_METHODS,
    "recoveries": ALL_RECOVERIES,
    "prune_ratio": 0.1,
    "epochs": 50,
    "recovery_epochs": 30,
    "folds": 10,
    "protocol": "paper",
    "batch_size": 64,
    "lr": None,
}

#: Adam learning rate of each model when ``--lr`` is not given. The grid models are
#: large (CCNN: 6.2 M parameters) and collapse to a constant predictor at 1e-3 in
#: some runs, on DEAP and on the simulation alike; the raw models are small and, at
#: 1e-3, stayed at chance on the quick run's few epochs.
MODEL_LR: dict[str, float] = {"ccnn": 3e-4, "fbccnn": 3e-4, "eegnet": 3e-3, "tsception": 3e-3}


class ConfigError(ValueError):
    """A bad combination of options: the command line prints it and exits with 2."""


def method_family(method: str) -> str:
    """Which origin training a pruning method needs.

    A method whose origin trains with callbacks of its own (network slimming's L1
    penalty on BatchNorm gammas) is its own family; every other method prunes a
    plainly trained origin (``"plain"``), so those share one origin per fold.
    """
    from skkgp.pruning import get_method

    return method if get_method(method).origin_callbacks() else "plain"


def stable_seed(*parts: Any) -> int:
    """A seed in ``[0, 2**31)`` from ``parts``, equal in every process and Python run.

    ``hash()`` of a string changes between interpreter runs, so it cannot be used to
    make a resumed or distributed run draw the same numbers as the first one.
    """
    text = "|".join(str(part) for part in parts)
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


@dataclass(frozen=True, order=True)
class Cell:
    """One row of Table 1: a model, a pruning method, a recovery, and a ratio.

    ``ratio`` is one of the run's ``--ratios``; ``None`` when the run has a single
    ``prune_ratio`` (see :meth:`ReproduceConfig.ratio_of`).
    """

    model: str
    method: str
    recovery: str
    ratio: float | None = None

    @property
    def key(self) -> str:
        key = f"{self.model}-{self.method}-{self.recovery}"
        return key if self.ratio is None else f"{key}-r{ratio_key(self.ratio)}"


def ratio_key(ratio: float) -> str:
    """How a ratio is named in a cell's key and file names: 6 significant digits.

    Ratios of one run must have different keys (the command line refuses others).
    """
    return f"{ratio:g}"


@dataclass
class ReproduceConfig:
    """Every option of one ``skkgp reproduce`` run (presets already applied).

    Attributes mirror the command-line options; see ``skkgp reproduce --help``.
    ``ratios`` (``--ratios``), when given, replaces ``prune_ratio``: every cell is run
    at each of them.
    ``seeds`` are the run's seeds; ``seed`` is the one a per-seed configuration
    (:meth:`for_seed`) computes: it draws the simulated data, the shuffled folds of
    protocol ``paper``, and every origin's initialisation.
    """

    data: str = QUICK["data"]
    dataset: str = "deap"
    models: tuple[str, ...] = QUICK["models"]
    methods: tuple[str, ...] = QUICK["methods"]
    recoveries: tuple[str, ...] = QUICK["recoveries"]
    prune_ratio: float = QUICK["prune_ratio"]
    ratios: tuple[float, ...] | None = None
    umwp_scope: str = QUICK["umwp_scope"]
    region: str | tuple[str, ...] = QUICK["region"]
    region_weight: float = QUICK["region_weight"]
    sample_weighting: float = QUICK["sample_weighting"]
    epochs: int = QUICK["epochs"]
    recovery_epochs: int = QUICK["recovery_epochs"]
    folds: int | None = QUICK["folds"]
    protocol: str = QUICK["protocol"]
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    batch_size: int = QUICK["batch_size"]
    lr: float | None = QUICK["lr"]
    n_subjects: int = QUICK["n_subjects"]
    n_trials: int = QUICK["n_trials"]
    trial_seconds: int = QUICK["trial_seconds"]
    target: str = QUICK["target"]
    scenario: str = QUICK["scenario"]
    device: str = "cpu"
    cuda_graphs: bool = False
    threads: int | None = None
    workers: int = 1
    full: bool = False
    skipped: tuple[str, ...] = field(default=())

    @property
    def synthetic(self) -> bool:
        return self.data == "synthetic"

    def identity(self) -> dict[str, Any]:
        """The options that decide the results, as JSON-ready values."""
        out: dict[str, Any] = {}
        for name in _IDENTITY_FIELDS:
            value = getattr(self, name)
            if not self.synthetic and name in ("n_subjects", "n_trials", "trial_seconds",
                                               "scenario"):
                continue
            if name == "dataset" and value == "deap":
                continue  # runs from before --dataset existed read DEAP: they resume
            if name == "target" and not DATASETS[self.dataset].targets:
                continue
            if name == "umwp_scope" and "umwp" not in self.methods:
                continue  # a run without umwp means the same whatever the scope
            if name == "ratios" and value is None:
                continue  # runs from before --ratios existed resume
            if name == "prune_ratio" and self.ratios is not None:
                continue  # --ratios replaces it
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def cells(self) -> list[Cell]:
        """The grid, in table order, without the (model, method) pairs in ``skipped``.

        With :attr:`ratios`, each (model, method, recovery) comes once per ratio.
        """
        skipped = set(self.skipped)
        ratios = (None,) if self.ratios is None else self.ratios
        return [
            Cell(model, method, recovery, ratio)
            for model in self.models
            for method in self.methods
            if f"{model}-{method}" not in skipped
            for recovery in self.recoveries
            for ratio in ratios
        ]

    def ratio_of(self, cell: Cell) -> float:
        """The pruning ratio of ``cell``: its own (``--ratios``), else :attr:`prune_ratio`."""
        return self.prune_ratio if cell.ratio is None else cell.ratio

    def for_seed(self, seed: int) -> ReproduceConfig:
        """This configuration computing the seed ``seed`` (one of :attr:`seeds`)."""
        return dataclasses.replace(self, seed=int(seed))

    def method_options(self, method: str) -> dict | None:
        """Options of ``method`` for :class:`skkgp.KnowledgeGuidedPruner` (None: none)."""
        return {"scope": self.umwp_scope} if method == "umwp" else None

    def learning_rate(self, model: str) -> float:
        """``--lr`` when given, else the model's default of :data:`MODEL_LR`."""
        return MODEL_LR[model] if self.lr is None else self.lr

    def replace(self, **changes: Any) -> ReproduceConfig:
        return dataclasses.replace(self, **changes)
