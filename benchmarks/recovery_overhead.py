"""Time of one knowledge-guided recovery epoch over one plain fine-tuning epoch.

Same model, same data, same batches, one run: for CCNN (band-DE grids) and EEGNet (raw
windows), three networks train side by side, epoch after epoch in turn (so that a change
of machine load hits all of them alike):

- ``plain``: cross-entropy only (``region_weight=0, sample_weighting=0``: exactly
  :class:`skkgp.EEGClassifier`'s training step);
- ``knowledge``: the region-wise loss and the sample weights on Grad-CAM evidence;
- ``guided``: the same with guided Grad-CAM (one more backward pass per batch);
- ``native``: ``knowledge`` with PyTorch's own double backward of Conv2d and BatchNorm
  instead of :func:`skkgp.knowledge.evidence.fast_double_backward` (what the speed-up is worth).

The epoch time is skorch's wall-clock ``dur`` and the process CPU time of the second of
two consecutive epochs of each network in each repeat (after one warm-up epoch; on a
shared machine the CPU time with one thread is the reliable one); the script prints the
medians over the repeats and the ratios to ``plain``.

Run::

    python benchmarks/recovery_overhead.py               # CPU, 1 thread
    python benchmarks/recovery_overhead.py --device cuda --n-samples 8192
    python benchmarks/recovery_overhead.py --profile     # where the time goes
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import numpy as np
import torch
from skorch.callbacks import Callback

from skkgp import layout
from skkgp.knowledge import recovery
from skkgp.models import CCNN, EEGNet
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

CONFIGS = {
    "plain": {"region_weight": 0.0, "sample_weighting": 0.0},
    "knowledge": {"region_weight": 1.0, "sample_weighting": 1.0},
    "guided": {"region_weight": 1.0, "sample_weighting": 1.0, "guided": True},
    "native": {"region_weight": 1.0, "sample_weighting": 1.0},
}


@contextlib.contextmanager
def native_double_backward(active: bool):
    """Swap skkgp's fast double backward for a no-op while ``active``."""
    fast = recovery.fast_double_backward
    if active:
        recovery.fast_double_backward = lambda module: contextlib.nullcontext()
    try:
        yield
    finally:
        recovery.fast_double_backward = fast


class EpochCPUTimer(Callback):
    """Record the CPU time of the process over each epoch as ``cpu_dur``.

    On a machine shared with other jobs the wall-clock ``dur`` mostly measures the
    load; with one torch thread, CPU time measures the work.
    """

    def on_epoch_begin(self, net, **kwargs):
        self.start_ = time.process_time()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("cpu_dur", time.process_time() - self.start_)


def make_problem(model: str, n_samples: int, rng: np.random.Generator):
    """A model and data of the shapes skkgp uses on DEAP, with a region mask."""
    y = rng.integers(0, 2, n_samples)
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    if model == "ccnn":
        X = rng.standard_normal((n_samples, 4, 9, 9)).astype("float32")
        return CCNN(), X, y, mask
    X = rng.standard_normal((n_samples, 32, 128)).astype("float32")
    return EEGNet(chunk_size=128, num_electrodes=32), X, y, mask


def time_epochs(model: str, args) -> dict[str, dict[str, list[float]]]:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    module, X, y, mask = make_problem(model, args.n_samples, rng)
    nets = {
        name: KnowledgeGuidedClassifier(
            copy.deepcopy(module).to(args.device), region_mask=mask, max_epochs=1,
            batch_size=args.batch_size, lr=1e-4, device=args.device, random_state=0,
            callbacks=[("cpu_timer", EpochCPUTimer())], **config,
        )
        for name, config in CONFIGS.items()
    }
    for name, net in nets.items():  # warm-up epoch, not timed
        with native_double_backward(name == "native"):
            net.fit(X, y)
        # Each repeat runs two epochs and times the second: the first after a switch of
        # network pays for memory the previous network's passes evicted or gave back.
        net.set_params(max_epochs=2)
    durations = {clock: {name: [] for name in nets} for clock in ("dur", "cpu_dur")}
    for _ in range(args.repeats):
        for name, net in nets.items():
            with native_double_backward(name == "native"):
                net.partial_fit(X, y)
            for clock, values in durations.items():
                values[name].append(net.history_[-1, clock])
    return durations


def profile_step(model: str, args) -> None:
    """Print torch.profiler's table of one knowledge-guided epoch."""
    from torch.profiler import ProfilerActivity, profile

    rng = np.random.default_rng(0)
    module, X, y, mask = make_problem(model, args.n_samples, rng)
    net = KnowledgeGuidedClassifier(module, region_mask=mask, max_epochs=1,
                                    batch_size=args.batch_size, device=args.device,
                                    random_state=0).fit(X, y)
    activities = [ProfilerActivity.CPU]
    if torch.device(args.device).type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        net.partial_fit(X, y)
    key = "self_cuda_time_total" if len(activities) > 1 else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ccnn", "eegnet"],
                        choices=["ccnn", "eegnet"])
    parser.add_argument("--n-samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"device={args.device} threads={torch.get_num_threads()} n_samples={args.n_samples} "
          f"batch_size={args.batch_size} repeats={args.repeats} torch={torch.__version__}")
    for model in args.models:
        timings = time_epochs(model, args)
        for clock, label in (("dur", "wall-clock"), ("cpu_dur", "process CPU")):
            durations = timings[clock]
            medians = {name: statistics.median(values) for name, values in durations.items()}
            print(f"\n{model}: median {label} time of one epoch over {args.repeats} repeats")
            for name, median in medians.items():
                spread = f"{min(durations[name]):.3f}-{max(durations[name]):.3f}"
                print(f"  {name:<10} {median:8.3f} s  (range {spread})   "
                      f"ratio to plain {median / medians['plain']:.2f}x")
        if args.profile:
            profile_step(model, args)


if __name__ == "__main__":
    main()
