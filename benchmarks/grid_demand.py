"""What ``skkgp reproduce --full`` asks of a device: its arithmetic and its kernels.

``--dry-run`` prices the grid with steps timed on one machine. This script counts what
any device has to do for it, independent of the machine that runs the script: for
each model, the floating-point operations (FLOPs of convolutions and matrix products,
PyTorch's ``flop_counter`` rules) and the operations that launch a kernel on a GPU
(:mod:`step_host`'s count, Adam's multi-tensor update as on a GPU; one kernel each, a
lower bound, since some operations launch more) of

* a plain training step and a knowledge-guided step of the origin network,
* the same steps of the network each cell's method leaves (``--full``'s ratio 0.1:
  LFP/NSFP/SFP remove filters, UMWP masks weights and keeps the dense arithmetic;
  NSFP ranks BatchNorm scales drawn uniformly, standing in for a trained origin's),
* a prediction batch,

at ``--full``'s batch size, and multiplies them by the steps of the grid, counted as
``--dry-run`` counts them (origin epochs, recovery epochs of both recoveries,
prediction batches; the few evidence batches priced as plain origin steps).
The totals give what finishing in ``--hours`` needs: a sustained FLOP rate and a
kernel rate. They are lower bounds on the work, not timings: elementwise passes,
memory traffic and the host are not in the FLOPs, and kernels that cannot overlap
must each finish in the time the kernel rate leaves them.

Run::

    python benchmarks/grid_demand.py                    # DEAP-sized, about 2 minutes
    python benchmarks/grid_demand.py --models ccnn --hours 2
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import flop_registry

from skkgp import EEGClassifier
from skkgp.cli import build_parser, config_from_args
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
from skkgp.pruning import prune
from skkgp.reproduce.config import method_family
from skkgp.reproduce.data import DataSpec, fold_indices, input_shape, load_windows, n_folds
from skkgp.reproduce.estimate import grid_work, knowledge_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_host import OperationCount  # noqa: E402  (the sibling benchmark module)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="zoo models of the grid (default: all of --full's)")
    parser.add_argument("--n-subjects", type=int, default=32)
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--trial-seconds", type=int, default=60)
    parser.add_argument("--hours", type=float, default=1.0,
                        help="the wall time whose rates are printed")
    return parser.parse_args(argv)


class StepCount(OperationCount):
    """:class:`step_host.OperationCount`, and the FLOPs of what it counts."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_dispatch__(func, types, args, kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def _count(function) -> tuple[int, int]:
    with StepCount() as count:
        function()
    return count.flops, count.kernels


