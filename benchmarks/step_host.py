"""Host work of a knowledge-guided training step against a ``fit`` step, per zoo model.

On a GPU at small batches (CCNN at batch 64-256 on an H100) a training step waits for
the host: Python, the dispatcher and one kernel launch per tensor operation. There a
knowledge-guided step costs what its host work costs, and ``kg/fit`` in
``benchmarks/train_speed.py`` follows the ratio of the operations each step dispatches
rather than that of their arithmetic. This script measures that regime on any machine:

* **operations per step**: every ATen call a training step dispatches (forward,
  losses, backward passes, Adam's update in its multi-tensor form, the GPU's default),
  counted with a dispatch mode, in all and without the views, bare allocations, host
  scalars and reads that launch no kernel on a GPU ("kernels"). Counts do not depend
  on the load; on a GPU the totals lack the CPU's reads of the recorded batch values
  (``_local_scalar_dense``, which a GPU epoch defers), and the kernels are the same.
* **host time per step**: both steps of networks LFP-pruned at ratio 0.99 (one or two
  filters per layer), at batch 2, so that the arithmetic is small and the step is
  mostly the host's work; process CPU time of one thread, the two steps taking turns
  (``--repeats``). On a CPU each convolution call still costs tens of microseconds, so
  this is a rougher guide than the counts.

Run::

    python benchmarks/step_host.py                  # every zoo model, about a minute
    python benchmarks/step_host.py --models ccnn --repeats 15
"""

from __future__ import annotations

import argparse
import collections
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skkgp import EEGClassifier, layout
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _latency import MODELS, lfp_networks  # noqa: E402  (the sibling benchmark module)

#: ATen operations that only make a view or an uninitialised tensor: no kernel runs.
NO_KERNEL = frozenset({
    "view", "as_strided", "t", "transpose", "expand", "_unsafe_view", "alias", "detach",
    "unsqueeze", "squeeze", "permute", "slice", "select", "_reshape_alias", "unflatten",
    "reshape", "empty", "empty_like", "empty_strided", "lift_fresh", "_local_scalar_dense",
    "_record_function_enter_new", "_record_function_exit",
    # A Python number wrapped as a 0-d CPU tensor (torch.where(c, x, 0.0)): no launch.
    "scalar_tensor",
})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    return parser.parse_args(argv)


class OperationCount(TorchDispatchMode):
    """Count the ATen operations dispatched inside the block, by name."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def kernels(self) -> int:
        """Operations that launch a kernel on a GPU (views and allocations left out)."""
        return sum(n for name, n in self.counts.items() if name not in NO_KERNEL)


def networks(model: str, batch_size: int, *, width_ratio: float | None):
    """A ``fit`` and a knowledge-guided classifier of one network, and a batch.

    ``width_ratio`` LFP-prunes the network first (``None``: the zoo model as it is).
    """
    _, shape = MODELS[model]
    nets, _ = lfp_networks(model, [] if width_ratio is None else [width_ratio])
    module = nets["origin" if width_ratio is None else f"lfp {width_ratio}"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((max(batch_size, 4), *shape)).astype(np.float32)
    y = np.arange(len(X)) % 2
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    # Adam's multi-tensor update, the default on a GPU (on a CPU PyTorch updates one
    # tensor at a time), so that the optimizer's share is the GPU's.
    common = dict(max_epochs=1, batch_size=batch_size, random_state=0, train_split=None,
                  verbose=0, optimizer__foreach=True)
    fit = EEGClassifier(copy.deepcopy(module), **common).fit(X, y)
    kg = KnowledgeGuidedClassifier(copy.deepcopy(module), region_mask=mask, **common).fit(X, y)
    batch = (torch.from_numpy(X[:batch_size]), torch.from_numpy(y[:batch_size]))
    return {"fit": fit, "kg": kg}, batch


def count_operations(model: str, batch_size: int) -> dict[str, OperationCount]:
    """Operations of one training step of each classifier (unpruned network)."""
    nets, batch = networks(model, batch_size, width_ratio=None)
    counts = {}
    for name, net in nets.items():
        net.train_step(batch)  # Adam's state exists from the second step on
        with OperationCount() as count:
            net.train_step(batch)
        counts[name] = count
    return counts


def host_times(model: str, batch_size: int, repeats: int, steps: int) -> dict[str, list]:
    """CPU seconds per step of each classifier on a network of one filter per layer."""
    nets, batch = networks(model, batch_size, width_ratio=0.99)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for net in nets.values():
        for _ in range(5):
            net.train_step(batch)
    for repeat in range(repeats):
        order = list(nets) if repeat % 2 == 0 else list(reversed(nets))
        for name in order:
            start = time.process_time()
            for _ in range(steps):
                nets[name].train_step(batch)
            times[name].append((time.process_time() - start) / steps)
    return times


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, 1 thread, batch {args.batch_size}, "
          f"{args.repeats} repeats of {args.steps} steps")
    print(f"{'model':10s} {'ops fit':>8s} {'ops kg':>8s} {'kg/fit':>7s} {'kernels fit':>12s} "
          f"{'kernels kg':>11s} {'kg/fit':>7s} {'host fit':>9s} {'host kg':>9s} {'kg/fit':>7s}")
    for model in args.models:
        counts = count_operations(model, args.batch_size)
        times = host_times(model, args.batch_size, args.repeats, args.steps)
        fit_us = statistics.median(times["fit"]) * 1e6
        kg_us = statistics.median(times["kg"]) * 1e6
        fit_ops, kg_ops = counts["fit"], counts["kg"]
        print(f"{model:10s} {fit_ops.total:8d} {kg_ops.total:8d} "
              f"{kg_ops.total / fit_ops.total:6.2f}x {fit_ops.kernels:12d} {kg_ops.kernels:11d} "
              f"{kg_ops.kernels / fit_ops.kernels:6.2f}x {fit_us:7.0f}us {kg_us:7.0f}us "
              f"{kg_us / fit_us:6.2f}x")
        ratios = [k / f for k, f in zip(times["kg"], times["fit"], strict=True)]
        print(f"{'':10s} host kg/fit per repeat: " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
