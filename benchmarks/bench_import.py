#!/usr/bin/env python3
"""``import torch`` time of the stock wheel against the patched one, in one run.

    python benchmarks/bench_import.py [--repeat N] [--patched-python PATH]

The stock wheel (``build/base/torch-*.whl``) is installed, once, into
``build/bench-stock-venv`` (with the dependencies of requirements/test.txt from
the same index as the test environment); the patched wheel is the one installed
in ``.venv`` (by ``python3 tools/run_tests.py``).  Runs alternate between the
two environments, N each, every one a fresh ``python -X importtime -c "import
torch"``: the script prints the median wall time of the process and the median
cumulative ``import torch`` time that ``-X importtime`` reports, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
STOCK_VENV = ROOT / "build" / "bench-stock-venv"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ensure_stock_venv() -> Path:
    python = _python(STOCK_VENV)
    if python.exists():
        return python
    wheels = sorted((ROOT / "build" / "base").glob("torch-*.whl"))
    if not wheels:
        sys.exit("bench_import.py: no stock wheel in build/base; run python3 tools/run_tests.py first")
    subprocess.run([sys.executable, "-m", "venv", str(STOCK_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements" / "test.txt")], check=True)
    subprocess.run([*pip, "--no-deps", str(wheels[-1])], check=True)
    return python


def _one_import(python: Path) -> tuple[float, float]:
    """Wall seconds of the process, and the cumulative microseconds of ``import torch`` from -X importtime."""
    start = time.perf_counter()
    out = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import torch"], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    for line in out.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "torch":
            return wall, int(parts[1]) / 1e6
    raise RuntimeError(f"no 'torch' line in the -X importtime output of {python}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="imports per environment (default 10)")
    parser.add_argument("--patched-python", type=Path, default=_python(ROOT / ".venv"))
    args = parser.parse_args()
    if not args.patched_python.exists():
        sys.exit(f"bench_import.py: {args.patched_python} does not exist; run python3 tools/run_tests.py first")
    envs = {"stock": _ensure_stock_venv(), "patched": args.patched_python}
    for python in envs.values():
        _one_import(python)  # warm the page cache once per environment
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for _ in range(args.repeat):
        for name, python in envs.items():
            results[name].append(_one_import(python))
    print(f"import torch, median of {args.repeat} alternating fresh processes each")
    print(f"{'wheel':<8} {'wall (s)':>9} {'importtime (s)':>15}")
    medians = {}
    for name, runs in results.items():
        medians[name] = (statistics.median(w for w, _ in runs), statistics.median(t for _, t in runs))
        print(f"{name:<8} {medians[name][0]:>9.3f} {medians[name][1]:>15.3f}")
    wall = medians["patched"][0] / medians["stock"][0]
    cumulative = medians["patched"][1] / medians["stock"][1]
    print(f"{'ratio':<8} {wall:>9.3f} {cumulative:>15.3f}   (patched / stock)")


if __name__ == "__main__":
    main()
