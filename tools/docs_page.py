#!/usr/bin/env python3
"""Write the docs page of a public overlay module, from its source.

    python3 tools/docs_page.py torch.utils.retry            # -> docs/source/torch.utils.retry.rst
    python3 tools/docs_page.py torch.cuda --feature memory  # -> docs/source/torch.cuda.memory.rst

The second form documents the names that patches add to an existing upstream
module (found by diffing its ``__all__`` against the base wheel), with their
docstrings looked up in the overlay files beside it.

The page follows the house pattern (see CONTRIBUTING.md, "Docs pages"): title,
``automodule`` (which renders the module docstring), ``currentmodule``, a
runnable example taken from the first ``Example::`` block among the module's
public functions and classes (doctest prompts removed), and an autosummary of
exactly ``__all__``.  Nothing is imported: the page is built from the AST, so it
works before the wheel is rebuilt.  Review the example; it must run on a
CPU-only machine (``tools/test/test_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import patchset  # noqa: E402


def _source(module: str) -> Path:
    rel = module.replace(".", "/")
    for candidate in (patchset.OVERLAY / f"{rel}.py", patchset.OVERLAY / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"error: {module} is not an overlay module (no torch_overlay/{rel}.py or {rel}/__init__.py)")


def _example(doc: str) -> list[str]:
    """The code of the first ``Example::`` block of a docstring, without doctest prompts or outputs."""
    lines = doc.expandtabs().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Example::":
            code = []
            for body in lines[i + 1 :]:
                stripped = body.strip()
                if stripped.startswith((">>> # xdoctest: +SKIP", ">>> # xdoctest: +REQUIRES")):
                    break  # the rest needs what a CPU-only docs build lacks
                if stripped.startswith((">>> ", "... ")) or stripped in (">>>", "..."):
                    code.append(stripped[4:])
                elif stripped and not body.startswith(" " * (len(line) - len(line.lstrip()) + 1)):
                    break
            return code
    return []


def _docstrings(paths: list[Path]) -> dict[str, str]:
    docs = {}
    for path in paths:
        for n in ast.parse(path.read_text()).body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                docs.setdefault(n.name, ast.get_docstring(n) or "")
    return docs


def page(module: str, feature: str | None = None) -> str:
    if feature is None:
        source = _source(module)
        names: list[str] = []
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                names = list(ast.literal_eval(node.value))
        if not names:
            raise SystemExit(f"error: {module} has no literal __all__")
        docs = _docstrings([source])
        title, head = module, f".. automodule:: {module}\n\n"
    else:
        import build_wheel
        import check

        base = build_wheel.fetch_base_wheel(patchset.ROOT / "build" / "base")
        names = sorted(check.names_added_by_patches(base).get(module, ()))
        if not names:
            raise SystemExit(f"error: no patch adds names to {module}.__all__")
        folder = patchset.OVERLAY / module.replace(".", "/")
        docs = _docstrings(sorted(folder.glob("*.py")))
        title, head = f"{module}.{feature}", ""
    example = next((code for name in names if (code := _example(docs.get(name, "")))), [])
    if not example:
        raise SystemExit(f"error: no public object of {module} has an 'Example::' block to show")
    setup = ["import torch", f"import {module}"]
    body = "\n".join(f"    {line}".rstrip() for line in [*setup, *example])
    listing = "\n".join(f"    {n}" for n in sorted(names, key=str.lower))
    return (
        f"{title}\n{'=' * len(title)}\n\n"
        f"{head}"
        f".. currentmodule:: {module}\n\n"
        f".. code-block:: python\n\n{body}\n\n"
        f".. autosummary::\n    :toctree: generated\n    :nosignatures:\n\n{listing}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="a public overlay module, e.g. torch.utils.retry")
    ap.add_argument("--feature", help="document the names patches add to an existing module, on page MODULE.FEATURE")
    ap.add_argument("--stdout", action="store_true", help="print the page instead of writing it")
    args = ap.parse_args(argv)
    text = page(args.module, args.feature)
    if args.stdout:
        print(text, end="")
        return 0
    out = patchset.DOCS / "source" / f"{args.module}{'.' + args.feature if args.feature else ''}.rst"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
