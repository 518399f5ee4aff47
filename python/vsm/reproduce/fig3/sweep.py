"""The Figure 3 sweep: :func:`run` trains every setting (each one unit of
:mod:`vsm.reproduce.executors`: in this process, worker processes or Ray tasks), records them in
``results.json`` as they finish and writes the figure and the claims."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..._errors import BadFileError
from ...train.config import num_threads
from .._common import (
    Timer,
    prepare_out,
    previous_results,
    results_kept_on_stop,
    write_results,
)
from ..executors import Executor, LocalExecutor, Unit, UnitsFailed, log, run_units
from .config import (
    VARIANTS,
    Fig3Config,
    batched_seeds_available,
    settings,
    sort_runs,
    variants_available,
)
from .figure import plot
from .markdown import markdown
from .report import claim_settings, summarize
from .training import train_setting

# ------------------------------------------------------------------------------ the sweep

# Run first: the objectives every claim is judged against (report.CLAIMS).
BASELINES = ("kl-elbo", "kl-m1")

# What every recorded run must name for --resume to know its setting.
_RUN_KEYS = ("variant", "dataset", "objective", "k_enc", "seed", "diverged")


def _cost(setting: tuple[str, str, str, int], cfg: Fig3Config) -> float:
    """Rough relative cost of a setting, to start the expensive ones first."""
    variant, ds, obj, k = setting
    width = cfg.width(ds)
    n = cfg.paper_n_samples if variant == "paper" else cfg.n_samples
    return (k + 1) * (1 + width / 30) ** 2 * n * (2.0 if obj in ("fae", "kl-m3", "fd-m3") else 1.0)


def run(
    out: str | Path,
    config: Fig3Config | None = None,
    *,
    resume: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run the Figure 3 sweep into ``out``: ``fig3.png``, ``fig3.md`` and ``results.json``.

    Each setting is one unit of :func:`vsm.reproduce.executors.run_units` on ``executor``
    (default: :class:`~vsm.reproduce.executors.LocalExecutor` with ``workers`` processes of
    ``threads`` threads each). ``results.json`` is rewritten as each setting finishes
    (``"complete": false`` until the sweep ends; a setting that raised is listed under
    ``"failed"`` with its error, the others go on, and
    :class:`~vsm.reproduce.executors.UnitsFailed` is raised at the end); with ``resume`` the
    settings it already records are skipped, whichever executor ran them, and one interrupted by
    SIGINT or SIGTERM continues from its checkpoint in ``out/checkpoints`` (on another Ray node
    only with a shared file system).
    """
    cfg = config or Fig3Config.quick()
    check_config(cfg)
    out = prepare_out(out)
    timer = Timer()
    prev = previous_results(out, "fig3", cfg, {"runs": list}) if resume else None
    runs: list[dict[str, Any]] = list(prev["runs"]) if prev else []
    for r in runs:
        if not isinstance(r, dict) or any(k not in r for k in _RUN_KEYS):
            raise BadFileError(
                out / "results.json",
                f"damaged fig3 results file (a run without {', '.join(_RUN_KEYS)})",
                "move it away, or choose another --out",
                arg="out",
            )
    done = {(r["variant"], r["dataset"], r["objective"], r["k_enc"]) for r in runs}
    seconds = float(prev.get("seconds", 0.0)) if prev else 0.0
    avail = variants_available()
    skipped = [v for v in cfg.variants if v not in avail]
    if skipped:
        print(
            f"fig3: variant(s) {skipped} not offered by this trainer (TrainConfig.variant); "
            "running without them",
            file=sys.stderr,
        )
    results: dict[str, Any] = {
        "figure": "fig3",
        "config": vars(cfg).copy(),
        "runs": runs,
        "variants_run": [v for v in cfg.variants if v in avail],
        "batched_seeds": bool(cfg.batched and batched_seeds_available()),
    }
    failed: dict[str, str] = {}
    todo = [st for st in settings(cfg) if st[0] in avail]
    for st in todo:
        if st in done:
            print(f"fig3: {st[1]} {st[2]} K_enc={st[3]} [{st[0]}]: recorded", file=sys.stderr)
    todo = [st for st in todo if st not in done]
    root = out.resolve()  # absolute: the units may run in other processes or on other nodes

    def ckpt_of(st: tuple[str, str, str, int]) -> Path:
        v, ds, obj, k = st
        return root / "checkpoints" / f"{v}-{ds}-{obj}-k{k}"

    def snapshot() -> dict[str, Any]:
        return {
            **results,
            "failed": dict(failed),
            "complete": False,
            "seconds": seconds + timer.elapsed(),
        }

    def record(st: tuple[str, str, str, int], recs: list[dict[str, Any]]) -> None:
        runs.extend(recs)
        write_results(out, snapshot())
        shutil.rmtree(ckpt_of(st), ignore_errors=True)
        nll = [float(r["is_nll"]) for r in recs if not r["diverged"]]
        conv = sum(bool(r["converged"]) for r in recs)
        shown = f"{np.mean(nll):.4g}" if nll else "diverged"
        div = sum(bool(r["diverged"]) for r in recs)
        iters = max(int(r["iterations"]) for r in recs)  # a diverged seed stopped earlier
        log(
            f"fig3: {st[1]} {st[2]} K_enc={st[3]} [{st[0]}]: NLL={shown} "
            f"converged {conv}/{len(recs)}, diverged {div}/{len(recs)} after {iters} iterations"
        )

    if not resume:
        for st in todo:
            shutil.rmtree(ckpt_of(st), ignore_errors=True)
    needed = claim_settings(cfg)
    units = {
        unit_key(st): Unit(
            unit_key(st),
            train_setting,
            (*st, tuple(cfg.seeds), cfg, ckpt_of(st)),
            threads=num_threads(cfg.threads),
            cost=_cost(st, cfg),
            # the baselines first: every claim compares against kl-m1 (and kl-m1 against
            # kl-elbo, the figure's reference), then the other settings some claim needs, then
            # those that only add to the figure; so a sweep stopped part-way (the paper-length
            # one takes sittings) can be judged claim by claim as it goes
            priority=2 if st[2] in BASELINES else int(st in needed),
        )
        for st in todo
    }
    setting_of = {unit_key(st): st for st in todo}

    def failure(unit: Unit, error: str) -> None:
        failed[unit.key] = error
        write_results(out, snapshot())

    with results_kept_on_stop(out, snapshot):
        run_units(
            list(units.values()),
            executor or LocalExecutor(cfg.workers),
            on_done=lambda unit, recs: record(setting_of[unit.key], recs),
            on_failed=failure,
            desc="fig3",
        )
        if failed:
            raise UnitsFailed("fig3", failed)
    sort_runs(runs, cfg)
    results = summarize(results, cfg)
    results["complete"] = True
    plot(out / "fig3.png", results)
    results["seconds"] = seconds + timer.elapsed()
    write_results(out, results)
    (out / "fig3.md").write_text(markdown(results))
    return results


