"""Per-call cost of vsm's fused ops on CPU: the eager direct path vs the ``torch.library`` path.

A/B in one process, interleaved: each round times every case with the direct path on
(:mod:`vsm.ops._direct`) and off (``_direct.ENABLED[0] = False``: full validation and the
``torch.library`` custom ops, as before the direct path existed), and the table reports the minimum
over rounds of ``torch.utils.benchmark``'s ``blocked_autorange`` medians (µs per call), plus eager
pure torch (``vsm.backend("reference")``) for scale.

Run: ``env -u TRITON_INTERPRET python benches/bench_direct.py [--threads 1] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-run-time", type=float, default=0.2)
    args = ap.parse_args()

    import torch
    import torch.utils.benchmark as tb
    import vsm
    from vsm.ops import _direct

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def leaf(*s: int) -> torch.Tensor:
        return torch.randn(*s, requires_grad=True)

    z, mu, lv, g = leaf(5, 100, 2), leaf(100, 2), leaf(100, 2), leaf(5, 100, 2)
    x, xm, ls = leaf(100, 2), leaf(5, 100, 2), leaf(())
    hin = leaf(100, 2)

    def pfd() -> torch.Tensor:
        return vsm.posterior_fd(z, mu, lv, g).sum()

    def gt() -> torch.Tensor:
        t = vsm.gaussian_terms(x, xm, ls)
        return (t.sq_mean - t.mean_sq).sum() + t.trace

    def hutch() -> torch.Tensor:
        return vsm.hutchinson_trace(torch.tanh(hin), hin, n_probes=1, seed=3).sum()

    def fwd_bwd(f):
        return lambda: f().backward()

    def no_grad(f):
        def run():
            with torch.no_grad():
                f()

        return run

    cases = {
        "posterior_fd N=5 B=100 L=2 fwd (no grad)": no_grad(pfd),
        "posterior_fd N=5 B=100 L=2 fwd": pfd,
        "posterior_fd N=5 B=100 L=2 fwd+bwd": fwd_bwd(pfd),
        "gaussian_terms N=5 B=100 D=2 fwd (no grad)": no_grad(gt),
        "gaussian_terms N=5 B=100 D=2 fwd": gt,
        "gaussian_terms N=5 B=100 D=2 fwd+bwd": fwd_bwd(gt),
        "hutchinson_trace B=100 D=2 P=1 fwd (tanh incl.)": hutch,
        "hutchinson_trace B=100 D=2 P=1 fwd+bwd": fwd_bwd(hutch),
    }
    variants = ("direct", "library", "reference")
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            for var in variants:
                _direct.ENABLED[0] = var == "direct"
                with vsm.backend("reference" if var == "reference" else "auto"):
                    m = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=args.threads)
                    us = 1e6 * m.blocked_autorange(min_run_time=args.min_run_time).median
                best[name, var] = min(best.get((name, var), float("inf")), us)
        _direct.ENABLED[0] = True
    load = os.getloadavg()
    print(
        f"threads={args.threads} rounds={args.rounds} load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; µs per call, min over rounds"
    )
    print("| case | library path µs | direct path µs | speed-up | eager reference µs |")
    print("|---|---:|---:|---:|---:|")
    for name in cases:
        dirp, lib, ref = (best[name, v] for v in variants)
        print(f"| {name} | {lib:.1f} | {dirp:.1f} | {lib / dirp:.2f}x | {ref:.1f} |")


if __name__ == "__main__":
    main()
