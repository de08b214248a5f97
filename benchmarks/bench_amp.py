#!/usr/bin/env python3
"""What the torch.amp defaults cost, against what users write instead.

    python benchmarks/bench_amp.py [--repeat N]

Needs the patched torch (``python3 tools/run_tests.py`` installs it into .venv).
Compares, in one run, on the CPU:
- entering and leaving ``torch.autocast("cpu")`` (2.13.0's call), ``torch.autocast()``
  (the new defaults) and the hand-rolled device pick users write today;
- what ``last_step_skipped`` adds to every ``step()`` (recording the inf/NaN flag, no
  synchronization) and costs to read, against the usual workaround (compare
  ``get_scale()`` before and after ``update()``), beside one whole training step.
Prints best-of-N microseconds per call and ratios to the first row of each table.
"""

from __future__ import annotations

import argparse

import torch
from _timing import best_us


def table(title: str, rows: list[tuple[str, object, int]], repeat: int) -> None:
    """Print the µs per call of each ``(name, fn, number)`` row, timed in ``repeat`` interleaved rounds."""
    best = best_us({name: fn for name, fn, _ in rows}, number=1, rounds=repeat, numbers={name: n for name, _, n in rows})
    print(f"\n{title}\n")
    print("| method | µs per call | × first row |")
    print("|---|---:|---:|")
    first = best[rows[0][0]]
    for name, us in best.items():
        print(f"| {name} | {us:.2f} | {us / first:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)

    def stock():
        with torch.autocast("cpu"):
            pass

    def defaults():
        with torch.autocast():
            pass

    def hand_rolled():
        with torch.autocast("cuda" if torch.cuda.is_available() else "cpu"):
            pass

    n = 2000
    table(
        "Entering and leaving an autocast region",
        [
            ('`torch.autocast("cpu")` (2.13.0)', stock, n),
            ("`torch.autocast()`", defaults, n),
            ('`torch.autocast("cuda" if torch.cuda.is_available() else "cpu")`', hand_rolled, n),
        ],
        args.repeat,
    )

    model = torch.nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler.for_autocast("cpu", torch.float16)
    x = torch.randn(16, 64)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(x).float().square().mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    train_step()
    state = {"found_inf_per_device": {torch.device("cpu"): torch.zeros(())}}

    def record():
        scaler._record_found_inf(state)

    def read_flag():
        return scaler.last_step_skipped

    def workaround():
        # What users do today: the scale shrinks after a skipped step.
        before = scaler.get_scale()
        return scaler.get_scale() < before

    n = 2000
    table(
        "Finding out whether a step was skipped (float16 GradScaler, CPU)",
        [
            ("one training step, for scale (Linear 64→64, batch 16)", train_step, 50),
            ("added to every `step()`: recording the inf/NaN flag", record, n),
            ("`scaler.last_step_skipped`", read_flag, n),
            ("workaround: two `get_scale()` around `update()`", workaround, n),
        ],
        args.repeat,
    )


if __name__ == "__main__":
    main()
