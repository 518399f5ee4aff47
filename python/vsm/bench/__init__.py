"""Benchmarks and the GPU acceptance check of vsm's fused ops (``vsm bench``; ``benches/bench_*.py``).

``vsm bench [--quick] [--full] [--threads 1,2] [--train-steps] [--out DIR]`` — the timing table.
For every op case (posterior_fd, gaussian_terms, hutchinson_trace), shape, pass ("fwd",
"fwd+bwd") and thread count it times three implementations of the same computation:

- ``reference``: the pure-torch reference twin (:mod:`vsm.reference`), eager;
- ``compile``: ``torch.compile`` (inductor, ``dynamic=False``) of that reference, timed after its
  first call; the first call's own wall time (tracing + code generation + C++/Triton compilation
  in a fresh inductor cache; the fwd+bwd row adds the backward graph's) is the separate
  "compile-time s" column (one-time process costs are paid by a warm-up compile first);
- ``vsm``: the public op with "auto" dispatch — the Triton kernels on CUDA, the CPU engine on CPU
  (the Rust kernels once they are registered, the reference before). Under ``TRITON_INTERPRET=1``
  "auto" would time the Triton *interpreter* on CPU, which is meaningless: the CPU vsm column then
  uses backend "rust" where it exists, else "reference" (printed in the header).

Reported: ms per call (median), speed-up of vsm over reference and over compile, peak memory of
each implementation (CUDA only) and the achieved GB/s of the vsm call (bytes = a minimal-traffic
model: every input read once, every output/gradient written once) against the machine's limit:
the device's DRAM bandwidth on CUDA (looked up by name for A100/H100/H200, else from the device
properties), a measured large-tensor copy on CPU at the same thread count. GPU timings use
``triton.testing.do_bench``; CPU timings ``torch.utils.benchmark`` with warm-up. Large shapes
(B=4096, D=12288) run on CUDA, or on CPU with ``--full``. ``--train-steps`` adds the end-to-end
training step of the MNIST-size MLP VAE and of the conv VAE (:mod:`vsm.bench.train_step`).

``vsm bench --check`` — the acceptance run (:mod:`vsm.bench.check`): every fused op and the
objectives built on them against the reference in float32 and float64 (forward and backward, odd
shapes), ``torch.compile(fullgraph=True)`` of a VAE training step against eager, then the table;
writes ``bench.json`` and ``bench.md`` to ``--out`` and exits 1 on any mismatch.
"""

import argparse
import math
from pathlib import Path
from typing import Any

import torch

from .. import _dispatch
from .cases import OPS, Case, cases
from .report import write_report
from .table import (
    Row,
    bandwidth_from_name,
    compile_warmup,
    cpu_copy_bandwidth_gbs,
    device_bandwidth_gbs,
    format_table,
    has_backend,
    machine_description,
    run_case,
    run_table,
    timing_backend,
)

__all__ = [
    "OPS",
    "Case",
    "Row",
    "bandwidth_from_name",
    "build_parser",
    "cases",
    "compile_warmup",
    "cpu_copy_bandwidth_gbs",
    "device_bandwidth_gbs",
    "format_table",
    "has_backend",
    "machine_description",
    "main",
    "run_case",
    "run_table",
    "timing_backend",
    "write_report",
]


def parse_threads(text: str) -> list[int]:
    """``"1,2"`` → [1, 2] (positive ints)."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive ints like 1,2, got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vsm bench``."""
    from ..cli import ArgumentParser

    ap = ArgumentParser(prog="vsm bench", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="acceptance run: ops and a compiled VAE step against the reference, then "
        "the table; JSON + markdown to --out; exit 1 on any mismatch",
    )
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter timing runs")
    ap.add_argument("--tiny", action="store_true", help="one tiny shape per op (tests)")
    ap.add_argument("--full", action="store_true", help="also the large shapes on CPU")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend of the compile column and of the --check VAE step "
        "(default inductor; aot_eager skips code generation)",
    )
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--op", action="append", choices=OPS, help="only these ops (repeatable)")
    ap.add_argument(
        "--threads",
        type=parse_threads,
        default=None,
        help="comma-separated torch thread counts, e.g. 1,2 (default: current)",
    )
    ap.add_argument(
        "--train-steps",
        action="store_true",
        help="also time end-to-end training steps (MLP VAE D=784 N=5, conv VAE)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="--check: seconds after which the table skips the compile column "
        "(default 210 on CUDA, so the run fits 5 minutes; none on CPU)",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="write bench.json and bench.md here (--check default: vsm-bench-out)",
    )
    return ap


def main(argv: list[str] | None = None, ops: tuple[str, ...] | None = None) -> int:
    """Entry point of ``vsm bench``; returns the exit status (``ops``: the default op filter)."""
    from .._errors import UsageError

    args = build_parser().parse_args(argv)
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        raise UsageError(f"--device: expected cpu, cuda or cuda:K, got {args.device!r}") from e
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device: expected cpu, cuda or cuda:K, got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device: no CUDA device here ({args.device})")
    if args.budget_s is not None and not (math.isfinite(args.budget_s) and args.budget_s > 0):
        raise UsageError(f"--budget-s: expected a finite positive number, got {args.budget_s}")
    if args.out or args.check:  # an unwritable --out fails now, not after the timings
        out = args.out or "vsm-bench-out"
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise type(e)(e.errno, f"cannot create the output folder: {e.strerror}", out) from e
    if args.check:
        from .check import run_check

        return run_check(args, device)
    wanted = tuple(args.op) if args.op else ops
    print(f"vsm bench on {machine_description(device)}; dtype {args.dtype}")
    mode = timing_backend(device)
    if device.type == "cpu":
        print(
            f"note: on CPU the vsm column runs backend {mode!r}. Peak memory is reported on "
            "CUDA only; GB/s is against a measured tensor copy at the same thread count."
        )
        if _dispatch.interpret_mode():
            print(
                "note: TRITON_INTERPRET is set; Triton-interpreter timings are meaningless and "
                f"are not taken (vsm column: backend {mode!r})."
            )
    rows, header = run_table(args, device, wanted, min_run_time=0.1 if args.quick else 0.5)
    md = format_table(rows, header["bandwidth_gbs"])
    print(md)
    report: dict[str, Any] = {**header, "rows": [r.as_dict() for r in rows]}
    sections = [f"# vsm bench\n\n{header['machine']}; dtype {args.dtype}; vsm backend {mode}", md]
    if args.train_steps:
        from .train_step import format_train_table, run_train_steps

        steps = run_train_steps(
            device, args.threads or [torch.get_num_threads()], quick=args.quick or args.tiny
        )
        tmd = format_train_table(steps)
        print(tmd)
        report["train_steps"] = [s.as_dict() for s in steps]
        sections.append(tmd)
    if args.out:
        write_report(args.out, report, "\n\n".join(sections))
    ok = bool(rows) and not header["errors"] and all(math.isfinite(r.vsm_ms) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
