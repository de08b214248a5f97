r"""
Bound the run time of a block or a call: ``with timeout(5.0): ...``.

:func:`timeout` (a duration) and :func:`timeout_at` (an absolute
:func:`time.monotonic` deadline) return a :class:`Timeout`, usable as a
context manager or as a decorator.  When the deadline passes while the block
runs, the block is interrupted and the ``with`` statement raises the builtin
:class:`TimeoutError`.  The semantics follow :func:`asyncio.timeout` and trio's
cancel scopes:

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
  again, 1 ms later and then at doubling intervals up to 0.1 s;
* a module import or a :func:`torch.compile` compilation started inside the
  block is never cut short (that would leave a half-initialized module or
  inconsistent Dynamo state behind, breaking every later import or compile):
  the interrupt waits for its end.

How a block is interrupted:

* in the main thread on Unix, by a ``SIGALRM`` interval timer
  (:func:`signal.setitimer`).  The handler and timer that were installed before
  are restored when the outermost block exits, and a user's own ``SIGALRM``
  handler still runs when its own timer fires during a block;
* in any other thread (and on every other OS), by one shared watchdog thread
  that keeps all deadlines in a heap and raises the interrupt in the owning
  thread with ``PyThreadState_SetAsyncExc``.  The watchdog starts on first use
  (never at import), is a daemon stopped at interpreter exit, and is reset in a
  child process after :func:`os.fork`.

Failures are reported to :func:`torch.utils.error_callback.report` with
``source="torch.utils.timeout"``.
"""

from __future__ import annotations

import _signal
import atexit
import ctypes
import enum
import functools
import heapq
import itertools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from typing_extensions import Self

import torch
from torch.utils import error_callback


__all__ = ["Timeout", "timeout", "timeout_at"]

_F = TypeVar("_F", bound=Callable[..., Any])

_HAS_ITIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
# The smallest interval setitimer takes; used to fire "now" for a deadline already passed.
_MIN_DELAY = 1e-6
# When the interrupt falls inside this module's own bookkeeping, try again this much later.
_RETRY_DELAY = 1e-4
# An expired block still running without the interrupt on its way out (the interpreter
# dropped it in a finalizer or a callback, or C code or the body swallowed it) is
# interrupted again after this delay, doubling up to the cap.
_REDELIVER_FIRST = 1e-3
_REDELIVER_MAX = 0.1


class _State(enum.Enum):
    CREATED = "created"
    ENTERED = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    EXITED = "finished"


# As module constants: the exit path must not run Python code between two calls (see _exit).
_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = _State


class _Interrupt(BaseException):
    # Raised inside the body at the deadline.  A BaseException, like trio's Cancelled,
    # so that ``except Exception:`` inside the block does not swallow it; the owning
    # block turns it into TimeoutError.
    pass


# Our own prototypes of the C API function: setting argtypes on the shared
# ctypes.pythonapi attribute would change it for every other library in the process.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def _in_bookkeeping(frame: Any) -> bool:
    # Entering and leaving a block runs code of this module; an interrupt raised there
    # would escape the ``with`` statement instead of unwinding the body.
    return frame is not None and frame.f_code.co_filename == __file__


# Dynamo compiles a frame under this file's functions (tracing and the backend compiler);
# the rest of torch/_dynamo runs as callbacks of its C frame-evaluation hook, which turns
# an exception raised in them into a SystemError.
_DYNAMO_DIR = os.path.join(os.path.dirname(torch.__file__), "_dynamo", "")
_DYNAMO_CONVERT_FRAME = os.path.join(_DYNAMO_DIR, "convert_frame.py")
_STDLIB_DIR = os.path.join(os.path.dirname(os.__file__), "")


def _in_dynamo(frame: Any) -> bool:
    # Whether Dynamo's own code is running there, also through a standard-library helper
    # it called (``random.setstate`` restoring the RNG around a compiled call, say).
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_STDLIB_DIR) or "-packages" in filename:
            return filename.startswith(_DYNAMO_DIR)
        frame = frame.f_back
    return False


