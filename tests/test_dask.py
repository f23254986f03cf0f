"""Hyper-parameter search of skkgp estimators on a real Dask cluster through joblib."""

import logging
import os
import signal
import threading
import time

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


@pytest.fixture(scope="module")
def client():
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
    n = 48
    y = np.tile([0, 1], n // 2)
    X = rng.standard_normal((n, 4, 32)).astype("float32")
    X[y == 1, :2] += 0.8
    groups = np.repeat(np.arange(4), n // 4)
    return X, y, groups


def _search(n_jobs=1):
    net = EEGClassifier("eegnet", max_epochs=2, batch_size=16, random_state=0,
                        module__F1=4, module__D=1, module__F2=4)
    grid = {"lr": [1e-3, 1e-2], "max_epochs": [1, 3]}
    return GridSearchCV(net, grid, cv=GroupKFold(n_splits=2), n_jobs=n_jobs)


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


@pytest.mark.xfail(
    raises=distributed.client.FutureCancelledError, strict=False,
    reason="distributed sometimes cancels a joblib batch whose worker was killed "
           "('already forgotten') instead of rerunning it (scattered data and futures are not "
           "resilient to worker death, dask/distributed#3149); seen in 2 of about 15 full-suite "
           "runs on a loaded 2-core machine. Any other failure still fails the test.",
)
def test_search_survives_a_killed_worker(client, data):
    X, y, groups = data
    killed = []
    pids = client.run(os.getpid)

    def kill_one_worker_when_busy():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [addr for addr, tasks in client.processing().items() if tasks]
            if busy:
                # SIGKILL, as a crashed machine would: the worker gets no chance to clean up.
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_when_busy)
    search = _search(n_jobs=-1)
    # Broadcasting the data to every worker is what lets the search outlive a worker:
    # joblib otherwise scatters X to a single worker, and its loss cancels every task.
    with joblib.parallel_backend("dask", scatter=[X, y]):
        killer.start()
        search.fit(X, y, groups=groups)
    killer.join()
    assert killed, "no worker was ever busy, so none was killed"
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    reference = _search().fit(X, y, groups=groups)
    np.testing.assert_array_equal(
        reference.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"]
    )
