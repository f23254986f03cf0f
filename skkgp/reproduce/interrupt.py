"""Ctrl-C during a skorch fit, which skorch ends early without a word."""

from __future__ import annotations

import signal
import threading

__all__ = ["InterruptWatch"]


class InterruptWatch:
    """Note SIGINT in this process while it is entered; :meth:`check` raises it again.

    skorch's ``partial_fit`` catches the ``KeyboardInterrupt`` of Ctrl-C and ends the fit
    early without a word. The handler here passes the signal on to the one it replaces
    (Python's, which raises ``KeyboardInterrupt``) and remembers it, so that the code
    after a fit can tell that the fit was cut short. Signal handlers belong to the main
    thread: elsewhere (a Dask worker's thread) and where SIGINT is ignored, nothing is
    installed.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def __enter__(self) -> InterruptWatch:
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and callable(previous):
            self._previous = previous
            signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _note(self, signum, frame) -> None:
        self.interrupted = True
        self._previous(signum, frame)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if SIGINT came since :meth:`__enter__`."""
        if self.interrupted:
            raise KeyboardInterrupt
