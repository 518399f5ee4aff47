"""Numerical edge cases of vsm's fused ops and of the Rust IS path (extreme values, size-1 dims).

The Triton kernels run under ``TRITON_INTERPRET=1`` (``conftest.py``) and are forced with
``vsm.backend("triton")``; the tests of the fused ops also run on the Rust CPU kernels
(``vsm.backend("rust")``, parametrised), held to the same rules. The shape-focused tests (``test_posterior_fd.py``,
``test_gaussian_terms.py``, ``test_hutchinson.py``) use ordinary values; here hypothesis draws
extreme ones: log-variances from -30 to 30 (exp(-logvar) up to 1e13), data of magnitude 1e6 with
decoder means a hair away (cancellation), map scales from 2**-100 to 2**100, log weights from -1e30
to 700, and N = B = L = D = K = 1.

Accuracy rule (one for every fused op). The *truth* is the pure-torch reference
(:mod:`vsm.reference`) evaluated in float64 on the same inputs upcast to float64, so input
rounding is not counted as error. The *magnitude* m of an output element is the same formula with
every term replaced by its absolute value (float64). A kernel output must satisfy
``|got - truth| <= c * eps(dtype) * m``, with c a small count of rounding steps (plus N, L or D for
the reductions): the forward-error bound of a backward-stable evaluation. Cancellation (a truth
far below its terms, e.g. an exact posterior, or x_mean = x + tiny) may cost relative accuracy;
anything beyond a few ulps of the terms is a bug. The three fused ops' references compute in the
input dtype (only ``is_log_evidence``, its reference and ``ISAccumulator`` work in float64), so
the float32 kernels are held to float32 accuracy relative to that float64 truth; measured over
1000 examples per test, the largest error is about 0.2 of the allowed c·eps·m.

Overflow rule (float32). Where the truth exceeds float32's range (by a relative margin of 1e-5)
the kernel must give +-inf with the truth's sign (both paths overflow there). The kernel must be
finite wherever the float32 reference is finite (no spurious inf/NaN from an intermediate the
reference avoids) and wherever the truth and its magnitude fit in float32. NaN only where the
float32 reference is NaN as well.
"""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from hypothesis import example, given
from hypothesis import strategies as st
from test_gaussian_terms import _max_block_d
from test_hutchinson import DISTS
from vsm import reference
from vsm import reference_rust as RN
from vsm.ops import hutchinson as H

# Overflow to inf is what the float32 corners test; numpy (the interpreter) warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

F64 = torch.float64
#: The kernel implementations of the fused ops checked here (Triton in the interpreter, Rust).
KERNEL_BACKENDS = ("triton", "rust")
LN2PI = math.log(2 * math.pi)


def _dtype(f64: bool) -> torch.dtype:
    return F64 if f64 else torch.float32


def _assert_matches_truth(
    name: str,
    got: torch.Tensor,
    truth: torch.Tensor,
    mag: torch.Tensor,
    ref: torch.Tensor,
    c: float,
) -> None:
    """Check ``got`` (kernel, its own dtype) against the accuracy and overflow rules above.

    ``truth`` and ``mag`` are float64; ``ref`` is the reference in ``got``'s dtype.
    """
    fi = torch.finfo(got.dtype)
    g = got.detach().double()
    t, m, r = truth.detach(), mag.detach(), ref.detach().double()
    assert g.shape == t.shape == m.shape == r.shape, (name, g.shape, t.shape, m.shape, r.shape)
    over = t.abs() > fi.max * (1 + 1e-5)
    fits = torch.isfinite(t) & (t.abs() < fi.max * (1 - 1e-5))
    must_be_finite = (fits & (m < fi.max)) | (torch.isfinite(r) & ~over)

    def where(bad: torch.Tensor) -> str:
        i = tuple(int(k) for k in bad.nonzero()[0])
        vals = ", ".join(
            f"{k} {v[i].item()!r}" for k, v in (("got", g), ("truth", t), ("ref", r), ("mag", m))
        )
        return f"at {i}: {vals}"

    bad = torch.isnan(g) & ~torch.isnan(r)
    assert not bad.any(), f"{name}: NaN where the reference is not NaN, {where(bad)}"
    bad = must_be_finite & ~torch.isfinite(g)
    assert not bad.any(), f"{name}: spurious overflow, {where(bad)}"
    bad = over & (g != t.sign() * math.inf)
    assert not bad.any(), f"{name}: the truth overflows {got.dtype}, the kernel not, {where(bad)}"
    bad = fits & torch.isfinite(g) & ((g - t).abs() > c * fi.eps * m)
    assert not bad.any(), f"{name}: error above {c} eps x magnitude, {where(bad)}"


