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
    """The Triton sources live in ``python/vsm/kernels`` (the top-level ``kernels`` is one link to
    that folder, so it shows at the top of the repository with no per-file links to maintain).
    Every kernel module of the source tree must be importable from the *installed* package with
    identical text: a kernel missing from the wheel fails here."""
    top = REPO / "kernels"
    assert top.is_symlink() and top.resolve() == (REPO / "python" / "vsm" / "kernels").resolve()
    sources = sorted(p.name for p in top.glob("*.py"))
    assert "posterior_fd.py" in sources, "no kernel sources found"
    for name in sources:
        mod = importlib.import_module(f"vsm.kernels.{name[:-3]}")
        installed = pathlib.Path(mod.__file__)
        assert not installed.is_symlink()
        assert installed.read_text() == (top / name).read_text()


def test_extension_is_abi3_and_inside_the_package():
    core = importlib.import_module("vsm._core")
    path = pathlib.Path(core.__file__)
    assert path.parent == pathlib.Path(vsm.__file__).parent
    assert ".abi3." in path.name


def test_python_dash_m_and_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "vsm", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "train" in out.stdout
    exe = shutil.which("vsm")
    if exe is not None:  # present when installed into the running environment's bin
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
        assert out.returncode == 0 and "train" in out.stdout
