#!/usr/bin/env python3
"""Run the test suite against the torch already installed for this interpreter.

    python3 tools/run_tests.py --installed [PYTEST ARGS...]

For a runner that comes with its own torch (a GPU runner, a cluster image, no
package registry): no venv is created, pip is never called, nothing is
downloaded.  The patch set is installed into the torch of ``sys.executable`` in
develop mode (``setup.py develop``: overlay files linked, patches applied), the
suite runs (``test/`` and ``tools/test/``, with pytest, from outside the source
tree), and ``setup.py develop --uninstall`` restores that torch exactly: also
when the tests fail, and on Ctrl-C or SIGTERM.  The files the patch set changes
get their original bytes and modification times back, so even the bytecode
caches of that torch stay valid.

When ``expecttest`` is not installed, the vendored wheel in ``tools/wheels/``
goes on ``PYTHONPATH`` (a pure-Python wheel imports from the zip).  Tests that
need what such an image lacks (the base wheel, pip, a network) skip with a
reason: ``TORCH_TOOL_INSTALLED=1`` is set for them.

Refuses (exit 2, before changing anything) when no torch is installed, or when
that torch is already patched by an installed torch-tool wheel.  A torch
already in develop mode from this checkout is used as it is and left so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import apply  # noqa: E402
import patchset  # noqa: E402

WHEELS = ROOT / "tools" / "wheels"
EXPECTTEST_WHEEL = WHEELS / "expecttest-0.3.0-py3-none-any.whl"
GRACE_S = 10.0  # how long an interrupted child gets to exit before it is killed


class Refused(Exception):
    """The environment cannot be used; nothing was changed."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised so that every ``finally`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Finding the installed torch and what state it is in
# --------------------------------------------------------------------------


def site_of_torch() -> Path:
    """The folder holding the current interpreter's ``torch/`` (torch is not imported)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise Refused(
            f"no torch is installed for {sys.executable}; --installed runs against the torch of this interpreter"
        )
    return Path(spec.origin).parent.parent


def develop_state(site: Path) -> str:
    """``"stock"``, ``"develop"`` (linked to this checkout) or raises :class:`Refused`."""
    links, copies, foreign = [], [], []
    for rel, src in patchset.overlay_files().items():
        p = site / rel
        if p.is_symlink():
            (links if Path(os.readlink(p)) == src else foreign).append(rel)
        elif p.exists():
            copies.append(rel)
    if copies:
        raise Refused(
            f"the torch in {site} is already patched by an installed torch-tool wheel ({copies[0]} is a regular file, "
            "not a develop-mode link); run --installed against a stock torch (reinstall the base torch wheel) or use "
            "the patched wheel's own test run (tools/run_tests.py)"
        )
    if foreign:
        target = os.readlink(site / foreign[0])
        raise Refused(
            f"the torch in {site} is in develop mode from another checkout ({foreign[0]} -> {target}); "
            "run `python setup.py develop --uninstall` there first"
        )
    return "develop" if links else "stock"


# --------------------------------------------------------------------------
# Snapshot and exact restore
# --------------------------------------------------------------------------


def _stat_tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, size, mtime, mode (and a link's target)."""
    st = root.stat()
    out: dict[str, tuple] = {".": ("dir", st.st_mode, st.st_mtime_ns, st.st_atime_ns)}
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            rel = os.path.relpath(e.path, root)
            st = e.stat(follow_symlinks=False)
            if e.is_symlink():
                out[rel] = ("link", os.readlink(e.path))
            elif e.is_dir(follow_symlinks=False):
                out[rel] = ("dir", st.st_mode, st.st_mtime_ns, st.st_atime_ns)
                stack.append(Path(e.path))
            else:
                out[rel] = ("file", st.st_size, st.st_mtime_ns, st.st_mode, st.st_atime_ns)
    return out


