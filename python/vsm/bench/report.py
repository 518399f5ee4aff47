"""The output files of ``vsm bench --out DIR``: ``bench.json`` (strict JSON) and ``bench.md``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_report(out_dir: str | os.PathLike, report: dict[str, Any], markdown: str) -> None:
    """Write ``bench.json`` (``report``, strict JSON) and ``bench.md`` (``markdown``) into
    ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(report), indent=2, allow_nan=False)
    (out / "bench.json").write_text(text + "\n")
    (out / "bench.md").write_text(markdown + "\n")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
