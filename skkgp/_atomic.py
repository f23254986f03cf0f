"""Atomic file writes: readers (and a crash at any instant) see the old file or the new.

Each writer puts the new content in a temporary file of the destination's folder,
flushes it to disk (``fsync``) and moves it over the destination with
:func:`os.replace`, which is atomic on POSIX and Windows. A process killed mid-write
(even with ``kill -9``) leaves the previous file untouched, plus at most a stray
``.NAME.*.tmp`` file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write_bytes", "atomic_write_text", "check_destination"]


def _mode_for(path: Path) -> int:
    """Permissions of the file written at ``path``: those it has, else 0o666 - umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        pass
    try:
        with open("/proc/self/status") as status:  # reads the umask without changing it
            umask = next(int(line.split()[1], 8) for line in status
                         if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


def check_destination(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Refuse a destination file that cannot or may not be written, before any work.

    Parameters
    ----------
    path : path-like
        Destination file.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder (whatever ``overwrite``: a folder is never replaced).
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot write {str(path)!r}: folder {str(path.parent)!r} "
                                "does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"Cannot write {str(path)!r}: it is a folder.")
    if not overwrite and path.exists():
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : path-like
        Destination file; its folder must exist.
    overwrite : bool, default=True
        Whether an existing ``path`` may be replaced. When false, an existing file
        raises :class:`FileExistsError` before anything is written.

    Yields
    ------
    stream : binary file object
        Write the whole content to it. If the block raises, the temporary file is
        removed and ``path`` is left as it was.
    """
    path = check_destination(path, overwrite=overwrite)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX
            # mkstemp makes the file private to its owner; the result should have the
            # permissions a plain open() gives (or those of the file it replaces).
            os.fchmod(handle, _mode_for(path))
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            # Without fsync a power cut right after the rename could leave an empty file.
            os.fsync(stream.fileno())
        if not overwrite and path.exists():
            # Someone created it while we were writing: still never replace it.
            raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file; its folder must exist.
    data : bytes
        The whole content.
    overwrite : bool, default=True
        Whether an existing ``path`` may be replaced (see :func:`atomic_file`).
    """
    with atomic_file(path, overwrite=overwrite) as stream:
        stream.write(data)


def atomic_write_text(
    path: str | os.PathLike, text: str, *, encoding: str = "utf-8", overwrite: bool = True
) -> None:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding``.

    Parameters
    ----------
    path, overwrite
        As in :func:`atomic_write_bytes`.
    text : str
        The whole content.
    encoding : str, default="utf-8"
    """
    atomic_write_bytes(path, text.encode(encoding), overwrite=overwrite)
