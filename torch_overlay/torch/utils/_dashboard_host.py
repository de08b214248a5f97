"""Host and GPU metrics for :func:`torch.utils.dashboard.live_dashboard`, without creating a CUDA context.

* :func:`process_metrics`: this process's resident memory and CPU time, from
  ``/proc/self`` on Linux and from :mod:`resource` elsewhere (where only the
  peak resident size is known).
* :func:`gpu_metrics`: per GPU utilisation, memory used, power and temperature
  through NVML (:mod:`torch._accelerator._nvml`'s library handle, initialized
  once per process).  NVML reads the driver's counters: it creates no CUDA
  context and does not poison a later ``fork``.  An error on one field of one
  GPU (``NVML_ERROR_NO_PERMISSION`` on a cgroup-restricted node,
  ``NVML_ERROR_GPU_IS_LOST``, ``NVML_ERROR_NOT_SUPPORTED``) is recorded on that
  GPU and every other field and GPU is still read.  GPUs are in NVML's order
  (``gpu`` label, as dcgm-exporter does), which ignores ``CUDA_VISIBLE_DEVICES``.
* :func:`prometheus`: both in the Prometheus text format under conventional
  names: ``process_resident_memory_bytes`` and ``process_cpu_seconds_total``
  (as Prometheus client libraries name them) and dcgm-exporter's
  ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_DEV_POWER_USAGE`` (W) and ``DCGM_FI_DEV_GPU_TEMP`` (C), labelled
  ``gpu``, ``UUID`` and ``modelName``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from torch._accelerator import _nvml


__all__: list[str] = []

_NVML_TEMPERATURE_GPU = 0


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


def _proc_rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _proc_cpu_seconds() -> float | None:
    try:
        with open("/proc/self/stat", "rb") as f:
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            fields = f.read().rsplit(b")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5), in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def process_metrics() -> dict[str, Any]:
    """This process's ``rss_bytes`` (current; ``None`` off Linux), ``max_rss_bytes`` (peak) and ``cpu_seconds``.

    ``cpu_seconds`` is user plus system CPU time.  Off Linux it comes from
    :func:`resource.getrusage`, which knows the peak resident size but not the
    current one.
    """
    rss, cpu, max_rss = _proc_rss(), _proc_cpu_seconds(), None
    try:
        import resource
    except ImportError:  # Windows
        pass
    else:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # ru_maxrss is in bytes on macOS and in KiB on Linux and the BSDs.
        max_rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        if cpu is None:
            cpu = usage.ru_utime + usage.ru_stime
    if cpu is None:
        times = os.times()
        cpu = times.user + times.system
    return {"rss_bytes": rss, "max_rss_bytes": max_rss, "cpu_seconds": cpu}


def _read(nvml: Any, handle: ctypes.c_void_p, errors: list[str], getter: str, *args: Any) -> bool:
    try:
        _nvml._check(getattr(nvml, getter)(handle, *args), getter)
    except (_nvml._NvmlError, AttributeError) as e:  # AttributeError: a driver without that entry point
        errors.append(str(e))
        return False
    return True


def _gpu(nvml: Any, index: int) -> dict[str, Any]:
    gpu: dict[str, Any] = {
        "index": index,
        "uuid": None,
        "name": None,
        "utilization_percent": None,
        "memory_used_bytes": None,
        "memory_total_bytes": None,
        "power_watts": None,
        "temperature_c": None,
        "error": None,
    }
    errors: list[str] = []
    handle = ctypes.c_void_p()
    try:
        _nvml._check(nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)),
                     "nvmlDeviceGetHandleByIndex_v2")
    except _nvml._NvmlError as e:
        gpu["error"] = str(e)
        return gpu
    for key, getter in (("uuid", "nvmlDeviceGetUUID"), ("name", "nvmlDeviceGetName")):
        try:
            gpu[key] = _nvml._string(nvml, getter, handle)
        except (_nvml._NvmlError, AttributeError) as e:
            errors.append(str(e))
    utilization = _Utilization()
    if _read(nvml, handle, errors, "nvmlDeviceGetUtilizationRates", ctypes.byref(utilization)):
        gpu["utilization_percent"] = utilization.gpu
    memory = _nvml._Memory()
    if _read(nvml, handle, errors, "nvmlDeviceGetMemoryInfo", ctypes.byref(memory)):
        gpu["memory_used_bytes"], gpu["memory_total_bytes"] = memory.used, memory.total
    milliwatts = ctypes.c_uint()
    if _read(nvml, handle, errors, "nvmlDeviceGetPowerUsage", ctypes.byref(milliwatts)):
        gpu["power_watts"] = milliwatts.value / 1000
    celsius = ctypes.c_uint()
    if _read(nvml, handle, errors, "nvmlDeviceGetTemperature", ctypes.c_int(_NVML_TEMPERATURE_GPU),
             ctypes.byref(celsius)):
        gpu["temperature_c"] = celsius.value
    gpu["error"] = "; ".join(errors) or None
    return gpu


# The NVML library of this process, once initialized: the sampling thread reads it every refresh,
# and going through _nvml's lock each time would widen the window in which a fork inherits it held.
_library: tuple[int, Any] | None = None


def _nvml_library() -> Any:
    global _library
    cached = _library
    if cached is not None and cached[0] == os.getpid():
        return cached[1]
    nvml = _nvml._nvml()
    if nvml is not None:
        _library = (os.getpid(), nvml)
    return nvml


if hasattr(os, "register_at_fork"):
    # A fork while another thread initializes NVML (up to seconds without persistence mode) would
    # leave the child a lock that nobody releases: fork between initializations only.
    os.register_at_fork(
        before=_nvml._lock.acquire, after_in_parent=_nvml._lock.release, after_in_child=_nvml._lock.release
    )


def gpu_metrics() -> list[dict[str, Any]] | None:
    """Per GPU, in NVML's order: ``index``, ``uuid``, ``name``, ``utilization_percent``,
    ``memory_used_bytes``, ``memory_total_bytes``, ``power_watts``, ``temperature_c`` and
    ``error`` (what could not be read, or ``None``); ``None`` when NVML cannot be used
    (no NVIDIA driver, or the GPUs cannot be counted).
    """
    nvml = _nvml_library()
    if nvml is None:
        return None
    count = ctypes.c_uint()
    try:
        _nvml._check(nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
    except (_nvml._NvmlError, AttributeError):
        return None
    return [_gpu(nvml, i) for i in range(count.value)]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}" if labels else ""


_GPU_FAMILIES = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "utilization_percent", 0),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "memory_used_bytes", 20),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_watts", 0),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temperature_c", 0),
)


def prometheus(
    process: dict[str, Any], gpus: list[dict[str, Any]] | None, labels: dict[str, str] | None = None
) -> str:
    """The Prometheus text format of :func:`process_metrics` and :func:`gpu_metrics`; ``labels`` go on every series."""
    extra = dict(labels or {})
    out = []
    if process.get("rss_bytes") is not None:
        out += [
            "# HELP process_resident_memory_bytes Resident memory size in bytes.",
            "# TYPE process_resident_memory_bytes gauge",
            f"process_resident_memory_bytes{_labels(extra)} {process['rss_bytes']}",
        ]
    if process.get("cpu_seconds") is not None:
        out += [
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total{_labels(extra)} {float(process['cpu_seconds'])!r}",
        ]
    for family, help_text, key, shift in _GPU_FAMILIES:
        # dcgm-exporter reports whole MiB: bytes >> 20.
        samples = [(g, g[key] >> shift if shift else g[key]) for g in gpus or () if g.get(key) is not None]
        if not samples:
            continue
        out += [f"# HELP {family} {help_text}", f"# TYPE {family} gauge"]
        for g, value in samples:
            gpu_labels = {"gpu": str(g["index"]), "UUID": g.get("uuid") or "", "modelName": g.get("name") or "", **extra}
            shown = repr(float(value)) if isinstance(value, float) else str(value)
            out.append(f"{family}{_labels(gpu_labels)} {shown}")
    return "\n".join(out) + "\n" if out else ""