def _wait_delay(frame: Any, owner: Timeout | None) -> float | None:
    # How long to put the interrupt off, or None to raise it now.  Not now: in our own
    # bookkeeping (see above; over in microseconds), while the block imports a module or
    # compiles with torch.compile, or while a Python ``sys.unraisablehook`` (pytest's,
    # say) reports a dropped interrupt.  Both imports and compiles cut short leave global
    # state behind that breaks every later one: a half-initialized module (whose next
    # import fills its registries again: torch._functorch's fails), Dynamo's counters.
    # Only those started inside the block count, not one that runs the block itself.
    if _in_bookkeeping(frame):
        return _RETRY_DELAY
    if owner is None:
        return None  # only a timer armed before ours is due: its handler runs now
    if _in_dynamo(frame):
        return _REDELIVER_FIRST  # compiled code itself runs in user and graph frames, not Dynamo's
    hook = sys.unraisablehook
    while isinstance(hook, functools.partial):
        hook = hook.func
    hook_code = getattr(hook, "__code__", None)
    while frame is not None and frame is not owner._frame:
        code = frame.f_code
        filename = code.co_filename
        if code is hook_code or filename == _DYNAMO_CONVERT_FRAME or filename.startswith("<frozen importlib._bootstrap"):
            return _REDELIVER_FIRST
        frame = frame.f_back
    return None


def _in_flight(exc: BaseException | None) -> bool:
    # Whether an interrupt is being handled (an ``except``/``finally``/``__exit__`` on its
    # way out runs with it as the handled exception), also as the context of another error.
    # A ``raise ... from None`` ends the search: that is how a block that owned an interrupt
    # turned it into TimeoutError, so code handling that error is the body again.
    seen = 0
    while exc is not None and seen < 100:
        if isinstance(exc, _Interrupt):
            return True
        if exc.__suppress_context__:
            return False
        exc = exc.__context__
        seen += 1
    return False


def _due_check(stack: list[Timeout], now: float) -> Timeout | None:
    # The outermost expiring block, if it is time to check that its interrupt arrived.
    scope = next((s for s in stack if s._state is _EXPIRING), None)
    return scope if scope is not None and scope._redeliver_at <= now else None


def _lost(stack: list[Timeout], now: float, handled: BaseException | None) -> Timeout | None:
    # The block whose check is due, if no interrupt is on its way out: raise it again.
    scope = _due_check(stack, now)
    return None if scope is None or _in_flight(handled) else scope


def _check_later(stack: list[Timeout], now: float) -> Timeout | None:
    # The block whose check is due while its interrupt is on its way out: move the check
    # on (doubling the interval) and return it, so the caller can re-arm.
    scope = _due_check(stack, now)
    if scope is not None:
        _expire(scope, now)
    return scope


def _expire(scope: Timeout, now: float) -> None:
    # Mark ``scope`` as being interrupted (again) and plan when to check the interrupt arrived.
    if scope._state is _ENTERED:
        scope._state = _EXPIRING
        scope._redeliver_delay = _REDELIVER_FIRST
    else:
        scope._redeliver_delay = min(2 * scope._redeliver_delay, _REDELIVER_MAX)
    scope._redeliver_at = now + scope._redeliver_delay


class _Scopes:
    """The active deadlines of one thread, outermost first."""

    __slots__ = ("stack", "ident", "mode", "prev_handler", "prev_expiry", "prev_interval")

    def __init__(self) -> None:
        self.stack: list[Timeout] = []
        self.ident = threading.get_ident()
        # "signal" or "watchdog", chosen when the outermost block of this thread enters.
        self.mode = ""
        # Main-thread signal mode: what was installed before the outermost block.
        self.prev_handler: Any = None
        self.prev_expiry: float | None = None
        self.prev_interval = 0.0


_local = threading.local()


def _thread_scopes() -> _Scopes:
    try:
        return _local.scopes
    except AttributeError:
        _local.scopes = _Scopes()
        return _local.scopes


_main_ident = threading.main_thread().ident


