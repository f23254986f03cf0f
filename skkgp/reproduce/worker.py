"""The body of a ``skkgp reproduce --workers N`` process, light enough to import first.

A spawned worker imports the module of its body before it runs it. This one imports
neither torch nor the runner at module level, so that :func:`follow_parent` ties the
worker to its parent within moments of its start, not after the seconds a torch import
takes: a parent killed meanwhile would otherwise leave the worker to import torch and
start a task before it noticed.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import traceback

__all__ = ["follow_parent", "parent_alive", "pickled_error", "run_tasks", "unpickled_error"]

# prctl(2) option: the signal this process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """End this worker process when the process that started it ends.

    Called first in a worker's body. The parent stops its daemon workers on its way out,
    which a parent killed by a signal (the out-of-memory killer, ``kill -9``) never
    runs: its workers would go on training (holding device memory) for results nobody
    receives. On Linux, when the process that started this one is its parent in the
    kernel's sense (the ``spawn`` and ``fork`` start methods), the kernel kills this
    process with it (``PR_SET_PDEATHSIG``). Elsewhere, and under ``forkserver`` (whose
    workers are children of the fork server), :func:`parent_alive`, checked before
    each task, ends it after its current task.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if os.getppid() != parent.pid:
        # Started by a fork server, or the parent has ended already.
        if not parent.is_alive():
            os._exit(1)
        return
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    # The parent may have ended before prctl took effect: this process is then adopted.
    if os.getppid() != parent.pid:
        os._exit(1)


def parent_alive() -> bool:
    """Whether the process that started this one still runs (true in a main process)."""
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


def pickled_error(error: BaseException) -> bytes | None:
    """``error`` pickled here, or ``None`` where it does not pickle (a lock in an attribute).

    A queue pickles what it is given later, in a thread of its own, where a failure is
    only printed and the message is lost; pickled here, a failure is seen, and the
    traceback text still goes. The receiver unpickles with :func:`unpickled_error`.
    """
    try:
        return pickle.dumps(error)
    except Exception:  # noqa: BLE001 - any attribute may refuse
        return None


def unpickled_error(data: bytes | None) -> BaseException | None:
    """The exception of :func:`pickled_error`, or ``None`` where it does not unpickle here
    (an exception class whose ``__init__`` pickle cannot call back, say)."""
    if data is None:
        return None
    try:
        error = pickle.loads(data)
    except Exception:  # noqa: BLE001 - whatever its class's __init__ or __setstate__ raises
        return None
    return error if isinstance(error, BaseException) else None


def run_tasks(tasks, results, threads: int) -> None:
    """Body of a worker process: run origin groups from ``tasks`` until the ``None`` sentinel.

    Parameters
    ----------
    tasks : multiprocessing.Queue
        ``(index, group)`` pairs of :class:`~skkgp.reproduce.runner.OriginGroup`, then
        ``None``.
    results : multiprocessing.Queue
        Where ``("result", index, args)`` goes for each result
        :func:`~skkgp.reproduce.runner.run_group` reports, then ``("done", index,
        None)`` for the group, or ``("error", index, (pickled error, traceback text))``
        (the error as :func:`pickled_error` gives it).
    threads : int
        Torch CPU threads of this process.
    """
    follow_parent()
    import torch

    from skkgp.reproduce.runner import run_group

    torch.set_num_threads(threads)
    while True:
        item = tasks.get()
        if item is None or not parent_alive():
            return
        index, group = item
        try:
            run_group(group, lambda *args: results.put(("result", index, args)))
        except BaseException as error:  # noqa: BLE001 - reported to the parent, then stop
            text = "".join(traceback.format_exception(error))
            results.put(("error", index, (pickled_error(error), text)))
            return
        results.put(("done", index, None))
