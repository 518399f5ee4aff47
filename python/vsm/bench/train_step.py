"""End-to-end training-step timings (``vsm bench --train-steps``): one :meth:`vsm.Trainer.train_step`
(encoder update + decoder update, optimiser steps included) of

- the paper's 2-D MLP VAE (:class:`vsm.MLPVAE`, L = 2) on "mixture" (width 30) and "sparse"
  (width 100), N = 3 posterior samples, batch 1000, objective "kl-m1";
- the MNIST-size MLP VAE: D = 784 (flat), N = 5, width 100, batch 100, objective "fd-m2";
- the conv VAE (:class:`vsm.ConvVAE`, 1×32×32 images, L = 16, ngf = ndf = 16), N = 5, batch 100,
  "fd-m2" (the encoder's posterior-FD step runs ``vsm.posterior_fd``, the decoder's m2 step
  ``vsm.gaussian_terms``);

each three ways: the autograd path (``fast_step=False``) with backend "reference" and with the vsm
backend of the table (:func:`vsm.bench.timing_backend`), and the default fast path
(``fast_step=True``, :mod:`vsm.train.fast_step`; the conv VAE runs autograd there too), at each
thread count: the median ms per step (after a warm-up step), measured twice in alternation, best
of the two, with the fast step's FLOPs (``torch.utils.flop_counter.FlopCounterMode``: matrix
products and convolutions) and GFLOP/s. The model and optimisers are rebuilt from the same seed
for each measurement. ``benches/bench_train_step.py`` compares with a hand-written PyTorch step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
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
    """One model at one thread count: ms per training step of the autograd path with each
    backend and of the fast path, and the fast step's matrix-product FLOPs."""

    model: str
    objective: str
    threads: int
    backend: str
    reference_ms: float
    vsm_ms: float
    fast_ms: float
    mflop: float

    @property
    def speedup(self) -> float:
        """The vsm backend against the reference, both on the autograd path."""
        return self.reference_ms / self.vsm_ms

    @property
    def fast_speedup(self) -> float:
        """The fast path against the autograd path (vsm backend)."""
        return self.vsm_ms / self.fast_ms

    @property
    def gflops(self) -> float:
        """The fast step's GFLOP/s."""
        return self.mflop / self.fast_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "speedup": self.speedup,
            "fast_speedup": self.fast_speedup,
            "gflops": self.gflops,
        }


def _models(quick: bool) -> list[tuple[str, tuple[int, ...], dict[str, Any]]]:
    """(label, data shape, TrainConfig overrides) of the timed models (``dataset`` names a toy
    to load; otherwise synthetic data of that shape)."""
    n = 4 if quick else BATCH
    n2 = 8 if quick else 1000
    toy = {"model": "mlp", "objective": "kl-m1", "n_samples": 3, "batch_size": n2}
    return [
        (
            f"2-D MLP 'mixture' width 30 N=3 B={n2}",
            (2,),
            {**toy, "dataset": "mixture", "width": 30},
        ),
        (
            f"2-D MLP 'sparse' width 100 N=3 B={n2}",
            (2,),
            {**toy, "dataset": "sparse", "width": 100},
        ),
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


def _trainer(
    shape: tuple[int, ...], overrides: dict[str, Any], device: torch.device, fast: bool = False
) -> Trainer:
    from ..data import Dataset, load_dataset
    from ..train import TrainConfig, Trainer

    kw = {"objective": "fd-m2", "n_samples": N_SAMPLES, **overrides}
    if "dataset" in kw:
        data = load_dataset(kw["dataset"], seed=0, n_test=16)
    else:
        gen = torch.Generator().manual_seed(0)
        train = torch.rand(10 * overrides["batch_size"], *shape, generator=gen)
        data = Dataset("bench-synthetic", shape, test=train[:16], train=train)
        kw["dataset"] = "bench-synthetic"
    cfg = TrainConfig(device=str(device), steps=10**9, n_test=16, fast_step=fast, **kw)
    return Trainer(cfg, data=data, progress=False)


def time_train_step(
    shape: tuple[int, ...],
    overrides: dict[str, Any],
    device: torch.device,
    mode: str,
    min_run_time: float,
    fast: bool = False,
) -> float:
    """Median ms of one training step with backend ``mode`` (after a warm-up step), on the fast
    path or (default) the autograd path."""
    trainer = _trainer(shape, overrides, device, fast)
    with backend(mode):
        return timing.time_ms(trainer.train_step, device, min_run_time)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` by the formulas of ``torch.utils.flop_counter`` (matrix
    products, convolutions, attention), counted at the dispatcher. (``FlopCounterMode`` itself
    also tracks modules with autograd hooks, which ``torch.autograd.grad`` inside a step, e.g. a
    decoder VJP, refuses.)"""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Counter.total += int(formula(*args, **kwargs, out_val=out))
            return out

    with Counter():
        fn()
    return Counter.total


def step_flops(shape: tuple[int, ...], overrides: dict[str, Any], device: torch.device) -> int:
    """FLOPs (matrix products, convolutions) of one fast-path training step."""
    trainer = _trainer(shape, overrides, device, fast=True)
    trainer.train_step()
    return count_flops(trainer.train_step)


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
                ref, plain, fast = math.inf, math.inf, math.inf
                for _ in range(2):
                    ref = min(
                        ref, time_train_step(shape, overrides, device, "reference", min_run_time)
                    )
                    plain = min(
                        plain, time_train_step(shape, overrides, device, mode, min_run_time)
                    )
                    fast = min(
                        fast, time_train_step(shape, overrides, device, mode, min_run_time, True)
                    )
                flops = step_flops(shape, overrides, device)
                objective = overrides.get("objective", "fd-m2")
                rows.append(TrainRow(label, objective, t, mode, ref, plain, fast, flops / 1e6))
    finally:
        torch.set_num_threads(original)
    return rows


def format_train_table(rows: Sequence[TrainRow]) -> str:
    """Markdown table of the training-step rows."""
    lines = [
        "| training step | objective | threads | vsm backend | reference ms | vsm ms | speed-up "
        "| fast-path ms | fast vs vsm | MFLOP | GFLOP/s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.objective} | {r.threads} | {r.backend} | {r.reference_ms:.2f} | "
            f"{r.vsm_ms:.2f} | {r.speedup:.2f}x | {r.fast_ms:.2f} | {r.fast_speedup:.2f}x | "
            f"{r.mflop:.1f} | {r.gflops:.1f} |"
        )
    return "\n".join(lines)
