r"""
Tell an out-of-memory error from any other error, and the device that ran out.

Used by :func:`torch.cuda.safe_run`.  Types are checked first
(:class:`torch.OutOfMemoryError`; :class:`torch.AcceleratorError` where this
release has it and its message says out of memory); then a :class:`RuntimeError`
whose message carries one of the anchored allocation-failure strings below.  A
configuration error that merely shares a prefix with one of them (cuDNN's
``CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH``, ``..._SHAPE``) is not an
out-of-memory error.
"""

from __future__ import annotations

import re
from typing import cast

import torch


__all__: list[str] = []

# (device type, anchored pattern): an allocation that failed, and the kind of device it failed on.
# Status names end at a character that cannot continue them, so a longer status with the same prefix
# does not match; cuDNN's bare NOT_SUPPORTED is how it reports a workspace it could not allocate, and
# is anchored by the "." PyTorch writes after it (as accelerate's find_executable_batch_size does).
_OOM_PATTERNS: tuple[tuple[str, str], ...] = (
    ("cuda", r"\bCUDA out of memory\b"),  # the caching allocator
    ("cuda", r"\bCUDA error: out of memory\b"),
    ("cuda", r"\bCUDA driver error: out of memory\b"),
    ("cuda", r"\bTriton Error \[CUDA\]: out of memory\b"),
    ("cuda", r"\bHIP out of memory\b"),  # ROCm builds use the "cuda" device type
    ("cuda", r"\bHIP error: out of memory\b"),
    ("cuda", r"\bCUBLAS_STATUS_ALLOC_FAILED(?!\w)"),
    ("cuda", r"\bCUDNN_STATUS_ALLOC_FAILED(?!\w)"),
    ("cuda", r"\bCUDNN_STATUS_INTERNAL_ERROR_(?:DEVICE|HOST)_ALLOCATION_FAILED(?!\w)"),
    ("cuda", r"\bCUDNN_STATUS_NOT_SUPPORTED\."),
    ("cuda", r"\bCUFFT_ALLOC_FAILED(?!\w)"),
    ("cuda", r"\bCUSOLVER_STATUS_ALLOC_FAILED(?!\w)"),
    ("cuda", r"\bCUSPARSE_STATUS_ALLOC_FAILED(?!\w)"),
    ("mps", r"\bMPS backend out of memory\b"),
    ("xpu", r"\bXPU out of memory\b"),
    ("hpu", r"\bPT_DEVMEM Allocation failed\b"),
    ("cpu", r"\bDefaultCPUAllocator: can't allocate memory\b"),
)
_OOM_MESSAGE = re.compile("|".join(f"(?P<g{i}>{pattern})" for i, (_, pattern) in enumerate(_OOM_PATTERNS)))
# The caching allocator names the device's index: "GPU 0 has a total capacity of ...".
_GPU_INDEX = re.compile(r"\bGPU (\d+) has a total capacity\b")


def _match(exc: BaseException) -> re.Match[str] | None:
    return _OOM_MESSAGE.search(str(exc)) if isinstance(exc, RuntimeError) else None


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` reports an allocation that failed."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    # torch.AcceleratorError is newer than some supported releases.
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error) and "out of memory" in str(exc):
        return True
    return _match(exc) is not None


def oom_device(exc: BaseException) -> torch.device | None:
    """The device that ``exc``'s message says ran out of memory, with its index when the message names it."""
    match = _match(exc)
    if match is None:
        return None
    # Every alternative of the pattern is a named group ("g0", "g1", ...): a match has a lastgroup.
    device_type = _OOM_PATTERNS[int(cast(str, match.lastgroup)[1:])][0]
    index = _GPU_INDEX.search(str(exc)) if device_type == "cuda" else None
    return torch.device(device_type, int(index.group(1))) if index else torch.device(device_type)
