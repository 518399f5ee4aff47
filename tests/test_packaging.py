"""Packaging checks on the *installed* vsm: Triton kernels ship inside the package, the Rust
extension is the abi3 module ``vsm._core``, and the console script is wired."""

from __future__ import annotations

import importlib
import pathlib
import shutil
import subprocess
import sys

import vsm

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_kernel_source_ships_as_vsm_kernels():
    """``kernels/*.py`` reach the wheel through per-file links in ``python/vsm/kernels``;
    a kernel module added without its link would be missing from the installed package."""
    sources = sorted(p.name for p in (REPO / "kernels").glob("*.py"))
    assert sources, "no kernel sources found"
    for name in sources:
        mod = importlib.import_module(f"vsm.kernels.{name[:-3]}")
        assert pathlib.Path(mod.__file__).read_text() == (REPO / "kernels" / name).read_text()


def test_extension_is_abi3_and_inside_the_package():
    core = importlib.import_module("vsm._core")
    path = pathlib.Path(core.__file__)
    assert path.parent == pathlib.Path(vsm.__file__).parent
    assert ".abi3." in path.name


def test_python_dash_m_and_console_script():
    out = subprocess.run([sys.executable, "-m", "vsm", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "train" in out.stdout
    exe = shutil.which("vsm")
    if exe is not None:  # present when installed into the running environment's bin
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
        assert out.returncode == 0 and "train" in out.stdout
