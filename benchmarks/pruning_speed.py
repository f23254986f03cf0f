"""CPU inference speed of LFP-pruned networks against their MAC reduction.

For each zoo model, the origin network and its LFP-pruned versions (ratios 0.3 and
0.5) are timed in one run on the same inputs: batch 1 and batch 256, one thread,
``torch.inference_mode``, warm-up calls first; the networks take turns in every repeat
(in an order rotated from repeat to repeat), each turn gives the median of its calls and
the table the median over repeats (the medians, the turns and the single thread keep
the figures steady on a shared machine). The table lists the MAC ratio (origin MACs /
pruned MACs, the speed-up a perfect kernel would give) next to the measured speed-up
(origin latency / pruned latency) and their quotient; the target is a quotient of at
least 0.8 at batch 256 for CCNN, FBCCNN and TSCeption.

Run: ``python benchmarks/pruning_speed.py [--repeats 7] [--threads 1] [--round-to N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from skkgp.pruning import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _latency import MODELS, interleaved, lfp_networks  # noqa: E402 - the shared part

RATIOS = (0.3, 0.5)
BATCHES = (1, 256)


def latencies(
    nets: dict[str, torch.nn.Module], x: torch.Tensor, repeats: int, min_time: float
) -> dict[str, float]:
    """Median seconds per call of each net, timed in turns (:func:`_latency.interleaved`)."""
    for net in nets.values():
        net.eval()
    with torch.inference_mode():
        times = interleaved({label: (lambda net=net: net(x)) for label, net in nets.items()},
                            repeats, min_time)
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

    rows = []
    for name in args.models:
        nets, example = lfp_networks(name, RATIOS, round_to=args.round_to)
        shape = MODELS[name][1]
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
