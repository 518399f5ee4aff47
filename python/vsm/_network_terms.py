"""The model-side inputs of the objectives: posterior samples z ~ q, the decoder VJP
∇_z log p(x|z) and the encoder x-score ψ = ∇_x log q(z|x), each by autograd through the networks.

Public as :func:`vsm.objectives.sample_posterior`, :func:`vsm.objectives.decoder_vjp` and
:func:`vsm.objectives.encoder_x_score` (checked arguments). Their unchecked cores,
:func:`vjp_core` and :func:`x_score_core`, take tensors with leading axes before the batch and
also serve S stacked replicas (:mod:`vsm.train.replicas`): one formula for both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _validate as V
from ._objective_inputs import (
    PSI_DERIVATIVES,
    Decoder,
    Encoder,
    PsiDerivative,
    _bool,
    _data,
    _encoder_pair,
    _grad_mode_default,
)

__all__ = ["decoder_vjp", "encoder_x_score", "sample_posterior", "vjp_core", "x_score_core"]


def sample_posterior(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int,
    *,
    reparam: bool = True,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """z_n = mu + exp(logvar/2)·ε_n, shape (n_samples, B, L); detached when ``reparam=False``.

    ``eps`` (n_samples, B, L) supplies the standard-normal draws (otherwise drawn with
    ``generator``).
    """
    n_samples = V.positive_int("n_samples", n_samples)
    _bool("reparam", reparam)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator: expected a torch.Generator or None, got {type(generator).__name__}"
        )
    shape = (n_samples, *mu.shape)
    if eps is None:
        eps = torch.randn(shape, dtype=mu.dtype, device=mu.device, generator=generator)
    else:
        V.tensor("eps", eps)
        V.same_kind("mu", mu, eps=eps)
        V.shape("eps", eps, shape, "(n_samples, *mu.shape)")
    z = mu + torch.exp(0.5 * logvar) * eps
    return z if reparam else z.detach()


def vjp_core(
    decode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    z: torch.Tensor,
    log_sigma2: torch.Tensor,
    *,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_mean, ∇_z log p(x|z) = J_g(z)ᵀ (x − g(z))/σ²) by one VJP, without argument checks.

    ``decode`` maps z to flat decoder means x_mean; ``x`` and ``log_sigma2`` broadcast against
    x_mean (leading axes first: one model's x (B, D) against (N, B, D), replicas' x (S, 1, B, D)
    and log σ² (S, 1, 1, 1) against (S, N, B, D)). :func:`decoder_vjp` describes z's handling,
    ``create_graph`` and the result.
    """
    with torch.enable_grad():
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        x_mean = decode(zz)
        resid = (x - x_mean) * torch.exp(-log_sigma2)
        gz = None
        if x_mean.requires_grad:
            (gz,) = torch.autograd.grad(
                x_mean, zz, grad_outputs=resid, create_graph=create_graph, allow_unused=True
            )
        if gz is None:  # a decoder that does not depend on z: ∇_z log p(x|z) = 0
            gz = torch.zeros_like(zz)
    if not create_graph and not torch.is_grad_enabled():
        x_mean = x_mean.detach()
    return x_mean, gz