# --------------------------------------------------------------------------------- posterior_fd


def _pfd_inputs(n, b, l, lv, lv_spread, z_exp, mu_mode, g_mode, g_exp, go_exp, seed):
    """float64 (z, mu, logvar, g, go) with z, g (n, b, l); see the test's docstring for modes."""
    gen = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=F64)

    z = r(n, b, l) * 10.0**z_exp
    mu = {
        "indep": lambda: r(b, l) * 10.0**z_exp,
        "close": lambda: z[0] * (1 + 1e-6 * r(b, l)),
        "equal": lambda: z[0].clone(),
    }[mu_mode]()
    u = torch.rand(b, l, generator=gen, dtype=F64) - 0.5
    logvar = (lv + lv_spread * u).clamp(-30.0, 30.0)
    if g_mode == "indep":
        g = r(n, b, l) * 10.0**g_exp
    else:  # res ≈ 0 (q close to the exact posterior): the output cancels to ~1e-6 of its terms
        g = (z - (z - mu) * torch.exp(-logvar)) * (1 + 1e-6 * r(n, b, l))
    go = r(n, b) * 10.0**go_exp
    return z, mu, logvar, g, go


def _pfd_magnitudes(z, mu, logvar, g, go):
    """Absolute-value twins of the forward and of the four gradients (kernels/posterior_fd.py)."""
    e = torch.exp(-logvar)
    d = (z - mu).abs()
    s = z.abs() + d * e + g.abs()
    ga = 2 * go.abs().unsqueeze(-1) * s
    return (s * s).sum(-1), ga * (1 + e), (ga * e).sum(0), (ga * d * e).sum(0), ga


@given(
    n=st.integers(1, 3),
    b=st.integers(1, 3),
    l=st.sampled_from([1, 2, 5, 33]),
    batched=st.booleans(),
    f64=st.booleans(),
    lv=st.floats(-30.0, 30.0),
    lv_spread=st.sampled_from([0.0, 1.0, 60.0]),
    z_exp=st.integers(-6, 6),
    mu_mode=st.sampled_from(["indep", "close", "equal"]),
    g_mode=st.sampled_from(["indep", "cancel"]),
    g_exp=st.integers(-6, 6),
    go_exp=st.integers(-3, 3),
    seed=st.integers(0, 2**16),
)
# float32 corners: huge 1/s² with |z| = 1e6 (PFD and its gradients overflow float32), tiny 1/s²
# with tiny z, exact-posterior cancellation at 1/s² = 1e13, and N = B = L = 1.
@C.examples(
    "n b l batched f64 lv lv_spread z_exp mu_mode g_mode g_exp go_exp seed",
    [
        (2, 3, 5, True, False, -30.0, 1.0, 6, "indep", "indep", 6, 0, 0),
        (3, 2, 5, True, False, -29.0, 0.0, 6, "indep", "indep", 0, 3, 1),
        (1, 1, 1, False, False, 30.0, 0.0, -6, "close", "indep", -6, -3, 2),
        (2, 2, 33, True, False, -30.0, 0.0, 3, "close", "cancel", 0, 0, 3),
        (1, 1, 1, True, True, -30.0, 0.0, 6, "indep", "cancel", 0, 3, 4),
    ],
)
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_posterior_fd_extreme_values(
    n, b, l, batched, f64, lv, lv_spread, z_exp, mu_mode, g_mode, g_exp, go_exp, seed, backend
):
    """Forward and the four gradients of the Triton path vs the float64 reference.

    logvar in [-30, 30] (lv_spread 60 mixes both ends in one tensor); |z| ~ 10**z_exp with mu
    independent, relatively 1e-6 away, or equal (z - mu = 0); g independent or cancelling the
    rest of the residual; upstream gradient ~ 10**go_exp. Unbatched (B, L) inputs take n = 1.
    """
    dtype = _dtype(f64)
    n = n if batched else 1
    x64 = _pfd_inputs(n, b, l, lv, lv_spread, z_exp, mu_mode, g_mode, g_exp, go_exp, seed)
    z3, mu, logvar, g3, go3 = (t.to(dtype) for t in x64)
    z, g, go = (z3, g3, go3) if batched else (z3[0], g3[0], go3[0])
    args = [t.requires_grad_(True) for t in (z, mu, logvar, g)]
    with vsm.backend(backend):
        out = vsm.posterior_fd(*args)
        got = (out, *torch.autograd.grad(out, args, go))
    ref = reference.posterior_fd(*args)
    ref = (ref, *torch.autograd.grad(ref, args, go))
    a64 = [t.detach().double().requires_grad_(True) for t in args]
    tru = reference.posterior_fd(*a64)
    tru = (tru, *torch.autograd.grad(tru, a64, go.double()))
    mags = _pfd_magnitudes(*(t.double() for t in (z3, mu.detach(), logvar.detach(), g3, go3)))
    if not batched:
        mags = (mags[0][0], mags[1][0], mags[2], mags[3], mags[4][0])
    consts = (16 + l, 16, 16 + n, 16 + n, 16)
    for name, *vals in zip(
        ("pfd", "dz", "dmu", "dlogvar", "dg"), got, tru, mags, ref, consts, strict=True
    ):
        _assert_matches_truth(name, *vals)
    if f64:
        assert all(torch.isfinite(t).all() for t in got)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_posterior_fd_gradient_overflow_cancelling_over_samples(backend):
    """float32 regression: d logvar = e Σ_n 2 go res (z − mu), where each sample's term
    overflows float32 once multiplied by e = exp(30) ≈ 1.07e13 but the two samples' terms cancel
    (mu and logvar are shared by the samples).

    The kernel used to multiply every sample's term by e before summing over n and returned
    inf − inf = NaN here, while the float32 reference (autograd sums over n, then multiplies by e)
    and the float64 truth are finite.
    """
    e = math.exp(30.0)
    z = torch.tensor([[[1e6]], [[-1e6]]], dtype=F64)
    mu = torch.zeros(1, 1, dtype=F64)
    logvar = torch.full((1, 1), -30.0, dtype=F64)
    g = z * (1 - e) - 2e16  # res_n = z_n (1 − e) − g_n ≈ 2e16 (PFD ≈ 8e32, fine in float32)
    go = torch.tensor([[1e3], [1e3]], dtype=F64)
    # per-sample terms of d logvar: ±2·1e3·2e16·1e6·e ≈ ±4.3e38 > float32 max ≈ 3.4e38
    assert 2e3 * 2e16 * 1e6 * e > torch.finfo(torch.float32).max
    args = [t.float().requires_grad_(True) for t in (z, mu, logvar, g)]
    with vsm.backend(backend):
        out = vsm.posterior_fd(*args)
        got = torch.autograd.grad(out, args, go.float())
    ref = reference.posterior_fd(*args)
    ref = torch.autograd.grad(ref, args, go.float())
    a64 = [t.detach().double().requires_grad_(True) for t in args]
    tru = torch.autograd.grad(reference.posterior_fd(*a64), a64, go)
    assert torch.isfinite(out).all() and abs(tru[2].item()) < 1e37
    mags = _pfd_magnitudes(*(t.detach().double() for t in args), go)
    for name, *vals in zip(("dz", "dmu", "dlogvar", "dg"), got, tru, mags[1:], ref, strict=True):
        _assert_matches_truth(name, *vals, c=18)
    assert torch.isfinite(got[2]).all()


