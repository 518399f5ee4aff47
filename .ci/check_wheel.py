"""Checks the release artefacts that `bash .ci/wheel` leaves in dist/ (see docs/packaging.md).

Run from anywhere after `bash .ci/wheel`: `python .ci/check_wheel.py`. In order, it checks

1. the wheel's name and tags (vsm-VERSION-cp310-abi3-manylinux_2_17_x86_64, VERSION = the Cargo
   workspace's), that the extension uses no glibc symbol newer than the tag allows and links only
   libraries every manylinux system has;
2. the wheel's files: exactly the package sources tracked by git under python/vsm (the Triton
   kernels, the stub, py.typed included) plus the extension, and the dist-info (METADATA with the
   README as description, licence, classifiers, extras; the licence text; the console script):
   no tests, no target/, no other top-level package;
3. the sdist's files and metadata; both artefacts against a size budget; `twine check --strict`;
4. the wheel installed into a fresh venv whose PATH has no cargo or rustc, then run from a
   directory outside the repository: the installed vsm (not another) imports, reports the
   version, runs one fused op on every backend (rust, reference and, on Linux x86-64 where Triton
   is a dependency, triton under TRITON_INTERPRET=1), `vsm train --steps 20`, and the first Python
   example of README.md;
5. the sdist built and installed by pip (with build isolation, so maturin comes from the package
   index) into a second fresh venv from a clean directory, with cargo on PATH, then imported and
   run once.

The venvs use --system-site-packages so that torch and the other dependencies come from the
running environment (CI installed them with `pip install ".[test]"`) instead of a second 3 GB
download; pip installs with --no-index into the no-Rust venv, so nothing is fetched or built there.
The artefact is installed with --no-deps --ignore-installed (it must land in the venv even when the
running environment holds the same vsm version, as CI's does), and the smoke run checks that the
dependencies the venv sees satisfy the artefact's own Requires-Dist.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

from packaging.version import Version  # installed with pytest (the test extra)

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
TOOLS = REPO / "target" / "wheel-tools"  # made by .ci/wheel: the pinned maturin, ziglang, twine

# The tag .ci/wheel builds (--compatibility manylinux_2_17) and the oldest glibc it promises.
PLATFORM = "manylinux_2_17_x86_64"
GLIBC_MAX = (2, 17)
# Libraries the extension may link: the glibc/gcc runtime every manylinux system has (PEP 599).
ALLOWED_NEEDED = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
}
# Size budgets (bytes), about 1.5 times today's (wheel 0.81 MB, its extension 1.3 MB unpacked;
# sdist 0.37 MB): more means something unintended got in (debug symbols, data files, a copy).
WHEEL_BUDGET = 1_200_000
SDIST_BUDGET = 560_000
CLASSIFIERS = {
    "Operating System :: POSIX :: Linux",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.13",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
}
EXTRAS = {"test", "build"}


def check(ok: object, msg: str) -> None:
    """Fail the whole check with ``msg`` unless ``ok``."""
    if not ok:
        raise SystemExit(f"check_wheel: FAILED: {msg}")


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (printed first); fail with its output if it exits non-zero."""
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, text=True, capture_output=True, check=False, **kw)
    check(
        out.returncode == 0,
        f"{cmd[0]} exited {out.returncode}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}",
    )
    return out


