"""Tests of ``vsm.posterior_fd``: Triton kernels (interpreter) vs the pure-torch reference,
gradients, dispatch, input validation, and the closed form for a linear-Gaussian VAE."""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import OK, TE, VE, B, L, N, seeded, t
from hypothesis import given
from hypothesis import strategies as st
from vsm import reference

DTYPES = [torch.float32, torch.float64]
TOL = {
    torch.float32: {"rtol": 1e-4, "atol": 1e-4},
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
}


def _inputs(n, b, l, dtype, *, batched=True, requires_grad=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    zshape = (n, b, l) if batched else (b, l)

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=dtype).requires_grad_(requires_grad)

    return r(*zshape), r(b, l), (0.5 * r(b, l)).detach().requires_grad_(requires_grad), r(*zshape)


dims = st.one_of(st.integers(1, 9), st.sampled_from([16, 31, 33, 127, 129, 200]))


@given(n=st.integers(1, 4), b=dims, l=dims, batched=st.booleans(), f64=st.booleans())
def test_kernel_matches_reference_forward_and_backward(n, b, l, batched, f64):
    dtype = torch.float64 if f64 else torch.float32
    args = _inputs(n, b, l, dtype, batched=batched, requires_grad=True)
    with vsm.backend("triton"):
        out = vsm.posterior_fd(*args)
    ref = reference.posterior_fd(*args)
    assert out.shape == ref.shape == args[0].shape[:-1]
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref, **TOL[dtype])
    go = torch.randn_like(ref)
    grads = torch.autograd.grad(out, args, go)
    ref_grads = torch.autograd.grad(ref, args, go)
    for name, g, rg in zip(("z", "mu", "logvar", "grad_loglik_z"), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, **TOL[dtype], msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 2, 130)])
@pytest.mark.parametrize("batched", [True, False])
def test_gradcheck_through_triton_kernels(shape, batched):
    """float64 gradcheck through both kernels; L=130 exceeds the 128-wide latent block, checked
    with gradcheck's fast mode (random projections) to keep interpreter time reasonable."""
    args = _inputs(*shape, torch.float64, batched=batched, requires_grad=True)
    with vsm.backend("triton"):
        assert torch.autograd.gradcheck(vsm.posterior_fd, args, fast_mode=shape[-1] > 128)


@pytest.mark.parametrize(
    "backend, check",
    [
        ("triton", torch.autograd.gradgradcheck),  # second order (create_graph=True backward)
        ("reference", torch.autograd.gradcheck),
    ],
)
def test_gradchecks_of_other_paths(backend, check):
    args = _inputs(2, 3, 4, torch.float64, requires_grad=True)
    with vsm.backend(backend):
        assert check(vsm.posterior_fd, args)


def test_opcheck_custom_ops():
    z, mu, lv, g = _inputs(2, 3, 5, torch.float64)
    torch.library.opcheck(torch.ops.vsm.posterior_fd.default, (z, mu, lv, g))
    go = torch.randn(2, 3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.vsm.posterior_fd_backward.default, (go, z, mu, lv, g))


def test_non_contiguous_and_expanded_inputs():
    z, mu, lv, g = _inputs(3, 4, 6, torch.float64)
    zt = z.transpose(0, 1).contiguous().transpose(0, 1)  # same values, non-contiguous
    mu_e = mu[:1].expand(4, 6)  # expanded (stride 0)
    assert not zt.is_contiguous()
    with vsm.backend("triton"):
        out = vsm.posterior_fd(zt, mu_e, lv, g)
    torch.testing.assert_close(out, reference.posterior_fd(z, mu_e.contiguous(), lv, g))


def test_dispatch_uses_rust_without_interpreter(monkeypatch):
    """Dispatch follows how the kernels were built (not TRITON_INTERPRET at call time)."""
    from vsm import _dispatch
    from vsm.ops import _rust

    calls = []
    real, real_rust = reference.posterior_fd, _rust.posterior_fd.forward
    monkeypatch.setattr(reference, "posterior_fd", lambda *a: calls.append("ref") or real(*a))
    monkeypatch.setattr(
        _rust.posterior_fd, "forward", lambda *a: calls.append("rust") or real_rust(*a)
    )
    args = _inputs(2, 3, 4, torch.float32)
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # changing the environment now changes nothing
    vsm.posterior_fd(*args)
    assert calls == [], "kernels built for the interpreter: CPU tensors go through them"
    with vsm.backend("rust"):
        vsm.posterior_fd(*args)
    assert calls == ["rust"]
    monkeypatch.setattr(_dispatch, "_kernel_build", lambda: "compiled")
    vsm.posterior_fd(*args)
    assert calls == ["rust", "rust"], "compiled kernels cannot run CPU tensors: Rust runs them"
    with vsm.backend("reference"):
        vsm.posterior_fd(*args)
    assert calls == ["rust", "rust", "ref"]
    with pytest.raises(RuntimeError, match="compiled for the GPU"), vsm.backend("triton"):
        vsm.posterior_fd(*args)


