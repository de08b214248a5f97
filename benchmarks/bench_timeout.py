#!/usr/bin/env python3
"""What a ``with timeout(...)`` block that does not expire costs, against what users pick instead.

    python benchmarks/bench_timeout.py [--number N] [--repeat R]

Needs the baselines: ``pip install -r requirements/bench.txt`` (stopit, func-timeout).
Measures, in one run, the cost of one block around an empty body, in wall-clock
microseconds (a block's cost includes the watchdog thread's work): in each thread,
the fastest of R interleaved rounds of N blocks per method (see ``_timing.py``);
likewise in the asyncio task:

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

import func_timeout
import stopit
from _timing import best_us

from torch.utils.timeout import move_on, timeout


def noop() -> None:
    pass


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


def async_rows(rows, number: int, rounds: int) -> list[tuple[str, float]]:
    """Microseconds per block of each ``(name, make, plain_with)`` row in one task: the fastest of ``rounds``
    interleaved rounds of ``number`` blocks ``async with make(60.0): pass`` (``with`` if ``plain_with``)."""

    async def blocks(make, plain_with: bool) -> float:
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

    async def best() -> list[tuple[str, float]]:
        fastest = {name: float("inf") for name, _, _ in rows}
        for _ in range(rounds):
            for name, make, plain_with in rows:
                fastest[name] = min(fastest[name], await blocks(make, plain_with))
        return [(name, seconds / number * 1e6) for name, seconds in fastest.items()]

    return asyncio.run(best())


def in_worker(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=2000, help="blocks per method per round")
    ap.add_argument("--repeat", type=int, default=20, help="interleaved rounds; each method's fastest is kept")
    args = ap.parse_args()
    n, r = args.number, args.repeat
    slow_n = max(n // 20, 50)  # thread-per-block baselines are ~100x slower

    def table(rows, slow=()):
        best = best_us(dict(rows), number=n, rounds=r, numbers={name: slow_n for name in slow})
        return list(best.items())

    main_rows = table(
        [
            ("torch.utils.timeout.timeout", ours),
            ("torch.utils.timeout.move_on", ours_move_on),
            ("torch.utils.timeout.timeout (decorator)", ours_decorated),
            ("stopit.SignalTimeout", stopit_signal),
            ("two signal.setitimer calls (floor)", setitimer_floor),
            ("bare call", noop),
        ]
    )
    worker_rows = in_worker(
        lambda: table(
            [
                ("torch.utils.timeout.timeout", ours),
                ("torch.utils.timeout.move_on", ours_move_on),
                ("torch.utils.timeout.timeout (decorator)", ours_decorated),
                ("stopit.ThreadingTimeout", stopit_thread),
                ("func_timeout.func_timeout", func_timeout_call),
            ],
            slow=("stopit.ThreadingTimeout", "func_timeout.func_timeout"),
        )
    )
    task = [
        ("async with timeout", timeout, False),
        ("async with move_on", move_on, False),
        ("with timeout (in the coroutine)", timeout, True),
    ]
    if hasattr(asyncio, "timeout"):  # Python 3.11+
        task.append(("async with asyncio.timeout", asyncio.timeout, False))
    task_rows = async_rows(task, n, r)
    sections = (("main thread", main_rows), ("worker thread", worker_rows), ("asyncio task", task_rows))
    for title, rows in sections:
        base = rows[0][1]
        print(f"{title}: one block with a 60 s limit that does not expire")
        print(f"  {'method':<42} {'us/block':>10} {'x ours':>8}")
        for name, us in rows:
            print(f"  {name:<42} {us:>10.3f} {us / base:>8.2f}")


if __name__ == "__main__":
    main()
