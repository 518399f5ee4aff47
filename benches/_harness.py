"""Shared entry of the ``benches/bench_*.py`` scripts.

The harness itself (cases, timing, table, the ``--check`` acceptance run) lives in the
:mod:`vsm.bench` package so that ``vsm bench`` works from the installed package; each script here
runs it for one op and takes the same options: ``python benches/bench_X.py [--quick] [--full]
[--no-compile] [--threads 1,2] [--dtype float64] [--device cpu|cuda] [--out DIR]``.
``TRITON_INTERPRET`` is removed from the environment first (interpreter timings are meaningless).
"""

from __future__ import annotations

import os
import sys


def run(op: str) -> int:
    """Benchmark one op (see :func:`vsm.bench.main`) with this process's command-line options."""
    os.environ.pop("TRITON_INTERPRET", None)  # interpreter timings are meaningless
    from vsm import bench

    return bench.main(sys.argv[1:], ops=(op,))
