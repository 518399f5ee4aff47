"""Figure 3 at convergence: the eight objectives on the 2-D data sets, judged claim by claim.

For each estimator family (``variant``: "vsm", and "paper" = the authors' 2-D code's estimators
and parametrisation, ``TrainConfig(variant="paper")``), data set ("sparse", "mixture"),
objective (kl-elbo, kl-m1, fd-m1, kl-m2, fd-m2, kl-m3, fd-m3, fae), number of encoder updates per
decoder update K_enc and seed, one Gaussian VAE is trained by :class:`vsm.train.Trainer`
(Algorithm 1, no bi-level step) until it has converged, and is evaluated on held-out data. The
seeds of one setting train together as one batched run (``TrainConfig(seeds=...)``) when the
trainer offers it, else one after another.

The paper's 2-D settings (source: MATH.md §9 "Synthetic 2-D", from the authors'
``run_bilevel_toy.py`` / ``models/bilevels.py``, and issue 14's runs of that script):

- no bi-level step (``K=0`` in the authors' script: with its default one differentiated step even
  L_θ fails, so Fig. 3 was most likely made without it);
- an *iteration* is one decoder update preceded by K_enc encoder updates on the same minibatch
  (the authors' ``M``), so K_enc does not starve the decoder (the trainer's ``steps`` count
  encoder updates: a run of I iterations is ``steps = I · K_enc``);
- the ELBO baseline (kl-elbo): one Adam at 1e-4 for encoder and decoder. The authors' script
  ignores ``M`` for it, so kl-elbo is run once, at K_enc = 1, and is the same baseline at every
  K_enc;
- the score-matching objectives: decoder (and σ) Adam 1e-4; encoder plain SGD at 1e-2 for KLD
  inference and 1e-3 for FD inference. FAE is not in the authors' 2-D script; it gets the
  optimiser of their image code's FAE, Adam at the decoder's rate for both networks (with plain
  SGD, vsm's FAE encoder step diverged within 200 iterations on "mixture" at 1e-3 and within 20
  at 1e-2);
- batch 1000; N = 3 posterior samples per datum for vsm (with N = 1, vsm's per-datum L_S is
  exactly L_θ, MATH.md §6) and 1 for the paper variant (the authors' 2-D code draws one z per
  datum and averages over the minibatch instead, MATH.md §9 "Code caveat");
- hidden width 100 on "sparse" and 30 on "mixture" (the script's defaults; at width 30 on
  "sparse" even the authors' ELBO loses a latent dimension); L = 2; η = 0;
- evaluation on 5000 test points: NLL = −log p̂(x) by importance sampling with the prior as
  proposal and SM loss Ĵ(x) ("FD minus a constant", MATH.md §9) from K = 10⁴ prior samples
  *shared by all test points*, as the authors' ``log_likelihood``/``FD`` draw them (here the same
  samples for every objective and variant of a seed, so paired differences do not carry IS
  noise).

Convergence (:func:`convergence`): a run stops once, over the last 10 % of its iterations,
σ² changed by less than ``tol_sigma2`` (relative) and the decoder loss by less than
``tol_loss`` (relative to max(|loss|, 1)) plus twice the standard error of that change (the two
halves of the window are compared), checked every ``check_every`` iterations after
``min_iters``; or at the cap ``max_iters``. Each run records whether it converged. A batched
setting stops when all its seeds have converged.

Posterior-collapse diagnostics per run: the spread of the encoder means over the test set
(SD of μ_j(x) per latent dim j), the mean posterior SD (mean of s_j(x)), and the number of
active dimensions (Var_x μ_j(x) > 0.01, Burda et al. 2016's "active units").

The claims of the paper's §5.1 (and §5's remark on FAE) are judged by
:mod:`vsm.reproduce.claims` from paired differences of the test NLL over seeds (thresholds
``eq_tol`` and ``fail_margin``, nats); see :data:`CLAIMS`. ``results.json`` holds every run,
the per-setting table, the claim table and the verdicts; ``fig3.png`` the figure (both
variants); ``fig3.md`` the markdown section of ``docs/RESULTS_reproduce.md``
(``python -m vsm.reproduce.fig3 render out/fig3/results.json --doc docs/RESULTS_reproduce.md``
splices it in).

Modes: ``quick()`` is a smoke test (minutes; far from converged); ``medium()`` is sized to
finish in about 30 minutes on a quiet 2-core CPU with 2 worker processes of 1 thread (see its
docstring for what it changes); ``full()`` is the paper's setting with convergence (hours).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import claims as C
from ._common import Timer, plt, prepare_out, previous_results, save_figure, write_results

OBJECTIVES = ("kl-elbo", "kl-m1", "fd-m1", "kl-m2", "fd-m2", "kl-m3", "fd-m3", "fae")
VARIANTS = ("vsm", "paper")
EVAL_SEED = 1_000_003  # the IS samples of seed s come from EVAL_SEED + s (same for every objective)
ACTIVE_VAR = 0.01  # a latent dim is active when Var_x mu_j(x) exceeds this (Burda et al. 2016)


@dataclass
class Fig3Config:
    """Settings of the Figure 3 reproduction (see the module docstring; iterations count decoder
    updates)."""

    variants: tuple[str, ...] = VARIANTS
    datasets: tuple[str, ...] = ("sparse", "mixture")
    objectives: tuple[str, ...] = OBJECTIVES
    k_encs: tuple[int, ...] = (1, 10)
    # objectives run at every K_enc of k_encs; the others only at k_encs[0] (kl-elbo: always 1)
    sweep_objectives: tuple[str, ...] = OBJECTIVES
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_iters: int = 100_000
    min_iters: int = 10_000
    check_every: int = 1000
    window: float = 0.1
    tol_sigma2: float = 0.01
    tol_loss: float = 0.01
    batch_size: int = 1000
    n_samples: int = 3
    paper_n_samples: int = 1
    width_sparse: int = 100
    width_mixture: int = 30
    dec_lr: float = 1e-4
    elbo_lr: float = 1e-4
    enc_lr_kl: float = 1e-2
    enc_lr_fd: float = 1e-3
    n_test: int = 5000
    n_is: int = 10_000
    eq_tol: float = 0.1
    fail_margin: float = 0.5
    batched: bool = True
    workers: int = 1
    seed: int = 0
    threads: int = 1

    @classmethod
    def quick(cls) -> Fig3Config:
        """Smoke test (2 minutes on the loaded 2-core CPU): 200 iterations of batch 250, K_enc ∈
        {1, 2}, 2 seeds, 1000 test points and IS samples, tolerances 10× tighter (the paper's
        rates hardly move σ² in 200 iterations). Far from trained: the numbers test the code,
        not the paper."""
        return cls(k_encs=(1, 2), seeds=(0, 1), max_iters=200, min_iters=100, check_every=50,
                   tol_sigma2=1e-3, tol_loss=1e-3, batch_size=250, n_test=1000, n_is=1000)

    @classmethod
    def medium(cls) -> Fig3Config:
        """About 30 minutes on a quiet 2-core CPU (2 worker processes of 1 thread), 5 seeds.

        What it changes from :meth:`full`, to fit: every learning rate ×10 for the Adam groups
        (decoder and σ, and the ELBO baseline: 1e-3; the SGD encoder rates stay 1e-2 / 1e-3, so
        the encoder is relatively slower than in the paper, which favours K_enc = 10); batch 500;
        3000 iterations at most (≥ 1000, checked every 250); K_enc = 10 only for kl-m1 (the
        "more encoder updates help" claim), every other objective at K_enc = 1; 2000 test points.
        IS keeps 10⁴ prior samples.

        Cost, measured per iteration with 5 seeds batched at 1 thread on the 2-core machine under
        load (load average ≈ 4): all 18 settings of one variant together 1.08 s (vsm, N = 3) and
        0.41 s (paper, N = 1); the largest single setting (sparse, kl-m1, K_enc = 10, vsm) 0.30 s.
        3000 iterations of both variants in 2 balanced workers ≈ 37 min at that load, ≈ 20 min on
        a quiet machine (each process then has a whole core); settings that converge earlier stop
        earlier.
        """
        return cls(k_encs=(1, 10), sweep_objectives=("kl-m1",), max_iters=3000, min_iters=1000,
                   check_every=250, batch_size=500, dec_lr=1e-3, elbo_lr=1e-3, n_test=2000,
                   workers=2)

    @classmethod
    def full(cls) -> Fig3Config:
        """The paper's 2-D setting (module docstring), both variants, 5 seeds, K_enc ∈ {1, 10}
        for every objective, trained to convergence (≥ 10⁴ iterations, the paper's run length;
        cap 10⁵). Many CPU hours."""
        return cls(workers=2)

    def thresholds(self) -> C.Thresholds:
        """The claim thresholds of this config."""
        return C.Thresholds(eq_tol=self.eq_tol, fail_margin=self.fail_margin)

    def width(self, dataset: str) -> int:
        """Hidden width for ``dataset`` (100 on "sparse", else 30, or as configured)."""
        return self.width_sparse if dataset == "sparse" else self.width_mixture

    def k_encs_of(self, objective: str) -> tuple[int, ...]:
        """The K_enc values ``objective`` is run at."""
        if objective == "kl-elbo":
            return (1,)
        return tuple(self.k_encs) if objective in self.sweep_objectives else (self.k_encs[0],)


# ------------------------------------------------------------------------------ settings


def variants_available() -> tuple[str, ...]:
    """The estimator families this build's trainer offers (``TrainConfig.variant``'s choices;
    ("vsm",) when the trainer has no ``variant`` option)."""
    from ..train import TrainConfig
    from ..train.config import choices

    hints = typing.get_type_hints(TrainConfig)
    if "variant" not in hints:
        return ("vsm",)
    return tuple(choices(hints["variant"])) or ("vsm",)


def batched_seeds_available() -> bool:
    """True when :class:`vsm.train.TrainConfig` has ``seeds`` (many seeds in one batched run)."""
    from ..train import TrainConfig

    return "seeds" in {f.name for f in dataclasses.fields(TrainConfig)}


def optimiser_settings(objective: str, cfg: Fig3Config) -> dict[str, Any]:
    """The paper's 2-D optimisers for ``objective`` (module docstring) as TrainConfig fields."""
    if objective == "kl-elbo":
        return {"enc_optimizer": "adam", "enc_lr": cfg.elbo_lr, "dec_lr": cfg.elbo_lr}
    if objective == "fae":
        return {"enc_optimizer": "adam", "enc_lr": cfg.dec_lr, "dec_lr": cfg.dec_lr}
    rate = cfg.enc_lr_kl if objective.startswith("kl-") else cfg.enc_lr_fd
    return {"enc_optimizer": "sgd", "enc_lr": rate, "dec_lr": cfg.dec_lr}


