"""Plain hand-written PyTorch training steps of vsm's VAEs: the baselines of issue 18.

What a researcher would write without vsm: ``nn.Sequential`` networks, a learned noise parameter,
two ``torch.optim.Adam`` (torch's default implementation), and one Algorithm-1 iteration
(MATH.md §7) per call, written with plain torch ops and autograd (no vsm code):

- encoder step (every iteration): the negative ELBO with reparametrised samples ("kl"), or
  mean_n PFD(z_n) with detached z and ∇_z log p(x|z) by one autograd VJP ("fd"), or the joint
  Fisher divergence ("fae": reparametrised samples, ψ and the decoder VJP with ``create_graph``);
- decoder step (every ``k_enc``-th iteration, same minibatch, fresh samples z ~ q detached):
  −ELBO ("elbo"), ½‖f‖² − D/σ² ("m1", f = (g(z) − x)/σ²), ‖f‖² − ½‖mean f‖² − D/σ² ("m2"),
  ½‖mean f‖² + f·ψ − D/σ² ("m3", ψ = ∇_x log q(z|x) by autograd through the encoder), or the
  joint FD ("fae", partial ψ); every sample term is a mean over the N samples, every loss a
  minibatch mean.

Two variants (``vsm.train.variant_options``; MATH.md §9–10):

- ``"vsm"``: learned log σ², encoder head log s², m2/m3 means over the N posterior samples, ψ the
  partial derivative at fixed z;
- ``"paper"``, the authors' code for that kind of data:

  - 2-D data (``models/bilevels.py``): learned log σ, encoder head s = softplus(h), m2/m3's
    ½‖mean f‖² over the whole minibatch (all N·B samples), L_B's ψ and the FAE encoder step's ψ
    the *total* derivative of log q(z(x)|x) along the reparametrised z(x) = μ(x) + s(x)·ε, and
    minibatches from 100 000 fresh points per epoch (the caller's ``batches``;
    ``bench_train_step.py`` passes ``Dataset.batch(..., epoch_size=100000)``). That total
    derivative is the same for every ε (the ε terms cancel), so, as in the authors' code with its
    one z per datum, one reparametrised sample per datum gives ψ for all N samples, by one
    gradient through the encoder on the B data;
  - other data (the image code ``models/VAEs.py``; the MNIST-size MLP and the conv VAE here):
    learned log σ, encoder head s = exp(h), L_B's cross term mean_n f_n·Σ_m ψ_m (partial ψ), and
    the FAE encoder step's total-derivative ψ.

:func:`make_step` builds the MLP VAE's step (:class:`vsm.MLPVAE`: D → W → W → 2L and
L → W → W → D, ReLU, the authors' initialisation), :func:`make_conv_step` the conv VAE's
(:class:`vsm.ConvVAE`: DCGAN-style 32×32, PyTorch's default initialisation). Used by
``benches/bench_train_step.py``; ``tests/test_handwritten_step.py`` checks that each step's losses
and gradients equal vsm's autograd path (``TrainConfig(fast_step=False)``) for the same weights,
minibatch and noise.

Noise: every step draws its ε with ``torch.randn`` from torch's global RNG, one (N, B, L) tensor
per loss, in the order vsm's trainer does (encoder step, then decoder step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("vsm", "paper")
INFERENCES = ("kl", "fd")
LEARNINGS = ("elbo", "m1", "m2", "m3")


@dataclass
class HandStep:
    """One hand-written Algorithm-1 iteration per call; returns the losses of the iteration
    (``enc_loss`` and, when the decoder was updated, ``dec_loss``, detached 0-dim tensors).

    Attributes:
        encoder, decoder: the two networks (the encoder's output is (μ, h), h the SD head).
        noise: the learned noise parameter, log σ² ("vsm") or log σ ("paper").
        enc_opt, dec_opt: the two Adam optimisers.
        run: the step itself.
    """

    encoder: nn.Module
    decoder: nn.Module
    noise: nn.Parameter
    enc_opt: torch.optim.Optimizer
    dec_opt: torch.optim.Optimizer
    run: Callable[[], dict[str, torch.Tensor]]

    def __call__(self) -> dict[str, torch.Tensor]:
        return self.run()


def _mlp(sizes: list[int], zero_bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.normal_(0.0, 0.1)
            lin.bias.zero_() if zero_bias else lin.bias.normal_(0.0, 0.1)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _check(objective: str, variant: str) -> tuple[str, str]:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    if objective == "fae":
        return "fae", "fae"
    parts = objective.split("-")
    if len(parts) != 2 or parts[0] not in INFERENCES or parts[1] not in LEARNINGS:
        raise ValueError(
            f"objective: expected fae or <{'|'.join(INFERENCES)}>-<{'|'.join(LEARNINGS)}>, "
            f"got {objective!r}"
        )
    return parts[0], parts[1]


def make_step(
    objective: str,
    batches: Callable[[int], torch.Tensor],
    *,
    data_dim: int = 2,
    latent: int = 2,
    width: int = 30,
    n_samples: int = 3,
    k_enc: int = 1,
    lr: float = 1e-3,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    variant: str = "vsm",
    eta: float | None = None,
) -> HandStep:
    """The hand-written step of the MLP VAE for ``objective`` (kl-/fd- with elbo, m1, m2, m3, or
    fae) and ``variant`` ("vsm" or "paper"); ``batches(step)`` gives minibatch ``step`` (B, D). As vsm's trainer: log σ² starts at log 0.01 for 2-D data, else at 0; input
    noise η (``eta``) defaults to 0 for 2-D data, else 0.1."""
    torch.manual_seed(seed)
    enc = _mlp([data_dim, width, width, 2 * latent], True).to(dtype)
    dec = _mlp([latent, width, width, data_dim], False).to(dtype)
    log_s2 = math.log(0.01) if data_dim == 2 else 0.0
    eta = (0.0 if data_dim == 2 else 0.1) if eta is None else eta
    return _algorithm1(
        objective, batches, enc, dec, log_s2, (data_dim,), latent, n_samples, k_enc, lr, dtype,
        variant, eta,
    )  # fmt: skip


def make_conv_step(
    objective: str,
    batches: Callable[[int], torch.Tensor],
    *,
    nc: int = 1,
    latent: int = 16,
    ngf: int = 16,
    ndf: int = 16,
    n_samples: int = 5,
    k_enc: int = 1,
    lr: float = 1e-3,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    eta: float = 0.1,
    variant: str = "vsm",
) -> HandStep:
    """The hand-written step of the DCGAN-style conv VAE (nc×32×32 images, :class:`vsm.ConvVAE`'s
    layers, PyTorch's default initialisation, log σ² starting at 0, input noise η = ``eta``) for
    ``objective`` as in :func:`make_step`, ``variant`` "vsm" or "paper" (the authors' image code); ``batches(step)`` gives minibatch
    ``step`` (B, nc, 32, 32) or flattened (B, nc·1024)."""
    torch.manual_seed(seed)
    enc = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * ndf, 2 * latent),
    ).to(dtype)
    dec = nn.Sequential(
        nn.Unflatten(1, (latent, 1, 1)),
        nn.ConvTranspose2d(latent, 4 * ngf, 4, 1, 0),
        nn.ReLU(),
        nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1),
        nn.Sigmoid(),
    ).to(dtype)
    return _algorithm1(
        objective, batches, enc, dec, 0.0, (nc, 32, 32), latent, n_samples, k_enc, lr, dtype,
        variant, eta,
    )  # fmt: skip


def _algorithm1(
    objective: str,
    batches: Callable[[int], torch.Tensor],
    enc: nn.Module,
    dec: nn.Module,
    log_sigma2_init: float,
    data_shape: tuple[int, ...],
    latent: int,
    n_samples: int,
    k_enc: int,
    lr: float,
    dtype: torch.dtype,
    variant: str,
    eta: float,
) -> HandStep:
    """The step of ``objective`` on the networks ``enc`` (x → (μ, h)) and ``dec`` (z → x), with
    input noise x̃ = x + η ε redrawn for each of the two losses."""
    inference, learning = _check(objective, variant)
    paper = variant == "paper"
    paper_2d = paper and data_shape == (2,)  # the authors' 2-D code (else their image code)
    # the learned noise parameter: log σ² (vsm) or log σ (the authors' code)
    noise = nn.Parameter(torch.tensor(log_sigma2_init / (2 if paper else 1), dtype=dtype))
    enc_p, dec_p = list(enc.parameters()), [*dec.parameters(), noise]
    enc_opt, dec_opt = torch.optim.Adam(enc_p, lr=lr), torch.optim.Adam(dec_p, lr=lr)
    n, d = n_samples, math.prod(data_shape)
    state = {"step": 0}

    def log_sigma2() -> torch.Tensor:
        return 2 * noise if paper else noise

    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log s²) of q(z|x) for flat x (M, D)."""
        h = enc(x.view(-1, *data_shape))
        mu, raw = h[:, :latent], h[:, latent:]
        if not paper:
            return mu, raw
        return mu, (2 * F.softplus(raw).log() if paper_2d else 2 * raw)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return dec(z.reshape(-1, latent)).reshape(*z.shape[:-1], d)

    def sample(mu: torch.Tensor, lv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps = torch.randn(n, *mu.shape, dtype=dtype)
        return mu + (0.5 * lv).exp() * eps, eps

    def log_q(z: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((z - mu) ** 2 * (-lv).exp() + lv).sum()

    def vjp(x: torch.Tensor, z: torch.Tensor, create: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(g(z), ∇_z log p(x|z)) by one VJP through the decoder."""
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        xm = decode(zz)
        (gz,) = torch.autograd.grad(xm, zz, (x - xm) / log_sigma2().exp(), create_graph=create)
        return xm, gz

    def psi_of(
        x: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, total: bool, create: bool
    ) -> torch.Tensor:
        """ψ_n = ∇_x log q(z_n|x), (N, B, D): at fixed z_n, or the total derivative along
        z(x) = μ(x) + s(x)·ε (the same for every ε: one sample per datum, module docstring)."""
        if total:
            xr = x.detach().clone().requires_grad_(True)
            mu, lv = encode(xr)
            z0 = mu + (0.5 * lv).exp() * eps[0]
            (g,) = torch.autograd.grad(log_q(z0, mu, lv), xr, create_graph=create)
            return g.expand(n, *g.shape)
        xr = x.detach().repeat(n, 1).requires_grad_(True)
        mu, lv = encode(xr)
        (g,) = torch.autograd.grad(log_q(z.reshape(-1, latent), mu, lv), xr, create_graph=create)
        return g.reshape(n, -1, d)

    def pfd(z: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor, gz: torch.Tensor) -> torch.Tensor:
        """mean_n ‖∇_z log q + z − ∇_z log p(x|z)‖² per datum."""
        return ((-(z - mu) * (-lv).exp() + z - gz) ** 2).sum(-1).mean(0)

    def neg_elbo(
        x: torch.Tensor, xm: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor
    ) -> torch.Tensor:
        ls2 = log_sigma2()
        nll = 0.5 * ((xm - x) ** 2).sum(-1).mean(0) / ls2.exp()
        nll = nll + 0.5 * d * (math.log(2 * math.pi) + ls2)
        return (nll + 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(-1)).mean()

    def fae_loss(x: torch.Tensor, reparam: bool, total_psi: bool) -> torch.Tensor:
        mu, lv = encode(x)
        z, eps = sample(mu, lv)
        z = z if reparam else z.detach()
        xm, gz = vjp(x, z, True)
        psi = psi_of(x, z, eps, total_psi, True)
        f = (xm - x) / log_sigma2().exp()
        m1 = 0.5 * (f**2).sum(-1).mean(0) - d / log_sigma2().exp()
        return (m1 + 0.5 * (psi**2).sum(-1).mean(0) + 0.5 * pfd(z, mu, lv, gz)).mean()

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + eta * torch.randn_like(x) if eta > 0 else x

    def encoder_loss(x: torch.Tensor) -> torch.Tensor:
        x = noisy(x)
        if inference == "fae":
            return fae_loss(x, True, paper)
        mu, lv = encode(x)
        z, _ = sample(mu, lv)
        if inference == "kl":
            return neg_elbo(x, decode(z), mu, lv)
        z = z.detach()
        _, gz = vjp(x, z, False)
        return pfd(z, mu, lv, gz).mean()

    def decoder_loss(x: torch.Tensor) -> torch.Tensor:
        x = noisy(x)
        if learning == "fae":
            return fae_loss(x, False, False)
        with torch.no_grad():
            mu, lv = encode(x)
        z, eps = sample(mu, lv)
        xm = decode(z)
        if learning == "elbo":
            return neg_elbo(x, xm, mu, lv)
        f = (xm - x) / log_sigma2().exp()
        trace = -d / log_sigma2().exp()
        sq = (f**2).sum(-1).mean(0).mean()
        # ‖mean f‖²: over the N samples of each datum, or over the minibatch (paper, 2-D)
        mean_sq = (f.mean((0, 1)) ** 2).sum() if paper_2d else (f.mean(0) ** 2).sum(-1).mean()
        if learning == "m1":
            return 0.5 * sq + trace
        if learning == "m2":
            return sq - 0.5 * mean_sq + trace
        psi = psi_of(x, z, eps, paper_2d, False)
        if paper and not paper_2d:  # the image code's cross term mean_n f_n·Σ_m ψ_m
            psi = psi.sum(0, keepdim=True)
        return 0.5 * mean_sq + (f * psi).sum(-1).mean() + trace

    def step() -> dict[str, torch.Tensor]:
        x = batches(state["step"]).to(dtype).flatten(1)
        enc_opt.zero_grad()
        loss = encoder_loss(x)
        loss.backward(inputs=enc_p)
        enc_opt.step()
        out = {"enc_loss": loss.detach()}
        state["step"] += 1
        if state["step"] % k_enc:
            return out
        dec_opt.zero_grad()
        loss = decoder_loss(x)
        loss.backward(inputs=dec_p)
        dec_opt.step()
        out["dec_loss"] = loss.detach()
        return out

    return HandStep(enc, dec, noise, enc_opt, dec_opt, step)
