"""Datasets for vsm's experiments, all generated or read offline and seedable.

2-D toys (``TOY_DATASETS``; MATH.md §9): the paper's "sparse" and "mixture" recipes plus the
standard "rings", "moons", "pinwheel", "checkerboard" and "8gaussians". Training batches are drawn
fresh from the generating process; with ``epoch_size`` (:meth:`Dataset.batch`) they are instead
the authors' scheme (``run_bilevel_toy.py``): ``epoch_size`` new points per epoch (100 000), shuffled
and cut into ``epoch_size // batch_size`` minibatches (100 of 1000). The test set is a fixed draw of
``n_test`` points per seed.

Images and sequences (``IMAGE_DATASETS``), fixed train/test tensors:
- "digits": scikit-learn's bundled 8×8 digits, scaled to [0, 1] and bilinearly resized to
  1×32×32 (1497 train / 300 test);
- "mnist1d": MNIST-1D sequences (Greydanus 2020) generated here from the published recipe
  (10 templates of length 12, random padding, scaling, translation, correlated + iid noise,
  shear, resampled to length 40; 4000 train / 1000 test). Values are real (not in [0, 1]); the
  datum shape is (40,) and it is modelled with the MLP VAE;
- "mnist" / "fashion-mnist": IDX files (``train-images-idx3-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``) read from a local folder, zero-padded 28 → 32, in [0, 1].

Every batch is a deterministic function of (seed, step) — :meth:`Dataset.batch` — so training can
be resumed from a checkpoint without saving iterator state.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import _validate as V

__all__ = [
    "CONV_DATASETS",
    "DATASETS",
    "IDX_DATASETS",
    "IMAGE_DATASETS",
    "TOY_DATASETS",
    "Dataset",
    "load_dataset",
    "load_idx_images",
    "mnist1d",
    "read_idx",
    "sample_toy",
]

_MASK63 = (1 << 63) - 1


def _generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for (seed, stream), streams being statistically independent."""
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xBF58476D1CE4E5B9 + 1) & _MASK63
    return torch.Generator().manual_seed(mixed)


# --------------------------------------------------------------------------------------- 2-D toys


def _sparse(n: int, g: torch.Generator) -> torch.Tensor:
    u = torch.randn(n, 2, generator=g, dtype=torch.float64)
    u = torch.sign(u) * u.abs() ** 2
    a = torch.tensor([[1.0, 0.3], [-0.3, 1.0]], dtype=torch.float64) / 10
    return u @ a + 0.01 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _mixture(n: int, g: torch.Generator) -> torch.Tensor:
    half = n // 2
    centres = torch.cat([torch.full((half, 2), -0.5), torch.full((n - half, 2), 0.5)]).to(
        torch.float64
    )
    x = centres + 0.2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x[torch.randperm(n, generator=g)]


def _rings(n: int, g: torch.Generator) -> torch.Tensor:
    radius = 0.25 * (1 + torch.randint(0, 4, (n,), generator=g)).to(torch.float64)
    angle = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
    return x + 0.02 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x1 = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    x2 = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    x = torch.stack([x1 - 0.5, x2 - 0.25], -1) / 1.5
    return x + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _pinwheel(n: int, g: torch.Generator) -> torch.Tensor:
    n_arms, radial_sd, tangential_sd, rate = 5, 0.3, 0.05, 0.25
    arm = torch.randint(0, n_arms, (n,), generator=g).to(torch.float64)
    feats = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [radial_sd, tangential_sd], dtype=torch.float64
    )
    feats[:, 0] += 1.0
    angle = arm * 2 * math.pi / n_arms + rate * torch.exp(feats[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], -1)
    return x / 2


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    x2 = torch.rand(n, generator=g, dtype=torch.float64) - 2 * torch.randint(
        0, 2, (n,), generator=g
    ).to(torch.float64)
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], -1) / 2


def _eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g).to(torch.float64)
    angle = k * (2 * math.pi / 8)
    centres = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)


_TOYS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "sparse": _sparse,
    "mixture": _mixture,
    "rings": _rings,
    "moons": _moons,
    "pinwheel": _pinwheel,
    "checkerboard": _checkerboard,
    "8gaussians": _eight_gaussians,
}
TOY_DATASETS: tuple[str, ...] = tuple(_TOYS)
IDX_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist")
"""Data sets read from IDX files in a local folder (``data_dir``)."""
CONV_DATASETS: tuple[str, ...] = ("digits", *IDX_DATASETS)
"""The (C, 32, 32) image data sets (the conv VAE's input; :attr:`Dataset.is_image`)."""
IMAGE_DATASETS: tuple[str, ...] = ("digits", "mnist1d", *IDX_DATASETS)
DATASETS: tuple[str, ...] = TOY_DATASETS + IMAGE_DATASETS


