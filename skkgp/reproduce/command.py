"""The whole ``skkgp reproduce`` run: check, resume, compute, then write table and plots."""

from __future__ import annotations

import contextlib
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from skkgp._atomic import atomic_write_text
from skkgp.reproduce.config import DATASETS, Cell, ConfigError, ReproduceConfig
from skkgp.reproduce.data import (
    LEAKAGE_WARNING,
    DataSpec,
    check_data_path,
    check_folds,
    input_shape,
    load_windows,
    n_folds,
)
from skkgp.reproduce.report import (
    EVIDENCE_NAMES,
    LEGEND,
    cell_label,
    comparisons_frame,
    evidence_note,
    format_table,
    results_frame,
    summarize,
    verdicts,
)
from skkgp.reproduce.runner import (
    OriginGroup,
    connect,
    group_pending,
    run_dask,
    run_sequential,
)
from skkgp.reproduce.store import ResultStore, evidence_plot_name

__all__ = ["Outcome", "reproduce"]


@dataclass
class Outcome:
    """What a run did.

    Attributes
    ----------
    computed : int
        (cell, seed, fold) results computed by this run.
    reused : int
        (cell, seed, fold) results found in ``--out`` from an earlier run and not
        recomputed.
    summary : DataFrame
        One row per cell (see :func:`skkgp.reproduce.report.summarize`).
    table : str
        The printed table, its legend and one verdict line per cell.
    files : list of Path
        Files written in ``--out``.
    """

    computed: int
    reused: int
    summary: pd.DataFrame
    table: str
    files: list[Path]


