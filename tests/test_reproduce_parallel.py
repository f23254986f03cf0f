"""``skkgp reproduce --workers N``: worker processes give the sequential results."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import queue as queue_module
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from skkgp.cli import main
from skkgp.reproduce.config import ConfigError, ReproduceConfig
from skkgp.reproduce.parallel import (
    CUDA_CONTEXT_BYTES,
    WorkerError,
    check_workers,
    run_parallel,
    run_workers,
    worker_memory,
)
from skkgp.reproduce.runner import OriginGroup
from skkgp.reproduce.worker import pickled_error, run_tasks, unpickled_error

# Two models x 2 folds: four origin groups for two workers, each pruning its origin at
# two ratios. --threads 1 on both sides:
# torch's CPU kernels split their work by the thread count, so equal threads are what
# makes float results bit-identical.
ARGS = [
    "reproduce", "--models", "eegnet", "tsception", "--methods", "lfp", "--folds", "2",
    "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2", "--n-trials", "6",
    "--trial-seconds", "3", "--batch-size", "16", "--threads", "1", "--ratios", "0.3", "0.7",
    "--quiet",
]
TIMINGS = ["seconds", "origin_seconds"]


def _main(argv):
    with redirect_stdout(io.StringIO()) as stdout, redirect_stderr(io.StringIO()) as stderr:
        status = main(argv)
    return status, stdout.getvalue(), stderr.getvalue()


def test_two_workers_give_the_sequential_results_and_resume(tmp_path):
    status, sequential_table, stderr = _main([*ARGS, "--out", str(tmp_path / "one")])
    assert status == 0, stderr
    out = tmp_path / "two"
    status, parallel_table, stderr = _main([*ARGS, "--workers", "2", "--out", str(out)])
    assert status == 0, stderr
    sequential = pd.read_csv(tmp_path / "one" / "results.csv")
    parallel = pd.read_csv(out / "results.csv")
    assert len(sequential) == 8
    # Every value equal, accuracies and evidence shares included; only the timings differ.
    pd.testing.assert_frame_equal(sequential.drop(columns=TIMINGS),
                                  parallel.drop(columns=TIMINGS), check_exact=True)
    assert parallel_table == sequential_table
    assert "computed 8 and reused 0 of 8" in (out / "run.log").read_text()

    # Each result was stored on its own: a parallel run resumes what is missing.
    victim = next((out / "cells").glob("tsception-*-r0.7-*fold1.json"))
    kept = {p.name: p.read_bytes() for p in (out / "cells").glob("*.json") if p != victim}
    victim.unlink()
    status, resumed_table, stderr = _main([*ARGS, "--workers", "8", "--out", str(out)])
    assert status == 0, stderr
    # The grid has 4 origin groups: no more workers start, and the check counts those
    # (its thread warning, where there are fewer cores, names 4).
    assert "--workers 8" not in stderr
    assert victim.exists()
    for name, content in kept.items():
        assert (out / "cells" / name).read_bytes() == content
    assert "computed 1 and reused 7 of 8" in (out / "run.log").read_text().splitlines()[-1]
    assert resumed_table == sequential_table


def test_a_resumed_run_without_threads_gives_the_unbroken_results(tmp_path):
    # Without --threads each worker gets its share of the cores: a resumed run that has
    # one origin group left must still give it the share of the whole grid's workers,
    # or torch rounds its sums differently (with 2 or more cores).
    argv = ["reproduce", "--models", "eegnet", "--methods", "lfp", "--folds", "2",
            "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2", "--n-trials", "6",
            "--trial-seconds", "3", "--batch-size", "16", "--ratios", "0.3", "--quiet",
            "--workers", "2", "--out", str(tmp_path / "out")]
    status, _, stderr = _main(argv)
    assert status == 0, stderr
    victim = next((tmp_path / "out" / "cells").glob("*fold1.json"))
    unbroken = json.loads(victim.read_text())
    victim.unlink()
    status, _, stderr = _main(argv)
    assert status == 0, stderr
    resumed = json.loads(victim.read_text())
    for name in TIMINGS:
        unbroken.pop(name), resumed.pop(name)
    assert resumed == unbroken


def test_workers_with_a_scheduler_are_refused(tmp_path):
    status, _, stderr = _main([*ARGS, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1",
                               "--out", str(tmp_path / "out")])
    assert status == 2
    assert "--workers 2 with --scheduler" in stderr


def test_more_threads_than_cores_warns(tmp_path):
    config = ReproduceConfig(threads=64)
    messages = check_workers(config, 2, {"ccnn": (4, 9, 9)}, 2, 100)
    assert messages and "128 threads" in messages[0] and "--workers" in messages[0]
    assert check_workers(ReproduceConfig(threads=1), 1, {"ccnn": (4, 9, 9)}, 2, 100) == []


def test_cuda_workers_that_do_not_fit_are_refused():
    config = ReproduceConfig(models=("ccnn",), device="cuda", batch_size=256)
    one = worker_memory("ccnn", (4, 9, 9), 2, 76800, 256).total
    # Room for exactly three workers: three pass, four are refused with the figures.
    check_workers(config, 3, {"ccnn": (4, 9, 9)}, 2, 76800, free_bytes=3 * one)
    with pytest.raises(ConfigError, match=r"--workers 4 do not fit cuda.*Use --workers 3"):
        check_workers(config, 4, {"ccnn": (4, 9, 9)}, 2, 76800, free_bytes=3 * one + 1)


def test_memory_estimate_grows_with_batch_and_data():
    small = worker_memory("ccnn", (4, 9, 9), 2, 1000, 64)
    assert small.context == CUDA_CONTEXT_BYTES
    # CCNN: 6,233,602 float32 parameters, 12 copies (weights, gradients, 2 Adam moments
    # of three networks).
    assert small.parameters == 4 * 6_233_602 * 12
    assert worker_memory("ccnn", (4, 9, 9), 2, 1000, 128).activations == 2 * small.activations
    assert worker_memory("ccnn", (4, 9, 9), 2, 2000, 64).data == 2 * small.data
    graphed = worker_memory("ccnn", (4, 9, 9), 2, 1000, 64, cuda_graphs=True)
    assert graphed.activations == 2 * small.activations
    assert graphed.total - small.total == small.activations
    raw = worker_memory("eegnet", (32, 128), 2, 1000, 64)
    assert raw.data == 2 * 4 * 1000 * 32 * 128


def test_a_failing_worker_stops_the_run_with_its_traceback():
    # A group whose model does not exist fails inside the worker.
    config = ReproduceConfig(models=("eegnet",), n_subjects=2, n_trials=6, trial_seconds=3,
                             epochs=1, recovery_epochs=1, folds=2, batch_size=16, threads=1)
    from skkgp.reproduce.config import Cell

    bad = OriginGroup(config, "nosuchmodel", "plain", 0, (Cell("nosuchmodel", "lfp", "finetune"),))
    seen = []
    with pytest.raises(WorkerError, match="nosuchmodel"):
        run_parallel([bad], lambda *args: seen.append(args), 2, threads=1)
    assert seen == []


# A ratio that masks whole layers of EEGNet (umwp): the pruner refuses it with a
# LayerCollapseError, an exception whose __init__ takes more than its message.
_COLLAPSE = [
    "reproduce", "--models", "eegnet", "--methods", "umwp", "--prune-ratio", "0.999",
    "--folds", "2", "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2",
    "--n-trials", "6", "--trial-seconds", "3", "--threads", "1", "--quiet",
]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_ratio_that_collapses_a_layer_is_a_bad_option_with_or_without_workers(
        tmp_path, workers):
    status, _, stderr = _main([*_COLLAPSE, "--workers", workers, "--out", str(tmp_path)])
    assert status == 2, stderr[-2000:]
    assert ("skkgp reproduce: error: --prune-ratio 0.999 is too large for eegnet with umwp"
            in stderr)
    assert "would mask every weight of" in stderr
    # Advice in the command line's terms: a ratio that works, no Python-only option.
    usable = float(re.search(r"pass at most ([\d.]+)\.", stderr).group(1))
    assert 0 < usable < 0.999 and "global_pruning" not in stderr
    assert "Traceback" not in stderr


class _HoldsALock(RuntimeError):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class _NeedsTwoArguments(RuntimeError):
    def __init__(self, message, detail):
        super().__init__(message)
        self.detail = detail


def test_worker_errors_pickle_where_they_can_and_are_sent_as_text_otherwise():
    # A queue pickles in a thread of its own, where a failure is lost: the worker pickles
    # the error itself, and the receiver unpickles it where it can.
    assert pickled_error(_HoldsALock("held")) is None
    assert unpickled_error(pickled_error(_NeedsTwoArguments("two", 2))) is None
    sent = unpickled_error(pickled_error(ValueError("plain")))
    assert type(sent) is ValueError and str(sent) == "plain"
    assert unpickled_error(None) is None


def test_a_worker_sends_its_error_pickled_beside_its_traceback():
    import torch

    config = ReproduceConfig(models=("eegnet",), n_subjects=2, n_trials=6, trial_seconds=3,
                             epochs=1, recovery_epochs=1, folds=2, batch_size=16, threads=1)
    from skkgp.reproduce.config import Cell

    bad = OriginGroup(config, "nosuchmodel", "plain", 0, (Cell("nosuchmodel", "lfp", "finetune"),))
    tasks, results = queue_module.Queue(), queue_module.Queue()
    tasks.put((0, bad))
    threads = torch.get_num_threads()
    run_tasks(tasks, results, threads)  # in this process: no parent to follow
    assert torch.get_num_threads() == threads
    kind, index, (data, text) = results.get_nowait()
    assert (kind, index) == ("error", 0) and "nosuchmodel" in text
    error = unpickled_error(data)
    assert isinstance(error, Exception) and "nosuchmodel" in str(error)


_FAIL_EARLY = """
from skkgp.reproduce.config import Cell, ReproduceConfig
from skkgp.reproduce.parallel import WorkerError, run_parallel
from skkgp.reproduce.runner import OriginGroup

