"""Free and total memory of every visible accelerator device, as cheaply as the backend allows.

On CUDA the memory comes from NVML (:mod:`torch._accelerator._nvml`), mapped from
NVML's physical order to CUDA ordinals the way the CUDA runtime numbers devices:
``CUDA_DEVICE_ORDER`` decides the enumeration order and ``CUDA_VISIBLE_DEVICES``
(indices, ``GPU-`` UUIDs or ``MIG-`` UUIDs, unique prefixes allowed, parsed by
:func:`torch.cuda._parse_visible_devices`) selects and reorders.  This creates no
CUDA context and does not initialize CUDA in the calling process.

Everywhere else -- XPU, MPS, out-of-tree backends, ROCm, a CUDA machine without
NVML, or a layout NVML cannot map -- the memory comes from
:func:`torch.accelerator.get_memory_info`, which initializes the backend and, on
CUDA, creates a context on every device it asks about.

:func:`probe_devices` is the single entry point; tests replace
:func:`torch._accelerator._nvml.query_devices` to describe fake GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import cast

import torch
from torch._accelerator import _nvml


__all__ = ["DeviceMemory", "probe_devices"]


@dataclass(frozen=True)
class DeviceMemory:
    """Memory of one accelerator device, in bytes."""

    device: torch.device
    free: int
    total: int


def _cuda_enumeration(physical: list[_nvml.NvmlDevice]) -> list[_nvml.NvmlDevice] | None:
    # CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; among
    # identical models "fastest first" falls back to PCI bus order.  Which of two
    # different models CUDA deems faster is not knowable without CUDA itself.
    by_bus = sorted(physical, key=lambda d: d.pci_bus_id)
    if os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or len({d.name for d in physical}) <= 1:
        return by_bus
    return None


def _visible_cuda_devices(physical: list[_nvml.NvmlDevice]) -> list[_nvml.NvmlDevice] | None:
    """NVML devices in CUDA ordinal order, or ``None`` when the mapping is not knowable."""
    enumeration = _cuda_enumeration(physical)
    if enumeration is None:
        return None
    visible = torch.cuda._parse_visible_devices()
    if visible and isinstance(visible[0], str):
        candidates = cast(list[str], visible)
        if candidates[0].startswith("MIG-"):
            pool = [mig for gpu in enumeration for mig in gpu.mig_devices]
        else:
            pool = enumeration
        ordinals = torch.cuda._transform_uuid_to_ordinals(candidates, [d.uuid for d in pool])
        chosen = [pool[i] for i in ordinals]
    else:
        # Like the CUDA runtime, the list stops at the first index that does not exist.
        chosen = []
        for index in cast(list[int], visible):
            if index >= len(enumeration):
                break
            chosen.append(enumeration[index])
    # A GPU in MIG mode is seen by CUDA as its MIG instances, unless they are named.
    if any(d.mig_devices for d in chosen):
        return None
    return chosen


def _probe_through_accelerator() -> list[DeviceMemory]:
    acc = torch.accelerator.current_accelerator(check_available=True)
    if acc is None:
        return []
    devices = []
    for index in range(torch.accelerator.device_count()):
        free, total = torch.accelerator.get_memory_info(index)
        devices.append(DeviceMemory(torch.device(acc.type, index), free, total))
    return devices


def probe_devices() -> list[DeviceMemory]:
    """Return the memory of every visible accelerator device, indexed as the framework indexes them.

    Returns an empty list when there is no accelerator.  See the module
    docstring for which path creates contexts.
    """
    acc = torch.accelerator.current_accelerator()
    if acc is None:
        return []
    if acc.type == "cuda" and torch.version.hip is None:
        physical = _nvml.query_devices()
        if physical is not None:
            visible = _visible_cuda_devices(physical)
            if visible is not None:
                return [DeviceMemory(torch.device("cuda", i), d.free, d.total) for i, d in enumerate(visible)]
    return _probe_through_accelerator()
