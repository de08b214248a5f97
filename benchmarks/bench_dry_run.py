#!/usr/bin/env python3
"""How close ``torch.utils.dry_run.rehearse`` comes to the real peak of a step, on the CPU.

    python benchmarks/bench_dry_run.py

For each model (an MLP, a transformer block with ``scaled_dot_product_attention``, a conv net) and
each step (forward; forward + backward + ``AdamW`` step), prints a markdown table of:

- the rehearsed peak (fake tensors, a ``meta`` batch: nothing allocated) and the time it took;
- the real step's peak counted by ``MemTracker`` on the real tensors (the same accounting: any
  difference is the rehearsal's);
- the real step's resident peak (``VmHWM`` in a fresh process, glibc's mmap threshold pinned so
  that freed blocks go back to the system) above what the process held before the step, against
  the rehearsed peak less what already existed (parameters, buffers, the batch).

Linux only (``/proc``).  One process per measurement; single-threaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import torch
from torch.utils.dry_run import rehearse


MODELS = {
    "MLP 1024→4096→ReLU→16, batch 2048": """
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 16))
shape = (2048, 1024)
""",
    "transformer block (SDPA, d=256, 8 heads, ff 1024), 32×128": """
class Block(torch.nn.Module):
    def __init__(self, d=256, heads=8, ff=1024):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.ff = torch.nn.Sequential(torch.nn.Linear(d, ff), torch.nn.GELU(), torch.nn.Linear(ff, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.norm2(x))
model = Block()
shape = (32, 128, 256)
""",
    "conv net (2× Conv/BN/ReLU, pool, Linear), 64×3×64×64": """
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))
shape = (64, 3, 64, 64)
""",
}

MEASURE = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from torch.utils import _dry_run_rehearse
    def rss(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))
    exec(sys.argv[1])
    train = sys.argv[2] == "train"
    x = torch.randn(*shape)
    opt = torch.optim.AdamW(model.parameters()) if train else None
    def step():
        if train:
            model(x).sum().backward()
            opt.step()
        else:
            with torch.no_grad() if sys.argv[3] == "nograd" else torch.enable_grad():
                model(x)
    step()  # warm-up: kernels' one-off buffers, optimizer state created
    if train:
        # A fresh optimizer, so that its state is created during the measured step, as rehearsed.
        model.zero_grad(set_to_none=True)
        opt = torch.optim.AdamW(model.parameters())
    base = rss("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step()
    rss_peak = rss("VmHWM") - base
    model.zero_grad(set_to_none=True)
    opt = torch.optim.AdamW(model.parameters()) if train else None
    tracker = _dry_run_rehearse.memory_tracker()
    tracker.track_external(model, x)
    with tracker:
        step()
    print(json.dumps({"rss": rss_peak, "tracked": sum(s["Total"] for s in tracker.get_tracker_snapshot("peak").values())}))
    """
)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _pct(measured: float, rehearsed: float) -> str:
    return f"{(measured - rehearsed) / rehearsed * 100:+.1f} %"


def main() -> None:
    if not sys.platform.startswith("linux"):
        sys.exit("bench_dry_run: measures resident memory through /proc (Linux only)")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": "1"}
    print("| model | step | rehearsed | rehearse time | real, MemTracker | real resident above start | rehearsed above start |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, code in MODELS.items():
        built: dict = {"torch": torch}
        exec(code, built)
        model, shape = built["model"], built["shape"]
        existing = sum(t.nbytes for t in (*model.parameters(), *model.buffers())) + torch.Size(shape).numel() * 4
        for what in ("forward", "train"):
            batch = torch.empty(*shape, device="meta")
            start = time.perf_counter()
            if what == "train":
                r = rehearse(lambda m, x: m(x).sum(), model, batch, backward=True, optimizer=torch.optim.AdamW)
            else:
                r = rehearse(model, batch)
            took = time.perf_counter() - start
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, code, what, "grad"], capture_output=True, text=True, env=env, timeout=600
            )
            if out.returncode != 0:
                sys.exit(out.stderr)
            measured = json.loads(out.stdout)
            label = "forward" if what == "forward" else "forward + backward + AdamW step"
            above = r.peak_memory - existing
            print(
                f"| {name} | {label} | {_mib(r.peak_memory)} | {took:.2f} s | {_mib(measured['tracked'])} "
                f"({_pct(measured['tracked'], r.peak_memory)}) | {_mib(measured['rss'])} ({_pct(measured['rss'], above)}) "
                f"| {_mib(above)} |"
            )


if __name__ == "__main__":
    main()
