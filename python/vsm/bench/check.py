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
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import _dispatch
from .._dispatch import backend

# Tolerances of vsm against the reference, per dtype: |got − want| ≤ rtol·|want| + atol·max|want|
# elementwise (atol is relative to the largest magnitude of the compared tensor, so it is
# unit-free and covers entries that are sums with cancellation). float32: the Triton kernels
# reduce in a different order than torch (a few ulp per element over sums of ≤ 10³ terms) and the
# compiled float32 exp may be ex2.approx (≤ ~30 ulp ≈ 2e-6 relative at |log s²| ≤ 30, squared by
# the PFD: ≤ 4e-6, see shared/notes/gpu_audit.md); 1e-4 leaves 25× headroom on that and still
# catches any real error (a wrong term is O(1) relative). float64: order-of-summation error only
# (≤ 1e-13 relative at these sizes); 1e-9 / 1e-11.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-9, 1e-11),
}


@dataclass
class CheckResult:
    """One compared quantity: ``ok`` when every element is within tolerance."""

    check: str
    backend: str
    dtype: str
    shape: str
    quantity: str
    ok: bool
    max_abs_err: float
    worst_ratio: float  # max over elements of |err| / allowed (≤ 1 passes)
    message: str = ""


def compare(
    got: torch.Tensor | None, want: torch.Tensor | None, dtype: torch.dtype
) -> tuple[bool, float, float, str]:
    """(ok, max |err|, worst err/allowed, message) of ``got`` against ``want``."""
    if got is None or want is None:
        ok = got is None and want is None
        return (
            ok,
            0.0,
            0.0,
            "" if ok else f"one side is None (got {got is None}, want {want is None})",
        )
    if got.shape != want.shape:
        return False, math.inf, math.inf, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    rtol, atol = TOLERANCES[dtype]
    g, w = got.detach().double(), want.detach().double()
    nan_g, nan_w = torch.isnan(g), torch.isnan(w)
    if not torch.equal(nan_g, nan_w):
        return False, math.inf, math.inf, "NaN in different places"
    fin = torch.isfinite(w) & torch.isfinite(g)
    if not torch.equal(g[~fin & ~nan_w], w[~fin & ~nan_w]):
        return False, math.inf, math.inf, "infinities differ"
    if not fin.any():
        return True, 0.0, 0.0, ""
    g, w = g[fin], w[fin]
    err = (g - w).abs()
    allowed = rtol * w.abs() + atol * w.abs().max() + torch.finfo(torch.float64).tiny
    ratio = float((err / allowed).max())
    ok = ratio <= 1.0
    msg = (
        ""
        if ok
        else f"max |err| {float(err.max()):.3g}, {ratio:.3g}× the tolerance "
        f"(rtol {rtol:g}, atol {atol:g}·max|want|)"
    )
    return ok, float(err.max()), ratio, msg


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


@dataclass
class Spec:
    """A check: ``build(device, dtype)`` → (fn, wrt tensors, output names, wrt names), where
    ``fn(mode, ref)`` returns the outputs: the vsm computation (``ref`` False, run under backend
    ``mode``) or its reference (``ref`` True, run under backend "reference")."""

    check: str
    shape: str
    build: Callable[
        [torch.device, torch.dtype],
        tuple[
            Callable[[str, bool], Sequence[torch.Tensor]], list[torch.Tensor], list[str], list[str]
        ],
    ]


def _r(gen: torch.Generator, device, dtype, *shape, scale=1.0, grad=True) -> torch.Tensor:
    t = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
    return t.to(device, dtype).requires_grad_(grad)


