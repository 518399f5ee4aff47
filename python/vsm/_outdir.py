"""One writer per output folder: the lock that ``vsm train`` and ``vsm reproduce`` hold on ``--out``.

Two processes writing the same folder would each replace the other's ``results.json`` or
checkpoint (atomically, so the last one wins and finished runs of the other silently disappear).
:func:`claim_out_dir` creates the folder (an unwritable one fails here, before any work) and takes
an exclusive :func:`fcntl.flock` on ``<out>/.vsm.lock`` for the duration of a ``with`` block; a
second process then stops at once with :class:`vsm._errors.OutDirBusy`, naming the holder's pid
and command. The kernel drops the lock when its holder exits, however it exits (``kill -9``
included), so a crashed run never leaves the folder locked; the file itself stays (deleting it
would let a third process lock a fresh file while a second still holds the old one).

On systems without :mod:`fcntl` (Windows) the folder is created and checked but not locked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import OutDirBusy

__all__ = ["LOCK_NAME", "claim_out_dir"]

LOCK_NAME = ".vsm.lock"


@contextmanager
def claim_out_dir(out: str | os.PathLike[str], *, lock: bool = True) -> Iterator[str]:
    """Create ``out`` if needed and hold its lock inside the block (yields the folder's path).

    ``lock=False`` only creates and checks the folder (e.g. the ranks other than 0 of a
    data-parallel run, which write nothing).

    Raises:
        OSError: the folder cannot be created or written (a missing parent under ``/proc``, no
            permission, a file in the way).
        OutDirBusy: another process holds the folder's lock.
    """
    path = os.fspath(out)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        why = f"cannot create the output folder: {e.strerror or e}"
        raise type(e)(e.errno, why, path) from e
    if not os.access(path, os.W_OK):
        raise PermissionError(13, "Permission denied: cannot write the output folder", path)
    if not lock:
        yield path
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not on POSIX)
        yield path
        return
    lock_path = os.path.join(path, LOCK_NAME)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            who = f" ({holder})" if holder else ""
            raise OutDirBusy(
                f"another vsm process{who} is writing to this output folder; wait for it "
                f"or choose another --out ({path})"
            ) from None
        os.ftruncate(fd, 0)
        cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        os.pwrite(fd, f"pid {os.getpid()}: {cmd}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
