#!/usr/bin/env python3
"""Run the whole test suite against the *installed* patched wheel, on each tested torch release.

    python tools/run_tests.py [--torch RELEASE]... [--base-wheel PATH] [PYTEST ARGS...]

For each tested release (2.13.0 in ``.venv``, 2.14.1 in ``.venv-2.14.1``;
``--torch`` picks one, or several when repeated):

1. creates the release's venv (once) and installs the pinned test
   dependencies from ``requirements/test.txt`` (for a release other than
   2.13.0 also ``torch==RELEASE``, for its own dependencies: 2.14.1 is PyPI's
   CUDA build, which runs on the CPU);
2. builds the patched wheel (``python setup.py bdist_wheel``) from that
   release's base wheel (``build/base/`` for 2.13.0, ``build/base-RELEASE/``
   for the others, resolved by pip once) and installs it into the venv
   (skipped when the exact same wheel is already installed);
3. checks the patch set against that base (``tools/check.py --installed``);
   once per run, lints ``torch_overlay/`` and ``test/`` with PyTorch's ruff
   rules (``ruff.toml``); when 2.13.0 is tested, type-checks the overlay with
   mypy under PyTorch's settings against it (``mypy.ini``, ``tools/typecheck.py``;
   cache in ``build/mypy-cache``) and builds the docs pages
   with Sphinx (``tools/build_docs.py``, warnings as errors);
4. runs ``test/`` (the files that would land in pytorch/test) and the tooling
   tests in ``tools/test/`` with the venv's pytest, from outside the source
   tree, so ``import torch`` can only be the installed wheel (on releases
   other than 2.13.0 without the stack test that reruns the suite commit by
   commit: it is release-independent and the longest).

The exit status is non-zero if any release failed; a summary line per release
closes the run.  ``--base-wheel`` patches another build of a tested release
(e.g. the CUDA wheel on a GPU runner) instead of the one pip resolves; its
release decides the venv.  Extra arguments go to pytest (e.g. ``-k
set_device``); test files or folders among them are run instead of the whole
suite (e.g. ``--torch 2.14.1 test/test_utils_retry.py``).  ``.ci/run`` calls exactly this command.

    python tools/run_tests.py --installed [PYTEST ARGS...]

runs the suite against the torch of the interpreter running it instead (a GPU
runner or cluster image with its own torch): no venv, no pip, no network; the
patch set is linked in with ``setup.py develop`` and removed afterwards, also on
failure or Ctrl-C (``tools/run_installed.py``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv as venv_mod
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import apply  # noqa: E402
import build_wheel  # noqa: E402
import patchset  # noqa: E402

#: The releases the suite runs on, and the venv of each.
TESTED = {"2.13.0": ROOT / ".venv", "2.14.1": ROOT / ".venv-2.14.1"}
VENV = TESTED[patchset.BASE_VERSION]


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


PY = python_of(VENV)
#: Runs on the base release only (see run_release).
STACK_TEST = "test_stack_applies_commit_by_commit_and_its_tests_pass"


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


def _parse(argv: list[str]) -> tuple[list[str], Path | None, list[str]]:
    releases: list[str] = []
    base: Path | None = None
    while argv[:1] in (["--torch"], ["--base-wheel"]) and len(argv) >= 2:
        if argv[0] == "--torch":
            if argv[1] not in TESTED:
                raise SystemExit(f"run_tests.py: --torch {argv[1]}: the suite runs on {', '.join(TESTED)}")
            releases.append(argv[1])
        else:
            base = Path(argv[1]).resolve()
        argv = argv[2:]
    if base is not None:
        release = patchset.release_of(base.name.split("-")[1])
        if release not in TESTED or releases not in ([], [release]):
            raise SystemExit(
                f"run_tests.py: --base-wheel {base.name} is torch {release}; the suite runs on {', '.join(TESTED)}"
            )
        releases = [release]
    return list(dict.fromkeys(releases)) or list(TESTED), base, argv


def prepare_venv(release: str, venv: Path) -> Path:
    py = python_of(venv)
    t = step(f"test environment {venv.relative_to(ROOT)} for torch {release} (requirements/test.txt)")
    requirements = ROOT / "requirements" / "test.txt"
    stamp = venv / ".requirements.sha256"
    if not py.exists():
        venv_mod.EnvBuilder(with_pip=True, clear=True).create(venv)
    want = sha256(requirements) + ("" if release == patchset.BASE_VERSION else f" torch=={release}")
    if not stamp.exists() or stamp.read_text() != want:
        sh(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
        if release != patchset.BASE_VERSION:
            # The release's own dependencies (nvidia-* for a CUDA build); the patched wheel replaces torch below.
            sh(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"torch=={release}")
        stamp.write_text(want)
    print(f"    ready in {time.perf_counter() - t:.1f} s")
    return py


def run_release(release: str, base: Path | None, pytest_args: list[str], *, lint: bool) -> int:
    venv = TESTED[release]
    py = prepare_venv(release, venv)
    if base is None:
        cache = ROOT / "build" / ("base" if release == patchset.BASE_VERSION else f"base-{release}")
        base = build_wheel.fetch_base_wheel(cache, f"torch=={release}")
    base_args = ["--base-wheel", str(base)]

    t = step(f"build the patched wheel (python setup.py bdist_wheel --base-wheel {base.name})")
    out = subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "bdist_wheel", *base_args], check=True, stdout=subprocess.PIPE, text=True
    )
    wheel = Path(out.stdout.strip().splitlines()[-1])
    print(f"    {wheel.name} in {time.perf_counter() - t:.1f} s")

    t = step(f"install it into {venv.relative_to(ROOT)}")
    installed = venv / ".torch-wheel.sha256"
    digest = sha256(wheel)
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
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
        # --no-deps: torch's own dependencies are pinned in requirements/test.txt (or installed in step 1).
        sh(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--force-reinstall", wheel)
        installed.write_text(digest)
    print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step(f"check the patch set against {base.name} (tools/check.py)")
    sh(py, ROOT / "tools" / "check.py", "--installed", *base_args)
    print(f"    done in {time.perf_counter() - t:.1f} s")

    if lint:
        t = step("lint torch_overlay/ and test/ with PyTorch's ruff rules (ruff.toml)")
        sh(py, "-m", "ruff", "check", "--quiet", "--config", ROOT / "ruff.toml", ROOT / "torch_overlay", ROOT / "test")
        print(f"    done in {time.perf_counter() - t:.1f} s")
    if venv == VENV:
        # Against the base release's torch, like the patches (another release's annotations differ).
        t = step("type-check the overlay with mypy and PyTorch's settings (mypy.ini, tools/typecheck.py)")
        sh(py, ROOT / "tools" / "typecheck.py")
        print(f"    done in {time.perf_counter() - t:.1f} s")
        t = step("build the docs pages with Sphinx, warnings as errors (tools/build_docs.py)")
        sh(sys.executable, ROOT / "tools" / "build_docs.py", ROOT / "build" / "docs" / "html")
        print(f"    done in {time.perf_counter() - t:.1f} s")

    t = step(f"run the tests on torch {release}")
    # From a folder outside the checkout: nothing of the source tree shadows the wheel.
    # Test files or folders among the arguments replace the default test/ and tools/test/.
    named = [a for a in pytest_args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    targets = [] if named else [ROOT / "test", ROOT / "tools" / "test"]
    args = [str(Path(a.split("::")[0]).resolve()) + a[len(a.split("::")[0]) :] if a in named else a for a in pytest_args]
    if release != patchset.BASE_VERSION:
        # Release-independent and the longest tooling test (the whole suite again, commit by commit of
        # the exported stack): run on the base release only, to keep CI within its time.
        # (--deselect takes a node id, relative to --rootdir.)
        args = ["--deselect", f"tools/test/test_export_upstream.py::{STACK_TEST}", *args]
    cmd = [py, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", ROOT, *targets, *args]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TORCH_TOOL_BASE_WHEEL=str(base))
    rc = subprocess.run([str(c) for c in cmd], cwd=venv, env=env).returncode
    print(f"    tests on torch {release} finished in {time.perf_counter() - t:.1f} s (exit {rc})")
    return rc


def main(argv: list[str]) -> int:
    if argv[:1] == ["--installed"]:  # the torch of this interpreter: no venv, no pip (tools/run_installed.py)
        import run_installed

        return run_installed.main(argv[1:])
    releases, base, pytest_args = _parse(argv)
    results = []
    for i, release in enumerate(releases):
        t0 = time.perf_counter()
        # Lint once per run; the type check and the docs build use 2.13.0's .venv when it is tested.
        rc = run_release(release, base, pytest_args, lint=i == 0)
        results.append((release, rc, time.perf_counter() - t0))
    print("\n==> summary")
    for release, rc, seconds in results:
        print(f"    torch {release}: {'passed' if rc == 0 else f'FAILED (exit {rc})'} in {seconds / 60:.1f} min")
    return next((rc for _, rc, _ in results if rc), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
