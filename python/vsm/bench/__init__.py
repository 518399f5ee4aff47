"""Benchmarks of vsm's fused ops (``vsm bench [--quick] [--full]``; ``benches/bench_*.py``).

For every op case (posterior_fd, gaussian_terms, hutchinson_trace), shape, and pass ("fwd",
"fwd+bwd") it times three implementations of the same computation:

- ``ref``: the pure-torch reference twin (:mod:`vsm.reference`), eager;
- ``compile``: ``torch.compile`` (inductor) of that reference;
- ``vsm``: the public op with "auto" dispatch — the Triton kernels on CUDA, the CPU reference path
  on CPU (so on CPU vsm ≈ ref by construction; Triton-interpreter timings would be meaningless
  and are never taken: ``TRITON_INTERPRET`` is ignored here and the CPU path is forced),

and prints a table: ms per call (median), speed-up of vsm over ref, peak memory of the vsm call
(CUDA only) and, on CUDA, the achieved GB/s of the vsm call against the device's bandwidth
(bytes = a minimal-traffic model: every input read once, every output / gradient written once).
GPU timings use ``triton.testing.do_bench``; CPU timings ``torch.utils.benchmark`` with warm-up.
Large shapes (B=4096, D=12288) run on CUDA, or on CPU with ``--full``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _dispatch, reference
from ._dispatch import backend


@dataclass
class Case:
    """One op at one shape: ``make(device, dtype)`` → (inputs dict, grad-input names)."""

    op: str
    shape: str
    make: Callable[[torch.device, torch.dtype], dict]
    vsm_fn: Callable[..., torch.Tensor]
    ref_fn: Callable[..., torch.Tensor]
    grad_wrt: tuple[str, ...]
    large: bool = False


def _randn(device: torch.device, dtype: torch.dtype, *shape: int, grad: bool = False):
    return torch.randn(*shape, device=device, dtype=dtype).requires_grad_(grad)


# --- posterior_fd -----------------------------------------------------------------------------


def _pfd_case(n: int, b: int, l: int, large: bool = False) -> Case:
    import vsm

    def make(device, dtype):
        return {
            "z": _randn(device, dtype, n, b, l, grad=True),
            "mu": _randn(device, dtype, b, l, grad=True),
            "logvar": (0.3 * _randn(device, dtype, b, l)).requires_grad_(True),
            "grad_loglik_z": _randn(device, dtype, n, b, l, grad=True),
        }

    return Case("posterior_fd", f"N={n} B={b} L={l}", make, vsm.posterior_fd,
                reference.posterior_fd, ("z", "mu", "logvar", "grad_loglik_z"), large)


# --- gaussian_terms ---------------------------------------------------------------------------


def _gt_case(n: int, b: int, d: int, large: bool = False) -> Case | None:
    import vsm

    op = getattr(vsm, "gaussian_terms", None)
    ref = getattr(reference, "gaussian_terms", None)
    if op is None or ref is None:
        return None

    def make(device, dtype):
        return {
            "x": _randn(device, dtype, b, d, grad=True),
            "x_mean": _randn(device, dtype, n, b, d, grad=True),
            "log_sigma2": torch.zeros((), device=device, dtype=dtype, requires_grad=True),
        }

    def out(f):
        def g(**kw):
            t = f(**kw)
            return torch.stack([t.sq_mean.sum(), t.mean_sq.sum()])
        return g

    return Case("gaussian_terms", f"N={n} B={b} D={d}", make, out(op), out(ref),
                ("x", "x_mean", "log_sigma2"), large)


# --- hutchinson_trace -------------------------------------------------------------------------


def _hutch_case(b: int, d: int, p: int, large: bool = False) -> Case:
    import vsm

    def make(device, dtype):
        return {"x": _randn(device, dtype, b, d, grad=True),
                "w": _randn(device, dtype, d, grad=True)}

    def wrap(f):
        def g(x, w):  # elementwise map: the probe draws and dots dominate, not the Jacobian
            y = x * w + torch.sin(x)
            return f(y, x, n_probes=p, seed=0)
        return g

    return Case("hutchinson_trace", f"B={b} D={d} P={p}", make, wrap(vsm.hutchinson_trace),
                wrap(reference.hutchinson_trace), ("w",), large)


def cases(quick: bool = False) -> list[Case]:
    """The benchmark cases: issue #2's posterior_fd set, the paper's shape, and large shapes."""
    out: list[Case | None] = [
        _pfd_case(5, 100, 2), _pfd_case(5, 100, 100),  # N·B = 500
        _pfd_case(4, 1024, 2), _pfd_case(4, 1024, 100),  # N·B = 4096
        _pfd_case(5, 4096, 100, large=True),
        _gt_case(5, 100, 2), _gt_case(5, 100, 1024),  # paper: N=5, B=100, D=1024
        _gt_case(5, 4096, 12288, large=True),
        _hutch_case(100, 1024, 1), _hutch_case(100, 1024, 4),
        _hutch_case(4096, 12288, 1, large=True),
    ]
    kept = [c for c in out if c is not None]
    if quick:
        kept = [c for c in kept if "L=2" not in c.shape and "P=4" not in c.shape]
    return kept


# --- timing -----------------------------------------------------------------------------------


def _runner(fn: Callable, inputs: dict, grad_wrt: tuple[str, ...], bwd: bool) -> Callable[[], None]:
    grads = [inputs[k] for k in grad_wrt]

    def fwd() -> None:
        fn(**inputs)

    def fwd_bwd() -> None:
        out = fn(**inputs)
        torch.autograd.grad(out.sum(), grads)

    return fwd_bwd if bwd else fwd