class _Watchdog:
    """One daemon thread raising the interrupt in threads whose deadline passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Timeout]] = []
        self._stale = 0
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, scope: Timeout, when: float) -> None:
        """Watch ``scope`` until ``when``; called with the lock held."""
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (when, next(self._counter), scope))
        if self._thread is None:
            self._start()
        elif when < earliest:
            self._wakeup.notify()

    def discard(self) -> None:
        """Note that one entry went stale; compact when most of the heap is stale."""
        self._stale += 1
        if self._stale > 64 and 2 * self._stale > len(self._heap):
            self._heap = [e for e in self._heap if e[2]._watched(e[0])]
            heapq.heapify(self._heap)
            self._stale = 0

    def _start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="torch.utils.timeout watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._lock:
            while not self._stopping:
                try:
                    self._serve()
                except Exception:
                    _report_uncaught()

    def _serve(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            when, _, scope = heapq.heappop(self._heap)
            if not scope._watched(when):
                self._stale = max(0, self._stale - 1)
                continue
            try:
                _fire_in_thread(scope._scopes, now)
            except Exception:
                _report_uncaught()
                heapq.heappush(self._heap, (now + _REDELIVER_MAX, next(self._counter), scope))  # try again
        self._wakeup.wait(min(self._heap[0][0] - now, _MAX_SECONDS) if self._heap else None)

    def stop(self) -> None:
        """Stop the thread (at interpreter exit); it restarts on the next use."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._wakeup.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def before_fork(self) -> None:
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        self._lock.release()

    def after_fork_in_child(self) -> None:
        # The watchdog thread does not exist in the child and the lock was held by the
        # forking thread: start afresh, with no deadline (a child inherits none).
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread = None
        self._stopping = False
        self._heap = []
        self._stale = 0


def _report_uncaught() -> None:
    # The watchdog never dies: every other thread's deadlines depend on it.  Report the
    # error as an uncaught one in this thread would be (threading.excepthook), and go on.
    threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), threading.current_thread())))  # type: ignore[arg-type]


_watchdog = _Watchdog()


def _fire_in_thread(scopes: _Scopes, now: float) -> None:
    # Watchdog side, lock held.  The outermost expired block owns the deadline (the
    # interrupt unwinds through every block inside it).
    owner = _owner(scopes.stack, now)
    if owner is None:
        handled = sys._current_exceptions().get(scopes.ident)
        if isinstance(handled, tuple):  # Python < 3.12: (type, value, traceback)
            handled = handled[1]
        owner = _lost(scopes.stack, now, handled)
        if owner is None:
            expiring = _check_later(scopes.stack, now)
            if expiring is not None:
                heapq.heappush(_watchdog._heap, (expiring._redeliver_at, next(_watchdog._counter), expiring))
            return
    # While this thread holds the GIL the target is parked between two bytecodes (or in
    # C code) and, on CPython, raises a pending exception exactly there when it resumes:
    # inject only if that spot is in the body, otherwise come back a little later.
    frame = sys._current_frames().get(scopes.ident)
    if frame is None:
        return  # the thread is gone
    delay = _wait_delay(frame, owner)
    if delay is not None:
        heapq.heappush(_watchdog._heap, (now + delay, next(_watchdog._counter), owner))
        return
    _expire(owner, now)
    if _set_async_exc(scopes.ident, _Interrupt) == 0:
        owner._state = _EXITED  # it exited between the look-up and here: nothing to do
        return
    heapq.heappush(_watchdog._heap, (owner._redeliver_at, next(_watchdog._counter), owner))


def _owner(stack: list[Timeout], now: float) -> Timeout | None:
    # The outermost expired block: the interrupt unwinds through every block inside it.
    for scope in stack:
        if scope._state is _EXPIRING:
            return None
        if scope._state is _ENTERED and scope._when is not None and scope._when <= now:
            return scope
    return None


def _earliest(stack: list[Timeout]) -> float | None:
    # Blocks inside an expiring one are being unwound: only those outside it can fire,
    # and the expiring one is checked again at its redelivery time.
    earliest = None
    for scope in stack:
        when = scope._when
        if scope._state is _EXPIRING:
            when = scope._redeliver_at
            if earliest is None or when < earliest:
                earliest = when
            break
        if scope._state is _ENTERED and when is not None and (earliest is None or when < earliest):
            earliest = when
    return earliest


