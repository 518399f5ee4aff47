"""A plain hand-written PyTorch training step of the paper's 2-D VAE: the baseline of issue 18.

What a researcher would write without vsm (about 40 lines per objective): two ``nn.Sequential``
ReLU MLPs (the encoder D → W → W → 2L, the decoder L → W → W → D, :class:`vsm.MLPVAE`'s
initialisation), a learned log σ², two ``torch.optim.Adam``, and one Algorithm-1 iteration:

- encoder step: the negative ELBO with reparametrised samples ("kl"), or mean_n PFD(z_n) with
  detached z and ∇_z log p(x|z) by one autograd VJP ("fd"), or the joint Fisher divergence ("fae",
  reparametrised samples, ψ and the decoder VJP with ``create_graph``);
- decoder step (every ``k_enc``-th iteration), z ~ q detached: −ELBO ("elbo"),
  ½‖f‖² − D/σ² ("m1", f = (g(z) − x)/σ²), ½‖mean_n f_n‖² + mean_n f_n·ψ_n − D/σ² ("m3", ψ by
  autograd through the encoder), or the joint FD ("fae").

Plain torch ops only (no vsm kernels), vsm's variant (log σ², log-variance head, fresh minibatches
from :meth:`vsm.data.Dataset.batch`, η = 0). Used by ``benches/bench_train_step.py`` and by
``vsm bench --train-steps``'s 2-D rows through :func:`make_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


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
) -> Callable[[], None]:
    """One hand-written Algorithm-1 iteration per call, for ``objective`` in kl-elbo, kl-m1,
    kl-m3, fd-m1, fae; ``batches(step)`` gives minibatch ``step`` (B, D)."""
    torch.manual_seed(seed)
    enc = _mlp([data_dim, width, width, 2 * latent], True).to(dtype)
    dec = _mlp([latent, width, width, data_dim], False).to(dtype)
    log_s2 = nn.Parameter(torch.tensor(math.log(0.01), dtype=dtype))
    enc_p, dec_p = list(enc.parameters()), [*dec.parameters(), log_s2]
    enc_opt, dec_opt = torch.optim.Adam(enc_p, lr=lr), torch.optim.Adam(dec_p, lr=lr)
    inference, learning = ("fae", "fae") if objective == "fae" else objective.split("-")
    n, d = n_samples, data_dim
    state = {"step": 0}

    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = enc(x)
        return h[:, :latent], h[:, latent:]

    def vjp(x: torch.Tensor, z: torch.Tensor, create: bool) -> tuple[torch.Tensor, torch.Tensor]:
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        xm = dec(zz)
        (gz,) = torch.autograd.grad(xm, zz, (x - xm) / log_s2.exp(), create_graph=create)
        return xm, gz

    def psi_of(x: torch.Tensor, z: torch.Tensor, create: bool) -> torch.Tensor:
        xr = x.repeat(n, 1).requires_grad_(True)
        mu, lv = encode(xr)
        logq = -0.5 * ((z.reshape(-1, latent) - mu) ** 2 * (-lv).exp() + lv).sum()
        return torch.autograd.grad(logq, xr, create_graph=create)[0].reshape(n, -1, d)

    def pfd(z: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor, gz: torch.Tensor) -> torch.Tensor:
        return ((-(z - mu) * (-lv).exp() + z - gz) ** 2).sum(-1).mean(0)

    def sample(mu: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
        return mu + (0.5 * lv).exp() * torch.randn(n, *mu.shape, dtype=dtype)

    def neg_elbo(x: torch.Tensor, xm: torch.Tensor, mu: torch.Tensor, lv: torch.Tensor):
        nll = 0.5 * ((xm - x) ** 2).sum(-1).mean(0) / log_s2.exp()
        nll = nll + 0.5 * d * (math.log(2 * math.pi) + log_s2)
        return (nll + 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(-1)).mean()

    def fae_loss(x: torch.Tensor, reparam: bool) -> torch.Tensor:
        mu, lv = encode(x)
        z = sample(mu, lv)
        z = z if reparam else z.detach()
        xm, gz = vjp(x, z, True)
        psi = psi_of(x, z, True)
        f = (xm - x) / log_s2.exp()
        m1 = 0.5 * (f**2).sum(-1).mean(0) - d / log_s2.exp()
        return (m1 + 0.5 * (psi**2).sum(-1).mean(0) + 0.5 * pfd(z, mu, lv, gz)).mean()

    def step() -> None:
        x = batches(state["step"])
        enc_opt.zero_grad()
        if inference == "kl":
            mu, lv = encode(x)
            loss = neg_elbo(x, dec(sample(mu, lv)), mu, lv)
        elif inference == "fd":
            mu, lv = encode(x)
            z = sample(mu, lv).detach()
            _, gz = vjp(x, z, False)
            loss = pfd(z, mu, lv, gz).mean()
        else:
            loss = fae_loss(x, True)
        loss.backward(inputs=enc_p)
        enc_opt.step()
        state["step"] += 1
        if state["step"] % k_enc:
            return
        dec_opt.zero_grad()
        if learning == "fae":
            loss = fae_loss(x, False)
        else:
            with torch.no_grad():
                mu, lv = encode(x)
            z = sample(mu, lv)
            xm = dec(z)
            f = (xm - x) / log_s2.exp()
            if learning == "elbo":
                loss = neg_elbo(x, xm, mu, lv)
            elif learning == "m1":
                loss = (0.5 * (f**2).sum(-1).mean(0) - d / log_s2.exp()).mean()
            else:  # m3
                psi = psi_of(x, z, False)
                cross = (f * psi).sum(-1).mean(0)
                loss = (0.5 * (f.mean(0) ** 2).sum(-1) + cross - d / log_s2.exp()).mean()
        loss.backward(inputs=dec_p)
        dec_opt.step()

    return step
