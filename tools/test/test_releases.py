"""One patch set, several torch releases: the series is chosen from the target's torch/version.py."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snapshot

import apply
import check
import patchset
import port_release
import unidiff

SUPPORTED = ["2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0"]


def _set_version(tree, version):
    (tree / "torch" / "version.py").write_text(f"__version__ = '{version}'\n")


def test_supported_releases():
    assert patchset.supported_releases() == SUPPORTED


@pytest.mark.parametrize(
    "version, release",
    [("2.14.1+cu130", "2.14.1"), ("2.13.0+cpu", "2.13.0"), ("2.15.0", "2.15.0"), ("2.11.0+cu126", "2.11.0")],
)
def test_release_is_the_version_without_its_local_label(version, release):
    assert patchset.select_release(version) == release


def test_unsupported_release_names_the_supported_ones_and_changes_nothing(torch_tree, capsys):
    _set_version(torch_tree, "2.99.0")
    before = snapshot(torch_tree)
    assert apply.main([str(torch_tree)]) == 1
    err = capsys.readouterr().err
    assert "torch 2.99.0" in err and "is not supported" in err
    assert f"supported releases: {', '.join(SUPPORTED)}" in err
    assert snapshot(torch_tree) == before


@pytest.mark.parametrize("version", ["2.10.0", "2.16.0", "2.13.1", "2.14.0a0", "unknown"])
def test_other_versions_are_refused(version):
    with pytest.raises(patchset.PatchSetError, match="supported releases: 2.11.0, "):
        patchset.select_release(version)


def test_series_of_each_release_is_consistent():
    names = patchset.series_names()
    assert sorted(names) == sorted(p.name for p in patchset.PATCHES.glob("*.patch"))
    assert check.check_series() == []
    for release in SUPPORTED:
        paths = patchset.series(release)
        # Every name of patches/series, in order: a variant replaces its patch, never adds or drops one.
        assert [p.name for p in paths] == names, release
        for path in paths:
            assert path.parent == patchset.PATCHES or path.parent.name in patchset.releases()[release]
            if path.parent != patchset.PATCHES:
                assert path.read_bytes() != (patchset.PATCHES / path.name).read_bytes(), f"{path} is a needless copy"
            assert unidiff.parse(path.read_bytes(), source=str(path)), path
    # The base release uses the patches as they are.
    assert all(p.parent == patchset.PATCHES for p in patchset.series(patchset.BASE_VERSION))


def test_every_variant_folder_is_used_and_every_variant_is_a_series_patch():
    used = {f for folders in patchset.releases().values() for f in folders}
    present = {p.name for p in patchset.PATCHES.iterdir() if p.is_dir()}
    assert used == present
    for folder in present:
        for variant in (patchset.PATCHES / folder).iterdir():
            assert variant.name in patchset.series_names(), variant


def test_stray_variant_is_reported(monkeypatch, tmp_path):
    patches = tmp_path / "patches"
    patches.mkdir()
    for name in ("series", "releases"):
        (patches / name).write_text((patchset.PATCHES / name).read_text().replace("2.13.0\n", "2.13.0  2.13\n"))
    for path in patchset.PATCHES.rglob("*.patch"):
        dest = patches / path.relative_to(patchset.PATCHES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    (patches / "2.13").mkdir()
    (patches / "2.13" / "0099-not-in-series.patch").write_text("")
    (patches / "2.99").mkdir()
    monkeypatch.setattr(patchset, "PATCHES", patches)
    errors = check.check_series()
    assert any("patches/2.13/0099-not-in-series.patch is not a variant of a patch of patches/series" in e for e in errors)
    assert any("patches/2.99/ is not a variant folder of any release" in e for e in errors)


def test_release_without_its_variant_folder_is_an_error(monkeypatch, tmp_path):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "releases").write_text("2.13.0  2.13\n")
    monkeypatch.setattr(patchset, "PATCHES", patches)
    with pytest.raises(patchset.PatchSetError, match=r"patches/releases:1: variant folder patches/2.13/ does not exist"):
        patchset.releases()


def test_variant_is_chosen_by_the_target_release(torch_tree, base_release):
    # The 2.14 variant of 0003 leaves Dynamo's builder alone (2.14 wraps such context managers
    # itself), so builder.py is patched for 2.11-2.13 only; declaring the tree another release
    # makes the other release's series apply, and fail on the same bytes, naming its file.
    builder = "torch/_dynamo/variables/builder.py"
    assert builder in {fp.path for _, fp in patchset.file_patches("2.13.0")}
    assert builder not in {fp.path for _, fp in patchset.file_patches("2.14.1")}
    p = apply.run(torch_tree, check=True, quiet=True)
    assert p.release == base_release
    assert (builder in {ch.rel for ch in p.changes}) == (base_release < "2.14")
    other, variant = ("2.14.1+cu130", "patches/2.14/") if base_release < "2.14" else ("2.13.0+cpu", "patches/")
    _set_version(torch_tree, other)
    with pytest.raises(patchset.PatchSetError, match=rf"cannot apply {variant}0003-dynamo-trace-device-context.patch: "):
        apply.run(torch_tree, check=True, quiet=True)


def test_port_release_finds_nothing_to_port_on_the_base(torch_tree):
    assert port_release.port(patchset.DirTree(torch_tree), "2.99") == []


def test_port_release_drafts_an_exact_variant(torch_tree, base_release, monkeypatch, tmp_path):
    # Upstream moved a line next to an insertion: the patch no longer applies exactly; the
    # draft puts the change after the same context lines and applies exactly to the moved file.
    rel = "torch/cuda/__init__.py"
    path = torch_tree / rel
    text = path.read_bytes()
    moved = text.replace(b"from .memory import _use_uvm\n", b"")
    if moved == text:
        pytest.skip(f"torch {base_release} has no 'from .memory import _use_uvm' line")
    path.write_bytes(moved)
    patches = tmp_path / "patches"
    patches.mkdir()
    for name in ("series", "releases"):
        (patches / name).write_bytes((patchset.PATCHES / name).read_bytes())
    for p in patchset.PATCHES.rglob("*.patch"):
        dest = patches / p.relative_to(patchset.PATCHES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
    monkeypatch.setattr(patchset, "PATCHES", patches)
    monkeypatch.setattr(patchset, "ROOT", tmp_path)
    name = "0004-cuda-export-memory-guards-and-safe-run.patch"
    # The patch this release takes today (its own variant, if it has one): the one being ported.
    release = patchset.release_of(patchset.torch_version(patchset.DirTree(torch_tree)))
    folders = patchset.releases().get(release, ())
    source = next((patches / f / name for f in folders if (patches / f / name).is_file()), patches / name)
    report = port_release.port(patchset.DirTree(torch_tree), "2.13", write=True)
    assert len(report) == 1 and report[0].startswith(f"{name}: ")
    variant = patches / "2.13" / name
    base = source.read_bytes()
    # The description is kept; the hunks are exact against the moved file.
    assert variant.read_bytes().split(b"diff --git", 1)[0] == base.split(b"diff --git", 1)[0]
    (fp,) = unidiff.parse(variant.read_bytes())
    patched = unidiff.apply_file_patch(moved, fp)
    (orig,) = unidiff.parse(base)
    assert patched == unidiff.apply_file_patch(text, orig).replace(b"from .memory import _use_uvm\n", b"")


def test_torch_logs_turns_on_the_registered_loggers():
    # TORCH_LOGS=dry_run: torch._logging knows the name (registered by a patch), and
    # what torch.utils.dry_run skips is logged; `import torch` itself imports no overlay module.
    code = """
