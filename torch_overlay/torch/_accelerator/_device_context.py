"""``DeviceContext``: run a block or a function on one device, with optional autocast."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING
from typing_extensions import Self

import torch
from torch.amp._defaults import default_dtype
from torch.utils._contextlib import _DecoratorContextManager
from torch.utils._device import DeviceContext as _DefaultDeviceMode

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType


__all__ = ["DeviceContext"]

# Per thread: the active DeviceContexts, innermost last, each with the settings it entered.
_active = threading.local()


def _stack() -> list[tuple[DeviceContext, contextlib.AbstractContextManager[None]]]:
    try:
        return _active.stack
    except AttributeError:
        _active.stack = []
        return _active.stack


@contextlib.contextmanager
def _device_settings(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Make ``device`` the current device and the factories' default, with autocast to ``dtype``.

    Written with ``with`` blocks and no object state so that dynamo traces it:
    the current device index is only set when it differs, and both reads of it
    are constant-folded while compiling.
    """
    previous = None
    if device.type not in ("cpu", "meta"):
        previous = torch.accelerator.current_device_index()
        if previous != device.index:
            torch.accelerator.set_device_index(device.index)
    try:
        with _DefaultDeviceMode(device):
            if dtype is None:
                yield
            else:
                with torch.amp.autocast(device.type, dtype=dtype):
                    yield
    finally:
        if previous is not None and torch.accelerator.current_device_index() != previous:
            torch.accelerator.set_device_index(previous)


def _resolve_device(device: torch.device | str | int | None) -> torch.device:
    if device is None:
        return torch._accelerator.get_best_device()
    if isinstance(device, bool) or not isinstance(device, (int, str, torch.device)):
        raise TypeError(
            f"DeviceContext(): expected a device (int index, device string or torch.device) or None, "
            f"but got {device!r} of type {type(device).__name__}"
        )
    acc = torch.accelerator.current_accelerator(check_available=True)
    if isinstance(device, int):
        if acc is None:
            raise RuntimeError(f"DeviceContext(): cannot use device index {device}: no accelerator is available")
        return _checked_index(acc, device)
    if isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"DeviceContext(): {device!r} is not a device") from e
    if device.type in ("cpu", "meta"):
        return device
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

    Args:
        device (:class:`torch.device`, str, int, optional): ``"cpu"``, ``"meta"``,
            ``"cuda:1"``, an index of the current accelerator, or ``None`` (the
            default) for :func:`torch._accelerator.get_best_device`, chosen once,
            when the object is created.  A device without an index means the
            current device.
        amp (bool or :class:`torch.dtype`): ``True`` runs the block under autocast
            with the device's best low-precision dtype (``bfloat16`` on CPU and on
            accelerators that support it natively, else ``float16``); a dtype uses
            that dtype; ``False`` (the default) leaves autocast alone.
        tensorize (bool): ask ``auto_tensorize`` functions called inside to
            convert their array arguments onto ``device`` (read from
            :meth:`DeviceContext.current`).

    Attributes:
        device (torch.device): the device, with its index for accelerator devices.
        dtype (torch.dtype or None): the autocast dtype, ``None`` without ``amp``.
            With ``amp=True`` on an accelerator it is decided on first entry.
        tensorize (bool): as passed.

    Raises:
        TypeError: ``device``, ``amp`` or ``tensorize`` has the wrong type.
        ValueError: the device is malformed, out of range, not of the available
            accelerator, or autocast is asked for a device type that has none (``meta``).
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

    def __enter__(self) -> Self:
        if self._amp is True and self._dtype is None:
            self._dtype = default_dtype(self.device.type)
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
                "DeviceContext exited out of order: it is not the innermost active context of this thread"
            )
        _, settings = stack.pop()
        settings.__exit__(exc_type, exc_value, traceback)

    def __repr__(self) -> str:
        return f"DeviceContext(device={str(self.device)!r}, amp={self._amp!r}, tensorize={self.tensorize!r})"
