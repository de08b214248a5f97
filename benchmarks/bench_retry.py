#!/usr/bin/env python3
"""What a retried call that succeeds costs, against tenacity and a bare call.

    python benchmarks/bench_retry.py [--number N] [--rounds R] [--clock thread|wall]

Needs the baseline: ``pip install -r requirements/bench.txt`` (tenacity).
Measures, in one run, the success path (microseconds per call, the fastest
of R interleaved rounds of N calls, see ``_timing.py``; this thread's CPU
time unless ``--clock wall``) of:

- a bare call of the function;
- ``@torch.utils.retry.retry(attempts=3, delay=0.1)``;
- ``@tenacity.retry(stop=stop_after_attempt(3), wait=wait_exponential(...))``;
- the same with a result predicate: ``retry_on_result=`` against tenacity's
  ``retry=retry_if_result(...)``;
- one ``for attempt in retry_loop(...): with attempt:`` block and tenacity's
  ``for attempt in Retrying(...): with attempt:`` equivalent;
- the same for ``async def``: an awaited call of ``@retry`` against a bare
  ``await`` and tenacity's ``@retry`` (its ``AsyncRetrying``).

Prints each figure and its ratio to ours, and the success path's overhead
over a bare call (the target is at most 0.3 us).
"""

from __future__ import annotations

import argparse
import asyncio
import platform

import tenacity
from _timing import best_us, CLOCKS

from torch.utils.retry import retry, retry_loop


def work(x: int) -> int:
    return x + 1


ours = retry(work, attempts=3, delay=0.1)
theirs = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(multiplier=0.1))(work)

ours_result = retry(work, attempts=3, delay=0.1, retry_on_result=lambda r: r is None)
theirs_result = tenacity.retry(
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_exponential(multiplier=0.1),
    retry=tenacity.retry_if_result(lambda r: r is None),
)(work)


def ours_loop() -> int:
    for attempt in retry_loop(attempts=3, delay=0.1):
        with attempt:
            return work(1)
    raise AssertionError("unreachable")


def theirs_loop() -> int:
    for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(multiplier=0.1)):
        with attempt:
            return work(1)
    raise AssertionError("unreachable")


async def awork(x: int) -> int:
    return x + 1


aours = retry(awork, attempts=3, delay=0.1)
atheirs = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(multiplier=0.1))(awork)


def per_await_us(fn, number: int, rounds: int, timer) -> float:
    """Microseconds per ``await fn(1)`` in one task: the fastest of ``rounds`` runs of ``number`` awaits."""

    async def drive() -> float:
        start = timer()
        for _ in range(number):
            await fn(1)
        return timer() - start

    loop = asyncio.new_event_loop()
    try:
        return min(loop.run_until_complete(drive()) for _ in range(rounds)) / number * 1e6
    finally:
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=20_000, help="calls per method per round")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved rounds; each method's fastest is kept")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="thread", help="thread: this thread's CPU time")
    args = ap.parse_args()
    n, r, timer = args.number, args.rounds, CLOCKS[args.clock]
    slow_n = max(n // 20, 100)
    calls = best_us(
        {
            "torch.utils.retry.retry": lambda: ours(1),
            "tenacity.retry": lambda: theirs(1),
            "bare call": lambda: work(1),
            "retry(retry_on_result=...)": lambda: ours_result(1),
            "tenacity.retry(retry=retry_if_result(...))": lambda: theirs_result(1),
            "torch.utils.retry.retry_loop (one block)": ours_loop,
            "tenacity.Retrying (one block)": theirs_loop,
        },
        number=n,
        rounds=r,
        timer=timer,
        numbers={
            "tenacity.retry": slow_n,
            "tenacity.retry(retry=retry_if_result(...))": slow_n,
            "torch.utils.retry.retry_loop (one block)": slow_n,
            "tenacity.Retrying (one block)": slow_n,
        },
    )
    rows = list(calls.items()) + [
        ("torch.utils.retry.retry, async def (await)", per_await_us(aours, n, r, timer)),
        ("tenacity.retry, async def (await)", per_await_us(atheirs, slow_n, r, timer)),
        ("bare await", per_await_us(awork, n, r, timer)),
    ]
    print(f"Python {platform.python_version()}, {args.clock} clock, fastest of {r} rounds")
    print("success path: the wrapped call does not fail")
    print(f"  {'method':<42} {'us/call':>10} {'x ours':>8}")
    for i, (name, us) in enumerate(rows):
        base = rows[(0, 0, 0, 3, 3, 5, 5, 7, 7, 7)[i]][1]
        print(f"  {name:<42} {us:>10.3f} {us / base:>8.2f}")
    print("(each figure includes the lambda call or await the harness makes; the bare rows are that floor)")
    overhead = calls["torch.utils.retry.retry"] - calls["bare call"]
    print(f"\n@retry success path over a bare call: {overhead:.3f} us (target <= 0.3 us)")


if __name__ == "__main__":
    main()
