"""Tests of many seeds in one run (``TrainConfig.seeds``, :class:`vsm.train.SeedsTrainer`): S
replicas trained together equal S separate runs (parameters, optimiser states, logged losses) for
every objective, both inference families, K_enc > 1 and the bi-level variant; a diverging replica
is dropped while the others go on unchanged; checkpoints resume exactly and hold complete
single-run replicas; ``--seeds`` parsing."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from _cases import tiny_conv
from hypothesis import given
from hypothesis import strategies as st
from vsm.cli import main
from vsm.data import Dataset, load_dataset
from vsm.models import MLPVAE
from vsm.train import (
    OBJECTIVES,
    SeedsTrainer,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    format_seeds,
    load_checkpoint,
    make_trainer,
    model_from_checkpoint,
    parse_seeds,
    replica_checkpoint,
    trainer_class,
    trainer_from_checkpoint,
)
from vsm.train.replicas import StackedVAE

# a small float64 MLP VAE with two posterior samples per datum
SMALL = {"width": 6, "n_samples": 2, "dtype": "float64"}
TINY = {"dataset": "mixture", "batch_size": 12, "n_test": 24, "log_every": 1000, **SMALL}
SEEDS = (0, 1, 2)
TOL = {"rtol": 1e-9, "atol": 1e-12}

# every objective (vsm.train.config's registry) under Algorithm 1 with one encoder step, and with
# K_enc = 2, one unrolled bi-level step and input noise
SETTINGS = {"plain": {}, "k_enc-bilevel": {"k_enc": 2, "k_bi": 1, "eta": 0.1}}


@pytest.fixture(scope="module")
def mixture() -> Dataset:
    return load_dataset("mixture", n_test=24)


def _single(cfg: TrainConfig, seed: int, steps: int, data=None) -> Trainer:
    tr = Trainer(TrainConfig(**{**vars(cfg), "seeds": None, "seed": seed}), data=data)
    for _ in range(steps):
        tr.train_step()
    return tr


def _assert_replica_equals(st: SeedsTrainer, seed: int, single: Trainer) -> None:
    """Parameters, optimiser states and logged losses of replica ``seed`` equal the single run's."""
    got = st.replica_state(seed)
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(got["model"][k], v, **TOL, msg=f"parameter {k}")
    for opt in ("enc_opt", "dec_opt"):
        want = getattr(single, opt).state_dict()
        assert got[opt]["param_groups"] == want["param_groups"]
        for idx, state in want["state"].items():
            for key, value in state.items():
                torch.testing.assert_close(
                    got[opt]["state"][idx][key], value, **TOL, msg=f"{opt} state {idx}.{key}"
                )
    assert len(st.history[seed]) == len(single.history)
    for a, b in zip(st.history[seed], single.history, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_replicas_equal_separate_runs(reference_backend, mixture, objective, setting):
    cfg = TrainConfig(objective=objective, seeds=SEEDS, **TINY, **SETTINGS[setting])
    st = make_trainer(cfg, data=mixture)
    assert isinstance(st, SeedsTrainer)
    for _ in range(4):
        rec = st.train_step()
    assert rec["replicas"] == len(SEEDS)
    for s in SEEDS:
        _assert_replica_equals(st, s, _single(cfg, s, 4, data=mixture))
    # the replicas really are different runs
    w = st.replicas.dec["0.weight"].detach()
    assert not torch.equal(w[0], w[1])


@pytest.mark.parametrize(
    "objective, extra",
    [("fd-m3", {}), ("fae", {"k_bi": 1}), ("kl-m2", {"k_bi": 1, "fd_reparam": True})],
)
def test_replicas_on_the_fused_triton_path(mixture, objective, extra):
    """The fused ops (Triton kernels under the interpreter) on replica slices, also inside the
    bi-level variant's double differentiation."""
    cfg = TrainConfig(objective=objective, seeds=(3, 5), **TINY, **extra)
    st = SeedsTrainer(cfg, data=mixture)
    for _ in range(2):
        st.train_step()
    for s in (3, 5):
        _assert_replica_equals(st, s, _single(cfg, s, 2, data=mixture))


def test_sgd_encoder_and_float32(reference_backend, mixture):
    cfg = TrainConfig(
        objective="fd-m1",
        seeds=(0, 4),
        enc_optimizer="sgd",
        enc_lr=1e-2,
        **{**TINY, "dtype": "float32"},
    )
    st = SeedsTrainer(cfg, data=mixture)
    for _ in range(3):
        st.train_step()
    for s in (0, 4):
        single = _single(cfg, s, 3, data=mixture)
        got = st.replica_state(s)["model"]
        for k, v in single.model.state_dict().items():
            torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-6)


