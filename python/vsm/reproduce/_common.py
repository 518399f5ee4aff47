"""Shared helpers for the ``vsm reproduce`` figure modules: output folders, JSON, plotting setup.

Every figure module writes PNG files and one ``results.json`` into its output folder; the JSON
carries the numbers the figure shows (floats converted to plain Python, non-finite values kept
as ``NaN``/``Infinity`` so a test can detect them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt
import numpy as np

from .._errors import BadFileError, UsageError

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")


MODES = ("quick", "medium", "full", "paper")
"""The settings modes of ``vsm reproduce`` (``--quick``, ``--medium``, ``--full``, ``--paper``);
quick and full exist for every figure, medium and paper where a field names them."""


def preset(default: T, **modes: T) -> T:
    """A field of a figure config whose value depends on the mode: ``default`` is the dataclass
    default, ``modes`` the value in each mode that differs from it (keys among :data:`MODES`),
    e.g. ``steps: int = preset(150, full=14_000)``."""
    bad = sorted(set(modes) - set(MODES))
    if bad:
        raise ValueError(f"modes: expected names among {MODES}, got {bad}")
    return dataclasses.field(default=default, metadata={"modes": modes})


class FigureConfig:
    """Base of the figures' config dataclasses: one list of fields whose :func:`preset` values
    give every mode. :meth:`quick` is what ``vsm reproduce`` runs by default, :meth:`full` the
    paper's settings, and :meth:`medium` and :meth:`paper` exist where a field names them
    (fig3)."""

    if TYPE_CHECKING:  # fields of every subclass (a dataclass)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
        seed: int

    @classmethod
    def modes(cls) -> tuple[str, ...]:
        """The modes of this config: quick, full, and medium and paper where a field names them."""
        named = {m for f in dataclasses.fields(cls) for m in f.metadata.get("modes", {})}
        return tuple(m for m in MODES if m in ("quick", "full") or m in named)

    @classmethod
    def preset(cls, mode: str) -> Self:
        """The config of ``mode``: every field at its value for that mode (else its default)."""
        if mode not in cls.modes():
            raise ValueError(f"mode: {cls.__name__} has the modes {cls.modes()}, not {mode!r}")
        values = {
            f.name: f.metadata["modes"][mode]
            for f in dataclasses.fields(cls)
            if mode in f.metadata.get("modes", {})
        }
        return cls(**values)

    @classmethod
    def quick(cls) -> Self:
        """The quick mode (minutes on a CPU; ``vsm reproduce``'s default)."""
        return cls.preset("quick")

    @classmethod
    def medium(cls) -> Self:
        """The medium mode, for the figures that have one (ValueError otherwise)."""
        return cls.preset("medium")

    @classmethod
    def paper(cls) -> Self:
        """The paper's own run, for the figures that define one (ValueError otherwise)."""
        return cls.preset("paper")

    @classmethod
    def full(cls) -> Self:
        """The full mode: the paper's settings, or as close as the figure gets (slow)."""
        return cls.preset("full")


def prepare_out(out: str | Path) -> Path:
    """Create (if needed) and return the output folder ``out`` as a :class:`Path`."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy/torch scalars and arrays into plain JSON-serialisable Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensor
        return to_jsonable(obj.detach().cpu().tolist())
    return obj


def write_results(out: Path, results: dict[str, Any]) -> Path:
    """Write ``results`` to ``out/results.json`` (indent 2) and return the file's path.

    Atomic (a temporary file, then :func:`os.replace`): an interruption leaves the previous
    version, never a truncated one.
    """
    path = out / "results.json"
    tmp = out / f"results.json.tmp.{os.getpid()}"
    try:
        tmp.write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def results_kept_on_stop(out: Path, snapshot: Callable[[], dict[str, Any]]) -> Iterator[None]:
    """Around a sweep's units: when the block ends by an exception (SIGINT/SIGTERM, failed
    units) and ``out/results.json`` exists, rewrite it with ``snapshot()`` first, so that its
    ``seconds`` count this sitting up to the stop (else they would end at the last unit that
    finished, and a sweep run over several stopped sittings would undercount its time). A
    results file is never created here: a sweep stopped before any unit finished has none."""
    try:
        yield
    except BaseException:
        if (out / "results.json").is_file():
            try:
                write_results(out, snapshot())
            except Exception as e:  # noqa: BLE001 (the stop matters more than the time)
                print(f"could not update {out / 'results.json'}: {e}", file=sys.stderr)
        raise


def read_results(path: str | Path) -> dict[str, Any]:
    """The ``results.json`` at ``path``, checked to be one (a JSON object naming its figure).

    Raises:
        OSError: it cannot be read.
        BadFileError: (a ValueError) it is not valid JSON, or not a results object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(
            path,
            f"not a vsm results file (not valid JSON: {e})",
            "move it away, or choose another --out",
            arg="out",
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("figure"), str):
        raise BadFileError(
            path,
            "not a vsm results file (no 'figure' entry)",
            "move it away, or choose another --out",
            arg="out",
        )
    return data


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save(path, array)`` atomically (a temporary file, then :func:`os.replace`)."""
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}.npy")
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_array(path: Path) -> np.ndarray:
    """An array written by :func:`save_array`, as data (no pickles).

    Raises:
        BadFileError: (a ValueError) not a NumPy ``.npy`` file of numbers.
    """
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise BadFileError(path, f"not a NumPy array file ({e})", "delete it to redo it") from e


def previous_results(
    out: Path, figure: str, config: Any, parts: dict[str, type] | None = None
) -> dict[str, Any] | None:
    """The ``results.json`` that an earlier run of ``figure`` left in ``out`` (for ``--resume``).

    None when there is none. Raises :class:`UsageError` (a ValueError) when it belongs to another
    figure or was made with another configuration (``threads``, ``workers`` and ``compile_step`` may differ:
    they change float rounding at most), and :class:`BadFileError` (a ValueError) when it is not a results file, or lacks
    one of ``parts`` (name -> type, e.g. ``{"runs": list}``). The file is never overwritten here.
    """
    path = out / "results.json"
    if not path.is_file():
        return None
    prev = read_results(path)
    if prev.get("figure") != figure:
        raise UsageError(
            f"out: {path} holds results of {prev.get('figure')!r}, not {figure!r}; "
            "choose another --out or drop --resume"
        )
    if "config" in prev and config is not None:
        if not isinstance(prev["config"], dict):
            raise BadFileError(
                path, f"damaged {figure} results file ('config' is not an object)", arg="out"
            )
        free = ("threads", "workers", "compile_step")
        defaults = (
            {
                f.name: to_jsonable(f.default)
                for f in dataclasses.fields(config)
                if f.default is not dataclasses.MISSING
            }
            if dataclasses.is_dataclass(config)
            else {}
        )
        want = {
            k: v
            for k, v in to_jsonable(vars(config)).items()
            # a field newer than the file, at its default, does not change the numbers
            if k not in free and (k in prev["config"] or k not in defaults or v != defaults[k])
        }
        have = {k: v for k, v in prev["config"].items() if k not in free}
        if want != have:
            diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            raise UsageError(
                f"out: {path} was made with other settings ({', '.join(diff)}); "
                "choose another --out or drop --resume"
            )
    for key, typ in (parts or {}).items():
        if not isinstance(prev.get(key), typ):
            raise BadFileError(
                path,
                f"damaged {figure} results file ({key!r} is not a {typ.__name__})",
                "move it away, or choose another --out",
                arg="out",
            )
    return prev


def save_figure(fig: plt.Figure, path: Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` as a PNG at ``path`` and close it."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def all_finite(obj: Any) -> bool:
    """True when every number inside a nested dict/list structure is finite."""
    if isinstance(obj, dict):
        return all(all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v) for v in obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return True
    if isinstance(obj, (int, float, np.floating, np.integer)):
        return math.isfinite(float(obj))
    return True


class Timer:
    """Wall-clock timer used to record how long each reproduction took (seconds)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.start
