"""The hand-written PyTorch baselines of ``benches/handwritten_step.py`` (issue 18's "plain PyTorch
step") are the same model and objective as vsm's: with the same weights, minibatches and noise
(torch's global RNG seeded alike before each iteration), one Algorithm-1 iteration gives the same
encoder and decoder losses, the same gradients of every parameter and the same parameters after
the Adam updates as vsm's autograd path (``TrainConfig(fast_step=False)``), in float64 to 1e-10,
for every objective the benchmark times, both variants (MLP), K_enc 1 and 2, and the conv VAE."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

import pytest
import torch
from vsm.data import Dataset, load_dataset
from vsm.train import TrainConfig, Trainer
from vsm.train.variants import PAPER_EPOCH_SIZE

OBJECTIVES = ["kl-elbo", "kl-m1", "fd-m1", "fd-m2", "kl-m3", "fae"]
CONV_OBJECTIVES = ["kl-elbo", "kl-m1", "fd-m1", "fd-m2", "kl-m3", "fae"]


def _load_bench_module(name: str) -> ModuleType:
    """``benches/<name>.py`` (benches/ is not a package). The environment is restored after the
    import: ``bench_train_step`` drops ``TRITON_INTERPRET`` for its own timings."""
    path = os.path.join(os.path.dirname(__file__), "..", "benches", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)  # dataclasses look their module up
    env = dict(os.environ)
    try:
        spec.loader.exec_module(mod)
    finally:
        os.environ.clear()
        os.environ.update(env)
    return mod


HW = _load_bench_module("handwritten_step")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mixture() -> Dataset:
    return load_dataset("mixture", seed=0, n_test=16)


def _copy_weights(trainer: Trainer, hand) -> None:
    """vsm's model → the hand-written networks (same layers in the same order)."""
    m = trainer.model
    pairs = [
        *zip(m.encoder.parameters(), hand.encoder.parameters(), strict=True),
        *zip(m.decoder.parameters(), hand.decoder.parameters(), strict=True),
        (m.noise_parameter, hand.noise),
    ]
    with torch.no_grad():
        for p, q in pairs:
            assert p.shape == q.shape and p.dtype == q.dtype == torch.float64
            q.copy_(p)


def _close(a: torch.Tensor, b: torch.Tensor, what: str, rtol: float = 1e-10) -> None:
    scale = a.abs().max().clamp_min(1e-300)
    err = ((a - b).abs().max() / scale).item()
    assert err <= rtol, f"{what}: relative difference {err:.3e}"


def _compare(trainer: Trainer, hand, iterations: int) -> None:
    """``iterations`` iterations of both from the same RNG state; losses, gradients and
    parameters after each must agree."""
    m = trainer.model
    vsm_params = {
        **{f"encoder.{k}": p for k, p in m.encoder.named_parameters()},
        **{f"decoder.{k}": p for k, p in m.decoder.named_parameters()},
        "noise": m.noise_parameter,
    }
    hand_params = [*hand.encoder.parameters(), *hand.decoder.parameters(), hand.noise]
    for it in range(iterations):
        torch.manual_seed(100 + it)
        rec = trainer.train_step()
        torch.manual_seed(100 + it)
        out = hand()
        assert ("dec_loss" in rec) == ("dec_loss" in out)
        for key in ("enc_loss", "dec_loss"):
            if key in rec:
                _close(
                    torch.tensor(rec[key], dtype=torch.float64), out[key], f"iteration {it} {key}"
                )
        for (name, p), q in zip(vsm_params.items(), hand_params, strict=True):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                _close(p.grad, q.grad, f"iteration {it} grad {name}")
            _close(p.detach(), q.detach(), f"iteration {it} {name}")


