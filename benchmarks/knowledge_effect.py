"""Measured effect of the knowledge-guided recovery on simulated DEAP-like data.

For each model (CCNN on band-DE grids, EEGNet on raw windows), simulation scenario and
seed, this script fits one origin network, prunes it with LFP at 0.5, and recovers the
pruned origin twice or more from the same start (:class:`skkgp.KnowledgeGuidedPruner`
with ``prefit=True``, the same ``random_state``):

- *baseline*: plain cross-entropy (``region_weight=0`` and no sample weighting);
- *proposed*: the knowledge-guided losses with the prior on each ``--region`` in turn
  (the true region, and a wrong region as the control).

On the held-out windows it measures the accuracy of origin, baseline and proposed
networks and the *region share* of the evidence: the mean, over held-out windows, of
the share of the (normalised, true-class) evidence on the region's electrodes
(:func:`skkgp.knowledge.evidence.guided_gradcam`,
:func:`skkgp.knowledge.losses.region_share`), next to the
fraction of windows whose evidence is all zero (their share is the uniform one,
``share_uniform``: a recovery that killed the evidence would show that, not a knowledge
effect). Every network is explained with the evidence kind the proposed recovery used
(``--evidence``; by default the model's own, see :mod:`skkgp.knowledge.evidence`).
Proposed is paired with baseline over seeds
(:func:`skkgp.reproduce.stats.paired_comparison`: mean difference, 95 % bootstrap
interval, Wilcoxon and paired t p-values, pairs up/down/tied), for accuracy and for the
region share; origins that collapsed to a constant predictor are counted and left out.

Splits (every seed draws its own subjects, split and initialisation):

- ``--scenario default``: trials shuffled into 75 % training and 25 % held-out trials
  (no trial on both sides);
- ``--scenario shortcut``: :func:`skkgp.datasets.make_deap_like` with
  ``scenario="shortcut"``; training on the trials where the temporal EMG shortcut
  follows valence, testing on the trials where it is reversed (half each). The true
  valence signal lies in the frontal region; the parietal region holds neither it nor
  the shortcut, so a prior there is the control.

The data are a simulation, not DEAP.

The measurement runs (``--jobs`` computes (model, scenario, seed) cells in parallel
processes, one torch thread each: give one job per core; each cell trains one origin,
one baseline and one proposed recovery per region)::

    # 1. default scenario, prior on the true region and on the control region
    python benchmarks/knowledge_effect.py --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --scenario default --region frontal_left parietal --jobs 16 --out default.csv
    # 2. shortcut scenario, true region and control
    python benchmarks/knowledge_effect.py --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --scenario shortcut --region frontal_left parietal --jobs 16 --out shortcut.csv
    # 3. everything in one run (both scenarios, both regions)
    python benchmarks/knowledge_effect.py --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --scenario default shortcut --region frontal_left parietal --jobs 16 --out all.csv
    # 4. statistics again from a finished CSV, without training
    python benchmarks/knowledge_effect.py --summary-only all.csv

A finished cell is written to ``--out`` at once; rerunning the same command resumes
(cells already in the file are not recomputed; a file of other settings is refused).
Run ``--help`` for the sizes; ``--device cuda`` on a GPU. A tiny check:
``python benchmarks/knowledge_effect.py --seeds 0 1 --epochs 1 --recovery-epochs 1``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp._atomic import atomic_write_text
from skkgp.datasets import SCENARIOS, make_deap_like
from skkgp.knowledge.evidence import EVIDENCE_KINDS, guided_gradcam
from skkgp.knowledge.losses import REGION_LOSSES, region_share
from skkgp.layout import DEFAULT_REGION, REGIONS
from skkgp.reproduce.stats import paired_comparison
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

MODELS = ("ccnn", "eegnet")
# CCNN with Adam at 1e-3 collapses to a constant predictor on these small data.
DEFAULT_LR = {"ccnn": 1e-4, "eegnet": 1e-3}
# Columns that say what a row was computed with: rows of other settings are not
# resumed from nor summarised together.
SETTINGS = ("subjects", "trials", "duration", "epochs", "recovery_epochs", "batch_size",
            "lr", "valence_effect", "region_weight", "sample_weighting", "evidence",
            "region_loss", "prune_ratio")
PRUNE_RATIO = 0.5
BOOTSTRAP_RESAMPLES = 10_000


def _features(model: str):
    """Input pipeline of each model, fitted on the training windows only."""
    if model == "ccnn":
        return make_pipeline(
            BandDifferentialEntropy(), ChannelStandardizer(per_feature=True), ToGrid()
        )
    return make_pipeline(ChannelStandardizer())


def _share(net, X, y, mask, kind) -> tuple[float, float]:
    """Mean region share of the true-class evidence (of kind ``kind``), and the fraction of
    windows whose evidence is all zero (their share falls back to the uniform one)."""
    evidence = guided_gradcam(net, X, y, evidence=kind)
    dead = float(np.mean(evidence.sum(axis=1) == 0))
    return float(np.mean(region_share(evidence, mask))), dead


def _split(data, scenario: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if scenario == "shortcut":
        return np.flatnonzero(data.shortcut == 1), np.flatnonzero(data.shortcut == -1)
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    return next(split.split(data.X, data.y, groups=data.trials))


def _knowledge_params(settings: dict, region: str | None) -> dict:
    """The pruner's knowledge-guided parameters: baseline when ``region`` is None."""
    params = {"region_weight": 0.0 if region is None else settings["region_weight"],
              "sample_weighting": 0.0 if region is None else settings["sample_weighting"]}
    params["evidence"] = settings["evidence"]
    if region is not None:
        params.update(region=region, region_loss=settings["region_loss"])
    return params


