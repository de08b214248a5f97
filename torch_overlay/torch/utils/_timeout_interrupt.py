"""The interrupt that ``torch.utils.timeout`` raises in a block's body, and the per-thread stack of blocks.

Private to :mod:`torch.utils.timeout`: shared by its two asynchronous ways of
delivering a deadline, the ``SIGALRM`` timer (``_timeout_signal``) and the
watchdog thread (``_timeout_watchdog``).  The rules here decide which block owns
a deadline that passed, when an interrupt may land (never in our own
bookkeeping, an import or a Dynamo compile started in the block, nor in a
generator's block while the generator is suspended), and when an interrupt that
was lost must be raised again.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import os
import sys
import threading
from typing import Any, TYPE_CHECKING

import torch


if TYPE_CHECKING:
    from torch.utils.timeout import Timeout


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


# As module constants: the exit path must not run Python code between two calls.
_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = _State


class _Interrupt(BaseException):
    # Raised inside the body at the deadline.  A BaseException, like trio's Cancelled,
    # so that ``except Exception:`` inside the block does not swallow it; the owning
    # block turns it into TimeoutError.
    pass


_HERE = os.path.dirname(__file__)
_OWN_FILES = frozenset(
    os.path.join(_HERE, f"{name}.py")
    for name in ("timeout", "_timeout_interrupt", "_timeout_signal", "_timeout_watchdog", "_timeout_task")
)


def _in_bookkeeping(frame: Any) -> bool:
    # Entering and leaving a block runs code of these modules; an interrupt raised there
    # would escape the ``with`` statement instead of unwinding the body.
    return frame is not None and frame.f_code.co_filename in _OWN_FILES


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
    if owner._scopes.forking:
        # Inside os.fork(): the at-fork hooks of other libraries run Python code (logging's
        # release of its module lock); an interrupt there is dropped and leaves the lock held.
        return _REDELIVER_FIRST
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


# Numbers the blocks in the order they are entered (and the moments they expire), so that a
# block entered after an enclosing one expired (in its ``finally``, say) keeps its own deadline.
_entries = itertools.count()


def _expire(scope: Timeout, now: float) -> None:
    # Mark ``scope`` as being interrupted (again) and plan when to check the interrupt arrived.
    if scope._state is _ENTERED:
        scope._state = _EXPIRING
        scope._expired_seq = next(_entries)
        scope._redeliver_delay = _REDELIVER_FIRST
    else:
        scope._redeliver_delay = min(2 * scope._redeliver_delay, _REDELIVER_MAX)
    scope._redeliver_at = now + scope._redeliver_delay


class _Scopes:
    """The active deadlines of one thread, outermost first."""

    __slots__ = ("stack", "ident", "mode", "prev_handler", "prev_expiry", "prev_interval", "forking")

    def __init__(self) -> None:
        self.stack: list[Timeout] = []
        self.ident = threading.get_ident()
        # "signal" or "watchdog", chosen when the outermost block of this thread enters.
        self.mode = ""
        # Main-thread signal mode: what was installed before the outermost block.
        self.prev_handler: Any = None
        self.prev_expiry: float | None = None
        self.prev_interval = 0.0
        # Between our first and last at-fork hook of an os.fork() in this thread: no interrupt.
        self.forking = False


_local = threading.local()


def _thread_scopes() -> _Scopes:
    try:
        return _local.scopes
    except AttributeError:
        _local.scopes = _Scopes()
        return _local.scopes


# Frames that can be suspended (at a ``yield`` or an ``await``) while their block is active.
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _paused(scope: Timeout, now: float) -> bool:
    # Whether the block's deadline must wait: the block is in a generator (or coroutine)
    # suspended at a ``yield`` while its consumer runs, whose code the interrupt must
    # never reach.  A suspended frame has no caller.  It is checked again later, at
    # doubling intervals up to _REDELIVER_MAX: the interrupt lands soon after the
    # generator is resumed.  ``_redeliver_at`` and ``_redeliver_delay`` of an active
    # block say until when it waits.
    if scope._redeliver_at > now:
        return True
    frame = scope._frame
    if frame is None or not frame.f_code.co_flags & _SUSPENDABLE or frame.f_back is not None:
        return False
    scope._redeliver_delay = min(2 * scope._redeliver_delay or _REDELIVER_FIRST, _REDELIVER_MAX)
    scope._redeliver_at = now + scope._redeliver_delay
    return True


def _owner(stack: list[Timeout], now: float) -> Timeout | None:
    # The outermost expired block: the interrupt unwinds through every block inside it.
    # Blocks entered inside an expiring one before it expired are being unwound by its
    # interrupt and cannot fire; one entered since (by cleanup code on the interrupt's way
    # out: a ``finally``, an ``except``, an ``__exit__``) has a deadline of its own.
    unwound = -1
    for scope in stack:
        if scope._state is _EXPIRING:
            unwound = scope._expired_seq
        elif (
            scope._state is _ENTERED
            and scope._seq > unwound
            and scope._when is not None
            and scope._when <= now
            and not _paused(scope, now)
        ):
            return scope
    return None


def _earliest(stack: list[Timeout]) -> float | None:
    # Blocks being unwound by an expiring one cannot fire (see _owner), and the expiring
    # one is checked again at its redelivery time.
    earliest = None
    unwound = -1
    for scope in stack:
        when = scope._when
        if scope._state is _EXPIRING:
            unwound = scope._expired_seq
            when = scope._redeliver_at
            if earliest is None or when < earliest:
                earliest = when
            continue
        if scope._state is _ENTERED and scope._seq > unwound and when is not None:
            when = max(when, scope._redeliver_at)  # a paused deadline waits (see _paused)
            if earliest is None or when < earliest:
                earliest = when
    return earliest


def _pop(stack: list[Timeout], scope: Timeout) -> bool:
    # Blocks nest, so the exiting one is normally on top.  Anything above it is a block
    # whose exit never ran (left by a generator that was not resumed, say); drop those
    # too and say whether one of them had expired, so that its interrupt is not lost.
    if stack and stack[-1] is scope:
        stack.pop()
        return False
    if scope not in stack:
        return False  # dropped already, as a stale block above one that exited
    i = len(stack) - 1 - stack[::-1].index(scope)
    stale = stack[i + 1 :]
    del stack[i:]
    expired = False
    for s in stale:
        expired = expired or s._state is _EXPIRING
        s._state = _EXITED
    return expired
