"""The paper's Algorithm 1 and its bi-level variant as plain functions (MATH.md §7).

Objectives are "<inference>-<learning>" (MATH.md Part I): kl-elbo (the VAE), kl-m1, fd-m1, kl-m2,
fd-m2, kl-m3, fd-m3 and fae. One *iteration* processes one minibatch x:

1. inference step (every iteration): one optimiser step on the encoder φ for
   :func:`inference_loss`:
   - ``kl``: −ELBO with reparametrised samples,
   - ``fd``: mean_n PFD(z_n) with z detached (``fd_reparam=False``, the paper's choice),
   - ``fae``: the joint FD with reparametrised samples;
2. learning step (every ``k_enc``-th iteration, same minibatch, fresh noise and samples): one
   optimiser step on θ = (decoder, log σ²) for :func:`learning_loss` (elbo, m1, m2, m3 or the
   joint FD), with z_n ~ q detached.

Input noise x̃ = x + η ε is redrawn for every objective evaluation. Each step differentiates its
loss with ``loss.backward(inputs=group)`` (:func:`group_backward`): only that group's ``.grad``
is filled, so an objective that depends on both groups never leaks into the other's update.

Bi-level variant (``k_bi > 0``, :func:`bilevel_learning_loss`): at each learning step the encoder
is unrolled for ``k_bi`` plain SGD steps (rate ``bi_lr``) on the inference loss,
φ_{k+1}(θ) = φ_k − bi_lr ∇_φ ℓ(φ_k, θ), written functionally with
:func:`torch.func.functional_call` and ``create_graph=True`` so that φ_K is a differentiable
function of θ; the learning loss is evaluated at φ_K(θ) with *reparametrised* samples (otherwise it
would not depend on φ_K) and its total θ-gradient, through the unrolled steps, updates θ. φ_K
(detached) becomes the encoder's new value (warm start). The unrolled steps run on whatever
backend the fused ops dispatch to: they are differentiable twice (``create_graph`` backward
formulas in torch), which the hypergradient needs.

:func:`iteration` is one whole iteration for a single process, built from these functions;
:class:`vsm.train.Trainer` runs the same steps with data parallelism, divergence checks,
checkpoints and logging around them (and a test checks that the two agree bit for bit).

Every function draws its noise and samples from torch's global RNG. ``x`` is a minibatch
(B, *data_shape) in the model's dtype and device.

``options`` (a :class:`vsm.train.VariantOptions`, default vsm's) selects the estimators of the
variant (``TrainConfig.variant``; :func:`vsm.train.variant_options`): L_S / L_B's minibatch or
per-datum mean, L_B's cross term and ψ, and the FAE encoder step's ψ. The model carries the
variant's parametrisation itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import nn
from torch.func import functional_call

from .. import objectives as O
from ..metrics import add_input_noise
from ..models import GaussianVAE
from .config import VariantOptions, split_objective

__all__ = [
    "Settings",
    "Unrolled",
    "bilevel_learning_loss",
    "group_backward",
    "inference_loss",
    "iteration",
    "learning_loss",
    "unroll",
]

Params = dict[str, torch.Tensor]
_VSM = VariantOptions()


class Settings(TypedDict):
    """The keyword arguments that every loss function here (and its replica twin in
    :mod:`vsm.train.replicas`) takes from the run's configuration."""

    objective: str
    n_samples: int
    eta: float
    options: VariantOptions | None