def _pfd_spec(n: int | None, b: int, l: int, lv_range: float | None = None) -> Spec:
    zshape = (b, l) if n is None else (n, b, l)

    def build(device, dtype):
        import vsm

        gen = torch.Generator().manual_seed(b * 1000 + l)
        z, g = _r(gen, device, dtype, *zshape), _r(gen, device, dtype, *zshape)
        mu = _r(gen, device, dtype, b, l)
        if lv_range is None:
            lv = _r(gen, device, dtype, b, l, scale=0.5)
        else:
            u = torch.rand(b, l, generator=gen, dtype=torch.float64)
            lv = ((2 * u - 1) * lv_range).to(device, dtype).requires_grad_(True)
        ins = [z, mu, lv, g]
        return (
            (lambda _m, _ref: [vsm.posterior_fd(*ins)]),
            ins,
            ["pfd"],
            ["z", "mu", "logvar", "grad_loglik_z"],
        )

    extra = f" logvar∈±{lv_range:g}" if lv_range else ""
    return Spec("posterior_fd", f"z {zshape} L={l}{extra}", build)


def _gt_spec(n: int | None, b: int, d: int, log_sigma2: float = -0.7) -> Spec:
    xm_shape = (b, d) if n is None else (n, b, d)

    def build(device, dtype):
        import vsm

        gen = torch.Generator().manual_seed(b * 1000 + d)
        x, xm = _r(gen, device, dtype, b, d), _r(gen, device, dtype, *xm_shape)
        ls2 = torch.tensor(log_sigma2, dtype=dtype, device=device, requires_grad=True)
        ins = [x, xm, ls2]

        def fn(_m, _ref):
            t = vsm.gaussian_terms(*ins)
            return [t.sq_mean, t.mean_sq, t.trace]

        return fn, ins, ["sq_mean", "mean_sq", "trace"], ["x", "x_mean", "log_sigma2"]

    return Spec("gaussian_terms", f"x_mean {xm_shape}", build)


def _hutch_spec(b: int, d: int, p: int, dist: str) -> Spec:
    def build(device, dtype):
        import vsm

        from ..ops import hutchinson_probes

        gen = torch.Generator().manual_seed(b * 1000 + d + p)
        x = _r(gen, device, dtype, b, d)
        w_mat = _r(gen, device, dtype, d, d, scale=1 / math.sqrt(d))
        w_vec = _r(gen, device, dtype, d)
        ins = [x, w_mat, w_vec]
        seed = 12345

        def fn(mode, ref):
            y = torch.tanh(x @ w_mat) + x * w_vec  # a non-diagonal Jacobian, rows independent
            if ref:  # the estimator's formula with the probes of the backend under test
                with backend(mode):
                    v = hutchinson_probes(x, p, seed, dist).detach()
                est = torch.zeros(b, dtype=dtype, device=device)
                for k in range(p):
                    (u,) = torch.autograd.grad(y, x, v[k], create_graph=True)
                    est = est + (v[k] * u).sum(-1)
                return [est / p]
            return [vsm.hutchinson_trace(y, x, n_probes=p, dist=dist, seed=seed)]

        return fn, ins, ["trace"], ["x", "W", "w"]

    return Spec("hutchinson_trace", f"B={b} D={d} P={p} {dist}", build)


