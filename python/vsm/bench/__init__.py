"""Benchmarks and the GPU acceptance check of vsm's fused ops (``vsm bench``; ``benches/bench_*.py``).

``vsm bench [--quick] [--full] [--threads 1,2] [--train-steps] [--out DIR]`` — the timing table.
For every op case (posterior_fd, gaussian_terms, hutchinson_trace), shape, pass ("fwd",
"fwd+bwd") and thread count it times three implementations of the same computation:

- ``reference``: the pure-torch reference twin (:mod:`vsm.reference`), eager;
- ``compile``: ``torch.compile`` (inductor, ``dynamic=False``) of that reference, timed after its
  first call; the first call's own wall time (tracing + code generation + C++/Triton compilation
  in a fresh inductor cache) is the separate "compile-time s" column;
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

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import _dispatch, reference
from .._dispatch import backend

OPS = ("posterior_fd", "gaussian_terms", "hutchinson_trace")


@dataclass
class Case:
    """One op at one shape: ``make(device, dtype)`` → inputs dict; ``grad_wrt`` names the inputs
    that receive gradients in the fwd+bwd pass."""

    op: str
    shape: str
    make: Callable[[torch.device, torch.dtype], dict]
    vsm_fn: Callable[..., torch.Tensor]
    ref_fn: Callable[..., torch.Tensor]
    grad_wrt: tuple[str, ...]
    large: bool = False
    paper: bool = False


def _randn(device: torch.device, dtype: torch.dtype, *shape: int, grad: bool = False):
    return torch.randn(*shape, device=device, dtype=dtype).requires_grad_(grad)


def _pfd_case(n: int, b: int, l: int, large: bool = False, paper: bool = False) -> Case:
    import vsm

    def make(device, dtype):
        return {
            "z": _randn(device, dtype, n, b, l, grad=True),
            "mu": _randn(device, dtype, b, l, grad=True),
            "logvar": (0.3 * _randn(device, dtype, b, l)).requires_grad_(True),
            "grad_loglik_z": _randn(device, dtype, n, b, l, grad=True),
        }

    return Case("posterior_fd", f"N={n} B={b} L={l}", make, vsm.posterior_fd,
                reference.posterior_fd, ("z", "mu", "logvar", "grad_loglik_z"), large, paper)


def _gt_case(n: int, b: int, d: int, large: bool = False, paper: bool = False) -> Case:
    import vsm

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

    return Case("gaussian_terms", f"N={n} B={b} D={d}", make, out(vsm.gaussian_terms),
                out(reference.gaussian_terms), ("x", "x_mean", "log_sigma2"), large, paper)


def _hutch_case(b: int, d: int, p: int, large: bool = False, paper: bool = False) -> Case:
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
                wrap(reference.hutchinson_trace), ("w",), large, paper)


def cases(quick: bool = False, tiny: bool = False) -> list[Case]:
    """The benchmark cases: issue #2's posterior_fd set, the paper's shapes (N=5, B=100) and the
    large shapes. ``quick``: fewer shapes; ``tiny``: one small shape per op (tests, CPU checks)."""
    if tiny:
        return [_pfd_case(2, 3, 5), _gt_case(2, 3, 7), _hutch_case(3, 6, 1)]
    out = [
        _pfd_case(5, 100, 2, paper=True), _pfd_case(5, 100, 100, paper=True),  # N·B = 500
        _pfd_case(4, 1024, 2), _pfd_case(4, 1024, 100),  # N·B = 4096
        _pfd_case(5, 4096, 100, large=True),
        _gt_case(5, 100, 2, paper=True), _gt_case(5, 100, 1024, paper=True),
        _gt_case(5, 4096, 12288, large=True),
        _hutch_case(100, 1024, 1, paper=True), _hutch_case(100, 1024, 4),
        _hutch_case(4096, 12288, 1, large=True),
    ]
    if quick:
        out = [c for c in out if "L=2" not in c.shape and "P=4" not in c.shape]
    return out


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
    """Median ms per call of ``f``: ``do_bench`` (rep ≈ 200·min_run_time ms) on CUDA,
    ``torch.utils.benchmark`` (after one warm-up call) on CPU."""
    if device.type == "cuda":
        import triton.testing

        rep = max(10, int(200 * min_run_time))
        return float(triton.testing.do_bench(f, warmup=max(5, rep // 4), rep=rep,
                                             return_mode="median"))
    from torch.utils import benchmark

    f()  # warm-up (and lazy initialisation)
    m = benchmark.Timer(stmt="f()", globals={"f": f}).blocked_autorange(min_run_time=min_run_time)
    return m.median * 1e3


def _peak_mb(f: Callable[[], None], device: torch.device) -> float | None:
    """Peak extra CUDA memory (MiB) of one call of ``f``; None on CPU."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    f()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _bytes(inputs: dict, out: torch.Tensor, grad_wrt: tuple[str, ...], bwd: bool) -> int:
    read = sum(t.numel() * t.element_size() for t in inputs.values())
    written = out.numel() * out.element_size()
    if bwd:  # inputs read again, gradients written
        read *= 2
        written += sum(inputs[k].numel() * inputs[k].element_size() for k in grad_wrt)
    return read + written


