"""The paper's whole grid on one GPU: what it costs, measured in about nine minutes.

Stages, each in its own process with its own time limit, most important first (a stage
that fails or runs out of time is reported with its exit code and the next one runs;
the summary is printed in any case):

1. ``graphs``: ``benchmarks/train_speed.py --device cuda`` on CCNN at batch 256 and
   1024, eager and then with every ``fit`` and knowledge-guided step replayed from a
   CUDA graph (``--cuda-graphs``; the plain PyTorch loop stays eager): ``kg/fit``, the
   knowledge-guided step over a plain ``fit`` step, against its 2.0x target.
2. ``estimate``: ``skkgp reproduce --full --dry-run --cuda-graphs`` on DEAP-sized
   simulated data (32 subjects x 40 trials x 60 s: the windows
   ``load_deap(write_deap_like(...))`` gives), for 1 worker and each ``--workers`` count
   (each printed as soon as it is timed): the whole grid's wall time extrapolated from
   steps timed on this GPU.
3. ``grid``: a real ``skkgp reproduce`` run of CCNN (LFP, fine-tuning, 4 folds, protocol
   paper, 1 + 1 epochs, batch 64 as ``--full``) on an eighth of DEAP's size, with
   ``--workers 1`` and with the first ``--workers`` count: wall times, the per-cell
   compute time alone and under N concurrent workers (the throughput gain), and the
   largest difference between the two runs' accuracies (GPU kernels are not
   deterministic by default). While the parallel run trains, ``nvidia-smi`` samples each
   process's memory, the workers' apart from the others' (the parent's CUDA context).
4. The rest, if time is left: ``bf16`` (``train_speed.py`` at batch 1024 under bf16
   autocast), ``knowledge_step`` (``benchmarks/knowledge_step.py``: single synchronised
   steps with and without the pooled Grad-CAM shortcut, batch 256 and 1024),
   ``estimate_eager`` (stage 2 without CUDA graphs, 1 and the first ``--workers``
   count) and ``batch64`` (stage 1's eager and graphed figures at batch 64).

Run from the repository root, with skkgp importable::

    PYTHONPATH=$PWD python benchmarks/full_grid_gpu.py --workers 4 8 --budget 540

``--budget`` is the wall time in seconds the whole script may take (540 s fits one
600-second command). Each stage has a share of it: a stage's limit is what is left
minus the shares of the stages after it, so a slow stage cannot starve the later ones,
and what a stage leaves unused goes to the next. A budget below the shares' sum (530 s)
is cut from the last stages' shares first, never from the first stages' for the later
ones. ``--smoke`` checks the script on a CPU
(tiny sizes; the CUDA-graph stages are reported as skipped).
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

#: Each stage's share of the budget, in seconds, in the order the stages run (a stage of
#: two or more runs has one share per run). Sum 530: with the device query, 540 s.
SHARES = {
    "graphs": (65, 65),
    "estimate": (110,),
    "grid": (75, 75),
    "bf16": (35,),
    "knowledge_step": (20, 20),
    "estimate_eager": (35,),
    "batch64": (15, 15),
}
STAGES = tuple(SHARES)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[4],
                        help="worker counts to estimate; the first is also run for real")
    parser.add_argument("--budget", type=float, default=540.0,
                        help="wall seconds for the whole script (default 540)")
    parser.add_argument("--skip", nargs="*", default=[], choices=STAGES,
                        help="stages to skip")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="the short grid trains with --cuda-graphs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes everywhere: checks the script itself, on a CPU too")
    return parser.parse_args(argv)


def left(budget: float) -> float:
    return budget - (time.monotonic() - START)


class Budget:
    """The script's budget, and the shares still owed to the runs that come later."""

    def __init__(self, total: float, skip):
        self.total = total
        # A budget below the shares' sum takes from the last runs' shares first: owed
        # to minor stages, they would leave the first, key stages no time at all.
        self.owed = []
        for share in (share for stage, shares in SHARES.items() if stage not in skip
                      for share in shares):
            self.owed.append(max(0.0, min(share, total - sum(self.owed))))

    def next_limit(self) -> float:
        """The limit of the next run: what is left, less the later runs' shares."""
        self.skip_run()
        return left(self.total) - 5 - sum(self.owed)

    def skip_run(self) -> None:
        """The next run does not run: its share goes to the later ones."""
        if self.owed:
            self.owed.pop(0)


def run(name: str, command: list[str], budget: Budget) -> tuple[int, str, float]:
    """Run ``command`` with a time limit, print its output as it comes; (rc, output, s).

    A run that does not end with exit code 0 is added to the summary with its exit code
    (124: stopped at its limit) and its time.
    """
    limit = budget.next_limit()
    print(f"\n=== {name} (limit {limit:.0f} s): {' '.join(command)}", flush=True)
    if limit < 10:
        print(f"=== {name}: skipped, no time left", flush=True)
        SUMMARY.append(f"{name}: not run (no time left)")
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
        process.wait()
        print(f"=== {name}: stopped at its limit", flush=True)
        rc = 124
    reader.join(timeout=5)
    seconds = time.monotonic() - start
    print(f"=== {name}: exit {rc} after {seconds:.1f} s", flush=True)
    if rc != 0:
        SUMMARY.append(f"{name}: exit {rc} after {seconds:.0f} s"
                       + (" (stopped at its limit)" if rc == 124 else ""))
    return rc, "".join(lines), seconds


