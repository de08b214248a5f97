"""The upstream PR stack: which files of this repository make up which pull request.

The patch set lands in ``pytorch/pytorch`` as a stack of reviewable PRs, one
commit each (``ghstack``-friendly).  :data:`STACK` lists them in landing order;
each claims files by glob, relative to this repository's root:

- ``torch_overlay/torch/...`` new files (exported as ``torch/...``),
- ``patches/NNNN-*.patch`` edits of existing upstream files (exported applied),
- ``test/test_*.py`` (exported as ``test/...``),
- ``docs/source/*`` pages (exported as ``docs/source/...``).

Every such file must be claimed by exactly one PR: ``tools/check.py`` names any
file that no PR (or more than one) claims.  A PR that claims no file yet is
skipped by the exporter, so a component lands in the stack by adding its files
under the globs below (or by adding a glob here).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import patchset


__all__ = ["NOTES", "PR", "STACK", "StackError", "assign", "inventory", "read_note"]

#: One design note per PR: the PR description its exported commit carries.
NOTES = patchset.ROOT / "docs" / "design"


class StackError(ValueError):
    """A file of the patch set that is not claimed by exactly one PR."""


@dataclass(frozen=True)
class PR:
    """One pull request of the stack."""

    name: str
    title: str
    globs: tuple[str, ...]

    def claims(self, rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, g) for g in self.globs)

    @property
    def note(self) -> Path:
        """The PR's design note, ``docs/design/<name>.md``: its description (Summary, design, Test Plan)."""
        return NOTES / f"{self.name}.md"

    def message(self, tests: list[str]) -> str:
        """The commit message: the PR description of its design note, the test commands appended.

        The note is PyTorch's PR description: the title, underlined, then
        ``Summary:``, the design details, and ``Test Plan:`` last; the Test Plan
        gets one ``python test/...`` line per test file of the PR.
        """
        title, body = read_note(self.note)
        if re.search(r"\n[ \t]*\n[ \t]*\n", body):
            raise StackError(f"{_rel(self.note)}: two blank lines in a row, which git drops from a commit message")
        if title != self.title:
            raise StackError(f"{_rel(self.note)}: title {title!r} is not the PR's title {self.title!r} (tools/stack.py)")
        plan = "\n".join(f"    python {t}" for t in tests) or "    (no test file)"
        return f"{self.title}\n\n{body.rstrip()}\n\n{plan}\n"


def _rel(path: Path) -> str:
    try:
        return path.relative_to(patchset.ROOT).as_posix()
    except ValueError:
        return str(path)


def read_note(path: Path) -> tuple[str, str]:
    """A design note's title and body; :class:`StackError` naming what is missing.

    The body starts with ``Summary:`` and ends with the ``Test Plan:`` section.
    """
    if not path.is_file():
        raise StackError(f"{_rel(path)} is missing: every PR of tools/stack.py has a design note (its PR description)")
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 3 or not lines[1] or set(lines[1]) != {"="}:
        raise StackError(f"{_rel(path)}: the first line is the PR's title, underlined with '=' on the second")
    body = "\n".join(lines[2:]).strip("\n")
    if not body.startswith("Summary:\n"):
        raise StackError(f"{_rel(path)}: the description starts with a 'Summary:' line after the title")
    if "\nTest Plan:\n" not in body + "\n":
        raise StackError(f"{_rel(path)}: the description ends with a 'Test Plan:' section (test commands are appended)")
    return lines[0], body


def _utils(*stems: str) -> tuple[str, ...]:
    """Globs for ``torch.utils.<stem>`` (module or package), its private helpers, tests and docs pages."""
    out: list[str] = []
    for s in stems:
        out += [
            f"torch_overlay/torch/utils/{s}.py",
            f"torch_overlay/torch/utils/{s}/*",
            # private helpers: _dashboard.py, _dashboard_page.py, _dashboard/...
            f"torch_overlay/torch/utils/_{s}*",
            f"test/test_utils_{s}*.py",
            f"docs/source/torch.utils.{s}.*",
        ]
    return tuple(out)