def _arm_timer(scopes: _Scopes) -> None:
    # Main thread, signal mode: the timer fires at the earliest of our deadlines and of
    # the timer that was there before us.
    candidates = [w for w in (_earliest(scopes.stack), scopes.prev_expiry) if w is not None and w < math.inf]
    if candidates:
        signal.setitimer(signal.ITIMER_REAL, max(min(candidates) - time.monotonic(), _MIN_DELAY))
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _on_sigalrm(signum: int, frame: Any) -> None:
    scopes = _thread_scopes()
    now = time.monotonic()
    prev_due = scopes.prev_expiry is not None and scopes.prev_expiry <= now
    owner = _owner(scopes.stack, now)
    if owner is None:
        owner = _lost(scopes.stack, now, sys.exc_info()[1])
        if owner is None:
            _check_later(scopes.stack, now)  # its interrupt is on its way out
    if owner is None and not prev_due:
        _arm_timer(scopes)  # fired for a block that has exited since: aim at the next deadline
        return
    delay = _wait_delay(frame, owner)
    if delay is not None:
        signal.setitimer(signal.ITIMER_REAL, delay)
        return
    if prev_due:
        # The timer that was armed before us is due: run its handler, as it would have run.
        scopes.prev_expiry = now + scopes.prev_interval if scopes.prev_interval else None
        try:
            scopes.prev_handler(signum, frame)
        finally:
            _arm_timer(scopes)
    if owner is not None:
        _expire(owner, now)
        _arm_timer(scopes)  # to check it arrived, and for the deadline of an enclosing block
        raise _Interrupt


def _enter(scope: Timeout) -> None:
    try:
        _arm(scope)
    except BaseException:
        # Leave nothing behind: no stack entry, no handler, no timer.
        stack = scope._scopes.stack
        if scope in stack:
            stack.remove(scope)
        if not stack and scope._scopes.mode == "signal":
            _uninstall_signal_mode(scope._scopes)
        scope._scopes.mode = scope._scopes.mode if stack else ""
        scope._state = _CREATED
        scope._frame = None
        raise


def _arm(scope: Timeout) -> None:
    scopes = _thread_scopes()
    stack = scopes.stack
    scope._scopes = scopes
    scope._frame = sys._getframe(3)  # the frame running the ``with`` (through __enter__, _enter)
    when = scope._when
    finite = when is not None and when < math.inf
    # On the stack before any timer is armed: a deadline already passed fires at once.
    stack.append(scope)
    scope._state = _ENTERED
    if len(stack) == 1:
        scopes.mode = "watchdog"
        if _HAS_ITIMER and threading.get_ident() == _main_ident and _install_signal_mode(scopes, when if finite else None):
            return
    if finite:
        _schedule(scope)


def _install_signal_mode(scopes: _Scopes, when: float | None) -> bool:
    # The outermost block of the main thread takes SIGALRM and arms the timer for its
    # own deadline in the same call that tells what was armed before.  ``_signal`` is
    # the C module behind ``signal``, whose Python wrappers convert to enums on every call.
    try:
        prev_handler = _signal.signal(signal.SIGALRM, _on_sigalrm)
    except ValueError:
        return False  # not the main interpreter: signals are not ours to take
    try:
        now = time.monotonic()
        delay = max(when - now, _MIN_DELAY) if when is not None else 0
        remaining, interval = _signal.setitimer(signal.ITIMER_REAL, delay)
    except BaseException:
        _signal.signal(signal.SIGALRM, prev_handler)
        raise
    if remaining and not callable(prev_handler):
        # A timer is armed whose expiry runs a C-level action (default: terminate) that
        # a Python handler cannot chain to: leave signals alone, use the watchdog.
        _signal.setitimer(signal.ITIMER_REAL, remaining, interval)
        _signal.signal(signal.SIGALRM, prev_handler)
        return False
    scopes.mode = "signal"
    scopes.prev_handler = prev_handler
    scopes.prev_interval = interval
    if remaining:
        scopes.prev_expiry = now + remaining
        if when is None or scopes.prev_expiry < when:
            _signal.setitimer(signal.ITIMER_REAL, remaining)
    return True


def _schedule(scope: Timeout) -> None:
    scopes = scope._scopes
    if scopes.mode == "signal":
        _arm_timer(scopes)
    else:
        with _watchdog._lock:
            _watchdog.add(scope, scope._when)


def _pop(stack: list[Timeout], scope: Timeout) -> bool:
    # Blocks nest, so the exiting one is normally on top.  Anything above it is a block
    # whose exit never ran (left by a generator that was not resumed, say); drop those
    # too and say whether one of them had expired, so that its interrupt is not lost.
    if stack[-1] is scope:
        stack.pop()
        return False
    i = len(stack) - 1 - stack[::-1].index(scope)
    stale = stack[i + 1 :]
    del stack[i:]
    expired = False
    for s in stale:
        expired = expired or s._state is _EXPIRING
        s._state = _EXITED
    return expired


