"""Training-step benchmark of issue 18: vsm's Algorithm-1 iteration (fast path and autograd path)
against the plain hand-written PyTorch step of the same model and objective
(``benches/handwritten_step.py``).

For each row it builds the three steps ("hand", "plain" = ``TrainConfig(fast_step=False)``,
"fast" = the default fast path) from the same seed and runs them in alternation, ``--chunk``
iterations at a time (× K_enc/2 for K_enc > 1) for ``--rounds`` rounds, and reports each one's
*minimum* chunk time per iteration (robust on a shared machine: the best chunk is the one least
disturbed by other processes), the FLOPs of one iteration (``vsm.bench.train_step.count_flops``,
``torch.utils.flop_counter``'s formulas: matrix products and convolutions), GFLOP/s, the
percentage of the float32 matmul peak measured in the same run at the same thread count (an
(N·B)×W @ W×W product, the step's own largest MLP shape, and 2048³; conv rows are compared with
2048³) and the speed-ups. ``--seeds S`` also times S replicas batched (``TrainConfig.seeds``)
against one replica, per replica-iteration (MLP rows).

A row is ``dataset:width:objective[:k_enc[:variant]]`` (k_enc default 1, variant "vsm" or
"paper", default "vsm"):

- 2-D toys ("mixture", "sparse"): the paper's 2-D MLP VAE, batch 1000, N = 3, L = 2; "paper" is
  the authors' 2-D code (``vsm.train.variant_options``: log σ, softplus SD head, minibatch-mean
  L_B with the total-derivative ψ, total-derivative FAE encoder step, 100 000 fresh points per
  epoch), for the hand-written step too;
- ``mnist784``: the MNIST-size MLP (synthetic 784-dimensional data in [0, 1], batch 100, N = 5,
  L = 8, η = 0.1; "paper" is the authors' image code: log σ, SD exp(h), L_B's summed cross term,
  total-derivative FAE encoder step);
- ``conv``: the conv VAE of ``vsm bench --train-steps`` (``vsm.ConvVAE``, synthetic 1×32×32 images,
  L = 16, ngf = ndf = width, batch 100, N = 5, η = 0.1, variants as ``mnist784``; hand-written
  step ``handwritten_step.make_conv_step``). vsm has no fast path for it (its "fast" column is
  the autograd path with fused Adam; the table says so).

The default rows are the issue's table (:data:`ROWS`): "mixture" width 30 and "sparse" width 100
× kl-elbo, kl-m1, fd-m1, kl-m3, fae × K_enc 1, 10 × vsm, paper; then the MNIST-size MLP and the
conv VAE × kl-elbo, kl-m1, fd-m1, fd-m2 (K_enc 1, vsm). Every row has a hand-written step (every
objective of vsm, both variants) except with ``--fd-reparam``.

Run from the repository root (with vsm installed)::

    python benches/bench_train_step.py                      # the issue's rows, 1 thread
    python benches/bench_train_step.py --threads 0          # the same at every core
    python benches/bench_train_step.py --quick              # a smoke run
    python benches/bench_train_step.py --rows mixture:30:kl-m3:10:paper --json out.json
    python benches/bench_train_step.py --rows mixture:30:kl-m1 --seeds 10
    python benches/bench_train_step.py --rows mnist784:100:fd-m2,conv:16:fd-m2
    python benches/bench_train_step.py --rows mixture:30:kl-m1 --compiled  # + compile_step
    python benches/bench_train_step.py --rows mixture:30:fd-m1 --fd-reparam  # reparametrised FD

Not a test. ``--threads N`` (default 1; 0: every core) is set once and checked before and after
every timed chunk; the thread count and the load average before and after the run and each row
are printed and written to the JSON (``--json``), with each row's data set, width, objective,
K_enc and variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)  # interpreter timings are meaningless

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handwritten_step import HandStep, make_conv_step, make_step  # noqa: E402
from vsm.bench.train_step import count_flops  # noqa: E402
from vsm.data import Dataset, load_dataset  # noqa: E402
from vsm.train import TrainConfig, make_trainer, num_threads, variant_options  # noqa: E402

MNIST = "mnist784"  # synthetic 784-dimensional data: the MNIST-size MLP rows
CONV = "conv"  # synthetic 1×32×32 images: the conv VAE rows
VARIANTS = ("vsm", "paper")
ROWS = [
    f"{ds}:{w}:{obj}:{k}:{v}"
    for ds, w in (("mixture", 30), ("sparse", 100))
    for obj in ("kl-elbo", "kl-m1", "fd-m1", "kl-m3", "fae")
    for k in (1, 10)
    for v in VARIANTS
] + [
    f"{ds}:{w}:{obj}:1:vsm"
    for ds, w in ((MNIST, 100), (CONV, 16))
    for obj in ("kl-elbo", "kl-m1", "fd-m1", "fd-m2")
]
"""The default rows: issue 18's table."""