# ------------------------------------------------------------------------------- gaussian_terms


def _gt_inputs(n, b, d, x_exp, delta_exp, same, seed):
    """float64 x (b, d) of magnitude ~10**x_exp and x_mean (n, b, d) = x + 10**delta_exp·noise
    (the same for every sample if ``same``)."""
    gen = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.rand(b, d, generator=gen, dtype=F64) < 0.5, -1.0, 1.0)
    x = sign * 10.0**x_exp * (1 + 0.5 * torch.rand(b, d, generator=gen, dtype=F64))
    noise = torch.randn(1 if same else n, b, d, generator=gen, dtype=F64).expand(n, b, d)
    return x, x + 10.0**delta_exp * noise


def _gt_check(x, xm, ls, w1, w2, w3, n, d, backend="triton"):
    """Kernel vs float64 truth for the three outputs and the three gradients; returns outputs."""
    args = [t.requires_grad_(True) for t in (x, xm, ls)]

    def loss(t):
        return (t.sq_mean * w1).sum() + (t.mean_sq * w2).sum() + (t.trace * w3).sum()

    with vsm.backend(backend):
        out = vsm.gaussian_terms(*args)
        got = (*out, *torch.autograd.grad(loss(out), args))
    ref = reference.gaussian_terms(*args)
    ref = (*ref, *torch.autograd.grad(loss(ref), args))
    a64 = [t.detach().double().requires_grad_(True) for t in args]
    w64 = [w.double() for w in (w1, w2, w3)]
    tru = reference.gaussian_terms(*a64)
    tru = (
        *tru,
        *torch.autograd.grad(
            (tru.sq_mean * w64[0]).sum() + (tru.mean_sq * w64[1]).sum() + tru.trace * w64[2], a64
        ),
    )
    with torch.no_grad():
        inv = torch.exp(-a64[2])
        fa = (a64[1] - a64[0]).abs() * inv  # |f_nbd|
        fam = fa.mean(0)
        sq = tru[0]
        aa, ca = w64[0].abs()[:, None], w64[1].abs()[:, None]
        mags = (
            sq,
            sq,
            d * inv,
            2 * inv * (aa + ca) * fam,
            inv * 2 / n * (aa * fa + ca * fam),
            2 * ((aa[:, 0] + ca[:, 0]) * sq).sum() + w64[2].abs() * d * inv,
        )
    consts = (16 + n + d, 16 + 2 * n + d, 4, 16 + n, 16 + n, 16 + n + d)
    names = ("sq_mean", "mean_sq", "trace", "dx", "dx_mean", "dlog_sigma2")
    for name, *vals in zip(names, got, tru, mags, ref, consts, strict=True):
        _assert_matches_truth(name, *vals)
    return out


