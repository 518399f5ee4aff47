"""Tests of vsm._validate, the one home of vsm's argument checks: the error contract (TypeError for
a wrong type, ValueError for a wrong value, the message starting with the argument's name)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vsm import _validate as V


@pytest.mark.parametrize("v", [1, 7, np.int64(3), np.int32(1), 2**70])
def test_positive_int_accepts_ints(v):
    out = V.positive_int("n", v)
    assert out == int(v) and type(out) is int


@pytest.mark.parametrize(
    "v, exc",
    [
        (0, ValueError),
        (-2, ValueError),
        (np.int64(0), ValueError),
        (True, TypeError),
        (False, TypeError),
        (np.bool_(True), TypeError),
        (1.0, TypeError),
        ("3", TypeError),
        (None, TypeError),
        (torch.tensor(3), TypeError),
    ],
)
def test_positive_int_contract(v, exc):
    with pytest.raises(exc, match="^n: "):
        V.positive_int("n", v)


def test_positive_int_minimum():
    assert V.positive_int("n", 3, minimum=3) == 3
    with pytest.raises(ValueError, match="^n: expected an int >= 3, got 2"):
        V.positive_int("n", 2, minimum=3)


@pytest.mark.parametrize("v", [None, 0, 1, V.SEED_BOUND - 1, np.uint64(5)])
def test_seed_accepts(v):
    out = V.seed("seed", v)
    assert out == (None if v is None else int(v))
    if out is not None:
        torch.Generator().manual_seed(out)  # every accepted seed seeds a torch generator


@pytest.mark.parametrize(
    "v, exc",
    [
        (-1, ValueError),
        (V.SEED_BOUND, ValueError),
        (2**64, ValueError),
        (1.0, TypeError),
        (True, TypeError),
        ("0", TypeError),
    ],
)
def test_seed_contract(v, exc):
    with pytest.raises(exc, match="^seed: "):
        V.seed("seed", v)


def test_choice():
    assert V.choice("proposal", "q", ("q", "prior")) == "q"
    for bad in ("Q", "", None, 1, ("q",)):
        with pytest.raises(ValueError, match="^proposal: expected one of 'q', 'prior'"):
            V.choice("proposal", bad, ("q", "prior"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_array_from_torch(dtype):
    t = torch.arange(6, dtype=dtype).reshape(2, 3)[:, ::2]  # non-contiguous
    a = V.array("x", t, ndim=2)
    assert a.dtype == np.float64 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, t.double().numpy())
    kept = V.array("x", t, keep_f32=True)
    assert kept.dtype == (np.float32 if dtype == torch.float32 else np.float64)


def test_array_no_copy_when_already_float64_c_order():
    a = np.zeros((2, 3))
    assert V.array("x", a, ndim=2) is a


@pytest.mark.parametrize(
    "a, kw, exc",
    [
        (np.zeros((2, 3), dtype=np.int64), {}, TypeError),
        ([[0.0, 1.0]], {}, TypeError),
        (torch.zeros(2, 3, dtype=torch.int32), {}, TypeError),
        (torch.zeros(2, 3, dtype=torch.bfloat16), {"real": True}, TypeError),
        (np.zeros(3, dtype=np.float16), {"real": True}, TypeError),
        (np.zeros(3, dtype=bool), {"real": True}, TypeError),
        (np.zeros(3, dtype=complex), {"real": True}, TypeError),
        ("abc", {"real": True}, TypeError),
        (np.zeros(3), {"ndim": 2}, ValueError),
        (torch.zeros(2, 3, device="meta"), {}, ValueError),
    ],
)
def test_array_contract(a, kw, exc):
    with pytest.raises(exc, match="^x: "):
        V.array("x", a, **kw)


def test_array_real_takes_lists_ints_and_keeps_0d():
    assert V.array("x", [[1, 2]], real=True).dtype == np.float64
    assert V.array("x", torch.tensor([1, 2]), real=True).tolist() == [1.0, 2.0]
    assert V.array("x", 2.5, real=True).shape == ()


def test_resolve_seed_draws_from_torch_global_rng():
    assert V.resolve_seed("seed", 5) == 5
    torch.manual_seed(0)
    a = V.resolve_seed("seed", None)
    torch.manual_seed(0)
    assert V.resolve_seed("seed", None) == a and 0 <= a < V.SEED_BOUND
    with pytest.raises(ValueError, match="^seed: "):
        V.resolve_seed("seed", -1)
