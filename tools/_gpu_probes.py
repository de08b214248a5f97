"""GPU probes and benchmarks of ``tools/gpu_check.py``: one small function per GPU behaviour checked.

Every probe runs in its own process (``gpu_check.py`` starts it, with a timeout),
against the installed torch with the patch set in develop mode, and returns a dict::

    {"status": "pass" | "fail" | "info" | "skip", "summary": "one line", "measured": {...numbers...}}

``pass``: the behaviour named by the probe's ``checks`` holds (or the figure is
within its bound); ``fail``: it does not; ``info``: a figure with no bound;
``skip``: the machine cannot show it (e.g. a multi-GPU case on one GPU), with
what was measured anyway.
Probes that need a clean CUDA state (no context yet, fork) run snippets in fresh
interpreters through :func:`_fresh`.  Only public torch APIs, feature-detected,
so the probes run on torch 2.11 to 2.15.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

MiB, GiB = 1 << 20, 1 << 30


@dataclass(frozen=True)
class Probe:
    name: str
    checks: str  # the behaviour that passing shows, one short phrase ("" when only figures are reported)
    what: str  # what is measured, one line
    fn: Callable[[], dict]
    timeout_s: float = 90.0
    kind: str = "probe"  # or "benchmark"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

_PRIMARY_CONTEXTS = r"""
def primary_contexts():
    import ctypes
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    if cu.cuInit(0) != 0:
        return None
    n = ctypes.c_int()
    cu.cuDeviceGetCount(ctypes.byref(n))
    active = []
    for i in range(n.value):
        dev, flags, on = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
        if cu.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        if cu.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags), ctypes.byref(on)) == 0 and on.value:
            active.append(i)
    return active

def gpu_memory_of_this_process():
    # nvidia-smi's per-process view (NVML): MiB this process holds per GPU UUID; None without nvidia-smi.
    # In a container with its own PID namespace the list can be empty: the primary contexts above are exact.
    import os, shutil, subprocess
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except Exception:
        return None
    held = {}
    for line in out.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 3 and parts[0] == str(os.getpid()):
            held[parts[1]] = int(parts[2]) if parts[2].isdigit() else parts[2]
    return held
"""


def _fresh(code: str, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object on its last line, which is returned.

    ``primary_contexts()`` (CUDA driver ordinals with an active primary context in
    that process, through ``cuDevicePrimaryCtxGetState``: creates none) is defined for it.
    """
    full = dict(os.environ, **(env or {}))
    src = _PRIMARY_CONTEXTS + "\n" + textwrap.dedent(code)
    r = subprocess.run([sys.executable, "-c", src, *args], capture_output=True, text=True, timeout=timeout, env=full)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        err = r.stderr.strip()
        last = err.splitlines()[-1] if err else "no output"
        raise RuntimeError(f"fresh interpreter failed (exit {r.returncode}): {last}\n{err[-1500:]}")
    return json.loads(lines[-1])


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def _cuda():
    import torch

    torch.cuda.init()
    return torch


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MiB, 1)


# --------------------------------------------------------------------------
# Probe: leaving DeviceContext("cuda:k") must not create a context on GPU 0
# --------------------------------------------------------------------------


