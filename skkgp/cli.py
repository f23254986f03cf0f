"""The ``skkgp`` command line (also ``python -m skkgp``).

``skkgp reproduce`` runs the experiment of the paper's Table 1: for models x pruning
methods x recoveries x folds it trains the origin network, prunes it, recovers it
with the baseline (cross-entropy) and the proposed (knowledge-guided) losses, and
prints and writes the table and its plots. See ``skkgp reproduce --help``.
``skkgp export`` writes the network of a model file as ONNX (``skkgp export --help``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from skkgp import __version__
from skkgp.reproduce.config import (
    ALL_METHODS,
    ALL_MODELS,
    ALL_RECOVERIES,
    CRITERIA,
    DATASETS,
    FULL,
    METHOD_CHOICES,
    MODEL_LR,
    PROTOCOLS,
    QUICK,
    SCENARIOS,
    ConfigError,
    ReproduceConfig,
)

__all__ = ["main", "build_parser"]

_PROG = "skkgp"
_EXAMPLES = """\
examples:
  skkgp reproduce                                  # quick run on simulated data (about a minute)
  skkgp reproduce --models fbccnn --methods lfp nsfp --recovery finetune scratch
  skkgp reproduce --data ~/data/deap --full --device cuda   # the paper's whole Table 1
  skkgp reproduce --seeds 0 1 2 3 4                # paired statistics over 5 seeds x folds
  skkgp reproduce --models eegnet --methods lfp kgi --ratios 0.1 0.3 0.5 0.7 0.9
                                                   # accuracy against MACs: pareto.png
  skkgp reproduce --scenario shortcut --seeds 0 1 2 3 4   # a shortcut outside the region
  skkgp reproduce --dataset seed --data ~/data/SEED          # SEED's 62-channel grid
  skkgp reproduce --dataset dreamer --data ~/data/DREAMER.mat --target arousal
  skkgp reproduce --scheduler tcp://10.0.0.1:8786  # cells on a Dask cluster
  skkgp reproduce --data ~/data/deap --full --device cuda --workers 4 --dry-run
                                                   # the grid and its estimated time

Rerun the same command after an interruption: finished (cell, seed, fold) results in
--out are kept and only the missing ones are computed.
"""


def _names(choices: Sequence[str], what: str):
    """An argparse type: comma- or space-separated names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
        for name in names:
            if name not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {name!r}; choose from {', '.join(choices)}"
                )
        return names

    return parse


