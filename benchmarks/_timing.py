"""Per-call timing shared by the benchmarks: interleaved rounds, the best round wins.

A shared machine's load comes in bursts: timing one method for a second and
then the next lets a burst land on one of them only, which moves even the
ratios within one run (runs of ``timeit.repeat`` per method differed by up
to 2x here).  Instead, every round times each method once, for ``number``
calls, and the fastest round of each method is kept: a burst then costs a
method one round, not its figure, and the minimum is the estimate of what
the code itself costs that ``timeit``'s documentation recommends.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable, Mapping

__all__ = ["best_us", "CLOCKS"]

# --clock choices: this thread's CPU time (what other processes on a busy machine cannot inflate) or wall time.
CLOCKS: dict[str, Callable[[], float]] = {"thread": time.thread_time, "wall": time.perf_counter}


def best_us(
    rows: Mapping[str, Callable[[], object]],
    *,
    number: int,
    rounds: int,
    timer: Callable[[], float] = time.perf_counter,
    numbers: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Microseconds per call of each row: the fastest of ``rounds`` interleaved rounds of ``number`` calls.

    ``numbers`` gives a row its own count of calls per round (a slow baseline need not run as
    often as a fast one).  ``timer`` is the clock (see :data:`CLOCKS`).
    """
    if number < 1 or rounds < 1:
        raise ValueError(f"best_us(): number and rounds must be >= 1, but got {number} and {rounds}")
    counts = {name: (numbers or {}).get(name, number) for name in rows}
    best = dict.fromkeys(rows, float("inf"))
    for _ in range(rounds):
        for name, fn in rows.items():
            n = counts[name]
            best[name] = min(best[name], timeit.timeit(fn, number=n, timer=timer) / n * 1e6)
    return best
