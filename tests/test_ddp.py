"""Data-parallel training: the unchanged trainer under ``torchrun`` with PyTorch's DDP (gloo, CPU).

``tests/ddp_worker.py`` builds a :class:`vsm.Trainer` as a single-process user would and runs a few
iterations on "sparse" with a tiny MLP VAE; the trainer joins the process group from torchrun's
environment and wraps each parameter group's objective in ``DistributedDataParallel`` (see
``vsm.train.distributed``'s module docstring). Two ranks, loopback only (``--standalone`` rendezvous on
localhost, gloo bound to ``lo``). Checked: DDP is what syncs the groups, the ranks draw disjoint
minibatches yet end with bit-identical parameters that moved, only rank 0 writes files, a
checkpoint/resume under two ranks replays an uninterrupted two-rank run bit for bit, and a NaN on
one rank makes *both* ranks raise ``TrainingDiverged`` at the same step (no hang).
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


def _launch(out: Path, objective: str, steps: int, k_bi: int, *extra: str) -> dict[int, dict]:
    """Run the worker on 2 ranks; returns {rank: what it wrote} (fails the test if it failed)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", TRITON_INTERPRET="1")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(WORKER),
        str(out),
        objective,
        str(steps),
        str(k_bi),
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {r: torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)}


def _assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


@pytest.mark.parametrize(
    "objective, steps, k_bi, extra", [("kl-m1", 5, 0, ("--fit",)), ("fd-m2", 3, 1, ())]
)
def test_trainer_under_torchrun_uses_ddp_and_keeps_ranks_identical(
    tmp_path, objective, steps, k_bi, extra
):
    r0, r1 = _launch(tmp_path, objective, steps, k_bi, *extra).values()
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    # kl-m1 runs the closed-form fast path, the bi-level fd-m2 the autograd path (DDP's reducer)
    assert (r0["fast_step_off"] is None) == (k_bi == 0)
    assert r0["wrappers"] == r1["wrappers"] == ["DistributedDataParallel"] * 2

    # disjoint minibatches: rank r draws P·step + r ...
    assert r0["drawn"] == [2 * s for s in range(steps)]
    assert r1["drawn"] == [2 * s + 1 for s in range(steps)]
    # ... the logged losses are the means over the ranks (identical on both) ...
    assert len(r0["history"]) == steps and r0["history"] == r1["history"]
    # ... and the parameters are identical, and moved away from the common initialisation
    _assert_same_params(r0["params"], r1["params"])
    cfg = TrainConfig(
        objective=objective, dataset="sparse", batch_size=32, n_samples=2, width=8
    ).resolved(load_dataset("sparse", seed=0, n_test=64))
    torch.manual_seed(cfg.seed)
    init = build_model(cfg, (2,)).state_dict()
    changed = {k for k in init if not torch.equal(init[k], r0["params"][k])}
    assert any(k.startswith("encoder") for k in changed), changed
    assert any(k.startswith("decoder") for k in changed), changed

    # only rank 0 writes files (Trainer.run: checkpoint, metrics, history, plot; no leftovers)
    assert r0["out_dir"] is not None and r1["out_dir"] is None
    if "--fit" in extra:
        files = {p.name for p in (tmp_path / "run").iterdir()}
        assert files == {"checkpoint.pt", "metrics", "metrics.json", "history.json", "loss.png"}
        ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
        assert ckpt["step"] == steps and len(ckpt["rng"]["ranks"]) == 2


def test_fast_path_under_torchrun_equals_ddp_autograd(tmp_path):
    """The closed-form fast path under torchrun (gradients averaged by the trainer's all_reduce)
    trains the same model as DDP's reducer on the autograd path: float64 parameters after 4
    iterations agree to 1e-10 relative on both ranks."""
    fast = _launch(tmp_path / "fast", "kl-m3", 4, 0, "--float64")
    plain = _launch(tmp_path / "plain", "kl-m3", 4, 0, "--float64", "--no-fast-step")
    assert fast[0]["fast_step_off"] is None and plain[0]["fast_step_off"] == "fast_step=False"
    for r in (0, 1):
        for k, v in fast[r]["params"].items():
            w = plain[r]["params"][k]
            assert v.dtype == torch.float64
            assert ((v - w).abs().max() / w.abs().max().clamp_min(1e-300)).item() <= 1e-10, k
    _assert_same_params(fast[0]["params"], fast[1]["params"])


def test_resume_under_torchrun_replays_exactly(tmp_path):
    straight = _launch(tmp_path / "a", "kl-m1", 4, 0)
    ckpt = tmp_path / "b" / "half.pt"
    _launch(tmp_path / "b", "kl-m1", 2, 0, "--save", str(ckpt))
    assert ckpt.is_file()
    assert len(torch.load(ckpt, weights_only=False)["rng"]["ranks"]) == 2
    resumed = _launch(tmp_path / "c", "kl-m1", 2, 0, "--resume", str(ckpt))
    assert resumed[0]["drawn"] == [4, 6] and resumed[1]["drawn"] == [5, 7]
    for r in (0, 1):
        _assert_same_params(straight[r]["params"], resumed[r]["params"])
    assert straight[0]["history"][2:] == resumed[0]["history"]


def test_nan_on_one_rank_stops_both_ranks_at_the_same_step(tmp_path):
    r0, r1 = _launch(tmp_path, "kl-m1", 5, 0, "--nan-rank", "1", "--nan-step", "3").values()
    for r in (r0, r1):
        assert r["diverged"] is not None and "at step 3" in r["diverged"], r["diverged"]
        assert "inference loss = nan" in r["diverged"]
        assert len(r["history"]) == 2
    _assert_same_params(r0["params"], r1["params"])
