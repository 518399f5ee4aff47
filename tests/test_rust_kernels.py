"""Tests of the Rust CPU kernels of vsm's fused ops (:mod:`vsm.ops._rust`, crate
``vsm_core::fused``) and of their wiring as the ops' CPU implementation.

- Launcher level: each Rust launcher against the pure-torch reference (:mod:`vsm.reference`,
  gradients by autograd) and against its Triton twin run by the interpreter, over
  hypothesis-drawn shapes (odd sizes, size 1, large L/D), float32 and float64.
- Probes: probe stream v2 (PROBES.md) written directly with Triton's own ``tl.randint4x`` /
  ``tl.randn4x`` in a small test kernel (independent of ``vsm.kernels``) under the interpreter;
  Rademacher probes must be bit-identical, Gaussian ones equal to float32 rounding.
- Public ops through ``vsm.backend("rust")``: values and gradients vs the reference, float64
  gradcheck/gradgradcheck, ``torch.compile(fullgraph=True)``, ``torch.library.opcheck``,
  non-finite data, bad input (the tables of ``test_bad_input.py`` rerun on the Rust path) and the
  thread policy (results independent of ``torch.get_num_threads()``).

The extreme-value tests of ``test_extreme_values.py`` run on the Rust path too (parametrised).
"""

from __future__ import annotations

import math
import sys

import _cases as C
import pytest
import test_bad_input as TB
import torch
import triton
import triton.language as tl
import vsm
from hypothesis import example, given
from hypothesis import strategies as st
from test_compile import (
    OPCHECK_CASES,
    _compiled_matches_eager,
    _grads,
    _opcheck_case,
    _step,
    _vae_batch,
)
from vsm import _dispatch, reference
from vsm.kernels import gaussian_terms as KG
from vsm.kernels import hutchinson as KH
from vsm.kernels import posterior_fd as KP
from vsm.ops import _rust as R
from vsm.ops import hutchinson as H

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-5}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}
#: Agreement with the Triton twins: same formulas and order, so only exp rounding (numpy's exp in
#: the interpreter vs libm: 1 ulp of e, amplified where z − (z − mu)·e − g cancels, hence an
#: absolute tolerance of a few ulps of the O(10) terms) and the in-tile reduction order differ.
TWIN_TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 2e-5},
    torch.float64: {"rtol": 1e-13, "atol": 4e-14},
}

dims = st.one_of(st.integers(1, 9), st.sampled_from([16, 31, 33, 127, 128, 129, 200]))
big_dims = st.one_of(dims, st.sampled_from([255, 257, 784, 1024, 3001]))


def _dtype(f64: bool) -> torch.dtype:
    return torch.float64 if f64 else torch.float32


def _randn(gen: torch.Generator, dtype: torch.dtype, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=dtype)


# ============================================================================ probe stream v2


@triton.jit
def _spec_probes_kernel(out_ptr, seed, M, D, N_PER_ROW, DIST: tl.constexpr, BLOCK: tl.constexpr):
    """v.flat[i] for i = r·D + d, written from PROBES.md with tl.randint4x / tl.randn4x."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    mask = i < M
    r = i // D
    d = i % D
    if DIST == 0:
        offset = r * N_PER_ROW + d // 128
        x0, x1, x2, x3 = tl.randint4x(seed, offset)
        j = d % 128
        w = j // 32
        word = tl.where(w == 0, x0, tl.where(w == 1, x1, tl.where(w == 2, x2, x3)))
        bit = (word >> (j % 32).to(tl.uint32)) & 1
        v = 1.0 - 2.0 * bit.to(tl.float32)
    else:
        offset = r * N_PER_ROW + d // 4
        n0, n1, n2, n3 = tl.randn4x(seed, offset)
        k = d % 4
        v = tl.where(k == 0, n0, tl.where(k == 1, n1, tl.where(k == 2, n2, n3)))
    tl.store(out_ptr + i, v.to(out_ptr.dtype.element_ty), mask=mask)


def _spec_probes(shape, seed: int, dist: int, dtype: torch.dtype) -> torch.Tensor:
    """Probe stream v2 by Triton's own Philox (interpreter): the oracle of the Rust probes."""
    d = shape[-1]
    out = torch.empty(shape, dtype=dtype)
    m = out.numel()
    if m == 0:
        return out
    per_row = math.ceil(d / (128 if dist == 0 else 4))
    block = 256
    _spec_probes_kernel[(triton.cdiv(m, block),)](out, seed, m, d, per_row, DIST=dist, BLOCK=block)
    return out


