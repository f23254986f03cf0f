"""Training speed: a plain PyTorch loop vs ``EEGClassifier.fit`` vs a knowledge-guided epoch.

All three train the same model (same initial weights) on the same data, batch size and
optimizer (Adam, lr 1e-3), with the data on the device. Printed per batch size: the
median seconds per epoch (warm-up epoch excluded, medians over epochs and repeats),
as wall-clock time and, on CPU, also as process CPU time: the CPU time of a
one-thread run does not grow when other processes compete for the cores, so its
ratios stay meaningful on a busy machine;
the ratios to the plain loop, and peak memory (GPU: ``torch.cuda.max_memory_allocated``;
CPU: the process's peak resident set size, reset before each run through
``/proc/self/clear_refs``). With ``--repeats`` above 1 it also prints the wall-clock
ratios of each repeat, and on CPU the process-CPU-time ``kg/fit`` of each repeat: their
spread is the noise of the machine. With ``--cuda-graphs`` each ``fit`` and
knowledge-guided run also prints how its steps ran (``cuda_graph_steps_``: replayed,
eager, captures, and why graphs failed if they did, with the fallback's warning).

Targets: ``EEGClassifier`` at most 1.05x the plain loop at every batch size; a
knowledge-guided step at most 2.0x a ``fit`` step in the same layout (``kg/fit``), what
the exact gradient of the evidence costs; the measured figures and the derivation are
in ``docs/user_guide/performance.rst``. ``--mean-gradient`` takes the Grad-CAM weights
as the mean of ``ds/dA`` through the evidence layer's consumer, without the pooled
shortcut of ``skkgp/knowledge/_pooled.py``, for comparison.

The plain loop keeps the network in PyTorch's default (contiguous) layout, as a loop
written by hand does; ``fit`` and the knowledge-guided run use ``EEGClassifier``'s
default ``channels_last="auto"`` (channels-last weights for CCNN, on CPU and GPU).
``--plain-channels-last`` gives the plain loop channels-last weights too, and
``kg/fit`` (both in skkgp's layout) is the knowledge-guided step's own overhead,
whatever the layout.

Run::

    python benchmarks/train_speed.py                      # small CPU run, a few minutes
    python benchmarks/train_speed.py --device cuda --n-samples 76800 \\
        --batch-sizes 64 256 1024 4096                    # DEAP-sized, on a GPU
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

from skkgp._graphs import WARNING_MESSAGE, describe_graph_steps
from skkgp.classifier import EEGClassifier
from skkgp.models import get_model_class, infer_module_kwargs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="ccnn")
    parser.add_argument("--n-samples", type=int, default=2048)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (plus 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of every measurement")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast in every run")
    parser.add_argument("--compile", action="store_true", help="torch.compile in every run")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="fit and knowledge-guided runs replay their steps from CUDA graphs "
                             "(EEGClassifier(cuda_graphs=True)); the plain loop stays eager")
    parser.add_argument("--no-recovery", action="store_true",
                        help="skip the knowledge-guided recovery epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--plain-channels-last", action="store_true",
                        help="channels-last weights in the plain loop too")
    parser.add_argument("--mean-gradient", action="store_true",
                        help="knowledge-guided steps take the Grad-CAM weights as the mean of "
                             "ds/dA, as without the pooled shortcut (for comparison)")
    return parser.parse_args(argv)


def make_data(model: str, n_samples: int, seed: int = 0):
    """Random inputs of the model's kind: grids (n, 4, 9, 9) or raw windows (n, 32, 128)."""
    rng = np.random.default_rng(seed)
    cls = get_model_class(model)
    shape = (4, 9, 9) if getattr(cls, "input_kind", "grid") == "grid" else (32, 128)
    X = rng.standard_normal((n_samples, *shape)).astype(np.float32)
    y = rng.integers(0, 2, n_samples)
    return X, y


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets the kernel's VmHWM (peak RSS) to the current RSS
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mib = _vm_hwm_mib()
        return False