@given(
    n=st.sampled_from([1, 2, 5]),
    b=st.integers(1, 3),
    d=st.sampled_from([1, 2, 17, 40]),
    f64=st.booleans(),
    ls=st.floats(-20.0, 20.0),
    x_exp=st.integers(0, 6),
    delta_exp=st.integers(-8, 6),
    same=st.booleans(),
    small_tiles=st.booleans(),
    seed=st.integers(0, 2**16),
)
@example(
    n=5, b=3, d=17, f64=False, ls=-20.0, x_exp=6, delta_exp=6, same=False, small_tiles=True, seed=0
)
@example(
    n=5, b=2, d=40, f64=False, ls=20.0, x_exp=6, delta_exp=-8, same=True, small_tiles=True, seed=1
)
@example(
    n=1, b=1, d=1, f64=False, ls=-20.0, x_exp=6, delta_exp=-1, same=False, small_tiles=False, seed=2
)
@example(
    n=2, b=1, d=1, f64=True, ls=20.0, x_exp=6, delta_exp=-8, same=True, small_tiles=False, seed=3
)
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_gaussian_terms_extreme_values(
    n, b, d, f64, ls, x_exp, delta_exp, same, small_tiles, seed, backend
):
    """σ² from 2e-9 to 5e8, |x| ~ 10**x_exp (up to 1e6) with x_mean = x + 10**delta_exp·noise
    (down to 1e-8: in float32 the difference is then 0 or a few ulps of x, and f is that exact
    difference, Sterbenz); ``same``: every sample equal, so Jensen holds with equality.
    ``small_tiles`` shrinks the D tile to 16 (D = 17, 40 span several tiles)."""
    dtype = _dtype(f64)
    x, xm = (t.to(dtype) for t in _gt_inputs(n, b, d, x_exp, delta_exp, same, seed))
    gen = torch.Generator().manual_seed(seed + 1)
    w1, w2 = (torch.randn(b, generator=gen, dtype=dtype) for _ in range(2))
    w3 = torch.randn((), generator=gen, dtype=dtype)
    with _max_block_d(16 if small_tiles else 128):
        out = _gt_check(x, xm, torch.tensor(ls, dtype=dtype), w1, w2, w3, n, d, backend)
    sq, msq = out.sq_mean.detach().double(), out.mean_sq.detach().double()
    assert torch.isfinite(sq).all() and torch.isfinite(msq).all()
    # Jensen: mean_n ‖f_n‖² ≥ ‖mean_n f_n‖², up to the rounding of the two sums.
    eps = torch.finfo(dtype).eps
    assert bool((sq >= msq - (4 + n + d) * eps * sq).all()), (sq, msq)
    if n == 1 or same:
        torch.testing.assert_close(msq, sq, rtol=(4 + n + d) * eps, atol=0)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_gaussian_terms_overflow_and_one_sided_gradient(backend):
    """float32 with σ² = e⁻⁶⁰ (1/σ² ≈ 1e26) and |x_mean − x| ~ 1e6: ‖f‖² ≈ 1e64 overflows, so
    sq_mean and mean_sq are +inf (truth beyond float32, as in the reference); the trace ≈ −4e26
    is finite. A loss using only sq_mean (mean_sq weighted by 0) must give d log σ² = −inf like
    the reference, not 0·inf = NaN from the unused mean_sq; dx and dx_mean overflow to ±inf with
    the truth's signs (the float32 reference gives NaN for dx there)."""
    x, xm = (t.float() for t in _gt_inputs(3, 2, 4, 6, 6, False, 5))
    w1, w2, w3 = torch.tensor([0.7, 1.3]), torch.zeros(2), torch.tensor(0.5)
    out = _gt_check(x, xm, torch.tensor(-60.0), w1, w2, w3, 3, 4, backend)
    assert torch.isposinf(out.sq_mean).all() and torch.isposinf(out.mean_sq).all()
    assert torch.isfinite(out.trace) and out.trace.item() < -1e26


