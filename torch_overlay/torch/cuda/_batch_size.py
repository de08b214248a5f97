r"""
Find the largest batch that fits by shrinking it on out-of-memory errors, in step across ranks.

:func:`torch.cuda.find_batch_size` wraps a function whose first parameter is the
batch size.  An attempt that runs out of memory is released as
:func:`torch.cuda.safe_run` releases one, the size shrinks and the function runs
again; the size that worked is kept for later calls.  Under
:mod:`torch.distributed`, every rank tells the others how its attempt ended
through the default group's store, so all ranks retry together with the same
size.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import os
import sys
import threading
from collections.abc import Callable
from numbers import Real
from typing import Any, cast, SupportsIndex, TypeVar

import torch
from torch.cuda._memory_guard import clear_cache
from torch.cuda._oom import is_oom
from torch.cuda._safe_run import _drop_frames


__all__ = ["find_batch_size"]

F = TypeVar("F", bound=Callable[..., Any])
ErrorCallback = Callable[[BaseException, dict[str, Any]], object]

_SOURCE = "torch.cuda.find_batch_size"
# Keys in the distributed store name the wrapped function and how many wrappers of that name came before
# it in this process, so that every rank (which decorates in the same order) uses the same keys.
_instances: dict[str, itertools.count[int]] = {}
_instances_lock = threading.Lock()


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _size(value: object, what: str, caller: str) -> int:
    """``value`` as a batch size: an integer (not a bool) from 1 to ``sys.maxsize``."""
    if isinstance(value, bool):
        raise TypeError(f"{caller}: {what} must be an int, but got {value!r} of type bool")
    try:
        size = operator.index(cast(SupportsIndex, value))  # anything else raises TypeError, caught below
    except TypeError:
        raise TypeError(f"{caller}: {what} must be an int, but got {value!r} of type {type(value).__name__}") from None
    if not 1 <= size <= sys.maxsize:
        raise ValueError(f"{caller}: {what} must be an int from 1 to sys.maxsize ({sys.maxsize}), but got {size}")
    return size


def _shrink(size: int, factor: float, min_size: int) -> int | None:
    """The next size to try after ``size`` ran out of memory, or ``None`` when ``min_size`` already did."""
    if size <= min_size:
        return None
    return max(min(int(size * factor), size - 1), min_size)


def _free_memory() -> int:
    """Free memory of the current accelerator, else the host memory the OS reports available."""
    if torch.accelerator.device_count() > 0:
        return int(torch.accelerator.get_memory_info()[0])
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _plan_size(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], start: int | None) -> int:
    """The batch size the dry-run planner finds for ``fn`` in the free memory, up to ``start`` (``None``: unbounded)."""
    # Imported here: torch.cuda is imported while torch itself is, before torch.utils can be.
    from torch.utils.dry_run import max_batch_size

    def step(n: int, kw: dict[str, Any], *rest: Any) -> Any:
        return fn(n, *rest, **kw)

    # The call's arguments go through make_batch, so that rehearse replaces their modules and tensors by fake ones.
    name = f"find_batch_size({_name(fn)})"
    try:
        plan = max_batch_size(step, lambda n: (n, kwargs, *args), memory=_free_memory(), high=start)
    except (TypeError, ValueError, RuntimeError) as e:
        instead = (
            f"or pass plan=None to start at start={start}"
            if start is not None
            else "pass start= to bound the search (the planner's high=), or start= with plan=None"
        )
        message = (
            f"{name}: plan=True could not plan the batch size, because rehearsing fn on fake tensors failed: {e} "
            f"-- make fn rehearsable, {instead} (or a BatchPlan from torch.utils.dry_run.max_batch_size)"
        )
        try:
            error = type(e)(message)
        except Exception:  # an exception type that takes other arguments
            error = RuntimeError(message)
        raise error from e
    return _size(plan.batch_size, "the planned batch size", name)


def _report(callback: ErrorCallback | None, exc: BaseException, **info: Any) -> None:
    import contextlib

    import torch.utils.error_callback as ec

    scope = ec.error_callback(callback) if callback is not None else contextlib.nullcontext()
    with scope:
        ec.report(exc, source=_SOURCE, **info)


class _Group:
    """The default process group of this attempt, captured before the step may destroy it."""

    def __init__(self, dist: Any) -> None:
        from torch.distributed.distributed_c10d import _get_default_store

        self.dist = dist
        self.store = _get_default_store()
        self.backend = dist.get_backend()
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    @staticmethod
    def current() -> _Group | None:
        dist = sys.modules.get("torch.distributed")
        if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
            return None
        return _Group(dist)

    def agree_on_start(self, key: str, size: int) -> int:
        """The smallest of the ranks' starting sizes."""
        self.store.set(f"{key}/{self.rank}", str(size))
        keys = [f"{key}/{r}" for r in range(self.world_size)]
        self.store.wait(keys)
        return min(int(self._get(keys)[r]) for r in range(self.world_size))

    def _get(self, keys: list[str]) -> list[str]:
        if hasattr(self.store, "multi_get"):
            return [v.decode() for v in self.store.multi_get(keys)]
        return [self.store.get(k).decode() for k in keys]

    def break_group(self, key: str) -> None:
        """Say this rank failed, then destroy the group: a peer blocked in a collective of the step returns."""
        if self.store.add(f"{key}/failures", 1) == 1:
            self.store.set(f"{key}/first", str(self.rank))
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def outcomes(self, key: str, outcome: str) -> list[str] | None:
        """Publish this rank's outcome and wait for every rank's; ``None`` when every rank succeeded."""
        self.store.set(f"{key}/outcome/{self.rank}", outcome)
        if self.store.add(f"{key}/arrived", 1) == self.world_size:
            self.store.set(f"{key}/all", "1")
        try:
            self.store.wait([f"{key}/all"])
        except Exception as e:
            keys = [f"{key}/outcome/{r}" for r in range(self.world_size)]
            missing = [r for r, k in enumerate(keys) if not self.store.check([k])]
            # torch's _distributed_c10d.pyi lacks Store.timeout (a property of every store at runtime)
            timeout = self.store.timeout  # type: ignore[attr-defined]
            raise RuntimeError(
                f"{_SOURCE}: rank {self.rank} waited for the outcome of every rank's attempt, but rank(s) "
                f"{missing} did not report within the store's timeout ({timeout})"
            ) from e
        if self.store.add(f"{key}/failures", 0) == 0:
            return None
        return self._get([f"{key}/outcome/{r}" for r in range(self.world_size)])

    def regroup(self, key: str) -> None:
        """Rebuild the default group on every rank, with a fresh prefix of the same store."""
        dist = self.dist
        if dist.is_initialized():
            dist.destroy_process_group()
        dist.init_process_group(
            self.backend,
            store=dist.PrefixStore(f"{key}/regroup", self.store),
            rank=self.rank,
            world_size=self.world_size,
            timeout=self.store.timeout,  # type: ignore[attr-defined]  # missing from torch's stub, as above
        )


