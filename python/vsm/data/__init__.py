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

Layout: :mod:`.toys` (the 2-D toys), :mod:`.mnist1d`, :mod:`.images` (IDX files, digits); this
module holds the names, :class:`Dataset` and :func:`load_dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import _validate as V
from .images import _digits, load_idx_images, read_idx
from .mnist1d import mnist1d
from .toys import _TOYS, TOY_DATASETS, sample_toy

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

IDX_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist")
"""Data sets read from IDX files in a local folder (``data_dir``)."""
CONV_DATASETS: tuple[str, ...] = ("digits", *IDX_DATASETS)
"""The (C, 32, 32) image data sets (the conv VAE's input; :attr:`Dataset.is_image`)."""
IMAGE_DATASETS: tuple[str, ...] = ("digits", "mnist1d", *IDX_DATASETS)
DATASETS: tuple[str, ...] = TOY_DATASETS + IMAGE_DATASETS

_MASK63 = (1 << 63) - 1


def _generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for (seed, stream), streams being statistically independent."""
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xBF58476D1CE4E5B9 + 1) & _MASK63
    return torch.Generator().manual_seed(mixed)


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