def run_cell(model: str, scenario: str, seed: int, regions: list[str], settings: dict,
             device: str = "cpu", threads: int | None = None) -> list[dict]:
    """One origin, its baseline recovery and one proposed recovery per region.

    Returns one row per region: the baseline and origin figures repeat in each.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    extra = {"scenario": scenario} if scenario != "default" else {}
    data = make_deap_like(n_subjects=settings["subjects"], n_trials=settings["trials"],
                          duration=settings["duration"],
                          valence_effect=settings["valence_effect"], random_state=seed,
                          **extra)
    train, test = _split(data, scenario, seed)
    features = _features(model).fit(data.X[train])
    X_train, X_test = features.transform(data.X[train]), features.transform(data.X[test])
    y_train, y_test = data.y[train], data.y[test]

    lr = settings["lr"] if settings["lr"] is not None else DEFAULT_LR[model]
    origin = EEGClassifier(model, lr=lr, max_epochs=settings["epochs"],
                           batch_size=settings["batch_size"], device=device,
                           random_state=seed).fit(X_train, y_train)

    def recover(region):
        return KnowledgeGuidedPruner(
            origin, method="lfp", prune_ratio=settings["prune_ratio"],
            recovery_epochs=settings["recovery_epochs"], random_state=seed, prefit=True,
            **_knowledge_params(settings, region),
        ).fit(X_train, y_train)

    baseline = recover(None)
    common = {
        "model": model, "scenario": scenario, "seed": seed,
        "n_train": len(train), "n_test": len(test),
        "acc_origin": float(origin.score(X_test, y_test)),
        "acc_baseline": float(baseline.score(X_test, y_test)),
        "origin_constant": bool(baseline.origin_is_constant_),
        "baseline_constant": bool(baseline.recovered_is_constant_),
        "params_reduction": baseline.pruning_report_.params_reduction,
        "macs_reduction": baseline.pruning_report_.macs_reduction,
        **{name: settings[name] for name in SETTINGS},
    }
    rows = []
    for region in regions:
        proposed = recover(region)
        mask = proposed.region_mask_
        # Every network is explained with the evidence kind the proposed recovery steered.
        kind = proposed.estimator_.evidence_
        shares = {"origin": _share(origin, X_test, y_test, mask, kind),
                  "baseline": _share(baseline.estimator_, X_test, y_test, mask, kind),
                  "proposed": _share(proposed.estimator_, X_test, y_test, mask, kind)}
        rows.append({
            **common,
            "region": region,
            "acc_proposed": float(proposed.score(X_test, y_test)),
            "proposed_constant": bool(proposed.recovered_is_constant_),
            "evidence_kind": kind,
            **{f"share_{name}": share for name, (share, _) in shares.items()},
            **{f"zero_evidence_{name}": dead for name, (_, dead) in shares.items()},
            "share_uniform": float(np.mean(mask)),
        })
    seconds = time.perf_counter() - start
    # CPU time too: on a shared machine wall time says more about the neighbours.
    cpu_seconds = time.process_time() - cpu_start
    for row in rows:
        row["cell_seconds"] = seconds
        row["cell_cpu_seconds"] = cpu_seconds
    return rows


# ----------------------------------------------------------------------- statistics
def _mean_std(values: pd.Series) -> str:
    if len(values) < 2:
        return f"{values.mean():.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def comparisons(results: pd.DataFrame) -> dict[tuple, dict]:
    """Paired statistics of proposed vs baseline per (model, scenario, region).

    Returns
    -------
    stats : dict
        ``(model, scenario, region) -> {"accuracy": PairedComparison,
        "share": PairedComparison}``, over seeds, collapsed origins left out.
    """
    out = {}
    for key, part in results.groupby(["model", "scenario", "region"], sort=False):
        part = part.sort_values("seed")
        collapsed = part["origin_constant"].astype(bool).to_numpy()
        out[key] = {
            metric: paired_comparison(part[f"{column}_proposed"], part[f"{column}_baseline"],
                                      exclude=collapsed, n_boot=BOOTSTRAP_RESAMPLES,
                                      random_state=0)
            for metric, column in (("accuracy", "acc"), ("share", "share"))
        }
    return out


def summarize(results: pd.DataFrame) -> str:
    """Table of means ± std over seeds, and verdict lines, per (model, scenario, region)."""
    columns = {}
    stats = comparisons(results)
    for (model, scenario, region), part in results.groupby(["model", "scenario", "region"],
                                                            sort=False):
        kept = part[~part["origin_constant"].astype(bool)]
        columns[f"{model} {scenario} {region}"] = {
            "seeds (collapsed)": f"{len(part)} ({len(part) - len(kept)})",
            "acc origin": _mean_std(kept["acc_origin"]),
            "acc baseline": _mean_std(kept["acc_baseline"]),
            "acc proposed": _mean_std(kept["acc_proposed"]),
            "share origin": _mean_std(kept["share_origin"]),
            "share baseline": _mean_std(kept["share_baseline"]),
            "share proposed": _mean_std(kept["share_proposed"]),
            "zero-evidence base": _mean_std(kept["zero_evidence_baseline"]),
            "zero-evidence prop": _mean_std(kept["zero_evidence_proposed"]),
            "uniform share": f"{part['share_uniform'].iloc[0]:.3f}",
            "params -%": f"{part['params_reduction'].mean():.1f}",
            "MACs -%": f"{part['macs_reduction'].mean():.1f}",
        }
    lines = [pd.DataFrame(columns).to_string(), ""]
    for (model, scenario, region), pair in stats.items():
        lines.append(f"{model} {scenario} {region}:")
        lines.append("  accuracy " + pair["accuracy"].verdict())
        lines.append("  region share " + pair["share"].verdict(scale=1.0, unit="",
                                                               decimals=3))
    return "\n".join(lines)


def _settings_line(results: pd.DataFrame) -> str:
    first = results.iloc[0]
    return ("LFP at {prune_ratio}, held-out trials; {subjects} subjects x {trials} trials x "
            "{duration} s; {epochs} origin + {recovery_epochs} recovery epochs; "
            "region_weight={region_weight}, sample_weighting={sample_weighting}, "
            "region_loss={region_loss}, evidence={evidence}; seeds {seeds}".format(
                **{name: first[name] for name in SETTINGS},
                seeds=" ".join(str(s) for s in sorted(results["seed"].unique()))))


# ----------------------------------------------------------------------- command line
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive int")
    return value


def _region(text: str) -> str:
    if text.lower() not in REGIONS:
        raise argparse.ArgumentTypeError(f"unknown region {text!r}; choose from "
                                         f"{', '.join(REGIONS)}")
    return text.lower()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=["default"],
                        help="simulation scenario(s) (default: default)")
    parser.add_argument("--region", nargs="+", type=_region, default=[DEFAULT_REGION],
                        help="region(s) of the prior, one proposed recovery each; the "
                             "valence signal is frontal, parietal holds none: a control "
                             f"(default: {DEFAULT_REGION})")
    parser.add_argument("--subjects", type=_positive_int, default=4)
    parser.add_argument("--trials", type=_positive_int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--epochs", type=_positive_int, default=4, help="origin epochs")
    parser.add_argument("--recovery-epochs", type=_positive_int, default=3)
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: per model")
    parser.add_argument("--valence-effect", type=float, default=1.0)
    parser.add_argument("--region-weight", type=float, default=1.0)
    parser.add_argument("--sample-weighting", type=float, default=1.0)
    parser.add_argument("--evidence", default="auto", choices=("auto", *EVIDENCE_KINDS),
                        help="evidence kind of the recoveries; every network is explained "
                             "with the kind the proposed recovery used (default: per model)")
    parser.add_argument("--region-loss", default="auto", choices=("auto", *REGION_LOSSES),
                        help="region-wise loss variant (default auto: per evidence kind)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=_positive_int, default=1,
                        help="(model, scenario, seed) cells computed in parallel processes, "
                             "each with one torch thread (default 1: this process, torch's "
                             "own threads)")
    parser.add_argument("--out", default=None,
                        help="CSV of the per-(model, scenario, seed, region) results, written "
                             "as cells finish; an existing file of the same settings is "
                             "resumed")
    parser.add_argument("--summary-only", metavar="CSV", default=None,
                        help="print the statistics of a finished CSV and exit")
    return parser


def _check(args, parser) -> None:
    if args.region_weight < 0:
        parser.error(f"--region-weight must be >= 0; got {args.region_weight}")
    if not 0 <= args.sample_weighting <= 1:
        parser.error(f"--sample-weighting must lie in [0, 1]; got {args.sample_weighting}")
    if min(args.seeds) < 0:
        parser.error(f"--seeds must be non-negative; got {args.seeds}")


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def _setting(value) -> str:
    """A setting as comparable text: None, nan and "" alike, 1 and 1.0 alike."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _resumed(args, settings: dict) -> pd.DataFrame:
    if not args.out or not os.path.exists(args.out):
        return pd.DataFrame()
    done = _read(args.out)
    found = done[list(SETTINGS)].drop_duplicates()
    wanted = pd.DataFrame([settings])[list(SETTINGS)]
    same = len(found) == 1 and all(
        _setting(found.iloc[0][name]) == _setting(wanted.iloc[0][name]) for name in SETTINGS)
    if not same:
        raise SystemExit(f"--out {args.out!r} holds results of other settings; it is kept. "
                         "Choose another --out, or rerun with that file's settings to "
                         "resume it.")
    return done