# Peak HBM bandwidth (GB/s) by device-name fragment; the first match wins, so the more specific
# names come first. Sources: NVIDIA's A100/H100/H200 datasheets (SXM unless named).
_BANDWIDTH_GBS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-PCIE-80GB", 1935.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB", 2039.0),
    ("A100", 1555.0),
)


def bandwidth_from_name(name: str) -> float | None:
    """Datasheet HBM bandwidth (GB/s) of an A100/H100/H200 from its device name, else None."""
    for key, gbs in _BANDWIDTH_GBS:
        if key.lower() in name.lower():
            return gbs
    return None


def device_bandwidth_gbs(device: torch.device) -> float | None:
    """The device's DRAM bandwidth (GB/s): the datasheet value by name for A100/H100/H200, else
    2 × memory clock × bus width from the device properties when torch exposes them."""
    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    by_name = bandwidth_from_name(p.name)
    if by_name is not None:
        return by_name
    clock = getattr(p, "memory_clock_rate", None)  # kHz
    width = getattr(p, "memory_bus_width", None)  # bits
    if clock and width:
        return 2 * clock * 1e3 * width / 8 / 1e9
    return None


def cpu_copy_bandwidth_gbs(nbytes: int, min_run_time: float) -> float:
    """Measured CPU memory bandwidth (GB/s, read + write) of a float32 tensor copy of ``nbytes``
    at the current torch thread count: the practical limit of a streaming op on this machine."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    ms = _time_ms(lambda: dst.copy_(src), torch.device("cpu"), min_run_time)
    return 2 * nbytes / (ms * 1e-3) / 1e9


# --- rows -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table (times in ms, compile_s in s; None where not measured)."""

    op: str
    shape: str
    pas: str
    threads: int
    ref_ms: float
    compile_ms: float | None
    compile_s: float | None
    vsm_ms: float
    ref_peak_mb: float | None = None
    compile_peak_mb: float | None = None
    vsm_peak_mb: float | None = None
    gbs: float | None = None
    limit_gbs: float | None = None
    paper: bool = False
    large: bool = False
    compile_error: str | None = None

    @property
    def speedup_ref(self) -> float:
        return self.ref_ms / self.vsm_ms

    @property
    def speedup_compile(self) -> float | None:
        return None if self.compile_ms is None else self.compile_ms / self.vsm_ms

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pass"] = d.pop("pas")
        d["speedup_ref"] = self.speedup_ref
        d["speedup_compile"] = self.speedup_compile
        return d


def timing_backend(device: torch.device) -> str:
    """The backend the vsm column runs: "auto", except on CPU under the Triton interpreter, whose
    timings are meaningless: then "rust" where that backend exists, else "reference"."""
    if device.type == "cpu" and _dispatch.interpret_mode():
        return "rust" if "rust" in _dispatch._BACKENDS else "reference"
    return "auto"


def _compile_timings(case: Case, inputs: dict, device: torch.device, min_run_time: float,
                     compile_backend: str) -> dict[bool, tuple]:
    """``torch.compile`` (fresh dynamo state, fresh inductor cache, ``dynamic=False``) of the
    reference, timed per pass: {bwd: (ms, compile s, peak MB, error)}.

    compile s is the wall time of the compiled function's first call(s) before steady state: the
    fwd row the forward graph's compile, the fwd+bwd row that plus the backward graph's (which
    AOTAutograd compiles at the first backward). An exception is reported per pass, not raised.
    """
    from torch._inductor.utils import fresh_cache

    out: dict[bool, tuple] = {}
    spent = 0.0
    with fresh_cache():
        torch._dynamo.reset()
        compiled = torch.compile(case.ref_fn, dynamic=False, backend=compile_backend)
        for bwd in (False, True):
            try:
                run = _runner(compiled, inputs, case.grad_wrt, bwd)
                t0 = time.perf_counter()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                spent += time.perf_counter() - t0
                out[bwd] = (_time_ms(run, device, min_run_time), spent, _peak_mb(run, device),
                            None)
            except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
                lines = str(exc).strip().splitlines()
                err = f"{type(exc).__name__}: {lines[0][:120] if lines else ''}"
                print(f"  [compile failed: {case.op} {case.shape} "
                      f"{'fwd+bwd' if bwd else 'fwd'}: {err}]")
                out[bwd] = (None, None, None, err)
        torch._dynamo.reset()
    return out


