#!/usr/bin/env python3
"""What a ``with timeout(...)`` block that does not expire costs, against what users pick instead.

    python benchmarks/bench_timeout.py [--number N] [--repeat R]

Needs the baselines: ``pip install -r requirements/bench.txt`` (stopit, func-timeout).
Measures, in one run, the cost of one block around an empty body (best of R runs
of N blocks, in microseconds):

- main thread: ``torch.utils.timeout.timeout`` (SIGALRM timer) against stopit's
  ``SignalTimeout`` and the floor of two ``signal.setitimer`` calls;
- worker thread: ``torch.utils.timeout.timeout`` (shared watchdog) against
  stopit's ``ThreadingTimeout`` (a timer thread per block) and
  ``func_timeout.func_timeout`` (a thread per call);
- the non-raising ``move_on`` block (trio's ``move_on_after``; trio itself is
  not measured, it needs its own event loop) in both threads;
- inside an asyncio task: ``async with timeout(...)``, ``async with move_on(...)``
  and a plain ``with timeout(...)`` in a coroutine against
  :func:`asyncio.timeout` (Python 3.11+);
- the decorator form, and a bare call, for scale.

Prints each figure and its ratio to ours.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
import timeit

import func_timeout
import stopit

from torch.utils.timeout import move_on, timeout


def noop() -> None:
    pass


def per_block_us(stmt, number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def ours() -> None:
    with timeout(60.0):
        pass


def ours_move_on() -> None:
    with move_on(60.0):
        pass


@timeout(60.0)
def ours_decorated() -> None:
    pass


def stopit_signal() -> None:
    with stopit.SignalTimeout(60.0):
        pass


def stopit_thread() -> None:
    with stopit.ThreadingTimeout(60.0):
        pass


def func_timeout_call() -> None:
    func_timeout.func_timeout(60.0, noop)


def setitimer_floor() -> None:
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    signal.setitimer(signal.ITIMER_REAL, 0)


def per_async_block_us(make, number: int, repeat: int, *, plain_with: bool = False) -> float:
    """Best of ``repeat`` runs of ``number`` blocks ``async with make(60.0): pass`` in one task."""

    async def blocks() -> float:
        start = time.perf_counter()
        if plain_with:
            for _ in range(number):
                with make(60.0):
                    pass
        else:
            for _ in range(number):
                async with make(60.0):
                    pass
        return time.perf_counter() - start

    async def best() -> float:
        return min([await blocks() for _ in range(repeat)])

    return asyncio.run(best()) / number * 1e6


def in_worker(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, r = args.number, args.repeat
    slow_n = max(n // 20, 200)  # thread-per-block baselines are ~100x slower

    main_rows = [
        ("torch.utils.timeout.timeout", per_block_us(ours, n, r)),
        ("torch.utils.timeout.move_on", per_block_us(ours_move_on, n, r)),
        ("torch.utils.timeout.timeout (decorator)", per_block_us(ours_decorated, n, r)),
        ("stopit.SignalTimeout", per_block_us(stopit_signal, n, r)),
        ("two signal.setitimer calls (floor)", per_block_us(setitimer_floor, n, r)),
        ("bare call", per_block_us(noop, n, r)),
    ]
    worker_rows = in_worker(
        lambda: [
            ("torch.utils.timeout.timeout", per_block_us(ours, n, r)),
            ("torch.utils.timeout.move_on", per_block_us(ours_move_on, n, r)),
            ("torch.utils.timeout.timeout (decorator)", per_block_us(ours_decorated, n, r)),
            ("stopit.ThreadingTimeout", per_block_us(stopit_thread, slow_n, r)),
            ("func_timeout.func_timeout", per_block_us(func_timeout_call, slow_n, r)),
        ]
    )
    task_rows = [
        ("async with timeout", per_async_block_us(timeout, n, r)),
        ("async with move_on", per_async_block_us(move_on, n, r)),
        ("with timeout (in the coroutine)", per_async_block_us(timeout, n, r, plain_with=True)),
    ]
    if hasattr(asyncio, "timeout"):  # Python 3.11+
        task_rows.append(("async with asyncio.timeout", per_async_block_us(asyncio.timeout, n, r)))
    sections = (("main thread", main_rows), ("worker thread", worker_rows), ("asyncio task", task_rows))
    for title, rows in sections:
        base = rows[0][1]
        print(f"{title}: one block with a 60 s limit that does not expire")
        print(f"  {'method':<42} {'us/block':>10} {'x ours':>8}")
        for name, us in rows:
            print(f"  {name:<42} {us:>10.3f} {us / base:>8.2f}")


if __name__ == "__main__":
    main()