seeds = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 1, 2**31 - 1, 2**32 + 7]))
# The probe launchers' arguments but the dimension d: p probes of a (b, d) batch, either
# distribution (0 Rademacher, 1 Gaussian), any seed, either dtype.
PROBE_ARGS = {
    "p": st.integers(1, 3),
    "b": st.integers(1, 4),
    "dist": st.sampled_from([0, 1]),
    "seed": seeds,
    "f64": st.booleans(),
}


@given(p=st.integers(1, 3), b=st.integers(1, 4), d=dims, seed=seeds, f64=st.booleans())
@example(p=1, b=1, d=1, seed=0, f64=False)
@example(p=2, b=3, d=129, seed=2**63 - 1, f64=True)
def test_rademacher_probes_bit_identical_to_triton_randint4x(p, b, d, seed, f64):
    dtype = _dtype(f64)
    got = R.hutchinson_probes((p, b, d), seed, 0, dtype, torch.device("cpu"))
    want = _spec_probes((p, b, d), seed, 0, dtype)
    assert got.dtype == dtype and got.shape == (p, b, d)
    assert torch.equal(got, want)


@given(p=st.integers(1, 3), b=st.integers(1, 4), d=dims, seed=seeds, f64=st.booleans())
@example(p=1, b=1, d=1, seed=0, f64=True)
def test_gaussian_probes_match_triton_randn4x(p, b, d, seed, f64):
    """Same Philox words and Box–Muller in float32; only the libm's log/cos/sin may round
    differently from numpy's (the interpreter), so a few float32 ulps."""
    dtype = _dtype(f64)
    got = R.hutchinson_probes((p, b, d), seed, 1, dtype, torch.device("cpu"))
    want = _spec_probes((p, b, d), seed, 1, dtype)
    torch.testing.assert_close(got, want, rtol=4e-7, atol=4e-7)


@given(d=dims, **PROBE_ARGS)
@example(p=2, b=3, d=129, dist=0, seed=2**63 - 1, f64=False)
def test_hutchinson_launchers_match_triton_twins(p, b, d, dist, seed, f64):
    """Same stream as vsm.kernels.hutchinson: Rademacher probes and go·v bit-identical; Gaussian
    probes are drawn in float32 and may differ by a float32 ulp (libm vs numpy log/cos/sin)."""
    dtype = _dtype(f64)
    gen = torch.Generator().manual_seed(d)
    u, go = _randn(gen, dtype, p, b, d), _randn(gen, dtype, p, b)
    pairs = [
        (
            R.hutchinson_probes((p, b, d), seed, dist, dtype, "cpu"),
            KH.probes((p, b, d), seed, dist, dtype, torch.device("cpu")),
        ),
        (R.hutchinson_dot_backward(go, seed, dist, d), KH.dot_backward(go, seed, dist, d)),
        (R.hutchinson_dot(u, seed, dist), KH.dot(u, seed, dist)),
    ]
    for k, (got, want) in enumerate(pairs):
        if dist == 0 and k < 2:
            assert torch.equal(got, want)
        elif dist == 0:
            torch.testing.assert_close(got, want, **TOL[dtype])
        else:
            torch.testing.assert_close(got, want, rtol=2e-6, atol=2e-6 * math.sqrt(d))


def test_probes_independent_of_dtype_and_threads():
    base = R.hutchinson_probes((2, 50, 700), 77, 1, torch.float64, "cpu")
    old = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            for dist in (0, 1):
                v32 = R.hutchinson_probes((2, 50, 700), 77, dist, torch.float32, "cpu")
                v64 = R.hutchinson_probes((2, 50, 700), 77, dist, torch.float64, "cpu")
                assert torch.equal(v32.double(), v64)
            assert torch.equal(v64, base)
    finally:
        torch.set_num_threads(old)


