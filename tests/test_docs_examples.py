"""Every code example of README.md and of the documentation site (``docs/**/*.md``) works.

- Every ```` ```python ```` block runs. The blocks of one file run in order in one namespace (a
  page may build on its earlier examples), in a temporary working directory, on CPU with the
  backend a user's CPU tensors get (the Rust kernels; conftest's Triton interpreter would only
  make them slow). A block that must not run says so in its info string,
  ```` ```python norun ````, with the reason in a comment on its first line; such blocks are
  listed in :data:`NORUN` so that adding one is a reviewed change.
- Every ``Example::`` block of a docstring in ``python/vsm`` (the API reference shows them) runs
  the same way.
- Every ``vsm ...`` command in a ```` ```bash ```` block (also ``python -m vsm``,
  ``torchrun ... -m vsm``) is accepted by the real argument parser of its subcommand.
"""

from __future__ import annotations

import ast
import re
import shlex
import textwrap
from pathlib import Path

import pytest
import torch
import vsm
from vsm._errors import UsageError
from vsm.bench import has_backend

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: (file, first line of the block) of every ```python norun block, reviewed: currently none.
NORUN: set[tuple[str, str]] = set()

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)


def _pages() -> list[Path]:
    pages = [ROOT / "README.md"]
    for path in sorted(DOCS.rglob("*.md")):
        if not path.relative_to(DOCS).parts[0].startswith("_"):  # docs/_build
            pages.append(path)
    return pages


def _blocks(path: Path) -> list[tuple[list[str], str]]:
    """The fenced blocks of a Markdown file as (info-string words, body)."""
    text = path.read_text(encoding="utf-8")
    return [(m["info"].split(), m["body"]) for m in FENCE.finditer(text)]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _python_pages() -> list[Path]:
    return [p for p in _pages() if any(w[:1] == ["python"] for w, _ in _blocks(p))]


@pytest.mark.parametrize("page", _python_pages(), ids=_rel)
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    ran = 0
    for words, body in _blocks(page):
        if words[:1] != ["python"]:
            continue
        if "norun" in words[1:]:
            first = body.splitlines()[0] if body.strip() else ""
            assert (_rel(page), first) in NORUN, f"unreviewed norun block in {_rel(page)}: {first}"
            continue
        code = compile(body, f"{_rel(page)} (python block {ran + 1})", "exec")
        with vsm.backend("rust" if has_backend("rust") else "auto"):
            exec(code, namespace)
        ran += 1
    assert ran > 0


def _docstring_examples() -> list[tuple[str, str]]:
    """(where, code) of every ``Example::`` literal block in the docstrings of python/vsm."""
    found = []
    for path in sorted((ROOT / "python" / "vsm").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ):
                continue
            doc = ast.get_docstring(node, clean=True)
            for m in re.finditer(r"^Examples?::\n\n((?:[ \t]+.*\n|\n)+)", (doc or "") + "\n", re.M):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'name', '<module>')}"
                found.append((where, textwrap.dedent(m.group(1))))
    return found


@pytest.mark.parametrize(
    ("where", "code"), _docstring_examples(), ids=[w for w, _ in _docstring_examples()]
)
def test_docstring_examples_run(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    with vsm.backend("rust" if has_backend("rust") else "auto"):
        exec(compile(code, where, "exec"), {"__name__": "__docs_example__"})


def test_docstring_examples_are_found():
    assert any(w.endswith("vsm/train/__init__.py:<module>") for w, _ in _docstring_examples())


def _commands(body: str) -> list[list[str]]:
    """The ``vsm`` argument lists of a shell block: each ``&&``/``;``/``&``-separated command
    that runs vsm, without its comment, environment prefix or launcher."""
    found = []
    for line in body.splitlines():
        line = line.split(" #", 1)[0].strip()
        for part in re.split(r"&&|;|(?<![&>])&(?!&)", line):
            words = shlex.split(part)
            while words and (words[0] == "env" or "=" in words[0] or words[0].startswith("-")):
                words = words[2:] if words[0] == "-u" else words[1:]  # env -u NAME
            if words[:1] == ["vsm"]:
                found.append(words[1:])
            elif "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["vsm"]:
                found.append(words[words.index("-m") + 2 :])
    return found


def _shell_commands() -> list[tuple[str, list[str]]]:
    out = []
    for page in _pages():
        for words, body in _blocks(page):
            if words[:1] in (["bash"], ["sh"], ["console"], []):
                out += [(_rel(page), argv) for argv in _commands(body)]
    return out


def _parse(argv: list[str]) -> None:
    """Parse ``vsm <argv>`` with the parser that ``vsm`` would use (raises SystemExit if not)."""
    if argv[0] == "reproduce":
        from vsm.reproduce import _parser

        _parser().parse_args(argv[1:])
    elif argv[0] == "bench":
        from vsm.bench import build_parser

        build_parser().parse_args(argv[1:])
    else:
        from vsm.cli import build_parser

        build_parser().parse_args(argv)


def test_the_docs_show_vsm_commands():
    commands = _shell_commands()
    assert {argv[0] for _, argv in commands} >= {"train", "eval", "reproduce", "bench"}


@pytest.mark.parametrize(
    ("page", "argv"), _shell_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_vsm_commands_parse(page, argv):
    try:
        _parse(argv)
    except SystemExit as e:
        pytest.fail(f"{page}: `vsm {' '.join(argv)}` is rejected by its parser (exit {e.code})")


def test_command_extraction():
    body = (
        "pip install . && vsm train --steps 3 --out a &  # demo\n"
        "env -u TRITON_INTERPRET python -m vsm bench --check --out b\n"
        "OMP_NUM_THREADS=1 python benches/bench_seeds.py --json x\n"
        "torchrun --nproc_per_node=2 -m vsm train --steps 3\n"
    )
    assert _commands(body) == [
        ["train", "--steps", "3", "--out", "a"],
        ["bench", "--check", "--out", "b"],
        ["train", "--steps", "3"],
    ]
    with pytest.raises(UsageError, match="unrecognized arguments: --no-such-option"):
        _parse(["train", "--no-such-option"])
