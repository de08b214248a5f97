#!/usr/bin/env python3
"""Check that the patch set is consistent and applies cleanly to the pinned base.

    python tools/check.py [--base-wheel PATH] [--installed]

- ``patches/series`` lists exactly the ``*.patch`` files in ``patches/``; every
  folder under ``patches/`` is a variant folder that ``patches/releases``
  names, holding only variants of patches of the series;
- the base wheel (default: torch 2.13.0's) is a supported release, and every
  patch of that release's series parses, only modifies files that exist in
  the base, and every hunk applies exactly to the base wheel's bytes (read in
  place, nothing extracted);
- no overlay file already exists in the base (the overlay only adds files);
  every overlay module compiles, and every module and name it imports from
  torch outside a ``try:`` exists in the base (or the overlay): what differs
  between releases must be feature-detected;
- every overlay module has a docstring, and every public module (and every
  package ``__init__``) defines ``__all__`` naming things it defines or imports;
- every overlay file, patch, test file and docs page belongs to exactly one PR
  of the upstream stack (``tools/stack.py``), and each PR's patches apply on
  top of the PRs before it;
- every public overlay module has its docs page ``docs/source/<module>.rst``,
  every page names its module (``.. currentmodule::``) and is linked from an
  index page's ``.. toctree::`` (``docs/source/utilities.rst``), whose entries
  are all pages;
- no line of ``torch_overlay/`` or ``test/`` is too long for upstream's flake8
  (B950, ``max-line-length = 120``; the rest of its rules are ruff's, run by
  ``tools/run_tests.py`` with ``ruff.toml``);
- the repository is self-contained: no tracked text file refers to files
  outside it or to this project's internal planning (its contract, notes,
  findings ids, issue numbers); public facts cite their public sources
  (``pytorch/pytorch#NNNN``, peers' repositories) directly;
- every ``test/test_*.py`` follows PyTorch's conventions (``# Owner(s):`` header,
  ``run_tests()`` under ``if __name__ == "__main__":``);
- with ``--installed`` (run by the test environment's Python): the imported
  torch carries exactly these overlay files; every public overlay module passes
  the rules of PyTorch's ``test/test_public_bindings.py``: every name of
  ``__all__`` exists and reports the module as its ``__module__`` (with a
  docstring holding an ``Example::`` block), and no function or class without
  a leading underscore is left out of ``__all__``; names that patches add to
  the ``__all__`` of an existing public module (``torch.cuda``, ``torch.amp``)
  follow the same rules; a module's page lists exactly its ``__all__`` in an
  autosummary, and every name a patch adds is listed on some page.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import re
import subprocess
import tokenize
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_wheel  # noqa: E402
import patchset  # noqa: E402
import rawzip  # noqa: E402


def check_series() -> list[str]:
    errors = []
    try:
        folders = {f for fs in patchset.releases().values() for f in fs}
    except patchset.PatchSetError as e:
        return [str(e)]
    listed = set(patchset.series_names())
    present = {p.name for p in patchset.PATCHES.glob("*.patch")}
    for name in sorted(present - listed):
        errors.append(f"patches/{name} is not listed in patches/series")
    for name in sorted(listed - present):
        errors.append(f"patches/series lists {name}, which is not a .patch file")
    for sub in sorted(p for p in patchset.PATCHES.iterdir() if p.is_dir()):
        if sub.name not in folders:
            errors.append(f"patches/{sub.name}/ is not a variant folder of any release in patches/releases")
        for f in sorted(sub.iterdir()):
            if f.name not in listed:
                errors.append(
                    f"patches/{sub.name}/{f.name} is not a variant of a patch of patches/series "
                    "(a variant has the name of the patch it replaces)"
                )
    return errors


def check_overlay_compiles() -> list[str]:
    """Every overlay module compiles (syntax of the oldest supported Python is ruff's job)."""
    errors = []
    for rel, path in patchset.overlay_files().items():
        if path.suffix == ".py":
            try:
                compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
            except SyntaxError as e:
                errors.append(f"torch_overlay/{rel}:{e.lineno}: does not compile: {e.msg}")
    return errors


def _top_level_names(source: bytes) -> set[str] | None:
    """Names a module defines at its top level (in ``if``/``try`` blocks too); None if it has ``__getattr__`` or ``*``."""
    names: set[str] = set()
    todo = list(ast.parse(source).body)
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if n.name == "__getattr__":
                return None
            names.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
                names.update(x.id for x in ast.walk(t) if isinstance(x, ast.Name))
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in n.names):
                return None
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, (ast.If, ast.Try, ast.With)):
            todo += n.body + getattr(n, "orelse", []) + getattr(n, "finalbody", [])
            for h in getattr(n, "handlers", []):
                todo += h.body
    return names


