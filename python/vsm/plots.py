"""Training plots (matplotlib, Agg backend so they work without a display): the loss curve of a
run from its per-iteration history, and the curves of every replica of a many-seeds run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = ["loss_curve", "replica_loss_curves"]


def _smooth(values: list[float], width: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def loss_curve(
    history: Sequence[dict[str, Any]], path: str, *, title: str = "", smooth: int | None = None
) -> str:
    """Plot the encoder (inference) and decoder (learning) losses against the iteration.

    Args:
        history: per-iteration records with ``step`` and ``enc_loss`` / ``dec_loss`` keys (as
            written by :class:`vsm.train.Trainer`).
        path: output PNG path (folders are created).
        title: figure title.
        smooth: moving-average window (default: ~1/50 of the run, at least 1).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = smooth or max(1, len(history) // 50)
    for ax, key, label in (
        (axes[0], "enc_loss", "inference (encoder) loss"),
        (axes[1], "dec_loss", "learning (decoder) loss"),
    ):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            steps, vals = zip(*pts, strict=True)
            ax.plot(steps, vals, alpha=0.3, lw=0.8)
            ax.plot(steps, _smooth(list(vals), width), lw=1.5)
        ax.set_xlabel("iteration")
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def replica_loss_curves(
    histories: dict[int, list[dict[str, float]]], path: str, *, title: str = ""
) -> str:
    """Every replica's smoothed encoder and decoder losses against the iteration, one line per
    seed (``histories`` maps a seed to its records, as :class:`vsm.train.SeedsTrainer` keeps
    them); a legend when there are at most ten. Written atomically. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in (
        (axes[0], "enc_loss", "inference (encoder) loss"),
        (axes[1], "dec_loss", "learning (decoder) loss"),
    ):
        for seed, history in histories.items():
            pts = [(r["step"], r[key]) for r in history if key in r]
            if not pts:
                continue
            steps, vals = zip(*pts, strict=True)
            smooth = _smooth(list(vals), max(1, len(vals) // 50))
            ax.plot(steps, smooth, lw=1.0, label=f"seed {seed}")
        ax.set_xlabel("iteration")
        ax.set_title(label, fontsize=9)
    if len(histories) <= 10:
        axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic = f"{path}.tmp.{os.getpid()}.png"
    fig.savefig(atomic, dpi=110)
    plt.close(fig)
    os.replace(atomic, path)
    return path