def run_case(case: Case, device: torch.device, dtype: torch.dtype, *, compile_ref: bool,
             min_run_time: float, threads: int | None = None, vsm_backend: str | None = None,
             limit_gbs: float | None = None, compile_backend: str = "inductor") -> list[Row]:
    """Time one case, both passes, at the current torch thread count (``threads``: recorded)."""
    threads = threads or torch.get_num_threads()
    mode = vsm_backend or timing_backend(device)
    inputs = case.make(device, dtype)
    none = (None, None, None, None)
    comp = (_compile_timings(case, inputs, device, min_run_time, compile_backend) if compile_ref
            else {False: none, True: none})
    rows = []
    for bwd in (False, True):
        with backend("reference"):
            run = _runner(case.ref_fn, inputs, case.grad_wrt, bwd)
            ref_ms = _time_ms(run, device, min_run_time)
            ref_peak = _peak_mb(run, device)
        with backend(mode):
            run = _runner(case.vsm_fn, inputs, case.grad_wrt, bwd)
            vsm_ms = _time_ms(run, device, min_run_time)
            vsm_peak = _peak_mb(run, device)
            out = case.vsm_fn(**inputs)
        gbs = _bytes(inputs, out, case.grad_wrt, bwd) / (vsm_ms * 1e-3) / 1e9
        comp_ms, comp_s, comp_peak, err = comp[bwd]
        rows.append(Row(case.op, case.shape, "fwd+bwd" if bwd else "fwd", threads, ref_ms,
                        comp_ms, comp_s, vsm_ms, ref_peak, comp_peak, vsm_peak, gbs, limit_gbs,
                        case.paper, case.large, err))
    return rows


# --- output -----------------------------------------------------------------------------------


def _fmt(v: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if v is None else format(v, spec) + suffix


def format_table(rows: Sequence[Row], bandwidth: float | None = None) -> str:
    """Markdown table of the rows (``bandwidth``: a limit shown in the GB/s header when all rows
    share it, e.g. the GPU's)."""
    bw = f" (of {bandwidth:.0f})" if bandwidth else " (% of limit)"
    head = ("| op | shape | pass | threads | reference ms | compile ms | compile-time s | vsm ms | "
            f"speed-up vs reference | speed-up vs compile | peak MB ref/compile/vsm | GB/s{bw} |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        peak = "-" if r.vsm_peak_mb is None else "/".join(
            _fmt(v, ".1f") for v in (r.ref_peak_mb, r.compile_peak_mb, r.vsm_peak_mb))
        gbs = _fmt(r.gbs, ".1f")
        if r.gbs is not None and r.limit_gbs:
            gbs += f" ({100 * r.gbs / r.limit_gbs:.0f}%)"
        lines.append(
            f"| {r.op} | {r.shape} | {r.pas} | {r.threads} | {_fmt(r.ref_ms)} | "
            f"{_fmt(r.compile_ms)} | {_fmt(r.compile_s, '.1f')} | {_fmt(r.vsm_ms)} | "
            f"{r.speedup_ref:.2f}x | {_fmt(r.speedup_compile, '.2f', 'x')} | {peak} | {gbs} |"
        )
    return "\n".join(lines)


def machine_description(device: torch.device) -> str:
    """One line: device, CPU, threads, torch version, load average, date."""
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{dev}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; load average "
            f"{load:.1f}; {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")


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


def parse_threads(text: str) -> list[int]:
    """``"1,2"`` → [1, 2] (positive ints)."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"--threads: expected positive ints like 1,2, got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vsm bench``."""
    ap = argparse.ArgumentParser(prog="vsm bench", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="acceptance run: ops and a compiled VAE step against the reference, then "
                         "the table; JSON + markdown to --out; exit 1 on any mismatch")
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter timing runs")
    ap.add_argument("--tiny", action="store_true", help="one tiny shape per op (tests)")
    ap.add_argument("--full", action="store_true", help="also the large shapes on CPU")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--compile-backend", default="inductor",
                    help="torch.compile backend of the compile column and of the --check VAE step "
                         "(default inductor; aot_eager skips code generation)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--op", action="append", choices=OPS, help="only these ops (repeatable)")
    ap.add_argument("--threads", type=parse_threads, default=None,
                    help="comma-separated torch thread counts, e.g. 1,2 (default: current)")
    ap.add_argument("--train-steps", action="store_true",
                    help="also time end-to-end training steps (MLP VAE D=784 N=5, conv VAE)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="--check: seconds after which the table skips the compile column "
                         "(default 210 on CUDA, so the run fits 5 minutes; none on CPU)")
    ap.add_argument("--out", default=None,
                    help="write bench.json and bench.md here (--check default: vsm-bench-out)")
    return ap


