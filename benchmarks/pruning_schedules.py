"""One-shot vs iterative pruning, and LFP vs the knowledge-guided importance, paired by seed.

On the simulation (:func:`skkgp.datasets.make_deap_like`, not DEAP), for each seed this
script draws the data, splits the windows by trial (no trial on both sides), fits one
origin network and prunes and recovers copies of it with
:class:`skkgp.KnowledgeGuidedPruner` (``prefit=True``):

1. **Schedules**: LFP at ``--ratio`` in one step vs ``--steps`` linear steps, with the
   same total recovery epochs (``step_recovery="split"``).
2. **Criteria at equal MACs**: LFP vs the knowledge-guided importance (``"kgi"``), each
   pruned to the same MAC budget (``--budget`` times the origin's MACs), so that both
   networks cost the same (within one rounding step; the reached MACs are printed).

Each comparison is run with the baseline recovery (cross-entropy only:
``region_weight=0, sample_weighting=0``) and the knowledge-guided one (``1, 1``). For
every pair the script prints the mean paired difference of held-out accuracy over the
seeds, a bootstrap 95 % interval of that mean (10,000 resamples of the seeds) and the
two-sided Wilcoxon signed-rank p-value. ``--jobs N`` runs seeds in N processes, each
with one torch thread.

A run large enough to measure a few points of accuracy (sized for 16 cores)::

    python benchmarks/pruning_schedules.py --seeds 0 1 2 3 4 5 6 7 8 9 --jobs 10 \\
        --model eegnet --subjects 8 --trials 20 --duration 5 --epochs 20 \\
        --recovery-epochs 12

A tiny check that it works (2-core machine, under a minute; 8 held-out windows a seed,
far too small to show an effect)::

    python benchmarks/pruning_schedules.py --seeds 0 1 2 3 4 --jobs 2 --subjects 2 \\
        --trials 8 --duration 2 --epochs 2 --recovery-epochs 3

A small run's figures, and what they do not show, are in the user guide
(``docs/user_guide/budgets.rst``).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.pruning import count_macs
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


def run_seed(seed: int, args) -> list[dict]:
    """Every configuration on one seed's data and origin."""
    torch.set_num_threads(1)
    data = make_deap_like(
        n_subjects=args.subjects, n_trials=args.trials, duration=args.duration,
        random_state=seed,
    )
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    train, test = next(split.split(data.X, data.y, groups=data.trials))
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
            "macs": report.macs_after,
            "origin_macs": report.macs_before,
            "seconds": time.perf_counter() - start,
        })
    return rows


def paired_statistics(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 10_000, random_state: int = 0
) -> dict:
    """Mean of ``a - b`` over seeds, its bootstrap 95 % interval, Wilcoxon p-value."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(random_state)
    means = rng.choice(diff, size=(n_boot, diff.size), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    if np.allclose(diff, 0):
        p_value = 1.0
    else:
        p_value = float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
    return {"mean_diff": float(diff.mean()), "ci_low": float(low), "ci_high": float(high),
            "wilcoxon_p": p_value, "n_seeds": int(diff.size)}


def compare(results: pd.DataFrame, args) -> pd.DataFrame:
    accuracy = results.pivot(index="seed", columns="config", values="accuracy")
    macs = results.pivot(index="seed", columns="config", values="macs")
    rows = []
    for recovery in RECOVERIES:
        for treated, control in (
            (f"{args.steps} steps/{recovery}", f"one-shot/{recovery}"),
            (f"kgi@budget/{recovery}", f"lfp@budget/{recovery}"),
        ):
            rows.append({
                "comparison": f"{treated} - {control}",
                **paired_statistics(accuracy[treated], accuracy[control]),
                "acc_treated": f"{accuracy[treated].mean():.3f}",
                "acc_control": f"{accuracy[control].mean():.3f}",
                "macs_treated": int(macs[treated].mean()),
                "macs_control": int(macs[control].mean()),
            })
    return pd.DataFrame(rows).set_index("comparison")


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="eegnet",
                        choices=["eegnet", "tsception", "ccnn", "fbccnn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
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
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("paired statistics need at least two seeds (five or more to mean much)")

    start = time.perf_counter()
    rows = []
    if args.jobs > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for seed_rows in pool.map(run_seed, args.seeds, [args] * len(args.seeds)):
                rows += seed_rows
    else:
        for seed in args.seeds:
            rows += run_seed(seed, args)
    results = pd.DataFrame(rows)
    for seed, cell in results.groupby("seed"):
        line = ", ".join(f"{c} {a:.3f}" for c, a in zip(cell["config"], cell["accuracy"]))
        print(f"seed {seed}: origin {cell['origin_accuracy'].iloc[0]:.3f}; {line}")
    table = compare(results, args)
    pd.set_option("display.width", 200)
    print(f"\n{args.model}, {len(args.seeds)} seeds, ratio {args.ratio}, {args.steps} steps, "
          f"MAC budget {args.budget} x origin; held-out accuracy differences "
          f"(mean, bootstrap 95 % interval, Wilcoxon p):")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.out:
        results.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
