r"""
What :mod:`torch.amp` uses when the device type or the dtype is omitted.

``torch.amp.autocast()`` and ``torch.amp.GradScaler.for_autocast()`` resolve
their defaults here, so a scaler made for an autocast region always matches it.

Nothing here calls ``torch.cuda.is_available()``, which (unless
``PYTORCH_NVML_BASED_CUDA_CHECK=1``) initializes the CUDA driver API and makes a
later ``fork`` unable to use CUDA: whether an accelerator is there is read from
:func:`torch.accelerator.device_count`, which asks NVML first.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch


__all__ = [
    "autocast_defaults",
    "default_device_type",
    "default_dtype",
    "for_autocast_arguments",
    "has_grad_scaler",
]


def default_device_type() -> str:
    r"""Return the type of the current accelerator, or ``"cpu"`` when none is available."""
    # A CUDA build on a machine without a GPU must pick the CPU.  Not
    # current_accelerator(check_available=True): torch.cuda.is_available() poisons fork,
    # torch.accelerator.device_count() asks NVML first (torch.amp lands before
    # torch._accelerator, whose available_accelerator() is this same test).
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is None or torch.accelerator.device_count() <= 0:
        return "cpu"
    return accelerator.type


def default_dtype(device_type: str, index: int | None = None) -> torch.dtype:
    r"""Return the best low-precision autocast dtype of ``device_type``.

    ``torch.bfloat16`` where the device supports it natively (it needs no gradient
    scaling), else ``torch.float16``.  A device module that cannot say falls back to
    the device's own autocast default, :func:`torch.get_autocast_dtype`.

    Args:
        device_type (str): the device type, e.g. ``"cuda"``.
        index (int, optional): the device to ask about; default: the current device.
            Devices of one machine may differ (a V100 next to an A100).

    .. note:: On CUDA this reads the device's compute capability, which initializes
        CUDA (no context is created), as ``torch.autocast("cuda", dtype=torch.bfloat16)``
        already does.
    """
    if device_type == "cpu":
        return torch.bfloat16
    if device_type == torch._C._get_privateuse1_backend_name():
        supported = getattr(torch, device_type).get_amp_supported_dtype()
        return torch.bfloat16 if torch.bfloat16 in supported else torch.float16
    module = torch.get_device_module(device_type)
    if device_type == "cuda":
        if torch.version.hip is not None:
            return torch.bfloat16
        # torch.cuda.is_bf16_supported() asks the current device, after torch.cuda.is_available().
        # Native bfloat16 starts with Ampere; emulated bfloat16 is slower than float16.
        if index is None:
            index = torch.accelerator.current_device_index()
        return torch.bfloat16 if module.get_device_properties(index).major >= 8 else torch.float16
    is_bf16_supported = getattr(module, "is_bf16_supported", None)
    if is_bf16_supported is None:
        return torch.get_autocast_dtype(device_type)
    kwargs = {}
    if "including_emulation" in inspect.signature(is_bf16_supported).parameters:
        # Emulated bfloat16 is slower than float16: only native support counts.
        kwargs["including_emulation"] = False
    if index is None:
        supported = is_bf16_supported(**kwargs)
    else:
        # Asked with ``index`` current; device_index (torch 2.8+) leaves it with "maybe exchange".
        device_index = getattr(torch.accelerator, "device_index", None)
        with device_index(index) if device_index is not None else contextlib.nullcontext():
            supported = is_bf16_supported(**kwargs)
    return torch.bfloat16 if supported else torch.float16


def autocast_defaults(device_type: str | None, dtype: torch.dtype | None) -> tuple[str, torch.dtype | None]:
    r"""Resolve the ``(device_type, dtype)`` of an autocast region.

    An explicit ``device_type`` is returned unchanged with ``dtype``, so that
    ``autocast("cuda")`` keeps its documented default (:func:`torch.get_autocast_dtype`).
    Only when ``device_type`` is omitted are both chosen here: the current accelerator
    (else the CPU) and, if ``dtype`` is omitted too, its best low-precision dtype.
    """
    if device_type is not None:
        return device_type, dtype
    device_type = default_device_type()
    return device_type, default_dtype(device_type) if dtype is None else dtype


def has_grad_scaler(device_type: str) -> bool:
    r"""Whether gradient scaling can run on ``device_type`` on this machine.

    The device must be available and have the scaler's kernels (``_amp_update_scale_``).
    """
    # device_count(), not is_available(): on CUDA it asks NVML and leaves fork usable.
    if device_type != "cpu" and torch.get_device_module(device_type).device_count() <= 0:
        return False
    key = "PrivateUse1" if device_type == torch._C._get_privateuse1_backend_name() else device_type.upper()
    return torch._C._dispatch_has_kernel_for_dispatch_key("aten::_amp_update_scale_", key)


def for_autocast_arguments(
    device_type: str | None, dtype: torch.dtype | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    r"""Check the arguments of ``GradScaler.for_autocast`` and return the constructor's keyword arguments.

    ``device`` (the constructor's name) is accepted as an alias of ``device_type``.  The
    scaler is enabled only for ``torch.float16`` on a device that can scale gradients, and
    never when ``enabled=False``.

    Raises:
        TypeError: ``device_type``/``device`` is not a ``str``, ``dtype`` not a
            :class:`torch.dtype`, ``enabled`` not a ``bool``, or both ``device_type`` and
            ``device`` are given.
        ValueError: ``dtype`` is not a floating-point dtype (autocast computes in
            ``torch.float16`` or ``torch.bfloat16``).
        RuntimeError: autocast is not available for the device type.
    """
    kwargs = dict(kwargs)
    if "device" in kwargs:
        device = kwargs.pop("device")
        if device_type is not None:
            raise TypeError(
                f"for_autocast(): got both device_type={device_type!r} and device={device!r}; "
                f"pass one of them (device is an alias of device_type)"
            )
        device_type = device
    if device_type is not None and not isinstance(device_type, str):
        raise TypeError(
            f"for_autocast(): expected device_type to be a str such as 'cuda' or None, "
            f"but got {device_type!r} of type {type(device_type).__name__}"
        )
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(
                f"for_autocast(): expected dtype to be a torch.dtype or None, "
                f"but got {dtype!r} of type {type(dtype).__name__}"
            )
        if not dtype.is_floating_point:
            raise ValueError(
                f"for_autocast(): dtype={dtype} is not an autocast dtype; expected a floating-point "
                f"low-precision dtype such as torch.float16 or torch.bfloat16"
            )
    enabled = kwargs.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise TypeError(
            f"for_autocast(): expected enabled to be a bool, but got {enabled!r} of type {type(enabled).__name__}"
        )
    device_type, dtype = autocast_defaults(device_type, dtype)
    if not torch.amp.is_autocast_available(device_type):
        raise RuntimeError(f"for_autocast(): autocast is not available for device_type '{device_type}'")
    if dtype is None:
        dtype = torch.get_autocast_dtype(device_type)
    kwargs["device"] = device_type
    kwargs["enabled"] = enabled and dtype == torch.float16 and has_grad_scaler(device_type)
    return kwargs