def _objective_specs(n: int, b: int, d: int, l: int) -> list[Spec]:
    def setup(device, dtype):
        gen = torch.Generator().manual_seed(n * 100 + b + d + l)
        t = {
            "x": _r(gen, device, dtype, b, d),
            "x_mean": _r(gen, device, dtype, n, b, d),
            "psi": _r(gen, device, dtype, n, b, d),
            "z": _r(gen, device, dtype, n, b, l),
            "gz": _r(gen, device, dtype, n, b, l),
            "mu": _r(gen, device, dtype, b, l),
            "logvar": _r(gen, device, dtype, b, l, scale=0.5),
        }
        t["log_sigma2"] = torch.tensor(-0.5, dtype=dtype, device=device, requires_grad=True)
        eps = _r(gen, device, dtype, n, b, l, grad=False)
        torch.manual_seed(0)
        dec = torch.nn.Sequential(torch.nn.Linear(l, 13), torch.nn.Tanh(), torch.nn.Linear(13, d))
        enc = torch.nn.Sequential(
            torch.nn.Linear(d, 11), torch.nn.Tanh(), torch.nn.Linear(11, 2 * l)
        )
        dec, enc = dec.to(device, dtype), enc.to(device, dtype)
        return t, eps, dec, enc

    def make(name: str, call, keys: list[str], nets: str = ""):
        def build(device, dtype):
            t, eps, dec, enc = setup(device, dtype)

            def encode(v):
                h = enc(v)
                return h[..., :l], h[..., l:]

            def fn(_m, _ref):
                return [call(t, eps, dec, encode)]

            params = list(dec.parameters()) if "dec" in nets else []
            params += list(enc.parameters()) if "enc" in nets else []
            names = keys + [f"{nets}.param{i}" for i in range(len(params))]
            return fn, [t[k] for k in keys] + params, [name], names

        return Spec(f"objectives.{name}", f"N={n} B={b} D={d} L={l}", build)

    from .. import objectives as O

    return [
        make(
            "m1",
            lambda t, e, dec, enc: O.m1(t["x"], t["x_mean"], t["log_sigma2"]),
            ["x", "x_mean", "log_sigma2"],
        ),
        make(
            "m2",
            lambda t, e, dec, enc: O.m2(t["x"], t["x_mean"], t["log_sigma2"]),
            ["x", "x_mean", "log_sigma2"],
        ),
        make(
            "m3",
            lambda t, e, dec, enc: O.m3(t["x"], t["x_mean"], t["log_sigma2"], t["psi"]),
            ["x", "x_mean", "log_sigma2", "psi"],
        ),
        make(
            "fae",
            lambda t, e, dec, enc: O.fae(
                t["x"],
                t["z"],
                t["x_mean"],
                t["log_sigma2"],
                t["mu"],
                t["logvar"],
                t["psi"],
                t["gz"],
            ),
            ["x", "z", "x_mean", "log_sigma2", "mu", "logvar", "psi", "gz"],
        ),
        make(
            "posterior_fd_loss",
            lambda t, e, dec, enc: O.posterior_fd_loss(
                t["x"], dec, t["mu"], t["logvar"], t["log_sigma2"], n_samples=n, reparam=True, eps=e
            ),
            ["x", "mu", "logvar", "log_sigma2"],
            "dec",
        ),
        make(
            "fae_loss",
            lambda t, e, dec, enc: O.fae_loss(
                t["x"], enc, dec, t["log_sigma2"], n_samples=n, reparam=True, eps=e
            ),
            ["x", "log_sigma2"],
            "dec+enc",
        ),
    ]


def specs(small: bool, ops: Sequence[str] | None = None) -> list[Spec]:
    """The checked cases: tiny odd shapes on CPU (interpreter), larger odd shapes on CUDA.
    ``ops``: only these fused ops and the objectives built on them (None: all)."""
    every = _specs(small)
    if ops is None:
        return every
    uses = {
        "objectives.m1": {"gaussian_terms"},
        "objectives.m2": {"gaussian_terms"},
        "objectives.m3": {"gaussian_terms"},
        "objectives.fae": {"gaussian_terms", "posterior_fd"},
        "objectives.posterior_fd_loss": {"posterior_fd"},
        "objectives.fae_loss": {"gaussian_terms", "posterior_fd"},
    }
    return [s for s in every if s.check in ops or uses.get(s.check, set()) & set(ops)]


def _specs(small: bool) -> list[Spec]:
    if small:
        return [
            _pfd_spec(2, 3, 5),
            _pfd_spec(None, 3, 1),
            _pfd_spec(2, 3, 7, lv_range=12.0),
            _gt_spec(2, 3, 5),
            _gt_spec(None, 3, 6),
            _gt_spec(1, 1, 1),
            _hutch_spec(3, 5, 2, "rademacher"),
            _hutch_spec(2, 7, 1, "gaussian"),
            *_objective_specs(2, 3, 5, 2),
        ]
    return [
        _pfd_spec(3, 37, 5),
        _pfd_spec(5, 129, 100),
        _pfd_spec(None, 33, 17),
        _pfd_spec(1, 1, 1),
        _pfd_spec(2, 65, 33, lv_range=12.0),
        _gt_spec(3, 37, 5),
        _gt_spec(5, 100, 784),
        _gt_spec(None, 19, 1000),
        _gt_spec(1, 1, 1),
        _hutch_spec(37, 129, 3, "rademacher"),
        _hutch_spec(5, 1000, 1, "gaussian"),
        _hutch_spec(1, 1, 1, "rademacher"),
        *_objective_specs(3, 37, 129, 5),
    ]


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