def _imports_outside_try(tree: ast.AST, package: str) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import of torch not guarded by a ``try:``."""
    guarded: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Try):
            guarded.update(id(x) for stmt in n.body for x in ast.walk(stmt))
    out = []
    for n in ast.walk(tree):
        if id(n) in guarded:
            continue
        if isinstance(n, ast.Import):
            out += [(n.lineno, a.name, []) for a in n.names if a.name.split(".")[0] == "torch"]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = package.split(".")
                base = base[: len(base) - n.level + 1]
                module = ".".join(base + ([n.module] if n.module else []))
            else:
                module = n.module or ""
            if module.split(".")[0] == "torch":
                out.append((n.lineno, module, [a.name for a in n.names]))
    return out


def check_overlay_imports(tree: patchset.Tree, label: str) -> list[str]:
    """Every torch module and name the overlay imports outside a ``try:`` exists in ``tree`` (patched) or the overlay."""
    errors = []
    overlay = patchset.overlay_files()
    patched = {ch.rel: ch.after for ch in patchset.plan(tree).changes if ch.after is not None}

    def source(module: str) -> bytes | None:
        for rel in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"):
            if rel in patched:
                return patched[rel]
            data = tree.read(rel)
            if data is not None:
                return data
        return None

    def exists(module: str) -> bool:
        base = module.replace(".", "/")
        return source(module) is not None or tree.read(base + ".pyi") is not None or any(
            tree.read(f"{base}{ext}") is not None for ext in (".cpython-311-x86_64-linux-gnu.so", ".abi3.so")
        )

    for rel, path in overlay.items():
        if path.suffix != ".py":
            continue
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for lineno, imported, names in _imports_outside_try(ast.parse(path.read_bytes()), package):
            if imported.startswith("torch._C") or not exists(imported):
                if not imported.startswith("torch._C"):
                    errors.append(f"torch_overlay/{rel}:{lineno}: imports {imported}, which {label} does not have")
                continue
            defined = _top_level_names(source(imported) or b"")
            for name in names:
                if defined is None or name in defined or exists(f"{imported}.{name}"):
                    continue
                errors.append(
                    f"torch_overlay/{rel}:{lineno}: imports {name} from {imported}, which {label} does not define; "
                    "feature-detect it (try/except ImportError or getattr)"
                )
    return errors


def check_against_base(base_wheel: Path) -> list[str]:
    errors = []
    with rawzip.RawZip(base_wheel) as zf:
        tree = build_wheel.ZipTree(zf)
        for rel in patchset.overlay_files():
            if rel in tree.names:
                errors.append(f"torch_overlay/{rel} already exists in {base_wheel.name}; change it with a patch instead")
        if errors:
            return errors
        try:
            p = patchset.plan(tree)
        except (patchset.PatchSetError, ValueError) as e:
            return [str(e)]
        if p.unchanged:
            errors.append(f"{base_wheel.name} already contains parts of the patch set: {p.unchanged}")
        errors += check_overlay_imports(tree, base_wheel.name)
    return errors


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(patchset.OVERLAY).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def check_overlay_sources() -> list[str]:
    errors = []
    for rel, path in patchset.overlay_files().items():
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        if ast.get_docstring(tree) is None:
            errors.append(f"torch_overlay/{rel}: no module docstring")
        is_public = path.name == "__init__.py" or not path.name.startswith("_")
        all_node = next(
            (n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)),
            None,
        )
        if is_public and all_node is None:
            errors.append(f"torch_overlay/{rel}: public module {_module_name(path)} has no __all__")
        if all_node is not None:
            try:
                names = ast.literal_eval(all_node.value)
            except ValueError:
                errors.append(f"torch_overlay/{rel}: __all__ must be a literal list of names")
                continue
            defined = set()
            for n in ast.walk(tree):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(n.name)
                elif isinstance(n, ast.Assign):
                    defined.update(t.id for t in n.targets if isinstance(t, ast.Name))
                elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                    defined.add(n.target.id)
                elif isinstance(n, (ast.Import, ast.ImportFrom)):
                    defined.update((a.asname or a.name).split(".")[0] for a in n.names)
            for name in names:
                if name not in defined:
                    errors.append(f"torch_overlay/{rel}: __all__ names {name!r}, which the module does not define")
    return errors


def check_test_conventions() -> list[str]:
    errors = []
    for path in sorted(patchset.TESTS.glob("test_*.py")):
        text = path.read_text()
        if not text.startswith("# Owner(s): ["):
            errors.append(f"test/{path.name}: must start with a '# Owner(s): [\"module: ...\"]' line")
        if 'if __name__ == "__main__":\n    run_tests()' not in text:
            errors.append(f"test/{path.name}: must end with 'if __name__ == \"__main__\":' + 'run_tests()'")
        if "from torch.testing._internal.common_utils import" not in text:
            errors.append(f"test/{path.name}: must use TestCase/run_tests from torch.testing._internal.common_utils")
    return errors


#: Upstream's .flake8: max-line-length = 120, enforced by flake8-bugbear's
#: B950, which fires only past 10% more (ruff has no B950; E501 is ignored).
MAX_LINE_LENGTH = 120


def _noqa_b950_lines(text: str) -> set[int]:
    """Lines where B950 is silenced, with flake8's rule for multi-line strings:
    a ``# noqa`` after the closing quotes covers every line of the string."""
    exempt = {n for n, line in enumerate(text.splitlines(), 1) if re.search(r"# noqa(?!:)|# noqa:.*B950", line)}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0] and tok.end[0] in exempt:
            exempt.update(range(tok.start[0], tok.end[0] + 1))
    return exempt