def skipped(name: str, reason: str) -> None:
    print(f"\n=== {name}: skipped, {reason}", flush=True)
    SUMMARY.append(f"{name}: skipped: {reason}")


def train_speed(args, budget: Budget, name: str, batches: list[str], *extra: str) -> None:
    """``train_speed.py`` on CCNN at ``batches``; one summary line per batch."""
    # Under --smoke: one small batch, once, which a CPU times in seconds.
    sizes = (["--n-samples", "128", "--batch-sizes", "32", "--epochs", "1"] if args.smoke
             else ["--n-samples", "25600", "--batch-sizes", *batches, "--repeats", "2"])
    _, out, _ = run(name, [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"),
                           "--device", args.device, *sizes, *extra], budget)
    for line in out.splitlines():
        if "CUDA graphs" in line:
            # How each graphed run's steps ran: eager figures must not pass for graphed.
            SUMMARY.append(f"{name}: {line.strip()}")
        if re.match(r"\s+\d+\s+wall", line):
            fields = line.split()
            SUMMARY.append(f"{name} batch {fields[0]}: plain {fields[2]} s/epoch, "
                           f"fit/plain {fields[4]}, kg/plain {fields[6]}, kg/fit {fields[7]}; "
                           f"peak MiB plain {fields[8]}, fit {fields[9]}, kg {fields[10]}")


def stage_graphs(args, budget: Budget, batches=("256", "1024")) -> None:
    suffix = "" if list(batches) == ["256", "1024"] else f" ({', '.join(batches)})"
    train_speed(args, budget, f"train_speed fp32 eager{suffix}", list(batches))
    if not args.cuda:
        budget.skip_run()
        skipped(f"train_speed fp32 CUDA graphs{suffix}", "needs CUDA")
        return
    train_speed(args, budget, f"train_speed fp32 CUDA graphs{suffix}", list(batches),
                "--cuda-graphs")


def stage_bf16(args, budget: Budget) -> None:
    train_speed(args, budget, "train_speed bf16", ["1024"], "--bf16")


def stage_knowledge_step(args, budget: Budget) -> None:
    # Under --smoke: a small batch and few repeats, which a CPU times in seconds.
    batches, repeats = (("16", "32"), "3") if args.smoke else (("256", "1024"), "15")
    for batch in batches:
        _, out, _ = run(f"knowledge_step {batch}", [
            sys.executable, str(ROOT / "benchmarks" / "knowledge_step.py"), "--device",
            args.device, "--clock", "wall", "--batch-size", batch, "--repeats", repeats],
            budget)
        for line in out.splitlines():
            if "knowledge-guided" in line:
                SUMMARY.append(f"knowledge_step batch {batch} (synchronised steps): "
                               + line.strip())


FULL_DATA = ["--data", "synthetic", "--n-subjects", "32", "--n-trials", "40",
             "--trial-seconds", "60"]


def stage_estimate(args, budget: Budget, *, graphs: bool, workers) -> None:
    label = "--full" + (" --cuda-graphs" if graphs else "")
    name = f"full estimate ({label})"
    if graphs and not args.cuda:
        budget.skip_run()
        skipped(name, "needs CUDA")
        return
    argv = ["reproduce", "--full", *FULL_DATA, "--device", args.device]
    if graphs:
        argv += ["--cuda-graphs"]
    if args.smoke:
        argv += ["--models", "eegnet", "--batch-size", "8"]
    counts = [1, *workers]
    code = (
        "from skkgp.cli import build_parser, config_from_args\n"
        "from skkgp.reproduce.estimate import dry_run\n"
        f"args = build_parser().parse_args({argv!r})\n"
        f"dry_run(config_from_args(args), worker_counts={counts!r})\n"
    )
    _, out, _ = run(name, [sys.executable, "-c", code], budget)
    # The dry run prints each worker count's estimate as soon as it is timed: what a run
    # stopped at its limit measured is here too.
    for line in out.splitlines():
        if line.startswith(("grid:", "training:", "estimated wall time", "CUDA graphs")):
            SUMMARY.append(f"full grid (DEAP-sized, {label}): {line}")