def _vm_hwm_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochClock(Callback):
    """Wall and process CPU seconds of each epoch (on_epoch_begin to on_epoch_end)."""

    def initialize(self):
        self.times_ = []
        return self

    def on_epoch_begin(self, net, **kwargs):
        sync(torch.device(net.device))
        self._start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, net, **kwargs):
        sync(torch.device(net.device))
        wall, cpu = self._start
        self.times_.append((time.perf_counter() - wall, time.process_time() - cpu))


def plain_loop(
    module, X, y, *, batch_size, epochs, device, bf16, compile_, seed
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per epoch of a plain PyTorch loop with the data on the device."""
    module = module.to(device)
    model = torch.compile(module) if compile_ else module
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    X_t = torch.from_numpy(X).to(device)
    y_t = torch.from_numpy(y).to(device)
    generator = torch.Generator().manual_seed(seed)
    times = []
    model.train()
    for _ in range(epochs):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        order = torch.randperm(len(X_t), generator=generator).to(device)
        total = torch.zeros((), device=device)
        for begin in range(0, len(X_t), batch_size):
            index = order[begin:begin + batch_size]
            xb, yb = X_t[index], y_t[index]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(xb)
            loss = criterion(logits.float(), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()  # one synchronisation per epoch, as a loop that logs the epoch loss
        sync(device)
        times.append((time.perf_counter() - start, time.process_time() - start_cpu))
    return times


def skkgp_fit(estimator, X, y, label: str) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per epoch of ``estimator.fit``.

    With ``cuda_graphs=True`` it prints how the steps ran (``label`` names the run):
    times of eager steps must not pass for graphed ones.
    """
    clock = EpochClock()
    estimator.set_params(callbacks=[("clock", clock)])
    estimator.fit(X, y)
    if estimator.cuda_graphs:
        print(f"{label}: {describe_graph_steps(getattr(estimator, 'cuda_graph_steps_', None))}",
              flush=True)
    return clock.times_


def region_mask_for(model: str):
    from skkgp import layout

    return layout.region_mask("frontal_left", layout.DEAP_CHANNELS)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mean_gradient:
        from skkgp.knowledge import _pooled

        # No consumer found: every step takes the mean of ds/dA through its consumer.
        _pooled.ConsumerCapture.plan = lambda self, logits: None
    device = torch.device(args.device)
    X, y = make_data(args.model, args.n_samples)
    cls = get_model_class(args.model)
    kwargs = infer_module_kwargs(cls, X.shape[1:], 2)
    try:
        from skkgp.knowledge.recovery import KnowledgeGuidedClassifier
    except ImportError:
        KnowledgeGuidedClassifier = None  # noqa: N806
    run_recovery = KnowledgeGuidedClassifier is not None and not args.no_recovery
    n_epochs = args.epochs + 1
    print(
        f"model={args.model} input={X.shape} device={device} threads={args.threads} "
        f"bf16={args.bf16} compile={args.compile} cuda_graphs={args.cuda_graphs} "
        f"epochs={args.epochs} (+1 warm-up) "
        f"repeats={args.repeats} torch={torch.__version__} "
        f"plain layout={'channels_last' if args.plain_channels_last else 'contiguous'} "
        f"grad-cam weights={'mean of ds/dA' if args.mean_gradient else 'pooled shortcut'}"
    )
    clocks = ("wall", "cpu") if device.type == "cpu" else ("wall",)
    header = (f"{'batch':>6} {'clock':>5} {'plain s/ep':>11} {'fit s/ep':>9} {'fit/plain':>9} "
              f"{'kg s/ep':>8} {'kg/plain':>8} {'kg/fit':>7} {'plain MiB':>9} {'fit MiB':>8} "
              f"{'kg MiB':>7}")
    print(header)
    print("-" * len(header))
    for batch_size in args.batch_sizes:
        plain, fit, kg = [], [], []
        per_repeat = []  # (fit/plain, kg/plain) of each repeat, wall clock
        kg_fit_cpu = []  # kg/fit of each repeat, process CPU time (CPU runs)
        memory = {}
        for repeat in range(args.repeats):
            seed = 1000 + repeat
            common = dict(max_epochs=n_epochs, batch_size=batch_size, device=args.device,
                          random_state=seed, precision="bf16" if args.bf16 else None,
                          compile=args.compile, cuda_graphs=args.cuda_graphs)
            runs = ["plain", "fit"] + (["kg"] if run_recovery else [])
            # Each repeat starts with another of the runs, so that no run always comes
            # first or last (warm caches, clock boosts).
            shift = repeat % len(runs)
            for which in runs[shift:] + runs[:shift]:
                # The previous run's network and estimator would count in this run's
                # peak (the CUDA peak starts from what is allocated): free them first.
                module = estimator = None
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                with PeakMemory(device) as peak, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # A fit whose steps fall back from CUDA graphs says so.
                    warnings.filterwarnings("default", message=WARNING_MESSAGE,
                                            category=RuntimeWarning)
                    if which == "plain":
                        torch.manual_seed(seed)
                        module = cls(**kwargs)
                        if args.plain_channels_last:
                            module = module.to(memory_format=torch.channels_last)
                        plain += plain_loop(module, X, y, batch_size=batch_size,
                                            epochs=n_epochs, device=device, bf16=args.bf16,
                                            compile_=args.compile, seed=seed)[1:]
                    elif which == "fit":
                        fit += skkgp_fit(EEGClassifier(args.model, **common), X, y,
                                         f"batch {batch_size} repeat {repeat} fit")[1:]
                    else:
                        estimator = KnowledgeGuidedClassifier(
                            args.model, region_mask=region_mask_for(args.model), **common)
                        kg += skkgp_fit(estimator, X, y,
                                        f"batch {batch_size} repeat {repeat} kg")[1:]
                memory[which] = peak.peak_mib
            last = args.epochs  # this repeat's timed epochs
            p = statistics.median(t[0] for t in plain[-last:])
            f = statistics.median(t[0] for t in fit[-last:])
            k = statistics.median(t[0] for t in kg[-last:]) if kg else float("nan")
            per_repeat.append((f / p, k / p))
            if kg and device.type == "cpu":
                kg_fit_cpu.append(statistics.median(t[1] for t in kg[-last:])
                                  / statistics.median(t[1] for t in fit[-last:]))
        for which, clock in enumerate(clocks):
            plain_s = statistics.median(t[which] for t in plain)
            fit_s = statistics.median(t[which] for t in fit)
            kg_s = statistics.median(t[which] for t in kg) if kg else float("nan")
            print(
                f"{batch_size:>6} {clock:>5} {plain_s:>11.4f} {fit_s:>9.4f} "
                f"{fit_s / plain_s:>8.3f}x {kg_s:>8.4f} {kg_s / plain_s:>7.3f}x "
                f"{kg_s / fit_s:>6.3f}x "
                f"{memory['plain']:>9.1f} {memory['fit']:>8.1f} "
                f"{memory.get('kg', float('nan')):>7.1f}",
                flush=True,
            )
        if args.repeats > 1:
            fit_r, kg_r = [r[0] for r in per_repeat], [r[1] for r in per_repeat]
            print(f"{'':>6} {'':>5} wall ratios of each repeat: fit/plain "
                  + " ".join(f"{r:.3f}" for r in fit_r)
                  + f" (median {statistics.median(fit_r):.3f}); kg/plain "
                  + " ".join(f"{r:.3f}" for r in kg_r)
                  + f" (median {statistics.median(kg_r):.3f})", flush=True)
            if kg_fit_cpu:
                print(f"{'':>6} {'':>5} CPU-time kg/fit of each repeat: "
                      + " ".join(f"{r:.3f}" for r in kg_fit_cpu)
                      + f" (median {statistics.median(kg_fit_cpu):.3f})", flush=True)


if __name__ == "__main__":
    main()
