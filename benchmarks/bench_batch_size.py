#!/usr/bin/env python3
"""How fast torch.cuda.find_batch_size reaches a batch that fits, against accelerate's find_executable_batch_size.

    python benchmarks/bench_batch_size.py [--start N] [--fits N] [--repeat R]

Run against the patched torch (``.venv/bin/python`` after ``tools/run_tests.py``), on the CPU with an
injected memory limit: the step builds a real batch, runs a real MLP forward and backward on it, and
raises ``torch.OutOfMemoryError`` (worded as the CUDA caching allocator words it) when the batch is
over the ``--fits`` samples the simulated device holds, before the backward.  Every method starts at the same ``--start``; for each it reports the attempts (real
steps) and the wall time of the first call (failed attempts included) and the batch size it settles
on, out of the ``--fits`` that would fit.  Compared:

- accelerate ``find_executable_batch_size`` (its default: x0.9 per OOM), when accelerate is installed
  (``pip install -r requirements/bench.txt``); its column is skipped with a message otherwise;
- ``torch.cuda.find_batch_size`` with its default ``factor=0.5`` and with ``factor=0.9``;
- ``torch.cuda.find_batch_size(plan=max_batch_size(...))``: the planner's rehearsals are timed too; the
  simulated device's memory is the step's rehearsed peak at ``--fits`` samples (equal to the real peak
  on the CPU: ``bench_dry_run.py``).

Prints a markdown table (median of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, TYPE_CHECKING

import torch


if TYPE_CHECKING:
    from collections.abc import Callable


DIM = 256


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 4 * DIM), torch.nn.GELU(), torch.nn.Linear(4 * DIM, DIM))


def loss_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).pow(2).mean()


def make_step(fits: int, attempts: list[int]) -> Callable[..., Any]:
    """A real training step on a simulated device where at most ``fits`` samples fit."""
    model = make_model()

    def step(batch_size: int) -> float:
        attempts.append(batch_size)
        model.zero_grad(set_to_none=True)
        loss = loss_of(model, torch.randn(batch_size, DIM))
        if batch_size > fits:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {batch_size} samples; the device holds {fits}"
            )
        loss.backward()
        return loss.item()

    return step


def run(
    decorate: Callable[[Callable[..., Any]], Callable[..., Any]],
    fits: int,
    repeat: int,
) -> tuple[int, float, int]:
    times, attempts_seen, found = [], 0, 0
    for _ in range(repeat):
        attempts: list[int] = []
        t0 = time.perf_counter()
        wrapped = decorate(make_step(fits, attempts))
        wrapped()
        times.append(time.perf_counter() - t0)
        attempts_seen, found = len(attempts), attempts[-1]
    return attempts_seen, statistics.median(times), found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, default=1024, help="the batch size every method starts from")
    ap.add_argument("--fits", type=int, default=300, help="the largest batch size that fits the injected limit")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []  # (method, table row)

    def add(name: str, decorate: Callable[[Callable[..., Any]], Callable[..., Any]], note: str = "") -> None:
        attempts, seconds, found = run(decorate, args.fits, args.repeat)
        rows.append((name, f"| {name}{note} | {attempts} | {seconds * 1e3:.1f} | {found} ({found / args.fits:.0%}) |"))

    try:
        from accelerate.utils import find_executable_batch_size
    except ImportError:
        print("accelerate is not installed (pip install -r requirements/bench.txt): its row is skipped")
    else:
        import accelerate

        add(
            f"accelerate {accelerate.__version__} `find_executable_batch_size` (x0.9)",
            lambda step: find_executable_batch_size(step, starting_batch_size=args.start),
        )
    add("`torch.cuda.find_batch_size` (factor=0.5)", lambda step: torch.cuda.find_batch_size(step, start=args.start))
    add(
        "`torch.cuda.find_batch_size` (factor=0.9)",
        lambda step: torch.cuda.find_batch_size(step, start=args.start, factor=0.9),
    )
    from torch.utils.dry_run import max_batch_size, rehearse

    # The simulated device's memory: the step's peak at `fits` samples (rehearsed, which equals the real
    # run's peak on the CPU: benchmarks/bench_dry_run.py), measured once, untimed.
    model = make_model()
    memory = rehearse(loss_of, model, torch.empty(args.fits, DIM, device="meta"), backward=True).peak_memory

    def planned(step: Callable[..., Any]) -> Callable[..., Any]:
        plan = max_batch_size(
            loss_of, lambda n: (model, torch.empty(n, DIM, device="meta")), memory=memory, high=args.start,
            backward=True,
        )
        return torch.cuda.find_batch_size(step, start=args.start, plan=plan)

    add("`torch.cuda.find_batch_size(plan=max_batch_size(...))`", planned, " (planning timed)")

    print(
        f"CPU, injected limit: {args.fits} samples fit, start={args.start}, torch {torch.__version__}, "
        f"median of {args.repeat}\n"
    )
    print("| method | real attempts | time to a working size (ms) | batch size found (of what fits) |")
    print("| --- | --- | --- | --- |")
    for _, row in rows:
        print(row)


if __name__ == "__main__":
    main()
