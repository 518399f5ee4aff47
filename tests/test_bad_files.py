"""Files vsm reads are data, not code, and a bad one is named in a clear error (issue 20).

Checkpoints load with ``torch.load(weights_only=True)``: a file whose unpickling would run code (a
class whose ``__reduce__`` calls ``exec``) is refused before anything in it runs, and so are junk,
empty, truncated and wrong-kind files (``BAD_CHECKPOINTS``), through every reader:
:func:`vsm.train.load_checkpoint`, :func:`vsm.train.model_from_checkpoint`,
``trainer_from_checkpoint`` and ``vsm eval`` / ``vsm train --resume``. ``vsm convert`` rewrites a
trusted old checkpoint that holds Python objects as data. ``results.json`` on ``--resume``, IDX
data files and fig3's series files give a :class:`BadFileError` naming the file, and the bad
``results.json`` is left as it was.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import struct

import numpy as np
import pytest
import torch
import vsm
from _cases import Evil
from vsm import cli
from vsm._errors import BadFileError
from vsm.data import load_dataset, read_idx
from vsm.train import (
    TrainConfig,
    load_checkpoint,
    make_trainer,
    model_from_checkpoint,
    trainer_from_checkpoint,
)
from vsm.train.checkpoint import convert_checkpoint

RUN = {"objective": "kl-m1", "dataset": "sparse", "width": 4, "batch_size": 16, "n_test": 32}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A single-run checkpoint and a many-seeds one (2 steps each) and their states."""
    d = tmp_path_factory.mktemp("good")
    with vsm.backend("reference"):
        single = make_trainer(TrainConfig(**RUN, steps=2), out_dir=str(d / "single"))
        single.run()
        many = make_trainer(TrainConfig(**RUN, steps=2, seeds=(0, 1)), out_dir=str(d / "seeds"))
        many.run()
    paths = {"single": d / "single" / "checkpoint.pt", "seeds": d / "seeds" / "checkpoint.pt"}
    return {k: (p, torch.load(p, weights_only=True)) for k, p in paths.items()}


def _without(state, key):
    return {k: v for k, v in state.items() if k != key}


