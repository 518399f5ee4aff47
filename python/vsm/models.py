"""Gaussian VAE models (MATH.md Part I, Part III §9): the shared base class and two architectures.

- :class:`GaussianVAE`: p(z) = N(0, I_L), p(x|z) = N(g(z), σ² I_D) with a learned scalar log σ²,
  q(z|x) = N(μ(x), diag s(x)²) with the encoder emitting (μ, log s²). ``encoder`` and ``decoder``
  are separate submodules so that the trainer can give them separate optimisers; ``log_sigma2``
  belongs to the decoder's group (:meth:`GaussianVAE.decoder_parameters`).
- Parametrisation options (MATH.md §1, §9, §10; vsm's defaults first): ``noise_param`` — the
  learned noise parameter is log σ² ("log_sigma2", vsm) or log σ ("log_sigma", the authors' code;
  under Adam a step in log σ moves log σ² twice as far); ``sd_head`` — the encoder's second
  output h gives log s² = h ("logvar", vsm), s = softplus(h) ("softplus", the authors' 2-D code
  ``bilevels.py``) or s = exp(h) ("logsd", the authors' image code ``VAEs.py``). Whatever the
  choice, :meth:`GaussianVAE.encode` returns (μ, log s²) and ``log_sigma2`` is log σ², so the
  rest of vsm is unchanged.
- :class:`MLPVAE`: the paper's 2-D model (two ReLU hidden layers, width 30 by default), usable for
  any flat data shape (2-D toys, MNIST-1D).
- :class:`ConvVAE`: the DCGAN-style 32×32 encoder/decoder of the paper's image experiments.

Models are rebuilt from :meth:`GaussianVAE.spec` by :func:`from_spec` (checkpoints store the spec).
"""

from __future__ import annotations

import abc
import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate as V

__all__ = [
    "MLPVAE",
    "NOISE_PARAMS",
    "SD_HEADS",
    "ConvVAE",
    "GaussianVAE",
    "GaussianVAELike",
    "from_spec",
    "log_softplus",
]

NOISE_PARAMS: tuple[str, ...] = ("log_sigma2", "log_sigma")
"""The learned noise parameter: log σ² (vsm) or log σ (the authors' code)."""
SD_HEADS: tuple[str, ...] = ("logvar", "softplus", "logsd")
"""The encoder SD head: h = log s² (vsm), s = softplus(h) (authors' 2-D code), s = exp(h)
(authors' image code)."""

_LOG_SOFTPLUS_CUT = -30.0


def log_softplus(h: torch.Tensor) -> torch.Tensor:
    """log softplus(h) = log log(1 + e^h), finite for every finite h (≈ h below h = −30, where
    softplus(h) = e^h (1 − e^h/2 + …) and the relative error of h is < 1e-14). Differentiable
    (no NaN gradients from the branch not taken)."""
    low = h < _LOG_SOFTPLUS_CUT
    safe = torch.where(low, torch.zeros_like(h), h)
    return torch.where(low, h, torch.log(F.softplus(safe)))


class GaussianVAELike(Protocol):
    """What evaluation needs from a Gaussian VAE (:func:`vsm.is_evaluate`, the metrics).

    p(z) = N(0, I_L), p(x|z) = N(decode(z), σ² I) and q(z|x) = N(mu, diag exp(logvar)) with
    ``(mu, logvar) = encode(x)``. Every :class:`GaussianVAE` satisfies it; so does any object
    with these four members (a hand-written model with an exact posterior, say).
    """

    @property
    def latent_dim(self) -> int:
        """L, the latent dimension."""
        ...

    @property
    def log_sigma2(self) -> torch.Tensor:
        """0-dim log σ² of the likelihood."""
        ...

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, *data_shape) → mu (B, L), logvar (B, L)."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., L) → decoder mean (..., *data_shape)."""
        ...


