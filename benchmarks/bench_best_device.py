#!/usr/bin/env python3
"""How much asking "which GPU has the most free memory?" costs, against ``torch.cuda.mem_get_info``.

    python benchmarks/bench_best_device.py [--repeat N]

Compares, in one run on the same machine:
- ``torch._accelerator.get_best_device()`` (NVML through ctypes: no CUDA context);
- ``[torch.cuda.mem_get_info(i) for i in range(torch.cuda.device_count())]``, what
  home-made pickers do (creates a context on every GPU).
Each is timed cold (first call in a fresh process, after ``import torch``; best
of N processes) and warm (best of N calls in one process).  Also prints the
device memory the probe leaves behind in this process (the contexts), read
through NVML.  Needs an NVIDIA GPU with the driver's NVML; elsewhere it says
so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


_COLD = r"""
import json, sys, time
import torch
from torch._accelerator import _nvml
before = sum(d.total - d.free for d in _nvml.query_devices())
# NVML stays initialized once used: shut it down so that the cold call pays its initialization.
_nvml._library.nvmlShutdown()
_nvml._initialized_in = None
t = time.perf_counter()
if sys.argv[1] == "nvml":
    torch._accelerator.get_best_device()
else:
    [torch.cuda.mem_get_info(i) for i in range(torch.cuda.device_count())]
cold = time.perf_counter() - t
after = sum(d.total - d.free for d in _nvml.query_devices())
warm = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    if sys.argv[1] == "nvml":
        torch._accelerator.get_best_device()
    else:
        [torch.cuda.mem_get_info(i) for i in range(torch.cuda.device_count())]
    warm.append(time.perf_counter() - t)
print(json.dumps({"cold": cold, "warm": min(warm), "held": after - before}))
"""


def measure(method: str, repeat: int) -> dict[str, float]:
    runs = [
        json.loads(subprocess.check_output([sys.executable, "-c", _COLD, method, str(repeat)], text=True, timeout=300))
        for _ in range(repeat)
    ]
    return {
        "cold": min(r["cold"] for r in runs),
        "warm": min(r["warm"] for r in runs),
        "held": max(r["held"] for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch
    from torch._accelerator import _nvml

    devices = _nvml.query_devices()
    if torch.version.cuda is None or not devices:
        print("bench_best_device: needs an NVIDIA GPU (a CUDA build of torch and the driver's NVML); skipping")
        return
    print(f"{len(devices)} GPU(s): {', '.join(sorted({d.name for d in devices}))}; torch {torch.__version__}")
    nvml = measure("nvml", args.repeat)
    cuda = measure("mem_get_info", args.repeat)
    print()
    print("| method | cold (first call), ms | warm, ms | device memory left held, MiB |")
    print("|---|---:|---:|---:|")
    for name, r in [("`get_best_device()` (NVML)", nvml), ("`torch.cuda.mem_get_info` on every GPU", cuda)]:
        print(f"| {name} | {r['cold'] * 1e3:.1f} | {r['warm'] * 1e3:.3f} | {r['held'] / 2**20:.0f} |")
    print()
    print(f"cold: mem_get_info / NVML = {cuda['cold'] / nvml['cold']:.1f}x; "
          f"warm: mem_get_info / NVML = {cuda['warm'] / nvml['warm']:.2f}x")


if __name__ == "__main__":
    main()