import sys
from pathlib import Path
import torch
import torch._logging._internal as internal
assert "torch.utils.dry_run" not in sys.modules
registry = internal.log_registry.log_alias_to_log_qnames
print(registry["dry_run"], registry["telemetry"], registry["error_callback"])
from torch.utils.dry_run import dry_run, skippable

@skippable
def save(x):
    raise AssertionError("ran under dry_run")

with dry_run():
    save(1)
"""
    env = {"TORCH_LOGS": "dry_run", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "['torch.utils.dry_run'] ['torch.utils.telemetry', 'torch.utils.dashboard'] ['torch.utils.error_callback']"
    )
    assert "dry run: skipped save(1)" in done.stderr
    # Without TORCH_LOGS the same run is silent.
    env.pop("TORCH_LOGS")
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/", timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_run_tests_runs_each_tested_release_in_its_own_venv():
    import run_tests

    assert list(run_tests.TESTED) == ["2.13.0", "2.14.1"]
    assert run_tests.TESTED["2.13.0"] == patchset.ROOT / ".venv"
    assert run_tests.TESTED["2.14.1"] == patchset.ROOT / ".venv-2.14.1"
    assert run_tests._parse([]) == (["2.13.0", "2.14.1"], None, [])
    assert run_tests._parse(["--torch", "2.14.1", "-k", "retry"]) == (["2.14.1"], None, ["-k", "retry"])
    wheel = "/w/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert run_tests._parse(["--base-wheel", wheel]) == (["2.14.1"], Path(wheel), [])
    with pytest.raises(SystemExit, match="--torch 2.15.0: the suite runs on 2.13.0, 2.14.1"):
        run_tests._parse(["--torch", "2.15.0"])
    with pytest.raises(SystemExit, match="is torch 2.14.1"):
        run_tests._parse(["--torch", "2.13.0", "--base-wheel", wheel])
