#!/usr/bin/env python3
"""Build the docs pages of ``docs/source/`` with Sphinx, warnings as errors.

    python3 tools/build_docs.py [OUTDIR]      # default: build/docs/html

Uses the test environment ``.venv`` (create it with ``python3 tools/run_tests.py``,
which also runs this build) and installs the pinned ``requirements/docs.txt``
into it.  The pages are
built against the installed patched torch, as PyTorch's docs build does; a
throwaway root links the index pages (``docs/source/utilities.rst``, whose
toctrees link the module pages; upstream, it joins the toctree of
``docs/source/index.rst``) and any page no index page links.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"

CONF = '''
project = "torch-tool (PyTorch patch set)"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]
autosummary_generate = True
napoleon_use_ivar = True
autodoc_typehints = "none"
html_theme = "alabaster"
'''


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "docs" / "html"
    if not PY.exists():
        print("error: no .venv; run python3 tools/run_tests.py first", file=sys.stderr)
        return 1
    requirements = ROOT / "requirements" / "docs.txt"
    stamp = ROOT / ".venv" / ".docs-requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements], check=True)
        stamp.write_text(digest)
    pages = sorted((ROOT / "docs" / "source").glob("*.rst"))
    with tempfile.TemporaryDirectory(prefix="torch-tool-docs-") as tmp:
        src = Path(tmp)
        for page in pages:
            shutil.copy(page, src / page.name)
        (src / "conf.py").write_text(CONF)
        sys.path.insert(0, str(ROOT / "tools"))
        import check

        indexes = check.index_pages()
        linked = {entry for p in indexes.values() for entry in check.toctree_entries(p.read_text())}
        toc = "\n".join(f"    {p.stem}" for p in pages if p.stem in indexes or p.stem not in linked)
        (src / "index.rst").write_text(f"torch-tool API\n==============\n\n.. toctree::\n    :maxdepth: 1\n\n{toc}\n")
        # From outside the checkout, so `import torch` is the installed wheel.
        rc = subprocess.run(
            [PY, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", src / ".doctrees", src, out.resolve()],
            cwd=tmp,
        ).returncode
    if rc == 0:
        print(out / "index.html")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
