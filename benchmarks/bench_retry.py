#!/usr/bin/env python3
"""What a retried call that succeeds costs, against tenacity and a bare call.

    python benchmarks/bench_retry.py [--number N] [--repeat R]

Needs the baseline: ``pip install -r requirements/bench.txt`` (tenacity).
Measures, in one run, the success path (best of R runs of N calls, in
microseconds) of:

- a bare call of the function;
- ``@torch.utils.retry.retry(attempts=3, delay=0.1)``;
- ``@tenacity.retry(stop=stop_after_attempt(3), wait=wait_exponential(...))``;
- the same with a result predicate: ``retry_on_result=`` against tenacity's
  ``retry=retry_if_result(...)``;
- one ``for attempt in retry_loop(...): with attempt:`` block and tenacity's
  ``for attempt in Retrying(...): with attempt:`` equivalent;
- the same for ``async def``: an awaited call of ``@retry`` against a bare
  ``await`` and tenacity's ``@retry`` (its ``AsyncRetrying``).

Prints each figure and its ratio to ours.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit

import tenacity

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


def per_call_us(stmt, number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def per_await_us(fn, number: int, repeat: int) -> float:
    async def drive() -> float:
        start = time.perf_counter()
        for _ in range(number):
            await fn(1)
        return time.perf_counter() - start

    loop = asyncio.new_event_loop()
    try:
        return min(loop.run_until_complete(drive()) for _ in range(repeat)) / number * 1e6
    finally:
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, r = args.number, args.repeat
    slow_n = max(n // 10, 1000)
    rows = [
        ("torch.utils.retry.retry", per_call_us(lambda: ours(1), n, r)),
        ("tenacity.retry", per_call_us(lambda: theirs(1), slow_n, r)),
        ("bare call", per_call_us(lambda: work(1), n, r)),
        ("retry(retry_on_result=...)", per_call_us(lambda: ours_result(1), n, r)),
        ("tenacity.retry(retry=retry_if_result(...))", per_call_us(lambda: theirs_result(1), slow_n, r)),
        ("torch.utils.retry.retry_loop (one block)", per_call_us(ours_loop, slow_n, r)),
        ("tenacity.Retrying (one block)", per_call_us(theirs_loop, slow_n, r)),
        ("torch.utils.retry.retry, async def (await)", per_await_us(aours, n, r)),
        ("tenacity.retry, async def (await)", per_await_us(atheirs, slow_n, r)),
        ("bare await", per_await_us(awork, n, r)),
    ]
    print("success path: the wrapped call does not fail")
    print(f"  {'method':<42} {'us/call':>10} {'x ours':>8}")
    for i, (name, us) in enumerate(rows):
        base = rows[(0, 0, 0, 3, 3, 5, 5, 7, 7, 7)[i]][1]
        print(f"  {name:<42} {us:>10.3f} {us / base:>8.2f}")
    print("(each figure includes the lambda call or await the harness makes; the bare rows are that floor)")


if __name__ == "__main__":
    main()