def decoder_vjp(
    x: torch.Tensor,
    decoder: Decoder,
    z: torch.Tensor,
    log_sigma2: torch.Tensor,
    *,
    create_graph: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder means and ∇_z log p(x|z) = J_g(z)ᵀ (x − g(z))/σ² by one autograd VJP.

    Args:
        x: data (B, D).
        decoder: z (..., L) → x_mean (..., *data_shape); flattened to (..., D) here.
        z: latents (N, B, L) or (B, L). A z that does not require grad is differentiated through a
            fresh leaf copy (so nothing flows back into z's history); a z that requires grad (a
            reparametrised sample) is used as is.
        log_sigma2: 0-dim log σ².
        create_graph: keep the VJP differentiable (w.r.t. decoder parameters, log σ² and, for a
            z that requires grad, z). Default: ``torch.is_grad_enabled()``.

    Returns:
        (x_mean shaped (*z.shape[:-1], D), grad_loglik_z shaped like z). Works under
        ``torch.no_grad()`` too (then nothing is differentiable). A decoder that does not
        depend on z gives grad_loglik_z = 0.
    """
    V.callable_("decoder", decoder)

    def decode(zz: torch.Tensor) -> torch.Tensor:
        x_mean = decoder(zz)
        if not isinstance(x_mean, torch.Tensor):
            raise TypeError(
                f"decoder: expected it to return a torch.Tensor, got {type(x_mean).__name__}"
            )
        if x_mean.dtype != x.dtype:
            raise TypeError(f"decoder: returned dtype {x_mean.dtype}, expected x's dtype {x.dtype}")
        if x_mean.device != x.device:
            raise ValueError(
                f"decoder: returned device {x_mean.device}, expected x's device {x.device}"
            )
        x_mean = x_mean.reshape(*zz.shape[:-1], -1)
        if x_mean.shape[-2:] != x.shape:
            raise ValueError(
                f"decoder: output of shape {tuple(x_mean.shape)} (flattened) does not match "
                f"x's {tuple(x.shape)}"
            )
        return x_mean

    return vjp_core(decode, x, z, log_sigma2, create_graph=_grad_mode_default(create_graph))


def x_score_core(
    encode: Encoder,
    x: torch.Tensor,
    z: torch.Tensor,
    *,
    create_graph: bool,
    derivative: PsiDerivative,
) -> torch.Tensor:
    """ψ (*lead, N, B, D) for x (*lead, B, D) and z (*lead, N, B, L), without argument checks.

    ``encode`` maps (*lead, M, D) to (mu, logvar), each (*lead, M, L); ``lead`` is () for one
    model and (S,) for stacked replicas. :func:`encoder_x_score` describes ``derivative`` and
    ``create_graph``. What ``encode`` returns is checked (errors name ``encode``).
    """
    *lead, n, b, latent = z.shape
    k = len(lead)
    if derivative == "total":
        with torch.enable_grad():
            xr = x.detach().clone().requires_grad_(True)
            mu, logvar = _encoder_pair(encode(xr))
            _check_encoded(mu, logvar, (*lead, b, latent))
            (psi,) = torch.autograd.grad(-0.5 * logvar.sum(), xr, create_graph=create_graph)
        return psi.unsqueeze(k).expand(*lead, n, b, psi.shape[-1])
    with torch.enable_grad():
        xr = x.detach().unsqueeze(k).expand(*lead, n, b, x.shape[-1])
        xr = xr.reshape(*lead, n * b, -1).clone().requires_grad_(True)
        mu, logvar = _encoder_pair(encode(xr))
        zz = z.reshape(*lead, n * b, latent)
        _check_encoded(mu, logvar, tuple(zz.shape))
        logq = -0.5 * ((zz - mu).pow(2) * torch.exp(-logvar) + logvar).sum()
        (psi,) = torch.autograd.grad(logq, xr, create_graph=create_graph)
    return psi.reshape(*lead, n, b, -1)


def _check_encoded(mu: torch.Tensor, logvar: torch.Tensor, expected: tuple[int, ...]) -> None:
    if mu.shape != expected or logvar.shape != expected:
        raise ValueError(
            f"encode: returned mu {tuple(mu.shape)} / logvar {tuple(logvar.shape)}, "
            f"expected {expected}"
        )


def encoder_x_score(
    encode: Encoder,
    x: torch.Tensor,
    z: torch.Tensor,
    *,
    create_graph: bool | None = None,
    derivative: PsiDerivative = "partial",
) -> torch.Tensor:
    """ψ_n = ∇_x log q(z_n|x) at fixed z_n, by autograd through the encoder, shape (N, B, D).

    log q(z|x) = −½ Σ_l [(z_l − μ_l(x))² e^{−logvar_l(x)} + logvar_l(x) + log 2π].

    ``derivative="total"``: the authors' ψ (``bilevels.py::bad_marginal_score``; ``VAEs.py::
    joint_score`` in the encoder step, MATH.md §9, §10), the total derivative along the
    reparametrised sample z_n(x) = μ(x) + s(x)·ε_n with ε_n fixed:
    d/dx log q(z_n(x)|x) = d/dx [−½‖ε_n‖² − ½ Σ_l logvar_l(x) − (L/2) log 2π]
    = −½ ∇_x Σ_l logvar_l(x), the same for every sample (z only gives N). Computed so, by one
    autograd gradient on B rows; differentiable w.r.t. the encoder parameters under
    ``create_graph``.

    Args:
        encode: x (M, D) → (mu, logvar), each (M, L). It is called once on the N copies of x
            stacked into (N·B, D); image models wrap it, e.g.
            ``lambda v: model.encode(v.view(-1, *model.data_shape))``.
        x: data (B, D). Differentiated through a fresh leaf copy: no gradient flows to x.
        z: samples (N, B, L) or (B, L), held fixed w.r.t. x (ψ is a partial derivative).
            If z carries a graph (reparametrised), ψ stays differentiable through it.
        create_graph: keep ψ differentiable w.r.t. the encoder parameters (and z), as a loss
            needs. Default: ``torch.is_grad_enabled()``.

    Returns:
        ψ of shape (N, B, D) ((B, D) when z was (B, L)).
    """
    x = _data(x)
    V.callable_("encode", encode)
    V.choice("derivative", derivative, PSI_DERIVATIVES)
    z = V.tensor("z", z, ndim=(2, 3))
    V.same_kind("x", x, z=z)
    squeeze = z.dim() == 2
    z3 = z.unsqueeze(0) if squeeze else z
    if z3.shape[1] != x.shape[0]:
        raise ValueError(f"z: expected batch size {x.shape[0]} (x's), got shape {tuple(z.shape)}")
    psi = x_score_core(
        encode, x, z3, create_graph=_grad_mode_default(create_graph), derivative=derivative
    )
    return psi.squeeze(0) if squeeze else psi
