#!/usr/bin/env python3
"""Export the patch set as the upstream PR stack: one ``git format-patch`` commit per PR.

    python tools/export_upstream.py OUTDIR [--base RELEASE | --base-wheel PATH]

Each PR of ``tools/stack.py`` that has files becomes one commit carrying its
new files (``torch/...``), its patches applied to the pristine upstream files,
its tests (``test/...``) and its docs pages (``docs/source/...``), with the
PR's commit message (its design note, ``docs/design/<pr>.md``).  The commits
apply with ``git am`` onto a PyTorch checkout of the base release, one after
the other: ``--base 2.15.0`` (any release ``patches/releases`` lists; each takes
its own series), default 2.13.0, resolved by pip into ``build/base-RELEASE/``
(``build/base/`` for 2.13.0) as ``tools/run_tests.py`` does;
``ghstack submit`` then opens one PR per commit.  The output is reproducible: same inputs, same bytes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_wheel  # noqa: E402
import check  # noqa: E402
import patchset  # noqa: E402
import rawzip  # noqa: E402
import stack  # noqa: E402
import unidiff  # noqa: E402


__all__ = ["base_wheel", "commits", "export", "target_path"]

#: Fixed identity and date so that exporting twice gives the same bytes.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Torch Tool",
    "GIT_AUTHOR_EMAIL": "torch-tool@users.noreply.github.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "Torch Tool",
    "GIT_COMMITTER_EMAIL": "torch-tool@users.noreply.github.com",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def target_path(rel: str) -> str | None:
    """Where a repository file lands in a PyTorch checkout (None for patches, which are applied)."""
    if rel.startswith("torch_overlay/"):
        return rel[len("torch_overlay/") :]
    if rel.startswith(("test/", "docs/source/")):
        return rel
    return None


def pristine_files(tree: patchset.Tree) -> dict[str, bytes]:
    """The upstream files the patches of the tree's release modify, as ``tree`` holds them (the base)."""
    out = {}
    release = patchset.select_release(patchset.torch_version(tree), tree.describe())
    for patch_file, fp in patchset.file_patches(release):
        data = tree.read(fp.path)
        if data is None:
            raise patchset.PatchSetError(
                f"cannot export patches/{patch_file.name}: {fp.path} is not in {tree.describe()}"
            )
        out[fp.path] = data
    return out


def commits(
    pristine: dict[str, bytes], release: str = patchset.BASE_VERSION
) -> Iterator[tuple[stack.PR, dict[str, bytes], list[str]]]:
    """For each non-empty PR in order: the PR, the files its commit writes, its test files.

    Patched files are the pristine bytes with every patch of this PR and the
    PRs before it applied in ``patches/series`` order (``release``'s variants).  Raises
    :class:`patchset.PatchSetError` naming the PR and the hunk when a PR's
    patches do not apply without a later PR's.
    """
    groups = stack.assign()
    order = {p.name: i for i, p in enumerate(patchset.series(release))}
    file_patches = patchset.file_patches(release)
    landed: set[str] = set()
    indexes: dict[str, bytes] = {}  # docs index page -> its content as last written
    for pr in stack.STACK:
        files = groups[pr.name]
        if not files:
            continue
        landed.update(files)
        written = {target_path(rel): (patchset.ROOT / rel).read_bytes() for rel in files if target_path(rel)}
        # Series order; a patch touching several files keeps its own file order (stable sort).
        mine = sorted(
            ((order[pf.name], pf, fp) for pf, fp in file_patches if f"patches/{pf.name}" in landed),
            key=lambda entry: entry[0],
        )
        touched = {fp.path for pf, fp in file_patches if f"patches/{pf.name}" in files}
        for path in sorted(touched):
            content = pristine[path]
            for _, pf, fp in mine:
                if fp.path != path:
                    continue
                try:
                    content = unidiff.apply_file_patch(content, fp)
                except unidiff.HunkError as e:
                    raise patchset.PatchSetError(
                        f"PR {pr.name!r}: {pf.relative_to(patchset.ROOT).as_posix()} does not apply on top of the PRs before it: {e}; "
                        "a patch it depends on belongs to a later PR (reorder tools/stack.py or patches/series)"
                    ) from None
            written[path] = content
        # A docs index page lists only the pages landed so far (Sphinx warns about a missing one).
        pages = {Path(rel).stem for rel in landed if rel.startswith("docs/source/")}
        for rel in sorted(landed):
            if rel.startswith("docs/source/") and rel.endswith(".rst"):
                text = (patchset.ROOT / rel).read_text(encoding="utf-8")
                if check.is_index_page(text):
                    content = index_page_for(text, pages).encode()
                    if indexes.get(rel) != content:
                        written[rel] = indexes[rel] = content
        tests = sorted(rel for rel in files if rel.startswith("test/"))
        yield pr, written, tests


