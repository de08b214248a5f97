"""Task cancellation for ``torch.utils.timeout``: deadlines of blocks entered inside an asyncio task.

Private to :mod:`torch.utils.timeout`.  A block entered while an asyncio task
runs in this thread (``with``, ``async with`` or ``@timeout`` on ``async def``)
is bounded the way :func:`asyncio.timeout` bounds it: a callback scheduled on
the task's own loop (``loop.call_at``) cancels *that* task at the deadline, the
cancellation lands at the await the task is suspended in, and the block turns
it into :class:`TimeoutError`.  No signal, no asynchronous exception, no other
task touched, in the main thread's loop or in any other thread's.

Whether a :class:`asyncio.CancelledError` reaching the block is its own is told
like :class:`asyncio.Timeout` tells it on Python 3.11+ (``Task.cancelling()``
before, ``Task.uncancel()`` after); Python 3.10 has neither, so there each
block cancels with a message of its own and recognizes it in the error.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import os
import sys
import time
import weakref
from types import FrameType
from typing import Any, cast, TYPE_CHECKING

from torch.utils._timeout_interrupt import (
    _ENTERED,
    _EXITED,
    _EXPIRED,
    _EXPIRING,
    _REDELIVER_FIRST,
    _REDELIVER_MAX,
)


if TYPE_CHECKING:
    from torch.utils.timeout import Timeout

_HAS_UNCANCEL = sys.version_info >= (3, 11)
_TIMEOUT_FILE = os.path.join(os.path.dirname(__file__), "timeout.py")
# Code that can await: only there can a cancellation land inside the block.
_AWAITING = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_ENTER_NAMES = ("__enter__", "__aenter__")
# Python 3.10 (message counting): the order blocks are entered in, and per task the block
# that owns the cancellation on its way (see _on_deadline).
_entries = itertools.count()
# Weak both ways: a block holds its task.
_cancelled_by: weakref.WeakKeyDictionary[Any, weakref.ref[_TaskBlock]] = weakref.WeakKeyDictionary()


class _TaskBlock:
    """What a block inside a task keeps: its task, the scheduled cancellation and how to recognize it."""

    __slots__ = ("task", "handle", "cancelling", "message", "frame", "agen", "delay", "seq", "scope", "__weakref__")

    def __init__(self, task: Any, frame: Any) -> None:
        self.task = task
        self.handle: Any = None
        self.cancelling = task.cancelling() if _HAS_UNCANCEL else 0
        # Python 3.10 only (no uncancel()): the message that tells this block's cancellation.
        self.message = None if _HAS_UNCANCEL else f"torch.utils.timeout: deadline of block {id(self):#x}"
        self.frame = frame  # the frame running the ``with``
        self.agen: Any = None  # found when needed, for a block in an async generator
        self.delay = 0.0
        self.seq = next(_entries)
        self.scope: Any = None  # a weak reference to its Timeout (Python 3.10 only)


def _enter(scope: Timeout, task: Any) -> None:
    frame = sys._getframe(1)
    # Skip Timeout.__enter__ / __aenter__ only: the wrapper of ``@timeout`` on an
    # ``async def`` is also in timeout.py, and its own frame is the one running the block
    # (when it is a task's top-level coroutine, the frame below it cannot await).
    while frame.f_code.co_filename == _TIMEOUT_FILE and frame.f_code.co_name in _ENTER_NAMES:
        frame = cast(FrameType, frame.f_back)  # Timeout.__enter__ always has a caller
    scope._task = _TaskBlock(task, frame)
    if not _HAS_UNCANCEL:
        scope._task.scope = weakref.ref(scope)
    scope._state = _ENTERED
    _schedule(scope)


def _schedule(scope: Timeout) -> None:
    block = scope._task
    if block.handle is not None:
        block.handle.cancel()
        block.handle = None
    when = scope._when
    # A block in a plain function or a (sync) generator cannot await: the loop does not
    # run until it is left, so a cancellation could only land outside it, in the code
    # that awaits next.  Such a block runs to its end (see _exit).
    if when is not None and when < float("inf") and block.frame.f_code.co_flags & _AWAITING:
        loop = block.task.get_loop()
        delay = when - time.monotonic()  # deadlines are time.monotonic() times; the loop has its own clock
        if delay <= 0:
            # Already passed: before the task's next step, as asyncio.Timeout does, so that even
            # ``await asyncio.sleep(0)`` in the block is cancelled.
            block.handle = loop.call_soon(_on_deadline, scope)
        else:
            block.handle = loop.call_at(loop.time() + delay, _on_deadline, scope)


def _reschedule(scope: Timeout) -> None:
    # In the task's loop, for a reschedule() called from another thread: the block may
    # have been left (or have expired) since.
    if scope._state is _ENTERED:
        _schedule(scope)


def _suspended_at_yield(block: _TaskBlock) -> bool:
    # Whether the block is in an async generator suspended at a ``yield``: the task then
    # runs (awaits in) the generator's consumer, which the cancellation must not reach.
    if not block.frame.f_code.co_flags & inspect.CO_ASYNC_GENERATOR:
        return False
    if block.agen is None:
        # Found once, when its deadline passes: a frame does not link to its generator.
        block.agen = next((r for r in gc.get_referrers(block.frame) if inspect.isasyncgen(r)), False)
    return block.agen is not False and not block.agen.ag_running


def _on_deadline(scope: Timeout) -> None:
    # Runs in the loop while the task is suspended (or, at worst, just done).
    block = scope._task
    block.handle = None
    if scope._state is _ENTERED and _suspended_at_yield(block):
        # Paused until the generator runs again: look again at doubling intervals.
        block.delay = min(2 * block.delay or _REDELIVER_FIRST, _REDELIVER_MAX)
        block.handle = block.task.get_loop().call_later(block.delay, _on_deadline, scope)
        return
    if scope._state is _ENTERED:
        scope._state = _EXPIRING
        if _HAS_UNCANCEL:
            block.task.cancel()
        else:
            # The outermost expired block owns the cancellation, as counting with uncancel()
            # tells on 3.11+.  One of an enclosing block already on its way is left to it;
            # one of an inner block is taken over: a second cancel(msg) would not change the
            # message the pending one carries, so this block adopts that message.
            pending_ref = _cancelled_by.get(block.task)
            pending = None if pending_ref is None else pending_ref()
            pending_scope = None if pending is None else pending.scope()
            if pending is not None and pending_scope is not None and pending_scope._state is _EXPIRING:
                if pending.seq < block.seq:
                    return
                block.message = pending.message
            _cancelled_by[block.task] = weakref.ref(block)
            block.task.cancel(block.message)


def _owner_of_cancel(task: Any) -> _TaskBlock | None:
    ref = _cancelled_by.get(task)
    return None if ref is None else ref()


def _ours(scope: Timeout, exc: BaseException | None) -> bool:
    # Whether the cancellation that reached the block is the one this block requested
    # (and no one else asked to cancel the task meanwhile).
    block = scope._task
    if _HAS_UNCANCEL:
        return block.task.uncancel() <= block.cancelling
    return exc is not None and block.message in exc.args and _owner_of_cancel(block.task) is block


def _exit(scope: Timeout, exc: BaseException | None, cancelled: type[BaseException]) -> bool:
    block = scope._task
    if block.handle is not None:
        block.handle.cancel()
        block.handle = None
    state = scope._state
    if state is not _EXPIRING:
        scope._state = _EXITED
        if scope._when is not None and scope._when <= time.monotonic():
            # The deadline passed while the block ran without awaiting: nothing could
            # interrupt it, and a block that reached its end is never made a failure.
            scope._state = _EXPIRED
        return False
    scope._state = _EXPIRED
    if _ours(scope, exc) and isinstance(exc, cancelled):
        if scope._silent:
            return True  # move_on: its own cancellation ends the block silently
        err = TimeoutError(f"the block exceeded {scope._describe()} and was cancelled")
        from torch.utils import error_callback

        error_callback.report(err, source="torch.utils.timeout", timeout=scope)
        raise err from exc
    return False


async def _aexit(scope: Timeout, exc: BaseException | None) -> bool:
    # ``async with``: the deadline may have cancelled the task just as the await it was
    # suspended in completed; the cancellation is then still pending and would hit the
    # first await after the block.  Take it here, where the block can still claim it.
    import asyncio

    if exc is None and scope._state is _EXPIRING:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError as cancel:
            block = scope._task
            if block.handle is not None:
                block.handle.cancel()
                block.handle = None
            scope._state = _EXPIRED
            if not _ours(scope, cancel):
                raise
            return False  # the body had reached its end: not a failure
    return _exit(scope, exc, asyncio.CancelledError)
