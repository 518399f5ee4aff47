"""The Hutchinson probe stream v2 (documented in ``vsm/kernels/hutchinson.py``), checked against an
independent pure-Python Philox-4x32-10: Rademacher probes bit for bit, Gaussian probes up to the
float32 rounding of log/cos/sin/sqrt. The Rust CPU kernels implement the same stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from vsm.ops import hutchinson as H

M32 = 0xFFFFFFFF


def philox4x32_10(seed: int, offset: int) -> tuple[int, int, int, int]:
    """Triton's ``randint4x(seed, offset)``: key (seed lo, seed hi), counter (offset lo, offset hi,
    0, 0), 10 rounds."""
    k0, k1 = seed & M32, (seed >> 32) & M32
    c0, c1, c2, c3 = offset & M32, (offset >> 32) & M32, 0, 0
    for _ in range(10):
        p0, p2 = 0xCD9E8D57 * c2, 0xD2511F53 * c0
        c0, c1, c2, c3 = (p0 >> 32) ^ c1 ^ k0, p0 & M32, (p2 >> 32) ^ c3 ^ k1, p2 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def rademacher(seed: int, p: int, b: int, d: int) -> np.ndarray:
    n128 = -(-d // 128)
    out = np.empty((p, b, d))
    for r in range(p * b):
        for g in range(n128):
            words = philox4x32_10(seed, r * n128 + g)
            for j in range(min(128, d - 128 * g)):
                bit = (words[j // 32] >> (j % 32)) & 1
                out.reshape(-1, d)[r, 128 * g + j] = 1 - 2 * bit
    return out


def _uniform(x: int) -> np.float32:
    x = x - (1 << 32) if x >= 1 << 31 else x  # bitcast to int32
    x = ~x if x < 0 else x
    return np.float32(x) * np.float32(4.6566127342e-10)


def gaussian(seed: int, p: int, b: int, d: int) -> np.ndarray:
    n4 = -(-d // 4)
    out = np.empty((p, b, d))
    for r in range(p * b):
        for g in range(n4):
            u = [_uniform(w) for w in philox4x32_10(seed, r * n4 + g)]
            normals = []
            for u1, u2 in ((u[0], u[1]), (u[2], u[3])):
                rad = math.sqrt(-2.0 * math.log(max(1e-7, float(u1))))
                th = float(np.float32(6.283185307179586) * u2)
                normals += [rad * math.cos(th), rad * math.sin(th)]
            for j in range(min(4, d - 4 * g)):
                out.reshape(-1, d)[r, 4 * g + j] = normals[j]
    return out


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5, 2**40 + 3, 2**63 - 1])
@pytest.mark.parametrize(("p", "b", "d"), [(1, 1, 1), (2, 3, 5), (1, 2, 130), (2, 1, 300)])
def test_rademacher_probes_bit_exact(seed, p, b, d):
    v = H._probes_op(torch.empty(b, d, dtype=torch.float64), p, seed, "rademacher")
    np.testing.assert_array_equal(v.numpy(), rademacher(seed, p, b, d))


@pytest.mark.parametrize("seed", [0, 2**40 + 3])
@pytest.mark.parametrize(("p", "b", "d"), [(1, 1, 3), (2, 3, 9)])
def test_gaussian_probes_match_stream(seed, p, b, d):
    v = H._probes_op(torch.empty(b, d, dtype=torch.float32), p, seed, "gaussian")
    np.testing.assert_allclose(v.double().numpy(), gaussian(seed, p, b, d), rtol=2e-6, atol=2e-6)


def test_known_first_words():
    """Pinned values of the stream (seed 42, row 0): x0 of Philox(42, 0) = 0x9CEAF053, so the
    first eight probes are its eight lowest bits mapped by 1 − 2·bit."""
    assert philox4x32_10(42, 0)[0] == 0x9CEAF053
    v = H._probes_op(torch.empty(1, 40), 1, 42, "rademacher")[0, 0]
    assert v[:8].tolist() == [-1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
