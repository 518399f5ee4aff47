"""Per-datum training objectives of a Gaussian VAE (MATH.md Part I; API.md ``vsm.objectives``).

Every objective returns one value per datum, shape (B,), to be averaged by the caller. Data are
flat: x is (B, D); image models flatten their pixels (``x.flatten(1)``) and wrap ``encode`` /
``decode`` accordingly (see :func:`encoder_x_score` and :func:`decoder_vjp`). Samples lie along a
leading axis: z (N, B, L), decoder means x_mean (N, B, D); a (B, ·) tensor is one sample.

Learning objectives (θ = decoder and log σ²; z_n ~ q drawn by the caller, normally detached):

- :func:`elbo`  −ELBO = −mean_n log N(x; g(z_n), σ²I) + KL(q‖N(0,I))  (reparametrised z_n);
- :func:`m1`    mean_n ½‖f_n‖² − D/σ²                          (the paper's L_θ, code ``xf``);
- :func:`m2`    mean_n ‖f_n‖² − ½‖mean_n f_n‖² − D/σ²           (Swersky L_S, code ``mf``);
- :func:`m3`    ½‖mean_n f_n‖² + mean_n f_n·ψ_n − D/σ²          (Bao L_B, code ``bmf``);
- :func:`fae`   m1 + ½ mean_n ‖ψ_n‖² + ½ mean_n PFD(z_n)        (Fisher autoencoder, joint FD);

with f_n = (g(z_n) − x)/σ² and ψ_n = ∇_x log q(z_n|x). m1/m2/m3/fae use the fused
:func:`vsm.gaussian_terms`.

The authors' estimators (MATH.md §6, §9 "Code caveat", §10), as keyword options that are never the
default:

- ``m2(..., estimator="minibatch")`` and ``m3(..., estimator="minibatch")``: the 2-D code's
  (``models/bilevels.py``) mean over the *minibatch* in place of the mean over posterior samples
  in the ½‖mean f‖² term (one z per datum there);
- ``m3(..., cross="summed")``: the image code's (``models/VAEs.py``) cross term
  mean_n f_n·Σ_m ψ_m in place of mean_n f_n·ψ_n;
- ``encoder_x_score(..., derivative="total")``: ψ as the total derivative of log q(z|x) along a
  reparametrised z = μ(x) + s(x)·ε, the authors' ψ for the 2-D L_B and the FAE encoder step;
  ``fae_loss(..., psi_derivative="total")`` uses it.

Inference objective for the encoder φ: :func:`posterior_fd_loss`
(mean_n PFD, MATH.md Part I, no ½). Helpers: :func:`sample_posterior`, :func:`decoder_vjp`
(∇_z log p(x|z) by autograd), :func:`encoder_x_score` (ψ by autograd), :func:`fae_loss`.

Argument checks (every function): ``TypeError`` for a non-tensor, a dtype other than float32/64 or
dtypes that differ, a non-callable or badly typed option; ``ValueError`` for shapes, empty
batches, devices that differ and bad option values; the message starts with the argument's name
(``encode``/``decoder`` for what those callables return). Tensor data are not scanned for NaN/inf
(that would synchronise with the device on every call): a non-finite datum gives a non-finite
result for that datum only.

Layout: the option types and argument checks live in :mod:`vsm._objective_inputs`, the sampling
and autograd helpers (:func:`sample_posterior`, :func:`decoder_vjp`, :func:`encoder_x_score`) in
:mod:`vsm._network_terms`; all are public here.
"""

from __future__ import annotations

import math

import torch

from . import _validate as V
from ._network_terms import decoder_vjp, encoder_x_score, sample_posterior
from ._objective_inputs import (
    CROSS_TERMS,
    ESTIMATORS,
    PSI_DERIVATIVES,
    CrossTerm,
    Decoder,
    Encoder,
    Estimator,
    PsiDerivative,
    _bool,
    _data,
    _encoded,
    _latents,
    _posterior,
    _samples,
    _scalar,
)
from .ops.gaussian_terms import gaussian_terms  # the function, not the module
from .ops.posterior_fd import posterior_fd

__all__ = [
    "CROSS_TERMS",
    "ESTIMATORS",
    "PSI_DERIVATIVES",
    "decoder_vjp",
    "elbo",
    "encoder_x_score",
    "fae",
    "fae_loss",
    "m1",
    "m2",
    "m3",
    "posterior_fd_loss",
    "sample_posterior",
]

# ----------------------------------------------------------------------------- learning objectives


