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
  RNG has in a single run with that seed once the model is built. :class:`Replicas` draws in the
  single run's order (input noise, then posterior samples, for every objective evaluation), so
  replica r sees exactly the noise of the single run with seed r.
- :class:`Replicas` (a StackedVAE with its ReplicaNoise) is the replica layout of
  :class:`vsm.train.networks.Networks`: Algorithm 1's functions of :mod:`vsm.train.algorithm`,
  written once, take it in place of a model and return one loss per replica. The network work
  (encoder and decoder passes, the decoder VJP ∇_z log p(x|z), the encoder x-score ψ) is batched
  over replicas; the per-datum objective formulas of :mod:`vsm.objectives` (and the fused
  :func:`vsm.posterior_fd`) are then called once per replica on that replica's slices. Their sum
  over replicas has, for each replica's parameters, exactly that replica's gradient: nothing
  mixes replicas (no batch statistics, no shared reductions), so a replica whose loss is NaN
  leaves the others' gradients untouched.

Replicas agree with single runs up to floating-point rounding (a batched product sums in another
order than a single one), not bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from .._network_terms import vjp_core
from ..models import GaussianVAE
from .networks import Networks, Params

__all__ = ["ReplicaNoise", "Replicas", "StackedVAE", "slice_optimizer_state"]


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
        enc: ``named_parameters`` of the encoder, each stacked into an ``nn.Parameter`` of
            shape (S, *shape).
        dec: those of the decoder, likewise.
        noise: (S,) ``nn.Parameter``, the replicas' noise parameters (log σ², or log σ under
            the model's ``noise_param="log_sigma"``); :attr:`log_sigma2` is the replicas' log σ²
            (``noise`` itself, or 2·``noise``).
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


# ----------------------------------------------------------------------------- Algorithm 1


class Replicas(Networks):
    """S stacked replicas as :class:`~vsm.train.networks.Networks`: Algorithm 1's functions
    (:func:`vsm.train.inference_loss`, :func:`~vsm.train.learning_loss`,
    :func:`~vsm.train.bilevel_learning_loss`) on ``Replicas(model, noise)`` and minibatches
    x (S, B, ...) return one loss per replica, (S,).

    The networks run batched; each per-datum formula of :mod:`vsm.objectives` is then called once
    per replica on that replica's slices (views, no copies), because it takes one 0-dim log σ²
    and some estimators (a mean over the minibatch) are per replica.
    """

    def __init__(self, model: StackedVAE, noise: ReplicaNoise):
        self.model = model
        self.noise = noise

    @property
    def log_sigma2(self) -> torch.Tensor:
        return self.model.log_sigma2

    def encoder_params(self) -> Params:
        return dict(self.model.enc)

    def failure_counts(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.model.n_replicas, dtype=torch.float64, device=x.device)

    def noisy(self, x: torch.Tensor, eta: float) -> torch.Tensor:
        """x̃ (S, B, D), fresh noise per replica (none drawn when η = 0, as in a single run)."""
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if eta > 0:
            return x + eta * self.noise.randn(x.shape[1:], dtype=x.dtype, device=x.device)
        return x

    def encode(self, x: torch.Tensor, phi: Params | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, phi)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)

    def sample(
        self, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, *, reparam: bool
    ) -> torch.Tensor:
        """z (S, N, B, L), each replica's ε from its own generator."""
        eps = self.noise.randn((n_samples, *mu.shape[1:]), dtype=mu.dtype, device=mu.device)
        z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
        return z if reparam else z.detach()

    def decoder_vjp(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One VJP for all replicas: x (S, B, D), z (S, N, B, L)."""
        ls = self.model.log_sigma2.reshape(-1, 1, 1, 1)
        create_graph = torch.is_grad_enabled()
        return vjp_core(self.model.decode, x.unsqueeze(1), z, ls, create_graph=create_graph)

    def batch_mean(self, formula: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        slices = [t.unbind(0) for t in args]
        return torch.stack([formula(*a).mean() for a in zip(*slices, strict=True)])
