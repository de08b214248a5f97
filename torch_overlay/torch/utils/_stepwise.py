r"""
Context managers applied step by step to coroutines and generators.

:mod:`torch.utils._contextlib` makes a context manager decorate generator
functions by entering it around each resumption of the generator.  This module
does the same for every kind of function: plain functions, generator
functions, coroutine functions and async generator functions.  The context is
entered around each *step* of the wrapped body (up to its next ``await`` or
``yield``) and left before the step's value is handed on, never held across a
suspension.  So thread-local state it sets (the default device, autocast, a
dry-run switch) holds while the body's own code runs, and not in the body's
consumer, in other ``asyncio`` tasks of the same thread, or in other
generators.

Used by :class:`torch._accelerator.DeviceContext`, :func:`torch.cuda.safe_run`,
:mod:`torch.utils.error_callback`, :mod:`torch.utils.dry_run`,
:mod:`torch.utils.patch_numpy` and :mod:`torch.utils.auto_tensorize`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, cast, TypeVar


__all__: list[str] = []

_F = TypeVar("_F", bound=Callable[..., Any])
ContextFactory = Callable[[], AbstractContextManager[Any]]


def kind(fn: Callable[..., Any]) -> str:
    """What calling ``fn`` runs: ``"coroutine"``, ``"generator"``, ``"async generator"`` or ``"function"``.

    Looks through :func:`functools.partial` and bound methods (as :mod:`inspect` does) and at a callable
    object's ``__call__``.
    """
    for candidate in (fn, type(fn).__call__):
        if inspect.iscoroutinefunction(candidate):
            return "coroutine"
        if inspect.isasyncgenfunction(candidate):
            return "async generator"
        if inspect.isgeneratorfunction(candidate):
            return "generator"
    return "function"


def steps(ctx_factory: ContextFactory, it: Any, convert: Callable[[Any], Any] | None = None) -> Generator[Any, Any, Any]:
    """Drive ``it`` (a generator or a coroutine's ``__await__``) one step at a time, each inside ``ctx_factory()``.

    ``send``, ``throw`` and ``close`` are forwarded; ``convert`` maps each yielded value and the result.
    """
    try:
        with ctx_factory():
            value = it.send(None)
        while True:
            try:
                sent = yield value if convert is None else convert(value)
            except GeneratorExit:
                with ctx_factory():
                    it.close()
                raise
            except BaseException as e:  # noqa: B036 - thrown in by the consumer or the event loop, passed on
                with ctx_factory():
                    value = it.throw(e)
            else:
                with ctx_factory():
                    value = it.send(sent)
    except StopIteration as e:
        return e.value if convert is None else convert(e.value)


class _StepScoped:
    __slots__ = ("_ctx_factory", "_it")

    def __init__(self, ctx_factory: ContextFactory, it: Awaitable[Any]) -> None:
        self._ctx_factory = ctx_factory
        self._it = it

    def __await__(self) -> Generator[Any, Any, Any]:
        it = self._it
        return steps(self._ctx_factory, it if inspect.iscoroutine(it) else it.__await__())


def step_scoped(ctx_factory: ContextFactory, awaitable: Awaitable[Any]) -> Awaitable[Any]:
    """An awaitable that awaits ``awaitable`` with each of its steps inside ``ctx_factory()``."""
    return _StepScoped(ctx_factory, awaitable)


def wrap(
    fn: Callable[..., Any],
    ctx_factory: ContextFactory,
    start: Callable[..., Any] | None = None,
    converter: Callable[[tuple[Any, ...], dict[str, Any]], Callable[[Any], Any] | None] | None = None,
) -> Callable[..., Any]:
    """Return a wrapper of ``fn``'s own kind that runs each step of its body inside ``ctx_factory()``.

    ``start(*args, **kwargs)`` (default ``fn``) makes the call: the wrapper of a coroutine function
    awaits what it returns, the wrapper of a (async) generator function iterates it, forwarding
    ``send``/``throw``/``close``.  ``converter(args, kwargs)``, called first in each call, may return
    a function mapping that call's result and each value its generator yields.
    """
    make = fn if start is None else start
    what = kind(fn)
    if what == "coroutine":

        @functools.wraps(fn)
        async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
            convert = None if converter is None else converter(args, kwargs)
            out = await _StepScoped(ctx_factory, make(*args, **kwargs))
            return out if convert is None else convert(out)

        return coroutine_wrapper
    if what == "async generator":

        @functools.wraps(fn)
        async def async_generator_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            convert = None if converter is None else converter(args, kwargs)
            agen = make(*args, **kwargs)
            try:
                value = await _StepScoped(ctx_factory, agen.asend(None))
                while True:
                    try:
                        sent = yield value if convert is None else convert(value)
                    except GeneratorExit:
                        await _StepScoped(ctx_factory, agen.aclose())
                        raise
                    except BaseException as e:  # noqa: B036 - thrown in by the consumer, passed on
                        value = await _StepScoped(ctx_factory, agen.athrow(e))
                    else:
                        value = await _StepScoped(ctx_factory, agen.asend(sent))
            except StopAsyncIteration:
                return

        return async_generator_wrapper
    if what == "generator":

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            convert = None if converter is None else converter(args, kwargs)
            return (yield from steps(ctx_factory, make(*args, **kwargs), convert))

        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        convert = None if converter is None else converter(args, kwargs)
        with ctx_factory():
            out = make(*args, **kwargs)
        return out if convert is None else convert(out)

    return wrapper


def context_decorator(ctx_factory: ContextFactory, fn: _F, caller: str) -> _F:
    """The decorator form of a context manager class, for every kind of function; ``caller`` names it in errors."""
    if isinstance(fn, type) or not callable(fn):
        what = "a class; decorate its methods instead" if isinstance(fn, type) else repr(fn)
        raise TypeError(f"{caller}: can only decorate a function, but got {what}")
    # functools.wraps made the wrapper of the same kind and signature as fn.
    return cast(_F, wrap(fn, ctx_factory))