def elbo(
    x: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
) -> torch.Tensor:
    """Negative ELBO per datum, −mean_n log N(x; x_mean_n, σ²I) + KL(N(mu, e^logvar) ‖ N(0, I)).

    Args:
        x: data (B, D).
        x_mean: decoder means g(z_n) at reparametrised samples z_n = mu + e^{logvar/2}·ε_n,
            (N, B, D) or (B, D).
        log_sigma2: 0-dim log σ².
        mu, logvar: posterior mean and log-variance, (B, L).

    Returns:
        (B,) in nats: ½ mean_n ‖x − x_mean_n‖²/σ² + ½ D log(2πσ²) + ½ Σ_l (e^logvar + mu² − 1 −
        logvar). Plain torch ops (differentiable to any order).
    """
    x = _data(x)
    xm = _samples("x_mean", x_mean, x)
    log_sigma2 = _scalar("log_sigma2", log_sigma2, x)
    mu, logvar = _posterior(x, mu, logvar)
    d = x.shape[-1]
    sq = (xm - x).pow(2).sum(-1).mean(0)
    nll = 0.5 * sq * torch.exp(-log_sigma2) + 0.5 * d * (math.log(2 * math.pi) + log_sigma2)
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(-1)
    return nll + kl


def m1(x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """The paper's benchmark loss L_θ per datum: mean_n ½‖f_n‖² − D/σ², f_n = (x_mean_n − x)/σ².

    Args: x (B, D); x_mean (N, B, D) or (B, D) decoder means at z_n ~ q (not reparametrised);
    log_sigma2 0-dim. Returns (B,). In expectation E_q‖x − g(z)‖²/(2σ⁴) − D/σ².
    """
    t = gaussian_terms(_data(x), x_mean, log_sigma2)
    return 0.5 * t.sq_mean + t.trace


def _minibatch_mean_f(x: torch.Tensor, xm: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """f̄ = mean over every sample of every datum of f = (x_mean − x)/σ², shape (D,)."""
    return (xm - x).mean((0, 1)) * torch.exp(-log_sigma2)


def m2(
    x: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
    *,
    estimator: Estimator = "samples",
) -> torch.Tensor:
    """Swersky's L_S per datum (plug-in estimator): mean_n ‖f_n‖² − ½‖mean_n f_n‖² − D/σ².

    Args as :func:`m1`. Returns (B,). With N = 1 it equals :func:`m1`. Biased: its expectation
    over the samples is L_S − tr Cov_q[f]/(2N).

    ``estimator="minibatch"``: the authors' 2-D estimator (``models/bilevels.py::
    marginal_score``, MATH.md §9 "Code caveat"), which draws one z per datum so that its
    ``.mean(0)`` averages over the minibatch: datum b gets mean_n ‖f_nb‖² − ½‖f̄‖² − D/σ² with
    f̄ = mean_{n,b} f_nb over all N·B samples of the minibatch (N = 1 in the authors' code). Each
    value then depends on the whole minibatch; the batch mean is the authors' loss
    mean_b ‖f_b‖² − ½‖mean_b f_b‖² − D/σ². Not an estimator of L_S per datum (it penalises the
    spread of f over the data, not over q).
    """
    V.choice("estimator", estimator, ESTIMATORS)
    x = _data(x)
    t = gaussian_terms(x, x_mean, log_sigma2)
    if estimator == "samples":
        return t.sq_mean - 0.5 * t.mean_sq + t.trace
    xm = _samples("x_mean", x_mean, x)
    fbar = _minibatch_mean_f(x, xm, log_sigma2)
    return t.sq_mean - 0.5 * fbar.pow(2).sum() + t.trace


def m3(
    x: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
    psi: torch.Tensor,
    *,
    estimator: Estimator = "samples",
    cross: CrossTerm = "per-sample",
) -> torch.Tensor:
    """Bao's L_B per datum: ½‖mean_n f_n‖² + mean_n f_n·ψ_n − D/σ².

    Args as :func:`m1`, plus ``psi`` = ψ_n = ∇_x log q(z_n|x) at the same samples, shaped like
    x_mean (see :func:`encoder_x_score`). Returns (B,).

    The authors' estimators (MATH.md §6, §9, §10), never the default:

    - ``cross="summed"`` (the image code, ``models/VAEs.py::bad_marginal_score``, which
      differentiates Σ_m log q(z_m|x), so every f_n meets ψ' = Σ_m ψ_m): the cross term is
      mean_n f_n·Σ_m ψ_m = N f̄·ψ̄. Unbiased for the same L_B (E_q ψ = 0), another variance.
    - ``estimator="minibatch"`` (the 2-D code, ``models/bilevels.py::bad_marginal_score``, one z
      per datum): datum b gets ½‖f̄‖² + mean_n f_nb·ψ_nb − D/σ² with f̄ = mean_{n,b} f_nb over the
      minibatch (batch mean = the authors' ½‖mean_b f_b‖² + mean_b f_b·ψ_b − D/σ²). The authors
      pair it with the total-derivative ψ (:func:`encoder_x_score` ``derivative="total"``).
      Combined with ``cross="summed"`` the cross term is mean_n f_nb·Σ_m ψ_mb.
    """
    V.choice("estimator", estimator, ESTIMATORS)
    V.choice("cross", cross, CROSS_TERMS)
    x = _data(x)
    xm = _samples("x_mean", x_mean, x)
    ps = _samples("psi", psi, x)
    V.shape("psi", ps, xm.shape, "x_mean.shape")
    t = gaussian_terms(x, xm, log_sigma2)
    if cross == "summed":
        ps = ps.sum(0, keepdim=True)
    cross_term = ((xm - x) * ps).sum(-1).mean(0) * torch.exp(-log_sigma2)
    if estimator == "samples":
        return 0.5 * t.mean_sq + cross_term + t.trace
    fbar = _minibatch_mean_f(x, xm, log_sigma2)
    return 0.5 * fbar.pow(2).sum() + cross_term + t.trace


def fae(
    x: torch.Tensor,
    z: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    psi: torch.Tensor,
    grad_loglik_z: torch.Tensor,
) -> torch.Tensor:
    """Fisher-autoencoder joint FD per datum: m1 + ½ mean_n ‖ψ_n‖² + ½ mean_n PFD(z_n).

    = L_FAE + F(q ‖ p_θ(z|x)) of MATH.md Part III eq. (6)/(8) (½ convention), up to the
    data-dependent constant. All per-sample inputs must refer to the same samples z_n.

    Args:
        x: data (B, D).
        z: posterior samples (N, B, L) or (B, L): reparametrised for the encoder step, detached
            for the decoder step (as in the paper's code).
        x_mean: g(z_n), (N, B, D) or (B, D).
        log_sigma2: 0-dim log σ².
        mu, logvar: q's mean and log-variance, (B, L).
        psi: ψ_n = ∇_x log q(z_n|x) at fixed z_n (or the authors' total derivative along a
            reparametrised z_n), shaped like x_mean (:func:`encoder_x_score`).
        grad_loglik_z: ∇_z log p(x|z_n), shaped like z (:func:`decoder_vjp`).

    Returns:
        (B,). :func:`fae_loss` builds all inputs from an encoder and a decoder.

    Raises:
        TypeError: a non-tensor, a dtype other than float32/float64, or dtypes that differ.
        ValueError: ranks or shapes that do not match (including different sample counts N of
            z/grad_loglik_z and x_mean/psi), an empty batch or N = 0, devices that differ.
    """
    x = _data(x)
    xm = _samples("x_mean", x_mean, x)
    ps = _samples("psi", psi, x)
    V.shape("psi", ps, xm.shape, "x_mean.shape")
    log_sigma2 = _scalar("log_sigma2", log_sigma2, x)
    mu, logvar = _posterior(x, mu, logvar)
    z3 = _latents(z, mu)
    g3 = V.tensor("grad_loglik_z", grad_loglik_z, ndim=(2, 3))
    V.same_kind("z", z3, grad_loglik_z=g3)
    g3 = g3.unsqueeze(0) if g3.dim() == 2 else g3
    V.shape("grad_loglik_z", g3, z3.shape, "z.shape")
    if z3.shape[0] != xm.shape[0]:
        raise ValueError(f"z: {z3.shape[0]} samples but x_mean has {xm.shape[0]}")
    t = gaussian_terms(x, xm, log_sigma2)
    pfd = posterior_fd(z3, mu, logvar, g3).mean(0)
    return 0.5 * t.sq_mean + t.trace + 0.5 * ps.pow(2).sum(-1).mean(0) + 0.5 * pfd


# ----------------------------------------------------------------------------- model-level losses


def posterior_fd_loss(
    x: torch.Tensor,
    decoder: Decoder,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    log_sigma2: torch.Tensor,
    *,
    n_samples: int,
    reparam: bool,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Encoder FD loss per datum: mean_n PFD(z_n), z_n ~ q = N(mu, e^logvar) (MATH.md Part I).

    PFD(z) = ‖∇_z log q(z|x) + z − ∇_z log p(x|z)‖² (no ½; the posterior FD F(q‖p(z|x)) with the
    ½ convention is half of this). ∇_z log p(x|z) = J_gᵀ(x − g(z))/σ² is computed here by an
    autograd VJP through ``decoder`` (:func:`decoder_vjp`), kept differentiable when grad mode is on.

    Gradients:
        ``reparam=True``: z = mu + s·ε carries gradients to mu and logvar (directly and through the
        decoder VJP at z), and the VJP to the decoder parameters and log σ²: the unbiased gradient.
        ``reparam=False``: z is detached (the paper's biased "no repar" gradient): mu and logvar
        receive gradient only through ∇_z log q = −(z − mu)e^{−logvar}; the decoder parameters and
        log σ² still receive gradient through the VJP. In the paper the FD inference step updates
        φ only, so a trainer steps only the encoder optimiser with this loss (and zeroes the
        decoder's gradients before its own step).

    Args:
        x: data (B, D).
        decoder: z (..., L) → x_mean (..., *data_shape) (flattened to D).
        mu, logvar: q's mean and log-variance (B, L), from the encoder.
        log_sigma2: 0-dim log σ².
        n_samples: N, posterior samples per datum.
        reparam: gradient mode (above).
        eps: optional standard-normal draws (n_samples, B, L); otherwise drawn with ``generator``.

    Returns:
        (B,), in units of squared latent scores.

    Raises:
        TypeError: non-tensor or non-float inputs, dtypes that differ, ``decoder`` not callable or
            returning a non-tensor or another dtype, non-int ``n_samples``, non-bool ``reparam``,
            a ``generator`` that is not a ``torch.Generator``.
        ValueError: shapes (also of ``eps`` and of the decoder's output), an empty batch,
            ``n_samples < 1``, devices that differ (also the decoder output's).
    """
    x = _data(x)
    mu, logvar = _posterior(x, mu, logvar)
    log_sigma2 = _scalar("log_sigma2", log_sigma2, x)
    _bool("reparam", reparam)
    V.callable_("decoder", decoder)
    z = sample_posterior(mu, logvar, n_samples, reparam=reparam, eps=eps, generator=generator)
    _, gz = decoder_vjp(x, decoder, z, log_sigma2)
    return posterior_fd(z, mu, logvar, gz).mean(0)


def fae_loss(
    x: torch.Tensor,
    encode: Encoder,
    decoder: Decoder,
    log_sigma2: torch.Tensor,
    *,
    n_samples: int,
    reparam: bool,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    psi_derivative: PsiDerivative = "partial",
) -> torch.Tensor:
    """:func:`fae` per datum with every input built from the model: (mu, logvar) = encode(x),
    z_n ~ q (reparametrised iff ``reparam``), x_mean and ∇_z log p(x|z) by :func:`decoder_vjp`,
    ψ by :func:`encoder_x_score`. The paper's code reparametrises for the encoder step and not for
    the decoder step. ``encode``: x (M, D) → (mu, logvar) (M, L); ``decoder``: z (..., L) →
    (..., *data_shape). Returns (B,). Raises as :func:`posterior_fd_loss`; errors in what
    ``encode`` returns name ``encode``.

    ``psi_derivative``: "partial" (vsm; ψ at fixed z, as the FAE paper's eq. 8 reads) or "total"
    (the authors' image code ``VAEs.py::joint_score(reparam=True)``, its FAE encoder step: ψ is
    the total derivative along the reparametrised z, −½∇_x Σ_l logvar_l(x); see
    :func:`encoder_x_score`). The authors' decoder step (``reparam=False``) uses the partial ψ."""
    x = _data(x)
    log_sigma2 = _scalar("log_sigma2", log_sigma2, x)
    _bool("reparam", reparam)
    V.choice("psi_derivative", psi_derivative, PSI_DERIVATIVES)
    V.callable_("decoder", decoder)
    mu, logvar = _encoded(encode, x)
    z = sample_posterior(mu, logvar, n_samples, reparam=reparam, eps=eps, generator=generator)
    x_mean, gz = decoder_vjp(x, decoder, z, log_sigma2)
    psi = encoder_x_score(encode, x, z, derivative=psi_derivative)
    return fae(x, z, x_mean, log_sigma2, mu, logvar, psi, gz)
