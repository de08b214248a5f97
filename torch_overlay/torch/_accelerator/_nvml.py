"""Read the memory of every NVIDIA GPU through NVML, without creating a CUDA context.

NVML is loaded with :mod:`ctypes` (as :func:`torch.cuda._raw_device_uuid_nvml`
does), so there is no dependency on ``pynvml``.  NVML reports devices in its own,
physical order and knows nothing of ``CUDA_VISIBLE_DEVICES``; mapping them to
CUDA ordinals is done by :mod:`torch._accelerator._device_probe`.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass


__all__ = ["NvmlDevice", "query_devices"]

_NVML_SUCCESS = 0
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
    """One GPU (or one MIG instance) as NVML reports it; sizes in bytes.

    ``error`` names the NVML error that kept a field from being read (say
    ``NVML_ERROR_NO_PERMISSION`` on a cgroup-restricted node, or
    ``NVML_ERROR_GPU_IS_LOST``); such a device is reported, never picked.  An
    empty ``uuid`` means the device could not even be identified.
    """

    uuid: str
    name: str
    pci_bus_id: tuple[int, int, int]
    free: int
    total: int
    mig_devices: tuple[NvmlDevice, ...] = ()
    mig_enabled: bool = False
    error: str | None = None


_ERROR_NAMES = {
    1: "NVML_ERROR_UNINITIALIZED",
    2: "NVML_ERROR_INVALID_ARGUMENT",
    3: "NVML_ERROR_NOT_SUPPORTED",
    4: "NVML_ERROR_NO_PERMISSION",
    6: "NVML_ERROR_NOT_FOUND",
    7: "NVML_ERROR_INSUFFICIENT_SIZE",
    9: "NVML_ERROR_DRIVER_NOT_LOADED",
    15: "NVML_ERROR_GPU_IS_LOST",
    999: "NVML_ERROR_UNKNOWN",
}


class _NvmlError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc != _NVML_SUCCESS:
        raise _NvmlError(f"{what}: {_ERROR_NAMES.get(rc, 'NVML error')} ({rc})")


def _string(nvml: ctypes.CDLL, getter: str, handle: ctypes.c_void_p) -> str:
    buf = ctypes.create_string_buffer(_STRING_BUFFER_SIZE)
    _check(getattr(nvml, getter)(handle, buf, ctypes.c_uint(_STRING_BUFFER_SIZE)), getter)
    return buf.value.decode("ascii", errors="replace")


def _memory(nvml: ctypes.CDLL, handle: ctypes.c_void_p) -> tuple[int, int]:
    mem = _Memory()
    _check(nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)), "nvmlDeviceGetMemoryInfo")
    return mem.free, mem.total


def _mig_devices(
    nvml: ctypes.CDLL, handle: ctypes.c_void_p, pci: tuple[int, int, int]
) -> tuple[bool, tuple[NvmlDevice, ...]]:
    current, pending = ctypes.c_uint(), ctypes.c_uint()
    # GPUs without MIG support answer NVML_ERROR_NOT_SUPPORTED: no instances.
    if nvml.nvmlDeviceGetMigMode(handle, ctypes.byref(current), ctypes.byref(pending)) != _NVML_SUCCESS:
        return False, ()
    if current.value != _NVML_DEVICE_MIG_ENABLE:
        return False, ()
    count = ctypes.c_uint()
    if nvml.nvmlDeviceGetMaxMigDeviceCount(handle, ctypes.byref(count)) != _NVML_SUCCESS:
        return True, ()
    found = []
    for i in range(count.value):
        mig = ctypes.c_void_p()
        rc = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, ctypes.c_uint(i), ctypes.byref(mig))
        if rc != _NVML_SUCCESS:  # an empty slot (NVML_ERROR_NOT_FOUND), or one we may not see
            continue
        try:
            uuid = _string(nvml, "nvmlDeviceGetUUID", mig)
        except _NvmlError:
            continue
        try:
            free, total = _memory(nvml, mig)
        except _NvmlError as e:
            found.append(NvmlDevice(uuid, "", pci, 0, 0, error=str(e)))
        else:
            found.append(NvmlDevice(uuid, "", pci, free, total))
    return True, tuple(found)


def _device(nvml: ctypes.CDLL, index: int) -> NvmlDevice:
    """Read one GPU; an error on it is recorded on it and does not stop the others from being read."""
    handle = ctypes.c_void_p()
    try:
        rc = nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle))
        _check(rc, "nvmlDeviceGetHandleByIndex_v2")
        pci = _PciInfo()
        _check(nvml.nvmlDeviceGetPciInfo_v3(handle, ctypes.byref(pci)), "nvmlDeviceGetPciInfo_v3")
        bus_id = (pci.domain, pci.bus, pci.device)
        uuid = _string(nvml, "nvmlDeviceGetUUID", handle)
    except _NvmlError as e:
        return NvmlDevice("", "", (-1, -1, index), 0, 0, error=str(e))
    errors = []
    try:
        name = _string(nvml, "nvmlDeviceGetName", handle)
    except _NvmlError as e:
        name = ""
        errors.append(str(e))
    try:
        free, total = _memory(nvml, handle)
    except _NvmlError as e:
        # Unprivileged containers may read a MIG instance but not its parent GPU.
        free = total = 0
        errors.append(str(e))
    mig_enabled, mig_devices = _mig_devices(nvml, handle, bus_id)
    return NvmlDevice(
        uuid=uuid,
        name=name,
        pci_bus_id=bus_id,
        free=free,
        total=total,
        mig_devices=mig_devices,
        mig_enabled=mig_enabled,
        error="; ".join(errors) or None,
    )


# NVML stays initialized once it was (nvmlInit is reference-counted and torch.cuda's own
# NVML helpers never shut it down either): initializing it costs up to seconds per call
# on GPUs without persistence mode.  Per process, since a forked child must initialize again.
_lock = threading.Lock()
_initialized_in: int | None = None
_library: ctypes.CDLL | None = None


def _nvml() -> ctypes.CDLL | None:
    global _initialized_in, _library
    with _lock:
        if _initialized_in == os.getpid():
            return _library
        try:
            nvml = ctypes.CDLL("libnvidia-ml.so.1")
            if nvml.nvmlInit_v2() != _NVML_SUCCESS:
                return None
        except (OSError, AttributeError):
            return None
        _initialized_in, _library = os.getpid(), nvml
        return nvml


def query_devices() -> list[NvmlDevice] | None:
    """Return every GPU NVML sees, in NVML's order, or ``None`` when NVML cannot be used.

    ``None`` means "ask someone else": the library is missing (no NVIDIA driver,
    a container without it), it failed to initialize, or the devices could not be
    counted.  A failure on one device is recorded in that device's ``error`` and the
    others are still read.  NVML is initialized on the first call of each process and
    stays initialized; no CUDA context is created.
    """
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        count = ctypes.c_uint()
        _check(nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
        return [_device(nvml, i) for i in range(count.value)]
    except (_NvmlError, AttributeError):
        return None
