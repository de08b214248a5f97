#!/usr/bin/env python3
"""Per-call cost of torch.utils.telemetry, against what users would use instead.

    python benchmarks/bench_telemetry.py [--calls N] [--repeat N]

Run with the patched torch installed (``python tools/run_tests.py`` or
``python setup.py develop``).  Compares, in one run, on CPU, with no profiler
recording:
- a bare call of an empty function (the floor);
- two ``time.perf_counter_ns()`` reads around the call (hand-written timing,
  which keeps no statistics);
- ``@telemetry`` (the decorator) and ``with telemetry("name"):`` (a block);
- ``with torch.profiler.record_function("name"):`` around the call (what
  PyTorch offers today; records nothing unless a profiler runs).
Prints the best-of-N microseconds per call (wrapper cost plus the empty
call) and ratios to the bare call, to the floor (two ``perf_counter_ns``
reads around the call: what any timing costs) and to ``record_function``.  By default the
clock is this thread's CPU time, so other processes on a busy machine do not
inflate the figures; ``--clock wall`` uses ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import time
import timeit

import torch
from torch.utils.telemetry import reset, snapshot, telemetry


def empty():
    pass


timed = telemetry(empty)
_perf_counter_ns = time.perf_counter_ns
_record_function = torch.profiler.record_function


def hand_timed():
    start = _perf_counter_ns()
    empty()
    return _perf_counter_ns() - start


def block():
    with telemetry("block"):
        empty()


def record_function():
    with _record_function("empty"):
        empty()


def per_call_us(fn, calls: int, repeat: int, timer) -> float:
    return min(timeit.repeat(fn, number=calls, repeat=repeat, timer=timer)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--clock",
        choices=["thread", "wall"],
        default="thread",
        help="thread: CPU time of this thread (robust on a shared, loaded machine); wall: perf_counter",
    )
    args = parser.parse_args()
    timer = time.thread_time if args.clock == "thread" else time.perf_counter

    cases = [
        ("bare call", empty),
        ("2x time.perf_counter_ns (no statistics)", hand_timed),
        ("@telemetry", timed),
        ('with telemetry("block")', block),
        ("torch.profiler.record_function", record_function),
    ]
    reset()
    results = {name: per_call_us(fn, args.calls, args.repeat, timer) for name, fn in cases}
    assert snapshot()[empty.__qualname__]["count"] == args.calls * args.repeat

    bare, rf = results["bare call"], results["torch.profiler.record_function"]
    floor = results["2x time.perf_counter_ns (no statistics)"]
    print(
        f"torch {torch.__version__}, {args.calls} calls x best of {args.repeat}, {args.clock} clock, "
        "CPU, no profiler recording"
    )
    print(f"{'method':<42}{'us/call':>10}{'x bare':>10}{'x floor':>10}{'x record_function':>20}")
    for name, us in results.items():
        print(f"{name:<42}{us:>10.3f}{us / bare:>10.1f}{us / floor:>10.1f}{us / rf:>20.2f}")
    overhead = results["@telemetry"] - bare
    print(f"\n@telemetry overhead over a bare call: {overhead:.3f} us (target <= 1 us)")
    block_us = results['with telemetry("block")']
    print(f'with telemetry("block"): {block_us / floor:.1f}x the floor (target <= 3x)')


if __name__ == "__main__":
    main()
