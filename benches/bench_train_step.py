"""Training-step benchmark of issue 18: vsm's Algorithm-1 iteration (fast path and autograd path)
against the plain hand-written PyTorch step of ``benches/handwritten_step.py``.

For each setting (2-D data set and width, objective, K_enc) it builds the three steps from the
same seed and runs them in alternation, ``--chunk`` iterations at a time for ``--rounds`` rounds,
and reports each one's *minimum* chunk time per iteration (robust on a shared machine: the best
chunk is the one least disturbed by other processes), the FLOPs of one iteration
(``torch.utils.flop_counter.FlopCounterMode``: matrix products), GFLOP/s, the percentage of the
one-thread float32 matmul peak measured in the same run (an (N·B)×W @ W×W product, the step's own
largest shape, and 2048³) and the speed-ups. ``--seeds S`` also times S replicas batched
(``TrainConfig.seeds``) against one replica, per replica-iteration.

Run from the repository root (with vsm installed)::

    python benches/bench_train_step.py                      # the issue's rows, 1 thread
    python benches/bench_train_step.py --quick              # a smoke run
    python benches/bench_train_step.py --rows mixture:30:kl-m1 --seeds 10 --json out.json
    python benches/bench_train_step.py --rows mnist784:100:fd-m1   # the MNIST-size MLP
    python benches/bench_train_step.py --rows mixture:30:kl-m1 --compiled  # + compile_step
    python benches/bench_train_step.py --rows mixture:30:fd-m1 --fd-reparam  # reparametrised FD

A row is ``dataset:width:objective[:k_enc]``; the data set ``mnist784`` is synthetic
784-dimensional data in [0, 1] with the MNIST-size MLP's batch 100, N = 5, L = 8 (the 2-D rows:
batch 1000, N = 3, L = 2).

Not a test; the thread count (``--threads``, default 1) and the load average are printed with
the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)  # interpreter timings are meaningless

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handwritten_step import make_step  # noqa: E402
from vsm.bench.train_step import count_flops  # noqa: E402
from vsm.data import Dataset, load_dataset  # noqa: E402
from vsm.train import TrainConfig, make_trainer  # noqa: E402

MNIST = "mnist784"  # synthetic 784-dimensional data: the MNIST-size MLP rows
HAND = ("kl-elbo", "kl-m1", "kl-m3", "fd-m1", "fae")  # objectives of handwritten_step.py
ROWS = [
    f"{ds}:{w}:{obj}:{k}"
    for ds, w in (("mixture", 30), ("sparse", 100))
    for obj in ("kl-elbo", "kl-m1", "fd-m1", "kl-m3", "fae")
    for k in (1, 10)
]


def _flops(step: Callable[[], Any]) -> int:
    return count_flops(step)


def _peak(m: int, w: int) -> dict[str, float]:
    """One-thread float32 matmul GFLOP/s: (m × w) @ (w × w) and 2048³, best of a few."""
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


def _alternate(steps: dict[str, Callable[[], Any]], chunk: int, rounds: int) -> dict[str, float]:
    """Min over rounds of the ms per iteration of a chunk, for each step, run in alternation."""
    for f in steps.values():
        for _ in range(3):
            f()
    best = {k: float("inf") for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            t0 = time.perf_counter()
            for _ in range(chunk):
                f()
            best[k] = min(best[k], (time.perf_counter() - t0) / chunk * 1e3)
    return best


def _config(ds: str, width: int, obj: str, k_enc: int, **kw: Any) -> TrainConfig:
    return TrainConfig(
        objective=obj,
        dataset=ds,
        width=width,
        k_enc=k_enc,
        steps=10**9,
        n_test=100,
        **{**_shape(ds), **kw},
    )


def _shape(ds: str) -> dict[str, int]:
    """Batch size, N and L of a row: the paper's 2-D setting, or the MNIST-size MLP's."""
    if ds == MNIST:
        return {"batch_size": 100, "n_samples": 5, "latent_dim": 8}
    return {"batch_size": 1000, "n_samples": 3, "latent_dim": 2}


def _data(ds: str) -> Dataset:
    """A 2-D toy, or synthetic 784-dimensional data in [0, 1] for the MNIST-size MLP."""
    if ds != MNIST:
        return load_dataset(ds, seed=0, n_test=100)
    train = torch.rand(1000, 784, generator=torch.Generator().manual_seed(0))
    return Dataset(MNIST, (784,), train[:100], train=train)


def bench_row(
    row: str,
    chunk: int,
    rounds: int,
    seeds: int,
    compiled: bool = False,
    fd_reparam: bool = False,
) -> dict[str, Any]:
    """Times of one row; ``fd_reparam``: TrainConfig.fd_reparam (no hand-written step then)."""
    ds, w, obj, k = (row + ":1").split(":")[:4]
    width, k_enc = int(w), int(k)
    data = _data(ds)
    sh = _shape(ds)
    steps: dict[str, Callable[[], Any]] = {}
    extra: dict[str, Any] = {"fd_reparam": True} if fd_reparam else {}
    if obj in HAND and not fd_reparam:
        steps["hand"] = make_step(
            obj,
            lambda s: data.batch(s, sh["batch_size"], 0).float(),
            data_dim=data.data_shape[0],
            latent=sh["latent_dim"],
            n_samples=sh["n_samples"],
            width=width,
            k_enc=k_enc,
        )
    trainers = {}
    for name, fast in (("plain", False), ("fast", True)):
        trainers[name] = make_trainer(
            _config(ds, width, obj, k_enc, fast_step=fast, **extra), data=data
        )
        steps[name] = trainers[name].train_step
    # FLOPs of K_enc iterations (one decoder update), per iteration
    flops = {k: sum(_flops(f) for _ in range(k_enc)) / k_enc for k, f in steps.items()}
    compile_s = None
    if compiled:  # TrainConfig.compile_step: the first call compiles (timed), then as the others
        trainers["compiled"] = make_trainer(
            _config(ds, width, obj, k_enc, compile_step=True, **extra), data=data
        )
        steps["compiled"] = trainers["compiled"].train_step
        t0 = time.perf_counter()
        for _ in range(k_enc + 1):  # both updates compiled
            steps["compiled"]()
        compile_s = time.perf_counter() - t0
    ms = _alternate(steps, chunk * max(1, k_enc // 2), rounds)
    res: dict[str, Any] = {
        "row": row,
        "ms": ms,
        "mflop": {k: v / 1e6 for k, v in flops.items()},
        "gflops": {k: flops[k] / ms[k] / 1e6 for k in flops},
        "compile_s": compile_s,
        "fast_path": trainers["fast"].fast_step is not None,
        "fast_step_off": trainers["fast"].fast_step_off,
    }
    if seeds > 1:
        batched = make_trainer(_config(ds, width, obj, k_enc, seeds=tuple(range(seeds)), **extra))
        plain_b = make_trainer(
            _config(ds, width, obj, k_enc, seeds=tuple(range(seeds)), fast_step=False, **extra)
        )
        t = _alternate(
            {
                "batched": batched.train_step,
                "plain_batched": plain_b.train_step,
                "single": trainers["fast"].train_step,
                "plain_single": trainers["plain"].train_step,
            },
            max(2, chunk // 4),
            rounds,
        )
        res["seeds"] = {
            "S": seeds,
            **{f"{k}_ms": v for k, v in t.items()},
            "speedup_fast": seeds * t["single"] / t["batched"],
            "speedup_plain": seeds * t["plain_single"] / t["plain_batched"],
        }
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help="dataset:width:objective:k_enc,...")
    p.add_argument("--threads", type=int, default=1)
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
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = args.rows.split(",")
    if args.quick:
        rows, args.chunk, args.rounds = rows[:2], 2, 2
    load = os.getloadavg()
    out: dict[str, Any] = {
        "threads": args.threads,
        "fd_reparam": args.fd_reparam,
        "load_before": load,
        "rows": [],
    }
    print(
        f"threads {args.threads}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        + (", fd_reparam=True" if args.fd_reparam else "")
    )
    print(
        "| row | hand ms | plain ms | fast ms | fast vs hand | fast vs plain | MFLOP (fast) "
        "| GFLOP/s (fast) | % peak | seeds batched vs sequential (fast / plain) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        ds, w = row.split(":")[:2]
        peak = _peak(500 if ds == MNIST else 3000, int(w))
        r = bench_row(row, args.chunk, args.rounds, args.seeds, args.compiled, args.fd_reparam)
        r["peak_gflops"] = peak
        out["rows"].append(r)
        ms = r["ms"]
        hand = ms.get("hand")
        pk = peak[f"{500 if ds == MNIST else 3000}x{w}x{w}"]
        seeds = r.get("seeds")
        fast = ms["fast"]
        hand_s = "-" if hand is None else f"{hand:.2f}"
        vs_hand = "-" if hand is None else f"{hand / fast:.2f}x"
        print(
            f"| {row} | {hand_s} | {ms['plain']:.2f} | {fast:.2f} | {vs_hand} | "
            f"{ms['plain'] / ms['fast']:.2f}x | {r['mflop']['fast']:.1f} | "
            f"{r['gflops']['fast']:.1f} | {100 * r['gflops']['fast'] / pk:.0f}% of {pk:.0f} | "
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
    out["load_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
