"""The exported PR stack applies with ``git am`` onto the base, commit by commit, and each commit's tests pass there."""

import concurrent.futures
import email
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import export_upstream
import patchset
import stack


GIT_ENV = dict(os.environ, **export_upstream.GIT_ENV)


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, env=GIT_ENV, stdout=subprocess.PIPE, text=True).stdout


@pytest.fixture(scope="module")
def exported(base_wheel, tmp_path_factory):
    return export_upstream.export(tmp_path_factory.mktemp("stack"), base_wheel)


def non_empty_prs():
    groups = stack.assign()
    return [pr for pr in stack.STACK if groups[pr.name]]


def test_one_commit_per_non_empty_pr(exported):
    prs = non_empty_prs()
    assert len(exported) == len(prs)
    for i, (path, pr) in enumerate(zip(exported, prs), 1):
        msg = email.message_from_string(path.read_text())
        assert " ".join(msg["Subject"].split()) == f"[PATCH {i}/{len(prs)}] {pr.title}"
        assert len(pr.title) <= 72, pr.title
        assert "\nTest Plan:\n" in msg.get_payload()


def test_export_is_reproducible(exported, base_wheel, tmp_path):
    again = export_upstream.export(tmp_path / "again", base_wheel)
    assert [p.name for p in again] == [p.name for p in exported]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(again, exported))


def test_every_file_is_exported_once(exported):
    """Every overlay file, test and docs page appears as a new file in exactly one commit."""
    created = []
    for path in exported:
        created += [line.split()[-1] for line in path.read_text().splitlines() if line.startswith(" create mode ")]
    expected = [export_upstream.target_path(rel) for rel in stack.inventory() if export_upstream.target_path(rel)]
    assert sorted(created) == sorted(expected)


def _installed_site() -> Path:
    # find_spec does not import torch: the tooling tests stay fast.
    return Path(importlib.util.find_spec("torch").origin).parent.parent


def _link_farm(site: Path, repo: Path, hidden: set, dst: Path) -> None:
    """A ``torch`` package under ``dst``: the installed one, less ``hidden``, plus the repo's ``torch/`` files.

    Only folders on the way to a hidden or repo file are real folders; every
    other entry is a symlink to the installed torch, so this takes
    milliseconds instead of copying ~700 MB.
    """
    real = {p.relative_to(repo).as_posix(): p for p in (repo / "torch").rglob("*") if p.is_file()}
    ancestors = {"torch"}
    for rel in hidden | real.keys():
        parts = rel.split("/")
        ancestors.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def make(d: str) -> bool:
        names = {e.name for e in (site / d).iterdir()} if (site / d).is_dir() else set()
        names |= {rel[len(d) + 1 :].split("/")[0] for rel in real if rel.startswith(d + "/")}
        names.discard("__pycache__")
        made = False
        for name in sorted(names):
            rel = f"{d}/{name}"
            if rel in real:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(real[rel], dst / rel)
            elif rel in ancestors:
                if not make(rel):
                    continue
            elif rel in hidden:
                continue
            else:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                (dst / rel).symlink_to(site / rel)
            made = True
        return made

    make("torch")


#: Run inside each commit's test process before any test (``-p``): the torch
#: imported is the farm's, and the overlay modules of later commits are absent.
PROBE_PLUGIN = """
import importlib.util
import os

import torch


def pytest_configure(config):
    farm = os.environ["STACK_FARM"]
    assert torch.__file__.startswith(farm), f"torch imported from {torch.__file__}, not {farm}"
    for name in os.environ["STACK_ABSENT"].split():
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # its parent package comes in a later commit too
            spec = None
        assert spec is None, f"{name} is importable before its commit"
"""


def _run_commit_tests(job):
    cwd, env, tests = job
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "stack_probe", *tests]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_stack_applies_commit_by_commit_and_its_tests_pass(exported, base_wheel, tmp_path):
    # A repository holding what the base wheel has of the files the stack
    # touches: enough for `git am`, a few MB instead of the whole torch tree.
    repo = tmp_path / "pytorch"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    release = patchset.release_of(base_wheel.name.split("-")[1])
    touched = {fp.path for _, fp in patchset.file_patches(release)} | {"torch/version.py"}
    with zipfile.ZipFile(base_wheel) as zf:
        for name in sorted(touched):
            zf.extract(name, repo)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "base")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "stack_probe.py").write_text(PROBE_PLUGIN)

    site = _installed_site()
    hidden = set(patchset.overlay_files()) | touched
    jobs = []
    for i, (patch, pr) in enumerate(zip(exported, non_empty_prs())):
        # --keep-non-patch: keep the "[component]" prefix of the title, drop "[PATCH n/m]".
        git(repo, "am", "--quiet", "--keep-non-patch", str(patch))
        assert git(repo, "log", "-1", "--format=%s").strip() == pr.title
        # This commit's tree, kept for its test run (a few MB: the touched files, the new ones, the tests).
        tree = tmp_path / f"commit-{i}"
        shutil.copytree(repo, tree, ignore=shutil.ignore_patterns(".git"))
        changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
        tests = sorted(str(tree / rel) for rel in changed if rel.startswith("test/test_"))
        farm = tmp_path / f"site-{i}"
        _link_farm(site, tree, hidden, farm)
        absent = [m for m in patchset.overlay_files() if m.endswith(".py") and not (tree / m).exists()]
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(farm), str(tmp_path / "plugins")]),
            PYTHONDONTWRITEBYTECODE="1",
            STACK_FARM=str(farm),
            STACK_ABSENT=" ".join(m[: -len(".py")].replace("/", ".").removesuffix(".__init__") for m in absent),
        )
        cwd = tmp_path / f"cwd-{i}"  # each run's own .hypothesis/
        cwd.mkdir()
        jobs.append((pr, (cwd, env, tests)))

    # The commits' test runs are independent: run them side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_run_commit_tests, [job for _, job in jobs]))
    for (pr, (_, _, tests)), r in zip(jobs, results):
        # Exit 5: no tests collected (a PR without test files still proves its tree imports).
        ok = r.returncode == 0 or (r.returncode == 5 and not tests)
        assert ok, f"{pr.name}: tests failed at its commit:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"


