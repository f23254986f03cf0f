"""What a ``skkgp reproduce`` run will cost, before it starts: ``--dry-run``.

The run's work is counted from its grid (origin groups, folds, training windows per
fold, epochs, batch size) and priced with training steps of each model timed on this
machine and device: a plain step and a knowledge-guided step of ``EEGClassifier.fit``
and :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier.fit`, and a prediction
batch, each on random inputs of the model's shape after a warm-up epoch.

- Origin group: ``epochs x steps`` plain steps, then per cell ``recovery_epochs x
  steps`` plain steps (baseline) and as many knowledge-guided steps (proposed), the
  predictions that score the three networks (and, in each of the two pruners, the
  origin and the recovered network on the training windows), and the evidence of the
  topomaps.
  Recovery steps are priced at the unpruned network's cost: an upper bound for
  structured pruning (LFP at ``--full``'s ratio 0.1 keeps 81 % of CCNN's MACs).
- 1 worker: the groups one after the other, plus preparing the data once.
- N workers: the steps are timed again in N processes at once (no more than the
  groups; none when they do not fit the device's memory), each with its share of
  the cores (the device is shared, so each runs slower than alone); the groups are
  dealt out as :func:`skkgp.reproduce.parallel.run_parallel` deals them (most cells
  first, to the first free worker), and each worker starts and prepares the data
  once.
- Writing the table and the plots, timed once with one plot.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from skkgp.reproduce.config import DATASETS, ReproduceConfig, method_family
from skkgp.reproduce.data import (
    DataSpec,
    fold_indices,
    input_shape,
    load_windows,
    n_folds,
    window_features,
)
from skkgp.reproduce.interrupt import InterruptWatch

__all__ = [
    "StepTimes",
    "time_steps",
    "measure_steps",
    "knowledge_inputs",
    "GroupWork",
    "grid_work",
    "Estimate",
    "estimate",
    "dry_run",
]

#: Training steps per timed epoch, for each kind and model.
PROBE_STEPS = 4
_TIMED_EPOCHS = 3


@dataclass(frozen=True)
class StepTimes:
    """Seconds per batch of one model at the run's batch size.

    ``warmup`` is what the first epoch of a process's first fit of the model takes
    beyond a later one (lazy initialisation, kernel selection): paid once per worker
    and model. ``graph_steps`` holds, for fits with ``cuda_graphs=True``, each kind's
    (``"plain"``, ``"knowledge"``) ``cuda_graph_steps_``: how the timed steps ran.
    """

    plain: float
    knowledge: float
    predict: float
    warmup: float = 0.0
    graph_steps: tuple[tuple[str, dict], ...] = ()

    def graph_lines(self, model: str) -> list[str]:
        """How the timed steps of ``model`` ran, one line per kind (none without graphs)."""
        from skkgp._graphs import describe_graph_steps

        kinds = {"plain": "plain", "knowledge": "knowledge-guided"}
        return [f"{describe_graph_steps(steps)} ({model}, {kinds[kind]} steps timed)"
                for kind, steps in self.graph_steps]


def _epoch_clock(clock: Callable[[], float]):
    import torch
    from skorch.callbacks import Callback

    class EpochClock(Callback):
        def initialize(self):
            self.times_ = []
            return self

        def on_epoch_begin(self, net, **kwargs):
            if torch.device(net.device).type == "cuda":
                torch.cuda.synchronize(net.device)
            self.started_ = clock()

        def on_epoch_end(self, net, **kwargs):
            if torch.device(net.device).type == "cuda":
                torch.cuda.synchronize(net.device)
            self.times_.append(clock() - self.started_)

    return EpochClock()


def time_steps(
    model: str,
    sample_shape: Sequence[int],
    region_mask: np.ndarray,
    *,
    cells: np.ndarray | None = None,
    batch_size: int,
    device: str = "cpu",
    cuda_graphs: bool = False,
    lr: float = 1e-3,
    steps: int = PROBE_STEPS,
    n_classes: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> StepTimes:
    """Time training and prediction steps of ``model`` on random inputs.

    Parameters
    ----------
    model : str
        A zoo name.
    sample_shape : tuple of int
        Shape of one input window.
    region_mask : ndarray of bool, shape (n_electrodes,)
        Knowledge region of the knowledge-guided steps.
    cells : ndarray of int, shape (n_electrodes, 2), optional
        Grid cell of each electrode of ``region_mask`` (grid models; default: DEAP's).
    batch_size : int
    device : str, default="cpu"
    cuda_graphs : bool, default=False
        Train with ``EEGClassifier(cuda_graphs=True)``, as the run will.
    lr : float, default=1e-3
    steps : int, default=PROBE_STEPS
        Steps per epoch; after a warm-up epoch, the median of three is timed.
    n_classes : int, default=2
    clock : callable, default=time.perf_counter
        The clock that times them; ``time.process_time`` gives CPU seconds.

    Returns
    -------
    times : StepTimes
    """
    import torch

    from skkgp import EEGClassifier
    from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps * batch_size, *sample_shape)).astype(np.float32)
    y = np.arange(len(X)) % n_classes
    # A warm-up epoch, then the median of three timed ones: robust to a moment of load.
    common = dict(max_epochs=1 + _TIMED_EPOCHS, batch_size=batch_size, device=device, lr=lr,
                  cuda_graphs=cuda_graphs, random_state=0)
    seconds = {}
    graph_steps = []
    for name, make in (
        ("plain", lambda: EEGClassifier(model, **common)),
        ("knowledge", lambda: KnowledgeGuidedClassifier(model, region_mask=region_mask,
                                                        cells=cells, **common)),
    ):
        epochs = _epoch_clock(clock)
        net = make().set_params(callbacks=[("epoch_clock", epochs)])
        # Ctrl-C ends a skorch fit early without a word: stop here, not at its missing
        # epoch times.
        with InterruptWatch() as watch:
            net.fit(X, y)
        watch.check()
        if cuda_graphs:
            graph_steps.append((name, getattr(net, "cuda_graph_steps_", None)))
        seconds[name] = statistics.median(epochs.times_[1:]) / steps
        if name == "plain":
            seconds["warmup"] = max(0.0, epochs.times_[0] - seconds[name] * steps)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    net.predict_proba(X)
    seconds["predict"] = (clock() - start) / steps
    return StepTimes(**seconds, graph_steps=tuple(graph_steps))


def _grid_electrodes(config: ReproduceConfig, ch_names: Sequence[str]) -> list[str]:
    """The electrodes with a cell on the ``--dataset``'s grid (all of DEAP's 32)."""
    from skkgp.layout import get_layout

    cells = get_layout(DATASETS[config.dataset].layout)
    return [name for name in ch_names if name.upper() in cells]


def knowledge_inputs(config: ReproduceConfig, model: str,
                      ch_names: Sequence[str]) -> dict[str, np.ndarray | None]:
    """``region_mask`` and ``cells`` of ``model``'s knowledge-guided classifier, as
    the run's pruner resolves them for the ``--dataset``.

    Parameters
    ----------
    config : ReproduceConfig
    model : str
        A zoo name.
    ch_names : sequence of str
        The electrodes of the run's windows.

    Returns
    -------
    knowledge : dict
        ``region_mask`` (bool per electrode the model sees) and ``cells`` (grid models:
        each electrode's grid cell; raw models: ``None``), keyword arguments of
        :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier`.
    """
    from skkgp import layout
    from skkgp.models import get_model_class

    region = config.region if isinstance(config.region, str) else list(config.region)
    if get_model_class(model).input_kind == "grid":
        electrodes = _grid_electrodes(config, ch_names)
        return {"region_mask": layout.region_mask(region, electrodes),
                "cells": layout.grid_cells(
                    electrodes, layout=layout.get_layout(DATASETS[config.dataset].layout))}
    return {"region_mask": layout.region_mask(region, list(ch_names)), "cells": None}


def _probe_models(config: ReproduceConfig, shapes, knowledge, steps: int,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, StepTimes]:
    import warnings

    from skkgp._graphs import WARNING_MESSAGE

    times = {}
    for model in config.models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Timed steps that fall back from CUDA graphs say so.
            warnings.filterwarnings("default", message=WARNING_MESSAGE,
                                    category=RuntimeWarning)
            times[model] = time_steps(
                model, shapes[model], **knowledge[model], batch_size=config.batch_size,
                device=config.device, cuda_graphs=config.cuda_graphs,
                lr=config.learning_rate(model), steps=steps, clock=clock,
            )
    return times


def _probe_worker(config, shapes, knowledge, steps, threads, barrier, results) -> None:
    from skkgp.reproduce.worker import follow_parent

    follow_parent()
    import torch

    torch.set_num_threads(threads)
    results.put(("ready", time.perf_counter()))
    barrier.wait()  # every worker times its steps while the others time theirs
    results.put(("times", _probe_models(config, shapes, knowledge, steps)))


def measure_steps(
    config: ReproduceConfig,
    shapes: dict[str, tuple[int, ...]],
    knowledge: dict[str, dict],
    workers: int = 1,
    *,
    steps: int = PROBE_STEPS,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, StepTimes], float]:
    """Time the models' steps alone, or in ``workers`` processes at once.

    ``clock`` times the steps of one worker (this process); several workers are
    timed by the wall clock, since what they cost each other shows only there.

    Returns
    -------
    times : dict
        Model -> :class:`StepTimes`; with several workers the median over them of
        the times each measured while the others ran.
    startup : float
        Seconds for a worker process to start and import skkgp (0 for one worker,
        which is this process).
    """
    import torch

    from skkgp.reproduce.parallel import run_workers, worker_threads

    if workers == 1:
        previous = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            return _probe_models(config, shapes, knowledge, steps, clock), 0.0
        finally:
            torch.set_num_threads(previous)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    threads = worker_threads(config, workers)
    ready, measured = [], []

    def receive(message) -> bool:
        kind, payload = message
        (ready if kind == "ready" else measured).append(payload)
        return len(measured) == workers

    def failure(cause: int | BaseException) -> RuntimeError:
        return RuntimeError("a timing worker failed; run --dry-run with --workers 1 to see "
                            "its error.")

    start = time.perf_counter()
    try:
        run_workers(context, _probe_worker,
                    (config, shapes, knowledge, steps, threads, barrier, results), workers,
                    results, receive, failure, poll=1.0)
    finally:
        results.close()
    times = {
        model: StepTimes(*(statistics.median(getattr(m[model], name) for m in measured)
                           for name in ("plain", "knowledge", "predict", "warmup")),
                         graph_steps=_worst_graph_steps([m[model] for m in measured]))
        for model in config.models
    }
    # time.perf_counter is system-wide on Linux (CLOCK_MONOTONIC), comparable across
    # processes.
    return times, max(ready) - start


def _worst_graph_steps(times: Sequence[StepTimes]) -> tuple:
    """The graph steps of a worker whose graphs failed, or else of the first worker."""
    for one in times:
        if any(steps is None or steps["failure"] is not None for _, steps in one.graph_steps):
            return one.graph_steps
    return times[0].graph_steps


@dataclass(frozen=True)
class GroupWork:
    """The work of one origin group: steps of each kind and prediction batches."""

    model: str
    family: str
    fold: int
    n_cells: int
    plain_steps: int
    knowledge_steps: int
    predict_batches: int
    seed: int = 0

    def seconds(self, times: StepTimes) -> float:
        return (self.plain_steps * times.plain + self.knowledge_steps * times.knowledge
                + self.predict_batches * times.predict)


def grid_work(config: ReproduceConfig, bunch) -> list[GroupWork]:
    """The origin groups of the whole grid of ``config`` and the work of each.

    One group per (seed, model, origin family, fold), in the order
    :func:`skkgp.reproduce.parallel.run_parallel` starts them. Every seed's folds are
    taken to be as large as those of ``bunch`` (the data of one seed): the seeds draw
    other windows or other folds, not other sizes.
    """
    from skkgp.reproduce.runner import EVIDENCE_SAMPLES

    folds = n_folds(config, bunch)
    config = config.replace(folds=folds)
    batch = config.batch_size
    sizes = [tuple(len(part) for part in fold_indices(config, bunch, fold))
             for fold in range(folds)]
    cells_of: dict[tuple[str, str, int], int] = {}
    for cell in config.cells():
        for fold in range(folds):
            key = (cell.model, method_family(cell.method), fold)
            cells_of[key] = cells_of.get(key, 0) + 1
    work = []
    for (model, family, fold), n_cells in cells_of.items():
        n_train, n_test = sizes[fold]
        steps = math.ceil(n_train / batch)
        test_batches = math.ceil(n_test / batch)
        evidence_batches = math.ceil(min(EVIDENCE_SAMPLES, n_test) / batch)
        work += [GroupWork(
            model, family, fold, n_cells,
            plain_steps=config.epochs * steps
            # Baseline recovery; and the evidence of 3 networks, a forward and a backward.
            + n_cells * (config.recovery_epochs * steps + 3 * evidence_batches),
            knowledge_steps=n_cells * config.recovery_epochs * steps,
            # Two pruners (baseline, proposed) each score the origin and their
            # recovered network on the training windows; three networks are scored on
            # the test windows.
            predict_batches=n_cells * (4 * steps + 3 * test_batches),
            seed=seed,
        ) for seed in config.seeds]
    return sorted(work, key=lambda group: -group.n_cells)


def _makespan(
    tasks: Sequence[tuple[str, float]], workers: int, start: float,
    warmup: dict[str, float] | None = None,
) -> float:
    """Wall time of ``(model, seconds)`` tasks dealt in order to the first free worker.

    A worker's first task of a model also pays that model's ``warmup``.
    """
    warmup = warmup or {}
    free = [start] * workers
    seen: list[set[str]] = [set() for _ in range(workers)]
    for model, duration in tasks:
        index = free.index(min(free))
        free[index] += duration
        if model not in seen[index]:
            seen[index].add(model)
            free[index] += warmup.get(model, 0.0)
    return max(free)


@dataclass
class Estimate:
    """The estimated wall time of a run, and what it is made of."""

    workers: int
    seconds: float
    times: dict[str, StepTimes]
    group_seconds: list[float]
    startup: float
    data_seconds: float
    output_seconds: float


def estimate(
    work: list[GroupWork],
    times: dict[str, StepTimes],
    workers: int,
    *,
    startup: float,
    data_seconds: float,
    output_seconds: float,
) -> Estimate:
    """Wall time of the groups ``work`` with ``workers`` workers at step ``times``."""
    seconds = [group.seconds(times[group.model]) for group in work]
    n_workers = max(1, min(workers, len(work)))
    # This process prepares the data, then (with workers) each worker starts and
    # prepares them again, in parallel with the others.
    if workers > 1:
        startup += data_seconds
    tasks = [(group.model, s) for group, s in zip(work, seconds, strict=True)]
    warmup = {model: t.warmup for model, t in times.items()}
    total = _makespan(tasks, n_workers, startup + data_seconds, warmup) + output_seconds
    return Estimate(workers, total, times, seconds, startup, data_seconds, output_seconds)


def _time_outputs(config: ReproduceConfig, bunch,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds to write the table and plots, from the time of one evidence plot."""
    from skkgp import layout
    from skkgp.reproduce.plots import plot_evidence

    ch_names = _grid_electrodes(config, bunch.ch_names) or list(bunch.ch_names)
    n = len(ch_names)
    # Maps with structure, as a run's are (a constant map draws faster).
    rng = np.random.default_rng(0)
    evidence = {name: rng.dirichlet(np.ones(n)) for name in ("origin", "baseline", "proposed")}
    region = np.arange(n) < max(1, n // 8)
    shares = {name: float(share[region].sum()) for name, share in evidence.items()}
    seconds = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(3):
            start = clock()
            plot_evidence(evidence, ch_names, region, f"{folder}/probe{index}.png",
                          title="probe", shares=shares)
            seconds.append(clock() - start)
    # One plot per cell, the accuracy plot and, with --ratios, pareto.png. The fastest of
    # three: a plot's own cost, without the garbage collections and first-use set-up that
    # happen to fall in it.
    return min(seconds) * (len(config.cells()) + 1 + (config.ratios is not None))


def _prepare(config: ReproduceConfig, clock: Callable[[], float]):
    """Load the windows and their features as a run does; the bunch and the seconds."""
    from skkgp.models import get_model_class

    spec = DataSpec.from_config(config)
    start = clock()
    bunch = load_windows(spec)
    for kind in sorted({get_model_class(m).input_kind for m in config.models}):
        window_features(spec, kind)
    return bunch, clock() - start


def _data_layout(config: ReproduceConfig, clock: Callable[[], float]):
    """The windows' layout (count, subjects, trials, shape) and the seconds to prepare them.

    A DEAP folder is read as the run reads it. Simulated data are laid out without
    simulating them all (DEAP's full size takes about a minute of CPU): one subject is
    simulated and timed, and the layout and time are scaled to ``n_subjects``
    (subjects are simulated one after the other, alike in size). Fold sizes depend on
    the layout only, not on the values.
    """
    from sklearn.utils import Bunch

    if not config.synthetic or config.n_subjects == 1:
        return _prepare(config, clock)
    one = config.replace(n_subjects=1)
    subject, seconds = _prepare(one, clock)
    load_windows.cache_clear()
    window_features.cache_clear()
    n = config.n_subjects
    trials = np.asarray(subject.trials)
    per_subject = int(trials.max()) + 1
    layout = Bunch(
        X=np.broadcast_to(np.float32(0), (n * len(trials), *np.shape(subject.X)[1:])),
        y=np.tile(np.asarray(subject.y), n),
        groups=np.repeat(np.asarray(subject.groups)[0] + np.arange(n), len(trials)),
        trials=np.concatenate([trials + index * per_subject for index in range(n)]),
        ch_names=subject.ch_names,
        sfreq=subject.sfreq,
    )
    return layout, seconds * n


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _device_name(device: str) -> str:
    import torch

    parsed = torch.device(device)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            return f"{device} (no CUDA device on this machine)"
        return f"{device} ({torch.cuda.get_device_name(parsed)})"
    from skkgp.reproduce.parallel import available_cores

    return f"cpu ({available_cores()} cores)"


@dataclass
class DryRun:
    """What ``--dry-run`` measured and estimated.

    ``estimates`` holds one :class:`Estimate` per worker count that was timed;
    ``refused`` the device-memory message of each count that does not fit.
    """

    work: list[GroupWork]
    estimates: dict[int, Estimate]
    text: str
    refused: dict[int, str] = field(default_factory=dict)


def dry_run(
    config: ReproduceConfig,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    steps: int = PROBE_STEPS,
    worker_counts: Sequence[int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    free_bytes: int | None = None,
) -> DryRun:
    """Print the grid of ``config`` and its estimated wall time; train and write nothing.

    The estimate is given for 1 worker and for ``config.workers`` (2 when that is 1),
    each printed as soon as its steps are timed. A worker count is timed with as many
    processes as the run would start (no more than its origin groups), and only if
    they fit the device (:func:`~skkgp.reproduce.parallel.check_workers`, as the run
    checks them); a count that does not fit is reported as such.

    Parameters
    ----------
    config : ReproduceConfig
    quiet : bool, default=False
        No progress lines while timing.
    stream : text stream, default=sys.stdout
    steps : int, default=PROBE_STEPS
        Timed steps per model and kind.
    worker_counts : sequence of int or None, default=None
        The worker counts to estimate; ``None``: 1 and ``config.workers`` (2 when
        that is 1).
    clock : callable, default=time.perf_counter
        What times one worker's steps, the data and the plots: wall-clock seconds by
        default; ``time.process_time`` estimates the CPU seconds of a one-thread run
        instead, which other jobs on the machine do not stretch.
    free_bytes : int or None, default=None
        Free device memory for the check of several CUDA workers; ``None`` asks CUDA.

    Returns
    -------
    result : DryRun
    """
    from skkgp.reproduce.config import ConfigError
    from skkgp.reproduce.parallel import check_workers

    stream = sys.stdout if stream is None else stream
    bunch, data_seconds = _data_layout(config, clock)
    work = grid_work(config, bunch)
    folds = n_folds(config, bunch)
    cells = config.cells()
    shapes = {model: input_shape(model, bunch, config.dataset) for model in config.models}
    knowledge = {model: knowledge_inputs(config, model, bunch.ch_names)
                 for model in config.models}
    n_classes = int(np.unique(np.asarray(bunch.y)).size)
    if worker_counts is None:
        worker_counts = (1, config.workers if config.workers > 1 else 2)
    counts = sorted(set(worker_counts))

    def note(message: str) -> None:
        if not quiet:
            print(f"skkgp reproduce --dry-run: {message}", file=sys.stderr, flush=True)

    lines: list[str] = []

    def say(*new: str) -> None:
        # Printed as it comes: a dry run stopped at a time limit still shows what it timed.
        lines.extend(new)
        print("\n".join(new), file=stream, flush=True)

    say(
        f"grid: {len(cells)} cells x {len(config.seeds)} seed(s) x {folds} folds = "
        f"{len(cells) * len(config.seeds) * folds} (cell, seed, fold) results from "
        f"{len(work)} origin trainings",
        "cells: " + ", ".join(cell.key for cell in cells),
        f"data: {len(bunch.y)} windows ({'simulated' if config.synthetic else config.data}), "
        f"protocol {config.protocol}; prepared in {data_seconds:.1f} s",
        f"training: {config.epochs} origin epochs, {config.recovery_epochs} recovery epochs "
        f"(baseline and proposed per cell), batch {config.batch_size}; "
        f"{sum(g.plain_steps for g in work):,} plain and "
        f"{sum(g.knowledge_steps for g in work):,} knowledge-guided steps in all",
        f"device: {_device_name(config.device)}"
        + (", --cuda-graphs (how the timed steps ran follows each count's times)"
           if config.cuda_graphs else ""),
    )
    output_seconds = _time_outputs(config, bunch, clock)
    say("", f"{'model':<10} {'workers':>7} {'plain s/step':>12} {'kg s/step':>10} "
            f"{'kg/plain':>8} {'predict s/batch':>15}")
    estimates: dict[int, Estimate] = {}
    refused: dict[int, str] = {}
    measured: dict[int, tuple[dict[str, StepTimes], float]] = {}
    for workers in counts:
        # The run starts no more workers than it has origin groups.
        started = max(1, min(workers, len(work)))
        if started > 1:
            try:
                for message in check_workers(config, started, shapes, n_classes,
                                             len(bunch.y), free_bytes=free_bytes):
                    note(f"warning: {message}")
            except ConfigError as error:
                refused[workers] = str(error)
                say(f"estimated wall time, {workers} worker(s): does not fit ({error})")
                continue
        if started not in measured:
            note(f"timing {steps} steps of each kind per model with {started} worker(s) ...")
            measured[started] = measure_steps(config, shapes, knowledge, started,
                                              steps=steps, clock=clock)
        times, startup = measured[started]
        result = estimates[workers] = estimate(
            work, times, workers, startup=startup, data_seconds=data_seconds,
            output_seconds=output_seconds)
        for model in config.models:
            t = times[model]
            say(f"{model:<10} {workers:>7} {t.plain:>12.4f} {t.knowledge:>10.4f} "
                f"{t.knowledge / t.plain:>7.2f}x {t.predict:>15.4f}")
        graph_lines = [line for model in config.models
                       for line in times[model].graph_lines(model)]
        if graph_lines:
            say(*graph_lines)
        extra = (f" (worker start {result.startup:.1f} s; steps timed with {started} "
                 "workers at once)" if started > 1 else "")
        say(f"estimated wall time, {workers} worker(s): "
            f"{_format_seconds(result.seconds)}{extra}")
    say("")
    if estimates:
        first = min(estimates)
        by_model: dict[str, float] = {}
        for group, seconds in zip(work, estimates[first].group_seconds, strict=True):
            by_model[group.model] = by_model.get(group.model, 0.0) + seconds
        say(f"{first}-worker training per model: " + ", ".join(
            f"{model} {_format_seconds(s)}" for model, s in by_model.items())
            + f"; table and plots {_format_seconds(output_seconds)}")
    say("(recovery steps priced at the unpruned network's cost: an upper bound for "
        "structured pruning)")
    return DryRun(work, estimates, "\n".join(lines), refused)
