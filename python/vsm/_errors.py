"""The errors that the ``vsm`` command line reports in one line (``vsm: error: ...``), not as a bug.

- :class:`UsageError`: a bad option value or combination (exit status 2);
- :class:`BadFileError`: a file vsm reads (checkpoint, ``results.json``, data file) that is not
  what it should be: another kind of file, junk, truncated, or one that would need code to load
  (exit status 1). It is a :class:`ValueError`, the type vsm's readers raised before, and its
  message ends with the file, ``... (path)``;
- :class:`OutDirBusy`: another vsm process writes to the same output folder (exit status 1).

:func:`vsm.cli.main` turns these (and :class:`OSError`, e.g. a missing file or an unwritable
folder) into one line on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os

__all__ = ["BadFileError", "OutDirBusy", "UsageError"]


class UsageError(ValueError):
    """A bad command-line option value or combination (exit status 2)."""


class BadFileError(ValueError):
    """A file vsm reads does not hold what it should.

    The message is ``"<arg>: <what> (<path>)[; <hint>]"``: like every argument error of vsm it
    starts with the name of the argument that gave the file (``arg``, default ``path``); the
    command line shows ``vsm: error: <what> (<path>)[; <hint>]`` (:attr:`line`).

    Attributes:
        path: the file.
        what: what is wrong with it.
        hint: what the user can do about it (may be empty).
    """

    def __init__(
        self, path: str | os.PathLike[str], what: str, hint: str = "", *, arg: str = "path"
    ):
        self.path = os.fspath(path)
        self.what = what
        self.hint = hint
        super().__init__(f"{arg}: {self.line}")

    @property
    def line(self) -> str:
        """The message without the argument's name (what the command line prints)."""
        msg = f"{self.what} ({self.path})"
        return f"{msg}; {self.hint}" if self.hint else msg


class OutDirBusy(RuntimeError):
    """Another vsm process holds the output folder's lock (exit status 1)."""
