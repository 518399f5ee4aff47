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

import pytest
import torch
import vsm
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
            O.fae_loss(m.x, m.encode, m.decode, m.log_sigma2, n_samples=16, reparam=False,
                       eps=eps),
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
            torch.testing.assert_close(
                O.m1(m.x, xm, m.log_sigma2), 0.5 * (f**2).sum(-1) - m.D / s2
            )
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_posterior_fd_loss_value_and_unbiased_gradients(backend):
    """reparam=True: value and gradients (mu, logvar, W, b, log σ²) equal the closed form's."""
    m = _make()
    mu, logvar, W, b, ls, eps = _pfd_inputs(m)
    with vsm.backend(backend):
        loss = O.posterior_fd_loss(
            m.x, lambda z: z @ W.T + b, mu, logvar, ls, n_samples=eps.shape[0], reparam=True,
            eps=eps,
        )
    cf = _cf_pfd(W, b, m.x, ls, mu, logvar)
    torch.testing.assert_close(loss, cf)
    params = (mu, logvar, W, b, ls)
    for name, g, rg in zip(
        ("mu", "logvar", "W", "b", "log_sigma2"),
        torch.autograd.grad(loss.sum(), params),
        torch.autograd.grad(cf.sum(), params),
    ):
        torch.testing.assert_close(g, rg, msg=lambda s, n=name: f"{n}: {s}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_posterior_fd_loss_biased_gradients(backend):
    """reparam=False (z detached): ∂/∂μ = 2 S⁻¹ P (μ − m) and ∂/∂logvar_l = 2 (P_ll − 1/s_l²),
    i.e. 2·diag(1/s², 1/s²·…) times the KL gradients (MATH.md A.5.1 without the ½); the decoder
    parameters still receive the closed form's gradient through the VJP."""
    m = _make(orthogonal=True)
    mu, logvar, W, b, ls, eps = _pfd_inputs(m)
    with vsm.backend(backend):
        loss = O.posterior_fd_loss(
            m.x, lambda z: z @ W.T + b, mu, logvar, ls, n_samples=eps.shape[0], reparam=False,
            eps=eps,
        )
    cf = _cf_pfd(W, b, m.x, ls, mu, logvar)
    torch.testing.assert_close(loss, cf)
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
        (torch.diag(P) * torch.exp(lv2)).sum(-1) + ((dm @ P) * dm).sum(-1) - P.shape[0]
        - torch.logdet(P) - lv2.sum(-1)
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
            m.x, m.decode, mu, logvar, m.log_sigma2, n_samples=20000, reparam=False,
            generator=gen,
        )
    torch.testing.assert_close(est, _cf_pfd(m.W, m.b, m.x, m.log_sigma2, mu, logvar), rtol=0.05,
                               atol=0)


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
            m.x, lambda z: m.decode(z).reshape(*z.shape[:-1], 1, 2, 2), mu, logvar,
            m.log_sigma2, n_samples=4, reparam=True, eps=eps,
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


# ----------------------------------------------------------------------------- validation


def _valid():
    gen = torch.Generator().manual_seed(0)
    N, B, D, L = 2, 3, 4, 2
    return {
        "x": torch.randn(B, D, generator=gen),
        "x_mean": torch.randn(N, B, D, generator=gen),
        "log_sigma2": torch.tensor(0.1),
        "mu": torch.randn(B, L, generator=gen),
        "logvar": torch.randn(B, L, generator=gen),
        "psi": torch.randn(N, B, D, generator=gen),
        "z": torch.randn(N, B, L, generator=gen),
        "grad_loglik_z": torch.randn(N, B, L, generator=gen),
    }


@pytest.mark.parametrize(
    "fn, bad, exc, name",
    [
        ("m1", {"x": torch.randn(3, 2, 2)}, ValueError, "x"),
        ("m1", {"x_mean": torch.randn(2, 3, 5)}, ValueError, "x_mean"),
        ("m1", {"log_sigma2": torch.tensor([0.1])}, ValueError, "log_sigma2"),
        ("m2", {"x_mean": torch.randn(2, 3, 4, dtype=F64)}, TypeError, "x_mean"),
        ("m3", {"psi": torch.randn(3, 3, 4)}, ValueError, "psi"),
        ("elbo", {"mu": torch.randn(2, 2)}, ValueError, "mu"),
        ("elbo", {"logvar": torch.randn(3, 3)}, ValueError, "logvar"),
        ("elbo", {"x": "data"}, TypeError, "x"),
        ("fae", {"z": torch.randn(2, 3, 3)}, ValueError, "z"),
        ("fae", {"grad_loglik_z": torch.randn(1, 3, 2)}, ValueError, "grad_loglik_z"),
        ("fae", {"z": torch.randn(3, 3, 2), "grad_loglik_z": torch.randn(3, 3, 2)}, ValueError,
         "z"),
    ],
)
def test_bad_input_names_the_argument(fn, bad, exc, name):
    import inspect

    f = getattr(O, fn)
    kw = {**_valid(), **bad}
    params = inspect.signature(f).parameters
    with pytest.raises(exc, match=f"^{name}"):
        f(**{k: v for k, v in kw.items() if k in params})


def test_posterior_fd_loss_argument_checks():
    v = _valid()
    args = (v["x"], lambda z: z @ torch.ones(2, 4), v["mu"], v["logvar"], v["log_sigma2"])
    with pytest.raises(TypeError, match="^reparam"):
        O.posterior_fd_loss(*args, n_samples=2, reparam=1)
    with pytest.raises(ValueError, match="^n_samples"):
        O.posterior_fd_loss(*args, n_samples=0, reparam=True)
    with pytest.raises(ValueError, match="^eps"):
        O.posterior_fd_loss(*args, n_samples=2, reparam=True, eps=torch.randn(3, 3, 2))
    with pytest.raises(ValueError, match="^decoder"):
        O.posterior_fd_loss(
            v["x"], lambda z: z @ torch.ones(2, 5), *args[2:], n_samples=2, reparam=True
        )