def index_page_for(text: str, pages: set[str]) -> str:
    """An index page with only the toctree entries in ``pages``; a toctree left empty is dropped."""
    out: list[str] = []
    block: list[str] | None = None  # the toctree being read: directive, options, entries
    kept = 0

    def flush() -> None:
        nonlocal block
        if block is not None and kept:
            out.extend(block)
        block = None

    for line in text.splitlines():
        if line.startswith(".. toctree::"):
            flush()
            block, kept = [line], 0
        elif block is not None and line and not line[0].isspace():
            flush()
            out.append(line)
        elif block is not None:
            entry = line.strip()
            if entry and not entry.startswith(":") and entry not in pages:
                continue
            kept += bool(entry) and not entry.startswith(":")
            block.append(line)
        else:
            out.append(line)
    flush()
    return "\n".join(out).rstrip("\n") + "\n"


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, env=env, stdout=subprocess.PIPE, text=True
    ).stdout


def export(outdir: Path, base_wheel: Path) -> list[Path]:
    """Write the stack as ``git format-patch`` files into ``outdir``; return them in order."""
    with rawzip.RawZip(base_wheel) as zf:
        tree = build_wheel.ZipTree(zf)
        pristine = pristine_files(tree)
        release = patchset.release_of(patchset.torch_version(tree))
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.patch"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="torch-tool-export-") as tmp:
        repo = Path(tmp)
        _git(repo, "init", "--quiet", "--initial-branch=main")
        for path, data in pristine.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_bytes(data)
        _git(repo, "add", "-A")
        _git(repo, "commit", "--quiet", "--allow-empty", "-m", f"PyTorch {release} (files the stack modifies)")
        base = _git(repo, "rev-parse", "HEAD").strip()
        for pr, written, tests in commits(pristine, release):
            for path, data in written.items():
                (repo / path).parent.mkdir(parents=True, exist_ok=True)
                (repo / path).write_bytes(data)
            _git(repo, "add", "-A")
            _git(repo, "commit", "--quiet", "-m", pr.message(tests))
        names = _git(repo, "format-patch", "--zero-commit", "--no-signature", "-o", str(outdir.resolve()), f"{base}..HEAD")
    return [Path(n) for n in names.split()]


def base_wheel(release: str) -> Path:
    """The base wheel of a supported ``release``: the one cached in ``build/``, else pip's (``torch==release``)."""
    patchset.select_release(release, "--base")
    cache = patchset.ROOT / "build" / ("base" if release == patchset.BASE_VERSION else f"base-{release}")
    return build_wheel.fetch_base_wheel(cache, f"torch=={release}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path, help="folder for the NNNN-*.patch files (existing *.patch there are replaced)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument(
        "--base",
        metavar="RELEASE",
        default=patchset.BASE_VERSION,
        help=f"the torch release the stack applies to, one of patches/releases (default {patchset.BASE_VERSION})",
    )
    which.add_argument("--base-wheel", type=Path, help="a base wheel of a supported release, instead of --base's")
    args = ap.parse_args(argv)
    try:
        base = args.base_wheel or base_wheel(args.base)
        for path in export(args.outdir, base):
            print(path)
    except (patchset.PatchSetError, stack.StackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
