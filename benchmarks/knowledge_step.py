"""A knowledge-guided training step against a ``fit`` step, interleaved, on one thread.

Times single training steps of the same batch, in turn: ``EEGClassifier``'s step, the
knowledge-guided step of :class:`~skkgp.knowledge.recovery.KnowledgeGuidedClassifier`
(Grad-CAM weights through the pooled shortcut of :mod:`skkgp.knowledge._pooled`), and
the knowledge-guided step with the weights taken as the mean of ``ds/dA``. Taking the
three in turn, repeat after repeat, exposes them alike to the load of a shared machine;
the clock is process CPU time (``--clock wall`` for wall time, e.g. on a quiet machine
or a GPU, where steps are synchronised). Prints the median seconds per step and the
ratios ``kg/fit`` of each repeat.

Run::

    python benchmarks/knowledge_step.py --batch-size 256 --repeats 9
    python benchmarks/knowledge_step.py --batch-size 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from skkgp import EEGClassifier, layout
from skkgp.knowledge import _pooled
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ccnn", choices=["ccnn", "fbccnn"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.batch_size, 4, 9, 9)).astype(np.float32)
    y = np.arange(args.batch_size) % 2
    mask = layout.region_mask("frontal_left", layout.DEAP_CHANNELS)
    common = dict(max_epochs=1, batch_size=args.batch_size, random_state=0, device=args.device)
    fit = EEGClassifier(args.model, **common).fit(X, y)
    kg = KnowledgeGuidedClassifier(args.model, region_mask=mask, **common).fit(X, y)
    batch = (torch.from_numpy(X).to(device), torch.from_numpy(y).to(device))
    pooled_plan = _pooled.ConsumerCapture.plan

    def step(net) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        net.train_step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return clock() - start

    times: dict[str, list[float]] = {"fit": [], "kg": [], "kg mean": []}
    try:
        for _ in range(args.repeats):
            for name in times:
                # No consumer found: the step takes the mean of ds/dA.
                _pooled.ConsumerCapture.plan = (
                    (lambda self, logits: None) if name == "kg mean" else pooled_plan)
                times[name].append(step(fit if name == "fit" else kg))
    finally:
        _pooled.ConsumerCapture.plan = pooled_plan
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.model} batch {args.batch_size} on {args.device}, {args.threads} thread(s), "
          f"{args.clock} clock, {args.repeats} repeats, torch {torch.__version__}")
    print(f"  fit step {median['fit']:.4f} s; knowledge-guided {median['kg']:.4f} s "
          f"(kg/fit {median['kg'] / median['fit']:.3f}x); with the mean of ds/dA "
          f"{median['kg mean']:.4f} s ({median['kg mean'] / median['fit']:.3f}x)")
    for name in ("kg", "kg mean"):
        ratios = [k / f for k, f in zip(times[name], times["fit"], strict=True)]
        print(f"  {name}/fit per repeat: " + " ".join(f"{r:.3f}" for r in ratios)
              + f" (median {statistics.median(ratios):.3f})")


if __name__ == "__main__":
    main()
