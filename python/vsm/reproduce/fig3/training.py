"""Training and evaluation of one Figure 3 setting: the convergence test, the test metrics
(importance-sampled NLL and SM loss, collapse diagnostics) and :func:`train_setting`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._errors import BadFileError
from .._common import to_jsonable
from .config import ACTIVE_VAR, EVAL_SEED, Fig3Config, batched_seeds_available, train_config

# ------------------------------------------------------------------------------ convergence


def convergence(
    dec_loss: Sequence[float] | np.ndarray,
    sigma2: Sequence[float] | np.ndarray,
    *,
    window: float = 0.1,
    tol_sigma2: float = 0.01,
    tol_loss: float = 0.01,
    min_iters: int = 0,
    z: float = 2.0,
) -> dict[str, Any]:
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
        raise ValueError(
            f"dec_loss, sigma2: expected two 1-D series of one length, got shapes "
            f"{loss.shape} and {s2.shape}"
        )
    if not 0 < window <= 0.5:
        raise ValueError(f"window: expected a fraction in (0, 0.5], got {window}")
    n = loss.shape[0]
    w = int(window * n)
    nan = float("nan")
    out = {"converged": False, "sigma2_change": nan, "loss_change": nan, "loss_allowed": nan}
    if n < max(min_iters, 1) or w < 4:
        return out
    if not (np.all(np.isfinite(loss[-w - 1 :])) and np.all(np.isfinite(s2[-w - 1 :]))):
        return out
    ds2 = abs(s2[-1] - s2[-w - 1]) / abs(s2[-w - 1])
    first, second = loss[-w : -(w // 2)], loss[-(w // 2) :]
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
    from ...importance import ISAccumulator

    x = x.reshape(x.shape[0], -1)
    B, D = x.shape
    L = int(model.latent_dim)
    gen = torch.Generator().manual_seed(EVAL_SEED + int(seed))
    z = torch.randn(n_is, L, generator=gen, dtype=torch.float64).to(x.dtype)
    log_prior = (-0.5 * (z.double() ** 2 + math.log(2 * math.pi))).sum(-1)
    acc = ISAccumulator(x, model.log_sigma2)
    chunk = max(1, (1 << 22) // max(1, B * D))
    for k0 in range(0, n_is, chunk):
        zc = z[k0 : k0 + chunk]
        kc = zc.shape[0]
        xm = model.decode(zc).reshape(1, kc, D).expand(B, kc, D).contiguous()
        lp = log_prior[k0 : k0 + chunk].reshape(1, kc).expand(B, kc).contiguous()
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
        self.step = 0  # the trainer's step when saved: pairs the file with its checkpoint

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"iters": self.iters, "wall": self.wall, "step": self.step}
        arrays |= {f"loss_{s}": np.asarray(v) for s, v in self.loss.items()}
        arrays |= {f"sigma2_{s}": np.asarray(v) for s, v in self.sigma2.items()}
        arrays |= {
            f"conv_{s}": np.asarray(-1 if v is None else v) for s, v in self.converged_at.items()
        }
        tmp = path.with_name(path.name + f".tmp.{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, seeds: Sequence[int]) -> _Series:
        out = cls(seeds)
        try:
            with np.load(path, allow_pickle=False) as f:
                out.iters, out.wall = int(f["iters"]), float(f["wall"])
                out.step = int(f["step"]) if "step" in f else -1
                for s in seeds:
                    out.loss[s] = f[f"loss_{s}"].tolist()
                    out.sigma2[s] = f[f"sigma2_{s}"].tolist()
                    c = int(f[f"conv_{s}"])
                    out.converged_at[s] = None if c < 0 else c
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise BadFileError(path, f"not a fig3 series file ({e})", "delete it to redo it") from e
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
        from ...train import TrainingDiverged

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
        for h in hist.values() if self.batched else [hist]:
            h.clear()  # the series keep what is needed; histories would grow with the run

    def model(self, seed: int) -> Any:
        return self.trainer.model_of(seed) if self.batched else self.trainer.model

    def test(self, seed: int) -> torch.Tensor:
        if self.batched:
            return self.trainer.datasets[self.trainer.seeds.index(seed)].test
        return self.trainer.data.test


def _conv(series: _Series, seed: int, cfg: Fig3Config) -> dict[str, Any]:
    return convergence(
        series.loss[seed],
        series.sigma2[seed],
        window=cfg.window,
        tol_sigma2=cfg.tol_sigma2,
        tol_loss=cfg.tol_loss,
        min_iters=cfg.min_iters,
    )


def _curve(values: Sequence[float], points: int = 60) -> list[list[float]]:
    """[iteration, value] at about ``points`` evenly spaced iterations (1-based)."""
    n = len(values)
    if n == 0:
        return []
    idx = sorted({round(i) for i in np.linspace(0, n - 1, min(points, n))})
    return [[i + 1, float(values[i])] for i in idx]


def _save(drv: _Driver, series: _Series, path: Path | None, series_path: Path | None) -> None:
    """The checkpoint and the series, both written under new names first and then renamed one
    after the other, so the previous pair stays whole until the new one is; only a kill between
    the two renames leaves a pair whose steps differ, which :func:`_resume` detects."""
    if path is not None and series_path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        series.step = drv.trainer.step
        new_ckpt = path.with_name(path.name + ".new")
        new_series = series_path.with_name(series_path.name + ".new.npz")
        drv.trainer.save(str(new_ckpt))
        series.save(new_series)
        os.replace(new_ckpt, path)
        os.replace(new_series, series_path)


def _resume(path: Path | None, series_path: Path | None, group: list[int]) -> Any:
    """(trainer, series) continued from the setting's checkpoint and series, or None to start
    afresh: when there are none, or when a kill between the two writes left a pair that does
    not match (the setting is then retrained from the start, which gives the same numbers)."""
    from ...train import load_checkpoint, trainer_from_checkpoint

    if path is None or series_path is None or not (path.is_file() and series_path.is_file()):
        return None
    series = _Series.load(series_path, group)
    if series.step != load_checkpoint(str(path))["step"]:
        print(
            f"fig3: {path} and {series_path.name} are from different steps (a run killed "
            "between the two writes); retraining this setting from the start",
            file=sys.stderr,
        )
        return None
    return trainer_from_checkpoint(str(path), progress=False), series


def _all_converged(drv: _Driver, series: _Series, cfg: Fig3Config) -> bool:
    """Whether every live seed has converged (noting the first iteration each one did)."""
    done = True
    for s in drv.alive():
        ok = _conv(series, s, cfg)["converged"]
        if ok and series.converged_at[s] is None:
            series.converged_at[s] = series.iters
        done = done and ok
    return done


def _train_loop(
    drv: _Driver,
    series: _Series,
    k_enc: int,
    cfg: Fig3Config,
    path: Path | None,
    series_path: Path | None,
) -> None:
    """Iterations until every live seed has converged (checked every ``check_every`` from
    ``min_iters``) or ``max_iters``; a signal checkpoints after the current iteration and raises
    :class:`vsm.train.TrainingInterrupted`. Also checkpoints every ``check_every`` iterations
    (so a run killed without a signal, e.g. by SIGKILL or a lost machine, resumes from there)
    and at the end."""
    from ...train import TrainingInterrupted
    from ...train.stopping import catch_signals

    with catch_signals(defer=True) as stop:
        while series.iters < cfg.max_iters and drv.alive():
            if (
                series.iters
                and series.iters % cfg.check_every == 0
                and series.iters >= cfg.min_iters
                and _all_converged(drv, series, cfg)
            ):
                break
            t0 = time.perf_counter()
            drv.iteration(k_enc, series)
            series.iters += 1
            series.wall += time.perf_counter() - t0
            if series.iters % cfg.check_every == 0 and series.iters < cfg.max_iters:
                _save(drv, series, path, series_path)  # a kill loses at most check_every
            if stop.signum is not None:
                _save(drv, series, path, series_path)
                raise TrainingInterrupted(
                    stop.signum, step=series.iters, checkpoint=None if path is None else str(path)
                )
    _save(drv, series, path, series_path)


def _records(
    drv: _Driver,
    series: _Series,
    group: Sequence[int],
    setting: tuple[str, str, str, int],
    cfg: Fig3Config,
) -> list[dict[str, Any]]:
    """One record per seed of ``group``: convergence report and test metrics of the models as
    they are now."""
    variant, dataset, objective, k_enc = setting
    div = drv.diverged()
    records = []
    for s in group:
        rec: dict[str, Any] = {
            "variant": variant,
            "dataset": dataset,
            "objective": objective,
            "k_enc": k_enc,
            "seed": s,
            "iterations": series.iters,
            "train_wall_s": series.wall / len(group),
        }
        if s in div:
            rec.update(
                diverged=True,
                converged=False,
                error=div[s][:300],
                iterations=len(series.loss[s]),
            )
        else:
            conv = _conv(series, s, cfg)
            if conv["converged"] and series.converged_at[s] is None:
                series.converged_at[s] = series.iters
            rec.update(
                diverged=False,
                converged=conv["converged"],
                converged_at=series.converged_at[s],
                sigma2_change=conv["sigma2_change"],
                loss_change=conv["loss_change"],
                loss_allowed=conv["loss_allowed"],
            )
            rec.update(
                evaluate_model(drv.model(s), drv.test(s)[: cfg.n_test], n_is=cfg.n_is, seed=s)
            )
            if not all(math.isfinite(rec[k]) for k in ("is_nll", "sm_loss")):
                rec["diverged"] = True
        rec["sigma2_curve"] = _curve(series.sigma2[s])
        records.append(rec)
    return records


def train_setting(
    variant: str,
    dataset: str,
    objective: str,
    k_enc: int,
    seeds: Sequence[int],
    cfg: Fig3Config,
    ckpt_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Train ``seeds`` of one setting until converged (or the cap) and evaluate them; one record
    per seed. The seeds train as one batched run when ``cfg.batched`` and the trainer offers it,
    else one after another.

    With ``ckpt_dir``: SIGINT/SIGTERM write a checkpoint there (``ckpt.pt`` or ``ckpt-s<seed>.pt``
    plus the convergence series ``*.series.npz``) after the current iteration and raise
    :class:`vsm.train.TrainingInterrupted`; an existing checkpoint is continued. Both are also
    written when training ends (before evaluation).

    With ``cfg.continue_iters`` > ``cfg.max_iters``: when a run has not converged at
    ``max_iters``, the setting goes on to convergence or ``continue_iters`` iterations and each
    record gets the later numbers under ``"continued"`` (the records at ``max_iters`` wait in
    ``*.records.json`` beside the checkpoint meanwhile).
    """
    from ...train import make_trainer

    batched = cfg.batched and batched_seeds_available()
    groups = [list(seeds)] if batched else [[s] for s in seeds]
    records: list[dict[str, Any]] = []
    for group in groups:
        gcfg = train_config(variant, dataset, objective, k_enc, group, cfg)
        name = "ckpt" if batched else f"ckpt-s{group[0]}"
        path = None if ckpt_dir is None else ckpt_dir / f"{name}.pt"
        series_path = None if ckpt_dir is None else ckpt_dir / f"{name}.series.npz"
        resumed = _resume(path, series_path, group)
        if resumed is not None:
            trainer, series = resumed
        else:
            trainer = make_trainer(gcfg, progress=False)
            series = _Series(group)
        drv = _Driver(trainer, group)

        # the records at max_iters, kept beside the checkpoint while a continuation runs
        rec_path = None if ckpt_dir is None else ckpt_dir / f"{name}.records.json"
        if rec_path is not None and rec_path.is_file():
            recs = json.loads(rec_path.read_text())
        else:
            _train_loop(drv, series, k_enc, cfg, path, series_path)
            recs = _records(drv, series, group, (variant, dataset, objective, k_enc), cfg)
        if cfg.continue_iters > cfg.max_iters and not all(
            r["converged"] or r["diverged"] for r in recs
        ):
            if rec_path is not None:
                rec_path.parent.mkdir(parents=True, exist_ok=True)
                rec_path.write_text(json.dumps(to_jsonable(recs)))
            longer = dataclasses.replace(cfg, max_iters=cfg.continue_iters)
            _train_loop(drv, series, k_enc, longer, path, series_path)
            later = _records(drv, series, group, (variant, dataset, objective, k_enc), cfg)
            ident = ("variant", "dataset", "objective", "k_enc", "seed")
            for r, c in zip(recs, later, strict=True):
                r["continued"] = {k: v for k, v in c.items() if k not in ident}
        records.extend(recs)
    return records
