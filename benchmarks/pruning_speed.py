"""CPU inference speed of LFP-pruned networks against their MAC reduction.

For each zoo model, the origin network and its LFP-pruned versions (ratios 0.3 and
0.5) are timed in one run on the same inputs: batch 1 and batch 256, one thread,
``torch.inference_mode``, warm-up calls first, median over repeats (the medians and
the single thread keep the figures steady on a shared machine). The table lists the
MAC ratio (origin MACs / pruned MACs, the speed-up a perfect kernel would give) next
to the measured speed-up (origin latency / pruned latency) and their quotient; the
target is a quotient of at least 0.8 at batch 256 for CCNN, FBCCNN and TSCeption.

Run: ``python benchmarks/pruning_speed.py [--repeats 7] [--threads 1] [--round-to N]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from skkgp.models import CCNN, FBCCNN, EEGNet, TSCeption
from skkgp.pruning import count_macs, prune

MODELS = {
    "ccnn": (lambda: CCNN(), (4, 9, 9)),
    "fbccnn": (lambda: FBCCNN(), (4, 9, 9)),
    # DEAP-sized raw windows: 32 electrodes, 1 s at 128 Hz.
    "eegnet": (lambda: EEGNet(chunk_size=128, num_electrodes=32), (32, 128)),
    "tsception": (lambda: TSCeption(num_electrodes=32, chunk_size=128), (32, 128)),
}
RATIOS = (0.3, 0.5)
BATCHES = (1, 256)


def latencies(
    nets: dict[str, torch.nn.Module], x: torch.Tensor, repeats: int, min_time: float
) -> dict[str, float]:
    """Median seconds per call of each net.

    The nets take turns within every repeat, so a change of machine load hits them
    alike; each turn loops a net long enough (``min_time``) to be measurable.
    """
    loops = {}
    with torch.inference_mode():
        for label, net in nets.items():
            net.eval()
            for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
                net(x)
            start = time.perf_counter()
            net(x)
            loops[label] = max(1, int(min_time / max(time.perf_counter() - start, 1e-6)))
        times: dict[str, list[float]] = {label: [] for label in nets}
        for _ in range(repeats):
            for label, net in nets.items():
                start = time.perf_counter()
                for _ in range(loops[label]):
                    net(x)
                times[label].append((time.perf_counter() - start) / loops[label])
    return {label: statistics.median(values) for label, values in times.items()}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds each repeat runs at least (loops short calls)")
    parser.add_argument("--round-to", type=int, default=None,
                        help="round kept channels up to a multiple of this")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    for name in args.models:
        build, shape = MODELS[name]
        origin = build().eval()
        example = torch.randn(2, *shape)
        nets = {"origin": origin}
        for ratio in RATIOS:
            pruned = copy.deepcopy(origin)
            prune(pruned, "lfp", ratio, example, round_to=args.round_to)
            nets[f"lfp {ratio}"] = pruned.eval()
        macs = {label: count_macs(net, example) for label, net in nets.items()}
        for batch in BATCHES:
            x = torch.randn(batch, *shape)
            times = latencies(nets, x, args.repeats, args.min_time)
            for label in nets:
                mac_ratio = macs["origin"] / macs[label]
                speedup = times["origin"] / times[label]
                rows.append({
                    "model": name, "net": label, "batch": batch, "macs": macs[label],
                    "ms": 1e3 * times[label], "mac_ratio": mac_ratio, "speedup": speedup,
                    "efficiency": speedup / mac_ratio,
                })

    header = (f"{'model':<10} {'net':<8} {'batch':>5} {'MACs/sample':>12} {'ms/batch':>10} "
              f"{'MAC ratio':>9} {'speed-up':>9} {'speed-up/MAC ratio':>19}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats}, round_to={args.round_to}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['model']:<10} {row['net']:<8} {row['batch']:>5} {row['macs']:>12,} "
              f"{row['ms']:>10.3f} {row['mac_ratio']:>9.2f} {row['speedup']:>9.2f} "
              f"{row['efficiency']:>19.2f}")
    return rows


if __name__ == "__main__":
    main()
