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
:class:`asyncio.CancelledError`, :class:`KeyboardInterrupt`, :class:`SystemExit`,
:class:`GeneratorExit` and the interrupt :mod:`torch.utils.timeout` raises in a
block at its deadline are never retried, whatever ``exceptions`` says
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

Beyond the exception types, ``retry_if`` decides from the error itself,
``retry_on_result`` retries on a returned value (an HTTP 503 returned rather
than raised), ``wait_from`` takes the delay from the error (a server's
``Retry-After``) and ``jitter="full"`` draws each sleep in ``[0, delay]``.
``wrapped.statistics`` (a :class:`RetryStatistics`) tells what the last call
did, ``name=`` also times each attempt with :mod:`torch.utils.telemetry`, and
:func:`set_testing` makes every sleep zero in tests.

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
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast, Literal, overload, TypeVar
from typing_extensions import Self

from torch.compiler import is_dynamo_compiling as _compiling
from torch.utils import error_callback
from torch.utils._eager import stay_eager


__all__ = ["Attempt", "RetryStatistics", "is_testing", "retry", "retry_loop", "set_testing"]

_F = TypeVar("_F", bound=Callable[..., Any])

_default_rng = random.Random()

# How many failed attempts the final error keeps (chained errors and notes).
_KEPT = 10
# The longest sleep accepted, in seconds (about 31.7 years): every duration is
# checked against it, so no sleep can overflow a platform's time.sleep.
_LONGEST = 1e9

# set_testing(True): every backoff sleep is zero (read once per retry, on the sleep path only).
_testing = False

_NOT_RETRIED = "torch.utils.retry: not retried: the generator had already yielded, so a retry would repeat its items"


def _type_name(value: object) -> str:
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"{_shown(value)} of type {name}"


def _shown(value: object) -> str:
    """``repr(value)``, but the size of a huge int rather than its hundreds of digits."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _never_retried(exc: BaseException) -> bool:
    """Whether ``exc`` asks to stop (cancellation, interrupt, exit, generator close): never retried."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    # No asyncio imported: no asyncio.CancelledError can have been raised (and none is imported here).
    exceptions = sys.modules.get("asyncio.exceptions")
    if exceptions is not None and isinstance(exc, exceptions.CancelledError):
        return True
    # torch.utils.timeout's interrupt, raised in a block's body at its deadline: the block must end.
    interrupt = sys.modules.get("torch.utils._timeout_interrupt")
    return interrupt is not None and isinstance(exc, interrupt._Interrupt)


@overload
def _seconds(caller: str, name: str, value: object, optional: Literal[False]) -> float: ...


@overload
def _seconds(caller: str, name: str, value: object, optional: bool) -> float | None: ...


