#!/usr/bin/env python3
"""Per-call cost of to_tensor, auto_tensorize, array_namespace and patch_numpy, and rehearse's run time.

    python benchmarks/bench_tensorize.py [--repeat N] [--number N]

Compares, in one run, each utility with what users would write instead:
- ``to_tensor(a)`` on a small float32 ndarray against ``torch.as_tensor(a)``
  and ``torch.from_numpy(a)`` (target: within 1.2x of ``torch.as_tensor``);
- an ``@auto_tensorize`` function against a bare call (tensor argument) and
  against converting by hand with ``torch.as_tensor`` (ndarray argument);
- ``array_namespace`` against array-api-compat's (``pip install -r requirements/bench.txt``);
- a NumPy call through ``patch_numpy``'s dispatcher against a direct call (CPU input);
- ``rehearse`` of a reference training step against calling ``FakeTensorMode``
  + ``MemTracker`` + ``FlopCounterMode`` by hand.
Prints best-of-N microseconds per call (seconds for rehearse) and ratios.
"""

from __future__ import annotations

import argparse
import timeit
import types

import numpy as np

import torch
from _timing import best_us
from torch.utils.auto_tensorize import auto_tensorize, to_tensor
from torch.utils.dry_run import rehearse
from torch.utils.patch_numpy import _Dispatcher, array_namespace


def table(rows: dict, number: int, repeat: int) -> None:
    best = best_us(rows, number=number, rounds=repeat)  # interleaved rounds, fastest kept (see _timing.py)
    base = next(iter(best.values()))
    for name, us in best.items():
        print(f"| {name} | {us:.2f} µs | {us / base:.2f} |")


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 16))


def step(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).sum()


def rehearse_by_hand(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker
    from torch.utils.flop_counter import FlopCounterMode

    with FakeTensorMode() as mode:
        fake_model = mlp()  # a hand-written rehearsal rebuilds the model under the fake mode
        fake_x = mode.from_tensor(x)
        tracker = MemTracker()
        tracker.track_external(fake_model, fake_x)
        flops = FlopCounterMode(display=False)
        with tracker, flops:
            fake_model(fake_x).sum().backward()
    return tracker.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"], flops.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--number", type=int, default=2000)
    args = ap.parse_args()
    n, r = args.number, args.repeat

    a = np.random.rand(4, 4).astype(np.float32)
    t = torch.from_numpy(a)

    print("to_tensor on a 4x4 float32 ndarray (CPU):\n")
    print("| method | per call | × torch.as_tensor |\n|---|---:|---:|")
    table(
        {
            "torch.as_tensor(a)": lambda: torch.as_tensor(a),
            "torch.from_numpy(a)": lambda: torch.from_numpy(a),
            "to_tensor(a)": lambda: to_tensor(a),
            "to_tensor(t) (a tensor: returned as is)": lambda: to_tensor(t),
        },
        n,
        r,
    )

    def f(x, scale=2.0):
        return x

    wrapped = auto_tensorize(f)
    print("\nauto_tensorize per-call overhead:\n")
    print("| call | per call | × bare call |\n|---|---:|---:|")
    table(
        {
            "bare f(t, scale=3.0)": lambda: f(t, scale=3.0),
            "f(torch.as_tensor(a), scale=3.0) by hand": lambda: f(torch.as_tensor(a), scale=3.0),
            "@auto_tensorize f(t, scale=3.0)": lambda: wrapped(t, scale=3.0),
            "@auto_tensorize f(a, scale=3.0)": lambda: wrapped(a, scale=3.0),
        },
        n,
        r,
    )

    print("\narray_namespace and patch_numpy dispatch (CPU input):\n")
    print("| call | per call | × baseline |\n|---|---:|---:|")
    try:
        import array_api_compat
    except ImportError:
        print("(array-api-compat not installed: pip install -r requirements/bench.txt)")
    else:
        table(
            {
                "array_api_compat.array_namespace(a)": lambda: array_api_compat.array_namespace(a),
                "array_namespace(a)": lambda: array_namespace(a),
            },
            n,
            r,
        )
    dispatcher = types.SimpleNamespace(np=_Dispatcher(np, ()))
    table({"np.sum(a)": lambda: np.sum(a), "np.sum(a) through patch_numpy": lambda: dispatcher.np.sum(a)}, n, r)

    print("\nrehearse: Linear(1024->4096)->ReLU->Linear(4096->16), batch 2048, forward+backward:\n")
    model, x = mlp(), torch.randn(2048, 1024)
    rehearse(step, model, x, backward=True)  # warm the imports of both paths
    rehearse_by_hand(model, x)
    hand = min(timeit.repeat(lambda: rehearse_by_hand(model, x), number=1, repeat=min(r, 10)))
    ours = min(timeit.repeat(lambda: rehearse(step, model, x, backward=True), number=1, repeat=min(r, 10)))
    result = rehearse(step, model, x, backward=True)
    total, flops = rehearse_by_hand(model, x)
    print("| method | seconds | × by hand | peak MiB | GFLOP |\n|---|---:|---:|---:|---:|")
    print(
        f"| FakeTensorMode + MemTracker + FlopCounterMode by hand | {hand:.3f} | 1.00 | "
        f"{total / 2**20:.1f} | {flops / 1e9:.1f} |"
    )
    print(
        f"| rehearse(step, model, x, backward=True) | {ours:.3f} | {ours / hand:.2f} | "
        f"{result.peak_memory / 2**20:.1f} | {result.flops / 1e9:.1f} |"
    )


if __name__ == "__main__":
    main()