def train_config(variant: str, dataset: str, objective: str, k_enc: int,
                 seeds: Sequence[int], cfg: Fig3Config) -> Any:
    """The :class:`vsm.train.TrainConfig` of one setting: ``seeds`` trained as one batched run
    when there are several (needs :func:`batched_seeds_available`), else the single ``seeds[0]``.
    """
    from ..train import TrainConfig

    kw: dict[str, Any] = {
        "objective": objective, "dataset": dataset, "steps": cfg.max_iters * k_enc,
        "batch_size": cfg.batch_size, "k_enc": k_enc, "width": cfg.width(dataset),
        "n_samples": cfg.paper_n_samples if variant == "paper" else cfg.n_samples,
        "seed": seeds[0], "n_test": cfg.n_test, "n_is": 0, "log_every": 10**9,
        "threads": cfg.threads, **optimiser_settings(objective, cfg),
    }
    if len(seeds) > 1:
        if not batched_seeds_available():
            raise ValueError("seeds: this trainer has no TrainConfig.seeds; train one seed at a "
                             "time")
        kw["seeds"] = tuple(seeds)
    if "variant" in {f.name for f in dataclasses.fields(TrainConfig)}:
        kw["variant"] = variant
    elif variant != "vsm":
        raise ValueError(f"variant: this trainer offers only 'vsm', not {variant!r}")
    return TrainConfig(**kw)


def settings(cfg: Fig3Config) -> list[tuple[str, str, str, int]]:
    """Every (variant, dataset, objective, K_enc) of the sweep, in run order."""
    return [(v, ds, obj, k) for ds in cfg.datasets for obj in cfg.objectives
            for k in cfg.k_encs_of(obj) for v in cfg.variants]


