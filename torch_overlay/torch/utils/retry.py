r"""
Retry a call that fails with a transient error, with exponential backoff.

Two forms share one policy:

* :func:`retry` decorates a function: ``@retry(attempts=5, exceptions=OSError, delay=0.1)``.
  It works on plain functions, ``async def`` functions (the wrapper is a
  coroutine function that sleeps with :func:`asyncio.sleep`), and generator and
  async generator functions (retried only until their first item, see
  :func:`retry`);
* :func:`retry_loop` retries a block: ``for attempt in retry_loop(...): with attempt: ...``,
  or ``async for attempt in retry_loop(...)`` in a coroutine.

Only the listed ``exceptions`` are retried; anything else propagates at once.
:class:`asyncio.CancelledError`, :class:`KeyboardInterrupt`, :class:`SystemExit`
and :class:`GeneratorExit` are never retried, whatever ``exceptions`` says
(``exceptions=BaseException`` included): they propagate at once, from an
attempt as from the backoff sleep.
Before retry ``k`` (``k = 0`` for the first retry) the policy sleeps
``min(delay * backoff**k + U(0, jitter), max_delay)`` seconds (computed without
overflow however many attempts), and gives up early when that sleep would end
past ``deadline`` seconds after the first attempt started.  The error finally
raised is the last one, its ``__context__`` chain holding the errors of the
attempts before it and one note per attempt (:meth:`BaseException.add_note`);
both keep the last 10 attempts only, so that a long run does not hold every
error it met.  Every failed attempt is reported to
:func:`torch.utils.error_callback.report` with ``source="torch.utils.retry"``.

Retrying does not bound how long one attempt runs: combine it with
:func:`torch.utils.timeout.timeout` for that.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import random
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar
from typing_extensions import Self

from torch.utils import error_callback


__all__ = ["Attempt", "retry", "retry_loop"]

_F = TypeVar("_F", bound=Callable[..., Any])

_default_rng = random.Random()

# How many failed attempts the final error keeps (chained errors and notes).
_KEPT = 10
# The longest sleep accepted, in seconds (about 31.7 years): every duration is
# checked against it, so no sleep can overflow a platform's time.sleep.
_LONGEST = 1e9

_NOT_RETRIED = "torch.utils.retry: not retried: the generator had already yielded, so a retry would repeat its items"


def _type_name(value: object) -> str:
    return f"{value!r} of type {type(value).__name__}"


def _never_retried(exc: BaseException) -> bool:
    """Whether ``exc`` asks to stop (cancellation, interrupt, exit, generator close): never retried."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    # No asyncio imported: no asyncio.CancelledError can have been raised (and none is imported here).
    exceptions = sys.modules.get("asyncio.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.CancelledError)


def _seconds(caller: str, name: str, value: object, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if type(value) not in (float, int) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        expected = "a number of seconds or None" if optional else "a number of seconds"
        raise TypeError(f"{caller}(): {name} must be {expected}, but got {_type_name(value)}")
    if not 0 <= value <= _LONGEST:
        raise ValueError(
            f"{caller}(): {name} must be a finite number of seconds between 0 and {_LONGEST:g}, but got {value!r}"
        )
    return float(value)


class _Policy:
    __slots__ = (
        "attempts",
        "exceptions",
        "delay",
        "backoff",
        "max_delay",
        "jitter",
        "deadline",
        "on_retry",
        "sleep",
        "clock",
        "rng",
    )

    def __init__(
        self,
        caller: str,
        attempts: object,
        exceptions: object,
        delay: object,
        backoff: object,
        max_delay: object,
        jitter: object,
        deadline: object,
        on_retry: object,
        sleep: object,
        clock: object,
        rng: object,
    ) -> None:
        if type(attempts) is not int and (isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral)):
            raise TypeError(f"{caller}(): attempts must be an int, but got {_type_name(attempts)}")
        if attempts < 1:
            raise ValueError(f"{caller}(): attempts must be an int >= 1, but got {attempts!r}")
        # Same rule and message as torch.utils.error_callback's filter, kept local:
        # Dynamo inlines this module (retry's success path compiles in one graph)
        # but would graph-break on a call into error_callback.
        types = exceptions if isinstance(exceptions, tuple) else (exceptions,)
        if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
            raise TypeError(
                f"{caller}(): exceptions must be an exception class or a non-empty tuple of them, "
                f"but got {exceptions!r}"
            )
        self.delay: float = _seconds(caller, "delay", delay, False)  # type: ignore[assignment]
        self.max_delay = _seconds(caller, "max_delay", max_delay, True)
        self.jitter: float = _seconds(caller, "jitter", jitter, False)  # type: ignore[assignment]
        self.deadline = _seconds(caller, "deadline", deadline, True)
        if type(backoff) not in (float, int) and (isinstance(backoff, bool) or not isinstance(backoff, numbers.Real)):
            raise TypeError(f"{caller}(): backoff must be a number, but got {_type_name(backoff)}")
        if not 1 <= backoff <= sys.float_info.max:  # a huge int fits no float: not finite either
            raise ValueError(f"{caller}(): backoff must be a finite number >= 1, but got {backoff!r}")
        for name, fn in (("on_retry", on_retry), ("sleep", sleep), ("clock", clock)):
            if not callable(fn) and not (fn is None and name != "clock"):
                raise TypeError(f"{caller}(): {name} must be callable, but got {fn!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"{caller}(): rng must be a random.Random instance, but got {rng!r}")
        self.attempts = int(attempts)
        self.exceptions = types
        self.backoff = float(backoff)
        self.on_retry = on_retry
        self.sleep = sleep
        self.clock = clock
        self.rng = _default_rng if rng is None else rng
        if self.max_delay is None and self.deadline is None and self.attempts > 1 and self.delay:
            # Nothing caps the schedule: its last sleep must be one the platform can do.
            longest = self.backed_off(self.attempts - 2) + self.jitter
            if longest > _LONGEST:
                if math.isinf(longest):  # say how large, without overflowing
                    try:
                        e = math.log10(self.delay) + (self.attempts - 2) * math.log10(self.backoff)
                        shown = f"{10 ** (e - math.floor(e)):.2g}e+{math.floor(e)}"
                    except OverflowError:  # attempts past the float range
                        shown = "more than 1e+308"
                else:
                    shown = f"{longest:.3g}"
                raise ValueError(
                    f"{caller}(): with attempts={attempts!r}, delay={delay!r} and backoff={backoff!r}, the sleep "
                    f"before the last attempt would be {shown} s, past the longest accepted ({_LONGEST:g} s); "
                    "pass max_delay= or deadline=, or fewer attempts"
                )

    def backed_off(self, retry_index: int) -> float:
        """``delay * backoff**retry_index``, ``inf`` where that overflows."""
        if not self.delay or not retry_index or self.backoff == 1.0:
            return self.delay
        try:
            return self.delay * self.backoff**retry_index
        except OverflowError:
            pass
        # backoff**retry_index is past the float range, yet a tiny delay may bring the product back.
        try:
            log = math.log(self.delay) + retry_index * math.log(self.backoff)
        except OverflowError:  # retry_index itself is past the float range
            return math.inf
        return math.exp(log) if log < 709.0 else math.inf

    def next_delay(self, retry_index: int) -> float:
        """The sleep before retry ``retry_index`` (0 for the first retry)."""
        base = self.backed_off(retry_index)
        if self.jitter:
            base += self.rng.uniform(0.0, self.jitter)
        if self.max_delay is not None and base > self.max_delay:
            base = self.max_delay
        return base

    def check_sync_hooks(self, caller: str, what: str) -> None:
        """Refuse an ``async def`` ``sleep``/``on_retry`` where nothing would await it."""
        for name in ("sleep", "on_retry"):
            if inspect.iscoroutinefunction(getattr(self, name)):
                raise TypeError(
                    f"{caller}(): {name} is an async function, which {what} cannot await; "
                    "pass a plain function, or retry an `async def` function / use `async for` in a coroutine"
                )


def _add_note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(note)
        return
    # Python 3.10 has no BaseException.add_note: do what it does (PEP 678),
    # which 3.11+ tracebacks and the exceptiongroup backport print.
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        notes = exc.__notes__ = []  # type: ignore[attr-defined]
    notes.append(note)


def _blocks_event_loop() -> bool:
    asyncio = sys.modules.get("asyncio")  # no asyncio imported: no event loop runs
    return asyncio is not None and asyncio._get_running_loop() is not None


class _Run:
    """The state of one retried call or loop: which attempt runs, since when, the errors kept."""

    __slots__ = ("policy", "start", "number", "kept", "dropped")

    def __init__(self, policy: _Policy, start: float | None) -> None:
        self.policy = policy
        self.start = start
        self.number = 1
        self.kept: list[tuple[BaseException, str]] = []
        self.dropped = 0

    def failed(self, exc: BaseException) -> float:
        """Record that the current attempt failed; return the sleep before the next one, or raise ``exc``."""
        if _never_retried(exc):  # even with exceptions=BaseException: a cancelled task stays cancelled
            raise exc
        policy = self.policy
        kept = self.kept
        if kept and exc.__context__ is None and all(exc is not e for e, _ in kept):
            exc.__context__ = kept[-1][0]
        number = self.number
        delay = 0.0
        reason = None
        if number >= policy.attempts:
            reason = f"no attempts left ({policy.attempts})"
        else:
            delay = policy.next_delay(number - 1)
            if self.start is not None and policy.clock() + delay - self.start > policy.deadline:  # type: ignore[operator]
                reason = f"the next attempt would start past the {policy.deadline:g} s deadline"
        summary = f"attempt {number} of {policy.attempts} failed with {type(exc).__name__}: {exc}"
        if len(kept) == _KEPT:  # forget the oldest kept attempt, and unchain its error
            oldest = kept.pop(0)[0]
            if kept and kept[0][0].__context__ is oldest:
                kept[0][0].__context__ = None
            self.dropped += 1
        if reason is None:
            kept.append((exc, f"{summary}; retrying in {delay:.3g} s"))
            error_callback.report(
                exc, source="torch.utils.retry", attempt=number, attempts=policy.attempts, next_action="retry", next_delay=delay
            )
            return delay
        kept.append((exc, f"{summary}; giving up: {reason}"))
        error_callback.report(
            exc, source="torch.utils.retry", attempt=number, attempts=policy.attempts, next_action="raise", next_delay=None
        )
        if self.dropped:
            _add_note(exc, f"torch.utils.retry: attempts 1 to {self.dropped} failed too (only the last {_KEPT} are kept)")
        for _, note in kept:
            _add_note(exc, f"torch.utils.retry: {note}")
        raise exc


def _sync(result: object, exc: BaseException, caller: str, name: str) -> None:
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of this error
        raise TypeError(
            f"{caller}(): {name} returned an awaitable, which synchronous code cannot await; pass a plain "
            "function, or retry an `async def` function / use `async for` in a coroutine"
        ) from exc


def _stop(error: BaseException, exc: BaseException) -> None:
    """``on_retry`` raised ``error`` after attempt error ``exc``: no more retries, ``exc`` chained as its context."""
    if error is not exc and error.__context__ is None:
        error.__context__ = exc


def _pause(run: _Run, exc: BaseException, caller: str, hint: str, stacklevel: int) -> None:
    """After a failed attempt: record it (or raise), call ``on_retry``, sleep, move to the next attempt."""
    delay = run.failed(exc)
    policy = run.policy
    if policy.on_retry is not None:
        try:
            result = policy.on_retry(exc, run.number, delay)
        except BaseException as error:
            _stop(error, exc)
            raise
        _sync(result, exc, caller, "on_retry")
    sleep = time.sleep if policy.sleep is None else policy.sleep
    if sleep is time.sleep and delay > 0 and _blocks_event_loop():
        # One warning per call site (the message does not vary).
        warnings.warn(
            f"{caller}(): time.sleep blocks the running event loop for the whole backoff; {hint}",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    _sync(sleep(delay), exc, caller, "sleep")
    run.number += 1


async def _apause(run: _Run, exc: BaseException) -> None:
    """:func:`_pause` for the asynchronous forms: awaits ``on_retry`` and ``sleep`` when they return awaitables."""
    delay = run.failed(exc)
    policy = run.policy
    if policy.on_retry is not None:
        try:
            result = policy.on_retry(exc, run.number, delay)
            if inspect.isawaitable(result):
                await result
        except BaseException as error:
            _stop(error, exc)
            raise
    if policy.sleep is None:
        import asyncio

        await asyncio.sleep(delay)
    else:
        if policy.sleep is time.sleep and delay > 0:
            warnings.warn(
                "retry: sleep=time.sleep blocks the event loop for the whole backoff; leave sleep unset "
                "(the asynchronous forms sleep with asyncio.sleep)",
                RuntimeWarning,
                stacklevel=2,
            )
        result = policy.sleep(delay)
        if inspect.isawaitable(result):
            await result
    run.number += 1


class Attempt:
    r"""One attempt of a :func:`retry_loop`; use it as ``with attempt:`` around the work.

    A retryable exception raised in the block is recorded and suppressed, and the
    loop goes on to the next attempt (or raises the final error); any other
    exception propagates at once.  A block that completes ends the loop.  The
    same ``with attempt:`` serves ``for`` and ``async for`` loops.

    Attributes:
        number (int): this attempt's number, from 1.
        attempts (int): the most attempts the loop makes.

    Example::

        >>> from torch.utils.retry import retry_loop
        >>> for attempt in retry_loop(attempts=3):
        ...     with attempt:
        ...         print("attempt", attempt.number)
        attempt 1
    """

    __slots__ = ("number", "attempts", "_exceptions", "_entered", "_exception")

    def __init__(self, number: int, attempts: int, exceptions: tuple[type[BaseException], ...]) -> None:
        self.number = number
        self.attempts = attempts
        self._exceptions = exceptions
        self._entered = False
        self._exception: BaseException | None = None

    def __enter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"attempt {self.number} was already used; each attempt runs one `with` block")
        self._entered = True
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and isinstance(exc, self._exceptions) and not _never_retried(exc):
            self._exception = exc
            return True
        return False

    def _outcome(self) -> BaseException | None:
        if not self._entered:
            raise RuntimeError(
                f"retry_loop(): attempt {self.number} was not used; write `with attempt:` around the work"
            )
        exc, self._exception = self._exception, None
        return exc

    def __repr__(self) -> str:
        return f"<Attempt {self.number} of {self.attempts}>"


def retry(
    fn: _F | None = None,
    /,
    *,
    attempts: int = 3,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    delay: float = 0.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: float = 0.0,
    deadline: float | None = None,
    on_retry: Callable[[BaseException, int, float], object] | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Any:
    r"""Call the decorated function again when it raises one of ``exceptions``, with backoff.

    Usable as ``@retry``, ``@retry(...)`` or ``retry(fn, ...)``.  What is
    retried depends on the kind of ``fn``, found when decorating:

    * a plain function: the call;
    * an ``async def`` function: the wrapper is a coroutine function that awaits
      each attempt and sleeps with :func:`asyncio.sleep`, so other tasks run
      during the backoff;
    * a generator function, or an async generator function: the wrapper is a
      generator (async generator) function that starts the generator again
      while it fails *before yielding its first item*.  Once an item was
      yielded a retry would repeat items, so a later error propagates, with a
      note saying it was not retried.  ``send``, ``throw`` and ``close`` reach
      the running generator.

    An object whose ``__call__`` is one of these, or a :func:`functools.partial`
    of one, counts as that kind.  A plain function that merely returns a
    coroutine (``lambda: fetch()``) is a plain function: its coroutine is
    returned unretried, so decorate the ``async def`` itself.

    Args:
        fn: the function to wrap; omit it to get a decorator.
        attempts: the most calls made, the first one included (``>= 1``).
        exceptions: the exception class, or tuple of classes, that is retried;
            anything else propagates at once.  :class:`asyncio.CancelledError`,
            :class:`KeyboardInterrupt`, :class:`SystemExit` and
            :class:`GeneratorExit` are never retried (``BaseException``
            included): they propagate at once, unrecorded, whether raised by an
            attempt, ``on_retry`` or the backoff sleep.
        delay: the sleep before the first retry, in seconds.
        backoff: the factor by which the sleep grows after each retry (``>= 1``).
        max_delay: the longest sleep, jitter included; ``None`` for no cap.
        jitter: a random ``U(0, jitter)`` seconds added to each sleep, so that
            workers that failed together do not retry together.
        deadline: seconds from the first call after which no new attempt
            starts: the policy gives up when the next sleep would end past it.
            ``None`` for no limit.  It does not interrupt a running attempt
            (see :func:`torch.utils.timeout.timeout`).
        on_retry: called as ``on_retry(exc, attempt, next_delay)`` before each
            sleep, ``attempt`` being the number of the attempt that failed; the
            asynchronous forms await what it returns if that is awaitable.  An
            exception it raises stops the retries and propagates in place of
            ``exc``, with ``exc`` as its ``__context__`` (``exc`` itself gets no
            notes then).
        sleep: how to wait; ``None`` for :func:`time.sleep`, or
            :func:`asyncio.sleep` in the asynchronous forms, which await what it
            returns if that is awaitable (tests pass a fake to take no wall time;
            pass ``trio.sleep`` under trio).
        clock: the monotonic clock ``deadline`` is measured with.
        rng: the :class:`random.Random` jitter is drawn from; pass a seeded one
            for a reproducible schedule.

    Returns:
        The wrapped function (or, without ``fn``, a decorator making one).

    Raises:
        TypeError: ``fn`` is a class (retry a function that constructs it),
            ``fn``, ``on_retry``, ``sleep`` or ``clock`` is not callable,
            ``exceptions`` is not exception classes, ``attempts`` is not an int
            (a bool is not), a duration or ``backoff`` is not a number, or
            ``sleep``/``on_retry`` is an ``async def`` function while ``fn`` is not.
        ValueError: ``attempts < 1``; a duration (``delay``, ``max_delay``,
            ``jitter``, ``deadline``) negative, NaN, infinite or above ``1e9``
            seconds; ``backoff`` below 1 or not finite (an int past the float
            range included); or, with neither
            ``max_delay`` nor ``deadline``, a schedule whose last sleep would
            pass ``1e9`` seconds.

    The error raised when the policy gives up is the last attempt's, with the
    earlier ones chained as its ``__context__`` and one note per attempt; both
    keep the last 10 attempts (one more note counts the others).  On Python
    3.10, which has no :meth:`BaseException.add_note`, the notes are appended
    to the exception's ``__notes__`` list as that method does (PEP 678); 3.10's
    traceback does not print them.

    A synchronous function retried inside a running event loop sleeps with
    :func:`time.sleep`, blocking the loop: it warns (``RuntimeWarning``, once
    per call site); decorate an ``async def`` function instead.  The
    asynchronous forms warn likewise when given ``sleep=time.sleep``.

    .. note:: The success path costs one ``try`` around the call, and
        :func:`torch.compile` traces through it: a retried function compiles
        into one graph, ``fullgraph=True`` included.  A failing attempt breaks
        the graph (its sleep, callbacks and notes run eagerly) and gives the
        eager result.

    Example::

        >>> from torch.utils.retry import retry
        >>> calls = []
        >>> @retry(attempts=3, exceptions=ConnectionError, sleep=lambda s: None)
        ... def fetch():
        ...     calls.append(1)
        ...     if len(calls) < 3:
        ...         raise ConnectionError("flaky")
        ...     return "data"
        >>> fetch(), len(calls)
        ('data', 3)
    """
    policy = _Policy(
        "retry", attempts, exceptions, delay, backoff, max_delay, jitter, deadline, on_retry, sleep, clock, rng
    )

    def decorate(fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"retry(): expected a callable to wrap, but got {fn!r}")
        if isinstance(fn, type):  # the wrapper, a function, would replace the class (no isinstance, no subclass)
            raise TypeError(
                f"retry(): can only decorate a function, but got the class {fn.__qualname__}; to retry "
                f"constructing it, retry a function that does: retry(lambda *args, **kwargs: "
                f"{fn.__name__}(*args, **kwargs), ...)"
            )
        # An object whose __call__ is an async def (or generator) function is one too.
        kind = fn if inspect.isroutine(fn) or isinstance(fn, functools.partial) else type(fn).__call__
        if inspect.isasyncgenfunction(kind):
            return _retry_async_generator(policy, fn)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(kind):
            return _retry_coroutine(policy, fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(kind):
            policy.check_sync_hooks("retry", "a generator function")
            return _retry_generator(policy, fn)  # type: ignore[return-value]
        policy.check_sync_hooks("retry", "a synchronous function")
        retried = policy.exceptions
        timed = policy.deadline is not None

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = clock() if timed else None
            try:
                return fn(*args, **kwargs)
            except retried as e:
                exc = e
            return _call_again(policy, fn, args, kwargs, exc, start)

        return wrapper  # type: ignore[return-value]

    return decorate if fn is None else decorate(fn)


_SYNC_HINT = "decorate an `async def` function instead (it sleeps with asyncio.sleep), or pass sleep="
_LOOP_HINT = "use `async for attempt in retry_loop(...)` in a coroutine (it sleeps with asyncio.sleep)"


def _call_again(
    policy: _Policy, fn: Callable[..., Any], args: Any, kwargs: Any, exc: BaseException, start: float | None
) -> Any:
    run = _Run(policy, start)
    while True:
        _pause(run, exc, "retry", _SYNC_HINT, 4)  # _pause, _call_again, wrapper, the caller
        try:
            return fn(*args, **kwargs)
        except policy.exceptions as e:
            exc = e


def _retry_coroutine(policy: _Policy, fn: Callable[..., Any]) -> Callable[..., Any]:
    retried = policy.exceptions
    timed = policy.deadline is not None
    clock = policy.clock

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock() if timed else None
        try:
            return await fn(*args, **kwargs)
        except retried as e:
            exc = e
        run = _Run(policy, start)
        while True:
            await _apause(run, exc)
            try:
                return await fn(*args, **kwargs)
            except retried as e:
                exc = e

    return wrapper


def _retry_generator(policy: _Policy, fn: Callable[..., Any]) -> Callable[..., Any]:
    retried = policy.exceptions

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _Run(policy, policy.clock() if policy.deadline is not None else None)
        while True:
            gen = fn(*args, **kwargs)
            try:
                value = next(gen)
            except StopIteration as stop:
                return stop.value
            except retried as e:
                exc = e
            else:
                break
            _pause(run, exc, "retry", _SYNC_HINT, 3)  # _pause, wrapper, the consumer
        # From the first item on, delegate as `yield from` does (PEP 380).
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as thrown:
                step, arg = gen.throw, thrown
            else:
                step, arg = gen.send, sent
            try:
                value = step(arg)
            except StopIteration as stop:
                return stop.value
            except retried as e:
                if e is not arg and not _never_retried(e):
                    _add_note(e, _NOT_RETRIED)
                raise

    return wrapper


def _retry_async_generator(policy: _Policy, fn: Callable[..., Any]) -> Callable[..., Any]:
    retried = policy.exceptions

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _Run(policy, policy.clock() if policy.deadline is not None else None)
        while True:
            agen = fn(*args, **kwargs)
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                return
            except retried as e:
                exc = e
            else:
                break
            await _apause(run, exc)
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as thrown:
                step, arg = agen.athrow, thrown
            else:
                step, arg = agen.asend, sent
            try:
                value = await step(arg)
            except StopAsyncIteration:
                return
            except retried as e:
                if e is not arg and not _never_retried(e):
                    _add_note(e, _NOT_RETRIED)
                raise

    return wrapper


class _RetryLoop(_Run):
    """What :func:`retry_loop` returns (and the state of its run): iterate it once, with ``for`` or ``async for``."""

    __slots__ = ("_used",)

    def __init__(self, policy: _Policy) -> None:
        super().__init__(policy, None)
        self._used = False

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("retry_loop(): this loop was already iterated; call retry_loop() for each loop")
        self._used = True
        if self.policy.deadline is not None:
            self.start = self.policy.clock()

    def __iter__(self) -> Iterator[Attempt]:
        self._claim()
        if self.policy.sleep is not None or self.policy.on_retry is not None:
            self.policy.check_sync_hooks("retry_loop", "a `for` loop")
        return _loop(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        self._claim()
        return _aloop(self)


def _loop(run: _Run) -> Iterator[Attempt]:
    policy = run.policy
    while True:
        attempt = Attempt(run.number, policy.attempts, policy.exceptions)
        yield attempt
        exc = attempt._outcome()
        if exc is None:
            return
        _pause(run, exc, "retry_loop", _LOOP_HINT, 3)  # _pause, _loop, the `for` statement


async def _aloop(run: _Run) -> AsyncIterator[Attempt]:
    policy = run.policy
    while True:
        attempt = Attempt(run.number, policy.attempts, policy.exceptions)
        yield attempt
        exc = attempt._outcome()
        if exc is None:
            return
        await _apause(run, exc)


def retry_loop(
    *,
    attempts: int = 3,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    delay: float = 0.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: float = 0.0,
    deadline: float | None = None,
    on_retry: Callable[[BaseException, int, float], object] | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> _RetryLoop:
    r"""Retry a block: ``for attempt in retry_loop(...): with attempt: ...``.

    Takes the arguments of :func:`retry` (without ``fn``) and yields
    :class:`Attempt` objects.  The loop ends after the first attempt whose
    block completes; when the policy gives up it raises the last error, with
    the history of attempts (see :func:`retry`).

    In a coroutine, write ``async for attempt in retry_loop(...): with attempt:``:
    the backoff sleeps with :func:`asyncio.sleep` (or awaits what ``sleep`` and
    ``on_retry`` return), so other tasks run meanwhile.  A plain ``for`` loop
    sleeps with :func:`time.sleep`; inside a running event loop that blocks the
    loop, so it warns (``RuntimeWarning``, once per call site) and still sleeps.
    The object returned is iterated once, either way.

    Returns:
        An iterable and async iterable of :class:`Attempt`.

    Raises:
        TypeError, ValueError: bad arguments, at once (see :func:`retry`);
            ``TypeError`` when a plain ``for`` starts with an ``async def``
            ``sleep`` or ``on_retry``.
        RuntimeError: an attempt was not used as ``with attempt:`` before the
            loop asked for the next one, or the loop is iterated twice.

    Example::

        >>> from torch.utils.retry import retry_loop
        >>> tries = []
        >>> for attempt in retry_loop(attempts=5, exceptions=KeyError, sleep=lambda s: None):
        ...     with attempt:
        ...         tries.append(attempt.number)
        ...         if attempt.number < 2:
        ...             raise KeyError("not ready")
        >>> tries
        [1, 2]
    """
    return _RetryLoop(
        _Policy(
            "retry_loop", attempts, exceptions, delay, backoff, max_delay, jitter, deadline, on_retry, sleep, clock, rng
        )
    )
