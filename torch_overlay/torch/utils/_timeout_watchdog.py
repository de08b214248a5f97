"""The watchdog thread of ``torch.utils.timeout``: deadlines of threads that cannot use ``SIGALRM``.

Private to :mod:`torch.utils.timeout`.  One daemon thread, started on first use
(never at import), keeps the deadlines of every such thread in a heap and raises
the interrupt in the owning thread with ``PyThreadState_SetAsyncExc``, at a
moment when the thread runs the block's own code.  It is stopped at interpreter
exit and reset, with no deadline, in a child process after :func:`os.fork`.  An
error inside it is reported through :func:`threading.excepthook` and it keeps
serving.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import math
import sys
import threading
import time
from typing import TYPE_CHECKING

from torch.utils._timeout_interrupt import (
    _check_later,
    _ENTERED,
    _EXITED,
    _expire,
    _EXPIRING,
    _Interrupt,
    _lost,
    _owner,
    _pop,
    _REDELIVER_MAX,
    _RETRY_DELAY,
    _Scopes,
    _State,
    _wait_delay,
)


if TYPE_CHECKING:
    from torch.utils.timeout import Timeout


# Our own prototypes of the C API function: setting argtypes on the shared
# ctypes.pythonapi attribute would change it for every other library in the process.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


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
                if scope._state is _ENTERED and scope._redeliver_at > now:
                    # Paused in a suspended generator: look again then.
                    heapq.heappush(self._heap, (scope._redeliver_at, next(self._counter), scope))
            except Exception:
                _report_uncaught()
                heapq.heappush(self._heap, (now + _REDELIVER_MAX, next(self._counter), scope))  # try again
        self._wakeup.wait(min(self._heap[0][0] - now, threading.TIMEOUT_MAX) if self._heap else None)

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
    threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), threading.current_thread())))


_watchdog = _Watchdog()


def _fire_in_thread(scopes: _Scopes, now: float) -> None:
    # Watchdog side, lock held.  The outermost expired block owns the deadline (the
    # interrupt unwinds through every block inside it).
    owner = _owner(scopes.stack, now)
    if owner is None:
        # typeshed has no sys._current_exceptions (CPython has it: tuples before 3.12, exceptions since)
        handled = sys._current_exceptions().get(scopes.ident)  # type: ignore[attr-defined]
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
    lasti = frame.f_lasti
    delay = _wait_delay(frame, owner)
    if delay is None:
        # With a tiny GIL switch interval this thread may have been preempted since the
        # check, and the target moved on (into ``__exit__``, say): check again that it is
        # still parked where it was, right before the injection.
        moved = sys._current_frames().get(scopes.ident)
        if moved is not frame or moved.f_lasti != lasti:
            delay = _RETRY_DELAY
    if delay is not None:
        heapq.heappush(_watchdog._heap, (now + delay, next(_watchdog._counter), owner))
        return
    _expire(owner, now)
    if _set_async_exc(scopes.ident, _Interrupt) == 0:
        owner._state = _EXITED  # it exited between the look-up and here: nothing to do
        return
    heapq.heappush(_watchdog._heap, (owner._redeliver_at, next(_watchdog._counter), owner))


def _watch(scope: Timeout, when: float) -> None:
    with _watchdog._lock:
        _watchdog.add(scope, when)


def _reschedule(scope: Timeout, when: float | None) -> None:
    with _watchdog._lock:
        if scope._when is not None:
            _watchdog.discard()
        scope._when = when
        if when is not None and when < math.inf:
            _watchdog.add(scope, when)


def _leave(scope: Timeout) -> tuple[_State, bool]:
    # The block's state when it was left, and whether a stale block above it had expired.
    scopes = scope._scopes
    stack = scopes.stack
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
        if state is _EXPIRING and any(s._state is _EXPIRING and s._expired_seq > scope._seq for s in stack):
            # An outer block expired meanwhile: its interrupt was the one dropped.  (One that
            # had expired before this block was entered has its interrupt on its way out.)
            _set_async_exc(scopes.ident, _Interrupt)
    if not stack:
        scopes.mode = ""
    return state, inner_expired