# --------------------------------------------------------------------------
# Self-contained repository
# --------------------------------------------------------------------------

# Built from pieces so that this file does not match its own patterns.
_INTERNAL_REFERENCES = [
    (re.compile(r"\b" + "SP" + r"EC\b"), "the project's internal contract"),
    (re.compile("PRIOR" + r"[-_]ART"), "the project's internal notes"),
    (re.compile(r"\b" + "FIND" + r"INGS\b"), "the project's internal findings"),
    (re.compile(r"\bfindings? [A-Z]\d{1,2}\b", re.I), "an internal finding id"),
    (re.compile(r"#\s*[A-Z]\d{1,2}\b\s*[:+]"), "an internal finding id"),
    (re.compile(r"\((?:[A-Z]\d{1,2}(?:[-\u2013][A-Z]\d{1,2})?[,;/ ]*)+\)"), "internal finding ids"),
    (re.compile(r"\bG\d{1,2}\b|\bg\d{1,2}_[a-z]"), "an internal finding id"),  # also inside a name
    (re.compile(r"\.\./" + r"shared\b|/wo" + "rk/"), "a file outside the repository"),
    (re.compile("\u00a7" + r"\s*\d"), "a section of an internal document"),
    (re.compile(r"(?<![\w/#.-])issues? #?\d{1,3}\b(?![\d.])", re.I), "an internal issue number"),
]


def tracked_text_files() -> list[Path]:
    """The repository's tracked files (``git ls-files``), else every file outside ``.git``, build and venvs."""
    try:
        out = subprocess.run(
            ["git", "-C", str(patchset.ROOT), "ls-files", "-z"], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ).stdout.decode()
        paths = [patchset.ROOT / rel for rel in out.split("\0") if rel]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "build", "dist", ".venv", "__pycache__", ".hypothesis", ".pytest_cache"}
        paths = [
            p for p in sorted(patchset.ROOT.rglob("*")) if p.is_file() and not skip & set(p.relative_to(patchset.ROOT).parts)
        ]
    return [p for p in paths if p.is_file()]


