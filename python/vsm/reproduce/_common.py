"""Shared helpers for the ``vsm reproduce`` figure modules: output folders, JSON, plotting setup.

Every figure module writes PNG files and one ``results.json`` into its output folder; the JSON
carries the numbers the figure shows (floats converted to plain Python, non-finite values kept
as ``NaN``/``Infinity`` so a test can detect them).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt
import numpy as np


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
    """Write ``results`` to ``out/results.json`` (indent 2) and return the file's path."""
    path = out / "results.json"
    path.write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=True) + "\n")
    return path


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
