"""The ``SIGALRM`` timer of ``torch.utils.timeout``: deadlines of the main thread on Unix.

Private to :mod:`torch.utils.timeout`.  The outermost block of the main thread
takes ``SIGALRM`` and arms an interval timer (:func:`signal.setitimer`) for the
earliest deadline; the handler raises the interrupt in the body.  The handler
and timer that were installed before are restored when the outermost block
exits, and that handler still runs when that timer fires during a block (a timer
or handler set inside a block is not chained: see the module documentation).  Unlike the watchdog, ``SIGALRM`` also interrupts
:func:`time.sleep` and blocking I/O.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed has no stub for _signal (signal's C module)
import math
import signal
import sys
import threading
import time
from typing import Any, TYPE_CHECKING

from torch.utils._timeout_interrupt import (
    _check_later,
    _earliest,
    _ENTERED,
    _EXITED,
    _expire,
    _Interrupt,
    _lost,
    _MIN_DELAY,
    _owner,
    _pop,
    _Scopes,
    _State,
    _thread_scopes,
    _wait_delay,
)


if TYPE_CHECKING:
    from torch.utils.timeout import Timeout


_HAS_ITIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
_main_ident = threading.main_thread().ident
# Held while the timer is armed from the blocks' deadlines (by Timeout.reschedule(), which may run in
# another thread, by a block's entry and by the handler) and while the outermost block's exit disarms
# it and restores the previous handler.  Without it, a reschedule racing with that exit could arm the
# timer after it, for SIGALRM's default action (terminate) to run later, or overwrite the timer a
# nested block's entry had just armed with a later expiry.  Re-entrant: the handler runs in the main
# thread, maybe while that thread holds it.
_arming = threading.RLock()


def _arm_timer(scopes: _Scopes) -> None:
    # Main thread, signal mode: the timer fires at the earliest of our deadlines and of
    # the timer that was there before us.
    with _arming:
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


def _reschedule(scope: Timeout, when: float | None) -> bool:
    """Move an active signal-mode block's deadline and re-arm the timer; ``False`` if it is no longer active."""
    with _arming:
        if scope._state is not _ENTERED or scope._scopes.mode != "signal":
            return False
        scope._when = when
        _arm_timer(scope._scopes)
        return True


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


def _leave(scope: Timeout) -> tuple[_State, bool]:
    # The block's state when it was left, and whether a stale block above it had expired.
    # The handler runs in this thread and never raises inside these modules: nothing
    # can be delivered here.
    scopes = scope._scopes
    stack = scopes.stack
    state = scope._state
    scope._state = _EXITED
    inner_expired = _pop(stack, scope)
    if not stack and scopes.mode == "signal":
        with _arming:
            _uninstall_signal_mode(scopes)
    # Otherwise the timer may still be armed for this block's deadline: it fires
    # early, finds nothing due and aims at the next one.
    return state, inner_expired


def _after_fork_in_child(scopes: _Scopes) -> None:
    # Interval timers are not inherited by a child, and neither is the one armed before
    # the outermost block; the blocks themselves have no deadline any more.
    global _main_ident
    _main_ident = threading.main_thread().ident
    scopes.prev_expiry = None
    if scopes.mode == "signal":
        _signal.setitimer(signal.ITIMER_REAL, 0)
