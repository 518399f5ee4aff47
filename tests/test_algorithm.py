"""Tests of vsm.train.algorithm: Algorithm 1's steps as plain functions on a tiny model, without a
Trainer or a data set (one test checks that the Trainer runs exactly these steps)."""

from __future__ import annotations

import copy

import pytest
import torch
from _cases import assert_central_differences
from vsm import objectives as O
from vsm.data import load_dataset
from vsm.models import MLPVAE
from vsm.train import (
    OBJECTIVES,
    TrainConfig,
    Trainer,
    bilevel_learning_loss,
    group_backward,
    inference_loss,
    iteration,
    learning_loss,
)


def _model(dtype=torch.float32) -> MLPVAE:
    torch.manual_seed(0)
    return MLPVAE((2,), 2, 5, log_sigma2_init=-1.0).to(dtype)


def _x(dtype=torch.float32) -> torch.Tensor:
    return torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _grads(loss, params):
    return [
        g if g is not None else torch.zeros_like(p)
        for g, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params, strict=True)
    ]


@pytest.mark.parametrize("objective", ["kl-m1", "fd-m2"])
def test_inference_loss_is_the_documented_objective(reference_backend, objective):
    m, x = _model(), _x()
    torch.manual_seed(5)
    got = inference_loss(m, x, objective=objective, n_samples=3)
    torch.manual_seed(5)
    mu, logvar = m.encode(x)
    if objective.startswith("kl"):
        z = O.sample_posterior(mu, logvar, 3)
        want = O.elbo(x, m.decode(z), m.log_sigma2, mu, logvar).mean()
    else:
        want = O.posterior_fd_loss(
            x, m.decode, mu, logvar, m.log_sigma2, n_samples=3, reparam=False
        ).mean()
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("learning, fn", [("m1", O.m1), ("m2", O.m2)])
def test_learning_loss_uses_detached_samples(reference_backend, learning, fn):
    m, x = _model(), _x()
    torch.manual_seed(5)
    got = learning_loss(m, x, objective=f"kl-{learning}", n_samples=3)
    torch.manual_seed(5)
    mu, logvar = m.encode(x)
    z = O.sample_posterior(mu.detach(), logvar.detach(), 3)
    torch.testing.assert_close(got, fn(x, m.decode(z), m.log_sigma2).mean(), rtol=0, atol=0)
    # Algorithm 1's learning step has no path to φ
    assert all(float(g.abs().sum()) == 0 for g in _grads(got, m.encoder_parameters()))
    assert any(float(g.abs().sum()) > 0 for g in _grads(got, m.decoder_parameters()))


def test_input_noise_is_fresh_per_call(reference_backend):
    m, x = _model(), _x()
    torch.manual_seed(0)
    a = inference_loss(m, x, objective="kl-m1", eta=0.3)
    b = inference_loss(m, x, objective="kl-m1", eta=0.3)
    assert a.item() != b.item()
    with pytest.raises(ValueError, match="^objective"):
        learning_loss(m, x, objective="kl-m7")


@pytest.mark.parametrize("objective", ["fd-m1", "kl-m3"])
def test_bilevel_hypergradient_matches_finite_differences(objective):
    """Through the unrolled encoder steps, on the default dispatch (the Triton kernels under
    TRITON_INTERPRET=1): the fused ops are differentiable twice, as the hypergradient needs."""
    m, x = _model(torch.float64), _x(torch.float64)
    before = copy.deepcopy(m.state_dict())
    w = m.decoder[0].weight

    def loss() -> torch.Tensor:
        torch.manual_seed(123)
        return bilevel_learning_loss(
            m, x, objective=objective, k_bi=2, bi_lr=0.05, n_samples=2
        ).loss

    (g,) = torch.autograd.grad(loss(), w)
    for k, v in m.state_dict().items():  # the model itself is not changed
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert_central_differences(loss, w, g, [(0, 0), (2, 1), (4, 0)], rel=1e-5, abs=1e-8)
    # the unrolled steps matter: with φ_K detached from θ the gradient differs
    torch.manual_seed(123)
    res = bilevel_learning_loss(m, x, objective=objective, k_bi=2, bi_lr=0.05, n_samples=2)
    phi = {k: p.detach() for k, p in res.phi.items()}
    torch.manual_seed(123)
    (g_plain,) = torch.autograd.grad(
        learning_loss(m, x, objective=objective, n_samples=2, phi=phi), w
    )
    assert not torch.allclose(g, g_plain)


def test_bilevel_counts_non_finite_inner_losses(reference_backend):
    m, x = _model(), _x()
    with torch.no_grad():
        m.log_sigma2.fill_(float("nan"))
    res = bilevel_learning_loss(m, x, objective="fd-m1", k_bi=3, bi_lr=0.01)
    assert float(res.n_bad) == 3.0


def test_group_backward_fills_only_its_group(reference_backend):
    m, x = _model(), _x()
    loss = inference_loss(m, x, objective="kl-m1")  # depends on both groups
    group_backward(loss, m.encoder_parameters())
    assert all(p.grad is not None for p in m.encoder_parameters())
    assert all(p.grad is None for p in m.decoder_parameters())
    extra = torch.nn.Parameter(torch.ones(3))  # not reached by the loss: a zero gradient
    group_backward(inference_loss(m, x, objective="kl-m1"), [extra])
    assert torch.equal(extra.grad, torch.zeros(3))


@pytest.mark.parametrize(
    "objective, k_enc, k_bi", [("kl-m2", 2, 0), ("fd-m3", 1, 1), ("fae", 1, 0)]
)
def test_trainer_runs_exactly_the_plain_iteration(reference_backend, objective, k_enc, k_bi):
    assert objective in OBJECTIVES
    data = load_dataset("mixture", n_test=16)
    cfg = TrainConfig(
        objective=objective,
        dataset="mixture",
        width=5,
        batch_size=8,
        k_enc=k_enc,
        k_bi=k_bi,
        n_samples=2,
        eta=0.05,
        log_every=1000,
        fast_step=False,  # the autograd path (tests/test_fast_step.py compares the fast one)
    )
    tr = Trainer(cfg, data=data)
    c = tr.cfg
    model = copy.deepcopy(tr.model)
    enc_opt = torch.optim.Adam(model.encoder_parameters(), lr=c.enc_lr)
    dec_opt = torch.optim.Adam(model.decoder_parameters(), lr=c.dec_lr)
    rng = torch.get_rng_state()
    for _ in range(3):
        tr.train_step()
    torch.set_rng_state(rng)
    for step in range(3):
        x = data.batch(step, c.batch_size, c.seed)
        rec = iteration(
            model,
            x,
            enc_opt,
            dec_opt,
            objective=objective,
            update_decoder=(step + 1) % k_enc == 0,
            n_samples=c.n_samples,
            eta=c.eta,
            fd_reparam=c.fd_reparam,
            k_bi=k_bi,
            bi_lr=c.bi_lr,
        )
        assert rec["enc_loss"] == tr.history[step]["enc_loss"]
        assert rec.get("dec_loss") == tr.history[step].get("dec_loss")
    for a, b in zip(tr.model.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
