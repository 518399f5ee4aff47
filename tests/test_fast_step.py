"""The fast path of Algorithm 1 (vsm.train.fast_step, TrainConfig.fast_step) trains the same model
as the autograd path: parameters after many iterations agree in float64 to 1e-10 (relative), for
every objective it covers, both variants, K_enc 1 and 2, one model and stacked replicas; resumes
are exact; what it does not cover falls back to autograd."""

from __future__ import annotations

import math
import platform
import sys

import pytest
import torch
from vsm.data import Dataset, load_dataset
from vsm.models import MLPVAE
from vsm.train import OBJECTIVES, SeedsTrainer, TrainConfig, Trainer, VariantOptions, make_trainer
from vsm.train import algorithm as A
from vsm.train.fast_step import FastStep, retain_freed_memory, unsupported
from vsm.train.networks import Networks, OneModel
from vsm.train.replicas import ReplicaNoise, Replicas, StackedVAE

COVERED = list(OBJECTIVES)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread, as training runs use (tiny batched products crawl with more on a
    busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mixture() -> Dataset:
    return load_dataset("mixture", seed=0, n_test=64)


def _flat_data(d: int = 6) -> Dataset:
    """A non-2-D flat data set (the "paper" variant's image-code estimators apply to it)."""
    x = torch.rand(200, d, generator=torch.Generator().manual_seed(3))
    return Dataset("flat", (d,), x[:16], train=x[16:])


def _params(tr: Trainer) -> list[torch.Tensor]:
    if isinstance(tr, SeedsTrainer):
        return [p.detach().clone() for p in tr.replicas.parameters()]
    return [p.detach().clone() for p in tr.model.parameters()]


def _train(cfg: TrainConfig, data: Dataset, steps: int) -> Trainer:
    tr = make_trainer(cfg, data=data, progress=False)
    for _ in range(steps):
        tr.train_step()
    return tr


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor], rtol: float = 1e-10) -> None:
    for x, y in zip(a, b, strict=True):
        scale = x.abs().max().clamp_min(1e-300)
        assert ((x - y).abs().max() / scale).item() <= rtol, (x, y)


def _both(cfg: TrainConfig, data: Dataset, steps: int) -> tuple[Trainer, Trainer]:
    plain = _train(TrainConfig(**{**cfg.__dict__, "fast_step": False}), data, steps)
    fast = _train(TrainConfig(**{**cfg.__dict__, "fast_step": True}), data, steps)
    assert plain.fast_step is None and plain.fast_step_off == "fast_step=False"
    return plain, fast


def _mixture64(**fields: object) -> TrainConfig:
    """A float64 config on "mixture" with 64 test points (what the equivalence tests share)."""
    return TrainConfig(dataset="mixture", dtype="float64", n_test=64, **fields)


@pytest.mark.parametrize("seeds", [None, (0, 1, 2)], ids=["one", "seeds3"])
@pytest.mark.parametrize("k_enc", [1, 2])
@pytest.mark.parametrize("variant", ["vsm", "paper"])
@pytest.mark.parametrize("objective", COVERED)
def test_fast_path_equals_autograd(reference_backend, mixture, objective, variant, k_enc, seeds):
    _check_equivalence(mixture, objective=objective, variant=variant, k_enc=k_enc, seeds=seeds)


@pytest.mark.parametrize("seeds", [None, (0, 1, 2)], ids=["one", "seeds3"])
@pytest.mark.parametrize("k_enc", [1, 2])
@pytest.mark.parametrize("variant", ["vsm", "paper"])
@pytest.mark.parametrize("objective", ["fd-m1", "fd-m2", "fd-m3"])
def test_fd_reparam_fast_path_equals_autograd(
    reference_backend, mixture, objective, variant, k_enc, seeds
):
    """The FD encoder step with reparametrised samples (gradient through z into the decoder's
    input-gradient) on the fast path."""
    _check_equivalence(
        mixture, objective=objective, variant=variant, k_enc=k_enc, seeds=seeds, fd_reparam=True
    )


