"""vsm: fused score kernels for training and evaluating VAEs with (variational) score matching.

Public API (``shared/spec/API.md``):

- fused ops: :func:`posterior_fd` (more in later modules);
- Rust engine: :func:`is_log_evidence`;
- :mod:`vsm.reference`: the pure-torch twins every fused op is checked against;
- :func:`backend`: force "reference", "triton" or "rust" dispatch inside a ``with`` block.
"""

from __future__ import annotations

from . import objectives, reference, score, toy
from ._dispatch import backend
from .evidence import is_log_evidence
from .importance import ISAccumulator, is_evaluate
from .models import MLPVAE, ConvVAE, GaussianVAE
from .ops import gaussian_terms, posterior_fd
from .ops.hutchinson import hutchinson_trace
from .reference import GaussianTerms
from .train import TrainConfig, Trainer

__version__ = "0.1.0"

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