def _exit(scope: Timeout, exc: BaseException | None) -> bool:
    scopes = scope._scopes
    stack = scopes.stack
    scope._frame = None  # the frame holds the block's Timeout: no cycle left behind
    if scopes.mode == "signal":
        # The handler runs in this thread and never raises inside this module: nothing
        # can be delivered here.
        state = scope._state
        scope._state = _EXITED
        inner_expired = _pop(stack, scope)
        if not stack:
            _uninstall_signal_mode(scopes)
        # Otherwise the timer may still be armed for this block's deadline: it fires
        # early, finds nothing due and aims at the next one.
    else:
        with _watchdog._lock:
            # The watchdog decides under this lock, so from here on it cannot interrupt
            # this block.  If it already did and the interrupt is still pending (the
            # body ended after the decision), drop it before anything can deliver it:
            # the next bytecode boundary after a call would.
            state = scope._state
            if state is _EXPIRING:
                _clear_async_exc(scopes.ident, None)
            scope._state = _EXITED
            inner_expired = _pop(stack, scope)
            if scope._when is not None and scope._when < math.inf:
                _watchdog.discard()
            if state is _EXPIRING and any(s._state is _EXPIRING for s in stack):
                # An outer block expired meanwhile: its interrupt was the one dropped.
                _set_async_exc(scopes.ident, _Interrupt)
        if not stack:
            scopes.mode = ""
    # C code that calls back into Python (Dynamo's frame-evaluation hook, say) may wrap an
    # interrupt raised in the callback as the cause of a SystemError: still our interrupt.
    wrapped = isinstance(exc, SystemError) and isinstance(exc.__cause__, _Interrupt)
    interrupted = wrapped or isinstance(exc, _Interrupt)
    if state is _EXPIRING or (inner_expired and interrupted):
        scope._state = _EXPIRED if state is _EXPIRING else _EXITED
        if interrupted:
            err = TimeoutError(f"the block exceeded {scope._describe()} and was interrupted")
            error_callback.report(err, source="torch.utils.timeout", timeout=scope)
            raise err.with_traceback(exc.__traceback__) from (exc if wrapped else None)
    return False


def _uninstall_signal_mode(scopes: _Scopes) -> None:
    # Disarm first, so that our timer cannot fire once the previous handler (maybe
    # SIG_DFL, which terminates) is back; then restore the previous handler and timer.
    _signal.setitimer(signal.ITIMER_REAL, 0)
    _signal.signal(signal.SIGALRM, scopes.prev_handler)
    if scopes.prev_expiry is not None:
        _signal.setitimer(
            signal.ITIMER_REAL, max(scopes.prev_expiry - time.monotonic(), _MIN_DELAY), scopes.prev_interval
        )
        scopes.prev_expiry = None
    scopes.prev_handler = None
    scopes.mode = ""


# The longest wait the platform can arm: ``Condition.wait`` and ``signal.setitimer`` both
# count in nanoseconds in a 64-bit integer (about 292 years).
_MAX_SECONDS = threading.TIMEOUT_MAX


