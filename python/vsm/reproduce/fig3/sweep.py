"""The Figure 3 sweep: :func:`run` trains every setting (in worker processes when asked),
records them in ``results.json`` and writes the figure and the claims."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._errors import BadFileError
from .._common import Timer, prepare_out, previous_results, write_results
from .config import VARIANTS, Fig3Config, batched_seeds_available, settings, variants_available
from .figure import plot
from .markdown import markdown
from .report import judge, overall_verdicts, table
from .training import train_setting

# ------------------------------------------------------------------------------ the sweep

# What every recorded run must name for --resume to know its setting.
_RUN_KEYS = ("variant", "dataset", "objective", "k_enc", "seed", "diverged")


def _task(
    args: tuple[str, str, str, int, tuple[int, ...], Fig3Config, str | None],
) -> list[dict[str, Any]]:
    """One setting in a worker process (1 thread each)."""
    variant, ds, obj, k, seeds, cfg, ckpt = args
    from ...train.config import num_threads

    torch.set_num_threads(num_threads(cfg.threads))
    return train_setting(variant, ds, obj, k, seeds, cfg, None if ckpt is None else Path(ckpt))


def _cost(setting: tuple[str, str, str, int], cfg: Fig3Config) -> float:
    """Rough relative cost of a setting, to start the expensive ones first."""
    variant, ds, obj, k = setting
    width = cfg.width(ds)
    n = cfg.paper_n_samples if variant == "paper" else cfg.n_samples
    return (k + 1) * (1 + width / 30) ** 2 * n * (2.0 if obj in ("fae", "kl-m3", "fd-m3") else 1.0)


def run(
    out: str | Path, config: Fig3Config | None = None, *, resume: bool = False
) -> dict[str, Any]:
    """Run the Figure 3 sweep into ``out``: ``fig3.png``, ``fig3.md`` and ``results.json``.

    ``results.json`` is rewritten after every setting (``"complete": false`` until the sweep
    ends); with ``resume`` the settings it already records are skipped, and one interrupted by
    SIGINT or SIGTERM continues from its checkpoint in ``out/checkpoints``. With ``workers > 1``
    settings run in that many processes (``threads`` threads each).
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
        print(
            f"fig3: {st[1]} {st[2]} K_enc={st[3]} [{st[0]}]: NLL={shown} "
            f"converged {conv}/{len(recs)} after {recs[0]['iterations']} iterations",
            file=sys.stderr,
            flush=True,
        )

    if not resume:
        for st in todo:
            shutil.rmtree(ckpt_of(st), ignore_errors=True)
    if cfg.workers <= 1 or len(todo) <= 1:
        for st in todo:
            record(st, train_setting(*st, cfg.seeds, cfg, ckpt_dir=ckpt_of(st)))
    else:
        _run_pool(cfg, sorted(todo, key=lambda s: -_cost(s, cfg)), ckpt_of, record)
    order = {st: i for i, st in enumerate(settings(cfg))}
    runs.sort(
        key=lambda r: (
            order.get((r["variant"], r["dataset"], r["objective"], r["k_enc"]), len(order)),
            r["seed"],
        )
    )
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


def _run_pool(
    cfg: Fig3Config, todo: list[tuple[str, str, str, int]], ckpt_of: Any, record: Any
) -> None:
    """Run ``todo`` in ``cfg.workers`` processes; on SIGINT/SIGTERM in this process, forward
    SIGTERM to the workers (each checkpoints its setting) and re-raise."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal

    from ...train import TrainingInterrupted

    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
        futures = {
            pool.submit(_task, (*st, tuple(cfg.seeds), cfg, str(ckpt_of(st)))): st for st in todo
        }
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
                if (
                    fut not in recorded
                    and fut.done()
                    and not fut.cancelled()
                    and fut.exception() is None
                ):
                    record(st, fut.result())
            raise


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
