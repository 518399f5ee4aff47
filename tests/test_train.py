"""Tests of vsm.train: every objective trains, update schedule, gradient isolation, bi-level
hypergradient, divergence detection, atomic checkpoints and exact resumption."""

from __future__ import annotations

import os

import pytest
import torch
from _cases import assert_central_differences, tiny_conv, train_steps
from vsm.data import load_dataset
from vsm.train import (
    OBJECTIVES,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_checkpoint,
    model_from_checkpoint,
)

TINY = {"dataset": "mixture", "width": 6, "batch_size": 16, "n_test": 32, "log_every": 1000}


def _flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params])


@pytest.fixture(scope="module")
def mixture():
    return load_dataset("mixture", n_test=32)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_updates_both_groups(reference_backend, mixture, objective):
    tr = Trainer(TrainConfig(objective=objective, n_samples=2, **TINY), data=mixture)
    enc0, dec0 = _flat(tr.enc_params), _flat(tr.dec_params)
    for _ in range(2):
        rec = tr.train_step()
        assert "enc_loss" in rec and "dec_loss" in rec
    assert not torch.equal(enc0, _flat(tr.enc_params))
    assert not torch.equal(dec0, _flat(tr.dec_params))
    assert tr.step == 2 and len(tr.history) == 2


def test_k_enc_schedule_and_isolation(reference_backend, mixture):
    tr = Trainer(TrainConfig(objective="kl-m1", k_enc=3, **TINY), data=mixture)
    dec0 = _flat(tr.dec_params)
    tr.train_step()
    tr.train_step()
    # the KL inference loss depends on θ, but only φ may move on encoder-only iterations
    assert torch.equal(dec0, _flat(tr.dec_params))
    assert all("dec_loss" not in r for r in tr.history)
    tr.train_step()
    assert "dec_loss" in tr.history[-1]
    assert not torch.equal(dec0, _flat(tr.dec_params))


def test_bilevel_hypergradient_matches_finite_differences(reference_backend, mixture):
    cfg = TrainConfig(objective="fd-m1", k_bi=2, bi_lr=0.05, dtype="float64", **TINY)
    tr = Trainer(cfg, data=mixture)
    x = mixture.batch(0, 8, 0).double()
    enc_state = {k: v.clone() for k, v in tr.model.encoder.state_dict().items()}
    w = tr.model.decoder[0].weight

    def loss() -> torch.Tensor:
        tr.model.encoder.load_state_dict(enc_state)
        torch.manual_seed(123)
        return tr._learning_step_loss(x)

    (g,) = torch.autograd.grad(loss(), w)
    assert_central_differences(loss, w, g, [(0, 0), (2, 1), (5, 0)], rel=1e-4, abs=1e-7)

    # the unrolled steps matter: with φ_K detached from θ the gradient differs
    tr.model.encoder.load_state_dict(enc_state)
    torch.manual_seed(123)
    phi = {k: p.detach() for k, p in tr.model.encoder.named_parameters()}
    plain = tr.learning_loss(x, phi)
    (g_plain,) = torch.autograd.grad(plain, w)
    assert not torch.allclose(g, g_plain)


def test_bilevel_step_runs_for_kl(reference_backend, mixture):
    tr = Trainer(TrainConfig(objective="kl-m3", k_bi=1, **TINY), data=mixture)
    enc0 = _flat(tr.enc_params)
    rec = tr.train_step()
    assert "dec_loss" in rec
    assert not torch.equal(enc0, _flat(tr.enc_params))


def test_divergence_raises_with_step_and_objective(reference_backend, mixture):
    tr = Trainer(TrainConfig(objective="fd-m2", **TINY), data=mixture)
    tr.train_step()
    with torch.no_grad():
        tr.model.log_sigma2.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"fd-m2.*step 2"):
        tr.train_step()


def test_resume_reproduces_uninterrupted_run(reference_backend, mixture, tmp_path):
    cfg = TrainConfig(objective="kl-m2", n_samples=2, k_enc=2, steps=6, eta=0.05, **TINY)
    full = train_steps(Trainer(cfg, data=mixture), 6)
    first = train_steps(Trainer(cfg, data=mixture), 3)
    ckpt = str(tmp_path / "ck.pt")
    first.save(ckpt)
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary files left behind
    torch.manual_seed(999)  # the checkpoint, not the ambient RNG, decides what follows
    resumed = Trainer.from_checkpoint(ckpt, data=mixture)
    assert resumed.step == 3
    train_steps(resumed, 3)
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert full.history == resumed.history

    model, cfg2 = model_from_checkpoint(ckpt)
    assert cfg2.objective == "kl-m2"
    torch.testing.assert_close(model.log_sigma2, first.model.log_sigma2.detach())


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="^path"):
        load_checkpoint(str(bad))


def test_config_validation():
    with pytest.raises(ValueError, match="^objective"):
        TrainConfig(objective="kl-m4").resolved()
    with pytest.raises(ValueError, match="^k_enc"):
        TrainConfig(k_enc=0).resolved()
    c = TrainConfig(dataset="digits").resolved()
    assert (c.model, c.eta, c.batch_size) == ("conv", 0.1, 100)
    c = TrainConfig(dataset="sparse", objective="fd-m1").resolved()
    assert (c.model, c.eta, c.latent_dim, c.bi_lr, c.is_proposal) == ("mlp", 0.0, 2, 1e-3, "prior")


def test_conv_run_with_eval_writes_outputs(reference_backend, tmp_path):
    data = load_dataset("digits")
    data.train, data.test = data.train[:40], data.test[:12]
    cfg = tiny_conv("fd-m3", 3, steps=2, batch_size=8, n_samples=2, eval_every=1, log_every=1)
    lines = []
    tr = Trainer(cfg, data=data, out_dir=str(tmp_path), progress=False, log=lines.append)
    res = tr.run()
    assert res["step"] == 2 and res["n_test"] == 12
    for name in (
        "checkpoint.pt",
        "metrics.json",
        "history.json",
        "loss.png",
        os.path.join("metrics", "step_0000001.json"),
    ):
        assert (tmp_path / name).exists(), name
    assert any(line.startswith("step 1/2") for line in lines)
