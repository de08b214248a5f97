r"""
What :mod:`torch.amp` uses when the device type or the dtype is omitted.

``torch.amp.autocast()`` and ``torch.amp.GradScaler.for_autocast()`` resolve
their defaults here, so a scaler made for an autocast region always matches it.
"""

from __future__ import annotations

import inspect

import torch


__all__ = ["autocast_defaults", "default_device_type", "default_dtype", "has_grad_scaler"]


def default_device_type() -> str:
    r"""Return the type of the current accelerator, or ``"cpu"`` when none is available."""
    # check_available: a CUDA build on a machine without a GPU must pick the CPU.
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    return "cpu" if accelerator is None else accelerator.type


def default_dtype(device_type: str) -> torch.dtype:
    r"""Return the best low-precision autocast dtype of ``device_type``.

    ``torch.bfloat16`` where the device supports it natively (it needs no gradient
    scaling), else ``torch.float16``.  A device module that cannot say falls back to
    the device's own autocast default, :func:`torch.get_autocast_dtype`.

    .. note:: On CUDA this queries the current device's capability, which initializes
        CUDA, as ``torch.autocast("cuda", dtype=torch.bfloat16)`` already does.
    """
    if device_type == "cpu":
        return torch.bfloat16
    if device_type == torch._C._get_privateuse1_backend_name():
        supported = getattr(torch, device_type).get_amp_supported_dtype()
        return torch.bfloat16 if torch.bfloat16 in supported else torch.float16
    is_bf16_supported = getattr(torch.get_device_module(device_type), "is_bf16_supported", None)
    if is_bf16_supported is None:
        return torch.get_autocast_dtype(device_type)
    if "including_emulation" in inspect.signature(is_bf16_supported).parameters:
        # Emulated bfloat16 (pre-Ampere CUDA) is slower than float16: only native support counts.
        supported = is_bf16_supported(including_emulation=False)
    else:
        supported = is_bf16_supported()
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
    if device_type != "cpu" and not torch.get_device_module(device_type).is_available():
        return False
    key = "PrivateUse1" if device_type == torch._C._get_privateuse1_backend_name() else device_type.upper()
    return torch._C._dispatch_has_kernel_for_dispatch_key("aten::_amp_update_scale_", key)
