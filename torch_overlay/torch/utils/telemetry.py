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
* On an initialized accelerator: a pair of timing :class:`torch.Event` recorded
  on the current stream, resolved lazily by :func:`snapshot`.  The hot path
  never synchronizes; if more than 4096 pairs are pending per name, the
  completed ones are resolved and, only if the device is still that far
  behind, the oldest are waited for (logged once).

Bounded memory: a call appends its duration to a per-name buffer that is
folded, every 256 calls and at each :func:`snapshot`, into a log-scale
histogram of 1024 counters (16 buckets per power of two, from 1 ns to
centuries), so memory does not grow with the number of calls.  ``p50_ms`` and ``p95_ms`` are
read from it with a relative error of at most 1/32 (about 3 %); count, total,
mean, minimum and maximum are exact.

While a profiler is recording (:class:`torch.profiler.profile`), every timed
call also appears as a :func:`torch.profiler.record_function` range of the
same name; otherwise no range is created, which is what keeps a call cheap.
Failures inside a timed call are counted, logged at ``DEBUG`` on
``logging.getLogger("torch.utils.telemetry")``, passed to
:func:`torch.utils.error_callback.report` (``source="torch.utils.telemetry"``,
``name=...``) and re-raised unchanged.

State is process-wide and thread-safe.  A forked child (a ``DataLoader``
worker) starts with empty figures and a fresh lock.  With
:mod:`torch.distributed` initialized, ``snapshot(all_ranks=True)`` gathers the
figures of every rank.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from typing_extensions import Self

import torch
import torch.autograd.profiler as _autograd_profiler
from torch.utils import error_callback as _error_callback


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
_is_compiling = torch.compiler.is_compiling


class _Stat:
    """Figures of one name; mutated only while holding ``_lock``, except ``buffer``.

    The hot path only appends to ``buffer`` (``deque.append`` is atomic), and
    whoever fills it to ``_FLUSH_EVERY``, or :func:`snapshot`, folds it into the
    figures under the lock: the per-call cost stays that of an append.
    """

    __slots__ = ("count", "errors", "total_ns", "min_ns", "max_ns", "buckets", "device", "peak", "pending", "buffer")

    def __init__(self, device: str) -> None:
        self.count = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = _NO_MIN
        self.max_ns = 0
        self.buckets = [0] * _NUM_BUCKETS
        self.device = device
        self.peak: int | None = None
        # accelerator (start, end) event pairs not yet resolved
        self.pending: list[tuple[torch.Event, torch.Event]] = []
        # host durations (ns) not yet folded into the figures
        self.buffer: collections.deque[int] = collections.deque()

    def add(self, ns: int) -> None:
        self.buffer.append(ns)
        self.fold()

    def fold(self) -> None:
        """Fold the buffered durations into count, total, min, max and the histogram."""
        buffer, buckets = self.buffer, self.buckets
        # Only what is there now: other threads may append while this runs.
        n = len(buffer)
        total, low, high = 0, self.min_ns, self.max_ns
        for _ in range(n):
            ns = buffer.popleft()
            total += ns
            if ns > high:
                high = ns
            if ns < low:
                low = ns
            if ns < _LINEAR:
                buckets[ns] += 1
            else:
                shift = ns.bit_length() - _SUB_BITS - 1
                buckets[(shift << _SUB_BITS) + (ns >> shift)] += 1
        self.count += n
        self.total_ns += total
        self.min_ns, self.max_ns = low, high

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
# None until first needed; then the accelerator's device module, or False when there is none.
_device_module: Any = None
_backlog_logged = False


def _after_fork_in_child() -> None:
    global _lock, _stats, _backlog_logged
    # The parent's lock may have been held by another thread at fork time, and
    # its pending accelerator events mean nothing in the child.
    _lock = threading.Lock()
    _stats = {}
    _backlog_logged = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _active_accelerator() -> Any:
    """The device module of the accelerator to time on, or ``None`` to use the host clock."""
    global _device_module
    module = _device_module
    if module is None:
        acc = torch.accelerator.current_accelerator(check_available=True)
        module = _device_module = torch.get_device_module(acc) if acc is not None else False
    if module is False:
        return None
    # Timing on a device nobody initialized would create a context as a side effect.
    is_initialized = getattr(module, "is_initialized", None)
    if is_initialized is None or not is_initialized():
        return None
    return module