def _cached_base_wheel(release):
    """The release's base wheel if this machine has it (run_tests.py's cache, or --base-wheel), else None."""
    given = os.environ.get("TORCH_TOOL_BASE_WHEEL")
    if given and patchset.release_of(Path(given).name.split("-")[1]) == release:
        return Path(given)
    cache = patchset.ROOT / "build" / ("base" if release == patchset.BASE_VERSION else f"base-{release}")
    wheels = sorted(w for w in cache.glob(f"torch-{release}*.whl") if patchset.release_of(w.name.split("-")[1]) == release)
    return wheels[0] if len(wheels) == 1 else None


@pytest.mark.parametrize("release", patchset.supported_releases())
def test_stack_applies_with_git_am_on_each_release(release, tmp_path, monkeypatch):
    """``--base RELEASE``'s stack applies with ``git am``, commit by commit, onto that release's files.

    The newest release is always checked (its wheel resolved by pip when not
    cached: upstream review happens against the newest code); the others
    when their base wheel is cached (tools/run_tests.py caches the tested ones).
    """
    newest = patchset.supported_releases()[-1]
    wheel = _cached_base_wheel(release)
    if wheel is None:
        if release != newest:
            pytest.skip(f"no cached base wheel of torch {release} (build/base-{release}/)")
        # A machine-wide pip constraint may cap torch below the newest release (it keeps
        # environments on the cached builds); this download is only read, never installed.
        monkeypatch.setenv("PIP_CONSTRAINT", os.devnull)
        wheel = export_upstream.base_wheel(release)
    exported = export_upstream.export(tmp_path / "stack", wheel)
    repo = tmp_path / "pytorch"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    touched = {fp.path for _, fp in patchset.file_patches(release)} | {"torch/version.py"}
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(touched):
            zf.extract(name, repo)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", f"PyTorch {release}")
    prs = non_empty_prs()
    assert len(exported) == len(prs)
    for patch, pr in zip(exported, prs):
        git(repo, "am", "--quiet", "--keep-non-patch", str(patch))
        # The commit carries the PR's description whole (Markdown headings included).
        tests = git(repo, "show", "--name-only", "--format=", "HEAD").split()
        expected = pr.message(sorted(t for t in tests if t.startswith("test/")))
        assert git(repo, "log", "-1", "--format=%B").strip() == expected.strip()
    # The last commit's tree has every patch of the release's series applied: the files apply_patches writes.
    for rel in touched - {"torch/version.py"}:
        assert (repo / rel).read_bytes() != zipfile.ZipFile(wheel).read(rel), f"{rel} unchanged by the stack"


def test_main_refuses_an_unsupported_base(capsys, tmp_path):
    assert export_upstream.main(["--base", "2.10.0", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "torch 2.10.0 in --base is not supported" in err and "2.15.0" in err
    assert not (tmp_path / "out").exists()


def test_docs_index_lists_the_pages_landed_so_far(base_wheel):
    """Each commit's docs index links exactly the pages present at that commit (Sphinx warns about a missing one)."""
    import build_wheel
    import check
    import rawzip

    with rawzip.RawZip(base_wheel) as zf:
        tree = build_wheel.ZipTree(zf)
        pristine = export_upstream.pristine_files(tree)
        release = patchset.release_of(patchset.torch_version(tree))
    index_rel = "docs/source/utilities.rst"
    present, index, changed = set(), None, []
    for pr, written, _ in export_upstream.commits(pristine, release):
        present |= {Path(p).stem for p in written if p.startswith("docs/source/") and p != index_rel}
        if index_rel in written:
            index = written[index_rel].decode()
            changed.append(pr.name)
        if index is not None:
            assert sorted(check.toctree_entries(index)) == sorted(present), pr.name
    assert changed[0] == "device" and len(changed) > 1
    assert index == (patchset.ROOT / index_rel).read_text()


def test_index_page_for_drops_absent_entries_and_empty_toctrees():
    text = "T\n=\n\n.. toctree::\n    :caption: A\n\n    a\n    b\n\n.. toctree::\n    :caption: C\n\n    c\n\nEnd.\n"
    assert export_upstream.index_page_for(text, {"b"}) == "T\n=\n\n.. toctree::\n    :caption: A\n\n    b\n\nEnd.\n"
    assert export_upstream.index_page_for(text, {"a", "b", "c"}) == text
