r"""
Retry a call that fails with a transient error, with exponential backoff.

Two forms share one policy:

* :func:`retry` decorates a function: ``@retry(attempts=5, exceptions=OSError, delay=0.1)``;
* :func:`retry_loop` retries a block: ``for attempt in retry_loop(...): with attempt: ...``.

Only the listed ``exceptions`` are retried; anything else propagates at once.
Before retry ``k`` (``k = 0`` for the first retry) the policy sleeps
``min(delay * backoff**k + U(0, jitter), max_delay)`` seconds, and gives up early
when that sleep would end past ``deadline`` seconds after the first attempt
started.  The error finally raised is the last one, its ``__context__`` chain
holding the earlier ones and one note per attempt (:meth:`BaseException.add_note`).
Every failed attempt is reported to :func:`torch.utils.error_callback.report`
with ``source="torch.utils.retry"``.

Retrying does not bound how long one attempt runs: combine it with
:func:`torch.utils.timeout.timeout` for that.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from typing_extensions import Self

from torch.utils import error_callback


__all__ = ["Attempt", "retry", "retry_loop"]

_F = TypeVar("_F", bound=Callable[..., Any])

_default_rng = random.Random()


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
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
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
        for name, value, optional in (
            ("delay", delay, False),
            ("max_delay", max_delay, True),
            ("jitter", jitter, False),
            ("deadline", deadline, True),
        ):
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{caller}(): {name} must be a number of seconds, but got {value!r}")
            if not value >= 0:
                raise ValueError(f"{caller}(): {name} must be a non-negative number of seconds, but got {value!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 1 <= backoff < math.inf:
            raise ValueError(f"{caller}(): backoff must be a finite number >= 1, but got {backoff!r}")
        for name, fn in (("on_retry", on_retry), ("sleep", sleep), ("clock", clock)):
            if not callable(fn) and not (name == "on_retry" and fn is None):
                raise TypeError(f"{caller}(): {name} must be callable, but got {fn!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"{caller}(): rng must be a random.Random instance, but got {rng!r}")
        self.attempts = attempts
        self.exceptions = types
        self.delay = float(delay)  # type: ignore[arg-type]
        self.backoff = float(backoff)
        self.max_delay = None if max_delay is None else float(max_delay)  # type: ignore[arg-type]
        self.jitter = float(jitter)  # type: ignore[arg-type]
        self.deadline = None if deadline is None else float(deadline)  # type: ignore[arg-type]
        self.on_retry = on_retry
        self.sleep = sleep
        self.clock = clock
        self.rng = _default_rng if rng is None else rng

    def next_delay(self, retry_index: int) -> float:
        """The sleep before retry ``retry_index`` (0 for the first retry)."""
        base = self.delay * self.backoff**retry_index if self.delay else 0.0
        if self.jitter:
            base += self.rng.uniform(0.0, self.jitter)
        if self.max_delay is not None and base > self.max_delay:
            base = self.max_delay
        return base

    def after_failure(
        self, exc: BaseException, number: int, start: float | None, history: list[tuple[BaseException, str]]
    ) -> float:
        """Record failed attempt ``number``; return the sleep before the next one, or raise ``exc``."""
        if history and exc.__context__ is None and exc is not history[-1][0]:
            exc.__context__ = history[-1][0]
        delay = 0.0
        reason = None
        if number >= self.attempts:
            reason = f"no attempts left ({self.attempts})"
        else:
            delay = self.next_delay(number - 1)
            if start is not None and self.clock() + delay - start > self.deadline:  # type: ignore[operator]
                reason = f"the next attempt would start past the {self.deadline:g} s deadline"
        summary = f"attempt {number} of {self.attempts} failed with {type(exc).__name__}: {exc}"
        if reason is None:
            history.append((exc, f"{summary}; retrying in {delay:.3g} s"))
            error_callback.report(
                exc, source="torch.utils.retry", attempt=number, attempts=self.attempts, next_action="retry", next_delay=delay
            )
            if self.on_retry is not None:
                self.on_retry(exc, number, delay)
            return delay
        history.append((exc, f"{summary}; giving up: {reason}"))
        error_callback.report(
            exc, source="torch.utils.retry", attempt=number, attempts=self.attempts, next_action="raise", next_delay=None
        )
        for _, note in history:
            exc.add_note(f"torch.utils.retry: {note}")
        raise exc


class Attempt:
    r"""One attempt of a :func:`retry_loop`; use it as ``with attempt:`` around the work.

    A retryable exception raised in the block is recorded and suppressed, and the
    loop goes on to the next attempt (or raises the final error); any other
    exception propagates at once.  A block that completes ends the loop.

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
        if exc is not None and isinstance(exc, self._exceptions):
            self._exception = exc
            return True
        return False

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
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Any:
    r"""Call the decorated function again when it raises one of ``exceptions``, with backoff.

    Usable as ``@retry``, ``@retry(...)`` or ``retry(fn, ...)``.

    Args:
        fn: the function to wrap; omit it to get a decorator.
        attempts: the most calls made, the first one included (``>= 1``).
        exceptions: the exception class, or tuple of classes, that is retried;
            anything else propagates at once.
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
            sleep, ``attempt`` being the number of the attempt that failed.
        sleep: how to wait (tests pass a fake to take no wall time).
        clock: the monotonic clock ``deadline`` is measured with.
        rng: the :class:`random.Random` jitter is drawn from; pass a seeded one
            for a reproducible schedule.

    Returns:
        The wrapped function (or, without ``fn``, a decorator making one).

    Raises:
        TypeError: ``fn``, ``on_retry``, ``sleep`` or ``clock`` is not callable,
            ``exceptions`` is not exception classes, or a duration is not a number.
        ValueError: ``attempts < 1``, a negative duration or ``backoff < 1``.

    The error raised when the policy gives up is the last attempt's, with the
    earlier ones chained as its ``__context__`` and one note per attempt.

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


def _call_again(
    policy: _Policy, fn: Callable[..., Any], args: Any, kwargs: Any, exc: BaseException, start: float | None
) -> Any:
    history: list[tuple[BaseException, str]] = []
    number = 1
    while True:
        policy.sleep(policy.after_failure(exc, number, start, history))
        number += 1
        try:
            return fn(*args, **kwargs)
        except policy.exceptions as e:
            exc = e


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
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Iterator[Attempt]:
    r"""Retry a block: ``for attempt in retry_loop(...): with attempt: ...``.

    Takes the arguments of :func:`retry` (without ``fn``) and yields
    :class:`Attempt` objects.  The loop ends after the first attempt whose
    block completes; when the policy gives up it raises the last error, with
    the history of attempts (see :func:`retry`).

    Returns:
        An iterator of :class:`Attempt`.

    Raises:
        TypeError, ValueError: bad arguments, at once (see :func:`retry`).
        RuntimeError: an attempt was not used as ``with attempt:`` before the
            loop asked for the next one.

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
    policy = _Policy(
        "retry_loop", attempts, exceptions, delay, backoff, max_delay, jitter, deadline, on_retry, sleep, clock, rng
    )
    return _loop(policy)


def _loop(policy: _Policy) -> Iterator[Attempt]:
    start = policy.clock() if policy.deadline is not None else None
    history: list[tuple[BaseException, str]] = []
    number = 1
    while True:
        attempt = Attempt(number, policy.attempts, policy.exceptions)
        yield attempt
        if not attempt._entered:
            raise RuntimeError(f"retry_loop(): attempt {number} was not used; write `with attempt:` around the work")
        exc = attempt._exception
        if exc is None:
            return
        attempt._exception = None
        policy.sleep(policy.after_failure(exc, number, start, history))
        number += 1
