"""Ahead-of-time compile check of every vsm Triton kernel, without a GPU.

Run as ``python -m vsm.kernels._aot [--full] [--arch 80 --arch 90] [--json PATH]`` in a process
where ``TRITON_INTERPRET`` is unset (``tests/test_kernel_compile.py`` starts one: under the
interpreter ``@triton.jit`` — including Triton's own ``tl.randint4x`` & co. — builds interpreted
functions that cannot be compiled, so the check cannot run inside the interpreted test process).

1. The launchers (:func:`vsm.kernels.posterior_fd.forward`, …) are called on ``device="meta"``
   tensors over a shape table while :func:`vsm.kernels._launch.recording` captures their launches:
   grids, block sizes, ``num_warps``, FP fusion and every argument are the launchers' own.
2. Each launch is specialised exactly as ``JITFunction.run`` would on a GPU (Triton's binder:
   int == 1 → constexpr, divisibility by 16, i32/i64, pointer alignment; seeds not specialised)
   and deduplicated by the resulting compile key — many shapes give the same binary.
3. Each distinct key is compiled for each target (``GPUTarget("cuda", arch, 32)``) with
   ``triton.compile``, and the PTX is run through the ptxas Triton ships (``-v``) for registers
   and spill bytes (results cached by compiled-kernel hash under Triton's cache directory).

The JSON report lists every ``@triton.jit`` function of the ``vsm.kernels`` modules, which were
launched (kernels) or called from a launched kernel (device helpers), and one row per (key, arch)
with grid sizes, registers, spill stores/loads and any compile error.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

#: The full shape table (issue 12): posterior_fd (N, B, L), gaussian_terms (N, B, D), Hutchinson (P, B, D).
FULL = {
    "N": (1, 5, 16),
    "B": (1, 100, 1000, 4096),
    "L": (2, 16, 32, 64, 100, 256),
    "D": (2, 784, 1024, 3072, 12288),
    "P": (1, 4),
}
#: The default (CI) subset, ~56 distinct binaries per target: the paper's B = 100 and the large
#: B = 4096; N = 1 and 5 (the posterior_fd backward with and without the split over samples);
#: L below and above the 128-wide latent tile; D = 2 and 12288 (the smallest and the largest tiles
#: of every Hutchinson and gaussian_terms kernel, both distributions).
DEFAULT = {"N": (1, 5), "B": (100, 4096), "L": (16, 256), "D": (2, 12288), "P": (1,)}
DTYPES = (torch.float32, torch.float64)


def _modules() -> list[Any]:
    import vsm.kernels as pkg

    return [
        importlib.import_module(f"vsm.kernels.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)
    ]


def discover() -> dict[str, Any]:
    """Every ``@triton.jit`` function defined in the ``vsm.kernels`` modules, by qualified name."""
    from ._launch import jit_functions

    found = {}
    for mod in _modules():
        for name, fn in jit_functions(mod).items():
            found[f"{mod.__name__.rsplit('.', 1)[-1]}.{name}"] = fn
    return found


def record_launches(table: dict[str, tuple[int, ...]]) -> list[tuple[str, Any, tuple, tuple, dict]]:
    """Call every launcher over ``table`` on meta tensors; return (case, kernel, grid, args, kwargs)."""
    from . import _launch
    from . import gaussian_terms as G
    from . import hutchinson as H
    from . import posterior_fd as F

    out: list[tuple[str, Any, tuple, tuple, dict]] = []

    def rec(case: str, launcher: Callable[..., object], *args: Any) -> None:
        with _launch.recording() as launches:
            launcher(*args)
        out.extend((case, *launch) for launch in launches)

    meta: dict[str, Any] = {"device": "meta"}
    for dt in DTYPES:
        t = str(dt).removeprefix("torch.")
        for n, b, l in itertools.product(table["N"], table["B"], table["L"]):
            z, mu = torch.empty((n, b, l), dtype=dt, **meta), torch.empty((b, l), dtype=dt, **meta)
            go = torch.empty((n, b), dtype=dt, **meta)
            rec(f"posterior_fd.forward N={n} B={b} L={l} {t}", F.forward, z, mu, mu, z)
            rec(f"posterior_fd.backward N={n} B={b} L={l} {t}", F.backward, go, z, mu, mu, z)
        for n, b, d in itertools.product(table["N"], table["B"], table["D"]):
            x, xm = torch.empty((b, d), dtype=dt, **meta), torch.empty((n, b, d), dtype=dt, **meta)
            ls, a = torch.empty((), dtype=dt, **meta), torch.empty((b,), dtype=dt, **meta)
            rec(f"gaussian_terms.forward N={n} B={b} D={d} {t}", G.forward, x, xm, ls)
            rec(f"gaussian_terms.backward N={n} B={b} D={d} {t}", G.backward, a, a, x, xm, ls)
        for p, b, d, dist in itertools.product(table["P"], table["B"], table["D"], (0, 1)):
            u, go = torch.empty((p, b, d), dtype=dt, **meta), torch.empty((p, b), dtype=dt, **meta)
            s = f"P={p} B={b} D={d} dist={dist} {t}"
            seed = 2**40 + 7  # an i64 seed; seeds are not specialised (i32 seeds: same binary)
            rec(f"hutchinson.probes {s}", H.probes, (p, b, d), seed, dist, dt, torch.device("meta"))
            rec(f"hutchinson.dot {s}", H.dot, u, 12345, dist)
            rec(f"hutchinson.dot_backward {s}", H.dot_backward, go, seed, dist, d)
    return out


def specialise(kernel: Any, args: tuple, kwargs: dict, arch: int) -> tuple[Any, Any, str]:
    """(ASTSource, options, dedup key) exactly as ``JITFunction.run`` builds them for ``arch``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    backend = make_backend(GPUTarget("cuda", arch, 32))
    kw = dict(kwargs, debug=False, instrumentation_mode="", fpsan_homomorphic_casts=False)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, spec, options = binder(*args, **kw)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kw, bound, spec, options)
    key = repr(
        (
            kernel.fn.__qualname__,
            sorted(signature.items()),
            sorted(constexprs.items()),
            sorted(attrs.items()),
            options.num_warps,
            options.enable_fp_fusion,
            arch,
        )
    )
    return ASTSource(kernel, signature, constexprs, attrs), options, key