def test_backend_rejects_unknown_name():
    with pytest.raises(ValueError, match="backend"), vsm.backend("cuda"):
        pass


def _linear_gaussian(L=3, D=5, sigma2=0.3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(D, L, generator=gen, dtype=torch.float64)
    b = torch.randn(D, generator=gen, dtype=torch.float64)
    x = torch.randn(D, generator=gen, dtype=torch.float64)
    lam = torch.eye(L, dtype=torch.float64) + W.T @ W / sigma2  # posterior precision
    m = torch.linalg.solve(lam, W.T @ (x - b) / sigma2)  # posterior mean
    return W, b, x, sigma2, lam, m


def _decoder_vjp(z, W, b, x, sigma2):
    """∇_z log N(x; Wz+b, σ²I) by autograd through the 'decoder' (as a user would)."""
    z = z.detach().requires_grad_(True)
    loglik = -0.5 * ((x - (z @ W.T + b)) ** 2).sum(-1) / sigma2
    return torch.autograd.grad(loglik.sum(), z)[0]


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_linear_gaussian_closed_form(backend):
    """PFD of Gaussian q against the exact posterior of a linear-Gaussian VAE.

    With Λ the posterior precision and m its mean, the residual is (Λ − S⁻¹)ε + Λ(μ − m) for
    z = μ + ε, so pointwise PFD = ‖(Λ − S⁻¹)ε + Λ(μ − m)‖² and
    E_q PFD = tr((Λ − S⁻¹) S (Λ − S⁻¹)ᵀ) + ‖Λ(μ − m)‖²."""
    W, b, x, sigma2, lam, m = _linear_gaussian()
    L = lam.shape[0]
    gen = torch.Generator().manual_seed(2)
    mu = (m + 0.3 * torch.randn(L, generator=gen, dtype=torch.float64))[None]
    logvar = torch.log(torch.rand(L, generator=gen, dtype=torch.float64) * 0.5 + 0.05)[None]
    S = torch.diag(torch.exp(logvar[0]))
    n = 20000
    eps = torch.randn(n, 1, L, generator=gen, dtype=torch.float64) * torch.exp(0.5 * logvar)
    z = mu + eps
    g = _decoder_vjp(z, W, b, x, sigma2)
    with vsm.backend(backend):
        pfd = vsm.posterior_fd(z, mu, logvar, g)
    A = lam - torch.linalg.inv(S)
    pointwise = ((eps @ A.T + (lam @ (mu[0] - m))) ** 2).sum(-1)
    torch.testing.assert_close(pfd, pointwise, rtol=1e-9, atol=1e-9)
    expected = torch.trace(A @ S @ A.T) + ((lam @ (mu[0] - m)) ** 2).sum()
    se = pfd.std() / math.sqrt(n)
    assert abs(pfd.mean() - expected) < 4 * se, (pfd.mean().item(), expected.item(), se.item())
    # At the exact posterior (Gaussian q = p(z|x) is only possible when Λ is diagonal), PFD is 0;
    # in general the mean term vanishes when μ = m:
    with vsm.backend(backend):
        g_m = _decoder_vjp(m[None], W, b, x, sigma2)
        at_mean = vsm.posterior_fd(m[None], m[None], logvar, g_m)
    assert at_mean.abs().max() < 1e-10


def test_zero_for_exact_posterior_with_diagonal_precision():
    """With orthogonal decoder columns the exact posterior is diagonal Gaussian: PFD ≡ 0."""
    L, D, sigma2 = 3, 6, 0.5
    Q, _ = torch.linalg.qr(torch.randn(D, L, dtype=torch.float64))
    W = Q * torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    b = torch.zeros(D, dtype=torch.float64)
    x = torch.randn(D, dtype=torch.float64)
    lam = torch.eye(L, dtype=torch.float64) + W.T @ W / sigma2
    m = torch.linalg.solve(lam, W.T @ x / sigma2)
    logvar = -torch.log(torch.diagonal(lam))[None]
    z = m + torch.randn(7, 1, L, dtype=torch.float64) * torch.exp(0.5 * logvar)
    with vsm.backend("triton"):
        pfd = vsm.posterior_fd(z, m[None], logvar, _decoder_vjp(z, W, b, x, sigma2))
    assert pfd.abs().max() < 1e-10


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    ("pfd-ok", "valid", C.pfd, dict, OK),
    ("pfd-list", "type", C.pfd, lambda: {"z": t(B, L).tolist()}, TE("z")),
    ("pfd-ndarray", "type", C.pfd, lambda: {"mu": np.zeros((B, L))}, TE("mu")),
    ("pfd-int", "dtype", C.pfd, lambda: {"logvar": C.i64(B, L)}, TE("logvar")),
    C.arg_row("pfd-dtype-mix", "dtype", C.pfd, TE("grad_loglik_z"), C.f32, N, B, L),
    ("pfd-shape", "shape", C.pfd, lambda: {"mu": t(B + 1, L)}, VE("mu")),
    ("pfd-shape-g", "shape", C.pfd, lambda: {"grad_loglik_z": t(N, B, L + 1)}, VE("grad_loglik_z")),
    ("pfd-rank", "shape", C.pfd, lambda: {"logvar": t(1, B, L)}, VE("logvar")),
    ("pfd-rank-z", "shape", C.pfd, lambda: {"z": t(1, N, B, L)}, VE("z")),
    (
        "pfd-empty",
        "empty",
        C.pfd,
        lambda: {"z": t(N, 0, L), "mu": t(0, L), "logvar": t(0, L), "grad_loglik_z": t(N, 0, L)},
        VE("z"),
    ),
    ("pfd-device", "device", C.pfd, lambda: {"mu": C.on_meta(B, L)}, VE("mu")),
    ("pfd-int-z", "dtype", C.pfd, lambda: {"z": torch.zeros(N, B, L, dtype=torch.int32)}, TE("z")),
    ("pfd-dtype-mix-mu", "dtype", C.pfd, lambda: {"mu": C.f32(B, L)}, TE("mu")),
    ("pfd-shape-L", "shape", C.pfd, lambda: {"z": t(N, B, L + 1)}, VE("mu")),
    ("pfd-shape-logvar", "shape", C.pfd, lambda: {"logvar": t(B - 1, L)}, VE("logvar")),
    C.arg_row("pfd-shape-gN", "shape", C.pfd, VE("grad_loglik_z"), t, N - 1, B, L),
    ("pfd-rank-z1", "shape", C.pfd, lambda: {"z": t(L)}, VE("z")),
    ("pfd-rank-mu", "shape", C.pfd, lambda: {"mu": t(1, B, L)}, VE("mu")),
    *C.dtype_rows("pfd", C.pfd, "z", (N, B, L)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _nf_pfd(v):
    z = C.bad_datum(seeded(1, N, B, L), v, 1)
    return vsm.posterior_fd(z, seeded(2, B, L), seeded(3, B, L), seeded(4, N, B, L)).T  # (B, N)


NONFINITE_ROWS = {"posterior_fd": _nf_pfd}
test_non_finite_datum_stays_in_its_row = C.non_finite_test(NONFINITE_ROWS)


def _l_pfd(lay):
    return vsm.posterior_fd(
        lay(seeded(1, N, B, L)), lay(seeded(2, B, L)), lay(seeded(3, B, L)), lay(seeded(4, N, B, L))
    )


def _l_pfd2(lay):
    return vsm.posterior_fd(
        lay(seeded(1, B, L)), lay(seeded(2, B, L)), lay(seeded(3, B, L)), lay(seeded(4, B, L))
    )


LAYOUT_ROWS = {"posterior_fd": _l_pfd, "posterior_fd-2d": _l_pfd2}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_pfd(e):
    mu = seeded(2, 1, L).expand(B, L)
    return vsm.posterior_fd(
        seeded(1, N, B, L), mu if e else mu.contiguous(), seeded(3, B, L), seeded(4, N, B, L)
    )


def _x_pfd_z(e):
    z = seeded(1, B, L).expand(N, B, L)
    return vsm.posterior_fd(
        z if e else z.contiguous(), seeded(2, B, L), seeded(3, B, L), seeded(4, N, B, L)
    )


EXPANDED_ROWS = {"pfd": _x_pfd, "pfd_z": _x_pfd_z}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)


# Backward through the kernels with non-contiguous leaves equals the contiguous one.
test_non_contiguous_gradients = C.layout_gradients_test(
    vsm.posterior_fd, ((N, B, L), (B, L), (B, L), (N, B, L))
)