def _check_equivalence(mixture: Dataset, **fields: object) -> None:
    """24 float64 iterations on both paths: same parameters (1e-10) and logged losses."""
    cfg = _mixture64(n_samples=3, batch_size=32, width=8, **fields)
    plain, fast = _both(cfg, mixture, 24)
    assert fast.fast_step is not None, fast.fast_step_off
    _assert_close(_params(plain), _params(fast))
    # the logged losses are the same numbers too
    last_p, last_f = plain.history, fast.history
    if cfg.seeds is not None:
        last_p, last_f = plain.history[0], fast.history[0]
    for rp, rf in zip(last_p, last_f, strict=True):
        for k in rp:
            assert math.isclose(rp[k], rf[k], rel_tol=1e-9, abs_tol=1e-12), (k, rp[k], rf[k])


def _one_update(
    nets: Networks, x: torch.Tensor, which: str, fast: FastStep | None, objective="fae", **kw
):
    """(loss, the updated group's gradients) of one update from fixed draws (seed 7)."""
    torch.manual_seed(7)
    if isinstance(nets, Replicas):
        nets.noise = ReplicaNoise([torch.Generator().manual_seed(7 + r) for r in range(3)])
        enc, dec = list(nets.model.enc.values()), [*nets.model.dec.values(), nets.model.noise]
    else:
        m = nets.model
        enc, dec = m.encoder_parameters(), m.decoder_parameters()
    group = enc if which == "inference" else dec
    for p in [*enc, *dec]:
        p.grad = None
    if fast is not None:
        loss = getattr(fast, which)(nets, x)
    else:
        loss_fn = A.inference_loss if which == "inference" else A.learning_loss
        loss = loss_fn(nets, x, objective=objective, **kw)
        A.group_backward(loss.sum(), group)
    return loss.detach(), [p.grad for p in group]


@pytest.mark.parametrize("which", ["inference", "learning"])
@pytest.mark.parametrize("n", [1, 3], ids=["N1", "N3"])
@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stacked3"])
@pytest.mark.parametrize(
    ("sd_head", "noise_param", "psi"),
    [
        ("logvar", "log_sigma2", "partial"),  # vsm
        ("softplus", "log_sigma", "total"),  # the paper's 2-D code
        ("logsd", "log_sigma", "total"),  # the paper's image code
        ("softplus", "log_sigma2", "partial"),
    ],
)
def test_fae_update_gradients_equal_autograd(
    reference_backend, which, n, stacked, sd_head, noise_param, psi
):
    """One FAE update's loss and gradients, closed form against autograd (float64), at weights
    far from the initialisation so that every term (ψ's included) matters; N = 1 and 3 samples
    (3 replicas with N = 3: a replica axis mistaken for the sample axis would broadcast)."""
    models = _far_models(sd_head, noise_param)
    opt = VariantOptions(fae_encoder_psi=psi, sd_head=sd_head, noise_param=noise_param)
    kw = {"n_samples": n, "eta": 0.1, "options": opt}
    nets, x = _nets_and_data(models, stacked)
    fast = FastStep("fae", template=models[0], **kw)
    loss_a, grads_a = _one_update(nets, x, which, None, **kw)
    loss_f, grads_f = _one_update(nets, x, which, fast)
    _assert_close([loss_a, *grads_a], [loss_f, *grads_f], rtol=1e-12)


def _nets_and_data(models: list[MLPVAE], stacked: bool) -> tuple[Networks, torch.Tensor]:
    """The three models stacked as replicas with a (3, 4, 5) minibatch, or the first alone with
    a (4, 5) one (float64)."""
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    if stacked:
        return Replicas(StackedVAE(models), ReplicaNoise([])), x
    return OneModel(models[0]), x[0]


def _far_models(sd_head: str, noise_param: str) -> list[MLPVAE]:
    """Three float64 MLP VAEs (5-D data, 3 latents, width 7) at weights far from the
    initialisation, so that every term of a loss matters."""
    torch.manual_seed(0)
    models = [
        MLPVAE((5,), 3, 7, noise_param=noise_param, sd_head=sd_head).double() for _ in range(3)
    ]
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return models


