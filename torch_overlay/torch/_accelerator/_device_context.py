"""``DeviceContext``: run a block or a function on one device, with optional autocast."""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from typing import Any, cast, TYPE_CHECKING, TypeVar
from typing_extensions import Self

import torch
from torch._accelerator._device_probe import available_accelerator
from torch.amp._defaults import default_dtype
from torch.utils._contextlib import _DecoratorContextManager
from torch.utils._device import DeviceContext as _DefaultDeviceMode
from torch.utils._stepwise import wrap

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

_F = TypeVar("_F", bound="Callable[..., Any]")


__all__ = ["DeviceContext"]

# Per thread: the active DeviceContexts, innermost last, each with the settings it entered.
_active = threading.local()


def _stack() -> list[tuple[DeviceContext, contextlib.AbstractContextManager[None]]]:
    try:
        return _active.stack
    except AttributeError:
        _active.stack = []
        return _active.stack


class _SetDeviceIndex:
    """``torch.accelerator.device_index`` for releases without it: set the index, restore it exactly."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.previous = -1

    def __enter__(self) -> None:
        self.previous = torch.accelerator.current_device_index()
        if self.previous != self.index:
            torch.accelerator.set_device_index(self.index)

    def __exit__(self, *exc_info: object) -> None:
        if torch.accelerator.current_device_index() != self.previous:
            torch.accelerator.set_device_index(self.previous)


def _device_index(index: int) -> contextlib.AbstractContextManager[None]:
    # torch.accelerator.device_index leaves with "maybe exchange", as PyTorch's device guards
    # do: the runtime is only switched back to a device that already has a context, else the
    # index is merely recorded.  A plain set_device_index(previous) calls cudaSetDevice, which
    # on CUDA 12+ creates a primary context (hundreds of MiB) on the previous device: GPU 0 in
    # every process of a one-GPU-per-process job.  Dynamo traces device_index too.
    device_index = getattr(torch.accelerator, "device_index", None)
    return _SetDeviceIndex(index) if device_index is None else device_index(index)


@contextlib.contextmanager
def _device_settings(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Make ``device`` the current device and the factories' default, with autocast to ``dtype``.

    Written with ``with`` blocks and no object state so that dynamo traces it.
    """
    index = contextlib.nullcontext() if device.type in ("cpu", "meta") else _device_index(device.index)
    with index, _DefaultDeviceMode(device):
        if dtype is None:
            yield
        else:
            with torch.amp.autocast(device.type, dtype=dtype):
                yield


_DATA_DIR = os.path.join("torch", "utils", "data", "")


def _amp_supported_dtypes(device_type: str) -> tuple[torch.dtype, ...]:
    """The dtypes :class:`torch.amp.autocast` accepts on ``device_type``; it disables itself for others."""
    if device_type in ("cpu", "cuda"):
        return (torch.bfloat16, torch.float16)
    get_supported = getattr(torch.get_device_module(device_type), "get_amp_supported_dtype", None)
    if get_supported is None:
        return (torch.bfloat16, torch.float16)
    return tuple(get_supported())


def _raised_by_data_loading(exc: BaseException) -> bool:
    """Whether ``exc`` came from ``torch.utils.data``; defuse a half-built multiprocessing iterator.

    An iterator whose ``__init__`` failed before its workers started would, when
    collected, print "Exception ignored in ... __del__ ... no attribute '_shutdown'"
    after our error: mark it shut down (nothing was started) so that it leaves quietly.
    """
    found = False
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if _DATA_DIR in frame.f_code.co_filename:
            found = True
            it = frame.f_locals.get("self")
            if isinstance(it, torch.utils.data.dataloader._MultiProcessingDataLoaderIter) and not hasattr(
                it, "_shutdown"
            ):
                it._shutdown = True
        tb = tb.tb_next
    return found


def _resolve_device(device: torch.device | str | int | None) -> torch.device:
    if device is None:
        return torch._accelerator.get_best_device()
    if isinstance(device, bool) or not isinstance(device, (int, str, torch.device)):
        raise TypeError(
            f"DeviceContext(): expected a device (int index, device string or torch.device) or None, "
            f"but got {device!r} of type {type(device).__name__}"
        )
    if isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"DeviceContext(): {device!r} is not a device") from e
    if isinstance(device, torch.device) and device.type in ("cpu", "meta"):
        return device
    acc = available_accelerator()
    if isinstance(device, int):
        if acc is None:
            raise RuntimeError(f"DeviceContext(): cannot use device index {device}: no accelerator is available")
        return _checked_index(acc, device)
    if acc is None or device.type != acc.type:
        raise ValueError(
            f"DeviceContext(): {str(device)!r} is neither 'cpu', 'meta' nor a device of the available "
            f"accelerator ({acc.type if acc is not None else 'none'})"
        )
    if device.index is None:
        return torch._accelerator.current_device()
    return _checked_index(acc, device.index)


