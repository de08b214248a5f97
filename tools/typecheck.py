#!/usr/bin/env python3
"""Type-check the overlay with mypy, under PyTorch's settings for ``torch/`` (``mypy.ini``).

    .venv/bin/python tools/typecheck.py [MYPY ARGS...]

Checks every module of ``torch_overlay/torch/`` (``mypy -m torch.utils.retry ...``)
as the torch of the Python running this script holds it: the patched wheel
that ``tools/run_tests.py`` installed, or the develop-mode links of
``setup.py develop``.  So mypy sees each overlay module at its upstream path,
with the patched upstream files and the rest of torch around it (whose own
errors mypy does not report: they are an installed package's).  The cache
lives in ``build/mypy-cache``.  Paths in the report are the overlay's
(``torch_overlay/torch/...``), whatever the install.  Exits with mypy's status.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import patchset  # noqa: E402


def overlay_modules() -> list[str]:
    """The dotted names of the overlay's modules (a package's ``__init__.py`` is the package)."""
    names = []
    for rel in patchset.overlay_files():
        if rel.endswith(".py"):
            parts = rel[: -len(".py")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return sorted(names)


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini")]
    for name in overlay_modules():
        cmd += ["-m", name]
    # From the checkout's root: mypy.ini's cache_dir is relative to it, and nothing there is
    # named torch (the overlay lives in torch_overlay/), so `torch` is the installed one.
    out = subprocess.run([*cmd, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in out.stdout.splitlines():
        print(overlay_path(line), flush=True)
    return out.returncode


def _site() -> Path:
    """The folder holding the torch package mypy checks (found without importing torch)."""
    spec = importlib.util.find_spec("torch")
    origin = spec.origin if spec is not None else None
    return Path(origin).resolve().parent.parent if origin else Path(sysconfig.get_paths()["purelib"]).resolve()


def overlay_path(line: str) -> str:
    """A line of mypy's report, with an installed overlay file's path given as ``torch_overlay/torch/...``."""
    path, sep, rest = line.partition(":")
    site = _site()
    try:
        file = ROOT / path  # mypy names files under the current folder relative to it
        rel = (file.parent.resolve() / file.name).relative_to(site).as_posix()
    except ValueError:
        return line
    return f"torch_overlay/{rel}{sep}{rest}" if sep and rel in patchset.overlay_files() else line


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
