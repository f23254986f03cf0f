"""``skkgp reproduce --scheduler``: cells on a real Dask cluster give the sequential results."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest

from skkgp.cli import main

distributed = pytest.importorskip("distributed")

ARGS = [
    "reproduce", "--models", "eegnet", "--methods", "lfp", "umwp", "--folds", "2",
    "--epochs", "1", "--recovery-epochs", "1", "--n-subjects", "2", "--n-trials", "6",
    "--trial-seconds", "3", "--batch-size", "16", "--threads", "1", "--quiet",
]


def _main(argv):
    with redirect_stdout(io.StringIO()) as stdout, redirect_stderr(io.StringIO()) as stderr:
        status = main(argv)
    assert status == 0, stderr.getvalue()
    return status, stdout.getvalue()


def _kill_a_busy_worker(client, killed, stop):
    """SIGKILL the first worker seen running a task (its address goes into ``killed``)."""
    pids = client.run(os.getpid)
    while not stop.is_set():
        busy = [addr for addr, tasks in client.processing().items() if tasks]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.05)


def test_dask_cluster_gives_the_sequential_results(tmp_path):
    """Even when a worker dies mid-run: a task carries its origin group in its own
    arguments (nothing is scattered), so the scheduler reruns it elsewhere."""
    status, sequential_table = _main([*ARGS, "--out", str(tmp_path / "sequential")])
    assert status == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        killed, stop = [], threading.Event()
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed, stop))
        killer.start()
        try:
            status, dask_table = _main(
                [*ARGS, "--out", str(tmp_path / "dask"), "--scheduler",
                 cluster.scheduler_address]
            )
        finally:
            stop.set()
            killer.join()
        assert status == 0
        assert killed, "no worker was ever busy, so none was killed"
        # The tasks went through the scheduler (not this process).
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes)
        )
        assert "run_group" in prefixes
    timings = ["seconds", "origin_seconds"]
    sequential = pd.read_csv(tmp_path / "sequential" / "results.csv").drop(columns=timings)
    distributed_ = pd.read_csv(tmp_path / "dask" / "results.csv").drop(columns=timings)
    assert len(sequential) == 4
    pd.testing.assert_frame_equal(sequential, distributed_)
    assert dask_table == sequential_table
    # lfp and umwp prune one plainly trained origin per fold, on both sides.
    for frame in (sequential, distributed_):
        for _, fold in frame.groupby("fold"):
            assert fold["origin_accuracy"].nunique() == 1
            assert fold["origin_train_accuracy"].nunique() == 1
            assert fold["origin_region_share"].nunique() == 1


def test_missing_distributed_names_the_install_from_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # the import then fails
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as stderr:
        status = main([*ARGS, "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1"])
    assert status != 0
    assert """pip install -e ".[distributed]\"""" in stderr.getvalue()
    assert not (tmp_path / "out" / "results.csv").exists()
