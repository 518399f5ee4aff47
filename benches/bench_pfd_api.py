"""vsm.posterior_fd (default CPU path) vs torch.compile of the reference at N=4 B=1024 L=100.

Interleaved rounds in one process, min over rounds of the mean of 30 calls, fwd (no grad) and
fwd+bwd (``.sum().backward()``), with the minor page faults per call.

Run: ``env -u TRITON_INTERPRET python benches/bench_pfd_api.py THREADS``.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import torch
import vsm
from vsm import reference


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    gen = torch.Generator().manual_seed(0)
    n, b, l = 4, 1024, 100

    def leaf(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=gen).requires_grad_(True)

    z, mu, lv, g = leaf(n, b, l), leaf(b, l), leaf(b, l), leaf(n, b, l)
    comp = torch.compile(reference.posterior_fd)

    def fwd_bwd(f):
        return lambda: f(z, mu, lv, g).sum().backward()

    def fwd(f):
        def run() -> None:
            with torch.no_grad():
                f(z, mu, lv, g)

        return run

    cases = {
        "compile fwd+bwd": fwd_bwd(comp),
        "vsm fwd+bwd": fwd_bwd(vsm.posterior_fd),
        "compile fwd": fwd(comp),
        "vsm fwd": fwd(vsm.posterior_fd),
    }
    for f in cases.values():
        for _ in range(3):
            f()
    res: dict[str, tuple[float, float]] = {}
    for _ in range(5):
        for name, f in cases.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(30):
                f()
            dt = (time.perf_counter() - t0) / 30 * 1e3
            flt = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 30
            res[name] = (min(res.get(name, (1e9, 0))[0], dt), flt)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    for k, (t, f) in res.items():
        print(f"  {k:18s} {t:.3f} ms  {f:.0f} page faults/call")


if __name__ == "__main__":
    main()
