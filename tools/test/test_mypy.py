"""tools/typecheck.py and mypy.ini: what the type check covers and that the settings bite.

The check itself (mypy over the whole overlay, about a minute and a half on two cores) is a step of
tools/run_tests.py, not a test here; these tests are the fast ones around it.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import patchset
import typecheck

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed here (requirements/test.txt pins it)"
)


@needs_mypy
def test_mypy_is_the_pinned_version():
    pins = re.findall(r"^mypy==(\S+)$", (patchset.ROOT / "requirements" / "test.txt").read_text(), re.MULTILINE)
    assert len(pins) == 1, "requirements/test.txt must pin mypy exactly once"
    assert importlib.metadata.version("mypy") == pins[0], "run: pip install -r requirements/test.txt"


def test_every_overlay_module_is_checked():
    modules = typecheck.overlay_modules()
    assert "torch._accelerator" in modules  # a package: its __init__.py
    assert "torch.utils.retry" in modules
    files = {m.replace(".", "/") for m in modules}
    assert files == {
        rel[: -len("/__init__.py")] if rel.endswith("/__init__.py") else rel[: -len(".py")]
        for rel in patchset.overlay_files()
        if rel.endswith(".py")
    }


def test_module_sections_name_overlay_modules_and_ignore_nothing():
    # A section for a module that was renamed or removed would silently stop applying, and no
    # overlay module has its errors switched off: every one type-checks.
    config = configparser.ConfigParser()
    config.read(patchset.ROOT / "mypy.ini")
    modules = set(typecheck.overlay_modules())
    sections = [s for s in config.sections() if s.startswith("mypy-")]
    assert [s for s in sections if s[len("mypy-") :] not in modules] == []
    assert [s for s in sections if config.getboolean(s, "ignore_errors", fallback=False)] == []


def test_report_names_overlay_files_by_their_path_in_this_repository():
    site = Path(importlib.util.find_spec("torch").origin).parent.parent
    line = f"{site}/torch/utils/retry.py:12:5: error: Name 'x' is not defined  [name-defined]"
    assert typecheck.overlay_path(line) == (
        "torch_overlay/torch/utils/retry.py:12:5: error: Name 'x' is not defined  [name-defined]"
    )
    upstream = f"{site}/torch/__init__.py:1:1: error: something"
    assert typecheck.overlay_path(upstream) == upstream
    assert typecheck.overlay_path("Found 2 errors in 2 files (checked 25 source files)") == (
        "Found 2 errors in 2 files (checked 25 source files)"
    )


@needs_mypy
def test_settings_report_what_pytorch_reports(tmp_path):
    # Each setting taken from PyTorch's mypy.ini turns one of these into an error (no torch import: fast).
    src = tmp_path / "mod.py"
    src.write_text(
        textwrap.dedent(
            """\
            from typing import Self


            def untyped(x):
                return x


            def maybe(flag: bool) -> int:
                if flag:
                    value = 1
                return value
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(patchset.ROOT / "mypy.ini")]
        + ["--cache-dir", str(tmp_path / "cache"), str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    codes = re.findall(r"\[([a-z-]+)\]$", out.stdout, re.MULTILINE)
    # typing.Self is new in 3.11 (python_version = 3.10), the def is unannotated (disallow_untyped_defs),
    # value is unbound when flag is false (possibly-undefined).
    assert sorted(codes) == ["attr-defined", "no-untyped-def", "possibly-undefined"], out.stdout
