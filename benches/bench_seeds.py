"""Benchmark of many seeds in one run: S replicas trained as one batched computation
(:class:`vsm.train.SeedsTrainer`) against the same S seeds trained one after another
(:class:`vsm.train.Trainer`), for every objective.

The setting of issue 14: the paper's 2-D MLP (width 30, L = 2) on a 2-D toy, batch 1000, one
intra-op thread. For each objective it times ``--steps`` iterations (after ``--warmup``
untimed ones) of the batched run and of each single run, and reports seed-iterations per second
and the speed-up (sequential time / batched time). Not a test: run it on a quiet machine.

Run from the repository root (with the installed vsm, or ``PYTHONPATH=python`` for a checkout
with its compiled extension)::

    OMP_NUM_THREADS=1 python benches/bench_seeds.py                 # 10 seeds, 200 iterations
    python benches/bench_seeds.py --quick                           # a tiny smoke run
    python benches/bench_seeds.py --device cuda --threads 0         # on a GPU

Options: ``--seeds S``, ``--steps N``, ``--warmup W``, ``--batch-size B``, ``--width H``,
``--dataset NAME``, ``--objectives a,b``, ``--dtype``, ``--device``, ``--threads T``,
``--json PATH`` (also write the rows as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.pop("TRITON_INTERPRET", None)  # interpreter timings are meaningless

import torch
from vsm.data import load_dataset
from vsm.train import OBJECTIVES, SeedsTrainer, TrainConfig, Trainer


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_steps(trainer: Trainer, steps: int, warmup: int, device: str) -> float:
    """Seconds for ``steps`` iterations after ``warmup`` untimed ones."""
    for _ in range(warmup):
        trainer.train_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    _sync(device)
    return time.perf_counter() - t0


def bench_objective(objective: str, args: argparse.Namespace) -> dict[str, float | str | int]:
    seeds = tuple(range(args.seeds))
    common = {
        "objective": objective,
        "dataset": args.dataset,
        "batch_size": args.batch_size,
        "width": args.width,
        "dtype": args.dtype,
        "device": args.device,
        "n_test": 100,
        "log_every": 10**9,
    }
    # each single run gets its own seed's data set, exactly as the batched replicas do
    data = {s: load_dataset(args.dataset, seed=s, n_test=100) for s in seeds}
    batched = SeedsTrainer(TrainConfig(seeds=seeds, **common), data=[data[s] for s in seeds])
    t_batched = _time_steps(batched, args.steps, args.warmup, args.device)
    t_seq = 0.0
    for s in seeds:
        single = Trainer(TrainConfig(seed=s, **common), data=data[s])
        t_seq += _time_steps(single, args.steps, args.warmup, args.device)
    n = args.steps * len(seeds)
    return {
        "objective": objective,
        "seeds": len(seeds),
        "steps": args.steps,
        "batched_s": t_batched,
        "sequential_s": t_seq,
        "batched_seed_it_per_s": n / t_batched,
        "sequential_seed_it_per_s": n / t_seq,
        "speedup": t_seq / t_batched,
        "replicas_left": len(batched.seeds),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="replicas S (default 10)")
    p.add_argument("--steps", type=int, default=200, help="timed iterations (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first (default 10)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--width", type=int, default=30)
    p.add_argument("--dataset", default="mixture")
    p.add_argument(
        "--objectives",
        default=",".join(OBJECTIVES),
        help="comma-separated (default: every objective)",
    )
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (0: leave torch's)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 3 seeds, batch 50, 3 iterations, 1 warm-up"
    )
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.batch_size, args.steps, args.warmup = 3, 50, 3, 1
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = sorted(set(objectives) - set(OBJECTIVES))
    if unknown:
        p.error(f"--objectives: unknown {unknown}; expected some of {OBJECTIVES}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"# {args.seeds} seeds batched vs one after another: {args.dataset}, MLP width "
        f"{args.width}, batch {args.batch_size}, {args.steps} iterations (+{args.warmup} "
        f"warm-up), {args.dtype} on {args.device}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}"
    )
    print(
        "| objective | batched s | sequential s | batched seed-it/s | sequential seed-it/s | "
        "speed-up |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for objective in objectives:
        row = bench_objective(objective, args)
        rows.append(row)
        note = "" if row["replicas_left"] == args.seeds else f" ({row['replicas_left']} left)"
        print(
            f"| {objective} | {row['batched_s']:.3f} | {row['sequential_s']:.3f} | "
            f"{row['batched_seed_it_per_s']:.1f} | {row['sequential_seed_it_per_s']:.1f} | "
            f"{row['speedup']:.2f}×{note} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"settings": vars(args), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
