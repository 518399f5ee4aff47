"""vsm: fused score kernels for training and evaluating VAEs with (variational) score matching.

Public API (``shared/spec/API.md``):

- fused ops: :func:`posterior_fd`, :func:`gaussian_terms`, :func:`hutchinson_trace`;
- Rust engine: :func:`is_log_evidence`, :class:`ISAccumulator`, :func:`is_evaluate`
  (:mod:`vsm.importance`), :mod:`vsm.toy`;
- :mod:`vsm.reference`: the pure-torch twins every fused op is checked against;
- :func:`backend`: force "reference", "triton" or "rust" dispatch inside a ``with`` block.
"""

from __future__ import annotations

import importlib.metadata

from . import objectives, reference, score, toy
from ._dispatch import backend
from .importance import ISAccumulator, is_evaluate, is_log_evidence
from .models import MLPVAE, ConvVAE, GaussianVAE
from .ops.gaussian_terms import gaussian_terms  # the function, not the module
from .ops.hutchinson import hutchinson_trace
from .ops.posterior_fd import posterior_fd
from .reference import GaussianTerms
from .train import TrainConfig, Trainer

# One version source: the Cargo workspace's, which maturin writes into the installed metadata.
__version__: str = importlib.metadata.version("vsm")

__all__ = [
    "MLPVAE",
    "ConvVAE",
    "GaussianTerms",
    "GaussianVAE",
    "ISAccumulator",
    "TrainConfig",
    "Trainer",
    "__version__",
    "backend",
    "gaussian_terms",
    "hutchinson_trace",
    "is_evaluate",
    "is_log_evidence",
    "objectives",
    "posterior_fd",
    "reference",
    "score",
    "toy",
]