@pytest.mark.parametrize("variant", ["vsm", "paper"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_mlp_step_equals_vsm(objective: str, variant: str, mixture: Dataset) -> None:
    k_enc = 2 if objective in ("kl-m1", "fae") else 1  # the skipped decoder update too
    cfg = TrainConfig(
        objective=objective,
        dataset="mixture",
        variant=variant,
        dtype="float64",
        width=8,
        batch_size=16,
        n_samples=3,
        k_enc=k_enc,
        n_test=16,
        fast_step=False,
    )
    trainer = Trainer(cfg, data=mixture, progress=False)
    epoch = {"epoch_size": PAPER_EPOCH_SIZE} if variant == "paper" else {}
    hand = HW.make_step(
        objective,
        lambda s: mixture.batch(s, 16, 0, **epoch),
        width=8,
        n_samples=3,
        k_enc=k_enc,
        dtype=torch.float64,
        variant=variant,
    )
    _copy_weights(trainer, hand)
    _compare(trainer, hand, 2 * k_enc)


@pytest.mark.parametrize("variant", ["vsm", "paper"])
@pytest.mark.parametrize("objective", ["fd-m1", "kl-m3", "fae"])
def test_mnist_size_mlp_step_equals_vsm(objective: str, variant: str) -> None:
    """A non-2-D flat MLP (log σ² starting at 0, η = 0.1; "paper": the image code's)."""
    x = torch.rand(40, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    data = Dataset("flat", (12,), x[:8], train=x)
    cfg = TrainConfig(
        objective=objective, dataset="flat", dtype="float64", width=8, latent_dim=3,
        batch_size=8, n_samples=2, n_test=8, fast_step=False, variant=variant,
    )  # fmt: skip
    trainer = Trainer(cfg, data=data, progress=False)
    hand = HW.make_step(
        objective, lambda s: data.batch(s, 8, 0), data_dim=12, latent=3, width=8, n_samples=2,
        dtype=torch.float64, variant=variant,
    )  # fmt: skip
    _copy_weights(trainer, hand)
    _compare(trainer, hand, 2)


@pytest.mark.parametrize("variant", ["vsm", "paper"])
@pytest.mark.parametrize("objective", CONV_OBJECTIVES)
def test_conv_step_equals_vsm(objective: str, variant: str) -> None:
    imgs = torch.rand(12, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    data = Dataset("imgs", (1, 32, 32), imgs[:4], train=imgs)
    cfg = TrainConfig(
        objective=objective, dataset="imgs", model="conv", dtype="float64", latent_dim=3,
        ngf=2, ndf=2, batch_size=4, n_samples=2, n_test=4, fast_step=False, variant=variant,
    )  # fmt: skip
    trainer = Trainer(cfg, data=data, progress=False)
    hand = HW.make_conv_step(
        objective, lambda s: data.batch(s, 4, 0), latent=3, ngf=2, ndf=2, n_samples=2,
        dtype=torch.float64, variant=variant,
    )  # fmt: skip
    _copy_weights(trainer, hand)
    _compare(trainer, hand, 2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="objective"):
        HW.make_step("kl-m4", lambda s: torch.zeros(4, 2))
    with pytest.raises(ValueError, match="variant"):
        HW.make_step("kl-m1", lambda s: torch.zeros(4, 2), variant="authors")


def test_bench_rows_have_hand_steps() -> None:
    """``bench_train_step.py``'s default rows are issue 18's table, each with a hand-written
    step."""
    bench = _load_bench_module("bench_train_step")
    rows = [bench.Row.parse(r) for r in bench.ROWS]
    keys = {(r.dataset, r.width, r.objective, r.k_enc, r.variant) for r in rows}
    issue = {
        (ds, w, obj, k, v)
        for ds, w in (("mixture", 30), ("sparse", 100))
        for obj in ("kl-elbo", "kl-m1", "fd-m1", "kl-m3", "fae")
        for k in (1, 10)
        for v in ("vsm", "paper")
    }
    assert issue <= keys and {r.dataset for r in rows} == {"mixture", "sparse", "mnist784", "conv"}
    data = {ds: bench._data(ds) for ds in ("mixture", "sparse", "mnist784", "conv")}
    for r in rows:
        assert bench.hand_step(r, data[r.dataset]) is not None, r.name
    assert bench.Row.parse("mixture:30:kl-m1") == bench.Row("mixture", 30, "kl-m1", 1, "vsm")
    with pytest.raises(ValueError, match="variant"):
        bench.Row.parse("mixture:30:kl-m1:1:authors")
    for text in ("mnist784:100:kl-m3:1:paper", "conv:16:fae:1:paper"):
        row = bench.Row.parse(text)
        assert bench.hand_step(row, data[row.dataset]) is not None


def test_bench_row_smoke(reference_backend) -> None:
    """One tiny timing of a 2-D paper row and a conv row: every step runs, at the set thread
    count, and the record carries the row's variant (no performance claim; vsm's ops on the
    reference backend, not Triton's interpreter)."""
    bench = _load_bench_module("bench_train_step")
    for text, variant in (("mixture:4:kl-m3:2:paper", "paper"), ("conv:2:fd-m1", "vsm")):
        res = bench.bench_row(bench.Row.parse(text), chunk=1, rounds=1, seeds=0, threads=1)
        assert set(res["ms"]) == {"hand", "plain", "fast"}, text
        assert res["variant"] == variant and res["k_enc"] == (2 if variant == "paper" else 1)
        assert all(v > 0 for v in res["mflop"].values())
    with pytest.raises(RuntimeError, match="thread"):
        bench._alternate({"x": lambda: None}, 1, 1, threads=2)
