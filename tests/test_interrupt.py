"""Runs that survive interruption, and the thread setting (issue 14 items 3 and 4).

Real processes get real signals: ``vsm train`` / ``vsm reproduce`` are started with
:mod:`subprocess`, a signal is sent once they have printed progress past a step, and the exit
status, the one-line message, the checkpoint and the exact continuation are checked. The
subprocesses run the default CPU path (``TRITON_INTERPRET=0``: the Rust kernels) so that steps
are fast; the in-process comparisons force the same path (``vsm.backend("rust")``, the
``rust_backend`` fixture) — a loss summed in another order (the reference, or the Triton
interpreter) would differ in its last bits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import vsm
from vsm import cli
from vsm.data import load_dataset
from vsm.train import TrainConfig, Trainer, load_checkpoint, num_threads

TRAIN = [
    "train",
    "--objective",
    "kl-m2",
    "--dataset",
    "mixture",
    "--width",
    "4",
    "--batch-size",
    "32",
    "--n-samples",
    "2",
    "--n-test",
    "64",
    "--quiet",
]

# The in-process runs' setting (their data: load_dataset("mixture", n_test=32)).
MIXTURE_RUN = {
    "objective": "kl-m1",
    "dataset": "mixture",
    "width": 4,
    "batch_size": 16,
    "n_test": 32,
}


@pytest.fixture
def rust_backend():
    """The fused ops on the Rust kernels, the default CPU path of the subprocesses."""
    with vsm.backend("rust"):
        yield


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TRITON_INTERPRET="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _signal_after(
    args: list[str], pattern: str, sig: int, *, stream: str = "stdout", timeout: float = 120.0
) -> tuple[int, str, str]:
    """Start ``python -m vsm ARGS``, send ``sig`` once a line of ``stream`` matches ``pattern``;
    returns (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsm", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    seen: list[str] = []
    try:
        for line in getattr(proc, stream):
            seen.append(line)
            if re.search(pattern, line):
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"no line matched {pattern!r}: {''.join(seen)[-2000:]}")
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    joined = "".join(seen)
    return (
        proc.returncode,
        (joined if stream == "stdout" else "") + out,
        (joined if stream == "stderr" else "") + err,
    )