def device_context_exit() -> dict:
    code = r"""
        import json, sys, threading, torch
        k = torch.cuda.device_count() - 1
        def body():
            with torch._accelerator.DeviceContext(f"cuda:{k}"):
                torch.ones(1).sum().item()
        if sys.argv[1] == "thread":  # a thread whose current device was never set
            t = threading.Thread(target=body); t.start(); t.join()
        elif sys.argv[1] == "main":
            body()
        else:  # what plain PyTorch does
            with torch.cuda.device(k):
                torch.ones(1, device=f"cuda:{k}").sum().item()
        print(json.dumps({"device": k, "contexts": primary_contexts(), "nvidia_smi_mib": gpu_memory_of_this_process()}))
    """
    cases = {case: _fresh(code, case) for case in ("baseline", "main", "thread")}
    k = cases["main"]["device"]
    measured = {f"contexts_after_{c}": v["contexts"] for c, v in cases.items()}
    measured.update({f"nvidia_smi_mib_after_{c}": v["nvidia_smi_mib"] for c, v in cases.items()})
    measured["device_used"] = k
    if cases["main"]["contexts"] is None:
        return {"status": "skip", "summary": "libcuda's cuDevicePrimaryCtxGetState not available", "measured": measured}
    extra = [c for c in ("main", "thread") if set(cases[c]["contexts"]) - set(cases["baseline"]["contexts"])]
    if k == 0:
        return {
            "status": "skip",
            "measured": measured,
            "summary": "needs 2 GPUs to show a context on GPU 0; with one, contexts after exit: "
            f"{cases['main']['contexts']}",
        }
    if extra:
        return {
            "status": "fail",
            "measured": measured,
            "summary": f"DeviceContext('cuda:{k}') exit left extra primary contexts ({extra}): {measured}",
        }
    return {"status": "pass", "measured": measured, "summary": f"only cuda:{k} has a context after DeviceContext exit"}


# --------------------------------------------------------------------------
# Probe: telemetry.snapshot() from another thread must not create a context on GPU 0
# --------------------------------------------------------------------------


def snapshot_from_thread() -> dict:
    code = r"""
        import json, threading, torch
        from torch.utils import telemetry as tm
        k = torch.cuda.device_count() - 1
        torch.cuda.set_device(k)
        f = tm.telemetry(name="work")(lambda: torch.ones(64, device=f"cuda:{k}").sum())
        for _ in range(3):
            f()
        before = primary_contexts()
        box = {}
        def snap():
            try:
                box["snap"] = tm.snapshot()["work"]
            except Exception as e:
                box["error"] = f"{type(e).__name__}: {e}"
        t = threading.Thread(target=snap); t.start(); t.join()
        print(json.dumps({"device": k, "before": before, "after": primary_contexts(),
                          "count": box.get("snap", {}).get("count"), "error": box.get("error"),
                          "nvidia_smi_mib": gpu_memory_of_this_process()}))
    """
    r = _fresh(code)
    measured = {
        "device_used": r["device"],
        "nvidia_smi_mib_after": r["nvidia_smi_mib"],
        "contexts_before_snapshot": r["before"],
        "contexts_after_snapshot": r["after"],
        "count": r["count"],
        "error": r["error"],
    }
    if r["error"] or r["count"] != 3:
        return {
            "status": "fail",
            "measured": measured,
            "summary": f"snapshot() in a new thread: {r['error'] or r['count']}",
        }
    if r["before"] is not None and set(r["after"]) - set(r["before"]):
        return {
            "status": "fail",
            "measured": measured,
            "summary": f"snapshot() from a new thread created contexts on {sorted(set(r['after']) - set(r['before']))}",
        }
    if r["device"] == 0:
        return {
            "status": "skip",
            "measured": measured,
            "summary": "snapshot() from a new thread resolved 3 timings; the context on GPU 0 needs 2 GPUs to show",
        }
    return {"status": "pass", "measured": measured, "summary": "no context created by snapshot() in a new thread"}


# --------------------------------------------------------------------------
# Probe: a timed call that switches stream (or device) must not lose pending timings
# --------------------------------------------------------------------------


def stream_switch() -> dict:
    torch = _cuda()
    from torch.utils import telemetry as tm

    tm.reset()
    steady = tm.telemetry(name="steady")(lambda: torch.ones(256, device="cuda").sum())
    side = torch.cuda.Stream()
    home = torch.cuda.current_stream()

    @tm.telemetry(name="switches_stream")
    def switches_stream():
        torch.cuda.set_stream(side)  # left switched on purpose: the end event is recorded on `side`
        return torch.ones(256, device="cuda").sum()

    for _ in range(5):
        steady()
    switches_stream()
    torch.cuda.set_stream(home)
    measured: dict = {}
    multi = torch.cuda.device_count() > 1
    if multi:

        @tm.telemetry(name="switches_device")
        def switches_device():
            torch.cuda.set_device(1)
            return torch.ones(256, device="cuda:1").sum()

        switches_device()
        torch.cuda.set_device(0)
    try:
        snap = tm.snapshot()
        error = None
    except Exception as e:
        snap, error = {}, f"{type(e).__name__}: {e}"
    measured.update(
        {name: snap.get(name, {}).get("count") for name in ("steady", "switches_stream", "switches_device")}
    )
    measured["snapshot_error"] = error
    lost = error is not None or measured["steady"] != 5 or measured["switches_stream"] != 1
    if multi and measured["switches_device"] != 1:
        lost = True
    return {
        "status": "fail" if lost else "pass",
        "measured": measured,
        "summary": (
            f"timings lost after a stream switch: {measured}"
            if lost
            else "snapshot() kept every timing across a stream switch"
            + ("" if multi else " (device switch needs 2 GPUs)")
        ),
    }


