"""The paper code's estimators and parametrisation (``TrainConfig.variant="paper"``, issue 14.1).

Each option is checked against its formula and against a direct transcription of the authors'
expression as MATH.md records it (§6 "Bao", §9 "Code caveat", §10 "Per-objective expressions") on
identical inputs and draws: values and gradients in float64 to 1e-12 (norm-wise relative). The
transcriptions below are written from those formulas in the authors' style (``torch.distributions``
densities, autograd through a reparametrised sample), independently of vsm's implementation.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from _cases import train_steps
from test_seeds import SEEDS, SMALL, TINY, _assert_replica_equals, _single
from torch.distributions import Normal
from vsm import objectives as O
from vsm.cli import main
from vsm.data import Dataset, load_dataset
from vsm.models import MLPVAE, ConvVAE, from_spec, log_softplus
from vsm.train import (
    OBJECTIVES,
    SeedsTrainer,
    TrainConfig,
    Trainer,
    VariantOptions,
    build_model,
    inference_loss,
    learning_loss,
    load_checkpoint,
    make_trainer,
    model_from_checkpoint,
    variant_options,
)

F64 = torch.float64
RTOL = 1e-12
PAPER_SEEDS = {"seeds": SEEDS, "variant": "paper"}  # replicas of the paper code's variant


def _close(got: torch.Tensor, want: torch.Tensor, what: str = "") -> None:
    """‖got − want‖ ≤ 1e-12 ‖want‖ (norm-wise relative; elementwise would fail on cancellations
    near zero that are not errors)."""
    assert got.shape == want.shape, what
    err = (got - want).norm().item()
    scale = want.norm().item()
    assert err <= RTOL * max(scale, 1e-300), f"{what}: |Δ| = {err:.3g}, |want| = {scale:.3g}"


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs, strict=True)]


def _same_loss(got: torch.Tensor, want: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
    _close(got.detach(), want.detach(), "value")
    names = list(params)
    for name, a, b in zip(
        names, _grads(got, list(params.values())), _grads(want, list(params.values())), strict=True
    ):
        _close(a, b, f"gradient w.r.t. {name}")


def _theta(model) -> dict[str, torch.Tensor]:
    return {
        **{f"decoder.{k}": p for k, p in model.decoder.named_parameters()},
        model.noise_param: model.noise_parameter,
    }


def _all_params(model) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


@pytest.fixture(scope="module")
def sparse() -> Dataset:
    return load_dataset("sparse", n_test=16)


def _flat_data(d: int = 6, n: int = 64) -> Dataset:
    """A small fixed data set of flat (d,) data: the image code's family under "paper"."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, d, generator=g)
    return Dataset("flat", (d,), x[:16], train=x[16:])


def _paper_2d_model(width: int = 7) -> MLPVAE:
    torch.manual_seed(1)
    return MLPVAE((2,), 2, width, noise_param="log_sigma", sd_head="softplus").to(F64)


def _paper_image_like_model(d: int = 6, latent: int = 3) -> MLPVAE:
    torch.manual_seed(2)
    m = MLPVAE((d,), latent, 8, log_sigma2_init=-1.3, noise_param="log_sigma", sd_head="logsd")
    return m.to(F64)


