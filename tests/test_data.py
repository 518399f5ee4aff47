"""Tests of vsm.data: toy recipes, determinism, image sets, the IDX reader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from vsm import data as D


@pytest.mark.parametrize("name", D.TOY_DATASETS)
def test_toys_seedable(name):
    a = D.sample_toy(name, 300, seed=3)
    b = D.sample_toy(name, 300, seed=3)
    c = D.sample_toy(name, 300, seed=4)
    assert a.shape == (300, 2) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_sparse_recipe_statistics():
    x = D.sample_toy("sparse", 200_000, seed=0).double()
    # u = sign(u)|u|², E u² = E g⁴ = 3; x = uA: Var x1 = 3(0.1² + 0.03²) + 1e-4
    var = 3 * (0.01 + 0.0009) + 1e-4
    torch.testing.assert_close(
        x.var(0), torch.full((2,), var, dtype=torch.float64), rtol=0.03, atol=0
    )
    cov = float(((x[:, 0] - x[:, 0].mean()) * (x[:, 1] - x[:, 1].mean())).mean())
    assert abs(cov - 3 * (0.1 * 0.03 - 0.03 * 0.1)) < 2e-3


def test_mixture_recipe_statistics():
    x = D.sample_toy("mixture", 100_000, seed=0).double()
    lower = x[:, 0] + x[:, 1] < 0
    assert abs(float(lower.double().mean()) - 0.5) < 0.01
    torch.testing.assert_close(
        x[lower].mean(0), torch.full((2,), -0.5, dtype=torch.float64), atol=0.01, rtol=0
    )
    assert abs(float(x[lower].std(0).mean()) - 0.2) < 0.01


def test_batches_are_a_function_of_seed_and_step():
    d = D.load_dataset("mixture", n_test=50)
    torch.testing.assert_close(d.batch(7, 16, 1), d.batch(7, 16, 1))
    assert not torch.equal(d.batch(7, 16, 1), d.batch(8, 16, 1))
    assert d.test.shape == (50, 2)
    img = D.Dataset("t", (3,), test=torch.zeros(1, 3), train=torch.arange(30.0).reshape(10, 3))
    epoch = torch.cat([img.batch(s, 5, 0) for s in range(2)])
    assert sorted(epoch[:, 0].tolist()) == sorted(img.train[:, 0].tolist())  # a permutation
    torch.testing.assert_close(img.batch(1, 5, 0), img.batch(1, 5, 0))


def test_digits_and_mnist1d():
    d = D.load_dataset("digits")
    assert d.train.shape[1:] == (1, 32, 32) and d.test.shape == (300, 1, 32, 32)
    assert float(d.train.min()) >= 0 and float(d.train.max()) <= 1
    x, y = D.mnist1d(50, seed=1)
    assert x.shape == (50, 40) and y.shape == (50,)
    assert set(y.tolist()) == set(range(10))
    x2, _ = D.mnist1d(50, seed=1)
    np.testing.assert_array_equal(x, x2)
    assert np.isfinite(x).all() and 0.05 < x.std() < 1.0


def _write_idx(path, arr, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob = header + arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_loader(tmp_path, compress):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (4, 28, 28))
    test = rng.integers(0, 256, (2, 28, 28))
    sfx = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", train, compress)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", test, compress)
    np.testing.assert_array_equal(D.read_idx(tmp_path / f"train-images-idx3-ubyte{sfx}"), train)
    d = D.load_dataset("fashion-mnist", data_dir=tmp_path)
    assert d.train.shape == (4, 1, 32, 32) and d.test.shape == (2, 1, 32, 32)
    np.testing.assert_allclose(d.train[:, 0, 2:30, 2:30].numpy(), train / 255.0, rtol=1e-6)
    assert float(d.train[:, :, :2].abs().max()) == 0.0
    assert float(d.train[:, :, :, 30:].abs().max()) == 0.0


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="^path"):
        D.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="^path"):
        D.read_idx(short)
    with pytest.raises(ValueError, match="^data_dir"):
        D.load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="^data_dir"):
        D.load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match="^name"):
        D.load_dataset("cifar")
