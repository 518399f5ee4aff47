"""Sphinx configuration of vsm's documentation site (``docs/``).

Build (also part of the README's test command and ``.ci/run``, warnings and broken
cross-references as errors)::

    python -m sphinx -W -n --keep-going -q -b html docs docs/_build/html

The API reference (``api.md``) is generated from the docstrings by autodoc + napoleon (Google-style
``Args:``/``Returns:``): :func:`_module_pages` writes one page per module of the ``vsm`` package
into ``docs/api/`` (generated, ignored by git) when the build starts. The Markdown pages are MyST;
their Python examples run in ``tests/test_docs_examples.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The documented package is the installed vsm (with its compiled extension); the source tree is
# appended after site-packages, so it is only found when vsm is not installed.
sys.path.append(str(ROOT / "python"))
# Importing vsm must not need a GPU; the Triton kernels are only imported, never launched.
os.environ.setdefault("TRITON_INTERPRET", "1")

import dataclasses  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import re  # noqa: E402

import vsm  # noqa: E402

project = "vsm"
author = "the vsm developers"
copyright = "the vsm developers"  # noqa: A001 (Sphinx's name)
release = version = vsm.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $…$ maths, ::: fences, heading anchors for [text](page.md#anchor) links.
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc / napoleon
# Every object is documented once, in the module that defines it (a package's ``__all__`` is
# ignored so that its re-exports are not documented twice); references to a re-exported name
# (``vsm.posterior_fd``, ``vsm.train.Trainer``) resolve to that one place (:func:`_resolve_alias`).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False  # torch's docstrings (nn.Module.forward, ...) are torch's
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = False  # "Attributes:" entries are targets: :attr:`Trainer.history` resolves
napoleon_attr_annotations = False  # their types are in the signatures already

# Nitpicky mode (-n) reports every reference that does not resolve. References into other
# projects (torch, numpy, the standard library, ...) cannot resolve: the build is offline (no
# intersphinx inventories), so they are ignored here; every reference into vsm must resolve.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|numpy|np|triton|tqdm|matplotlib|sklearn|scipy|argparse|collections|"
        r"typing|typing_extensions|enum|dataclasses|os|pathlib|concurrent|multiprocessing|"
        r"signal|types|contextlib|abc|json|io|fcntl|atexit|ray)(\..*)?",
    ),
    # builtins and typing names as they appear in signatures
    (
        r"py:.*",
        r"(None|int|float|str|bool|bytes|dict|list|tuple|set|object|type|slice|"
        r"Callable|Iterator|Iterable|Sequence|Mapping|Any|Literal|Optional|Union|Self|TypeAlias|"
        r"ValueError|TypeError|RuntimeError|KeyError|Exception|KeyboardInterrupt|NotImplemented|"
        r"Tensor|ndarray|Path|Generator|NamedTuple|Protocol|ClassVar|Final|TypeVar|ParamSpec)",
    ),
    # type variables in signatures
    (r"py:class", r"vsm\..*\.T"),
]

html_theme = "furo"
html_title = f"vsm {release}"


def _lookup(path: str) -> tuple[object, str] | None:
    """The object a dotted path names in vsm, and the name it is documented under (its defining
    module and qualified name), or None."""
    parts = path.split(".")
    if parts[0] != "vsm":
        return None
    obj: object = importlib.import_module("vsm")
    name = "vsm"
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                return None
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(obj, type(vsm)):
            name = obj.__name__
        elif isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
            name = f"{module}.{qualname}"
        else:  # data, properties: documented under their owner
            name = f"{name}.{part}"
    return obj, name


def _resolve_alias(app, env, node, contnode):
    """``missing-reference``: a reference to a name that vsm re-exports or imports (``vsm.Trainer``,
    ``Trainer`` inside :mod:`vsm.train.seeds`) resolves to where the object is documented."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    context = [c for c in (node.get("py:module"), node.get("py:class")) if c]
    candidates = [target]
    if context:
        candidates.insert(0, ".".join([*context, target]))
        candidates.insert(1, f"{context[0]}.{target}")
    domain = env.get_domain("py")
    for cand in candidates:
        found = _lookup(cand)
        if found is None:
            continue
        name = found[1]
        if name not in domain.objects and name not in domain.modules:
            # data re-exported from its defining module: the documented name holding this object
            tail = "." + cand.rsplit(".", 1)[-1]
            same = [
                n
                for n in domain.objects
                if n.endswith(tail) and (_lookup(n) or (None,))[0] is found[0]
            ]
            name = same[0] if len(same) == 1 else name
        if name in domain.objects or name in domain.modules:
            return domain.resolve_xref(
                env,
                node["refdoc"],
                app.builder,
                "obj" if name in domain.objects else "mod",
                name,
                node,
                contnode,
            )
    return None