class Snapshot:
    """What a develop install will change in ``site``, kept so it can be put back byte for byte."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.tree = _stat_tree(site / "torch")
        self.saved: dict[str, bytes | None] = {}
        try:
            plan = apply.run(site, check=True, link=True, quiet=True)
        except patchset.PatchSetError:
            plan = None  # develop itself will refuse, with the same message
        for ch in plan.changes if plan else ():
            p = site / ch.rel
            self.saved[ch.rel] = None if p.is_symlink() or not p.exists() else p.read_bytes()

    def restore(self) -> list[str]:
        """Put back bytes and times of what the install changed; return what still differs."""
        torch_dir = self.site / "torch"
        for rel, data in self.saved.items():
            p = self.site / rel
            if data is None:
                if p.is_symlink() or p.exists():
                    p.unlink()
            elif p.is_symlink() or not p.is_file() or p.read_bytes() != data:
                if p.is_symlink():
                    p.unlink()
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        now = _stat_tree(torch_dir)
        # Bytecode written while the patch set was installed is bytecode of the patched files;
        # folders the overlay created go once empty.
        for rel in sorted(set(now) - set(self.tree), key=lambda r: -len(Path(r).parts)):
            p = torch_dir / rel
            if now[rel][0] == "dir":
                with contextlib.suppress(OSError):
                    p.rmdir()
            elif "__pycache__" in Path(rel).parts:
                p.unlink()
        # Original modification times: the environment's own .pyc files stay valid.
        for rel, old in self.tree.items():
            p = torch_dir / rel
            if old[0] == "file" and p.is_file() and not p.is_symlink():
                st = p.stat()
                if st.st_size == old[1] and st.st_mtime_ns != old[2]:
                    os.utime(p, ns=(old[4], old[2]))
        for rel, old in sorted(self.tree.items(), key=lambda kv: -len(Path(kv[0]).parts)):
            p = torch_dir / rel
            if old[0] == "dir" and p.is_dir() and not p.is_symlink() and p.stat().st_mtime_ns != old[2]:
                os.utime(p, ns=(old[3], old[2]))
        now = _stat_tree(torch_dir)
        diffs = [f"new: {r}" for r in sorted(set(now) - set(self.tree))]
        diffs += [f"missing: {r}" for r in sorted(set(self.tree) - set(now))]
        for rel in sorted(set(now) & set(self.tree)):
            a, b = self.tree[rel], now[rel]
            if (
                a[0] != b[0]
                or (a[0] == "link" and a != b)
                or (a[0] == "file" and (a[1], a[2], a[3]) != (b[1], b[2], b[3]))
            ):
                diffs.append(f"changed: {rel}")
        return diffs


# --------------------------------------------------------------------------
# Signals and children
# --------------------------------------------------------------------------


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (so ``finally`` blocks run)."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def uninterruptible() -> Iterator[list[int]]:
    """Defer SIGINT and SIGTERM (a second Ctrl-C must not stop a restore halfway); yields those received."""
    got: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_child(cmd: list[str], *, timeout: float | None = None, **kw) -> int:
    """Run ``cmd`` in its own process group; on interruption or timeout, stop the whole group.

    Returns the exit status; raises :class:`subprocess.TimeoutExpired` after ``timeout``
    seconds and re-raises :class:`Interrupted` and :class:`KeyboardInterrupt`, each once
    the child's process group is gone.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc, signal.SIGTERM)
        raise
    except BaseException as e:
        stop_group(proc, e.signum if isinstance(e, Interrupted) else signal.SIGINT)
        raise


def stop_group(proc: subprocess.Popen, sig: int) -> None:
    with uninterruptible():
        for s, wait in ((sig, GRACE_S), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, s)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Grandchildren that ignored the signal must not outlive the run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# The patch set, installed for the duration of a block
# --------------------------------------------------------------------------


def _setup_py(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # Own session: a Ctrl-C at the terminal must not cut an install or a restore short.
    return subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), *args], env=env, capture_output=True, text=True, start_new_session=True
    )


