"""vsm's fused ops: validation, dispatch (see :mod:`vsm._dispatch`) and the ``torch.library``
custom ops that wrap the Triton kernels with fake (meta) implementations and autograd formulas, so
they run eagerly and inside ``torch.compile(fullgraph=True)``."""

from .gaussian_terms import gaussian_terms
from .hutchinson import hutchinson_probes, hutchinson_trace
from .posterior_fd import posterior_fd

__all__ = ["gaussian_terms", "hutchinson_probes", "hutchinson_trace", "posterior_fd"]
