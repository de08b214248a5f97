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

import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from torch.utils._stepwise import context_decorator
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

_F = TypeVar("_F", bound=Callable[..., Any])


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


class error_callback:
    r"""Attach ``callback`` for the duration of a ``with`` block (or decorated call), in this thread or task only.

    Same arguments as :func:`register`, checked when ``error_callback(...)`` is
    called.  Failures reported by other threads (a DataLoader worker thread, a
    watchdog) or other ``asyncio`` tasks are not seen; use :func:`register` for
    process-wide callbacks.  Nested blocks stack: inner and outer callbacks both
    run, outer first.  An instance can be entered again, also while it is active.

    As a decorator, the callback is attached while the decorated function runs.
    On an ``async def`` function, a generator function or an async generator
    function, the wrapper is of the same kind and the callback is attached
    while the body's own code runs (each step up to its next ``await`` or
    ``yield``), not while it is suspended: the caller, the consumer of a
    generator and other tasks do not see it.

    Raises:
        TypeError: ``callback`` is not callable or ``exceptions`` is not an
            exception class or a tuple of them; decorating a class.

    Example::

        >>> import torch.utils.error_callback as ec
        >>> seen = []
        >>> with ec.error_callback(lambda exc, info: seen.append(info["attempt"])):
        ...     ec.report(TimeoutError(), source="example", attempt=1)
        >>> ec.report(TimeoutError(), source="example", attempt=2)  # outside: not seen
        >>> seen
        [1]
        >>> @ec.error_callback(lambda exc, info: seen.append(info["attempt"]))
        ... async def step():
        ...     ec.report(TimeoutError(), source="example", attempt=3)
        >>> import asyncio
        >>> asyncio.run(step())
        >>> seen
        [1, 3]
    """

    def __init__(
        self,
        callback: ErrorCallback,
        *,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        self._entry = (callback, _validate(callback, exceptions, "error_callback"))
        self._tokens: list[contextvars.Token[Any]] = []

    def __enter__(self) -> None:
        self._tokens.append(_scoped.set((*_scoped.get(), self._entry)))

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        _scoped.reset(self._tokens.pop())

    def __call__(self, fn: _F) -> _F:
        return context_decorator(self._clone, fn, "error_callback()")

    def _clone(self) -> error_callback:
        # One instance per call of a decorated function: calls in several threads must not share tokens.
        clone = object.__new__(error_callback)
        clone._entry, clone._tokens = self._entry, []
        return clone


def report(exc: BaseException, /, *, source: str, **context: Any) -> None:
    r"""Pass a failure to every matching callback; a callback's :class:`Exception` never raises out of it.

    Args:
        exc: the exception that occurred.
        source: the utility reporting it (e.g. ``"torch.cuda.safe_run"``).
        **context: anything else the callbacks may use (``attempt``,
            ``device``, ``next_action``, ``name``...).

    Raises:
        TypeError: ``exc`` is not an exception instance, or ``source`` is not a string.
        ValueError: ``source`` is empty.

    A callback's own :class:`Exception` is logged and dropped, so reporting
    cannot replace or hide ``exc``.  Only :class:`Exception` subclasses are
    caught: a :class:`BaseException` such as :class:`KeyboardInterrupt` or
    :class:`SystemExit` raised by a callback propagates out of ``report()``
    (the remaining callbacks are not called), so Ctrl-C still stops the program.  Failures raised *while* callbacks run (a callback
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
    if not isinstance(source, str) or not source:
        error = TypeError if not isinstance(source, str) else ValueError
        raise error(f"report(): source must be a non-empty string naming the reporting utility, but got {source!r}")
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
