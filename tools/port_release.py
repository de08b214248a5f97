#!/usr/bin/env python3
"""Draft a torch release's patch variants: what ``patches/<FOLDER>/`` needs for that release.

    python tools/port_release.py TREE FOLDER [--write]

TREE is that release's unpacked wheel (or site-packages, or checkout); FOLDER
is the variant folder (e.g. ``2.16``) that its line in ``patches/releases``
will name.  For each patch of ``patches/series`` in order, the folders this
release would search (FOLDER first) are tried exactly; a patch that applies
exactly needs no variant.  For one that does not, each change is drafted
next to the nearest context lines found in the release's file (lines it
removes must be there exactly), and the draft is written as an exact diff
against the release's own bytes.  The draft is a proposal: read
every hunk before committing it (``git diff --no-index`` the base patch and
the variant), then prove it with ``tools/check.py --base-wheel W``.  Applying
never fuzzes: only the reviewed variant is used.  Without ``--write`` it only
says which patches need a variant.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import patchset  # noqa: E402
import unidiff  # noqa: E402


def _header(text: bytes) -> bytes:
    """The description above a patch's first ``diff --git`` line."""
    cut = text.find(b"diff --git ")
    return text[:cut] if cut >= 0 else b""


def _diff(path: str, before: bytes, after: bytes) -> bytes:
    lines = difflib.diff_bytes(
        difflib.unified_diff,
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"a/{path}".encode(),
        f"b/{path}".encode(),
        n=3,
    )
    return f"diff --git a/{path} b/{path}\n".encode() + b"".join(lines)


def _find(lines: list[bytes], block: list[bytes], pos: int) -> int | None:
    for i in range(pos, len(lines) - len(block) + 1):
        if lines[i : i + len(block)] == block:
            return i
    return None


def _draft(content: bytes, fp: unidiff.FilePatch) -> bytes | None:
    """The file with each change of ``fp`` made where its nearest context lines are (None if not found).

    Removed or replaced lines must be there exactly; added lines go after the
    longest run (up to 3) of the context lines before them that is found, or
    before the lines after them.
    """
    lines = content.splitlines(keepends=True)
    edits: list[tuple[int, int, list[bytes]]] = []
    pos = 0
    for hunk in fp.hunks:
        ops = difflib.SequenceMatcher(a=hunk.old, b=hunk.new, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                continue
            if tag != "insert":
                at = _find(lines, hunk.old[i1:i2], pos)
                if at is None:
                    return None
                edits.append((at, at + i2 - i1, hunk.new[j1:j2]))
                pos = at + i2 - i1
                continue
            where = None
            for n in (3, 2, 1):
                if i1 >= n and (at := _find(lines, hunk.old[i1 - n : i1], pos)) is not None:
                    where = at + n
                    break
                if i1 + n <= len(hunk.old) and (at := _find(lines, hunk.old[i1 : i1 + n], pos)) is not None:
                    where = at
                    break
            if where is None:
                return None
            edits.append((where, where, hunk.new[j1:j2]))
            pos = where
    for start, end, new in reversed(edits):
        lines[start:end] = new
    return b"".join(lines)


def _file_sections(text: bytes) -> dict[str, bytes]:
    """Each ``diff --git`` section of a patch file by target path."""
    out = {}
    body = text[len(_header(text)) :]
    for chunk in body.split(b"\ndiff --git ")[0:]:
        chunk = chunk if chunk.startswith(b"diff --git ") else b"diff --git " + chunk
        path = unidiff.parse(chunk if chunk.endswith(b"\n") else chunk + b"\n")[0].path
        out[path] = chunk if chunk.endswith(b"\n") else chunk + b"\n"
    return out


def port(tree: patchset.DirTree, folder: str, *, write: bool = False) -> list[str]:
    """Return what happened to each patch needing a variant; write the drafts with ``write``."""
    release = patchset.release_of(patchset.torch_version(tree))
    folders = (folder, *patchset.releases().get(release, ()))
    content: dict[str, bytes] = {}
    report = []
    for name in patchset.series_names():
        path = next((patchset.PATCHES / f / name for f in folders if (patchset.PATCHES / f / name).is_file()), None)
        path = path or patchset.PATCHES / name
        text = path.read_bytes()
        fps = unidiff.parse(text, source=name)
        new: dict[str, bytes] = {}
        try:
            for fp in fps:
                new[fp.path] = unidiff.apply_file_patch(new.get(fp.path) or content.get(fp.path) or tree.read(fp.path), fp)
            content.update(new)
            continue
        except unidiff.HunkError as e:
            why = str(e)
        sections = _file_sections(text)
        out = _header(text)
        ok = True
        for fp_path, section in sections.items():
            before = content.get(fp_path) or tree.read(fp_path)
            after = _draft(before, unidiff.parse(section)[0])
            if after is None:
                ok = False
                break
            content[fp_path] = after
            out += _diff(fp_path, before, after)
        if not ok:
            report.append(f"{name}: {why}; no draft either: port it by hand")
            continue
        dest = patchset.PATCHES / folder / name
        if write:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(out)
        report.append(f"{name}: {why}; drafted {dest.relative_to(patchset.ROOT)}{'' if write else ' (not written)'}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", type=Path, help="folder holding the release's torch/")
    ap.add_argument("folder", help="variant folder under patches/ (e.g. 2.16)")
    ap.add_argument("--write", action="store_true", help="write the drafted variants")
    args = ap.parse_args(argv)
    for line in port(patchset.DirTree(args.tree), args.folder, write=args.write) or ["every patch applies exactly"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