@pytest.mark.parametrize("n", [1, 3], ids=["N1", "N3"])
@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stacked3"])
@pytest.mark.parametrize("sd_head", ["logvar", "softplus", "logsd"])
def test_fd_reparam_update_gradients_equal_autograd(reference_backend, n, stacked, sd_head):
    """One FD encoder update with reparametrised samples (fd_reparam=True): loss and encoder
    gradients, closed form against autograd's second-order graph (float64)."""
    models = _far_models(sd_head, "log_sigma2")
    kw = {"n_samples": n, "eta": 0.1, "options": VariantOptions(sd_head=sd_head)}
    nets, x = _nets_and_data(models, stacked)
    fast = FastStep("fd-m1", template=models[0], fd_reparam=True, **kw)
    loss_a, grads_a = _one_update(nets, x, "inference", None, "fd-m1", fd_reparam=True, **kw)
    loss_f, grads_f = _one_update(nets, x, "inference", fast, "fd-m1")
    _assert_close([loss_a, *grads_a], [loss_f, *grads_f], rtol=1e-12)
    # the detached step's gradients differ: the test sees the term through z
    plain = FastStep("fd-m1", template=models[0], **kw)
    _, grads_d = _one_update(nets, x, "inference", plain, "fd-m1")
    assert not torch.allclose(grads_d[0], grads_f[0])


@pytest.mark.parametrize(
    ("objective", "extra"),
    [
        ("kl-m3", {"variant": "paper", "eta": 0.1}),  # summed cross term, exp SD head, log σ
        ("fd-m2", {"variant": "vsm", "eta": 0.1, "enc_optimizer": "sgd", "enc_lr": 1e-2}),
        ("fd-m3", {"variant": "paper", "seeds": (4, 5)}),
        ("fae", {"variant": "paper", "eta": 0.1}),  # total ψ in the encoder step, exp SD head
        ("fae", {"variant": "vsm", "eta": 0.1, "seeds": (4, 5)}),
    ],
)
def test_fast_path_on_flat_data_with_input_noise(reference_backend, objective, extra):
    cfg = TrainConfig(
        objective=objective,
        dataset="flat",
        n_samples=2,
        batch_size=20,
        width=10,
        latent_dim=3,
        dtype="float64",
        **extra,
    )
    plain, fast = _both(cfg, _flat_data(), 30)
    assert fast.fast_step is not None
    _assert_close(_params(plain), _params(fast))


@pytest.mark.parametrize(
    ("objective", "seeds"),
    [("kl-m1", None), ("fd-m3", None), ("kl-m3", (0, 1, 2)), ("fae", None), ("fae", (0, 1, 2))],
)
def test_fast_path_equals_autograd_after_100_steps(reference_backend, mixture, objective, seeds):
    cfg = _mixture64(
        objective=objective,
        seeds=seeds,
        n_samples=3,
        batch_size=100,
        dec_lr=3e-3,
        enc_lr=3e-3,
    )
    plain, fast = _both(cfg, mixture, 100)
    _assert_close(_params(plain), _params(fast))


@pytest.mark.parametrize("seeds", [None, (0, 1)])
def test_resumed_fast_run_equals_uninterrupted(reference_backend, mixture, tmp_path, seeds):
    cfg = TrainConfig(
        objective="fd-m3",
        dataset="mixture",
        seeds=seeds,
        k_enc=2,
        n_samples=2,
        batch_size=50,
        width=8,
        steps=12,
        n_test=64,
    )
    whole = make_trainer(cfg, data=mixture, progress=False)
    for _ in range(12):
        whole.train_step()
    first = make_trainer(cfg, data=mixture, progress=False)
    for _ in range(5):
        first.train_step()
    path = str(tmp_path / "ck.pt")
    first.save(path)
    resumed = type(first).from_checkpoint(path, data=mixture, progress=False)
    assert resumed.fast_step is not None
    for _ in range(7):
        resumed.train_step()
    for a, b in zip(_params(whole), _params(resumed), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("objective", "extra"), [("kl-m1", {}), ("fae", {}), ("fd-m1", {"fd_reparam": True})]
)
def test_float32_fast_path_agrees_to_rounding(reference_backend, mixture, objective, extra):
    cfg = TrainConfig(objective=objective, dataset="mixture", batch_size=100, n_test=64, **extra)
    plain, fast = _both(cfg, mixture, 50)
    _assert_close(_params(plain), _params(fast), rtol=1e-4)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"k_bi": 1}, "bi-level"),
        ({"objective": "fae", "k_bi": 1}, "bi-level"),
        ({"objective": "fd-m1", "fd_reparam": True, "k_bi": 1}, "bi-level"),
    ],
)
def test_uncovered_settings_fall_back_to_autograd(reference_backend, mixture, overrides, reason):
    cfg = TrainConfig(
        **{"objective": "kl-m1", "dataset": "mixture", "batch_size": 16, "n_test": 64, **overrides}
    )
    tr = _train(cfg, mixture, 2)
    assert tr.fast_step is None and reason in (tr.fast_step_off or "")
    assert math.isfinite(tr.history[-1]["enc_loss"])