@dataclass(frozen=True)
class Row:
    """One row: ``dataset:width:objective[:k_enc[:variant]]`` (module docstring)."""

    dataset: str
    width: int
    objective: str
    k_enc: int = 1
    variant: str = "vsm"

    @classmethod
    def parse(cls, text: str) -> Row:
        parts = text.split(":")
        if not 3 <= len(parts) <= 5:
            raise ValueError(
                f"row: expected dataset:width:objective[:k_enc[:variant]], got {text!r}"
            )
        variant = parts[4] if len(parts) == 5 else "vsm"
        if variant not in VARIANTS:
            raise ValueError(f"row {text!r}: variant must be one of {VARIANTS}, got {variant!r}")
        k_enc = int(parts[3]) if len(parts) >= 4 else 1
        return cls(parts[0], int(parts[1]), parts[2], k_enc, variant)

    @property
    def name(self) -> str:
        return f"{self.dataset}:{self.width}:{self.objective}:{self.k_enc}:{self.variant}"

    @property
    def shape(self) -> dict[str, int]:
        """Batch size, N and L: the paper's 2-D setting, the MNIST-size MLP's or the conv VAE's."""
        if self.dataset == MNIST:
            return {"batch_size": 100, "n_samples": 5, "latent_dim": 8}
        if self.dataset == CONV:
            return {"batch_size": 100, "n_samples": 5, "latent_dim": 16}
        return {"batch_size": 1000, "n_samples": 3, "latent_dim": 2}

    @property
    def peak_shape(self) -> str:
        """The matmul peak a row's GFLOP/s is compared with (a key of :func:`_peak`)."""
        if self.dataset == CONV:
            return "2048^3"
        m = self.shape["batch_size"] * self.shape["n_samples"]
        return f"{m}x{self.width}x{self.width}"

    def config(self, **kw: Any) -> TrainConfig:
        model = (
            {"model": "conv", "ngf": self.width, "ndf": self.width} if self.dataset == CONV else {}
        )
        return TrainConfig(
            objective=self.objective,
            dataset=self.dataset,
            width=self.width,
            k_enc=self.k_enc,
            variant=self.variant,
            steps=10**9,
            n_test=100,
            **{**self.shape, **model, **kw},
        )


def _peak(m: int, w: int) -> dict[str, float]:
    """float32 matmul GFLOP/s at the current thread count: (m × w) @ (w × w) and 2048³, best of
    a few."""
    out = {}
    for name, a, b in (
        (f"{m}x{w}x{w}", torch.randn(m, w), torch.randn(w, w)),
        ("2048^3", torch.randn(2048, 2048), torch.randn(2048, 2048)),
    ):
        reps = 3 if a.shape[0] == 2048 else 200
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                a @ b
            best = min(best, (time.perf_counter() - t0) / reps)
        out[name] = 2 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9
    return out


def _check_threads(threads: int) -> None:
    if torch.get_num_threads() != threads:
        raise RuntimeError(
            f"torch.get_num_threads() is {torch.get_num_threads()}, expected {threads}: "
            "something in a step changed the thread count"
        )


def _alternate(
    steps: dict[str, Callable[[], Any]], chunk: int, rounds: int, threads: int
) -> dict[str, float]:
    """Min over rounds of the ms per iteration of a chunk, for each step, run in alternation;
    the thread count is checked before and after every chunk."""
    for f in steps.values():
        for _ in range(3):
            f()
    best = {k: float("inf") for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            _check_threads(threads)
            t0 = time.perf_counter()
            for _ in range(chunk):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / chunk * 1e3)
            _check_threads(threads)
    return best


