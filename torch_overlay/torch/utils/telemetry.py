r"""
Always-on timing of functions and blocks, per name, at the cost of about one function call.

``@telemetry`` (or ``@telemetry(name=...)``) times every call of a function;
``with telemetry("name"):`` times a block.  For each name the module keeps the
number of calls, how many raised, the total, mean, minimum and maximum
duration, the median and 95th percentile, the device the work ran on and the
peak device memory seen.  :func:`snapshot` returns these figures,
:func:`reset` clears them, :func:`to_json` exports them and
:mod:`torch.utils.dashboard` shows them as a table, a live web page or
Prometheus metrics.

How a duration is measured:

* On CPU (or while the accelerator is not initialized in this process): two
  :func:`time.perf_counter_ns` reads around the call.
* On an initialized accelerator: a pair of timing :class:`torch.Event`, both
  recorded on the stream that was current when the call began (even if the
  timed code switches device or stream), resolved lazily by :func:`snapshot`.
  The hot path never synchronizes; if more than 4096 pairs are pending per
  name, the completed ones are resolved and, only if the device is still that
  far behind, the oldest are waited for (logged once).  Events are waited for,
  read and destroyed inside :class:`torch.accelerator.device_index` of their
  device, whose exit does not make the calling thread's previous device
  current again, so a :func:`snapshot` from another thread (the dashboard's)
  creates no context on device 0.  A pair that cannot be resolved is logged
  as a warning and left out; the other timings are kept.
* While the current stream is capturing a graph (:class:`torch.cuda.graph`):
  on the host clock, since events recorded during capture belong to the graph.

Bounded memory: a call appends its duration to a per-name buffer that is
folded, every 256 calls and at each :func:`snapshot`, into a log-scale
histogram of 1024 counters (16 buckets per power of two, from 1 ns to
centuries), so memory does not grow with the number of calls.  ``p50_ms`` and ``p95_ms`` are
read from it with a relative error of at most 1/32 (about 3 %); count, total,
mean, minimum and maximum are exact.

While a profiler is recording (:class:`torch.profiler.profile`), every timed
call of a function and every block also appears as a
:func:`torch.profiler.record_function` range of the same name; otherwise no
range is created, which is what keeps a call cheap.  (Coroutines and
generators get no range: their spans interleave with other code.)
Failures inside a timed call are counted, logged at ``DEBUG`` on
``logging.getLogger("torch.utils.telemetry")`` (shown with
``TORCH_LOGS="+telemetry"``), passed to
:func:`torch.utils.error_callback.report` (``source="torch.utils.telemetry"``,
``name=...``) and re-raised unchanged.

State is process-wide and thread-safe.  A forked child starts with empty
figures and a fresh lock.  The figures of ``DataLoader`` worker processes
reach their parent's :func:`snapshot` (merged per name; per worker with
``snapshot(workers=True)``).  With :mod:`torch.distributed` initialized,
``snapshot(all_ranks=True)`` merges the figures of every rank and names the
slowest rank per name.  ``telemetry(name, warmup=N)`` leaves a name's first
``N`` calls out (e.g. ``torch.compile``'s first, compiling call) and
``reset(name)`` forgets one name.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast, TypeVar
from typing_extensions import Self

import torch
import torch.autograd.profiler as _autograd_profiler
from torch._accelerator._device_probe import available_accelerator
from torch.utils import _telemetry_workers, error_callback as _error_callback
from torch.utils._eager import stay_eager


__all__ = ["reset", "snapshot", "telemetry", "to_json"]

_F = TypeVar("_F", bound=Callable[..., Any])

_log = logging.getLogger(__name__)

_SUB_BITS = 4  # 16 buckets per power of two: relative bucket width <= 1/16
_LINEAR = 1 << (_SUB_BITS + 1)  # below this, one bucket per nanosecond
_NUM_BUCKETS = 64 << _SUB_BITS
_MAX_PENDING = 4096
_FLUSH_EVERY = 256
_NO_MIN = 1 << 64

_perf_counter_ns = time.perf_counter_ns


class _Stat:
    """Figures of one name; mutated only while holding ``_lock``, except ``buffer``.

    The hot path only appends to ``buffer`` (``deque.append`` is atomic), and
    whoever fills it to ``_FLUSH_EVERY``, or :func:`snapshot`, folds it into the
    figures under the lock: the per-call cost stays that of an append.
    """

    __slots__ = (
        "count", "errors", "total_ns", "min_ns", "max_ns", "buckets", "device", "index", "peak", "peak_due", "pending",
        "buffer", "skip",
    )

    def __init__(self, device: str) -> None:
        self.count = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = _NO_MIN
        self.max_ns = 0
        self.buckets = [0] * _NUM_BUCKETS
        self.device = device
        # the accelerator device index of the latest call, None on the host
        self.index: int | None = None
        self.peak: int | None = None
        # whether calls ran on the accelerator since the peak was last sampled
        self.peak_due = False
        # accelerator (start, end, device index) event triples not yet resolved
        self.pending: list[tuple[torch.Event, torch.Event, int]] = []
        # host durations (ns) not yet folded into the figures
        self.buffer: collections.deque[int] = collections.deque()
        # warm-up calls of this name still to leave out (telemetry(name, warmup=N))
        self.skip = 0

    def add(self, ns: int) -> None:
        self.buffer.append(ns)
        self.fold()

    def fold(self) -> None:
        """Fold the buffered durations into count, total, min, max and the histogram."""
        buffer, buckets = self.buffer, self.buckets
        # Only what is there now: other threads may append while this runs.
        n = len(buffer)
        if not n:
            return
        popleft = buffer.popleft
        values = sorted([popleft() for _ in range(n)])
        self.count += n
        self.total_ns += sum(values)
        if values[0] < self.min_ns:
            self.min_ns = values[0]
        if values[-1] > self.max_ns:
            self.max_ns = values[-1]
        # Sorted, the values of one bucket are a run: one step per occupied bucket, not per value.
        i = 0
        while i < n:
            ns = values[i]
            if ns < _LINEAR:
                index, upper = ns, ns + 1
            else:
                shift = ns.bit_length() - _SUB_BITS - 1
                mantissa = ns >> shift
                index, upper = (shift << _SUB_BITS) + mantissa, (mantissa + 1) << shift
            j = bisect.bisect_left(values, upper, i) if values[-1] >= upper else n
            buckets[index] += j - i
            i = j

    def quantile_ns(self, q: float) -> float:
        rank = max(1, math.ceil(q * self.count))  # nearest-rank definition
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                break
        if index < _LINEAR:
            value = float(index)
        else:
            shift = (index >> _SUB_BITS) - 1
            mantissa = index - (shift << _SUB_BITS)
            value = (mantissa + 0.5) * (1 << shift)  # bucket midpoint
        return min(max(value, self.min_ns), self.max_ns)

    def state(self) -> dict[str, Any]:
        """The mergeable raw figures, as sent between ranks."""
        return {
            "count": self.count,
            "errors": self.errors,
            "total_ns": self.total_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
            "buckets": {i: n for i, n in enumerate(self.buckets) if n},
            "device": self.device,
            "peak": self.peak,
        }

    def summary(self) -> dict[str, Any]:
        timed = self.count
        return {
            "count": self.count,
            "errors": self.errors,
            "total_ms": self.total_ns / 1e6,
            "mean_ms": self.total_ns / timed / 1e6 if timed else 0.0,
            "min_ms": self.min_ns / 1e6 if timed else 0.0,
            "max_ms": self.max_ns / 1e6,
            "p50_ms": self.quantile_ns(0.5) / 1e6 if timed else 0.0,
            "p95_ms": self.quantile_ns(0.95) / 1e6 if timed else 0.0,
            "device": self.device,
            "peak_memory_bytes": self.peak,
        }


_lock = threading.Lock()
_stats: dict[str, _Stat] = {}
# How many block entries are kept in _open_blocks, over all threads and tasks: while 0, a block's
# entry and exit need not read the context variable.
_stacked = 0
# ``telemetry("name")`` objects, shared per name (at most _MAX_SHARED_BLOCKS names).
_blocks: dict[str, _Block] = {}
_MAX_SHARED_BLOCKS = 4096
# Per name, the warm-up calls still to leave out (telemetry(name, warmup=N)); survives reset().
_warmup_left: dict[str, int] = {}
# None until first needed; then the accelerator's device module, or False when there is none.
_device_module: Any = None
_backlog_logged = False
_peak_failed_logged = False
# What a forked child inherited from its parent: kept alive, never used, so that destroying the
# parent's accelerator events cannot call into a device runtime the child cannot use.
_inherited: list[Any] = []
# The ``with telemetry(...)`` blocks open in this thread or asyncio task (each task runs in its own
# copy of the context) whose object's slot was taken: (block, token, profiler range).  A block
# object shared between threads or tasks therefore times each of their entries separately.
_open_blocks: contextvars.ContextVar[tuple[tuple[_Block, Any, Any], ...]] = contextvars.ContextVar(
    "torch.utils.telemetry.open_blocks", default=()
)
# What Dynamo prints when fullgraph=True meets a timed call.
_COMPILE_REASON = (
    "torch.utils.telemetry times calls on the host and cannot be traced: apply @telemetry (or "
    "`with telemetry(...)`) outside the torch.compile'd function, e.g. to the function that calls it, "
    "or compile without fullgraph=True to graph-break here (the timed function itself is still compiled)"
)
# Resolving events switches to their device with PyTorch's own guard, whose exit "maybe exchanges" back:
# it never makes the calling thread's previous device current, so it creates no context there (a
# dashboard thread would otherwise make one on device 0).
_device_guard = torch.accelerator.device_index


def _after_fork_in_child() -> None:
    global _lock, _stats, _backlog_logged, _stats_seen
    # The parent's lock may have been held by another thread at fork time, and
    # its pending accelerator events mean nothing in the child.
    _inherited.append(_stats)
    _lock = threading.Lock()
    _stats = {}
    _backlog_logged = False
    _stats_seen = False
    # A shared block object may hold an entry of a thread that does not exist in the child.
    _blocks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _active_accelerator() -> Any:
    """The device module of the accelerator to time on, or ``None`` to use the host clock."""
    global _device_module
    module = _device_module
    if module is None:
        # Not current_accelerator(check_available=True): torch.cuda.is_available() poisons fork.
        acc = available_accelerator()
        module = _device_module = torch.get_device_module(acc) if acc is not None else False
    if module is False:
        return None
    # Timing on a device nobody initialized would create a context as a side effect.
    is_initialized = getattr(module, "is_initialized", None)
    if is_initialized is None or not is_initialized():
        return None
    # Events recorded during graph capture (torch.cuda.graph) belong to the graph and cannot be
    # waited for outside it: time such calls on the host.
    capturing = getattr(module, "is_current_stream_capturing", None)
    if capturing is not None and capturing():
        return None
    return module


def _stat(name: str, device: str) -> _Stat:
    stat = _stats.get(name)
    if stat is None:
        stat = _stats[name] = _Stat(device)
        stat.skip = _warmup_left.get(name, 0)
        if not _stats_seen:
            _first_stat()
    return stat


# Whether a name was recorded in this process yet (reset by fork): the first one checks, once, whether
# this process is a DataLoader worker, which then spools its figures to the parent.
_stats_seen = False


def _first_stat() -> None:
    global _stats_seen
    _stats_seen = True
    data = sys.modules.get("torch.utils.data._utils.worker")
    if data is not None and getattr(data, "_worker_info", None) is not None:
        from torch.utils import _telemetry_workers

        _telemetry_workers.start_worker_spool()


def _register_warmup(name: str, warmup: int) -> None:
    """Leave the first ``warmup`` calls of ``name`` in this process out (the first registration counts)."""
    if warmup and name not in _warmup_left:
        with _lock:
            if name not in _warmup_left:
                stat = _stats.get(name)
                done = stat.count + len(stat.buffer) + len(stat.pending) if stat is not None else 0
                left = _warmup_left[name] = max(0, warmup - done)
                if stat is not None:
                    stat.skip = left


def _skip(name: str, stat: _Stat) -> bool:
    """Whether this call of ``name`` is a warm-up call to leave out (and count it as done)."""
    with _lock:
        if stat.skip <= 0:
            return False
        stat.skip -= 1
        _warmup_left[name] = stat.skip
        return True


def _host_stat(name: str) -> _Stat:
    with _lock:
        return _stat(name, "cpu")


def _begin() -> Any:
    """Start timing: a host timestamp (int, ns), or (start event, stream, device index) on an accelerator."""
    if _device_module is not False and _active_accelerator() is not None:
        index = torch.accelerator.current_device_index()
        # Both events go on the stream current at entry, even if the timed code switches device or stream.
        stream = torch.accelerator.current_stream(index)
        start = torch.Event(enable_timing=True)
        start.record(stream)
        return (start, stream, index)
    return _perf_counter_ns()


def _end(name: str, token: Any, exc: BaseException | None) -> None:
    """Record the span started by :func:`_begin`; ``exc`` is the error that ended it, if any."""
    if type(token) is int:
        _record_host(name, _perf_counter_ns() - token, exc is not None)
    else:
        start, stream, index = token
        end = torch.Event(enable_timing=True)
        end.record(stream)
        _record_device(name, index, start, end, exc is not None)
    if exc is not None:
        _failed(name, exc)


# While torch.utils.dry_run rehearses a step (a rehearsal is not a call), nothing is recorded in its
# thread or task: _paused counts such scopes in the process, so the recording path reads one global
# when none runs.
_paused = 0
_paused_here: contextvars.ContextVar[bool] = contextvars.ContextVar("torch.utils.telemetry.paused", default=False)


@contextlib.contextmanager
def _not_recording() -> Iterator[None]:
    """Record nothing in this thread or task while the block runs (:func:`torch.utils.dry_run.rehearse`)."""
    global _paused
    with _lock:
        _paused += 1
    token = _paused_here.set(True)
    try:
        yield
    finally:
        _paused_here.reset(token)
        with _lock:
            _paused -= 1


def _record_host(name: str, ns: int, failed: bool) -> None:
    if _paused and _paused_here.get():
        return
    stat = _stats.get(name) or _host_stat(name)
    if stat.skip and _skip(name, stat):
        return
    if failed:
        with _lock:
            stat.errors += 1
    stat.buffer.append(ns)
    if len(stat.buffer) >= _FLUSH_EVERY:
        with _lock:
            stat.fold()


def _record_device(name: str, index: int, start: torch.Event, end: torch.Event, failed: bool) -> None:
    if _paused and _paused_here.get():
        return
    device = f"{torch.accelerator.current_accelerator()}:{index}"
    with _lock:
        stat = _stat(name, device)
        if stat.skip > 0:
            stat.skip -= 1
            _warmup_left[name] = stat.skip
            return
        if failed:
            stat.errors += 1
        stat.device = device
        stat.index = index
        stat.peak_due = True
        stat.pending.append((start, end, index))
        if len(stat.pending) > _MAX_PENDING:
            _drain(name, stat)


def _by_device(items: list[Any]) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = {}
    for item in items:
        groups.setdefault(item[-1], []).append(item)
    return groups


def _unresolved(name: str, device: str, exc: Exception) -> None:
    _log.warning(
        "telemetry: could not read the duration of a call of %r on %s (%s: %s); that call is left out of "
        "the figures, the others are kept",
        name,
        device,
        type(exc).__name__,
        exc,
    )


def _drain(name: str, stat: _Stat) -> None:
    """Resolve the completed pending events of ``stat``; wait for the oldest only if far behind."""
    global _backlog_logged
    pending, stat.pending = stat.pending, []
    groups = _by_device(pending)
    pending.clear()
    for index, pairs in groups.items():
        with _device_guard(index):
            stat.pending += _drain_on_device(name, stat, pairs)
    if len(stat.pending) > _MAX_PENDING // 2:
        if not _backlog_logged:
            _backlog_logged = True
            _log.warning(
                "telemetry: more than %d timed calls are still queued on %s; waiting for the oldest "
                "to bound memory (logged once)",
                _MAX_PENDING // 2,
                stat.device,
            )
        oldest = stat.pending[: len(stat.pending) - _MAX_PENDING // 2]
        stat.pending = stat.pending[len(oldest) :]
        for index, pairs in _by_device(oldest).items():
            with _device_guard(index):
                for ns in _resolve_on_device(name, stat, pairs):
                    stat.add(ns)
        oldest.clear()


def _drain_on_device(name: str, stat: _Stat, pairs: list[Any]) -> list[Any]:
    still = []
    for pair in pairs:
        try:
            if not pair[1].query():
                still.append(pair)
                continue
            stat.add(int(pair[0].elapsed_time(pair[1]) * 1e6))
        except Exception as e:
            _unresolved(name, stat.device, e)
    pairs.clear()  # the events are destroyed here, inside the device guard
    return still


def _resolve_on_device(name: str, stat: _Stat, pairs: list[Any]) -> list[int]:
    """Wait for each pair and fold its duration in; a pair that fails is reported and skipped."""
    durations = []
    for pair in pairs:
        try:
            pair[1].synchronize()
            durations.append(int(pair[0].elapsed_time(pair[1]) * 1e6))
        except Exception as e:
            _unresolved(name, stat.device, e)
    pairs.clear()  # the events are destroyed here, inside the device guard
    return durations


def _failed(name: str, exc: BaseException) -> None:
    _log.debug("telemetry: %s raised %s", name, type(exc).__name__)
    _error_callback.report(exc, source="torch.utils.telemetry", name=name)


def _is_error(exc: BaseException) -> bool:
    # Closing a generator and cancelling a task end a call early, and sys.exit() with a success status
    # ends the program: none is a failure of the call.
    if isinstance(exc, GeneratorExit):
        return False
    if isinstance(exc, SystemExit):
        return exc.code not in (None, 0)
    asyncio = sys.modules.get("asyncio")
    return asyncio is None or not isinstance(exc, asyncio.CancelledError)


def _call(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    token = _begin()
    try:
        out = fn(*args, **kwargs)
    except BaseException as e:
        _end(name, token, e if _is_error(e) else None)
        raise
    _end(name, token, None)
    return out


def _call_profiled(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    with torch.autograd.profiler.record_function(name):
        return _call(name, fn, args, kwargs)


def _wrap_function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if _autograd_profiler._is_profiler_enabled:
            return _call_profiled(name, fn, args, kwargs)
        if _device_module is False:
            # CPU fast path, inlined: this is the cost every call pays.
            start = _perf_counter_ns()
            try:
                out = fn(*args, **kwargs)
            except BaseException as e:
                ns = _perf_counter_ns() - start
                failed = _is_error(e)
                _record_host(name, ns, failed)
                if failed:
                    _failed(name, e)
                raise
            ns = _perf_counter_ns() - start
            if _paused and _paused_here.get():
                return out  # a rehearsal (torch.utils.dry_run) is not a call
            stat = _stats.get(name) or _host_stat(name)
            if stat.skip and _skip(name, stat):
                return out
            stat.buffer.append(ns)
            if len(stat.buffer) >= _FLUSH_EVERY:
                with _lock:
                    stat.fold()
            return out
        return _call(name, fn, args, kwargs)

    # Host timing cannot be traced: Dynamo graph-breaks at the call, times it eagerly and still
    # compiles ``fn`` itself (recursive=False); under fullgraph=True it stops with our reason.
    return stay_eager(timed, "@telemetry", _COMPILE_REASON)


def _wrap_coroutine_function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        token = _begin()
        try:
            out = await fn(*args, **kwargs)
        except BaseException as e:
            _end(name, token, e if _is_error(e) else None)
            raise
        _end(name, token, None)
        return out

    return timed


def _wrap_generator_function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        # A generator function's body starts at the first next(): so does the timing.
        token = _begin()
        try:
            result = yield from fn(*args, **kwargs)
        except BaseException as e:
            _end(name, token, e if _is_error(e) else None)
            raise
        _end(name, token, None)
        return result

    return timed


def _wrap_async_generator_function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        token = _begin()
        agen = fn(*args, **kwargs)
        try:
            try:
                item = await agen.__anext__()
            except StopAsyncIteration:
                _end(name, token, None)
                return
            while True:
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as thrown:
                    advance = agen.athrow(thrown)
                else:
                    advance = agen.asend(sent)
                try:
                    item = await advance
                except StopAsyncIteration:
                    _end(name, token, None)
                    return
        except BaseException as e:
            _end(name, token, e if _is_error(e) else None)
            raise

    return timed


def _wrap(fn: _F, name: str) -> _F:
    if inspect.isasyncgenfunction(fn):
        return cast(_F, _wrap_async_generator_function(fn, name))
    if inspect.iscoroutinefunction(fn):
        return cast(_F, _wrap_coroutine_function(fn, name))
    if inspect.isgeneratorfunction(fn):
        return cast(_F, _wrap_generator_function(fn, name))
    return cast(_F, _wrap_function(fn, name))


class _Block:
    """What ``telemetry("name")`` returns: a context manager timing its block, and a decorator.

    An entry is kept in the object's one slot when it is free (the common case: one object per
    block), otherwise in a context variable, i.e. per thread and per asyncio task: one object
    may be entered by several threads or tasks at once, and nested in itself.  Within one thread
    or task the slot entry, if any, is always the outermost, so exits pair with their entries.
    """

    __slots__ = ("name", "_slot", "_warmup")

    def __init__(self, name: str, warmup: int = 0) -> None:
        self.name = name
        self._warmup = warmup
        if warmup:
            _register_warmup(name, warmup)
        # {0: (token, profiler range)} while the slot is taken; setdefault/pop are atomic.
        self._slot: dict[int, int | tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"telemetry({self.name!r})" if not self._warmup else f"telemetry({self.name!r}, warmup={self._warmup})"

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"telemetry({self.name!r}) decorates a callable, but got {fn!r}")
        return _wrap(fn, self.name)

    def __enter__(self) -> Self:
        if not _stacked and _device_module is False and not _autograd_profiler._is_profiler_enabled:
            # Fast path (host clock, no profiler, no other block open in this thread or task): the slot
            # holds the bare start time.
            start = _perf_counter_ns()
            if self._slot.setdefault(0, start) is start:
                return self
            return self._enter_stacked((start, None))
        record = None
        if _autograd_profiler._is_profiler_enabled:
            record = torch.autograd.profiler.record_function(self.name)
            record.__enter__()
        entry = (_perf_counter_ns() if _device_module is False else _begin(), record)
        stack = _open_blocks.get()
        if (stack and any(open_[0] is self for open_ in stack)) or self._slot.setdefault(0, entry) is not entry:
            return self._enter_stacked(entry)
        return self

    def _enter_stacked(self, entry: tuple[Any, Any]) -> Self:
        global _stacked
        with _lock:
            _stacked += 1
        _open_blocks.set((*_open_blocks.get(), (self, *entry)))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        global _stacked
        stack = _open_blocks.get() if _stacked else ()
        entry: int | tuple[Any, Any] | None  # declared for mypy, which cannot tell the for/else below binds it
        if not stack:
            entry = self._slot.pop(0, None)
            if type(entry) is int:
                ns = _perf_counter_ns() - entry
                stat = _stats.get(self.name)
                if exc is None and stat is not None and not stat.skip and not _paused:
                    # Fast path: what a call of a decorated function pays.
                    stat.buffer.append(ns)
                    if len(stat.buffer) >= _FLUSH_EVERY:
                        with _lock:
                            stat.fold()
                    return
                error = exc if exc is not None and _is_error(exc) else None
                _record_host(self.name, ns, error is not None)
                if error is not None:
                    _failed(self.name, error)
                return
        else:
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] is self:
                    entry = stack[i][1:]
                    _open_blocks.set(stack[:i] + stack[i + 1 :])
                    with _lock:
                        _stacked -= 1
                    break
            else:
                entry = self._slot.pop(0, None)
        if entry is None:
            raise RuntimeError(f"telemetry({self.name!r}): __exit__ without a matching __enter__ in this thread or task")
        if type(entry) is int:
            entry = (entry, None)
        token, record = cast("tuple[Any, Any]", entry)  # a start time was made a pair just above
        error = exc if exc is not None and _is_error(exc) else None
        if type(token) is int:
            _record_host(self.name, _perf_counter_ns() - token, error is not None)
            if error is not None:
                _failed(self.name, error)
        else:
            _end(self.name, token, error)
        if record is not None:
            record.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def telemetry(fn: Callable[..., Any] | str | None = None, /, *, name: str | None = None, warmup: int = 0) -> Any:
    r"""Time every call of a function, or a ``with`` block, under a name.

    Forms:

    * ``@telemetry``: times the function under its ``__qualname__``;
    * ``@telemetry(name="load")`` or ``@telemetry("load")``: under ``"load"``;
    * ``with telemetry("load"):`` or ``async with telemetry("load"):``: times
      the block;
    * ``@telemetry(warmup=N)``, ``telemetry("load", warmup=N)``: as above,
      leaving the name's first ``N`` calls in this process out of its figures.

    Args:
        fn: the function to time, or the name for a block.
        name: the name to record under (default: ``fn.__qualname__``).
        warmup: how many of the name's first calls in this process to leave
            out of its figures (e.g. the first calls of a ``torch.compile``d
            step, which compile).  Counted per name, from the first
            call in the process, by whichever object times the name: a
            ``with telemetry("step", warmup=1):`` created at every iteration
            leaves out the first iteration only.  The first ``warmup=`` given
            for a name is the one used.  :func:`reset` does not re-arm it.  A
            warm-up call that raises is left out as well (not counted in
            ``errors``) but is still logged and reported to
            :mod:`torch.utils.error_callback`.

    Returns:
        The wrapped function (picklable when ``fn`` is defined at module level),
        or an object that is both a context manager and a decorator.

    Raises:
        TypeError: ``fn`` is neither callable nor a string, ``name`` is not a
            string, both a positional and a keyword name are given, or
            ``warmup`` is not an int.
        ValueError: the name is empty, or ``warmup`` is negative.
        RuntimeError: a ``telemetry("name")`` object is exited while none
            of its entries is open.  (Exits are matched to entries per
            thread and task only while several entries of one object are
            open; a lone entry is taken by whichever thread exits the object.
            A ``with`` statement always exits where it entered: only explicit
            ``__exit__`` calls can do otherwise.)

    The wrapper costs well under a microsecond per call on CPU (see
    ``benchmarks/bench_telemetry.py``).  An exception raised by the timed code
    is counted in ``errors``, reported to :mod:`torch.utils.error_callback`
    and re-raised unchanged, except those that end a call without it failing:
    ``asyncio.CancelledError`` (a cancelled task), ``GeneratorExit`` (a
    generator closed early) and :class:`SystemExit` with a success status
    (``sys.exit()`` or ``sys.exit(0)``).  The same rule holds for every form:
    decorated functions, coroutines, generators and blocks.

    Coroutines and generators get a wrapper of the same kind:

    * ``async def``: the wrapper is a coroutine function; one call is the
      awaited call, from its start to its return or exception, time spent
      suspended at its ``await``\ s included.  ``async with telemetry(name):``
      times a block in a coroutine.
    * generator and async generator functions: the wrapper is a generator
      (async generator) function; one call spans from the first ``next`` (or
      ``__anext__``) to exhaustion, an exception or ``close()``, measured as
      wall time, so time the consumer spends between items is included.  A
      generator never started records nothing.  Values sent and exceptions
      thrown in pass through.
    * an exception that leaves the coroutine or generator counts as an error,
      except as said above: ``asyncio.CancelledError`` (the task was
      cancelled) and closing a generator early (``GeneratorExit``) end the
      call without counting an error or reporting one.

    Blocks keep their open entries per thread and per asyncio task (in a
    :mod:`contextvars` variable), so one ``telemetry("name")`` object can be
    entered by several threads or tasks at once, or nested in itself, and
    tasks that interleave their awaits each get their own duration.

    .. note::
        Under :func:`torch.compile` the wrapper of a function is host-side
        timing: it is excluded from tracing with :func:`torch.compiler.disable`
        (``recursive=False``), so Dynamo breaks the graph at the call, times it
        eagerly and still compiles the wrapped function itself.  Results are
        the eager ones.  With ``fullgraph=True`` compilation stops with a
        message saying to apply ``@telemetry`` outside the compiled function
        (e.g. to the function that calls it).  (The first decoration of a
        plain function therefore imports :mod:`torch._dynamo`.)  Coroutine and
        generator wrappers are not traced either (Dynamo skips this module):
        they graph-break, and ``fullgraph=True`` stops with Dynamo's message.
        A ``with telemetry("name"):`` block inside a compiled function
        graph-breaks the same way; with ``fullgraph=True`` compilation stops
        at the ``telemetry(...)`` call with the same message as
        ``@telemetry``.  A block object created outside the compiled function
        and entered inside it (``blk = telemetry("n")`` then ``with blk:``)
        is a context manager Dynamo cannot enter: with ``fullgraph=True`` it
        stops with Dynamo's "Unsupported context manager" message; put the
        ``with`` outside the compiled function instead.

    .. note::
        On an accelerator the duration is the time between two events on the
        stream current at entry, i.e. the device time of the work queued
        there during the call.  ``peak_memory_bytes`` is
        :func:`torch.accelerator.max_memory_allocated` of the name's device
        (read as that one counter of the allocator's statistics, not through
        the flattened :func:`torch.accelerator.memory_stats` dict), sampled by
        :func:`snapshot` (once per device, only for names called there since
        the previous snapshot), not at each call.  It
        is the device's high-water mark since the last
        :func:`torch.accelerator.reset_peak_memory_stats`, not only this
        name's.  On CPU it is ``None``: the host allocator keeps no cheap peak
        counter.

    Example::

        >>> import torch
        >>> from torch.utils.telemetry import snapshot, telemetry
        >>> @telemetry
        ... def step(x):
        ...     return x @ x
        >>> for _ in range(3):
        ...     _ = step(torch.ones(8, 8))
        >>> with telemetry("eval"):
        ...     _ = torch.ones(8).sum()
        >>> snapshot()["step"]["count"], snapshot()["eval"]["device"]
        (3, 'cpu')
    """
    if type(fn) is str and name is None and warmup.__class__ is int and not warmup:
        # ``with telemetry("name"):`` in a loop: one shared object per name (blocks keep their entries
        # per thread and task, so sharing is safe), which keeps the block form as cheap as the decorator.
        block = _blocks.get(fn)
        if block is not None:
            return block
        if fn and len(_blocks) < _MAX_SHARED_BLOCKS:
            block = _blocks[fn] = _Block(fn)
            return block
    if isinstance(fn, str):
        if name is not None:
            raise TypeError(f"telemetry(): give the name once, positionally or as name=, but got {fn!r} and {name!r}")
        fn, name = None, fn
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"telemetry(): name must be a str, but got {name!r}")
        if not name:
            raise ValueError("telemetry(): name must be a non-empty string, but got ''")
    if isinstance(warmup, bool) or not isinstance(warmup, int):
        raise TypeError(f"telemetry(): warmup must be an int (calls to leave out), but got {warmup!r}")
    if warmup < 0:
        raise ValueError(f"telemetry(): warmup must be >= 0 (calls to leave out), but got {warmup}")
    if fn is None:
        if name is None:
            if warmup:
                return functools.partial(_decorate, warmup=warmup)
            raise TypeError("telemetry(): expected a function to time or a name, but got neither")
        return _Block(name, warmup)
    if not callable(fn):
        raise TypeError(f"telemetry(): expected a callable or a name (str), but got {fn!r}")
    return _decorate(fn, name, warmup)


# ``with telemetry("name"):`` inside a fullgraph=True compilation stops at this call with our reason.
stay_eager(telemetry, "telemetry", _COMPILE_REASON)


def _decorate(fn: Callable[..., Any], name: str | None = None, warmup: int = 0) -> Any:
    if not callable(fn):
        raise TypeError(f"telemetry(warmup={warmup}) decorates a callable, but got {fn!r}")
    name = name if name is not None else getattr(fn, "__qualname__", type(fn).__name__)
    _register_warmup(name, warmup)
    return _wrap(fn, name)


def _resolve_pending() -> None:
    with _lock:
        work: list[tuple[str, _Stat, torch.Event | None, torch.Event | None, int]] = []
        for name, stat in _stats.items():
            work.extend((name, stat, start, end, index) for start, end, index in stat.pending)
            stat.pending = []
            if stat.peak_due and stat.index is not None:
                # The peak is sampled here, once per device, not per call: reading it builds the
                # allocator's whole statistics dict.
                stat.peak_due = False
                work.append((name, stat, None, None, stat.index))
    groups = _by_device(work)
    work.clear()
    # Waiting for the device happens outside the lock, so timed calls in other threads go on.
    resolved = []
    for index, items in groups.items():
        with _device_guard(index):
            resolved.append(_resolve_group(index, items))
    with _lock:
        for durations, peaks in resolved:
            for stat, ns in durations:
                stat.add(ns)
            for stat, peak in peaks:
                if stat.peak is None or peak > stat.peak:
                    stat.peak = peak


def _resolve_group(index: int, items: list[Any]) -> tuple[list[tuple[_Stat, int]], list[tuple[_Stat, int]]]:
    """Inside the device guard of ``index``: durations of the pairs in ``items`` and the peak for their names."""
    global _peak_failed_logged
    durations, peaks, sample = [], [], []
    for name, stat, start, end, _ in items:
        if start is None:
            sample.append(stat)
            continue
        try:
            end.synchronize()
            durations.append((stat, int(start.elapsed_time(end) * 1e6)))
        except Exception as e:
            _unresolved(name, stat.device, e)
    items.clear()  # the events are destroyed here, inside the device guard
    if sample:
        try:
            peak = _peak_allocated(index)
        except Exception as e:
            if not _peak_failed_logged:
                _peak_failed_logged = True
                _log.warning(
                    "telemetry: cannot read the peak memory of device %d (%s: %s); logged once", index, type(e).__name__, e
                )
        else:
            peaks = [(stat, peak) for stat in sample]
    return durations, peaks


def _own_states() -> dict[str, dict[str, Any]]:
    """The raw figures of this process alone."""
    _resolve_pending()
    with _lock:
        for stat in _stats.values():
            stat.fold()
        # A name whose calls so far were all warm-up calls has no figures yet: no entry.
        return {name: stat.state() for name, stat in _stats.items() if stat.count or stat.errors}


def _peak_allocated(index: int) -> int:
    """The allocator's peak allocated bytes on device ``index``: the one counter, not the flattened dict.

    :func:`torch.accelerator.max_memory_allocated` flattens and sorts the allocator's whole statistics
    dict to read one value; this reads the nested dict the allocator returns directly.
    """
    get_stats = getattr(torch._C, "_accelerator_getDeviceStats", None)
    if get_stats is None:  # an older torch
        return torch.accelerator.max_memory_allocated(index)
    if not torch._C._accelerator_isAllocatorInitialized():
        return 0
    return int(get_stats(index)["allocated_bytes"]["all"]["peak"])


def _local_states(workers: dict[int, dict[str, dict[str, Any]]] | None = None) -> dict[str, dict[str, Any]]:
    """The raw figures of this process merged with those its DataLoader workers sent."""
    if workers is None:
        workers = _telemetry_workers.read()
    own = _own_states()
    if not workers:
        return own
    names: dict[str, list[dict[str, Any]]] = {name: [state] for name, state in own.items()}
    for states in workers.values():
        for name, state in states.items():
            names.setdefault(name, []).append(state)
    return {name: _merge(states) for name, states in names.items()}


def _merge(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge raw figures of one name: exact count, errors, total, min, max; summed histograms."""
    buckets: dict[int, int] = {}
    for state in states:
        for index, n in state["buckets"].items():
            buckets[int(index)] = buckets.get(int(index), 0) + n
    devices = sorted({state["device"] for state in states})
    peaks = [state["peak"] for state in states if state["peak"] is not None]
    return {
        "count": sum(state["count"] for state in states),
        "errors": sum(state["errors"] for state in states),
        "total_ns": sum(state["total_ns"] for state in states),
        "min_ns": min(state["min_ns"] for state in states),
        "max_ns": max(state["max_ns"] for state in states),
        "buckets": buckets,
        "device": ",".join(devices),
        "peak": max(peaks) if peaks else None,
    }