@contextlib.contextmanager
def patch_set_installed(site: Path | None = None) -> Iterator[Path]:
    """Install the patch set into the current interpreter's torch (develop mode) for a block, then restore it.

    Raises :class:`Refused` (nothing changed) when there is no torch, it is
    wheel-patched, or ``setup.py develop`` refuses (its message is included).
    On leaving, however that happens, the torch is restored exactly; a
    difference that remains raises :class:`RuntimeError` naming the files.
    """
    site = site or site_of_torch()
    if develop_state(site) == "develop":
        say(f"==> the torch in {site} is already in develop mode from this checkout: used as it is, left so")
        yield site
        return
    snap = Snapshot(site)
    say(f"==> install the patch set into {site} (setup.py develop)")
    with uninterruptible() as got:
        r = _setup_py("develop")
    if r.returncode != 0:
        diffs = snap.restore()
        raise Refused(
            f"`setup.py develop` refused the torch in {site} (exit {r.returncode}):\n{(r.stderr or r.stdout).strip()}"
            + (f"\nleft over: {diffs}" if diffs else "")
        )
    try:
        if got:
            raise Interrupted(got[0])
        yield site
    finally:
        with uninterruptible():
            say(f"==> restore the torch in {site} (setup.py develop --uninstall)")
            r = _setup_py("develop", "--uninstall")
            if r.returncode != 0:
                say(f"    setup.py develop --uninstall failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()}")
                say("    restoring from the snapshot taken before the install")
            diffs = snap.restore()
            if diffs:
                raise RuntimeError(f"the torch in {site} could not be restored exactly: {diffs[:20]}")
            say(f"    restored: {len(snap.saved)} files back to their original bytes and times")


def test_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the test processes (no bytecode written into the installed torch)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TORCH_TOOL_INSTALLED="1")
    if importlib.util.find_spec("expecttest") is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXPECTTEST_WHEEL), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _optional_steps() -> None:
    if importlib.util.find_spec("ruff") is not None:
        say("==> lint torch_overlay/ and test/ (ruff.toml)")
        rc = run_child(
            [
                sys.executable,
                "-m",
                "ruff",
                "check",
                "--quiet",
                "--config",
                str(ROOT / "ruff.toml"),
                str(ROOT / "torch_overlay"),
                str(ROOT / "test"),
            ]
        )
        if rc != 0:
            say(f"    ruff found problems (exit {rc})")
    else:
        say("==> skipped: ruff lint (ruff is not installed here; tools/run_tests.py runs it)")
    if importlib.util.find_spec("mypy") is not None:
        say("==> type-check the overlay with mypy (mypy.ini, tools/typecheck.py)")
        rc = run_child([sys.executable, str(ROOT / "tools" / "typecheck.py")])
        if rc != 0:
            say(f"    mypy found problems (exit {rc})")
    else:
        say("==> skipped: mypy type check (mypy is not installed here; tools/run_tests.py runs it)")
    say(
        "==> skipped: Sphinx docs build and tools/check.py --installed (they need the pinned base wheel and "
        "requirements/docs.txt; tools/run_tests.py runs them)"
    )


def main(argv: list[str], *, test_command: list[str] | None = None) -> int:
    """``test_command`` replaces pytest (used by the tests of this module only)."""
    if importlib.util.find_spec("pytest") is None and test_command is None:
        say(f"error: pytest is not installed for {sys.executable}")
        return 2
    t0 = time.perf_counter()
    rc = 0
    try:
        with interruptible():
            site = site_of_torch()
            say(f"==> installed-torch mode: {sys.executable}, torch in {site}")
            with patch_set_installed(site):
                if test_command is None:
                    _optional_steps()
                cmd = test_command or [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    str(ROOT),
                    str(ROOT / "test"),
                    str(ROOT / "tools" / "test"),
                    *argv,
                ]
                say("==> run the tests (pytest, from outside the source tree)")
                cwd = tempfile.mkdtemp(prefix="torch-tool-installed-")
                try:
                    rc = run_child(cmd, cwd=cwd, env=test_env())
                finally:
                    shutil.rmtree(cwd, ignore_errors=True)
                say(f"    tests finished in {time.perf_counter() - t0:.1f} s (exit {rc})")
    except Refused as e:
        say(f"error: {e}")
        return 2
    except Interrupted as e:
        say(f"interrupted by {e}; the installed torch was restored")
        return 128 + e.signum
    except KeyboardInterrupt:
        say("interrupted; the installed torch was restored")
        return 128 + signal.SIGINT
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
