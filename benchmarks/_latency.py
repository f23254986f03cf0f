"""What the latency benchmarks share: the zoo networks pruned by LFP, and a timing loop.

:func:`lfp_networks` builds a zoo model and its LFP-pruned versions at DEAP's input
sizes; :func:`interleaved` times callables that take turns. ``python benchmarks/x.py``
puts ``benchmarks/`` on the import path; a benchmark loaded from its file (the tests)
adds its own folder first, so ``from _latency import ...`` works either way.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch

from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption
from skkgp.pruning import prune

__all__ = ["MODELS", "interleaved", "lfp_networks"]

#: Zoo model name -> (constructor, shape of one input sample).
MODELS = {
    "ccnn": (lambda: CCNN(), (4, 9, 9)),
    "fbccnn": (lambda: FBCCNN(), (4, 9, 9)),
    # DEAP-sized raw windows: 32 electrodes, 1 s at 128 Hz.
    "eegnet": (lambda: EEGNet(chunk_size=128, num_electrodes=32), (32, 128)),
    "tsception": (lambda: TSCeption(num_electrodes=32, chunk_size=128), (32, 128)),
}


def lfp_networks(name: str, ratios, *, seed: int = 0, round_to: int | None = None):
    """The origin network of zoo model ``name`` and its LFP-pruned versions, in eval mode.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    ratios : iterable of float
        LFP pruning ratios, one pruned network each.
    seed : int, default=0
        Seed of the origin's initialisation.
    round_to : int or None, default=None
        Round kept channels up to a multiple of this (see :func:`skkgp.pruning.prune`).

    Returns
    -------
    nets : dict of str to torch.nn.Module
        ``"origin"`` and ``"lfp <ratio>"``.
    example : torch.Tensor, shape (2, *sample_shape)
        The batch the networks were pruned on (and their MACs are counted on).
    """
    make, shape = MODELS[name]
    torch.manual_seed(seed)
    origin = make().eval()
    example = torch.randn(2, *shape)
    nets = {"origin": origin}
    for ratio in ratios:
        pruned = copy.deepcopy(origin)
        prune(pruned, "lfp", ratio, example, round_to=round_to)
        nets[f"lfp {ratio}"] = pruned.eval()
    return nets, example


def interleaved(calls: dict[str, Callable[[], object]], repeats: int,
                min_time: float) -> dict[str, list[float]]:
    """Seconds per call of each callable, one value per repeat.

    Within a repeat every callable runs once (looped to last ``min_time``); the order
    rotates from one repeat to the next so that none always runs first, and a change
    of load on a shared machine hits them alike. Each call is timed alone and a
    repeat's value is the median of its calls: on a shared machine a call that was
    preempted is an outlier, not part of the figure.

    Parameters
    ----------
    calls : dict of str to callable
        What to time, by label; each is called without arguments.
    repeats : int
        Turns of every callable.
    min_time : float
        Seconds each turn lasts at least: a short call is looped.

    Returns
    -------
    times : dict of str to list of float
        ``repeats`` values per label, in seconds per call.
    """
    loops = {}
    for label, call in calls.items():
        for _ in range(3):  # warm-up: allocators, kernel caches
            call()
        start = time.perf_counter()
        call()
        loops[label] = max(1, int(min_time / max(time.perf_counter() - start, 1e-6)))
    times: dict[str, list[float]] = {label: [] for label in calls}
    labels = list(calls)
    for repeat in range(repeats):
        shift = repeat % len(labels)
        for label in labels[shift:] + labels[:shift]:
            call = calls[label]
            durations = []
            for _ in range(loops[label]):
                start = time.perf_counter()
                call()
                durations.append(time.perf_counter() - start)
            times[label].append(statistics.median(durations))
    return times