# --- torch.compile of a VAE training step ------------------------------------------------------


def _vae_step(
    enc: torch.nn.Sequential,
    dec_layers: list[torch.nn.Linear],
    x: torch.Tensor,
    eps: torch.Tensor,
    log_sigma2: torch.Tensor,
) -> torch.Tensor:
    """Encoder-and-decoder loss of an MLP VAE with the fused ops: mean PFD (decoder VJP written
    out by hand, ReLU MLP) + mean m2 (gaussian_terms)."""
    import vsm

    h = enc(x)
    latent = h.shape[-1] // 2
    mu, logvar = h[..., :latent], h[..., latent:]
    z = mu + torch.exp(0.5 * logvar) * eps
    acts, a = [], z
    for i, layer in enumerate(dec_layers):  # forward, keeping the ReLU masks
        a = layer(a)
        if i < len(dec_layers) - 1:
            acts.append(a > 0)
            a = torch.relu(a)
    x_mean = a
    g = (x - x_mean) * torch.exp(-log_sigma2)  # ∇_{x_mean} log p(x|z)
    for i in range(len(dec_layers) - 1, -1, -1):  # VJP back to z
        g = g @ dec_layers[i].weight
        if i > 0:
            g = g * acts[i - 1]
    pfd = vsm.posterior_fd(z, mu, logvar, g).mean(0)
    m2 = vsm.objectives.m2(x, x_mean, log_sigma2)
    return (pfd + m2).mean()


def check_compile(
    device: torch.device, dtype: torch.dtype, compile_backend: str, small: bool
) -> list[CheckResult]:
    """``torch.compile(fullgraph=True)`` of :func:`_vae_step` vs eager: loss and parameter grads
    (float32 / float64 tolerances of :data:`TOLERANCES`)."""
    dname = str(dtype).removeprefix("torch.")
    n, b, d, l, w = (2, 3, 6, 2, 5) if small else (5, 100, 784, 16, 128)
    shape = f"N={n} B={b} D={d} L={l} width {w}"
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(d, w), torch.nn.ReLU(), torch.nn.Linear(w, 2 * l))
    dec = [torch.nn.Linear(l, w), torch.nn.Linear(w, w), torch.nn.Linear(w, d)]
    enc = enc.to(device, dtype)
    dec = [m.to(device, dtype) for m in dec]
    log_sigma2 = torch.tensor(-1.0, device=device, dtype=dtype, requires_grad=True)
    params = [*enc.parameters(), *(p for m in dec for p in m.parameters()), log_sigma2]
    x = torch.rand(b, d, device=device, dtype=dtype)
    eps = torch.randn(n, b, l, device=device, dtype=dtype)

    def res(quantity, ok, err=0.0, ratio=0.0, msg=""):
        return CheckResult(
            "compile VAE step", compile_backend, dname, shape, quantity, ok, err, ratio, msg
        )

    try:
        loss = _vae_step(enc, dec, x, eps, log_sigma2)
        grads = torch.autograd.grad(loss, params)
        torch._dynamo.reset()
        step = torch.compile(_vae_step, fullgraph=True, backend=compile_backend)
        closs = step(enc, dec, x, eps, log_sigma2)
        cgrads = torch.autograd.grad(closs, params)
    except Exception as exc:  # noqa: BLE001 - a failed compile is a failed check
        return [res("compile", False, math.inf, math.inf, f"{type(exc).__name__}: {exc}"[:300])]
    out = [res("loss", *compare(closs, loss, dtype))]
    for i, (g, cg) in enumerate(zip(grads, cgrads, strict=True)):
        out.append(res(f"grad param{i} {tuple(g.shape)}", *compare(cg, g, dtype)))
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
    from . import has_backend

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
    from . import format_table, machine_description, run_table, write_report

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
