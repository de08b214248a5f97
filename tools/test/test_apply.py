"""tools/apply.py and setup.py develop: transactional, idempotent, exactly reversible."""

import os
import subprocess
import sys

import pytest
from conftest import snapshot

import apply
import patchset

OVERLAY_FILE = "torch/_accelerator/__init__.py"


def test_apply_adds_overlay_and_patches(torch_tree):
    before = snapshot(torch_tree)
    p = apply.run(torch_tree, quiet=True)
    after = snapshot(torch_tree)
    assert after[OVERLAY_FILE] == (patchset.OVERLAY / OVERLAY_FILE).read_bytes()
    changed = {rel for rel in before if before[rel] != after.get(rel)}
    assert changed == {fp.path for _, fp in patchset.file_patches(p.release)}
    assert b'"_accelerator",' in after["torch/__init__.py"]
    assert {ch.rel for ch in p.changes} == changed | set(patchset.overlay_files())


def test_apply_apply_reverse_is_byte_identical(torch_tree):
    init = torch_tree / "torch" / "__init__.py"
    os.chmod(init, 0o640)
    before = snapshot(torch_tree)
    apply.run(torch_tree, quiet=True)
    once = snapshot(torch_tree)
    assert apply.run(torch_tree, quiet=True).is_noop
    assert snapshot(torch_tree) == once
    assert init.stat().st_mode & 0o777 == 0o640
    apply.run(torch_tree, reverse=True, quiet=True)
    assert snapshot(torch_tree) == before
    assert init.stat().st_mode & 0o777 == 0o640
    assert apply.run(torch_tree, reverse=True, quiet=True).is_noop


def test_check_changes_nothing(torch_tree, capsys):
    before = snapshot(torch_tree)
    assert apply.main([str(torch_tree), "--check"]) == 0
    assert snapshot(torch_tree) == before
    out = capsys.readouterr().out
    assert f"would create {OVERLAY_FILE}" in out
    assert "would patch torch/__init__.py" in out


def test_mismatch_names_file_hunk_and_version_and_changes_nothing(torch_tree, capsys):
    version = patchset.torch_version(patchset.DirTree(torch_tree))
    init = torch_tree / "torch" / "__init__.py"
    init.write_bytes(init.read_bytes().replace(b'        "_inductor",\n        "_export",', b'        "_inductor",\n        "_export2",'))
    before = snapshot(torch_tree)
    assert apply.main([str(torch_tree)]) == 1
    err = capsys.readouterr().err
    assert "patches/0001-lazy-import-torch-_accelerator.patch" in err
    assert "torch/__init__.py: hunk #2 (@@ -2930,6 +2931,7 @@" in err
    assert f"torch {version}" in err
    assert "Nothing was changed" in err
    assert snapshot(torch_tree) == before


def test_overlay_conflict_changes_nothing(torch_tree):
    (torch_tree / "torch" / "_accelerator").mkdir()
    (torch_tree / OVERLAY_FILE).write_text("# somebody else's module\n")
    before = snapshot(torch_tree)
    with pytest.raises(patchset.PatchSetError, match=f"{OVERLAY_FILE} already exists"):
        apply.run(torch_tree, quiet=True)
    assert snapshot(torch_tree) == before


def test_reverse_refuses_modified_overlay_file(torch_tree):
    apply.run(torch_tree, quiet=True)
    (torch_tree / OVERLAY_FILE).write_text("# edited after apply\n")
    before = snapshot(torch_tree)
    with pytest.raises(patchset.PatchSetError, match="changed after the patch set was applied"):
        apply.run(torch_tree, reverse=True, quiet=True)
    assert snapshot(torch_tree) == before


def test_partially_applied_tree_is_completed(torch_tree):
    pristine = snapshot(torch_tree)
    apply.run(torch_tree, quiet=True)
    full = snapshot(torch_tree)
    (torch_tree / OVERLAY_FILE).unlink()
    p = apply.run(torch_tree, quiet=True)
    assert [ch.rel for ch in p.changes] == [OVERLAY_FILE]
    assert snapshot(torch_tree) == full
    apply.run(torch_tree, reverse=True, quiet=True)
    assert snapshot(torch_tree) == pristine


