"""Figures 4, 9, 12–14 in miniature: the conv VAE on offline image data with the eight objectives.

Data: scikit-learn's 8×8 digits upsampled to 32×32 (``vsm.data``'s "digits": 1497 train / 300
test images, offline). Model: the DCGAN-style conv VAE of :mod:`vsm.models` (small widths in quick
mode). Training: :class:`vsm.train.Trainer` (Algorithm 1; input noise η = 0.1; N posterior
samples; K_enc encoder updates per decoder update). Test metrics along training
(:func:`vsm.metrics.evaluate`): −ELBO (nats per image), reconstruction MSE, latent MMD² (cubic
kernel), mean posterior FD (no ½); at the end: posterior-SD histograms and sample grids
(decoder means g(z), z ~ N(0, I)).

Quick mode: 150 iterations of batch 50 (5 epochs of the 1497 training digits), ngf = ndf = 8,
L = 16, N = 2, K_enc = 2, Adam 2e-3, instead of the paper's 1000 epochs, ngf = 64, L = 100, N = 5,
K_enc = 5, Adam 1e-4. The quick numbers therefore describe early training only. On the loaded
2-core machine a conv step took 0.4 s (kl-elbo) to 1.1 s (fae, double backward through the
encoder for ψ) at ngf = 16, batch 100.

Full mode (:meth:`ImagesConfig.full`) is the paper's image setting: Adam 1e-4 for both groups,
N = 5, K_enc = 5, η = 0.1, L = 100, ngf = ndf = 64, batch 100, 1000 epochs, i.e. 14 000
iterations per objective on the offline digits (1497 images; MNIST would be 600 000). Measured
per iteration at 1 thread on the 2-core machine *under load* (load average ≈ 4, so each process
had about half a core): kl-elbo 1.7 s, kl-m1 1.3 s, fd-m1 1.3 s, kl-m3 1.5 s, fae 8.6 s (the
double backward through the conv encoder for ψ), an evaluation on the 300 test images 6–11 s.
All eight objectives: ≈ 18.5 s per iteration, ≈ 72 h at 1 loaded thread; on a quiet 2-core
machine (about 2× for a whole core, ×1.7 for the second thread) ≈ 20 h, of which FAE is half.
``--set objectives=kl-elbo,kl-m1,fae`` (the SD-histogram and FAE claims) ≈ 11 h there, and
``--set epochs=100`` divides any of these by 10.

On the digits, though, the paper's epoch count is not the paper's run: 1000 epochs of 1497
images are 14 000 minibatches, where the paper's 1000 MNIST epochs are 600 000. Adam moves
log σ² by about ``lr`` per decoder update, so 2 800 updates at 1e-4 leave σ² above 0.75 of its
start (:func:`sigma2_reach`; :func:`run` prints a note for such runs), and the image claims,
which need a decoder with a small σ², cannot show. Measured 2026-12-07 with ``--full --set
objectives=kl-elbo,kl-m1,fae --set epochs=40 --set eval_every=140 --threads 1`` (560
minibatches, 52 min on one core of the 2-core machine: 1.26, 0.95 and 3.25 s per iteration
with evaluations): σ² 0.9885 for all three (the Adam bound, 0.9889), every posterior SD above
0.8, kl-elbo and kl-m1 equal to 0.02 nats (−ELBO 972), FAE +3.7 nats with 5× the latent MMD².
The paper's length is ``--set steps=600000 --set epochs=0`` (at those rates ≈ 9 days of one
core for kl-elbo, 23 for fae), or MNIST itself (``--set dataset=mnist --set data_dir=DIR``).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..train.config import OBJECTIVES, Objective, Variant, num_threads
from ._common import (
    FigureConfig,
    Timer,
    load_array,
    plt,
    prepare_out,
    preset,
    previous_results,
    results_kept_on_stop,
    save_array,
    save_figure,
    write_results,
)
from .executors import Executor, LocalExecutor, Unit, UnitsFailed, log, run_units

METRICS = ("neg_elbo", "mse", "mmd2", "posterior_fd")
# the fields of ImagesConfig that TrainConfig takes as they are, under the same name
_TRAIN_FIELDS = tuple(
    "dataset steps variant batch_size n_samples k_enc latent_dim ngf ndf seed eval_every threads".split()
)


@dataclass
class ImagesConfig(FigureConfig):
    """Settings of the image reproduction (see the module docstring).

    Full mode is the paper's image setting (MATH.md §9 "Images"): 1000 epochs of batch 100, Adam
    1e-4 for both groups, N = 5, K_enc = 5, η = 0.1, L = 100, ngf = ndf = 64; on the offline
    digits that is 14 000 iterations per objective (module docstring: the time it takes).
    ``--set dataset=mnist --set data_dir=DIR`` runs it on MNIST IDX files instead.
    """

    dataset: str = "digits"
    objectives: tuple[Objective, ...] = OBJECTIVES
    steps: int = 150
    eval_every: int = preset(50, full=1400)
    latent_dim: int = preset(16, full=100)
    ngf: int = preset(8, full=64)
    ndf: int = preset(8, full=64)
    n_samples: int = preset(2, full=5)
    k_enc: int = preset(2, full=5)
    lr: float = preset(2e-3, full=1e-4)
    batch_size: int = preset(50, full=100)
    epochs: int = preset(0, full=1000)  # > 0: train this many epochs instead of ``steps``
    data_dir: str = ""  # folder of MNIST / Fashion-MNIST IDX files (dataset "mnist", ...)
    variant: Variant = "vsm"  # "paper": the authors' image-code estimators (TrainConfig.variant)
    seed: int = 0
    threads: int = 0


def train_one(
    objective: Objective, cfg: ImagesConfig, checkpoint: Path | None = None
) -> dict[str, Any]:
    """Train the conv VAE with ``objective``; returns metric curves, final metrics, samples.

    With ``checkpoint``: written at every evaluation and on SIGINT/SIGTERM; a run whose
    checkpoint exists continues from it.
    """
    from ..train import TrainConfig, Trainer, TrainingDiverged

    tcfg = TrainConfig(
        objective=objective,
        epochs=cfg.epochs if cfg.epochs > 0 else None,
        data_dir=cfg.data_dir or None,
        enc_lr=cfg.lr,
        dec_lr=cfg.lr,
        log_every=10**9,
        n_is=0,
        **{name: getattr(cfg, name) for name in _TRAIN_FIELDS},
    )
    path = None if checkpoint is None else str(checkpoint)
    if path is not None and os.path.isfile(path):
        trainer = Trainer.from_checkpoint(path, progress=False, checkpoint=path)
    else:
        trainer = Trainer(tcfg, progress=False, checkpoint=path)
    diverged = None
    try:
        final = trainer.run()
    except TrainingDiverged as e:
        diverged = str(e)[:200]
        final = trainer.evaluate(n_is=0) if trainer.step > 0 else {}
    curves = {k: [float(e.get(k, float("nan"))) for e in trainer.evals] for k in METRICS}
    curves["step"] = [int(e["step"]) for e in trainer.evals]
    with torch.no_grad():
        gen = torch.Generator().manual_seed(cfg.seed + 7)
        z = torch.randn(16, cfg.latent_dim, generator=gen, dtype=trainer.dtype)
        samples = trainer.model.decode(z).reshape(16, 32, 32).clamp(0, 1).cpu().numpy()
    out = {
        "final": {k: float(final[k]) for k in (*METRICS, "sigma2") if k in final},
        "curves": curves,
        "sd_hist": np.asarray(final.get("posterior_sd_hist", [])).sum(0).tolist()
        if "posterior_sd_hist" in final
        else [],
        "sd_bins": final.get("posterior_sd_bins", []),
        "diverged": diverged,
        "wall_time_s": float(trainer.wall_time),
    }
    return out | {"_samples": samples}


def run(
    out: str | Path,
    config: ImagesConfig | None = None,
    *,
    resume: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Train every objective and write ``images_metrics.png``, ``images_sd_hist.png``,
    ``images_samples.png`` and ``results.json`` into ``out``.

    Each objective is one unit of :func:`vsm.reproduce.executors.run_units` on ``executor``
    (default: this process). ``results.json`` is rewritten as each objective finishes
    (``"complete": false`` until the end; sample grids go to ``out/samples/<objective>.npy``; an
    objective that raised is listed under ``"failed"`` and the others go on, then
    :class:`~vsm.reproduce.executors.UnitsFailed` is raised); with ``resume`` the objectives it
    already records are skipped, whichever executor ran them, and one interrupted by SIGINT or
    SIGTERM continues from its checkpoint in ``out/checkpoints``.
    """
    cfg = config or ImagesConfig.quick()
    out = prepare_out(out)
    timer = Timer()
    reach = sigma2_reach(cfg)
    if reach is not None and reach < SIGMA2_REACH_MIN:
        print(
            f"images: note: {reach / cfg.lr:.0f} decoder updates at Adam {cfg.lr:g} can move "
            f"log σ² by at most ≈ {reach:.2f} (Adam's steps are ≈ lr), so σ² stays ≥ "
            f"{math.exp(-reach):.2f} of its start: too few iterations for the paper's image "
            "claims, which need a small σ² (the paper's 1000 MNIST epochs are 600 000 "
            "minibatches; see vsm.reproduce.images.sigma2_reach)",
            file=sys.stderr,
        )
    prev = previous_results(out, "images", cfg, {"objectives": dict}) if resume else None
    per: dict[str, Any] = dict(prev["objectives"]) if prev else {}
    seconds = float(prev.get("seconds", 0.0)) if prev else 0.0
    samples: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    results: dict[str, Any] = {"figure": "images", "config": vars(cfg).copy(), "objectives": per}
    (out / "samples").mkdir(exist_ok=True)
    root = out.resolve()  # absolute: the units may run in other processes or on other nodes
    todo: list[Objective] = []
    for obj in cfg.objectives:
        if obj in per and (out / "samples" / f"{obj}.npy").is_file():
            print(f"images: {obj}: recorded", file=sys.stderr)
            samples[obj] = load_array(out / "samples" / f"{obj}.npy")
            continue
        if not resume:
            (out / "checkpoints" / f"{obj}.pt").unlink(missing_ok=True)
        todo.append(obj)

    def snapshot() -> dict[str, Any]:
        return {
            **results,
            "failed": dict(failed),
            "complete": False,
            "seconds": seconds + timer.elapsed(),
        }

    def record(unit: Unit, r: dict[str, Any]) -> None:
        obj = unit.key
        samples[obj] = r.pop("_samples")
        save_array(out / "samples" / f"{obj}.npy", samples[obj])
        per[obj] = r
        write_results(out, snapshot())
        (out / "checkpoints" / f"{obj}.pt").unlink(missing_ok=True)
        log(f"images: {obj}: final {r['final']}")

    def failure(unit: Unit, error: str) -> None:
        failed[unit.key] = error
        write_results(out, snapshot())

    threads = num_threads(cfg.threads)
    units = [
        Unit(obj, train_one, (obj, cfg, root / "checkpoints" / f"{obj}.pt"), threads=threads)
        for obj in todo
    ]
    with results_kept_on_stop(out, snapshot):
        run_units(
            units, executor or LocalExecutor(), on_done=record, on_failed=failure, desc="images"
        )
        if failed:
            raise UnitsFailed("images", failed)
    results["table"] = [
        {"objective": o, **per[o]["final"], **sd_shares(per[o]), "diverged": per[o]["diverged"]}
        for o in cfg.objectives
    ]
    results["complete"] = True
    _plot_metrics(out / "images_metrics.png", cfg, per)
    _plot_hist(out / "images_sd_hist.png", cfg, per)
    _plot_samples(out / "images_samples.png", cfg, samples)
    results["seconds"] = seconds + timer.elapsed()
    write_results(out, results)
    return results