def _assert_one_line(err: str, signame: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and signame in lines[0], err
    return lines[0]


def test_sigint_writes_checkpoint_and_resume_is_exact(rust_backend, tmp_path):
    out = tmp_path / "run"
    rc, _, err = _signal_after(
        [*TRAIN, "--steps", "100000", "--log-every", "5", "--out", str(out)],
        r"^step (1\d|[2-9]\d)/",
        signal.SIGINT,
    )
    assert rc == 130
    line = _assert_one_line(err, "SIGINT")
    ckpt = out / "checkpoint.pt"
    assert f"vsm train --resume {ckpt}" in line
    stopped = load_checkpoint(str(ckpt))["step"]
    assert stopped >= 10 and f"after step {stopped}" in line
    # no temporary files (the lock file of the output folder stays, unlocked)
    assert sorted(p.name for p in out.iterdir()) == [".vsm.lock", "checkpoint.pt"]

    # resume in place to stopped + 7 steps ...
    assert cli.main(["train", "--resume", str(ckpt), "--steps", str(stopped + 7), "--quiet"]) == 0
    resumed = load_checkpoint(str(ckpt))
    assert resumed["step"] == stopped + 7
    # ... equals an uninterrupted run, bit for bit
    cfg = TrainConfig.from_dict({**resumed["config"], "steps": stopped + 7})
    straight = Trainer(cfg, data=load_dataset("mixture", n_test=64))
    for _ in range(stopped + 7):
        straight.train_step()
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(v, resumed["model"][k], rtol=0, atol=0)
    assert straight.history == resumed["history"]


def test_sigterm_with_periodic_checkpoints(tmp_path):
    out = tmp_path / "run"
    args = [*TRAIN, "--steps", "100000", "--log-every", "4", "--save-every", "4", "--out", str(out)]
    rc, text, err = _signal_after(args, r"^step (1[2-9]|[2-9]\d)/", signal.SIGTERM)
    assert rc == 143
    _assert_one_line(err, "SIGTERM")
    last = max(int(m) for m in re.findall(r"^step (\d+)/", text, re.MULTILINE))
    assert load_checkpoint(str(out / "checkpoint.pt"))["step"] >= last


def test_save_every_is_independent_of_evaluation(reference_backend, tmp_path, monkeypatch):
    saved: list[int] = []
    monkeypatch.setattr(Trainer, "save", lambda self, path: saved.append(self.step))
    cfg = TrainConfig(**MIXTURE_RUN, steps=7, save_every=3, log_every=100)
    Trainer(cfg, data=load_dataset("mixture", n_test=32), out_dir=str(tmp_path)).run()
    assert saved == [3, 6, 7]
    with pytest.raises(ValueError, match="^save_every"):
        TrainConfig(save_every=-1).resolved()


def test_threads_are_applied_during_the_run_and_restored(reference_backend, monkeypatch):
    assert TrainConfig(dataset="sparse").resolved().threads == 1
    assert TrainConfig(dataset="digits").resolved().threads == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert num_threads(0) == 3 and num_threads(2) == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert num_threads(0) == len(os.sched_getaffinity(0))
    with pytest.raises(TypeError, match="^threads"):
        TrainConfig(threads=1.5).resolved()

    before = torch.get_num_threads()
    during: list[int] = []
    cfg = TrainConfig(**MIXTURE_RUN, steps=2, log_every=1, threads=before + 2)
    Trainer(
        cfg,
        data=load_dataset("mixture", n_test=32),
        log=lambda msg: during.append(torch.get_num_threads()),
    ).run()
    assert during and set(during) == {before + 2}
    assert torch.get_num_threads() == before


def test_cli_threads_option(reference_backend, tmp_path, monkeypatch):
    seen: list[int] = []
    real = Trainer.train_step
    monkeypatch.setattr(
        Trainer, "train_step", lambda self: seen.append(torch.get_num_threads()) or real(self)
    )
    assert cli.main([*TRAIN, "--steps", "2", "--threads", "3", "--out", str(tmp_path)]) == 0
    assert seen == [3, 3]
    assert load_checkpoint(str(tmp_path / "checkpoint.pt"))["config"]["threads"] == 3


def test_reproduce_sigterm_then_resume_skips_recorded_runs(rust_backend, tmp_path):
    from vsm.reproduce import fig3
    from vsm.reproduce import run as reproduce

    sets = [
        "variants=vsm",
        "datasets=mixture",
        "objectives=kl-elbo,fd-m1",
        "k_encs=1",
        "seeds=0",
        "max_iters=400",
        "batch_size=100",
        "n_test=100",
        "n_is=100",
    ]
    args = [
        "reproduce",
        "fig3",
        "--out",
        str(tmp_path / "o"),
        *[a for s in sets for a in ("--set", s)],
    ]
    rc, _, err = _signal_after(args, r"^fig3: mixture kl-elbo", signal.SIGTERM, stream="stderr")
    assert rc == 143 and "Traceback" not in err
    assert "SIGTERM" in err.splitlines()[-1] and "--resume" in err.splitlines()[-1]
    partial = json.loads((tmp_path / "o" / "results.json").read_text())
    assert partial["complete"] is False
    assert [r["objective"] for r in partial["runs"]] == ["kl-elbo"]

    proc = subprocess.run(
        [sys.executable, "-m", "vsm", *args, "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "kl-elbo K_enc=1 [vsm]: recorded" in proc.stderr
    final = json.loads((tmp_path / "o" / "results.json").read_text())
    assert final["complete"] is True and len(final["runs"]) == 2
    assert final["runs"][0] == partial["runs"][0]
    assert not list((tmp_path / "o" / "checkpoints").iterdir())

    # the stopped-and-continued fd-m1 run equals an uninterrupted one
    straight = reproduce("fig3", str(tmp_path / "s"), overrides=sets)
    for a, b in zip(straight["runs"], final["runs"], strict=True):
        for key in ("is_nll", "sm_loss", "sigma2"):
            assert a[key] == b[key], (a["objective"], key)
    assert isinstance(fig3.Fig3Config().threads, int)


def test_reproduce_resume_refuses_other_settings(tmp_path):
    from vsm.reproduce import run as reproduce

    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"figure": "fig3", "config": {"steps": 1}}))
    with pytest.raises(ValueError, match="^out: .*other settings"):
        reproduce("fig3", str(out), resume=True)
    with pytest.raises(ValueError, match="^out: .*not 'images'"):
        reproduce("images", str(out), resume=True)
    with pytest.raises(ValueError, match="^set: "):
        reproduce("fig3", str(out), overrides=["nope=1"])


def test_bad_train_option_lists_fields(capsys):
    assert Path(cli.__file__).exists()
    assert cli.main(["train", "--threads", "many"]) == 2
    assert "argument --threads: invalid int value: 'many'" in capsys.readouterr().err
