"""A/B of the fused kernels' thread team: each Rust core at 1 and 2 threads, every call preceded by a
parallel torch op (``exp`` of 2**20 floats), as in a training step.

Run it twice and compare: ``python benches/bench_pool.py`` (torch's OpenMP team, the default where
torch runs on OpenMP) and ``VSM_RUST_POOL=rayon python benches/bench_pool.py`` (the rayon pool).
Prints ms per (torch op + kernel) pair, min of 9 rounds of 200 calls.
"""

import time

import numpy as np
import torch
from vsm import _core

torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)


def r(*s):
    return torch.randn(*s, generator=g).numpy()


z, g_ = r(4, 1024, 100), r(4, 1024, 100)
mu, lv = r(1024, 100), r(1024, 100) * 0.1
x, xm = r(100, 1024), r(5, 100, 1024)
u = r(4, 100, 1024)
big = torch.randn(1 << 20)
go = np.ones((4, 1024), np.float32)
cases = {
    "pfd fwd 4x1024x100": lambda n: _core.posterior_fd_forward(z, mu, lv, g_, n),
    "pfd bwd": lambda n: _core.posterior_fd_backward(go, z, mu, lv, g_, n),
    "gt fwd 5x100x1024": lambda n: _core.gaussian_terms_forward(x, xm, 0.0, n),
    "hutch dot 4x100x1024": lambda n: _core.hutchinson_dot(u, 1, 0, n),
    "torch op only": lambda n: None,
}


def bench(f, n, reps=200):
    best = 1e9
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(reps):
            big.exp()
            f(n)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e3


for name, f in cases.items():
    a = bench(f, 1)
    b = bench(f, 2)
    print(f"torch exp(2^20) + {name:22} serial {a:.3f} ms  2 threads {b:.3f} ms")
