"""Hyper-parameter search of skkgp estimators on a real Dask cluster through joblib."""

import logging
import os
import signal
import threading
import time
from itertools import chain

import dask
import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score

from skkgp import EEGClassifier

distributed = pytest.importorskip("distributed")


def _set_one_thread():
    import torch

    torch.set_num_threads(1)
    return torch.get_num_threads()


# The active memory manager every 0.1 s rather than every 2 s: were it running during
# the killed-worker search, it would drop the broadcast copies well before the kill.
AMM_INTERVAL = 0.1


@pytest.fixture(scope="module")
def client():
    with dask.config.set({"distributed.scheduler.active-memory-manager.interval":
                          f"{AMM_INTERVAL}s"}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = distributed.Client(cluster)
    client.wait_for_workers(2, timeout=60)
    # Same thread count as the sequential run, so that float sums agree bit for bit.
    client.run(_set_one_thread)
    client.register_plugin(_OneThreadPlugin())
    yield client
    client.close()
    cluster.close()


class _OneThreadPlugin(distributed.WorkerPlugin):
    """Restarted workers come back single-threaded in torch too."""

    def setup(self, worker):
        _set_one_thread()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # 256 samples: a fold's train and test indices then exceed 1 kB, the size from which
    # joblib's dask backend scatters an argument by itself (to a single worker).
    n = 256
    y = np.tile([0, 1], n // 2)
    X = rng.standard_normal((n, 4, 32)).astype("float32")
    X[y == 1, :2] += 0.8
    groups = np.repeat(np.arange(4), n // 4)
    return X, y, groups


def _search(n_jobs=1, cv=None):
    net = EEGClassifier("eegnet", max_epochs=2, batch_size=16, random_state=0,
                        module__F1=4, module__D=1, module__F2=4)
    grid = {"lr": [1e-3, 1e-2], "max_epochs": [1, 3]}
    return GridSearchCV(net, grid, cv=GroupKFold(n_splits=2) if cv is None else cv,
                        n_jobs=n_jobs)


def test_grid_search_on_dask_equals_sequential(client, data):
    X, y, groups = data
    sequential = _search().fit(X, y, groups=groups)
    with joblib.parallel_backend("dask"):
        distributed_search = _search(n_jobs=-1).fit(X, y, groups=groups)
    np.testing.assert_array_equal(
        sequential.cv_results_["mean_test_score"],
        distributed_search.cv_results_["mean_test_score"],
    )
    assert sequential.best_params_ == distributed_search.best_params_
    np.testing.assert_array_equal(
        sequential.predict_proba(X), distributed_search.predict_proba(X)
    )


def test_cross_val_score_on_dask_equals_sequential(client, data):
    X, y, groups = data
    net = EEGClassifier("eegnet", max_epochs=2, batch_size=16, random_state=1,
                        module__F1=4, module__D=1, module__F2=4)
    sequential = cross_val_score(net, X, y, groups=groups, cv=GroupKFold(n_splits=4))
    with joblib.parallel_backend("dask"):
        on_dask = cross_val_score(net, X, y, groups=groups, cv=GroupKFold(n_splits=4),
                                  n_jobs=-1)
    np.testing.assert_array_equal(sequential, on_dask)


def _only_copies(dask_scheduler):
    """Worker address -> scattered keys of which it holds the only copy."""
    return {
        worker.address: sorted(str(task.key) for task in worker.has_what
                               if task.run_spec is None and len(task.who_has) == 1)
        for worker in dask_scheduler.workers.values()
    }


def test_search_survives_a_killed_worker(client, data):
    """The pattern of the user guide (docs/user_guide/scaling.rst) outlives a worker.

    Dask cannot recompute scattered data: a batch whose scattered argument loses its
    last copy is cancelled ("already forgotten"). So the active memory manager is
    stopped (it would keep one copy of the broadcast data) and the folds' indices are
    broadcast with the data (joblib would scatter them to one worker each).
    """
    X, y, groups = data
    splits = list(GroupKFold(n_splits=2).split(X, y, groups))
    n_workers = len(client.scheduler_info()["workers"])
    pids = client.run(os.getpid)
    killed = {}

    def kill_one_worker_when_busy():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [addr for addr, tasks in client.processing().items() if tasks]
            if busy:
                # The busy worker whose death would hurt most: the one holding the only
                # copy of scattered data, if any worker does.
                only_copies = client.run_on_scheduler(_only_copies)
                victim = max(busy, key=lambda addr: len(only_copies.get(addr, ())))
                # SIGKILL, as a crashed machine would: the worker gets no chance to clean up.
                os.kill(pids[victim], signal.SIGKILL)
                killed[victim] = only_copies.get(victim, [])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_when_busy)
    search = _search(n_jobs=-1, cv=splits)
    earlier_keys = set(client.who_has())
    # The pattern docs/user_guide/scaling.rst shows.
    was_running = client.amm.running()
    client.amm.stop()
    try:
        with joblib.parallel_backend("dask", scatter=[X, y, *chain.from_iterable(splits)]):
            # Long enough for the memory manager to have dropped copies, were it running.
            time.sleep(3 * AMM_INTERVAL)
            copies = {key: holders for key, holders in client.who_has().items()
                      if key not in earlier_keys}
            # X, y and the folds' indices (a fold's test indices are another's train ones).
            assert len(copies) >= 3 and all(len(holders) == n_workers
                                            for holders in copies.values()), copies
            killer.start()
            try:
                search.fit(X, y)
            except distributed.client.FutureCancelledError as error:
                pytest.fail(f"a batch was cancelled after killing {killed} (worker: the "
                            f"scattered keys it alone held): {error}")
            finally:
                killer.join()
    finally:
        if was_running:
            client.amm.start()
    assert client.amm.running() == was_running
    assert killed, "no worker was ever busy, so none was killed"
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    reference = _search().fit(X, y, groups=groups)
    np.testing.assert_array_equal(
        reference.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"]
    )
