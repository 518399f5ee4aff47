"""``vsm bench --check``: the acceptance run of vsm's fused ops (GPU, and CPU for CI).

1. **Ops against the reference.** ``vsm.posterior_fd``, ``vsm.gaussian_terms``,
   ``vsm.hutchinson_trace`` and the objectives built on them (``m1``, ``m2``, ``m3``, ``fae``,
   ``posterior_fd_loss``, ``fae_loss``) run with the vsm backend under test and with
   ``vsm.backend("reference")`` on the same inputs, in float32 and float64, forward and backward
   (random cotangents; gradients w.r.t. every tensor input and every decoder/encoder parameter),
   at odd shapes (sizes 1, primes, a 2-D z / x_mean, a wide log-variance range). Hutchinson draws
   different probes on different backends, so its reference uses the backend's own probes
   (``vsm.ops.hutchinson_probes``, which the estimator itself uses) and the probes are checked
   separately (Rademacher exactly ±1; Gaussian mean and variance within 6 standard errors).
   Backends under test: "auto" (CUDA: the Triton kernels; CPU under ``TRITON_INTERPRET=1``: the
   Triton kernels in the interpreter; plain CPU: the CPU engine), plus "rust" on CPU when that
   backend exists and "auto" is not it.
2. **torch.compile.** A VAE training step (MLP encoder and decoder, the decoder VJP written out by
   hand so that the step is traceable, loss = mean PFD + m2 through the fused ops) compiled with
   ``torch.compile(fullgraph=True)`` must match eager: the loss and every parameter gradient.
3. **The benchmark table** (:func:`vsm.bench.run_table`, ``--dtype``, default float32; CUDA: the
   quick shape set, which keeps the paper's and the large shapes, ``--full`` for all; CPU: tiny
   shapes unless ``--quick``/``--full``) and, on CUDA, the issue-12 targets (fwd+bwd ≥ 3× eager
   and ≥ 1× compile at the paper's shapes, ≥ 70 % of HBM bandwidth at the large shapes;
   reported, not enforced). Budget: on CUDA, cases that start after ``--budget-s`` (default
   210 s) skip the compile column, so that the whole run stays under 5 minutes on one H100.

Everything goes to ``--out`` as ``bench.json`` and ``bench.md``; the exit status is 1 when any
check fails (each failure is printed with the op, dtype, shape, quantity and error).

Layout: :mod:`.compare` (tolerances, the comparison), :mod:`.op_specs` (the checked cases),
:mod:`.compile_step` (the compile check); this module runs them and writes the report.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch

from .. import _dispatch
from .._dispatch import backend
from .compare import TOLERANCES, CheckResult, compare
from .compile_step import check_compile
from .op_specs import Spec, specs
from .report import write_report
from .table import format_table, has_backend, machine_description, run_table

__all__ = [
    "TOLERANCES",
    "CheckResult",
    "Spec",
    "backends_under_test",
    "check_compile",
    "check_probes",
    "compare",
    "run_check",
    "run_spec",
    "specs",
    "targets",
]


# --- evaluation of one check: outputs and gradients under a backend ----------------------------


def _evaluate(
    fn: Callable[[], Sequence[torch.Tensor]], wrt: Sequence[torch.Tensor], cotangent_seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Outputs of ``fn`` and the VJPs of random (seeded) cotangents w.r.t. ``wrt``."""
    outs = list(fn())
    gen = torch.Generator(device="cpu").manual_seed(cotangent_seed)
    cot = [
        torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs
    ]
    diff = [(o, c) for o, c in zip(outs, cot, strict=True) if o.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(wrt)
    if diff:
        grads = list(
            torch.autograd.grad(
                [o for o, _ in diff], list(wrt), [c for _, c in diff], allow_unused=True
            )
        )
    return [o.detach() for o in outs], grads


def run_spec(spec: Spec, device: torch.device, dtype: torch.dtype, mode: str) -> list[CheckResult]:
    """Compare backend ``mode`` with the reference on one spec: one result per output and
    per gradient (an exception is one failed result)."""
    dname = str(dtype).removeprefix("torch.")

    def res(quantity, ok, err=0.0, ratio=0.0, msg=""):
        return CheckResult(spec.check, mode, dname, spec.shape, quantity, ok, err, ratio, msg)

    try:
        fn, wrt, out_names, in_names = spec.build(device, dtype)
        with backend(mode):
            got_o, got_g = _evaluate(lambda: fn(mode, False), wrt, 7)
        with backend("reference"):
            want_o, want_g = _evaluate(lambda: fn(mode, True), wrt, 7)
    except Exception as exc:  # noqa: BLE001 - a crash is a failed check, reported
        return [res("run", False, math.inf, math.inf, f"{type(exc).__name__}: {exc}"[:300])]
    out = []
    for name, g, w in zip(out_names, got_o, want_o, strict=True):
        out.append(res(f"forward {name}", *compare(g, w, dtype)))
    for name, gg, gw in zip(in_names, got_g, want_g, strict=True):
        out.append(res(f"grad {name}", *compare(gg, gw, dtype)))
    return out


def check_probes(device: torch.device, dtype: torch.dtype, mode: str, n: int) -> list[CheckResult]:
    """The backend's Hutchinson probes: Rademacher exactly ±1 with mean 0 ± 6 s.e.; Gaussian
    finite with mean 0 and variance 1 within 6 standard errors (n elements each)."""
    from ..ops import hutchinson_probes

    dname = str(dtype).removeprefix("torch.")
    like = torch.zeros(n // 4, 4, device=device, dtype=dtype)
    out = []
    for dist in ("rademacher", "gaussian"):
        with backend(mode):
            v = hutchinson_probes(like, 1, 2024, dist).double()
        mean, var = float(v.mean()), float(v.var())
        if dist == "rademacher":
            ok = bool(((v == 1) | (v == -1)).all()) and abs(mean) < 6 / math.sqrt(v.numel())
        else:
            ok = (
                bool(torch.isfinite(v).all())
                and abs(mean) < 6 / math.sqrt(v.numel())
                and abs(var - 1) < 6 * math.sqrt(2 / v.numel())
            )
        out.append(
            CheckResult(
                "hutchinson_probes",
                mode,
                dname,
                f"{n} draws",
                dist,
                ok,
                0.0,
                0.0,
                "" if ok else f"mean {mean:.4g}, variance {var:.4g}",
            )
        )
    return out


# --- targets and report -----------------------------------------------------------------------


def targets(rows: Sequence[Any]) -> list[str]:
    """Issue-12 target lines for CUDA rows (informational): fwd+bwd ≥ 3× eager and ≥ 1× compile
    at the paper's shapes; ≥ 70 % of the bandwidth at the large shapes."""
    lines = []
    for r in rows:
        if r.pas != "fwd+bwd":
            continue
        if r.paper:
            sc = r.speedup_compile
            lines.append(
                f"- {r.op} {r.shape} fwd+bwd: {r.speedup_ref:.2f}x eager "
                f"({'met' if r.speedup_ref >= 3 else 'NOT met'}: ≥ 3x), "
                + (
                    "compile not measured"
                    if sc is None
                    else f"{sc:.2f}x compile ({'met' if sc >= 1 else 'NOT met'}: ≥ 1x)"
                )
            )
        if r.large and r.gbs is not None and r.limit_gbs:
            frac = r.gbs / r.limit_gbs
            lines.append(
                f"- {r.op} {r.shape} fwd+bwd: {100 * frac:.0f}% of {r.limit_gbs:.0f} "
                f"GB/s ({'met' if frac >= 0.7 else 'NOT met'}: ≥ 70%)"
            )
    return lines


def backends_under_test(device: torch.device) -> list[str]:
    """ "auto", plus "rust" on CPU when it exists and "auto" runs the Triton interpreter there."""
    modes = ["auto"]
    if device.type == "cpu" and has_backend("rust") and _dispatch.interpret_mode():
        modes.append("rust")
    return modes


def _format_checks(results: Sequence[CheckResult]) -> str:
    """Markdown: one row per (check, backend, dtype, shape) with its worst quantity; failures
    listed in full below (bench.json has every quantity)."""
    groups: dict[tuple[str, str, str, str], list[CheckResult]] = {}
    for c in results:
        groups.setdefault((c.check, c.backend, c.dtype, c.shape), []).append(c)
    lines = [
        "| check | backend | dtype | shape | quantities | worst (err/tol) | ok |",
        "|---|---|---|---|---:|---|---|",
    ]
    for (check, mode, dname, shape), cs in groups.items():
        worst = max(cs, key=lambda c: (not c.ok, c.worst_ratio))
        bad = sum(not c.ok for c in cs)
        lines.append(
            f"| {check} | {mode} | {dname} | {shape} | {len(cs)} | {worst.quantity} "
            f"({worst.worst_ratio:.3g}) | {'ok' if not bad else f'{bad} FAILED'} |"
        )
    failed = [c for c in results if not c.ok]
    if failed:
        lines += ["", "Failures:", ""]
        lines += [
            f"- {c.check} [{c.backend}, {c.dtype}, {c.shape}] {c.quantity}: {c.message}"
            for c in failed
        ]
    return "\n".join(lines)


def run_check(args: argparse.Namespace, device: torch.device) -> int:
    """The whole acceptance run; returns 0 when every check passed, else 1."""
    t0 = time.perf_counter()
    small = device.type != "cuda"
    machine = machine_description(device)
    print(f"vsm bench --check on {machine}")
    modes = backends_under_test(device)
    notes = []
    if device.type == "cpu" and not _dispatch.interpret_mode() and modes == ["auto"]:
        notes.append(
            "note: CPU without TRITON_INTERPRET=1: backend 'auto' is the CPU engine; "
            "where that is the reference itself the op comparisons are trivially equal"
        )
    if device.type == "cpu" and _dispatch.interpret_mode():
        notes.append("note: TRITON_INTERPRET=1: 'auto' runs the Triton kernels in the interpreter")
    ops = tuple(args.op) if args.op else None
    if args.no_compile:
        notes.append("note: --no-compile: the torch.compile check and column are skipped")
    for note in notes:
        print(note)
    results: list[CheckResult] = []
    if device.type == "cuda" and _dispatch.interpret_mode():
        results.append(
            CheckResult(
                "environment",
                "auto",
                "-",
                "-",
                "TRITON_INTERPRET",
                False,
                math.inf,
                math.inf,
                "TRITON_INTERPRET is set on a CUDA run: the kernels would run in Triton's "
                "interpreter, not compiled; rerun with `env -u TRITON_INTERPRET`",
            )
        )
    for dtype in (torch.float32, torch.float64):
        for mode in modes:
            if ops is None or "hutchinson_trace" in ops:
                results += check_probes(device, dtype, mode, 4096 if small else 1 << 20)
            for spec in specs(small, ops):
                results += run_spec(spec, device, dtype, mode)
    print(
        f"op checks: {sum(c.ok for c in results)}/{len(results)} ok "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    if not args.no_compile:
        for dtype in (torch.float32, torch.float64):
            results += check_compile(device, dtype, args.compile_backend, small)
        print(f"compile checks done ({time.perf_counter() - t0:.0f} s)")
    failed = [c for c in results if not c.ok]
    for c in failed:
        print(f"MISMATCH {c.check} [{c.backend}, {c.dtype}, {c.shape}] {c.quantity}: {c.message}")

    if small and not (args.quick or args.full):
        args.tiny = True  # CPU: tiny shapes (the interpreter and a CI machine)
    elif not small and not args.full:
        args.quick = True  # CUDA: the quick shape set (large shapes included) fits 5 minutes
    budget = (
        args.budget_s if args.budget_s is not None else (210.0 if device.type == "cuda" else None)
    )
    rows, header = run_table(
        args,
        device,
        ops,
        min_run_time=0.1 if device.type == "cuda" else 0.05,
        deadline=None if budget is None else t0 + budget,
    )
    if header["compile_skipped"]:
        notes.append(
            f"note: time budget ({budget:.0f} s) spent: no compile column for "
            + "; ".join(header["compile_skipped"])
        )
    for err in header["errors"]:
        op = err.split(" ", 1)[0]
        results.append(
            CheckResult(
                f"benchmark {op}",
                header["vsm_backend"],
                args.dtype,
                "",
                "run",
                False,
                math.inf,
                math.inf,
                err,
            )
        )
        print(f"MISMATCH benchmark case failed: {err}")
    failed = [c for c in results if not c.ok]
    table = format_table(rows, header["bandwidth_gbs"])
    print(table)
    target_lines = targets(rows) if device.type == "cuda" else []
    for line in target_lines:
        print(line)
    elapsed = time.perf_counter() - t0
    status = "PASSED" if not failed else f"FAILED ({len(failed)} of {len(results)} checks)"
    md = [
        f"# vsm bench --check: {status}",
        "",
        f"{machine}; {elapsed:.0f} s",
        *notes,
        "",
        "## Checks against the reference",
        "",
        "Tolerances (|got − want| ≤ rtol·|want| + atol·max|want|): "
        + ", ".join(
            f"{str(k).removeprefix('torch.')} rtol {v[0]:g} atol {v[1]:g}"
            for k, v in TOLERANCES.items()
        ),
        "",
        _format_checks(results),
        "",
        f"## Benchmark ({args.dtype}, vsm backend {header['vsm_backend']})",
        "",
        table,
    ]
    if target_lines:
        md += ["", "## Targets (issue 12; informational)", "", *target_lines]
    report = {
        **header,
        "status": "passed" if not failed else "failed",
        "elapsed_s": elapsed,
        "tolerances": {
            str(k).removeprefix("torch."): {"rtol": v[0], "atol": v[1]}
            for k, v in TOLERANCES.items()
        },
        "checks": [asdict(c) for c in results],
        "rows": [r.as_dict() for r in rows],
        "targets": target_lines,
    }
    write_report(args.out or "vsm-bench-out", report, "\n".join(md))
    print(f"vsm bench --check: {status} in {elapsed:.0f} s")
    return 0 if not failed else 1