# ------------------------------------------------------------------------------ hutchinson_trace


@given(
    b=st.integers(1, 4),
    d=st.sampled_from([1, 3, 257]),
    p=st.integers(1, 3),
    f64=st.booleans(),
    x_exp=st.integers(-15, 15),
    w_exp=st.integers(-15, 15),
    seed=st.integers(0, 2**62),
    backend=st.sampled_from([*KERNEL_BACKENDS, "reference"]),
)
@example(b=1, d=1, p=1, f64=False, x_exp=15, w_exp=-15, seed=0, backend="triton")
@example(b=1, d=1, p=1, f64=False, x_exp=-15, w_exp=15, seed=0, backend="reference")
def test_hutchinson_diagonal_jacobian_exact_at_any_scale(b, d, p, f64, x_exp, w_exp, seed, backend):
    """Elementwise map y = w·x + x²/2 (Jacobian diag(w + x)): every Rademacher probe gives the
    exact trace, on both paths and whatever their probes, so both must match Σ_d (w + x) to
    rounding, for |x| ~ 10**x_exp and |w| ~ 10**w_exp (diagonals from 1e-15 to 1e15, mixed)."""
    dtype = _dtype(f64)
    gen = torch.Generator().manual_seed(seed % 2**32)
    x = (torch.randn(b, d, generator=gen, dtype=F64) * 10.0**x_exp).to(dtype).requires_grad_(True)
    w = (torch.randn(d, generator=gen, dtype=F64) * 10.0**w_exp).to(dtype)
    y = w * x + 0.5 * x * x
    with vsm.backend(backend):
        est = vsm.hutchinson_trace(y, x, n_probes=p, seed=seed)
    x64 = x.detach().double()
    exact = (w.double() + x64).sum(-1)
    mag = (w.double().abs() + x64.abs()).sum(-1)
    _assert_matches_truth("trace", est.detach(), exact, mag, exact.to(dtype), 8 + d)


@given(
    b=st.integers(1, 3),
    d=st.sampled_from([1, 4, 257]),
    p=st.integers(1, 3),
    dist=st.sampled_from(DISTS),
    f64=st.booleans(),
    k=st.integers(-100, 100),
    seed=st.integers(0, 2**62),
    backend=st.sampled_from([*KERNEL_BACKENDS, "reference"]),
)
@example(b=1, d=1, p=1, dist="gaussian", f64=False, k=100, seed=7, backend="triton")
@example(b=1, d=1, p=1, dist="rademacher", f64=False, k=-100, seed=7, backend="triton")
def test_hutchinson_scale_equivariant_and_matches_its_probes(b, d, p, dist, f64, k, seed, backend):
    """Linear map y = 2**k · x Aᵀ (Jacobian 2**k A, entries from ~1e-30 to ~1e30 in float32):

    - the estimate equals the torch formula (1/P) Σ_p v_pᵀ J v_p with that path's own probes for
      the same seed (Philox on the Triton path, ``torch.Generator`` on the reference), evaluated
      in float64, to c·eps times Σ |v_p| |J| |v_p|;
    - scaling by a power of two is exact in floating point, so est(2**k A) == 2**k · est(A)
      bitwise (no intermediate over/underflows for |k| <= 100 in float32).
    """
    dtype = _dtype(f64)
    gen = torch.Generator().manual_seed(seed % 2**32)
    a = (torch.randn(d, d, generator=gen, dtype=F64) / math.sqrt(d)).to(dtype)
    x = torch.randn(b, d, generator=gen, dtype=F64).to(dtype).requires_grad_(True)
    s = 2.0**k
    with vsm.backend(backend):
        est = vsm.hutchinson_trace(x @ (s * a).T, x, n_probes=p, dist=dist, seed=seed)
        est1 = vsm.hutchinson_trace(x @ a.T, x, n_probes=p, dist=dist, seed=seed)
        v = H.hutchinson_probes(x, p, seed, dist).double()
    assert torch.equal(est.detach(), est1.detach() * s)
    j = (s * a).double()
    want = torch.einsum("pbi,ij,pbj->b", v, j, v) / p
    mag = torch.einsum("pbi,ij,pbj->b", v.abs(), j.abs(), v.abs()) / p
    _assert_matches_truth("trace", est.detach(), want, mag, want.to(dtype), 8 + 2 * d)


# ------------------------------------------------------------------ is_log_evidence / ISAccumulator

_LOG_W = st.one_of(st.floats(-1e30, 700.0), st.sampled_from([-1e30, -1e17, 700.0, -math.inf]))


