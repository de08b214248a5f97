#!/usr/bin/env python3
"""How long building the patched wheel takes, against what users would do instead.

    python benchmarks/bench_wheel_build.py [--base-wheel PATH] [--repeat N]

Compares, in one run on the same base wheel:
- a plain copy of the base wheel (the floor: the bytes must be written once);
- tools/build_wheel.py (raw copy of untouched entries + the patch set);
- ``wheel unpack`` + apply + ``wheel pack`` (what one would script by hand;
  needs the ``wheel`` package: ``pip install -r requirements/bench.txt``).
Prints best-of-N seconds and the ratios to the plain copy.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import apply  # noqa: E402
import build_wheel  # noqa: E402


def best(fn, repeat: int, clean: Path) -> float:
    """Best wall time of ``fn``; ``clean`` is emptied first, untimed, so no
    method pays for deleting the previous run's 190 MB output."""
    times = []
    for _ in range(repeat):
        shutil.rmtree(clean, ignore_errors=True)
        clean.mkdir(parents=True)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-wheel", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-unpack", action="store_true", help="skip the slow wheel unpack/pack baseline")
    args = ap.parse_args()
    base = args.base_wheel or build_wheel.fetch_base_wheel(ROOT / "build" / "base")
    size = base.stat().st_size

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_s = best(lambda: shutil.copyfile(base, tmp / "copy" / base.name), args.repeat, tmp / "copy")
        build_s = best(lambda: build_wheel.build(base, tmp / "dist", quiet=True), args.repeat, tmp / "dist")
        rows = [("plain copy of the base wheel", copy_s), ("tools/build_wheel.py (patched wheel)", build_s)]

        if not args.skip_unpack:
            def unpack_pack() -> None:
                work = tmp / "unpack" / "work"
                subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", work, base], check=True, capture_output=True)
                (unpacked,) = work.iterdir()
                apply.run(unpacked, quiet=True)
                subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", tmp / "unpack", unpacked], check=True, capture_output=True)

            rows.append(("wheel unpack + apply + wheel pack", best(unpack_pack, 1, tmp / "unpack")))

    print(f"base wheel: {base.name} ({size / 1e6:.0f} MB)")
    print(f"{'method':<40} {'seconds':>9} {'x plain copy':>13}")
    for name, s in rows:
        print(f"{name:<40} {s:>9.2f} {s / copy_s:>13.2f}")
    if len(rows) == 3:
        print(f"build_wheel.py is {rows[2][1] / build_s:.0f}x faster than unpack + pack")


if __name__ == "__main__":
    main()