@given(d=big_dims, **PROBE_ARGS)
def test_dot_and_dot_backward_regenerate_the_probes(p, b, d, dist, seed, f64):
    dtype = _dtype(f64)
    gen = torch.Generator().manual_seed(d)
    u = _randn(gen, dtype, p, b, d)
    go = _randn(gen, dtype, p, b)
    v = R.hutchinson_probes((p, b, d), seed, dist, dtype, "cpu")
    torch.testing.assert_close(R.hutchinson_dot(u, seed, dist), (v * u).sum(-1), **TOL[dtype])
    assert torch.equal(R.hutchinson_dot_backward(go, seed, dist, d), go[..., None] * v)


def test_probe_edge_shapes_and_errors():
    assert R.hutchinson_probes((0, 3, 4), 1, 0, torch.float32, "cpu").shape == (0, 3, 4)
    assert R.hutchinson_dot(torch.zeros(2, 3, 0), 1, 0).equal(torch.zeros(2, 3))
    assert R.hutchinson_dot_backward(torch.ones(2, 3), 1, 1, 0).shape == (2, 3, 0)
    with pytest.raises(ValueError, match="^dist"):
        R.hutchinson_dot(torch.zeros(1, 1, 1), 1, 2)
    with pytest.raises(TypeError, match="^dtype"):
        R.hutchinson_probes((1, 1, 1), 1, 0, torch.float16, "cpu")
    with pytest.raises(ValueError, match="^device"):
        R.hutchinson_probes((1, 1, 1), 1, 0, torch.float32, "meta")
    with pytest.raises(TypeError, match="^u: expected a float32 or float64"):
        R.hutchinson_dot(torch.zeros(1, 1, 1, dtype=torch.int32), 1, 0)


# ============================================================================ posterior_fd


def _pfd_args(n, b, l, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z, g = _randn(gen, dtype, n, b, l), _randn(gen, dtype, n, b, l)
    mu, lv = _randn(gen, dtype, b, l), 0.5 * _randn(gen, dtype, b, l)
    return z, mu, lv, g, _randn(gen, dtype, n, b)


@given(n=st.integers(1, 5), b=dims, l=big_dims, f64=st.booleans())
@example(n=1, b=1, l=1, f64=False)
@example(n=5, b=100, l=16, f64=True)
def test_posterior_fd_launchers_match_reference(n, b, l, f64):
    dtype = _dtype(f64)
    z, mu, lv, g, go = _pfd_args(n, b, l, dtype, seed=n * b + l)
    out = R.posterior_fd_forward(z, mu, lv, g)
    args = [t.clone().requires_grad_(True) for t in (z, mu, lv, g)]
    ref = reference.posterior_fd(*args)
    assert out.shape == (n, b) and out.dtype == dtype
    torch.testing.assert_close(out, ref.detach(), **TOL[dtype])
    grads = R.posterior_fd_backward(go, z, mu, lv, g)
    for name, got, want in zip(
        ("dz", "dmu", "dlogvar", "dg"), grads, torch.autograd.grad(ref, args, go), strict=True
    ):
        assert got.shape == want.shape and got.dtype == dtype, name
        torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m, k=name: f"{k}: {m}")


@given(
    n=st.integers(1, 3), b=st.integers(1, 6), l=st.sampled_from([1, 3, 16, 130]), f64=st.booleans()
)
def test_posterior_fd_launchers_match_triton_twins(n, b, l, f64):
    dtype = _dtype(f64)
    z, mu, lv, g, go = _pfd_args(n, b, l, dtype, seed=7)
    torch.testing.assert_close(
        R.posterior_fd_forward(z, mu, lv, g), KP.forward(z, mu, lv, g), **TWIN_TOL[dtype]
    )
    for got, want in zip(
        R.posterior_fd_backward(go, z, mu, lv, g), KP.backward(go, z, mu, lv, g), strict=True
    ):
        torch.testing.assert_close(got, want, **TWIN_TOL[dtype])


# ============================================================================ gaussian_terms


