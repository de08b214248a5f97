#!/usr/bin/env python3
"""Run the whole test suite against the *installed* patched wheel.

    python tools/run_tests.py [--base-wheel PATH] [PYTEST ARGS...]

1. creates ``.venv`` (once) and installs the pinned test dependencies from
   ``requirements/test.txt``;
2. builds the patched wheel (``python setup.py bdist_wheel``) and installs it
   into ``.venv`` (skipped when the exact same wheel is already installed);
3. checks the patch set (``tools/check.py``) and lints ``torch_overlay/`` and
   ``test/`` with PyTorch's ruff rules (``ruff.toml``), and builds the docs
   pages with Sphinx (``tools/build_docs.py``, warnings as errors);
4. runs ``test/`` (the files that would land in pytorch/test) and the tooling
   tests in ``tools/test/`` with ``.venv``'s pytest, from outside the source
   tree, so ``import torch`` can only be the installed wheel.

``--base-wheel`` patches another build of 2.13.0 (e.g. the CUDA wheel on a GPU
runner) instead of the one pip resolves into ``build/base``.  Extra arguments
go to pytest (e.g. ``-k set_device``).  ``.ci/run`` calls
exactly this command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import apply  # noqa: E402
import patchset  # noqa: E402

VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.perf_counter()


def sh(*cmd: str | Path, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--installed"]:  # the torch of this interpreter: no venv, no pip (tools/run_installed.py)
        import run_installed

        return run_installed.main(argv[1:])
    base_args: list[str] = []
    if argv[:1] == ["--base-wheel"] and len(argv) >= 2:
        base_args = ["--base-wheel", str(Path(argv[1]).resolve())]
        argv = argv[2:]
    pytest_args = argv
    t = step(f"test environment {VENV.relative_to(ROOT)} (requirements/test.txt)")
    requirements = ROOT / "requirements" / "test.txt"
    stamp = VENV / ".requirements.sha256"
    if not PY.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if not stamp.exists() or stamp.read_text() != sha256(requirements):
        sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
        stamp.write_text(sha256(requirements))
    print(f"    ready in {time.perf_counter() - t:.1f} s")

    t = step("build the patched wheel (python setup.py bdist_wheel)")
    out = subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "bdist_wheel", *base_args], check=True, stdout=subprocess.PIPE, text=True
    )
    wheel = Path(out.stdout.strip().splitlines()[-1])
    print(f"    {wheel.name} in {time.perf_counter() - t:.1f} s")

    t = step("install it into the test environment")
    installed = VENV / ".torch-wheel.sha256"
    digest = sha256(wheel)
    site = Path(subprocess.check_output([PY, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    overlay = patchset.overlay_files()
    if any((site / rel).is_symlink() for rel in overlay):
        # `setup.py develop` links point into torch_overlay/: pip must not write through them.
        print("    leaving develop mode first (setup.py develop --uninstall)")
        apply.run(site, reverse=True, quiet=True)
        installed.unlink(missing_ok=True)
    intact = all((site / rel).is_file() and (site / rel).read_bytes() == src.read_bytes() for rel, src in overlay.items())
    if intact and installed.exists() and installed.read_text() == digest:
        print("    same wheel already installed")
    else:
        # --no-deps: torch's own dependencies are pinned in requirements/test.txt.
        sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--force-reinstall", wheel)
        installed.write_text(digest)
    print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step("check the patch set (tools/check.py)")
    sh(PY, ROOT / "tools" / "check.py", "--installed", *base_args)
    print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step("lint torch_overlay/ and test/ with PyTorch's ruff rules (ruff.toml)")
    sh(PY, "-m", "ruff", "check", "--quiet", "--config", ROOT / "ruff.toml", ROOT / "torch_overlay", ROOT / "test")
    print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step("build the docs pages with Sphinx, warnings as errors (tools/build_docs.py)")
    sh(sys.executable, ROOT / "tools" / "build_docs.py", ROOT / "build" / "docs" / "html")
    print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step("run the tests")
    # From a folder outside the checkout: nothing of the source tree shadows the wheel.
    cmd = [PY, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", ROOT, ROOT / "test", ROOT / "tools" / "test", *pytest_args]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if base_args:
        env["TORCH_TOOL_BASE_WHEEL"] = base_args[1]
    rc = subprocess.run([str(c) for c in cmd], cwd=VENV, env=env).returncode
    print(f"    tests finished in {time.perf_counter() - t:.1f} s (exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
