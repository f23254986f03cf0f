"""One-shot vs iterative pruning, and LFP vs the knowledge-guided importance, paired by seed.

On the simulation (:func:`skkgp.datasets.make_deap_like`, not DEAP), for each seed this
script draws the data, splits the windows by trial (no trial on both sides), fits one
origin network and prunes and recovers copies of it with
:class:`skkgp.KnowledgeGuidedPruner` (``prefit=True``, knowledge region
``frontal_left``). ``--scenario shortcut`` draws the shortcut scenario instead (a
label-following temporal EMG outside the region, reversed in half of the trials) and
trains on the trials where the shortcut follows the label, tests on those where it is
reversed, as ``benchmarks/knowledge_effect.py`` does:

1. **Schedules**: LFP at ``--ratio`` in one step vs ``--steps`` linear steps, with the
   same total recovery epochs (``step_recovery="split"``).
2. **Criteria at equal MACs**: LFP vs the knowledge-guided importance (``"kgi"``), each
   pruned to the same MAC budget (``--budget`` times the origin's MACs), so that both
   networks cost the same (within one rounding step; the reached MACs are printed).

Each comparison is run with the baseline recovery (cross-entropy only:
``region_weight=0, sample_weighting=0``) and the knowledge-guided one (``1, 1``). For
every pair the script prints the paired statistics of ``skkgp reproduce``
(:func:`skkgp.reproduce.stats.paired_comparison`: mean difference of held-out accuracy
over the seeds, its bootstrap 95 % interval of 10,000 resamples, the Wilcoxon and
paired t p-values, and how many seeds went up, down or tied); seeds whose origin
collapsed to a constant predictor are counted and left out. ``--jobs N`` runs seeds in N
processes, each with one torch thread. ``--out FILE`` is written as each seed finishes,
and the same command resumes it; ``--summary-only FILE`` prints the statistics of a
finished file.

A run large enough to measure about a point of accuracy (one process: 21 min for
EEGNet, 47 min for CCNN on a shared 2-core CPU; ``--jobs N`` divides that on N cores)::

    python benchmarks/pruning_schedules.py --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --model ccnn --subjects 8 --trials 20 --duration 5 --epochs 20 \\
        --recovery-epochs 12 --out ccnn.csv

A tiny check that it works (2-core machine, under a minute; 8 held-out windows a seed,
far too small to show an effect)::

    python benchmarks/pruning_schedules.py --seeds 0 1 2 3 4 --jobs 2 --subjects 2 \\
        --trials 8 --duration 2 --epochs 2 --recovery-epochs 3

The ten-seed figures of CCNN and EEGNet in both scenarios, and what they do not show,
are in the user guide (``docs/user_guide/budgets.rst``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp._atomic import atomic_write_text
from skkgp.datasets import make_deap_like
from skkgp.pruning import count_macs
from skkgp.reproduce.stats import paired_comparison
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

RECOVERIES = {"baseline": (0.0, 0.0), "kg": (1.0, 1.0)}
# CCNN with Adam at 1e-3 collapses to a constant predictor on these small data.
DEFAULT_LR = {"ccnn": 1e-4, "fbccnn": 1e-4}


def _features(model: str):
    if model in ("ccnn", "fbccnn"):
        return make_pipeline(
            BandDifferentialEntropy(), ChannelStandardizer(per_feature=True), ToGrid()
        )
    return make_pipeline(ChannelStandardizer())


def _configs(args, origin_macs: int) -> dict[str, dict]:
    """The pruners of one seed, by name: what is compared with what."""
    configs = {}
    for recovery, (alpha, beta) in RECOVERIES.items():
        common = dict(region_weight=alpha, sample_weighting=beta,
                      recovery_epochs=args.recovery_epochs)
        configs[f"one-shot/{recovery}"] = dict(method="lfp", prune_ratio=args.ratio, **common)
        configs[f"{args.steps} steps/{recovery}"] = dict(
            method="lfp", prune_ratio=args.ratio, n_steps=args.steps,
            step_recovery="split", **common,
        )
        budget = int(origin_macs * args.budget)
        configs[f"lfp@budget/{recovery}"] = dict(method="lfp", target_macs=budget, **common)
        configs[f"kgi@budget/{recovery}"] = dict(method="kgi", target_macs=budget, **common)
    return configs


def _split(data, scenario: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if scenario == "shortcut":
        return np.flatnonzero(data.shortcut == 1), np.flatnonzero(data.shortcut == -1)
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    return next(split.split(data.X, data.y, groups=data.trials))


def run_seed(seed: int, args) -> list[dict]:
    """Every configuration on one seed's data and origin."""
    torch.set_num_threads(1)
    data = make_deap_like(
        n_subjects=args.subjects, n_trials=args.trials, duration=args.duration,
        scenario=args.scenario, random_state=seed,
    )
    train, test = _split(data, args.scenario, seed)
    features = _features(args.model).fit(data.X[train])
    X_train, X_test = features.transform(data.X[train]), features.transform(data.X[test])
    y_train, y_test = data.y[train], data.y[test]
    origin = EEGClassifier(
        args.model, lr=args.lr or DEFAULT_LR.get(args.model, 1e-3), max_epochs=args.epochs,
        batch_size=args.batch_size, random_state=seed,
    ).fit(X_train, y_train)
    origin_macs = count_macs(origin.module_, torch.as_tensor(X_train[:1]))
    rows = []
    for name, params in _configs(args, origin_macs).items():
        start = time.perf_counter()
        pruner = KnowledgeGuidedPruner(origin, prefit=True, random_state=seed, **params)
        pruner.fit(X_train, y_train)
        report = pruner.pruning_report_
        rows.append({
            "seed": seed,
            "config": name,
            "accuracy": pruner.score(X_test, y_test),
            "origin_accuracy": origin.score(X_test, y_test),
            "origin_constant": bool(pruner.origin_is_constant_),
            "macs": report.macs_after,
            "origin_macs": report.macs_before,
            "seconds": time.perf_counter() - start,
        })
    return rows


