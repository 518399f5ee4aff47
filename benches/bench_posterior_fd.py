"""Benchmark of ``vsm.posterior_fd``: pure-torch reference (eager), torch.compile of it, and vsm.

Run from the repository root: ``python benches/bench_posterior_fd.py [--quick] [--full]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run

if __name__ == "__main__":
    raise SystemExit(run("posterior_fd"))