def _stat(name: str, device: str) -> _Stat:
    stat = _stats.get(name)
    if stat is None:
        stat = _stats[name] = _Stat(device)
    return stat


def _host_stat(name: str) -> _Stat:
    with _lock:
        return _stat(name, "cpu")


def _record_host(name: str, ns: int, failed: bool) -> None:
    stat = _stats.get(name) or _host_stat(name)
    if failed:
        with _lock:
            stat.errors += 1
    stat.buffer.append(ns)
    if len(stat.buffer) >= _FLUSH_EVERY:
        with _lock:
            stat.fold()


def _record_device(name: str, device: str, start: torch.Event, end: torch.Event, failed: bool, peak: int) -> None:
    with _lock:
        stat = _stat(name, device)
        if failed:
            stat.errors += 1
        stat.device = device
        if stat.peak is None or peak > stat.peak:
            stat.peak = peak
        stat.pending.append((start, end))
        if len(stat.pending) > _MAX_PENDING:
            _drain(stat)


def _drain(stat: _Stat) -> None:
    """Resolve the completed pending events of ``stat``; wait for the oldest only if far behind."""
    global _backlog_logged
    still = []
    for start, end in stat.pending:
        if end.query():
            stat.add(int(start.elapsed_time(end) * 1e6))
        else:
            still.append((start, end))
    if len(still) > _MAX_PENDING // 2:
        if not _backlog_logged:
            _backlog_logged = True
            _log.warning(
                "telemetry: more than %d timed calls are still queued on %s; waiting for the oldest "
                "to bound memory (logged once)",
                _MAX_PENDING // 2,
                stat.device,
            )
        for start, end in still[: len(still) - _MAX_PENDING // 2]:
            end.synchronize()
            stat.add(int(start.elapsed_time(end) * 1e6))
        still = still[len(still) - _MAX_PENDING // 2 :]
    stat.pending = still


def _failed(name: str, exc: BaseException) -> None:
    _log.debug("telemetry: %s raised %s", name, type(exc).__name__)
    _error_callback.report(exc, source="torch.utils.telemetry", name=name)


def _call_on_device(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    index = torch.accelerator.current_device_index()
    device = f"{torch.accelerator.current_accelerator()}:{index}"
    start = torch.Event(enable_timing=True)
    end = torch.Event(enable_timing=True)
    start.record()
    try:
        out = fn(*args, **kwargs)
    except BaseException as e:
        end.record()
        _record_device(name, device, start, end, True, torch.accelerator.max_memory_allocated(index))
        _failed(name, e)
        raise
    end.record()
    _record_device(name, device, start, end, False, torch.accelerator.max_memory_allocated(index))
    return out


def _call(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    if _device_module is not False and _active_accelerator() is not None:
        return _call_on_device(name, fn, args, kwargs)
    start = _perf_counter_ns()
    try:
        out = fn(*args, **kwargs)
    except BaseException as e:
        _record_host(name, _perf_counter_ns() - start, True)
        _failed(name, e)
        raise
    _record_host(name, _perf_counter_ns() - start, False)
    return out


def _call_profiled(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    with torch.autograd.profiler.record_function(name):
        return _call(name, fn, args, kwargs)


def _call_under_compile(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    # Host timers cannot live in a graph: Dynamo graph-breaks here, times the
    # call eagerly, and still compiles ``fn``'s own frame (recursive=False).
    return torch.compiler.disable(_call, recursive=False)(name, fn, args, kwargs)


def _wrap(fn: _F, name: str) -> _F:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if _is_compiling():
            return _call_under_compile(name, fn, args, kwargs)
        if _autograd_profiler._is_profiler_enabled:
            return _call_profiled(name, fn, args, kwargs)
        if _device_module is False:
            # CPU fast path, inlined: this is the cost every call pays.
            start = _perf_counter_ns()
            try:
                out = fn(*args, **kwargs)
            except BaseException as e:
                _record_host(name, _perf_counter_ns() - start, True)
                _failed(name, e)
                raise
            stat = _stats.get(name) or _host_stat(name)
            stat.buffer.append(_perf_counter_ns() - start)
            if len(stat.buffer) >= _FLUSH_EVERY:
                with _lock:
                    stat.fold()
            return out
        return _call(name, fn, args, kwargs)

    return timed  # type: ignore[return-value]


class _Block:
    """What ``telemetry("name")`` returns: a context manager timing its block, and a decorator."""

    __slots__ = ("name", "_start", "_events", "_range")

    def __init__(self, name: str) -> None:
        self.name = name
        self._start: int | None = None
        self._events: tuple[torch.Event, str, int] | None = None
        self._range: Any = None

    def __repr__(self) -> str:
        return f"telemetry({self.name!r})"

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"telemetry({self.name!r}) decorates a callable, but got {fn!r}")
        return _wrap(fn, self.name)

    def __enter__(self) -> Self:
        if self._start is not None or self._events is not None:
            raise RuntimeError(
                f"telemetry({self.name!r}) is already timing a block; use one telemetry(...) object per block"
            )
        if _autograd_profiler._is_profiler_enabled:
            self._range = torch.autograd.profiler.record_function(self.name)
            self._range.__enter__()
        if _device_module is not False and _active_accelerator() is not None:
            index = torch.accelerator.current_device_index()
            start = torch.Event(enable_timing=True)
            self._events = (start, f"{torch.accelerator.current_accelerator()}:{index}", index)
            start.record()
        else:
            self._start = _perf_counter_ns()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        failed = exc_type is not None
        if self._events is not None:
            end = torch.Event(enable_timing=True)
            end.record()
            start, device, index = self._events
            self._events = None
            _record_device(self.name, device, start, end, failed, torch.accelerator.max_memory_allocated(index))
        else:
            ns = _perf_counter_ns() - (self._start or 0)
            self._start = None
            _record_host(self.name, ns, failed)
        if self._range is not None:
            self._range.__exit__(exc_type, exc, tb)
            self._range = None
        if exc is not None:
            _failed(self.name, exc)


def telemetry(fn: Callable[..., Any] | str | None = None, /, *, name: str | None = None) -> Any:
    r"""Time every call of a function, or a ``with`` block, under a name.

    Forms:

    * ``@telemetry``: times the function under its ``__qualname__``;
    * ``@telemetry(name="load")`` or ``@telemetry("load")``: under ``"load"``;
    * ``with telemetry("load"):``: times the block.

    Args:
        fn: the function to time, or the name for a block.
        name: the name to record under (default: ``fn.__qualname__``).

    Returns:
        The wrapped function (picklable when ``fn`` is defined at module level),
        or an object that is both a context manager and a decorator.

    Raises:
        TypeError: ``fn`` is neither callable nor a string, ``name`` is not a
            string, or both a positional and a keyword name are given.
        ValueError: the name is empty.
        RuntimeError: one ``telemetry("name")`` object is entered again while
            its block is still running.

    The wrapper costs well under a microsecond per call on CPU (see
    ``benchmarks/bench_telemetry.py``).  An exception raised by the timed code
    is counted in ``errors``, reported to :mod:`torch.utils.error_callback`
    and re-raised unchanged.

    .. note::
        Under :func:`torch.compile` the wrapper is host-side timing: it is
        excluded from tracing with :func:`torch.compiler.disable`
        (``recursive=False``), so Dynamo breaks the graph at the call, times it
        eagerly and still compiles the wrapped function itself.  Results are
        the eager ones.

    .. note::
        On an accelerator the duration is the time between two events on the
        current stream, i.e. the device time of the work the call queued
        there; ``peak_memory_bytes`` is
        :func:`torch.accelerator.max_memory_allocated` read as each call ends
        (the device's high-water mark since the last
        :func:`torch.accelerator.reset_peak_memory_stats`, not only this
        call's).  On CPU it is ``None``: the host allocator keeps no cheap
        peak counter.

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
    if isinstance(fn, str):
        if name is not None:
            raise TypeError(f"telemetry(): give the name once, positionally or as name=, but got {fn!r} and {name!r}")
        fn, name = None, fn
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"telemetry(): name must be a str, but got {name!r}")
        if not name:
            raise ValueError("telemetry(): name must be a non-empty string, but got ''")
    if fn is None:
        if name is None:
            raise TypeError("telemetry(): expected a function to time or a name, but got neither")
        return _Block(name)
    if not callable(fn):
        raise TypeError(f"telemetry(): expected a callable or a name (str), but got {fn!r}")
    return _wrap(fn, name if name is not None else getattr(fn, "__qualname__", type(fn).__name__))


def _resolve_pending() -> None:
    with _lock:
        work = [(stat, stat.pending) for stat in _stats.values() if stat.pending]
        for stat, _ in work:
            stat.pending = []
    # Waiting for the device happens outside the lock, so timed calls in other threads go on.
    resolved = []
    for stat, pending in work:
        for start, end in pending:
            end.synchronize()
        resolved.append((stat, [int(start.elapsed_time(end) * 1e6) for start, end in pending]))
    with _lock:
        for stat, durations in resolved:
            for ns in durations:
                stat.add(ns)


def _local_states() -> dict[str, dict[str, Any]]:
    _resolve_pending()
    with _lock:
        for stat in _stats.values():
            stat.fold()
        return {name: stat.state() for name, stat in _stats.items()}


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    stat = _Stat(state["device"])
    stat.count, stat.errors, stat.total_ns = state["count"], state["errors"], state["total_ns"]
    stat.min_ns, stat.max_ns, stat.peak = state["min_ns"], state["max_ns"], state["peak"]
    for index, n in state["buckets"].items():
        stat.buckets[index] = n
    return stat.summary()


def snapshot(*, all_ranks: bool = False, group: Any = None) -> dict[Any, Any]:
    r"""Return the figures recorded so far, one entry per name.

    Args:
        all_ranks: gather the figures of every rank of ``group`` instead of
            this process only.  A collective: every rank must call it.
        group: the process group for ``all_ranks`` (default: the world).

    Returns:
        dict: ``{name: {"count", "errors", "total_ms", "mean_ms", "min_ms",
        "max_ms", "p50_ms", "p95_ms", "device", "peak_memory_bytes"}}`` with
        ints for the counts, floats in milliseconds, the device as a string
        (``"cpu"``, ``"cuda:0"``) and the peak in bytes (``None`` on CPU).
        With ``all_ranks=True``: ``{rank: {name: {...}}}`` for every rank of
        the group, the same on every rank.

    Raises:
        RuntimeError: ``all_ranks=True`` while :mod:`torch.distributed` is not
            initialized.

    Pending accelerator timings are resolved first, which waits for the work
    they time to finish (the only place this module synchronizes).

    Example::

        >>> from torch.utils.telemetry import reset, snapshot, telemetry
        >>> reset()
        >>> with telemetry("load"):
        ...     pass
        >>> stats = snapshot()["load"]
        >>> stats["count"], stats["errors"], stats["min_ms"] <= stats["p50_ms"] <= stats["max_ms"]
        (1, 0, True)
    """
    states = _local_states()
    if not all_ranks:
        return {name: _summary(state) for name, state in states.items()}
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
    return {rank: {name: _summary(state) for name, state in rank_states.items()} for rank, rank_states in zip(ranks, gathered)}


def reset() -> None:
    r"""Forget every figure recorded so far, in this process.

    Timings still pending on an accelerator are dropped with the rest.

    Example::

        >>> from torch.utils.telemetry import reset, snapshot, telemetry
        >>> with telemetry("warmup"):
        ...     pass
        >>> reset()
        >>> snapshot()
        {}
    """
    with _lock:
        _stats.clear()
    _log.debug("telemetry: reset")


def to_json(*, all_ranks: bool = False, group: Any = None, indent: int | None = None) -> str:
    r"""Return :func:`snapshot` as a JSON string.

    Args:
        all_ranks: as for :func:`snapshot` (rank keys become strings).
        group: as for :func:`snapshot`.
        indent: passed to :func:`json.dumps`.

    Returns:
        str: a JSON object; ``peak_memory_bytes`` is ``null`` on CPU.

    Example::

        >>> import json
        >>> from torch.utils.telemetry import reset, telemetry, to_json
        >>> reset()
        >>> with telemetry("save"):
        ...     pass
        >>> json.loads(to_json())["save"]["count"]
        1
    """
    return json.dumps(snapshot(all_ranks=all_ranks, group=group), indent=indent, sort_keys=True)
