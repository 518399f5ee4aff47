"""End-to-end training-step timings (``vsm bench --train-steps``): one :meth:`vsm.Trainer.train_step`
(encoder update + decoder update, optimiser steps included) of

- the MNIST-size MLP VAE: D = 784 (flat), N = 5 posterior samples, width 100, batch 100;
- the conv VAE (:class:`vsm.ConvVAE`, 1×32×32 images, L = 16, ngf = ndf = 16), N = 5, batch 100;

with objective "fd-m2" (the encoder's posterior-FD step runs ``vsm.posterior_fd``, the decoder's
m2 step ``vsm.gaussian_terms``), on synthetic data in [0, 1], with backend "reference" and
with the vsm backend of the table (:func:`vsm.bench.timing_backend`), at each thread count: the
median ms per step (after a warm-up step), measured twice in alternation, best of the two. The
model and optimiser are rebuilt from the same seed for each measurement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .._dispatch import backend
from . import timing
from .table import timing_backend

if TYPE_CHECKING:
    from ..train import Trainer

BATCH = 100
N_SAMPLES = 5


@dataclass
class TrainRow:
    """One model at one thread count: ms per training step with each backend."""

    model: str
    threads: int
    backend: str
    reference_ms: float
    vsm_ms: float

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.vsm_ms

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "speedup": self.speedup}


def _models(quick: bool) -> list[tuple[str, tuple[int, ...], dict[str, Any]]]:
    """(label, data shape, TrainConfig overrides) of the timed models."""
    n = 4 if quick else BATCH
    return [
        (
            f"MLP VAE D=784 N={N_SAMPLES} width 100 B={n}",
            (784,),
            {"model": "mlp", "width": 100, "batch_size": n},
        ),
        (
            f"conv VAE 1x32x32 L=16 N={N_SAMPLES} B={n}",
            (1, 32, 32),
            {"model": "conv", "latent_dim": 16, "batch_size": n},
        ),
    ]


def _trainer(shape: tuple[int, ...], overrides: dict[str, Any], device: torch.device) -> Trainer:
    from ..data import Dataset
    from ..train import TrainConfig, Trainer

    gen = torch.Generator().manual_seed(0)
    train = torch.rand(10 * overrides["batch_size"], *shape, generator=gen)
    data = Dataset("bench-synthetic", shape, test=train[:16], train=train)
    cfg = TrainConfig(
        objective="fd-m2",
        dataset="bench-synthetic",
        n_samples=N_SAMPLES,
        device=str(device),
        steps=10**9,
        **overrides,
    )
    return Trainer(cfg, data=data, progress=False)


def time_train_step(
    shape: tuple[int, ...],
    overrides: dict[str, Any],
    device: torch.device,
    mode: str,
    min_run_time: float,
) -> float:
    """Median ms of one training step with backend ``mode`` (after a warm-up step)."""
    trainer = _trainer(shape, overrides, device)
    with backend(mode):
        return timing.time_ms(trainer.train_step, device, min_run_time)


def run_train_steps(
    device: torch.device, threads: Sequence[int], *, quick: bool = False, mode: str | None = None
) -> list[TrainRow]:
    """Training-step rows for both models at each thread count (``mode``: the vsm backend,
    default :func:`vsm.bench.timing_backend`)."""
    mode = mode or timing_backend(device)
    min_run_time = 0.2 if quick else 2.0
    original = torch.get_num_threads()
    rows = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            for label, shape, overrides in _models(quick):
                # interleaved twice, best of two: neither backend pays the process's lazy
                # initialisation (first conv, allocator growth) alone
                ref, fast = math.inf, math.inf
                for _ in range(2):
                    ref = min(
                        ref, time_train_step(shape, overrides, device, "reference", min_run_time)
                    )
                    fast = min(fast, time_train_step(shape, overrides, device, mode, min_run_time))
                rows.append(TrainRow(label, t, mode, ref, fast))
    finally:
        torch.set_num_threads(original)
    return rows


def format_train_table(rows: Sequence[TrainRow]) -> str:
    """Markdown table of the training-step rows."""
    lines = [
        "| training step (fd-m2) | threads | vsm backend | reference ms | vsm ms | speed-up |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.threads} | {r.backend} | {r.reference_ms:.2f} | "
            f"{r.vsm_ms:.2f} | {r.speedup:.2f}x |"
        )
    return "\n".join(lines)