class MemorySampler(threading.Thread):
    """Largest memory nvidia-smi reports per compute process while it runs.

    Each process is labelled ``worker`` (a multiprocessing worker: ``spawn_main`` on its
    command line) or ``other`` (the run's parent, whose CUDA context holds memory too).
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.kind: dict[str, str] = {}
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
                pid, _, used = (part.strip() for part in row.partition(","))
                if used.isdigit():
                    self.peak[pid] = max(self.peak.get(pid, 0), int(used))
                    if pid not in self.kind:
                        try:
                            command = Path(f"/proc/{pid}/cmdline").read_bytes()
                        except OSError:
                            command = b""
                        self.kind[pid] = "worker" if b"spawn_main" in command else "other"

    def summary(self) -> str:
        def listed(kind: str) -> str:
            return ", ".join(f"pid {pid} {mib}" for pid, mib in sorted(self.peak.items())
                             if self.kind.get(pid) == kind) or "none"

        return ("nvidia-smi peak MiB per process during the parallel run: workers "
                f"{listed('worker')}; other processes (the parent's CUDA context) "
                f"{listed('other')}")


def _rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def stage_grid(args, budget: Budget) -> None:
    workers = args.workers[0]
    out = Path(tempfile.mkdtemp(prefix="skkgp-grid-"))
    size = ["2", "6", "4"] if args.smoke else ["4", "40", "60"]
    common = [sys.executable, "-m", "skkgp", "reproduce", "--data", "synthetic",
              "--n-subjects", size[0], "--n-trials", size[1], "--trial-seconds", size[2],
              "--models", "ccnn", "--methods", "lfp", "--recovery", "finetune",
              "--folds", "4", "--protocol", "paper", "--epochs", "1", "--recovery-epochs",
              "1", "--batch-size", "64", "--prune-ratio", "0.1", "--device", args.device,
              "--quiet", *(["--cuda-graphs"] if args.cuda_graphs else [])]
    rc1, _, wall1 = run("short grid, 1 worker", [*common, "--out", str(out / "w1")], budget)
    sampler = MemorySampler()
    sampler.start()
    rcn, textn, walln = run(f"short grid, {workers} workers",
                            [*common, "--workers", str(workers), "--out", str(out / "wn")],
                            budget)
    sampler.stop.set()
    one, many = _rows(out / "w1" / "results.csv"), _rows(out / "wn" / "results.csv")
    windows = int(size[0]) * int(size[1]) * int(size[2])
    SUMMARY.append(f"short grid (CCNN lfp finetune, 4 folds, {windows:,} windows, 1+1 epochs, "
                   f"batch 64{', CUDA graphs' if args.cuda_graphs else ''}): --workers 1 "
                   f"{wall1:.1f} s (exit {rc1}), --workers {workers} {walln:.1f} s "
                   f"(exit {rcn})")
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
        SUMMARY.append(sampler.summary())
    for line in textn.splitlines():
        if "--workers" in line or "error" in line:
            SUMMARY.append(f"parallel run said: {line.strip()}")
    shutil.rmtree(out, ignore_errors=True)


_DEVICE_QUERY = """
import os, sys, torch
device = sys.argv[1]
if device.startswith("cuda") and torch.cuda.is_available():
    free, total = torch.cuda.mem_get_info()
    print(f"cuda device: {torch.cuda.get_device_name()} ({total / 2**30:.0f} GiB, "
          f"{free / 2**30:.0f} GiB free), torch {torch.__version__}, {os.cpu_count()} CPUs")
else:
    print(f"device: {device}; torch {torch.__version__} sees no CUDA device, "
          f"{os.cpu_count()} CPUs")
"""


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"full_grid_gpu: python {sys.version.split()[0]}, budget {args.budget:.0f} s, "
          f"workers {args.workers}", flush=True)
    # Asked in a process of its own: a CUDA context here would hold device memory
    # through every stage.
    query = subprocess.run([sys.executable, "-c", _DEVICE_QUERY, args.device],
                           capture_output=True, text=True, timeout=120)
    line = (query.stdout.strip().splitlines() or [""])[-1]
    if query.returncode != 0 or not line:
        line = f"device: torch failed to load: {query.stderr.strip()[-500:]}"
    args.cuda = line.startswith("cuda device:")
    SUMMARY.append(line)
    print(line, flush=True)
    budget = Budget(args.budget, args.skip)
    stages = {
        "graphs": lambda: stage_graphs(args, budget),
        "estimate": lambda: stage_estimate(args, budget, graphs=True, workers=args.workers),
        "grid": lambda: stage_grid(args, budget),
        "bf16": lambda: stage_bf16(args, budget),
        "knowledge_step": lambda: stage_knowledge_step(args, budget),
        "estimate_eager": lambda: stage_estimate(args, budget, graphs=False,
                                                 workers=args.workers[:1]),
        "batch64": lambda: stage_graphs(args, budget, batches=("64",)),
    }
    for name in STAGES:
        if name in args.skip:
            continue
        owed = len(budget.owed)
        try:
            stages[name]()
        except Exception as error:  # noqa: BLE001 - the next stage and the summary still run
            SUMMARY.append(f"{name}: failed: {error!r}")
        # A stage that failed before all its runs started leaves their shares to the rest.
        del budget.owed[:len(budget.owed) - (owed - len(SHARES[name]))]
    print("\n=== summary "
          f"({time.monotonic() - START:.0f} s in all)\n" + "\n".join(SUMMARY), flush=True)


if __name__ == "__main__":
    main()
