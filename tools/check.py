#!/usr/bin/env python3
"""Check that the patch set is consistent and applies cleanly to the pinned base.

    python tools/check.py [--base-wheel PATH] [--installed]

- ``patches/series`` lists exactly the ``*.patch`` files in ``patches/``;
- every patch parses, only modifies files that exist in the base, and every
  hunk applies to the base wheel's bytes (read in place, nothing extracted);
- no overlay file already exists in the base (the overlay only adds files);
- every overlay module has a docstring, and every public module (and every
  package ``__init__``) defines ``__all__`` naming things it defines or imports;
- every ``test/test_*.py`` follows PyTorch's conventions (``# Owner(s):`` header,
  ``run_tests()`` under ``if __name__ == "__main__":``);
- with ``--installed`` (run by the test environment's Python): the imported
  torch carries exactly these overlay files, and every public object of every
  overlay module reports that module as its ``__module__`` and has a docstring
  with an ``Example::`` block.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_wheel  # noqa: E402
import patchset  # noqa: E402
import rawzip  # noqa: E402


def check_series() -> list[str]:
    errors = []
    listed = {p.name for p in patchset.series()}
    present = {p.name for p in patchset.PATCHES.glob("*.patch")}
    for name in sorted(present - listed):
        errors.append(f"patches/{name} is not listed in patches/series")
    for name in sorted(listed - present):
        errors.append(f"patches/series lists {name}, which is not a .patch file")
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
        if path.suffix != ".py" or (path.name.startswith("_") and path.name != "__init__.py"):
            continue
        name = _module_name(path)
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr, None)
            if obj is None:
                errors.append(f"{name}.__all__ names {attr!r}, which does not exist")
                continue
            if not (callable(obj) or isinstance(obj, type)) or isinstance(obj, type(module)):
                continue
            if getattr(obj, "__module__", None) != name:
                errors.append(f"{name}.{attr}.__module__ is {obj.__module__!r}, expected {name!r}")
            if "Example::" not in (obj.__doc__ or ""):
                errors.append(f"{name}.{attr} has no docstring with an 'Example::' block")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-wheel", type=Path, help=f"default: torch=={patchset.BASE_VERSION} via pip")
    ap.add_argument("--installed", action="store_true", help="also check the torch importable here")
    args = ap.parse_args(argv)

    base = args.base_wheel or build_wheel.fetch_base_wheel(patchset.ROOT / "build" / "base")
    errors = check_series()
    errors += check_against_base(base)
    errors += check_overlay_sources()
    errors += check_test_conventions()
    if args.installed:
        errors += check_installed()
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if not errors:
        n_patches = len(patchset.series())
        print(f"patch set OK: {len(patchset.overlay_files())} overlay files, {n_patches} patches apply cleanly to {base.name}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