def main(argv=None) -> pd.DataFrame:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.summary_only:
        results = _read(args.summary_only)
        print(_settings_line(results))
        print(summarize(results))
        return results
    _check(args, parser)
    settings = {"subjects": args.subjects, "trials": args.trials, "duration": args.duration,
                "epochs": args.epochs, "recovery_epochs": args.recovery_epochs,
                "batch_size": args.batch_size, "lr": args.lr,
                "valence_effect": args.valence_effect, "region_weight": args.region_weight,
                "sample_weighting": args.sample_weighting, "evidence": args.evidence,
                "region_loss": args.region_loss,
                "prune_ratio": PRUNE_RATIO}
    done = _resumed(args, settings)
    finished = set()
    if len(done):
        for key, part in done.groupby(["model", "scenario", "seed"]):
            if set(args.region) <= set(part["region"]):
                finished.add(key)
    cells = [(model, scenario, seed) for model in args.models for scenario in args.scenario
             for seed in args.seeds if (model, scenario, seed) not in finished]
    rows = [] if not len(done) else done.to_dict("records")
    if finished:
        print(f"resuming {args.out}: {len(finished)} cells there, {len(cells)} to compute",
              file=sys.stderr)

    def report(cell_rows):
        rows.extend(cell_rows)
        for row in cell_rows:
            print(f"{row['model']:7s} {row['scenario']:8s} seed {row['seed']} "
                  f"{row['region']:9s} acc origin/baseline/proposed "
                  f"{row['acc_origin']:.3f}/{row['acc_baseline']:.3f}/{row['acc_proposed']:.3f}"
                  f"  share baseline/proposed {row['share_baseline']:.3f}/"
                  f"{row['share_proposed']:.3f}  (cell {row['cell_seconds']:.0f} s, "
                  f"{row['cell_cpu_seconds']:.0f} s CPU)", flush=True)
        if args.out:
            # Written whole under a temporary name, then moved: an interruption
            # never truncates the file.
            atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))

    if args.jobs == 1:
        for cell in cells:
            report(run_cell(*cell, args.region, settings, args.device))
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=args.jobs, backend="loky", return_as="generator_unordered")
        for cell_rows in parallel(delayed(run_cell)(*cell, args.region, settings, args.device,
                                                    threads=1) for cell in cells):
            report(cell_rows)
    results = pd.DataFrame(rows)
    if results["origin_constant"].any():
        print("WARNING: some origins predicted a single class (origin_constant); they are "
              "left out of the statistics.")
    for name in ("baseline", "proposed"):
        if results[f"{name}_constant"].any():
            print(f"WARNING: some {name} recoveries collapsed to a single class "
                  f"({name}_constant); they count in the statistics, as the failures "
                  "they are.")
    print()
    print(_settings_line(results))
    print(summarize(results))
    return results


if __name__ == "__main__":
    main()