def run_table(args: argparse.Namespace, device: torch.device, ops: Sequence[str] | None,
              *, min_run_time: float, deadline: float | None = None
              ) -> tuple[list[Row], dict[str, Any]]:
    """Time the selected cases at every thread count; returns the rows and the report header
    (a case that raises is skipped and listed in ``header["errors"]``; once
    ``time.perf_counter()`` passes ``deadline`` the remaining cases skip the compile column,
    listed in ``header["compile_skipped"]``)."""
    dtype = getattr(torch, args.dtype)
    selected = [c for c in cases(args.quick, args.tiny) if ops is None or c.op in ops]
    if device.type == "cpu" and not args.full:
        selected = [c for c in selected if not c.large]
    mode = timing_backend(device)
    bandwidth = device_bandwidth_gbs(device)
    original = torch.get_num_threads()
    thread_list = args.threads or [original]
    rows: list[Row] = []
    errors: list[str] = []
    skipped: list[str] = []
    limits: dict[int, float | None] = {}
    try:
        for t in thread_list:
            torch.set_num_threads(t)
            limit = bandwidth
            if device.type == "cpu":
                limit = cpu_copy_bandwidth_gbs(2**24 if args.quick or args.tiny else 2**28,
                                               min_run_time)
            limits[t] = limit
            for case in selected:
                compile_ref = not args.no_compile
                if compile_ref and deadline is not None and time.perf_counter() > deadline:
                    compile_ref = False
                    skipped.append(f"{case.op} {case.shape} threads {t}")
                    print(f"  [time budget spent: no compile column for {skipped[-1]}]")
                try:
                    rows += run_case(case, device, dtype, compile_ref=compile_ref,
                                     min_run_time=min_run_time, threads=t, vsm_backend=mode,
                                     limit_gbs=limit, compile_backend=args.compile_backend)
                except Exception as exc:  # noqa: BLE001 - report the case, keep benchmarking
                    errors.append(f"{case.op} {case.shape} threads {t}: "
                                  f"{type(exc).__name__}: {exc}"[:300])
                    print(f"  [case failed: {errors[-1]}]")
    finally:
        torch.set_num_threads(original)
    header = {
        "machine": machine_description(device),
        "device": str(device),
        "dtype": args.dtype,
        "vsm_backend": mode,
        "compile_backend": None if args.no_compile else args.compile_backend,
        "bandwidth_gbs": bandwidth,
        "limit_gbs_by_threads": limits,
        "limit_kind": "datasheet DRAM bandwidth" if device.type == "cuda"
        else "measured float32 copy (read + write)",
        "errors": errors,
        "compile_skipped": skipped,
    }
    return rows, header


def main(argv: list[str] | None = None, ops: tuple[str, ...] | None = None) -> int:
    """Entry point of ``vsm bench``; returns the exit status (``ops``: the default op filter)."""
    args = build_parser().parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.check:
        from .check import run_check

        return run_check(args, device)
    wanted = tuple(args.op) if args.op else ops
    print(f"vsm bench on {machine_description(device)}; dtype {args.dtype}")
    mode = timing_backend(device)
    if device.type == "cpu":
        print(f"note: on CPU the vsm column runs backend {mode!r}. Peak memory is reported on "
              "CUDA only; GB/s is against a measured tensor copy at the same thread count.")
        if _dispatch.interpret_mode():
            print("note: TRITON_INTERPRET is set; Triton-interpreter timings are meaningless and "
                  f"are not taken (vsm column: backend {mode!r}).")
    rows, header = run_table(args, device, wanted, min_run_time=0.1 if args.quick else 0.5)
    md = format_table(rows, header["bandwidth_gbs"])
    print(md)
    report: dict[str, Any] = {**header, "rows": [r.as_dict() for r in rows]}
    sections = [f"# vsm bench\n\n{header['machine']}; dtype {args.dtype}; vsm backend {mode}",
                md]
    if args.train_steps:
        from .train_step import format_train_table, run_train_steps

        steps = run_train_steps(device, args.threads or [torch.get_num_threads()],
                                quick=args.quick or args.tiny)
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