def cargo_version() -> str:
    """The version in Cargo.toml's [workspace.package] (the one version source), as PEP 440
    spells it in wheel names and metadata (maturin: 1.0.0-alpha.1 -> 1.0.0a1)."""
    text = (REPO / "Cargo.toml").read_text()
    table = re.search(r"^\[workspace\.package\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    check(table, "Cargo.toml has no [workspace.package] table")
    assert table is not None
    m = re.search(r'^version\s*=\s*"([^"]+)"', table.group(1), re.M)
    check(m, "Cargo.toml's [workspace.package] has no version")
    assert m is not None
    return str(Version(m.group(1)))


def only(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    check(len(found) == 1, f"expected one dist/{pattern}, found {[p.name for p in found]}")
    return found[0]


def check_metadata(text: str, version: str, where: str) -> None:
    """Core metadata (a wheel's METADATA or an sdist's PKG-INFO) as a package index expects it."""
    meta = email.parser.Parser().parsestr(text)
    check(
        tuple(map(int, meta["Metadata-Version"].split("."))) >= (2, 4), f"{where}: metadata < 2.4"
    )
    check(meta["Name"] == "vsm" and meta["Version"] == version, f"{where}: name/version")
    check(meta["Requires-Python"] == ">=3.10", f"{where}: Requires-Python")
    check(meta["License-Expression"] == "MIT", f"{where}: License-Expression")
    check(meta.get_all("License-File") == ["LICENSE"], f"{where}: License-File")
    classifiers = set(meta.get_all("Classifier") or [])
    check(CLASSIFIERS <= classifiers, f"{where}: missing {CLASSIFIERS - classifiers}")
    check(not any(c.startswith("License ::") for c in classifiers), f"{where}: License classifier")
    extras = set(meta.get_all("Provides-Extra") or [])
    check(EXTRAS <= extras, f"{where}: missing extras {EXTRAS - extras}")
    requires = meta.get_all("Requires-Dist") or []
    check(any(r.startswith("torch") for r in requires), f"{where}: torch not required")
    check(meta["Description-Content-Type"].startswith("text/markdown"), f"{where}: readme type")
    readme = (REPO / "README.md").read_text()
    check(meta.get_payload().strip() == readme.strip(), f"{where}: description is not README.md")


def check_wheel_file(wheel: Path, version: str, tmp: Path) -> None:
    name = f"vsm-{version}-cp310-abi3-"
    check(wheel.name.startswith(name), f"{wheel.name}: expected {name}…")
    check(PLATFORM in wheel.name.removesuffix(".whl").split("-")[-1].split("."), "platform tag")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"vsm-{version}.dist-info"
        wheel_meta = email.parser.Parser().parsestr(zf.read(f"{info}/WHEEL").decode())
        check(f"cp310-abi3-{PLATFORM}" in wheel_meta.get_all("Tag"), "WHEEL lacks the tag")
        check(wheel_meta["Root-Is-Purelib"] == "false", "WHEEL: Root-Is-Purelib")
        check_metadata(zf.read(f"{info}/METADATA").decode(), version, "wheel METADATA")
        licence = zf.read(f"{info}/licenses/LICENSE").decode()
        check(licence == (REPO / "LICENSE").read_text(), "the wheel's LICENSE differs")
        entry = zf.read(f"{info}/entry_points.txt").decode()
        check(re.search(r"^vsm\s*=\s*vsm\.cli:main$", entry, re.M), "console script `vsm`")
        so = zf.extract("vsm/_core.abi3.so", tmp)
    # every top-level entry is the package or its dist-info
    tops = {n.split("/")[0] for n in names}
    check(tops == {"vsm", info}, f"top-level entries {sorted(tops)}")
    check(not any(n.startswith(("tests/", "target/", "vsm/tests/")) for n in names), "tests/target")
    tracked = run(["git", "ls-files", "python/vsm"], cwd=REPO).stdout.split()
    expected = {p.removeprefix("python/") for p in tracked} | {"vsm/_core.abi3.so"}
    package = {n for n in names if n.startswith("vsm/")}
    check(
        package == expected,
        f"wheel vs git: extra {package - expected}, missing {expected - package}",
    )
    for required in ("vsm/_core.pyi", "vsm/py.typed", "vsm/kernels/posterior_fd.py"):
        check(required in package, f"{required} not in the wheel")
    # the extension against the manylinux policy of its tag
    dyn = run(["objdump", "-T", str(so)]).stdout
    glibc = {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([0-9.]+)", dyn)}
    check(glibc, "the extension has no versioned glibc symbols: is it a glibc build?")
    check(max(glibc) <= GLIBC_MAX, f"glibc symbol versions up to {max(glibc)} > {GLIBC_MAX}")
    needed = set(re.findall(r"NEEDED\s+(\S+)", run(["objdump", "-p", str(so)]).stdout))
    check(needed <= ALLOWED_NEEDED, f"links {needed - ALLOWED_NEEDED}")
    print(f"ok: {wheel.name}: tag, {len(package)} package files, glibc <= 2.{max(glibc)[1]}")


def check_sdist_file(sdist: Path, version: str) -> None:
    check(sdist.name == f"vsm-{version}.tar.gz", f"{sdist.name}: expected vsm-{version}.tar.gz")
    root = f"vsm-{version}/"
    with tarfile.open(sdist) as tf:
        names = {m.name.removeprefix(root) for m in tf.getmembers() if m.isfile()}
        pkg_info = tf.extractfile(root + "PKG-INFO")
        assert pkg_info is not None
        check_metadata(pkg_info.read().decode(), version, "sdist PKG-INFO")
    for required in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "LICENSE", "README.md"):
        check(required in names, f"sdist lacks {required}")
    check("rust/py/lib.rs" in names and "python/vsm/kernels/posterior_fd.py" in names, "sources")
    excluded = ("target/", "dist/", "docs/", "benches/", ".ci/", ".github/")
    stray = [n for n in names if n.startswith(excluded)]
    check(not stray, f"sdist carries {stray[:5]}")
    print(f"ok: {sdist.name}: {len(names)} files")


def rustless_env(venv: Path) -> dict[str, str]:
    """The environment of a user without Rust: PATH is the venv's bin and the system directories
    that hold neither cargo nor rustc; no Rust or virtual-env variables."""
    dirs = [venv / "bin", Path("/usr/local/bin"), Path("/usr/bin"), Path("/bin")]
    path = [str(d) for d in dirs if not any((d / t).exists() for t in ("cargo", "rustc"))]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARGO", "RUSTUP", "RUSTC", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PATH=os.pathsep.join(path), TRITON_INTERPRET="1")
    return env


# Runs inside the fresh venv: which vsm imports, its version, one fused op on each backend.
SMOKE = """
import importlib.util, platform, shutil, sys
from pathlib import Path

venv, version, rust_allowed = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3] == "1"
if not rust_allowed:
    assert shutil.which("cargo") is None and shutil.which("rustc") is None, "Rust on PATH"
import torch
import vsm, vsm._core
for mod in (vsm, vsm._core):
    assert venv in Path(mod.__file__).resolve().parents, f"{mod.__name__} from {mod.__file__}"
assert vsm.__version__ == version, (vsm.__version__, version)
# the artefact went in with --no-deps: its dependencies must be met by what the venv sees
from importlib.metadata import distribution, version as dist_version
from packaging.requirements import Requirement
for line in distribution("vsm").requires or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # an extra, or another platform
    found = dist_version(req.name)
    assert req.specifier.contains(found, prereleases=True), f"{req} unmet: {req.name} {found}"
backends = ["rust", "reference"]
if sys.platform == "linux" and platform.machine() == "x86_64":  # triton is a dependency there
    assert importlib.util.find_spec("triton") is not None, "triton missing"
    backends.append("triton")
g = torch.Generator().manual_seed(0)
z, g_z = (torch.randn(3, 4, 2, generator=g, dtype=torch.float64) for _ in range(2))
mu, logvar = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(2))
res = -(z - mu) * torch.exp(-logvar) + z - g_z  # MATH.md Part I, written out here
for b in backends:
    with vsm.backend(b):
        out = vsm.posterior_fd(z, mu, logvar, g_z)
    torch.testing.assert_close(out, (res * res).sum(-1))
print(f"smoke ok: vsm {vsm.__version__} from {Path(vsm.__file__).parent}; backends {backends}")
"""

# Defines what README.md's PyTorch example leaves to the reader (a model and a batch); after the
# example, every `loss*` tensor it made must be finite and differentiable.
README_PRELUDE = "import torch, vsm\nmodel = vsm.MLPVAE(data_shape=(2,), latent_dim=2)\n"
README_PRELUDE += "x = torch.randn(16, 2)\n"
README_POSTLUDE = """
losses = {k: v for k, v in list(globals().items()) if k.startswith("loss")}
assert losses, "the README example defines no loss"
for k, v in losses.items():
    assert torch.isfinite(v).all(), k
    v.backward(retain_graph=True)
assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
print("README example ok:", sorted(losses))
"""


def readme_example() -> str:
    """The first ```python block of README.md (its PyTorch example)."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    check(blocks, "README.md has no ```python block")
    return README_PRELUDE + blocks[0] + README_POSTLUDE


# The artefact itself goes into the venv even when the running environment already has this
# vsm version (CI's `pip install ".[test]"` put it there: a plain install would answer
# "already satisfied" and the smoke run would test that copy). Its dependencies come from the
# running environment (--no-deps); the smoke run checks they satisfy the artefact's metadata.
INTO_VENV = ("--disable-pip-version-check", "--no-deps", "--ignore-installed")


def fresh_venv(where: Path) -> Path:
    """A venv without pip of its own (the running pip installs into it with --python) that sees
    the running environment's packages."""
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(where)])
    return where


