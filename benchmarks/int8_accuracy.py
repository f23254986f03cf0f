"""int8 against float32 ONNX files of pruned networks, on simulated DEAP-like data.

For CCNN (band-DE grids) and EEGNet (raw windows), each seed simulates its own subjects
(:func:`skkgp.datasets.make_deap_like`: a simulation, not DEAP), splits the windows by
trial (no trial on both sides), fits a pipeline ending in a
:class:`~skkgp.KnowledgeGuidedPruner` (LFP at 0.5) on the training trials, and exports
its network three times with :func:`skkgp.export_onnx`: float32, int8 calibrated on
``--n-calibration`` training windows drawn at random, and int8 calibrated on the
training windows whose evidence (Grad-CAM for CCNN, input x gradient for EEGNet) lies
most in the knowledge region (``calibration="knowledge"``). On the held-out trials it
measures, in onnxruntime:

- accuracy of each file, the share of windows where int8 predicts the float class and
  the mean change of the probabilities (a network that collapsed to one class agrees
  with anything: the summary counts the seeds whose float file predicts one class);
- latency (ms per call, one thread, batch 1 and 256; median of interleaved repeats);
- file size.

The summary gives mean +- std over seeds and the paired differences of accuracy over
seeds (int8 - float, knowledge - random calibration;
:func:`skkgp.reproduce.stats.paired_comparison`: mean difference, 95 % bootstrap
interval, Wilcoxon and paired t p-values, pairs up/down/tied). Seeds whose origin
collapsed to a constant predictor on its training windows (the pruner's
``origin_is_constant_``) are counted and left out of the accuracy, agreement and
probability figures and of the paired differences, as in ``knowledge_effect.py``;
latency and file size are over every seed.

Every fit runs on ``--threads`` torch threads (default 1), whatever the machine and the
cells before it: the trained weights, and so the int8 files, are the same run to run.

Run ``python benchmarks/int8_accuracy.py [--seeds 0 1 2 3 4] [--models ccnn eegnet]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner, export_onnx
from skkgp.datasets import make_deap_like
from skkgp.export import INPUT_NAME
from skkgp.reproduce.stats import PairedComparison, paired_comparison
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _latency import interleaved  # noqa: E402 - shared by the latency benchmarks
from deploy_latency import session  # noqa: E402 - the sibling benchmark

# CCNN with Adam at 1e-3 collapses to a constant predictor on these small data.
LR = {"ccnn": 1e-4, "eegnet": 1e-3}
FILES = ("float", "int8-random", "int8-knowledge")
BOOTSTRAP_RESAMPLES = 10_000
# The paired accuracy differences of the summary: (name, proposed file, baseline file).
CONTRASTS = (("int8-random - float", "int8-random", "float"),
             ("int8-knowledge - float", "int8-knowledge", "float"),
             ("knowledge - random", "int8-knowledge", "int8-random"))


def pipeline(model: str, args) -> object:
    steps = ([BandDifferentialEntropy(), ChannelStandardizer(per_feature=True), ToGrid()]
             if model == "ccnn" else [ChannelStandardizer()])
    net = EEGClassifier(model, lr=LR[model], max_epochs=args.epochs,
                        batch_size=args.batch_size)
    return make_pipeline(*steps, KnowledgeGuidedPruner(
        net, method="lfp", prune_ratio=0.5, recovery_epochs=args.recovery_epochs,
        region=args.region, random_state=0))


def run_cell(model: str, seed: int, args, folder: Path) -> dict:
    data = make_deap_like(n_subjects=args.subjects, n_trials=args.trials,
                          duration=args.duration, valence_effect=args.valence_effect,
                          random_state=seed)
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    train, test = next(split.split(data.X, data.y, groups=data.trials))
    pipe = pipeline(model, args).set_params(knowledgeguidedpruner__random_state=seed)
    start = time.perf_counter()
    pipe.fit(data.X[train], data.y[train])
    fit_seconds = time.perf_counter() - start
    paths = {name: folder / f"{model}-{seed}-{name}.onnx" for name in FILES}
    export_onnx(pipe, paths["float"], overwrite=True)
    for strategy in ("random", "knowledge"):
        export_onnx(pipe, paths[f"int8-{strategy}"], quantize="int8", calibration=strategy,
                    X=data.X[train], y=data.y[train], n_calibration=args.n_calibration,
                    random_state=seed, overwrite=True)
    features = pipe[:-1].transform(data.X[test]).astype(np.float32)
    classes = pipe.classes_
    sessions = {name: session(path, 1) for name, path in paths.items()}
    proba = {name: s.run(None, {INPUT_NAME: features})[0] for name, s in sessions.items()}
    predictions = {name: classes[p.argmax(1)] for name, p in proba.items()}
    row = {"model": model, "seed": seed, "n_train": len(train), "n_test": len(test),
           "fit_s": fit_seconds,
           "acc_pytorch": float(np.mean(pipe.predict(data.X[test]) == data.y[test])),
           # An origin that predicts one class on its training windows makes the
           # comparison meaningless: such seeds are counted and left out.
           "origin_constant": bool(pipe[-1].origin_is_constant_),
           # A network that predicts one class everywhere agrees with anything.
           "constant": bool(np.unique(predictions["float"]).size == 1)}
    for name in FILES:
        row[f"acc_{name}"] = float(np.mean(predictions[name] == data.y[test]))
        row[f"agree_{name}"] = float(np.mean(predictions[name] == predictions["float"]))
        row[f"dp_{name}"] = float(np.abs(proba[name] - proba["float"]).mean())
        row[f"mb_{name}"] = paths[name].stat().st_size / 1e6
    for batch in (1, 256):
        x = {INPUT_NAME: np.resize(features, (batch, *features.shape[1:]))}
        calls = {name: (lambda s=s: s.run(None, x)) for name, s in sessions.items()}
        times = interleaved(calls, args.repeats, 0.05)
        for name in FILES:
            row[f"ms{batch}_{name}"] = 1e3 * statistics.median(times[name])
    return row


def comparisons(cell: pd.DataFrame) -> dict[str, PairedComparison]:
    """Paired accuracy differences over the seeds of one model, by :data:`CONTRASTS` name.

    Seeds whose origin collapsed (``origin_constant``) are left out, and counted in
    ``n_excluded``.
    """
    cell = cell.sort_values("seed")
    collapsed = cell["origin_constant"].astype(bool).to_numpy()
    return {name: paired_comparison(cell[f"acc_{proposed}"], cell[f"acc_{baseline}"],
                                    exclude=collapsed, n_boot=BOOTSTRAP_RESAMPLES,
                                    random_state=0)
            for name, proposed, baseline in CONTRASTS}


def _mean_std(values: pd.Series, decimals: int = 3) -> str:
    if len(values) == 0:
        return "n/a"
    if len(values) < 2:
        return f"{values.mean():.{decimals}f}"
    return f"{values.mean():.{decimals}f} ± {values.std(ddof=1):.{decimals}f}"


def _interval(comparison: PairedComparison) -> str:
    if comparison.n_pairs == 0:
        return "n/a"
    return (f"{comparison.mean_difference:+.3f} [{comparison.ci_low:+.3f}, "
            f"{comparison.ci_high:+.3f}]")


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per model: means over seeds, paired differences (bootstrap intervals), latency, size.

    Accuracies, agreement, probability changes and paired differences are over the
    seeds whose origin did not collapse; ``seeds (collapsed)`` counts both.
    """
    rows = []
    for model, cell in results.groupby("model", sort=False):
        paired = comparisons(cell)
        kept = cell[~cell["origin_constant"].astype(bool)]
        row = {"model": model, "seeds (collapsed)": f"{len(cell)} ({len(cell) - len(kept)})",
               "seeds whose float file predicts one class": int(kept["constant"].sum())}
        for name in FILES:
            row[f"acc {name}"] = _mean_std(kept[f"acc_{name}"])
        for name in FILES[1:]:
            row[f"Δacc {name} - float"] = _interval(paired[f"{name} - float"])
            agree = kept[f"agree_{name}"]
            row[f"agree {name}"] = (f"{agree.mean():.3f} (min {agree.min():.3f})"
                                    if len(agree) else "n/a")
            row[f"mean |Δp| {name}"] = (f"{kept[f'dp_{name}'].mean():.4f}"
                                        if len(kept) else "n/a")
        row["Δacc knowledge - random"] = _interval(paired["knowledge - random"])
        for batch in (1, 256):
            for name in ("float", "int8-random"):
                row[f"ms b{batch} {name}"] = f"{cell[f'ms{batch}_{name}'].median():.3f}"
            row[f"int8 speed-up b{batch}"] = (
                f"{(cell[f'ms{batch}_float'] / cell[f'ms{batch}_int8-random']).median():.2f}")
        for name in ("float", "int8-random"):
            row[f"MB {name}"] = f"{cell[f'mb_{name}'].mean():.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").T


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ccnn", "eegnet"],
                        choices=["ccnn", "eegnet"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--epochs", type=int, default=4, help="origin epochs")
    parser.add_argument("--recovery-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--valence-effect", type=float, default=1.0)
    parser.add_argument("--region", default="prefrontal")
    parser.add_argument("--n-calibration", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of every fit (default 1: the same files on "
                             "any machine and in any order of the cells)")
    parser.add_argument("--out", default=None, help="CSV file for the per-seed results")
    args = parser.parse_args(argv)
    # torch's CPU kernels split their sums by the thread count, so the trained weights,
    # and with them the int8 files' rounding, differ in their last bits from one count
    # to another: every cell trains with the same count.
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory(prefix="skkgp-int8-") as folder:
        for model in args.models:
            for seed in args.seeds:
                row = run_cell(model, seed, args, Path(folder))
                rows.append(row)
                print(f"{model:7s} seed {seed}: acc float/int8-random/int8-knowledge "
                      f"{row['acc_float']:.3f}/{row['acc_int8-random']:.3f}/"
                      f"{row['acc_int8-knowledge']:.3f}  agree "
                      f"{row['agree_int8-random']:.3f}/{row['agree_int8-knowledge']:.3f}  "
                      f"({row['fit_s']:.0f} s fit)"
                      + ("  origin collapsed: left out" if row["origin_constant"] else ""),
                      flush=True)
    results = pd.DataFrame(rows)
    if args.out:
        results.to_csv(args.out, index=False)
    collapsed = int(results["origin_constant"].sum())
    if collapsed:
        print(f"WARNING: the origin of {collapsed} of {len(results)} (model, seed) cells "
              "predicted a single class on its training windows (origin_constant); they "
              "are left out of the accuracy statistics.")
    print(f"\nLFP at 0.5, held-out trials, {args.n_calibration} calibration windows from the "
          f"training trials; seeds {args.seeds}; onnxruntime, 1 thread")
    print(summarize(results).to_string())
    print("\nPaired accuracy differences over seeds:")
    for model, cell in results.groupby("model", sort=False):
        for name, comparison in comparisons(cell).items():
            print(f"  {model} {comparison.verdict(subject=name)}")
    return results


if __name__ == "__main__":
    main()
