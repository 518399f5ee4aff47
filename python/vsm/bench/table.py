"""The timing table of ``vsm bench``: per case, pass and thread count, the reference (eager), its
``torch.compile`` and vsm; bandwidth limits; markdown. Timings go through
:func:`vsm.bench.timing.time_ms`, looked up on its module at call time (tests replace it)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import _dispatch
from .._dispatch import backend
from . import timing
from .cases import Case, cases


def _time_ms(f: Callable[[], object], device: torch.device, min_run_time: float) -> float:
    return timing.time_ms(f, device, min_run_time)


def _runner(fn: Callable, inputs: dict, grad_wrt: tuple[str, ...], bwd: bool) -> Callable[[], None]:
    grads = [inputs[k] for k in grad_wrt]

    def fwd() -> None:
        fn(**inputs)

    def fwd_bwd() -> None:
        out = fn(**inputs)
        torch.autograd.grad(out.sum(), grads)

    return fwd_bwd if bwd else fwd


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


def has_backend(name: str) -> bool:
    """Whether ``vsm.backend(name)`` exists in this build (e.g. "rust")."""
    try:
        with backend(name):
            return True
    except ValueError:
        return False


def timing_backend(device: torch.device) -> str:
    """The backend the vsm column runs: "auto", except on CPU under the Triton interpreter, whose
    timings are meaningless: then "rust" where that backend exists, else "reference"."""
    if device.type == "cpu" and _dispatch.interpret_mode():
        return "rust" if has_backend("rust") else "reference"
    return "auto"


def _compile_timings(
    case: Case, inputs: dict, device: torch.device, min_run_time: float, compile_backend: str
) -> dict[bool, tuple]:
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
                out[bwd] = (_time_ms(run, device, min_run_time), spent, _peak_mb(run, device), None)
            except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
                lines = str(exc).strip().splitlines()
                err = f"{type(exc).__name__}: {lines[0][:120] if lines else ''}"
                print(
                    f"  [compile failed: {case.op} {case.shape} "
                    f"{'fwd+bwd' if bwd else 'fwd'}: {err}]"
                )
                out[bwd] = (None, None, None, err)
        torch._dynamo.reset()
    return out


def compile_warmup(device: torch.device, dtype: torch.dtype, compile_backend: str) -> float:
    """Compile and run a trivial function once (s): the process's one-time compile costs
    (imports, worker pool, C++ prefix headers) so they are not charged to the first case."""
    from torch._inductor.utils import fresh_cache

    t0 = time.perf_counter()
    x = torch.ones(8, device=device, dtype=dtype, requires_grad=True)
    with fresh_cache():
        torch._dynamo.reset()
        f = torch.compile(lambda t: (t * t).sum(), dynamic=False, backend=compile_backend)
        torch.autograd.grad(f(x), [x])
        torch._dynamo.reset()
    return time.perf_counter() - t0


def run_case(
    case: Case,
    device: torch.device,
    dtype: torch.dtype,
    *,
    compile_ref: bool,
    min_run_time: float,
    threads: int | None = None,
    vsm_backend: str | None = None,
    limit_gbs: float | None = None,
    compile_backend: str = "inductor",
) -> list[Row]:
    """Time one case, both passes, at the current torch thread count (``threads``: recorded)."""
    threads = threads or torch.get_num_threads()
    mode = vsm_backend or timing_backend(device)
    inputs = case.make(device, dtype)
    none = (None, None, None, None)
    comp = (
        _compile_timings(case, inputs, device, min_run_time, compile_backend)
        if compile_ref
        else {False: none, True: none}
    )
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
        rows.append(
            Row(
                case.op,
                case.shape,
                "fwd+bwd" if bwd else "fwd",
                threads,
                ref_ms,
                comp_ms,
                comp_s,
                vsm_ms,
                ref_peak,
                comp_peak,
                vsm_peak,
                gbs,
                limit_gbs,
                case.paper,
                case.large,
                err,
            )
        )
    return rows


def _fmt(v: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if v is None else format(v, spec) + suffix


def format_table(rows: Sequence[Row], bandwidth: float | None = None) -> str:
    """Markdown table of the rows (``bandwidth``: a limit shown in the GB/s header when all rows
    share it, e.g. the GPU's)."""
    bw = f" (of {bandwidth:.0f})" if bandwidth else " (% of limit)"
    head = (
        "| op | shape | pass | threads | reference ms | compile ms | compile-time s | vsm ms | "
        f"speed-up vs reference | speed-up vs compile | peak MB ref/compile/vsm | GB/s{bw} |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        peak = (
            "-"
            if r.vsm_peak_mb is None
            else "/".join(_fmt(v, ".1f") for v in (r.ref_peak_mb, r.compile_peak_mb, r.vsm_peak_mb))
        )
        gbs = _fmt(r.gbs, ".3g")
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
    return (
        f"{dev}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; load average "
        f"{load:.1f}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def run_table(
    args: argparse.Namespace,
    device: torch.device,
    ops: Sequence[str] | None,
    *,
    min_run_time: float,
    deadline: float | None = None,
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
    warmup_s = None
    if not args.no_compile and (deadline is None or time.perf_counter() < deadline):
        warmup_s = compile_warmup(device, dtype, args.compile_backend)
    rows: list[Row] = []
    errors: list[str] = []
    skipped: list[str] = []
    limits: dict[int, float | None] = {}
    try:
        for t in thread_list:
            torch.set_num_threads(t)
            limit = bandwidth
            if device.type == "cpu":
                limit = cpu_copy_bandwidth_gbs(
                    2**24 if args.quick or args.tiny else 2**28, min_run_time
                )
            limits[t] = limit
            for case in selected:
                compile_ref = not args.no_compile
                if compile_ref and deadline is not None and time.perf_counter() > deadline:
                    compile_ref = False
                    skipped.append(f"{case.op} {case.shape} threads {t}")
                    print(f"  [time budget spent: no compile column for {skipped[-1]}]")
                try:
                    rows += run_case(
                        case,
                        device,
                        dtype,
                        compile_ref=compile_ref,
                        min_run_time=min_run_time,
                        threads=t,
                        vsm_backend=mode,
                        limit_gbs=limit,
                        compile_backend=args.compile_backend,
                    )
                except Exception as exc:  # noqa: BLE001 - report the case, keep benchmarking
                    errors.append(
                        f"{case.op} {case.shape} threads {t}: {type(exc).__name__}: {exc}"[:300]
                    )
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
        "limit_kind": "datasheet DRAM bandwidth"
        if device.type == "cuda"
        else "measured float32 copy (read + write)",
        "errors": errors,
        "compile_skipped": skipped,
        "compile_warmup_s": warmup_s,
    }
    return rows, header