if __name__ == "__main__":
    config = ReproduceConfig(models=("eegnet",), n_subjects=2, n_trials=6, trial_seconds=3,
                             epochs=1, recovery_epochs=1, folds=2, batch_size=16, threads=1)
    cell = (Cell("nosuchmodel", "lfp", "finetune"),)
    groups = [OriginGroup(config, "nosuchmodel", "plain", fold, cell) for fold in range(300)]
    try:
        run_parallel(groups, lambda *args: None, 1, threads=1)
    except WorkerError:
        print("stopped", flush=True)
"""


def test_a_run_stopped_early_exits_with_its_tasks_untaken(tmp_path):
    # 300 groups are over 200 kB of tasks, more than a pipe holds: after the first one
    # fails, the rest stay behind, and exiting must not wait to write them into a pipe
    # no worker reads any more (it waited forever).
    script = tmp_path / "fail_early.py"
    script.write_text(_FAIL_EARLY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped" in done.stdout


# ---------------------------------------------------------------- run_workers
# The workers' bodies are standard-library callables: a spawned process imports them by
# name, which a test module's functions need not allow.
def _zombie_children() -> set[int]:
    """Processes of this one that ended and were never joined (state Z in /proc).

    Compared before and after a call: other tests in this process may leave their own.
    """
    zombies = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.add(int(stat.parent.name))
    return zombies


def _refused(exitcode: int) -> RuntimeError:
    return RuntimeError(f"exit code {exitcode}")


def test_run_workers_hands_every_message_over_and_leaves_no_process():
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    received = []

    def receive(message) -> bool:
        received.append(message)
        return len(received) == 3

    before = _zombie_children(), set(multiprocessing.active_children())
    run_workers(context, results.put, ("hello",), 3, results, receive, _refused)
    assert received == ["hello"] * 3
    assert _zombie_children() <= before[0]
    assert set(multiprocessing.active_children()) <= before[1]


@pytest.mark.parametrize(
    ("target", "args", "message"),
    [
        (os._exit, (3,), "exit code 3"),  # a worker dies
        (time.sleep, (0,), "exit code 0"),  # the workers end without sending anything
    ],
)
def test_run_workers_reports_workers_that_end_unfinished(target, args, message):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    before = _zombie_children()
    with pytest.raises(RuntimeError, match=message):
        run_workers(context, target, args, 2, results, lambda message: False, _refused,
                    poll=0.1)
    assert _zombie_children() <= before


def test_an_error_while_receiving_stops_the_workers():
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    results.put("x")  # the message that receive refuses, while the worker sleeps

    def receive(message) -> bool:
        raise ValueError(f"cannot take {message!r}")

    before = _zombie_children(), set(multiprocessing.active_children())
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot take 'x'"):
        run_workers(context, time.sleep, (60,), 2, results, receive, _refused)
    # Stopped, not waited for.
    assert time.perf_counter() - start < 30
    assert _zombie_children() <= before[0]
    assert set(multiprocessing.active_children()) <= before[1]


def test_a_message_that_does_not_unpickle_here_stops_the_workers_through_failure():
    # The worker's object pickles, but unpickling it here raises (an exception class
    # whose __init__ pickle cannot call back, say): failure decides what to raise.
    body = ("class Unreadable:\n"
            "    def __reduce__(self):\n"
            "        return int, ('not a number',)\n"
            "results.put(Unreadable())\n")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    before = _zombie_children(), set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="invalid literal for int"):
        run_workers(context, exec, (body, {"results": results}), 1, results,
                    lambda message: False, lambda cause: RuntimeError(repr(cause)), poll=0.1)
    assert _zombie_children() <= before[0]
    assert set(multiprocessing.active_children()) <= before[1]


def test_run_workers_leaves_an_ignored_sigterm_ignored():
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    received = []

    def receive(message) -> bool:
        if not received:
            os.kill(os.getpid(), signal.SIGTERM)
        received.append(message)
        return len(received) == 2

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        run_workers(context, results.put, ("hello",), 2, results, receive, _refused)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == ["hello"] * 2


class _SecondSigterm(Exception):
    pass


def test_a_second_sigterm_while_the_workers_are_joined_leaves_none_running():
    # A worker that ignores SIGTERM, so that the join after the first one waits; the
    # second reaches the caller's own handler, and the worker is killed on the way out.
    linger = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "results.put(os.getpid()); time.sleep(60)")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = []

    def receive(message) -> bool:
        workers.append(message)
        threading.Timer(3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        os.kill(os.getpid(), signal.SIGTERM)
        return False

    def callers(signum, frame):
        raise _SecondSigterm

    previous = signal.signal(signal.SIGTERM, callers)
    try:
        with pytest.raises(_SecondSigterm):
            run_workers(context, exec, (linger, {"results": results}), 1, results, receive,
                        _refused)
        assert signal.getsignal(signal.SIGTERM) is callers
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(workers) == 1
    assert _wait_gone(workers, 10) == []


# ------------------------------------------------- a parent or a worker that is killed
# Long enough that no worker finishes on its own while the tests watch.
_LONG = [
    "reproduce", "--models", "eegnet", "tsception", "--methods", "lfp", "--folds", "2",
    "--epochs", "300", "--recovery-epochs", "300", "--n-subjects", "2", "--n-trials", "6",
    "--trial-seconds", "3", "--batch-size", "16", "--threads", "1", "--quiet",
    "--workers", "2",
]


def _workers_of(pid: int) -> list[int]:
    """The multiprocessing workers (not the resource tracker) started by ``pid``."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in command:
            workers.append(int(stat.parent.name))
    return workers


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _start_long_run(tmp_path):
    """A ``--workers 2`` run in its own process, once both its workers run; (process, pids)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "skkgp", *_LONG, "--out", str(tmp_path / "out")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(workers := _workers_of(process.pid)) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the workers did not start: {process.communicate()[1][-2000:]}")
        time.sleep(0.2)
    return process, workers


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := _alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _kill(pids) -> None:
    for pid in _alive(pids):
        os.kill(pid, signal.SIGKILL)


def test_a_dead_worker_ends_the_run_with_exit_3(tmp_path):
    process, workers = _start_long_run(tmp_path)
    try:
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 3, stderr[-2000:]
        assert "error: a worker process died (exit code -9)" in stderr
        assert "Traceback" not in stderr
        assert _wait_gone(workers, 10) == []
    finally:
        process.kill()
        _kill(workers)


def _wait_armed(pids, seconds: float = 120) -> None:
    """Wait until each worker has loaded torch, which it imports after follow_parent."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        while b"libtorch" not in Path(f"/proc/{pid}/maps").read_bytes():
            assert time.monotonic() < deadline, f"worker {pid} did not import torch"
            time.sleep(0.2)


