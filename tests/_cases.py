"""Shared test cases: tensor makers, small decoders and score functions, one valid call per
public function, and the row format, checks and test factories of the bad-input tables.

Each test module ``tests/test_<module>.py`` ends with a block ``# ---- bad input`` holding its
functions' tables, in the style of pydantic-core's validator tables (valid rows and ``Err`` rows in
one table), each followed by the test that runs it:

- ``BAD_INPUT``: rows ``(id, kind, call, kwargs, expected)``. ``call`` is one of the valid calls
  below (``C.pfd`` runs ``vsm.posterior_fd`` with small valid arguments); ``call(**kwargs())``
  replaces exactly one argument by a bad one (or a few that must agree). ``expected`` is ``OK``
  (the call succeeds: the valid call is valid) or ``Err(exc, arg)``, written ``TE(arg)`` /
  ``VE(arg)``: exactly TypeError (wrong types/dtypes) or ValueError (shapes, values, devices) is
  raised, and its message starts with the argument's name. ``kind`` is one of ``KINDS`` (``"valid"``
  for OK rows); the id starts with the function's prefix (``pfd-``, ``gt-``, ...).
- ``NONFINITE_ROWS``: ``name -> fn(value)``: a NaN or inf in datum 0 stays in row 0 of the result.
- ``LAYOUT_ROWS``: ``name -> fn(lay)``: every array argument passed through ``lay`` (strided,
  transposed) gives the contiguous result.
- ``EXPANDED_ROWS``: ``name -> fn(expanded)``: one argument a stride-0 view gives the contiguous
  result.

``tests/test_bad_input.py`` collects every module's tables into the function × kind-of-bad-input
matrix and checks that it is complete (``python tests/test_bad_input.py`` prints it).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import vsm
from hypothesis import example
from vsm import objectives as O
from vsm import score as S
from vsm.train import TrainConfig

F64 = torch.float64
META = torch.device("meta")  # stands in for a second device (no GPU here)
B, D, L, N = 3, 4, 2, 2  # batch, data dim, latent dim, samples per datum
NAN = float("nan")
TESTS_DIR = str(Path(__file__).resolve().parent)  # this folder (subprocesses import from it)

# Kinds of bad input (the columns of the matrix printed by ``python tests/test_bad_input.py``).
TYPE = "type"  # not a tensor/array (list, ndarray for a torch-only argument), not callable
DTYPE = "dtype"  # int, float16/bfloat16, complex, bool, str arrays; dtypes differing between args
SHAPE = "shape"  # wrong shape or rank, mismatched sizes
EMPTY = "empty"  # B = 0 (or N = 0, K = 0, no components, no noise levels)
DEVICE = "device"  # a second device (meta), or a meta tensor where data is needed
NONFINITE = "non-finite"  # NaN/inf where it cannot mean anything
OPTION = "option"  # bad option or value: n_probes=0, dist="foo", sigma<=0, n_steps<1, seed<0, ...
KINDS = (TYPE, DTYPE, SHAPE, EMPTY, DEVICE, NONFINITE, OPTION)
VALID = "valid"  # the kind of an OK row


class Err(NamedTuple):
    """Expected outcome of a bad-input row: exactly ``exc``, with a message starting ``arg``."""

    exc: type[Exception]
    arg: str


OK = None  # expected outcome of a valid row: the call returns


def TE(arg: str) -> Err:
    """A bad row's outcome: exactly TypeError, its message starting with ``arg``."""
    return Err(TypeError, arg)


def VE(arg: str) -> Err:
    """A bad row's outcome: exactly ValueError, its message starting with ``arg``."""
    return Err(ValueError, arg)


Row = tuple[str, str, Callable[..., Any], Callable[[], dict], "Err | None"]


def arg_row(rid: str, kind: str, call, expected: Err, make: Callable[..., Any], *args, **kw) -> Row:
    """A row whose one bad argument is the one ``expected`` names, passed as ``make(*args, **kw)``
    (made afresh each call)."""
    return (rid, kind, call, lambda: {expected.arg: make(*args, **kw)}, expected)


# ------------------------------------------------------------------------------- tensors, models
def t(*shape, dtype=F64, device="cpu"):
    """A standard-normal tensor (from the global seed, which conftest resets per test)."""
    return torch.randn(shape, dtype=dtype, device=device)


def f32(*shape):
    """A float32 standard-normal tensor (from the global seed): a dtype mixed with float64 ones."""
    return t(*shape, dtype=torch.float32)


def i64(*shape):
    """An int64 tensor of zeros: an integer dtype where floats are needed."""
    return torch.zeros(shape, dtype=torch.int64)


