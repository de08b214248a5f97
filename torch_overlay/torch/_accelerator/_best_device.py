"""The policy of :func:`torch._accelerator.get_best_device`: which device a process should use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch
from torch._accelerator import _device_probe
from torch.utils._memory_size import format_memory_size, parse_memory_size

if TYPE_CHECKING:
    from collections.abc import Iterable


__all__ = ["get_best_device"]

_OVERRIDE_ENV = "TORCH_BEST_DEVICE"


def _parse_override(value: str, acc: torch.device | None, allow_cpu: bool) -> torch.device:
    text = value.strip()
    if text.isdigit():
        device = torch.device(acc.type if acc is not None else "cuda", int(text))
    else:
        try:
            device = torch.device(text)
        except RuntimeError as e:
            raise ValueError(
                f"get_best_device(): {_OVERRIDE_ENV}={value!r} is not a device; expected 'cpu', "
                f"'<accelerator>:<index>' (e.g. 'cuda:1') or an index"
            ) from e
    if device.type == "cpu":
        if not allow_cpu:
            raise RuntimeError(f"get_best_device(): {_OVERRIDE_ENV}={value!r} asks for the CPU, but allow_cpu=False")
        return torch.device("cpu")
    if acc is None or device.type != acc.type:
        raise ValueError(
            f"get_best_device(): {_OVERRIDE_ENV}={value!r} does not name a device of the available accelerator "
            f"({acc.type if acc is not None else 'none'}); expected 'cpu' or '<accelerator>:<index>'"
        )
    if device.index is None:
        raise ValueError(f"get_best_device(): {_OVERRIDE_ENV}={value!r} must name an index, e.g. '{acc.type}:0'")
    count = torch.accelerator.device_count()
    if device.index >= count:
        raise ValueError(
            f"get_best_device(): {_OVERRIDE_ENV}={value!r} is out of range; "
            f"this machine has {count} {acc.type} device{'s' if count != 1 else ''}"
        )
    return device


def _excluded_indices(exclude: Iterable[int | str | torch.device] | None, acc: torch.device | None) -> set[int]:
    if exclude is None:
        return set()
    if isinstance(exclude, (int, str, torch.device)):
        raise TypeError(
            f"get_best_device(): exclude must be an iterable of devices, e.g. (1,) or ['cuda:1'], "
            f"but got the single value {exclude!r}"
        )
    try:
        exclude = iter(exclude)
    except TypeError:
        raise TypeError(
            f"get_best_device(): exclude must be an iterable of devices, e.g. (1,) or ['cuda:1'], or None, "
            f"but got {exclude!r} of type {type(exclude).__name__}"
        ) from None
    indices = set()
    for item in exclude:
        if isinstance(item, bool) or not isinstance(item, (int, str, torch.device)):
            raise TypeError(
                f"get_best_device(): exclude must hold int indices, device strings or torch.devices, "
                f"but got {item!r} of type {type(item).__name__}"
            )
        if isinstance(item, int):
            if item < 0:
                raise ValueError(f"get_best_device(): exclude holds the negative index {item}")
            indices.add(item)
            continue
        try:
            device = torch.device(item)
        except RuntimeError as e:
            raise ValueError(f"get_best_device(): exclude holds {item!r}, which is not a device") from e
        if device.type == "cpu":
            raise ValueError("get_best_device(): exclude cannot hold the CPU; pass allow_cpu=False instead")
        if acc is not None and device.type != acc.type:
            raise ValueError(
                f"get_best_device(): exclude holds {str(device)!r}, which is not a {acc.type!r} device"
            )
        if device.index is None:
            raise ValueError(f"get_best_device(): exclude holds {str(device)!r}; name an index, e.g. '{device.type}:0'")
        indices.add(device.index)
    return indices


def _local_rank() -> int | None:
    value = os.environ.get("LOCAL_RANK")
    if value is None:
        return None
    try:
        rank = int(value)
    except ValueError:
        rank = -1
    if rank < 0:
        raise ValueError(f"get_best_device(): LOCAL_RANK={value!r} is not a non-negative integer")
    return rank


def get_best_device(
    *,
    min_free_memory: int | float | str | None = None,
    exclude: Iterable[int | str | torch.device] | None = (),
    allow_cpu: bool = True,
) -> torch.device:
    r"""Return the accelerator device with the most free memory, or the CPU when none qualifies.

    A device qualifies when it is not in ``exclude`` and has at least
    ``min_free_memory`` free (memory used by other processes counts as used).
    Among the qualifying devices the one with the most free memory wins; ties go
    to the lowest index, so the answer is deterministic.

    Args:
        min_free_memory (int, str, float, optional): the least free memory a
            device must have: bytes (``8 << 30``), a size string (``"8GiB"``,
            ``"512 MB"``) or a fraction of each device's total (``0.5``); the
            forms of :func:`torch.cuda.assert_free_memory`.  Default: no minimum.
        exclude (iterable, optional): devices never to pick, as indices (``1``), strings
            (``"cuda:1"``) or :class:`torch.device`\ s.  ``None`` is the same as
            ``()``: no exclusions.
        allow_cpu (bool): return ``torch.device("cpu")`` when no accelerator
            device qualifies (the default); with ``False``, raise instead.

    Returns:
        torch.device: an accelerator device with its index, or ``torch.device("cpu")``.

    Raises:
        TypeError: ``min_free_memory`` or ``exclude`` has the wrong type.
        ValueError: ``min_free_memory``, an ``exclude`` entry, ``LOCAL_RANK`` or
            ``TORCH_BEST_DEVICE`` is malformed.
        RuntimeError: ``allow_cpu=False`` and no device qualifies; the message
            lists every device with its free and total memory.

    Environment:
        ``TORCH_BEST_DEVICE``: an explicit choice that wins over everything else
        (``"cuda:1"``, ``"1"`` or ``"cpu"``), for the operator who knows better.

        ``LOCAL_RANK`` (set by ``torchrun``): each local rank takes a different
        device -- rank ``r`` gets the ``r``-th device not in ``exclude``, in
        index order (wrapping around when there are more ranks than devices) --
        instead of every rank picking the same emptiest one; then
        ``min_free_memory`` is checked for that device only (too little: the CPU,
        or with ``allow_cpu=False`` an error naming the rank).  The assignment
        does not depend on free memory, so ranks never disagree, whenever each
        one calls this.

    .. note:: On NVIDIA GPUs the free memory is read through NVML (loaded with
        :mod:`ctypes`), mapped to CUDA ordinals through ``CUDA_DEVICE_ORDER`` and
        ``CUDA_VISIBLE_DEVICES`` (indices, ``GPU-``/``MIG-`` UUIDs and their
        prefixes; a process sees only the first MIG instance named): no CUDA
        context is created and CUDA is not initialized, so it is safe before
        ``fork``.  Once CUDA is initialized the mapping is read from CUDA
        itself (exact, no context).  GPUs of different models selected by index
        without ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` are ordered as only CUDA knows:
        CUDA is initialized for that (no context).  Where NVML is missing, on
        other accelerators, or for GPUs in MIG mode selected by index, it falls
        back to :func:`torch.accelerator.get_memory_info`, which initializes the
        backend and creates a context on every device.  A GPU that
        NVML may not read (``NVML_ERROR_NO_PERMISSION`` on some SLURM or cgroup
        nodes) or has lost is never picked, and listed with the error; the others
        are still read through NVML.  NVML's total memory includes what the driver
        reserves, so it is slightly larger than the total of
        :func:`torch.cuda.mem_get_info`: a fractional ``min_free_memory`` is a
        fraction of NVML's total.

    Example::

        >>> torch._accelerator.get_best_device()
        device(type='cpu')
        >>> # xdoctest: +SKIP("requires an accelerator")
        >>> torch._accelerator.get_best_device(min_free_memory="8GiB", exclude=[0])
        device(type='cuda', index=2)
        >>> os.environ["TORCH_BEST_DEVICE"] = "cuda:1"
        >>> torch._accelerator.get_best_device()
        device(type='cuda', index=1)
    """
    if not isinstance(allow_cpu, bool):
        raise TypeError(f"get_best_device(): allow_cpu must be a bool, but got {allow_cpu!r}")
    if min_free_memory is not None:
        # Validates every form up front; fractions are resolved per device below.
        parse_memory_size(min_free_memory, total=0, name="min_free_memory")
    acc = torch.accelerator.current_accelerator()
    excluded = _excluded_indices(exclude, acc)
    override = os.environ.get(_OVERRIDE_ENV)
    if override:
        return _parse_override(override, acc, allow_cpu)
    local_rank = _local_rank()

    devices = _device_probe.probe_devices()
    reasons = {}
    for d in devices:
        required = 0
        if min_free_memory is not None:
            required = parse_memory_size(min_free_memory, total=d.total, name="min_free_memory")
        if d.device.index in excluded:
            reasons[d.device] = "excluded"
        elif d.error is not None:
            reasons[d.device] = f"unreadable: {d.error}"
        elif d.free < required:
            reasons[d.device] = f"below {format_memory_size(required)}"

    if local_rank is not None:
        # The rank's own device first, then the threshold for it: every rank reaches the
        # same assignment whatever the other ranks allocated meanwhile.
        candidates = [d for d in devices if d.device.index not in excluded]
        if candidates:
            mine = candidates[local_rank % len(candidates)]
            if mine.device not in reasons:
                return mine.device
            devices, what = [mine], f"the device of LOCAL_RANK={local_rank} ({mine.device})"
        else:
            what = f"no device is left for LOCAL_RANK={local_rank}"
    else:
        qualifying = [d for d in devices if d.device not in reasons]
        if qualifying:
            return min(qualifying, key=lambda d: (-d.free, d.device.index)).device
        what = f"no {devices[0].device.type} device qualifies" if devices else ""
    if allow_cpu:
        return torch.device("cpu")
    if not devices:
        raise RuntimeError("get_best_device(): no accelerator device is available and allow_cpu=False")
    listing = "; ".join(
        f"{d.device}: {reasons[d.device]}"
        if d.error is not None
        else f"{d.device}: {format_memory_size(d.free)} free of {format_memory_size(d.total)} ({reasons[d.device]})"
        for d in devices
    )
    raise RuntimeError(
        f"get_best_device(): {what} "
        f"(min_free_memory={min_free_memory!r}, exclude={sorted(excluded)}) and allow_cpu=False; {listing}"
    )
