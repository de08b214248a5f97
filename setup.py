#!/usr/bin/env python3
"""The PyTorch-familiar entry point of the Torch Tool patch set.

    python setup.py bdist_wheel [--base-wheel PATH] [--dist-dir DIR]
        Build the patched torch wheel into dist/ from a base wheel of any
        supported release (default: torch==2.13.0, resolved by pip) and print
        its path.

    python setup.py develop [--uninstall]
        Link the overlay into the active environment's torch (and apply the
        patches of its release) for fast iteration; --uninstall restores it
        exactly.

The supported releases are those of ``patches/releases`` (2.11.0 to 2.15.0);
each takes its own series, chosen from the target's ``torch/version.py``.

This project does not package itself: it patches torch.  So this file is not a
setuptools script; it parses the two commands PyTorch developers type.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))

import apply  # noqa: E402
import build_wheel  # noqa: E402
import patchset  # noqa: E402


def _site_packages_of_torch() -> Path:
    # find_spec does not execute torch/__init__.py, so a half-patched torch is fine.
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise patchset.PatchSetError(
            f"no torch installed for {sys.executable}; pip install one of the supported releases first "
            f"({', '.join(patchset.supported_releases())})"
        )
    return Path(spec.origin).parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="setup.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bdist_wheel", help="build the patched wheel into dist/")
    b.add_argument("--base-wheel", type=Path, help=f"base torch wheel of a supported release (default: torch=={patchset.BASE_VERSION} via pip)")
    b.add_argument("--dist-dir", "-d", type=Path, default=ROOT / "dist")
    d = sub.add_parser("develop", help="link the overlay into the active environment's torch")
    d.add_argument("--uninstall", action="store_true", help="restore the environment's torch exactly")
    args = ap.parse_args(argv)

    try:
        if args.command == "bdist_wheel":
            base = args.base_wheel or build_wheel.fetch_base_wheel(ROOT / "build" / "base")
            print(build_wheel.build(base, args.dist_dir))
        else:
            target = _site_packages_of_torch()
            apply.run(target, reverse=args.uninstall, link=not args.uninstall)
    except patchset.PatchSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