def on_meta(*shape):
    """A float64 tensor on the meta device: a second device."""
    return t(*shape, device=META)


def seeded(seed, *shape):
    """A float64 standard-normal tensor drawn from its own generator: same seed, same values."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=F64, generator=g)


def linear_score(x):
    """Score of N(0, I/1.5)."""
    return -x * 1.5


def noise_score(x, sigma):
    """Score of N(0, I) smoothed with noise of scale ``sigma``."""
    return -x / (1.0 + sigma**2)


def tanh_decoder(z):
    """A fixed small decoder, (..., L) -> (..., D)."""
    w = torch.linspace(-1.0, 1.0, L * D, dtype=z.dtype).reshape(L, D)
    return torch.tanh(z @ w)


def linear_encode(x):
    """A fixed small encoder, (B, D) -> (mu, logvar), each (B, L)."""
    w = torch.linspace(-1.0, 1.0, D * L, dtype=x.dtype).reshape(D, L)
    return x @ w, 0.1 * torch.tanh(x @ w)


AX = np.linspace(-3.0, 3.0, 11)  # a 1-D grid axis
_POSTS: dict[str, Any] = {}


def small_posterior(kind):
    """A small 2-D built-in-model (``toy``) or user-grid (``grid``) posterior, built once."""
    if kind not in _POSTS:
        if kind == "toy":
            _POSTS[kind] = vsm.toy.posterior("sym", np.array([0.5, -1.0]), n=21)
        else:
            lj = -0.5 * (AX[:, None] ** 2 + 0.5 * AX[None, :] ** 2)
            _POSTS[kind] = vsm.toy.grid_posterior(np.stack([lj, lj + 1.0]), (AX, AX))
    return _POSTS[kind]


def spd(seed, *batch):
    """Symmetric positive-definite 2 × 2 matrices of batch shape ``batch``."""
    a = seeded(seed, *batch, 2, 2).numpy()
    return a @ np.swapaxes(a, -1, -2) + np.eye(2)


# -------------------------------------------------------------- valid calls (one per API function)
# Each calls one public function with small valid arguments; keyword arguments replace them by
# name.
def pfd(**kw):
    a = {"z": t(N, B, L), "mu": t(B, L), "logvar": t(B, L), "grad_loglik_z": t(N, B, L)}
    a.update(kw)
    return vsm.posterior_fd(a["z"], a["mu"], a["logvar"], a["grad_loglik_z"])


def gt(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t()}
    a.update(kw)
    return vsm.gaussian_terms(a["x"], a["x_mean"], a["log_sigma2"])


def hutch(**kw):
    inputs = kw.pop("inputs", None)
    if inputs is None:
        inputs = t(B, D).requires_grad_(True)
    outputs = kw.pop("outputs", None)
    if outputs is None:
        outputs = torch.tanh(inputs) * 2.0
    opts = {"n_probes": 2, "dist": "rademacher", "seed": 0}
    opts.update(kw)
    return vsm.hutchinson_trace(outputs, inputs, **opts)


def hutch_io(inputs, f):
    """hutchinson_trace arguments: inputs (made to require grad) and outputs = f(inputs)."""
    inputs = inputs.requires_grad_(True)
    return {"inputs": inputs, "outputs": f(inputs)}


def elbo(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t(), "mu": t(B, L), "logvar": t(B, L)}
    a.update(kw)
    return O.elbo(a["x"], a["x_mean"], a["log_sigma2"], a["mu"], a["logvar"])


def m(fn):
    """Builder for ``m1`` or ``m2`` (same arguments)."""

    def call(**kw):
        a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t()}
        a.update(kw)
        return fn(a["x"], a["x_mean"], a["log_sigma2"])

    return call


def m3(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t(), "psi": t(N, B, D)}
    a.update(kw)
    return O.m3(a["x"], a["x_mean"], a["log_sigma2"], a["psi"])


def pfdl(**kw):
    a = {
        "x": t(B, D),
        "mu": t(B, L),
        "logvar": t(B, L),
        "log_sigma2": t(),
        "n_samples": 2,
        "reparam": True,
    }
    a.update(kw)
    x, dec = a.pop("x"), a.pop("decoder", tanh_decoder)
    return O.posterior_fd_loss(x, dec, a.pop("mu"), a.pop("logvar"), a.pop("log_sigma2"), **a)


def fae(**kw):
    a = {
        "x": t(B, D),
        "z": t(N, B, L),
        "x_mean": t(N, B, D),
        "log_sigma2": t(),
        "mu": t(B, L),
        "logvar": t(B, L),
        "psi": t(N, B, D),
        "grad_loglik_z": t(N, B, L),
    }
    a.update(kw)
    return O.fae(**a)


def fae_loss(**kw):
    a = {
        "x": t(B, D),
        "encode": linear_encode,
        "decoder": tanh_decoder,
        "log_sigma2": t(),
        "n_samples": 2,
        "reparam": True,
    }
    a.update(kw)
    x, enc, dec, ls2 = a.pop("x"), a.pop("encode"), a.pop("decoder"), a.pop("log_sigma2")
    return O.fae_loss(x, enc, dec, ls2, **a)


def exact(**kw):
    a = {"x": t(B, D), "score_fn": linear_score}
    a.update(kw)
    return S.exact_sm(a["score_fn"], a["x"])


def sliced(**kw):
    a = {"x": t(B, D), "score_fn": linear_score}
    a.update(kw)
    x, fn = a.pop("x"), a.pop("score_fn")
    a.setdefault("seed", 0)
    return S.sliced_sm(fn, x, **a)


def dsm(**kw):
    a = {"x": t(B, D), "sigma": 0.5, "score_fn": linear_score, "seed": 0}
    a.update(kw)
    return S.dsm(a["score_fn"], a["x"], a["sigma"], seed=a["seed"])


def mdsm(**kw):
    a = {"x": t(B, D), "sigmas": [1.0, 0.5], "score_fn": noise_score, "seed": 0}
    a.update(kw)
    return S.multiscale_dsm(a["score_fn"], a["x"], a["sigmas"], seed=a["seed"])


def lang(**kw):
    a = {
        "x0": t(B, D),
        "sigmas": [1.0, 0.5],
        "n_steps": 2,
        "step_size": 0.01,
        "seed": 0,
        "score_fn": noise_score,
    }
    a.update(kw)
    return S.annealed_langevin(
        a["score_fn"],
        a["x0"],
        a["sigmas"],
        n_steps=a["n_steps"],
        step_size=a["step_size"],
        seed=a["seed"],
    )


def isle(**kw):
    return vsm.is_log_evidence(kw.get("log_w", t(B, 5)))


def isacc(**kw):
    a = {"x": t(B, D), "log_sigma2": 0.1}
    a.update(kw)
    return vsm.ISAccumulator(a["x"], a["log_sigma2"])


def isadd(**kw):
    """ISAccumulator.add on a fresh accumulator, then .result()."""
    acc = vsm.ISAccumulator(t(B, D), 0.1)
    a = {"x_mean": t(B, 5, D), "log_prior": t(B, 5), "log_proposal": t(B, 5)}
    a.update(kw)
    acc.add(a["x_mean"], a["log_prior"], a["log_proposal"])
    return acc.result()


def isres(**kw):
    """ISAccumulator.result with no samples added."""
    return vsm.ISAccumulator(t(B, D), 0.1).result()


def toy(**kw):
    a = {"model": "sym", "x": np.array([0.5, -1.0]), "n": 21}
    a.update(kw)
    model, x = a.pop("model"), a.pop("x")
    return vsm.toy.posterior(model, x, **a)


def grid(**kw):
    a = {"log_joint": -0.5 * AX[None, :] ** 2 + np.zeros((2, 1)), "axes": (AX,)}
    a.update(kw)
    return vsm.toy.grid_posterior(a["log_joint"], a["axes"])


def div(method, kind="toy"):
    """Builder for Posterior.kl_from / fd_from of a 2-D posterior with a valid Gaussian q."""

    def call(**kw):
        post = small_posterior(kind)
        a = {"q_mean": np.zeros(2), "q_cov": np.eye(2), "q_weights": None}
        a.update(kw)
        return getattr(post, method)(a["q_mean"], a["q_cov"], a["q_weights"])

    return call


def gaussian_args_layout(fn):
    """LAYOUT_ROWS entry for ``fn(x, x_mean, log_sigma2)`` (gaussian_terms, m1, m2)."""
    return lambda lay: fn(lay(seeded(1, B, D)), lay(seeded(2, N, B, D)), seeded(3))


def gaussian_args_expanded(fn, arg):
    """EXPANDED_ROWS entry for ``fn(x, x_mean, log_sigma2)``: ``arg`` ("x" or "x_mean") is a
    stride-0 view (all its data rows, resp. all its samples, equal)."""

    def row(expanded):
        a = {"x": seeded(1, B, D), "x_mean": seeded(2, N, B, D)}
        a[arg] = seeded(1, 1, D).expand(B, D) if arg == "x" else seeded(2, B, D).expand(N, B, D)
        if not expanded:
            a[arg] = a[arg].contiguous()
        return fn(a["x"], a["x_mean"], seeded(3))

    return row


def dtype_rows(prefix, call, arg, shape) -> list[Row]:
    """Rows passing ``arg`` (of ``shape``) as float16, bfloat16 and complex64: TypeError."""
    return [
        (
            f"{prefix}-{dname}",
            DTYPE,
            call,
            (lambda d=dt: {arg: torch.zeros(shape, dtype=d)}),
            TE(arg),
        )
        for dname, dt in (
            ("f16", torch.float16),
            ("bf16", torch.bfloat16),
            ("complex", torch.complex64),
        )
    ]


# ------------------------------------------------------------------------------------ checks
def check_row(row: Row) -> None:
    """Run one table row and check its expected outcome."""
    _, _, call, kwargs, expected = row
    if expected is OK:
        call(**kwargs())
        return
    with pytest.raises(expected.exc, match=rf"^{expected.arg}\b") as info:
        call(**kwargs())
    assert type(info.value) is expected.exc, (
        f"expected exactly {expected.exc.__name__}, got {info.type.__name__}"
    )


def bad_datum(a, value, dim=0):
    """A copy of ``a`` with index 0 along ``dim`` (the datum) set to ``value``."""
    a = a.clone()
    a.select(dim, 0).fill_(value)
    return a


def _strided(a):
    """Same values, last dimension with stride 2 (a non-contiguous view)."""
    if a.ndim == 0:
        return a
    if isinstance(a, np.ndarray):
        buf = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
        view = buf[..., ::2]
        view[...] = a
        return view
    buf = torch.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype, device=a.device)
    view = buf[..., ::2]
    view.copy_(a)
    return view


def _transposed(a):
    """Same values, stored in reversed-dimension (Fortran) order; 1-D falls back to strided."""
    if a.ndim < 2:
        return _strided(a)
    rev = tuple(range(a.ndim))[::-1]
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a.transpose(rev)).transpose(rev)
    return a.permute(rev).contiguous().permute(rev)


def same(a):
    """The identity layout (the contiguous baseline)."""
    return a


def _noncontig(f):
    """Wrap a layout so that it checks it really produced a non-contiguous array."""

    def lay(a):
        out = f(a)
        if a.ndim:
            flag = out.flags.c_contiguous if isinstance(out, np.ndarray) else out.is_contiguous()
            assert not flag, f"{f.__name__} left shape {tuple(a.shape)} contiguous"
        return out

    return lay


LAYOUTS = {"strided": _noncontig(_strided), "transposed": _noncontig(_transposed)}


def arrays(out):
    """The numeric arrays of a result (tensor, ndarray, tuple, NamedTuple or dataclass)."""
    if isinstance(out, torch.Tensor):
        return [out.detach().numpy()]
    if isinstance(out, np.ndarray):
        return [out]
    if isinstance(out, tuple):
        return [a for o in out for a in arrays(o)]
    if hasattr(out, "__dataclass_fields__"):
        return [
            a
            for f in out.__dataclass_fields__
            if not f.startswith("_")
            for a in arrays(getattr(out, f))
        ]
    raise AssertionError(f"unexpected result type {type(out).__name__}")


def assert_same_result(got, want):
    """Two results hold the same arrays, to 1e-12."""
    got, want = arrays(got), arrays(want)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------- test factories
# A module binds each to a test name, e.g.
#     test_bad_input_raises_naming_argument = raises_test(BAD_INPUT)
# so every module runs its own rows under the same test names, with no copied test bodies.
def raises_test(rows: list[Row]):
    """A test over the rows of a ``BAD_INPUT`` table (ids are the row ids)."""

    @pytest.mark.parametrize("row", [pytest.param(r, id=r[0]) for r in rows])
    def test(row):
        check_row(row)

    test.table = rows  # lets tests/test_bad_input.py check what each module runs
    return test


def non_finite_test(table: dict[str, Callable[[float], Any]]):
    """A test over a ``NONFINITE_ROWS`` table, for NaN and inf.

    The torch-level functions do not scan tensor data for NaN/inf: that would cost a
    device-to-host synchronisation per call (and break CUDA graphs / torch.compile), and torch
    ops propagate non-finite values themselves. What they guarantee instead is checked: a NaN or
    inf in one datum makes that datum's result non-finite and leaves every other datum's result
    finite. (The Rust-backed functions do reject non-finite data: their NONFINITE-kind rows.)"""

    @pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # interpreter
    @pytest.mark.parametrize("value", [NAN, math.inf], ids=["nan", "inf"])
    @pytest.mark.parametrize("row", sorted(table))
    def test(row, value):
        out = table[row](value)
        for o in out if isinstance(out, tuple) else (out,):
            o = o.detach()
            assert not torch.isfinite(o[0]).all(), f"{row}: datum 0 is {o[0]}, expected non-finite"
            assert torch.isfinite(o[1:]).all(), f"{row}: other data became non-finite: {o[1:]}"

    test.table = table  # lets tests/test_bad_input.py check what each module runs
    return test


def layout_test(table: dict[str, Callable[[Callable], Any]]):
    """A test over a ``LAYOUT_ROWS`` table: strided and transposed inputs give the contiguous
    result."""

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("row", sorted(table))
    def test(row, layout):
        want = table[row](same)
        assert_same_result(table[row](LAYOUTS[layout]), want)

    test.table = table  # lets tests/test_bad_input.py check what each module runs
    return test


def expanded_test(table: dict[str, Callable[[bool], Any]]):
    """A test over an ``EXPANDED_ROWS`` table: a stride-0 (expand / broadcast_to) argument gives the
    result for its contiguous copy."""

    @pytest.mark.parametrize("name", sorted(table))
    def test(name):
        want = table[name](False)
        assert_same_result(table[name](True), want)

    test.table = table  # lets tests/test_bad_input.py check what each module runs
    return test


def layout_gradients_test(fn, shapes):
    """A test: gradients of ``fn``'s outputs (summed) with respect to float64 arguments of
    ``shapes``, laid out strided or transposed, equal those for contiguous arguments."""

    def grads(lay):
        args = [lay(seeded(i, *s)).requires_grad_(True) for i, s in enumerate(shapes)]
        out = fn(*args)
        loss = sum(o.sum() for o in (out if isinstance(out, tuple) else (out,)))
        return torch.autograd.grad(loss, args)

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    def test(layout):
        want = grads(same)
        assert_same_result(grads(LAYOUTS[layout]), want)

    return test


def assert_central_differences(loss, w, grad, indices, *, h=1e-6, rel, abs):
    """``grad``, the autograd gradient of the scalar ``loss()`` w.r.t. the parameter ``w``,
    agrees with central differences (step ``h``) of ``loss`` at the ``indices`` of ``w``, which
    is left as it was."""
    for idx in indices:
        with torch.no_grad():
            w[idx] += h
        up = float(loss().detach())
        with torch.no_grad():
            w[idx] -= 2 * h
        down = float(loss().detach())
        with torch.no_grad():
            w[idx] += h
        assert float(grad[idx]) == pytest.approx((up - down) / (2 * h), rel=rel, abs=abs)


def tiny_conv(objective: str, latent_dim: int, **kw) -> TrainConfig:
    """A TrainConfig of the conv VAE at its smallest (two base channels in encoder and decoder,
    ``latent_dim`` latents) on 32 × 32 images (the ``digits`` family); ``kw`` sets the rest."""
    return TrainConfig(
        objective=objective,
        dataset="digits",
        model="conv",
        ngf=2,
        ndf=2,
        latent_dim=latent_dim,
        **kw,
    )


def train_steps(trainer, n):
    """``trainer`` after ``n`` more :meth:`vsm.train.Trainer.train_step` calls."""
    for _ in range(n):
        trainer.train_step()
    return trainer


def examples(names: str, rows: list[tuple]) -> Callable:
    """Hypothesis ``@example`` decorators from a table: ``names`` (space-separated) are the test's
    arguments, each row their values in that order; examples are applied in the rows' order."""
    keys = names.split()

    def decorate(test):
        for row in reversed(rows):
            test = example(**dict(zip(keys, row, strict=True)))(test)
        return test

    return decorate


def run_compiled(script: str, *paths: str, cwd=None, **env: str) -> subprocess.CompletedProcess:
    """``python -c script`` in a subprocess that compiles for real (``TRITON_INTERPRET`` unset) on
    the vsm this test imported (the installed package in CI, else the source tree): PYTHONPATH is
    ``paths``, that vsm's folder, then the inherited PYTHONPATH; ``env`` adds variables. Text
    output captured, 600 s at most, the exit status left to the caller."""
    run_env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run_env.update(env)
    src = str(Path(vsm.__file__).resolve().parents[1])
    run_env["PYTHONPATH"] = os.pathsep.join(
        [*paths, src, *filter(None, [run_env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        env=run_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class Evil:
    """Unpickling runs ``exec`` of a line that creates the marker file: the malicious checkpoint of
    issue 20 (``tests/test_bad_files.py``, ``tests/test_cli_errors.py``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('PWNED')",))
