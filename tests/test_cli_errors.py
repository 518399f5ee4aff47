"""The command line's user errors: one line ``vsm: error: <what> (<value or file>)``, exit status 2
for a usage error and 1 for a runtime one, checked before any expensive work (issue 20).

``CLI_ERRORS`` is the table, one row per (subcommand, kind of bad input): the arguments (``{junk}``
and the like name the files of the ``files`` fixture), the exit status and a piece of text the one
line must hold (the bad value or file). Rows run in-process through :func:`vsm.cli.main`, with the
data sets' loaders replaced by a function that fails the row: an error must come before any data
set is built. Also here: ``--debug`` / ``VSM_DEBUG=1`` (tracebacks), an internal error (a bug: its
traceback and a line saying so), and one writer per output folder (``--out``'s lock).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
import vsm
from _cases import Evil
from vsm import cli
from vsm._errors import OutDirBusy
from vsm._outdir import LOCK_NAME, claim_out_dir

TRAIN = ["train", "--objective", "kl-m1", "--dataset", "sparse", "--width", "4", "--quiet"]
FIG3 = ["reproduce", "fig3", "--set", "max_iters=2", "--set", "seeds=0"]
USAGE, RUNTIME = 2, 1

# (id, argv, exit status, text the line must hold). Kinds: a bad value (negative, NaN, inf, junk
# text), a missing / junk / empty / truncated / wrong-kind / code-running file, an unwritable
# output folder, a resume that contradicts its checkpoint.
CLI_ERRORS = [
    # vsm train
    ("train-steps-negative", ["train", "--steps", "-5"], USAGE, "--steps: expected a positive int"),
    ("train-steps-text", ["train", "--steps", "many"], USAGE, "'many'"),
    ("train-dec-lr-nan", ["train", "--dec-lr", "nan"], USAGE, "--dec-lr: expected a finite"),
    ("train-enc-lr-inf", ["train", "--enc-lr", "inf"], USAGE, "--enc-lr: expected a finite"),
    ("train-bi-lr-zero", ["train", "--bi-lr", "0", "--k-bi", "1"], USAGE, "--bi-lr"),
    ("train-eta-inf", ["train", "--eta", "inf"], USAGE, "--eta: expected a finite"),
    ("train-objective", ["train", "--objective", "kl-m9"], USAGE, "'kl-m9'"),
    ("train-steps-and-epochs", ["train", "--steps", "3", "--epochs", "1"], USAGE, "--epochs"),
    ("train-seeds", ["train", "--seeds", "3-1"], USAGE, "3-1"),
    ("train-conv-on-toy", ["train", "--model", "conv"], USAGE, "--model: 'conv' needs"),
    ("train-mnist-no-data-dir", ["train", "--dataset", "mnist"], USAGE, "--data-dir: required"),
    ("train-out-proc", [*TRAIN, "--out", "/proc/x/y"], RUNTIME, "(/proc/x/y)"),
    ("train-out-is-file", [*TRAIN, "--out", "{junk}"], RUNTIME, "({junk})"),
    ("train-resume-missing", ["train", "--resume", "{missing}"], RUNTIME, "({missing})"),
    ("train-resume-junk", ["train", "--resume", "{junk}"], RUNTIME, "({junk})"),
    ("train-resume-empty", ["train", "--resume", "{empty}"], RUNTIME, "({empty})"),
    ("train-resume-truncated", ["train", "--resume", "{truncated}"], RUNTIME, "({truncated})"),
    ("train-resume-tensor", ["train", "--resume", "{tensor}"], RUNTIME, "({tensor})"),
    ("train-resume-evil", ["train", "--resume", "{evil}"], RUNTIME, "({evil})"),
    ("train-resume-width", ["train", "--resume", "{ckpt}", "--width", "8"], USAGE, "width=4"),
    ("train-resume-seeds", ["train", "--resume", "{ckpt}", "--seeds", "0-1"], USAGE, "--seeds"),
    ("train-resume-dataset", ["train", "--resume", "{ckpt}", "--dataset", "moons"], USAGE, "moons"),
    ("train-resume-nan-lr", ["train", "--resume", "{ckpt}", "--dec-lr", "nan"], USAGE, "nan"),
    ("train-resume-steps", ["train", "--resume", "{ckpt}", "--steps", "0"], USAGE, "got 0"),
    # vsm eval
    ("eval-missing", ["eval", "{missing}"], RUNTIME, "({missing})"),
    ("eval-folder", ["eval", "{dir}"], RUNTIME, "({dir})"),
    ("eval-junk", ["eval", "{junk}"], RUNTIME, "not a vsm checkpoint"),
    ("eval-empty", ["eval", "{empty}"], RUNTIME, "an empty file"),
    ("eval-truncated", ["eval", "{truncated}"], RUNTIME, "truncated"),
    ("eval-tensor", ["eval", "{tensor}"], RUNTIME, "it holds a Tensor"),
    ("eval-evil", ["eval", "{evil}"], RUNTIME, "vsm convert"),
    ("eval-n-is", ["eval", "{ckpt}", "--n-is", "-1"], USAGE, "--n-is: expected an int ≥ 0"),
    ("eval-n-test", ["eval", "{ckpt}", "--n-test", "0"], USAGE, "--n-test"),
    ("eval-replica", ["eval", "{ckpt}", "--replica", "3"], USAGE, "--replica"),
    ("eval-out-proc", ["eval", "{ckpt}", "--out", "/proc/x/e.json"], RUNTIME, "(/proc/x)"),
    # vsm convert
    ("convert-missing", ["convert", "{missing}", "{dir}/new.pt"], RUNTIME, "({missing})"),
    ("convert-junk", ["convert", "{junk}", "{dir}/new.pt"], RUNTIME, "({junk})"),
    ("convert-same", ["convert", "{ckpt}", "{ckpt}"], USAGE, "DST must differ"),
    ("convert-out-proc", ["convert", "{ckpt}", "/proc/x/n.pt"], RUNTIME, "(/proc/x)"),
    # vsm reproduce
    ("reproduce-name", ["reproduce", "fig9", "--out", "{dir}/r"], USAGE, "'fig9'"),
    ("reproduce-no-out", ["reproduce", "fig3"], USAGE, "--out"),
    ("reproduce-out-proc", [*FIG3, "--out", "/proc/x/y"], RUNTIME, "(/proc/x/y)"),
    ("reproduce-set-nan", [*FIG3, "--set", "dec_lr=nan", "--out", "{dir}/r"], USAGE, "nan"),
    ("reproduce-set-inf", [*FIG3, "--set", "elbo_lr=inf", "--out", "{dir}/r"], USAGE, "inf"),
    ("reproduce-set-text", [*FIG3, "--set", "max_iters=x", "--out", "{dir}/r"], USAGE, "'x'"),
    ("reproduce-set-name", [*FIG3, "--set", "nope=1", "--out", "{dir}/r"], USAGE, "'nope=1'"),
    ("reproduce-negative", [*FIG3, "--set", "n_is=-1", "--out", "{dir}/r"], USAGE, "n_is"),
    ("reproduce-medium", ["reproduce", "fig1", "--medium", "--out", "{dir}/r"], USAGE, "medium"),
    ("reproduce-resume-junk", [*FIG3, "--resume", "--out", "{results}"], RUNTIME, "results.json"),
    # vsm bench
    ("bench-threads", ["bench", "--threads", "0"], USAGE, "'0'"),
    ("bench-device", ["bench", "--device", "tpu"], USAGE, "'tpu'"),
    ("bench-budget-nan", ["bench", "--budget-s", "nan"], USAGE, "nan"),
    ("bench-op", ["bench", "--op", "nope"], USAGE, "'nope'"),
    ("bench-out-proc", ["bench", "--tiny", "--out", "/proc/x/y"], RUNTIME, "(/proc/x/y)"),
    # no subcommand, unknown subcommand
    ("no-command", [], USAGE, "command"),
    ("unknown-command", ["trian"], USAGE, "'trian'"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{name: path} of the files the table names: a good checkpoint (2 steps, width 4) and bad
    ones, a folder, a missing path, a junk results.json."""
    d = tmp_path_factory.mktemp("files")
    with vsm.backend("reference"):
        args = [*TRAIN, "--steps", "2", "--batch-size", "16", "--n-test", "32"]
        assert cli.main([*args, "--out", str(d / "run")]) == 0
    ckpt = d / "run" / "checkpoint.pt"
    blob = ckpt.read_bytes()
    paths = {
        "dir": d,
        "ckpt": ckpt,
        "missing": d / "missing.pt",
        "junk": d / "junk.pt",
        "empty": d / "empty.pt",
        "truncated": d / "truncated.pt",
        "tensor": d / "tensor.pt",
        "evil": d / "evil.pt",
        "results": d / "results",
    }
    paths["junk"].write_text("garbage\n")
    paths["empty"].write_bytes(b"")
    paths["truncated"].write_bytes(blob[: len(blob) // 2])
    torch.save(torch.zeros(3), paths["tensor"])
    torch.save({"format": "vsm-checkpoint-1", "config": Evil(d / "PWNED")}, paths["evil"])
    paths["results"].mkdir()
    (paths["results"] / "results.json").write_text('{"figure": "fig3", "runs": [')
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def no_data(monkeypatch):
    """Building a data set fails the test: every error of the table comes before."""

    def fail(*args, **kwargs):
        raise AssertionError("a data set was built before the error")

    import vsm.train.seeds as seeds_mod
    import vsm.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "load_dataset", fail)
    monkeypatch.setattr(seeds_mod, "load_dataset", fail)


@pytest.mark.parametrize(
    "argv, status, text", [row[1:] for row in CLI_ERRORS], ids=[row[0] for row in CLI_ERRORS]
)
def test_user_error_is_one_line(files, no_data, capsys, argv, status, text):
    argv = [a.format(**files) for a in argv]
    text = text.format(**files)
    capsys.readouterr()
    assert cli.main(argv) == status
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vsm: error: "), err
    assert text in lines[0], err
    assert "Traceback" not in err and "internal error" not in err
    assert not os.path.exists(os.path.join(files["dir"], "PWNED")), "the evil payload ran"


def test_table_covers_every_subcommand():
    names = {row[1][0] for row in CLI_ERRORS if row[1]}
    assert names >= {"train", "eval", "convert", "reproduce", "bench"}
    ids = [row[0] for row in CLI_ERRORS]
    assert len(ids) == len(set(ids))


def test_junk_results_json_is_left_as_it_was(files, capsys):
    path = os.path.join(files["results"], "results.json")
    before = open(path, "rb").read()
    assert cli.main([*FIG3, "--resume", "--out", files["results"]]) == RUNTIME
    assert open(path, "rb").read() == before
    capsys.readouterr()


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_shows_the_traceback(capsys, monkeypatch, how):
    argv = ["train", "--steps", "-5"]
    if how == "option":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("VSM_DEBUG", "1")
    assert cli.main(argv) == USAGE
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: steps: expected a positive int" in err
    assert err.splitlines()[-1] == "vsm: error: --steps: expected a positive int, got -5"


def test_internal_error_keeps_its_traceback_and_says_bug(capsys, monkeypatch):
    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli, "_cmd_eval", broken)
    assert cli.main(["eval", "x.pt"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'oops'" in err
    assert "this is a bug in vsm" in err.splitlines()[-1]


def test_help_still_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    assert "--dec-lr" in capsys.readouterr().out


# ---- one writer per output folder


def test_second_writer_stops_at_once(files, tmp_path, capsys):
    out = tmp_path / "o"
    with claim_out_dir(out):
        t0 = time.perf_counter()
        rc = cli.main([*TRAIN, "--steps", "2", "--out", str(out)])
        rc_fig = cli.main([*FIG3, "--out", str(out)])
        assert time.perf_counter() - t0 < 30
        with pytest.raises(OutDirBusy, match="another vsm process"):
            with claim_out_dir(out):
                pass
    assert rc == rc_fig == RUNTIME
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("vsm: error: another vsm process (pid ") and f"({out})" in line
    with claim_out_dir(out):  # released when its holder is done
        pass


def test_lock_of_a_killed_process_does_not_stay(tmp_path, capsys):
    """A process that holds the folder's lock and is killed with SIGKILL leaves it free."""
    out = tmp_path / "o"
    out.mkdir()
    holder = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'pid %d: holder' % os.getpid())\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert cli.main([*FIG3, "--out", str(out)]) == RUNTIME
        assert f"(pid {proc.pid}: holder)" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()
    with claim_out_dir(out):
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()}: ")
