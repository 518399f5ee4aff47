"""Tests of the vsm command line, run in-process through vsm.cli.main on tiny problems."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from vsm import cli

TRAIN = [
    "train",
    "--objective",
    "kl-m1",
    "--dataset",
    "sparse",
    "--batch-size",
    "32",
    "--width",
    "4",
    "--n-test",
    "64",
    "--quiet",
]


def test_train_eval_resume(reference_backend, tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(
        [*TRAIN, "--steps", "4", "--eval-every", "2", "--log-every", "2", "--out", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "step 2/4" in text and "step 4/4" in text and "eval @ step 2" in text
    for name in (
        "checkpoint.pt",
        "metrics.json",
        "loss.png",
        "history.json",
        "metrics/step_0000002.json",
        "metrics/step_0000004.json",
    ):
        assert (out / name).exists(), name
    final = json.loads((out / "metrics.json").read_text())
    assert final["step"] == 4 and final["objective"] == "kl-m1"

    rc = cli.main(
        [
            "eval",
            str(out / "checkpoint.pt"),
            "--n-is",
            "32",
            "--out",
            str(tmp_path / "e.json"),
            "--no-hist",
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "e.json").read_text())
    for key in ("neg_elbo", "mse", "mmd2", "posterior_fd", "is_nll", "sm_loss", "is_ess"):
        assert isinstance(res[key], float), key
    assert res["is_proposal"] == "prior"  # the paper's proposal on 2-D data

    capsys.readouterr()
    rc = cli.main(
        [
            "train",
            "--resume",
            str(out / "checkpoint.pt"),
            "--steps",
            "6",
            "--quiet",
            "--out",
            str(tmp_path / "more"),
        ]
    )
    assert rc == 0
    assert "resumed" in capsys.readouterr().out
    assert json.loads((tmp_path / "more" / "metrics.json").read_text())["step"] == 6


def test_divergence_exit_status(reference_backend, tmp_path, capsys):
    rc = cli.main(
        [*TRAIN, "--steps", "3", "--dec-lr", "1e30", "--enc-lr", "1e30", "--out", str(tmp_path)]
    )
    assert rc == 1  # a runtime error, reported in one line
    err = capsys.readouterr().err
    assert err.startswith("vsm: error: training diverged") and len(err.splitlines()) == 1


def test_bad_arguments_exit(capsys):
    assert cli.main(["train", "--objective", "kl-m9"]) == 2
    assert cli.main(["train", "--steps", "3", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("vsm: error: argument ") for line in err)


@pytest.mark.parametrize("command", ["bench", "reproduce"])
def test_delegation(monkeypatch, command):
    seen = []
    fake = types.ModuleType(f"vsm.{command}")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, f"vsm.{command}", fake)
    assert cli.main([command, "--quick", "--out", "x"]) == 0
    assert seen == [["--quick", "--out", "x"]]


def test_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "vsm", "train", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert "--objective" in proc.stdout and "--k-bi" in proc.stdout


def test_eval_of_a_many_seeds_checkpoint(reference_backend, tmp_path, capsys):
    """``vsm eval`` on a ``--seeds`` checkpoint evaluates every replica (or the one asked for),
    each exactly as the single-run checkpoint of that seed would be evaluated."""
    out = tmp_path / "seeds"
    assert cli.main([*TRAIN, "--steps", "2", "--seeds", "0-1", "--quiet", "--out", str(out)]) == 0
    ck = str(out / "checkpoint.pt")
    assert (
        cli.main(["eval", ck, "--n-is", "16", "--no-hist", "--out", str(tmp_path / "a.json")]) == 0
    )
    both = json.loads((tmp_path / "a.json").read_text())
    assert sorted(both["replicas"]) == ["0", "1"]
    assert both["replicas"]["0"]["neg_elbo"] != both["replicas"]["1"]["neg_elbo"]
    assert (
        cli.main(
            [
                "eval",
                ck,
                "--replica",
                "1",
                "--n-is",
                "16",
                "--no-hist",
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    one = json.loads((tmp_path / "b.json").read_text())
    assert one["seed"] == 1 and one["neg_elbo"] == both["replicas"]["1"]["neg_elbo"]
    capsys.readouterr()
