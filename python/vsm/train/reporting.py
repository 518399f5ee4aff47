"""What a training run reports: its periodic log lines, evaluation summaries, and the files it
writes with ``out_dir`` (``metrics/step_*.json`` at evaluations; ``metrics.json``,
``history.json`` and ``loss.png`` at the end), for one run and for many seeds."""

from __future__ import annotations

import os
import statistics
from typing import Any

from ..plots import loss_curve, replica_loss_curves
from .checkpoint import atomic_json

__all__ = [
    "format_eval",
    "format_replicas_eval",
    "format_window",
    "stored",
    "summary",
    "write_eval",
    "write_outputs",
    "write_replica_outputs",
]

EVAL_KEYS = ("neg_elbo", "mse", "mmd2", "posterior_fd", "is_nll", "sm_loss")
"""The metrics an evaluation's log line shows."""


def format_window(window: list[dict[str, float]], step: int, total: int) -> str:
    """The log line of the iterations since the last one: mean losses and the last σ²."""
    parts = [f"step {step}/{total}"]
    for key in ("enc_loss", "dec_loss"):
        vals = [r[key] for r in window if key in r]
        if vals:
            parts.append(f"{key} {sum(vals) / len(vals):.4g}")
    parts.append(f"sigma2 {window[-1]['sigma2']:.3g}")
    return "  ".join(parts)


def format_eval(res: dict[str, Any]) -> str:
    """The log line of one run's evaluation."""
    vals = "  ".join(f"{k} {res[k]:.4g}" for k in EVAL_KEYS if isinstance(res.get(k), float))
    return f"eval @ step {res['step']}: {vals}"


def format_replicas_eval(res: dict[str, Any]) -> str:
    """The log line of a many-seeds evaluation: mean ± SD over the replicas."""
    s = res["summary"]
    vals = "  ".join(f"{k} {s[k]['mean']:.4g} ± {s[k]['sd']:.2g}" for k in EVAL_KEYS if k in s)
    n = len(res["replicas"])
    return f"eval @ step {res['step']} (mean ± SD over {n} replicas): {vals}"


def stored(res: dict[str, Any]) -> dict[str, Any]:
    """An evaluation as kept in the history (without the per-dimension posterior SDs)."""
    return {k: v for k, v in res.items() if not k.startswith("posterior_sd_")}


def summary(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "sd", "n"}} over the replicas' results, for every float metric but the
    wall time (SD 0 for one replica)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in results[0].items():
        if isinstance(value, float) and key != "wall_time_s":
            vals = [float(res[key]) for res in results]
            out[key] = {
                "mean": statistics.fmean(vals),
                "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
    return out


def write_eval(out_dir: str | None, res: dict[str, Any], step: int) -> None:
    """``out_dir/metrics/step_*.json`` (nothing without ``out_dir``)."""
    if out_dir is not None:
        atomic_json(res, os.path.join(out_dir, "metrics", f"step_{step:07d}.json"))


def write_outputs(
    out_dir: str, res: dict[str, Any], history: list[dict[str, float]], *, title: str
) -> None:
    """The end of a run: metrics.json, history.json and loss.png."""
    atomic_json(res, os.path.join(out_dir, "metrics.json"))
    atomic_json(history, os.path.join(out_dir, "history.json"))
    loss_curve(history, os.path.join(out_dir, "loss.png"), title=title)


def write_replica_outputs(
    out_dir: str, res: dict[str, Any], histories: dict[int, list[dict[str, float]]], *, title: str
) -> None:
    """The end of a many-seeds run: metrics.json, history.json (keyed by seed) and loss.png
    (every replica's curves)."""
    atomic_json(res, os.path.join(out_dir, "metrics.json"))
    atomic_json({str(s): h for s, h in histories.items()}, os.path.join(out_dir, "history.json"))
    replica_loss_curves(histories, os.path.join(out_dir, "loss.png"), title=title)
