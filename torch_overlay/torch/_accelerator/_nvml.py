"""Read the memory of every NVIDIA GPU through NVML, without creating a CUDA context.

NVML is loaded with :mod:`ctypes` (as :func:`torch.cuda._raw_device_uuid_nvml`
does), so there is no dependency on ``pynvml``.  NVML reports devices in its own,
physical order and knows nothing of ``CUDA_VISIBLE_DEVICES``; mapping them to
CUDA ordinals is done by :mod:`torch._accelerator._device_probe`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass


__all__ = ["NvmlDevice", "query_devices"]

_NVML_SUCCESS = 0
_NVML_ERROR_NOT_FOUND = 6
_NVML_DEVICE_MIG_ENABLE = 1
_STRING_BUFFER_SIZE = 96


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class _PciInfo(ctypes.Structure):
    # nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3.
    _fields_ = [
        ("busIdLegacy", ctypes.c_char * 16),
        ("domain", ctypes.c_uint),
        ("bus", ctypes.c_uint),
        ("device", ctypes.c_uint),
        ("pciDeviceId", ctypes.c_uint),
        ("pciSubSystemId", ctypes.c_uint),
        ("busId", ctypes.c_char * 32),
    ]


@dataclass(frozen=True)
class NvmlDevice:
    """One GPU (or one MIG instance) as NVML reports it; sizes in bytes."""

    uuid: str
    name: str
    pci_bus_id: tuple[int, int, int]
    free: int
    total: int
    mig_devices: tuple[NvmlDevice, ...] = ()


class _NvmlError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc != _NVML_SUCCESS:
        raise _NvmlError(f"{what} returned {rc}")


def _string(nvml: ctypes.CDLL, getter: str, handle: ctypes.c_void_p) -> str:
    buf = ctypes.create_string_buffer(_STRING_BUFFER_SIZE)
    _check(getattr(nvml, getter)(handle, buf, ctypes.c_uint(_STRING_BUFFER_SIZE)), getter)
    return buf.value.decode("ascii", errors="replace")


def _memory(nvml: ctypes.CDLL, handle: ctypes.c_void_p) -> tuple[int, int]:
    mem = _Memory()
    _check(nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)), "nvmlDeviceGetMemoryInfo")
    return mem.free, mem.total


def _mig_devices(nvml: ctypes.CDLL, handle: ctypes.c_void_p, pci: tuple[int, int, int]) -> tuple[NvmlDevice, ...]:
    current, pending = ctypes.c_uint(), ctypes.c_uint()
    # GPUs without MIG support answer NVML_ERROR_NOT_SUPPORTED: no instances.
    if nvml.nvmlDeviceGetMigMode(handle, ctypes.byref(current), ctypes.byref(pending)) != _NVML_SUCCESS:
        return ()
    if current.value != _NVML_DEVICE_MIG_ENABLE:
        return ()
    count = ctypes.c_uint()
    _check(nvml.nvmlDeviceGetMaxMigDeviceCount(handle, ctypes.byref(count)), "nvmlDeviceGetMaxMigDeviceCount")
    found = []
    for i in range(count.value):
        mig = ctypes.c_void_p()
        rc = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, ctypes.c_uint(i), ctypes.byref(mig))
        if rc == _NVML_ERROR_NOT_FOUND:  # an empty slot
            continue
        _check(rc, "nvmlDeviceGetMigDeviceHandleByIndex")
        free, total = _memory(nvml, mig)
        found.append(NvmlDevice(_string(nvml, "nvmlDeviceGetUUID", mig), "", pci, free, total))
    return tuple(found)


def _device(nvml: ctypes.CDLL, index: int) -> NvmlDevice:
    handle = ctypes.c_void_p()
    rc = nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle))
    _check(rc, "nvmlDeviceGetHandleByIndex_v2")
    pci = _PciInfo()
    _check(nvml.nvmlDeviceGetPciInfo_v3(handle, ctypes.byref(pci)), "nvmlDeviceGetPciInfo_v3")
    bus_id = (pci.domain, pci.bus, pci.device)
    free, total = _memory(nvml, handle)
    return NvmlDevice(
        uuid=_string(nvml, "nvmlDeviceGetUUID", handle),
        name=_string(nvml, "nvmlDeviceGetName", handle),
        pci_bus_id=bus_id,
        free=free,
        total=total,
        mig_devices=_mig_devices(nvml, handle, bus_id),
    )


def query_devices() -> list[NvmlDevice] | None:
    """Return every GPU NVML sees, in NVML's order, or ``None`` when NVML cannot be used.

    ``None`` means "ask someone else": the library is missing (no NVIDIA driver,
    a container without it) or a call failed.  NVML is initialized and shut down
    around the query; no CUDA context is created.
    """
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        if nvml.nvmlInit_v2() != _NVML_SUCCESS:
            return None
    except AttributeError:
        return None
    try:
        count = ctypes.c_uint()
        _check(nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
        return [_device(nvml, i) for i in range(count.value)]
    except (_NvmlError, AttributeError):
        return None
    finally:
        nvml.nvmlShutdown()
