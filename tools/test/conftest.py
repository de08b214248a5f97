"""Tooling tests: make tools/ importable and share a small torch tree taken from the base wheel."""

import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOOLS))

import build_wheel  # noqa: E402
import patchset  # noqa: E402


@pytest.fixture(scope="session")
def base_wheel() -> Path:
    # tools/run_tests.py --base-wheel PATH (e.g. the CUDA build on a GPU runner).
    given = os.environ.get("TORCH_TOOL_BASE_WHEEL")
    if not given and os.environ.get("TORCH_TOOL_INSTALLED"):
        pytest.skip("installed-torch mode (run_tests.py --installed): no base wheel without pip; set TORCH_TOOL_BASE_WHEEL")
    return Path(given) if given else build_wheel.fetch_base_wheel(patchset.ROOT / "build" / "base")


@pytest.fixture(scope="session")
def _base_subtree(base_wheel, tmp_path_factory) -> Path:
    """The base files the patch set touches, plus neighbours it must not touch."""
    root = tmp_path_factory.mktemp("base_subtree")
    wanted = {fp.path for release in patchset.supported_releases() for _, fp in patchset.file_patches(release)}
    wanted |= {"torch/version.py", "torch/accelerator/__init__.py", "torch/accelerator/_utils.py"}
    with zipfile.ZipFile(base_wheel) as zf:
        for name in wanted:
            zf.extract(name, root)
    return root


@pytest.fixture(scope="session")
def base_release(_base_subtree) -> str:
    """The supported release of the base wheel (2.13.0 unless run_tests.py --torch says otherwise)."""
    return patchset.select_release(patchset.torch_version(patchset.DirTree(_base_subtree)))


@pytest.fixture
def torch_tree(_base_subtree, tmp_path) -> Path:
    """A fresh copy of a minimal site-packages-like folder holding torch/."""
    dst = tmp_path / "site-packages"
    shutil.copytree(_base_subtree, dst)
    return dst


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file (and symlink target) under root, for byte-exact comparisons."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = b"->" + str(p.readlink()).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel + "/"] = b""
    return out
