"""Every benchmark in ``benchmarks/`` still runs: each script, with a few calls, in a fresh process.

The figures are not checked (no test asserts on timing); what is checked is that a script exits 0 and
prints its table, so that an API change cannot leave a benchmark broken until someone next measures.
A script whose baselines (``requirements/bench.txt``) are not installed is skipped.  Not run here:
``bench_import.py`` and ``bench_wheel_build.py`` (they build environments and wheels, minutes each).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# (script, arguments for a short run, modules it needs beyond torch, a line its output must contain)
CASES = [
    ("bench_amp.py", ["--repeat", "1"], [], "torch.autocast()"),
    ("bench_batch_size.py", ["--start", "64", "--fits", "20", "--repeat", "1"], [], "find_batch_size"),
    ("bench_dry_run.py", [], [], "conv net"),
    ("bench_best_device.py", ["--repeat", "1"], [], "bench_best_device"),
    ("bench_retry.py", ["--number", "200", "--rounds", "2"], ["tenacity"], "@retry success path over a bare call"),
    ("bench_safe_run.py", ["--number", "100", "--repeat", "1"], [], "torch.cuda.safe_run(f)"),
    ("bench_telemetry.py", ["--calls", "50", "--rounds", "2"], [], 'with telemetry("block")'),
    ("bench_tensorize.py", ["--repeat", "1", "--number", "20"], ["numpy"], "rehearse(step, model, x, backward=True)"),
    ("bench_timeout.py", ["--number", "100", "--repeat", "1"], ["stopit", "func_timeout"], "move_on"),
]


def test_every_benchmark_is_covered():
    scripts = {p.name for p in BENCHMARKS.glob("bench_*.py")}
    assert scripts == {case[0] for case in CASES} | {"bench_import.py", "bench_wheel_build.py"}


@pytest.mark.parametrize(("script", "args", "needs", "expected"), CASES, ids=[case[0] for case in CASES])
def test_benchmark_runs(script, args, needs, expected, tmp_path):
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)} (pip install -r requirements/bench.txt)")
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=tmp_path,  # not the source tree: the installed torch is the one measured
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"{script} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert expected in run.stdout, run.stdout[-3000:]
