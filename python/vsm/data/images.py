"""Fixed image data sets, read offline: IDX files (MNIST, Fashion-MNIST; :func:`read_idx`,
:func:`load_idx_images`) and scikit-learn's bundled 8×8 digits resized to 32×32."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from .._errors import BadFileError

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw, into a NumPy array.

    Raises:
        OSError: the file cannot be opened.
        BadFileError: (a ValueError) not an IDX file: bad magic number, unknown type code, a
            header or body shorter than it says, a broken gzip stream.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with open(path, "rb"):  # missing / unreadable: an OSError naming the file
        pass
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise BadFileError(path, f"not an IDX file (broken gzip data: {e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise BadFileError(path, "not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise BadFileError(path, f"not an IDX file (unknown type code {code:#x})")
    if len(data) < 4 + 4 * ndim:
        raise BadFileError(path, f"truncated IDX file (a header of {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[code])
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims) * dt.itemsize:
        raise BadFileError(
            path,
            f"damaged IDX file ({len(body)} data bytes; the header says {dims} of "
            f"{dt.itemsize} bytes)",
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
        path = _find(folder, stem)
        arr = read_idx(path)
        if arr.ndim != 3:
            raise BadFileError(
                path, f"IDX images of shape {arr.shape}, expected (N, H, W)", arg="data_dir"
            )
        t = torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(1)
        h, w = t.shape[-2:]
        if h > 32 or w > 32:
            raise BadFileError(path, f"IDX images of {h}×{w}, larger than 32×32", arg="data_dir")
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
