#!/usr/bin/env python3
"""Per-call cost of torch.utils.telemetry, against what users would use instead.

    python benchmarks/bench_telemetry.py [--calls N] [--rounds N] [--clock thread|wall]

Run with the patched torch installed (``python tools/run_tests.py`` or
``python setup.py develop``).  Compares, in one run, on CPU, with no profiler
recording:
- a bare call of an empty function (the floor);
- two ``time.perf_counter_ns()`` reads around the call (hand-written timing,
  which keeps no statistics);
- ``@telemetry`` (the decorator) and ``with telemetry("name"):`` (a block);
- ``with torch.profiler.record_function("name"):`` around the call (what
  PyTorch offers today; records nothing unless a profiler runs);
- the least any ``with`` block written in Python can cost here: a context
  manager whose ``__enter__`` stores one ``perf_counter_ns`` reading in an
  attribute and whose ``__exit__`` stores the difference (no statistics, not
  safe to share between threads): what the ``with`` protocol itself adds.
Prints the microseconds per call (wrapper cost plus the empty call; the
fastest of interleaved rounds, see ``_timing.py``) and ratios to the bare
call, to the floor (two ``perf_counter_ns`` reads around the call: what any
timing costs) and to ``record_function``.  By default the clock is this
thread's CPU time, so other processes on a busy machine do not inflate the
figures; ``--clock wall`` uses ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from _timing import best_us, CLOCKS
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


class _BareTimer:
    """The least a Python ``with`` timer can do: two clock reads, one subtraction, two attribute stores."""

    __slots__ = ("start", "ns")

    def __enter__(self):
        self.start = _perf_counter_ns()

    def __exit__(self, exc_type, exc, tb):
        self.ns = _perf_counter_ns() - self.start


_bare_timer = _BareTimer()


def bare_with():
    with _bare_timer:
        empty()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per method per round")
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds; each method's fastest is kept")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="thread",
        help="thread: CPU time of this thread (robust on a shared, loaded machine); wall: perf_counter",
    )
    args = parser.parse_args()

    cases = {
        "bare call": empty,
        "2x time.perf_counter_ns (no statistics)": hand_timed,
        "@telemetry": timed,
        'with telemetry("block")': block,
        "least Python `with` timer (see above)": bare_with,
        "torch.profiler.record_function": record_function,
    }
    reset()
    results = best_us(cases, number=args.calls, rounds=args.rounds, timer=CLOCKS[args.clock])
    assert snapshot()[empty.__qualname__]["count"] == args.calls * args.rounds

    bare, rf = results["bare call"], results["torch.profiler.record_function"]
    floor = results["2x time.perf_counter_ns (no statistics)"]
    print(
        f"torch {torch.__version__}, Python {platform.python_version()}, {args.calls} calls x fastest of "
        f"{args.rounds} interleaved rounds, {args.clock} clock, CPU, no profiler recording"
    )
    print(f"{'method':<42}{'us/call':>10}{'x bare':>10}{'x floor':>10}{'x record_function':>20}")
    for name, us in results.items():
        print(f"{name:<42}{us:>10.3f}{us / bare:>10.1f}{us / floor:>10.1f}{us / rf:>20.2f}")
    overhead = results["@telemetry"] - bare
    print(f"\n@telemetry overhead over a bare call: {overhead:.3f} us (target <= 1 us)")
    block_us = results['with telemetry("block")']
    least = results["least Python `with` timer (see above)"]
    print(
        f'with telemetry("block"): {block_us / floor:.1f}x the floor (target <= 3x); '
        f"the least Python `with` timer: {least / floor:.1f}x"
    )


if __name__ == "__main__":
    main()