# --------------------------------------------------------------------------
# Probe: @telemetry inside CUDA graph capture
# --------------------------------------------------------------------------


def graph_capture() -> dict:
    torch = _cuda()
    from torch.utils import telemetry as tm

    step = tm.telemetry(name="captured")(lambda x: x * 2)
    x = torch.ones(1024, device="cuda")
    warm = torch.cuda.Stream()
    warm.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warm):
        step(x)
    torch.cuda.current_stream().wait_stream(warm)
    torch.cuda.synchronize()
    tm.reset()
    measured: dict = {}
    g = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(g):
            y = step(x)
        g.replay()
        torch.cuda.synchronize()
        measured["capture"] = "ok"
        measured["replay_result_ok"] = bool((y == 2).all().item())
    except Exception as e:
        measured["capture"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    try:
        s = tm.snapshot().get("captured") or {}
        measured.update(snapshot="ok", count=s.get("count"), mean_ms=s.get("mean_ms"))
    except Exception as e:
        measured["snapshot"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    ok = measured["capture"] == "ok" and measured.get("snapshot") == "ok" and measured.get("replay_result_ok")
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": "capture, replay and snapshot() work with @telemetry inside the graph"
        if ok
        else f"@telemetry inside CUDA graph capture: {measured}",
    }


# --------------------------------------------------------------------------
# Probe: assert_free_memory must not count non-releasable cache as free
# --------------------------------------------------------------------------


def free_memory_guard() -> dict:
    torch = _cuda()
    measured: dict = {"alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    torch.cuda.empty_cache()
    # Fragment: 3 blocks of 6 MiB per 20 MiB segment, free 2 of 3: holes in segments still in use.
    blocks = [torch.empty(6 * MiB, dtype=torch.uint8, device="cuda") for _ in range(1500)]
    keep = blocks[2::3]
    del blocks
    free, total = torch.cuda.mem_get_info()
    filler = torch.empty(max(free - 4 * GiB, 0), dtype=torch.uint8, device="cuda")
    st = torch.cuda.memory_stats()
    driver_free, _ = torch.cuda.mem_get_info()
    need = 8 * GiB
    measured.update(
        reserved_minus_allocated_mib=_mib(st["reserved_bytes.all.current"] - st["allocated_bytes.all.current"]),
        inactive_split_mib=_mib(st.get("inactive_split_bytes.all.current")),
        driver_free_mib=_mib(driver_free),
        required_mib=_mib(need),
    )

    def verdicts(n: int) -> tuple[str, str]:
        try:
            torch.cuda.assert_free_memory(n)
            guard = "passed"
        except torch.OutOfMemoryError:
            guard = "raised"
        try:
            t = torch.empty(n, dtype=torch.uint8, device="cuda")
            real = "fits"
            del t
        except torch.OutOfMemoryError:
            real = "OOM"
        return guard, real

    measured["fragmented_guard"], measured["fragmented_alloc"] = verdicts(need)
    del filler, keep
    torch.cuda.empty_cache()
    # The per-process fraction: the allocator refuses past it, so the guard must too.
    fraction = 0.05
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        measured["fraction"] = fraction
        measured["fraction_guard"], measured["fraction_alloc"] = verdicts(int(total * fraction * 2))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    wrong = [
        k
        for k in ("fragmented", "fraction")
        if (measured[f"{k}_guard"] == "passed") != (measured[f"{k}_alloc"] == "fits")
    ]
    return {
        "status": "fail" if wrong else "pass",
        "measured": measured,
        "summary": f"assert_free_memory disagrees with the allocator in: {wrong}"
        if wrong
        else "assert_free_memory agrees with the real allocation (fragmented cache, memory fraction)",
    }


# --------------------------------------------------------------------------
# Probe: "no CUDA init" entry points must not poison fork
# --------------------------------------------------------------------------


def fork_poisoning() -> dict:
    code = r"""
        import json, os, sys, torch
        how = sys.argv[1]
        if how == "current_device":
            torch._accelerator.current_device()
        elif how == "get_best_device":
            torch._accelerator.get_best_device()
        elif how == "DeviceContext":
            with torch._accelerator.DeviceContext("cpu"):
                pass
            torch._accelerator.DeviceContext("cuda")
        elif how == "autocast_default":  # torch.autocast() with no device: the patch set's default
            torch.autocast()
        elif how == "telemetry_first_call":
            from torch.utils.telemetry import telemetry
            telemetry(lambda: None)()
        initialized = torch.cuda.is_initialized()
        pid = os.fork()
        if pid == 0:
            try:
                torch.zeros(1, device="cuda").sum().item()
                os._exit(0)
            except BaseException:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"initialized": initialized, "child_exit": os.waitstatus_to_exitcode(status)}))
    """
    measured = {}
    for how in (
        "nothing",
        "current_device",
        "get_best_device",
        "DeviceContext",
        "autocast_default",
        "telemetry_first_call",
    ):
        try:
            r = _fresh(code, how)
            measured[how] = "child used CUDA" if r["child_exit"] == 0 else f"poisoned (child exit {r['child_exit']})"
        except Exception as e:
            measured[how] = f"error: {str(e).splitlines()[0]}"
    if measured["nothing"] != "child used CUDA":
        return {
            "status": "error",
            "measured": measured,
            "summary": f"even after only `import torch` a forked child cannot use CUDA: {measured['nothing']}",
        }
    bad = [k for k, v in measured.items() if v != "child used CUDA"]
    return {
        "status": "fail" if bad else "pass",
        "measured": measured,
        "summary": f"a forked child cannot use CUDA after: {bad}" if bad else "no entry point poisons fork",
    }


# --------------------------------------------------------------------------
# Probe: safe_run's CPU fallback under a CUDA default device
# --------------------------------------------------------------------------


def cpu_fallback_default_device() -> dict:
    torch = _cuda()
    total = torch.cuda.get_device_properties(0).total_memory
    attempts: list[str] = []

    def step(x):
        attempts.append(str(x.device))
        if x.is_cuda:
            torch.empty(total, dtype=torch.uint8, device=x.device)  # more than the device has
        return x + torch.ones(x.shape)  # a factory in fn: follows the default device

    with torch._accelerator.DeviceContext("cuda:0"):
        x = torch.ones(4)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = torch.cuda.safe_run(step)(x)
            result = str(out.device)
        except Exception as e:
            result = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        default_after = str(torch.ones(1).device)
    torch.cuda.empty_cache()
    measured = {"attempts_on": attempts, "result": result, "default_device_inside_after": default_after}
    ok = result == "cpu"
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": "CPU fallback ran fn's factories on the CPU under DeviceContext('cuda:0')"
        if ok
        else f"CPU fallback under DeviceContext('cuda:0'): {result}",
    }


# --------------------------------------------------------------------------
# Probe: which out-of-memory errors safe_run recognizes
# --------------------------------------------------------------------------

_OOM_MESSAGES = {
    "cudnn9_device_alloc": "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
    "cudnn9_host_alloc": "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",
    "cuda_driver": "CUDA driver error: out of memory",
    "triton": "Triton Error [CUDA]: out of memory",
    "hip": "HIP error: out of memory",
    "mps": "MPS backend out of memory (MPS allocated: 1.00 GB, other allocations: 0 bytes)",
    "hpu": "PT_DEVMEM Allocation failed",
    "cuda_runtime": "CUDA error: out of memory",
    "cublas": "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
}
_NOT_OOM_MESSAGES = {
    "cudnn_arch_mismatch": "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH",
    "cudnn_shape": "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED_SHAPE",
    "illegal_address": "CUDA error: an illegal memory access was encountered",
}


def oom_classification() -> dict:
    torch = _cuda()

    def retried(exc_factory) -> bool:
        calls = []

        def fn():
            calls.append(1)
            if len(calls) == 1:
                raise exc_factory()
            return "ok"

        try:
            torch.cuda.safe_run(fn, max_cuda_retries=1, use_autocast_on_oom=False, fallback_to_cpu=False)()
            return True
        except Exception:
            return False

    measured: dict = {}
    # A real caching-allocator OOM.
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")
        real: BaseException = RuntimeError("no OOM")
    except Exception as e:
        real = e
    measured["real_oom_type"] = type(real).__name__
    measured["real_oom_retried"] = retried(lambda: real)
    missed = [k for k, m in _OOM_MESSAGES.items() if not retried(lambda m=m: RuntimeError(m))]
    wrong = [k for k, m in _NOT_OOM_MESSAGES.items() if retried(lambda m=m: RuntimeError(m))]
    measured.update(oom_messages_missed=missed, non_oom_treated_as_oom=wrong)
    bad = missed or wrong or not measured["real_oom_retried"]
    return {
        "status": "fail" if bad else "pass",
        "measured": measured,
        "summary": f"missed {missed}, wrongly retried {wrong}, real OOM retried: {measured['real_oom_retried']}"
        if bad
        else "every OOM message retried, configuration errors not",
    }


# --------------------------------------------------------------------------
# Probe and benchmark: @telemetry per call on CUDA
# --------------------------------------------------------------------------


def telemetry_per_call() -> dict:
    torch = _cuda()
    from torch.utils import telemetry as tm

    torch.ones(1, device="cuda")
    tm.reset()

    def bare():
        pass

    timed = tm.telemetry(name="noop")(bare)
    n = 20000
    bare_us = _per_call_us(bare, n)
    timed_us = _per_call_us(timed, n)
    peak_us = _per_call_us(lambda: torch.cuda.max_memory_allocated(), n // 4)
    tm.snapshot()
    tm.reset()
    # Accuracy on a known GPU duration: torch.cuda._sleep, against a reference event pair.
    spin = tm.telemetry(name="spin")(lambda: torch.cuda._sleep(20_000_000))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        spin()
    end.record()
    torch.cuda.synchronize()
    ref_ms = start.elapsed_time(end) / 5
    got_ms = tm.snapshot()["spin"]["mean_ms"]
    overhead = timed_us - bare_us
    measured = {
        "bare_call_us": round(bare_us, 3),
        "telemetry_call_us": round(timed_us, 3),
        "overhead_us": round(overhead, 3),
        "max_memory_allocated_us": round(peak_us, 3),
        "spin_reference_ms": round(ref_ms, 4),
        "spin_telemetry_ms": round(got_ms, 4),
        "timing_error_pct": round(abs(got_ms - ref_ms) / ref_ms * 100, 2),
    }
    ok = overhead < 15 and measured["timing_error_pct"] < 5
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": f"@telemetry on CUDA: {overhead:.1f} us per call over a bare call; "
        f"timing {got_ms:.3f} ms vs {ref_ms:.3f} ms reference",
    }


# --------------------------------------------------------------------------
# Probe: bf16 support of the device DeviceContext switches to
# --------------------------------------------------------------------------


def bf16_per_device() -> dict:
    torch = _cuda()
    n = torch.cuda.device_count()
    caps = [torch.cuda.get_device_capability(i) for i in range(n)]
    got = {}
    for i in range(n):
        with torch._accelerator.DeviceContext(f"cuda:{i}", amp=True) as ctx:
            got[i] = str(ctx.dtype)
    expected = {i: str(torch.bfloat16 if caps[i] >= (8, 0) else torch.float16) for i in range(n)}
    measured = {
        "capabilities": [list(c) for c in caps],
        "amp_dtype": got,
        "expected": expected,
        "mixed_machine": len(set(caps)) > 1,
    }
    wrong = [i for i in range(n) if got[i] != expected[i]]
    status = "fail" if wrong else ("pass" if measured["mixed_machine"] else "skip")
    return {
        "status": status,
        "measured": measured,
        "summary": f"wrong autocast dtype on devices {wrong}"
        if wrong
        else "autocast dtype follows each device's capability"
        + ("" if measured["mixed_machine"] else " (a machine with GPUs of different capabilities is needed to show it)"),
    }


# --------------------------------------------------------------------------
# dry_run.rehearse peak vs the measured CUDA peak
# --------------------------------------------------------------------------


def rehearse_vs_measured_peak() -> dict:
    torch = _cuda()
    from torch.utils.dry_run import rehearse

    torch.manual_seed(0)
    models = {
        "mlp": (
            lambda: torch.nn.Sequential(torch.nn.Linear(4096, 8192), torch.nn.GELU(), torch.nn.Linear(8192, 4096)),
            lambda: torch.randn(2048, 4096),
        ),
        "convnet": (
            lambda: torch.nn.Sequential(
                torch.nn.Conv2d(3, 64, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(64, 128, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
                torch.nn.Linear(128, 10),
            ),
            lambda: torch.randn(64, 3, 128, 128),
        ),
        "transformer": (
            lambda: torch.nn.TransformerEncoderLayer(1024, 16, 4096, batch_first=True),
            lambda: torch.randn(16, 512, 1024),
        ),
    }
    def loss(m, x):
        return m(x).sum()

    measured = {}
    for name, (make, data) in models.items():
        for train in (False, True):
            torch.cuda.empty_cache()
            model, x = make().cuda(), data().cuda()
            meta = torch.empty(x.shape, device="meta")
            kw = {"backward": True, "optimizer": torch.optim.AdamW} if train else {}
            fn = loss if train else (lambda m, x: m(x))
            # Planned as from a CPU machine (a meta batch, device="cuda") and from this one.
            planned = rehearse(fn, model, meta, device="cuda", **kw)
            here = rehearse(fn, model, x, **kw)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            if train:
                opt = torch.optim.AdamW(model.parameters())
                loss(model, x).backward()
                opt.step()
                del opt
            else:
                fn(model, x)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            measured[f"{name}/{'train' if train else 'forward'}"] = {
                "rehearsed_mib": _mib(here.peak_memory),
                "planned_from_meta_mib": _mib(planned.peak_memory),
                "measured_mib": _mib(peak),
                "ratio": round(peak / here.peak_memory, 3),
            }
            del model, x
    off = [k for k, v in measured.items() if not 0.9 <= v["ratio"] <= 1.25]
    return {
        "status": "fail" if off else "pass",
        "measured": measured,
        "summary": ", ".join(f"{k} x{v['ratio']}" for k, v in measured.items())
        + " (measured / rehearsed; cuBLAS workspaces and allocator segments are not rehearsed)",
    }


# --------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------


def bench_get_best_device() -> dict:
    code = r"""
        import json, time
        t0 = time.perf_counter()
        import torch
        t1 = time.perf_counter()
        try:
            from torch._accelerator import _device_probe
            before = [(m.free, m.total) for m in _device_probe.probe_devices()]
        except Exception:
            before = None
        t2 = time.perf_counter()
        best = torch._accelerator.get_best_device()
        cold = time.perf_counter() - t2
        n = 200
        t3 = time.perf_counter()
        for _ in range(n):
            torch._accelerator.get_best_device()
        warm = (time.perf_counter() - t3) / n
        initialized = torch.cuda.is_initialized()
        contexts = primary_contexts()
        after = [(m.free, m.total) for m in _device_probe.probe_devices()] if before is not None else None
        cuda = [torch.cuda.mem_get_info(i) for i in range(torch.cuda.device_count())]
        print(json.dumps({"best": str(best), "cold_s": cold, "warm_s": warm, "import_s": t1 - t0,
                          "initialized": initialized, "contexts": contexts, "probe_before": before,
                          "probe_after": after, "cuda": cuda}))
    """
    r = _fresh(code, timeout=120)
    devices = []
    for i, (free, total) in enumerate(r["cuda"]):
        d = {"device": f"cuda:{i}", "mem_get_info_free_mib": _mib(free), "mem_get_info_total_mib": _mib(total)}
        if r["probe_before"]:
            (f0, t0), (f1, _) = r["probe_before"][i], r["probe_after"][i]
            d.update(
                probe_free_mib=_mib(f0),
                probe_total_mib=_mib(t0),
                held_by_call_mib=_mib(f0 - f1),
                probe_minus_cuda_free_mib=_mib(f1 - free),
            )
        devices.append(d)
    measured = {
        "best": r["best"],
        "cold_ms": round(r["cold_s"] * 1e3, 3),
        "warm_us": round(r["warm_s"] * 1e6, 2),
        "cuda_initialized_by_calls": r["initialized"],
        "primary_contexts_after_calls": r["contexts"],
        "devices": devices,
    }
    ok = not r["initialized"] and not r["contexts"]
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": f"get_best_device cold {measured['cold_ms']} ms, warm {measured['warm_us']} us; "
        + ("no CUDA context held" if ok else f"left CUDA initialized / contexts {r['contexts']}"),
    }


def bench_safe_run_oom_recovery() -> dict:
    torch = _cuda()
    # 1. Fill the device until a real OOM.
    x = torch.ones(8, device="cuda")
    hog, chunk = [], 4 * GiB
    t = time.perf_counter()
    while chunk >= 64 * MiB:
        try:
            hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            chunk //= 2
    fill_s = time.perf_counter() - t
    # Room for the step's first small allocation: give the last ~256 MiB back to the cache.
    given_back = 0
    while hog and given_back < 256 * MiB:
        given_back += hog.pop().numel()
    held = sum(h.numel() for h in hog)
    # 2. A step that needs more than is left: the failed attempt's memory must be gone at the retry,
    #    and with the device still full, the CPU fallback must finish the call.
    info: list[str] = []
    seen_allocated: list[int] = []
    before = torch.cuda.memory_allocated()

    def step(x):
        seen_allocated.append(torch.cuda.memory_allocated())
        partial = torch.empty(32 * MiB, dtype=torch.uint8, device=x.device)  # noqa: F841  (held by this frame)
        big = torch.empty(8 * GiB, dtype=torch.uint8, device=x.device)
        return x.sum() + big.numel()

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.cuda.safe_run(step, error_callback=lambda e, i: info.append(i.get("next_action")))(x)
    recover_ms = (time.perf_counter() - t) * 1e3
    del hog
    released = torch.cuda.clear_cache()
    after_ok = torch.empty(GiB, dtype=torch.uint8, device="cuda").numel() == GiB
    leaked = [a - before for a in seen_allocated[1:2]]
    measured = {
        "fill_s": round(fill_s, 3),
        "filled_gib": round(held / GiB, 2),
        "actions": info,
        "result_device": str(out.device),
        "recover_ms": round(recover_ms, 2),
        "leaked_at_retry_bytes": leaked[0] if leaked else None,
        "released_after_mib": _mib(released),
        "allocates_again": after_ok,
    }
    ok = out.device.type == "cpu" and (not leaked or leaked[0] <= 0) and after_ok
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": f"real OOM with the device full: {' -> '.join(map(str, info))} -> result on {out.device} "
        f"in {recover_ms:.0f} ms; {measured['leaked_at_retry_bytes']} bytes of the failed attempt left at the retry",
    }


def bench_clear_cache() -> dict:
    torch = _cuda()
    xs = [torch.empty(64 * MiB, dtype=torch.uint8, device="cuda") for _ in range(128)]  # 8 GiB
    del xs
    reserved = torch.cuda.memory_reserved()
    free_before, _ = torch.cuda.mem_get_info()
    t = time.perf_counter()
    released = torch.cuda.clear_cache()
    ms = (time.perf_counter() - t) * 1e3
    free_after, _ = torch.cuda.mem_get_info()
    measured = {
        "reserved_before_mib": _mib(reserved),
        "returned_mib": _mib(released),
        "reserved_after_mib": _mib(torch.cuda.memory_reserved()),
        "driver_free_gain_mib": _mib(free_after - free_before),
        "clear_cache_ms": round(ms, 2),
    }
    ok = released == reserved - torch.cuda.memory_reserved() and released >= 8 * GiB
    return {
        "status": "pass" if ok else "fail",
        "measured": measured,
        "summary": f"clear_cache() released {measured['returned_mib']} MiB of {measured['reserved_before_mib']} "
        f"MiB reserved in {ms:.1f} ms; driver free +{measured['driver_free_gain_mib']} MiB",
    }


PROBES = [
    Probe(
        "device_context_exit",
        "no CUDA context on GPU 0 after leaving DeviceContext",
        "primary contexts after leaving DeviceContext('cuda:last'), main thread and new thread",
        device_context_exit,
        90,
    ),
    Probe(
        "snapshot_from_thread",
        "no CUDA context on GPU 0 from telemetry.snapshot() in a new thread",
        "primary contexts and timings when telemetry.snapshot() runs in a new thread",
        snapshot_from_thread,
        60,
    ),
    Probe(
        "stream_switch",
        "no pending timing lost when a timed call switches stream or device",
        "pending timings kept when a timed call switches stream (and device)",
        stream_switch,
        60,
    ),
    Probe(
        "graph_capture",
        "@telemetry works inside CUDA graph capture and replay",
        "@telemetry inside torch.cuda.graph capture: capture, replay, snapshot",
        graph_capture,
        60,
    ),
    Probe(
        "free_memory_guard",
        "assert_free_memory agrees with a real allocation (no non-releasable cache counted as free)",
        "assert_free_memory vs a real allocation: fragmented cache, memory fraction",
        free_memory_guard,
        120,
    ),
    Probe(
        "fork_poisoning",
        "a forked child can use CUDA after every 'no CUDA init' entry point",
        "a forked child can use CUDA after each 'no CUDA init' entry point",
        fork_poisoning,
        150,
    ),
    Probe(
        "cpu_fallback_device",
        "safe_run's CPU fallback runs on the CPU under a CUDA default device",
        "safe_run's CPU fallback under DeviceContext('cuda:0'), real OOM",
        cpu_fallback_default_device,
        60,
    ),
    Probe(
        "oom_classification",
        "safe_run retries every out-of-memory error and no configuration error",
        "OOM errors safe_run retries: a real one, library and backend messages",
        oom_classification,
        60,
    ),
    Probe(
        "telemetry_per_call",
        "@telemetry under 15 us per call on CUDA, timings within 5%",
        "@telemetry per call on CUDA (us) and its timing accuracy",
        telemetry_per_call,
        90,
        "benchmark",
    ),
    Probe(
        "bf16_per_device",
        "DeviceContext(amp=True) picks bf16 only on devices that support it",
        "DeviceContext(amp=True) dtype per device vs its capability",
        bf16_per_device,
        60,
    ),
    Probe(
        "rehearse_peak",
        "dry_run.rehearse's peak within 0.9x to 1.25x of the measured CUDA peak",
        "dry_run.rehearse peak (and planned from a meta batch) vs torch.cuda.max_memory_allocated (MLP, conv net, transformer; forward, AdamW step)",
        rehearse_vs_measured_peak,
        120,
    ),
    Probe(
        "get_best_device",
        "get_best_device initializes no CUDA and holds no context",
        "cold/warm time, CUDA context held, probe vs mem_get_info on every GPU",
        bench_get_best_device,
        120,
        "benchmark",
    ),
    Probe(
        "safe_run_oom_recovery",
        "safe_run finishes on the CPU from a real OOM, the failed attempt's memory freed at the retry",
        "safe_run from a real OOM with the device full: actions, time, leaks",
        bench_safe_run_oom_recovery,
        120,
        "benchmark",
    ),
    Probe(
        "clear_cache",
        "clear_cache() returns the bytes it releases",
        "bytes clear_cache() releases vs reserved and the driver's free memory",
        bench_clear_cache,
        60,
        "benchmark",
    ),
]
