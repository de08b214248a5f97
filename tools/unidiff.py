"""A strict unified-diff engine: parse ``git diff`` output and apply it in memory.

Why not GNU ``patch`` or ``git apply``: the patch set must apply to an installed
torch, an unpacked wheel and a source checkout alike, report *which hunk* of
*which file* failed, never fuzz, and be installed by nothing but this repository.
Everything here works on ``bytes`` so line endings and encodings survive exactly.

Hunks match exactly (no fuzz).  A hunk may be found away from the line its
header names (an "offset", as ``patch`` reports it), but only if its context
and removed lines match byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


__all__ = ["FilePatch", "Hunk", "HunkError", "parse", "apply_file_patch"]

_HUNK_RE = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = b"\\ No newline at end of file"


class HunkError(ValueError):
    """A hunk that does not match the file it is applied to."""

    def __init__(self, path: str, index: int, header: str, reason: str) -> None:
        self.path = path
        self.index = index
        self.header = header
        super().__init__(f"{path}: hunk #{index} ({header}) {reason}")


@dataclass
class Hunk:
    """One ``@@`` block: the lines it expects and the lines it leaves."""

    header: str
    old_start: int
    new_start: int
    old: list[bytes] = field(default_factory=list)
    new: list[bytes] = field(default_factory=list)

    def reversed(self) -> Hunk:
        return Hunk(self.header, self.new_start, self.old_start, list(self.new), list(self.old))

    def index(self) -> int:
        """0-based line index where the old lines start (or, if none, where new ones go)."""
        # Unified diff numbers an empty range by the line *before* it.
        return self.old_start if not self.old else self.old_start - 1


@dataclass
class FilePatch:
    """All hunks of one file, with the path relative to the repository root."""

    path: str
    hunks: list[Hunk] = field(default_factory=list)

    def reversed(self) -> FilePatch:
        return FilePatch(self.path, [h.reversed() for h in self.hunks])


def _strip_prefix(raw: bytes) -> str:
    name = raw.split(b"\t", 1)[0].decode()
    if name == "/dev/null":
        return name
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse(text: bytes, *, source: str = "<diff>") -> list[FilePatch]:
    """Parse a unified diff into one :class:`FilePatch` per file.

    Raises ``ValueError`` naming ``source`` and the line for anything that is
    not a well-formed diff, or for a diff that creates or deletes a file
    (new files belong to the overlay, not to patches).
    """
    lines = text.splitlines(keepends=True)
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(b"--- "):
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith(b"+++ "):
            raise ValueError(f"{source}:{i + 1}: '---' line without a '+++' line")
        old_name = _strip_prefix(line[4:].rstrip(b"\r\n"))
        new_name = _strip_prefix(lines[i + 1][4:].rstrip(b"\r\n"))
        if "/dev/null" in (old_name, new_name) or old_name != new_name:
            raise ValueError(
                f"{source}:{i + 1}: patches may only modify existing files in place "
                f"(got {old_name!r} -> {new_name!r}); put new files in torch_overlay/"
            )
        fp = FilePatch(new_name)
        i += 2
        while i < len(lines) and lines[i].startswith(b"@@"):
            m = _HUNK_RE.match(lines[i])
            if m is None:
                raise ValueError(f"{source}:{i + 1}: malformed hunk header {lines[i]!r}")
            old_len = int(m.group(2) or b"1")
            new_len = int(m.group(4) or b"1")
            hunk = Hunk(lines[i].rstrip(b"\r\n").decode(), int(m.group(1)), int(m.group(3)))
            i += 1
            while (len(hunk.old) < old_len or len(hunk.new) < new_len) and i < len(lines):
                body = lines[i]
                tag, content = body[:1], body[1:]
                if body.startswith(_NO_NEWLINE):
                    i += 1
                    continue
                if tag == b" " or body in (b"\n", b"\r\n"):
                    content = content if tag == b" " else body
                    hunk.old.append(content)
                    hunk.new.append(content)
                elif tag == b"-":
                    hunk.old.append(content)
                elif tag == b"+":
                    hunk.new.append(content)
                else:
                    raise ValueError(f"{source}:{i + 1}: unexpected line in hunk {body!r}")
                i += 1
            if len(hunk.old) != old_len or len(hunk.new) != new_len:
                raise ValueError(f"{source}: hunk {hunk.header!r} of {fp.path} is truncated")
            # "\ No newline at end of file" after the last line of a side.
            while i < len(lines) and lines[i].startswith(_NO_NEWLINE):
                prev = lines[i - 1]
                if prev.startswith((b"-", b" ")) and hunk.old:
                    hunk.old[-1] = hunk.old[-1].rstrip(b"\r\n")
                if prev.startswith((b"+", b" ")) and hunk.new:
                    hunk.new[-1] = hunk.new[-1].rstrip(b"\r\n")
                i += 1
            fp.hunks.append(hunk)
        if not fp.hunks:
            raise ValueError(f"{source}: no hunks for {fp.path}")
        patches.append(fp)
    if not patches:
        raise ValueError(f"{source}: not a unified diff (no '---'/'+++' file headers)")
    return patches


def _find(haystack: list[bytes], needle: list[bytes], hint: int, lo: int) -> int:
    """Index of ``needle`` in ``haystack`` at or after ``lo``, closest to ``hint``."""
    last = len(haystack) - len(needle)
    if last < lo:
        return -1
    hint = min(max(hint, lo), last)
    if not needle:
        return hint
    # Candidates are the lines equal to the needle's first one, found by list.index in C;
    # the closest to the hint wins, the earlier one on a tie.
    first, n = needle[0], len(needle)
    candidates = []
    pos = lo
    while True:
        try:
            pos = haystack.index(first, pos, last + 1)
        except ValueError:
            break
        candidates.append(pos)
        pos += 1
    for pos in sorted(candidates, key=lambda p: (abs(p - hint), p)):
        if haystack[pos : pos + n] == needle:
            return pos
    return -1


def apply_file_patch(content: bytes, patch: FilePatch) -> bytes:
    """Return ``content`` with every hunk of ``patch`` applied.

    Raises :class:`HunkError` for the first hunk whose context or removed
    lines are not found in order.
    """
    lines = content.splitlines(keepends=True)
    out: list[bytes] = []
    cursor = 0
    offset = 0
    for index, hunk in enumerate(patch.hunks, 1):
        pos = _find(lines, hunk.old, hunk.index() + offset, cursor)
        if pos < 0:
            raise HunkError(patch.path, index, hunk.header, "does not match")
        offset = pos - hunk.index()
        out.extend(lines[cursor:pos])
        out.extend(hunk.new)
        cursor = pos + len(hunk.old)
    out.extend(lines[cursor:])
    return b"".join(out)