SIGMA2_REACH_MIN = math.log(100.0)
"""The smallest reach of log σ² (:func:`sigma2_reach`) at which a run can take σ² down by 100×
from its start; below it :func:`run` prints a note."""


def sigma2_reach(cfg: ImagesConfig, train_size: int = 1497) -> float | None:
    """How far Adam can move log σ² in the run: ``lr`` × decoder updates (Adam's steps are about
    ``lr`` each, whatever the gradient's size; ×2 for the paper variant's log σ parameter).

    The paper's image runs (1000 epochs of MNIST, batch 100, K_enc = 5) make 120 000 decoder
    updates: log σ² can move by up to 12 (24) at Adam 1e-4. On the offline digits (1497
    training images, ``train_size``), 1000 epochs are 14 000 minibatches, 2 800 decoder
    updates: at most 0.28, so σ² stays above 0.75 of its start and the image claims (posterior
    SDs at 0/1 need a decoder that explains the data with a small σ²) cannot show at any
    epoch count the paper used. None when the run length is set in steps for another data set
    (the caller knows its size)."""
    if cfg.epochs > 0:
        if cfg.dataset != "digits":
            return None
        steps = cfg.epochs * (train_size // cfg.batch_size)  # whole minibatches per epoch
    else:
        steps = cfg.steps
    scale = 2.0 if cfg.variant == "paper" else 1.0
    return scale * cfg.lr * (steps // max(cfg.k_enc, 1))


def sd_shares(run: dict[str, Any], low: float = 0.2, high: float = 0.8) -> dict[str, float]:
    """Shares of posterior SDs (all test images and latent dims) below ``low`` and above
    ``high``: the paper's image claim is that under kl-m1 (and the ELBO) they concentrate near 0
    (used dims) and 1 (unused dims, Remark 3.2). NaN without a histogram."""
    h, b = np.asarray(run.get("sd_hist", []), float), np.asarray(run.get("sd_bins", []), float)
    if h.size == 0 or h.sum() == 0:
        return {"sd_share_low": float("nan"), "sd_share_high": float("nan")}
    left, right = b[:-1], b[1:]
    return {
        "sd_share_low": float(h[right <= low + 1e-9].sum() / h.sum()),
        "sd_share_high": float(h[left >= high - 1e-9].sum() / h.sum()),
    }


def _plot_metrics(path: Path, cfg: ImagesConfig, per: dict[str, Any]) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    colors = plt.cm.tab10(np.arange(len(cfg.objectives)))
    names = {
        "neg_elbo": "test −ELBO (nats/image)",
        "mse": "recon. MSE",
        "mmd2": "latent MMD²",
        "posterior_fd": "posterior FD (no ½)",
    }
    for ax, key in zip(axes, METRICS, strict=True):
        for c, obj in zip(colors, cfg.objectives, strict=True):
            cur = per[obj]["curves"]
            ls = "-" if obj.startswith("kl") else ("--" if obj.startswith("fd") else ":")
            ax.plot(cur["step"], cur[key], ls, marker="o", ms=3, color=c, label=obj)
        vals = [v for o in cfg.objectives for v in per[o]["curves"][key] if math.isfinite(v)]
        if vals and key in ("neg_elbo", "posterior_fd") and min(vals) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(names[key], fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_hist(path: Path, cfg: ImagesConfig, per: dict[str, Any]) -> None:
    n = len(cfg.objectives)
    fig, axes = plt.subplots(
        2, math.ceil(n / 2), figsize=(3.2 * math.ceil(n / 2), 5.5), squeeze=False
    )
    # a 2 × ⌈n/2⌉ grid: one panel is left over when n is odd
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, obj in zip(axes.ravel(), cfg.objectives, strict=False):
        h, b = per[obj]["sd_hist"], per[obj]["sd_bins"]
        if h:
            ax.bar(np.asarray(b[:-1]), h, width=np.diff(b), align="edge", color="tab:blue")
        sh = sd_shares(per[obj])
        title = f"{obj}: {100 * sh['sd_share_low']:.0f} % < 0.2, {100 * sh['sd_share_high']:.0f} % > 0.8"
        ax.set_title(title if h else obj, fontsize=9)
        ax.set_xlabel("posterior SD", fontsize=8)
    fig.suptitle("posterior SDs, all latent dims and test images", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_samples(path: Path, cfg: ImagesConfig, samples: dict[str, np.ndarray]) -> None:
    n = len(cfg.objectives)
    fig, axes = plt.subplots(
        2, math.ceil(n / 2), figsize=(2.6 * math.ceil(n / 2), 6.4), squeeze=False
    )
    # a 2 × ⌈n/2⌉ grid: one panel is left over when n is odd
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, obj in zip(axes.ravel(), cfg.objectives, strict=False):
        s = samples[obj]
        grid = s.reshape(4, 4, 32, 32).transpose(0, 2, 1, 3).reshape(128, 128)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_title(obj, fontsize=9)
        ax.axis("off")
    fig.suptitle("samples g(z), z ~ N(0, I)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
