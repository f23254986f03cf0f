"""Computing the (cell, fold) results of a ``skkgp reproduce`` run, here or on Dask.

One task is one (cell, fold): on the fold's training windows it fits two
:class:`skkgp.KnowledgeGuidedPruner` that differ only in the recovery loss, baseline
(``region_weight=0, sample_weight=0``: plain cross-entropy) and proposed, and scores
origin, baseline and proposed on the held-out windows. Both pruners get the same
``random_state``, so they train the same origin, prune it the same way and differ
only by the knowledge-guided terms: a paired comparison.

:func:`run_task` is a pure function of its :class:`Task`: the same task gives the same
result in this process, in a resumed run, and on a Dask worker.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skkgp.reproduce.config import Cell, ReproduceConfig, method_family, stable_seed
from skkgp.reproduce.data import DataSpec, fold_indices, load_windows, model_inputs

__all__ = ["Task", "run_task", "run_sequential", "run_dask", "EVIDENCE_SAMPLES"]

#: Held-out windows whose evidence is averaged for the topomaps (a fixed subsample:
#: the mean over a few hundred windows is stable, and Grad-CAM costs a backward each).
EVIDENCE_SAMPLES = 256


@dataclass(frozen=True)
class Task:
    """One (cell, fold) of a run, with everything needed to compute it anywhere."""

    config: ReproduceConfig
    cell: Cell
    fold: int
    progress: bool = False

    @property
    def seed(self) -> int:
        # Same seed for every method of one origin family, so that the origins of
        # LFP, UMWP and SFP on one fold are the same network.
        return stable_seed(
            self.config.seed, self.cell.model, method_family(self.cell.method), self.fold
        )


def _estimator(task: Task):
    from skkgp import EEGClassifier

    config = task.config
    callbacks = []
    if task.progress:
        from skkgp.reproduce.progress import EpochBar

        callbacks.append(("epoch_bar", EpochBar(desc=f"{task.cell.key} fold {task.fold}")))
    return EEGClassifier(
        task.cell.model,
        lr=config.learning_rate(task.cell.model),
        max_epochs=config.epochs,
        batch_size=config.batch_size,
        device=config.device,
        random_state=task.seed,
        callbacks=callbacks or None,
    )


def _pruner(task: Task, *, proposed: bool, ch_names):
    from skkgp import KnowledgeGuidedPruner

    config = task.config
    region = config.region if isinstance(config.region, str) else list(config.region)
    return KnowledgeGuidedPruner(
        _estimator(task),
        method=task.cell.method,
        prune_ratio=config.prune_ratio,
        recovery=task.cell.recovery,
        region=region,
        region_weight=config.region_weight if proposed else 0.0,
        sample_weight=config.sample_weight if proposed else 0.0,
        recovery_epochs=config.recovery_epochs,
        ch_names=ch_names,
        random_state=task.seed,
    )


def electrode_evidence(module, X: np.ndarray, cells: np.ndarray | None) -> np.ndarray:
    """Mean evidence share per electrode over the windows ``X``.

    Each window's Grad-CAM evidence is normalised to sum 1 (uniform where it is all
    zero), as the knowledge-guided losses do, then averaged over windows.

    Returns
    -------
    share : ndarray, shape (n_electrodes,)
        Non-negative, sums to 1.
    """
    from skkgp.evidence import guided_gradcam

    kwargs = {} if cells is None else {"cells": cells}
    evidence = np.asarray(guided_gradcam(module, X, **kwargs), dtype=float)
    evidence = np.clip(evidence, 0.0, None)
    totals = evidence.sum(axis=1, keepdims=True)
    uniform = np.full_like(evidence, 1.0 / evidence.shape[1])
    shares = np.where(totals > 0, evidence / np.where(totals > 0, totals, 1.0), uniform)
    return shares.mean(axis=0)


def _counts(report) -> dict[str, Any]:
    """Params and FLOPs before/after; non-zero counts where pruning only masks weights."""
    masked = report.method == "umwp"
    params_after = report.nonzero_params_after if masked else report.params_after
    macs_after = report.nonzero_macs_after if masked else report.macs_after
    return {
        "params_before": int(report.params_before),
        "params_after": int(report.params_after),
        "nonzero_params_after": int(report.nonzero_params_after),
        "macs_before": int(report.macs_before),
        "macs_after": int(report.macs_after),
        "nonzero_macs_after": int(report.nonzero_macs_after),
        "flops_before": 2 * int(report.macs_before),
        # FLOPs = 2 x MACs, as the paper counts them.
        "flops_after": 2 * int(macs_after),
        "params_reduction": 100.0 * (1.0 - params_after / report.params_before),
        "flops_reduction": 100.0 * (1.0 - macs_after / report.macs_before),
    }


def run_task(task: Task) -> dict[str, Any]:
    """Compute one (cell, fold): origin, pruning, baseline and proposed recovery.

    Parameters
    ----------
    task : Task

    Returns
    -------
    result : dict
        The columns of :data:`skkgp.reproduce.report.RESULT_COLUMNS` plus
        ``"evidence"`` (electrode names, region mask and the mean evidence share per
        electrode of origin, baseline and proposed models on held-out windows).
    """
    import torch

    from skkgp.models import get_model_class
    from skkgp.pruner import ConstantPredictorWarning

    config, cell = task.config, task.cell
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    spec = DataSpec.from_config(config)
    bunch = load_windows(spec)
    input_kind = get_model_class(cell.model).input_kind
    y = np.asarray(bunch.y)
    train, test = fold_indices(config, bunch, task.fold)
    X_train, X_test = model_inputs(spec, input_kind, train, test)
    y_train, y_test = y[train], y[test]
    ch_names = list(bunch.ch_names)

    fitted = {}
    for name, proposed in (("baseline", False), ("proposed", True)):
        pruner = _pruner(task, proposed=proposed, ch_names=ch_names)
        with warnings.catch_warnings():
            # A collapsed origin is recorded in the result and flagged in the table.
            warnings.simplefilter("ignore", ConstantPredictorWarning)
            fitted[name] = pruner.fit(X_train, y_train)
    baseline, proposed = fitted["baseline"], fitted["proposed"]

    picks = np.random.default_rng(task.seed).permutation(len(test))[:EVIDENCE_SAMPLES]
    picks.sort()
    cells = None
    if input_kind == "grid":
        from skkgp.montage import grid_cells

        cells = np.asarray(grid_cells(list(baseline.electrodes_)))
    modules = {
        "origin": baseline.origin_module_,
        "baseline": baseline.estimator_.module_,
        "proposed": proposed.estimator_.module_,
    }
    evidence = {
        name: electrode_evidence(module, X_test[picks], cells) for name, module in modules.items()
    }
    region = np.asarray(baseline.region_mask_, dtype=bool)

    result: dict[str, Any] = {
        "model": cell.model,
        "method": cell.method,
        "recovery": cell.recovery,
        "fold": task.fold,
        "n_train": len(train),
        "n_test": len(test),
        "origin_accuracy": float(baseline.origin_estimator_.score(X_test, y_test)),
        "baseline_accuracy": float(baseline.score(X_test, y_test)),
        "proposed_accuracy": float(proposed.score(X_test, y_test)),
        **_counts(baseline.pruning_report_),
        "origin_constant": bool(baseline.origin_is_constant_),
        # Both pruners train their own origin with one seed: on CPU they are the same
        # network (a paired comparison); a GPU's non-deterministic kernels may differ.
        "origins_identical": bool(np.array_equal(
            baseline.origin_estimator_.predict_proba(X_test),
            proposed.origin_estimator_.predict_proba(X_test),
        )),
        "seed": task.seed,
    }
    for name, share in evidence.items():
        result[f"{name}_region_share"] = float(share[region].sum())
    result["evidence"] = {
        "ch_names": [str(c) for c in baseline.electrodes_],
        "region": region.tolist(),
        **{name: share.tolist() for name, share in evidence.items()},
    }
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def run_sequential(
    tasks: Iterable[Task], on_result: Callable[[Task, dict[str, Any]], None]
) -> None:
    """Compute ``tasks`` one after the other in this process, reporting each result."""
    for task in tasks:
        on_result(task, run_task(task))


def run_dask(
    tasks: list[Task], on_result: Callable[[Task, dict[str, Any]], None], address: str
) -> None:
    """Compute ``tasks`` on the Dask cluster at ``address``, reporting each as it ends.

    Results come back to this process, which stores them: workers need the data (a
    DEAP folder at the same path, or nothing for synthetic data) but no access to
    ``--out``.
    """
    try:
        from distributed import Client, as_completed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "--scheduler needs dask.distributed: pip install 'skkgp[distributed]'."
        ) from error
    with Client(address, set_as_default=False) as client:
        # pure=False: a task's key must not be reused from an earlier run's cache.
        futures = {client.submit(run_task, task, pure=False): task for task in tasks}
        # as_completed needs the client's loop: it is not the default client.
        for future in as_completed(futures, loop=client.loop):
            on_result(futures[future], future.result())