def reproduce(
    config: ReproduceConfig,
    out: str | Path,
    *,
    scheduler: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> Outcome:
    """Run (or resume) the grid of ``config`` over its seeds into the folder ``out``.

    Parameters
    ----------
    config : ReproduceConfig
        The run's options.
    out : path-like
        Output folder; finished (cell, seed, fold) results found there are reused.
    scheduler : str or None, default=None
        Address of a Dask scheduler to send the work to, one task per origin (model,
        origin family, fold).
    overwrite : bool, default=False
        Delete results of a different configuration found in ``out``.
    quiet : bool, default=False
        No progress bars and no information lines.
    stream : text stream, default=sys.stdout
        Where the table goes.

    Returns
    -------
    outcome : Outcome

    Raises
    ------
    ConfigError
        Bad data folder, too many folds for the data, ``--workers`` that do not fit the
        device, no scheduler at ``scheduler``, or ``out`` holding results of another
        configuration. Raised before anything in ``out`` is written or deleted.
    """
    stream = sys.stdout if stream is None else stream
    if not config.synthetic:
        check_data_path(config.data, config.dataset)
    folds = None
    for seed in config.seeds:
        seeded = config.for_seed(seed)
        bunch = load_windows(DataSpec.from_config(seeded))
        _check_region(seeded, bunch.ch_names)
        folds = n_folds(seeded, bunch)
        check_folds(seeded.replace(folds=folds), bunch)
    config = config.replace(folds=folds)
    if config.protocol == "paper":
        print(f"skkgp reproduce: warning: {LEAKAGE_WARNING}", file=sys.stderr)

    if scheduler is None and config.workers > 1:
        for message in _check_workers(config, bunch):
            print(f"skkgp reproduce: warning: {message}", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        # Every check that can fail comes before ``out`` is claimed (and, with
        # overwrite, cleared): a refused run leaves it as it was.
        client = None if scheduler is None else stack.enter_context(connect(scheduler))
        store = ResultStore(out)
        store.open(config, overwrite=overwrite)
        cells = config.cells()
        keys = [(cell, seed, fold) for seed in config.seeds for cell in cells
                for fold in range(config.folds)]
        pending = [key for key in keys if not store.has(*key)]
        total = len(keys)
        reused = total - len(pending)
        if not quiet:
            print(f"skkgp reproduce: {len(cells)} cells x {len(config.seeds)} seeds x "
                  f"{config.folds} folds into {store.out}"
                  + (f" ({reused} finished results reused)" if reused else ""), file=sys.stderr)

        # Epoch bars of several processes would overwrite each other's line.
        show_epochs = not quiet and scheduler is None and config.workers == 1
        # One origin trained per (seed, model, origin family, fold) with missing results,
        # shared by every missing cell that prunes it.
        groups = [
            group
            for seed in config.seeds
            for group in group_pending(
                config.for_seed(seed),
                [(cell, fold) for cell, s, fold in pending if s == seed],
                progress=show_epochs,
            )
        ]
        computed = _compute(groups, store, client=client, quiet=quiet, total=total,
                            done=reused, config=config)

    results = [_load(store, config, *key) for key in keys]
    frame = results_frame(results)
    summary = summarize(frame, cells)
    table = "\n".join([format_table(summary), "", textwrap.fill(LEGEND, width=100),
                       evidence_note(summary), "", *verdicts(summary)])
    files = _write_outputs(config, store, frame, summary,
                           int(np.unique(np.asarray(bunch.y)).size),
                           [(cell, result) for (cell, _, _), result in zip(keys, results,
                                                                            strict=True)])
    _log(store, f"computed {computed} and reused {reused} of {total} (cell, seed, fold) "
                "results")
    print(table, file=stream)
    if not quiet:
        print(f"\nskkgp reproduce: computed {computed}, reused {reused} of {total} "
              f"(cell, seed, fold) results; wrote "
              f"{', '.join(p.name for p in files if not p.name.startswith('evidence-'))} "
              f"and {sum(p.name.startswith('evidence-') for p in files)} evidence plots in "
              f"{store.out}", file=sys.stderr)
    return Outcome(computed, reused, summary, table, files)


def _load(store: ResultStore, config: ReproduceConfig, cell: Cell, seed: int,
          fold: int) -> dict:
    result = store.load(cell, seed, fold)
    # Results stored before these columns existed: their values are known.
    result.setdefault("ratio", config.ratio_of(cell))
    if result.get("evidence_kind") is None:
        from skkgp.models import get_model_class

        result["evidence_kind"] = get_model_class(cell.model).evidence.auto
    return result


def _check_region(config: ReproduceConfig, ch_names) -> None:
    from skkgp.layout import region_mask

    region = config.region if isinstance(config.region, str) else list(config.region)
    try:
        region_mask(region, list(ch_names))
    except ValueError as error:
        raise ConfigError(f"--region {_region_label(config)}: {error}") from None


def _check_workers(config: ReproduceConfig, bunch) -> list[str]:
    from skkgp.reproduce.parallel import check_workers

    shapes = {model: input_shape(model, bunch, config.dataset) for model in config.models}
    n_classes = int(np.unique(np.asarray(bunch.y)).size)
    # The results still missing are not known before ``out`` is opened.
    return check_workers(config, _grid_workers(config), shapes, n_classes, len(bunch.y))


def _grid_workers(config: ReproduceConfig) -> int:
    """Workers the whole grid starts: one per origin group (seed, model, origin type, fold)
    at most."""
    every = [(cell, fold) for cell in config.cells() for fold in range(config.folds)]
    return min(config.workers, len(config.seeds) * len(group_pending(config, every)))


def _compute(groups: list[OriginGroup], store: ResultStore, *, client, quiet: bool,
             total: int, done: int, config: ReproduceConfig) -> int:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, desc="cells x seeds x folds", position=0,
               disable=quiet, dynamic_ncols=True)
    count = 0

    def on_result(cell: Cell, seed: int, fold: int, result: dict) -> None:
        nonlocal count
        # Saved the moment it exists: an interruption from here on loses nothing.
        store.save(cell, seed, fold, result)
        count += 1
        bar.set_postfix_str(f"{cell.key} seed {seed} fold {fold}", refresh=False)
        bar.update(1)

    try:
        if client is not None:
            run_dask(groups, on_result, client)
        elif config.workers > 1:
            from skkgp.reproduce.parallel import run_parallel, worker_threads

            # The threads are those of the whole grid's workers, not of the fewer that a
            # resumed run may start: torch splits its float sums by the thread count, so
            # other threads would give a recomputed result that differs in rounding.
            run_parallel(groups, on_result, min(config.workers, len(groups)),
                         threads=worker_threads(config, _grid_workers(config)))
        else:
            run_sequential(groups, on_result)
    finally:
        bar.close()
    return count


def _mean_evidence(results: list[tuple[Cell, dict]], cell: Cell) -> dict | None:
    # A collapsed origin is left out here as in the table: its pair compares nothing.
    folds = [result["evidence"] for of, result in results
             if of == cell and not result.get("origin_constant", False)]
    if not folds:
        return None
    mean = {name: np.mean([f[name] for f in folds], axis=0)
            for name in ("origin", "baseline", "proposed")}
    return {"ch_names": folds[0]["ch_names"], "region": np.asarray(folds[0]["region"]), **mean}


def _write_outputs(config: ReproduceConfig, store: ResultStore, frame: pd.DataFrame,
                   summary: pd.DataFrame, n_classes: int,
                   results: list[tuple[Cell, dict]]) -> list[Path]:
    from skkgp.reproduce.plots import plot_accuracy, plot_evidence, plot_pareto

    out = store.out
    csv_path = out / "results.csv"
    atomic_write_text(csv_path, frame.to_csv(index=False))
    md_path = out / "table.md"
    atomic_write_text(md_path, _markdown(config, summary))
    comparison_path = out / "comparison.csv"
    atomic_write_text(comparison_path, comparisons_frame(summary).to_csv(index=False))
    accuracy_path = plot_accuracy(summary, out / "accuracy.png", n_classes=n_classes)
    files = [csv_path, md_path, comparison_path, accuracy_path]
    if config.ratios is not None and not frame.empty:
        files.append(plot_pareto(frame, out / "pareto.png"))
    kinds = {cell: result["evidence_kind"] for cell, result in results}
    for cell in config.cells():
        evidence = _mean_evidence(results, cell)
        if evidence is None:
            continue
        shares = {name: float(evidence[name][evidence["region"]].sum())
                  for name in ("origin", "baseline", "proposed")}
        files.append(plot_evidence(
            evidence, evidence["ch_names"], evidence["region"],
            out / evidence_plot_name(cell),
            title=f"{cell_label(vars(cell))}: mean held-out "
                  f"{EVIDENCE_NAMES.get(kinds[cell], kinds[cell])} evidence (region "
                  f"{_region_label(config)} marked)",
            shares=shares,
        ))
    return files


def _region_label(config: ReproduceConfig) -> str:
    return config.region if isinstance(config.region, str) else ",".join(config.region)


def _markdown(config: ReproduceConfig, summary: pd.DataFrame) -> str:
    data = (f"simulated DEAP-like EEG (skkgp.datasets.make_deap_like, scenario "
            f"{config.scenario})") if config.synthetic \
        else f"{DATASETS[config.dataset].description} at {config.data}"
    lines = [
        "# skkgp reproduce: Table 1",
        "",
        f"Data: {data}; target {config.target}; protocol `{config.protocol}` with "
        f"{config.folds} folds; "
        + (f"prune ratio {config.prune_ratio}" if config.ratios is None
           else f"prune ratios {', '.join(f'{r:g}' for r in config.ratios)}")
        + (f" (umwp scope {config.umwp_scope})" if "umwp" in config.methods else "")
        + "; region "
        f"`{_region_label(config)}` (proposed: region weight {config.region_weight}, sample "
        f"weight {config.sample_weighting}); {config.epochs} origin epochs, "
        f"{config.recovery_epochs} recovery epochs; Adam, batch {config.batch_size}, lr "
        + ", ".join(f"{m} {config.learning_rate(m):g}" for m in config.models)
        + f"; seeds {', '.join(str(s) for s in config.seeds)}. Inputs standardised per "
        "channel on each training fold.",
        "",
        format_table(summary, markdown=True),
        "",
        LEGEND,
        "",
        evidence_note(summary),
        "",
        *(f"- {line}" for line in verdicts(summary)),
    ]
    if config.protocol == "paper":
        lines += ["", f"**Warning:** {LEAKAGE_WARNING}"]
    if config.skipped:
        lines += ["", "Not applicable, left out: " + ", ".join(config.skipped) + "."]
    return "\n".join(lines) + "\n"


def _log(store: ResultStore, message: str) -> None:
    # Appending a line is enough here: the log is informative, the results live in cells/.
    with open(store.out / "run.log", "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