def step_costs(module, shape, knowledge, batch_size, lr) -> dict[str, tuple[int, int]]:
    """(FLOPs, kernels) of a plain step, a knowledge-guided step and a prediction batch."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch_size, *shape)).astype(np.float32)
    y = np.arange(batch_size) % 2
    common = dict(max_epochs=1, batch_size=batch_size, lr=lr, random_state=0,
                  train_split=None, verbose=0, optimizer__foreach=True)
    batch = (torch.from_numpy(X), torch.from_numpy(y))
    costs = {}
    for name, net in (
        ("plain", EEGClassifier(copy.deepcopy(module), **common)),
        ("knowledge", KnowledgeGuidedClassifier(copy.deepcopy(module), **knowledge, **common)),
    ):
        net.fit(X, y)  # the optimizer's state exists from here on, as in a long fit
        costs[name] = _count(lambda net=net: net.train_step(batch))
    costs["predict"] = _count(lambda: net.predict_proba(X))
    return costs


def pruned(module, method: str, ratio: float, options, shape):
    """``module`` pruned by ``method``, as a cell's recovery starts from it."""
    net = copy.deepcopy(module).eval()
    if method == "nsfp":
        # A fresh network's BatchNorm scales are all 1 and NSFP's threshold removes
        # none; the run's origin, trained with the L1 term, has spread scales.
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in net.modules():
                if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) and layer.affine:
                    layer.weight.uniform_(0.0, 1.0, generator=generator)
    prune(net, method, ratio, torch.randn(2, *shape), method_options=options)
    return net


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cli = ["reproduce", "--full", "--data", "synthetic", "--n-subjects", str(args.n_subjects),
           "--n-trials", str(args.n_trials), "--trial-seconds", str(args.trial_seconds)]
    if args.models:
        cli += ["--models", *args.models]
    config = config_from_args(build_parser().parse_args(cli))
    bunch = load_windows(DataSpec.from_config(config))
    folds = n_folds(config, bunch)
    config = config.replace(folds=folds)
    steps = [int(np.ceil(len(fold_indices(config, bunch, f)[0]) / config.batch_size))
             for f in range(folds)]
    test_batches = [int(np.ceil(len(fold_indices(config, bunch, f)[1]) / config.batch_size))
                    for f in range(folds)]
    print(f"torch {torch.__version__}; --full on {len(bunch.y)} simulated windows, "
          f"{folds} folds, batch {config.batch_size}, {config.epochs} origin and "
          f"{config.recovery_epochs} recovery epochs, prune ratio {config.prune_ratio}")

    totals, shares = Counter(), {}

    def add(model: str, count: int, flops: int, kernels: int) -> None:
        share = shares.setdefault(model, Counter())
        for counter in (totals, share):
            counter["flops"] += count * flops
            counter["kernels"] += count * kernels
    print(f"\n{'network':24s} {'GFLOP plain':>12s} {'GFLOP kg':>9s} {'kg/plain':>9s} "
          f"{'kernels plain':>14s} {'kernels kg':>11s} {'GFLOP predict':>14s}")
    for model in config.models:
        shape = input_shape(model, bunch, config.dataset)
        knowledge = knowledge_inputs(config, model, bunch.ch_names)
        lr = config.learning_rate(model)
        X = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        origin = EEGClassifier(model, max_epochs=1, batch_size=2, train_split=None,
                               verbose=0, random_state=0).fit(X, [0, 1]).module_
        networks = {"origin": origin}
        for cell in config.cells():
            if cell.model == model and cell.method not in networks:
                networks[cell.method] = pruned(origin, cell.method, config.ratio_of(cell),
                                               config.method_options(cell.method), shape)
        costs = {}
        for name, net in networks.items():
            costs[name] = step_costs(net, shape, knowledge, config.batch_size, lr)
            (pf, pk), (kf, kk), (qf, _) = (costs[name][k]
                                           for k in ("plain", "knowledge", "predict"))
            print(f"{model + ' ' + name:24s} {pf / 1e9:12.2f} {kf / 1e9:9.2f} {kf / pf:8.2f}x "
                  f"{pk:14d} {kk:11d} {qf / 1e9:14.2f}")
        # The grid's steps of this model, as --dry-run counts them.
        for group in grid_work(config, bunch):
            if group.model != model:
                continue
            n_steps = steps[group.fold]
            origin_steps = config.epochs * n_steps
            recovery = config.recovery_epochs * n_steps
            evidence = group.plain_steps - origin_steps - group.n_cells * recovery
            flops, kernels = costs["origin"]["plain"]
            add(model, origin_steps + evidence, flops, kernels)
            flops, kernels = costs["origin"]["predict"]
            add(model, group.predict_batches, flops, kernels)
            cells = [c for c in config.cells()
                     if c.model == model and method_family(c.method) == group.family]
            assert len(cells) == group.n_cells
            for cell in cells:
                for kind in ("plain", "knowledge"):
                    flops, kernels = costs[cell.method][kind]
                    add(model, recovery, flops, kernels)
                    totals[f"{kind} steps"] += recovery
            totals["plain steps"] += origin_steps + evidence
    work = grid_work(config, bunch)
    assert totals["plain steps"] == sum(g.plain_steps for g in work)
    assert totals["knowledge steps"] == sum(g.knowledge_steps for g in work)
    seconds = args.hours * 3600
    print(f"\ngrid: {totals['plain steps']:,} plain and {totals['knowledge steps']:,} "
          f"knowledge-guided steps, {sum(g.predict_batches for g in work):,} prediction "
          f"batches")
    print(f"arithmetic: {totals['flops'] / 1e15:.4g} PFLOP; kernels: {totals['kernels']:,}")
    print("share of the arithmetic / of the kernels: " + ", ".join(
        f"{model} {share['flops'] / totals['flops']:.0%} / "
        f"{share['kernels'] / totals['kernels']:.0%}" for model, share in shares.items()))
    print(f"to finish in {args.hours:g} h: {totals['flops'] / seconds / 1e12:.4g} TFLOP/s "
          f"sustained, and {totals['kernels'] / seconds / 1e6:.4g} M kernels per second "
          f"(one every {seconds / totals['kernels'] * 1e6:.4g} us where they cannot overlap)")

if __name__ == "__main__":
    main()
