"""Tests of ``vsm.objectives`` against independent closed forms on a linear-Gaussian VAE.

Model: g(z) = W z + b, p(z) = N(0, I), σ² scalar; encoder q(z|x) = N(A x + c, diag e^{C x + d}).
Expectations over q of polynomials of degree ≤ 2 in z are computed exactly from "whitened
antithetic" draws ε (sample mean exactly 0, sample second moment exactly I, odd sample moments
exactly 0), so Monte-Carlo estimators of such expectations equal their closed forms to rounding:
m1 (E_q‖x − g‖² = ‖x − Wμ − b‖² + tr(W S Wᵀ)), m2 (Prop 4.1), m3 (Prop A.1), −ELBO, the
posterior FD against the exact Gaussian posterior and its (biased and unbiased) gradients. With
orthogonal decoder columns the exact posterior is diagonal, so q can equal it, and then m2, m3 and
fae all equal the Hyvärinen loss of p(x) = N(b, WWᵀ + σ²I) and −ELBO equals −log p(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import META, OK, TE, VE, B, D, L, N, seeded, t
from vsm import objectives as O

F64 = torch.float64


def _white_eps(n: int, latent: int, batch: int, seed: int = 0) -> torch.Tensor:
    """(n, batch, latent) standard-normal-like draws with exact first/second/odd sample moments."""
    assert n % 2 == 0 and n // 2 >= latent
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(n // 2, latent, generator=gen, dtype=F64)
    chol = torch.linalg.cholesky(raw.T @ raw / (n // 2))
    e = torch.linalg.solve_triangular(chol, raw.T, upper=False).T  # e eᵀ/M = I
    e = torch.cat([e, -e])
    return e[:, None, :].expand(n, batch, latent).contiguous()


@dataclass
class LinearVAE:
    W: torch.Tensor  # (D, L)
    b: torch.Tensor  # (D,)
    A: torch.Tensor  # (L, D)
    c: torch.Tensor  # (L,)
    C: torch.Tensor  # (L, D)
    d: torch.Tensor  # (L,)
    log_sigma2: torch.Tensor  # ()
    x: torch.Tensor  # (B, D)

    def encode(self, x):
        return x @ self.A.T + self.c, x @ self.C.T + self.d

    def decode(self, z):
        return z @ self.W.T + self.b

    @property
    def D(self):
        return self.W.shape[0]

    def posterior(self):
        """Exact posterior precision P (L, L) and means m (B, L) of the model."""
        s2 = torch.exp(self.log_sigma2)
        P = torch.eye(self.W.shape[1], dtype=F64) + self.W.T @ self.W / s2
        m = torch.linalg.solve(P, (self.W.T @ (self.x - self.b).T) / s2).T
        return P, m


def _make(B=3, D=5, L=3, sigma2=0.4, *, orthogonal=False, exact=False, x_dep_var=True, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return scale * torch.randn(*s, generator=gen, dtype=F64)

    W = r(D, L)
    if orthogonal:
        q, _ = torch.linalg.qr(W)
        W = q * torch.tensor([1.5, 0.7, 0.3, 2.0, 1.1][:L], dtype=F64)
    b = r(D, scale=0.3)
    ls = torch.tensor(math.log(sigma2), dtype=F64)
    x = r(B, D)
    if exact:
        s2 = sigma2
        cov = torch.linalg.inv(torch.eye(L, dtype=F64) + W.T @ W / s2)
        assert torch.allclose(cov, torch.diag(torch.diag(cov)), atol=1e-12)
        A = cov @ W.T / s2
        c = -A @ b
        C = torch.zeros(L, D, dtype=F64)
        d = torch.log(torch.diag(cov))
    else:
        A, c = r(L, D, scale=0.5), r(L, scale=0.2)
        C = r(L, D, scale=0.2) if x_dep_var else torch.zeros(L, D, dtype=F64)
        d = r(L, scale=0.3) - 1.0
    return LinearVAE(W, b, A, c, C, d, ls, x)


def _samples(m: LinearVAE, n=16, seed=0):
    mu, logvar = m.encode(m.x)
    eps = _white_eps(n, mu.shape[1], mu.shape[0], seed)
    z = mu + torch.exp(0.5 * logvar) * eps
    return mu, logvar, eps, z


# ----------------------------------------------------------------------------- closed forms


def _cf_terms(m: LinearVAE, mu, logvar):
    s2 = torch.exp(m.log_sigma2)
    gbar = mu @ m.W.T + m.b
    resid = ((m.x - gbar) ** 2).sum(-1)  # ‖x − ḡ‖²
    V = (torch.exp(logvar) * (m.W**2).sum(0)).sum(-1)  # tr(W S Wᵀ)
    return s2, resid, V


def _cf_m1(m, mu, logvar):
    s2, resid, V = _cf_terms(m, mu, logvar)
    return (resid + V) / (2 * s2**2) - m.D / s2


def _cf_m2(m, mu, logvar):  # Prop 4.1
    s2, resid, V = _cf_terms(m, mu, logvar)
    return (resid + 2 * V) / (2 * s2**2) - m.D / s2


def _cf_m3(m, mu, logvar):  # Prop A.1, ∇_x·ḡ = tr(W A)
    s2, resid, _ = _cf_terms(m, mu, logvar)
    return resid / (2 * s2**2) + (torch.trace(m.W @ m.A) - m.D) / s2


def _cf_elbo(m, mu, logvar):
    s2, resid, V = _cf_terms(m, mu, logvar)
    nll = (resid + V) / (2 * s2) + 0.5 * m.D * torch.log(2 * math.pi * s2)
    kl = 0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar).sum(-1)
    return nll + kl


def _cf_pfd(W, b, x, log_sigma2, mu, logvar):
    """E_q PFD (no ½) = tr((P − S⁻¹) S (P − S⁻¹)ᵀ) + ‖P(μ − m)‖², per datum (torch, differentiable)."""
    s2 = torch.exp(log_sigma2)
    P = torch.eye(W.shape[1], dtype=F64) + W.T @ W / s2
    m = torch.linalg.solve(P, (W.T @ (x - b).T) / s2).T
    S = torch.exp(logvar)  # (B, L)
    out = []
    for i in range(x.shape[0]):
        M = P - torch.diag(1 / S[i])
        out.append(torch.trace(M @ torch.diag(S[i]) @ M.T) + ((P @ (mu[i] - m[i])) ** 2).sum())
    return torch.stack(out)


def _hyvarinen(m: LinearVAE):
    """½‖∇ log p(x)‖² + tr ∇² log p(x) for p(x) = N(b, WWᵀ + σ²I)."""
    cov = m.W @ m.W.T + torch.exp(m.log_sigma2) * torch.eye(m.D, dtype=F64)
    prec = torch.linalg.inv(cov)
    score = -(m.x - m.b) @ prec
    return 0.5 * (score**2).sum(-1) - torch.trace(prec)


def _log_marginal(m: LinearVAE):
    cov = m.W @ m.W.T + torch.exp(m.log_sigma2) * torch.eye(m.D, dtype=F64)
    return torch.distributions.MultivariateNormal(m.b, cov).log_prob(m.x)


def _psi_analytic(m: LinearVAE, z, mu, logvar):
    """∇_x log q(z|x) for μ = A x + c, logvar = C x + d, z fixed."""
    e = torch.exp(-logvar)
    return ((z - mu) * e) @ m.A + (0.5 * ((z - mu) ** 2 * e - 1)) @ m.C


BACKENDS = ["reference", "triton"]


# ----------------------------------------------------------------------------- learning objectives


@pytest.mark.parametrize("backend", BACKENDS)
def test_m1_m2_m3_elbo_match_closed_forms(backend):
    m = _make()
    mu, logvar, _, z = _samples(m)
    xm = m.decode(z)
    psi = O.encoder_x_score(m.encode, m.x, z)
    torch.testing.assert_close(psi, _psi_analytic(m, z, mu, logvar))
    with vsm.backend(backend):
        torch.testing.assert_close(O.m1(m.x, xm, m.log_sigma2), _cf_m1(m, mu, logvar))
        torch.testing.assert_close(O.m2(m.x, xm, m.log_sigma2), _cf_m2(m, mu, logvar))
        torch.testing.assert_close(O.m3(m.x, xm, m.log_sigma2, psi), _cf_m3(m, mu, logvar))
        torch.testing.assert_close(
            O.elbo(m.x, xm, m.log_sigma2, mu, logvar), _cf_elbo(m, mu, logvar)
        )


def test_m1_plain_monte_carlo_converges():
    """Ordinary random draws (no whitening): the estimate is within 5 standard errors."""
    m = _make(B=2)
    mu, logvar = m.encode(m.x)
    gen = torch.Generator().manual_seed(7)
    n = 4000
    z = O.sample_posterior(mu, logvar, n, reparam=False, generator=gen)
    xm = m.decode(z)
    s2 = torch.exp(m.log_sigma2)
    per_sample = ((m.x - xm) ** 2).sum(-1) / (2 * s2**2) - m.D / s2  # (n, B)
    se = per_sample.std(0) / math.sqrt(n)
    with vsm.backend("reference"):
        est = O.m1(m.x, xm, m.log_sigma2)
    assert ((est - _cf_m1(m, mu, logvar)).abs() < 5 * se).all()


def test_m2_bias_is_trace_cov_over_2n():
    """With N plain draws, E[m2 estimate] = L_S − tr Cov[f]/(2N); check by averaging repeats."""
    m = _make(B=2)
    mu, logvar = m.encode(m.x)
    s2 = torch.exp(m.log_sigma2)
    _, _, V = _cf_terms(m, mu, logvar)
    n, reps = 3, 20000
    gen = torch.Generator().manual_seed(3)
    z = O.sample_posterior(mu, logvar, n * reps, reparam=False, generator=gen)
    xm = m.decode(z).reshape(reps, n, *m.x.shape)
    f = (xm - m.x) / s2
    est = (f**2).sum(-1).mean(1) - 0.5 * (f.mean(1) ** 2).sum(-1) - m.D / s2  # (reps, B)
    expected = _cf_m2(m, mu, logvar) - V / s2**2 / (2 * n)
    se = est.std(0) / math.sqrt(reps)
    assert ((est.mean(0) - expected).abs() < 5 * se).all()
    with vsm.backend("reference"):  # the library's estimator on one repeat
        torch.testing.assert_close(O.m2(m.x, xm[0], m.log_sigma2), est[0])


def test_exact_posterior_gives_hyvarinen_and_log_evidence():
    """q = p(z|x): m2 = m3 = fae = Hyvärinen loss of p(x); posterior FD = 0; −ELBO = −log p(x)."""
    m = _make(orthogonal=True, exact=True)
    mu, logvar, eps, z = _samples(m)
    _P, post_mean = m.posterior()
    torch.testing.assert_close(mu, post_mean)
    xm, gz = O.decoder_vjp(m.x, m.decode, z, m.log_sigma2)
    psi = O.encoder_x_score(m.encode, m.x, z)
    hyv = _hyvarinen(m)
    with vsm.backend("triton"):
        torch.testing.assert_close(O.m2(m.x, xm, m.log_sigma2), hyv)
        torch.testing.assert_close(O.m3(m.x, xm, m.log_sigma2, psi), hyv)
        torch.testing.assert_close(O.fae(m.x, z, xm, m.log_sigma2, mu, logvar, psi, gz), hyv)
        pfd = O.posterior_fd_loss(
            m.x, m.decode, mu, logvar, m.log_sigma2, n_samples=16, reparam=False, eps=eps
        )
        torch.testing.assert_close(pfd, torch.zeros_like(pfd))
        torch.testing.assert_close(
            O.fae_loss(m.x, m.encode, m.decode, m.log_sigma2, n_samples=16, reparam=True, eps=eps),
            hyv,
        )
    torch.testing.assert_close(O.elbo(m.x, xm, m.log_sigma2, mu, logvar), -_log_marginal(m))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fae_matches_closed_form(backend):
    """fae = m1 + ½E‖ψ‖² + ½E PFD with E‖ψ‖² = tr(Aᵀ S⁻¹ A) (logvar independent of x)."""
    m = _make(x_dep_var=False)
    mu, logvar, eps, z = _samples(m)
    xm, gz = O.decoder_vjp(m.x, m.decode, z, m.log_sigma2)
    psi = O.encoder_x_score(m.encode, m.x, z)
    psi_sq = ((m.A**2).sum(-1) * torch.exp(-logvar)).sum(-1)
    expected = (
        _cf_m1(m, mu, logvar)
        + 0.5 * psi_sq
        + 0.5 * _cf_pfd(m.W, m.b, m.x, m.log_sigma2, mu, logvar)
    )
    with vsm.backend(backend):
        torch.testing.assert_close(O.fae(m.x, z, xm, m.log_sigma2, mu, logvar, psi, gz), expected)
        torch.testing.assert_close(
            O.fae_loss(m.x, m.encode, m.decode, m.log_sigma2, n_samples=16, reparam=False, eps=eps),
            expected,
        )


def test_single_sample_edge_cases():
    """N = 1: m2 collapses to m1 (MATH.md §6); m3 = ½‖f‖² + f·ψ − D/σ²; (B, D) x_mean = N = 1."""
    m = _make()
    mu, logvar = m.encode(m.x)
    z = O.sample_posterior(mu, logvar, 1, reparam=False)
    xm = m.decode(z)
    psi = O.encoder_x_score(m.encode, m.x, z)
    s2 = torch.exp(m.log_sigma2)
    f = (xm[0] - m.x) / s2
    for backend in BACKENDS:
        with vsm.backend(backend):
            torch.testing.assert_close(O.m2(m.x, xm, m.log_sigma2), O.m1(m.x, xm, m.log_sigma2))
            torch.testing.assert_close(O.m1(m.x, xm, m.log_sigma2), 0.5 * (f**2).sum(-1) - m.D / s2)
            torch.testing.assert_close(
                O.m3(m.x, xm[0], m.log_sigma2, psi[0]),
                0.5 * (f**2).sum(-1) + (f * psi[0]).sum(-1) - m.D / s2,
            )
            torch.testing.assert_close(O.m1(m.x, xm[0], m.log_sigma2), O.m1(m.x, xm, m.log_sigma2))


def test_triton_and_reference_paths_agree_float32():
    gen = torch.Generator().manual_seed(11)
    B, D, L, N = 4, 37, 3, 5
    x = torch.randn(B, D, generator=gen)
    xm = x + 0.3 * torch.randn(N, B, D, generator=gen)
    psi = torch.randn(N, B, D, generator=gen)
    mu, logvar = torch.randn(B, L, generator=gen), 0.3 * torch.randn(B, L, generator=gen)
    z, gz = torch.randn(N, B, L, generator=gen), torch.randn(N, B, L, generator=gen)
    ls = torch.tensor(-0.7)
    fns = {
        "m1": lambda: O.m1(x, xm, ls),
        "m2": lambda: O.m2(x, xm, ls),
        "m3": lambda: O.m3(x, xm, ls, psi),
        "fae": lambda: O.fae(x, z, xm, ls, mu, logvar, psi, gz),
        "elbo": lambda: O.elbo(x, xm, ls, mu, logvar),
    }
    for name, fn in fns.items():
        with vsm.backend("triton"):
            a = fn()
        with vsm.backend("reference"):
            r = fn()
        assert a.dtype == torch.float32 and a.shape == (B,)
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-4, msg=lambda s, n=name: f"{n}: {s}")


@pytest.mark.parametrize("name", ["m1", "m2", "m3", "elbo", "fae"])
def test_gradcheck_objectives_through_kernels(name):
    gen = torch.Generator().manual_seed(5)
    N, B, D, L = 2, 2, 3, 2

    def r(*s, scale=1.0):
        return (scale * torch.randn(*s, generator=gen, dtype=F64)).requires_grad_(True)

    x, xm, ls, psi = r(B, D), r(N, B, D), r((), scale=0.3), r(N, B, D)
    mu, logvar, z, gz = r(B, L), r(B, L, scale=0.3), r(N, B, L), r(N, B, L)
    cases = {
        "m1": (O.m1, (x, xm, ls)),
        "m2": (O.m2, (x, xm, ls)),
        "m3": (O.m3, (x, xm, ls, psi)),
        "elbo": (O.elbo, (x, xm, ls, mu, logvar)),
        "fae": (O.fae, (x, z, xm, ls, mu, logvar, psi, gz)),
    }
    fn, args = cases[name]
    with vsm.backend("triton"):
        assert torch.autograd.gradcheck(fn, args)


# ----------------------------------------------------------------------------- posterior FD loss


def _pfd_inputs(m: LinearVAE, n=16):
    """Leaf copies of the decoder/encoder outputs so that gradients can be read off."""
    mu, logvar = (t.detach().requires_grad_(True) for t in m.encode(m.x))
    W = m.W.clone().requires_grad_(True)
    b = m.b.clone().requires_grad_(True)
    ls = m.log_sigma2.clone().requires_grad_(True)
    eps = _white_eps(n, mu.shape[1], mu.shape[0])
    return mu, logvar, W, b, ls, eps


def _pfd_loss_and_closed_form(m, backend, *, reparam):
    """posterior_fd_loss of the linear decoder on ``backend`` and its closed form, checked equal;
    returns (loss, closed form, (mu, logvar, W, b, log_sigma2))."""
    mu, logvar, W, b, ls, eps = _pfd_inputs(m)
    with vsm.backend(backend):
        loss = O.posterior_fd_loss(
            m.x,
            lambda z: z @ W.T + b,
            mu,
            logvar,
            ls,
            n_samples=eps.shape[0],
            reparam=reparam,
            eps=eps,
        )
    cf = _cf_pfd(W, b, m.x, ls, mu, logvar)
    torch.testing.assert_close(loss, cf)
    return loss, cf, (mu, logvar, W, b, ls)


@pytest.mark.parametrize("backend", BACKENDS)
def test_posterior_fd_loss_value_and_unbiased_gradients(backend):
    """reparam=True: value and gradients (mu, logvar, W, b, log σ²) equal the closed form's."""
    m = _make()
    loss, cf, params = _pfd_loss_and_closed_form(m, backend, reparam=True)
    for name, g, rg in zip(
        ("mu", "logvar", "W", "b", "log_sigma2"),
        torch.autograd.grad(loss.sum(), params),
        torch.autograd.grad(cf.sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g, rg, msg=lambda s, n=name: f"{n}: {s}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_posterior_fd_loss_biased_gradients(backend):
    """reparam=False (z detached): ∂/∂μ = 2 S⁻¹ P (μ − m) and ∂/∂logvar_l = 2 (P_ll − 1/s_l²),
    i.e. 2·diag(1/s², 1/s²·…) times the KL gradients (MATH.md A.5.1 without the ½); the decoder
    parameters still receive the closed form's gradient through the VJP."""
    m = _make(orthogonal=True)
    loss, cf, (mu, logvar, W, b, ls) = _pfd_loss_and_closed_form(m, backend, reparam=False)
    gmu, glv, gW, gb, gls = torch.autograd.grad(loss.sum(), (mu, logvar, W, b, ls))
    with torch.no_grad():
        P, post_mean = m.posterior()
        inv_s2 = torch.exp(-logvar)
        torch.testing.assert_close(gmu, 2 * inv_s2 * ((mu - post_mean) @ P.T))
        torch.testing.assert_close(glv, 2 * (torch.diag(P) - inv_s2))
    # Against autograd of KL(q ‖ p(z|x)) = ½[tr(PS) + (μ−m)ᵀP(μ−m) − L − log det(PS)]: the biased
    # FD gradient (no ½) is the KL gradient times 2/s² (in μ) and 4/s² (in logvar = log s²).
    mu2, lv2 = mu.detach().requires_grad_(True), logvar.detach().requires_grad_(True)
    dm = mu2 - post_mean
    kl = 0.5 * (
        (torch.diag(P) * torch.exp(lv2)).sum(-1)
        + ((dm @ P) * dm).sum(-1)
        - P.shape[0]
        - torch.logdet(P)
        - lv2.sum(-1)
    )
    kmu, klv = torch.autograd.grad(kl.sum(), (mu2, lv2))
    torch.testing.assert_close(gmu, 2 * torch.exp(-logvar.detach()) * kmu)
    torch.testing.assert_close(glv, 4 * torch.exp(-logvar.detach()) * klv)
    cW, cb, cls = torch.autograd.grad(cf.sum(), (W, b, ls))
    torch.testing.assert_close(gW, cW)
    torch.testing.assert_close(gb, cb)
    torch.testing.assert_close(gls, cls)


def test_posterior_fd_loss_random_draws_converge():
    m = _make(B=2)
    mu, logvar = m.encode(m.x)
    gen = torch.Generator().manual_seed(1)
    with vsm.backend("reference"):
        est = O.posterior_fd_loss(
            m.x,
            m.decode,
            mu,
            logvar,
            m.log_sigma2,
            n_samples=20000,
            reparam=False,
            generator=gen,
        )
    torch.testing.assert_close(
        est, _cf_pfd(m.W, m.b, m.x, m.log_sigma2, mu, logvar), rtol=0.05, atol=0
    )


def test_posterior_fd_loss_gradcheck_through_kernels():
    m = _make(B=2, D=3, L=2)
    mu, logvar, W, b, ls, eps = _pfd_inputs(m, n=4)
    x = m.x[:, :3]

    def fn(mu, logvar, W, ls):
        return O.posterior_fd_loss(
            x, lambda z: z @ W.T + b, mu, logvar, ls, n_samples=4, reparam=True, eps=eps
        )

    with vsm.backend("triton"):
        assert torch.autograd.gradcheck(fn, (mu, logvar, W, ls))


def test_posterior_fd_loss_under_no_grad_and_image_decoder():
    """Evaluation under torch.no_grad works; decoders returning image-shaped means are flattened."""
    m = _make(B=2, D=4, L=2)
    mu, logvar = (t.detach() for t in m.encode(m.x))
    eps = _white_eps(4, 2, 2)
    with torch.no_grad():
        out = O.posterior_fd_loss(
            m.x,
            lambda z: m.decode(z).reshape(*z.shape[:-1], 1, 2, 2),
            mu,
            logvar,
            m.log_sigma2,
            n_samples=4,
            reparam=True,
            eps=eps,
        )
    assert not out.requires_grad
    torch.testing.assert_close(out, _cf_pfd(m.W, m.b, m.x, m.log_sigma2, mu, logvar))


# ----------------------------------------------------------------------------- helpers


def test_decoder_vjp_matches_analytic():
    m = _make()
    _mu, _logvar, _, z = _samples(m)
    xm, gz = O.decoder_vjp(m.x, m.decode, z.detach(), m.log_sigma2)
    torch.testing.assert_close(xm, m.decode(z))
    torch.testing.assert_close(gz, (m.x - xm) @ m.W / torch.exp(m.log_sigma2))
    with torch.no_grad():
        xm2, gz2 = O.decoder_vjp(m.x, m.decode, z, m.log_sigma2)
    assert not xm2.requires_grad and not gz2.requires_grad
    torch.testing.assert_close(gz2, gz)


def test_encoder_x_score_holds_z_fixed_and_keeps_graph():
    """ψ is the partial derivative at fixed z even if z was reparametrised from the same x, and
    with create_graph it carries gradients to the encoder parameters."""
    m = _make()
    A = m.A.clone().requires_grad_(True)

    def encode(v):
        return v @ A.T + m.c, v @ m.C.T + m.d

    x = m.x.clone().requires_grad_(True)
    mu, logvar = encode(x)
    eps = torch.randn(4, *mu.shape, dtype=F64)
    z = mu + torch.exp(0.5 * logvar) * eps  # depends on x and A
    psi = O.encoder_x_score(encode, x, z)
    torch.testing.assert_close(psi, _psi_analytic(m, z, mu, logvar))
    assert psi.shape == (4, *m.x.shape)
    (gA,) = torch.autograd.grad(psi.pow(2).sum(), A)
    assert torch.isfinite(gA).all() and gA.abs().sum() > 0
    psi1 = O.encoder_x_score(encode, m.x, z[0].detach())  # (B, L) z → (B, D)
    torch.testing.assert_close(psi1, psi[0].detach())


def test_sample_posterior_modes():
    mu = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    logvar = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    z = O.sample_posterior(mu, logvar, 5, reparam=True)
    assert z.shape == (5, 2, 3) and z.requires_grad
    assert not O.sample_posterior(mu, logvar, 5, reparam=False).requires_grad
    g1 = torch.Generator().manual_seed(0)
    g2 = torch.Generator().manual_seed(0)
    torch.testing.assert_close(
        O.sample_posterior(mu, logvar, 3, generator=g1),
        O.sample_posterior(mu, logvar, 3, generator=g2),
    )


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    # ---------------------------------------------------------------- elbo
    ("elbo-ok", "valid", C.elbo, dict, OK),
    ("elbo-list", "type", C.elbo, lambda: {"x": t(B, D).tolist()}, TE("x")),
    ("elbo-ndarray", "type", C.elbo, lambda: {"mu": np.zeros((B, L))}, TE("mu")),
    ("elbo-int", "dtype", C.elbo, lambda: {"logvar": C.i64(B, L)}, TE("logvar")),
    ("elbo-dtype-mix", "dtype", C.elbo, lambda: {"x_mean": C.f32(N, B, D)}, TE("x_mean")),
    ("elbo-shape", "shape", C.elbo, lambda: {"logvar": t(B, L + 1)}, VE("logvar")),
    ("elbo-batch", "shape", C.elbo, lambda: {"mu": t(B + 1, L), "logvar": t(B + 1, L)}, VE("mu")),
    ("elbo-rank", "shape", C.elbo, lambda: {"x": t(B, D, 1)}, VE("x")),
    (
        "elbo-empty",
        "empty",
        C.elbo,
        lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "mu": t(0, L), "logvar": t(0, L)},
        VE("x"),
    ),
    ("elbo-device", "device", C.elbo, lambda: {"log_sigma2": C.on_meta()}, VE("log_sigma2")),
    *C.dtype_rows("elbo", C.elbo, "mu", (B, L)),
    # ---------------------------------------------------------------- m1 / m2
    *[
        row
        for name, fn in (("m1", O.m1), ("m2", O.m2))
        for row in (
            (f"{name}-ok", "valid", C.m(fn), dict, OK),
            (
                f"{name}-list",
                "type",
                C.m(fn),
                lambda: {"x_mean": t(N, B, D).tolist()},
                TE("x_mean"),
            ),
            (
                f"{name}-int",
                "dtype",
                C.m(fn),
                lambda: {"x": torch.ones(B, D, dtype=torch.int64)},
                TE("x"),
            ),
            (
                f"{name}-dtype-mix",
                "dtype",
                C.m(fn),
                lambda: {"x_mean": C.f32(N, B, D)},
                TE("x_mean"),
            ),
            (f"{name}-shape", "shape", C.m(fn), lambda: {"x_mean": t(N, B + 1, D)}, VE("x_mean")),
            (f"{name}-rank", "shape", C.m(fn), lambda: {"log_sigma2": t(B)}, VE("log_sigma2")),
            (f"{name}-empty", "empty", C.m(fn), lambda: {"x_mean": t(0, B, D)}, VE("x_mean")),
            (
                f"{name}-device",
                "device",
                C.m(fn),
                lambda: {"x_mean": C.on_meta(N, B, D)},
                VE("x_mean"),
            ),
        )
    ],
    ("m1-rank-x", "shape", C.m(O.m1), lambda: {"x": t(B, D, 1)}, VE("x")),
    ("m1-shape-D", "shape", C.m(O.m1), lambda: {"x_mean": t(N, B, D + 1)}, VE("x_mean")),
    *C.dtype_rows("m1", C.m(O.m1), "x", (B, D)),
    *C.dtype_rows("m2", C.m(O.m2), "log_sigma2", ()),
    # ---------------------------------------------------------------- m3
    ("m3-ok", "valid", C.m3, dict, OK),
    ("m3-ndarray", "type", C.m3, lambda: {"psi": np.zeros((N, B, D))}, TE("psi")),
    ("m3-int", "dtype", C.m3, lambda: {"psi": C.i64(N, B, D)}, TE("psi")),
    ("m3-dtype-mix", "dtype", C.m3, lambda: {"psi": C.f32(N, B, D)}, TE("psi")),
    ("m3-shape", "shape", C.m3, lambda: {"psi": t(N + 1, B, D)}, VE("psi")),
    ("m3-rank", "shape", C.m3, lambda: {"psi": t(D)}, VE("psi")),
    (
        "m3-empty",
        "empty",
        C.m3,
        lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "psi": t(N, 0, D)},
        VE("x"),
    ),
    ("m3-device", "device", C.m3, lambda: {"psi": C.on_meta(N, B, D)}, VE("psi")),
    *C.dtype_rows("m3", C.m3, "x_mean", (N, B, D)),
    # ---------------------------------------------------------------- posterior_fd_loss
    ("pfdl-ok", "valid", C.pfdl, dict, OK),
    ("pfdl-list", "type", C.pfdl, lambda: {"mu": t(B, L).tolist()}, TE("mu")),
    ("pfdl-int", "dtype", C.pfdl, lambda: {"x": C.i64(B, D)}, TE("x")),
    ("pfdl-dtype-mix", "dtype", C.pfdl, lambda: {"logvar": C.f32(B, L)}, TE("logvar")),
    ("pfdl-shape", "shape", C.pfdl, lambda: {"logvar": t(B, L + 1)}, VE("logvar")),
    ("pfdl-rank", "shape", C.pfdl, lambda: {"mu": t(B), "logvar": t(B)}, VE("mu")),
    (
        "pfdl-empty",
        "empty",
        C.pfdl,
        lambda: {"x": t(0, D), "mu": t(0, L), "logvar": t(0, L)},
        VE("x"),
    ),
    ("pfdl-device", "device", C.pfdl, lambda: {"mu": C.on_meta(B, L)}, VE("mu")),
    ("pfdl-n0", "option", C.pfdl, lambda: {"n_samples": 0}, VE("n_samples")),
    ("pfdl-nfloat", "option", C.pfdl, lambda: {"n_samples": 1.0}, TE("n_samples")),
    ("pfdl-reparam", "option", C.pfdl, lambda: {"reparam": "yes"}, TE("reparam")),
    ("pfdl-nbool", "option", C.pfdl, lambda: {"n_samples": True}, TE("n_samples")),
    ("pfdl-decoder-call", "type", C.pfdl, lambda: {"decoder": 3}, TE("decoder")),
    ("pfdl-decoder-list", "type", C.pfdl, lambda: {"decoder": lambda z: [0.0]}, TE("decoder")),
    ("pfdl-decoder-shape", "shape", C.pfdl, lambda: {"decoder": lambda z: z}, VE("decoder")),
    ("pfdl-nneg", "option", C.pfdl, lambda: {"n_samples": -2}, VE("n_samples")),
    ("pfdl-ls2-float", "type", C.pfdl, lambda: {"log_sigma2": 0.0}, TE("log_sigma2")),
    ("pfdl-ls2-rank", "shape", C.pfdl, lambda: {"log_sigma2": t(1)}, VE("log_sigma2")),
    (
        "pfdl-decoder-dtype",
        "dtype",
        C.pfdl,
        lambda: {"decoder": lambda z: C.tanh_decoder(z).float()},
        TE("decoder"),
    ),
    (
        "pfdl-decoder-device",
        "device",
        C.pfdl,
        lambda: {"decoder": lambda z: C.tanh_decoder(z).to(META)},
        VE("decoder"),
    ),
    ("pfdl-eps-shape", "shape", C.pfdl, lambda: {"eps": t(3, B, L)}, VE("eps")),
    ("pfdl-eps-dtype-mix", "dtype", C.pfdl, lambda: {"eps": C.f32(2, B, L)}, TE("eps")),
    ("pfdl-eps-device", "device", C.pfdl, lambda: {"eps": C.on_meta(2, B, L)}, VE("eps")),
    ("pfdl-generator", "option", C.pfdl, lambda: {"generator": 3}, TE("generator")),
    *C.dtype_rows("pfdl", C.pfdl, "logvar", (B, L)),
    # ---------------------------------------------------------------- fae
    ("fae-ok", "valid", C.fae, dict, OK),
    ("fae-list", "type", C.fae, lambda: {"x": t(B, D).tolist()}, TE("x")),
    ("fae-ndarray", "type", C.fae, lambda: {"z": np.zeros((N, B, L))}, TE("z")),
    ("fae-ls2-float", "type", C.fae, lambda: {"log_sigma2": 0.0}, TE("log_sigma2")),
    ("fae-int", "dtype", C.fae, lambda: {"mu": C.i64(B, L)}, TE("mu")),
    ("fae-dtype-mix", "dtype", C.fae, lambda: {"x_mean": C.f32(N, B, D)}, TE("x_mean")),
    C.arg_row("fae-dtype-mix-g", "dtype", C.fae, TE("grad_loglik_z"), C.f32, N, B, L),
    ("fae-dtype-mix-ls2", "dtype", C.fae, lambda: {"log_sigma2": C.f32()}, TE("log_sigma2")),
    ("fae-shape-psi", "shape", C.fae, lambda: {"psi": t(N, B, D + 1)}, VE("psi")),
    ("fae-shape-psi-N", "shape", C.fae, lambda: {"psi": t(N + 1, B, D)}, VE("psi")),
    ("fae-shape-g", "shape", C.fae, lambda: {"grad_loglik_z": t(N, B, L + 1)}, VE("grad_loglik_z")),
    ("fae-shape-z", "shape", C.fae, lambda: {"z": t(N, B, L + 1)}, VE("z")),
    ("fae-shape-logvar", "shape", C.fae, lambda: {"logvar": t(B, L + 1)}, VE("logvar")),
    ("fae-batch", "shape", C.fae, lambda: {"mu": t(B + 1, L), "logvar": t(B + 1, L)}, VE("mu")),
    (
        "fae-samples",
        "shape",
        C.fae,
        lambda: {"z": t(N + 1, B, L), "grad_loglik_z": t(N + 1, B, L)},
        VE("z"),
    ),
    ("fae-rank", "shape", C.fae, lambda: {"x": t(B, D, 1)}, VE("x")),
    ("fae-rank-ls2", "shape", C.fae, lambda: {"log_sigma2": t(1)}, VE("log_sigma2")),
    ("fae-rank-g", "shape", C.fae, lambda: {"grad_loglik_z": t(1, N, B, L)}, VE("grad_loglik_z")),
    (
        "fae-empty",
        "empty",
        C.fae,
        lambda: {
            "x": t(0, D),
            "z": t(N, 0, L),
            "x_mean": t(N, 0, D),
            "mu": t(0, L),
            "logvar": t(0, L),
            "psi": t(N, 0, D),
            "grad_loglik_z": t(N, 0, L),
        },
        VE("x"),
    ),
    (
        "fae-empty-N",
        "empty",
        C.fae,
        lambda: {
            "z": t(0, B, L),
            "x_mean": t(0, B, D),
            "psi": t(0, B, D),
            "grad_loglik_z": t(0, B, L),
        },
        VE("x_mean"),
    ),
    ("fae-device-psi", "device", C.fae, lambda: {"psi": C.on_meta(N, B, D)}, VE("psi")),
    C.arg_row("fae-device-g", "device", C.fae, VE("grad_loglik_z"), C.on_meta, N, B, L),
    ("fae-device-z", "device", C.fae, lambda: {"z": C.on_meta(N, B, L)}, VE("z")),
    C.arg_row("fae-shape-gN", "shape", C.fae, VE("grad_loglik_z"), t, N - 1, B, L),
    *C.dtype_rows("fae", C.fae, "grad_loglik_z", (N, B, L)),
    # ---------------------------------------------------------------- fae_loss (fae's model-level
    # form)
    ("faeloss-ok", "valid", C.fae_loss, dict, OK),
    ("faeloss-list", "type", C.fae_loss, lambda: {"x": t(B, D).tolist()}, TE("x")),
    ("faeloss-encode-not-callable", "type", C.fae_loss, lambda: {"encode": 3}, TE("encode")),
    ("faeloss-decoder-not-callable", "type", C.fae_loss, lambda: {"decoder": None}, TE("decoder")),
    ("faeloss-encode-not-pair", "type", C.fae_loss, lambda: {"encode": lambda x: x}, TE("encode")),
    (
        "faeloss-encode-dtype",
        "dtype",
        C.fae_loss,
        lambda: {"encode": lambda x: tuple(o.float() for o in C.linear_encode(x))},
        TE("encode"),
    ),
    (
        "faeloss-encode-batch",
        "shape",
        C.fae_loss,
        lambda: {"encode": lambda x: C.linear_encode(x[:-1])},
        VE("encode"),
    ),
    ("faeloss-ls2-float", "type", C.fae_loss, lambda: {"log_sigma2": 0.5}, TE("log_sigma2")),
    C.arg_row("faeloss-ls2-device", "device", C.fae_loss, VE("log_sigma2"), C.on_meta),
    ("faeloss-empty", "empty", C.fae_loss, lambda: {"x": t(0, D)}, VE("x")),
    ("faeloss-n0", "option", C.fae_loss, lambda: {"n_samples": 0}, VE("n_samples")),
    ("faeloss-reparam", "option", C.fae_loss, lambda: {"reparam": "yes"}, TE("reparam")),
    *C.dtype_rows("faeloss", C.fae_loss, "x", (B, D)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _nf_m(fn):
    return lambda v: fn(C.bad_datum(seeded(1, B, D), v), seeded(2, N, B, D), seeded(3))


def _nf_elbo(v):
    x_mean = C.bad_datum(seeded(2, N, B, D), v, 1)
    return O.elbo(seeded(1, B, D), x_mean, seeded(3), seeded(4, B, L), seeded(5, B, L))


def _nf_m3(v):
    psi = C.bad_datum(seeded(4, N, B, D), v, 1)
    return O.m3(seeded(1, B, D), seeded(2, N, B, D), seeded(3), psi)


def _nf_fae(v):
    g = C.bad_datum(seeded(8, N, B, L), v, 1)
    return O.fae(
        seeded(1, B, D),
        seeded(2, N, B, L),
        seeded(3, N, B, D),
        seeded(4),
        seeded(5, B, L),
        seeded(6, B, L),
        seeded(7, N, B, D),
        g,
    )


def _pfdl(x, mu, logvar, reparam=True, eps=None):
    """posterior_fd_loss with the small decoder, log σ² = seeded(4) and two samples per datum."""
    return O.posterior_fd_loss(
        x, C.tanh_decoder, mu, logvar, seeded(4), n_samples=2, reparam=reparam, eps=eps
    )


def _fae_loss(x, reparam=True, eps=None):
    """fae_loss with the small encoder and decoder, log σ² = seeded(2) and two samples per datum
    (``eps`` by default seeded(3, 2, B, L))."""
    eps = seeded(3, 2, B, L) if eps is None else eps
    return O.fae_loss(
        x, C.linear_encode, C.tanh_decoder, seeded(2), n_samples=2, reparam=reparam, eps=eps
    )


def _nf_pfdl(v):
    x = C.bad_datum(seeded(1, B, D), v)
    return _pfdl(x, seeded(2, B, L), seeded(3, B, L), eps=seeded(5, 2, B, L))


def _nf_fae_loss(v):
    return _fae_loss(C.bad_datum(seeded(1, B, D), v))


NONFINITE_ROWS = {
    "elbo": _nf_elbo,
    "m1": _nf_m(O.m1),
    "m2": _nf_m(O.m2),
    "m3": _nf_m3,
    "fae": _nf_fae,
    "fae_loss": _nf_fae_loss,
    "posterior_fd_loss": _nf_pfdl,
}
test_non_finite_datum_stays_in_its_row = C.non_finite_test(NONFINITE_ROWS)


def _l_elbo(lay):
    return O.elbo(
        lay(seeded(1, B, D)),
        lay(seeded(2, N, B, D)),
        seeded(3),
        lay(seeded(4, B, L)),
        lay(seeded(5, B, L)),
    )


def _l_m3(lay):
    return O.m3(lay(seeded(1, B, D)), lay(seeded(2, N, B, D)), seeded(3), lay(seeded(4, N, B, D)))


def _l_pfdl(lay):
    torch.manual_seed(11)
    return _pfdl(lay(seeded(1, B, D)), lay(seeded(2, B, L)), lay(seeded(3, B, L)))


def _l_fae(lay):
    return O.fae(
        lay(seeded(1, B, D)),
        lay(seeded(2, N, B, L)),
        lay(seeded(3, N, B, D)),
        seeded(4),
        lay(seeded(5, B, L)),
        lay(seeded(6, B, L)),
        lay(seeded(7, N, B, D)),
        lay(seeded(8, N, B, L)),
    )


def _l_fae_loss(lay):
    torch.manual_seed(11)
    return _fae_loss(lay(seeded(1, B, D)), eps=lay(seeded(3, 2, B, L)))


LAYOUT_ROWS = {
    "elbo": _l_elbo,
    "m1": C.gaussian_args_layout(O.m1),
    "m2": C.gaussian_args_layout(O.m2),
    "m3": _l_m3,
    "posterior_fd_loss": _l_pfdl,
    "fae": _l_fae,
    "fae_loss": _l_fae_loss,
}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_m3(e):
    ps = seeded(4, 1, B, D).expand(N, B, D)
    return O.m3(seeded(1, B, D), seeded(2, N, B, D), seeded(3), ps if e else ps.contiguous())


def _x_elbo(e):
    lv = torch.zeros(1, 1, dtype=F64).expand(B, L)
    return O.elbo(
        seeded(1, B, D),
        seeded(2, N, B, D),
        seeded(3),
        seeded(4, B, L),
        lv if e else lv.contiguous(),
    )


def _x_fae(e):
    z, g = seeded(2, 1, B, L).expand(N, B, L), seeded(8, B, 1).expand(N, B, L)
    c = (lambda a: a) if e else torch.Tensor.contiguous
    return O.fae(
        seeded(1, B, D),
        c(z),
        seeded(3, N, B, D),
        seeded(4),
        seeded(5, B, L),
        seeded(6, B, L),
        seeded(7, N, B, D),
        c(g),
    )


def _x_fae_loss(e):
    x = seeded(1, 1, D).expand(B, D)
    return _fae_loss(x if e else x.contiguous(), reparam=False)


def _x_pfdl(e):
    mu = seeded(2, 1, L).expand(B, L)
    torch.manual_seed(3)
    return _pfdl(seeded(1, B, D), mu if e else mu.contiguous(), seeded(3, B, L), reparam=False)


EXPANDED_ROWS = {
    "m1": C.gaussian_args_expanded(O.m1, "x_mean"),
    "m2": C.gaussian_args_expanded(O.m2, "x"),
    "m3": _x_m3,
    "elbo": _x_elbo,
    "fae": _x_fae,
    "fae_loss": _x_fae_loss,
    "pfdl": _x_pfdl,
}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)