def _seconds(caller: str, name: str, value: object, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if type(value) not in (float, int) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        expected = "a number of seconds or None" if optional else "a number of seconds"
        raise TypeError(f"{caller}(): {name} must be {expected}, but got {_type_name(value)}")
    value = cast(float, value)  # a real number (an int, a float or a numbers.Real), checked above
    if not 0 <= value <= _LONGEST:
        raise ValueError(
            f"{caller}(): {name} must be a finite number of seconds between 0 and {_LONGEST:g}, but got {_shown(value)}"
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
        "caller",
        "full_jitter",
        "retry_if",
        "retry_on_result",
        "wait_from",
        "name",
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
        retry_if: object = None,
        retry_on_result: object = None,
        wait_from: object = None,
        name: object = None,
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
        self.delay = _seconds(caller, "delay", delay, False)
        self.max_delay = _seconds(caller, "max_delay", max_delay, True)
        self.full_jitter = isinstance(jitter, str)
        if self.full_jitter and jitter != "full":
            raise ValueError(f"{caller}(): jitter must be a number of seconds or 'full', but got {jitter!r}")
        if not self.full_jitter and type(jitter) not in (float, int) and not isinstance(jitter, numbers.Real):
            raise TypeError(f"{caller}(): jitter must be a number of seconds or 'full', but got {_type_name(jitter)}")
        self.jitter = 0.0 if self.full_jitter else _seconds(caller, "jitter", jitter, False)
        self.deadline = _seconds(caller, "deadline", deadline, True)
        if type(backoff) not in (float, int) and (isinstance(backoff, bool) or not isinstance(backoff, numbers.Real)):
            raise TypeError(f"{caller}(): backoff must be a number, but got {_type_name(backoff)}")
        backoff = cast(float, backoff)  # a real number, checked above
        if not 1 <= backoff <= sys.float_info.max:  # a huge int fits no float: not finite either
            raise ValueError(f"{caller}(): backoff must be a finite number >= 1, but got {_shown(backoff)}")
        for hook, fn in (("on_retry", on_retry), ("sleep", sleep), ("clock", clock)):
            if not callable(fn) and not (fn is None and hook != "clock"):
                raise TypeError(f"{caller}(): {hook} must be callable, but got {fn!r}")
        for hook, fn in (("retry_if", retry_if), ("retry_on_result", retry_on_result), ("wait_from", wait_from)):
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"{caller}(): {hook} must be a function or None, but got {_type_name(fn)}")
            if inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"{caller}(): {hook} must be a plain function (it is called between attempts, never awaited), "
                    f"but got the async function {fn!r}"
                )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{caller}(): name must be a string or None, but got {_type_name(name)}")
        if name == "":
            raise ValueError(f"{caller}(): name must be a non-empty string, but got ''")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"{caller}(): rng must be a random.Random instance, but got {rng!r}")
        self.attempts = int(attempts)
        self.exceptions = types
        self.backoff = float(backoff)
        # Checked above: callable (or None where allowed).
        self.on_retry = cast("Callable[[BaseException | None, int, float], object] | None", on_retry)
        self.sleep = cast("Callable[[float], object] | None", sleep)
        self.clock = cast("Callable[[], float]", clock)
        self.rng = _default_rng if rng is None else rng
        self.caller = caller
        self.retry_if = cast("Callable[[BaseException], object] | None", retry_if)
        self.retry_on_result = cast("Callable[[Any], object] | None", retry_on_result)
        self.wait_from = cast("Callable[[BaseException], object] | None", wait_from)
        self.name = name
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
        if self.full_jitter:  # AWS "full jitter": uniform in [0, the capped backoff]
            if self.max_delay is not None and base > self.max_delay:
                base = self.max_delay
            return base if math.isinf(base) else self.rng.uniform(0.0, base)
        if self.jitter:
            base += self.rng.uniform(0.0, self.jitter)
        if self.max_delay is not None and base > self.max_delay:
            base = self.max_delay
        return base

    def ask(self, hook: str, fn: Callable[[Any], object], arg: object, exc: BaseException | None) -> bool:
        """``fn(arg)``, which must be a bool; an error it raises propagates with ``exc`` as its context."""
        try:
            answer = fn(arg)
        except BaseException as error:
            if exc is not None:
                _stop(error, exc)
            raise
        if answer is True or answer is False:
            return answer
        _close(answer)
        error = TypeError(f"{self.caller}(): {hook} must return a bool, but returned {_type_name(answer)}")
        if exc is not None:
            raise error from exc
        raise error

    def waited(self, exc: BaseException) -> float | None:
        """``wait_from(exc)`` checked and capped by ``max_delay``; ``None``: use the computed delay."""
        try:
            seconds = cast("Callable[[BaseException], object]", self.wait_from)(exc)  # only called when set
        except BaseException as error:
            _stop(error, exc)
            raise
        if seconds is None:
            return None
        _close(seconds)
        if type(seconds) not in (float, int) and (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real)):
            raise TypeError(
                f"{self.caller}(): the delay wait_from returned must be a number of seconds, but got "
                f"{_type_name(seconds)}"
            ) from exc
        seconds = cast(float, seconds)  # a real number, checked above
        if seconds != seconds:  # NaN (math.isnan would overflow on a huge int)
            raise ValueError(
                f"{self.caller}(): the delay wait_from returned must be a finite number of seconds, but got nan"
            ) from exc
        if seconds <= 0:  # a Retry-After date already past: retry at once
            return 0.0
        if self.max_delay is not None and seconds > self.max_delay:
            return self.max_delay
        if seconds > _LONGEST and self.deadline is None:
            raise ValueError(
                f"{self.caller}(): wait_from returned {_shown(seconds)} (seconds), past the longest sleep accepted "
                f"({_LONGEST:g} s); pass max_delay= to cap it, or deadline= to give up instead"
            ) from exc
        # Past _LONGEST (inf included), the deadline rule gives up before sleeping it.
        return math.inf if seconds > _LONGEST else float(seconds)

    def check_sync_hooks(self, caller: str, what: str) -> None:
        """Refuse an ``async def`` ``sleep``/``on_retry`` where nothing would await it."""
        for name in ("sleep", "on_retry"):
            if inspect.iscoroutinefunction(getattr(self, name)):
                raise TypeError(
                    f"{caller}(): {name} is an async function, which {what} cannot await; "
                    "pass a plain function, or retry an `async def` function / use `async for` in a coroutine"
                )


def _close(value: object) -> None:
    """Close a coroutine returned where a value was expected: no "never awaited" warning on top of our error."""
    if inspect.iscoroutine(value):
        value.close()


_NOTE = "torch.utils.retry: "


def _add_note(exc: BaseException, note: str) -> None:
    """Add ``note`` to ``exc``, best-effort: an exception that takes no note propagates unchanged."""
    try:
        notes = getattr(exc, "__notes__", None)
        if note == _NOT_RETRIED and isinstance(notes, list) and note in notes:
            return  # the same error raised again by a later call: one such note is enough
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(note)
        else:
            # Python 3.10 has no BaseException.add_note: do what it does (PEP 678),
            # which 3.11+ tracebacks and the exceptiongroup backport print.
            if notes is None:
                notes = exc.__notes__ = []  # type: ignore[attr-defined]  # typeshed has __notes__ on 3.11+ only
            notes.append(note)
        # The same error object raised again and again (a cached one) would gather notes without
        # bound: keep only this module's newest _KEPT + 1 notes (a give-up writes at most that many).
        notes = exc.__notes__  # type: ignore[attr-defined]
        ours = [i for i, n in enumerate(notes) if isinstance(n, str) and n.startswith(_NOTE)]
        if len(ours) > _KEPT + 1:
            for i in reversed(ours[: len(ours) - _KEPT - 1]):
                del notes[i]
    except Exception:
        pass


def _set_context(exc: BaseException, context: BaseException | None) -> None:
    """``exc.__context__ = context``, best-effort (an exception class may refuse attribute writes)."""
    try:
        exc.__context__ = context
    except Exception:
        pass


