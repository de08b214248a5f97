#!/usr/bin/env python3
"""What torch.cuda.safe_run costs when nothing fails, against what users write instead.

    python benchmarks/bench_safe_run.py [--number N] [--repeat R]

Run against the patched torch (``.venv/bin/python`` after ``tools/run_tests.py``).
Times, in one run, a call of a trivial function ``f(x) -> x``:
- bare: ``f(x)``;
- a hand-written loop: ``for attempt in range(2): try: return f(x) except
  torch.OutOfMemoryError: ...`` (the success path of a home-made OOM retry);
- ``torch.cuda.safe_run(f)(x)`` (its success path: one extra frame and a ``try``);
- tenacity ``@retry(retry=retry_if_exception_type(torch.OutOfMemoryError), stop=stop_after_attempt(2))``
  when tenacity is installed (``pip install -r requirements/bench.txt``).
Prints microseconds per call (the fastest of R interleaved rounds of N calls, see
``_timing.py``) and the overhead ratios.
"""

from __future__ import annotations

import argparse

import torch
from _timing import best_us


def f(x: object) -> object:
    return x


def hand_written(x: object) -> object:
    for attempt in range(2):
        try:
            return f(x)
        except torch.OutOfMemoryError:
            if attempt == 1:
                raise
            torch.cuda.clear_cache()
    raise AssertionError("unreachable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=20_000, help="calls per method per round")
    ap.add_argument("--repeat", type=int, default=40, help="interleaved rounds; each method's fastest is kept")
    args = ap.parse_args()

    wrapped = torch.cuda.safe_run(f)
    candidates = {
        "bare call f(x)": f,
        "hand-written try/except retry loop": hand_written,
        "torch.cuda.safe_run(f)": wrapped,
    }
    try:
        import tenacity
    except ImportError:
        print("tenacity not installed: pip install -r requirements/bench.txt for its row")
    else:
        candidates["tenacity @retry (OOM only, 2 attempts)"] = tenacity.retry(
            retry=tenacity.retry_if_exception_type(torch.OutOfMemoryError),
            stop=tenacity.stop_after_attempt(2),
            reraise=True,
        )(f)

    x = torch.ones(1)
    for name, fn in candidates.items():
        if fn(x) is not x:
            raise SystemExit(f"{name} did not return its argument")
    slow = {name: max(args.number // 20, 100) for name in candidates if name.startswith("tenacity")}
    timings = best_us(
        {name: (lambda fn=fn: fn(x)) for name, fn in candidates.items()},
        number=args.number,
        rounds=args.repeat,
        numbers=slow,
    )

    bare = timings["bare call f(x)"]
    loop = timings["hand-written try/except retry loop"]
    print(f"{'method':45s} {'µs/call':>9s} {'overhead µs':>12s} {'× bare':>8s} {'× hand loop':>12s}")
    for name, us in timings.items():
        print(f"{name:45s} {us:9.3f} {us - bare:12.3f} {us / bare:8.2f} {us / loop:12.2f}")


if __name__ == "__main__":
    main()
