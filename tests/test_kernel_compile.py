"""Every Triton kernel compiles for sm_80 and sm_90, in float32 and float64, without spilling.

No GPU needed: ``python -m vsm.kernels._aot`` (run here in a subprocess without
``TRITON_INTERPRET``, because under the interpreter the kernels — and Triton's own Philox helpers —
are interpreted functions that cannot be compiled) calls the real launchers on meta tensors over a
shape table, captures their launches (grids, block sizes, num_warps, arguments), specialises them
as Triton's JIT would on a GPU, deduplicates by compile key, compiles each for both targets and
reads registers and spills from ptxas. Binaries and ptxas results are cached in Triton's cache
directory, so reruns are fast.

Default: a representative subset of the shape table (every block-size regime of the launchers).
``VSM_COMPILE_FULL=1`` runs the full table of issue 12 (N ∈ {1,5,16}, B ∈ {1,100,1000,4096},
L ∈ {2,16,32,64,100,256}, D ∈ {2,784,1024,3072,12288}, P ∈ {1,4}).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import vsm

pytest.importorskip("triton")

ARCHS = (80, 90)
DTYPES = ("*fp32", "*fp64")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("aot") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault(
        "TRITON_DEFAULT_FP_FUSION", "0"
    )  # launches set it explicitly; silences the warning
    src = str(Path(vsm.__file__).resolve().parents[1])  # the vsm this test imported (installed)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "vsm.kernels._aot", "--json", str(out)]
    if os.environ.get("VSM_COMPILE_FULL", "0") not in ("", "0"):
        cmd.append("--full")
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_every_kernel_is_covered(report):
    """A @triton.jit function the launchers never reach (a new kernel) fails here."""
    kernels = set(report["kernels"])
    assert kernels, "no kernels discovered"
    launched = set(report["launched"])
    helpers = report["helpers_called"]
    assert launched | set(helpers) == kernels
    uncalled = [name for name, called in helpers.items() if not called]
    assert not uncalled, (
        f"device helpers neither launched nor called by a launched kernel: {uncalled}"
    )
    for name in launched:
        for arch in ARCHS:
            for dtype in DTYPES:
                assert any(
                    r["kernel"] == name and r["arch"] == arch and r["dtype"] == dtype
                    for r in report["rows"]
                ), (name, arch, dtype)


def test_everything_compiles(report):
    errors = [
        (r["kernel"], r["arch"], r["constexprs"], r["error"]) for r in report["rows"] if r["error"]
    ]
    assert not errors


def test_no_spills_and_registers_within_the_cap(report):
    bad = [
        (
            r["kernel"],
            r["arch"],
            r["dtype"],
            r["constexprs"],
            r["num_warps"],
            r["regs"],
            r["spill_stores"],
            r["spill_loads"],
            r["cases"][0],
        )
        for r in report["rows"]
        if not r["error"] and (r["spill_stores"] or r["spill_loads"] or r["regs"] > 255)
    ]
    assert not bad


def test_launches_are_explicit_about_fp_fusion_and_use_bounded_tiles(report):
    from vsm.kernels._launch import FP_FUSION, MAX_TILE

    for r in report["rows"]:
        assert r["fp_fusion"] is FP_FUSION
        c = r["constexprs"]
        tile = 1
        for name in ("BLOCK_M", "BLOCK_B", "BLOCK_R", "BLOCK_L", "BLOCK_D", "NC", "BJ", "BLOCK"):
            tile *= c.get(name, 1)
        assert tile <= MAX_TILE, (r["kernel"], c)
        assert 1 <= r["num_warps"] <= 4