def sample_toy(
    name: str, n: int, *, generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Tensor:
    """Draw ``n`` points (n, 2) float32 from the 2-D toy distribution ``name``.

    Args:
        name: one of ``TOY_DATASETS``.
        n: number of points.
        generator: CPU torch generator to draw from (takes precedence over ``seed``).
        seed: seed for a fresh generator when ``generator`` is None (default 0).
    """
    V.choice("name", name, TOY_DATASETS)
    n = V.positive_int("n", n)
    seed = V.seed("seed", seed)
    g = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
    return _TOYS[name](n, g).to(torch.float32)


# ------------------------------------------------------------------------------------- MNIST-1D

_MNIST1D_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)


def _mnist1d_templates() -> np.ndarray:
    x = _MNIST1D_TEMPLATES - _MNIST1D_TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    x = x - x[:, :1]  # every pattern starts at 0
    return x / 6.0


def _interp(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """1-D Gaussian filter with reflecting boundaries (scipy.ndimage.gaussian_filter1d's default)."""
    radius = int(4 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x, radius, mode="symmetric")
    return np.convolve(padded, k, mode="valid")


def mnist1d(n: int = 5000, *, seed: int = 42, length: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Generate MNIST-1D sequences following Greydanus (2020)'s recipe.

    Each sequence takes one of 10 templates (length 12), pads it with 36–60 zeros, dilates it to
    length 72, scales it by 1 ± 0.2, translates it cyclically by up to 47 steps, fills the zero
    (padding) region with correlated noise (N(0, 0.25²) smoothed with a Gaussian of SD 2), adds iid
    N(0, 0.02²) noise, shears it (a linear ramp of slope ±0.375) and resamples to ``length``.

    Args:
        n: number of sequences; labels cycle through 0..9 before shuffling.
        seed: seed of the NumPy generator.
        length: final sequence length (40 in MNIST-1D).

    Returns:
        ``(x, y)``: x (n, length) float32, y (n,) int64 labels.
    """
    rng = np.random.default_rng(seed)
    templates = _mnist1d_templates()
    tlen, pad_lo, pad_hi = 12, 36, 60
    xs, ys = [], []
    for i in range(n):
        y = i % 10
        p = pad_lo + int(rng.integers(0, pad_hi - pad_lo + 1))
        x = np.concatenate([templates[y] + 1e-8, np.zeros(p)])
        x = _interp(x, tlen + pad_hi)
        x = x * (1 + 0.4 * (rng.random() - 0.5))
        k = int(rng.integers(0, 48))
        x = np.concatenate([x[len(x) - k :], x[: len(x) - k]])
        mask = x != 0
        noise = _gaussian_smooth(0.25 * rng.standard_normal(len(x)), 2.0)
        x = np.where(mask, x, noise)
        x = x + 0.02 * rng.standard_normal(len(x))
        x = x - 0.75 * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
        xs.append(_interp(x, length))
        ys.append(y)
    perm = rng.permutation(n)
    return np.stack(xs)[perm].astype(np.float32), np.asarray(ys, dtype=np.int64)[perm]


# ------------------------------------------------------------------------------------------ IDX

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw, into a NumPy array.

    Raises:
        ValueError: bad magic number, unknown type code, or a size that does not match the header.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path: {path} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"path: {path} has unknown IDX type code {code:#x}")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[code])
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims) * dt.itemsize:
        raise ValueError(
            f"path: {path} holds {len(body)} data bytes, header says {dims} of {dt.itemsize} bytes"
        )
    return np.frombuffer(body, dtype=dt).reshape(dims)


def _find(folder: str, stem: str) -> str:
    dotted = stem.replace("-idx3", ".idx3")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"data_dir: no {stem}[.gz] in {folder}")


def load_idx_images(data_dir: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST / Fashion-MNIST images from a folder of IDX files, as (N, 1, 32, 32) float32 in [0, 1].

    Reads ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte`` (optionally ``.gz``) and
    zero-pads each 28×28 image by 2 pixels on every side. Returns ``(train, test)``.
    """
    folder = os.fspath(data_dir)
    out = []
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        arr = read_idx(_find(folder, stem))
        if arr.ndim != 3:
            raise ValueError(f"data_dir: {stem} has shape {arr.shape}, expected (N, H, W)")
        t = torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(1)
        h, w = t.shape[-2:]
        if h > 32 or w > 32:
            raise ValueError(f"data_dir: {stem} images are {h}×{w}, larger than 32×32")
        top, left = (32 - h) // 2, (32 - w) // 2
        out.append(F.pad(t, (left, 32 - w - left, top, 32 - h - top)))
    return out[0], out[1]


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    x = x[perm]
    return x[300:], x[:300]


# -------------------------------------------------------------------------------------- Dataset


@dataclass
class Dataset:
    """A training source and a fixed test set.

    Attributes:
        name: dataset name.
        data_shape: shape of one datum.
        test: (n_test, *data_shape) float32 test set.
        train: (n_train, *data_shape) fixed training set, or None for generated (toy) data.
        sampler: for generated data, ``sampler(n, generator) -> (n, *data_shape)``.
    """

    name: str
    data_shape: tuple[int, ...]
    test: torch.Tensor
    train: torch.Tensor | None = None
    sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None
    _perm_cache: dict = field(default_factory=dict, repr=False)

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) data (the conv VAE's input)."""
        return len(self.data_shape) == 3

    def steps_per_epoch(self, batch_size: int, *, epoch_size: int | None = None) -> int:
        """Minibatches per pass over the training set (toys: 100, as in the authors' code, or
        ``epoch_size // batch_size`` with :meth:`batch`'s ``epoch_size``)."""
        if self.train is None:
            return 100 if epoch_size is None else max(1, epoch_size // batch_size)
        return max(1, self.train.shape[0] // batch_size)

    def batch(
        self, step: int, batch_size: int, seed: int, *, epoch_size: int | None = None
    ) -> torch.Tensor:
        """The training minibatch of iteration ``step`` (a pure function of step, size and seed).

        Toys draw ``batch_size`` fresh points; fixed sets walk an epoch-wise random permutation
        (incomplete last batches dropped; batch_size is capped at the training-set size).

        ``epoch_size`` (generated data only): the authors' 2-D scheme instead — every epoch draws
        ``epoch_size`` fresh points (e.g. 100 000), shuffles them, and its
        ``epoch_size // batch_size`` iterations take consecutive slices (the rest is dropped, as
        the authors' ``DataLoader(drop_last=True)``). The pool of the current epoch is cached.

        Raises:
            ValueError: ``epoch_size`` for a fixed data set, or smaller than ``batch_size``.
        """
        if epoch_size is not None:
            if self.train is not None:
                raise ValueError(f"epoch_size: only for generated (toy) data, not {self.name!r}")
            epoch_size = V.positive_int("epoch_size", epoch_size)
            if epoch_size < batch_size:
                raise ValueError(
                    f"epoch_size: {epoch_size} points cannot fill a minibatch of {batch_size}"
                )
            return self._pool_batch(step, batch_size, seed, epoch_size)
        if self.train is None:
            assert self.sampler is not None
            return self.sampler(batch_size, _generator(seed, 2 * step + 2)).to(torch.float32)
        n = self.train.shape[0]
        bs = min(batch_size, n)
        spe = max(1, n // bs)
        epoch, i = divmod(step, spe)
        key = (seed, epoch)
        if key not in self._perm_cache:
            self._perm_cache.clear()
            self._perm_cache[key] = torch.randperm(n, generator=_generator(seed, 2 * epoch + 1))
        idx = self._perm_cache[key][i * bs : (i + 1) * bs]
        return self.train[idx]

    def _pool_batch(self, step: int, batch_size: int, seed: int, epoch_size: int) -> torch.Tensor:
        """Minibatch ``step`` of the per-epoch pools (:meth:`batch` with ``epoch_size``)."""
        assert self.sampler is not None
        spe = epoch_size // batch_size
        epoch, i = divmod(step, spe)
        key = ("pool", seed, epoch, epoch_size)
        if key not in self._perm_cache:
            self._perm_cache.clear()
            g = _generator(seed, -(epoch + 1))  # negative streams: apart from batch()'s others
            pool = self.sampler(epoch_size, g).to(torch.float32)
            self._perm_cache[key] = pool[torch.randperm(epoch_size, generator=g)]
        return self._perm_cache[key][i * batch_size : (i + 1) * batch_size]


def load_dataset(
    name: str, *, seed: int = 0, n_test: int = 5000, data_dir: str | os.PathLike | None = None
) -> Dataset:
    """Build the dataset ``name`` (one of ``DATASETS``).

    Args:
        name: dataset name.
        seed: toys: seed of the test-set draw (training batches use :meth:`Dataset.batch`'s seed);
            mnist1d: seed of the generator (the split is fixed by it).
        n_test: toys: number of test points (paper: 5000).
        data_dir: folder of IDX files, required for "mnist" and "fashion-mnist".
    """
    if name in _TOYS:
        test = sample_toy(name, n_test, generator=_generator(seed, 0))
        fn = _TOYS[name]
        return Dataset(name, (2,), test, sampler=lambda n, g: fn(n, g).to(torch.float32))
    if name == "digits":
        train, test = _digits()
        return Dataset(name, (1, 32, 32), test, train=train)
    if name == "mnist1d":
        x, _ = mnist1d(5000, seed=seed)
        t = torch.from_numpy(x)
        return Dataset(name, (40,), t[4000:], train=t[:4000])
    if name in IDX_DATASETS:
        if data_dir is None:
            raise ValueError(f"data_dir: required for {name!r} (a folder with its IDX files)")
        train, test = load_idx_images(data_dir)
        return Dataset(name, (1, 32, 32), test, train=train)
    raise ValueError(f"name: unknown dataset {name!r}; expected one of {DATASETS}")
