"""The test environment's torch is the patched wheel, installed by pip: not the source tree."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import build_wheel
import patchset

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TORCH_TOOL_INSTALLED")),
    reason="installed-torch mode (run_tests.py --installed) tests a develop install, not the patched wheel",
)


def test_installed_distribution_is_the_patched_wheel():
    import torch

    # The base wheel's version with torchtool<N> added to its local label: 2.13.0+cpu.torchtool1,
    # or 2.14.1+torchtool1 for PyPI's 2.14.1 (whose torch.__version__ says 2.14.1+cu130).
    installed = importlib.metadata.version("torch")
    assert installed.endswith(f"torchtool{patchset.REVISION}"), installed
    assert patchset.release_of(installed) == patchset.release_of(torch.__version__)
    if installed.split("+", 1)[1] != f"torchtool{patchset.REVISION}":  # the base had a label: it is kept
        assert installed == build_wheel.local_version(torch.__version__)
    site = Path(torch.__file__).parent.parent
    assert site.name == "site-packages" and Path(sys.prefix) in site.parents, f"torch imported from {site}"
    recorded = {str(f) for f in importlib.metadata.files("torch")}
    for rel in patchset.overlay_files():
        assert rel in recorded, f"{rel} is not in the installed RECORD"
        assert not (site / rel).is_symlink(), f"{rel} is a develop-mode link, not the wheel's file"
        assert (site / rel).read_bytes() == (patchset.OVERLAY / rel).read_bytes()


def test_wheel_module_imports_in_a_fresh_interpreter():
    import torch._accelerator

    out = subprocess.run(
        [sys.executable, "-c", "import torch._accelerator as a; print(a.__file__); print(a.current_device())"],
        cwd="/",
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    assert out[0].startswith(sys.prefix) and "site-packages" in out[0], out[0]
    assert out[1] == str(torch._accelerator.current_device())
