r"""
Device selection on top of :mod:`torch.accelerator`.

:mod:`torch.accelerator` exposes the current accelerator as an index
(:func:`torch.accelerator.current_device_index`,
:func:`torch.accelerator.set_device_index`).  This module adds the
:class:`torch.device`-level entry points users reach for first: set the
current device from whatever they have at hand (``1``, ``"cuda:1"``,
``torch.device("xpu", 0)``, ``"cpu"``) with a clear error when it cannot be
honoured, and ask which device is current without special-casing machines that
have no accelerator.

It also picks a device (:func:`get_best_device`: the one with the most free
memory, found without creating a CUDA context on every GPU) and runs code on one
(:class:`DeviceContext`: current device, default device of factories and
autocast, as a context manager or a decorator).

Everything here goes through :mod:`torch.accelerator`, so CUDA, XPU, MPS and
out-of-tree backends behave alike; only the NVML probe behind
:func:`get_best_device` is NVIDIA-specific.
"""

from __future__ import annotations

import torch
from torch._accelerator import _device_probe
from torch._accelerator._best_device import get_best_device
from torch._accelerator._device_context import DeviceContext


__all__ = [
    "DeviceContext",
    "current_device",
    "get_best_device",
    "set_device",
]

get_best_device.__module__ = "torch._accelerator"
DeviceContext.__module__ = "torch._accelerator"


def _available_accelerator() -> torch.device | None:
    # A CUDA build on a machine without a GPU has no accelerator to set.  Not
    # current_accelerator(check_available=True): torch.cuda.is_available() poisons fork.
    return _device_probe.available_accelerator()


def current_device() -> torch.device:
    r"""Return the current accelerator device with its index, or ``torch.device("cpu")``.

    Returns:
        torch.device: ``torch.device("<accelerator>", index)`` for the device that
        new accelerator tensors go to in this thread, or ``torch.device("cpu")``
        when no accelerator is available.

    .. note:: This query does not initialize the accelerator runtime: before the
        backend is initialized the current index is ``0`` and is reported as such,
        so calling this at import time or in a parent process before ``fork`` is safe.

    Example::

        >>> torch._accelerator.current_device()
        device(type='cpu')
        >>> # xdoctest: +SKIP("requires an accelerator")
        >>> torch._accelerator.set_device("cuda:1")
        device(type='cuda', index=1)
        >>> torch._accelerator.current_device()
        device(type='cuda', index=1)
    """
    acc = _available_accelerator()
    if acc is None:
        return torch.device("cpu")
    module = torch.get_device_module(acc)
    is_initialized = getattr(module, "is_initialized", None)
    if is_initialized is not None and not is_initialized():
        return torch.device(acc.type, 0)
    return torch.device(acc.type, torch.accelerator.current_device_index())


def set_device(device: torch.device | str | int) -> torch.device:
    r"""Make ``device`` the current accelerator device of this thread.

    Args:
        device (:class:`torch.device`, str, int): an index (``1``), a device
            string (``"cuda:1"``, ``"cuda"``) or a :class:`torch.device` of the
            current accelerator type.  A device without an index (``"cuda"``)
            means the current device.  ``"cpu"`` is accepted and changes nothing
            on the accelerator, so code can pass through whatever device it was
            configured with.

    Returns:
        torch.device: the normalized device, with its index (``torch.device("cpu")``
        for a CPU device).

    Raises:
        TypeError: ``device`` is not an ``int``, ``str`` or :class:`torch.device`
            (``bool`` is rejected although it is an ``int``).
        ValueError: the string is not a device, the index is negative or not
            below :func:`torch.accelerator.device_count`, or the device type is
            neither ``cpu`` nor the current accelerator's (``"meta"``; ``"cuda"``
            in a build without CUDA), checked first, on every machine.
        RuntimeError: an index or a device of the current accelerator was asked
            for on a machine where none of its devices is available.

    .. note:: Unlike :func:`torch.accelerator.set_device_index`, which silently
        ignores a negative index, every invalid request raises.  Setting a device
        initializes the accelerator runtime (on CUDA 12+ this creates the
        device's primary context), as selecting a device must.

    Example::

        >>> torch._accelerator.set_device("cpu")
        device(type='cpu')
        >>> # xdoctest: +SKIP("requires two accelerator devices")
        >>> torch._accelerator.set_device(1)
        device(type='cuda', index=1)
        >>> torch.empty(1, device=torch.accelerator.current_accelerator()).device
        device(type='cuda', index=1)
    """
    if isinstance(device, bool) or not isinstance(device, (int, str, torch.device)):
        raise TypeError(
            f"set_device(): expected an int index, a device string or a torch.device, "
            f"but got {device!r} of type {type(device).__name__}"
        )
    if isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError as e:
            raise ValueError(
                f"set_device(): {device!r} is not a device; expected 'cpu', "
                f"'<accelerator>' or '<accelerator>:<index>' (e.g. 'cuda:0')"
            ) from e
    if isinstance(device, torch.device) and device.type == "cpu":
        return torch.device("cpu")
    if isinstance(device, torch.device):
        # The type is checked before availability: "meta" is a ValueError on every machine.
        built = torch.accelerator.current_accelerator()
        if built is None or device.type != built.type:
            expected = "'cpu' (this build has no accelerator)" if built is None else f"'cpu' or a {built.type!r} device"
            raise ValueError(
                f"set_device(): {str(device)!r} does not match the current accelerator; expected {expected}"
            )

    acc = _available_accelerator()
    if acc is None:
        raise RuntimeError(
            f"set_device(): cannot select {device!r}: no accelerator is available on "
            f"this machine (torch.accelerator.device_count() is 0); pass 'cpu' instead"
        )
    if isinstance(device, torch.device):
        index = device.index if device.index is not None else current_device().index
    else:
        index = device
    if index is None:
        raise AssertionError("set_device(): the current accelerator device has no index")
    count = torch.accelerator.device_count()
    if index < 0 or index >= count:
        raise ValueError(
            f"set_device(): device index {index} is out of range; this machine has "
            f"{count} {acc.type} device{'s' if count != 1 else ''} "
            f"(valid indices 0..{count - 1})"
        )
    torch.accelerator.set_device_index(index)
    return torch.device(acc.type, index)