def _ptxas_usage(ptx: str, arch: int, fp_fusion: bool, cache_key: str) -> dict[str, int]:
    """Registers and spill bytes from ``ptxas -v`` (Triton's own ptxas and flags), cached."""
    from triton import knobs
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    cache_dir = os.path.join(knobs.cache.dir, "vsm_ptxas")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{cache_key}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [
            get_ptxas(arch).path,
            "-v",
            "--regAllocOptLevel=2",
            *([] if fp_fusion else ["--fmad=false"]),
            f"--gpu-name={sm_arch_from_capability(arch)}",
            src,
            "-o",
            os.path.join(tmp, "k.o"),
        ]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr

    def grab(pattern: str) -> int:
        m = re.search(pattern, log)
        if m is None:
            raise RuntimeError(f"ptxas -v output not understood ({pattern!r}):\n{log}")
        return int(m.group(1))

    usage = {
        "regs": grab(r"Used (\d+) registers"),
        "spill_stores": grab(r"(\d+) bytes spill stores"),
        "spill_loads": grab(r"(\d+) bytes spill loads"),
        "stack": grab(r"(\d+) bytes stack frame"),
    }
    with open(path, "w") as f:
        json.dump(usage, f)
    return usage


def run(table: dict[str, tuple[int, ...]], archs: tuple[int, ...]) -> dict[str, Any]:
    """Record, deduplicate, compile; return the report (see the module docstring)."""
    import triton

    t0 = time.time()
    launches = record_launches(table)
    kernels = discover()
    by_id = {id(fn): name for name, fn in kernels.items()}
    rows: dict[str, dict[str, Any]] = {}
    for case, kernel, grid, args, kwargs in launches:
        for arch in archs:
            src, options, key = specialise(kernel, args, kwargs, arch)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {
                    "kernel": by_id.get(id(kernel), kernel.fn.__qualname__),
                    "arch": arch,
                    "dtype": next(str(v) for v in src.signature.values() if str(v).startswith("*")),
                    "constexprs": {
                        kernel.arg_names[k[0]]: v
                        for k, v in src.constants.items()
                        if isinstance(v, (bool, int, float))
                    },
                    "num_warps": options.num_warps,
                    "fp_fusion": options.enable_fp_fusion,
                    "cases": [],
                    "grids": [],
                    "_src": src,
                    "_options": options,
                }
            row["cases"].append(case)
            row["grids"].append(grid[0])
    launched = sorted({r["kernel"] for r in rows.values()})
    for row in rows.values():
        src, options = row.pop("_src"), row.pop("_options")
        try:
            ck = triton.compile(
                src,
                target=triton.backends.compiler.GPUTarget("cuda", row["arch"], 32),
                options=options.__dict__,
            )
            row.update(
                _ptxas_usage(
                    ck.asm["ptx"], row["arch"], options.enable_fp_fusion, f"{ck.hash}-{row['arch']}"
                )
            )
            row["error"] = None
        except Exception as e:  # noqa: BLE001 -- any compile failure is reported; the test fails on it
            row["error"] = f"{type(e).__name__}: {e}"
    # device helpers (not launched themselves) must be called from a launched kernel
    called = set()
    for name in launched:
        fn = kernels.get(name)
        if fn is not None:
            called.update(fn.fn.__code__.co_names)
    helpers = {name: name.rsplit(".", 1)[-1] in called for name in kernels if name not in launched}
    return {
        "kernels": sorted(kernels),
        "launched": launched,
        "helpers_called": helpers,
        "n_launches": len(launches),
        "rows": list(rows.values()),
        "seconds": time.time() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full shape table (slow)")
    parser.add_argument(
        "--arch", type=int, action="append", help="compute capability (default 80, 90)"
    )
    parser.add_argument("--json", help="write the report here (default: stdout)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print(
            "vsm.kernels._aot: unset TRITON_INTERPRET (interpreted kernels cannot be compiled)",
            file=sys.stderr,
        )
        return 2
    report = run(FULL if args.full else DEFAULT, tuple(args.arch or (80, 90)))
    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