# name -> writer(path, marker, good): a bad checkpoint file of each kind. "marker" is the file
# that the code-running ones would create.
BAD_CHECKPOINTS = {
    "evil-config": lambda p, m, g: torch.save(
        {**g["single"][1], "config": Evil(m)}, p
    ),  # code in an otherwise complete checkpoint
    "evil-deep": lambda p, m, g: torch.save({**g["single"][1], "history": [{"step": Evil(m)}]}, p),
    "evil-top": lambda p, m, g: torch.save(Evil(m), p),
    "evil-raw-pickle": lambda p, m, g: p.write_bytes(__import__("pickle").dumps(Evil(m))),
    "junk": lambda p, m, g: p.write_text("garbage\n"),
    "empty": lambda p, m, g: p.write_bytes(b""),
    "truncated": lambda p, m, g: p.write_bytes(g["single"][0].read_bytes()[:1000]),
    "half": lambda p, m, g: p.write_bytes(
        g["single"][0].read_bytes()[: g["single"][0].stat().st_size // 2]
    ),
    "json": lambda p, m, g: p.write_text(json.dumps({"format": "vsm-checkpoint-1"})),
    "tensor": lambda p, m, g: torch.save(torch.zeros(3), p),
    "list": lambda p, m, g: torch.save([1, 2], p),
    "no-format": lambda p, m, g: torch.save(_without(g["single"][1], "format"), p),
    "other-format": lambda p, m, g: torch.save({**g["single"][1], "format": "vsm-checkpoint-9"}, p),
    "no-model": lambda p, m, g: torch.save(_without(g["single"][1], "model"), p),
    "no-rng": lambda p, m, g: torch.save({**g["single"][1], "rng": {}}, p),
    "step-text": lambda p, m, g: torch.save({**g["single"][1], "step": "2"}, p),
    "bad-config": lambda p, m, g: torch.save({**g["single"][1], "config": {"nope": 1}}, p),
    "bad-replica": lambda p, m, g: torch.save(
        {**g["seeds"][1], "replicas": {0: _without(g["seeds"][1]["replicas"][0], "enc_opt")}}, p
    ),
    "numpy-scalars": lambda p, m, g: torch.save({**g["single"][1], "wall_time": np.float64(1)}, p),
}


@pytest.fixture(params=sorted(BAD_CHECKPOINTS))
def bad(request, good, tmp_path):
    """(kind, path of the bad checkpoint, marker path)."""
    path, marker = tmp_path / f"{request.param}.pt", tmp_path / "PWNED"
    BAD_CHECKPOINTS[request.param](path, marker, good)
    return request.param, path, marker


def test_bad_checkpoint_is_refused_by_every_reader(bad, capsys):
    kind, path, marker = bad
    for read in (
        load_checkpoint,
        model_from_checkpoint,
        lambda p: trainer_from_checkpoint(p, progress=False),
    ):
        with pytest.raises(BadFileError, match="^path: ") as e:
            read(str(path))
        assert e.value.path == str(path) and str(path) in str(e.value)
    for argv in (["eval", str(path)], ["train", "--resume", str(path), "--quiet"]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("vsm: error: ") and f"({path})" in err
    assert not marker.exists(), f"{kind}: the payload ran"
    if kind.startswith("evil") or kind == "numpy-scalars":
        assert "vsm convert" in err or kind == "evil-raw-pickle"


def test_good_checkpoints_load_as_data(good):
    for path, state in good.values():
        assert load_checkpoint(str(path))["step"] == state["step"] == 2


def test_convert_rewrites_a_trusted_old_checkpoint(good, tmp_path, capsys):
    """An older vsm's checkpoint with Python objects (NumPy scalars and arrays, the config as a
    TrainConfig object) is refused; ``vsm convert`` rewrites it as data with the same content."""
    path, state = good["single"]
    cfg = TrainConfig.from_dict(state["config"])
    old = {
        **state,
        "config": cfg,
        "wall_time": np.float64(state["wall_time"]),
        "history": [{k: np.float32(v) for k, v in h.items()} for h in state["history"]],
        "evals": [{**e, "extra": np.arange(3)} for e in state["evals"]],
    }
    src, dst = tmp_path / "old.pt", tmp_path / "new.pt"
    torch.save(old, src)
    with pytest.raises(BadFileError, match="vsm convert"):
        load_checkpoint(str(src))
    assert cli.main(["convert", str(src), str(dst)]) == 0
    assert f"wrote {dst}" in capsys.readouterr().out
    new = load_checkpoint(str(dst))
    assert new["config"] == dataclasses.asdict(cfg)
    assert new["history"] == [
        {k: float(np.float32(v)) for k, v in h.items()} for h in state["history"]
    ]
    assert torch.equal(new["evals"][0]["extra"], torch.arange(3))
    for k, v in state["model"].items():
        assert torch.equal(new["model"][k], v)
    model, _ = model_from_checkpoint(str(dst))
    assert model.spec() == state["model_spec"]


def test_convert_refuses_objects_without_a_plain_form(good, tmp_path):
    src = tmp_path / "odd.pt"
    torch.save({**good["single"][1], "extra": {1, 2}}, src)
    with pytest.raises(BadFileError, match=r"cannot convert: builtins.set at state\['extra'\]"):
        convert_checkpoint(str(src), str(tmp_path / "new.pt"))
    assert not (tmp_path / "new.pt").exists()


# ---- results.json on --resume: a bad one is named and left as it was

BAD_RESULTS = {
    "junk": b"garbage",
    "empty": b"",
    "truncated": b'{"figure": "fig3", "runs": [{"variant": "vsm"',
    "binary": b"\xff\xfe\x00\x01",
    "list": b"[1, 2]",
    "no-figure": b'{"runs": []}',
    "runs-not-a-list": b'{"figure": "fig3", "runs": {}}',
    "run-without-keys": b'{"figure": "fig3", "runs": [{"seed": 0}]}',
    "config-not-object": b'{"figure": "fig3", "runs": [], "config": 3}',
}


@pytest.mark.parametrize("kind", sorted(BAD_RESULTS))
def test_bad_results_json_on_resume(tmp_path, capsys, kind):
    from vsm.reproduce import run as reproduce

    path = tmp_path / "results.json"
    path.write_bytes(BAD_RESULTS[kind])
    with pytest.raises(BadFileError, match="^out: ") as e:
        reproduce("fig3", str(tmp_path), resume=True, overrides=["seeds=0"])
    assert e.value.path == str(path)
    argv = ["reproduce", "fig3", "--resume", "--set", "seeds=0", "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"({path})" in err
    assert path.read_bytes() == BAD_RESULTS[kind]  # never overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [".vsm.lock", "results.json"]


def test_images_results_need_objectives(tmp_path):
    from vsm.reproduce import run as reproduce

    (tmp_path / "results.json").write_text('{"figure": "images", "objectives": []}')
    with pytest.raises(BadFileError, match="'objectives' is not a dict"):
        reproduce("images", str(tmp_path), resume=True)


# ---- data files


def _idx(dims, body=None):
    head = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    n = int(np.prod(dims))
    return head + (bytes(n) if body is None else body)


BAD_IDX = {
    "junk": (b"garbage\n", "bad magic number"),
    "empty": (b"", "bad magic number"),
    "type-code": (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x", "unknown type code"),
    "short-header": (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX file"),
    "short-body": (_idx((2, 28, 28))[:-5], "damaged IDX file"),
    "long-body": (_idx((2, 28, 28)) + b"x", "damaged IDX file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_IDX))
@pytest.mark.parametrize("gz", [False, True])
def test_bad_idx_file(tmp_path, kind, gz):
    blob, what = BAD_IDX[kind]
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(BadFileError, match=f"^path: .*{what}") as e:
        read_idx(path)
    assert e.value.path == str(path)


def test_broken_gzip_and_cli(tmp_path, capsys):
    good = gzip.compress(_idx((2, 28, 28)))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(good)
    with pytest.raises(BadFileError, match="broken gzip data"):
        load_dataset("mnist", data_dir=tmp_path)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path)]
    assert cli.main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-images-idx3-ubyte.gz)" in err


def test_wrong_shape_idx_names_the_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx((4, 784)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx((2, 28, 28)))
    with pytest.raises(BadFileError, match="^data_dir: IDX images of shape"):
        load_dataset("mnist", data_dir=tmp_path)


# ---- fig3's intermediate files


def test_fig3_series_file_is_data(tmp_path):
    from vsm.reproduce.fig3 import _Series

    series = _Series([0])
    series.loss[0] = [1.0, 2.0]
    series.sigma2[0] = [0.5, 0.4]
    series.iters, series.step = 2, 4
    series.save(tmp_path / "s.npz")
    back = _Series.load(tmp_path / "s.npz", [0])
    assert (back.iters, back.step, back.loss, back.sigma2) == (2, 4, series.loss, series.sigma2)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(BadFileError, match="not a fig3 series file"):
        _Series.load(tmp_path / "bad.npz", [0])
    np.savez(tmp_path / "pickled.npz", iters=np.array([object()], dtype=object))
    with pytest.raises(BadFileError):
        _Series.load(tmp_path / "pickled.npz", [0])


def test_fig3_resume_retrains_a_pair_split_by_a_kill(good, tmp_path, capsys):
    """A kill between the checkpoint's write and the series' leaves files of different steps;
    the setting then starts afresh instead of continuing from a mismatched pair."""
    from vsm.reproduce.fig3 import _Series
    from vsm.reproduce.fig3.training import _resume

    path = good["single"][0]
    series = _Series([0])
    series.step = 1  # the checkpoint is at step 2
    series.save(tmp_path / "s.npz")
    assert _resume(path, tmp_path / "s.npz", [0]) is None
    assert "different steps" in capsys.readouterr().err
    series.step = 2
    series.save(tmp_path / "s.npz")
    trainer, back = _resume(path, tmp_path / "s.npz", [0])
    assert trainer.step == 2 and back.step == 2
