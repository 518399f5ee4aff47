"""S replicas of one Gaussian VAE as one batched computation, and Algorithm 1 on them.

This is the computational half of ``TrainConfig.seeds`` (:class:`vsm.train.SeedsTrainer` is the
loop). Every per-replica tensor carries the replica axis first: stacked parameters (S, *shape),
minibatches (S, B, *data_shape), posterior samples (S, N, B, L), decoder means (S, N, B, D), losses
(S,).

- :class:`StackedVAE` holds the S replicas' parameters stacked along a new leading axis, one
  ``nn.Parameter`` per parameter of the model. Its networks run all replicas at once: an MLP
  (``nn.Sequential`` of ``nn.Linear``, ``nn.Flatten`` and elementwise activations, e.g.
  :class:`vsm.models.MLPVAE`) through batched matrix products (``torch.baddbmm``), any other
  architecture (e.g. :class:`vsm.models.ConvVAE`) through :func:`torch.func.vmap` over
  :func:`torch.func.functional_call`. Both are ordinary autograd graphs, differentiable to any
  order (the decoder VJP, ψ and the bi-level hypergradient need second and third derivatives).
- :class:`ReplicaNoise` gives each replica its own ``torch.Generator``, in the state the global
  RNG has in a single run with that seed once the model is built. The functions below draw in the
  single run's order (input noise, then posterior samples, for every objective evaluation), so
  replica r sees exactly the noise of the single run with seed r.
- :func:`inference_losses`, :func:`learning_losses` and :func:`bilevel_learning_losses` mirror
  :func:`vsm.train.algorithm.inference_loss`, :func:`~vsm.train.algorithm.learning_loss` and
  :func:`~vsm.train.algorithm.bilevel_learning_loss` and return one loss per replica. The network
  work (encoder and decoder passes, the decoder VJP ∇_z log p(x|z), the encoder x-score ψ) is
  batched over replicas; the per-datum objective formulas of :mod:`vsm.objectives` (and the fused
  :func:`vsm.posterior_fd`) are then called once per replica on that replica's slices (views, no
  copies), because they take one scalar log σ² and some estimators (e.g. a mean over the
  minibatch) are per replica. Their sum over replicas has, for each replica's parameters, exactly
  that replica's gradient: nothing mixes replicas (no batch statistics, no shared reductions), so
  a replica whose loss is NaN leaves the others' gradients untouched.

Replicas agree with single runs up to floating-point rounding (a batched product sums in another
order than a single one), not bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from .. import objectives as O
from ..models import GaussianVAE
from ..ops import posterior_fd
from .algorithm import Settings, unroll
from .config import VariantOptions, split_objective

__all__ = [
    "ReplicaNoise",
    "StackedUnrolled",
    "StackedVAE",
    "bilevel_learning_losses",
    "inference_losses",
    "learning_losses",
]

Params = dict[str, torch.Tensor]
_VSM = VariantOptions()

# Modules applied elementwise: on (S, M, F) exactly as on (M, F), replica by replica.
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
    nn.Softplus,
    nn.ELU,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
)


def _plan(module: nn.Module, prefix: str = "") -> list[tuple[Any, ...]] | None:
    """The steps of ``module`` as a stacked MLP, or None if it is not one (then vmap is used)."""
    if isinstance(module, nn.Sequential):
        steps: list[tuple[Any, ...]] = []
        for name, child in module.named_children():
            sub = _plan(child, f"{prefix}{name}.")
            if sub is None:
                return None
            steps += sub
        return steps
    if type(module) is nn.Linear:
        return [("linear", prefix + "weight", None if module.bias is None else prefix + "bias")]
    if type(module) is nn.Flatten and module.start_dim >= 1:
        end = module.end_dim + 1 if module.end_dim >= 0 else module.end_dim
        return [("flatten", module.start_dim + 1, end)]
    if type(module) in _ELEMENTWISE:
        return [("apply", module)]
    return None


def _run_plan(
    plan: list[tuple[Any, ...]], params: Mapping[str, torch.Tensor], h: torch.Tensor
) -> torch.Tensor:
    """Apply a :func:`_plan` to a stacked input h (S, M, ...) with stacked parameters."""
    for step in plan:
        if step[0] == "linear":
            w, b = params[step[1]], (params[step[2]] if step[2] is not None else None)
            lead = h.shape[:-1]
            h3 = h.reshape(h.shape[0], -1, h.shape[-1])
            wt = w.transpose(1, 2)
            h3 = torch.bmm(h3, wt) if b is None else torch.baddbmm(b.unsqueeze(1), h3, wt)
            h = h3.reshape(*lead, w.shape[1])
        elif step[0] == "flatten":
            h = h.flatten(step[1], step[2])
        else:
            h = step[1](h)
    return h


class StackedVAE:
    """S replicas of a :class:`~vsm.models.GaussianVAE` with stacked parameters.

    Args:
        models: the replicas (same architecture, dtype and device); their parameters are copied.

    Attributes:
        template: a copy of ``models[0]`` giving the architecture (``split``, ``data_shape``,
            ``latent_dim``, ``spec``); its own parameters are not trained.
        enc, dec: ``named_parameters`` of the encoder / decoder, each stacked into an
            ``nn.Parameter`` of shape (S, *shape).
        noise: (S,) ``nn.Parameter``, the replicas' noise parameters (log σ², or log σ under
            the model's ``noise_param="log_sigma"``).
        log_sigma2: (S,) the replicas' log σ² (``noise`` itself, or 2·``noise``).
    """

    def __init__(self, models: Sequence[GaussianVAE]):
        if not models:
            raise ValueError("models: expected at least one replica")
        specs = {repr(m.spec()) for m in models}
        if len(specs) != 1:
            raise ValueError(f"models: replicas must share one architecture, got {sorted(specs)}")
        self.template: GaussianVAE = copy.deepcopy(models[0])
        for p in self.template.parameters():
            p.requires_grad_(False)

        def stack(tensors: list[torch.Tensor]) -> nn.Parameter:
            return nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())

        self.enc: dict[str, nn.Parameter] = {
            k: stack([dict(m.encoder.named_parameters())[k] for m in models])
            for k, _ in models[0].encoder.named_parameters()
        }
        self.dec: dict[str, nn.Parameter] = {
            k: stack([dict(m.decoder.named_parameters())[k] for m in models])
            for k, _ in models[0].decoder.named_parameters()
        }
        self.noise_param: str = models[0].noise_param
        self.noise = stack([m.noise_parameter for m in models])
        self._enc_plan = _plan(self.template.encoder)
        self._dec_plan = _plan(self.template.decoder)

    # ------------------------------------------------------------------ structure

    @property
    def n_replicas(self) -> int:
        """S, the number of replicas held."""
        return self.noise.shape[0]

    @property
    def log_sigma2(self) -> torch.Tensor:
        """(S,) log σ² of the replicas (the noise parameter, or twice log σ)."""
        return self.noise if self.noise_param == "log_sigma2" else 2.0 * self.noise

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one datum."""
        return self.template.data_shape

    def encoder_parameters(self) -> list[nn.Parameter]:
        """φ of all replicas: the stacked encoder parameters (the single model's order)."""
        return list(self.enc.values())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """θ of all replicas: the stacked decoder parameters followed by the noise parameter."""
        return [*self.dec.values(), self.noise]

    def parameters(self) -> list[nn.Parameter]:
        """Every stacked parameter (encoder, decoder, log σ²)."""
        return self.encoder_parameters() + self.decoder_parameters()

    # ------------------------------------------------------------------ networks

    def _forward(
        self,
        module: nn.Module,
        plan: list[tuple[Any, ...]] | None,
        params: Mapping[str, torch.Tensor],
        h: torch.Tensor,
    ) -> torch.Tensor:
        if plan is not None:
            return _run_plan(plan, params, h)
        return vmap(lambda p, v: functional_call(module, p, (v,)))(params, h)

    def encode(
        self, x: torch.Tensor, phi: Params | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (S, M, ...) (flat or ``data_shape``) → (mu, logvar), each (S, M, L), with the
        stacked encoder parameters ``phi`` (default: :attr:`enc`)."""
        v = x.reshape(x.shape[0], -1, *self.data_shape)
        h = self._forward(
            self.template.encoder, self._enc_plan, self.enc if phi is None else phi, v
        )
        return self.template.split(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (S, ..., L) → decoder means (S, ..., D), flattened."""
        lead = z.shape[:-1]
        out = self._forward(
            self.template.decoder, self._dec_plan, self.dec, z.reshape(z.shape[0], -1, z.shape[-1])
        )
        return out.reshape(*lead, -1)

    # ------------------------------------------------------------------ replicas

    def state_dict_of(self, r: int) -> dict[str, torch.Tensor]:
        """Replica r's parameters as the single model's ``state_dict`` (detached copies)."""
        out = {f"encoder.{k}": p.detach()[r].clone() for k, p in self.enc.items()}
        out.update({f"decoder.{k}": p.detach()[r].clone() for k, p in self.dec.items()})
        out[self.noise_param] = self.noise.detach()[r].clone()
        return out

    def load_replica(self, r: int, state: dict[str, torch.Tensor]) -> None:
        """Set replica r's parameters from a single model's ``state_dict``."""
        with torch.no_grad():
            for k, p in self.enc.items():
                p[r].copy_(state[f"encoder.{k}"])
            for k, p in self.dec.items():
                p[r].copy_(state[f"decoder.{k}"])
            self.noise[r].copy_(state[self.noise_param])

    def replica(self, r: int) -> GaussianVAE:
        """Replica r as a stand-alone model (a copy: training the stack does not change it)."""
        model = copy.deepcopy(self.template)
        model.load_state_dict(self.state_dict_of(r))
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the replicas ``index`` (a 1-D index tensor), in that order: every stacked
        parameter (and its ``.grad``) is sliced in place, so optimisers keep their parameters
        (slice their state with :func:`slice_optimizer_state`)."""
        for p in self.parameters():
            idx = index.to(p.device)
            p.data = p.data[idx]
            if p.grad is not None:
                p.grad = p.grad[idx]


def slice_optimizer_state(
    opt: torch.optim.Optimizer, old_shapes: dict[int, torch.Size], index: torch.Tensor
) -> None:
    """Slice an optimiser's per-parameter state after :meth:`StackedVAE.keep`.

    ``old_shapes`` maps ``id(param)`` to the parameter's shape before slicing. State tensors of
    that shape (Adam's moments, SGD's momentum) are sliced along the replica axis; 0-dim ones
    (Adam's ``step``, shared by replicas that always step together) are kept.

    Raises:
        NotImplementedError: any other state (an optimiser that is not elementwise).
    """
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            for key, value in list(state.items()):
                if not isinstance(value, torch.Tensor) or value.dim() == 0:
                    continue
                if value.shape != old_shapes[id(p)]:
                    raise NotImplementedError(
                        f"opt: state {key!r} of shape {tuple(value.shape)} is not elementwise; "
                        f"replicas need elementwise optimisers (Adam, SGD)"
                    )
                state[key] = value[index.to(value.device)]


class ReplicaNoise:
    """One ``torch.Generator`` per replica; :meth:`randn` stacks one draw from each.

    Args:
        generators: the replicas' generators, in replica order (on the device the noise is for).
    """

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    def randn(
        self, shape: Sequence[int], *, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """(S, *shape) standard-normal draws, row r from replica r's generator (the draw
        ``torch.randn(shape)`` makes in the single run)."""
        return torch.stack(
            [
                torch.randn(tuple(shape), generator=g, dtype=dtype, device=device)
                for g in self.generators
            ]
        )

    def keep(self, index: Sequence[int]) -> None:
        """Keep only the generators of the replicas ``index``, in that order."""
        self.generators = [self.generators[i] for i in index]


# ----------------------------------------------------------------------------- helpers


def _per_replica(fn: Callable[..., torch.Tensor], *stacked: torch.Tensor) -> torch.Tensor:
    """(S,) batch means of ``fn`` applied to each replica's slices of the ``stacked`` tensors."""
    slices = [t.unbind(0) for t in stacked]
    return torch.stack([fn(*args).mean() for args in zip(*slices, strict=True)])


def _noisy(x: torch.Tensor, eta: float, noise: ReplicaNoise) -> torch.Tensor:
    """x̃ = x + η ε flattened to (S, B, D), fresh noise per replica (none drawn when η = 0)."""
    x = x.reshape(x.shape[0], x.shape[1], -1)
    if eta > 0:
        return x + eta * noise.randn(x.shape[1:], dtype=x.dtype, device=x.device)
    return x


def _sample(
    mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, noise: ReplicaNoise, *, reparam: bool
) -> torch.Tensor:
    """z (S, N, B, L) = mu + e^{logvar/2} ε per replica (:func:`vsm.objectives.sample_posterior`)."""
    eps = noise.randn((n_samples, *mu.shape[1:]), dtype=mu.dtype, device=mu.device)
    z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
    return z if reparam else z.detach()


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-replica (S,) tensor shaped to broadcast against ``like`` (S, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def decoder_vjp(
    model: StackedVAE, x: torch.Tensor, z: torch.Tensor, *, create_graph: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched :func:`vsm.objectives.decoder_vjp`: x (S, B, D), z (S, N, B, L) →
    (x_mean (S, N, B, D), ∇_z log p(x|z) (S, N, B, L)), one VJP for all replicas."""
    create_graph = torch.is_grad_enabled() if create_graph is None else create_graph
    with torch.enable_grad():
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        x_mean = model.decode(zz)
        resid = (x.unsqueeze(1) - x_mean) * _bcast(torch.exp(-model.log_sigma2), x_mean)
        gz = None
        if x_mean.requires_grad:
            (gz,) = torch.autograd.grad(
                x_mean, zz, grad_outputs=resid, create_graph=create_graph, allow_unused=True
            )
        if gz is None:
            gz = torch.zeros_like(zz)
    if not create_graph and not torch.is_grad_enabled():
        x_mean = x_mean.detach()
    return x_mean, gz


def encoder_x_score(
    model: StackedVAE,
    x: torch.Tensor,
    z: torch.Tensor,
    *,
    phi: Params | None = None,
    create_graph: bool | None = None,
    derivative: str = "partial",
) -> torch.Tensor:
    """Batched :func:`vsm.objectives.encoder_x_score`: ψ (S, N, B, D) = ∇_x log q(z_n|x) at
    fixed z (S, N, B, L), through the encoder with stacked parameters ``phi``; with
    ``derivative="total"`` the authors' −½∇_x Σ_l logvar_l(x) for every sample."""
    create_graph = torch.is_grad_enabled() if create_graph is None else create_graph
    s, n, b, latent = z.shape
    if derivative == "total":
        with torch.enable_grad():
            xr = x.detach().clone().requires_grad_(True)
            _, logvar = model.encode(xr, phi)
            (psi,) = torch.autograd.grad(-0.5 * logvar.sum(), xr, create_graph=create_graph)
        return psi.unsqueeze(1).expand(s, n, b, psi.shape[-1])
    with torch.enable_grad():
        xr = x.detach().unsqueeze(1).expand(s, n, b, x.shape[-1]).reshape(s, n * b, -1).clone()
        xr.requires_grad_(True)
        mu, logvar = model.encode(xr, phi)
        zz = z.reshape(s, n * b, latent)
        logq = -0.5 * ((zz - mu).pow(2) * torch.exp(-logvar) + logvar).sum()
        (psi,) = torch.autograd.grad(logq, xr, create_graph=create_graph)
    return psi.reshape(s, n, b, -1)


def _fae_losses(
    model: StackedVAE,
    xt: torch.Tensor,
    noise: ReplicaNoise,
    *,
    n_samples: int,
    reparam: bool,
    phi: Params | None,
    psi_derivative: str = "partial",
) -> torch.Tensor:
    """(S,) batch means of :func:`vsm.objectives.fae_loss` (same steps, networks batched)."""
    mu, logvar = model.encode(xt, phi)
    z = _sample(mu, logvar, n_samples, noise, reparam=reparam)
    x_mean, gz = decoder_vjp(model, xt, z)
    psi = encoder_x_score(model, xt, z, phi=phi, derivative=psi_derivative)
    return _per_replica(O.fae, xt, z, x_mean, model.log_sigma2, mu, logvar, psi, gz)


# ----------------------------------------------------------------------------- Algorithm 1


def inference_losses(
    model: StackedVAE,
    x: torch.Tensor,
    noise: ReplicaNoise,
    *,
    objective: str,
    n_samples: int = 1,
    eta: float = 0.0,
    fd_reparam: bool = False,
    phi: Params | None = None,
    options: VariantOptions | None = None,
) -> torch.Tensor:
    """(S,): :func:`vsm.train.algorithm.inference_loss` of every replica on its minibatch x[r]
    (x (S, B, ...)), at stacked encoder parameters ``phi`` (default: the current ones), with the
    estimators of ``options`` (default: vsm's)."""
    opt = options if options is not None else _VSM
    inference = split_objective(objective)[0]
    xt = _noisy(x, eta, noise)
    if inference == "fae":
        return _fae_losses(
            model,
            xt,
            noise,
            n_samples=n_samples,
            reparam=True,
            phi=phi,
            psi_derivative=opt.fae_encoder_psi,
        )
    mu, logvar = model.encode(xt, phi)
    if inference == "kl":
        z = _sample(mu, logvar, n_samples, noise, reparam=True)
        return _per_replica(O.elbo, xt, model.decode(z), model.log_sigma2, mu, logvar)
    z = _sample(mu, logvar, n_samples, noise, reparam=fd_reparam)
    _, gz = decoder_vjp(model, xt, z)
    return _per_replica(lambda *a: posterior_fd(*a).mean(0), z, mu, logvar, gz)


def learning_losses(
    model: StackedVAE,
    x: torch.Tensor,
    noise: ReplicaNoise,
    *,
    objective: str,
    n_samples: int = 1,
    eta: float = 0.0,
    phi: Params | None = None,
    options: VariantOptions | None = None,
) -> torch.Tensor:
    """(S,): :func:`vsm.train.algorithm.learning_loss` of every replica (detached samples, or
    with ``phi`` = the stacked unrolled φ_K(θ) reparametrised through it), with the estimators
    of ``options`` (default: vsm's; a minibatch mean is taken over each replica's own
    minibatch)."""
    opt = options if options is not None else _VSM
    learning = split_objective(objective)[1]
    bilevel = phi is not None
    xt = _noisy(x, eta, noise)
    if learning == "fae":
        return _fae_losses(model, xt, noise, n_samples=n_samples, reparam=bilevel, phi=phi)
    with torch.set_grad_enabled(bilevel or learning == "elbo"):
        mu, logvar = model.encode(xt, phi)
    if not bilevel:
        mu, logvar = mu.detach(), logvar.detach()
    z = _sample(mu, logvar, n_samples, noise, reparam=True)
    x_mean = model.decode(z)
    ls = model.log_sigma2
    if learning == "elbo":
        return _per_replica(O.elbo, xt, x_mean, ls, mu, logvar)
    if learning == "m1":
        return _per_replica(O.m1, xt, x_mean, ls)
    if learning == "m2":
        return _per_replica(lambda *a: O.m2(*a, estimator=opt.m2_estimator), xt, x_mean, ls)
    psi = encoder_x_score(model, xt, z, phi=phi, create_graph=bilevel, derivative=opt.m3_psi)
    return _per_replica(
        lambda *a: O.m3(*a, estimator=opt.m3_estimator, cross=opt.m3_cross), xt, x_mean, ls, psi
    )


@dataclass
class StackedUnrolled:
    """Result of :func:`bilevel_learning_losses` (:class:`vsm.train.algorithm.Unrolled` per
    replica).

    Attributes:
        losses: (S,) learning losses at φ_K(θ), differentiable w.r.t. θ through the unrolled steps.
        phi: stacked φ_K (still in the graph).
        n_bad: (S,) float64 counts of non-finite inner losses.
    """

    losses: torch.Tensor
    phi: Params
    n_bad: torch.Tensor


def bilevel_learning_losses(
    model: StackedVAE,
    x: torch.Tensor,
    noise: ReplicaNoise,
    *,
    objective: str,
    k_bi: int,
    bi_lr: float,
    n_samples: int = 1,
    eta: float = 0.0,
    fd_reparam: bool = False,
    options: VariantOptions | None = None,
) -> StackedUnrolled:
    """:func:`vsm.train.algorithm.bilevel_learning_loss` for every replica: ``k_bi`` unrolled
    SGD encoder steps (rate ``bi_lr``) per replica, then the learning losses at φ_K(θ). The
    stacked parameters are not changed."""
    kw = Settings(objective=objective, n_samples=n_samples, eta=eta, options=options)

    def inner(phi: Params) -> torch.Tensor:
        return inference_losses(model, x, noise, fd_reparam=fd_reparam, phi=phi, **kw)

    # the sum's gradient w.r.t. replica r's φ is replica r's own gradient
    phi, bad = unroll(
        dict(model.enc),
        inner,
        k_bi=k_bi,
        bi_lr=bi_lr,
        n_bad=torch.zeros(model.n_replicas, dtype=torch.float64, device=x.device),
    )
    return StackedUnrolled(learning_losses(model, x, noise, phi=phi, **kw), phi, bad)
