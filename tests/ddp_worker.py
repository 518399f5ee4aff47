"""Worker for tests/test_ddp.py, launched by ``torchrun --nproc_per_node=2 --standalone``.

Builds a :class:`vsm.Trainer` exactly as a single-process user would (the trainer joins the gloo
process group itself from torchrun's environment), runs a few iterations of a tiny MLP VAE on
"sparse", and writes this rank's final parameters, optimiser step counts and the losses it saw to
``<out>/rank<r>.pt`` for the test to compare.

Usage: ``python -m torch.distributed.run --nproc_per_node=2 --standalone tests/ddp_worker.py OUT
OBJECTIVE STEPS K_BI``.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

os.environ.setdefault("TRITON_INTERPRET", "1")

from vsm.data import load_dataset
from vsm.train import TrainConfig, Trainer


def main() -> None:
    out, objective, steps, k_bi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    cfg = TrainConfig(objective=objective, dataset="sparse", steps=steps, batch_size=32,
                      n_samples=2, width=8, n_test=64, k_bi=k_bi, log_every=1)
    data = load_dataset("sparse", seed=0, n_test=64)
    trainer = Trainer(cfg, data=data, out_dir=os.path.join(out, "run"), progress=False)
    history = [trainer.train_step() for _ in range(steps)]
    if trainer.rank == 0:
        trainer.save(os.path.join(out, "run", "checkpoint.pt"))
    state = {
        "rank": trainer.rank,
        "world_size": trainer.world_size,
        "out_dir": trainer.out_dir,
        "params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "history": history,
    }
    torch.save(state, os.path.join(out, f"rank{trainer.rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