def _checked_index(acc: torch.device, index: int) -> torch.device:
    count = torch.accelerator.device_count()
    if not 0 <= index < count:
        raise ValueError(
            f"DeviceContext(): device index {index} is out of range; this machine has {count} "
            f"{acc.type} device{'s' if count != 1 else ''} (valid indices 0..{count - 1})"
        )
    return torch.device(acc.type, index)


class DeviceContext(_DecoratorContextManager):
    r"""Run a block or a function on ``device``: current device, default device of factories and optional autocast.

    Inside the context:

    * the accelerator's current device index is ``device``'s (for accelerator devices);
    * factory functions (``torch.zeros``, ``torch.tensor``, ...) called without a
      ``device`` create their tensors on ``device`` (as ``with torch.device(device)``);
    * with ``amp``, :class:`torch.amp.autocast` runs for ``device``'s type;
    * :meth:`DeviceContext.current` returns this object, so code further down
      (``auto_tensorize`` functions) can read its ``device``, ``dtype`` and
      ``tensorize``.

    Everything is restored exactly on exit, also when the block raises.  The
    settings are thread-local: another thread never sees them.  Contexts nest
    (the innermost wins) and one object may be entered again, also from several
    threads at once.  As a decorator, every call of the function runs in the context.

    Leaving restores the previous device index the way PyTorch's device guards do
    (``torch.accelerator.device_index``): the runtime is switched back only to a
    device that already has a context, so leaving ``DeviceContext("cuda:1")`` never
    creates a CUDA context on ``cuda:0``.

    Decorating a generator function, a coroutine function (``async def``) or an
    async generator function gives a function of the same kind whose body runs in
    the context each time it is resumed, and not while it is suspended: the
    caller, the consumer of the generator and the other tasks of the event loop
    between two steps see their own settings.  Inside a coroutine, use
    ``with DeviceContext(...)`` only around code without ``await`` (the settings
    are thread-local, so other tasks would see them across an ``await``);
    decorate the coroutine, or split it, instead.

    .. warning:: A :class:`~torch.utils.data.DataLoader` iterated inside a
        ``DeviceContext`` on a device other than the CPU fails: its sampler and
        random generator create their tensors on the default device
        (`pytorch/pytorch#118084 <https://github.com/pytorch/pytorch/issues/118084>`_).
        The error then says so; build and iterate data loaders outside the
        context and move each batch with ``.to(device)`` inside it.

    Args:
        device (:class:`torch.device`, str, int, optional): ``"cpu"``, ``"meta"``,
            ``"cuda:1"``, an index of the current accelerator, or ``None`` (the
            default) for :func:`torch._accelerator.get_best_device`, chosen once,
            when the object is created.  A device without an index means the
            current device.
        amp (bool or :class:`torch.dtype`): ``True`` runs the block under autocast
            with the device's best low-precision dtype (``bfloat16`` on CPU and on
            accelerators that support it natively, else ``float16``); a dtype uses
            that dtype, which must be one autocast supports on the device type
            (``bfloat16`` or ``float16`` on CPU and CUDA); ``False`` (the default)
            leaves autocast alone.
        tensorize (bool): ask ``auto_tensorize`` functions called inside to
            convert their array arguments onto ``device`` (read from
            :meth:`DeviceContext.current`).

    Attributes:
        device (torch.device): the device, with its index for accelerator devices.
        dtype (torch.dtype or None): the autocast dtype, ``None`` without ``amp``.
            With ``amp=True`` on an accelerator it is decided on first entry.
        tensorize (bool): as passed.

    Raises:
        TypeError: ``device``, ``amp`` or ``tensorize`` has the wrong type; used as a
            decorator on something other than a function (a class: decorate its methods).
        ValueError: the device is malformed, out of range, not of the available
            accelerator, autocast is asked for a device type that has none (``meta``),
            or ``amp`` is a dtype autocast does not support there (``float32``).
        RuntimeError: an accelerator index is given and no accelerator is available.

    .. note:: :func:`torch.compile` traces ``DeviceContext``, also with
        ``fullgraph=True``: used inside a compiled function (created there or
        outside it) or decorating one, its default device and autocast are part
        of the graph.  Create ``DeviceContext()`` without a device outside the
        compiled function: choosing the best device queries the driver.  A graph
        break inside the block runs the whole block eagerly.

    Example::

        >>> with torch._accelerator.DeviceContext("cpu", amp=True) as ctx:
        ...     x = torch.ones(2, 2)
        ...     y = x @ x
        >>> x.device, y.dtype, ctx.dtype
        (device(type='cpu'), torch.bfloat16, torch.bfloat16)
        >>> @torch._accelerator.DeviceContext("meta")
        ... def shape_of_batch():
        ...     return torch.empty(64, 3, 224, 224)
        >>> shape_of_batch().device
        device(type='meta')
        >>> torch._accelerator.DeviceContext.current() is None
        True
        >>> @torch._accelerator.DeviceContext("meta")
        ... async def step():
        ...     return torch.empty(2).device
        >>> asyncio.run(step())
        device(type='meta')
    """

    def __init__(
        self,
        device: torch.device | str | int | None = None,
        *,
        amp: bool | torch.dtype = False,
        tensorize: bool = False,
    ) -> None:
        if not isinstance(amp, (bool, torch.dtype)):
            raise TypeError(f"DeviceContext(): amp must be a bool or a torch.dtype, but got {amp!r}")
        if isinstance(amp, torch.dtype) and not amp.is_floating_point:
            raise ValueError(f"DeviceContext(): amp={amp} is not a floating-point dtype")
        if not isinstance(tensorize, bool):
            raise TypeError(f"DeviceContext(): tensorize must be a bool, but got {tensorize!r}")
        self.device = _resolve_device(device)
        if amp is not False and not torch.amp.is_autocast_available(self.device.type):
            raise ValueError(f"DeviceContext(): autocast is not available for device type {self.device.type!r}")
        if isinstance(amp, torch.dtype):
            supported = _amp_supported_dtypes(self.device.type)
            if amp not in supported:
                raise ValueError(
                    f"DeviceContext(): amp={amp} is not supported by autocast on {self.device.type!r} "
                    f"(which would disable itself); expected True or one of {', '.join(map(str, supported))}"
                )
        self._amp = amp
        self._dtype: torch.dtype | None = amp if isinstance(amp, torch.dtype) else None
        if amp is True and self.device.type == "cpu":
            self._dtype = default_dtype(self.device.type)
        self.tensorize = tensorize

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` without ``amp``."""
        return self._dtype

    @classmethod
    def current(cls) -> DeviceContext | None:
        r"""Return the innermost active ``DeviceContext`` of the calling thread, or ``None``.

        Example::

            >>> with torch._accelerator.DeviceContext("cpu", tensorize=True):
            ...     ctx = torch._accelerator.DeviceContext.current()
            ...     ctx.device, ctx.tensorize
            (device(type='cpu'), True)
        """
        stack = _stack()
        return stack[-1][0] if stack else None

    def clone(self) -> DeviceContext:
        # Entries keep their state on the thread's stack, not on the object, so
        # the decorator can reuse this very object for every call.
        return self

    def __call__(self, func: _F) -> _F:
        if inspect.isclass(func):
            raise TypeError(
                f"{self!r}: can only decorate a function, but got a class ({func.__name__}); "
                f"decorate its methods instead"
            )
        if not callable(func):
            raise TypeError(f"{self!r}: can only decorate a function, but got {func!r}")
        # Coroutines and async generators: the context is entered around each step of
        # the body (like torch.utils._contextlib does for generators), never held across
        # an await or a yield, so it follows the task that runs the body and no other.
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            return cast(_F, wrap(func, lambda: self))
        return super().__call__(func)

    # torch.utils._contextlib._DecoratorContextManager annotates __enter__ as returning None, which
    # its subclasses may widen: `with DeviceContext(...) as ctx` gives the context.
    def __enter__(self) -> Self:  # type: ignore[override]
        if self._amp is True and self._dtype is None:
            # Asked of the target device, before switching to it.
            self._dtype = default_dtype(self.device.type, self.device.index)
        settings = _device_settings(self.device, self._dtype)
        settings.__enter__()
        _stack().append((self, settings))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack = _stack()
        if not stack or stack[-1][0] is not self:
            raise RuntimeError(
                "DeviceContext exited out of order: it is not the innermost active context of this thread; "
                "a `with DeviceContext(...)` block in a coroutine or a generator must not span an `await` or "
                "a `yield` (decorate the coroutine or generator function instead)"
            )
        _, settings = stack.pop()
        settings.__exit__(exc_type, exc_value, traceback)
        if (
            isinstance(exc_value, Exception)
            and self.device.type != "cpu"
            and not torch.compiler.is_compiling()
            and _raised_by_data_loading(exc_value)
        ):
            raise RuntimeError(
                f"{self!r}: iterating a torch.utils.data.DataLoader inside a DeviceContext on "
                f"{str(self.device)!r} failed: the loader's sampler and random generator create their "
                f"tensors on the default device, which the context sets to {str(self.device)!r} "
                f"(pytorch/pytorch#118084). Build and iterate data loaders outside the DeviceContext "
                f"and move each batch with .to(device) inside it."
            ) from exc_value

    def __repr__(self) -> str:
        return f"DeviceContext(device={str(self.device)!r}, amp={self._amp!r}, tensorize={self.tensorize!r})"