API_DIR = HERE / "api"  # generated, ignored by git


def _module_pages(app) -> None:
    """``builder-inited``: one page ``api/<module>.rst`` per module of vsm (private ones too:
    the docstrings refer to them), each an ``automodule`` with its submodules in a toctree.
    Files are rewritten only when their text changes, so incremental builds stay incremental."""
    names = ["vsm"] + [
        m.name
        for m in pkgutil.walk_packages(vsm.__path__, prefix="vsm.")
        if not m.name.endswith("__main__")
    ]
    API_DIR.mkdir(exist_ok=True)
    wanted = set()
    for name in names:
        children = [n for n in names if n.rpartition(".")[0] == name]
        title = name.replace("_", r"\_")
        text = f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n"
        if children:
            text += "\n.. toctree::\n   :maxdepth: 1\n\n" + "".join(f"   {c}\n" for c in children)
        path = API_DIR / f"{name}.rst"
        wanted.add(path.name)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for stale in API_DIR.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()


def _fix_signature(app, what, name, obj, options, signature, return_annotation):
    """``autodoc-process-signature``: two signatures that are not Python.

    - The compiled module's docstrings start with a signature whose "return annotation" is prose
      (``-> (B, G, L) second-order ... gradients``): left out (the docstring still says it).
    - A dataclass field with a ``default_factory`` shows as ``= <factory>``: written as the
      ``field(default_factory=...)`` it is.
    """
    if name.startswith("vsm._core.") and return_annotation and " " in return_annotation:
        return signature, None
    if signature and "<factory>" in signature and dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            factory = getattr(f.default_factory, "__qualname__", None)
            if factory is not None:
                signature = re.sub(
                    rf"(\b{f.name}(: [^=]*)?=\s*)<factory>",
                    rf"\1field(default_factory={factory})",
                    signature,
                )
        return signature, return_annotation
    return None


_PROSE: dict[int, list[str]] = {}


def _hide_from_napoleon(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``, before napoleon: napoleon reads the first line of a data or
    property docstring as ``type: description``, but vsm's are prose ("The learned noise
    parameter: ..."; autodoc shows the annotation anyway). Such a docstring is set aside here and
    put back by :func:`_restore_after_napoleon`."""
    if what in ("attribute", "data", "property"):
        _PROSE[id(lines)] = lines[:]
        lines.clear()


def _restore_after_napoleon(app, what, name, obj, options, lines) -> None:
    if id(lines) in _PROSE:
        lines[:] = _PROSE.pop(id(lines))


# A literal or a role (left alone), or an emphasis / strong pair ``*word*`` (meant as markup).
_MARKUP = re.compile(
    r"``.+?``|:[\w:+.-]+:`[^`]*`|(?<![\w\\])(\*\*?)(?=[^\s*])[^*]*?(?<=[^\s\\])\1(?!\w)"
)


def _plain_text_stars(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``, after napoleon: vsm's docstrings write shapes with Python's
    unpacking star (``x (B, *data_shape)``, ``(*batch,)``) and conditionals with a bar
    (``q(·|x)``), which reStructuredText would read as the start of emphasis or of a
    substitution. Outside literal blocks, inline literals, roles and matched ``*emphasis*``,
    every ``*`` and ``|`` is escaped so that it shows as written."""
    in_literal, base = False, 0
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if in_literal:
            if not line.strip() or indent > base:
                continue
            in_literal = False
        if line.rstrip().endswith("::"):
            in_literal, base = True, indent
        if line.lstrip().startswith(">>>") or ("*" not in line and "|" not in line):
            continue
        pieces, last = [], 0
        for m in _MARKUP.finditer(line):
            pieces.append(re.sub(r"(?<!\\)([*|])", r"\\\1", line[last : m.start()]))
            pieces.append(m.group(0))
            last = m.end()
        pieces.append(re.sub(r"(?<!\\)([*|])", r"\\\1", line[last:]))
        lines[i] = "".join(pieces)


def setup(app):
    app.connect("autodoc-process-docstring", _hide_from_napoleon, priority=100)
    app.connect("autodoc-process-docstring", _restore_after_napoleon, priority=900)
    app.connect("autodoc-process-docstring", _plain_text_stars, priority=950)
    app.connect("autodoc-process-signature", _fix_signature)
    app.connect("builder-inited", _module_pages)
    app.connect("missing-reference", _resolve_alias)