class GaussianVAE(nn.Module, abc.ABC):
    """Base class of vsm's Gaussian VAEs.

    Subclasses set ``encoder`` (x (B, *data_shape) → (B, 2L): μ then the SD head's h) and
    ``decoder`` (z (M, L) → x_mean (M, *data_shape)) and call ``super().__init__(latent_dim,
    data_shape, log_sigma2_init, noise_param=..., sd_head=...)`` first.

    Attributes:
        latent_dim: L.
        data_shape: shape of one datum; ``data_dim`` = prod(data_shape) = D.
        noise_param: "log_sigma2" (vsm) or "log_sigma" (the authors' code): which of the two is
            the learned 0-dim ``nn.Parameter`` (:attr:`noise_parameter`; its state_dict key is
            this name).
        sd_head: "logvar", "softplus" or "logsd" (module docstring).

    :attr:`log_sigma2` is the 0-dim log σ² of the likelihood N(g(z), σ² I) under either
    ``noise_param``.
    """

    encoder: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        latent_dim: int,
        data_shape: tuple[int, ...],
        log_sigma2_init: float,
        *,
        noise_param: str = "log_sigma2",
        sd_head: str = "logvar",
    ):
        super().__init__()
        latent_dim = V.positive_int("latent_dim", latent_dim)
        if not data_shape or any(int(s) < 1 for s in data_shape):
            raise ValueError(f"data_shape: expected positive sizes, got {data_shape}")
        self.noise_param = V.choice("noise_param", noise_param, NOISE_PARAMS)
        self.sd_head = V.choice("sd_head", sd_head, SD_HEADS)
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(int(s) for s in data_shape)
        init = (
            float(log_sigma2_init) if noise_param == "log_sigma2" else 0.5 * float(log_sigma2_init)
        )
        # Registered straight into _parameters: the class property ``log_sigma2`` would make
        # nn.Module.register_parameter refuse the name.
        self._parameters[noise_param] = nn.Parameter(torch.tensor(init))

    @property
    def noise_parameter(self) -> nn.Parameter:
        """The learned noise parameter: log σ² or log σ (:attr:`noise_param`)."""
        p = self._parameters[self.noise_param]
        assert p is not None
        return p

    @property
    def log_sigma2(self) -> torch.Tensor:
        """0-dim log σ² of the likelihood N(g(z), σ² I): the parameter itself under
        ``noise_param="log_sigma2"``, else 2·log σ (differentiable w.r.t. log σ)."""
        p = self.noise_parameter
        return p if self.noise_param == "log_sigma2" else 2.0 * p

    @property
    def data_dim(self) -> int:
        """D = prod(data_shape)."""
        return math.prod(self.data_shape)

    def split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the encoder's raw output (..., 2L) into (mu, logvar = log s²), each (..., L),
        through the SD head: log s² = h ("logvar"), 2 log softplus(h) ("softplus"), 2h ("logsd")."""
        mu, raw = h[..., : self.latent_dim], h[..., self.latent_dim :]
        if self.sd_head == "softplus":
            return mu, 2.0 * log_softplus(raw)
        if self.sd_head == "logsd":
            return mu, 2.0 * raw
        return mu, raw

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters: x (B, *data_shape) → mu (B, L), logvar = log s² (B, L)."""
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"x: expected shape (B, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.split(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean: z (..., L) → x_mean (..., *data_shape)."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected last dimension {self.latent_dim}, got {tuple(z.shape)}")
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(*lead, *self.data_shape)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """φ: the encoder's parameters."""
        return list(self.encoder.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """θ: the decoder's parameters followed by the noise parameter (log σ² or log σ)."""
        return [*self.decoder.parameters(), self.noise_parameter]

    def _param_spec(self) -> dict[str, str]:
        """The parametrisation's entries of :meth:`spec` (none for vsm's defaults, so that specs
        of default models are unchanged)."""
        out = {}
        if self.noise_param != "log_sigma2":
            out["noise_param"] = self.noise_param
        if self.sd_head != "logvar":
            out["sd_head"] = self.sd_head
        return out

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`from_spec` rebuilds the architecture.

        Every concrete model (``MLPVAE``, ``ConvVAE``) defines it; ``GaussianVAE`` is a base.
        """


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPVAE(GaussianVAE):
    """The paper's MLP VAE (MATH.md §9, 2-D experiments), for any flat or flattenable data.

    Encoder D → width → width → 2L and decoder L → width → width → D, ReLU hidden layers, linear
    outputs. Initialisation as in the authors' code (``bilevels.py``): all weights N(0, 0.1²),
    encoder biases 0, decoder biases N(0, 0.1²); log σ² = log 0.01 (σ = 0.1) by default. The
    encoder's second output is log s² by default (vsm's convention); the authors' 2-D code is
    ``noise_param="log_sigma", sd_head="softplus"`` (then s starts near softplus(0) ≈ 0.69).

    Args:
        data_shape: shape of one datum, e.g. (2,) or (40,); flattened internally.
        latent_dim: L (2 in the paper's 2-D runs).
        width: hidden units per layer (paper: 30; Fig. 6: 100).
        n_hidden: number of hidden layers (paper: 2).
        log_sigma2_init: initial log σ² (log σ starts at half of it under "log_sigma").
        noise_param, sd_head: the parametrisation (:class:`GaussianVAE`).
    """

    def __init__(
        self,
        data_shape: tuple[int, ...] = (2,),
        latent_dim: int = 2,
        width: int = 30,
        n_hidden: int = 2,
        log_sigma2_init: float = math.log(0.01),
        *,
        noise_param: str = "log_sigma2",
        sd_head: str = "logvar",
    ):
        super().__init__(
            latent_dim, tuple(data_shape), log_sigma2_init, noise_param=noise_param, sd_head=sd_head
        )
        self.width = width = V.positive_int("width", width)
        self.n_hidden = n_hidden = V.positive_int("n_hidden", n_hidden)
        d = self.data_dim
        self.encoder = nn.Sequential(
            nn.Flatten(), _mlp([d] + [width] * n_hidden + [2 * latent_dim])
        )
        self.decoder = _mlp([latent_dim] + [width] * n_hidden + [d])
        with torch.no_grad():
            for m in self.encoder.modules():
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0.0, 0.1)
                    m.bias.zero_()
            for m in self.decoder.modules():
                if isinstance(m, nn.Linear):
                    m.weight.normal_(0.0, 0.1)
                    m.bias.normal_(0.0, 0.1)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "mlp",
            "data_shape": list(self.data_shape),
            "latent_dim": self.latent_dim,
            "width": self.width,
            "n_hidden": self.n_hidden,
            **self._param_spec(),
        }


class ConvVAE(GaussianVAE):
    """DCGAN-style 32×32 VAE (MATH.md §9, images; no BatchNorm, ReLU, sigmoid output).

    Encoder: Conv(k4 s2 p1) nc → ndf → 2ndf → 4ndf (32 → 16 → 8 → 4) with ReLU, flatten
    (64·ndf features), Linear → 2L (μ, log s²). Decoder: ConvT(L → 4ngf, k4 s1 p0) → 4×4,
    ConvT(→ 2ngf, k4 s2 p1) → 8×8, ConvT(→ ngf) → 16×16, ConvT(→ nc) → 32×32, ReLU between layers,
    final sigmoid so that g(z) ∈ (0, 1)^D. log σ² starts at 0 (the authors' image setting).
    PyTorch's default initialisation. The authors' image code is ``noise_param="log_sigma",
    sd_head="logsd"`` (``VAEs.py``: ``logsigma`` learned, s = exp(h)).

    Args:
        nc: image channels; data_shape is (nc, 32, 32).
        latent_dim: L (paper: 100).
        ngf, ndf: decoder / encoder base widths (paper: 64; small values suit CPU tests).
        log_sigma2_init: initial log σ².
        noise_param, sd_head: the parametrisation (:class:`GaussianVAE`).
    """

    def __init__(
        self,
        nc: int = 1,
        latent_dim: int = 16,
        ngf: int = 16,
        ndf: int = 16,
        log_sigma2_init: float = 0.0,
        *,
        noise_param: str = "log_sigma2",
        sd_head: str = "logvar",
    ):
        super().__init__(
            latent_dim, (nc, 32, 32), log_sigma2_init, noise_param=noise_param, sd_head=sd_head
        )
        self.nc, self.ngf, self.ndf = int(nc), int(ngf), int(ndf)
        self.encoder = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * ndf, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 4 * ngf, 4, 1, 0),
            nn.ReLU(),
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1),
            nn.Sigmoid(),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "conv",
            "nc": self.nc,
            "latent_dim": self.latent_dim,
            "ngf": self.ngf,
            "ndf": self.ndf,
            **self._param_spec(),
        }


def from_spec(spec: dict[str, Any]) -> GaussianVAE:
    """Rebuild an (untrained) model from :meth:`GaussianVAE.spec`'s dictionary."""
    kw = dict(spec)
    kind = kw.pop("kind", None)
    if kind == "mlp":
        kw["data_shape"] = tuple(kw["data_shape"])
        return MLPVAE(**kw)
    if kind == "conv":
        return ConvVAE(**kw)
    raise ValueError(f"spec: unknown model kind {kind!r} (expected 'mlp' or 'conv')")
