"""Figure 3: the eight objectives on the 2-D toy data sets, by importance-sampled NLL and SM loss.

For each data set ("sparse", "mixture"; MATH.md §9), objective (kl-elbo, kl-m1, fd-m1, kl-m2,
fd-m2, kl-m3, fd-m3, fae), number of encoder updates per decoder update K_enc, and seed, one
Gaussian VAE (2-D latent, MLP with two hidden layers of 30 units) is trained by
:class:`vsm.train.Trainer` (Algorithm 1, no bi-level steps) and evaluated on held-out data by
importance sampling with the prior as proposal (the paper's choice on 2-D data):
NLL = −log p̂(x) and the SM loss Ĵ(x) ("FD minus a constant"), both averaged over test points.

Quick mode is tiny (500 iterations of batch 500 instead of the paper's 10⁴ of batch 1000, 2 seeds,
K_enc ∈ {1, 4}, 1000 IS samples on 1000 test points) and uses the trainer's short-run defaults
(Adam 1e-3 for both groups); the paper used 100 epochs × 100 iterations, decoder Adam 1e-4, encoder
SGD 1e-2 (KLD) / 1e-3 (FD), 10 seeds, 10⁵ IS samples. Iterations count encoder updates, so a run
with K_enc = k makes steps/k decoder updates. N = 3 posterior samples per datum: with N = 1 the
per-datum m2 is identical to m1 (MATH.md §6), which a first quick run confirmed (kl-m2 ≡ kl-m1
to every digit). A run whose loss becomes non-finite is recorded as diverged.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import Timer, plt, prepare_out, previous_results, save_figure, write_results

OBJECTIVES = ("kl-elbo", "kl-m1", "fd-m1", "kl-m2", "fd-m2", "kl-m3", "fd-m3", "fae")


@dataclass
class Fig3Config:
    """Settings of the Figure 3 reproduction (see the module docstring)."""

    datasets: tuple[str, ...] = ("sparse", "mixture")
    objectives: tuple[str, ...] = OBJECTIVES
    k_encs: tuple[int, ...] = (1, 4)
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 500
    n_samples: int = 3
    batch_size: int = 500
    n_test: int = 1000
    n_is: int = 1000
    width: int = 30
    seed: int = 0
    threads: int = 1

    @classmethod
    def quick(cls) -> Fig3Config:
        """A few minutes on a 2-core CPU."""
        return cls()

    @classmethod
    def full(cls) -> Fig3Config:
        """Closer to the paper: longer runs, more seeds and IS samples (hours on a CPU)."""
        return cls(k_encs=(1, 5, 10), seeds=tuple(range(5)), steps=10000, batch_size=1000,
                   n_test=5000, n_is=10000)


def train_and_evaluate(dataset: str, objective: str, k_enc: int, seed: int, cfg: Fig3Config,
                       checkpoint: Path | None = None) -> dict[str, Any]:
    """Train one model and return its test metrics (``diverged`` True on a non-finite loss).

    With ``checkpoint``: an interrupted run leaves its checkpoint there, and a run whose
    checkpoint exists continues from it.
    """
    from ..train import TrainConfig, Trainer, TrainingDiverged

    tcfg = TrainConfig(objective=objective, dataset=dataset, steps=cfg.steps,
                       batch_size=cfg.batch_size, k_enc=k_enc, n_samples=cfg.n_samples,
                       seed=seed, n_test=cfg.n_test, n_is=cfg.n_is, width=cfg.width,
                       log_every=10**9, threads=cfg.threads)
    path = None if checkpoint is None else str(checkpoint)
    if checkpoint is not None and checkpoint.is_file():
        trainer = Trainer.from_checkpoint(path, progress=False, checkpoint=path)
    else:
        trainer = Trainer(tcfg, progress=False, checkpoint=path)
    try:
        res = trainer.run()
    except TrainingDiverged as e:
        return {"diverged": True, "error": str(e)[:200]}
    keep = ("is_nll", "sm_loss", "is_ess", "neg_elbo", "mse", "posterior_fd", "sigma2")
    out = {k: float(res[k]) for k in keep if k in res}
    out["diverged"] = not all(math.isfinite(v) for v in out.values())
    out["wall_time_s"] = float(trainer.wall_time)
    return out


def run(out: str | Path, config: Fig3Config | None = None, *,
        resume: bool = False) -> dict[str, Any]:
    """Run the Figure 3 sweep into ``out``: ``fig3.png`` and ``results.json``.

    ``results.json`` is rewritten after every run (``"complete": false`` until the sweep ends);
    with ``resume`` the runs it already records are skipped, and a run interrupted by SIGINT or
    SIGTERM continues from its checkpoint in ``out/checkpoints``.
    """
    cfg = config or Fig3Config.quick()
    out = prepare_out(out)
    timer = Timer()
    prev = previous_results(out, "fig3", cfg) if resume else None
    runs: list[dict[str, Any]] = list(prev["runs"]) if prev else []
    done = {(r["dataset"], r["objective"], r["k_enc"], r["seed"]) for r in runs}
    seconds = float(prev.get("seconds", 0.0)) if prev else 0.0
    results: dict[str, Any] = {"figure": "fig3", "config": vars(cfg).copy(), "runs": runs}
    for ds in cfg.datasets:
        for obj in cfg.objectives:
            for k in cfg.k_encs:
                for s in cfg.seeds:
                    if (ds, obj, k, s) in done:
                        print(f"fig3: {ds} {obj} K_enc={k} seed={s}: recorded", file=sys.stderr)
                        continue
                    ckpt = out / "checkpoints" / f"{ds}-{obj}-k{k}-s{s}.pt"
                    if not resume:
                        ckpt.unlink(missing_ok=True)
                    r = train_and_evaluate(ds, obj, k, s, cfg, checkpoint=ckpt)
                    runs.append({"dataset": ds, "objective": obj, "k_enc": k, "seed": s, **r})
                    write_results(out, {**results, "complete": False,
                                        "seconds": seconds + timer.elapsed()})
                    ckpt.unlink(missing_ok=True)
                    print(f"fig3: {ds} {obj} K_enc={k} seed={s}: NLL={r.get('is_nll', 'div')}",
                          file=sys.stderr, flush=True)
    table = _table(runs, cfg)
    results.update(table=table, complete=True)
    _plot(out / "fig3.png", cfg, table)
    results["seconds"] = seconds + timer.elapsed()
    write_results(out, results)
    return results


def _table(runs: list[dict[str, Any]], cfg: Fig3Config) -> list[dict[str, Any]]:
    """Mean and s.e. over seeds of NLL and SM loss per (dataset, objective, K_enc)."""
    rows = []
    for ds in cfg.datasets:
        for obj in cfg.objectives:
            for k in cfg.k_encs:
                sel = [r for r in runs if (r["dataset"], r["objective"], r["k_enc"]) == (ds, obj, k)]
                ok = [r for r in sel if not r["diverged"]]
                row: dict[str, Any] = {"dataset": ds, "objective": obj, "k_enc": k,
                                       "n_runs": len(sel), "n_diverged": len(sel) - len(ok)}
                for key in ("is_nll", "sm_loss"):
                    v = np.array([r[key] for r in ok])
                    row[f"{key}_mean"] = float(v.mean()) if len(v) else float("nan")
                    row[f"{key}_se"] = (float(v.std(ddof=1) / math.sqrt(len(v)))
                                        if len(v) > 1 else 0.0)
                rows.append(row)
    return rows


def _plot(path: Path, cfg: Fig3Config, table: list[dict[str, Any]]) -> None:
    """Rows: data sets; columns: NLL, SM loss; x: K_enc; one line per objective."""
    fig, axes = plt.subplots(len(cfg.datasets), 2, figsize=(11, 3.8 * len(cfg.datasets)),
                             squeeze=False)
    colors = plt.cm.tab10(np.arange(len(cfg.objectives)))
    for i, ds in enumerate(cfg.datasets):
        for j, key in enumerate(("is_nll", "sm_loss")):
            ax = axes[i, j]
            for c, obj in zip(colors, cfg.objectives):
                rows = [r for r in table if r["dataset"] == ds and r["objective"] == obj]
                ks = [r["k_enc"] for r in rows]
                m = np.array([r[f"{key}_mean"] for r in rows])
                se = np.array([r[f"{key}_se"] for r in rows])
                ls = "-" if obj.startswith("kl") else ("--" if obj.startswith("fd") else ":")
                ax.errorbar(ks, m, yerr=se, fmt="o" + ls, color=c, label=obj, capsize=2, ms=4)
            finite = [r[f"{key}_mean"] for r in table if r["dataset"] == ds
                      and math.isfinite(r[f"{key}_mean"])]
            if finite:  # robust y-range: the good objectives set the scale (as in the paper)
                lo, med = np.min(finite), np.median(finite)
                ax.set_ylim(lo - 0.1 * abs(lo) - 0.1, med + 2.0 * (med - lo) + 0.5)
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(list(cfg.k_encs))
            ax.set_xticklabels([str(k) for k in cfg.k_encs])
            ax.set_xlabel("K_enc (encoder updates per decoder update)")
            ax.set_ylabel({"is_nll": "test NLL (IS, prior proposal)",
                           "sm_loss": "test SM loss (FD − const)"}[key])
            ax.set_title(f"{ds}: {key}", fontsize=9)
            if i == 0 and j == 1:
                ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Eight objectives on 2-D data (mean ± s.e. over seeds); lines leaving the top are "
                 "off-scale (values in results.json)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