def check_wheel_installs_without_rust(wheel: Path, version: str, tmp: Path) -> None:
    venv = fresh_venv(tmp / "venv-wheel")
    env = rustless_env(venv)
    work = tmp / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    run([*pip, *INTO_VENV, "--no-index", str(wheel)], env=env, cwd=work)
    py = str(venv / "bin" / "python")
    (work / "smoke.py").write_text(textwrap.dedent(SMOKE))
    print(run([py, "smoke.py", str(venv), version, "0"], env=env, cwd=work).stdout.strip())
    out = run(
        [str(venv / "bin" / "vsm"), "train", "--steps", "20", "--out", "run"], env=env, cwd=work
    )
    check(
        (work / "run" / "metrics.json").is_file(), f"vsm train wrote no metrics.json\n{out.stdout}"
    )
    print("ok: vsm train --steps 20")
    (work / "readme_example.py").write_text(readme_example())
    print(run([py, "readme_example.py"], env=env, cwd=work).stdout.strip())


def check_sdist_installs(sdist: Path, version: str, tmp: Path) -> None:
    venv = fresh_venv(tmp / "venv-sdist")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    check(shutil.which("cargo", path=env["PATH"]), "building the sdist needs cargo on PATH")
    work = tmp / "clean"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    run([*pip, *INTO_VENV, str(sdist)], env=env, cwd=work)
    (work / "smoke.py").write_text(textwrap.dedent(SMOKE))
    py = str(venv / "bin" / "python")
    env["TRITON_INTERPRET"] = "1"
    print(run([py, "smoke.py", str(venv), version, "1"], env=env, cwd=work).stdout.strip())


