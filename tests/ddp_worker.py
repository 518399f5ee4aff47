"""Worker for tests/test_ddp.py, launched by ``torchrun --nproc_per_node=2 --standalone``.

Builds a :class:`vsm.Trainer` exactly as a single-process user would (the trainer joins the gloo
process group itself from torchrun's environment and wraps each parameter group's objective in
``DistributedDataParallel``), runs a few iterations of a tiny MLP VAE on "sparse", and writes this
rank's final parameters, the losses it logged, the minibatch indices it drew and the objective
wrappers' class names to ``<out>/rank<r>.pt`` for the test to compare.

Usage: ``python -m torch.distributed.run --nproc_per_node=2 --standalone tests/ddp_worker.py OUT
OBJECTIVE STEPS K_BI [--fit] [--resume CKPT] [--save CKPT] [--nan-rank R --nan-step S]
[--no-fast-step] [--float64]``.
``--fit`` trains with :meth:`vsm.Trainer.run` (evaluation, checkpoint, metrics and plot files).
``--resume`` continues from a checkpoint (every rank loads it); ``--save`` writes one at the end
(a collective: every rank calls it); ``--nan-*`` feeds rank R a NaN minibatch at iteration S, and
the worker records the :class:`vsm.train.TrainingDiverged` message it got instead of failing.
``--no-fast-step`` trains on the autograd path (DDP's reducer) instead of the closed-form fast
path (gradients averaged by the trainer); ``--float64`` trains in float64.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

os.environ.setdefault("TRITON_INTERPRET", "1")

from vsm.data import load_dataset
from vsm.train import TrainConfig, Trainer, TrainingDiverged


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("objective")
    ap.add_argument("steps", type=int)
    ap.add_argument("k_bi", type=int)
    ap.add_argument("--resume")
    ap.add_argument("--save")
    ap.add_argument("--fit", action="store_true", help="use Trainer.run() (files, eval)")
    ap.add_argument("--nan-rank", type=int, default=-1)
    ap.add_argument("--nan-step", type=int, default=-1)
    ap.add_argument("--no-fast-step", action="store_true")
    ap.add_argument("--float64", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    data = load_dataset("sparse", seed=0, n_test=64)
    drawn: list[int] = []
    batch = data.batch

    def recording_batch(index: int, batch_size: int, seed: int) -> torch.Tensor:
        drawn.append(index)
        x = batch(index, batch_size, seed)
        if rank == a.nan_rank and len(drawn) == a.nan_step:
            x = torch.full_like(x, float("nan"))
        return x

    data.batch = recording_batch  # type: ignore[method-assign]
    cfg = TrainConfig(
        objective=a.objective,
        dataset="sparse",
        steps=a.steps,
        batch_size=32,
        n_samples=2,
        width=8,
        n_test=64,
        k_bi=a.k_bi,
        log_every=1,
        fast_step=not a.no_fast_step,
        dtype="float64" if a.float64 else "float32",
    )
    kw = {"data": data, "out_dir": os.path.join(a.out, "run"), "progress": False}
    if a.resume:
        trainer = Trainer.from_checkpoint(a.resume, **kw)
    else:
        trainer = Trainer(cfg, **kw)
    history, diverged = [], None
    try:
        if a.fit:
            trainer.run()
            history = trainer.history
        else:
            for _ in range(a.steps):
                history.append(trainer.train_step())
    except TrainingDiverged as err:
        diverged = str(err)
    if a.save:
        trainer.save(a.save)
    state = {
        "rank": trainer.rank,
        "world_size": trainer.world_size,
        "out_dir": trainer.out_dir,
        "params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "history": history,
        "drawn": drawn,
        "wrappers": [type(trainer._enc_objective).__name__, type(trainer._dec_objective).__name__],
        "diverged": diverged,
        "fast_step_off": trainer.fast_step_off,
    }
    torch.save(state, os.path.join(a.out, f"rank{trainer.rank}.pt"))
    trainer.close()  # barrier, then the group destroyed and freed while Python is alive
    assert not dist.is_initialized()


if __name__ == "__main__":
    main()