def internal_references(text: str) -> list[tuple[int, str, str]]:
    """Every (line number, matched text, what it refers to) of ``text`` that points at internal planning."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for pattern, what in _INTERNAL_REFERENCES:
            for m in pattern.finditer(line):
                found.append((lineno, m.group(0), what))
    return found


def check_self_contained(files: list[Path] | None = None) -> list[str]:
    """No tracked text file refers to files outside the repository or to internal planning."""
    errors = []
    for path in tracked_text_files() if files is None else files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary (an image, a wheel)
        try:
            rel = path.relative_to(patchset.ROOT).as_posix()
        except ValueError:
            rel = str(path)
        for lineno, match, what in internal_references(text):
            errors.append(
                f"{rel}:{lineno}: {match!r} refers to {what}; the repository must stand alone: "
                "say it in words here, or cite the public source (pytorch/pytorch#NNNN, a peer's repository and issue)"
            )
    return errors


def check_line_length() -> list[str]:
    """flake8's B950 as PyTorch runs it, on the files that land upstream."""
    errors = []
    limit = MAX_LINE_LENGTH + MAX_LINE_LENGTH // 10
    files = [p for p in patchset.overlay_files().values() if p.suffix == ".py"]
    files += sorted(patchset.TESTS.glob("*.py"))
    for path in files:
        text = path.read_text()
        exempt = _noqa_b950_lines(text)
        for lineno, line in enumerate(text.splitlines(), 1):
            if len(line) > limit and lineno not in exempt:
                errors.append(
                    f"{path.relative_to(patchset.ROOT)}:{lineno}: B950 line too long "
                    f"({len(line)} > {MAX_LINE_LENGTH} characters); wrap it or add '# noqa: B950'"
                )
    return errors


def check_installed() -> list[str]:
    """Run inside the environment under test: is its torch this patch set?"""
    import torch

    errors = []
    site = Path(torch.__file__).resolve().parent.parent
    for rel, src in patchset.overlay_files().items():
        installed = site / rel
        if not installed.exists() or installed.read_bytes() != src.read_bytes():
            errors.append(f"{installed} is missing or differs from torch_overlay/{rel}: rebuild and reinstall the wheel")
    if errors:
        return errors
    for rel, path in patchset.overlay_files().items():
        if path.suffix != ".py" or not _is_public(path):
            continue
        name = _module_name(path)
        errors += check_public_names(importlib.import_module(name))
    return errors


def _is_public(path: Path) -> bool:
    return path.name == "__init__.py" or not path.name.startswith("_")


def _looks_public(obj: object, attr: str, modname: str) -> bool:
    """PyTorch's test_public_bindings rule: no leading ``_`` and defined in ``modname`` (not in a ``._`` submodule of it)."""
    elem_module = getattr(obj, "__module__", None)
    if attr.startswith("_") or not isinstance(elem_module, str):
        return False
    if elem_module != modname and not elem_module.startswith(modname + "."):
        return False
    return "._" not in elem_module[len(modname) :]