def main() -> None:
    version = cargo_version()
    wheel, sdist = only("vsm-*.whl"), only("vsm-*.tar.gz")
    with tempfile.TemporaryDirectory(prefix="vsm-check-wheel-") as t:
        tmp = Path(t)
        check_wheel_file(wheel, version, tmp)
        check_sdist_file(sdist, version)
        for path, budget in ((wheel, WHEEL_BUDGET), (sdist, SDIST_BUDGET)):
            size = path.stat().st_size
            check(size <= budget, f"{path.name}: {size} bytes > budget {budget}")
            print(f"ok: {path.name}: {size} bytes (budget {budget})")
        twine = TOOLS / "bin" / "twine"
        check(twine.is_file(), f"{twine} missing: run `bash .ci/wheel` first")
        run([str(twine), "check", "--strict", str(wheel), str(sdist)])
        print("ok: twine check --strict")
        t0 = time.monotonic()
        check_wheel_installs_without_rust(wheel, version, tmp)
        t1 = time.monotonic()
        check_sdist_installs(sdist, version, tmp)
        t2 = time.monotonic()
    print(
        f"check_wheel: all checks passed (Rust-free install and smoke runs {t1 - t0:.0f} s, "
        f"sdist build, install and smoke run {t2 - t1:.0f} s)"
    )


if __name__ == "__main__":
    main()