def _number(kind: type, low: float | None = None, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
            hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: need {lo}value{hi}")
        return value

    return parse


def _region(text: str) -> str | tuple[str, ...]:
    from skkgp.layout import CHANNELS, REGIONS

    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) == 1 and names[0].lower() in REGIONS:
        return names[0].lower()
    known = {name.upper() for channels in CHANNELS.values() for name in channels}
    unknown = [name for name in names if name.upper() not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown region or electrodes {unknown or text!r}. Known regions: "
            f"{', '.join(REGIONS)}; or give electrode names, comma-separated "
            "(e.g. Fp1,AF3,F3,F7)."
        )
    return tuple(names)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``skkgp`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Knowledge-guided pruning of EEG networks (Rao & Zhong 2023)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    rep = commands.add_parser(
        "reproduce",
        help="reproduce the paper's Table 1 (origin, baseline and proposed recovery)",
        description=(
            "Train, prune and recover EEG networks for a grid of models x methods x "
            "recoveries x folds; print a Table-1-shaped table and write results.csv, "
            "table.md and plots into --out. Defaults give a quick run on simulated data; "
            "--full gives the paper's grid and hyper-parameters."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Defaults are None here: the preset (quick or --full) fills what is not given, so
    # an explicit value always wins over a preset.
    what = rep.add_argument_group("what to run")
    what.add_argument("--data", metavar="synthetic|PATH",
                      help="'synthetic' (built-in DEAP-like simulation, default) or the "
                           "release of --dataset: a DEAP folder (data_preprocessed_python or "
                           "data_preprocessed_matlab, or the release folder holding one), a "
                           "SEED folder (Preprocessed_EEG or the folder holding it), or "
                           "DREAMER.mat")
    what.add_argument("--dataset", choices=tuple(DATASETS),
                      help="which release --data PATH holds (default deap). Grid, bands, "
                           "baseline and default region: "
                           + "; ".join(f"{name}: {_dataset_summary(choice)}"
                                       for name, choice in DATASETS.items()))
    what.add_argument("--models", nargs="+", type=_names(ALL_MODELS, "model"),
                      metavar="MODEL",
                      help=f"models (comma or space separated) from {', '.join(ALL_MODELS)} "
                           f"(default: {' '.join(QUICK['models'])})")
    what.add_argument("--methods", nargs="+", type=_names(METHOD_CHOICES, "method"),
                      metavar="METHOD",
                      help=f"pruning methods from Table 1's {', '.join(ALL_METHODS)} and the "
                           f"importance criteria {', '.join(CRITERIA)} of skkgp.pruning "
                           f"(default: {' '.join(QUICK['methods'])})")
    what.add_argument("--recovery", nargs="+", type=_names(ALL_RECOVERIES, "recovery"),
                      metavar="RECOVERY",
                      help=f"recoveries from {', '.join(ALL_RECOVERIES)} "
                           f"(default: {' '.join(QUICK['recoveries'])})")
    what.add_argument("--full", action="store_true",
                      help="the paper's whole grid (all models x lfp/nsfp/umwp/sfp where "
                           "they apply x finetune/scratch), 10 folds, protocol paper, "
                           f"{FULL['epochs']}/{FULL['recovery_epochs']} epochs; needs --data")
    hyper = rep.add_argument_group("pruning and recovery")
    hyper.add_argument("--prune-ratio", type=_number(float, 0, 1, low_open=True, high_open=True),
                       help=f"fraction of filters/weights removed (default {QUICK['prune_ratio']}"
                            f", --full {FULL['prune_ratio']})")
    hyper.add_argument("--ratios", nargs="+",
                       type=_number(float, 0, 1, low_open=True, high_open=True), metavar="R",
                       help="run every cell at each of these prune ratios (a table row each, "
                            "one origin per fold for all) and draw pareto.png, accuracy "
                            "against MACs; replaces --prune-ratio")
    hyper.add_argument("--umwp-scope", choices=("conv", "all"),
                       help="weights umwp ranks and masks: conv (the paper's, default) or all "
                            "(conv and linear, skkgp.pruning's default)")
    hyper.add_argument("--region", type=_region,
                       help="knowledge region: a name of skkgp.layout.REGIONS or "
                            f"comma-separated electrodes (default {QUICK['region']})")
    hyper.add_argument("--region-weight", type=_number(float, 0),
                       help=f"weight of the region-wise loss (default {QUICK['region_weight']})")
    hyper.add_argument("--sample-weighting", type=_number(float, 0, 1),
                       help="weight of the evidence-based sample weights in [0, 1] "
                            f"(default {QUICK['sample_weighting']})")
    hyper.add_argument("--epochs", type=_number(int, 1),
                       help=f"origin training epochs (default {QUICK['epochs']})")
    hyper.add_argument("--recovery-epochs", type=_number(int, 1),
                       help=f"recovery epochs (default {QUICK['recovery_epochs']})")
    hyper.add_argument("--batch-size", type=_number(int, 1),
                       help=f"mini-batch size (default {QUICK['batch_size']})")
    hyper.add_argument("--lr", type=_number(float, 0, low_open=True),
                       help="Adam learning rate (default per model: "
                            + ", ".join(f"{m} {v:g}" for m, v in MODEL_LR.items()) + ")")
    evaluation = rep.add_argument_group("evaluation")
    evaluation.add_argument("--folds", type=_number(int, 2),
                            help="number of folds (default 3, --full 10; protocol subject: "
                                 "one per subject)")
    evaluation.add_argument("--protocol", choices=PROTOCOLS,
                            help="paper: pooled shuffled KFold (leaks trials across the "
                                 "split); trial: grouped by trial (default); subject: "
                                 "grouped by subject")
    evaluation.add_argument("--target", choices=("valence", "arousal", "dominance", "liking"),
                            help="rating to classify: DEAP (>= 5 is positive) or DREAMER "
                                 "(>= 3; no liking); SEED classifies the clips' emotions "
                                 "(default valence)")
    evaluation.add_argument("--seeds", "--seed", nargs="+", type=_number(int, 0), default=None,
                            metavar="SEED",
                            help="random seeds (default 0): the grid is repeated for each "
                                 "(simulated data, folds of protocol paper, initialisation) "
                                 "and proposed is compared with baseline over seeds x folds; "
                                 "each seed's results are stored apart, so adding seeds "
                                 "reuses those already computed")
    synthetic = rep.add_argument_group("simulated data (--data synthetic)")
    synthetic.add_argument("--scenario", choices=SCENARIOS,
                           help="default: the simulation's valence signal only; shortcut: "
                                "plus a valence-correlated EMG signal on temporal electrodes "
                                "that holds in the training trials and is reversed in the "
                                "test trials (each fold trains on the former and tests on "
                                "the latter); see skkgp.datasets.make_deap_like")
    synthetic.add_argument("--n-subjects", type=_number(int, 1),
                           help=f"simulated subjects (default {QUICK['n_subjects']})")
    synthetic.add_argument("--n-trials", type=_number(int, 2),
                           help=f"trials per subject (default {QUICK['n_trials']})")
    synthetic.add_argument("--trial-seconds", type=_number(int, 1),
                           help=f"seconds (= 1 s windows) per trial "
                                f"(default {QUICK['trial_seconds']})")
    run = rep.add_argument_group("execution and output")
    run.add_argument("--out", default="skkgp-results", metavar="DIR",
                     help="output folder; finished results there are reused "
                          "(default ./skkgp-results)")
    run.add_argument("--overwrite", action="store_true",
                     help="delete results of a different configuration found in --out")
    run.add_argument("--device", default="cpu",
                     help="torch device: cpu (default), cuda, cuda:1; with --scheduler, that of "
                          "the cluster's workers (checked there, not here)")
    run.add_argument("--cuda-graphs", action="store_true",
                     help="replay each training step from a CUDA graph (needs --device cuda): "
                          "less host work per step at small batches; results equal an eager "
                          "run's up to rounding and dropout's draw order")
    run.add_argument("--threads", type=_number(int, 1),
                     help="torch CPU threads (default: torch's choice); give the same value "
                          "to compare runs bit for bit")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="send the work to the Dask scheduler at ADDRESS, one task per origin "
                          "(model, origin type, fold) "
                          "(e.g. tcp://127.0.0.1:8786)")
    run.add_argument("--workers", type=_number(int, 1), default=1, metavar="N",
                     help="run N origin groups (model, origin type, fold) at once on this "
                          "machine, each in its own process with its share of the CPU cores "
                          "(or --threads each), on the same --device (default 1). The results "
                          "are those of --workers 1 with the same --threads (bit for bit on a "
                          "CPU; other thread counts change them by float rounding). Device "
                          "memory is checked first")
    run.add_argument("--dry-run", action="store_true",
                     help="print the grid, time a few training steps of each model here and "
                          "print the estimated wall time for 1 and N workers; trains nothing "
                          "and writes nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bars or information")
    _add_export_parser(commands)
    return parser


def _dataset_summary(choice) -> str:
    bands = "theta-gamma" if choice.bands == "paper" else "delta-gamma"
    baseline = "baseline removed" if choice.baseline else "no baseline"
    return f"{choice.layout} grid, {bands} DE, {baseline}, region {choice.region}"


def _add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write the network of a model file as ONNX (float32 or int8)",
        description=(
            "Export the network of a model file written by skkgp.save (an EEGClassifier, a "
            "KnowledgeGuidedPruner: its pruned, recovered network, or a pipeline ending in "
            "one: its network only) as an ONNX file with input 'input' (batch, *input "
            "shape) and output 'probabilities' (batch, n_classes)."
        ),
        epilog=_EXPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("model_file", metavar="MODEL_FILE", help="a file written by skkgp.save")
    export.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument("--opset", type=_number(int, 7), help="ONNX opset (default: torch's)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing OUT.onnx")
    export.add_argument("--quantize", choices=("int8",),
                        help="int8: static quantization (QDQ) calibrated on --calibration")
    export.add_argument("--calibration", metavar="FILE.npy",
                        help="calibration inputs for --quantize int8: a .npy array shaped as "
                             "the model's input (raw windows for a pipeline that starts "
                             "from them)")


_EXPORT_EXAMPLES = """\
examples:
  skkgp export pruned.skkgp pruned.onnx
  skkgp export pruned.skkgp pruned-int8.onnx --quantize int8 --calibration X_cal.npy
"""


def _export(args: argparse.Namespace) -> int:
    """``skkgp export``: checks first, so that a bad option writes and overwrites nothing."""
    from pathlib import Path

    def error(message: str) -> int:
        print(f"{_PROG} export: error: {message}", file=sys.stderr)
        return 2

    out = Path(args.out)
    if args.quantize and not args.calibration:
        return error("--quantize int8 needs --calibration FILE.npy (inputs shaped as the "
                     "model's input).")
    if args.calibration and not args.quantize:
        return error("--calibration serves --quantize int8 only.")
    if out.exists() and not args.overwrite:
        return error(f"{str(out)!r} exists; pass --overwrite to replace it.")
    import numpy as np

    from skkgp.export import export_onnx
    from skkgp.persistence import load

    calibration = None
    if args.calibration:
        try:
            calibration = np.load(args.calibration, allow_pickle=False)
        except FileNotFoundError:
            return error(f"no calibration file at {args.calibration!r}.")
        except (ValueError, OSError) as problem:
            return error(f"{args.calibration!r} is not a readable .npy array of numbers "
                         f"(pickled objects are refused): {problem}")
        if not isinstance(calibration, np.ndarray):
            return error(f"{args.calibration!r} holds several arrays (an .npz); give one "
                         ".npy array.")
    try:
        estimator = load(args.model_file)
    except (ValueError, FileNotFoundError) as problem:
        return error(str(problem))
    try:
        export_onnx(estimator, out, opset=args.opset, quantize=args.quantize,
                    calibration=calibration, overwrite=args.overwrite)
    except (ValueError, TypeError, ImportError, OSError) as problem:
        return error(str(problem))
    except Exception as problem:  # noqa: BLE001 - e.g. NotFittedError, exporter failures
        return error(f"{type(problem).__name__}: {problem}")
    print(f"wrote {out}")
    return 0


def _check_device(device: str, *, here: bool = True) -> None:
    """Refuse a ``--device`` that the run could not train on, before anything is written.

    ``here=False`` (``--scheduler``: the cluster's workers train) checks the name only.
    """
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...).")\
            from None
    if parsed.type == "cpu" and parsed.index not in (None, 0):
        # torch numbers no CPU but 0: a model moved to cpu:1 cannot even be copied.
        raise ConfigError(f"--device {device!r}: torch has one CPU device; use --device cpu "
                          "(--threads sets how many cores it uses).")
    if not here:
        return
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device!r}: torch sees no CUDA device on this machine.")
    if parsed.type == "cuda" and parsed.index is not None \
            and parsed.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device!r}: only {torch.cuda.device_count()} CUDA devices.")
    try:
        # A value there and back: what every fit and score does.
        torch.zeros(1, device=parsed).cpu()
    except Exception as error:  # noqa: BLE001 - torch raises several kinds for this
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            f"--device {device!r} is not usable with this torch build on this machine "
            f"({type(error).__name__}: {reason}). Use --device cpu, or cuda on a machine "
            "with a GPU."
        ) from None


def _check_ratio_keys(ratios: Sequence[float]) -> None:
    from skkgp.reproduce.config import ratio_key

    by_key: dict[str, list[float]] = {}
    for ratio in ratios:
        by_key.setdefault(ratio_key(ratio), []).append(ratio)
    for same in by_key.values():
        if len(same) > 1:
            raise ConfigError(
                f"--ratios {' and '.join(repr(r) for r in same)} are equal to 6 significant "
                "digits, which name the result files: they would share them. Give ratios "
                "that differ within 6 significant digits."
            )


def _flat(values: list[list[str]] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    flat: list[str] = []
    for group in values:
        flat += [name for name in group if name not in flat]
    return tuple(flat)


def _inapplicable(models: Sequence[str], methods: Sequence[str]) -> dict[tuple[str, str], str]:
    """``(model, method)`` -> reason, for each pair whose method cannot prune the model."""
    import torch

    from skkgp.models import MODELS
    from skkgp.pruning import check_method

    reasons = {}
    for model in models:
        # The meta device builds the module's structure without allocating its weights.
        with torch.device("meta"):
            module = MODELS[model]()
        for method in methods:
            try:
                check_method(method, module)
            except ValueError as error:
                reasons[model, method] = str(error)
    return reasons


def config_from_args(args: argparse.Namespace) -> ReproduceConfig:
    """The run's configuration: explicit options, then the preset, then checks.

    Raises
    ------
    ConfigError
    """
    preset = {**QUICK, **FULL} if args.full else dict(QUICK)
    given: dict[str, Any] = {
        "data": args.data,
        "dataset": args.dataset,
        "models": _flat(args.models),
        "methods": _flat(args.methods),
        "recoveries": _flat(args.recovery),
        "prune_ratio": args.prune_ratio,
        "umwp_scope": args.umwp_scope,
        "region": args.region,
        "region_weight": args.region_weight,
        "sample_weighting": args.sample_weighting,
        "epochs": args.epochs,
        "recovery_epochs": args.recovery_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "folds": args.folds,
        "protocol": args.protocol,
        "target": args.target,
        "n_subjects": args.n_subjects,
        "n_trials": args.n_trials,
        "trial_seconds": args.trial_seconds,
        "scenario": args.scenario,
    }
    if args.ratios is not None and args.prune_ratio is not None:
        raise ConfigError(
            f"--ratios {' '.join(f'{r:g}' for r in args.ratios)} and --prune-ratio "
            f"{args.prune_ratio:g} exclude each other: --ratios runs every cell at each of its "
            "ratios; give one of them."
        )
    if args.full and args.data is None:
        raise ConfigError(
            "--full reproduces the paper on DEAP: give --data PATH (the DEAP folder), or "
            "--data synthetic to run the whole grid on simulated data."
        )
    preset = {**preset, "dataset": "deap"}
    dataset = args.dataset or "deap"
    if args.region is None:
        preset["region"] = DATASETS[dataset].region
    values = {name: preset[name] if value is None else value for name, value in given.items()}
    if dataset != "deap" and values["data"] == "synthetic":
        raise ConfigError(f"--dataset {dataset} reads a release: give --data PATH (the "
                          "simulation is DEAP-like).")
    if args.target is not None and args.target not in DATASETS[dataset].targets:
        allowed = DATASETS[dataset].targets
        raise ConfigError(f"--target {args.target} does not apply to --dataset {dataset}" + (
            f"; choose from {', '.join(allowed)}." if allowed
            else ": its labels are the clips' emotions."))
    if values["data"] != "synthetic":
        from skkgp.reproduce.data import check_data_path

        # One folder, one identity: ~/deap, ./deap and /home/me/deap resume each other.
        values["data"] = os.path.abspath(os.path.expanduser(values["data"]))
        check_data_path(values["data"], dataset)
        for name in ("n_subjects", "n_trials", "trial_seconds", "scenario"):
            if given[name] is not None:
                raise ConfigError(f"--{name.replace('_', '-')} applies to --data synthetic only.")
    if values["protocol"] == "subject" and args.folds is None:
        values["folds"] = None  # one fold per subject
    _check_device(args.device, here=args.scheduler is None)
    if args.cuda_graphs and not args.device.startswith("cuda"):
        raise ConfigError(
            f"--cuda-graphs needs --device cuda (CUDA graphs record GPU kernels), got "
            f"--device {args.device}; drop --cuda-graphs to run there."
        )
    if args.dry_run and args.scheduler is not None:
        raise ConfigError(
            "--dry-run times training steps on this machine and estimates a run here (1 and "
            "--workers N); it cannot time the workers of a --scheduler cluster. Drop "
            "--scheduler to see the grid and the estimate for this machine."
        )
    if args.umwp_scope is not None and "umwp" not in values["methods"]:
        raise ConfigError(
            f"--umwp-scope {args.umwp_scope} applies to umwp only, which --methods "
            f"({', '.join(values['methods'])}) leaves out: add umwp or drop --umwp-scope."
        )
    if args.workers > 1 and args.scheduler is not None:
        raise ConfigError(
            f"--workers {args.workers} with --scheduler: the Dask cluster's workers run the "
            "origin groups there (start them with `dask worker --nworkers N`); drop --workers."
        )

    inapplicable = _inapplicable(values["models"], values["methods"])
    skipped: tuple[str, ...] = ()
    if inapplicable and (args.models is not None and args.methods is not None or not args.full):
        pairs = "; ".join(
            f"{method} does not apply to {model} ({model}-{method}): {reason.rstrip('.')}"
            for (model, method), reason in inapplicable.items()
        )
        raise ConfigError(
            f"{pairs}. Drop the method or the model (with --full, pairs that do not apply "
            "are left out)."
        )
    if inapplicable:
        skipped = tuple(f"{model}-{method}" for model, method in inapplicable)
    if not [1 for m in values["models"] for me in values["methods"]
            if f"{m}-{me}" not in skipped]:
        raise ConfigError("no (model, method) pair left to run.")
    seeds = (0,) if args.seeds is None else tuple(dict.fromkeys(args.seeds))
    ratios = None if args.ratios is None else tuple(sorted(set(args.ratios)))
    _check_ratio_keys(ratios or ())
    return ReproduceConfig(
        **values, ratios=ratios, seeds=seeds, seed=seeds[0], device=args.device,
        cuda_graphs=args.cuda_graphs, threads=args.threads,
        workers=args.workers, full=args.full, skipped=skipped,
    )


def _error(message: str) -> int:
    print(f"{_PROG} reproduce: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skkgp`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    status : int
        0 on success, 2 for bad options or data (message on stderr), 3 when a
        ``--workers`` process failed or died (its traceback or exit code on stderr),
        130 when interrupted (Ctrl-C) and 143 when terminated (SIGTERM) during a
        ``--workers`` run; finished results are kept in these three cases (rerun to
        resume).
    """
    args = build_parser().parse_args(argv)
    if args.command == "export":
        return _export(args)
    from skkgp.reproduce.command import reproduce
    from skkgp.reproduce.parallel import Terminated, WorkerError

    try:
        config = config_from_args(args)
        if args.dry_run:
            from skkgp.reproduce.estimate import dry_run

            dry_run(config, quiet=args.quiet)
            return 0
        reproduce(config, args.out, scheduler=args.scheduler, overwrite=args.overwrite,
                  quiet=args.quiet)
    except ConfigError as error:
        return _error(str(error))
    except WorkerError as error:
        _error(str(error))
        return 3
    except Terminated as stop:
        print(f"\n{_PROG} reproduce: terminated; the workers were stopped."
              + ("" if args.dry_run else f" Finished results are saved in {args.out}; run "
                 "the same command again to resume."), file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        print(f"\n{_PROG} reproduce: interrupted."
              + ("" if args.dry_run else f" Finished results are saved in {args.out}; run "
                 "the same command again to resume."), file=sys.stderr)
        return 130
    return 0