def _gt_args(n, b, d, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, xm = _randn(gen, dtype, b, d), _randn(gen, dtype, n, b, d)
    ls = 0.3 * _randn(gen, dtype)
    return x, xm, ls, _randn(gen, dtype, b), _randn(gen, dtype, b)


@given(n=st.integers(1, 5), b=dims, d=big_dims, f64=st.booleans())
@example(n=1, b=1, d=1, f64=False)
@example(n=5, b=100, d=1024, f64=False)
def test_gaussian_terms_launchers_match_reference(n, b, d, f64):
    dtype = _dtype(f64)
    x, xm, ls, ga, gc = _gt_args(n, b, d, dtype, seed=n + b + d)
    sq, msq = R.gaussian_terms_forward(x, xm, ls)
    args = [t.clone().requires_grad_(True) for t in (x, xm)]
    ref = reference.gaussian_terms(*args, ls)
    torch.testing.assert_close(sq, ref.sq_mean.detach(), **TOL[dtype])
    torch.testing.assert_close(msq, ref.mean_sq.detach(), **TOL[dtype])
    dx, dxm = R.gaussian_terms_backward(ga, gc, x, xm, ls)
    loss = (ref.sq_mean * ga).sum() + (ref.mean_sq * gc).sum()
    want_dx, want_dxm = torch.autograd.grad(loss, args)
    torch.testing.assert_close(dx, want_dx, **TOL[dtype])
    torch.testing.assert_close(dxm, want_dxm, **TOL[dtype])


@given(
    n=st.integers(1, 3), b=st.integers(1, 5), d=st.sampled_from([1, 7, 128, 300]), f64=st.booleans()
)
def test_gaussian_terms_launchers_match_triton_twins(n, b, d, f64):
    dtype = _dtype(f64)
    x, xm, ls, ga, gc = _gt_args(n, b, d, dtype, seed=3)
    for got, want in zip(R.gaussian_terms_forward(x, xm, ls), KG.forward(x, xm, ls), strict=True):
        torch.testing.assert_close(got, want, **TWIN_TOL[dtype])
    for got, want in zip(
        R.gaussian_terms_backward(ga, gc, x, xm, ls), KG.backward(ga, gc, x, xm, ls), strict=True
    ):
        torch.testing.assert_close(got, want, **TWIN_TOL[dtype])


def test_launchers_on_empty_and_non_contiguous_inputs():
    x, xm, ls, _, _ = _gt_args(2, 3, 0, torch.float64)
    sq, msq = R.gaussian_terms_forward(x, xm, ls)
    assert sq.equal(torch.zeros(3)) and msq.equal(torch.zeros(3))
    z, mu, lv, g, _ = _pfd_args(3, 4, 5, torch.float64)
    zt = z.transpose(0, 1).contiguous().transpose(0, 1)
    assert not zt.is_contiguous()
    assert torch.equal(R.posterior_fd_forward(zt, mu, lv, g), R.posterior_fd_forward(z, mu, lv, g))


def test_launchers_reject_mixed_dtypes_naming_the_argument():
    z, mu, lv, g, _ = _pfd_args(2, 3, 4, torch.float32)
    with pytest.raises(TypeError, match="^logvar: expected a 2-D float32"):
        R.posterior_fd_forward(z, mu, lv.double(), g)
    with pytest.raises(ValueError, match=r"^mu: expected shape \[3, 4\]"):
        R.posterior_fd_forward(z, mu[:2], lv, g)
    x, xm, ls, _, _ = _gt_args(2, 3, 4, torch.float64)
    with pytest.raises(TypeError, match="^x_mean: expected a 3-D float64"):
        R.gaussian_terms_forward(x, xm.float(), ls)


# ============================================================================ threads


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_independent_of_thread_count(threads):
    """Rows are split between threads, each row computed the same way: bitwise equal results."""
    z, mu, lv, g, go = _pfd_args(5, 300, 33, torch.float32, seed=1)
    x, xm, ls, ga, gc = _gt_args(5, 100, 1024, torch.float32, seed=2)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        want = (
            R.posterior_fd_forward(z, mu, lv, g),
            *R.posterior_fd_backward(go, z, mu, lv, g),
            *R.gaussian_terms_forward(x, xm, ls),
            *R.gaussian_terms_backward(ga, gc, x, xm, ls),
            R.hutchinson_dot(xm, 5, 1),
        )
        torch.set_num_threads(threads)
        got = (
            R.posterior_fd_forward(z, mu, lv, g),
            *R.posterior_fd_backward(go, z, mu, lv, g),
            *R.gaussian_terms_forward(x, xm, ls),
            *R.gaussian_terms_backward(ga, gc, x, xm, ls),
            R.hutchinson_dot(xm, 5, 1),
        )
    finally:
        torch.set_num_threads(old)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


_POOL_SCRIPT = """
import glob, torch
from vsm.ops import _rust as R
torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)
z, g_ = (torch.randn(4, 1024, 100, generator=g) for _ in range(2))
mu, lv = (torch.randn(1024, 100, generator=g) for _ in range(2))
out = R.posterior_fd_forward(z, mu, lv, g_)
names = sorted({open(p).read().strip() for p in glob.glob("/proc/self/task/*/comm")})
print(repr(out.sum().item()), any(n.startswith("vsm-fused") for n in names))
"""

_TORCH_OPENMP = sys.platform.startswith("linux") and (
    "parallel backend: OpenMP" in torch.__config__.parallel_info()
)


@pytest.mark.skipif(not _TORCH_OPENMP, reason="needs a Linux torch build with OpenMP")
def test_parallel_kernels_run_on_torchs_openmp_team():
    """With torch's libgomp loaded, a parallel Rust kernel runs on the OpenMP team that torch
    uses (no rayon pool thread ``vsm-fused-*`` is started); ``VSM_RUST_POOL=rayon`` selects the
    rayon pool instead, with bitwise the same result. Fresh processes: other tests may have
    started pools already."""
    runs = {}
    for pool in ("openmp", "rayon"):
        proc = C.run_compiled(_POOL_SCRIPT, VSM_RUST_POOL=pool)
        assert proc.returncode == 0, proc.stderr[-3000:]
        total, rayon_started = proc.stdout.split()
        runs[pool] = (total, rayon_started)
    assert runs["openmp"][1] == "False"
    assert runs["rayon"][1] == "True"
    assert runs["openmp"][0] == runs["rayon"][0]


# ============================================================================ public ops on Rust


def test_dispatch_selects_rust_for_cpu_and_reference_still_reachable():
    t = torch.zeros(2, 2)
    with vsm.backend("rust"):
        assert _dispatch.select(t) == "rust" and _dispatch.cpu_kernel() == "rust"
        with vsm.backend("reference"):
            assert _dispatch.select(t) == "reference"
    with pytest.raises(RuntimeError, match="rust"), vsm.backend("rust"):
        _dispatch.select(torch.zeros(2, 2, device="meta"))
    # conftest sets TRITON_INTERPRET=1: "auto" runs the interpreted Triton kernels on CPU
    assert _dispatch.select(t) == "triton" and _dispatch.cpu_kernel() == "triton"


def test_public_ops_run_the_rust_kernels(monkeypatch):
    calls = []
    for ns, name in (
        (R.posterior_fd, "forward"),
        (R.posterior_fd, "backward"),
        (R.gaussian_terms, "forward"),
        (R.gaussian_terms, "backward"),
        (R.hutchinson, "probes"),
        (R.hutchinson, "dot"),
        (R.hutchinson, "dot_backward"),
    ):
        real = getattr(ns, name)
        monkeypatch.setattr(ns, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    z, mu, lv, g, _ = (t.requires_grad_(True) for t in _pfd_args(2, 3, 4, torch.float64))
    x, xm, ls, _, _ = (t.requires_grad_(True) for t in _gt_args(2, 3, 4, torch.float64))
    with vsm.backend("rust"):
        vsm.posterior_fd(z, mu, lv, g).sum().backward()
        vsm.gaussian_terms(x, xm, ls).sq_mean.sum().backward()
        y = torch.tanh(x) * x
        vsm.hutchinson_trace(y, x, n_probes=2, seed=3).sum().backward()
    assert calls == ["forward", "backward", "forward", "backward", "probes", "dot", "dot_backward"]


@given(n=st.integers(1, 4), b=dims, l=dims, batched=st.booleans(), f64=st.booleans())
def test_posterior_fd_op_matches_reference(n, b, l, batched, f64):
    dtype = _dtype(f64)
    z, mu, lv, g, go = _pfd_args(n, b, l, dtype)
    if not batched:
        z, g, go = z[0], g[0], go[0]
    args = [t.requires_grad_(True) for t in (z, mu, lv, g)]
    with vsm.backend("rust"):
        out = vsm.posterior_fd(*args)
        grads = torch.autograd.grad(out, args, go)
    ref = reference.posterior_fd(*args)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, **TOL[dtype])
    for got, want in zip(grads, torch.autograd.grad(ref, args, go), strict=True):
        torch.testing.assert_close(got, want, **TOL[dtype])


@given(n=st.integers(1, 4), b=dims, d=big_dims, unbatched=st.booleans(), f64=st.booleans())
def test_gaussian_terms_op_matches_reference(n, b, d, unbatched, f64):
    dtype = _dtype(f64)
    x, xm, ls, ga, gc = _gt_args(n, b, d, dtype)
    if unbatched:
        xm = xm[0]
    args = [t.requires_grad_(True) for t in (x, xm, ls)]
    with vsm.backend("rust"):
        out = vsm.gaussian_terms(*args)
        loss = (out.sq_mean * ga).sum() + (out.mean_sq * gc).sum() + out.trace
        grads = torch.autograd.grad(loss, args)
    ref = reference.gaussian_terms(*args)
    ref_loss = (ref.sq_mean * ga).sum() + (ref.mean_sq * gc).sum() + ref.trace
    for got, want in zip(out, ref, strict=True):
        torch.testing.assert_close(got, want, **TOL[dtype])
    for got, want in zip(grads, torch.autograd.grad(ref_loss, args), strict=True):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
def test_hutchinson_trace_on_rust_uses_the_probe_stream(dist):
    """The Rust path's estimate equals (1/P) Σ_p v_pᵀ J v_p with probe-stream-v2 probes."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(9, 9, generator=gen, dtype=torch.float64)
    x = torch.randn(4, 9, generator=gen, dtype=torch.float64).requires_grad_(True)
    with vsm.backend("rust"):
        est = vsm.hutchinson_trace(x @ a.T, x, n_probes=3, dist=dist, seed=2**40 + 3)
        v = H.hutchinson_probes(x, 3, 2**40 + 3, dist)
    spec = _spec_probes((3, 4, 9), 2**40 + 3, H._dist_id(dist), torch.float64)
    if dist == "rademacher":
        assert torch.equal(v, spec)
    else:
        torch.testing.assert_close(v, spec, rtol=4e-7, atol=4e-7)
    torch.testing.assert_close(est, torch.einsum("pbi,ij,pbj->b", v, a, v) / 3)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 2, 130)])
def test_gradcheck_and_gradgradcheck_through_rust(shape):
    z, mu, lv, g, _ = (t.requires_grad_(True) for t in _pfd_args(*shape, torch.float64))
    n, b, d = shape
    x, xm, ls, _, _ = (t.requires_grad_(True) for t in _gt_args(n, b, d, torch.float64))

    def gt(*a):
        out = vsm.gaussian_terms(*a)
        return out.sq_mean, out.mean_sq, out.trace

    with vsm.backend("rust"):
        assert torch.autograd.gradcheck(vsm.posterior_fd, (z, mu, lv, g))
        assert torch.autograd.gradgradcheck(vsm.posterior_fd, (z, mu, lv, g))
        assert torch.autograd.gradcheck(gt, (x, xm, ls))
        assert torch.autograd.gradgradcheck(gt, (x, xm, ls))


def test_gradcheck_hutchinson_through_rust():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def est(w, x):
        return vsm.hutchinson_trace(torch.tanh(x @ w), x, n_probes=2, seed=11, dist="gaussian")

    with vsm.backend("rust"):
        assert torch.autograd.gradcheck(est, (w, x))
        assert torch.autograd.gradgradcheck(est, (w, x))
        # the probe dot op is differentiable to any order (dot ↔ dot_backward)
        u = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradgradcheck(lambda u: H._dot_op(u, 9, "rademacher"), (u,))


def test_training_step_compiles_fullgraph_on_rust_and_matches_eager():
    params, x, eps = _vae_batch()
    loss, grads = _compiled_matches_eager("rust", params, x, eps)
    ref_loss, ref_grads = _grads(_step, params, x, eps)  # interpreted Triton (conftest)
    torch.testing.assert_close(loss, ref_loss)
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg)


@pytest.mark.parametrize("case", OPCHECK_CASES)
def test_opcheck_on_rust(case):
    op, args = _opcheck_case(case)
    with vsm.backend("rust"):
        torch.library.opcheck(op, args)


# ============================================================================ edge inputs


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("f64", [False, True])
def test_non_finite_inputs_behave_like_the_reference(value, f64):
    """A NaN/±inf anywhere gives NaN/inf exactly where the reference's forward has them."""
    dtype = _dtype(f64)
    ops = (
        (vsm.posterior_fd, reference.posterior_fd, _pfd_args, 4),
        (vsm.gaussian_terms, reference.gaussian_terms, _gt_args, 3),
    )
    for fused, twin, make_args, n_args in ops:
        for which in range(n_args):
            args = list(make_args(3, 4, 5, dtype, seed=which)[:n_args])
            args[which] = args[which].clone()
            args[which].view(-1)[::7] = value
            with vsm.backend("rust"):
                out = fused(*args)
            ref = twin(*args)
            pairs = zip(out, ref, strict=True) if isinstance(out, tuple) else [(out, ref)]
            for got, want in pairs:
                torch.testing.assert_close(got, want, equal_nan=True, **TOL[dtype])


_FUSED_CALLS = (C.pfd, C.gt, C.hutch)


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=row[0]) for row in TB.CASES if row[2] in _FUSED_CALLS]
)
def test_bad_input_same_errors_on_rust(row):
    """The fused ops' bad-input rows (valid and bad) give the same outcome on the Rust path."""
    with vsm.backend("rust"):
        C.check_row(row)


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize(
    "row",
    ["posterior_fd", "gaussian_terms", "hutchinson_trace", "m1", "m2", "m3", "elbo", "sliced_sm"],
)
def test_non_finite_datum_stays_in_its_row_on_rust(row, value):
    with vsm.backend("rust"):
        out = TB.NONFINITE_ROWS[row](value)
    for o in out if isinstance(out, tuple) else (out,):
        o = o.detach()
        assert not torch.isfinite(o[0]).all()
        assert torch.isfinite(o[1:]).all()