# ------------------------------------------------------------------------------ convergence


def convergence(dec_loss: Sequence[float] | np.ndarray, sigma2: Sequence[float] | np.ndarray, *,
                window: float = 0.1, tol_sigma2: float = 0.01, tol_loss: float = 0.01,
                min_iters: int = 0, z: float = 2.0) -> dict[str, Any]:
    """Has a run converged? (the module docstring's criterion).

    Args:
        dec_loss, sigma2: one value per iteration so far (the decoder loss of the iteration's
            decoder update and σ² after it).
        window: the fraction of iterations looked at (the last 10 %).
        tol_sigma2: the largest relative change of σ² over the window.
        tol_loss: the largest change of the decoder loss between the window's two halves,
            relative to max(|mean|, 1), on top of ``z`` standard errors of that change.
        min_iters: below this many iterations a run has not converged.

    Returns:
        ``{"converged": bool, "sigma2_change": float, "loss_change": float,
        "loss_allowed": float}`` (changes NaN while there are too few iterations).
    """
    loss = np.asarray(dec_loss, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    if loss.shape != s2.shape or loss.ndim != 1:
        raise ValueError(f"dec_loss, sigma2: expected two 1-D series of one length, got shapes "
                         f"{loss.shape} and {s2.shape}")
    if not 0 < window <= 0.5:
        raise ValueError(f"window: expected a fraction in (0, 0.5], got {window}")
    n = loss.shape[0]
    w = int(window * n)
    nan = float("nan")
    out = {"converged": False, "sigma2_change": nan, "loss_change": nan, "loss_allowed": nan}
    if n < max(min_iters, 1) or w < 4:
        return out
    if not (np.all(np.isfinite(loss[-w - 1:])) and np.all(np.isfinite(s2[-w - 1:]))):
        return out
    ds2 = abs(s2[-1] - s2[-w - 1]) / abs(s2[-w - 1])
    first, second = loss[-w:-(w // 2)], loss[-(w // 2):]
    a, b = float(first.mean()), float(second.mean())
    se = math.sqrt(first.var(ddof=1) / first.size + second.var(ddof=1) / second.size)
    allowed = tol_loss * max(abs(a), abs(b), 1.0) + z * se
    out.update(sigma2_change=float(ds2), loss_change=abs(b - a), loss_allowed=allowed)
    out["converged"] = bool(ds2 <= tol_sigma2 and abs(b - a) <= allowed)
    return out


# ------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate_model(model: Any, x: torch.Tensor, *, n_is: int, seed: int) -> dict[str, Any]:
    """Test metrics of one trained 2-D model on ``x`` (N, D).

    ``is_nll``, ``sm_loss``, ``is_ess``: importance sampling with n_is prior samples shared by
    all test points (generator seed ``EVAL_SEED + seed``); ``sigma2``; collapse diagnostics
    ``mu_spread`` (SD over x of μ_j(x), per dim), ``post_sd`` (mean over x of s_j(x), per dim),
    ``active_dims`` (dims with Var_x μ_j(x) > 0.01).
    """
    from ..importance import ISAccumulator

    x = x.reshape(x.shape[0], -1)
    B, D = x.shape
    L = int(model.latent_dim)
    gen = torch.Generator().manual_seed(EVAL_SEED + int(seed))
    z = torch.randn(n_is, L, generator=gen, dtype=torch.float64).to(x.dtype)
    log_prior = (-0.5 * (z.double() ** 2 + math.log(2 * math.pi))).sum(-1)
    acc = ISAccumulator(x, model.log_sigma2)
    chunk = max(1, (1 << 22) // max(1, B * D))
    for k0 in range(0, n_is, chunk):
        zc = z[k0:k0 + chunk]
        kc = zc.shape[0]
        xm = model.decode(zc).reshape(1, kc, D).expand(B, kc, D).contiguous()
        lp = log_prior[k0:k0 + chunk].reshape(1, kc).expand(B, kc).contiguous()
        acc.add(xm, lp, lp)
    res = acc.result()
    mu, logvar = model.encode(x)
    mu, sd = mu.double(), torch.exp(0.5 * logvar.double())
    return {
        "is_nll": float(-torch.as_tensor(res.log_p, dtype=torch.float64).mean()),
        "sm_loss": float(torch.as_tensor(res.sm_loss, dtype=torch.float64).mean()),
        "is_ess": float(torch.as_tensor(res.ess, dtype=torch.float64).mean()),
        "sigma2": float(torch.exp(model.log_sigma2.detach().double())),
        "mu_spread": mu.std(0).tolist(),
        "post_sd": sd.mean(0).tolist(),
        "active_dims": int((mu.var(0) > ACTIVE_VAR).sum()),
    }


# ------------------------------------------------------------------------------ training


class _Series:
    """Per-seed decoder-loss and σ² series (one value per iteration), saved beside checkpoints."""

    def __init__(self, seeds: Sequence[int]):
        self.loss: dict[int, list[float]] = {s: [] for s in seeds}
        self.sigma2: dict[int, list[float]] = {s: [] for s in seeds}
        self.converged_at: dict[int, int | None] = {s: None for s in seeds}
        self.iters = 0
        self.wall = 0.0

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"iters": self.iters, "wall": self.wall}
        arrays |= {f"loss_{s}": np.asarray(v) for s, v in self.loss.items()}
        arrays |= {f"sigma2_{s}": np.asarray(v) for s, v in self.sigma2.items()}
        arrays |= {f"conv_{s}": np.asarray(-1 if v is None else v)
                   for s, v in self.converged_at.items()}
        tmp = path.with_name(path.name + f".tmp.{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, seeds: Sequence[int]) -> _Series:
        out = cls(seeds)
        with np.load(path) as f:
            out.iters, out.wall = int(f["iters"]), float(f["wall"])
            for s in seeds:
                out.loss[s] = f[f"loss_{s}"].tolist()
                out.sigma2[s] = f[f"sigma2_{s}"].tolist()
                c = int(f[f"conv_{s}"])
                out.converged_at[s] = None if c < 0 else c
        return out


class _Driver:
    """One trainer (batched seeds or a single seed) seen per seed."""

    def __init__(self, trainer: Any, seeds: Sequence[int]):
        self.trainer = trainer
        self.batched = hasattr(trainer, "model_of")
        self.seeds = list(seeds)
        self.failed: dict[int, str] = {}

    def alive(self) -> list[int]:
        seeds = self.trainer.seeds if self.batched else self.seeds
        return [s for s in seeds if s not in self.failed]

    def diverged(self) -> dict[int, str]:
        out = {d["seed"]: d["message"] for d in self.trainer.diverged} if self.batched else {}
        return out | self.failed

    def iteration(self, k_enc: int, series: _Series) -> None:
        """K_enc encoder updates and one decoder update; appends to ``series``."""
        from ..train import TrainingDiverged

        try:
            for _ in range(k_enc):
                self.trainer.train_step()
        except TrainingDiverged as e:
            for s in self.alive():
                self.failed[s] = str(e)[:300]
            return
        hist = self.trainer.history
        for s in self.alive():
            rec = (hist[s] if self.batched else hist)[-1]
            series.loss[s].append(float(rec["dec_loss"]))
            series.sigma2[s].append(float(rec["sigma2"]))
        for h in (hist.values() if self.batched else [hist]):
            h.clear()  # the series keep what is needed; histories would grow with the run

    def model(self, seed: int) -> Any:
        return self.trainer.model_of(seed) if self.batched else self.trainer.model

    def test(self, seed: int) -> torch.Tensor:
        if self.batched:
            return self.trainer.datasets[self.trainer.seeds.index(seed)].test
        return self.trainer.data.test


def _conv(series: _Series, seed: int, cfg: Fig3Config) -> dict[str, Any]:
    return convergence(series.loss[seed], series.sigma2[seed], window=cfg.window,
                       tol_sigma2=cfg.tol_sigma2, tol_loss=cfg.tol_loss, min_iters=cfg.min_iters)


def _curve(values: Sequence[float], points: int = 60) -> list[list[float]]:
    """[iteration, value] at about ``points`` evenly spaced iterations (1-based)."""
    n = len(values)
    if n == 0:
        return []
    idx = sorted({round(i) for i in np.linspace(0, n - 1, min(points, n))})
    return [[i + 1, float(values[i])] for i in idx]


def _save(drv: _Driver, series: _Series, path: Path | None, series_path: Path | None) -> None:
    if path is not None and series_path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        drv.trainer.save(str(path))
        series.save(series_path)


def _all_converged(drv: _Driver, series: _Series, cfg: Fig3Config) -> bool:
    """Whether every live seed has converged (noting the first iteration each one did)."""
    done = True
    for s in drv.alive():
        ok = _conv(series, s, cfg)["converged"]
        if ok and series.converged_at[s] is None:
            series.converged_at[s] = series.iters
        done = done and ok
    return done


def _train_loop(drv: _Driver, series: _Series, k_enc: int, cfg: Fig3Config, path: Path | None,
                series_path: Path | None) -> None:
    """Iterations until every live seed has converged (checked every ``check_every`` from
    ``min_iters``) or ``max_iters``; a signal checkpoints after the current iteration and raises
    :class:`vsm.train.TrainingInterrupted`. Writes the checkpoint at the end too."""
    from ..train import TrainingInterrupted
    from ..train.stopping import catch_signals

    with catch_signals(defer=True) as stop:
        while series.iters < cfg.max_iters and drv.alive():
            if (series.iters and series.iters % cfg.check_every == 0
                    and series.iters >= cfg.min_iters and _all_converged(drv, series, cfg)):
                break
            t0 = time.perf_counter()
            drv.iteration(k_enc, series)
            series.iters += 1
            series.wall += time.perf_counter() - t0
            if stop.signum is not None:
                _save(drv, series, path, series_path)
                raise TrainingInterrupted(stop.signum, step=series.iters,
                                          checkpoint=None if path is None else str(path))
    _save(drv, series, path, series_path)


def train_setting(variant: str, dataset: str, objective: str, k_enc: int, seeds: Sequence[int],
                  cfg: Fig3Config, ckpt_dir: Path | None = None) -> list[dict[str, Any]]:
    """Train ``seeds`` of one setting until converged (or the cap) and evaluate them; one record
    per seed. The seeds train as one batched run when ``cfg.batched`` and the trainer offers it,
    else one after another.

    With ``ckpt_dir``: SIGINT/SIGTERM write a checkpoint there (``ckpt.pt`` or ``ckpt-s<seed>.pt``
    plus the convergence series ``*.series.npz``) after the current iteration and raise
    :class:`vsm.train.TrainingInterrupted`; an existing checkpoint is continued. Both are also
    written when training ends (before evaluation).
    """
    from ..train import Trainer

    batched = cfg.batched and batched_seeds_available()
    groups = [list(seeds)] if batched else [[s] for s in seeds]
    records: list[dict[str, Any]] = []
    for group in groups:
        gcfg = train_config(variant, dataset, objective, k_enc, group, cfg)
        name = "ckpt" if batched else f"ckpt-s{group[0]}"
        path = None if ckpt_dir is None else ckpt_dir / f"{name}.pt"
        series_path = None if ckpt_dir is None else ckpt_dir / f"{name}.series.npz"
        if (path is not None and series_path is not None and path.is_file()
                and series_path.is_file()):
            trainer = Trainer.from_checkpoint(str(path), progress=False)
            series = _Series.load(series_path, group)
        else:
            trainer = Trainer(gcfg, progress=False)
            series = _Series(group)
        drv = _Driver(trainer, group)

        _train_loop(drv, series, k_enc, cfg, path, series_path)
        div = drv.diverged()
        for s in group:
            rec: dict[str, Any] = {"variant": variant, "dataset": dataset, "objective": objective,
                                   "k_enc": k_enc, "seed": s, "iterations": series.iters,
                                   "train_wall_s": series.wall / len(group)}
            if s in div:
                rec.update(diverged=True, converged=False, error=div[s][:300],
                           iterations=len(series.loss[s]))
            else:
                conv = _conv(series, s, cfg)
                if conv["converged"] and series.converged_at[s] is None:
                    series.converged_at[s] = series.iters
                rec.update(diverged=False, converged=conv["converged"],
                           converged_at=series.converged_at[s],
                           sigma2_change=conv["sigma2_change"], loss_change=conv["loss_change"],
                           loss_allowed=conv["loss_allowed"])
                rec.update(evaluate_model(drv.model(s), drv.test(s)[: cfg.n_test],
                                          n_is=cfg.n_is, seed=s))
                if not all(math.isfinite(rec[k]) for k in ("is_nll", "sm_loss")):
                    rec["diverged"] = True
            rec["sigma2_curve"] = _curve(series.sigma2[s])
            records.append(rec)
    return records


# ------------------------------------------------------------------------------ the sweep


def _task(args: tuple[str, str, str, int, tuple[int, ...], Fig3Config, str | None]
          ) -> list[dict[str, Any]]:
    """One setting in a worker process (1 thread each)."""
    variant, ds, obj, k, seeds, cfg, ckpt = args
    from ..train.config import num_threads

    torch.set_num_threads(num_threads(cfg.threads))
    return train_setting(variant, ds, obj, k, seeds, cfg, None if ckpt is None else Path(ckpt))


def _cost(setting: tuple[str, str, str, int], cfg: Fig3Config) -> float:
    """Rough relative cost of a setting, to start the expensive ones first."""
    variant, ds, obj, k = setting
    width = cfg.width(ds)
    n = cfg.paper_n_samples if variant == "paper" else cfg.n_samples
    return (k + 1) * (1 + width / 30) ** 2 * n * (2.0 if obj in ("fae", "kl-m3", "fd-m3") else 1.0)


def run(out: str | Path, config: Fig3Config | None = None, *,
        resume: bool = False) -> dict[str, Any]:
    """Run the Figure 3 sweep into ``out``: ``fig3.png``, ``fig3.md`` and ``results.json``.

    ``results.json`` is rewritten after every setting (``"complete": false`` until the sweep
    ends); with ``resume`` the settings it already records are skipped, and one interrupted by
    SIGINT or SIGTERM continues from its checkpoint in ``out/checkpoints``. With ``workers > 1``
    settings run in that many processes (``threads`` threads each).
    """
    cfg = config or Fig3Config.quick()
    _check(cfg)
    out = prepare_out(out)
    timer = Timer()
    prev = previous_results(out, "fig3", cfg) if resume else None
    runs: list[dict[str, Any]] = list(prev["runs"]) if prev else []
    done = {(r["variant"], r["dataset"], r["objective"], r["k_enc"]) for r in runs}
    seconds = float(prev.get("seconds", 0.0)) if prev else 0.0
    avail = variants_available()
    skipped = [v for v in cfg.variants if v not in avail]
    if skipped:
        print(f"fig3: variant(s) {skipped} not offered by this trainer (TrainConfig.variant); "
              "running without them", file=sys.stderr)
    results: dict[str, Any] = {"figure": "fig3", "config": vars(cfg).copy(), "runs": runs,
                               "variants_run": [v for v in cfg.variants if v in avail],
                               "batched_seeds": bool(cfg.batched and batched_seeds_available())}
    todo = [st for st in settings(cfg) if st[0] in avail]
    for st in todo:
        if st in done:
            print(f"fig3: {st[1]} {st[2]} K_enc={st[3]} [{st[0]}]: recorded", file=sys.stderr)
    todo = [st for st in todo if st not in done]

    def ckpt_of(st: tuple[str, str, str, int]) -> Path:
        v, ds, obj, k = st
        return out / "checkpoints" / f"{v}-{ds}-{obj}-k{k}"

    def record(st: tuple[str, str, str, int], recs: list[dict[str, Any]]) -> None:
        runs.extend(recs)
        write_results(out, {**results, "complete": False, "seconds": seconds + timer.elapsed()})
        shutil.rmtree(ckpt_of(st), ignore_errors=True)
        nll = [float(r["is_nll"]) for r in recs if not r["diverged"]]
        conv = sum(bool(r["converged"]) for r in recs)
        shown = f"{np.mean(nll):.4g}" if nll else "diverged"
        print(f"fig3: {st[1]} {st[2]} K_enc={st[3]} [{st[0]}]: NLL={shown} "
              f"converged {conv}/{len(recs)} after {recs[0]['iterations']} iterations",
              file=sys.stderr, flush=True)

    if not resume:
        for st in todo:
            shutil.rmtree(ckpt_of(st), ignore_errors=True)
    if cfg.workers <= 1 or len(todo) <= 1:
        for st in todo:
            record(st, train_setting(*st, cfg.seeds, cfg, ckpt_dir=ckpt_of(st)))
    else:
        _run_pool(cfg, sorted(todo, key=lambda s: -_cost(s, cfg)), ckpt_of, record)
    order = {st: i for i, st in enumerate(settings(cfg))}
    runs.sort(key=lambda r: (order.get((r["variant"], r["dataset"], r["objective"], r["k_enc"]),
                                       len(order)), r["seed"]))
    results["table"] = table(runs, cfg)
    results["thresholds"] = cfg.thresholds().as_dict()
    results["claims"] = judge(runs, cfg)
    results["verdicts"] = overall_verdicts(results["claims"])
    results["complete"] = True
    plot(out / "fig3.png", results)
    results["seconds"] = seconds + timer.elapsed()
    write_results(out, results)
    (out / "fig3.md").write_text(markdown(results))
    return results


def _run_pool(cfg: Fig3Config, todo: list[tuple[str, str, str, int]], ckpt_of: Any,
              record: Any) -> None:
    """Run ``todo`` in ``cfg.workers`` processes; on SIGINT/SIGTERM in this process, forward
    SIGTERM to the workers (each checkpoints its setting) and re-raise."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal

    from ..train import TrainingInterrupted

    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
        futures = {pool.submit(_task, (*st, tuple(cfg.seeds), cfg, str(ckpt_of(st)))): st
                   for st in todo}
        recorded: set[Any] = set()
        try:
            for fut in cf.as_completed(futures):
                record(futures[fut], fut.result())
                recorded.add(fut)
        except (TrainingInterrupted, KeyboardInterrupt):
            for p in list(getattr(pool, "_processes", {}).values()):
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except (ProcessLookupError, OSError):
                    pass
            for f in futures:
                f.cancel()
            cf.wait(list(futures), timeout=120)
            for fut, st in futures.items():  # record what finished before the stop
                if (fut not in recorded and fut.done() and not fut.cancelled()
                        and fut.exception() is None):
                    record(st, fut.result())
            raise


def _check(cfg: Fig3Config) -> None:
    from ..train import OBJECTIVES as ALL

    for name in ("max_iters", "check_every", "batch_size", "n_samples", "paper_n_samples",
                 "n_test", "n_is", "workers"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    bad = [o for o in cfg.objectives if o not in ALL]
    if bad:
        raise ValueError(f"objectives: unknown {bad}; expected some of {ALL}")
    bad = [v for v in cfg.variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants: unknown {bad}; expected some of {VARIANTS}")
    if not cfg.seeds or not cfg.k_encs or min(cfg.k_encs) < 1:
        raise ValueError(f"seeds, k_encs: expected non-empty, K_enc ≥ 1; got {cfg.seeds}, "
                         f"{cfg.k_encs}")
    cfg.thresholds()


# ------------------------------------------------------------------------------ tables & claims


def _values(runs: Sequence[dict[str, Any]], variant: str, dataset: str, objective: str,
            k_enc: int, key: str) -> dict[int, float | None]:
    """{seed: value} of one setting (None for a diverged run); kl-elbo ignores ``k_enc``."""
    out: dict[int, float | None] = {}
    for r in runs:
        if (r["variant"], r["dataset"], r["objective"]) != (variant, dataset, objective):
            continue
        if objective != "kl-elbo" and r["k_enc"] != k_enc:
            continue
        out[r["seed"]] = None if r.get("diverged") else r.get(key)
    return out


def table(runs: Sequence[dict[str, Any]], cfg: Fig3Config) -> list[dict[str, Any]]:
    """One row per (variant, dataset, objective, K_enc): mean ± s.e. over seeds of the NLL and
    SM loss, σ² and the collapse diagnostics, and how many runs converged / diverged."""
    rows = []
    for v, ds, obj, k in settings(cfg):
        sel = [r for r in runs if (r["variant"], r["dataset"], r["objective"], r["k_enc"])
               == (v, ds, obj, k)]
        if not sel:
            continue
        ok = [r for r in sel if not r["diverged"]]
        row: dict[str, Any] = {"variant": v, "dataset": ds, "objective": obj, "k_enc": k,
                               "n_runs": len(sel), "n_diverged": len(sel) - len(ok),
                               "n_converged": sum(bool(r["converged"]) for r in sel),
                               "iterations": [r["iterations"] for r in sel]}
        for key in ("is_nll", "sm_loss", "sigma2", "active_dims"):
            m, se, _ = C.mean_se(r[key] for r in ok)
            row[f"{key}_mean"], row[f"{key}_se"] = m, se
        row["post_sd_mean"] = C.mean_se(float(np.mean(r["post_sd"])) for r in ok)[0]
        row["mu_spread_min_mean"] = C.mean_se(float(np.min(r["mu_spread"])) for r in ok)[0]
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Claim:
    """One claim of the paper's §5.1: ``a`` versus ``b`` (objective names) compared by ``kind``
    (:mod:`vsm.reproduce.claims`) on the paired test-NLL differences A − B. ``k`` says which
    K_enc: "max" (the largest run for both), or "min-vs-max" (A at the smallest K_enc, B at the
    largest, same objective)."""

    id: str
    text: str
    kind: str
    a: str
    b: str
    k: str = "max"


CLAIMS: tuple[Claim, ...] = (
    Claim("elbo-m1", "“The ELBO objective (kl-ELBO) and kl-L_θ produced almost equally good "
          "results”", "equal", "kl-m1", "kl-elbo"),
    Claim("k-enc", "“both the NLL and FD decrease as the number of encoder updates increases” "
          "(kl-L_θ)", "better", "kl-m1", "kl-m1", "min-vs-max"),
    Claim("fd-m1", "“fd-L_θ is slightly worse”", "slightly_worse", "fd-m1", "kl-m1"),
    Claim("kl-m2", "“The objectives involving L_S … could not fit the model well” (kl-L_S)",
          "much_worse", "kl-m2", "kl-m1"),
    Claim("fd-m2", "… (fd-L_S)", "much_worse", "fd-m2", "kl-m1"),
    Claim("kl-m3", "“The objectives involving … L_B could not fit the model well” (kl-L_B)",
          "much_worse", "kl-m3", "kl-m1"),
    Claim("fd-m3", "… (fd-L_B)", "much_worse", "fd-m3", "kl-m1"),
    Claim("fae", "§5: “optimizing the joint FD as in Fisher autoencoder [7] did not give any "
          "reasonable results”", "much_worse", "fae", "kl-m1"),
)


def _ks(runs: Sequence[dict[str, Any]], variant: str, dataset: str, objective: str) -> list[int]:
    return sorted({r["k_enc"] for r in runs if (r["variant"], r["dataset"], r["objective"])
                   == (variant, dataset, objective)})


def judge(runs: Sequence[dict[str, Any]], cfg: Fig3Config) -> list[dict[str, Any]]:
    """The claim table: for every claim of :data:`CLAIMS` and data set, each variant's paired
    NLL (and SM-loss) difference, its outcome, and the verdict (:func:`vsm.reproduce.claims.
    verdict`). Claims whose objectives were not run are left out."""
    th = cfg.thresholds()
    rows = []
    for cl in CLAIMS:
        for ds in cfg.datasets:
            per: dict[str, Any] = {}
            for v in cfg.variants:
                ka_all, kb_all = _ks(runs, v, ds, cl.a), _ks(runs, v, ds, cl.b)
                if not ka_all or not kb_all:
                    continue
                if cl.k == "min-vs-max":  # the same objective at its smallest and largest K_enc
                    if len(ka_all) < 2:
                        continue
                    ka, kb = ka_all[0], ka_all[-1]
                elif cl.b == "kl-elbo":  # the K_enc-free baseline
                    ka, kb = ka_all[-1], 1
                else:  # the largest K_enc run for both
                    common = sorted(set(ka_all) & set(kb_all))
                    if not common:
                        continue
                    ka = kb = common[-1]
                nll = C.paired(_values(runs, v, ds, cl.a, ka, "is_nll"),
                               _values(runs, v, ds, cl.b, kb, "is_nll"), level=th.level)
                sm = C.paired(_values(runs, v, ds, cl.a, ka, "sm_loss"),
                              _values(runs, v, ds, cl.b, kb, "sm_loss"), level=th.level)
                per[v] = {"k_a": ka, "k_b": kb, "nll": nll.as_dict(), "sm": sm.as_dict(),
                          "outcome": C.outcome(cl.kind, nll, th)}
            if not per:
                continue
            rows.append({"claim": cl.id, "text": cl.text, "kind": cl.kind, "a": cl.a, "b": cl.b,
                         "dataset": ds, "variants": per,
                         "verdict": C.verdict({v: p["outcome"] for v, p in per.items()})})
    return rows


def overall_verdicts(claim_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per claim across data sets (:func:`vsm.reproduce.claims.overall`)."""
    out = []
    for cl in CLAIMS:
        rows = [r for r in claim_rows if r["claim"] == cl.id]
        if rows:
            per = {r["dataset"]: {v: p["outcome"] for v, p in r["variants"].items()}
                   for r in rows}
            out.append({"claim": cl.id, "text": cl.text, "verdict": C.overall(per)})
    return out


# ------------------------------------------------------------------------------ figure


def plot(path: Path, results: dict[str, Any]) -> None:
    """Rows: data sets; columns: test NLL, SM loss, σ²; x: K_enc; one colour per objective;
    vsm solid with filled markers, paper dashed with open markers; kl-elbo (K_enc-free) a
    horizontal line. Off-scale means are drawn at the top edge as ▲."""
    tab = results["table"]
    datasets = list(dict.fromkeys(r["dataset"] for r in tab))
    objectives = list(dict.fromkeys(r["objective"] for r in tab))
    variants = list(dict.fromkeys(r["variant"] for r in tab))
    ks = sorted({r["k_enc"] for r in tab})
    fig, axes = plt.subplots(max(1, len(datasets)), 3, figsize=(15, 3.9 * max(1, len(datasets))),
                             squeeze=False)
    colors = dict(zip(OBJECTIVES, plt.cm.tab10(np.arange(len(OBJECTIVES)))))
    keys = (("is_nll", "test NLL (nats; IS, prior proposal)"), ("sm_loss", ("test SM loss "
            "(FD − const)")), ("sigma2", "σ² (log scale)"))
    xlo, xhi = min(ks) / 1.3, max(ks) * 1.3
    for i, ds in enumerate(datasets):
        for j, (key, label) in enumerate(keys):
            ax = axes[i, j]
            finite = [r[f"{key}_mean"] for r in tab if r["dataset"] == ds
                      and math.isfinite(r[f"{key}_mean"])]
            top = None
            if key != "sigma2" and finite:
                lo, med = float(np.min(finite)), float(np.median(finite))
                top = med + 2.0 * (med - lo) + 0.5
                ax.set_ylim(lo - 0.1 * abs(lo) - 0.1, top)
            for obj in objectives:
                for v in variants:
                    rows = sorted((r for r in tab if (r["dataset"], r["objective"], r["variant"])
                                   == (ds, obj, v)), key=lambda r: r["k_enc"])
                    if not rows:
                        continue
                    m = np.array([r[f"{key}_mean"] for r in rows], dtype=float)
                    se = np.nan_to_num(np.array([r[f"{key}_se"] for r in rows], dtype=float))
                    x = np.array([r["k_enc"] for r in rows], dtype=float)
                    if obj == "kl-elbo":
                        x, m, se = np.array([xlo, xhi]), np.repeat(m[:1], 2), np.repeat(se[:1], 2)
                    ls, face = ("-", None) if v == "vsm" else ("--", "none")
                    lab = f"{obj} [{v}]"
                    if top is not None and np.any(m > top):
                        off = m > top
                        ax.plot(x[off], np.full(off.sum(), top), "^", color=colors[obj],
                                mfc=face or colors[obj], ms=7, clip_on=False)
                        m = np.where(off, np.nan, m)
                    ax.errorbar(x, m, yerr=se, fmt="o" + ls, color=colors[obj], mfc=face,
                                label=lab, capsize=2, ms=4, lw=1.2)
            ax.set_xscale("log")
            if key == "sigma2":
                ax.set_yscale("log")
            ax.minorticks_off()
            ax.set_xlim(xlo, xhi)
            ax.set_xticks(ks)
            ax.set_xticklabels([str(k) for k in ks])
            ax.set_xlabel("K_enc (encoder updates per decoder update)")
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"{ds}", fontsize=9)
            if i == 0 and j == 2:
                ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Figure 3: mean ± s.e. over seeds; solid = vsm estimators, dashed/open = the "
                 "paper code's; ▲ = off-scale (values in results.json)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------ markdown

BEGIN, END = "<!-- fig3:begin -->", "<!-- fig3:end -->"


def _pm(d: dict[str, Any], digits: int = 3) -> str:
    s = C.fmt_pm(d["mean"], d["se"], digits)
    extra = f" (n={d['n']})" if d["n"] < d["n_seeds"] else ""
    if d.get("n_a_diverged"):
        extra += f", {d['n_a_diverged']} diverged"
    return s + extra


def markdown(results: dict[str, Any]) -> str:
    """The Figure 3 section of docs/RESULTS_reproduce.md, generated from ``results``."""
    cfg = results["config"]
    th = results.get("thresholds", {})
    variants = results.get("variants_run", cfg.get("variants", ["vsm"]))
    runs = results["runs"]
    n_seeds = len(cfg["seeds"])
    conv = sum(bool(r["converged"]) for r in runs)
    div = sum(bool(r["diverged"]) for r in runs)
    lines = [
        BEGIN,
        "## Figure 3 — the eight objectives on 2-D data, judged claim by claim",
        "",
        ("Generated by `python -m vsm.reproduce.fig3 render` from `results.json`; the settings and "
        "their sources are in the docstring of `vsm/reproduce/fig3.py` (MATH.md §9)."),
        "",
        (f"- Variants: {', '.join(variants)}; data sets: {', '.join(cfg['datasets'])} (hidden width "
        f"{cfg['width_sparse']} on sparse, {cfg['width_mixture']} on mixture); seeds "
        f"{', '.join(map(str, cfg['seeds']))}; K_enc ∈ {{{', '.join(map(str, cfg['k_encs']))}}} "
        f"for {', '.join(o for o in cfg['sweep_objectives'] if o != 'kl-elbo')}, else K_enc = "
        f"{cfg['k_encs'][0]} "
        "(kl-elbo: the authors' joint Adam, K_enc-free)."),
        (f"- Optimisers: decoder Adam {cfg['dec_lr']:g}; encoder SGD {cfg['enc_lr_kl']:g} (KLD) / "
        f"{cfg['enc_lr_fd']:g} (FD); FAE Adam {cfg['dec_lr']:g} and ELBO Adam "
        f"{cfg['elbo_lr']:g} for both networks; batch "
        f"{cfg['batch_size']}; N = {cfg['n_samples']} (vsm) / {cfg['paper_n_samples']} (paper)."),
        (f"- Training: until converged (σ² relative change ≤ {cfg['tol_sigma2']:g} and decoder-loss "
        f"change ≤ {cfg['tol_loss']:g}·max(|loss|, 1) + 2 s.e. over the last "
        f"{100 * cfg['window']:g} % of iterations; checked every {cfg['check_every']} iterations "
        f"from {cfg['min_iters']}), cap {cfg['max_iters']} iterations. "
        f"{conv} of {len(runs)} runs converged, {div} diverged."),
        (f"- Evaluation: {cfg['n_test']} test points, IS with {cfg['n_is']} prior samples shared by "
        "the test points (and by all objectives of a seed)."),
        (f"- Verdicts from paired test-NLL differences over seeds: {int(100 * th.get('level', .95))} "
        f"% paired-t interval [lo, hi] against eq_tol = {th.get('eq_tol')} nats and fail_margin "
        f"= {th.get('fail_margin')} nats (`vsm/reproduce/claims.py`). Wall time: "
        f"{results.get('seconds', float('nan')):.0f} s."),
        "",
        "### Claims (paper §5.1)",
        "",
        "| claim | verdict |",
        "|---|---|",
    ]
    for v in results.get("verdicts", []):
        lines.append(f"| {v['text']} | **{v['verdict']}** |")
    lines += ["", ("Per data set: paired difference A − B of the test NLL (nats; mean ± paired "
              "s.e.; SM loss likewise), the outcome per variant, and the verdict."), ""]
    head = "| claim | data | A − B (K_enc) |"
    sep = "|---|---|---|"
    for v in variants:
        head += f" NLL diff {v} | SM diff {v} | {v} |"
        sep += "---|---|---|"
    lines += [head + " verdict |", sep + "---|"]
    for row in results.get("claims", []):
        per = row["variants"]
        k = next(iter(per.values()))
        ab = f"{row['a']} ({k['k_a']}) − {row['b']} ({k['k_b']})"
        line = f"| {row['claim']} | {row['dataset']} | {ab} |"
        for v in variants:
            if v in per:
                p = per[v]
                line += f" {_pm(p['nll'])} | {_pm(p['sm'], 2)} | {p['outcome']} |"
            else:
                line += " — | — | not run |"
        lines.append(line + f" {row['verdict']} |")
    lines += ["", "### Every setting", "",
              (f"Mean ± s.e. over {n_seeds} seeds (diverged runs left out). Collapse diagnostics: "
              "active latent dims (Var_x μ_j > 0.01; of 2), mean posterior SD, smallest spread "
              "(SD over x) of the encoder means."), ""]
    head = "| data | objective | K_enc |"
    sep = "|---|---|---|"
    for v in variants:
        head += (f" NLL {v} | SM {v} | σ² {v} | active {v} | post. SD {v} | μ spread {v} | "
                 f"converged, diverged {v} |")
        sep += "---|---|---|---|---|---|---|"
    lines += [head, sep]
    tab = results.get("table", [])
    keys = list(dict.fromkeys((r["dataset"], r["objective"], r["k_enc"]) for r in tab))
    for ds, obj, k in keys:
        line = f"| {ds} | {obj} | {k} |"
        for v in variants:
            sel = [r for r in tab if (r["dataset"], r["objective"], r["k_enc"], r["variant"])
                   == (ds, obj, k, v)]
            if not sel:
                line += " — |" * 7
                continue
            r = sel[0]
            line += (f" {C.fmt_pm(r['is_nll_mean'], r['is_nll_se'])} |"
                     f" {C.fmt_pm(r['sm_loss_mean'], r['sm_loss_se'], 1)} |"
                     f" {r['sigma2_mean']:.3g} | {r['active_dims_mean']:.1f} |"
                     f" {r['post_sd_mean']:.3f} | {r['mu_spread_min_mean']:.3f} |"
                     f" {r['n_converged']}, {r['n_diverged']} of {r['n_runs']} |")
        lines.append(line)
    lines += ["", "![Figure 3](figures/fig3.png)", "", END]
    return "\n".join(lines) + "\n"


def splice(doc: str, section: str) -> str:
    """``doc`` with the text between the fig3 markers (inclusive) replaced by ``section``
    (appended when the markers are absent)."""
    i, j = doc.find(BEGIN), doc.find(END)
    if i < 0 or j < i:
        return doc.rstrip("\n") + "\n\n" + section
    return doc[:i] + section.rstrip("\n") + doc[j + len(END):]


def main(argv: list[str] | None = None) -> int:
    """``python -m vsm.reproduce.fig3 render RESULTS [--doc PATH]``: print the markdown section
    of a results.json, or splice it into PATH between the fig3 markers."""
    import json

    p = argparse.ArgumentParser(prog="python -m vsm.reproduce.fig3")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="markdown of a fig3 results.json")
    r.add_argument("results", help="path of results.json written by vsm reproduce fig3")
    r.add_argument("--doc", help="splice into this markdown file (e.g. "
                   "docs/RESULTS_reproduce.md) instead of printing")
    args = p.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    if results.get("figure") != "fig3" or not results.get("complete"):
        raise SystemExit(f"{args.results}: not a complete fig3 results.json")
    section = markdown(results)
    if args.doc:
        path = Path(args.doc)
        path.write_text(splice(path.read_text() if path.exists() else "", section))
        print(f"wrote {path}", file=sys.stderr)
    else:
        print(section, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
