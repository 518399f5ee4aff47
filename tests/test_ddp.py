"""Data-parallel training: the unchanged trainer under ``torchrun`` (gloo on CPU, 2 processes).

``tests/ddp_worker.py`` builds a :class:`vsm.Trainer` as a single-process user would and runs a few
iterations on "sparse" with a tiny MLP VAE; the trainer joins the process group from torchrun's
environment, trains each rank on its own minibatches and averages gradients across ranks (see
``vsm.train``'s module docstring). Each rank writes its final parameters and losses; the test
checks that the launch succeeded, that the ranks saw different data (different losses), that
training moved the parameters, and that both ranks end with bit-identical parameters. Only
loopback is used (``--standalone`` rendezvous on localhost, gloo bound to ``lo``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vsm.data import load_dataset
from vsm.train import TrainConfig, build_model

WORKER = Path(__file__).with_name("ddp_worker.py")


def _launch(out: Path, objective: str, steps: int, k_bi: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(WORKER), str(out), objective, str(steps), str(k_bi)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                          check=False)


@pytest.mark.parametrize("objective, steps, k_bi", [("kl-m1", 5, 0), ("fd-m2", 3, 1)])
def test_trainer_under_torchrun_keeps_ranks_identical(tmp_path, objective, steps, k_bi):
    proc = _launch(tmp_path, objective, steps, k_bi)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)

    # the ranks trained on different minibatches / noise ...
    losses0 = [h["enc_loss"] for h in r0["history"]]
    losses1 = [h["enc_loss"] for h in r1["history"]]
    assert len(losses0) == len(losses1) == steps
    assert losses0 != losses1
    # ... yet hold identical parameters, which moved away from the common initialisation
    assert r0["params"].keys() == r1["params"].keys()
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    cfg = TrainConfig(objective=objective, dataset="sparse", batch_size=32, n_samples=2,
                      width=8).resolved(load_dataset("sparse", seed=0, n_test=64))
    torch.manual_seed(cfg.seed)
    init = build_model(cfg, (2,)).state_dict()
    assert any(not torch.equal(init[k], r0["params"][k]) for k in init)

    # only rank 0 writes files
    assert r1["out_dir"] is None
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
