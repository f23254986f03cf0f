"""Several origin groups at once on one machine: ``skkgp reproduce --workers N``.

Each worker is a fresh Python process (the ``spawn`` start method: safe with CUDA and
with threads in the parent) that takes :class:`~skkgp.reproduce.runner.OriginGroup`
tasks from a queue and runs :func:`~skkgp.reproduce.runner.run_group` on them, sending
each (cell, fold) result back the moment it exists; this process stores it at once, so
an interrupted parallel run resumes like a sequential one. Processes rather than
threads: a training step holds the GIL for its Python and kernel-launch work, which is
what several concurrent trainings on one GPU overlap.

:func:`run_group` is a pure function of its group, so the results are those of the
sequential run; on CPU they are bit-identical when the workers use the same number of
torch threads as the sequential run (``--threads``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue as queue_module
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skkgp.reproduce.config import ConfigError, ReproduceConfig
from skkgp.reproduce.runner import OnResult, OriginGroup
from skkgp.reproduce.worker import follow_parent, parent_alive, run_tasks, unpickled_error

__all__ = [
    "available_cores",
    "worker_threads",
    "MemoryEstimate",
    "worker_memory",
    "check_workers",
    "run_parallel",
    "run_workers",
    "follow_parent",
    "parent_alive",
    "Terminated",
    "WorkerError",
    "CUDA_CONTEXT_BYTES",
]

#: Device memory one process holds before it allocates a tensor: the CUDA context with
#: its kernel images, and the cuBLAS and cuDNN workspaces (about 0.5-1 GiB on current
#: cards and drivers; the larger figure, to be safe).
CUDA_CONTEXT_BYTES = 1 << 30

# Peak memory of a training step over the sum of the per-sample outputs of every layer
# times the batch: saved activations, their gradients and, in a knowledge-guided step,
# the graph of the evidence gradient. Fitted to the peaks train_speed.py printed for
# CCNN (1.4) and EEGNet (2.7) at batch 4096 on a GPU, rounded up.
_ACTIVATION_FACTOR = 3.0
# Weights, gradients and Adam's two moments, for the origin and the two recovered nets
# a cell keeps alive at once.
_PARAMETER_COPIES = 4 * 3


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def worker_threads(config: ReproduceConfig, workers: int) -> int:
    """Torch CPU threads of each of ``workers`` workers: ``--threads``, else a fair share."""
    return config.threads or max(1, available_cores() // max(1, workers))


@dataclass(frozen=True)
class MemoryEstimate:
    """Device memory one worker needs for one model, in bytes, and its parts."""

    model: str
    context: int
    data: int
    parameters: int
    activations: int

    @property
    def total(self) -> int:
        return self.context + self.data + self.parameters + self.activations


def _layer_outputs(module, sample_shape: Sequence[int]) -> int:
    """Values output by all leaf layers for one sample, from a forward on the meta device."""
    import torch

    total = 0

    def count(layer, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [layer.register_forward_hook(count) for layer in module.modules()
               if not list(layer.children())]
    try:
        with torch.no_grad():
            module(torch.empty((1, *sample_shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def worker_memory(
    model: str, sample_shape: Sequence[int], n_classes: int, n_windows: int, batch_size: int,
    *, cuda_graphs: bool = False,
) -> MemoryEstimate:
    """Estimate the device memory a worker needs to train ``model``.

    Parameters
    ----------
    model : str
        A zoo name.
    sample_shape : tuple of int
        Shape of one input window of the model (``(4, 9, 9)`` for grid models).
    n_classes : int
    n_windows : int
        Windows of the data set: a fold's training and test windows are placed on
        the device, by every fit that runs on them.
    batch_size : int
    cuda_graphs : bool, default=False
        Training steps replayed from CUDA graphs: a graph keeps one step's activations
        in its own memory, beside those of the eager steps (warm-up, the last batch).

    Returns
    -------
    estimate : MemoryEstimate
        Built without allocating anything (the network is built on the meta device).
    """
    import torch

    from skkgp.models import get_model_class, infer_module_kwargs

    cls = get_model_class(model)
    with torch.device("meta"):
        module = cls(**infer_module_kwargs(cls, sample_shape, n_classes))
    n_params = sum(p.numel() for p in module.parameters())
    per_sample = _layer_outputs(module, sample_shape)
    # float32 everywhere; the inputs twice: the fold's arrays and a fit's device copy.
    data = 2 * 4 * n_windows * math.prod(sample_shape)
    return MemoryEstimate(
        model=model,
        context=CUDA_CONTEXT_BYTES,
        data=int(data),
        parameters=int(4 * n_params * _PARAMETER_COPIES),
        activations=int(4 * per_sample * batch_size * _ACTIVATION_FACTOR
                        * (2 if cuda_graphs else 1)),
    )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def check_workers(
    config: ReproduceConfig,
    workers: int,
    shapes: dict[str, tuple[int, ...]],
    n_classes: int,
    n_windows: int,
    *,
    free_bytes: int | None = None,
) -> list[str]:
    """Check that ``workers`` workers fit the device before any of them starts.

    Parameters
    ----------
    config : ReproduceConfig
    workers : int
    shapes : dict
        Model name -> shape of one of its input windows.
    n_classes : int
    n_windows : int
    free_bytes : int or None, default=None
        Free device memory; ``None`` asks CUDA (``torch.cuda.mem_get_info``) for a
        CUDA device.

    Returns
    -------
    warnings : list of str
        On CPU: a warning when the workers' threads exceed the cores.

    Raises
    ------
    ConfigError
        On CUDA, when ``workers`` times the largest per-worker estimate exceeds the
        free device memory (the message gives both and the largest ``N`` that fits).
    """
    import torch

    device = torch.device(config.device)
    threads = worker_threads(config, workers)
    cores = available_cores()
    messages = []
    if device.type == "cpu":
        if workers * threads > cores:
            messages.append(
                f"--workers {workers} with {threads} torch thread(s) each ask for "
                f"{workers * threads} threads on {cores} CPU core(s): the workers will "
                "compete for the cores and the run will not be faster than with fewer "
                f"workers (use --workers {max(1, cores // threads)} or fewer)."
            )
        return messages
    if device.type != "cuda" or workers < 2:
        return messages
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    estimates = [worker_memory(model, shapes[model], n_classes, n_windows, config.batch_size,
                               cuda_graphs=config.cuda_graphs)
                 for model in config.models]
    largest = max(estimates, key=lambda estimate: estimate.total)
    need = workers * largest.total
    if need > free_bytes:
        fits = int(free_bytes // largest.total)
        raise ConfigError(
            f"--workers {workers} do not fit {config.device}: each worker needs about "
            f"{_gib(largest.total)} for {largest.model} at batch {config.batch_size} "
            f"(CUDA context {_gib(largest.context)}, data {_gib(largest.data)}, weights and "
            f"optimizer {_gib(largest.parameters)}, activations {_gib(largest.activations)}), "
            f"{_gib(need)} in all, and {_gib(free_bytes)} is free. Use --workers "
            f"{max(1, fits)}{' (or free the device)' if fits < 1 else ''}."
        )
    return messages


class Terminated(SystemExit):
    """This process got SIGTERM while its workers ran; they were stopped.

    A :class:`SystemExit` with code 143 (128 + SIGTERM), so that the ``finally``
    clauses on the way out stop the workers and results already received stay saved.
    """


def _terminate(signum, frame) -> None:
    raise Terminated(128 + signum)


def run_workers(
    context,
    target: Callable[..., None],
    args: tuple,
    n_workers: int,
    results,
    receive: Callable[[Any], bool],
    failure: Callable[[int | BaseException], BaseException],
    *,
    poll: float = 0.5,
) -> None:
    """Run ``n_workers`` processes of ``target(*args)`` and hand what they send to ``receive``.

    Parameters
    ----------
    context : multiprocessing context
        Where the processes, and the queues and barriers in ``args``, come from (the
        ``spawn`` context: safe with CUDA and with threads in this process).
    target : callable
        Body of each worker; it sends its messages on ``results``.
    args : tuple
        Arguments of ``target``.
    n_workers : int
    results : multiprocessing.Queue
        The queue the workers send on, read here.
    receive : callable
        Called here with each message, in the order they arrive; returns true once it
        has all it waits for. What it raises stops the workers and propagates.
    failure : callable
        Given the exit code of a worker that died (non-zero), 0 when every worker
        ended before ``receive`` had all it waits for, or the exception raised by
        unpickling a message here (the message is lost); returns the exception to raise.
    poll : float, default=0.5
        Seconds to wait for a message before looking at the workers' exit codes.

    The workers are daemons, stopped (terminated if still alive) and joined before this
    returns or raises, so that none is left behind. Called in the main thread, SIGTERM
    raises :class:`Terminated` here meanwhile (unless the caller ignores SIGTERM), which
    stops them too; ``target`` calls :func:`follow_parent` so that they end with this
    process however it ends.
    """
    processes = [context.Process(target=target, args=args, daemon=True)
                 for _ in range(n_workers)]
    started = []
    # Without a handler SIGTERM ends this process at once, its workers left running. A
    # caller that ignores SIGTERM keeps it ignored.
    previous = None
    if (threading.current_thread() is threading.main_thread()
            and (callable(current := signal.getsignal(signal.SIGTERM))
                 or current == signal.SIG_DFL)):
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        for process in processes:
            process.start()
            started.append(process)
        ended = False
        while True:
            try:
                message = results.get(timeout=poll)
            except queue_module.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise failure(dead[0].exitcode) from None
                if all(p.exitcode == 0 for p in processes):
                    if ended:
                        raise failure(0) from None
                    # What the workers sent before they ended is in the pipe by now: read
                    # once more before calling their work unfinished.
                    ended = True
                continue
            except Exception as error:  # noqa: BLE001 - whatever unpickling the message raised
                raise failure(error) from error
            if receive(message):
                return
    finally:
        # The caller's handler first: a second SIGTERM while the workers are joined then
        # does what the caller asked, instead of raising from here with ours left behind.
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for process in started:
            if process.is_alive():
                process.terminate()
        try:
            for process in started:
                process.join()
        finally:
            # The join was cut short (by the caller's handler): none is left running.
            for process in started:
                if process.is_alive():
                    process.kill()


class WorkerError(RuntimeError):
    """A worker process failed; the message holds its traceback."""


def run_parallel(
    groups: Sequence[OriginGroup], on_result: OnResult, workers: int, *, threads: int
) -> None:
    """Compute ``groups`` in ``workers`` processes, reporting each result here.

    Parameters
    ----------
    groups : sequence of OriginGroup
    on_result : callable
        Called in this process with the arguments :func:`run_group` reports, as soon
        as a worker sends them.
    workers : int
        Number of worker processes (at most one per group).
    threads : int
        Torch CPU threads of each worker.

    Raises
    ------
    WorkerError
        When a worker raises (the first error; its traceback is in the message) or
        dies (killed by the system, for instance out of memory). The other workers
        are stopped; results already reported are kept by the caller.
    """
    if not groups:
        return
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    # The groups with the most cells first: the longest tasks do not start last.
    order = sorted(range(len(groups)), key=lambda i: -len(groups[i].cells))
    for index in order:
        tasks.put((index, groups[index]))
    n_workers = max(1, min(workers, len(groups)))
    for _ in range(n_workers):
        tasks.put(None)
    remaining = set(range(len(groups)))

    def receive(message) -> bool:
        kind, index, payload = message
        if kind == "result":
            on_result(*payload)
        elif kind == "done":
            remaining.discard(index)
        else:
            data, text = payload
            error = unpickled_error(data)
            if isinstance(error, (KeyboardInterrupt, ConfigError)):
                raise error
            raise WorkerError(
                f"a worker failed on {groups[index].label}:\n{text.rstrip()}"
            ) from error
        return not remaining

    def failure(exitcode: int | BaseException) -> WorkerError:
        if isinstance(exitcode, BaseException):
            return WorkerError(
                f"a worker sent a message this process cannot read ({exitcode!r}); the "
                "workers were stopped. Finished results are saved: rerun with --workers 1 "
                "to see the problem."
            )
        if exitcode == 0:
            return WorkerError("the workers ended with origin groups unfinished.")
        return WorkerError(
            f"a worker process died (exit code {exitcode}) while {len(remaining)} origin "
            "group(s) were unfinished; a negative code is the signal that ended it (-9: "
            "killed, often for lack of memory). Finished results are saved: rerun to "
            "resume, with fewer --workers."
        )

    try:
        run_workers(context, run_tasks, (tasks, results, threads), n_workers, results,
                    receive, failure)
    finally:
        # Tasks no worker took (the run stopped early) stay in the queue's pipe; without
        # cancel_join_thread, exiting would wait for its feeder thread to write them into
        # a pipe nobody reads any more once the pipe is full.
        tasks.cancel_join_thread()
        tasks.close()
        results.close()