def test_conv_replicas_through_vmap(reference_backend):
    """A model that is not a plain MLP (the conv VAE) runs through vmap, to any order."""
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(20, 1, 32, 32, generator=g)
    data = Dataset("images", (1, 32, 32), imgs[:4], train=imgs[4:])
    cfg = tiny_conv(
        "fae", 2, seeds=(0, 1), batch_size=4, n_test=4, dtype="float64", k_bi=1, log_every=1000
    )
    st = SeedsTrainer(cfg, data=data)
    assert st.replicas._enc_plan is None and st.replicas._dec_plan is None
    for _ in range(2):
        st.train_step()
    for s in (0, 1):
        _assert_replica_equals(st, s, _single(cfg, s, 2, data=data))


def test_stacked_networks_equal_each_model():
    torch.manual_seed(0)
    models = [MLPVAE((3,), 2, 5).double() for _ in range(3)]
    stack = StackedVAE(models)
    assert stack._enc_plan is not None and stack._dec_plan is not None
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    z = torch.randn(3, 2, 7, 2, dtype=torch.float64)
    mu, logvar = stack.encode(x)
    xm = stack.decode(z)
    for r, m in enumerate(models):
        mu_r, lv_r = m.encode(x[r])
        torch.testing.assert_close(mu[r], mu_r)
        torch.testing.assert_close(logvar[r], lv_r)
        torch.testing.assert_close(xm[r], m.decode(z[r]))
        assert m.state_dict().keys() == stack.state_dict_of(r).keys()
    with pytest.raises(ValueError, match="^models"):
        StackedVAE([MLPVAE((3,), 2, 5), MLPVAE((3,), 2, 6)])


def test_diverging_replica_is_dropped_and_others_continue(reference_backend, mixture):
    cfg = TrainConfig(objective="kl-m1", seeds=SEEDS, **TINY)
    logs: list[str] = []
    st = SeedsTrainer(cfg, data=mixture, log=logs.append)
    for _ in range(2):
        st.train_step()
    with torch.no_grad():
        st.replicas.dec["0.weight"][1] = float("nan")  # replica of seed 1 blows up at step 3
    for _ in range(3):
        rec = st.train_step()
    assert st.seeds == [0, 2] and rec["replicas"] == 2
    assert [d["seed"] for d in st.diverged] == [1] and st.diverged[0]["step"] == 3
    assert "seed 1" in st.diverged[0]["message"] and "inference loss = nan" in logs[0]
    assert len(st.history[1]) == 2 and len(st.history[0]) == 5
    for s in (0, 2):
        _assert_replica_equals(st, s, _single(cfg, s, 5, data=mixture))
    res = st.evaluate(n_is=0)
    assert [r["seed"] for r in res["replicas"]] == [0, 2]
    assert res["diverged"][0]["seed"] == 1 and res["summary"]["mse"]["n"] == 2
    with pytest.raises(ValueError, match="seed: no replica 1 .*diverged"):
        st.model_of(1)


def test_replica_dropped_at_the_decoder_step(reference_backend, mixture):
    """A replica whose encoder step writes NaN parameters diverges in the same iteration's
    decoder step: it gets no record for that iteration, the others are unchanged."""
    cfg = TrainConfig(objective="fd-m2", seeds=SEEDS, **TINY)
    st = SeedsTrainer(cfg, data=mixture)
    st.train_step()
    st.enc_opt.state[st.enc_params[0]]["exp_avg_sq"][2].fill_(-1.0)  # √(−1): NaN update
    for _ in range(2):
        st.train_step()
    assert st.seeds == [0, 1]
    assert st.diverged[0]["seed"] == 2 and st.diverged[0]["step"] == 2
    assert "learning loss = nan" in st.diverged[0]["message"]
    assert len(st.history[2]) == 1
    for s in (0, 1):
        _assert_replica_equals(st, s, _single(cfg, s, 3, data=mixture))


def test_all_replicas_diverging_raises(reference_backend, mixture):
    st = SeedsTrainer(TrainConfig(objective="kl-elbo", seeds=(0, 1), **TINY), data=mixture)
    with torch.no_grad():
        st.replicas.log_sigma2.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"every replica \(seeds 0,1\)"):
        st.train_step()