def test_conv_model_falls_back_to_autograd(reference_backend):
    imgs = torch.rand(12, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    data = Dataset("images", (1, 32, 32), imgs[:4], train=imgs[4:])
    cfg = TrainConfig(objective="kl-m1", dataset="images", batch_size=4, latent_dim=2, ngf=2, ndf=2)
    tr = _train(cfg, data, 1)
    assert tr.fast_step is None and "MLP" in (tr.fast_step_off or "")
    model = tr.model
    assert unsupported("kl-m1", k_bi=0, fd_reparam=False, world_size=2, model=model) is not None


def test_divergence_is_detected_on_the_fast_path(reference_backend, mixture):
    from vsm.train import TrainingDiverged

    cfg = TrainConfig(objective="kl-m1", dataset="mixture", batch_size=16, n_test=64)
    tr = make_trainer(cfg, data=mixture, progress=False)
    with torch.no_grad():
        tr.model.decoder[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="inference loss"):
        tr.train_step()


def test_retain_freed_memory_applies_on_glibc():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert retain_freed_memory() is glibc


@pytest.mark.parametrize("objective", ["fd-m1", "kl-m3"])
def test_fast_path_equals_the_fused_kernels_path(mixture, objective):
    """Against the plain path on vsm's fused ops (the Triton kernels under the interpreter)."""
    cfg = _mixture64(
        objective=objective,
        n_samples=2,
        batch_size=16,
        width=6,
    )
    plain, fast = _both(cfg, mixture, 4)
    _assert_close(_params(plain), _params(fast))


@pytest.mark.parametrize(("objective", "seeds"), [("kl-m3", None), ("fd-m1", (0, 1))])
def test_compiled_fast_step_equals_uncompiled(reference_backend, mixture, objective, seeds):
    """TrainConfig.compile_step (torch.compile of the closed-form updates) trains the same model
    as the uncompiled fast path: float64 parameters after 20 iterations to 1e-10 relative."""
    cfg = _mixture64(
        objective=objective,
        seeds=seeds,
        n_samples=3,
        batch_size=32,
        width=8,
    )
    from torch._dynamo.utils import counters  # dynamo's own tally of compiled frames

    eager = _train(cfg, mixture, 20)
    graphs = counters["stats"]["unique_graphs"]
    compiled = _train(TrainConfig(**{**cfg.__dict__, "compile_step": True}), mixture, 20)
    assert compiled.fast_step is not None, compiled.fast_step_off
    assert counters["stats"]["unique_graphs"] >= graphs + 2  # both updates were compiled
    _assert_close(_params(eager), _params(compiled))


def test_compile_failure_falls_back_to_the_uncompiled_step(reference_backend, mixture, monkeypatch):
    """compile_step on a machine where torch.compile cannot work (e.g. no C++ compiler): one
    warning, then the run trains exactly as uncompiled; an error of the step itself still
    raises."""
    import vsm.train.fast_step as fs

    def broken_compile(fn, **kw):
        def call(*args):
            raise RuntimeError("inductor: no working C++ compiler found")

        return call

    monkeypatch.setattr(fs.torch, "compile", broken_compile)
    cfg = _mixture64(objective="fd-m1", steps=6, compile_step=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        tr = _train(cfg, mixture, 6)
    ref = _train(_mixture64(objective="fd-m1", steps=6), mixture, 6)
    _assert_close(_params(tr), _params(ref), rtol=0.0)
    step = fs._compiled(lambda x: x.reshape(7))  # a genuine error is not swallowed
    with pytest.raises(RuntimeError, match="shape"):
        step(torch.zeros(3))
