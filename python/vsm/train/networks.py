"""What Algorithm 1's losses need from a model, for one model or for S stacked replicas.

:mod:`vsm.train.algorithm` writes the inference, learning and bi-level losses once, against the
small interface :class:`Networks`: input noise, encoder and decoder passes, posterior samples, the
decoder VJP ∇_z log p(x|z), the encoder x-score ψ, and the batch mean of a per-datum objective
formula of :mod:`vsm.objectives`. Two layouts implement it:

- :class:`OneModel`: one :class:`~vsm.models.GaussianVAE`, noise from torch's global RNG; a loss is
  a 0-dim batch mean;
- :class:`vsm.train.replicas.Replicas`: S replicas with stacked parameters, each with its own
  noise generator; tensors carry the replica axis first and a loss is (S,), one batch mean per
  replica.

Both draw in the same order (input noise, then posterior samples), which is what makes replica s
equal the single run with seed s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch.func import functional_call

from .. import objectives as O
from .._network_terms import x_score_core
from ..metrics import add_input_noise
from ..models import GaussianVAE

__all__ = ["Networks", "OneModel", "Params", "networks"]

Params = dict[str, torch.Tensor]


class Networks(ABC):
    """The operations of Algorithm 1 on one layout of models (module docstring).

    ``phi`` arguments are encoder parameters by name (:meth:`encoder_params`' keys; stacked for
    replicas) to use instead of the current ones: the bi-level unrolled φ_K(θ).
    """

    @property
    @abstractmethod
    def log_sigma2(self) -> torch.Tensor:
        """log σ², 0-dim (or (S,))."""

    @abstractmethod
    def encoder_params(self) -> Params:
        """The encoder's parameters by name, the start of the bi-level unrolled steps."""

    @abstractmethod
    def failure_counts(self, x: torch.Tensor) -> torch.Tensor:
        """A float64 zero per loss (0-dim, or (S,)) on x's device: the bi-level ``n_bad``."""

    @abstractmethod
    def noisy(self, x: torch.Tensor, eta: float) -> torch.Tensor:
        """x̃ = x + η ε flattened to (B, D) (or (S, B, D)), fresh noise on every call."""

    @abstractmethod
    def encode(self, x: torch.Tensor, phi: Params | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x̃) for flat data, at encoder parameters ``phi`` if given."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., L) → flat decoder means (..., D)."""

    @abstractmethod
    def sample(
        self, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, *, reparam: bool
    ) -> torch.Tensor:
        """z_n = mu + e^{logvar/2} ε_n with the sample axis before the batch axis
        (:func:`vsm.objectives.sample_posterior`); detached unless ``reparam``."""

    @abstractmethod
    def decoder_vjp(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_mean, ∇_z log p(x|z)) (:func:`vsm.objectives.decoder_vjp`)."""

    def x_score(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        *,
        phi: Params | None,
        create_graph: bool | None = None,
        derivative: O.PsiDerivative = "partial",
    ) -> torch.Tensor:
        """ψ = ∇_x log q(z_n|x) through :meth:`encode` (:func:`vsm.objectives.encoder_x_score`,
        whose formula :func:`vsm._network_terms.x_score_core` serves every layout)."""
        create = torch.is_grad_enabled() if create_graph is None else create_graph
        return x_score_core(
            lambda v: self.encode(v, phi), x, z, create_graph=create, derivative=derivative
        )

    @abstractmethod
    def batch_mean(self, formula: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        """The batch mean of a per-datum objective ``formula`` of :mod:`vsm.objectives` (it
        takes one model's tensors and a 0-dim log σ²), per replica for replicas."""


class OneModel(Networks):
    """:class:`Networks` of one :class:`~vsm.models.GaussianVAE` (noise from the global RNG)."""

    def __init__(self, model: GaussianVAE):
        self.model = model

    @property
    def log_sigma2(self) -> torch.Tensor:
        return self.model.log_sigma2

    def encoder_params(self) -> Params:
        return dict(self.model.encoder.named_parameters())

    def failure_counts(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((), dtype=torch.float64)

    def noisy(self, x: torch.Tensor, eta: float) -> torch.Tensor:
        return add_input_noise(x.reshape(x.shape[0], -1), eta)

    def encode(self, x: torch.Tensor, phi: Params | None) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        v = x.reshape(-1, *m.data_shape)
        h = m.encoder(v) if phi is None else functional_call(m.encoder, phi, (v,))
        return m.split(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z).reshape(*z.shape[:-1], -1)

    def sample(
        self, mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, *, reparam: bool
    ) -> torch.Tensor:
        return O.sample_posterior(mu, logvar, n_samples, reparam=reparam)

    def decoder_vjp(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return O.decoder_vjp(x, self.model.decode, z, self.model.log_sigma2)

    def batch_mean(self, formula: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        return formula(*args).mean()


def networks(model: GaussianVAE | Networks) -> Networks:
    """``model`` itself if it already is a :class:`Networks`, else :class:`OneModel` of it."""
    return model if isinstance(model, Networks) else OneModel(model)
