"""Why a run stops early: divergence, and SIGINT/SIGTERM turned into a clean stop.

:func:`catch_signals` installs handlers for SIGINT (Ctrl-C) and SIGTERM for the duration of a
``with`` block, restoring the previous ones afterwards (only in the main thread: Python delivers
signals there; elsewhere it does nothing). ``defer=True`` (the training loop) only *records* the
first signal, so the loop can finish the iteration it is in, write a checkpoint of that completed
step and then raise :class:`TrainingInterrupted`; a second signal raises at once. ``defer=False``
(set-up and bookkeeping around training, e.g. ``vsm reproduce`` between runs) raises at once.

:class:`TrainingInterrupted` derives from :class:`KeyboardInterrupt`, so ``except Exception``
does not swallow a stop request; the command line prints its one-line message and exits with the
shell convention 128 + signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["StopRequest", "TrainingDiverged", "TrainingInterrupted", "catch_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the objective, the step and the loss."""


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM.

    Attributes:
        signum: the signal's number.
        step: the last completed iteration (None: before training started).
        checkpoint: the checkpoint written for ``step`` (None: none was written).
    """

    def __init__(self, signum: int, step: int | None = None, checkpoint: str | None = None):
        self.signum = int(signum)
        self.step = step
        self.checkpoint = checkpoint
        super().__init__(str(self))

    def __reduce__(self) -> tuple[type[TrainingInterrupted], tuple[int, int | None, str | None]]:
        # pickled with its own fields (a worker process sends it back to the sweep's process;
        # the default would call TrainingInterrupted(message) and fail to unpickle)
        return (type(self), (self.signum, self.step, self.checkpoint))

    @property
    def exit_code(self) -> int:
        """128 + the signal number (the shell's convention: 130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum

    def __str__(self) -> str:
        msg = f"interrupted by {signal.Signals(self.signum).name}"
        if self.step is not None:
            msg += f" after step {self.step}"
        if self.checkpoint is not None:
            msg += f"; wrote {self.checkpoint}"
        return msg


class StopRequest:
    """What :func:`catch_signals` yields: ``signum`` is the first signal received (or None)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def catch_signals(*, defer: bool) -> Iterator[StopRequest]:
    """Handle SIGINT and SIGTERM inside the block (see the module docstring)."""
    req = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if defer and req.signum is None:
            req.signum = signum
            return
        raise TrainingInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield req
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
