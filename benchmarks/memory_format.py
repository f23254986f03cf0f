"""Channels-last vs contiguous weights: training-step time and BatchNorm accuracy per zoo model.

For each model, one training step (forward, cross-entropy, backward) on the same batch
and the same initial weights, in the contiguous layout and with the network converted
to ``torch.channels_last`` (what ``EEGClassifier(channels_last=True)`` does), timed in
interleaved rounds; printed: the median step times and their ratio. Also printed: the
largest error of the network's training-mode output (BatchNorm with batch statistics)
against a float64 copy, in each layout, since PyTorch's channels-last BatchNorm kernel
for CPUs sums its statistics less accurately. These figures set the zoo models'
``channels_last_devices`` (the layout ``channels_last="auto"`` picks).

Run::

    python benchmarks/memory_format.py                        # CPU, 1 thread, batch 256
    python benchmarks/memory_format.py --device cuda --batch-size 1024
"""

from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from skkgp.models import get_model_class, infer_module_kwargs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import sync  # noqa: E402  (the sibling benchmark)

SHAPES = {"ccnn": (4, 9, 9), "fbccnn": (4, 9, 9), "eegnet": (32, 128), "tsception": (32, 128)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=sorted(SHAPES), choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per timed round (default: 3 on CPU, 20 on a GPU)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (1st dropped)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def step_times(nets: dict, X, y, *, steps: int, rounds: int, device) -> dict:
    """Median seconds per training step of each net, timed in rotating order."""
    criterion = torch.nn.CrossEntropyLoss()
    times = {name: [] for name in nets}
    names = list(nets)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            net = nets[name]
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                net.zero_grad()
                criterion(net(X), y).backward()
            sync(device)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t[1:] if len(t) > 1 else t) for name, t in times.items()}


def train_mode_error(net, reference, X) -> float:
    """Largest |output - float64 output| in training mode (BatchNorm on batch statistics)."""
    net.train()  # dropout is 0 (main): the same function in both
    reference.train()
    with torch.no_grad():
        out = net(X).double()
        ref = reference(X.double())
    return (out - ref).abs().max().item()


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = args.steps or (20 if device.type == "cuda" else 3)
    print(f"device={device} batch={args.batch_size} threads={args.threads} steps={steps} "
          f"rounds={args.rounds} torch={torch.__version__}")
    header = (f"{'model':>10} {'contiguous ms':>13} {'channels-last ms':>16} {'ratio':>6} "
              f"{'err contiguous':>14} {'err channels-last':>17}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for model in args.models:
        cls = get_model_class(model)
        shape = SHAPES[model]
        kwargs = infer_module_kwargs(cls, shape, 2)
        if "dropout" in inspect.signature(cls).parameters:
            kwargs["dropout"] = 0.0  # the same function in both layouts, for the errors
        torch.manual_seed(0)
        contiguous = cls(**kwargs).to(device)
        last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
        reference = copy.deepcopy(contiguous).double()
        X = torch.from_numpy(rng.standard_normal((args.batch_size, *shape)).astype("float32"))
        X = X.to(device)
        y = torch.from_numpy(rng.integers(0, 2, args.batch_size)).to(device)
        errors = [train_mode_error(net, reference, X) for net in (contiguous, last)]
        t = step_times({"contiguous": contiguous, "channels_last": last}, X, y,
                       steps=steps, rounds=args.rounds, device=device)
        print(f"{model:>10} {1e3 * t['contiguous']:>13.2f} {1e3 * t['channels_last']:>16.2f} "
              f"{t['channels_last'] / t['contiguous']:>5.3f}x {errors[0]:>14.1e} "
              f"{errors[1]:>17.1e}", flush=True)


if __name__ == "__main__":
    main()