def _x2d(b: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return (0.3 * torch.randn(b, 2, generator=g)).to(F64)


# --------------------------------------------------------------------- the authors' expressions


def _enc_2d(model, x):
    """bilevels.py's encoder output: q = N(m, softplus(h)²)."""
    h = model.encoder(x)
    m, raw = h[..., : model.latent_dim], h[..., model.latent_dim :]
    return m, F.softplus(raw)


def _enc_image(model, x):
    """VAEs.py's encoder output: q = N(m, exp(h)²)."""
    h = model.encoder(x)
    m, raw = h[..., : model.latent_dim], h[..., model.latent_dim :]
    return m, raw.exp()


def _sigma(model) -> torch.Tensor:
    return model.noise_parameter.exp()  # the authors' learned ``logsigma``


def authors_2d_marginal_score(model, x, eps):
    """bilevels.py L_S: one reparametrised z per datum, ``.mean(0)`` over the minibatch."""
    m, std = _enc_2d(model, x)
    z = m + std * eps
    g = model.decoder(z)
    s = _sigma(model) * torch.ones_like(g)
    f = -(x - g) / s**2
    return (
        -0.5 * f.mean(0).square().sum(-1) + f.square().sum(-1).mean(0) - (1 / s**2).mean(0).sum(-1)
    ).mean()


def _authors_bad_marginal_score_at(model, x, q, z):
    """The L_B formula both of the authors' codes share, at samples z of q (x requires grad):
    ½‖mean f‖² + mean_n f_n·ψ − mean tr, with ψ = ∇_x Σ log q(z|x)."""
    g = model.decoder(z)
    s = _sigma(model) * torch.ones_like(g)
    f = -(x - g) / s**2
    (psi,) = torch.autograd.grad(q.log_prob(z).sum(), [x], create_graph=True)
    return (
        0.5 * f.mean(0).square().sum(-1) + (f * psi).sum(-1).mean(0) - (1 / s**2).mean(0).sum(-1)
    ).mean()


def authors_2d_bad_marginal_score(model, x, eps):
    """bilevels.py L_B: z reparametrised, ψ = ∇_x Σ log q(z(x)|x) a total derivative."""
    x = x.clone().requires_grad_(True)
    m, std = _enc_2d(model, x)
    q = Normal(m, std)
    z = m + std * eps
    return _authors_bad_marginal_score_at(model, x, q, z)


def authors_2d_f_encoder_loss(model, x, eps):
    """bilevels.py FD inference (``f_encoder``, reparam=0): z detached, no ½."""
    m, std = _enc_2d(model, x)
    z = (m + std * eps).detach().requires_grad_(True)
    g = model.decoder(z)
    logp = Normal(g, _sigma(model)).log_prob(x).sum(-1)
    dzlogq = -(z - m) / std**2
    (dzlogp,) = torch.autograd.grad(logp.sum(), [z], create_graph=True)
    return (dzlogq - dzlogp + z).square().sum(-1).mean()


def authors_2d_neg_elbo(model, x, eps):
    """bilevels.py ELBO (negated): one reparametrised sample, closed-form KL."""
    m, std = _enc_2d(model, x)
    q = Normal(m, std)
    z = m + std * eps
    g = model.decoder(z)
    kl = torch.distributions.kl_divergence(q, Normal(torch.zeros_like(m), 1.0))
    return -(Normal(g, _sigma(model)).log_prob(x).sum(-1).mean(0) - kl.sum(-1).mean(0))


def authors_image_bad_marginal_score(model, x, eps):
    """VAEs.py L_B: M detached samples; ψ' = ∇_x Σ_m log q(z_m|x) multiplies every f_n."""
    x = x.clone().requires_grad_(True)
    m, std = _enc_image(model, x)
    q = Normal(m, std)
    z = (m + std * eps).detach()  # q.sample([M])
    return _authors_bad_marginal_score_at(model, x, q, z)


def authors_image_joint_score(model, x, eps, reparam: bool = True):
    """VAEs.py FAE (``joint_score``): x repeated once per sample; with ``reparam`` (the encoder
    step) z = rsample, so ψ = ∇_x log q(z(x)|x) is a total derivative."""
    n = eps.shape[0]
    xr = x.unsqueeze(0).expand(n, *x.shape).clone().requires_grad_(True)
    m, std = _enc_image(model, xr.reshape(-1, x.shape[-1]))
    m, std = m.reshape(*eps.shape), std.reshape(*eps.shape)
    z = m + std * eps
    if not reparam:
        z = z.detach().requires_grad_(True)
    g = model.decoder(z)
    q = Normal(m, std)
    logpx = Normal(g, _sigma(model)).log_prob(xr)
    dzlogq = -(z - m) / std**2
    (dxlogq,) = torch.autograd.grad(q.log_prob(z).sum(), [xr], create_graph=True)
    (dzlogpx,) = torch.autograd.grad(logpx.sum(), [z], create_graph=True)
    s = _sigma(model) * torch.ones_like(g)
    dxlogpx = -(xr - g) / s**2
    return (
        0.5 * (dzlogq - dzlogpx + z).square().sum(-1)
        + (0.5 * dxlogpx.square() - 1 / s**2 + 0.5 * dxlogq.square()).sum(-1)
    ).mean()


# --------------------------------------------------------------------- vsm vs the authors (2-D)


@pytest.mark.parametrize(
    "objective, authors",
    [
        ("kl-m2", authors_2d_marginal_score),
        ("fd-m3", authors_2d_bad_marginal_score),
        ("kl-m1", None),
    ],
)
def test_2d_learning_losses_equal_the_authors(reference_backend, sparse, objective, authors):
    """vsm's learning step under the 2-D paper variant = bilevels.py's loss, value and θ-grad."""
    model, x = _paper_2d_model(), _x2d()
    opts = variant_options("paper", sparse)
    torch.manual_seed(11)
    got = learning_loss(model, x, objective=objective, options=opts)
    torch.manual_seed(11)
    eps = torch.randn((1, *x.shape[:1], 2), dtype=F64)[0]  # learning_loss's draw, N = 1
    if authors is None:  # bilevels.py::joint_score_x, L_θ
        m, std = _enc_2d(model, x)
        g = model.decoder(m + std * eps)
        s = _sigma(model) * torch.ones_like(g)
        want = (0.5 * ((g - x) / s**2).square() - 1 / s**2).sum(-1).mean()
    else:
        want = authors(model, x, eps)
    _same_loss(got, want, _theta(model))


@pytest.mark.parametrize(
    "objective, authors",
    [
        ("fd-m1", authors_2d_f_encoder_loss),
        ("kl-m1", authors_2d_neg_elbo),
    ],
)
def test_2d_inference_losses_equal_the_authors(reference_backend, sparse, objective, authors):
    """The encoder steps (bilevels.py ``f_encoder`` / ``kl_encoder``) through the softplus SD head
    and log σ: value and gradient w.r.t. every parameter."""
    model, x = _paper_2d_model(), _x2d()
    torch.manual_seed(12)
    got = inference_loss(model, x, objective=objective, options=variant_options("paper", sparse))
    torch.manual_seed(12)
    eps = torch.randn((1, x.shape[0], 2), dtype=F64)[0]
    _same_loss(got, authors(model, x, eps), _all_params(model))


def test_2d_learning_losses_on_the_fused_path(sparse):
    """The same equality with the fused ops (Triton kernels under the interpreter)."""
    model, x = _paper_2d_model(), _x2d()
    opts = variant_options("paper", sparse)
    for objective, authors in (
        ("kl-m2", authors_2d_marginal_score),
        ("kl-m3", authors_2d_bad_marginal_score),
    ):
        torch.manual_seed(13)
        got = learning_loss(model, x, objective=objective, options=opts)
        torch.manual_seed(13)
        eps = torch.randn((1, x.shape[0], 2), dtype=F64)[0]
        _same_loss(got, authors(model, x, eps), _theta(model))


# ------------------------------------------------------------------ vsm vs the authors (images)


@pytest.mark.parametrize("n", [1, 4])
def test_image_bad_marginal_score_equals_the_authors(reference_backend, n):
    """VAEs.py's L_B (summed cross term) under the image paper variant, with input noise η."""
    data = _flat_data()
    model = _paper_image_like_model()
    x = data.train[:5].to(F64)
    eta = 0.1
    torch.manual_seed(21)
    got = learning_loss(
        model, x, objective="kl-m3", n_samples=n, eta=eta, options=variant_options("paper", data)
    )
    torch.manual_seed(21)
    xt = x + eta * torch.randn_like(x)
    eps = torch.randn((n, 5, model.latent_dim), dtype=F64)
    _same_loss(got, authors_image_bad_marginal_score(model, xt, eps), _theta(model))


@pytest.mark.parametrize("n", [1, 3])
def test_fae_encoder_step_equals_the_authors(reference_backend, n):
    """The FAE encoder step (VAEs.py ``joint_score(reparam=True)``, total-derivative ψ): value
    and gradient w.r.t. every parameter (the encoder's is what the step uses)."""
    data = _flat_data()
    model = _paper_image_like_model()
    x = data.train[:4].to(F64)
    torch.manual_seed(22)
    got = inference_loss(
        model, x, objective="fae", n_samples=n, eta=0.1, options=variant_options("paper", data)
    )
    torch.manual_seed(22)
    xt = x + 0.1 * torch.randn_like(x)
    eps = torch.randn((n, 4, model.latent_dim), dtype=F64)
    _same_loss(got, authors_image_joint_score(model, xt, eps), _all_params(model))


def test_fae_decoder_step_equals_the_authors(reference_backend):
    """The FAE decoder step (``joint_score(reparam=False)``): ψ at fixed z in both codes."""
    data = _flat_data()
    model = _paper_image_like_model()
    x = data.train[:4].to(F64)
    torch.manual_seed(23)
    got = learning_loss(
        model, x, objective="fae", n_samples=2, options=variant_options("paper", data)
    )
    torch.manual_seed(23)
    eps = torch.randn((2, 4, model.latent_dim), dtype=F64)
    want = authors_image_joint_score(model, x, eps, reparam=False)
    _same_loss(got, want, _theta(model))


def test_vsm_fae_encoder_step_differs_from_the_authors(reference_backend):
    """The two ψ really differ: vsm's partial ψ is not the authors' total derivative."""
    data = _flat_data()
    model = _paper_image_like_model()
    x = data.train[:4].to(F64)
    torch.manual_seed(24)
    vsm_loss = inference_loss(model, x, objective="fae", n_samples=2)
    torch.manual_seed(24)
    eps = torch.randn((2, 4, model.latent_dim), dtype=F64)
    want = authors_image_joint_score(model, x, eps)
    assert abs(vsm_loss.item() - want.item()) > 1e-6 * abs(want.item())


# ------------------------------------------------------------------------------ the formulas


def _terms(n=3, b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=F64)
    xm = torch.randn(n, b, d, generator=g, dtype=F64, requires_grad=True)
    psi = torch.randn(n, b, d, generator=g, dtype=F64, requires_grad=True)
    ls = torch.tensor(-0.7, dtype=F64, requires_grad=True)
    return x, xm, psi, ls


def test_m2_minibatch_formula(reference_backend):
    x, xm, _, ls = _terms()
    s2 = ls.exp()
    f = (xm - x) / s2
    fbar = f.mean((0, 1))
    want = f.pow(2).sum(-1).mean(0) - 0.5 * fbar.pow(2).sum() - x.shape[1] / s2
    got = O.m2(x, xm, ls, estimator="minibatch")
    _same_loss(got.sum(), want.sum(), {"x_mean": xm, "log_sigma2": ls})
    # N = 1: the batch mean is bilevels.py's mean_b‖f_b‖² − ½‖mean_b f_b‖² − D/σ²
    f1 = f[:1]
    one = O.m2(x, xm[:1], ls, estimator="minibatch").mean()
    _close(
        one.detach(),
        (f1.pow(2).sum(-1).mean() - 0.5 * f1[0].mean(0).pow(2).sum() - x.shape[1] / s2).detach(),
    )
    # the default is unchanged
    _close(
        O.m2(x, xm, ls).detach(),
        (f.pow(2).sum(-1).mean(0) - 0.5 * f.mean(0).pow(2).sum(-1) - x.shape[1] / s2).detach(),
    )


@pytest.mark.parametrize("estimator", ["samples", "minibatch"])
@pytest.mark.parametrize("cross", ["per-sample", "summed"])
def test_m3_formulas(reference_backend, estimator, cross):
    x, xm, psi, ls = _terms()
    s2 = ls.exp()
    f = (xm - x) / s2
    n, d = xm.shape[0], x.shape[1]
    half = 0.5 * (
        f.mean(0).pow(2).sum(-1) if estimator == "samples" else f.mean((0, 1)).pow(2).sum()
    )
    if cross == "per-sample":
        cr = (f * psi).sum(-1).mean(0)
    else:  # mean_n f_n·Σ_m ψ_m = N f̄·ψ̄
        cr = n * (f.mean(0) * psi.mean(0)).sum(-1)
    want = half + cr - d / s2
    got = O.m3(x, xm, ls, psi, estimator=estimator, cross=cross)
    _same_loss(got.sum(), want.sum(), {"x_mean": xm, "psi": psi, "log_sigma2": ls})


def test_option_errors():
    x, xm, psi, ls = _terms()
    with pytest.raises(ValueError, match="^estimator"):
        O.m2(x, xm, ls, estimator="batch")
    with pytest.raises(ValueError, match="^cross"):
        O.m3(x, xm, ls, psi, cross="sum")

    def enc(v):
        return v[:, :2], v[:, 2:]

    with pytest.raises(ValueError, match="^derivative"):
        O.encoder_x_score(enc, x, torch.zeros(3, 5, 2, dtype=F64), derivative="full")
    with pytest.raises(ValueError, match="^psi_derivative"):
        O.fae_loss(
            x, enc, lambda z: z.repeat(1, 2), ls, n_samples=1, reparam=True, psi_derivative="full"
        )


def _linear_encoder(d=4, latent=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(latent, d, generator=g, dtype=F64, requires_grad=True)
    c = (0.3 * torch.randn(latent, d, generator=g, dtype=F64)).requires_grad_(True)
    dd = torch.randn(latent, generator=g, dtype=F64)

    def encode(v):
        return v @ a.T, v @ c.T + dd

    return encode, a, c


def test_total_psi_closed_form_and_finite_differences():
    """ψ_total = −½∇_x Σ logvar(x): for logvar = C x + d it is −½ Cᵀ1 exactly; and it is the
    derivative of x ↦ log q(μ(x) + s(x)ε | x) at fixed ε (central differences)."""
    encode, _, c = _linear_encoder()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, generator=g, dtype=F64)
    eps = torch.randn(2, 3, 2, generator=g, dtype=F64)
    mu, logvar = encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    psi = O.encoder_x_score(encode, x, z, derivative="total")
    assert psi.shape == (2, 3, 4)
    want = (-0.5 * c.sum(0)).expand(2, 3, 4)
    _close(psi.detach(), want.detach())
    # differentiable w.r.t. the encoder's parameters: ∂/∂C of Σψ = −½ per entry × (N·B·... )
    (gc,) = torch.autograd.grad(psi.sum(), c)
    _close(gc, torch.full_like(c, -0.5 * 2 * 3))

    def logq_along(xv):  # log q(μ(x) + s(x)ε | x) for datum 0, sample 0
        m, lv = encode(xv)
        zz = m + torch.exp(0.5 * lv) * eps[0]
        return Normal(m, torch.exp(0.5 * lv)).log_prob(zz)[0].sum()

    h = 1e-6
    fd = torch.zeros(4, dtype=F64)
    for j in range(4):
        e = torch.zeros_like(x)
        e[0, j] = h
        fd[j] = (logq_along(x + e) - logq_along(x - e)) / (2 * h)
    assert torch.allclose(psi[0, 0].detach(), fd.detach(), rtol=1e-7, atol=1e-8)


def test_total_psi_equals_autograd_through_the_reparametrised_sample():
    """On a nonlinear (softplus-head) encoder: vsm's closed form = the authors' autograd of
    Σ log q(z(x)|x) through z = μ(x) + s(x)ε, values and encoder gradients."""
    model = _paper_2d_model()
    x = _x2d(6)
    eps = torch.randn(1, 6, 2, dtype=F64)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    got = O.encoder_x_score(lambda v: model.encode(v), x, z, derivative="total")[0]
    xr = x.clone().requires_grad_(True)
    m, std = _enc_2d(model, xr)
    (want,) = torch.autograd.grad(
        Normal(m, std).log_prob(m + std * eps[0]).sum(), [xr], create_graph=True
    )
    w = torch.randn_like(want)
    _same_loss(
        (got * w).sum(),
        (want * w).sum(),
        {f"encoder.{k}": p for k, p in model.encoder.named_parameters()},
    )


def test_summed_cross_term_is_unbiased_for_L_B():
    """E[mean_n f_n·Σ_m ψ_m] = E[f·ψ] (E_q ψ = 0): Monte Carlo over independent draws, within
    5 standard errors, against the per-sample estimator's mean on the same draws."""
    encode, _, _ = _linear_encoder()
    g = torch.Generator().manual_seed(9)
    w = torch.randn(4, 2, generator=g, dtype=F64)
    x = torch.randn(1, 4, generator=g, dtype=F64)
    ls = torch.tensor(0.2, dtype=F64)
    reps, n = 20000, 3
    mu, logvar = encode(x)
    eps = torch.randn(n, reps, 2, generator=g, dtype=F64)
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    xs = x.expand(reps, 4)
    mus, lvs = mu.expand(reps, 2), logvar.expand(reps, 2)
    psi = O.encoder_x_score(lambda v: encode(v), xs, z, create_graph=False)
    del mus, lvs
    xm = z @ w.T
    per = O.m3(xs, xm, ls, psi).detach()
    summed = O.m3(xs, xm, ls, psi, cross="summed").detach()
    diff = summed - per
    se = diff.std() / math.sqrt(reps)
    assert abs(diff.mean().item()) < 5 * se.item()
    assert diff.std().item() > 0  # a different estimator, not the same one


# ------------------------------------------------------------------------- parametrisation


def test_log_sigma_parametrisation():
    m = MLPVAE(noise_param="log_sigma")
    assert dict(m.named_parameters())["log_sigma"] is m.noise_parameter
    assert "log_sigma2" not in dict(m.named_parameters())
    assert m.noise_parameter.item() == pytest.approx(math.log(0.1), abs=1e-7)
    _close(m.log_sigma2.detach().double(), 2 * m.noise_parameter.detach().double())
    assert m.decoder_parameters()[-1] is m.noise_parameter
    # one Adam step: log σ moves by lr, so log σ² moves twice as far as vsm's log σ² does
    moves = {}
    for param in ("log_sigma2", "log_sigma"):
        torch.manual_seed(0)
        mm = MLPVAE(noise_param=param)
        opt = torch.optim.Adam([mm.noise_parameter], lr=1e-3)
        before = mm.log_sigma2.item()
        (mm.log_sigma2 * 3.0).backward()
        opt.step()
        moves[param] = before - mm.log_sigma2.item()
    assert moves["log_sigma2"] == pytest.approx(1e-3, rel=1e-4)
    assert moves["log_sigma"] == pytest.approx(2e-3, rel=1e-4)


@pytest.mark.parametrize(
    "head, sd",
    [("logvar", lambda h: torch.exp(0.5 * h)), ("softplus", F.softplus), ("logsd", torch.exp)],
)
def test_sd_heads(head, sd):
    torch.manual_seed(0)
    m = MLPVAE(sd_head=head).to(F64)
    x = _x2d()
    raw = m.encoder(x)[:, 2:]
    mu, logvar = m.encode(x)
    _close(torch.exp(0.5 * logvar).detach(), sd(raw).detach())
    _close(mu.detach(), m.encoder(x)[:, :2].detach())


def test_softplus_head_start_and_stability():
    """The authors' softplus SD starts near softplus(0) ≈ 0.69 (vsm's log s² head at 1), and its
    log-variance stays finite, with finite gradients, far into the tails."""
    torch.manual_seed(0)
    s = torch.exp(0.5 * MLPVAE(sd_head="softplus").encode(torch.zeros(4, 2))[1])
    assert torch.allclose(s, torch.full_like(s, math.log(2.0)), atol=0.05)
    h = torch.tensor([-1e4, -40.0, -30.0, -29.9, 0.0, 30.0, 1e3], dtype=F64, requires_grad=True)
    out = log_softplus(h)
    (g,) = torch.autograd.grad(out.sum(), h)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    mid = h.detach()[2:]
    _close(out.detach()[3:], torch.log(F.softplus(mid[1:])))
    assert out[2].item() == pytest.approx(math.log(math.log1p(math.exp(-30.0))), rel=1e-14)


def test_paper_initialisation_2d(sparse):
    """The authors' 2-D initialisation: weights N(0, 0.1²), encoder biases 0, decoder biases
    N(0, 0.1²), log σ = log 0.1 (width 100 for enough weights to test the SD)."""
    cfg = TrainConfig(variant="paper", width=100).resolved(sparse)
    torch.manual_seed(0)
    m = build_model(cfg, (2,), variant_options("paper", sparse))
    assert (m.noise_param, m.sd_head) == ("log_sigma", "softplus")
    assert m.noise_parameter.item() == pytest.approx(math.log(0.1), abs=1e-7)
    ws = torch.cat([p.detach().flatten() for k, p in m.named_parameters() if "weight" in k])
    assert ws.std().item() == pytest.approx(0.1, rel=0.05) and abs(ws.mean().item()) < 0.01
    for k, p in m.encoder.named_parameters():
        if "bias" in k:
            assert torch.count_nonzero(p) == 0
    db = torch.cat([p.detach() for k, p in m.decoder.named_parameters() if "bias" in k])
    assert db.std().item() == pytest.approx(0.1, rel=0.2)


def test_specs_round_trip_and_defaults_are_unchanged():
    assert MLPVAE().spec() == {
        "kind": "mlp",
        "data_shape": [2],
        "latent_dim": 2,
        "width": 30,
        "n_hidden": 2,
    }
    assert "noise_param" not in ConvVAE().spec()
    for m in (
        MLPVAE(noise_param="log_sigma", sd_head="softplus"),
        ConvVAE(latent_dim=3, ngf=2, ndf=2, noise_param="log_sigma", sd_head="logsd"),
    ):
        r = from_spec(m.spec())
        r.load_state_dict(m.state_dict())
        assert (r.noise_param, r.sd_head) == (m.noise_param, m.sd_head)
        assert torch.equal(r.log_sigma2, m.log_sigma2)
    with pytest.raises(ValueError, match="^noise_param"):
        MLPVAE(noise_param="sigma")
    with pytest.raises(ValueError, match="^sd_head"):
        MLPVAE(sd_head="exp")


# ------------------------------------------------------------------------------------- data


def test_epoch_pools():
    d = load_dataset("mixture", n_test=8)
    size, bs = 2000, 500
    epoch0 = torch.cat([d.batch(i, bs, 7, epoch_size=size) for i in range(4)])
    assert epoch0.shape == (size, 2)
    assert torch.equal(d.batch(2, bs, 7, epoch_size=size), epoch0[1000:1500])  # deterministic
    # the mixture's epoch holds exactly half of its points in each component, like the authors'
    assert int((epoch0.sum(1) > 0).sum()) == pytest.approx(size / 2, abs=40)
    assert len(torch.unique(epoch0, dim=0)) == size  # no point twice within an epoch
    epoch1 = d.batch(4, bs, 7, epoch_size=size)
    assert not torch.equal(epoch1, epoch0[:bs])
    assert not torch.equal(d.batch(0, bs, 8, epoch_size=size), epoch0[:bs])
    assert d.steps_per_epoch(1000, epoch_size=100_000) == 100
    with pytest.raises(ValueError, match="^epoch_size"):
        d.batch(0, bs, 7, epoch_size=100)
    with pytest.raises(ValueError, match="^epoch_size"):
        _flat_data().batch(0, 4, 0, epoch_size=100)


# ------------------------------------------------------------------------ variant switching


def test_variant_options(sparse):
    assert variant_options("vsm", sparse) == VariantOptions()
    assert variant_options("vsm", _flat_data()) == VariantOptions()
    p2 = variant_options("paper", sparse)
    assert (
        p2.m2_estimator,
        p2.m3_estimator,
        p2.m3_cross,
        p2.m3_psi,
        p2.fae_encoder_psi,
        p2.noise_param,
        p2.sd_head,
        p2.epoch_size,
    ) == (
        "minibatch",
        "minibatch",
        "per-sample",
        "total",
        "total",
        "log_sigma",
        "softplus",
        100_000,
    )
    pi = variant_options("paper", _flat_data())
    assert (
        pi.m2_estimator,
        pi.m3_estimator,
        pi.m3_cross,
        pi.m3_psi,
        pi.fae_encoder_psi,
        pi.noise_param,
        pi.sd_head,
        pi.epoch_size,
    ) == ("samples", "samples", "summed", "partial", "total", "log_sigma", "logsd", None)
    with pytest.raises(ValueError, match="^variant"):
        variant_options("authors", sparse)
    with pytest.raises(ValueError, match="^variant"):
        TrainConfig(variant="authors").resolved(sparse)
    assert TrainConfig().variant == "vsm"


def test_default_variant_is_vsm(reference_backend, sparse):
    """A default run builds vsm's model and losses (the paper options are off)."""
    tr = Trainer(TrainConfig(objective="kl-m3", steps=1, batch_size=8, width=4), data=sparse)
    assert tr.options == VariantOptions()
    assert (tr.model.noise_param, tr.model.sd_head) == ("log_sigma2", "logvar")
    x = _x2d().float()
    torch.manual_seed(3)
    a = learning_loss(tr.model, x, objective="kl-m3")
    torch.manual_seed(3)
    b = learning_loss(tr.model, x, objective="kl-m3", options=VariantOptions())
    assert torch.equal(a, b)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_cli_train_paper_variant_on_sparse(reference_backend, tmp_path, objective, capsys):
    out = tmp_path / objective
    rc = main(
        [
            "train",
            "--objective",
            objective,
            "--dataset",
            "sparse",
            "--steps",
            "6",
            "--batch-size",
            "64",
            "--width",
            "8",
            "--variant",
            "paper",
            "--n-test",
            "32",
            "--log-every",
            "3",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "paper"
    assert math.isfinite(metrics["neg_elbo"])
    state = load_checkpoint(str(out / "checkpoint.pt"))
    assert state["config"]["variant"] == "paper"
    assert state["model_spec"]["noise_param"] == "log_sigma"
    assert state["model_spec"]["sd_head"] == "softplus"
    model, cfg = model_from_checkpoint(str(out / "checkpoint.pt"))
    assert cfg.variant == "paper" and model.noise_param == "log_sigma"
    assert len(state["history"]) == 6


def test_paper_run_resumes_exactly(reference_backend, sparse, tmp_path):
    """Epoch pools and the log σ parameter survive a checkpoint: resume = uninterrupted run."""
    cfg = TrainConfig(
        objective="kl-m2", variant="paper", steps=6, batch_size=32, width=5, n_test=16
    )
    full = train_steps(Trainer(cfg, data=sparse), 6)
    half = train_steps(Trainer(cfg, data=sparse), 3)
    path = tmp_path / "c.pt"
    half.save(str(path))
    resumed = train_steps(Trainer.from_checkpoint(str(path), data=sparse), 3)
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


# --------------------------------------------------------------------------- batched seeds


@pytest.mark.parametrize(
    "objective, extra",
    [
        ("kl-m3", {}),
        ("fd-m2", {"k_enc": 2}),
        ("fae", {}),
        ("kl-m3", {"k_bi": 1}),
    ],
)
def test_seeds_replicas_equal_single_runs_under_paper_2d(
    reference_backend, sparse, objective, extra
):
    cfg = TrainConfig(objective=objective, **PAPER_SEEDS, **{**TINY, "batch_size": 24}, **extra)
    st = make_trainer(cfg, data=sparse)
    assert isinstance(st, SeedsTrainer)
    assert st.replicas.noise_param == "log_sigma"
    for _ in range(3):
        st.train_step()
    for s in SEEDS:
        _assert_replica_equals(st, s, _single(cfg, s, 3, data=sparse))


@pytest.mark.parametrize("objective", ["kl-m3", "fae"])
def test_seeds_replicas_equal_single_runs_under_paper_images(reference_backend, objective):
    data = _flat_data()
    cfg = TrainConfig(
        objective=objective, **PAPER_SEEDS, **SMALL, steps=3, batch_size=8, latent_dim=2, eta=0.1
    )
    st = make_trainer(cfg, data=data)
    assert st.replicas.template.sd_head == "logsd"
    for _ in range(3):
        st.train_step()
    for s in SEEDS:
        _assert_replica_equals(st, s, _single(cfg, s, 3, data=data))
