"""Latency where the model runs: origin vs LFP-pruned networks, PyTorch eager and onnxruntime.

For each zoo model the origin network and its LFP-pruned versions (ratios 0.3, 0.5 and
0.7 by default) are timed on the same inputs, in PyTorch eager (``torch.inference_mode``)
and in onnxruntime (the files :func:`skkgp.export_onnx` writes, all graph optimisations
on), at batch 1 and batch 256, on one thread and on all cores. The networks of one
(model, runtime, threads, batch) group take turns within every repeat, in an order
rotated from repeat to repeat, so that a change of load on a shared machine hits them
alike; each turn calls a network for at least ``--min-time`` seconds and keeps the median
call, and the table gives the median over the repeats.

Columns: latency of the origin and of the pruned network (ms per batch), speed-up
(origin / pruned latency), MAC reduction (origin / pruned MACs: the speed-up a perfect
kernel would give), their quotient (the share of the MAC reduction that the runtime turns
into speed), and the ONNX file sizes. ``--profile MODEL`` adds onnxruntime's per-operator
profile (one thread, batch 1) of the origin and the network pruned at 0.5, which tells
where the time goes when the quotient is low.

Run: ``python benchmarks/deploy_latency.py [--repeats 7] [--models ccnn fbccnn]
[--threads 1 all] [--profile eegnet]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from skkgp import EEGClassifier
from skkgp.export import INPUT_NAME, export_onnx
from skkgp.pruning import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _latency import MODELS, interleaved, lfp_networks  # noqa: E402 - the shared part


def session(path: Path, threads: int, profile_prefix: str | None = None):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, all cores
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(str(path), options,
                                        providers=["CPUExecutionProvider"])


def build(name: str, ratios, folder: Path, seed: int = 0):
    """Origin and pruned networks of ``name``, their MACs and their ONNX files."""
    nets, example = lfp_networks(name, ratios, seed=seed)
    shape = MODELS[name][1]
    X = np.random.default_rng(seed).standard_normal((4, *shape)).astype(np.float32)
    macs, files = {}, {}
    for label, net in nets.items():
        macs[label] = count_macs(net, example)
        estimator = EEGClassifier(net, max_epochs=0, channels_last=False).fit(X, [0, 1, 0, 1])
        stem = f"{name}-{label.replace(' ', '-')}"
        files[label] = export_onnx(estimator, folder / f"{stem}.onnx", overwrite=True)
    return nets, macs, files, shape


def measure(name: str, ratios, threads_options, batches, repeats: int, min_time: float,
            folder: Path) -> list[dict]:
    nets, macs, files, shape = build(name, ratios, folder)
    rows = []
    for threads_label in threads_options:
        threads = 1 if threads_label == "1" else os.cpu_count()
        torch.set_num_threads(threads)
        sessions = {label: session(path, 1 if threads_label == "1" else 0)
                    for label, path in files.items()}
        for batch in batches:
            x = torch.randn(batch, *shape)
            feed = {INPUT_NAME: x.numpy()}
            runtimes = {
                "torch": {label: (lambda net=net: net(x)) for label, net in nets.items()},
                "onnxruntime": {label: (lambda s=s: s.run(None, feed))
                                for label, s in sessions.items()},
            }
            for runtime, calls in runtimes.items():
                with torch.inference_mode():
                    times = interleaved(calls, repeats, min_time)
                origin = statistics.median(times["origin"])
                for label in nets:
                    if label == "origin":
                        continue
                    latency = statistics.median(times[label])
                    mac_reduction = macs["origin"] / macs[label]
                    speedup = origin / latency
                    rows.append({
                        "model": name, "runtime": runtime, "threads": threads_label,
                        "batch": batch, "net": label, "origin_ms": 1e3 * origin,
                        "pruned_ms": 1e3 * latency, "speedup": speedup,
                        "mac_reduction": mac_reduction, "efficiency": speedup / mac_reduction,
                        "origin_mb": files["origin"].stat().st_size / 1e6,
                        "pruned_mb": files[label].stat().st_size / 1e6,
                    })
    return rows


def profile(name: str, folder: Path, repeats: int = 200) -> dict[str, dict[str, float]]:
    """Microseconds per call spent in each operator type, origin vs pruned at 0.5."""
    nets, _, files, shape = build(name, (0.5,), folder)
    x = {INPUT_NAME: np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)}
    result = {}
    for label in ("origin", "lfp 0.5"):
        prefix = str(folder / f"profile-{name}-{label.replace(' ', '-')}")
        sess = session(files[label], 1, profile_prefix=prefix)
        for _ in range(repeats):
            sess.run(None, x)
        trace = json.loads(Path(sess.end_profiling()).read_text())
        # Median over the runs for each node (a shared machine's hiccups are outliers),
        # summed by operator type.
        per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
        for event in trace:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                per_node[(event["args"]["op_name"], event["name"])].append(event["dur"])
        per_op: dict[str, float] = defaultdict(float)
        for (op, _), durations in per_node.items():
            per_op[op] += statistics.median(durations)
        result[label] = dict(per_op)
    return result


def print_table(rows: list[dict], repeats: int) -> None:
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{os.cpu_count()} cores; median of {repeats} interleaved repeats")
    header = (f"{'model':<10} {'runtime':<11} {'thr':>3} {'batch':>5} {'net':<8} "
              f"{'origin ms':>10} {'pruned ms':>10} {'speed-up':>8} {'MAC red.':>8} "
              f"{'sp/MAC':>6} {'origin MB':>9} {'pruned MB':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['model']:<10} {row['runtime']:<11} {row['threads']:>3} {row['batch']:>5} "
              f"{row['net']:<8} {row['origin_ms']:>10.3f} {row['pruned_ms']:>10.3f} "
              f"{row['speedup']:>8.2f} {row['mac_reduction']:>8.2f} {row['efficiency']:>6.2f} "
              f"{row['origin_mb']:>9.2f} {row['pruned_mb']:>9.2f}")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 256])
    parser.add_argument("--threads", nargs="+", default=["1", "all"], choices=["1", "all"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds each turn runs at least (loops short calls)")
    parser.add_argument("--profile", nargs="*", default=[], choices=list(MODELS),
                        help="print onnxruntime's per-operator time for these models")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="skkgp-latency-") as folder:
        for name in args.models:
            rows += measure(name, args.ratios, args.threads, args.batches, args.repeats,
                            args.min_time, Path(folder))
        print_table(rows, args.repeats)
        for name in args.profile:
            ops = profile(name, Path(folder))
            print(f"\nonnxruntime profile of {name}, 1 thread, batch 1 (us per call by operator)")
            kinds = sorted(set(ops["origin"]) | set(ops["lfp 0.5"]),
                           key=lambda k: -ops["origin"].get(k, 0.0))
            print(f"{'operator':<24} {'origin':>9} {'lfp 0.5':>9} {'ratio':>6}")
            for kind in kinds:
                a, b = ops["origin"].get(kind, 0.0), ops["lfp 0.5"].get(kind, 0.0)
                print(f"{kind:<24} {a:>9.1f} {b:>9.1f} {a / b if b else float('nan'):>6.2f}")
            total_a, total_b = sum(ops["origin"].values()), sum(ops["lfp 0.5"].values())
            print(f"{'total':<24} {total_a:>9.1f} {total_b:>9.1f} {total_a / total_b:>6.2f}")
    return rows


if __name__ == "__main__":
    main()
