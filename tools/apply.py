#!/usr/bin/env python3
"""Apply the Torch Tool patch set to a folder holding ``torch/``, or reverse it.

    python tools/apply.py TARGET            # apply (a no-op if already applied)
    python tools/apply.py TARGET --check    # say what would change; change nothing
    python tools/apply.py TARGET --reverse  # restore the original bytes exactly

TARGET is an environment's site-packages, an unpacked wheel, or a PyTorch
source checkout (which also receives ``test/`` and ``docs/source/`` files),
of any supported torch release (``patches/releases``: 2.11.0 to 2.15.0); the
release's own series is read from its ``torch/version.py``.
Every overlay file and every hunk is verified before anything is written: on
any mismatch the target is left exactly as it was and the error names the
file, the hunk and the torch version found.  Exit status: 0 done (or nothing
to do), 1 mismatch, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import patchset  # noqa: E402


def run(target: Path, *, check: bool = False, reverse: bool = False, link: bool = False, quiet: bool = False) -> patchset.Plan:
    """Plan and (unless ``check``) execute; raises :class:`patchset.PatchSetError`."""
    if not (target / "torch").is_dir():
        raise patchset.PatchSetError(f"{target} does not hold a torch/ folder; expected site-packages, an unpacked wheel or a PyTorch checkout")
    tree = patchset.DirTree(target)
    p = patchset.plan(tree, reverse=reverse, link=link, source_checkout=tree.is_source_checkout())
    say = (lambda msg: None) if quiet else (lambda msg: print(msg))
    verb = "reverse" if reverse else "apply"
    if p.is_noop:
        say(f"nothing to {verb}: {target} is already {'original' if reverse else 'patched'} ({len(p.unchanged)} files checked)")
        return p
    if check:
        for ch in p.changes:
            action = "remove" if ch.after is None else ("link" if ch.link else ("create" if ch.before is None else "patch"))
            say(f"would {action} {ch.rel}")
        say(f"{verb} would change {len(p.changes)} files in {target}; all hunks of torch {p.release}'s series match")
        return p
    patchset.execute(target, p)
    say(f"{verb}: changed {len(p.changes)} files in {target} (torch {patchset.torch_version(tree)}, {p.release}'s series)")
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", type=Path, help="folder holding torch/")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify only; change nothing")
    mode.add_argument("--reverse", action="store_true", help="undo the patch set")
    args = ap.parse_args(argv)
    try:
        run(args.target, check=args.check, reverse=args.reverse)
    except patchset.PatchSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
