"""MNIST-1D (Greydanus 2020) generated offline from the published recipe: :func:`mnist1d`."""

from __future__ import annotations

import numpy as np

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
