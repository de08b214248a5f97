r"""
Free CUDA memory and check that enough of it is free before running something big.

:func:`torch.cuda.clear_cache` gives back everything PyTorch can give back
(Python garbage, the caching allocator's unused blocks, CUDA IPC handles) and
says how much it released.  :func:`torch.cuda.assert_free_memory` and its
decorator / context-manager form :class:`torch.cuda.min_free_vram` fail fast,
with a message a person can act on, when a device has less free memory than a
step needs, instead of failing half-way through it.

Memory sizes are parsed by :func:`torch.utils._memory_size.parse_memory_size`:
an ``int`` number of bytes, a string such as ``"4GiB"``, ``"512 MB"`` or
``"1.5G"`` (``K``/``M``/``G`` are binary), or a ``float`` in ``(0, 1]`` for a
fraction of the device's total memory.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any, cast, TypeVar

import torch


__all__ = ["assert_free_memory", "clear_cache", "min_free_vram"]

F = TypeVar("F", bound=Callable[..., Any])
MemorySize = int | float | str


def clear_cache() -> int:
    r"""Release all the CUDA memory PyTorch holds but does not use, and return how much that was.

    In order: :func:`gc.collect` (tensors kept alive only by dead reference
    cycles or by the frames of a caught exception's traceback become free),
    :func:`torch.cuda.synchronize` on every device whose allocator holds memory
    (kernels still using freed blocks finish),
    :func:`torch.cuda.empty_cache` (unused cached blocks go back to the driver)
    and :func:`torch.cuda.ipc_collect` (memory shared with exited processes).

    Returns:
        int: the bytes released, summed over devices: memory reserved by the
        caching allocator before minus after (``0`` if another thread
        allocated more in the meantime).

    .. note:: When CUDA has not been initialized in this process, only the
        garbage collection runs and ``0`` is returned: no CUDA context is created
        to find out that there is nothing to free.  Tensors that are still
        referenced are never freed; what this releases is memory that nothing
        uses any more.

    Example::

        >>> torch.cuda.clear_cache()  # on a machine where CUDA was never used
        0
        >>> # xdoctest: +SKIP("requires CUDA")
        >>> x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
        >>> del x
        >>> torch.cuda.clear_cache()
        1073741824
    """
    gc.collect()
    if not torch.cuda.is_initialized():
        return 0
    devices = range(torch.cuda.device_count())
    before = [torch.cuda.memory_reserved(d) for d in devices]
    for d, reserved in enumerate(before):
        # A device without reserved memory may have no context; synchronizing it would create one.
        if reserved:
            torch.cuda.synchronize(d)
    torch.cuda.empty_cache()
    torch.cuda.ipc_collect()
    after = sum(torch.cuda.memory_reserved(d) for d in devices)
    return max(sum(before) - after, 0)


# torch.cuda is imported before torch.utils while `import torch` runs: import torch.utils lazily.
def _validate_required(required: MemorySize, caller: str) -> None:
    from torch.utils._memory_size import parse_memory_size

    # Fractions can only be resolved once the device's total is known; validate their range now.
    parse_memory_size(required, total=1, name=f"{caller}(): required")


def _validate_device(device: object, caller: str) -> torch.device | None:
    """``device`` as a CUDA ``torch.device`` (index ``None`` for the current one); no CUDA query is made."""
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (int, str, torch.device)):
        raise TypeError(
            f"{caller}(): device must be None, an int index, a device string such as 'cuda:0' "
            f"or a torch.device, but got {device!r} of type {type(device).__name__}"
        )
    if isinstance(device, int):
        if device < 0:
            raise ValueError(f"{caller}(): device index must be >= 0, but got {device}")
        index: int | None = device
        parsed = torch.device("cuda", device) if device <= torch.iinfo(torch.int8).max else None
    elif isinstance(device, str):
        try:
            parsed = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"{caller}(): {device!r} is not a device; expected e.g. 'cuda' or 'cuda:0'") from e
        _, _, suffix = device.partition(":")
        index = int(suffix) if suffix.isdigit() else parsed.index
    else:
        parsed, index = device, device.index
    if parsed is not None and parsed.type != "cuda":
        raise ValueError(
            f"{caller}(): device {str(device)!r} is not a CUDA device; expected None, an index, 'cuda', 'cuda:N' "
            f"or a torch.device of type 'cuda'"
        )
    if parsed is None or parsed.index != index:  # torch.device keeps an index in 8 bits: 300 would be 44
        raise ValueError(f"{caller}(): device index {index} is out of range for a torch.device")
    return parsed


def _cuda_device(device: torch.device | None, caller: str) -> torch.device:
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"{caller}(): CUDA is not available on this machine (torch.cuda.is_available() is False), "
            f"so free GPU memory cannot be checked"
        )
    index = torch.cuda.current_device() if device is None or device.index is None else device.index
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise ValueError(
            f"{caller}(): device index {index} is out of range; this machine has {count} CUDA "
            f"device{'s' if count != 1 else ''} (valid indices 0..{count - 1})"
        )
    return torch.device("cuda", index)


def _rank_suffix() -> str:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return f" on rank {dist.get_rank()}"
    return ""


def _releasable(device: torch.device) -> tuple[int, int]:
    """``(releasable, unusable)``: cached bytes a new allocation can get, and reserved bytes it cannot.

    Blocks in use (active) cannot serve it, nor the free remainders of split blocks
    (inactive split: only a tensor that fits inside one can use them, and the whole
    block returns to the driver only once it is entirely free).
    """
    stats = torch.cuda.memory_stats(device)
    reserved = stats.get("reserved_bytes.all.current", 0)
    unusable = stats.get("active_bytes.all.current", 0) + stats.get("inactive_split_bytes.all.current", 0)
    return max(reserved - unusable, 0), min(unusable, reserved)


def _memory_fraction(device: torch.device) -> float:
    # torch.cuda.get_per_process_memory_fraction is newer than some supported releases.
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    return get_fraction(device) if get_fraction is not None else 1.0


def _check_free_memory(required: MemorySize, device: int | str | torch.device | None, caller: str) -> None:
    from torch.utils._memory_size import format_memory_size, parse_memory_size

    _validate_required(required, caller)
    cuda_device = _cuda_device(_validate_device(device, caller), caller)
    driver_free, total = torch.cuda.mem_get_info(cuda_device)
    releasable, unusable = _releasable(cuda_device)
    free = driver_free + releasable
    detail = (
        f"{format_memory_size(driver_free)} free on the device + {format_memory_size(releasable)} cached "
        f"by PyTorch's allocator and reusable"
    )
    fraction = _memory_fraction(cuda_device)
    if fraction < 1.0:
        allowed = max(int(total * fraction) - unusable, 0)
        if allowed < free:
            free = allowed
            detail += f", capped by set_per_process_memory_fraction({fraction:g})"
    needed = parse_memory_size(required, total=total, name=f"{caller}(): required")
    if free < needed:
        raise torch.OutOfMemoryError(
            f"{caller}(): {cuda_device}{_rank_suffix()} has {format_memory_size(free)} free ({detail}) of "
            f"{format_memory_size(total)} total, but {format_memory_size(needed)} is required (required={required!r})"
        )


def assert_free_memory(required: MemorySize, device: int | str | torch.device | None = None) -> None:
    r"""Raise :class:`torch.OutOfMemoryError` unless ``device`` has at least ``required`` bytes free.

    Free memory is what the driver reports free (:func:`torch.cuda.mem_get_info`)
    plus what PyTorch's caching allocator holds that a new allocation can get:
    reserved minus active minus inactive split bytes
    (:func:`torch.cuda.memory_stats`' ``"reserved_bytes.all.current"``,
    ``"active_bytes.all.current"``, ``"inactive_split_bytes.all.current"``; the
    free remainders of split blocks only serve tensors that fit inside them).
    When :func:`torch.cuda.set_per_process_memory_fraction` limits the process to
    less than the whole device, free memory is capped at that share of the total
    minus what the allocator cannot reuse.

    Args:
        required (int, str or float): an ``int`` number of bytes, a size string
            (``"4GiB"``, ``"512 MB"``, ``"1.5G"``; ``K``/``M``/``G`` are binary)
            or a ``float`` in ``(0, 1]``, a fraction of the device's total memory.
        device (torch.device, str or int, optional): the CUDA device to check.
            Default: the current CUDA device.

    Raises:
        torch.OutOfMemoryError: less than ``required`` is free; the message names
            the device (and the rank under :mod:`torch.distributed`), the free
            memory, the total and the requirement, in human units.
        TypeError: ``required`` or ``device`` has an unsupported type.
        ValueError: ``required`` is negative, NaN, a fraction outside ``(0, 1]``
            or has an unknown unit; ``device`` is not a CUDA device (``"cpu"``,
            ``"meta"``...: checked before whether CUDA is available), or its
            index is negative or out of range.
        RuntimeError: CUDA is not available (``device`` being a valid CUDA device).

    .. note:: :func:`torch.cuda.mem_get_info` needs a CUDA context, so the first
        check on a device initializes CUDA on it.  Under :mod:`torch.distributed`
        the check is local: only the rank that lacks memory raises, and the other
        ranks see that rank's failure only as a collective that never completes
        (until the process group's timeout), so check before the first collective
        of a step.

    Example::

        >>> try:
        ...     torch.cuda.assert_free_memory("4GiB")
        ... except RuntimeError as e:  # CPU-only machine; OutOfMemoryError is a RuntimeError too
        ...     print(type(e).__name__)
        RuntimeError
        >>> # xdoctest: +SKIP("requires CUDA")
        >>> torch.cuda.assert_free_memory(0.5, device="cuda:0")
        torch.OutOfMemoryError: assert_free_memory(): cuda:0 has 10.31 GiB free (10.06 GiB free on
        the device + 256.00 MiB cached by PyTorch's allocator and reusable) of 79.19 GiB total, but
        39.59 GiB is required (required=0.5)
    """
    _check_free_memory(required, device, "assert_free_memory")


class min_free_vram:
    r"""Context manager and decorator that run :func:`assert_free_memory` on entry, before each call.

    Args:
        required (int, str or float): as for :func:`assert_free_memory`.
        device (torch.device, str or int, optional): as for :func:`assert_free_memory`.

    ``required`` and ``device`` are validated when the object is created, without
    initializing CUDA (their types, a malformed size, a device that is not a CUDA
    device, a negative index), so a misspelled size fails at decoration time;
    whether the device index exists on this machine, and the memory itself, are
    checked each time the block is entered or the decorated function is called.

    Raises:
        TypeError: ``required`` or ``device`` has an unsupported type; decorating
            a class (decorate its methods instead) or something not callable.
        ValueError: as for :func:`assert_free_memory`, except that an index beyond
            the machine's device count is only found when the check runs.

    The check holds no state, so every kind of function can be decorated: a
    coroutine function (the wrapper is one too, and checks before awaiting ``fn``),
    a generator or async generator function (the wrapper is one too, and checks
    when the iteration starts, at the first ``next``/``anext``, then delegates to
    ``fn``'s generator). ``async with min_free_vram(...):`` works as ``with``.

    .. note:: Decorated functions keep their name, docstring and picklability.
        Under :func:`torch.compile` the check runs eagerly, outside the graph
        (``torch.cuda`` is on Dynamo's skip list), and the decorated function
        itself is compiled; ``fullgraph=True`` over the decorated function, or a
        function calling it, fails with a message saying to apply ``min_free_vram``
        outside the compiled region.

    Example::

        >>> # xdoctest: +SKIP("requires CUDA")
        >>> @torch.cuda.min_free_vram("8GiB")
        ... def train_step(model, batch):
        ...     return model(batch).sum().backward()
        >>> with torch.cuda.min_free_vram(0.25, device="cuda:1"):
        ...     evaluate(model)
    """

    def __init__(self, required: MemorySize, device: int | str | torch.device | None = None) -> None:
        _validate_required(required, "min_free_vram")
        _validate_device(device, "min_free_vram")
        self.required = required
        self.device = device

    def __enter__(self) -> None:
        _check_free_memory(self.required, self.device, "min_free_vram")

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        pass

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        pass

    def __call__(self, fn: F) -> F:
        import inspect

        from torch.utils._eager import stay_eager

        if isinstance(fn, type):
            raise TypeError(
                f"min_free_vram(): can only decorate a function, but got a class ({fn.__name__}); "
                f"decorate its methods instead"
            )
        if not callable(fn):
            raise TypeError(f"min_free_vram(): expected a callable to decorate, but got {fn!r}")
        required, device = self.required, self.device

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def min_free_vram_wrapper(*args: Any, **kwargs: Any) -> Any:
                _check_free_memory(required, device, "min_free_vram")
                return await fn(*args, **kwargs)

        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def min_free_vram_wrapper(*args: Any, **kwargs: Any) -> Any:
                _check_free_memory(required, device, "min_free_vram")
                return (yield from fn(*args, **kwargs))

        elif inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def min_free_vram_wrapper(*args: Any, **kwargs: Any) -> Any:
                _check_free_memory(required, device, "min_free_vram")
                agen = fn(*args, **kwargs)
                try:
                    item = await agen.__anext__()
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as e:
                            item = await agen.athrow(e)
                        else:
                            item = await agen.asend(sent)
                except StopAsyncIteration:
                    return
                finally:
                    await agen.aclose()

        else:

            @functools.wraps(fn)
            def min_free_vram_wrapper(*args: Any, **kwargs: Any) -> Any:
                _check_free_memory(required, device, "min_free_vram")
                return fn(*args, **kwargs)

        # functools.wraps made the wrapper of the same kind and signature as fn.
        return cast(F, stay_eager(min_free_vram_wrapper, "torch.cuda.min_free_vram"))

    def __repr__(self) -> str:
        return f"torch.cuda.min_free_vram({self.required!r}, device={self.device!r})"


for _public in (assert_free_memory, clear_cache, min_free_vram):
    _public.__module__ = "torch.cuda"
del _public
