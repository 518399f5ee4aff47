"""Tests of ``vsm.hutchinson_trace``: unbiasedness (with a tolerance from the estimator's variance),
exactness for diagonal Jacobians, reproducibility, float64 gradcheck, and the Philox kernels
(probes, probe dot product and its backward) against torch under Triton's interpreter."""

from __future__ import annotations

import math

import _cases as C
import pytest
import torch
import vsm
from _cases import META, OK, TE, VE, B, D, seeded, t
from hypothesis import given
from hypothesis import strategies as st
from vsm import reference
from vsm.ops import hutchinson as H

BACKENDS = ["triton", "rust", "reference"]
DISTS = ["rademacher", "gaussian"]


def _linear_case(b: int, d: int, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=dtype)
    x = torch.randn(b, d, generator=gen, dtype=dtype).requires_grad_(True)
    return a, x, x @ a.T  # row b: y_b = A x_b, Jacobian A


def _single_probe_variance(a: torch.Tensor, dist: str) -> float:
    """Var(vᵀAv) for one probe: 2‖S‖²_F (Gaussian), 2 Σ_{i≠j} S_ij² (Rademacher), S = (A+Aᵀ)/2."""
    s = 0.5 * (a + a.T)
    if dist == "gaussian":
        return float(2 * (s * s).sum())
    return float(2 * ((s * s).sum() - (torch.diagonal(s) ** 2).sum()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dist", DISTS)
def test_unbiased_on_linear_map(backend, dist):
    b, d, n_probes, n_seeds = 256, 6, 4, 8
    a, x, y = _linear_case(b, d)
    with vsm.backend(backend):
        est = torch.stack(
            [
                vsm.hutchinson_trace(y, x, n_probes=n_probes, dist=dist, seed=1000 + s)
                for s in range(n_seeds)
            ]
        )
    assert est.shape == (n_seeds, b)
    n = n_seeds * b * n_probes  # independent single-probe draws
    stderr = math.sqrt(_single_probe_variance(a, dist) / n)
    # 5 standard errors: a false failure has probability < 1e-6 (and the seeds are fixed)
    assert abs(est.mean().item() - torch.trace(a).item()) < 5 * stderr
    # the spread matches the variance formula (divided by n_probes), within 15 %
    var_ratio = est.var().item() / (_single_probe_variance(a, dist) / n_probes)
    assert 0.85 < var_ratio < 1.15


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rademacher_exact_for_diagonal_jacobian(backend, dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 33, generator=gen, dtype=dtype).requires_grad_(True)
    w = torch.randn(33, generator=gen, dtype=dtype)
    y = x * w + torch.sin(x) + x * x
    exact = (w + torch.cos(x) + 2 * x).sum(-1).detach()
    with vsm.backend(backend):
        for seed in (0, 1, 2**40 + 3):
            est = vsm.hutchinson_trace(y, x, n_probes=2, seed=seed)
            assert est.dtype == dtype
            torch.testing.assert_close(est.detach(), exact)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dist", DISTS)
def test_reproducible_for_fixed_seed(backend, dist):
    _, x, y = _linear_case(8, 6)
    with vsm.backend(backend):
        t1 = vsm.hutchinson_trace(y, x, n_probes=3, dist=dist, seed=42)
        t2 = vsm.hutchinson_trace(y, x, n_probes=3, dist=dist, seed=42)
        t3 = vsm.hutchinson_trace(y, x, n_probes=3, dist=dist, seed=43)
        torch.manual_seed(7)
        n1 = vsm.hutchinson_trace(y, x, dist=dist)
        torch.manual_seed(7)
        n2 = vsm.hutchinson_trace(y, x, dist=dist)
    assert torch.equal(t1, t2)
    assert not torch.equal(t1, t3)
    assert torch.equal(n1, n2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dist", DISTS)
def test_gradcheck_wrt_map_parameters(backend, dist):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(5, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    c = torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_(True)

    def trace_of_map(w, c):
        y = torch.tanh(x @ w + c)
        with vsm.backend(backend):
            return vsm.hutchinson_trace(y, x, n_probes=2, dist=dist, seed=11)

    assert torch.autograd.gradcheck(trace_of_map, (w, c))
    if backend != "reference":  # the dot op's backward is itself differentiable
        assert torch.autograd.gradgradcheck(trace_of_map, (w, c))


def test_trace_usable_in_a_loss_matches_exact_gradient_for_rademacher_diagonal():
    # elementwise map: Rademacher estimate is exact, so its parameter gradient is exact too
    x = torch.randn(4, 9, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(9, dtype=torch.float64).requires_grad_(True)
    with vsm.backend("triton"):
        est = vsm.hutchinson_trace(torch.tanh(x * w), x, seed=5).sum()
    (g,) = torch.autograd.grad(est, w)
    exact = (w * (1 - torch.tanh(x * w) ** 2)).sum()  # tr = Σ w (1 − tanh²)
    (ge,) = torch.autograd.grad(exact, w)
    torch.testing.assert_close(g, ge)


def test_outputs_independent_of_inputs_give_zero():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(4, requires_grad=True)
    y = x.detach() * w
    for backend in BACKENDS:
        with vsm.backend(backend):
            assert torch.equal(vsm.hutchinson_trace(y, x, seed=0), torch.zeros(3))


dims = st.one_of(st.integers(1, 9), st.sampled_from([16, 255, 256, 257, 300]))
#: Batch sizes for the kernel tests: odd, size 1 and multi-tile, but kept small because the
#: interpreter runs each Triton program one after another (P·B·D up to 3·300·300 made one example
#: take minutes); the large-D cases come from ``dims``.
rows = st.one_of(st.integers(1, 9), st.sampled_from([16, 33]))


@given(
    p=st.integers(1, 3),
    b=rows,
    d=dims,
    dist=st.sampled_from(DISTS),
    f64=st.booleans(),
    seed=st.integers(0, 2**62),
)
def test_kernels_match_torch_given_kernel_probes(p, b, d, dist, f64, seed):
    dtype = torch.float64 if f64 else torch.float32
    like = torch.empty(b, d, dtype=dtype)
    v = H._probes_op(like, p, seed, dist)
    assert v.shape == (p, b, d) and v.dtype == dtype
    assert torch.isfinite(v).all()
    if dist == "rademacher":
        assert bool(((v == 1) | (v == -1)).all())
    # same probes in float32 and float64 (values do not depend on the dtype)
    other = torch.float32 if f64 else torch.float64
    torch.testing.assert_close(H._probes_op(like.to(other), p, seed, dist).to(dtype), v)
    # dot kernel (probes regenerated inside) vs torch with the kernel's probes
    u = torch.randn(p, b, d, dtype=dtype).requires_grad_(True)
    out = H._dot_op(u, seed, dist)
    tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(out, (v * u).sum(-1), **tol)
    # backward kernel (probes regenerated again): du = go·v
    go = torch.randn(p, b, dtype=dtype)
    (du,) = torch.autograd.grad(out, u, go)
    torch.testing.assert_close(du, go[..., None] * v, **tol)


@given(
    p=st.integers(1, 3),
    b=st.integers(1, 6),
    d=st.sampled_from([1, 3, 64, 257]),
    dist=st.sampled_from(DISTS),
)
def test_triton_trace_equals_torch_formula_with_kernel_probes(p, b, d, dist):
    gen = torch.Generator().manual_seed(b * 1000 + d)
    x = torch.randn(b, d, generator=gen, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    y = torch.tanh(x @ w) * x
    with vsm.backend("triton"):
        est = vsm.hutchinson_trace(y, x, n_probes=p, dist=dist, seed=99)
        v = H.hutchinson_probes(x, p, 99, dist)
    want = (
        sum(
            (v[i] * torch.autograd.grad(y, x, v[i], retain_graph=True)[0]).sum(-1) for i in range(p)
        )
        / p
    )
    torch.testing.assert_close(est.detach(), want)


@pytest.mark.parametrize("dist", DISTS)
def test_kernel_probe_statistics(dist):
    n_rows, d = 256, 257
    v = H._probes_op(torch.empty(n_rows, d), 1, 2024, dist).double().flatten()
    n = v.numel()
    assert abs(v.mean().item()) < 5 / math.sqrt(n)  # E v = 0, Var v = 1
    # second moment 1 (exactly for Rademacher); Var(v²) = 2 for Gaussian
    assert abs((v * v).mean().item() - 1) < 5 * math.sqrt(2 / n)
    # neighbours (within a row and across rows) are uncorrelated
    assert abs((v[1:] * v[:-1]).mean().item()) < 5 / math.sqrt(n)
    assert abs((v[d:] * v[:-d]).mean().item()) < 5 / math.sqrt(n)
    if dist == "gaussian":  # fourth moment 3
        assert abs((v**4).mean().item() - 3) < 5 * math.sqrt(96 / n)
    # a different seed gives (essentially) independent probes
    w = H._probes_op(torch.empty(n_rows, d), 1, 2025, dist).double().flatten()
    assert abs((v * w).mean().item()) < 5 / math.sqrt(n)


def test_reference_probes_reproducible_and_distributed():
    x = torch.empty(300, 100)
    r1 = reference.hutchinson_probes(x, 2, 5, "rademacher")
    assert torch.equal(r1, reference.hutchinson_probes(x, 2, 5, "rademacher"))
    assert bool(((r1 == 1) | (r1 == -1)).all())
    assert abs(r1.double().mean().item()) < 5 / math.sqrt(r1.numel())
    g = reference.hutchinson_probes(x, 2, 5, "gaussian").double()
    assert abs(g.var().item() - 1) < 5 * math.sqrt(2 / g.numel())


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    ("hutch-ok", "valid", C.hutch, dict, OK),
    ("hutch-list", "type", C.hutch, lambda: {"outputs": [[1.0] * D] * B}, TE("outputs")),
    (
        "hutch-int",
        "dtype",
        C.hutch,
        lambda: {"inputs": torch.zeros(B, D, dtype=torch.int64)},
        TE("inputs"),
    ),
    (
        "hutch-dtype-mix",
        "dtype",
        C.hutch,
        lambda: {"outputs": t(B, D, dtype=torch.float32).requires_grad_(True)},
        TE("outputs"),
    ),
    (
        "hutch-shape",
        "shape",
        C.hutch,
        lambda: {"outputs": t(B, D + 1).requires_grad_(True)},
        VE("outputs"),
    ),
    (
        "hutch-rank",
        "shape",
        C.hutch,
        lambda: C.hutch_io(t(B, D, 1), lambda i: i.squeeze(-1) * 2.0),
        VE("inputs"),
    ),
    ("hutch-empty", "empty", C.hutch, lambda: C.hutch_io(t(0, D), lambda i: i * 2.0), VE("inputs")),
    (
        "hutch-device",
        "device",
        C.hutch,
        lambda: {"outputs": t(B, D, device=META).requires_grad_(True)},
        VE("outputs"),
    ),
    ("hutch-nograd", "option", C.hutch, lambda: {"inputs": t(B, D)}, VE("inputs")),
    ("hutch-probes0", "option", C.hutch, lambda: {"n_probes": 0}, VE("n_probes")),
    ("hutch-probes-neg", "option", C.hutch, lambda: {"n_probes": -3}, VE("n_probes")),
    ("hutch-probes-float", "option", C.hutch, lambda: {"n_probes": 2.0}, TE("n_probes")),
    ("hutch-dist", "option", C.hutch, lambda: {"dist": "uniform"}, VE("dist")),
    ("hutch-seed-neg", "option", C.hutch, lambda: {"seed": -1}, VE("seed")),
    ("hutch-seed-float", "option", C.hutch, lambda: {"seed": 1.5}, TE("seed")),
    ("hutch-seed-big", "option", C.hutch, lambda: {"seed": 2**63}, VE("seed")),
    (
        "hutch-list-inputs",
        "type",
        C.hutch,
        lambda: {"inputs": [[1.0] * D] * B, "outputs": t(B, D).requires_grad_(True)},
        TE("inputs"),
    ),
    ("hutch-rank-1d", "shape", C.hutch, lambda: C.hutch_io(t(D), lambda i: i * 2.0), VE("outputs")),
    ("hutch-outputs-nograd", "option", C.hutch, lambda: {"outputs": t(B, D)}, VE("outputs")),
    *C.dtype_rows("hutch", C.hutch, "outputs", (B, D)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _nf_hutch(v):
    inputs = C.bad_datum(seeded(1, B, D), v).requires_grad_(True)
    return vsm.hutchinson_trace(torch.tanh(inputs) * inputs, inputs, n_probes=2, seed=1)


NONFINITE_ROWS = {"hutchinson_trace": _nf_hutch}
test_non_finite_datum_stays_in_its_row = C.non_finite_test(NONFINITE_ROWS)


def _l_hutch(lay):
    inputs = lay(seeded(1, B, D)).requires_grad_(True)
    return vsm.hutchinson_trace(torch.tanh(inputs) * inputs, inputs, n_probes=3, seed=7)


LAYOUT_ROWS = {"hutchinson_trace": _l_hutch}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_hutch(e):
    # inputs is the stride-0 view itself (a clone of it would be contiguous again)
    leaf = seeded(1, 1, D).requires_grad_(True)
    inputs = leaf.expand(B, D) if e else leaf.expand(B, D).contiguous()
    return vsm.hutchinson_trace(torch.sin(inputs), inputs, n_probes=2, seed=1)


EXPANDED_ROWS = {"hutch": _x_hutch}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)