def test_os_error_midway_rolls_back(torch_tree, monkeypatch):
    before = snapshot(torch_tree)
    real = patchset._write_atomic
    calls = []

    def failing(path, data, mode):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, data, mode)

    monkeypatch.setattr(patchset, "_write_atomic", failing)
    with pytest.raises(OSError, match="disk full"):
        apply.run(torch_tree, quiet=True)
    monkeypatch.setattr(patchset, "_write_atomic", real)
    assert snapshot(torch_tree) == before


def test_reverse_removes_bytecode_and_created_folders(torch_tree):
    before = snapshot(torch_tree)
    apply.run(torch_tree, quiet=True)
    # What importing the module leaves behind.
    subprocess.run(
        [sys.executable, "-c", f"import py_compile; py_compile.compile({str(torch_tree / OVERLAY_FILE)!r})"], check=True
    )
    assert list((torch_tree / "torch" / "_accelerator" / "__pycache__").glob("*.pyc"))
    apply.run(torch_tree, reverse=True, quiet=True)
    assert snapshot(torch_tree) == before


def test_source_checkout_also_gets_tests_and_docs(torch_tree):
    (torch_tree / "setup.py").write_text("# pytorch\n")
    (torch_tree / "test").mkdir()
    (torch_tree / "docs" / "source").mkdir(parents=True)  # as in every PyTorch checkout
    before = snapshot(torch_tree)
    apply.run(torch_tree, quiet=True)
    for path in patchset.TESTS.glob("test_*.py"):
        assert (torch_tree / "test" / path.name).read_bytes() == path.read_bytes()
    for path in (patchset.DOCS / "source").glob("*.rst"):
        assert (torch_tree / "docs" / "source" / path.name).read_bytes() == path.read_bytes()
    apply.run(torch_tree, reverse=True, quiet=True)
    assert snapshot(torch_tree) == before


def test_not_a_torch_folder(tmp_path, capsys):
    assert apply.main([str(tmp_path)]) == 1
    assert "does not hold a torch/ folder" in capsys.readouterr().err


def _setup_py(*args, env_path):
    env = dict(os.environ, PYTHONPATH=str(env_path))
    return subprocess.run(
        [sys.executable, str(patchset.ROOT / "setup.py"), *args], env=env, capture_output=True, text=True
    )


def test_develop_links_and_uninstall_restores(torch_tree):
    before = snapshot(torch_tree)
    r = _setup_py("develop", env_path=torch_tree)
    assert r.returncode == 0, r.stderr
    linked = torch_tree / OVERLAY_FILE
    assert linked.is_symlink()
    assert linked.resolve() == (patchset.OVERLAY / OVERLAY_FILE).resolve()
    assert b'"_accelerator",' in (torch_tree / "torch" / "__init__.py").read_bytes()
    # Idempotent, like apply.
    r = _setup_py("develop", env_path=torch_tree)
    assert r.returncode == 0 and "nothing to apply" in r.stdout, r.stdout + r.stderr
    r = _setup_py("develop", "--uninstall", env_path=torch_tree)
    assert r.returncode == 0, r.stderr
    assert snapshot(torch_tree) == before


def test_develop_over_installed_copy_then_uninstall(torch_tree):
    # A torch that already has the patched wheel installed: develop swaps the
    # copies for links; uninstall takes the overlay out entirely.
    pristine = snapshot(torch_tree)
    apply.run(torch_tree, quiet=True)
    assert _setup_py("develop", env_path=torch_tree).returncode == 0
    assert (torch_tree / OVERLAY_FILE).is_symlink()
    assert _setup_py("develop", "--uninstall", env_path=torch_tree).returncode == 0
    assert snapshot(torch_tree) == pristine