def test_resume_continues_every_replica_exactly(reference_backend, mixture, tmp_path):
    cfg = TrainConfig(objective="fd-m3", seeds=SEEDS, steps=3, k_enc=2, **TINY)
    path = str(tmp_path / "ckpt.pt")

    def poisoned(c: TrainConfig, **kw) -> SeedsTrainer:
        tr = SeedsTrainer(c, data=mixture, progress=False, **kw)
        with torch.no_grad():
            tr.replicas.enc["1.0.weight"][0] = float("nan")  # seed 0 diverges at step 1
        return tr

    poisoned(cfg, checkpoint=path).run()
    state = load_checkpoint(path)
    assert sorted(state["replicas"]) == [1, 2] and state["diverged"][0]["seed"] == 0
    resumed = trainer_from_checkpoint(path, overrides={"steps": 5}, data=mixture, progress=False)
    assert isinstance(resumed, SeedsTrainer) and resumed.seeds == [1, 2] and resumed.step == 3
    assert [d["seed"] for d in resumed.diverged] == [0]
    resumed.run()
    straight = poisoned(TrainConfig(**{**vars(cfg), "steps": 5}))
    for _ in range(5):
        straight.train_step()
    for s in (1, 2):
        a, b = resumed.replica_state(s), straight.replica_state(s)
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
        assert a["history"] == b["history"]
    with pytest.raises(ValueError, match="^seeds: the checkpoint holds seeds 0-2"):
        trainer_from_checkpoint(path, overrides={"seeds": (1, 2)}, data=mixture)


def test_replica_checkpoint_is_a_single_run_checkpoint(reference_backend, mixture, tmp_path):
    cfg = TrainConfig(objective="kl-m3", seeds=(0, 1), steps=2, **TINY)
    path = str(tmp_path / "ckpt.pt")
    SeedsTrainer(cfg, data=mixture, checkpoint=path, progress=False).run()
    state = load_checkpoint(path)
    one = replica_checkpoint(state, 1)
    single = Trainer(TrainConfig.from_dict({**one["config"], "steps": 4}), data=mixture)
    single.load_state_dict(one)  # continues seed 1 alone
    for _ in range(2):
        single.train_step()
    want = _single(cfg, 1, 4, data=mixture)
    for k, v in want.model.state_dict().items():
        torch.testing.assert_close(single.model.state_dict()[k], v, **TOL)
    model, rcfg = model_from_checkpoint(path, seed=1)
    assert rcfg.seed == 1 and rcfg.seeds is None
    torch.testing.assert_close(model.log_sigma2, torch.as_tensor(one["model"]["log_sigma2"]))
    with pytest.raises(ValueError, match="^seed: .* holds replicas for seeds"):
        model_from_checkpoint(path)
    with pytest.raises(ValueError, match="^seed: no replica 7"):
        replica_checkpoint(state, 7)


def test_run_writes_per_replica_outputs(reference_backend, mixture, tmp_path):
    cfg = TrainConfig(objective="kl-elbo", seeds=(2, 5), steps=4, eval_every=2, **TINY)
    res = SeedsTrainer(cfg, data=mixture, out_dir=str(tmp_path), progress=False).run()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seeds"] == [2, 5] and [r["seed"] for r in metrics["replicas"]] == [2, 5]
    assert metrics["diverged"] == [] and metrics["step"] == 4
    mean = sum(r["mse"] for r in metrics["replicas"]) / 2
    assert metrics["summary"]["mse"]["mean"] == pytest.approx(mean)
    history = json.loads((tmp_path / "history.json").read_text())
    assert sorted(history) == ["2", "5"] and len(history["5"]) == 4
    assert os.path.exists(tmp_path / "loss.png") and os.path.exists(tmp_path / "checkpoint.pt")
    assert sorted(os.listdir(tmp_path / "metrics")) == ["step_0000002.json", "step_0000004.json"]
    assert res["replicas"][1]["seed"] == 5


def test_seeds_trainer_guards(mixture, monkeypatch):
    with pytest.raises(ValueError, match="^cfg: SeedsTrainer needs TrainConfig.seeds"):
        SeedsTrainer(TrainConfig(**TINY), data=mixture)
    st = SeedsTrainer(TrainConfig(seeds=(0,), **TINY), data=mixture)
    with pytest.raises(AttributeError, match="model_of"):
        _ = st.model
    with pytest.raises(ValueError, match="^data: expected one Dataset or 2"):
        SeedsTrainer(TrainConfig(seeds=(0, 1), **TINY), data=[mixture] * 3)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="^seeds: .*torchrun"):
        SeedsTrainer(TrainConfig(seeds=(0, 1), **TINY), data=mixture)


