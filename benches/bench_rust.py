"""Benchmark of the Rust engine (vsm._core) against its NumPy twin and a torch implementation.

Ops: grid quadrature of the "sym" toy posterior (log-joint + log evidence, mean, covariance and
normalised density) for 100² and 400² grids with 64 and 1024 observations, and streaming
importance-sampled evaluation (log p̂, ESS, marginal score, SM loss) with B = 1000, D ∈ {2, 784},
K ∈ {10³, 10⁴} processed in chunks (float32 decoder means, reused chunk buffer).

Run: ``python benches/bench_rust.py [--quick] [--threads 2]``. Prints a table (times in ms,
best of ``--repeat`` runs) with the machine and thread counts.
"""

# The timing closures are called within the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def _setup_threads(n: int) -> None:
    os.environ["RAYON_NUM_THREADS"] = str(n)
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = str(n)


def torch_is(x, ls2: float, chunk, lp, n_chunks: int):
    """Streaming IS evaluation in torch (the baseline; also used by ``bench_is_core.py``): online
    log-sum-exp over chunks; heavy ops in the chunk's float32, sums in float64."""
    import numpy as np
    import torch

    B, kc, D = chunk.shape
    inv_s2 = float(np.exp(-ls2))
    m = torch.full((B,), -float("inf"), dtype=torch.float64)
    s1 = torch.zeros(B, dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    sq_acc = torch.zeros_like(s1)
    sg = torch.zeros(B, D, dtype=torch.float64)
    xf = x.to(chunk.dtype)
    for _ in range(n_chunks):
        sq = ((chunk - xf[:, None]) ** 2).sum(-1).double()
        lw = -0.5 * D * (np.log(2 * np.pi) + ls2) - 0.5 * sq * inv_s2 + lp
        m_new = torch.maximum(m, lw.max(1).values)
        a = torch.exp(m - m_new)
        e = torch.exp(lw - m_new[:, None])
        s1 = a * s1 + e.sum(1)
        s2 = a * a * s2 + (e * e).sum(1)
        sq_acc = a * sq_acc + (e * sq).sum(1)
        sg = a[:, None] * sg + torch.bmm(e[:, None].to(chunk.dtype), chunk)[:, 0].double()
        m = m_new
    K = n_chunks * kc
    score = (sg / s1[:, None] - x) * inv_s2
    sm = sq_acc / s1 * inv_s2**2 - D * inv_s2 - 0.5 * (score**2).sum(1)
    return m + torch.log(s1) - np.log(K), s1**2 / s2, score, sm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="smaller subset (~1 min on 2 loaded cores)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    _setup_threads(args.threads)

    import numpy as np
    import torch
    import vsm
    from vsm import _core
    from vsm import reference_rust as R

    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str, float, float, float]] = []

    def best(fn, repeat=args.repeat) -> float:
        ts: list[float] = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
            if ts[-1] > 2.0:  # long runs: one is enough
                break
        return 1e3 * min(ts)

    # ---------------------------------------------------------------- grid quadrature ("sym")
    def torch_sym_posterior(x: torch.Tensor, ax: torch.Tensor, block: int = 64):
        z1, z2 = torch.meshgrid(ax, ax, indexing="ij")
        z = torch.stack([z1.reshape(-1), z2.reshape(-1)], -1)
        g = z[:, 0] * z[:, 1]
        s2 = 0.25
        const = -0.5 * (np.log(2 * np.pi) + np.log(s2)) - np.log(2 * np.pi)
        prior = -0.5 * (z * z).sum(-1)
        cell = float((ax[1] - ax[0]) ** 2)
        out = []
        for i in range(0, x.shape[0], block):
            lj = const + prior - 0.5 * (x[i : i + block, None] - g) ** 2 / s2
            lz = torch.logsumexp(lj, -1)
            p = torch.exp(lj - lz[:, None])
            mean = p @ z
            d = z[None] - mean[:, None]
            cov = torch.einsum("bg,bgi,bgj->bij", p, d, d)
            out.append((lz + np.log(cell), mean, cov, p / cell))
        return out

    def numpy_sym_posterior(x: np.ndarray, ax: list, block: int = 64):
        return [R.toy_posterior("sym", x[i : i + block], ax) for i in range(0, x.shape[0], block)]

    grid_cfg = (
        [(100, 64), (400, 64)] if args.quick else [(100, 64), (100, 1024), (400, 64), (400, 1024)]
    )
    rng = np.random.default_rng(0)
    for n, B in grid_cfg:
        x = rng.normal(size=(B, 1)) * 2
        ax = [np.linspace(-3, 3, n)] * 2
        xt, axt = torch.from_numpy(x[:, 0]), torch.from_numpy(ax[0])
        # correctness guard: all three agree
        r_rust = _core.toy_posterior("sym", x, ax)
        r_np = numpy_sym_posterior(x[:64], ax)[0]
        assert np.allclose(r_rust[0][:64], r_np[0]) and np.allclose(r_rust[2][:64], r_np[2])
        t_np = best(lambda: numpy_sym_posterior(x, ax))
        t_t = best(lambda: torch_sym_posterior(xt, axt))
        t_r = best(lambda: _core.toy_posterior("sym", x, ax))
        rows.append(("toy posterior sym", f"B={B} grid={n}x{n}", t_np, t_t, t_r))

    # ---------------------------------------------------------------- streaming IS evaluation
    is_cfg = (
        [(2, 1000), (784, 1000)]
        if args.quick
        else [(2, 1000), (2, 10000), (784, 1000), (784, 10000)]
    )
    B = 1000
    for D, K in is_cfg:
        kc = 1000 if D == 2 else 10
        n_chunks = K // kc
        x = rng.normal(size=(B, D)).astype(np.float32)
        chunk = (x[:, None] + 0.5 * rng.normal(size=(B, kc, D))).astype(np.float32)
        lp = rng.normal(size=(B, kc))
        zero = np.zeros((B, kc))
        x64 = x.astype(np.float64)

        def run_rust():
            acc = vsm.ISAccumulator(x64, 0.0)
            for _ in range(n_chunks):
                acc.add(chunk, lp, zero)
            return acc.result()

        def run_np():
            acc = R.ISAccumulatorNumpy(x64, 0.0)
            for _ in range(n_chunks):
                acc.add(chunk, lp, zero)
            return acc.result()

        xt, ct, lpt = torch.from_numpy(x64), torch.from_numpy(chunk), torch.from_numpy(lp)
        rr, rn, rt = run_rust(), run_np(), torch_is(xt, 0.0, ct, lpt, n_chunks)
        assert np.allclose(rr.log_p, rn[0]) and np.allclose(rr.sm_loss, rn[3], rtol=1e-6)
        assert np.allclose(rr.log_p, rt[0].numpy(), rtol=1e-4)
        # Streaming cost is linear in the number of chunks: for the largest case the two
        # baselines run 1/10 of the chunks and are scaled by 10 (marked with *); Rust runs all.
        scale = 10 if (D == 784 and K == 10000) else 1
        nb = n_chunks // scale

        def run_np_b():
            acc = R.ISAccumulatorNumpy(x64, 0.0)
            for _ in range(nb):
                acc.add(chunk, lp, zero)
            return acc.result()

        rep = 1 if scale > 1 else args.repeat
        t_np = scale * best(run_np_b, rep)
        t_t = scale * best(lambda: torch_is(xt, 0.0, ct, lpt, nb), rep)
        t_r = best(run_rust, rep)
        star = "*" if scale > 1 else ""
        rows.append(("IS evaluate" + star, f"B={B} D={D} K={K} (chunk {kc})", t_np, t_t, t_r))

    # ---------------------------------------------------------------- table
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    print(
        f"machine: {cpu}, {os.cpu_count()} logical CPUs; threads: rayon={args.threads}, "
        f"torch={torch.get_num_threads()}, numpy single-threaded ops; python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, numpy {np.__version__}; load average {os.getloadavg()}"
    )
    hdr = f"| {'op':<18} | {'shape':<30} | {'numpy ms':>9} | {'torch ms':>9} | {'rust ms':>9} | {'speed-up vs best':>16} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for op, shape, tn, tt, tr in rows:
        print(
            f"| {op:<18} | {shape:<30} | {tn:>9.1f} | {tt:>9.1f} | {tr:>9.1f} | {min(tn, tt) / tr:>15.1f}x |"
        )
    if any(r[0].endswith("*") for r in rows):
        print(
            "* numpy/torch timed on K/10 samples (same chunks) and scaled by 10; rust timed on all K."
        )


if __name__ == "__main__":
    main()
