r"""
One place to observe the failures that PyTorch utilities retry, recover from or re-raise.

Utilities such as :func:`torch.cuda.safe_run`, :func:`torch.utils.retry.retry`,
:func:`torch.utils.timeout.timeout` and :mod:`torch.utils.telemetry` call
:func:`report` for every failure they see, with a few keywords of context
(which utility, which attempt, which device, what happens next).  Users attach
callbacks to send those failures to their logger, metrics or alerting:

* :func:`register` attaches a callback for the whole process and returns a
  :class:`torch.utils.hooks.RemovableHandle`;
* :func:`error_callback` attaches one only for the duration of a ``with``
  block, in the current thread (or ``asyncio`` task) only.

A callback that raises never masks the failure being reported: its exception
is logged to ``logging.getLogger("torch.utils.error_callback")`` and dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.hooks import RemovableHandle


__all__ = ["error_callback", "register", "report"]

ErrorCallback = Callable[[BaseException, dict[str, Any]], object]

_log = logging.getLogger(__name__)

# handle id -> (callback, exception types); RemovableHandle deletes by id.
_callbacks: OrderedDict[int, tuple[ErrorCallback, tuple[type[BaseException], ...]]] = OrderedDict()
_scoped: contextvars.ContextVar[tuple[tuple[ErrorCallback, tuple[type[BaseException], ...]], ...]] = (
    contextvars.ContextVar("torch.utils.error_callback._scoped", default=())
)
_reporting = threading.local()


def _validate(callback: object, exceptions: object, caller: str) -> tuple[type[BaseException], ...]:
    if not callable(callback):
        raise TypeError(f"{caller}(): callback must be callable, but got {callback!r}")
    types = exceptions if isinstance(exceptions, tuple) else (exceptions,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(
            f"{caller}(): exceptions must be an exception class or a non-empty tuple of them, "
            f"but got {exceptions!r}"
        )
    return types


def register(
    callback: ErrorCallback,
    *,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
) -> RemovableHandle:
    r"""Call ``callback(exc, info)`` for every reported failure that is an instance of ``exceptions``.

    Args:
        callback: called as ``callback(exc, info)`` with the exception and a
            ``dict`` of context (always ``"source"``, the reporting utility,
            plus what it adds: ``"attempt"``, ``"device"``, ``"next_action"``...).
            Its return value is ignored.
        exceptions: an exception class or a tuple of them; other failures are
            not passed to this callback.  Default: every :class:`Exception`.

    Returns:
        torch.utils.hooks.RemovableHandle: ``handle.remove()`` detaches the
        callback; the handle is also a context manager that detaches on exit.

    Callbacks run in registration order, in the thread that reports the failure.

    Example::

        >>> import torch.utils.error_callback as ec
        >>> seen = []
        >>> handle = ec.register(lambda exc, info: seen.append((type(exc).__name__, info["source"])))
        >>> ec.report(RuntimeError("boom"), source="example")
        >>> seen
        [('RuntimeError', 'example')]
        >>> handle.remove()
    """
    types = _validate(callback, exceptions, "register")
    handle = RemovableHandle(_callbacks)
    _callbacks[handle.id] = (callback, types)
    return handle


@contextlib.contextmanager
def error_callback(
    callback: ErrorCallback,
    *,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
) -> Iterator[None]:
    r"""Attach ``callback`` for the duration of a ``with`` block, in this thread or task only.

    Same arguments as :func:`register`.  Failures reported by other threads
    (a DataLoader worker thread, a watchdog) are not seen; use :func:`register`
    for process-wide callbacks.  Nested blocks stack: inner and outer
    callbacks both run, outer first.

    Example::

        >>> import torch.utils.error_callback as ec
        >>> seen = []
        >>> with ec.error_callback(lambda exc, info: seen.append(info["attempt"])):
        ...     ec.report(TimeoutError(), source="example", attempt=1)
        >>> ec.report(TimeoutError(), source="example", attempt=2)  # outside: not seen
        >>> seen
        [1]
    """
    types = _validate(callback, exceptions, "error_callback")
    token = _scoped.set((*_scoped.get(), (callback, types)))
    try:
        yield
    finally:
        _scoped.reset(token)


def report(exc: BaseException, /, *, source: str, **context: Any) -> None:
    r"""Pass a failure to every matching callback; a failing callback never raises out of it.

    Args:
        exc: the exception that occurred.
        source: the utility reporting it (e.g. ``"torch.cuda.safe_run"``).
        **context: anything else the callbacks may use (``attempt``,
            ``device``, ``next_action``, ``name``...).

    A callback's own exception is logged and dropped, so reporting cannot
    replace or hide ``exc``.  Failures raised *while* callbacks run (a callback
    that itself calls a reporting utility) are not reported again.

    Example::

        >>> import torch.utils.error_callback as ec
        >>> try:
        ...     1 / 0
        ... except ZeroDivisionError as e:
        ...     ec.report(e, source="my_training_loop", step=10)
        ...     # handle or re-raise as usual
    """
    if not isinstance(exc, BaseException):
        raise TypeError(f"report(): expected an exception instance, but got {exc!r}")
    callbacks = [*_callbacks.values(), *_scoped.get()]
    if not callbacks or getattr(_reporting, "active", False):
        return
    info = {"source": source, **context}
    _reporting.active = True
    try:
        for callback, types in callbacks:
            if not isinstance(exc, types):
                continue
            try:
                callback(exc, dict(info))
            except Exception:
                _log.exception(
                    "error callback %r raised while handling %s from %s; ignored",
                    callback,
                    type(exc).__name__,
                    source,
                )
    finally:
        _reporting.active = False
