r"""
Bound the run time of a block or a call: ``with timeout(5.0): ...``.

:func:`timeout` (a duration) and :func:`timeout_at` (an absolute
:func:`time.monotonic` deadline) return a :class:`Timeout`, usable as a
context manager or as a decorator.  When the deadline passes while the block
runs, the block is interrupted and the ``with`` statement raises the builtin
:class:`TimeoutError`.  :func:`move_on` and :func:`move_on_at` (trio's
``move_on_after`` / ``move_on_at``) interrupt the block the same way but leave
it silently: execution goes on after the ``with``, and ``expired()`` tells.
The semantics follow :func:`asyncio.timeout` and trio's cancel scopes:

* deadlines are absolute; nested blocks each keep their own, the earliest one
  fires, and the block that owns it is the one that raises
  :class:`TimeoutError` and reports ``expired()``; an inner block whose timeout
  was caught never disturbs the outer one;
* the interrupt is only ever delivered while the block's body runs: once the
  ``with`` statement has finished, nothing can arrive late;
* a block that reaches its end is never turned into a failure: if the deadline
  passes while it is already leaving, it exits normally and ``expired()`` is
  ``True``;
* like a trio cancel scope, the deadline holds until the block is left: an
  expired block that keeps running without the interrupt on its way out (the
  body caught it, or the interpreter dropped it in a finalizer) is interrupted
  again, 1 ms later and then at doubling intervals up to 0.1 s.  Inside an
  asyncio task the deadline is one cancellation, as with
  :func:`asyncio.timeout`: a body that catches the
  :class:`asyncio.CancelledError` and does not re-raise it is not cancelled
  again; it runs on to its end, the block exits without
  :class:`TimeoutError` (:func:`move_on` leaves normally) and ``expired()``
  is ``True``;
* a module import or a :func:`torch.compile` compilation started inside the
  block is never cut short (that would leave a half-initialized module or
  inconsistent Dynamo state behind, breaking every later import or compile):
  the interrupt waits for its end.

How a block is interrupted:

* in the main thread on Unix, by a ``SIGALRM`` interval timer
  (:func:`signal.setitimer`).  The handler and timer that were installed before
  the outermost block are restored when it exits, and that handler still runs
  when that timer fires during a block.  While a block is active, ``SIGALRM``
  and ``ITIMER_REAL`` of the main thread are the block's: a timer armed inside
  it (:func:`signal.setitimer`, :func:`signal.alarm`) replaces the block's own,
  delays its deadline until that timer fires and never runs the user's handler;
  a handler installed inside it (``SIG_IGN`` included) takes the signal from the
  block and is replaced by the previous one when the outermost block exits.
  Arm your own ``SIGALRM`` timer before the block, or run the block in another
  thread (the watchdog below);
* in any other thread (and on every other OS), by one shared watchdog thread
  that keeps all deadlines in a heap and raises the interrupt in the owning
  thread with ``PyThreadState_SetAsyncExc``.  The watchdog starts on first use
  (never at import), is a daemon stopped at interpreter exit, and is reset in a
  child process after :func:`os.fork`.  An error inside it is reported through
  :func:`threading.excepthook` and it keeps serving;
* inside an asyncio task (``with`` or ``async with`` in a coroutine, or
  ``@timeout`` on an ``async def``, whose wrapper is a coroutine function), by
  cancelling that task, as :func:`asyncio.timeout` does (also on Python 3.10,
  which has no ``asyncio.timeout``): a callback on the task's own loop cancels
  it at the deadline, the cancellation lands at the ``await`` the task is
  suspended in, and the block turns it into :class:`TimeoutError`.  No signal,
  no asynchronous exception, no other task is touched, in the main thread's
  loop or any other thread's; a cancellation of the task from elsewhere stays a
  :class:`asyncio.CancelledError`.  A block that cannot ``await`` (in a plain
  function or a generator called from the coroutine) is not interrupted: the
  loop does not run until it is left, so it runs to its end and ``expired()``
  tells whether the deadline passed.  Prefer ``async with`` over ``with`` in a
  coroutine: a deadline passing just as the last ``await`` of the block
  completes leaves a cancellation pending, which ``async with`` claims on its
  way out and a plain ``with`` cannot (it would cancel the next ``await``
  after the block, as with :func:`asyncio.timeout` before Python 3.13).

The interrupt (outside asyncio tasks) is an exception of a private class,
``torch.utils._timeout_interrupt._Interrupt``, derived from
:class:`BaseException` (like trio's ``Cancelled`` and
:class:`KeyboardInterrupt`) so that ``except Exception:`` in the body does not
catch it.  A body with ``except BaseException:`` or a bare ``except:`` sees it
(``type(e).__name__ == "_Interrupt"``): re-raise it, as ``KeyboardInterrupt``;
the block that owns it turns it into :class:`TimeoutError` (or, for
:func:`move_on`, ends silently), and it never leaves a ``with`` statement of
this module.  One that the body swallows is raised again (see above).  Inside
an asyncio task the interrupt is the task's :class:`asyncio.CancelledError`.

Generators: ``@timeout`` refuses a generator or async generator function with
:class:`TypeError` (a deadline over the whole iteration would also run while
the consumer holds it); put ``with timeout(...)`` inside the generator, or
around each ``next()``.  A block inside a generator that spans a ``yield``
never interrupts the consumer: while the generator is suspended its deadline
waits, and the interrupt (or cancellation) lands soon after the generator runs
again (checked at doubling intervals up to 0.1 s).  If an enclosing block of
the consumer is left while the generator is suspended, the generator's block
is dropped with it and no longer has a deadline.

A process forked inside a block (:func:`os.fork`, :mod:`multiprocessing` with
``fork``, :class:`~torch.utils.data.DataLoader` workers, persistent or not)
inherits no deadline: in the child the block keeps running with no limit
(``when()`` is ``None``).  A :class:`~torch.utils.data.DataLoader` loop cut
short by the interrupt can stop while a batch is in transfer from a worker;
with the default ``file_descriptor`` sharing strategy, that worker's
:mod:`multiprocessing` resource-sharing thread may then print a
``BrokenPipeError`` or ``ConnectionResetError`` traceback on stderr as the
workers shut down.  It is that batch being dropped, harmless; to avoid it, test
``scope.remaining()`` between batches and ``break``.  In the parent, a deadline that passes during
:func:`os.fork` waits until it returns: the interrupt never lands in the at-fork
hooks of libraries imported before this module (where it would be dropped and
leave, say, :mod:`logging`'s module lock held).

The deadline of :func:`timeout` counts from entering the block, not from
creating the :class:`Timeout` (before entering, ``when()`` is ``None``); that
of :func:`timeout_at` is fixed from the start.  After
:meth:`~Timeout.reschedule`, the :class:`TimeoutError` names the rescheduled
deadline.

Durations (any real number: ``int``, ``float``, :class:`fractions.Fraction`,
NumPy floats) up to :data:`threading.TIMEOUT_MAX` seconds (about 292 years, the
longest wait the platform can arm) are accepted; ``math.inf`` and ``None`` mean
no limit; anything longer, NaN, or a negative duration is a :class:`ValueError`
naming the limit, and a wrong type a :class:`TypeError`.

Failures are reported to :func:`torch.utils.error_callback.report` with
``source="torch.utils.timeout"``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import math
import numbers
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, cast, NoReturn, TypeVar
from threading import get_ident
from typing_extensions import Self

from torch.utils import _timeout_signal, _timeout_task, _timeout_watchdog, error_callback
from torch.utils._eager import stay_eager
from torch.utils._timeout_signal import (
    _arm_timer,
    _HAS_ITIMER,
    _install_signal_mode,
    _leave as _signal_leave,
    _uninstall_signal_mode,
)
from torch.utils._timeout_watchdog import _leave as _watchdog_leave, _watch
from torch.utils._timeout_interrupt import (
    _CREATED,
    _ENTERED,
    _EXITED,
    _EXPIRED,
    _entries,
    _EXPIRING,
    _Interrupt,
    _Scopes,
    _thread_scopes,
)


__all__ = ["Timeout", "move_on", "move_on_at", "timeout", "timeout_at"]

_F = TypeVar("_F", bound=Callable[..., Any])

# Whether a block is entered inside an asyncio task (torch imports asyncio anyway).
_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


def _enter(scope: Timeout) -> None:
    scopes = _thread_scopes()
    stack = scopes.stack
    scope._scopes = scopes
    scope._seq = next(_entries)
    scope._frame = sys._getframe(2)  # the frame running the ``with`` (through __enter__)
    when = scope._when
    finite = when is not None and when < math.inf
    try:
        # On the stack before any timer is armed: a deadline already passed fires at once.
        stack.append(scope)
        scope._state = _ENTERED
        if len(stack) == 1:
            # The outermost block of the thread chooses how its deadlines are delivered.
            scopes.mode = "watchdog"
            if _HAS_ITIMER and get_ident() == _timeout_signal._main_ident and _install_signal_mode(
                scopes, when if finite else None
            ):
                return
        if finite:
            if scopes.mode == "signal":
                _arm_timer(scopes)
            else:
                _watch(scope, cast(float, when))  # finite: not None
    except BaseException:
        # Leave nothing behind: no stack entry, no handler, no timer.
        if scope in stack:
            stack.remove(scope)
        if not stack:
            if scopes.mode == "signal":
                _uninstall_signal_mode(scopes)
            scopes.mode = ""
        scope._state = _CREATED
        scope._frame = None
        raise


def _exit(scope: Timeout, exc: BaseException | None) -> bool:
    scope._frame = None  # the frame holds the block's Timeout: no cycle left behind
    if scope._scopes.mode == "signal":
        state, inner_expired = _signal_leave(scope)
    else:
        state, inner_expired = _watchdog_leave(scope)
    # C code that calls back into Python (Dynamo's frame-evaluation hook, say) may wrap an
    # interrupt raised in the callback as the cause of a SystemError: still our interrupt.
    wrapped = isinstance(exc, SystemError) and isinstance(exc.__cause__, _Interrupt)
    interrupted = wrapped or isinstance(exc, _Interrupt)
    if state is _EXPIRING or (inner_expired and interrupted):
        scope._state = _EXPIRED if state is _EXPIRING else _EXITED
        if interrupted and scope._silent and state is _EXPIRING:
            return True  # move_on: its own interrupt ends the block silently
        if interrupted:
            err = TimeoutError(f"the block exceeded {scope._describe()} and was interrupted")
            error_callback.report(err, source="torch.utils.timeout", timeout=scope)
            # interrupted: exc is the interrupt (or the SystemError wrapping it), never None
            raise err.with_traceback(cast(BaseException, exc).__traceback__) from (exc if wrapped else None)
    elif state is _ENTERED and exc is None and scope._when is not None and scope._when <= time.monotonic():
        # The deadline passed before the interrupt could be delivered (a deadline already
        # passed on entry, or one passing as the block leaves): the body reached its end,
        # which is never made a failure, but the block did expire.  (A block left by an
        # exception, an enclosing block's interrupt say, or already dropped, keeps its state.)
        scope._state = _EXPIRED
    return False


# The longest wait the platform can arm: ``Condition.wait`` and ``signal.setitimer`` both
# count in nanoseconds in a 64-bit integer (about 292 years).
_MAX_SECONDS = threading.TIMEOUT_MAX


def _number(value: object, name: str, caller: str, expected: str) -> float:
    # ``value`` as a float: TypeError for a non-number, ValueError for NaN and for an int
    # too large for a float (beyond any platform limit).
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{caller}(): {name} must be {expected}, but got {value!r} "
            f"of type {type(value).__qualname__}, not a real number (int or float)"
        )
    try:
        value = float(value)
    except OverflowError:
        size = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else f"{value!r}"
        raise ValueError(
            f"{caller}(): {name} must be {expected}, at most threading.TIMEOUT_MAX = {_MAX_SECONDS:g} s away, "
            f"but got {size}"
        ) from None
    if math.isnan(value):
        raise ValueError(f"{caller}(): {name} must be {expected}, but got {value!r}")
    return value


def _check_seconds(value: object, name: str, caller: str) -> float | None:
    if value is None:
        return None
    expected = "a non-negative number of seconds or None"
    value = _number(value, name, caller, expected)
    if value < 0:
        raise ValueError(f"{caller}(): {name} must be {expected}, but got {value!r}")
    if _MAX_SECONDS < value < math.inf:
        raise ValueError(
            f"{caller}(): {name} must be at most threading.TIMEOUT_MAX = {_MAX_SECONDS:g} s (the longest wait "
            f"the platform can arm), or math.inf or None for no limit, but got {value!r}"
        )
    return value


def _check_deadline(value: object, name: str, caller: str) -> float | None:
    if value is None:
        return None
    value = _number(value, name, caller, "a monotonic time or None")
    if _MAX_SECONDS < value - time.monotonic() < math.inf:
        raise ValueError(
            f"{caller}(): {name} must be a monotonic time at most threading.TIMEOUT_MAX = {_MAX_SECONDS:g} s "
            f"after time.monotonic() (the longest wait the platform can arm), or math.inf or None for no limit, "
            f"but got {value!r}"
        )
    return value


class Timeout:
    r"""A deadline for a block of code; create it with :func:`timeout` or :func:`timeout_at`.

    Used as a context manager, a :class:`Timeout` bounds one ``with`` block and
    can be entered once.  Used as a decorator, it bounds every call of the
    function, each call getting a fresh deadline (``seconds`` after the call
    starts for :func:`timeout`; the same absolute deadline for :func:`timeout_at`).

    Its state moves ``created -> active -> (expiring ->) expired | finished``;
    calling a method in a state where it means nothing raises
    :class:`RuntimeError` naming the state.

    Example::

        >>> from torch.utils.timeout import timeout
        >>> with timeout(10.0) as t:
        ...     total = sum(range(1000))
        >>> t.expired()
        False
    """

    __slots__ = (
        "_when", "_seconds", "_rescheduled", "_state", "_scopes", "_task", "_frame",
        "_redeliver_at", "_redeliver_delay", "_silent", "_seq", "_expired_seq", "__weakref__",
    )

    def __init__(self, when: float | None, *, seconds: float | None = None) -> None:
        if when is not None and (when.__class__ is not float or when != when):
            when = _check_deadline(when, "when", "Timeout")
        if seconds is not None and seconds.__class__ is not float:
            seconds = _check_seconds(seconds, "seconds", "Timeout")
        self._when = when
        self._seconds = seconds
        self._rescheduled = False
        self._state = _CREATED
        self._scopes: _Scopes
        self._frame: Any = None
        self._redeliver_at = 0.0
        self._redeliver_delay = 0.0
        self._task: Any = None  # inside an asyncio task: its _timeout_task._TaskBlock
        self._silent = False  # move_on / move_on_at: leave the block silently at the deadline
        self._seq = 0  # when it was entered, and when it expired (see _timeout_interrupt._owner)
        self._expired_seq = 0

    def when(self) -> float | None:
        r"""Return the deadline as a :func:`time.monotonic` time, or ``None`` for no limit.

        A block given ``math.inf`` has ``when()`` ``math.inf`` once entered (as
        :meth:`asyncio.Timeout.when`), ``None`` before; both mean no limit.

        The deadline of :func:`timeout` counts from entering the block: before
        the block is entered, ``when()`` is ``None`` (and :meth:`remaining` is
        the whole duration); :func:`timeout_at` has its deadline from the start.

        Example::

            >>> import time
            >>> from torch.utils.timeout import timeout_at
            >>> timeout_at(time.monotonic() + 5).when() is not None
            True
            >>> from torch.utils.timeout import timeout
            >>> t = timeout(5.0)
            >>> t.when() is None    # counted from entering the block
            True
            >>> with t:
            ...     t.when() is not None
            True
        """
        return self._when

    def remaining(self) -> float | None:
        r"""Return the seconds left before the deadline (``0.0`` once passed), or ``None`` for no limit.

        Example::

            >>> from torch.utils.timeout import timeout
            >>> with timeout(60.0) as t:
            ...     0 < t.remaining() <= 60.0
            True
        """
        if self._when is None:
            return self._seconds  # not entered yet: the whole duration (None: no limit)
        return max(0.0, self._when - time.monotonic())

    def expired(self) -> bool:
        r"""Return whether the deadline passed while the block was running.

        ``True`` for the block that owned the deadline that fired, including a
        block that had reached its end when the deadline passed (it exits
        normally: so does ``with timeout(0): pass``, whose deadline passed before
        its body could be interrupted); ``False`` for blocks nested in it, whose
        own deadline did not fire.  Inside an asyncio task, every block whose own
        deadline passed says ``True`` (as with :func:`asyncio.timeout`), also an
        inner one with the same deadline as the outer block that owns the
        cancellation.  For :func:`move_on`, this is how to tell
        that the block was left at its deadline.

        Example::

            >>> from torch.utils.timeout import timeout
            >>> with timeout(None) as t:
            ...     pass
            >>> t.expired()
            False
        """
        return self._state in (_EXPIRING, _EXPIRED)

    def reschedule(self, when: float | None) -> None:
        r"""Move the deadline to ``when`` (a :func:`time.monotonic` time), or remove it with ``None``.

        May be called from any thread, also for a block running in an asyncio
        task of another thread's loop (the loop is woken to take the new deadline).

        Args:
            when: the new absolute deadline, or ``None`` for no limit.

        Raises:
            RuntimeError: the block is not active (not entered yet, or already
                finished or expiring).
            TypeError: ``when`` is not a number or ``None``.
            ValueError: ``when`` is NaN, or further than
                :data:`threading.TIMEOUT_MAX` seconds away (``math.inf`` is no limit).

        Example::

            >>> import time
            >>> from torch.utils.timeout import timeout
            >>> with timeout(None) as t:
            ...     t.reschedule(time.monotonic() + 30)
            ...     t.when() is not None
            True
        """
        when = _check_deadline(when, "when", "reschedule")
        if self._state is not _ENTERED:
            self._not_active()
        self._rescheduled = True
        if self._task is not None:
            self._when = when
            loop = self._task.task.get_loop()
            if _get_running_loop() is loop:
                _timeout_task._schedule(self)
            else:
                # From another thread: the task's callbacks belong to its loop, which may be
                # asleep in a long wait; wake it to schedule the new deadline there.
                loop.call_soon_threadsafe(_timeout_task._reschedule, self)
        elif self._scopes.mode == "signal":
            if not _timeout_signal._reschedule(self, when):
                self._not_active()  # it exited meanwhile, in its own thread
        else:
            _timeout_watchdog._reschedule(self, when)

    def _not_active(self) -> NoReturn:
        raise RuntimeError(
            f"Timeout.reschedule(): cannot reschedule a timeout that is {self._state.value}; only an active "
            f"block (inside its ``with``) can be rescheduled"
        )

    def _watched(self, at: float) -> bool:
        # A heap entry is live while the block is active and the entry is not from before
        # a reschedule to a later deadline (retries after the deadline are live), and
        # while the block is expiring, for the check that its interrupt arrived.  While a
        # block's deadline is paused (in a suspended generator), only the retry is live.
        if self._state is _EXPIRING:
            return at >= self._redeliver_at
        return self._state is _ENTERED and self._when is not None and at >= self._when and at >= self._redeliver_at

    def _start(self) -> None:
        # A duration counts from entering the block: the deadline is set here.
        if self._when is None and self._seconds is not None:
            self._when = time.monotonic() + self._seconds

    def __enter__(self) -> Self:
        if self._state is not _CREATED:
            raise RuntimeError(f"A timeout can be entered once; this one is {self._state.value}")
        self._start()
        if _get_running_loop() is None:
            _enter(self)
        else:
            task = _current_task()
            if task is not None:
                _timeout_task._enter(self, task)
            else:
                _enter(self)  # a plain callback of the loop: bounded like any code of its thread
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        # Everything inside the ``try``: an interrupt the watchdog decided on while the body
        # ran may arrive at the first instruction here.
        try:
            if self._task is not None:
                return _timeout_task._exit(self, exc, asyncio.CancelledError)
            return _exit(self, exc)
        except _Interrupt as interrupt:
            if self._task is not None:
                # An enclosing block of the thread (not of the task) expired: leave, pass it on.
                if self._state is _ENTERED or self._state is _EXPIRING:
                    _timeout_task._exit(self, None, asyncio.CancelledError)
                raise interrupt from None
            # Delivered on the way out, before _exit took the watchdog's lock (the watchdog
            # decided while the body was still running).  The body has ended: finish
            # leaving normally, unless the interrupt belongs to an enclosing block.
            if self._state is _ENTERED or self._state is _EXPIRING:
                _exit(self, None)
            if any(s._state is _EXPIRING for s in self._scopes.stack):
                raise interrupt from None
            return False

    async def __aenter__(self) -> Self:
        # Not through __enter__: _enter records the frame two calls up, the awaiting one.
        if self._state is not _CREATED:
            raise RuntimeError(f"A timeout can be entered once; this one is {self._state.value}")
        self._start()
        task = _current_task() if _get_running_loop() is not None else None
        if task is not None:
            _timeout_task._enter(self, task)
        else:
            _enter(self)  # no asyncio task (a coroutine driven by hand or by another framework)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._task is not None:
            if exc is None and self._state is _EXPIRING:
                return await _timeout_task._aexit(self, exc)  # may have to claim a pending cancellation
            return _timeout_task._exit(self, exc, asyncio.CancelledError)
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"timeout(): {self!r} decorates a callable, but got {fn!r}")
        if self._silent:
            raise TypeError(
                f"move_on() cannot decorate {getattr(fn, '__qualname__', fn)!r}: at the deadline the call would "
                f"return None as if it had finished.  Put ``with move_on(...)`` inside the function, or decorate "
                f"with @timeout(...), which raises TimeoutError"
            )
        if self._state is not _CREATED:
            raise RuntimeError(f"Cannot decorate with a timeout that is {self._state.value}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"timeout() cannot decorate the generator function {fn.__qualname__!r}: a deadline over the whole "
                f"iteration would also run while the consumer holds it.  Put ``with timeout(...)`` around the work "
                f"inside the generator, or around each ``next()`` in the consumer"
            )
        seconds, when = self._seconds, self._when

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                deadline = when if seconds is None else time.monotonic() + seconds
                async with Timeout(deadline, seconds=seconds):
                    return await fn(*args, **kwargs)

            return cast(_F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            deadline = when if seconds is None else time.monotonic() + seconds
            with Timeout(deadline, seconds=seconds):
                return fn(*args, **kwargs)

        # Signals and the watchdog thread cannot be traced: torch.compile runs this frame
        # eagerly and still compiles ``fn`` itself; fullgraph=True stops here with our reason.
        return cast(_F, stay_eager(wrapper, "@timeout"))

    def _describe(self) -> str:
        if self._rescheduled:
            if self._when is None:
                return "no limit (rescheduled)"
            return f"its rescheduled deadline (time.monotonic() = {self._when:.3f})"
        if self._seconds is not None:
            return f"its time limit of {self._seconds:g} s"
        if self._when is not None:
            return f"its deadline (time.monotonic() = {self._when:.3f})"
        return "no limit"

    def __repr__(self) -> str:
        kind = "move_on, " if self._silent else ""
        return f"<Timeout [{self._state.value}] {kind}{self._describe()}>"


def timeout(seconds: float | None) -> Timeout:
    r"""Bound a block or each call of a function to ``seconds``; raise :class:`TimeoutError` past it.

    Args:
        seconds: the time limit in seconds, counted from entering the block (or
            from each call, as a decorator); ``None`` means no limit.

    Returns:
        Timeout: the handle, with :meth:`~Timeout.expired`,
        :meth:`~Timeout.remaining`, :meth:`~Timeout.when` and
        :meth:`~Timeout.reschedule`.

    Raises:
        TypeError: ``seconds`` is not a number or ``None``; as a decorator,
            the decorated object is not callable, or is a generator or async
            generator function (see the module's documentation).
        ValueError: ``seconds`` is negative, NaN, or more than
            :data:`threading.TIMEOUT_MAX` (about 292 years, the longest wait the
            platform can arm); ``math.inf`` means no limit, like ``None``.

    .. note:: The interrupt is a Python exception, raised between two bytecodes
        of the block.  Code that does not run Python bytecode cannot be
        interrupted: a blocking C call (a lock wait, a socket read without its
        own timeout, a long ``torch`` operator), a running GPU kernel (the
        block is interrupted at the next synchronization point returning to
        Python), or ``time.sleep`` in a thread other than the main one.  Such a
        block raises :class:`TimeoutError` as soon as control returns to Python
        bytecode, after its deadline.  In the main thread ``SIGALRM`` also
        interrupts ``time.sleep`` and blocking I/O on Unix.  Like any
        asynchronous exception, the interrupt can land in any Python code the
        block runs, library code included: keep cleanup in ``finally`` and
        ``with`` blocks, which it unwinds through (they are not interrupted
        again while it is on its way out).  If it lands in a ``__del__``
        finalizer or a weak-reference or garbage-collector callback (frequent
        inside :func:`torch.compile`), the interpreter reports it as "Exception
        ignored" and drops it; the block is then interrupted again in its own
        code, as it is when the body swallows the interrupt.  Imports and
        :func:`torch.compile` compilations started inside the block run to
        their end before the interrupt is raised: a block whose deadline passes
        during a long compile raises once the compile returns.  Code that Dynamo
        runs around a compiled call is not interrupted either; the compiled
        code itself is.

    .. note:: Inside an asyncio task the deadline cancels the task instead (see
        the module's documentation): ``with timeout(s):`` or ``async with
        timeout(s):`` around ``await`` calls, and ``@timeout(s)`` on an ``async
        def`` (the wrapper is a coroutine function), raise :class:`TimeoutError`
        like :func:`asyncio.timeout`, on every supported Python.

    .. note:: Under :func:`torch.compile`, the arming and disarming of the
        deadline is excluded from tracing (as by :func:`torch.compiler.disable`): a
        compiled function called inside the block is interrupted between graphs.
        ``torch.compile(fullgraph=True)`` over a function decorated with ``@timeout``
        fails with a message saying to apply ``@timeout`` outside the compiled region;
        over a ``with timeout(...)`` (or :func:`timeout_at`, :func:`move_on`,
        :func:`move_on_at`) block, with a message saying to put the block around the
        compiled call.  A :class:`Timeout` created outside the compiled function and
        entered inside it fails with Dynamo's own "Dynamo does not know how to enter
        a ``Timeout`` context manager" (without ``fullgraph=True``, all of these run
        eagerly around the compiled graphs).

    Example::

        >>> from torch.utils.timeout import timeout
        >>> try:
        ...     with timeout(0.05) as t:
        ...         while True:
        ...             pass
        ... except TimeoutError:
        ...     print("expired:", t.expired())
        expired: True
        >>> @timeout(5.0)
        ... def step(x):
        ...     return x + 1
        >>> step(1)
        2
    """
    # The deadline is set when the block is entered (see Timeout._start).
    return Timeout(None, seconds=_check_seconds(seconds, "seconds", "timeout"))


def timeout_at(deadline: float | None) -> Timeout:
    r"""Bound a block to an absolute :func:`time.monotonic` ``deadline``; raise :class:`TimeoutError` past it.

    Args:
        deadline: the :func:`time.monotonic` time at which the block is
            interrupted; ``None`` means no limit.  A deadline already passed
            interrupts the block at once (a body that ends before the interrupt
            lands, like ``pass``, exits normally with ``expired()`` ``True``).

    Returns:
        Timeout: the handle (see :func:`timeout`).

    Raises:
        TypeError: ``deadline`` is not a number or ``None``.
        ValueError: ``deadline`` is NaN, or more than
            :data:`threading.TIMEOUT_MAX` seconds after :func:`time.monotonic`
            (``math.inf`` means no limit, like ``None``).

    Example::

        >>> import time
        >>> from torch.utils.timeout import timeout_at
        >>> deadline = time.monotonic() + 10.0   # one budget shared by several steps
        >>> with timeout_at(deadline):
        ...     a = sum(range(100))
        >>> with timeout_at(deadline):
        ...     b = sum(range(100))
    """
    return Timeout(_check_deadline(deadline, "deadline", "timeout_at"))


def move_on(seconds: float | None) -> Timeout:
    r"""Bound a block to ``seconds``; past it, leave the block silently (trio's ``move_on_after``).

    The block is interrupted at the deadline exactly as by :func:`timeout` (in
    any thread, and by cancelling the current task inside an asyncio task), but
    the ``with`` statement swallows that interrupt instead of raising
    :class:`TimeoutError`: execution goes on after the block, and
    :meth:`~Timeout.expired` tells whether it was cut short.  Only the
    interrupt of this very block is swallowed: an enclosing block's deadline, a
    cancellation of the task from elsewhere, and any exception the body raises
    pass through unchanged.  When nested blocks expire together, the outermost
    expired one owns the interrupt (as in trio): the blocks inside it are
    unwound and, in a thread, report ``expired()`` ``False``; inside an asyncio
    task, each of them whose own deadline passed reports ``True`` (as with
    :func:`asyncio.timeout`), and execution still goes on after the outermost.  A block left silently is not a
    failure and is not reported to :func:`torch.utils.error_callback.report`.

    Unlike :func:`timeout`, the result cannot decorate a function (a call cut
    short would return ``None`` as if it had finished): that raises
    :class:`TypeError`.  :meth:`~Timeout.when`, :meth:`~Timeout.remaining` and
    :meth:`~Timeout.reschedule` work as for :func:`timeout`.

    Args:
        seconds: the time limit in seconds, counted from entering the block;
            ``None`` (or ``math.inf``) means no limit.

    Returns:
        Timeout: the handle, used with ``with`` or ``async with``.

    Raises:
        TypeError: ``seconds`` is not a number or ``None``.
        ValueError: ``seconds`` is negative, NaN, or more than
            :data:`threading.TIMEOUT_MAX` (see :func:`timeout`).

    Example::

        >>> from torch.utils.timeout import move_on
        >>> with move_on(0.05) as scope:
        ...     while True:    # stands for work that may not finish in time
        ...         pass
        >>> scope.expired()
        True
    """
    scope = Timeout(None, seconds=_check_seconds(seconds, "seconds", "move_on"))
    scope._silent = True
    return scope


def move_on_at(deadline: float | None) -> Timeout:
    r"""Bound a block to an absolute :func:`time.monotonic` ``deadline``; past it, leave the block silently.

    The non-raising form of :func:`timeout_at` (trio's ``move_on_at``): see
    :func:`move_on` for the semantics.

    Args:
        deadline: the :func:`time.monotonic` time at which the block is left;
            ``None`` (or ``math.inf``) means no limit.

    Returns:
        Timeout: the handle, used with ``with`` or ``async with``.

    Raises:
        TypeError: ``deadline`` is not a number or ``None``.
        ValueError: ``deadline`` is NaN, or more than
            :data:`threading.TIMEOUT_MAX` seconds after :func:`time.monotonic`.

    Example::

        >>> import time
        >>> from torch.utils.timeout import move_on_at
        >>> with move_on_at(time.monotonic() + 10.0) as scope:
        ...     total = sum(range(100))
        >>> scope.expired()
        False
    """
    scope = Timeout(_check_deadline(deadline, "deadline", "move_on_at"))
    scope._silent = True
    return scope


def _block_reason(name: str) -> str:
    return (
        f"torch.utils.timeout.{name}() runs eagerly (a deadline on the host clock), so it cannot be traced into "
        f"a fullgraph=True compilation: put the ``with {name}(...)`` block around the compiled call, e.g. "
        f"``with {name}(s): torch.compile(fn, fullgraph=True)(x)``, or compile without fullgraph=True"
    )


# Like the wrapper of @timeout: a fullgraph=True compilation that reaches one of these fails
# with our reason instead of Dynamo's generic "marked as skipped".
for _fn in (timeout, timeout_at, move_on, move_on_at):
    stay_eager(_fn, _fn.__name__, _block_reason(_fn.__name__))
del _fn


def _before_fork() -> None:
    # Registered after the standard library's hooks, so run before them (and ours after
    # them, in the parent): no interrupt lands in another library's at-fork hook.
    _thread_scopes().forking = True
    _timeout_watchdog._watchdog.before_fork()


def _after_fork_in_parent() -> None:
    _timeout_watchdog._watchdog.after_fork_in_parent()
    _thread_scopes().forking = False


def _after_fork_in_child() -> None:
    # A child forked inside a block (a DataLoader worker, say) keeps running in it, but
    # must not get the parent's deadline: the blocks of the thread that forked stay on
    # its stack, so that leaving them works, with no deadline.
    _timeout_watchdog._watchdog.after_fork_in_child()
    scopes = _thread_scopes()
    scopes.forking = False
    for scope in scopes.stack:
        scope._when = None
        scope._redeliver_at = math.inf
    _timeout_signal._after_fork_in_child(scopes)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
atexit.register(_timeout_watchdog._watchdog.stop)
