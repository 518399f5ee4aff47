"""The one timer of ``vsm bench``: :func:`time_ms`, median milliseconds per call on CUDA or CPU.

The table (:mod:`vsm.bench.table`) and the training-step timings (:mod:`vsm.bench.train_step`)
call it as ``timing.time_ms`` (looked up on this module at call time), so a test can replace it
with ``monkeypatch.setattr(vsm.bench.timing, "time_ms", ...)`` and run the harness in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["time_ms"]


def time_ms(f: Callable[[], object], device: torch.device, min_run_time: float) -> float:
    """Median ms per call of ``f``: ``do_bench`` (rep ≈ 200·min_run_time ms) on CUDA,
    ``torch.utils.benchmark`` (after one warm-up call) on CPU."""
    if device.type == "cuda":
        import triton.testing

        rep = max(10, int(200 * min_run_time))
        return float(
            triton.testing.do_bench(f, warmup=max(5, rep // 4), rep=rep, return_mode="median")
        )
    from torch.utils import benchmark

    f()  # warm-up (and lazy initialisation)
    m = benchmark.Timer(stmt="f()", globals={"f": f}).blocked_autorange(min_run_time=min_run_time)
    return float(m.median * 1e3)
