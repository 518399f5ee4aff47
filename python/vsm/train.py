"""Training of Gaussian VAEs by the paper's Algorithm 1 and its bi-level variant (MATH.md §7).

Objectives are "<inference>-<learning>" (MATH.md Part I): kl-elbo (the VAE), kl-m1, fd-m1, kl-m2,
fd-m2, kl-m3, fd-m3 and fae. One *iteration* processes one minibatch x:

1. inference step (every iteration): one optimiser step on the encoder φ for
   - ``kl``: −ELBO with reparametrised samples,
   - ``fd``: mean_n PFD(z_n) with z detached (``fd_reparam=False``, the paper's choice),
   - ``fae``: the joint FD with reparametrised samples;
2. learning step (every ``k_enc``-th iteration, same minibatch, fresh noise and samples): one
   optimiser step on θ = (decoder, log σ²) for the learning objective (elbo, m1, m2, m3 or the
   joint FD), with z_n ~ q detached.

Input noise x̃ = x + η ε is redrawn for every objective evaluation. Encoder and decoder have
separate optimisers; gradients are taken with ``torch.autograd.grad`` w.r.t. one group only, so an
objective that depends on both groups never leaks into the other's update.

Bi-level variant (``k_bi > 0``): at each learning step the encoder is unrolled for ``k_bi`` plain
SGD steps (rate ``bi_lr``) on the inference loss, φ_{k+1}(θ) = φ_k − bi_lr ∇_φ ℓ(φ_k, θ), written
functionally with :func:`torch.func.functional_call` and ``create_graph=True`` so that φ_K is a
differentiable function of θ; the learning loss is evaluated at φ_K(θ) with *reparametrised*
samples (otherwise it would not depend on φ_K) and its total θ-gradient, through the unrolled steps,
updates θ. φ_K (detached) becomes the encoder's new value (warm start). The unrolled steps run on
the pure-torch reference path because the fused ops are differentiable to first order only.

Training stops with :class:`TrainingDiverged` on a non-finite loss. Checkpoints (model, both
optimisers, config, iteration, RNG states, loss history) are written atomically and resuming
reproduces an uninterrupted run exactly (minibatches are a function of (seed, iteration)).

Data-parallel training (``torchrun --nproc_per_node=P ... vsm train ...`` or any script that
builds a :class:`Trainer` under ``torchrun``): when ``WORLD_SIZE`` > 1 the trainer joins the
process group itself (gloo on CPU, nccl on CUDA, one GPU per ``LOCAL_RANK``) unless the caller
already did, and each parameter group's objective runs through PyTorch's own
:class:`~torch.nn.parallel.DistributedDataParallel`: the encoder group and the decoder group are each
held by a small module whose forward evaluates that group's loss, DDP wraps it (broadcasting rank
0's initial parameters) and ``loss.backward(inputs=group)`` lets DDP's reducer average the group's
gradients over the ranks, bucketed and overlapped with the backward pass. Rank r trains on
minibatch ``P·step + r`` (disjoint batches; an epoch has 1/P as many iterations) with its own
noise stream, so all ranks keep identical parameters and optimiser states. Logged losses are the
means over ranks (one scalar ``all_reduce`` per update), which also makes a divergence on any rank
raise :class:`TrainingDiverged` on every rank at the same step. In the bi-level variant each rank
unrolls φ on its own batch and φ_K is averaged over the ranks. Only rank 0 writes files, logs and
shows a progress bar; :meth:`Trainer.save` is a collective (every rank calls it; the checkpoint
holds every rank's RNG state) and resuming with the same number of ranks replays an uninterrupted
run exactly (with a different number, each rank's noise is reseeded from (seed, rank, step)).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel

from . import objectives as O
from ._dispatch import backend
from .data import Dataset, load_dataset
from .models import MLPVAE, ConvVAE, GaussianVAE, from_spec

__all__ = [
    "OBJECTIVES",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]

OBJECTIVES: tuple[str, ...] = (
    "kl-elbo",
    "kl-m1",
    "fd-m1",
    "kl-m2",
    "fd-m2",
    "kl-m3",
    "fd-m3",
    "fae",
)


def split_objective(objective: str) -> tuple[str, str]:
    """("kl" | "fd" | "fae", "elbo" | "m1" | "m2" | "m3" | "fae") for an objective name."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if objective == "fae":
        return "fae", "fae"
    inf, learn = objective.split("-")
    return inf, learn


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the objective, the step and the loss."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints).

    ``None`` fields take dataset-dependent defaults in :meth:`resolved`: 2-D toys use the paper's
    MLP (L = 2, η = 0, batch 1000, IS proposal = prior); images the conv VAE (L = 16, η = 0.1,
    batch 100, IS proposal = q); MNIST-1D the MLP (L = 8, η = 0.1, batch 100).

    ``ddp_find_unused`` is passed to DDP as ``find_unused_parameters`` under torchrun: vsm's models
    use every parameter in every loss, a custom :class:`~vsm.models.GaussianVAE` whose loss skips a
    parameter needs it (DDP's error says so).

    Optimiser defaults are Adam at 1e-3 for both groups so that short CPU runs make visible
    progress; the paper's 2-D setting is ``dec_lr=1e-4, enc_optimizer="sgd", enc_lr=1e-2`` (KLD)
    or ``1e-3`` (FD), its image setting Adam 1e-4 for both with ``k_enc=5, n_samples=5``.
    """

    objective: str = "kl-m1"
    dataset: str = "sparse"
    steps: int = 1000
    epochs: int | None = None
    batch_size: int | None = None
    n_samples: int = 1
    k_enc: int = 1
    k_bi: int = 0
    bi_lr: float | None = None
    eta: float | None = None
    fd_reparam: bool = False
    model: str | None = None
    latent_dim: int | None = None
    width: int = 30
    ngf: int = 16
    ndf: int = 16
    enc_optimizer: str = "adam"
    enc_lr: float = 1e-3
    dec_lr: float = 1e-3
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    n_test: int = 5000
    data_dir: str | None = None
    eval_every: int = 0
    n_is: int = 0
    is_proposal: str | None = None
    log_every: int = 50
    ddp_find_unused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self, data: Dataset | None = None) -> TrainConfig:
        """A copy with every ``None`` default filled in (``data`` avoids reloading the dataset)."""
        c = dataclasses.replace(self)
        split_objective(c.objective)
        toy = data.data_shape == (2,) if data is not None else c.dataset in _TOY_NAMES
        image = data.is_image if data is not None else c.dataset in ("digits", "mnist",
                                                                    "fashion-mnist")
        if c.model is None:
            c.model = "conv" if image else "mlp"
        if c.latent_dim is None:
            c.latent_dim = 2 if toy else (16 if image else 8)
        if c.eta is None:
            c.eta = 0.0 if toy else 0.1
        if c.batch_size is None:
            c.batch_size = 1000 if toy else 100
        if c.is_proposal is None:
            c.is_proposal = "prior" if toy else "q"
        if c.bi_lr is None:
            c.bi_lr = 1e-2 if split_objective(c.objective)[0] == "kl" else 1e-3
        for name in ("steps", "n_samples", "k_enc", "batch_size", "latent_dim", "width"):
            v = getattr(c, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if c.k_bi < 0:
            raise ValueError(f"k_bi: expected a non-negative int, got {c.k_bi}")
        if c.eta < 0:
            raise ValueError(f"eta: expected a non-negative noise SD, got {c.eta}")
        if c.enc_optimizer not in ("adam", "sgd"):
            raise ValueError(f"enc_optimizer: expected 'adam' or 'sgd', got {c.enc_optimizer!r}")
        if c.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {c.dtype!r}")
        if c.model not in ("mlp", "conv"):
            raise ValueError(f"model: expected 'mlp' or 'conv', got {c.model!r}")
        if c.is_proposal not in ("q", "prior"):
            raise ValueError(f"is_proposal: expected 'q' or 'prior', got {c.is_proposal!r}")
        return c


_TOY_NAMES = ("sparse", "mixture", "rings", "moons", "pinwheel", "checkerboard", "8gaussians")


def build_model(cfg: TrainConfig, data_shape: tuple[int, ...]) -> GaussianVAE:
    """The model of a resolved config for data of ``data_shape`` (uses the global torch RNG)."""
    if cfg.model == "conv":
        if len(data_shape) != 3 or tuple(data_shape[1:]) != (32, 32):
            raise ValueError(f"model: 'conv' needs (C, 32, 32) data, got {data_shape}")
        return ConvVAE(nc=data_shape[0], latent_dim=cfg.latent_dim, ngf=cfg.ngf, ndf=cfg.ndf)
    init = math.log(0.01) if tuple(data_shape) == (2,) else 0.0
    return MLPVAE(data_shape, cfg.latent_dim, cfg.width, log_sigma2_init=init)


def _init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; joins the process group under torchrun.

    Without ``WORLD_SIZE`` > 1 in the environment (and no initialised group) this is (0, 1,
    device) and nothing happens. A bare "cuda" device becomes ``cuda:LOCAL_RANK``.
    """
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # e.g. --device cuda:1: every launch then targets that device
    if not dist.is_available():
        return 0, 1, device
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1, device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    world = dist.get_world_size()
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


class _GroupObjective(nn.Module):
    """One parameter group (held by reference) and the loss that updates it.

    ``forward(x)`` evaluates ``loss_fn(x)``. The module exists so that PyTorch's
    :class:`~torch.nn.parallel.DistributedDataParallel` can wrap exactly one group: DDP syncs the
    parameters it owns (this group) and ignores the other group's, which the loss also uses but
    which ``backward(inputs=group)`` leaves untouched.
    """

    def __init__(self, params: list[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.group = nn.ParameterList(params)
        self.loss_fn = loss_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(x)


def _atomic_torch_save(obj: Any, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _atomic_json(obj: Any, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


class Trainer:
    """Algorithm 1 / bi-level training of one model (see the module docstring).

    Args:
        cfg: the run's configuration (``None`` defaults are resolved here).
        data: a preloaded dataset (default: :func:`vsm.data.load_dataset` of ``cfg.dataset``).
        out_dir: where checkpoints, metrics JSON files and the loss curve go (None: nowhere).
        progress: show a tqdm bar (None: only when stderr is a terminal).
        log: where periodic loss lines go (None: silent), e.g. ``print``.

    Construction seeds torch's global RNG with ``cfg.seed`` and builds the model from it; training
    draws its noise and posterior samples from the global RNG, whose state is checkpointed.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        data: Dataset | None = None,
        out_dir: str | None = None,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.data = data if data is not None else load_dataset(
            cfg.dataset, seed=cfg.seed, n_test=cfg.n_test, data_dir=cfg.data_dir
        )
        self.cfg = cfg.resolved(self.data)
        self.inference, self.learning = split_objective(self.cfg.objective)
        self.rank, self.world_size, self.device = _init_distributed(torch.device(self.cfg.device))
        lead = self.rank == 0
        self._run_dir = out_dir  # every rank knows it: saving is a collective
        self.out_dir = out_dir if lead else None
        self.progress = progress if lead else False
        self.log = log if lead else None
        self.dtype = getattr(torch, self.cfg.dtype)
        torch.manual_seed(self.cfg.seed)
        self.model = build_model(self.cfg, self.data.data_shape).to(self.device, self.dtype)
        self.enc_params = self.model.encoder_parameters()
        self.dec_params = self.model.decoder_parameters()
        if self.cfg.enc_optimizer == "adam":
            self.enc_opt: torch.optim.Optimizer = torch.optim.Adam(
                self.enc_params, lr=self.cfg.enc_lr
            )
        else:
            self.enc_opt = torch.optim.SGD(self.enc_params, lr=self.cfg.enc_lr)
        self.dec_opt = torch.optim.Adam(self.dec_params, lr=self.cfg.dec_lr)
        self._enc_objective = self._wrap(self.enc_params, self.inference_loss)
        self._dec_objective = self._wrap(self.dec_params, self._learning_step_loss)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, Any]] = []
        self.wall_time = 0.0
        if self.world_size > 1:
            self._reseed_rank()

    # ------------------------------------------------------------------ sizes

    @property
    def total_steps(self) -> int:
        """Iterations of the whole run: ``epochs`` × minibatches per epoch, else ``steps``."""
        if self.cfg.epochs is not None:
            per_epoch = self.data.steps_per_epoch(self.cfg.batch_size)
            return self.cfg.epochs * max(1, per_epoch // self.world_size)
        return self.cfg.steps

    def _wrap(
        self, params: list[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> nn.Module:
        """The group's objective module, wrapped in DDP when data-parallel (which broadcasts rank
        0's parameters at construction)."""
        module = _GroupObjective(params, loss_fn)
        if self.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=self.cfg.ddp_find_unused
        )

    def _reseed_rank(self) -> None:
        """Distinct noise streams per rank (data-parallel runs only)."""
        torch.manual_seed(self.cfg.seed + 1_000_003 * self.rank + 7919 * self.step + 1)

    # ------------------------------------------------------------------ objective pieces

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ = x + η ε, flattened to (B, D), fresh noise on every call."""
        x = x.reshape(x.shape[0], -1)
        return x + self.cfg.eta * torch.randn_like(x) if self.cfg.eta > 0 else x

    def _encode_fn(self, phi: dict[str, torch.Tensor] | None):
        """x (M, D) → (mu, logvar) through the encoder, with parameters ``phi`` if given."""
        m = self.model
        shape = m.data_shape

        def encode(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            v = v.reshape(-1, *shape)
            h = m.encoder(v) if phi is None else functional_call(m.encoder, phi, (v,))
            return m.split(h)

        return encode

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., L) → x_mean (..., D)."""
        return self.model.decode(z).reshape(*z.shape[:-1], -1)

    def inference_loss(self, x: torch.Tensor, phi: dict[str, torch.Tensor] | None = None):
        """Batch mean of the inference objective at encoder parameters ``phi`` (default: current)."""
        cfg, m = self.cfg, self.model
        xt = self._noisy(x)
        encode = self._encode_fn(phi)
        n = cfg.n_samples
        if self.inference == "kl":
            mu, logvar = encode(xt)
            z = O.sample_posterior(mu, logvar, n, reparam=True)
            loss = O.elbo(xt, self._decode(z), m.log_sigma2, mu, logvar)
        elif self.inference == "fd":
            mu, logvar = encode(xt)
            loss = O.posterior_fd_loss(
                xt, m.decode, mu, logvar, m.log_sigma2, n_samples=n, reparam=cfg.fd_reparam
            )
        else:
            loss = O.fae_loss(xt, encode, m.decode, m.log_sigma2, n_samples=n, reparam=True)
        return loss.mean()

    def learning_loss(
        self, x: torch.Tensor, phi: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Batch mean of the learning objective for θ.

        With ``phi=None`` (Algorithm 1) samples z ~ q are detached; with ``phi`` (the bi-level
        unrolled parameters) they are reparametrised through φ_K(θ).
        """
        cfg, m = self.cfg, self.model
        bilevel = phi is not None
        xt = self._noisy(x)
        encode = self._encode_fn(phi)
        n = cfg.n_samples
        if self.learning == "fae":
            loss = O.fae_loss(xt, encode, m.decode, m.log_sigma2, n_samples=n, reparam=bilevel)
            return loss.mean()
        with torch.set_grad_enabled(bilevel or self.learning == "elbo"):
            mu, logvar = encode(xt)
        if not bilevel:
            mu, logvar = mu.detach(), logvar.detach()
        z = O.sample_posterior(mu, logvar, n, reparam=True)
        x_mean = self._decode(z)
        if self.learning == "elbo":
            loss = O.elbo(xt, x_mean, m.log_sigma2, mu, logvar)
        elif self.learning == "m1":
            loss = O.m1(xt, x_mean, m.log_sigma2)
        elif self.learning == "m2":
            loss = O.m2(xt, x_mean, m.log_sigma2)
        else:
            psi = O.encoder_x_score(encode, xt, z, create_graph=bilevel)
            loss = O.m3(xt, x_mean, m.log_sigma2, psi)
        return loss.mean()

    # ------------------------------------------------------------------ updates

    def _update(
        self,
        which: str,
        opt: torch.optim.Optimizer,
        params: list[nn.Parameter],
        objective: nn.Module,
        x: torch.Tensor,
    ) -> float:
        """One optimiser step of one group; returns the loss (mean over ranks).

        ``backward(inputs=params)`` fills only this group's gradients (under DDP, averaged over
        the ranks by its reducer); a parameter the loss does not reach gets a zero gradient, so
        Adam's moments advance for every parameter exactly as in a single-process run. Raises
        :class:`TrainingDiverged` (on every rank alike) if the loss is non-finite on any rank.
        """
        opt.zero_grad(set_to_none=True)
        self._inner_bad: torch.Tensor | None = None
        loss = objective(x)
        loss.backward(inputs=params)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bad = self._inner_bad if self._inner_bad is not None else loss.new_zeros(())
        stats = torch.stack([loss.detach(), bad.to(loss.dtype)]).to(torch.float64)
        if self.world_size > 1:
            dist.all_reduce(stats)
            stats[0] /= self.world_size
        value, inner_bad = stats.tolist()
        if inner_bad > 0 or not math.isfinite(value):
            what = "bi-level inner" if inner_bad > 0 else which
            shown = "non-finite" if inner_bad > 0 else value
            raise TrainingDiverged(
                f"training diverged: objective {self.cfg.objective} ({what} loss = {shown}) at "
                f"step {self.step + 1} (dataset {self.cfg.dataset}, seed {self.cfg.seed}); "
                "try smaller learning rates"
            )
        opt.step()
        return value

    def _learning_step_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The θ-update's loss: Algorithm 1's learning loss, or the bi-level one (``k_bi`` > 0)."""
        if self.cfg.k_bi > 0:
            with backend("reference"):
                return self._bilevel_learning_loss(x)
        return self.learning_loss(x)

    def _bilevel_learning_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Unroll k_bi SGD encoder steps as functions of θ; the learning loss at φ_K(θ).

        A non-finite inner loss is counted in ``self._inner_bad`` (checked, over all ranks, by
        :meth:`_update`) rather than raised here, so no rank leaves a collective behind.
        """
        phi = {
            k: p.detach().clone().requires_grad_(True)
            for k, p in self.model.encoder.named_parameters()
        }
        bad = x.new_zeros((), dtype=torch.float64)
        for _ in range(self.cfg.k_bi):
            inner = self.inference_loss(x, phi)
            bad = bad + (~torch.isfinite(inner.detach())).to(bad.dtype)
            grads = torch.autograd.grad(inner, list(phi.values()), create_graph=True)
            phi = {k: p - self.cfg.bi_lr * g for (k, p), g in zip(phi.items(), grads)}
        self._inner_bad = bad
        loss = self.learning_loss(x, phi)
        with torch.no_grad():
            for k, p in self.model.encoder.named_parameters():
                p.copy_(phi[k].detach())
                if self.world_size > 1:  # each rank unrolled on its own batch: average φ_K
                    dist.all_reduce(p)
                    p /= self.world_size
        return loss

    def train_step(self) -> dict[str, float]:
        """One iteration: an encoder update and, every ``k_enc``-th iteration, a decoder update.

        Returns the losses of the iteration (``enc_loss`` and, when θ was updated, ``dec_loss``;
        means over ranks when data-parallel) and σ². Raises :class:`TrainingDiverged` on a
        non-finite loss or σ².
        """
        cfg = self.cfg
        index = self.step * self.world_size + self.rank
        x = self.data.batch(index, cfg.batch_size, cfg.seed).to(self.device, self.dtype)
        self.model.train()
        rec: dict[str, float] = {"step": self.step + 1}
        rec["enc_loss"] = self._update(
            "inference", self.enc_opt, self.enc_params, self._enc_objective, x
        )
        if (self.step + 1) % cfg.k_enc == 0:
            rec["dec_loss"] = self._update(
                "learning", self.dec_opt, self.dec_params, self._dec_objective, x
            )
        rec["sigma2"] = float(torch.exp(self.model.log_sigma2.detach()))
        if not math.isfinite(rec["sigma2"]):
            raise TrainingDiverged(
                f"training diverged: objective {cfg.objective}: σ² = {rec['sigma2']} at step "
                f"{self.step + 1}"
            )
        self.step += 1
        self.history.append(rec)
        return rec

    # ------------------------------------------------------------------ evaluation & I/O

    def evaluate(self, n_is: int | None = None) -> dict[str, Any]:
        """Test metrics (:func:`vsm.metrics.evaluate`) with a fixed evaluation seed; training's
        RNG stream is left untouched."""
        from .metrics import evaluate

        cfg = self.cfg
        x = self.data.test.to(self.device, self.dtype)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed + 12345)
            res = evaluate(
                self.model,
                x,
                eta=cfg.eta,
                n_is=cfg.n_is if n_is is None else n_is,
                is_proposal=cfg.is_proposal,
            )
        res = {"step": self.step, "objective": cfg.objective, "dataset": cfg.dataset, **res}
        res["wall_time_s"] = self.wall_time
        self.evals.append({k: v for k, v in res.items() if not k.startswith("posterior_sd_")})
        return res

    def _rng_state(self) -> dict[str, torch.Tensor]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (see :func:`save_checkpoint`).

        Data-parallel: a collective (every rank must call it); ``rng["ranks"]`` holds every
        rank's RNG state so that a resume with the same number of ranks is exact.
        """
        rng: dict[str, Any] = self._rng_state()
        if self.world_size > 1:
            ranks: list[Any] = [None] * self.world_size
            dist.all_gather_object(ranks, self._rng_state())
            rng["ranks"] = ranks
        return {
            "format": "vsm-checkpoint-1",
            "config": dataclasses.asdict(self.cfg),
            "model_spec": self.model.spec(),
            "model": self.model.state_dict(),
            "enc_opt": self.enc_opt.state_dict(),
            "dec_opt": self.dec_opt.state_dict(),
            "step": self.step,
            "rng": rng,
            "history": self.history,
            "evals": self.evals,
            "wall_time": self.wall_time,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (model, optimisers, step, RNG, history)."""
        self.model.load_state_dict(state["model"])
        self.enc_opt.load_state_dict(state["enc_opt"])
        self.dec_opt.load_state_dict(state["dec_opt"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.evals = list(state.get("evals", []))
        self.wall_time = float(state.get("wall_time", 0.0))
        rng = state["rng"]
        if self.world_size > 1:
            ranks = rng.get("ranks")
            if ranks is None or len(ranks) != self.world_size:
                self._reseed_rank()  # a different number of ranks: valid, not a replay
                return
            rng = ranks[self.rank]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def save(self, path: str) -> None:
        """Write a checkpoint atomically (temporary file + ``os.replace``).

        Data-parallel: every rank calls it (it gathers the ranks' RNG states); rank 0 writes.
        """
        save_checkpoint(self, path)

    @classmethod
    def from_checkpoint(
        cls, path: str, *, overrides: dict[str, Any] | None = None, **kwargs: Any
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint; ``overrides`` may change e.g. ``steps``."""
        state = load_checkpoint(path)
        cfg_d = dict(state["config"])
        cfg_d.update(overrides or {})
        trainer = cls(TrainConfig(**cfg_d), **kwargs)
        trainer.load_state_dict(state)
        return trainer

    def _write_eval(self, res: dict[str, Any]) -> None:
        if self.out_dir is None:
            return
        _atomic_json(res, os.path.join(self.out_dir, "metrics", f"step_{self.step:07d}.json"))

    def _log(self, msg: str, bar: Any) -> None:
        if self.log is None:
            return
        if bar is not None and not bar.disable:
            bar.write(msg)
        else:
            self.log(msg)

    def run(self) -> dict[str, Any]:
        """Train up to :attr:`total_steps`, evaluating every ``eval_every`` iterations and at the
        end; returns the final metrics. With ``out_dir``: ``checkpoint.pt``,
        ``metrics/step_*.json``, ``metrics.json`` (final), ``history.json`` and ``loss.png``."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        total = self.total_steps
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        bar = tqdm(total=total, initial=self.step, disable=not show, desc=cfg.objective,
                   dynamic_ncols=True)
        window: list[dict[str, float]] = []
        try:
            while self.step < total:
                t0 = time.perf_counter()
                rec = self.train_step()
                self.wall_time += time.perf_counter() - t0
                window.append(rec)
                bar.update(1)
                if self.step % max(1, cfg.log_every) == 0 or self.step == total:
                    msg = self._format_window(window, total)
                    bar.set_postfix_str(msg.split("  ", 1)[1] if "  " in msg else msg)
                    self._log(msg, bar)
                    window = []
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < total:
                    res = self.evaluate(n_is=0)
                    self._write_eval(res)
                    self._log(_format_eval(res), bar)
                    if self._run_dir is not None:
                        self.save(os.path.join(self._run_dir, "checkpoint.pt"))
        finally:
            bar.close()
        res = self.evaluate()
        self._write_eval(res)
        self._log(_format_eval(res), None)
        if self._run_dir is not None:
            self.save(os.path.join(self._run_dir, "checkpoint.pt"))
        if self.out_dir is not None:
            _atomic_json(res, os.path.join(self.out_dir, "metrics.json"))
            _atomic_json(self.history, os.path.join(self.out_dir, "history.json"))
            from .plots import loss_curve

            loss_curve(self.history, os.path.join(self.out_dir, "loss.png"),
                       title=f"{cfg.objective} on {cfg.dataset}")
        return res

    def _format_window(self, window: list[dict[str, float]], total: int) -> str:
        parts = [f"step {self.step}/{total}"]
        for key in ("enc_loss", "dec_loss"):
            vals = [r[key] for r in window if key in r]
            if vals:
                parts.append(f"{key} {sum(vals) / len(vals):.4g}")
        parts.append(f"sigma2 {window[-1]['sigma2']:.3g}")
        return "  ".join(parts)


def _format_eval(res: dict[str, Any]) -> str:
    keys = ("neg_elbo", "mse", "mmd2", "posterior_fd", "is_nll", "sm_loss")
    vals = "  ".join(f"{k} {res[k]:.4g}" for k in keys if isinstance(res.get(k), float))
    return f"eval @ step {res['step']}: {vals}"


def save_checkpoint(trainer: Trainer, path: str) -> None:
    """Atomically write ``trainer``'s :meth:`Trainer.state_dict` to ``path`` (torch.save).

    Data-parallel: a collective; every rank calls it and rank 0 writes the file.
    """
    state = trainer.state_dict()
    if trainer.rank == 0:
        _atomic_torch_save(state, os.fspath(path))


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (raises ValueError if it is not one)."""
    state = torch.load(os.fspath(path), map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != "vsm-checkpoint-1":
        raise ValueError(f"path: {path} is not a vsm checkpoint")
    return state


def model_from_checkpoint(path: str) -> tuple[GaussianVAE, TrainConfig]:
    """The trained model (CPU, its training dtype) and config stored in a checkpoint."""
    state = load_checkpoint(path)
    cfg = TrainConfig(**state["config"])
    model = from_spec(state["model_spec"]).to(getattr(torch, cfg.dtype))
    model.load_state_dict(state["model"])
    return model, cfg