@given(col=st.lists(_LOG_W, min_size=1, max_size=6), f64=st.booleans())
@example(col=[-1e30, 700.0, -math.inf, 0.0], f64=False)
def test_is_log_evidence_k1_is_identity(col, f64):
    """K = 1: log_p = log_w exactly and ESS = 1 (ESS = 0 for a −inf weight, log_p = −inf), for
    the Rust path (torch and NumPy in), the torch reference and the NumPy twin."""
    dtype = _dtype(f64)
    lw = torch.tensor(col, dtype=F64).to(dtype)[:, None]
    zero = torch.isneginf(lw[:, 0])
    want_ess = torch.where(zero, 0.0, 1.0).to(dtype)
    for lp, ess in (vsm.is_log_evidence(lw), reference.is_log_evidence(lw)):
        assert lp.dtype == ess.dtype == dtype
        assert torch.equal(lp, lw[:, 0]) and torch.equal(ess, want_ess)
    lp, ess = vsm.is_log_evidence(lw.numpy())
    assert lp.dtype == ess.dtype == np.float64
    np.testing.assert_array_equal(lp, lw[:, 0].double().numpy())
    np.testing.assert_array_equal(ess, want_ess.double().numpy())
    if not zero.any():  # the NumPy twin shifts by a −inf maximum for an all −inf row (NaN)
        tw = RN.is_log_evidence(lw.double().numpy())
        np.testing.assert_array_equal(tw[0], lw[:, 0].double().numpy())
        np.testing.assert_array_equal(tw[1], np.ones(len(col)))


@given(
    rows=st.lists(st.lists(_LOG_W, min_size=1, max_size=8), min_size=1, max_size=4),
    f64=st.booleans(),
)
@example(rows=[[-1e30] * 5, [-1e17] * 3, [700.0, 700.0, -1e30], [-math.inf, -math.inf]], f64=True)
@example(rows=[[-1e30, 700.0, 699.0, -math.inf], [-math.inf]], f64=False)
def test_is_log_evidence_extreme_rows(rows, f64):
    """Rows (ragged rows padded with −inf, a zero weight) mixing −1e30, 700 and −inf:

    - Rust vs the torch reference and the NumPy twin (float64 formulas), ESS in [1, K] (0 for
      an all −inf row, log_p = −inf there, as documented), max − log K <= log_p <= max;
    - float32 input: accumulated in float64, so log_p and ESS are the float64 results of the
      upcast input rounded once to float32 (not a float32 log-sum-exp);
    - gradient = the normalised weights (softmax), NaN on an all −inf row (no weights to
      normalise), exactly like autograd through the reference's ``torch.logsumexp``.
    """
    dtype = _dtype(f64)
    k = max(len(r) for r in rows)
    lw = torch.tensor([r + [-math.inf] * (k - len(r)) for r in rows], dtype=F64).to(dtype)
    lw64 = lw.double().clone()
    lp, ess = vsm.is_log_evidence(lw.requires_grad_(True))
    assert lp.dtype == ess.dtype == dtype
    rlp, ress = reference.is_log_evidence(lw64)
    ulp = torch.finfo(dtype).eps  # float32: one rounding of the float64 result
    torch.testing.assert_close(lp, rlp.to(dtype), rtol=1e-14 if f64 else ulp, atol=0.0)
    torch.testing.assert_close(ess, ress.to(dtype), rtol=1e-12 if f64 else ulp, atol=0.0)
    np_lp, np_ess = vsm.is_log_evidence(lw64.numpy())
    mx = lw64.max(-1).values
    dead = torch.isneginf(mx)
    assert torch.equal(torch.isneginf(torch.from_numpy(np_lp)), dead)
    assert bool((torch.from_numpy(np_ess)[dead] == 0).all())
    live = ~dead
    tlp, tess = RN.is_log_evidence(lw64[live].numpy())
    np.testing.assert_allclose(np_lp[live.numpy()], tlp, rtol=1e-14)
    np.testing.assert_allclose(np_ess[live.numpy()], tess, rtol=1e-12)
    e = torch.from_numpy(np_ess)[live]
    assert bool(((e >= 1 - 1e-12) & (e <= k * (1 + 1e-12))).all())
    lpl = torch.from_numpy(np_lp)[live]
    slack = 4 * np.finfo(np.float64).eps * (mx[live].abs() + math.log(k))
    assert bool(((lpl <= mx[live] + slack) & (lpl >= mx[live] - math.log(k) - slack)).all())
    (grad,) = torch.autograd.grad(lp.sum(), lw)
    rg = lw64.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(reference.is_log_evidence(rg)[0].sum(), rg)
    torch.testing.assert_close(
        grad.double(), want, rtol=1e-6 if not f64 else 1e-14, atol=1e-30, equal_nan=True
    )
    assert bool(torch.isnan(grad[dead]).all()) and bool(torch.isfinite(grad[live]).all())