def compare(results: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Paired statistics of each comparison over the seeds (collapsed origins left out)."""
    results = results.sort_values("seed")
    accuracy = results.pivot(index="seed", columns="config", values="accuracy")
    macs = results.pivot(index="seed", columns="config", values="macs")
    collapsed = results.groupby("seed")["origin_constant"].any().loc[accuracy.index]
    rows = []
    for recovery in RECOVERIES:
        for treated, control in (
            (f"{steps} steps/{recovery}", f"one-shot/{recovery}"),
            (f"kgi@budget/{recovery}", f"lfp@budget/{recovery}"),
        ):
            pair = paired_comparison(accuracy[treated], accuracy[control],
                                     exclude=collapsed.to_numpy())
            kept = ~collapsed
            rows.append({
                "comparison": f"{treated} - {control}",
                "mean_diff": pair.mean_difference,
                "ci_low": pair.ci_low,
                "ci_high": pair.ci_high,
                "wilcoxon_p": pair.wilcoxon_p,
                "up/down/tied": f"{pair.n_up}/{pair.n_down}/{pair.n_tied}",
                "n_seeds": pair.n_pairs,
                "n_collapsed": pair.n_excluded,
                "verdict": pair.direction,
                "acc_treated": accuracy.loc[kept, treated].mean(),
                "acc_control": accuracy.loc[kept, control].mean(),
                "macs_treated": int(macs[treated].mean()),
                "macs_control": int(macs[control].mean()),
            })
    return pd.DataFrame(rows).set_index("comparison")


def _settings(args) -> dict:
    """What decides the results: a file of other settings is never resumed."""
    return {name: getattr(args, name) for name in (
        "model", "scenario", "subjects", "trials", "duration", "epochs", "recovery_epochs",
        "batch_size", "lr", "ratio", "steps", "budget")}


def _resumed(path: str | None, settings: dict) -> pd.DataFrame:
    if not path or not os.path.exists(path):
        return pd.DataFrame()
    done = pd.read_csv(path)
    found = json.loads(done["settings"].iloc[0]) if len(done) else settings
    if found != settings:
        raise SystemExit(f"--out {path!r} holds results of other settings; it is kept. "
                         "Choose another --out, or rerun with that file's settings.")
    return done


def _print_summary(results: pd.DataFrame) -> pd.DataFrame:
    settings = json.loads(results["settings"].iloc[0])
    for seed, cell in results.groupby("seed"):
        line = ", ".join(f"{c} {a:.3f}" for c, a in zip(cell["config"], cell["accuracy"]))
        collapsed = " (collapsed)" if cell["origin_constant"].any() else ""
        print(f"seed {seed}: origin {cell['origin_accuracy'].iloc[0]:.3f}{collapsed}; {line}")
    table = compare(results, settings["steps"])
    pd.set_option("display.width", 250)
    # Result files written before --scenario existed hold the default scenario.
    scenario = settings.get("scenario", "default")
    print(f"\n{settings['model']}, scenario {scenario}, "
          f"{results['seed'].nunique()} seeds, ratio "
          f"{settings['ratio']}, {settings['steps']} steps, MAC budget {settings['budget']} "
          "x origin; held-out accuracy differences treated - control (mean, bootstrap 95 % "
          "interval, Wilcoxon p):")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return table


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="eegnet",
                        choices=["eegnet", "tsception", "ccnn", "fbccnn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    parser.add_argument("--scenario", choices=["default", "shortcut"], default="default",
                        help="simulation scenario (shortcut: train where the temporal EMG "
                             "follows the label, test where it is reversed)")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--epochs", type=int, default=6, help="origin epochs")
    parser.add_argument("--recovery-epochs", type=int, default=6,
                        help="recovery epochs in all (split across the steps)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: per model")
    parser.add_argument("--ratio", type=float, default=0.5, help="LFP ratio of schedules")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.4,
                        help="MAC budget of the criteria comparison, share of the origin's")
    parser.add_argument("--out", default=None, help="CSV file for the per-seed results")
    parser.add_argument("--summary-only", metavar="CSV", default=None,
                        help="print the statistics of a finished --out file and exit")
    args = parser.parse_args(argv)
    if args.summary_only:
        return _print_summary(pd.read_csv(args.summary_only))
    if len(set(args.seeds)) < 2:
        parser.error("paired statistics need at least two seeds (five or more to mean much)")

    start = time.perf_counter()
    settings = _settings(args)
    done = _resumed(args.out, settings)
    rows = done.to_dict("records")
    seeds = [seed for seed in dict.fromkeys(args.seeds)
             if not len(done) or seed not in set(done["seed"])]
    if len(done):
        print(f"resuming {args.out}: {done['seed'].nunique()} seeds there, {len(seeds)} to "
              "compute", file=sys.stderr)

    def finished(seed_rows):
        for row in seed_rows:
            row["settings"] = json.dumps(settings, sort_keys=True)
        rows.extend(seed_rows)
        print(f"seed {seed_rows[0]['seed']} done "
              f"({sum(r['seconds'] for r in seed_rows):.0f} s)", file=sys.stderr, flush=True)
        if args.out:
            # Written whole under a temporary name, then moved: an interruption
            # never truncates the file.
            atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))

    if args.jobs > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(run_seed, s, args) for s in seeds]):
                finished(future.result())
    else:
        for seed in seeds:
            finished(run_seed(seed, args))
    results = pd.DataFrame(rows)
    results = results[results["seed"].isin(args.seeds)]
    table = _print_summary(results)
    print(f"\n{time.perf_counter() - start:.0f} s")
    return table


if __name__ == "__main__":
    main()