def _number(value: object, name: str, caller: str, expected: str) -> float:
    # ``value`` as a float: TypeError for a non-number, ValueError for NaN and for an int
    # too large for a float (beyond any platform limit).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{caller}(): {name} must be {expected}, but got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(
            f"{caller}(): {name} must be {expected}, at most threading.TIMEOUT_MAX = {_MAX_SECONDS:g} s away, "
            f"but got an integer of {value.bit_length()} bits"  # type: ignore[union-attr]
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

    __slots__ = ("_when", "_seconds", "_state", "_scopes", "_frame", "_redeliver_at", "_redeliver_delay", "__weakref__")

    def __init__(self, when: float | None, *, seconds: float | None = None) -> None:
        self._when = when
        self._seconds = seconds
        self._state = _CREATED
        self._scopes: _Scopes
        self._frame: Any = None
        self._redeliver_at = math.inf
        self._redeliver_delay = 0.0

    def when(self) -> float | None:
        r"""Return the deadline as a :func:`time.monotonic` time, or ``None`` for no limit.

        Example::

            >>> import time
            >>> from torch.utils.timeout import timeout_at
            >>> timeout_at(time.monotonic() + 5).when() is not None
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
            return None
        return max(0.0, self._when - time.monotonic())

    def expired(self) -> bool:
        r"""Return whether the deadline passed while the block was running.

        ``True`` for the block that owned the deadline that fired, including a
        block that had reached its end when the deadline passed (it exits
        normally); ``False`` for blocks nested in it, whose own deadline did not fire.

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
            raise RuntimeError(f"Cannot reschedule a timeout that is {self._state.value}")
        if self._scopes.mode == "signal":
            self._when = when
            _arm_timer(self._scopes)
            return
        with _watchdog._lock:
            if self._when is not None:
                _watchdog.discard()
            self._when = when
            if when is not None and when < math.inf:
                _watchdog.add(self, when)

    def _watched(self, at: float) -> bool:
        # A heap entry is live while the block is active and the entry is not from before
        # a reschedule to a later deadline (retries after the deadline are live), and
        # while the block is expiring, for the check that its interrupt arrived.
        if self._state is _EXPIRING:
            return at >= self._redeliver_at
        return self._state is _ENTERED and self._when is not None and at >= self._when

    def __enter__(self) -> Self:
        if self._state is not _CREATED:
            raise RuntimeError(f"A timeout can be entered once; this one is {self._state.value}")
        _enter(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            return _exit(self, exc)
        except _Interrupt as interrupt:
            # Delivered on the way out, before _exit took the watchdog's lock (the watchdog
            # decided while the body was still running).  The body has ended: finish
            # leaving normally, unless the interrupt belongs to an enclosing block.
            if self._state is _ENTERED or self._state is _EXPIRING:
                _exit(self, None)
            if any(s._state is _EXPIRING for s in self._scopes.stack):
                raise interrupt from None
            return False

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"{self!r} decorates a callable, but got {fn!r}")
        if self._state is not _CREATED:
            raise RuntimeError(f"Cannot decorate with a timeout that is {self._state.value}")
        seconds, when = self._seconds, self._when

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            deadline = when if seconds is None else time.monotonic() + seconds
            with Timeout(deadline, seconds=seconds):
                return fn(*args, **kwargs)

        # Signals and the watchdog thread cannot be traced: torch.compile runs this frame
        # eagerly and still compiles ``fn`` itself.
        return torch.compiler.disable(wrapper, recursive=False)  # type: ignore[return-value]

    def _describe(self) -> str:
        if self._seconds is not None:
            return f"its time limit of {self._seconds:g} s"
        if self._when is not None:
            return f"its deadline (time.monotonic() = {self._when:.3f})"
        return "no limit"

    def __repr__(self) -> str:
        return f"<Timeout [{self._state.value}] {self._describe()}>"


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
        TypeError: ``seconds`` is not a number or ``None``.
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

    .. note:: Under :func:`torch.compile`, the arming and disarming of the
        deadline is excluded from tracing (:func:`torch.compiler.disable`): a
        compiled function called inside the block is interrupted between graphs.

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
    seconds = _check_seconds(seconds, "seconds", "timeout")
    if seconds is None:
        return Timeout(None)
    return Timeout(time.monotonic() + seconds, seconds=seconds)


def timeout_at(deadline: float | None) -> Timeout:
    r"""Bound a block to an absolute :func:`time.monotonic` ``deadline``; raise :class:`TimeoutError` past it.

    Args:
        deadline: the :func:`time.monotonic` time at which the block is
            interrupted; ``None`` means no limit.  A deadline already passed
            interrupts the block at once.

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


def _after_fork_in_child() -> None:
    # A child forked inside a block (a DataLoader worker, say) keeps running in it, but
    # must not get the parent's deadline: the blocks of the thread that forked stay on
    # its stack, so that leaving them works, with no deadline.  Interval timers are not
    # inherited, and neither is the timer armed before the outermost block.
    global _main_ident
    _main_ident = threading.main_thread().ident
    _watchdog.after_fork_in_child()
    scopes = _thread_scopes()
    for scope in scopes.stack:
        scope._when = None
        scope._redeliver_at = math.inf
    scopes.prev_expiry = None
    if scopes.mode == "signal":
        _signal.setitimer(signal.ITIMER_REAL, 0)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(
        before=_watchdog.before_fork,
        after_in_parent=_watchdog.after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
atexit.register(_watchdog.stop)