@given(
    b=st.integers(1, 3),
    d=st.sampled_from([1, 2, 9]),
    ls2=st.floats(-20.0, 20.0),
    x_exp=st.integers(0, 6),
    delta_exp=st.integers(-8, 3),
    lp0=st.floats(-1e30, 700.0),
    f32=st.booleans(),
    seed=st.integers(0, 2**16),
)
@example(b=1, d=1, ls2=-20.0, x_exp=6, delta_exp=-8, lp0=700.0, f32=True, seed=0)
@example(b=2, d=9, ls2=20.0, x_exp=6, delta_exp=3, lp0=-1e30, f32=False, seed=1)
def test_is_accumulator_k1(b, d, ls2, x_exp, delta_exp, lp0, f32, seed):
    """K = 1 (one chunk of one sample): ESS = 1 exactly, log_p = log w, score = f = (g − x)/σ²
    and sm_loss = ½‖f‖² − D/σ² (float64 formulas of MATH.md), for σ² from 2e-9 to 5e8, |x| up to
    1e6 with g = x + 10**delta_exp·noise, and log prior up to 700 or down to −1e30. A float32
    x_mean is read without conversion but accumulated in float64: same results as its upcast."""
    x, xm = _gt_inputs(1, b, d, x_exp, delta_exp, False, seed)
    g = xm[0]
    if f32:
        g = g.float()
    gen = np.random.default_rng(seed)
    lp = lp0 + gen.normal(size=(b, 1))
    lq = gen.normal(size=(b, 1))
    acc = vsm.ISAccumulator(x.numpy(), ls2)
    acc.add(g.numpy()[:, None], lp, lq)
    r = acc.result()
    g64 = g.double().numpy()
    f = (g64 - x.numpy()) * math.exp(-ls2)
    sq = ((g64 - x.numpy()) ** 2).sum(-1)
    log_w = -0.5 * sq * math.exp(-ls2) - 0.5 * d * (LN2PI + ls2) + lp[:, 0] - lq[:, 0]
    np.testing.assert_array_equal(r.ess, np.ones(b))
    eps = np.finfo(np.float64).eps
    lw_mag = (
        0.5 * sq * math.exp(-ls2)
        + 0.5 * d * (LN2PI + abs(ls2))
        + np.abs(lp[:, 0])
        + np.abs(lq[:, 0])
    )
    assert np.all(np.abs(r.log_p - log_w) <= 16 * eps * lw_mag), (r.log_p, log_w)
    # score: (Σ w g / Σ w − x)/σ², exact for K = 1 (the weight cancels)
    np.testing.assert_allclose(r.score, f, rtol=1e-14, atol=0)
    want_sm = 0.5 * (f**2).sum(-1) - d * math.exp(-ls2)
    mag = 0.5 * (f**2).sum(-1) + d * math.exp(-ls2)
    assert np.all(np.abs(r.sm_loss - want_sm) <= 64 * eps * mag), (r.sm_loss, want_sm)
    if f32:
        acc64 = vsm.ISAccumulator(x.numpy(), ls2)
        acc64.add(g64[:, None], lp, lq)
        r64 = acc64.result()
        for name in ("log_p", "ess", "score", "sm_loss"):
            u, v = getattr(r64, name), getattr(r, name)
            np.testing.assert_array_equal(u, v, err_msg=name)


@given(
    k=st.integers(2, 9),
    d=st.integers(1, 5),
    x_exp=st.integers(3, 6),
    delta_exp=st.integers(-8, -2),
    seed=st.integers(0, 2**16),
)
def test_is_accumulator_score_precise_for_large_data(k, d, x_exp, delta_exp, seed):
    """K > 1 samples, |x| up to 1e6 and decoder means g_k = x + δ_k with |δ| down to 1e-8: the
    score Σ w̄_k δ_k/σ² and Ĵ must keep float64 precision relative to |δ| (the accumulators sum
    w·(g − x), not w·g, which lost ~|x|/|δ|·eps: 5.5e-5 relative at |x| = 1e6, |δ| = 1e-6).
    Equal prior and proposal, σ² = 1: the weights are exp(−½‖δ_k‖²), computed from δ for the
    truth. Both the Rust engine and its NumPy twin are checked."""
    from vsm.reference_rust import ISAccumulatorNumpy

    gen = np.random.default_rng(seed)
    x = gen.choice([-1.0, 1.0], size=(1, d)) * 10.0**x_exp * (1 + gen.random((1, d)))
    delta = 10.0**delta_exp * gen.standard_normal((1, k, d))
    g = x[:, None] + delta
    delta = g - x[:, None]  # the δ the engine sees after rounding g
    zeros = np.zeros((1, k))
    w = np.exp(-0.5 * (delta**2).sum(-1))  # σ² = 1; computed from δ, so free of |x|
    w = w / w.sum(-1, keepdims=True)
    want = np.einsum("bk,bkd->bd", w, delta)
    mag = np.einsum("bk,bkd->bd", w, np.abs(delta))
    rust = vsm.ISAccumulator(x, 0.0)
    rust.add(g, zeros, zeros)
    twin = ISAccumulatorNumpy(x, 0.0)
    twin.add(g, zeros, zeros)
    for name, score in (("rust", rust.result().score), ("numpy", twin.result()[2])):
        assert np.all(np.abs(score - want) <= 64 * np.finfo(np.float64).eps * mag), (
            name,
            score,
            want,
        )