def _str(exc: BaseException) -> str:
    """``str(exc)``, or what :mod:`traceback` prints when that raises."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def _blocks_event_loop() -> bool:
    asyncio = sys.modules.get("asyncio")  # no asyncio imported: no event loop runs
    return asyncio is not None and asyncio._get_running_loop() is not None


_NO_CALL = object()


class RetryStatistics:
    r"""What a retried call did: read-only, from ``wrapped.statistics`` or a :func:`retry_loop`'s ``statistics``.

    ``wrapped.statistics`` describes the last call of ``wrapped`` that
    finished (returned or raised); a call in progress keeps its figures to
    itself until it ends, so calls in concurrent threads or tasks never mix
    their figures: each call publishes them at once when it ends, and the
    object then shows the call that ended last (a generator's call ends when
    the generator does).  Each property reads the latest published call;
    :meth:`as_dict` reads all four from one call.  A :func:`retry_loop`'s
    ``statistics`` describes that loop, updated as each attempt starts and
    as a block's error is caught (so a ``break`` after it leaves that error
    in ``last_exception``).

    Attributes:
        attempts (int): attempts started (0 before any call finished).
        slept (float): seconds slept between attempts, in total (0 when
            :func:`set_testing` is on): the sleeps that ran to their end; one
            cut short (by a timeout, a task's cancellation, an interrupt) is
            not counted.
        start (float | None): the ``clock`` reading (:func:`time.monotonic`
            by default) when the first attempt began; ``None`` before any call,
            or when the call was traced by :func:`torch.compile` (no clock is
            read in a graph).
        last_exception (BaseException | None): the error of the last attempt
            that raised, ``None`` if none did.

    Example::

        >>> from torch.utils.retry import retry
        >>> @retry(attempts=3, exceptions=KeyError, sleep=lambda s: None)
        ... def get(d):
        ...     return d.pop("x")
        >>> get({"x": 1}), get.statistics.attempts
        (1, 1)
        >>> try:
        ...     get({})
        ... except KeyError:
        ...     pass
        >>> get.statistics.attempts, type(get.statistics.last_exception).__name__
        (3, 'KeyError')
    """

    __slots__ = ("_record",)

    def __init__(self) -> None:
        # _NO_CALL; a first attempt's start (or None) for a call that succeeded at once, which is all the
        # success path stores; or (attempts, slept, start, last_exception).
        self._record: object = _NO_CALL

    def _fields(self) -> tuple[int, float, float | None, BaseException | None]:
        record = self._record
        if type(record) is tuple:
            return record
        if record is _NO_CALL:
            return (0, 0.0, None, None)
        return (1, 0.0, cast("float | None", record), None)  # a call that succeeded at once: its start

    @property
    def attempts(self) -> int:
        return self._fields()[0]

    @property
    def slept(self) -> float:
        return self._fields()[1]

    @property
    def start(self) -> float | None:
        return self._fields()[2]

    @property
    def last_exception(self) -> BaseException | None:
        return self._fields()[3]

    def as_dict(self) -> dict[str, Any]:
        """The four figures, all from the same call: ``attempts``, ``slept``, ``start``, ``last_exception``."""
        attempts, slept, start, last = self._fields()
        return {"attempts": attempts, "slept": slept, "start": start, "last_exception": last}

    def __repr__(self) -> str:
        attempts, slept, start, last = self._fields()
        return f"RetryStatistics(attempts={attempts}, slept={slept:.3g}, start={start!r}, last_exception={last!r})"


def _start(clock: Callable[[], float]) -> float | None:
    """The start of a call, by ``clock``; ``None`` under torch.compile, which cannot trace a clock."""
    return None if _compiling() else clock()


class _Testing:
    """What :func:`set_testing` returns: the switch is already set; a ``with`` block (or each call of a
    function it decorates) holds it until it exits."""

    __slots__ = ("_enabled",)

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def __repr__(self) -> str:
        return f"set_testing({self._enabled})"

    def __enter__(self) -> None:
        with _testing_lock:
            if self in _unentered:  # a block after all, not a plain call
                _unentered.remove(self)
            _blocks.append(self)
            _update_testing()

    def __exit__(self, *exc_info: object) -> None:
        with _testing_lock:
            if self in _blocks:
                _blocks.remove(self)
            _update_testing()

    def __call__(self, fn: _F) -> _F:
        """``@set_testing(True)``: hold the setting during each call of ``fn`` (a function or ``async def``)."""
        with _testing_lock:  # a decorator, not a plain call: it sets nothing, even if refused below
            if self in _unentered:
                _unentered.remove(self)
            _update_testing()
        if not callable(fn):
            raise TypeError(f"{self!r} decorates a function, but got {_type_name(fn)}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"{self!r} cannot decorate the generator function {fn!r}: a generator runs between its "
                "caller's steps; use `with set_testing(...):` around the code that iterates it"
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def holding_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return cast(_F, holding_async)

        @functools.wraps(fn)
        def holding(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return cast(_F, holding)


# The switch's state; every change holds _testing_lock, then recomputes _testing (the one value the
# sleep path reads).  _blocks: the `with set_testing(...)` blocks running, in the order entered.
# _unentered: the latest calls not entered (yet) as a block nor used as a decorator, oldest first: plain
# calls, or objects to be entered later.  The latest of them gives the value while no block runs; only
# the last _UNENTERED_KEPT are kept (an older one matters only if all of those are entered later).
_testing_lock = threading.Lock()
_blocks: list[_Testing] = []
_unentered: list[_Testing] = []
_UNENTERED_KEPT = 64


def _update_testing() -> None:
    global _testing
    if _blocks:
        _testing = _blocks[-1]._enabled
    else:
        _testing = _unentered[-1]._enabled if _unentered else False


def set_testing(enabled: bool) -> _Testing:
    r"""For tests only: make every retry of this process sleep zero seconds.

    While on, :func:`retry` and :func:`retry_loop` still compute their delays
    (``on_retry``, the notes and the deadline rule see them), but sleep 0
    seconds (``sleep(0)`` / ``asyncio.sleep(0)``), so a test of code that
    retries takes no wall time.  It costs one global read per retry, on the
    sleep path only.  Call it as ``set_testing(True)`` (until
    ``set_testing(False)``), as ``with set_testing(True):``, which holds
    the setting until the block exits, or as a decorator,
    ``@set_testing(True)`` on a test function (or ``async def``), which holds
    it during each call.  The switch is process-wide: do not leave it on in
    production.

    Blocks may overlap, in threads or asyncio tasks, and exit in any order:
    while any ``with set_testing(...)`` block runs, the switch has the value
    of the block entered last among those still running; once none runs, it
    has the value of the latest plain call (``False`` if none; an object
    created by ``set_testing(...)`` and entered later counts as a plain call
    only until it is entered).  So
    overlapping ``with set_testing(True):`` blocks never leave it on after
    the last one exits, and a plain call made inside a block takes effect
    when no block runs any more.

    Args:
        enabled: ``True`` to make the sleeps zero, ``False`` to sleep again.

    Returns:
        A context manager holding the setting while its block runs, and a
        decorator holding it during each call.

    Raises:
        TypeError: ``enabled`` is not a bool; as a decorator, the object
            decorated is not callable or is a generator function.

    Example::

        >>> from torch.utils.retry import is_testing, retry, set_testing
        >>> with set_testing(True):
        ...     is_testing()
        True
        >>> is_testing()
        False
    """
    if type(enabled) is not bool:
        raise TypeError(f"set_testing(): enabled must be a bool, but got {_type_name(enabled)}")
    call = _Testing(enabled)
    with _testing_lock:
        _unentered.append(call)
        del _unentered[:-_UNENTERED_KEPT]
        _update_testing()
    return call


def is_testing() -> bool:
    r"""Whether :func:`set_testing` made retries sleep zero seconds.

    Example::

        >>> from torch.utils.retry import is_testing, set_testing
        >>> with set_testing(True):
        ...     is_testing()
        True
        >>> is_testing()
        False
    """
    return _testing


class _Run:
    """The state of one retried call or loop: which attempt runs, since when, the errors kept."""

    __slots__ = ("policy", "start", "number", "kept", "dropped", "slept", "last", "stats")

    def __init__(self, policy: _Policy, start: float | None, stats: RetryStatistics | None = None) -> None:
        self.policy = policy
        self.start = start
        self.number = 1
        self.kept: list[tuple[BaseException, str]] = []
        self.dropped = 0
        self.slept = 0.0
        self.last: BaseException | None = None
        self.stats = stats

    def publish(self) -> None:
        """Show this run's figures in its statistics (one attribute store: atomic)."""
        if self.stats is not None:
            self.stats._record = (self.number, self.slept, self.start, self.last)

    def past_deadline(self, delay: float) -> bool:
        policy = self.policy
        if policy.deadline is None:
            return False
        if self.start is None:  # the first attempt ran compiled: count from now
            self.start = policy.clock()
        _reading(policy.caller, self.start)
        return _reading(policy.caller, policy.clock()) + delay - self.start > policy.deadline

    def result_failed(self, value: object) -> float | None:
        """``retry_on_result`` judged ``value``: the sleep before the next attempt, or ``None`` to return it."""
        policy = self.policy
        judge = cast("Callable[[Any], object]", policy.retry_on_result)  # only called when set
        if not policy.ask("retry_on_result", judge, value, None):
            return None
        if self.number >= policy.attempts:
            return None
        delay = policy.next_delay(self.number - 1)
        return None if self.past_deadline(delay) else delay

    def failed(self, exc: BaseException) -> float:
        """Record that the current attempt failed; return the sleep before the next one, or raise ``exc``."""
        if _never_retried(exc):  # even with exceptions=BaseException: a cancelled task stays cancelled
            raise exc
        self.last = exc
        policy = self.policy
        if policy.retry_if is not None and not policy.ask("retry_if", policy.retry_if, exc, exc):
            raise exc  # not retryable after all: unchanged, unrecorded
        kept = self.kept
        if kept and exc.__context__ is None and all(exc is not e for e, _ in kept):
            _set_context(exc, kept[-1][0])
        number = self.number
        delay = 0.0
        reason = None
        if number >= policy.attempts:
            reason = f"no attempts left ({policy.attempts})"
        else:
            waited = None if policy.wait_from is None else policy.waited(exc)
            delay = policy.next_delay(number - 1) if waited is None else waited
            if self.past_deadline(delay):
                reason = f"the next attempt would start past the {policy.deadline:g} s deadline"
        summary = f"attempt {number} of {policy.attempts} failed with {type(exc).__name__}: {_str(exc)}"
        if len(kept) == _KEPT:  # forget the oldest kept attempt, and unchain its error
            oldest = kept.pop(0)[0]
            if kept and kept[0][0].__context__ is oldest:
                _set_context(kept[0][0], None)
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
            _add_note(exc, f"{_NOTE}attempts 1 to {self.dropped} failed too (only the last {_KEPT} are kept)")
        for _, note in kept:
            _add_note(exc, f"{_NOTE}{note}")
        raise exc


def _reading(caller: str, value: object) -> float:
    """A ``clock()`` reading, checked: a clock that returns NaN or a non-number would disable ``deadline``."""
    if type(value) not in (float, int) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{caller}(): clock must return a number of seconds, but returned {_type_name(value)}")
    if value != value or value in (math.inf, -math.inf):  # NaN or infinite
        raise ValueError(f"{caller}(): clock must return a finite number of seconds, but returned {value!r}")
    return value  # type: ignore[return-value]


def _sync(result: object, exc: BaseException | None, caller: str, name: str) -> None:
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
        _set_context(error, exc)


def _pause(run: _Run, exc: BaseException, caller: str, hint: str, stacklevel: int) -> None:
    """After a failed attempt: record it (or raise), call ``on_retry``, sleep, move to the next attempt."""
    _wait(run, exc, run.failed(exc), caller, hint, stacklevel + 1)


def _wait(run: _Run, exc: BaseException | None, delay: float, caller: str, hint: str, stacklevel: int) -> None:
    """Call ``on_retry``, sleep ``delay``, move to the next attempt (``exc`` is ``None`` after a result retry)."""
    policy = run.policy
    if policy.on_retry is not None:
        try:
            result = policy.on_retry(exc, run.number, delay)
        except BaseException as error:
            if exc is not None:
                _stop(error, exc)
            raise
        _sync(result, exc, caller, "on_retry")
    if _testing:
        delay = 0.0
    sleep = time.sleep if policy.sleep is None else policy.sleep
    if sleep is time.sleep and delay > 0 and _blocks_event_loop():
        # One warning per call site (the message does not vary).
        warnings.warn(
            f"{caller}(): time.sleep blocks the running event loop for the whole backoff; {hint}",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    _sync(sleep(delay), exc, caller, "sleep")
    run.slept += delay
    run.number += 1


async def _apause(run: _Run, exc: BaseException) -> None:
    """:func:`_pause` for the asynchronous forms: awaits ``on_retry`` and ``sleep`` when they return awaitables."""
    await _await(run, exc, run.failed(exc))


async def _await(run: _Run, exc: BaseException | None, delay: float) -> None:
    """:func:`_wait` for the asynchronous forms."""
    policy = run.policy
    if policy.on_retry is not None:
        try:
            result = policy.on_retry(exc, run.number, delay)
            if inspect.isawaitable(result):
                await result
        except BaseException as error:
            if exc is not None:
                _stop(error, exc)
            raise
    if _testing:
        delay = 0.0
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
    run.slept += delay
    run.number += 1


class Attempt:
    r"""One attempt of a :func:`retry_loop`; use it as ``with attempt:`` around the work.

    A retryable exception raised in the block is recorded and suppressed, and the
    loop goes on to the next attempt (or raises the final error); any other
    exception propagates at once.  A block that completes ends the loop.  The
    same ``with attempt:`` serves ``for`` and ``async for`` loops.

    With ``retry_on_result=``, the block reports its result as
    ``attempt.result = value``: the loop retries while
    ``retry_on_result(value)`` is true and ends after the first result it
    accepts, or, when attempts run out, after the last result (the block has
    it, as ``attempt.result`` too).  A block that completes without setting
    ``attempt.result`` then raises :class:`RuntimeError`.

    Attributes:
        number (int): this attempt's number, from 1.
        attempts (int): the most attempts the loop makes.
        result: what the block reported (unset until it does).

    Example::

        >>> from torch.utils.retry import retry_loop
        >>> for attempt in retry_loop(attempts=3):
        ...     with attempt:
        ...         print("attempt", attempt.number)
        attempt 1
    """

    __slots__ = ("number", "attempts", "result", "_exceptions", "_entered", "_exception", "_block", "_run")

    result: Any  # unset until the block reports its result

    def __init__(
        self,
        number: int,
        attempts: int,
        exceptions: tuple[type[BaseException], ...],
        block: Any = None,
        run: _Run | None = None,
    ) -> None:
        self.number = number
        self.attempts = attempts
        self._exceptions = exceptions
        self._entered = False
        self._exception: BaseException | None = None
        self._block = block
        self._run = run

    def __enter__(self) -> Self:
        if self._entered:
            raise RuntimeError(
                f"retry_loop(): attempt {self.number} was already used; each attempt runs one `with` block"
            )
        self._entered = True
        if self._block is not None:
            self._block.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._block is not None:
            self._block.__exit__(exc_type, exc, tb)
        if exc is not None and isinstance(exc, self._exceptions) and not _never_retried(exc):
            self._exception = exc
            if self._run is not None:  # shown at once: a `break` after this block ends the loop here
                self._run.last = exc
                self._run.publish()
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
    jitter: float | str = 0.0,
    deadline: float | None = None,
    on_retry: Callable[[BaseException | None, int, float], object] | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_on_result: Callable[[Any], bool] | None = None,
    wait_from: Callable[[BaseException], float | None] | None = None,
    name: str | None = None,
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
      the running generator.  The call ends, for ``wrapped.statistics``, when
      the generator does (exhausted, raised or closed); an error raised after
      the first item is its ``last_exception``.

    An object whose ``__call__`` is one of these, or a :func:`functools.partial`
    of one, counts as that kind.  A plain function that merely returns a
    coroutine (``lambda: fetch()``) is a plain function: its coroutine is
    returned unretried, so decorate the ``async def`` itself.

    Args:
        fn: the function to wrap; omit it to get a decorator.
        attempts: the most calls made, the first one included (``>= 1``).
        exceptions: the exception class, or tuple of classes, that is retried;
            anything else propagates at once.  :class:`asyncio.CancelledError`,
            :class:`KeyboardInterrupt`, :class:`SystemExit`,
            :class:`GeneratorExit` and the interrupt of a
            :mod:`torch.utils.timeout` block whose deadline passed are never
            retried (``BaseException`` included): they propagate at once,
            unrecorded, whether raised by an attempt, ``on_retry`` or the
            backoff sleep.
        delay: the sleep before the first retry, in seconds.
        backoff: the factor by which the sleep grows after each retry (``>= 1``).
        max_delay: the longest sleep, jitter included; ``None`` for no cap.
        jitter: a random ``U(0, jitter)`` seconds added to each sleep, so that
            workers that failed together do not retry together; or ``"full"``:
            each sleep is drawn uniform in ``[0, min(delay * backoff**k,
            max_delay)]`` ("full jitter", AWS Architecture Blog, *Exponential
            Backoff And Jitter*).
        deadline: seconds from the first call after which no new attempt
            starts: the policy gives up when the next sleep would end past it.
            ``None`` for no limit.  It does not interrupt a running attempt
            (see :func:`torch.utils.timeout.timeout`).
        on_retry: called as ``on_retry(exc, attempt, next_delay)`` before each
            sleep, ``attempt`` being the number of the attempt that failed
            (``exc`` is ``None`` when ``retry_on_result`` rejected its value); the
            asynchronous forms await what it returns if that is awaitable.  An
            exception it raises stops the retries and propagates in place of
            ``exc``, with ``exc`` as its ``__context__`` (``exc`` itself gets no
            notes then).
        sleep: how to wait; ``None`` for :func:`time.sleep`, or
            :func:`asyncio.sleep` in the asynchronous forms, which await what it
            returns if that is awaitable (tests pass a fake to take no wall time;
            pass ``trio.sleep`` under trio).
        clock: the monotonic clock ``deadline`` is measured with.  Where the
            deadline rule reads it, a reading that is not a number raises
            :class:`TypeError`, and a NaN or infinite one :class:`ValueError`
            (either would disable ``deadline`` silently).
        rng: the :class:`random.Random` jitter is drawn from; pass a seeded one
            for a reproducible schedule.
        retry_if: called as ``retry_if(exc)`` on an error that ``exceptions``
            let through; ``False`` raises ``exc`` at once, unchanged (no note,
            no report).  ``None``: retry every such error.
        retry_on_result: called as ``retry_on_result(value)`` on what an
            attempt returned; ``True`` retries (with the same backoff, and
            ``on_retry`` called with ``None`` for ``exc``).  When no attempt is
            left (or the deadline rule gives up) the last value is *returned*,
            as ``backoff``'s ``on_predicate`` does; ``wrapped.statistics``
            tells how many attempts it took.  Not for generator functions.
        wait_from: called as ``wait_from(exc)`` before each retry after an
            error; seconds to sleep instead of the computed delay (e.g. a
            server's ``Retry-After``), capped by ``max_delay``, with no jitter
            added, and subject to the ``deadline`` rule; ``None`` to use the
            computed delay.  A negative value (a ``Retry-After`` date already
            past) retries at once; any larger value, ``inf`` included, is
            capped by ``max_delay``; without ``max_delay``, a value past
            ``1e9`` seconds gives up by the ``deadline`` rule, or raises
            :class:`ValueError` when there is no ``deadline``; NaN raises
            :class:`ValueError`.
        name: a :mod:`torch.utils.telemetry` name: each attempt is timed under
            it (its ``count`` counts attempts, ``errors`` failed ones).  Timing
            runs eagerly: with a name, ``torch.compile(fullgraph=True)`` stops
            with telemetry's message.

    The predicates (``retry_if``, ``retry_on_result``) must return a
    :class:`bool`: anything else raises :class:`TypeError` (a predicate that
    forgot its ``return`` would otherwise never retry).  An error raised by
    ``retry_if``, ``retry_on_result`` or ``wait_from`` propagates at once,
    with the attempt's error as its ``__context__``; a bad ``wait_from``
    result raises :class:`TypeError` or :class:`ValueError` chained from it.

    ``wrapped.statistics`` is a :class:`RetryStatistics`: attempts, seconds
    slept, start and last error of the last call that finished (figures of
    concurrent calls never mix).  :func:`set_testing` makes every sleep zero.

    Returns:
        The wrapped function (or, without ``fn``, a decorator making one).

    Raises:
        TypeError: ``fn`` is a class (retry a function that constructs it),
            ``fn``, ``on_retry``, ``sleep`` or ``clock`` is not callable,
            ``retry_if``, ``retry_on_result`` or ``wait_from`` is neither
            callable nor ``None`` or is an ``async def`` function, ``fn`` is a
            :class:`classmethod` or :class:`staticmethod` object (put ``@retry``
            below it), ``jitter`` is neither a number nor a
            string, ``name`` is not a string, ``retry_on_result`` is given for
            a generator function,
            ``exceptions`` is not exception classes, ``attempts`` is not an int
            (a bool is not), a duration or ``backoff`` is not a number, or
            ``sleep``/``on_retry`` is an ``async def`` function while ``fn`` is not.
        ValueError: ``attempts < 1``; a duration (``delay``, ``max_delay``,
            ``jitter``, ``deadline``) negative, NaN, infinite or above ``1e9``
            seconds; a ``jitter`` string other than ``"full"``; an empty
            ``name``; ``backoff`` below 1 or not finite (an int past the float
            range included); or, with neither
            ``max_delay`` nor ``deadline``, a schedule whose last sleep would
            pass ``1e9`` seconds.

    The error raised when the policy gives up is the last attempt's, with the
    earlier ones chained as its ``__context__`` and one note per attempt; both
    keep the last 10 attempts (one more note counts the others).  An error
    object raised again by later calls (a cached one) keeps only this module's
    newest 11 notes.  Notes and chaining are best-effort: an exception that
    refuses them (a ``__notes__`` that is not a list, a ``__setattr__`` that
    refuses writes) propagates unchanged, and one whose ``str()`` raises is
    named ``<exception str() failed>`` in the notes.  On Python
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
        eager result; under ``fullgraph=True``, where nothing may break the
        graph, it stops the compilation with a message saying to apply
        ``@retry`` outside the compiled region (``retry_on_result`` retries
        stay in the graph).

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
        "retry",
        attempts,
        exceptions,
        delay,
        backoff,
        max_delay,
        jitter,
        deadline,
        on_retry,
        sleep,
        clock,
        rng,
        retry_if,
        retry_on_result,
        wait_from,
        name,
    )

    def decorate(fn: _F) -> _F:
        if isinstance(fn, (classmethod, staticmethod)):
            wrapper_kind = type(fn).__name__
            raise TypeError(
                f"retry(): cannot wrap a {wrapper_kind} object; put @retry below @{wrapper_kind} (nearer the function), "
                f"but got {fn!r}"
            )
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
        generator = inspect.isasyncgenfunction(kind) or inspect.isgeneratorfunction(kind)
        if generator and policy.retry_on_result is not None:
            raise TypeError(
                f"retry(): retry_on_result does not apply to the generator function {fn!r}: a generator is "
                "retried until its first item; retry a function that returns a value instead"
            )
        call = fn
        if policy.name is not None:  # each attempt timed (and counted) by torch.utils.telemetry
            from torch.utils.telemetry import telemetry

            call = telemetry(fn, name=policy.name)
        stats = RetryStatistics()
        if inspect.isasyncgenfunction(kind):
            wrapper = _retry_async_generator(policy, fn, call, stats)
        elif inspect.iscoroutinefunction(kind):
            wrapper = _retry_coroutine(policy, fn, call, stats)
        elif inspect.isgeneratorfunction(kind):
            policy.check_sync_hooks("retry", "a generator function")
            wrapper = _retry_generator(policy, fn, call, stats)
        else:
            policy.check_sync_hooks("retry", "a synchronous function")
            wrapper = _retry_function(policy, fn, call, stats)
        cast(Any, wrapper).statistics = stats
        return cast(_F, wrapper)

    return decorate if fn is None else decorate(fn)


_SYNC_HINT = "decorate an `async def` function instead (it sleeps with asyncio.sleep), or pass sleep="
_LOOP_HINT = "use `async for attempt in retry_loop(...)` in a coroutine (it sleeps with asyncio.sleep)"


def _retry_function(
    policy: _Policy, fn: Callable[..., Any], call: Callable[..., Any], stats: RetryStatistics
) -> Callable[..., Any]:
    retried = policy.exceptions
    clock = policy.clock
    if policy.retry_on_result is not None:

        @functools.wraps(fn)
        def checking(*args: Any, **kwargs: Any) -> Any:
            return _call_checking(policy, call, args, kwargs, _start(clock), stats)

        return checking

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = None if _compiling() else clock()  # _start(clock), inlined: this is the success path
        try:
            result = call(*args, **kwargs)
        except retried as e:
            exc = e
        else:
            stats._record = start  # the whole success path: one store
            return result
        return _call_again(policy, call, args, kwargs, exc, start, stats)

    return wrapper


def _call_again(
    policy: _Policy,
    fn: Callable[..., Any],
    args: Any,
    kwargs: Any,
    exc: BaseException,
    start: float | None,
    stats: RetryStatistics,
) -> Any:
    run = _Run(policy, start, stats)
    try:
        while True:
            _pause(run, exc, "retry", _SYNC_HINT, 4)  # _pause, _call_again, wrapper, the caller
            try:
                return fn(*args, **kwargs)
            except policy.exceptions as e:
                exc = e
    finally:
        run.publish()


# The failure path runs eagerly (sleep, callbacks, notes): a fullgraph=True compilation reaching it says so.
_FAILURE_EAGER = (
    "@retry retries eagerly (its sleep, callbacks and notes run on the host), so an attempt that fails cannot be "
    "retried inside a fullgraph=True compilation: apply @retry outside the compiled region, e.g. "
    "retry(torch.compile(fn, fullgraph=True)), or compile without fullgraph=True"
)
stay_eager(_call_again, "@retry", _FAILURE_EAGER)


def _call_checking(
    policy: _Policy, fn: Callable[..., Any], args: Any, kwargs: Any, start: float | None, stats: RetryStatistics
) -> Any:
    run = _Run(policy, start, stats)
    try:
        while True:
            try:
                result = fn(*args, **kwargs)
            except policy.exceptions as e:
                _pause(run, e, "retry", _SYNC_HINT, 4)  # _pause, _call_checking, wrapper, the caller
            else:
                delay = run.result_failed(result)
                if delay is None:
                    return result
                _wait(run, None, delay, "retry", _SYNC_HINT, 4)
    finally:
        run.publish()


def _retry_coroutine(
    policy: _Policy, fn: Callable[..., Any], call: Callable[..., Any], stats: RetryStatistics
) -> Callable[..., Any]:
    retried = policy.exceptions
    clock = policy.clock
    checked = policy.retry_on_result is not None

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = _start(clock)
        if not checked:
            try:
                result = await call(*args, **kwargs)
            except retried as e:
                exc: BaseException | None = e
            else:
                stats._record = start
                return result
        else:
            exc = None
        run = _Run(policy, start, stats)
        try:
            while True:
                if exc is not None:
                    await _apause(run, exc)
                try:
                    result = await call(*args, **kwargs)
                except retried as e:
                    exc = e
                else:
                    exc = None
                    if not checked:
                        return result
                    delay = run.result_failed(result)
                    if delay is None:
                        return result
                    await _await(run, None, delay)
        finally:
            run.publish()

    return wrapper


def _retry_generator(
    policy: _Policy, fn: Callable[..., Any], call: Callable[..., Any], stats: RetryStatistics
) -> Callable[..., Any]:
    retried = policy.exceptions

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _Run(policy, _start(policy.clock), stats)
        value: Any = None  # bound by the loop before it breaks (bound here for mypy, which cannot tell)
        try:  # the call ends when the generator does: its figures are published then
            while True:
                gen = call(*args, **kwargs)
                exc: BaseException  # declared for mypy, which otherwise cannot tell it is bound below
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
                step: Callable[[Any], Any] = gen.send  # both bound below; here for mypy, which cannot tell
                arg: Any = None
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
                except BaseException as e:
                    if not isinstance(e, GeneratorExit):
                        run.last = e
                    if isinstance(e, retried) and e is not arg and not _never_retried(e):
                        _add_note(e, _NOT_RETRIED)
                    raise
        finally:
            run.publish()

    return wrapper


def _retry_async_generator(
    policy: _Policy, fn: Callable[..., Any], call: Callable[..., Any], stats: RetryStatistics
) -> Callable[..., Any]:
    retried = policy.exceptions

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _Run(policy, _start(policy.clock), stats)
        value: Any = None  # bound by the loop before it breaks (bound here for mypy, which cannot tell)
        try:  # the call ends when the generator does: its figures are published then
            while True:
                agen = call(*args, **kwargs)
                exc: BaseException  # declared for mypy, which otherwise cannot tell it is bound below
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
                step: Callable[[Any], Any] = agen.asend  # both bound below; here for mypy, which cannot tell
                arg: Any = None
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
                except BaseException as e:
                    if not isinstance(e, GeneratorExit):
                        run.last = e
                    if isinstance(e, retried) and e is not arg and not _never_retried(e):
                        _add_note(e, _NOT_RETRIED)
                    raise
        finally:
            run.publish()

    return wrapper


class _RetryLoop(_Run):
    """What :func:`retry_loop` returns (and the state of its run): iterate it once, with ``for`` or ``async for``."""

    __slots__ = ("_used", "_block")

    def __init__(self, policy: _Policy) -> None:
        super().__init__(policy, None, RetryStatistics())
        self._used = False
        self._block = None
        if policy.name is not None:  # each attempt's block timed (and counted) by torch.utils.telemetry
            from torch.utils.telemetry import telemetry

            self._block = telemetry(policy.name)

    @property
    def statistics(self) -> RetryStatistics:
        """This loop's :class:`RetryStatistics`, updated as each attempt starts."""
        return cast(RetryStatistics, self.stats)  # always given by __init__

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("retry_loop(): this loop was already iterated; call retry_loop() for each loop")
        self._used = True
        self.start = _start(self.policy.clock)

    def __iter__(self) -> Iterator[Attempt]:
        self._claim()
        if self.policy.sleep is not None or self.policy.on_retry is not None:
            self.policy.check_sync_hooks("retry_loop", "a `for` loop")
        return _loop(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        self._claim()
        return _aloop(self)


def _judged(run: _RetryLoop, attempt: Attempt) -> float | None:
    """A block completed: the sleep before the next attempt (its result is retried), or ``None``: done."""
    if run.policy.retry_on_result is None:
        return None
    try:
        result = attempt.result
    except AttributeError:
        raise RuntimeError(
            f"retry_loop(): retry_on_result is set, but attempt {attempt.number} completed without a result; "
            "write `attempt.result = value` in the block"
        ) from None
    return run.result_failed(result)


def _loop(run: _RetryLoop) -> Iterator[Attempt]:
    policy = run.policy
    while True:
        attempt = Attempt(run.number, policy.attempts, policy.exceptions, run._block, run)
        run.publish()
        yield attempt
        exc = attempt._outcome()
        if exc is not None:
            try:
                _pause(run, exc, "retry_loop", _LOOP_HINT, 3)  # _pause, _loop, the `for` statement
            finally:
                run.publish()
            continue
        delay = _judged(run, attempt)
        if delay is None:
            return
        _wait(run, None, delay, "retry_loop", _LOOP_HINT, 3)


async def _aloop(run: _RetryLoop) -> AsyncIterator[Attempt]:
    policy = run.policy
    while True:
        attempt = Attempt(run.number, policy.attempts, policy.exceptions, run._block, run)
        run.publish()
        yield attempt
        exc = attempt._outcome()
        if exc is not None:
            try:
                await _apause(run, exc)
            finally:
                run.publish()
            continue
        delay = _judged(run, attempt)
        if delay is None:
            return
        await _await(run, None, delay)


def retry_loop(
    *,
    attempts: int = 3,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    delay: float = 0.0,
    backoff: float = 2.0,
    max_delay: float | None = None,
    jitter: float | str = 0.0,
    deadline: float | None = None,
    on_retry: Callable[[BaseException | None, int, float], object] | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
    retry_on_result: Callable[[Any], bool] | None = None,
    wait_from: Callable[[BaseException], float | None] | None = None,
    name: str | None = None,
) -> _RetryLoop:
    r"""Retry a block: ``for attempt in retry_loop(...): with attempt: ...``.

    Takes the arguments of :func:`retry` (without ``fn``) and yields
    :class:`Attempt` objects.  With ``retry_on_result``, the block reports
    its result as ``attempt.result = value`` (see :class:`Attempt`); when the
    attempts run out the loop ends after the last result, which the block
    holds.  ``statistics`` on the returned object is this loop's
    :class:`RetryStatistics`; with ``name``, each attempt's block is timed by
    :mod:`torch.utils.telemetry` under that name.  The loop ends after the first attempt whose
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
            loop asked for the next one, the loop is iterated twice, or, with
            ``retry_on_result``, a block completed without ``attempt.result``.

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
            "retry_loop",
            attempts,
            exceptions,
            delay,
            backoff,
            max_delay,
            jitter,
            deadline,
            on_retry,
            sleep,
            clock,
            rng,
            retry_if,
            retry_on_result,
            wait_from,
            name,
        )
    )
