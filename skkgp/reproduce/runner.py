"""Computing the (cell, fold) results of a ``skkgp reproduce`` run, here or on Dask.

The unit of work is an :class:`OriginGroup`: the cells of one model whose pruning
methods prune the same kind of origin (plainly trained, or trained with network
slimming's sparsity term for ``nsfp``), on one fold. :func:`run_group` trains that
origin once on the fold's training windows, then for each cell fits two
:class:`skkgp.KnowledgeGuidedPruner` with ``prefit=True`` on it that differ only in
the recovery loss, baseline (``region_weight=0, sample_weighting=0``: plain
cross-entropy) and proposed, and scores origin, baseline and proposed on the
held-out windows. Both pruners prune the same origin with the same ``random_state``
and differ only by the knowledge-guided terms: a paired comparison.

Each cell's result is exactly what a pruner fitting its own origin with the group's
seed would give (same seed, same origin), so grouping changes the run time, not the
results. :func:`run_group` is a pure function of its group: the same group gives the
same results in this process, in a resumed run, and on a Dask worker.

skorch ends a fit early on ``KeyboardInterrupt`` and returns as if it had finished;
:func:`run_group` notes Ctrl-C itself and raises ``KeyboardInterrupt`` after such a fit,
so that an under-trained cell is never reported as finished.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skkgp.reproduce.config import (
    DATASETS,
    Cell,
    ConfigError,
    ReproduceConfig,
    method_family,
    stable_seed,
)
from skkgp.reproduce.data import DataSpec, fold_indices, load_windows, model_inputs
from skkgp.reproduce.interrupt import InterruptWatch

__all__ = [
    "OriginGroup",
    "group_pending",
    "run_group",
    "run_sequential",
    "connect",
    "run_dask",
    "electrode_evidence",
    "EVIDENCE_SAMPLES",
]

#: Held-out windows whose evidence is averaged for the topomaps (a fixed subsample:
#: the mean over a few hundred windows is stable, and Grad-CAM costs a backward each).
EVIDENCE_SAMPLES = 256

#: Called with each finished (cell, seed, fold) result, the moment it exists.
OnResult = Callable[[Cell, int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class OriginGroup:
    """The cells of one model and origin family on one fold: one origin, one task.

    Attributes
    ----------
    config : ReproduceConfig
        The run's configuration for one seed (:meth:`ReproduceConfig.for_seed`).
    model : str
    family : str
        Which origin training the cells need
        (:func:`skkgp.reproduce.config.method_family`): ``"plain"``, or the name of
        a method whose origin trains with callbacks of its own (``"nsfp"``).
    fold : int
    cells : tuple of Cell
        The cells to compute, all of ``model`` and of methods of ``family``.
    progress : bool
        Show a progress bar over the epochs of each training.
    """

    config: ReproduceConfig
    model: str
    family: str
    fold: int
    cells: tuple[Cell, ...]
    progress: bool = False

    @property
    def seed(self) -> int:
        # One seed per (model, family, fold): the origin, the pruning and the recoveries
        # of every cell of the group draw from it.
        return stable_seed(self.config.seed, self.model, self.family, self.fold)

    @property
    def label(self) -> str:
        return f"{self.model} {self.family} origin seed {self.config.seed} fold {self.fold}"


def group_pending(
    config: ReproduceConfig, pending: Iterable[tuple[Cell, int]], *, progress: bool = False
) -> list[OriginGroup]:
    """Group the missing (cell, fold) results by the origin they prune.

    Parameters
    ----------
    config : ReproduceConfig
    pending : iterable of (Cell, int)
        The (cell, fold) results to compute, in the order they should be computed.
    progress : bool, default=False
        Passed to each group.

    Returns
    -------
    groups : list of OriginGroup
        In order of the first pending result of each group; within a group the cells
        keep their order. Only origins of missing results are trained.
    """
    cells_of: dict[tuple[str, str, int], list[Cell]] = {}
    for cell, fold in pending:
        key = (cell.model, method_family(cell.method), fold)
        cells_of.setdefault(key, []).append(cell)
    return [
        OriginGroup(config, model, family, fold, tuple(cells), progress=progress)
        for (model, family, fold), cells in cells_of.items()
    ]


def _origin(group: OriginGroup):
    """The unfitted origin network of ``group``: what a pruner would fit itself."""
    from skkgp import EEGClassifier
    from skkgp.pruning import get_method

    config = group.config
    callbacks: list = []
    if group.progress:
        from skkgp.reproduce.progress import EpochBar

        desc = f"{group.model} seed {config.seed} fold {group.fold}"
        callbacks.append(("epoch_bar", EpochBar(desc=desc)))
    # The cells of a group share their method's origin training: append its own
    # callbacks, as KnowledgeGuidedPruner does to the origin it fits.
    callbacks.extend(get_method(group.cells[0].method).origin_callbacks())
    return EEGClassifier(
        group.model,
        lr=config.learning_rate(group.model),
        max_epochs=config.epochs,
        batch_size=config.batch_size,
        device=config.device,
        cuda_graphs=config.cuda_graphs,
        random_state=group.seed,
        callbacks=callbacks or None,
    )


def _pruner(group: OriginGroup, origin, cell: Cell, *, proposed: bool, ch_names):
    from skkgp import KnowledgeGuidedPruner

    config = group.config
    region = config.region if isinstance(config.region, str) else list(config.region)
    return KnowledgeGuidedPruner(
        origin,
        method=cell.method,
        prune_ratio=config.ratio_of(cell),
        method_options=config.method_options(cell.method),
        recovery=cell.recovery,
        region=region,
        region_weight=config.region_weight if proposed else 0.0,
        sample_weighting=config.sample_weighting if proposed else 0.0,
        recovery_epochs=config.recovery_epochs,
        ch_names=ch_names,
        layout=DATASETS[config.dataset].layout,
        random_state=group.seed,
        prefit=True,
    )


def electrode_evidence(module, X: np.ndarray, cells: np.ndarray | None) -> np.ndarray:
    """Mean evidence share per electrode over the windows ``X``.

    Each window's evidence (of the kind ``evidence="auto"`` picks for the model, the one
    its knowledge-guided recovery used) is normalised to sum 1 (uniform where it is all
    zero), as the knowledge-guided losses do, then averaged over windows.

    Returns
    -------
    share : ndarray, shape (n_electrodes,)
        Non-negative, sums to 1.
    """
    from skkgp.knowledge.evidence import guided_gradcam

    kwargs = {} if cells is None else {"cells": cells}
    evidence = np.asarray(guided_gradcam(module, X, **kwargs), dtype=float)
    evidence = np.clip(evidence, 0.0, None)
    totals = evidence.sum(axis=1, keepdims=True)
    uniform = np.full_like(evidence, 1.0 / evidence.shape[1])
    shares = np.where(totals > 0, evidence / np.where(totals > 0, totals, 1.0), uniform)
    return shares.mean(axis=0)


def _counts(report) -> dict[str, Any]:
    """Params and FLOPs before/after in skkgp's realized counts and the paper's convention.

    Realized: non-zero counts where pruning only masks weights, FLOPs = 2 x MACs of the
    conv and linear layers. Paper: :func:`skkgp.pruning.count_paper_params` and
    :func:`skkgp.pruning.count_paper_flops` (for sfp, of the soft-pruned network).
    """
    params_after = report.params_after if report.structural else report.nonzero_params_after
    macs_after = report.macs_after if report.structural else report.nonzero_macs_after
    return {
        "method_options": " ".join(f"{k}={v}" for k, v in report.method_options.items()),
        "params_before": int(report.params_before),
        "params_after": int(report.params_after),
        "nonzero_params_after": int(report.nonzero_params_after),
        "macs_before": int(report.macs_before),
        "macs_after": int(report.macs_after),
        "nonzero_macs_after": int(report.nonzero_macs_after),
        "flops_before": 2 * int(report.macs_before),
        "flops_after": 2 * int(macs_after),
        "params_reduction": 100.0 * (1.0 - params_after / report.params_before),
        "flops_reduction": 100.0 * (1.0 - macs_after / report.macs_before),
        "paper_params_before": int(report.paper_params_before),
        "paper_params_after": int(report.paper_params_after),
        "paper_flops_before": int(report.paper_flops_before),
        "paper_flops_after": int(report.paper_flops_after),
        "paper_params_reduction": float(report.paper_params_reduction),
        "paper_flops_reduction": float(report.paper_flops_reduction),
    }


def run_group(group: OriginGroup, on_result: OnResult | None = None) -> list[dict[str, Any]]:
    """Train the group's origin once, then compute each of its cells on it.

    Parameters
    ----------
    group : OriginGroup
    on_result : callable or None, default=None
        Called as ``on_result(cell, seed, fold, result)`` as soon as each cell is done, so
        that a caller in this process can save it before the next cell starts.

    Returns
    -------
    results : list of dict, one per cell of ``group.cells``, in that order
        The columns of :data:`skkgp.reproduce.report.RESULT_COLUMNS` plus
        ``"evidence"`` (electrode names, region mask and the mean evidence share per
        electrode of origin, baseline and proposed models on held-out windows).
    """
    import torch

    from skkgp.models import get_model_class
    from skkgp.pruner import ConstantPredictorWarning

    config = group.config
    if config.threads:
        torch.set_num_threads(config.threads)
    spec = DataSpec.from_config(config)
    bunch = load_windows(spec)
    input_kind = get_model_class(group.model).input_kind
    y = np.asarray(bunch.y)
    train, test = fold_indices(config, bunch, group.fold)
    X_train, X_test = model_inputs(spec, input_kind, train, test)
    y_train, y_test = y[train], y[test]
    data = _FoldData(X_train, y_train, X_test, y_test, list(bunch.ch_names), input_kind)

    results = []
    with InterruptWatch() as watch:
        start = time.perf_counter()
        origin = _origin(group).fit(X_train, y_train)
        watch.check()
        origin_seconds = round(time.perf_counter() - start, 3)
        for cell in group.cells:
            with warnings.catch_warnings():
                # A collapsed origin is recorded in the result and flagged in the table.
                warnings.simplefilter("ignore", ConstantPredictorWarning)
                result = _run_cell(group, origin, cell, data, watch)
            result["origin_seconds"] = origin_seconds
            if on_result is not None:
                on_result(cell, config.seed, group.fold, result)
            results.append(result)
    return results


@dataclass(frozen=True)
class _FoldData:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    ch_names: Sequence[str]
    input_kind: str


def _run_cell(group: OriginGroup, origin, cell: Cell, data: _FoldData,
              watch: InterruptWatch) -> dict[str, Any]:
    """Prune the fitted ``origin`` for ``cell``, recover it both ways, and score all three."""
    from skkgp.pruning import LayerCollapseError

    start = time.perf_counter()
    X_train, y_train, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    baseline, proposed = (
        _pruner(group, origin, cell, proposed=False, ch_names=data.ch_names),
        _pruner(group, origin, cell, proposed=True, ch_names=data.ch_names),
    )
    for pruner in (baseline, proposed):
        try:
            pruner.fit(X_train, y_train)
        except LayerCollapseError as error:
            # The ratio is an option of the run: a bad option, not a crash (exit status 2,
            # the same in this process, in a --workers process and on Dask).
            # Advice in the command line's terms, not the Python API's.
            option = "--prune-ratio" if cell.ratio is None else "--ratios"
            advice = (f"pass at most {error.usable_ratio:g}" if error.largest_ratio > 0
                      else "no ratio leaves every layer a weight")
            raise ConfigError(
                f"{option} {group.config.ratio_of(cell):g} is too large for {cell.model} "
                f"with {cell.method} (seed {group.config.seed}, fold {group.fold}): it "
                f"would mask every weight of {', '.join(error.layers)}, which would then "
                f"output a constant; {advice}."
            ) from error
        watch.check()

    picks = np.random.default_rng(group.seed).permutation(len(y_test))[:EVIDENCE_SAMPLES]
    picks.sort()
    cells = None
    if data.input_kind == "grid":
        from skkgp.layout import grid_cells

        cells = np.asarray(grid_cells(list(baseline.electrodes_),
                                      layout=DATASETS[group.config.dataset].layout))
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
        "ratio": group.config.ratio_of(cell),
        "fold": group.fold,
        "seed": group.config.seed,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "origin_train_accuracy": float(baseline.origin_score_),
        "origin_accuracy": float(baseline.origin_estimator_.score(X_test, y_test)),
        "baseline_accuracy": float(baseline.score(X_test, y_test)),
        "proposed_accuracy": float(proposed.score(X_test, y_test)),
        **_counts(baseline.pruning_report_),
        "origin_constant": bool(baseline.origin_is_constant_),
        # The kind electrode_evidence computes too: the model's declared one.
        "evidence_kind": str(proposed.estimator_.evidence_),
        "random_state": group.seed,
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


def run_sequential(groups: Iterable[OriginGroup], on_result: OnResult) -> None:
    """Compute ``groups`` one after the other in this process, reporting each result.

    Each (cell, seed, fold) result is reported the moment it is done, before the next cell
    of its group starts.
    """
    for group in groups:
        run_group(group, on_result)


def connect(address: str):
    """A client of the Dask scheduler at ``address``, to pass to :func:`run_dask`.

    Raises
    ------
    ConfigError
        When dask.distributed is missing, the address is malformed, or no scheduler
        answers there (in ``distributed.comm.timeouts.connect``).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "--scheduler needs dask.distributed: pip install -e \".[distributed]\" in "
            "skkgp's checkout."
        ) from None
    try:
        return Client(address, set_as_default=False)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            f"--scheduler {address}: no Dask scheduler to connect to ({error}). Start one "
            "(`dask scheduler`, then `dask worker ADDRESS`) or correct the address."
        ) from None


def run_dask(groups: list[OriginGroup], on_result: OnResult, client) -> None:
    """Compute ``groups`` on the Dask cluster of ``client``, one task per group.

    The results of a group come back to this process when the group ends, and are
    reported (and stored by the caller) one (cell, fold) at a time: workers need the
    data (a DEAP folder at the same path, or nothing for synthetic data) but no
    access to ``--out``. An interrupted run loses the groups in flight. A worker that
    dies loses nothing: a task's group is in its own arguments, not scattered data, so
    the scheduler reruns the task elsewhere.

    Parameters
    ----------
    groups : list of OriginGroup
    on_result : callable
    client : distributed.Client
        From :func:`connect`; it is not the default client.
    """
    from distributed import as_completed

    # pure=False: a task's key must not be reused from an earlier run's cache.
    futures = {client.submit(run_group, group, pure=False): group for group in groups}
    # as_completed needs the client's loop: it is not the default client.
    for future in as_completed(futures, loop=client.loop):
        group = futures[future]
        for cell, result in zip(group.cells, future.result(), strict=True):
            on_result(cell, group.config.seed, group.fold, result)