def _bucket_bounds(index: int) -> tuple[int, int]:
    """The durations (ns) ``[low, high)`` that fall in histogram bucket ``index``."""
    if index < _LINEAR:
        return index, index + 1
    shift = (index >> _SUB_BITS) - 1
    mantissa = index - (shift << _SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


def _since(state: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """The raw figures recorded after ``base`` in the cumulative ``state`` (``None`` if no call since).

    Count, errors, total and the histogram are exact.  The minimum (maximum) is exact when it is below
    (above) ``base``'s; otherwise it is read from the histogram, within a bucket (1/16 relative).
    """
    count = state["count"] - base["count"]
    errors = state["errors"] - base["errors"]
    if count <= 0 and errors <= 0:
        return None
    buckets = {}
    for index, n in state["buckets"].items():
        n -= base["buckets"].get(index, 0)
        if n > 0:
            buckets[index] = n
    min_ns, max_ns = state["min_ns"], state["max_ns"]
    if buckets and min_ns >= base["min_ns"]:
        min_ns = max(min_ns, _bucket_bounds(min(buckets))[0])
    if buckets and max_ns <= base["max_ns"]:
        max_ns = min(max_ns, _bucket_bounds(max(buckets))[1] - 1)
    return {
        **state,
        "count": count,
        "errors": max(errors, 0),
        "total_ns": state["total_ns"] - base["total_ns"],
        "min_ns": min_ns,
        "max_ns": max_ns,
        "buckets": buckets,
    }


def _merged_view(per_rank: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``snapshot(all_ranks=True)``'s format from the raw figures of each rank."""
    names: dict[str, dict[int, dict[str, Any]]] = {}
    for rank in sorted(per_rank):
        for name, state in per_rank[rank].items():
            names.setdefault(name, {})[rank] = state
    view = {}
    for name, ranks in sorted(names.items()):
        figures = _summary(_merge(list(ranks.values())))
        figures["ranks"] = {rank: _summary(state) for rank, state in ranks.items()}
        # The straggler: the rank that spent the most time in the name (the others wait for it at the
        # next collective); the lowest rank on a tie.
        figures["slowest_rank"] = max(ranks, key=lambda rank: (ranks[rank]["total_ns"], -rank))
        view[name] = figures
    return view


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    stat = _Stat(state["device"])
    stat.count, stat.errors, stat.total_ns = state["count"], state["errors"], state["total_ns"]
    stat.min_ns, stat.max_ns, stat.peak = state["min_ns"], state["max_ns"], state["peak"]
    for index, n in state["buckets"].items():
        stat.buckets[int(index)] = n
    return stat.summary()


def snapshot(*, all_ranks: bool = False, group: Any = None, workers: bool = False) -> dict[Any, Any]:
    r"""Return the figures recorded so far, one entry per name.

    Args:
        all_ranks: gather the figures of every rank of ``group`` instead of
            this process only.  A collective: every rank must call it.
        group: the process group for ``all_ranks`` (default: the world).
        workers: add, per name, the figures of each DataLoader worker
            process of this process under ``"workers"``.

    Returns:
        dict: ``{name: {"count", "errors", "total_ms", "mean_ms", "min_ms",
        "max_ms", "p50_ms", "p95_ms", "device", "peak_memory_bytes"}}`` with
        ints for the counts, floats in milliseconds, the device as a string
        (``"cpu"``, ``"cuda:0"``) and the peak in bytes (``None`` on CPU).
        A name appears at its first counted call: a name whose calls so far
        were all warm-up calls (``telemetry(name, warmup=N)``) has no entry
        (nor a row in :mod:`torch.utils.dashboard`'s views).

        The figures of this process's DataLoader workers are merged in (see
        below); with ``workers=True`` each name also has ``"workers":
        {pid: {...}}``, the figures of each worker process that recorded the
        name (a worker that ended or died keeps its last figures there).

        With ``all_ranks=True``, the same on every rank: per name the merged
        figures of all ranks of the group (exact count, errors, total, mean,
        min and max; ``p50_ms``/``p95_ms`` from the summed histograms; the
        devices of the ranks joined by ``","`` where they differ; the highest
        peak), plus ``"ranks": {rank: {...}}`` (the figures of each rank that
        recorded the name) and ``"slowest_rank"``: the rank with the largest
        ``total_ms`` for the name, i.e. the one the others wait for at the
        next collective (the lowest such rank on a tie).

    Raises:
        TypeError: ``all_ranks`` or ``workers`` is not a bool.
        RuntimeError: ``all_ranks=True`` while :mod:`torch.distributed` is not
            initialized.

    DataLoader workers: a worker process (``num_workers > 0``; fork, spawn or
    forkserver; persistent or not) that records figures writes them, from a
    daemon thread, every second and when it exits, to a spool directory of
    its parent in :func:`tempfile.gettempdir`; the timed calls themselves pay
    nothing more.  The parent reads the spool at each :func:`snapshot`, so a
    worker's figures arrive within about a second.  The parent removes the
    directory when it exits (and any process that spools removes those left
    by parents that were killed).

    Pending accelerator timings are resolved first, which waits for the work
    they time to finish (the only place this module synchronizes), and the
    peak memory of each device used since the previous call is read.

    Example::

        >>> from torch.utils.telemetry import reset, snapshot, telemetry
        >>> reset()
        >>> with telemetry("load"):
        ...     pass
        >>> stats = snapshot()["load"]
        >>> stats["count"], stats["errors"], stats["min_ms"] <= stats["p50_ms"] <= stats["max_ms"]
        (1, 0, True)
    """
    if not isinstance(all_ranks, bool):
        raise TypeError(f"snapshot(): all_ranks must be a bool, but got {all_ranks!r}")
    if not isinstance(workers, bool):
        raise TypeError(f"snapshot(): workers must be a bool, but got {workers!r}")
    spooled = _telemetry_workers.read()
    states = _local_states(spooled)
    if not all_ranks:
        view = {name: _summary(state) for name, state in states.items()}
        if workers:
            for name, figures in view.items():
                figures["workers"] = {
                    pid: _summary(worker[name]) for pid, worker in sorted(spooled.items()) if name in worker
                }
        return view
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "snapshot(all_ranks=True) needs torch.distributed to be initialized "
            "(torch.distributed.init_process_group); use snapshot() for this process only"
        )
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, states, group=group)
    ranks = dist.get_process_group_ranks(group) if group is not None else range(len(gathered))
    _log.debug("telemetry: gathered figures of %d ranks", len(gathered))
    return _merged_view(dict(zip(ranks, gathered)))


def reset(name: str | None = None) -> None:
    r"""Forget the figures recorded so far, of one name or of every name.

    Args:
        name: the name to forget (default: every name).  A name never
            recorded is no error.

    Raises:
        TypeError: ``name`` is neither ``None`` nor a string.

    Timings still pending on an accelerator are dropped with the rest, and
    so are the figures that DataLoader workers of this process have sent:
    workers keep writing their cumulative figures (every second), and the
    parent subtracts what each had written at the time of the reset, so a
    call a worker records after the reset is never lost (e.g. with
    ``persistent_workers=True`` and a reset at the start of each epoch).
    Calls a worker recorded in the second before the reset, after its last
    write, count as after it.  For workers' figures after a reset, count,
    errors, total, mean, p50 and p95 are exact; ``min_ms``/``max_ms`` are
    exact when they are below/above the pre-reset ones, else read from the
    histogram (within about 6 %); ``peak_memory_bytes`` stays the device's
    high-water mark.  Warm-up (``telemetry(name, warmup=N)``) is not re-armed.

    Example::

        >>> from torch.utils.telemetry import reset, snapshot, telemetry
        >>> with telemetry("warmup"):
        ...     pass
        >>> reset()
        >>> snapshot()
        {}
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"reset(): name must be a str or None (every name), but got {name!r}")
    _reset_own(name)
    _telemetry_workers.reset(name)
    _log.debug("telemetry: reset %s", "every name" if name is None else repr(name))


def _reset_own(name: str | None) -> None:
    with _lock:
        if name is None:
            _stats.clear()
        else:
            _stats.pop(name, None)


def to_json(*, all_ranks: bool = False, group: Any = None, indent: int | None = None) -> str:
    r"""Return :func:`snapshot` as a JSON string.

    Args:
        all_ranks: as for :func:`snapshot` (rank keys become strings).
        group: as for :func:`snapshot`.
        indent: passed to :func:`json.dumps`: spaces per level, 0 to
            1024, or ``None`` for one line.

    Returns:
        str: a JSON object; ``peak_memory_bytes`` is ``null`` on CPU.

    Raises:
        TypeError: ``indent`` is neither ``None`` nor an int, or ``all_ranks``
            is not a bool.
        ValueError: ``indent`` is negative or above 1024.

    Example::

        >>> import json
        >>> from torch.utils.telemetry import reset, telemetry, to_json
        >>> reset()
        >>> with telemetry("save"):
        ...     pass
        >>> json.loads(to_json())["save"]["count"]
        1
    """
    if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int)):
        raise TypeError(f"to_json(): indent must be an int or None, but got {indent!r}")
    if indent is not None and not 0 <= indent <= 1024:
        shown = f"an integer of {indent.bit_length()} bits" if indent.bit_length() > 64 else indent
        raise ValueError(f"to_json(): indent must be 0 to 1024 (spaces per level) or None, but got {shown}")
    if not isinstance(all_ranks, bool):
        raise TypeError(f"to_json(): all_ranks must be a bool, but got {all_ranks!r}")
    return json.dumps(snapshot(all_ranks=all_ranks, group=group), indent=indent, sort_keys=True)