def test_make_trainer_picks_the_class_and_trainer_refuses_seeds(mixture):
    """A config with seeds needs a SeedsTrainer: the factory builds it, ``Trainer`` itself says
    where to go instead of silently training one seed."""
    assert trainer_class(TrainConfig(seeds=(0, 1), **TINY)) is SeedsTrainer
    assert trainer_class(TrainConfig(**TINY)) is Trainer
    assert type(make_trainer(TrainConfig(**TINY), data=mixture)) is Trainer
    with pytest.raises(ValueError, match=r"^cfg: seeds=\(0, 1\) .*make_trainer"):
        Trainer(TrainConfig(seeds=(0, 1), **TINY), data=mixture)


def test_replicas_get_their_own_data(reference_backend):
    """Without preloaded data each replica gets its seed's data set (a toy's test set depends on
    the seed) and draws its own minibatches."""
    st = SeedsTrainer(TrainConfig(seeds=(0, 1), **TINY))
    assert not torch.equal(st.datasets[0].test, st.datasets[1].test)
    torch.testing.assert_close(st.datasets[1].test, load_dataset("mixture", seed=1, n_test=24).test)


# ----------------------------------------------------------------------------- --seeds parsing


@pytest.mark.parametrize(
    "text, want",
    [
        ("0-9", tuple(range(10))),
        ("0,3,7", (0, 3, 7)),
        ("4", (4,)),
        (" 0 - 2 , 5", (0, 1, 2, 5)),
        ("7-7", (7,)),
        ("3,1", (3, 1)),
    ],
)
def test_parse_seeds(text, want):
    assert parse_seeds(text) == want


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "expected non-negative ints"),
        ("a-b", "expected non-negative ints"),
        ("-1", "expected non-negative ints"),
        ("1.5", "expected non-negative ints"),
        ("3-1", "empty range"),
        ("1,2,1", r"seed\(s\) \[1\] given more than once"),
        ("0-3,2", "more than once"),
    ],
)
def test_parse_seeds_errors(text, match):
    with pytest.raises(ValueError, match=f"^seeds: .*{match}"):
        parse_seeds(text)


@given(st.sets(st.integers(0, 60), min_size=1, max_size=12))
def test_format_seeds_round_trips(seeds):
    t = tuple(sorted(seeds))
    assert parse_seeds(format_seeds(t)) == t


def test_config_seeds_validation():
    assert TrainConfig(seeds="0-2").resolved().seeds == (0, 1, 2)
    assert TrainConfig(seeds=[4, 1]).resolved().seeds == (4, 1)
    assert TrainConfig().resolved().seeds is None
    with pytest.raises(TypeError, match="^seeds"):
        TrainConfig(seeds=(0, 1.0)).resolved()
    with pytest.raises(TypeError, match="^seeds"):
        TrainConfig(seeds=3).resolved()
    for bad in ((), (0, 0), (-1,)):
        with pytest.raises(ValueError, match="^seeds"):
            TrainConfig(seeds=bad).resolved()


def test_cli_seeds(reference_backend, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--seeds",
            "0,2",
            "--dataset",
            "mixture",
            "--steps",
            "3",
            "--width",
            "4",
            "--batch-size",
            "8",
            "--n-test",
            "16",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert '"seeds": [\n  0,\n  2\n ]' in printed and "posterior_sd_" not in printed
    state = load_checkpoint(str(out / "checkpoint.pt"))
    assert state["config"]["seeds"] == (0, 2) and sorted(state["replicas"]) == [0, 2]
    rc = main(["train", "--resume", str(out / "checkpoint.pt"), "--steps", "4", "--quiet"])
    assert rc == 0 and "resumed" in capsys.readouterr().out
    assert load_checkpoint(str(out / "checkpoint.pt"))["step"] == 4
    assert main(["train", "--seeds", "5-2"]) == 2  # one line: vsm: error: ...
    assert "argument --seeds: seeds: empty range '5-2'" in capsys.readouterr().err


def test_cli_default_out_dir_names_the_seeds(reference_backend, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "train",
            "--seeds",
            "0-2",
            "--dataset",
            "mixture",
            "--steps",
            "1",
            "--width",
            "3",
            "--batch-size",
            "4",
            "--n-test",
            "8",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert rc == 0 and (tmp_path / "runs" / "kl-m1-mixture-s0-2" / "metrics.json").exists()
    assert not math.isnan(
        json.loads((tmp_path / "runs" / "kl-m1-mixture-s0-2" / "metrics.json").read_text())[
            "summary"
        ]["mse"]["mean"]
    )