def _encoder(model: GaussianVAE, phi: Params | None) -> O.Encoder:
    """x (M, D) → (mu, logvar) through the encoder, with parameters ``phi`` if given."""

    def encode(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = v.reshape(-1, *model.data_shape)
        h = model.encoder(v) if phi is None else functional_call(model.encoder, phi, (v,))
        return model.split(h)

    return encode


def _decode(model: GaussianVAE, z: torch.Tensor) -> torch.Tensor:
    """z (..., L) → x_mean (..., D)."""
    return model.decode(z).reshape(*z.shape[:-1], -1)


def _noisy(x: torch.Tensor, eta: float) -> torch.Tensor:
    """x̃ = x + η ε flattened to (B, D), fresh noise on every call."""
    return add_input_noise(x.reshape(x.shape[0], -1), eta)


def inference_loss(
    model: GaussianVAE,
    x: torch.Tensor,
    *,
    objective: str,
    n_samples: int = 1,
    eta: float = 0.0,
    fd_reparam: bool = False,
    phi: Params | None = None,
    options: VariantOptions | None = None,
) -> torch.Tensor:
    """Batch mean of the encoder's objective for ``objective``, at encoder parameters ``phi``
    (a ``named_parameters`` dict of ``model.encoder``; default: its current parameters), with the
    estimators of ``options`` (default: vsm's)."""
    opt = options if options is not None else _VSM
    inference = split_objective(objective)[0]
    xt = _noisy(x, eta)
    encode = _encoder(model, phi)
    if inference == "kl":
        mu, logvar = encode(xt)
        z = O.sample_posterior(mu, logvar, n_samples, reparam=True)
        loss = O.elbo(xt, _decode(model, z), model.log_sigma2, mu, logvar)
    elif inference == "fd":
        mu, logvar = encode(xt)
        loss = O.posterior_fd_loss(
            xt, model.decode, mu, logvar, model.log_sigma2, n_samples=n_samples, reparam=fd_reparam
        )
    else:
        loss = O.fae_loss(
            xt,
            encode,
            model.decode,
            model.log_sigma2,
            n_samples=n_samples,
            reparam=True,
            psi_derivative=opt.fae_encoder_psi,
        )
    return loss.mean()


def learning_loss(
    model: GaussianVAE,
    x: torch.Tensor,
    *,
    objective: str,
    n_samples: int = 1,
    eta: float = 0.0,
    phi: Params | None = None,
    options: VariantOptions | None = None,
) -> torch.Tensor:
    """Batch mean of the decoder's objective for ``objective``, with the estimators of
    ``options`` (default: vsm's).

    With ``phi=None`` (Algorithm 1) samples z ~ q are detached; with ``phi`` (the bi-level
    unrolled encoder parameters φ_K(θ)) they are reparametrised through φ_K.
    """
    opt = options if options is not None else _VSM
    learning = split_objective(objective)[1]
    bilevel = phi is not None
    xt = _noisy(x, eta)
    encode = _encoder(model, phi)
    if learning == "fae":
        loss = O.fae_loss(
            xt, encode, model.decode, model.log_sigma2, n_samples=n_samples, reparam=bilevel
        )
        return loss.mean()
    with torch.set_grad_enabled(bilevel or learning == "elbo"):
        mu, logvar = encode(xt)
    if not bilevel:
        mu, logvar = mu.detach(), logvar.detach()
    z = O.sample_posterior(mu, logvar, n_samples, reparam=True)
    x_mean = _decode(model, z)
    if learning == "elbo":
        loss = O.elbo(xt, x_mean, model.log_sigma2, mu, logvar)
    elif learning == "m1":
        loss = O.m1(xt, x_mean, model.log_sigma2)
    elif learning == "m2":
        loss = O.m2(xt, x_mean, model.log_sigma2, estimator=opt.m2_estimator)
    else:
        psi = O.encoder_x_score(encode, xt, z, create_graph=bilevel, derivative=opt.m3_psi)
        loss = O.m3(
            xt, x_mean, model.log_sigma2, psi, estimator=opt.m3_estimator, cross=opt.m3_cross
        )
    return loss.mean()


@dataclass
class Unrolled:
    """Result of :func:`bilevel_learning_loss`.

    Attributes:
        loss: the learning loss at φ_K(θ), differentiable w.r.t. θ through the unrolled steps.
        phi: φ_K, the unrolled encoder parameters (still in the graph; detach to store them).
        n_bad: 0-dim float64 count of non-finite inner losses (0 when all were finite).
    """

    loss: torch.Tensor
    phi: Params
    n_bad: torch.Tensor


def bilevel_learning_loss(
    model: GaussianVAE,
    x: torch.Tensor,
    *,
    objective: str,
    k_bi: int,
    bi_lr: float,
    n_samples: int = 1,
    eta: float = 0.0,
    fd_reparam: bool = False,
    options: VariantOptions | None = None,
) -> Unrolled:
    """Unroll ``k_bi`` SGD encoder steps (rate ``bi_lr``) as functions of θ, starting from the
    encoder's current parameters; the learning loss at φ_K(θ) (module docstring).

    A non-finite inner loss is counted in ``n_bad`` rather than raised, so that a data-parallel
    caller can check all ranks together. The model's parameters are not changed.
    """
    kw = Settings(objective=objective, n_samples=n_samples, eta=eta, options=options)

    def inner(phi: Params) -> torch.Tensor:
        return inference_loss(model, x, fd_reparam=fd_reparam, phi=phi, **kw)

    phi, bad = unroll(
        dict(model.encoder.named_parameters()),
        inner,
        k_bi=k_bi,
        bi_lr=bi_lr,
        n_bad=x.new_zeros((), dtype=torch.float64),
    )
    return Unrolled(learning_loss(model, x, phi=phi, **kw), phi, bad)


def unroll(
    start: Params,
    inner_loss: Callable[[Params], torch.Tensor],
    *,
    k_bi: int,
    bi_lr: float,
    n_bad: torch.Tensor,
) -> tuple[Params, torch.Tensor]:
    """``k_bi`` plain SGD steps φ_{k+1} = φ_k − bi_lr ∇_φ Σ inner_loss(φ_k) from (a detached copy
    of) ``start``, kept in the graph (``create_graph=True``) so that φ_K is a function of
    whatever ``inner_loss`` depends on besides φ.

    ``inner_loss`` may return one loss or one per replica (its sum's gradient w.r.t. replica r's
    parameters is replica r's own gradient). Returns (φ_K, ``n_bad`` plus the count of
    non-finite inner losses, elementwise).
    """
    phi = {k: p.detach().clone().requires_grad_(True) for k, p in start.items()}
    for _ in range(k_bi):
        inner = inner_loss(phi)
        n_bad = n_bad + (~torch.isfinite(inner.detach())).to(n_bad.dtype)
        grads = torch.autograd.grad(inner.sum(), list(phi.values()), create_graph=True)
        phi = {k: p - bi_lr * g for (k, p), g in zip(phi.items(), grads, strict=True)}
    return phi, n_bad


def group_backward(loss: torch.Tensor, params: list[nn.Parameter]) -> None:
    """``loss.backward(inputs=params)``: fill only this group's gradients.

    A parameter the loss does not reach gets a zero gradient, so that Adam's moments advance for
    every parameter of the group (as they would in any run of the same model).
    """
    loss.backward(inputs=params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def _step(
    opt: torch.optim.Optimizer, params: list[nn.Parameter], loss_fn: Callable[[], torch.Tensor]
) -> float:
    opt.zero_grad(set_to_none=True)
    loss = loss_fn()
    group_backward(loss, params)
    opt.step()
    return float(loss.detach())


def iteration(
    model: GaussianVAE,
    x: torch.Tensor,
    enc_opt: torch.optim.Optimizer,
    dec_opt: torch.optim.Optimizer,
    *,
    objective: str,
    update_decoder: bool = True,
    n_samples: int = 1,
    eta: float = 0.0,
    fd_reparam: bool = False,
    k_bi: int = 0,
    bi_lr: float = 1e-3,
    options: VariantOptions | None = None,
) -> dict[str, float]:
    """One iteration of Algorithm 1 (or its bi-level variant) in one process, without checks.

    An encoder step on ``enc_opt`` (which must hold ``model.encoder_parameters()``) and, when
    ``update_decoder``, a decoder step on ``dec_opt`` (``model.decoder_parameters()``). Returns
    ``enc_loss`` and (if θ was updated) ``dec_loss``.
    """
    kw = Settings(objective=objective, n_samples=n_samples, eta=eta, options=options)
    out = {
        "enc_loss": _step(
            enc_opt,
            model.encoder_parameters(),
            lambda: inference_loss(model, x, fd_reparam=fd_reparam, **kw),
        )
    }
    if not update_decoder:
        return out

    def learning() -> torch.Tensor:
        if k_bi == 0:
            return learning_loss(model, x, **kw)
        res = bilevel_learning_loss(model, x, k_bi=k_bi, bi_lr=bi_lr, fd_reparam=fd_reparam, **kw)
        with torch.no_grad():  # warm start: the encoder continues from φ_K
            for k, p in model.encoder.named_parameters():
                p.copy_(res.phi[k].detach())
        return res.loss

    out["dec_loss"] = _step(dec_opt, model.decoder_parameters(), learning)
    return out
