"""A/B of two builds of the Rust engine on posterior_fd's kernels (no Python layer in between).

Loads ``vsm._core`` (this tree) and another build of the extension (``--old PATH``, e.g. a copy
of main's ``_core.abi3.so``) into one process and times ``posterior_fd_forward`` /
``posterior_fd_backward`` of both, interleaved, with ``torch.utils.benchmark`` (min over rounds of
the ``blocked_autorange`` medians), against ``torch.compile`` of the reference (fwd and fwd+bwd).

Run: ``env -u TRITON_INTERPRET python benches/bench_pfd_core.py --old OLD.so [--threads 1,2]``.
"""

# The timing closures are called within the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import importlib.util
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="path of the other build's _core .so")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shape", default="4,1024,100", help="N,B,L")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.utils.benchmark as tb
    from vsm import _core, reference

    spec = importlib.util.spec_from_file_location("_core", args.old)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    n, b, l = (int(s) for s in args.shape.split(","))
    rng = np.random.default_rng(0)
    print(f"posterior_fd N={n} B={b} L={l}; load average {os.getloadavg()}")
    print("| dtype | threads | pass | old ms | new ms | speed-up | torch.compile ms |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for dtype in (np.float32, np.float64):
        z, g = (rng.standard_normal((n, b, l)).astype(dtype) for _ in range(2))
        mu, lv = (rng.standard_normal((b, l)).astype(dtype) for _ in range(2))
        lv *= 0.5
        go = rng.standard_normal((n, b)).astype(dtype)
        tz = [torch.from_numpy(a).requires_grad_(True) for a in (z, mu, lv, g)]
        comp = torch.compile(reference.posterior_fd)
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for var in (0, 1):
                fns = {
                    m: (
                        (lambda m=m: m.posterior_fd_forward(z, mu, lv, g, threads))
                        if var == 0
                        else (lambda m=m: m.posterior_fd_backward(go, z, mu, lv, g, threads))
                    )
                    for m in (old, _core)
                }
                if var == 0:
                    fns["compile"] = lambda: comp(*tz)
                else:
                    fns["compile"] = lambda: comp(*tz).backward(torch.from_numpy(go))
                best = {k: float("inf") for k in fns}
                for _ in range(args.rounds):
                    for k, f in fns.items():
                        m = tb.Timer("f()", globals={"f": f}, num_threads=threads)
                        t = m.blocked_autorange(min_run_time=0.2).median * 1e3
                        best[k] = min(best[k], t)
                pname = "fwd" if var == 0 else "bwd (compile: fwd+bwd)"
                o, nw, c = best[old], best[_core], best["compile"]
                print(
                    f"| {np.dtype(dtype).name} | {threads} | {pname} | {o:.3f} | {nw:.3f} | "
                    f"{o / nw:.2f}x | {c:.3f} |"
                )
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