_COMPILED_BUILD_SCRIPT = """
import torch, vsm
from vsm import _dispatch
from vsm.ops import hutchinson as H
from vsm.ops.posterior_fd import _pfd_op
from test_compile import _grads, _step, _vae_batch

assert _dispatch.select(torch.zeros(1)) == "rust" and _dispatch.cpu_kernel() == "rust"
print("build", _dispatch.kernel_build())
params, x, eps = _vae_batch()
loss, grads = _grads(_step, params, x, eps)
with vsm.backend("reference"):
    rloss, rgrads = _grads(_step, params, x, eps)
closs, cgrads = _grads(torch.compile(_step, fullgraph=True, backend="aot_eager"), params, x, eps)
for a, b, c in zip((loss, *grads), (rloss, *rgrads), (closs, *cgrads), strict=True):
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(c, a)
r = lambda *s: torch.randn(*s, dtype=torch.float64, requires_grad=True)
torch.library.opcheck(_pfd_op, (r(2, 3, 4), r(3, 4), r(3, 4), r(2, 3, 4)))
torch.library.opcheck(H._dot_op, (r(2, 3, 5), 7, "gaussian"))
print("ok")
"""


def test_without_interpreter_cpu_runs_rust_eager_and_compiled(tmp_path):
    """The production CPU setting (no TRITON_INTERPRET): the ops are ``triton_op`` when triton is
    installed (kernels "compiled"), yet CPU tensors run the Rust kernels, eagerly and inside
    ``torch.compile(fullgraph=True)`` (the op is not decomposed into Triton launches on CPU), and
    opcheck passes. Runs in a subprocess: the kernel build is fixed at import."""
    proc = C.run_compiled(_COMPILED_BUILD_SCRIPT, C.TESTS_DIR, cwd=tmp_path)  # imports test_compile
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