def _data(ds: str) -> Dataset:
    """A 2-D toy, or synthetic data in [0, 1]: 784-dimensional (MNIST-size MLP) or 1×32×32
    images (conv VAE)."""
    gen = torch.Generator().manual_seed(0)
    if ds == MNIST:
        train = torch.rand(1000, 784, generator=gen)
        return Dataset(MNIST, (784,), train[:100], train=train)
    if ds == CONV:
        train = torch.rand(1000, 1, 32, 32, generator=gen)
        return Dataset(CONV, (1, 32, 32), train[:100], train=train)
    return load_dataset(ds, seed=0, n_test=100)


def hand_step(row: Row, data: Dataset) -> HandStep:
    """The hand-written step of a row (``handwritten_step.py``; every objective of vsm, both
    variants), fed the minibatches vsm's trainer draws for that variant."""
    sh = row.shape
    epoch = variant_options(row.variant, data).epoch_size
    kw = {} if epoch is None else {"epoch_size": epoch}

    def batches(s: int) -> torch.Tensor:
        return data.batch(s, sh["batch_size"], 0, **kw).float()

    n, latent, k = sh["n_samples"], sh["latent_dim"], row.k_enc
    if row.dataset == CONV:
        return make_conv_step(
            row.objective, batches, ngf=row.width, ndf=row.width, n_samples=n, latent=latent,
            k_enc=k, variant=row.variant,
        )  # fmt: skip
    return make_step(
        row.objective, batches, data_dim=data.data_shape[0], width=row.width, variant=row.variant,
        n_samples=n, latent=latent, k_enc=k,
    )  # fmt: skip


