"""Measured effect of the knowledge-guided recovery on simulated DEAP-like data.

For CCNN (band-DE grids) and EEGNet (raw windows), pruned with LFP at 0.5, this script
fits one origin network per seed with :class:`skkgp.KnowledgeGuidedPruner` (the
proposed knowledge-guided recovery), and recovers the same pruned origin a second time
with plain cross-entropy (the baseline: what the pruner does with ``region_weight=0,
sample_weighting=0``, exactly, as ``tests/test_pruner.py`` checks; built here from the
pruner's ``origin_module_`` so that the origin is trained once). On held-out trials it
measures:

- accuracy of the origin, baseline and proposed networks;
- region share of the evidence: the mean, over held-out windows, of the share of the
  (normalised, true-class) evidence that falls on the knowledge region, every network
  explained with the evidence kind the proposed recovery used (``--evidence``; by default
  the model's own, see :mod:`skkgp.knowledge.evidence`)
  (:func:`skkgp.knowledge.evidence.guided_gradcam`, :func:`skkgp.knowledge.losses.region_share`);
- zero-evidence windows: the fraction of held-out windows whose evidence is all zero.
  Their share is the uniform one (``share_uniform``), so read the share beside it: a
  recovery that killed the evidence would show the uniform share, not a knowledge effect.

Windows are split by trial (no trial on both sides). Each seed draws its own simulated
subjects, split and initialisation; the table gives mean +- std over seeds and the
paired difference proposed - baseline. The data are a simulation
(:func:`skkgp.datasets.make_deap_like`), not DEAP.

Run ``python benchmarks/knowledge_effect.py`` (about 10 min on 2 CPU cores), or
``--help`` for the sizes; ``--device cuda`` on a GPU.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from skkgp import EEGClassifier, KnowledgeGuidedPruner
from skkgp.datasets import make_deap_like
from skkgp.knowledge.evidence import EVIDENCE_KINDS, guided_gradcam
from skkgp.knowledge.losses import DEFAULT_REGION_LOSS, REGION_LOSSES, region_share
from skkgp.layout import DEFAULT_REGION
from skkgp.pruning import prune
from skkgp.transforms import BandDifferentialEntropy, ChannelStandardizer, ToGrid

# CCNN with Adam at 1e-3 collapses to a constant predictor on these small data.
DEFAULT_LR = {"ccnn": 1e-4, "eegnet": 1e-3}


def _features(model: str):
    """Input pipeline of each model, fitted on the training windows only."""
    if model == "ccnn":
        return make_pipeline(
            BandDifferentialEntropy(), ChannelStandardizer(per_feature=True), ToGrid()
        )
    return make_pipeline(ChannelStandardizer())


def _share(net_or_module, X, y, mask, kind) -> tuple[float, float]:
    """Mean region share of the true-class evidence (of kind ``kind``), and the fraction of
    windows whose evidence is all zero (their share falls back to the uniform one)."""
    evidence = guided_gradcam(net_or_module, X, y, evidence=kind)
    dead = float(np.mean(evidence.sum(axis=1) == 0))
    return float(np.mean(region_share(evidence, mask))), dead


def run_cell(model, seed, args):
    data = make_deap_like(
        n_subjects=args.subjects,
        n_trials=args.trials,
        duration=args.duration,
        valence_effect=args.valence_effect,
        random_state=seed,
    )
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed)
    train, test = next(split.split(data.X, data.y, groups=data.trials))
    features = _features(model).fit(data.X[train])
    X_train, X_test = features.transform(data.X[train]), features.transform(data.X[test])
    y_train, y_test = data.y[train], data.y[test]

    net = EEGClassifier(
        model,
        lr=args.lr if args.lr is not None else DEFAULT_LR.get(model, 1e-3),
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
    )
    proposed = KnowledgeGuidedPruner(
        net,
        method="lfp",
        prune_ratio=0.5,
        region=args.region,
        region_weight=args.region_weight,
        sample_weighting=args.sample_weighting,
        region_loss=args.region_loss,
        evidence=args.evidence,
        recovery_epochs=args.recovery_epochs,
        random_state=seed,
    )
    start = time.perf_counter()
    proposed.fit(X_train, y_train)
    # The baseline: the same origin, pruned the same way, recovered with cross-entropy
    # only, with the same seed and hyper-parameters.
    module = copy.deepcopy(proposed.origin_module_)
    prune(module, "lfp", 0.5, torch.as_tensor(X_train[:2], device=args.device))
    params = net.get_params(deep=False)
    params.update(module=module, random_state=seed, max_epochs=args.recovery_epochs)
    baseline = EEGClassifier(**params).fit(X_train, y_train)  # trains the instance as given
    seconds = time.perf_counter() - start
    mask = proposed.region_mask_
    origin = proposed.origin_estimator_
    # Every network is explained with the evidence kind the proposed recovery steered.
    kind = proposed.estimator_.evidence_
    shares = {
        "origin": _share(origin, X_test, y_test, mask, kind),
        "baseline": _share(baseline, X_test, y_test, mask, kind),
        "proposed": _share(proposed.estimator_, X_test, y_test, mask, kind),
    }
    return {
        "model": model,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "acc_origin": origin.score(X_test, y_test),
        "acc_baseline": baseline.score(X_test, y_test),
        "acc_proposed": proposed.score(X_test, y_test),
        **{f"share_{name}": share for name, (share, _) in shares.items()},
        **{f"zero_evidence_{name}": dead for name, (_, dead) in shares.items()},
        "share_uniform": float(mask.mean()),
        "origin_constant": proposed.origin_is_constant_,
        "proposed_constant": proposed.recovered_is_constant_,
        "evidence": kind,
        "params_reduction": proposed.pruning_report_.params_reduction,
        "macs_reduction": proposed.pruning_report_.macs_reduction,
        "seconds": seconds,
    }


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def summarize(results: pd.DataFrame) -> str:
    rows = []
    for model, cell in results.groupby("model", sort=False):
        diff_share = cell["share_proposed"] - cell["share_baseline"]
        diff_acc = cell["acc_proposed"] - cell["acc_baseline"]
        rows.append(
            {
                "model": model,
                "seeds": len(cell),
                "acc origin": _mean_std(cell["acc_origin"]),
                "acc baseline": _mean_std(cell["acc_baseline"]),
                "acc proposed": _mean_std(cell["acc_proposed"]),
                "share origin": _mean_std(cell["share_origin"]),
                "share baseline": _mean_std(cell["share_baseline"]),
                "share proposed": _mean_std(cell["share_proposed"]),
                "Δshare (prop-base)": _mean_std(diff_share),
                "zero-evidence windows base": _mean_std(cell["zero_evidence_baseline"]),
                "zero-evidence windows prop": _mean_std(cell["zero_evidence_proposed"]),
                "Δacc (prop-base)": _mean_std(diff_acc),
                "uniform share": f"{cell['share_uniform'].iloc[0]:.3f}",
                "params -%": f"{cell['params_reduction'].mean():.1f}",
                "MACs -%": f"{cell['macs_reduction'].mean():.1f}",
            }
        )
    table = pd.DataFrame(rows).set_index("model").T
    return table.to_markdown() if _has_tabulate() else table.to_string()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["eegnet", "ccnn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--epochs", type=int, default=4, help="origin epochs")
    parser.add_argument("--recovery-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: per model")
    parser.add_argument("--valence-effect", type=float, default=1.0)
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--region-weight", type=float, default=1.0)
    parser.add_argument("--sample-weighting", type=float, default=1.0)
    parser.add_argument("--evidence", default="auto", choices=("auto", *EVIDENCE_KINDS),
                        help="evidence kind of the proposed recovery (default: per model)")
    parser.add_argument("--region-loss", default=DEFAULT_REGION_LOSS, choices=REGION_LOSSES,
                        help=f"region-wise loss variant (default {DEFAULT_REGION_LOSS})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="CSV file for the per-seed results")
    args = parser.parse_args(argv)

    rows = []
    for model in args.models:
        for seed in args.seeds:
            row = run_cell(model, seed, args)
            rows.append(row)
            print(
                f"{model:7s} seed {seed}: acc origin/baseline/proposed "
                f"{row['acc_origin']:.3f}/{row['acc_baseline']:.3f}/{row['acc_proposed']:.3f}"
                f"  share baseline/proposed {row['share_baseline']:.3f}/"
                f"{row['share_proposed']:.3f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
    results = pd.DataFrame(rows)
    if args.out:
        results.to_csv(args.out, index=False)
    if results["origin_constant"].any():
        print("WARNING: some origins predicted a single class (see origin_constant).")
    if results["proposed_constant"].any():
        print("WARNING: some proposed recoveries collapsed to a single class "
              "(see proposed_constant).")
    print()
    print(
        f"LFP at 0.5, region {args.region!r}, held-out trials, mean ± std over seeds "
        f"{args.seeds}; region_weight={args.region_weight}, sample_weighting={args.sample_weighting}"
        f", region_loss={args.region_loss!r}, evidence={args.evidence!r}"
    )
    print(summarize(results))
    return results


if __name__ == "__main__":
    main()
