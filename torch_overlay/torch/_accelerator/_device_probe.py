"""Free and total memory of every visible accelerator device, as cheaply as the backend allows.

On CUDA the memory comes from NVML (:mod:`torch._accelerator._nvml`), mapped from
NVML's physical order to CUDA ordinals the way the CUDA runtime numbers devices:
``CUDA_DEVICE_ORDER`` decides the enumeration order and ``CUDA_VISIBLE_DEVICES``
(indices, ``GPU-`` UUIDs or ``MIG-`` UUIDs, unique prefixes allowed, parsed by
:func:`torch.cuda._parse_visible_devices`) selects and reorders.  This creates no
CUDA context and does not initialize CUDA in the calling process.  Once CUDA is
initialized, the mapping is read from CUDA itself
(``torch.cuda.get_device_properties(i).uuid``, no context either), which is exact;
CUDA is initialized for it (still without a context) only where NVML's order cannot
tell CUDA's: GPUs of different models selected by index in ``FASTEST_FIRST`` order.
A GPU NVML cannot read (``NVML_ERROR_NO_PERMISSION``, ``NVML_ERROR_GPU_IS_LOST``) is
reported with its ``error`` and never picked; the others are still read through NVML.

Everywhere else -- XPU, MPS, out-of-tree backends, ROCm, a CUDA machine without
NVML, or a layout NVML cannot map (GPUs in MIG mode selected by index) -- the memory comes from
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


__all__ = ["DeviceMemory", "available_accelerator", "probe_devices"]


def available_accelerator() -> torch.device | None:
    """Return the current accelerator when at least one of its devices is visible, else ``None``.

    Unlike ``torch.accelerator.current_accelerator(check_available=True)``, this does
    not call ``torch.cuda.is_available()``, which (without
    ``PYTORCH_NVML_BASED_CUDA_CHECK=1``) initializes the CUDA driver API and leaves a
    later ``fork`` unable to use CUDA.  :func:`torch.accelerator.device_count` asks
    NVML first on CUDA.
    """
    acc = torch.accelerator.current_accelerator()
    if acc is None or torch.accelerator.device_count() <= 0:
        return None
    return acc


@dataclass(frozen=True)
class DeviceMemory:
    """Memory of one accelerator device, in bytes; ``error`` says why it could not be read."""

    device: torch.device
    free: int
    total: int
    error: str | None = None


def _cuda_enumeration(physical: list[_nvml.NvmlDevice]) -> list[_nvml.NvmlDevice] | None:
    # CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; among
    # identical models "fastest first" falls back to PCI bus order.  Which of two
    # different models CUDA deems faster is not knowable without CUDA itself.
    if any(not d.uuid for d in physical):
        return None  # a GPU NVML could not identify: its place in the order is unknown
    by_bus = sorted(physical, key=lambda d: d.pci_bus_id)
    if os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or len({d.name for d in physical}) <= 1:
        return by_bus
    return None


def _bare_uuid(uuid: str) -> str:
    return uuid.lower().removeprefix("gpu-").removeprefix("mig-")


def _cuda_uuids(initialize: bool) -> list[str] | None:
    """The UUIDs of CUDA's devices in ordinal order, or ``None`` if CUDA is not initialized and may not be.

    :func:`torch.cuda.get_device_properties` reads them without creating a context;
    once CUDA is initialized this is the exact mapping, whatever ``CUDA_DEVICE_ORDER``
    is and whatever ``CUDA_VISIBLE_DEVICES`` was changed to since.
    """
    if not torch.cuda.is_initialized():
        if not initialize:
            return None
        try:
            torch.cuda.init()
        except (AssertionError, RuntimeError):  # no usable CUDA: let get_memory_info say why
            return None
    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def _by_cuda_uuids(physical: list[_nvml.NvmlDevice], uuids: list[str]) -> list[_nvml.NvmlDevice] | None:
    known = {}
    for gpu in physical:
        for d in (gpu, *gpu.mig_devices):
            if d.uuid:
                known[_bare_uuid(d.uuid)] = d
    chosen = [known.get(_bare_uuid(uuid)) for uuid in uuids]
    # Unknown to NVML, or a GPU in MIG mode (CUDA would name one of its instances): no mapping.
    if any(d is None or d.mig_enabled for d in chosen):
        return None
    return cast(list[_nvml.NvmlDevice], chosen)


def _visible_cuda_devices(physical: list[_nvml.NvmlDevice]) -> list[_nvml.NvmlDevice] | None:
    """NVML devices in CUDA ordinal order, or ``None`` when the mapping is not knowable."""
    uuids = _cuda_uuids(initialize=False)
    if uuids is not None:
        # CUDA is initialized: its own UUIDs give the exact order, and a CUDA_VISIBLE_DEVICES
        # set after initialization (which CUDA ignores) is not read.
        return _by_cuda_uuids(physical, uuids)
    visible = torch.cuda._parse_visible_devices()
    if visible and isinstance(visible[0], str):
        # Named by UUID: CUDA's order is the list's, CUDA_DEVICE_ORDER plays no part.
        candidates = cast(list[str], visible)
        if candidates[0].startswith("MIG-"):
            pool = [mig for gpu in physical for mig in gpu.mig_devices]
        else:
            pool = [d for d in physical if d.uuid]
        ordinals = torch.cuda._transform_uuid_to_ordinals(candidates, [d.uuid for d in pool])
        chosen = [pool[i] for i in ordinals]
        if candidates[0].startswith("MIG-"):
            # A CUDA process enumerates a single MIG instance: the first one named.
            chosen = chosen[:1]
    else:
        enumeration = _cuda_enumeration(physical)
        if enumeration is None:
            # Different models in FASTEST_FIRST order: only CUDA knows its order.  Initializing
            # CUDA reads it without a context on any device (unlike get_memory_info).
            uuids = _cuda_uuids(initialize=True)
            return None if uuids is None else _by_cuda_uuids(physical, uuids)
        # Like the CUDA runtime, the list stops at the first index that does not exist.
        chosen = []
        for index in cast(list[int], visible):
            if index >= len(enumeration):
                break
            chosen.append(enumeration[index])
    # A GPU in MIG mode is seen by CUDA as its MIG instances (or not at all without
    # any), unless they are named.
    if any(d.mig_enabled for d in chosen):
        return None
    return chosen


def _probe_through_accelerator() -> list[DeviceMemory]:
    acc = available_accelerator()
    if acc is None:
        return []
    # torch.accelerator.get_memory_info is recent; the device modules have had mem_get_info longer.
    get_memory_info = getattr(torch.accelerator, "get_memory_info", None) or torch.get_device_module(acc).mem_get_info
    devices = []
    for index in range(torch.accelerator.device_count()):
        free, total = get_memory_info(index)
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
                return [
                    DeviceMemory(torch.device("cuda", i), d.free, d.total, d.error) for i, d in enumerate(visible)
                ]
    return _probe_through_accelerator()