def _time_ms(f: Callable[[], None], device: torch.device, min_run_time: float) -> float:
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(f))
    from torch.utils import benchmark

    f()  # warm-up (and lazy initialisation)
    m = benchmark.Timer(stmt="f()", globals={"f": f}).blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e3


def _bytes(inputs: dict, out: torch.Tensor, grad_wrt: tuple[str, ...], bwd: bool) -> int:
    read = sum(t.numel() * t.element_size() for t in inputs.values())
    written = out.numel() * out.element_size()
    if bwd:  # inputs read again, gradients written
        read *= 2
        written += sum(inputs[k].numel() * inputs[k].element_size() for k in grad_wrt)
    return read + written


def device_bandwidth_gbs(device: torch.device) -> float | None:
    """Theoretical DRAM bandwidth (GB/s) from the device properties, when torch exposes them."""
    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    clock = getattr(p, "memory_clock_rate", None)  # kHz
    width = getattr(p, "memory_bus_width", None)  # bits
    if clock and width:
        return 2 * clock * 1e3 * width / 8 / 1e9
    return None


@dataclass
class Row:
    op: str
    shape: str
    pas: str
    ref_ms: float
    compile_ms: float | None
    vsm_ms: float
    peak_mb: float | None
    gbs: float | None


def run_case(case: Case, device: torch.device, dtype: torch.dtype, *, compile_ref: bool,
             min_run_time: float) -> list[Row]:
    """Time one case, both passes."""
    rows = []
    inputs = case.make(device, dtype)
    compiled = torch.compile(case.ref_fn) if compile_ref else None
    for bwd in (False, True):
        with backend("reference"):
            ref_ms = _time_ms(_runner(case.ref_fn, inputs, case.grad_wrt, bwd), device,
                              min_run_time)
            comp_ms = None
            if compiled is not None:
                try:
                    comp_ms = _time_ms(_runner(compiled, inputs, case.grad_wrt, bwd), device,
                                       min_run_time)
                except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
                    msg = str(exc).strip().splitlines()[0][:90] if str(exc).strip() else ""
                    print(f"  [compile failed: {case.op} {case.shape} {'fwd+bwd' if bwd else 'fwd'}: "
                          f"{type(exc).__name__}: {msg}]")
        mode = "auto" if device.type == "cuda" else "reference"
        with backend(mode):
            run = _runner(case.vsm_fn, inputs, case.grad_wrt, bwd)
            peak = None
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                run()
                torch.cuda.synchronize()
                peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            vsm_ms = _time_ms(run, device, min_run_time)
            out = case.vsm_fn(**inputs)
        gbs = None
        if device.type == "cuda":
            gbs = _bytes(inputs, out, case.grad_wrt, bwd) / (vsm_ms * 1e-3) / 1e9
        rows.append(Row(case.op, case.shape, "fwd+bwd" if bwd else "fwd", ref_ms, comp_ms,
                        vsm_ms, peak, gbs))
    return rows


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: list[Row], bandwidth: float | None) -> str:
    """Markdown table of the rows."""
    bw = f" (of {bandwidth:.0f})" if bandwidth else ""
    head = (f"| op | shape | pass | ref ms | compile ms | vsm ms | speed-up | peak MB | GB/s{bw} |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r.op} | {r.shape} | {r.pas} | {_fmt(r.ref_ms)} | {_fmt(r.compile_ms)} | "
            f"{_fmt(r.vsm_ms)} | {r.ref_ms / r.vsm_ms:.2f}x | {_fmt(r.peak_mb, '.1f')} | "
            f"{_fmt(r.gbs, '.0f')} |"
        )
    return "\n".join(lines)


def machine_description(device: torch.device) -> str:
    """One line: device, CPU, threads, torch version, date."""
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU)"
    return (f"{dev}; {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


def main(argv: list[str] | None = None, ops: tuple[str, ...] | None = None) -> int:
    """Entry point of ``vsm bench``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="vsm bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter timing runs")
    ap.add_argument("--full", action="store_true", help="also the large shapes on CPU")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--op", action="append", choices=("posterior_fd", "gaussian_terms",
                                                        "hutchinson_trace"),
                    help="only these ops (repeatable)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    wanted = tuple(args.op) if args.op else ops
    if ops is not None and wanted == ops:
        import vsm

        if "gaussian_terms" in ops and getattr(vsm, "gaussian_terms", None) is None:
            print("note: vsm.gaussian_terms does not exist yet; skipping its benchmark")
    print(f"vsm bench on {machine_description(device)}; dtype {args.dtype}")
    if device.type == "cpu":
        print("note: on CPU the vsm column is the CPU dispatch path (the pure-torch reference); "
              "Triton-interpreter timings are meaningless and are not taken. "
              "Peak memory and GB/s are reported on CUDA only.")
        if _dispatch.interpret_mode():
            print("note: TRITON_INTERPRET is set; ignored (CPU path forced).")
    selected = [c for c in cases(args.quick) if wanted is None or c.op in wanted]
    if device.type == "cpu" and not args.full:
        selected = [c for c in selected if not c.large]
    rows: list[Row] = []
    for case in selected:
        rows += run_case(case, device, dtype, compile_ref=not args.no_compile,
                         min_run_time=0.1 if args.quick else 0.5)
    print(format_table(rows, device_bandwidth_gbs(device)))
    return 0 if rows and all(math.isfinite(r.vsm_ms) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