def test_a_worker_ties_itself_to_its_parent_before_importing_torch():
    # What a worker of ``python -m skkgp`` imports before its body runs: the main module,
    # then the body's module. Without torch among them, follow_parent runs within
    # moments of the worker's start.
    code = ("import sys, skkgp.__main__, skkgp.reproduce.worker; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_follow_parent_keeps_a_worker_of_a_live_parent(method):
    # Under forkserver the worker's kernel parent is the fork server, not this process:
    # that is no reason to end it.
    context = multiprocessing.get_context(method)
    results = context.Queue()
    body = ("from skkgp.reproduce.parallel import follow_parent; follow_parent(); "
            "results.put('past follow_parent')")
    process = context.Process(target=exec, args=(body, {"results": results}))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert results.get(timeout=10) == "past follow_parent"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_workers_end_with_their_parent(how, tmp_path):
    process, workers = _start_long_run(tmp_path)
    try:
        if how == "SIGKILL":
            # Killed once the death signal is armed, it is the kernel that ends them.
            _wait_armed(workers)
        process.send_signal(getattr(signal, how))
        _, stderr = process.communicate(timeout=60)
        if how == "SIGTERM":
            # The parent stops its workers and says so; what they finished is saved.
            assert process.returncode == 143, stderr[-2000:]
            assert "terminated; the workers were stopped" in stderr
            assert "Traceback" not in stderr
        # Killed, the parent runs nothing: the workers must end by themselves (each
        # has minutes of training left, far more than this generous wait for a loaded
        # machine).
        assert _wait_gone(workers, 60) == []
    finally:
        process.kill()
        _kill(workers)


def test_workers_help_names_the_threads_condition(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "are those of --workers 1 with the same --threads" in text