# Patches are claimed by number: a component's patches are named 000N-... by
# its issue number (0001 is the foundation's lazy import of torch._accelerator).
STACK: list[PR] = [
    PR(
        "amp",
        "[amp] Choose autocast defaults per device",
        (
            "torch_overlay/torch/amp/*",
            "patches/0005-*",
            "test/test_amp*.py",
            "docs/source/torch.amp.*",
        ),
    ),
    PR(
        "device",
        "[accelerator] Add torch._accelerator device selection",
        (
            "torch_overlay/torch/_accelerator/*",
            # get_best_device(min_free_memory=...) is the first user of the size parser.
            "torch_overlay/torch/utils/_memory_size.py",
            "test/test_utils_memory_size*.py",
            # DeviceContext is the first decorator applied step by step to coroutines and generators.
            "torch_overlay/torch/utils/_stepwise.py",
            "test/test_utils_stepwise*.py",
            "patches/0001-*",
            "patches/0003-*",
            "test/test_accelerator*.py",
            "docs/source/torch._accelerator.*",
            # The docs index page lands with the first page; later PRs add their pages to its toctrees.
            "docs/source/utilities.rst",
        ),
    ),
    PR(
        "memory",
        "[cuda] Add memory guards, safe_run and torch.utils.error_callback",
        (
            "torch_overlay/torch/cuda/*",
            "torch_overlay/torch/utils/error_callback.py",
            # safe_run is the first wrapper that stays eager under torch.compile.
            "torch_overlay/torch/utils/_eager.py",
            "patches/0004-*",
            "test/test_cuda*.py",
            "test/test_utils_error_callback*.py",
            "docs/source/torch.cuda.*",
            "docs/source/torch.utils.error_callback.*",
        ),
    ),
    PR(
        "timeout-retry",
        "[utils] Add torch.utils.timeout and torch.utils.retry",
        ("patches/0006-*", *_utils("timeout", "retry")),
    ),
    PR(
        "telemetry",
        "[utils] Add torch.utils.telemetry and its live dashboard",
        ("patches/0007-*", *_utils("telemetry", "dashboard")),
    ),
    PR(
        "tensorize",
        "[utils] Add torch.utils.auto_tensorize, patch_numpy and dry_run",
        ("patches/0008-*", *_utils("auto_tensorize", "tensorize", "patch_numpy", "dry_run")),
    ),
    PR(
        "composability",
        "[test] Test the new utilities under compile, fork, spawn and distributed",
        ("test/test_utils_composability.py",),
    ),
]


def inventory() -> list[str]:
    """Every file of the patch set, relative to this repository's root.

    That is every file a PyTorch source checkout receives (overlay, ``test/``,
    ``docs/source/``: a stray file there would land upstream too) and every patch.
    """
    files = [
        path.relative_to(patchset.ROOT).as_posix() for path in patchset.overlay_files(source_checkout=True).values()
    ]
    files += [p.relative_to(patchset.ROOT).as_posix() for p in sorted(patchset.PATCHES.glob("*.patch"))]
    return files


def assign(files: list[str] | None = None, stack: list[PR] | None = None) -> dict[str, list[str]]:
    """Map each PR's name to the files it claims, in inventory order.

    Raises :class:`StackError` listing every file claimed by no PR or by
    several, with what to do about it.
    """
    stack = STACK if stack is None else stack
    out: dict[str, list[str]] = {pr.name: [] for pr in stack}
    problems = []
    for rel in inventory() if files is None else files:
        owners = [pr.name for pr in stack if pr.claims(rel)]
        if len(owners) == 1:
            out[owners[0]].append(rel)
        elif not owners:
            problems.append(
                f"{rel} belongs to no PR of the upstream stack; rename it to match a PR's globs "
                f"or add a glob for it in tools/stack.py (PRs: {', '.join(pr.name for pr in stack)})"
            )
        else:
            problems.append(f"{rel} is claimed by several PRs ({', '.join(owners)}); narrow the globs in tools/stack.py")
    if problems:
        raise StackError("\n".join(problems))
    return out
