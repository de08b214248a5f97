"""run_tests.py --installed: the patch set goes into the interpreter's torch for the run, and comes out exactly."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from conftest import snapshot

import apply
import patchset
import run_installed

TOOLS = patchset.ROOT / "tools"
OVERLAY_FILE = "torch/utils/retry.py"


def times(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.lstat().st_mtime_ns for p in sorted(root.rglob("*"))}


def start(site: Path, test_code: str, *extra: str, python_flags: tuple[str, ...] = ()) -> subprocess.Popen:
    """run_installed.main in a fresh interpreter whose torch is the one in ``site``; the "tests" are ``test_code``."""
    driver = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TOOLS)!r})
        import run_installed
        sys.exit(run_installed.main([], test_command=[sys.executable, "-c", {test_code!r}, *{list(extra)!r}]))
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("TORCH_TOOL_INSTALLED", None)
    return subprocess.Popen(
        [sys.executable, *python_flags, "-c", driver],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


CHECK_INSTALLED = f"""
import os, sys
from pathlib import Path
site = Path(os.environ["PYTHONPATH"])
assert (site / {OVERLAY_FILE!r}).is_symlink(), "overlay not linked during the run"
assert os.environ["TORCH_TOOL_INSTALLED"] == "1" and os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
assert not Path.cwd().is_relative_to({str(patchset.ROOT)!r}), "tests must run from outside the source tree"
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("exit_code", [0, 3])
def test_installs_for_the_run_and_restores_bytes_and_times(torch_tree, exit_code):
    before, mtimes = snapshot(torch_tree), times(torch_tree)
    rc, out = finish(start(torch_tree, CHECK_INSTALLED, str(exit_code)))
    assert rc == exit_code, out
    assert "setup.py develop --uninstall" in out
    assert snapshot(torch_tree) == before
    assert times(torch_tree) == mtimes


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_stops_the_tests_and_restores(torch_tree, tmp_path, sig):
    before, mtimes = snapshot(torch_tree), times(torch_tree)
    marker = tmp_path / "started"
    sleeper = f"import os, pathlib, time; pathlib.Path({str(marker)!r}).write_text(str(os.getpid())); time.sleep(120)"
    proc = start(torch_tree, sleeper)
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
        time.sleep(0.1)
    assert (torch_tree / OVERLAY_FILE).is_symlink()
    proc.send_signal(sig)
    rc, out = finish(proc)
    assert rc == 128 + sig, out
    assert "restored" in out
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)  # the tests' process is gone too
    assert snapshot(torch_tree) == before
    assert times(torch_tree) == mtimes


def test_refuses_a_torch_patched_by_the_wheel(torch_tree):
    apply.run(torch_tree, quiet=True)  # what installing the patched wheel leaves
    before = snapshot(torch_tree)
    rc, out = finish(start(torch_tree, "raise SystemExit(0)"))
    assert rc == 2, out
    assert "already patched by an installed torch-tool wheel" in out
    assert snapshot(torch_tree) == before


def test_refuses_when_no_torch_is_installed(tmp_path):
    # -S: no site-packages, so the only place torch could come from is PYTHONPATH (empty here).
    rc, out = finish(start(tmp_path, "raise SystemExit(0)", python_flags=("-S",)))
    assert rc == 2, out
    assert "no torch is installed for" in out


def test_surfaces_develop_refusal_and_changes_nothing(torch_tree):
    cuda_init = torch_tree / "torch" / "cuda" / "__init__.py"
    cuda_init.write_bytes(b"# some other torch's file: no hunk of the patch set matches\n")
    before = snapshot(torch_tree)
    rc, out = finish(start(torch_tree, "raise SystemExit(0)"))
    assert rc == 2, out
    assert "`setup.py develop` refused" in out and "torch/cuda/__init__.py" in out
    assert snapshot(torch_tree) == before


def test_develop_mode_already_on_is_used_and_kept(torch_tree):
    apply.run(torch_tree, link=True, quiet=True)
    before = snapshot(torch_tree)
    rc, out = finish(start(torch_tree, CHECK_INSTALLED, "0"))
    assert rc == 0, out
    assert "already in develop mode" in out
    assert snapshot(torch_tree) == before


def test_vendored_expecttest_wheel_when_missing(monkeypatch):
    wheel = run_installed.EXPECTTEST_WHEEL
    assert zipfile.is_zipfile(wheel)
    real = run_installed.importlib.util.find_spec
    monkeypatch.setattr(run_installed.importlib.util, "find_spec", lambda n: None if n == "expecttest" else real(n))
    env = run_installed.test_env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(wheel)
    # Imports from the zip (zipimport), in an interpreter that has no site-packages at all.
    code = "import expecttest; print(expecttest.__file__); expecttest.TestCase.assertExpectedInline"
    r = subprocess.run(
        [sys.executable, "-S", "-c", code], env={"PYTHONPATH": env["PYTHONPATH"]}, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(wheel))


def test_run_tests_dispatches_installed_mode():
    text = (TOOLS / "run_tests.py").read_text()
    assert 'if argv[:1] == ["--installed"]:' in text and "run_installed.main(argv[1:])" in text


def test_snapshot_alone_restores_a_develop_install(torch_tree):
    # The safety net behind `setup.py develop --uninstall`: what the install changed, put back from the snapshot.
    before, mtimes = snapshot(torch_tree), times(torch_tree)
    snap = run_installed.Snapshot(torch_tree)
    assert OVERLAY_FILE in snap.saved and snap.saved[OVERLAY_FILE] is None
    apply.run(torch_tree, link=True, quiet=True)
    (torch_tree / "torch" / "utils" / "__pycache__").mkdir(exist_ok=True)
    (torch_tree / "torch" / "utils" / "__pycache__" / "retry.cpython-311.pyc").write_bytes(b"patched bytecode")
    assert snap.restore() == []
    assert snapshot(torch_tree) == before
    assert times(torch_tree) == mtimes