def bench_row(
    row: Row,
    chunk: int,
    rounds: int,
    seeds: int,
    threads: int,
    compiled: bool = False,
    fd_reparam: bool = False,
) -> dict[str, Any]:
    """Times of one row; ``fd_reparam``: TrainConfig.fd_reparam (no hand-written step then)."""
    data = _data(row.dataset)
    steps: dict[str, Callable[[], Any]] = {}
    extra: dict[str, Any] = {"fd_reparam": True} if fd_reparam else {}
    hand = None if fd_reparam else hand_step(row, data)
    if hand is not None:
        steps["hand"] = hand
    trainers = {}
    for name, fast in (("plain", False), ("fast", True)):
        trainers[name] = make_trainer(row.config(fast_step=fast, **extra), data=data)
        steps[name] = trainers[name].train_step
    k_enc = row.k_enc
    # FLOPs of K_enc iterations (one decoder update), per iteration
    flops = {k: sum(count_flops(f) for _ in range(k_enc)) / k_enc for k, f in steps.items()}
    compile_s = None
    if compiled:  # TrainConfig.compile_step: the first call compiles (timed), then as the others
        trainers["compiled"] = make_trainer(row.config(compile_step=True, **extra), data=data)
        steps["compiled"] = trainers["compiled"].train_step
        t0 = time.perf_counter()
        for _ in range(k_enc + 1):  # both updates compiled
            steps["compiled"]()
        compile_s = time.perf_counter() - t0
    ms = _alternate(steps, chunk * max(1, k_enc // 2), rounds, threads)
    res: dict[str, Any] = {
        "row": row.name,
        "dataset": row.dataset,
        "width": row.width,
        "objective": row.objective,
        "k_enc": k_enc,
        "variant": row.variant,
        "ms": ms,
        "mflop": {k: v / 1e6 for k, v in flops.items()},
        "gflops": {k: flops[k] / ms[k] / 1e6 for k in flops},
        "compile_s": compile_s,
        "fast_path": trainers["fast"].fast_step is not None,
        "fast_step_off": trainers["fast"].fast_step_off,
    }
    if seeds > 1 and row.dataset != CONV:
        sd = tuple(range(seeds))
        batched = make_trainer(row.config(seeds=sd, **extra), data=data)
        plain_b = make_trainer(row.config(seeds=sd, fast_step=False, **extra), data=data)
        t = _alternate(
            {
                "batched": batched.train_step,
                "plain_batched": plain_b.train_step,
                "single": trainers["fast"].train_step,
                "plain_single": trainers["plain"].train_step,
            },
            max(2, chunk // 4),
            rounds,
            threads,
        )
        res["seeds"] = {
            "S": seeds,
            **{f"{k}_ms": v for k, v in t.items()},
            "speedup_fast": seeds * t["single"] / t["batched"],
            "speedup_plain": seeds * t["plain_single"] / t["plain_batched"],
        }
    return res


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rows", default=",".join(ROWS), help="dataset:width:objective[:k_enc[:variant]],..."
    )
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (0: every core)")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seeds", type=int, default=0, help="also time S replicas batched")
    p.add_argument(
        "--compiled",
        action="store_true",
        help="also time the fast path with TrainConfig.compile_step (torch.compile)",
    )
    p.add_argument(
        "--fd-reparam",
        action="store_true",
        help="TrainConfig.fd_reparam=True (FD rows: reparametrised samples; no hand-written step)",
    )
    p.add_argument("--quick", action="store_true", help="the first two rows, 2 rounds of 2")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads < 0:
        p.error("--threads: expected a non-negative count (0: every core)")
    threads = num_threads(args.threads)
    torch.set_num_threads(threads)
    rows = [Row.parse(r) for r in args.rows.split(",")]
    if args.quick:
        rows, args.chunk, args.rounds = rows[:2], 2, 2
    load = _load()
    out: dict[str, Any] = {
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "fd_reparam": args.fd_reparam,
        "load_before": load,
        "rows": [],
    }
    print(
        f"threads {threads}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        + (", fd_reparam=True" if args.fd_reparam else "")
    )
    print(
        "| row | hand ms | plain ms | fast ms | fast vs hand | fast vs plain "
        "| MFLOP hand / fast | GFLOP/s hand / fast | % peak (fast) "
        "| seeds batched vs sequential (fast / plain) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    peaks: dict[tuple[int, int], dict[str, float]] = {}
    for row in rows:
        m = row.shape["batch_size"] * row.shape["n_samples"]
        key = (m, row.width)
        if key not in peaks:  # measured once per shape in this run, at this thread count
            peaks[key] = _peak(*key)
        peak = peaks[key]
        load_row = _load()
        r = bench_row(
            row, args.chunk, args.rounds, args.seeds, threads, args.compiled, args.fd_reparam
        )
        r["peak_gflops"] = peak
        r["peak_shape"] = row.peak_shape
        r["load_before"], r["load_after"] = load_row, _load()
        out["rows"].append(r)
        ms, mflop, gflops = r["ms"], r["mflop"], r["gflops"]
        has_hand = "hand" in ms
        pk = peak[row.peak_shape]
        seeds = r.get("seeds")
        fast = ms["fast"]
        print(
            f"| {row.name} | {ms['hand']:.2f} | " if has_hand else f"| {row.name} | - | ",
            end="",
        )
        print(
            f"{ms['plain']:.2f} | {fast:.2f} | "
            + (f"{ms['hand'] / fast:.2f}x | " if has_hand else "- | ")
            + f"{ms['plain'] / fast:.2f}x | "
            + (f"{mflop['hand']:.1f} / " if has_hand else "- / ")
            + f"{mflop['fast']:.1f} | "
            + (f"{gflops['hand']:.1f} / " if has_hand else "- / ")
            + f"{gflops['fast']:.1f} | {100 * gflops['fast'] / pk:.0f}% of {pk:.0f} "
            f"({row.peak_shape}) | "
            + (
                f"{seeds['speedup_fast']:.2f}x / {seeds['speedup_plain']:.2f}x |"
                if seeds
                else "- |"
            )
            + ("" if r["fast_path"] else f" (autograd: {r['fast_step_off']})")
            + (
                ""
                if r["compile_s"] is None
                else f" compiled {ms['compiled']:.2f} ms ({fast / ms['compiled']:.2f}x fast, "
                f"first calls {r['compile_s']:.1f} s)"
            ),
            flush=True,
        )
    out["load_after"] = _load()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in out['load_after'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