def check_public_names(module, only: set[str] | None = None, *, exact: bool = True) -> list[str]:
    """Mirror of ``test_correct_module_names`` in PyTorch's test/test_public_bindings.py for one module.

    Every name in ``__all__`` exists, reports ``module`` as its ``__module__``
    and has a docstring with an ``Example::`` block; every other function or
    class defined in the module has a leading underscore (nothing private
    leaks into the public API).  With ``only``, just those names of
    ``__all__`` are checked (the names a patch adds to an upstream module);
    with ``exact=False``, ``__module__`` may also be a public submodule
    (``torch.amp.autocast_mode`` for ``torch.amp``), as upstream allows, but
    not a private one (``torch.cuda._safe_run`` for ``torch.cuda``).
    """
    import inspect

    name = module.__name__
    public = getattr(module, "__all__", None)
    if public is None:
        return [f"{name} has no __all__"]
    errors = []
    for attr in public if only is None else sorted(only):
        obj = getattr(module, attr, None)
        if obj is None:
            errors.append(f"{name}.__all__ names {attr!r}, which does not exist")
            continue
        if inspect.ismodule(obj) or not (callable(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != name and (exact or not _looks_public(obj, attr, name)):
            errors.append(
                f"{name}.{attr}.__module__ is {getattr(obj, '__module__', None)!r}, expected {name!r}: "
                f"set {attr}.__module__ = {name!r} or define it in {name}"
            )
        if "Example::" not in (obj.__doc__ or ""):
            errors.append(f"{name}.{attr} has no docstring with an 'Example::' block")
    for attr in sorted(set(dir(module)) - set(public)) if only is None else ():
        obj = getattr(module, attr)
        if inspect.ismodule(obj) or not (callable(obj) or inspect.isclass(obj)):
            continue
        if _looks_public(obj, attr, name):
            errors.append(
                f"{name}.{attr} looks public (no leading underscore, defined in {obj.__module__}) but is not in "
                f"{name}.__all__: add it to __all__ or rename it to _{attr}"
            )
    return errors


def check_stack(base_wheel: Path) -> list[str]:
    """Every file belongs to exactly one PR of tools/stack.py, and each PR's patches apply after the PRs before it."""
    import export_upstream
    import stack

    try:
        stack.assign()
    except stack.StackError as e:
        return str(e).splitlines()
    with rawzip.RawZip(base_wheel) as zf:
        tree = build_wheel.ZipTree(zf)
        try:
            release = patchset.select_release(patchset.torch_version(tree), tree.describe())
            for _ in export_upstream.commits(export_upstream.pristine_files(tree), release):
                pass
        except patchset.PatchSetError as e:
            return [str(e)]
    return []


def _literal_all(source: bytes) -> set[str]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return set()
    return set()


def names_added_by_patches(base_wheel: Path) -> dict[str, set[str]]:
    """Public upstream module -> the names the patches add to its ``__all__`` (e.g. ``torch.cuda``: ``safe_run``)."""
    out: dict[str, set[str]] = {}
    with rawzip.RawZip(base_wheel) as zf:
        tree = build_wheel.ZipTree(zf)
        for ch in patchset.plan(tree).changes:
            if not ch.rel.endswith(".py") or ch.rel not in tree.names or ch.after is None:
                continue
            parts = ch.rel[: -len(".py")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            if any(part.startswith("_") for part in parts):
                continue
            added = _literal_all(ch.after) - _literal_all(tree.read(ch.rel))
            if added:
                out[".".join(parts)] = added
    return out


def check_patched_public_names(base_wheel: Path) -> list[str]:
    """Names a patch adds to the ``__all__`` of an existing public module follow the same rules as overlay modules."""
    errors = []
    for name, added in sorted(names_added_by_patches(base_wheel).items()):
        errors += check_public_names(importlib.import_module(name), only=added, exact=False)
    return errors


def _docs_pages() -> dict[str, Path]:
    """The module pages of ``docs/source/`` (every page but the index pages)."""
    pages = {p.stem: p for p in sorted((patchset.DOCS / "source").glob("*.rst"))}
    return {stem: p for stem, p in pages.items() if not is_index_page(p.read_text())}


def is_index_page(text: str) -> bool:
    """An index page links other pages with ``.. toctree::`` and documents no module itself."""
    return ".. toctree::" in text and ".. automodule::" not in text and _current_module(text) is None


def index_pages() -> dict[str, Path]:
    """The index pages of ``docs/source/``: each links module pages, as PyTorch's ``index.rst`` does."""
    pages = {p.stem: p for p in sorted((patchset.DOCS / "source").glob("*.rst"))}
    return {stem: p for stem, p in pages.items() if is_index_page(p.read_text())}


def toctree_entries(text: str) -> list[str]:
    """The documents the ``.. toctree::`` blocks of an rst page list, in order."""
    entries = []
    in_tree = False
    for line in text.splitlines():
        if line.startswith(".. toctree::"):
            in_tree = True
        elif in_tree and line and not line[0].isspace():
            in_tree = False
        elif in_tree and line.strip() and not line.strip().startswith(":"):
            entries.append(line.strip())
    return entries


def _current_module(text: str) -> str | None:
    m = re.search(r"^\.\. currentmodule:: (\S+)$", text, re.M)
    return m.group(1) if m else None


def check_docs_pages() -> list[str]:
    """Every public overlay module has its page ``docs/source/<module>.rst``; every page names its module."""
    errors = []
    pages = _docs_pages()
    modules = {_module_name(path) for path in patchset.overlay_files().values() if path.suffix == ".py" and _is_public(path)}
    for name in sorted(modules - pages.keys()):
        errors.append(
            f"public module {name} has no docs page: add docs/source/{name}.rst "
            "(see docs/source/torch.utils.error_callback.rst and CONTRIBUTING.md)"
        )
    for stem, page in pages.items():
        text = page.read_text()
        if _current_module(text) is None:
            errors.append(f"docs/source/{page.name} must name its module with '.. currentmodule:: <module>'")
        if stem in modules and f".. automodule:: {stem}\n" not in text:
            errors.append(f"docs/source/{page.name} must document its module with '.. automodule:: {stem}'")
    indexes = index_pages()
    if not indexes:
        errors.append("docs/source/ has no index page: the module pages must be linked from a '.. toctree::' page")
    linked: set[str] = set()
    for index in indexes.values():
        for entry in toctree_entries(index.read_text()):
            linked.add(entry)
            if entry not in pages:
                errors.append(f"docs/source/{index.name}: the toctree lists {entry}, which is no page of docs/source/")
    for stem in sorted(pages.keys() - linked):
        if indexes:
            errors.append(
                f"docs/source/{stem}.rst is linked from no index page: add it to a toctree of "
                f"{', '.join(f'docs/source/{p.name}' for p in indexes.values())}"
            )
    return errors


def check_docs_installed(base_wheel: Path) -> list[str]:
    """Each page's autosummary lists names of its module's ``__all__``: all of them on a module's own page,
    and every name a patch adds to an upstream module on some page."""
    errors = []
    documented: dict[str, set[str]] = {}
    for stem, page in _docs_pages().items():
        text = page.read_text()
        name = _current_module(text)
        if name is None:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            errors.append(f"docs/source/{page.name}: cannot import {name}: {e}")
            continue
        listed = _autosummary_entries(text)
        documented.setdefault(name, set()).update(listed)
        public = list(getattr(module, "__all__", ()))
        if stem == name:
            for attr in sorted(set(public) - set(listed)):
                errors.append(f"docs/source/{page.name}: {name}.{attr} is in __all__ but not in the page's autosummary")
        for attr in sorted(set(listed) - set(public)):
            errors.append(f"docs/source/{page.name}: autosummary lists {attr}, which is not in {name}.__all__")
    for name, added in sorted(names_added_by_patches(base_wheel).items()):
        for attr in sorted(added - documented.get(name, set())):
            errors.append(
                f"{name}.{attr} (added by a patch) is on no docs page: list it in the autosummary of a page "
                f"docs/source/{name}.<feature>.rst with '.. currentmodule:: {name}'"
            )
    return errors


def _autosummary_entries(text: str) -> list[str]:
    """The names listed in the ``.. autosummary::`` blocks of an rst page."""
    names = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != ".. autosummary::":
            continue
        for body in lines[i + 1 :]:
            if body and not body[0].isspace():
                break
            item = body.strip()
            if item and not item.startswith(":"):
                names.append(item.rsplit(".", 1)[-1])
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-wheel", type=Path, help=f"base torch wheel of a supported release (default: torch=={patchset.BASE_VERSION} via pip)")
    ap.add_argument("--installed", action="store_true", help="also check the torch importable here")
    args = ap.parse_args(argv)

    base = args.base_wheel or build_wheel.fetch_base_wheel(patchset.ROOT / "build" / "base")
    errors = check_series()
    errors += check_overlay_compiles()
    errors += check_against_base(base)
    errors += check_overlay_sources()
    errors += check_test_conventions()
    errors += check_line_length()
    errors += check_self_contained()
    errors += check_stack(base)
    errors += check_docs_pages()
    if args.installed:
        errors += check_installed()
        errors += check_docs_installed(base)
        errors += check_patched_public_names(base)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if not errors:
        with rawzip.RawZip(base) as zf:
            release = patchset.select_release(patchset.torch_version(build_wheel.ZipTree(zf)))
        variants = [p for p in patchset.series(release) if p.parent != patchset.PATCHES]
        print(
            f"patch set OK: {len(patchset.overlay_files())} overlay files compile and import what {base.name} has; "
            f"the {len(patchset.series(release))} patches of torch {release}'s series "
            f"({len(variants)} of them {release}'s variants) apply exactly"
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