class _Call:
    """One call's arguments, which the wrapper holds only here and drops when the call ends.

    A failed attempt's traceback reaches the wrapper's frames through ``f_back`` (frames cannot be unlinked,
    and a finished frame keeps its locals), and an error callback may keep that exception: as in
    :func:`torch.cuda.safe_run`, those frames must not hold the arguments once the call is over.
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs

    def release(self) -> None:
        self.args, self.kwargs = (), {}


class _Finder:
    """The state of one wrapped function: options and the size that worked."""

    def __init__(
        self,
        fn: Callable[..., Any],
        start: int | None,
        min_size: int,
        factor: float,
        plan: Any,
        error_callback: ErrorCallback | None,
    ) -> None:
        self.fn, self.start, self.min_size, self.factor = fn, start, min_size, factor
        self.plan, self.error_callback = plan, error_callback
        self.name = _name(fn)
        self.lock = threading.Lock()
        self.batch_size: int | None = None
        self.calls = itertools.count()
        qualname = f"{getattr(fn, '__module__', None)}.{self.name}"
        with _instances_lock:
            index = next(_instances.setdefault(qualname, itertools.count()))
        self.key = f"{_SOURCE}/{qualname}/{index}"
        self.wrapper: Any = None

    def first_size(self, call: _Call) -> int:
        with self.lock:
            if self.batch_size is not None:
                return self.batch_size
        if self.plan is True:
            size = _plan_size(self.fn, call.args, call.kwargs, self.start)
            return max(size if self.start is None else min(size, self.start), self.min_size)
        if self.plan is not None:
            return _size(self.plan.batch_size, "plan.batch_size", f"find_batch_size({self.name})")
        return cast(int, self.start)  # find_batch_size() requires start without a plan

    def worked(self, size: int) -> None:
        with self.lock:
            # Only ever shrinks: another thread's call may have run out of memory at a larger size meanwhile.
            self.batch_size = size if self.batch_size is None else min(self.batch_size, size)
            self.wrapper.batch_size = self.batch_size

    def exhausted(self, size: int, tried: list[int], last: BaseException, rank: str = "") -> torch.OutOfMemoryError:
        error = torch.OutOfMemoryError(
            f"find_batch_size({self.name}){rank}: ran out of memory at every batch size tried "
            f"({', '.join(map(str, tried))}), down to min_size={self.min_size}; lower min_size or free memory"
        )
        error.__cause__ = last
        return error

    # One attempt's aftermath. Each returns the next size, or raises.
    def failed(self, exc: Exception, size: int, attempt: int, tried: list[int]) -> int | None:
        """This process alone: the size to retry with after an out-of-memory error; ``None``: re-raise ``exc``."""
        oom = is_oom(exc)
        next_size = _shrink(size, self.factor, self.min_size) if oom else None
        _report(
            self.error_callback,
            exc,
            function=self.name,
            attempt=attempt,
            batch_size=size,
            next_batch_size=next_size,
            next_action="retry" if next_size is not None else "give_up",
        )
        if not oom:
            return None
        if next_size is None:
            raise self.exhausted(size, tried, exc) from exc
        _drop_frames(exc)
        return next_size

    def settle(self, group: _Group, key: str, exc: Exception | None, size: int, attempt: int, tried: list[int]) -> int | None:
        """All ranks: agree on how the attempt ended. ``None``: it worked everywhere; else the next size."""
        if exc is None:
            outcome = "ok"
        else:
            outcome = "oom" if is_oom(exc) else f"error {type(exc).__name__}: {exc}"
            group.break_group(key)
        outcomes = group.outcomes(key, outcome)
        if outcomes is None:
            return None
        oom_ranks = [r for r, o in enumerate(outcomes) if o == "oom"]
        errors = {r: o[len("error ") :] for r, o in enumerate(outcomes) if o.startswith("error ")}
        group.regroup(key)
        next_size = _shrink(size, self.factor, self.min_size) if oom_ranks else None
        where = f" on rank {group.rank}"
        if exc is not None:
            _report(
                self.error_callback,
                exc,
                function=self.name,
                attempt=attempt,
                batch_size=size,
                next_batch_size=next_size,
                next_action="retry" if next_size is not None else "give_up",
                rank=group.rank,
                oom_ranks=oom_ranks,
                # An error of this rank while another ran out of memory is taken as its consequence (a
                # collective whose peer left): it is retried with the others, not raised.
                peer_oom=bool(oom_ranks) and outcome != "oom",
            )
        if not oom_ranks:
            # The rank that failed first raises its error; the others (whose collectives may have failed because
            # it left) raise one naming it, so that no rank goes on to wait for it.
            first = int(group.store.get(f"{key}/first"))
            if first == group.rank and exc is not None:
                raise exc
            this = "this rank's attempt worked" if exc is None else f"this rank's failed too ({outcome[6:]})"
            raise RuntimeError(
                f"find_batch_size({self.name}){where}: the attempt at batch size {size} failed on rank {first} "
                f"({errors[first]}); {this}; every rank stops so that none waits for the others"
            ) from exc
        if next_size is None:
            last = exc if exc is not None and outcome == "oom" else None
            cause = last or torch.OutOfMemoryError(f"rank(s) {oom_ranks} ran out of memory at batch size {size}")
            raise self.exhausted(size, tried, cause, where)
        if exc is not None:
            _drop_frames(exc)
        return next_size

    def begin(self, call: _Call) -> tuple[_Group | None, str, int]:
        group = _Group.current()
        key = f"{self.key}/{next(self.calls)}"
        size = self.first_size(call)
        if group is not None and self.batch_size is None:
            size = group.agree_on_start(f"{key}/start", size)
        return group, key, size

    def run(self, call: _Call) -> Any:
        group, key, size = self.begin(call)
        tried: list[int] = []
        for attempt in itertools.count(1):
            tried.append(size)
            if attempt > 1:
                clear_cache()
            if group is not None:
                group = _Group(group.dist)
            error: Exception | None = None
            out: Any  # bound unless the attempt failed, and then settle() retries or raises (declared for mypy)
            try:
                out = self.fn(size, *call.args, **call.kwargs)
            except Exception as e:
                if group is None:
                    next_size = self.failed(e, size, attempt, tried)
                    if next_size is None:
                        raise
                    size = next_size
                    continue
                error = e
            if group is not None:
                next_size = self.settle(group, f"{key}/{attempt}", error, size, attempt, tried)
                del error
                if next_size is not None:
                    size = next_size
                    continue
            self.worked(size)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_async(self, call: _Call) -> Any:
        group, key, size = self.begin(call)
        tried: list[int] = []
        for attempt in itertools.count(1):
            tried.append(size)
            if attempt > 1:
                clear_cache()
            if group is not None:
                group = _Group(group.dist)
            error: Exception | None = None
            out: Any  # bound unless the attempt failed, and then settle() retries or raises (declared for mypy)
            try:
                out = await self.fn(size, *call.args, **call.kwargs)
            except Exception as e:
                if group is None:
                    next_size = self.failed(e, size, attempt, tried)
                    if next_size is None:
                        raise
                    size = next_size
                    continue
                error = e
            if group is not None:
                next_size = self.settle(group, f"{key}/{attempt}", error, size, attempt, tried)
                del error
                if next_size is not None:
                    size = next_size
                    continue
            self.worked(size)
            return out
        raise AssertionError("unreachable")  # pragma: no cover


def _validate_plan(plan: object, min_size: int) -> object:
    if plan is None or plan is True:
        return plan
    if plan is False:
        return None
    if not hasattr(plan, "batch_size"):
        raise TypeError(
            f"find_batch_size(): plan must be None, False, True or a BatchPlan from torch.utils.dry_run.max_batch_size "
            f"(an object with an int batch_size), but got {plan!r} of type {type(plan).__name__}"
        )
    size = _size(cast(Any, plan).batch_size, "plan.batch_size", "find_batch_size()")  # hasattr checked above
    if size < min_size:
        raise ValueError(f"find_batch_size(): plan.batch_size ({size}) is smaller than min_size ({min_size})")
    return plan


def find_batch_size(
    fn: F | None = None,
    /,
    *,
    start: int | None = None,
    min_size: int = 1,
    factor: float = 0.5,
    plan: Any = None,
    error_callback: ErrorCallback | None = None,
) -> Any:
    r"""Call ``fn`` with the largest batch size that fits, shrinking it after each out-of-memory error.

    ``fn``'s first parameter is the batch size; the wrapper takes the others and
    calls ``fn(batch_size, *args, **kwargs)``.  The first call starts at ``start``
    (or at ``plan``'s size, and then ``start`` may be omitted).  When an attempt
    runs out of memory (the errors :func:`torch.cuda.safe_run` recognizes:
    :class:`torch.OutOfMemoryError`, and the CUDA, HIP, MPS, XPU, cuBLAS, cuDNN
    and CPU allocation failures), it is released as ``safe_run`` releases one
    (the frames of its traceback are cleared, the wrapper drops the call's
    arguments when the call ends: see the note on tracebacks, then
    :func:`torch.cuda.clear_cache`, which creates no CUDA context),
    the size becomes ``int(size * factor)`` (at least 1 smaller, and not below
    ``min_size``) and ``fn`` runs again.  The size that worked is kept in
    ``wrapper.batch_size`` (``None`` before the first success) and later calls
    start there; it only ever shrinks, also when several threads call the wrapper.

    Args:
        fn (Callable): the function or coroutine function to wrap. When omitted,
            ``find_batch_size(...)`` returns a decorator.
        start (int, optional): the first batch size to try; required unless
            ``plan`` is given. With a ``BatchPlan``, ``start`` is not used (the
            plan's size is tried first); with ``plan=True`` it bounds the planner's
            search.
        min_size (int): the smallest batch size to try. Default: ``1``.
        factor (float): how much the size shrinks after an out-of-memory error,
            between 0 and 1 exclusive. Default: ``0.5``.
        plan (optional): a ``BatchPlan`` from
            :func:`torch.utils.dry_run.max_batch_size` (any object with an int
            ``batch_size``): start at its ``batch_size`` instead of ``start``, so
            that the first real attempt is usually the last; ``min_size`` is
            checked against that size. ``True``: make that plan at the first call,
            by rehearsing ``fn`` on fake tensors for the free memory of the
            current accelerator (the host's available memory on a machine without
            one), searching sizes up to ``start`` (without ``start``: doubling
            from 1 until a size no longer fits, which needs a step whose memory
            grows with the batch size); the first attempt is the planned size, but
            not below ``min_size``; the call's other arguments (a model, data) are
            rehearsed as fake tensors too. ``None`` or ``False`` (default
            ``None``): no plan, start at ``start``.
        error_callback (Callable, optional): called as ``error_callback(exc, info)``
            for every failed attempt, in addition to the callbacks registered with
            :mod:`torch.utils.error_callback`; ``info`` holds ``"source"``
            (``"torch.cuda.find_batch_size"``), ``"function"``, ``"attempt"`` (1
            for the first), ``"batch_size"``, ``"next_batch_size"`` (``None`` when
            giving up) and ``"next_action"`` (``"retry"`` or ``"give_up"``); under
            :mod:`torch.distributed` also ``"rank"``, ``"oom_ranks"`` and
            ``"peer_oom"``.

    Returns:
        The wrapper, with ``fn``'s name and docstring and a ``batch_size``
        attribute, or a decorator that makes one. For a coroutine function the
        wrapper is a coroutine function that awaits each attempt.

    Raises:
        TypeError: ``start`` is omitted without a ``plan``; ``fn`` is not callable,
            is a generator or async generator
            function (an attempt that already yielded items cannot be retried:
            wrap the function that runs one batch instead), or takes no positional
            parameter; a size is not an int; ``factor`` is not a real number;
            ``plan`` has no int ``batch_size``, or is ``True`` for a coroutine
            function; ``error_callback`` is not callable.
        ValueError: a size is below 1 or above ``sys.maxsize``, ``min_size`` is
            above the first size tried (``plan.batch_size`` with a ``BatchPlan``,
            else ``start``), or ``factor`` is not between 0 and 1 exclusive.

    With ``plan=True``, an error of the planning rehearsal (e.g. ``fn`` reads a
    tensor value, or uses a module it did not get as an argument) is raised at
    the first call as the same exception type, naming ``find_batch_size`` and
    ``plan=True`` and chained to the rehearsal's error.

    Any other error of ``fn`` propagates at once, unretried. When ``min_size``
    itself runs out of memory, the wrapper raises :class:`torch.OutOfMemoryError`
    listing the sizes tried, chained to the last attempt's error.

    .. note:: Tracebacks: as with :func:`torch.cuda.safe_run`, a retried
        attempt's exception keeps the lines of its traceback, but the local
        variables of ``fn``'s frames are cleared, and the wrapper's own frames
        (which the traceback reaches) drop the call's arguments when the call
        ends; so an ``error_callback`` (or a callback registered with
        :mod:`torch.utils.error_callback`) that keeps the exception keeps neither
        the attempt's tensors nor the arguments. The error finally raised (the
        last attempt's, or the one it is chained to) keeps ``fn``'s frames whole
        for debugging, so its locals (``fn``'s own parameters among them) live as
        long as that exception; the wrapper's frames hold no arguments there
        either. Objects the exception itself references (its ``args``,
        attributes) are kept with it.

    Each failed attempt costs a full garbage collection (:func:`torch.cuda.clear_cache`
    runs :func:`gc.collect`; a tenth to a fifth of a second in a large process)
    on top of the attempt itself, and the number of attempts from ``start``
    down to the size that fits grows as ``log(start / size) / log(1 / factor)``:
    a ``factor`` near 1 with a huge ``start`` (``factor=0.999``,
    ``start=sys.maxsize``: about 4,500 attempts) takes minutes.  Start near the
    expected size, keep ``factor`` at most about 0.9, or pass ``plan`` so that
    the first attempt is usually the last.

    .. note:: Under :mod:`torch.distributed` (an initialized default group of
        more than one rank), every rank runs ``fn`` with the same size. After each
        attempt, each rank publishes how it ended in the default group's store
        and waits for the others' (at most the store's timeout). A rank whose
        attempt fails first says so in the store, then destroys the default
        group, so that a peer blocked in a collective of ``fn`` returns at once
        (with gloo, a ``RuntimeError`` "Connection closed by peer"); such an error
        of a peer while another rank ran out of memory is taken as its consequence
        and reported with ``peer_oom=True``, not raised. If any rank ran out of
        memory, every rank rebuilds the default group (same backend, rank, world
        size and store, under a new prefix) and all retry with the same smaller
        size; if a rank failed otherwise, the first rank that failed raises its
        error and the others a :class:`RuntimeError` naming it, after the group
        was rebuilt, so no rank is left waiting. Limits: anything built on the old group (a
        :class:`~torch.nn.parallel.DistributedDataParallel` module, groups from
        :func:`~torch.distributed.new_group`) must be rebuilt, e.g. inside ``fn``;
        with NCCL, a peer blocked in a collective kernel returns only at the
        group's timeout or abort. The first call also agrees on the smallest
        starting size of all ranks. The agreement blocks the calling thread, also
        in a coroutine, as the step's collectives do.

    .. note:: The wrapper is host-side policy and stays eager under
        :func:`torch.compile`; apply it outside the compiled region, e.g.
        ``torch.cuda.find_batch_size(torch.compile(step), start=64)``.

    Example::

        >>> @torch.cuda.find_batch_size(start=64)
        ... def train(batch_size, data):
        ...     if batch_size > 16:  # a real step runs out of memory by itself
        ...         raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        ...     return data[:batch_size].sum()
        >>> train(torch.ones(100))
        tensor(16.)
        >>> train.batch_size
        16
    """
    caller = "find_batch_size()"
    min_size = _size(min_size, "min_size", caller)
    if isinstance(factor, bool) or not isinstance(factor, Real):
        raise TypeError(f"{caller}: factor must be a real number, but got {factor!r} of type {type(factor).__name__}")
    if not 0 < factor < 1:
        raise ValueError(f"{caller}: factor must be between 0 and 1 exclusive, but got {factor!r}")
    plan = _validate_plan(plan, min_size)  # a BatchPlan's size, the first one tried, is checked against min_size
    if start is None:
        if plan is None:
            raise TypeError(
                f"{caller} missing required keyword argument 'start' (the first batch size to try); it may be "
                "omitted only with plan=True or plan=a BatchPlan from torch.utils.dry_run.max_batch_size"
            )
    else:
        start = _size(start, "start", caller)
        # With a BatchPlan, start is not tried: the plan's size is the first (checked above).
        if (plan is None or plan is True) and min_size > start:
            raise ValueError(f"{caller}: min_size ({min_size}) must not be above start ({start})")
    if error_callback is not None and not callable(error_callback):
        raise TypeError(
            f"{caller}: error_callback must be callable or None, but got {error_callback!r} "
            f"of type {type(error_callback).__name__}"
        )

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"find_batch_size(): expected a callable to wrap, but got {fn!r}")
        name = f"find_batch_size({_name(fn)})"
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
            raise TypeError(
                f"{name}: {_name(fn)} is {kind} function; an attempt that already yielded items cannot be retried "
                f"with a smaller batch, so wrap the function that runs one batch instead"
            )
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # no signature (some builtins): trust the caller
            parameters = None
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if parameters is not None and not any(
            p.kind in positional or p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters
        ):
            raise TypeError(f"{name}: the wrapped function must take the batch size as its first positional parameter")
        if plan is True and inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"{name}: plan=True rehearses fn on fake tensors, which a coroutine function cannot be; pass "
                f"plan=torch.utils.dry_run.max_batch_size(...) of the synchronous step instead"
            )
        # Imported here: torch.cuda is imported while torch itself is, before torch.utils can be.
        from torch.utils._eager import stay_eager

        finder = _Finder(fn, start, min_size, float(factor), plan, error_callback)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def find_batch_size_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = _Call(args, kwargs)
                del args, kwargs  # as in find_batch_size_wrapper
                try:
                    return await finder.run_async(call)
                finally:
                    call.release()

            wrapper: Any = find_batch_size_async_wrapper
        else:

            @functools.wraps(fn)
            def find_batch_size_wrapper(*args: Any, **kwargs: Any) -> Any:
                # A kept exception reaches this frame and finder.run's through f_back: they hold the
                # arguments only through `call`, which drops them when the call ends (see _Call).
                call = _Call(args, kwargs)
                del args, kwargs
                try:
                    return finder.run(call)
                finally:
                    call.release()

            wrapper = find_batch_size_wrapper
        wrapper.batch_size = None
        finder.wrapper = wrapper
        return cast(F, stay_eager(wrapper, _SOURCE))

    return decorate if fn is None else decorate(fn)


find_batch_size.__module__ = "torch.cuda"
