"""One version: the Cargo workspace's ``[workspace.package] version`` is the source; both crates
inherit it, maturin writes it into the installed metadata, ``vsm.__version__`` reads it back and
the extension reports the version it was compiled with. (The built wheel's file name is checked
against the same source by ``.ci/check_wheel.py``.)"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import vsm
import vsm._core
from packaging.version import Version

REPO = pathlib.Path(__file__).resolve().parents[1]


def _table(toml_text: str, name: str) -> str:
    """The body of TOML table ``[name]`` (up to the next table header)."""
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", toml_text, re.M | re.S)
    assert m is not None, f"no [{name}] table"
    return m.group(1)


def _cargo_version() -> str:
    body = _table((REPO / "Cargo.toml").read_text(), "workspace.package")
    m = re.search(r'^version\s*=\s*"([^"]+)"', body, re.M)
    assert m is not None, "no version in [workspace.package] of Cargo.toml"
    return m.group(1)


def test_both_crates_inherit_the_workspace_version():
    for manifest in ("Cargo.toml", "rust/core/Cargo.toml"):
        package = _table((REPO / manifest).read_text(), "package")
        assert re.search(r"^version\.workspace\s*=\s*true", package, re.M), manifest
        assert not re.search(r"^version\s*=", package, re.M), f"{manifest} pins its own version"


def test_python_metadata_and_extension_agree_with_cargo():
    cargo = _cargo_version()
    # maturin turns a SemVer pre-release such as 1.0.0-alpha.1 into PEP 440's 1.0.0a1
    assert Version(importlib.metadata.version("vsm")) == Version(cargo)
    assert vsm.__version__ == importlib.metadata.version("vsm")
    assert vsm._core.__version__ == cargo  # env!("CARGO_PKG_VERSION") at compile time


def test_pyproject_takes_the_version_from_cargo():
    project = _table((REPO / "pyproject.toml").read_text(), "project")
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, re.M)
    assert not re.search(r"^version\s*=", project, re.M)
