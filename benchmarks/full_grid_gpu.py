"""The paper's whole grid on one GPU: what it costs, measured in about four minutes.

Stages, each in its own process with its own time limit (a stage that fails or runs
out of time is reported and the next one runs; the summary is printed in any case):

1. ``train_speed``: ``benchmarks/train_speed.py --device cuda`` on CCNN at batch 256 and
   1024 (``kg/fit``: the knowledge-guided step over a plain ``fit`` step, same layout),
   single synchronised steps with and without the pooled Grad-CAM shortcut
   (``benchmarks/knowledge_step.py``), then batch 1024 under bf16 autocast.
2. ``graphs``: ``train_speed.py --cuda-graphs`` on CCNN at batch 64, 256 and 1024: the
   same figures with every ``fit`` and knowledge-guided step replayed from a CUDA graph
   (the plain PyTorch loop stays eager).
3. ``full estimate``: ``skkgp reproduce --full --dry-run`` on DEAP-sized simulated data
   (32 subjects x 40 trials x 60 s: the windows ``load_deap(write_deap_like(...))``
   gives), for 1 worker and each ``--workers`` count: the whole grid's wall time
   extrapolated from steps timed on this GPU. Last, if time is left, the same at batch
   1024 instead of ``--full``'s 64. With ``--cuda-graphs`` the steps are timed replayed
   from CUDA graphs.
4. ``short grid``: a real ``skkgp reproduce`` run of CCNN (LFP, fine-tuning, 4 folds,
   protocol paper, 1 + 1 epochs, batch 64 as ``--full``) on a quarter of DEAP's size, with
   ``--workers 1`` and ``--workers N``: wall times, the per-cell compute time alone and
   under N concurrent workers (the throughput gain), and the largest difference
   between the two runs' accuracies (GPU kernels are not deterministic by default).
   While the parallel run trains, ``nvidia-smi`` samples each process's memory (against
   the estimate the run checks before it starts).

Run from the repository root, with skkgp importable::

    PYTHONPATH=$PWD python benchmarks/full_grid_gpu.py --workers 4 8 --budget 230

``--budget`` is the wall time in seconds the whole script may take; each stage gets
its own limit, cut to what is left.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = time.monotonic()
SUMMARY: list[str] = []


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[4],
                        help="worker counts to estimate; the first is also run for real")
    parser.add_argument("--budget", type=float, default=230.0,
                        help="wall seconds for the whole script")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["train_speed", "graphs", "estimate", "grid"],
                        help="stages to skip")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="the estimate and the short grid train with --cuda-graphs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes everywhere: checks the script itself, on a CPU too")
    return parser.parse_args(argv)


def left(budget: float) -> float:
    return budget - (time.monotonic() - START)


def run(name: str, command: list[str], limit: float, budget: float) -> tuple[int, str, float]:
    """Run ``command`` with a time limit, print its output as it comes; (rc, output, s)."""
    limit = min(limit, left(budget) - 5)
    print(f"\n=== {name} (limit {limit:.0f} s): {' '.join(command)}", flush=True)
    if limit < 10:
        print(f"=== {name}: skipped, no time left", flush=True)
        return -1, "", 0.0
    start = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)

    def pump():
        for line in process.stdout:
            lines.append(line)
            print(f"  {line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # the whole session: reproduce's worker processes too
        rc = process.wait()
        print(f"=== {name}: stopped at its limit", flush=True)
        rc = 124
    reader.join(timeout=5)
    seconds = time.monotonic() - start
    print(f"=== {name}: exit {rc} after {seconds:.1f} s", flush=True)
    return rc, "".join(lines), seconds


def stage_train_speed(args) -> None:
    budget = args.budget
    script = str(ROOT / "benchmarks" / "train_speed.py")
    samples = "512" if args.smoke else "38400"
    rc, out, _ = run("train_speed fp32", [sys.executable, script, "--device", args.device,
                                          "--n-samples", samples, "--batch-sizes", "256",
                                          "1024", "--repeats", "2"], 90, budget)
    for line in out.splitlines():
        if re.match(r"\s+(256|1024)\s+wall", line):
            fields = line.split()
            SUMMARY.append(f"train_speed fp32 batch {fields[0]}: plain {fields[2]} s/epoch, "
                           f"fit/plain {fields[4]}, kg/plain {fields[6]}, kg/fit {fields[7]}")
    if rc != 0:
        SUMMARY.append(f"train_speed fp32: exit {rc}")
    for batch in ("256", "1024"):
        rc, out, _ = run(f"knowledge_step {batch}", [
            sys.executable, str(ROOT / "benchmarks" / "knowledge_step.py"), "--device",
            args.device, "--clock", "wall", "--batch-size", batch, "--repeats", "15"], 40,
            budget)
        for line in out.splitlines():
            if "knowledge-guided" in line:
                SUMMARY.append(f"knowledge_step batch {batch} (synchronised steps): "
                               + line.strip())
    rc, out, _ = run("train_speed bf16", [sys.executable, script, "--device", args.device,
                                          "--n-samples", samples, "--batch-sizes", "1024",
                                          "--bf16"], 40, budget)
    for line in out.splitlines():
        if re.match(r"\s+1024\s+wall", line):
            fields = line.split()
            SUMMARY.append(f"train_speed bf16 batch 1024: plain {fields[2]} s/epoch, "
                           f"kg/plain {fields[6]}, kg/fit {fields[7]}")


FULL_DATA = ["--data", "synthetic", "--n-subjects", "32", "--n-trials", "40",
             "--trial-seconds", "60"]


def stage_graphs(args) -> None:
    script = str(ROOT / "benchmarks" / "train_speed.py")
    samples = "512" if args.smoke else "12800"
    rc, out, _ = run("train_speed fp32, CUDA graphs", [
        sys.executable, script, "--device", args.device, "--n-samples", samples,
        "--batch-sizes", "64", "256", "1024", "--repeats", "2", "--cuda-graphs"], 90,
        args.budget)
    for line in out.splitlines():
        if re.match(r"\s+(64|256|1024)\s+wall", line):
            fields = line.split()
            SUMMARY.append(f"train_speed CUDA graphs batch {fields[0]}: plain (eager) "
                           f"{fields[2]} s/epoch, fit/plain {fields[4]}, kg/plain {fields[6]}, "
                           f"kg/fit {fields[7]}")
    if rc != 0:
        SUMMARY.append(f"train_speed CUDA graphs: exit {rc}")


def stage_estimate(args, batch_size: int | None = None, workers=None, limit=120) -> None:
    argv = ["reproduce", "--full", *FULL_DATA, "--device", args.device]
    if args.cuda_graphs:
        argv += ["--cuda-graphs"]
    if batch_size is not None:
        argv += ["--batch-size", str(batch_size)]
    if args.smoke:
        argv += ["--models", "eegnet", "--batch-size", "8"]
    counts = [1, *(args.workers if workers is None else workers)]
    code = (
        "from skkgp.cli import build_parser, config_from_args\n"
        "from skkgp.reproduce.estimate import dry_run\n"
        f"args = build_parser().parse_args({argv!r})\n"
        f"dry_run(config_from_args(args), worker_counts={counts!r})\n"
    )
    label = ("--full" + ("" if batch_size is None else f" --batch-size {batch_size}")
             + (" --cuda-graphs" if args.cuda_graphs else ""))
    rc, out, _ = run(f"full estimate ({label})", [sys.executable, "-c", code], limit,
                     args.budget)
    for line in out.splitlines():
        if line.startswith(("grid:", "training:", "estimated wall time")):
            SUMMARY.append(f"full grid (DEAP-sized, {label}): {line}")
    if rc != 0:
        SUMMARY.append(f"full estimate ({label}): exit {rc}")


class MemorySampler(threading.Thread):
    """Largest memory nvidia-smi reports per compute process while it runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self):
        if shutil.which("nvidia-smi") is None:
            return
        while not self.stop.wait(1.0):
            try:
                text = subprocess.run(
                    ["nvidia-smi", "--query-compute-apps=pid,used_memory",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True,
                    timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            for row in text.strip().splitlines():
                pid, _, used = row.partition(",")
                if used.strip().isdigit():
                    self.peak[pid.strip()] = max(self.peak.get(pid.strip(), 0), int(used))


def _rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def stage_grid(args) -> None:
    workers, budget = args.workers[0], args.budget
    out = Path(tempfile.mkdtemp(prefix="skkgp-grid-"))
    size = ["2", "6", "4"] if args.smoke else ["8", "40", "60"]
    common = [sys.executable, "-m", "skkgp", "reproduce", "--data", "synthetic",
              "--n-subjects", size[0], "--n-trials", size[1], "--trial-seconds", size[2],
              "--models", "ccnn", "--methods", "lfp", "--recovery", "finetune",
              "--folds", "4", "--protocol", "paper", "--epochs", "1", "--recovery-epochs",
              "1", "--batch-size", "64", "--prune-ratio", "0.1", "--device", args.device,
              "--quiet", *(["--cuda-graphs"] if args.cuda_graphs else [])]
    rc1, _, wall1 = run("short grid, 1 worker", [*common, "--out", str(out / "w1")], 100,
                        budget)
    sampler = MemorySampler()
    sampler.start()
    rcn, textn, walln = run(f"short grid, {workers} workers",
                            [*common, "--workers", str(workers), "--out", str(out / "wn")],
                            100, budget)
    sampler.stop.set()
    one, many = _rows(out / "w1" / "results.csv"), _rows(out / "wn" / "results.csv")
    windows = int(size[0]) * int(size[1]) * int(size[2])
    SUMMARY.append(f"short grid (CCNN lfp finetune, 4 folds, {windows:,} windows, 1+1 epochs, "
                   f"batch 64): --workers 1 {wall1:.1f} s (exit {rc1}), --workers {workers} "
                   f"{walln:.1f} s (exit {rcn})")
    if one and many:
        def cell_seconds(rows):
            return sum(float(r["seconds"]) + float(r["origin_seconds"]) for r in rows)

        alone, shared = cell_seconds(one), cell_seconds(many)
        diffs = [abs(float(a[k]) - float(b[k])) for a, b in zip(
            sorted(one, key=lambda r: r["fold"]), sorted(many, key=lambda r: r["fold"]))
            for k in ("origin_accuracy", "baseline_accuracy", "proposed_accuracy")]
        SUMMARY.append(
            f"short grid compute (origin + cells, summed over groups): alone {alone:.1f} s, "
            f"under {workers} workers {shared:.1f} s: throughput x{workers * alone / shared:.2f}"
            f"; largest accuracy difference between the runs {max(diffs):.4f}")
    if sampler.peak:
        SUMMARY.append("nvidia-smi peak MiB per process during the parallel run: "
                       + ", ".join(f"{v}" for v in sorted(sampler.peak.values())))
    for line in textn.splitlines():
        if "--workers" in line or "error" in line:
            SUMMARY.append(f"parallel run said: {line.strip()}")
    shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"full_grid_gpu: python {sys.version.split()[0]}, budget {args.budget:.0f} s, "
          f"workers {args.workers}", flush=True)
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            SUMMARY.append(f"device: {torch.cuda.get_device_name()} ({total / 2**30:.0f} GiB, "
                           f"{free / 2**30:.0f} GiB free), torch {torch.__version__}, "
                           f"{os.cpu_count()} CPUs")
        else:
            SUMMARY.append(f"device: torch {torch.__version__} sees no CUDA device")
        del torch
    except Exception as error:  # noqa: BLE001 - reported, the stages run regardless
        SUMMARY.append(f"device: torch failed to load: {error}")
    print(SUMMARY[-1], flush=True)
    stages = [
        ("train_speed", lambda: stage_train_speed(args)),
        ("graphs", lambda: stage_graphs(args)),
        ("estimate", lambda: stage_estimate(args)),
        ("grid", lambda: stage_grid(args)),
        # The same grid at batch 1024 (other training, so other results): how far the
        # batch size moves the whole grid's time, if time is left.
        ("estimate", lambda: stage_estimate(args, 1024, args.workers[:1], 80)),
    ]
    for name, stage in stages:
        if name in args.skip:
            continue
        try:
            stage()
        except Exception as error:  # noqa: BLE001 - the next stage and the summary still run
            SUMMARY.append(f"{name}: failed: {error!r}")
    print("\n=== summary "
          f"({time.monotonic() - START:.0f} s in all)\n" + "\n".join(SUMMARY), flush=True)


if __name__ == "__main__":
    main()