def unit_key(setting: tuple[str, str, str, int]) -> str:
    """The name of a setting's unit in ``results.json`` (``"failed"``), e.g.
    ``vsm/sparse/kl-m1/k10``."""
    v, ds, obj, k = setting
    return f"{v}/{ds}/{obj}/k{k}"


def check_config(cfg: Fig3Config) -> None:
    """Check a :class:`Fig3Config` before any work (ValueError naming the field)."""
    from ...train import OBJECTIVES as ALL

    for name in (
        "max_iters",
        "check_every",
        "batch_size",
        "n_samples",
        "paper_n_samples",
        "n_test",
        "n_is",
        "workers",
    ):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    for name in ("dec_lr", "elbo_lr", "enc_lr_kl", "enc_lr_fd"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected a finite positive learning rate, got {v!r}")
    c = cfg.continue_iters
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise ValueError(f"continue_iters: expected an int ≥ 0 (0: off), got {c!r}")
    bad = [o for o in cfg.objectives if o not in ALL]
    if bad:
        raise ValueError(f"objectives: unknown {bad}; expected some of {ALL}")
    bad = [v for v in cfg.variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants: unknown {bad}; expected some of {VARIANTS}")
    if not cfg.seeds or not cfg.k_encs or min(cfg.k_encs) < 1:
        raise ValueError(
            f"seeds, k_encs: expected non-empty, K_enc ≥ 1; got {cfg.seeds}, {cfg.k_encs}"
        )
    cfg.thresholds()