def test_numpy_twin_all_minus_inf_rows_match_rust():
    """A datum with every weight −inf: −inf, 0 (and NaN score, loss) from the NumPy twins, as Rust."""
    from vsm.reference_rust import ISAccumulatorNumpy
    from vsm.reference_rust import is_log_evidence as np_is_log_evidence

    lw = np.array([[-np.inf, -np.inf], [0.0, -1.0]])
    lp, ess = np_is_log_evidence(lw)
    lp_r, ess_r = vsm.is_log_evidence(lw)
    np.testing.assert_array_equal(lp, lp_r)
    np.testing.assert_array_equal(ess, ess_r)
    assert lp[0] == -np.inf and ess[0] == 0.0
    x = np.array([[0.5], [1.0]])
    twin, rust = ISAccumulatorNumpy(x, 0.0), vsm.ISAccumulator(x, 0.0)
    lpri = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    for acc in (twin, rust):
        acc.add(np.ones((2, 2, 1)), lpri, np.zeros((2, 2)))
        acc.add(np.ones((2, 2, 1)), lpri, np.zeros((2, 2)))
    r = rust.result()
    for got, want in zip(twin.result(), (r.log_p, r.ess, r.score, r.sm_loss), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_is_accumulator_all_minus_inf_row_and_float32_torch():
    """A datum whose weights all vanish (log prior −inf for every sample, over several chunks):
    log_p = −inf, ESS = 0, score and sm_loss NaN (Rust ``Accumulator::result`` docstring), while
    the other datum's estimates are finite; float32 torch in → float32 torch out."""
    x = torch.tensor([[1e6, -1e6], [0.5, 0.25]], dtype=torch.float32)
    acc = vsm.ISAccumulator(x, torch.tensor(-20.0))
    for k in range(3):
        xm = (x[:, None] + 1e-3 * torch.randn(2, 2, 2)).float()
        lp = torch.tensor([[-math.inf] * 2, [700.0 - k, -1e30]], dtype=F64)
        acc.add(xm, lp, torch.zeros(2, 2, dtype=F64))
    r = acc.result()
    assert r.log_p.dtype == torch.float32 and acc.n_samples == 6
    assert r.log_p[0].item() == -math.inf and r.ess[0].item() == 0.0
    assert torch.isnan(r.score[0]).all() and torch.isnan(r.sm_loss[0])
    assert torch.isfinite(r.log_p[1]) and torch.isfinite(r.score[1]).all()
    assert 1.0 <= r.ess[1].item() <= 6.0


def test_is_log_evidence_float32_matches_float64_accumulation():
    """K = 4096 float32 weights within 1e-3 of −1e30, 0 and 700: log_p must be the float64
    log-mean-exp of the (upcast) weights rounded once to float32 (within 1 ulp). A float32
    log-sum-exp misses it: torch.logsumexp in float32 is off by 4e-7 on the row near 0
    (log_p ≈ 5e-4: ~7000 ulps), a naive float32 running sum by 1.4e-6."""
    gen = torch.Generator().manual_seed(11)
    offsets = torch.tensor([[-1e30], [0.0], [700.0]], dtype=F64)
    lw = (torch.rand(3, 4096, generator=gen, dtype=F64) * 1e-3 + offsets).float()
    lp, ess = vsm.is_log_evidence(lw)
    assert lp.dtype == ess.dtype == torch.float32
    want = torch.logsumexp(lw.double(), -1) - math.log(4096)
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(lp.double(), want, rtol=eps, atol=0.0)
    want_ess = reference.is_log_evidence(lw.double())[1]
    torch.testing.assert_close(ess.double(), want_ess, rtol=eps, atol=0.0)
