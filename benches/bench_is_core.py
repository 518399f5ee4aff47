"""A/B of two builds of the Rust engine on streaming IS evaluation, with NumPy and torch.

Times, interleaved in one process (min over rounds), the importance-sampled evaluation of
``benches/bench_rust.py`` (log p̂, ESS, marginal score, SM loss; B = 1000, chunks of Kc samples of
float32 decoder means): ``vsm._core.ISAccumulator`` of this tree, of another build (``--old``),
the NumPy twin (``vsm.reference_rust.ISAccumulatorNumpy``) and torch (the bench's ``torch_is``).

Run: ``env -u TRITON_INTERPRET python benches/bench_is_core.py --old OLD.so --threads 1``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--D", type=int, default=2)
    ap.add_argument("--K", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    from bench_rust import torch_is
    from vsm import _core
    from vsm import reference_rust as R

    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("_core", args.old)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    B, D, K = 1000, args.D, args.K
    kc = 1000 if D == 2 else 10
    n_chunks = K // kc
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype(np.float32)
    chunk = (x[:, None] + 0.5 * rng.normal(size=(B, kc, D))).astype(np.float32)
    lp = rng.normal(size=(B, kc))
    zero = np.zeros((B, kc))
    x64 = x.astype(np.float64)

    def engine(acc_cls):
        def run():
            acc = acc_cls(x64, 0.0)
            for _ in range(n_chunks):
                acc.add(chunk, lp, zero)
            return acc.result()

        return run

    def run_torch():
        xt, ct, lpt = torch.from_numpy(x64), torch.from_numpy(chunk), torch.from_numpy(lp)
        return torch_is(xt, 0.0, ct, lpt, n_chunks)

    fns = {
        "rust (new)": engine(_core.ISAccumulator),
        "rust (old)": engine(old.ISAccumulator),
        "numpy": engine(R.ISAccumulatorNumpy),
        "torch": run_torch,
    }
    new_r, old_r = fns["rust (new)"](), fns["rust (old)"]()
    for a, b in zip(new_r, old_r, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    best = {k: float("inf") for k in fns}
    for _ in range(args.rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], 1e3 * (time.perf_counter() - t0))
    base = min(best["numpy"], best["torch"])
    print(
        f"IS B={B} D={D} K={K} chunk {kc}, threads {args.threads}, load average "
        f"{os.getloadavg()}; ms (min of {args.rounds}); speed-up vs best of numpy/torch"
    )
    for k, t in best.items():
        print(f"  {k:12s} {t:8.2f} ms  {base / t:5.2f}x")


if __name__ == "__main__":
    main()
