"""Host time that ``EEGClassifier.fit`` adds to each training step, over a plain loop.

On a GPU at small batches (CCNN at batch 64-256 on an H100/H200) a training step is
mostly host work: Python and kernel launches, about 3 ms, while the GPU waits. There the
epoch-time ratio of ``fit`` to a plain PyTorch loop moves by +-15 % from one epoch to the
next with the machine's load (``benchmarks/train_speed.py`` prints each repeat), so this
script measures the quantity that decides it directly: the extra host time per step.

Both loops train the same tiny network (one 3x3 convolution and a linear layer on
4x9x9 inputs: the arithmetic is negligible, the step is the host's work) with Adam on the
same data and batch size; the plain loop slices a shuffled permutation of tensors that
are already on the device, and ``fit`` runs skorch's machinery (callbacks, history,
``train_step``) on skkgp's tensor batch iterator. The runs alternate (``--repeats``
pairs, each pair in the other order) and the script prints the median time per step of
each, the difference in microseconds and what it is as a share of a given step time
(``--step-ms``), and the Python garbage collections that ran during the ``fit`` epochs.
On CPU, ``fit`` runs the GPU's epoch loop (losses read once per epoch) unless
``--cpu-loop`` is given, so that the figure is the one that matters on a GPU.

Run::

    python benchmarks/fit_overhead.py                    # CPU, about a minute
    python benchmarks/fit_overhead.py --device cuda --step-ms 3.3
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skkgp.classifier import EEGClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import EpochClock, plain_loop  # noqa: E402  (the sibling benchmark)


class Tiny(nn.Module):
    """A network whose step costs almost no arithmetic."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.lin = nn.Linear(4 * 9 * 9, 2)

    def forward(self, x):
        return self.lin(torch.relu(self.conv(x)).flatten(1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500, help="steps per epoch")
    parser.add_argument("--repeats", type=int, default=7, help="pairs of runs")
    parser.add_argument("--step-ms", type=float, default=3.3,
                        help="a real step time to express the overhead against (CCNN, "
                             "batch 64, H200: about 3.3 ms)")
    parser.add_argument("--cpu-loop", action="store_true",
                        help="on CPU, keep skorch's per-batch loss.item() loop")
    return parser.parse_args(argv)


def plain_step_seconds(X, y, batch_size, device) -> float:
    """Seconds per step of a plain loop (one epoch after a warm-up epoch)."""
    torch.manual_seed(0)
    times = plain_loop(Tiny(), X, y, batch_size=batch_size, epochs=2, device=device,
                       bf16=False, compile_=False, seed=0)
    return times[-1][0] / -(-len(X) // batch_size)


class _GCEpochClock(EpochClock):
    """train_speed's epoch clock, also counting the garbage collections of each epoch."""

    def initialize(self):
        super().initialize()
        self.collections_ = []
        return self

    def _on_gc(self, phase, info):
        if phase == "stop":
            self.collections_[-1] += 1

    def on_epoch_begin(self, net, **kwargs):
        self.collections_.append(0)
        gc.callbacks.append(self._on_gc)
        super().on_epoch_begin(net, **kwargs)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        gc.callbacks.remove(self._on_gc)


class _GPULoopClassifier(EEGClassifier):
    """``EEGClassifier`` running, on any device, the epoch loop it runs on a GPU."""

    def _defer_loss_sync(self) -> bool:
        return True


def fit_step_seconds(X, y, batch_size, device, gpu_loop=True) -> tuple[float, int]:
    """Seconds per step of ``EEGClassifier.fit`` (second of two epochs), and its GCs."""
    clock = _GCEpochClock()
    cls = _GPULoopClassifier if gpu_loop else EEGClassifier
    cls(Tiny, max_epochs=2, batch_size=batch_size, device=device, random_state=0,
        callbacks=[("clock", clock)]).fit(X, y)
    return clock.times_[-1][0] / -(-len(X) // batch_size), clock.collections_[-1]


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    X = rng.standard_normal((n, 4, 9, 9)).astype(np.float32)
    y = rng.integers(0, 2, n)
    print(f"device={device} batch={args.batch_size} steps/epoch={args.steps} "
          f"repeats={args.repeats} torch={torch.__version__}")
    plain, fit, collections = [], [], []
    for repeat in range(args.repeats):
        for which in (("plain", "fit") if repeat % 2 == 0 else ("fit", "plain")):
            if which == "plain":
                plain.append(plain_step_seconds(X, y, args.batch_size, device))
            else:
                seconds, n_gc = fit_step_seconds(X, y, args.batch_size, device,
                                                 gpu_loop=not args.cpu_loop)
                fit.append(seconds)
                collections.append(n_gc)
    p, f = statistics.median(plain), statistics.median(fit)
    extra = f - p
    print(f"per step (medians of {args.repeats}): plain {1e6 * p:.0f} us, fit {1e6 * f:.0f} us; "
          f"fit adds {1e6 * extra:.0f} us per step")
    print("  plain: " + " ".join(f"{1e6 * s:.0f}" for s in plain) + " us")
    print("  fit:   " + " ".join(f"{1e6 * s:.0f}" for s in fit) + " us")
    print(f"  garbage collections per fit epoch: {statistics.median(collections):.0f} "
          f"(max {max(collections)})")
    print(f"as a share of a {args.step_ms:g} ms step: {100 * extra / (1e-3 * args.step_ms):+.1f} % "
          f"(fit/plain {1 + extra / (1e-3 * args.step_ms):.3f}x)")


if __name__ == "__main__":
    main()
