r"""
Run a callable so that running out of GPU memory degrades it instead of killing it.

:func:`torch.cuda.safe_run` retries a callable that ran out of memory after
releasing everything the failed attempt held, optionally under autocast, and
finally on the CPU.  Each failed attempt is reported through
:mod:`torch.utils.error_callback`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, cast, TypeVar

import torch
from torch.cuda._memory_guard import clear_cache
from torch.cuda._oom import is_oom, oom_device


__all__ = ["safe_run"]

F = TypeVar("F", bound=Callable[..., Any])
ErrorCallback = Callable[[BaseException, dict[str, Any]], object]


def _drop_frames(exc: BaseException) -> None:
    # The frames of a traceback keep every local of the failed attempt alive (pytorch#27600): clear
    # them, for the whole chain. Frames still running are left as they are (clear_frames skips
    # them): safe_run's own wrapper, which fn's frames reach through f_back, and its callers. The
    # wrapper therefore drops its references to the arguments before it returns (see safe_run_wrapper).
    seen: set[int] = set()
    pending: BaseException | None = exc
    while pending is not None and id(pending) not in seen:
        seen.add(id(pending))
        traceback.clear_frames(pending.__traceback__)
        pending = pending.__cause__ or pending.__context__


def _modules_of(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.nn.Module]:
    candidates = [
        fn,
        getattr(fn, "__self__", None),
        *torch.utils._pytree.tree_leaves((args, kwargs)),
    ]
    unique = {id(m): m for m in candidates if isinstance(m, torch.nn.Module)}
    return list(unique.values())


def _device_of(module: torch.nn.Module) -> torch.device | None:
    for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
        if t.device.type != "cpu":
            return t.device
    return None


def _argument_devices(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.device]:
    devices = [
        leaf.device
        for leaf in torch.utils._pytree.tree_leaves((args, kwargs))
        if isinstance(leaf, torch.Tensor) and leaf.device.type != "cpu"
    ]
    for module in _modules_of(fn, args, kwargs):
        devices.extend(d for sub in module.modules() if (d := _device_of(sub)) is not None)
    return devices


def _failing_device(
    exc: BaseException,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> torch.device:
    """The device that ran out: named by the error, else where the arguments live, else the current one."""
    named = oom_device(exc)
    if named is not None and named.index is not None:
        return named
    devices = _argument_devices(fn, args, kwargs)
    if named is not None:  # the error names the kind of device only: take the argument of that kind
        return next((d for d in devices if d.type == named.type), named)
    if devices:
        return devices[0]
    # Raised by an accelerator's allocator or runtime (not the CPU's): the current CUDA device, if any.
    by_type = (torch.OutOfMemoryError, getattr(torch, "AcceleratorError", torch.OutOfMemoryError))
    if isinstance(exc, by_type) and torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _autocast_dtype(device: torch.device) -> torch.dtype:
    # The dtype torch.autocast() picks for the device that ran out (not the current one).
    from torch.amp._defaults import default_dtype

    if device.type == "cuda" and not torch.cuda.is_initialized():
        return torch.get_autocast_dtype("cuda")  # nothing ran on CUDA: asking would initialize it
    return default_dtype(device.type, device.index)


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def _on_cpu(device: torch.device) -> Any:
    # Factories inside fn must not allocate on the device that just ran out, even under
    # torch.set_default_device / DeviceContext, and its autocast does not apply to CPU work.
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.device("cpu"))
        if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
            stack.enter_context(torch.autocast(device.type, enabled=False))
        yield


def _expected_dtype(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.dtype:
    """What floating outputs would be without autocast: the floating arguments' and parameters' dtype."""
    dtypes = {
        leaf.dtype
        for leaf in torch.utils._pytree.tree_leaves((args, kwargs))
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()
    }
    for module in _modules_of(fn, args, kwargs):
        dtypes.update(p.dtype for p in module.parameters() if p.is_floating_point())
    return functools.reduce(torch.promote_types, dtypes) if dtypes else torch.get_default_dtype()


def _restore_dtype(out: Any, low: torch.dtype, expected: torch.dtype) -> Any:
    if low == expected:
        return out
    return torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: t.to(expected) if t.dtype == low else t, out)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class _Recovery:
    """The attempts after the first one failed; created only on that failure path."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException,
        options: _Options,
    ) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.options = options
        self.device = _failing_device(exc, fn, args, kwargs)
        self.attempt = 0
        self.next_action = ""
        self.history: list[str] = []

    def _plan(self, oom: bool) -> str:
        # A CPU that ran out has no ladder: no autocast retry, and no CPU to fall back to.
        if not oom or self.device.type == "cpu" or self.next_action == "cpu_fallback":
            return "give_up"
        if self.attempt <= self.options.max_cuda_retries:
            if self.options.use_autocast_on_oom and torch.amp.is_autocast_available(self.device.type):
                return "retry_autocast"
            return "retry"
        return "cpu_fallback" if self.options.fallback_to_cpu else "give_up"

    def failed(self, exc: Exception) -> str:
        """Report attempt ``self.attempt + 1``'s failure and decide what comes next."""
        import torch.utils.error_callback as ec

        self.attempt += 1
        oom = is_oom(exc)
        device = torch.device("cpu") if self.next_action == "cpu_fallback" else self.device
        action = self._plan(oom)
        self.history.append(f"attempt {self.attempt} on {device}: {type(exc).__name__}, then {action}")
        callback = self.options.error_callback
        scope = ec.error_callback(callback) if callback is not None else contextlib.nullcontext()
        with scope:
            ec.report(
                exc,
                source="torch.cuda.safe_run",
                function=_name(self.fn),
                attempt=self.attempt,
                device=device,
                next_action=action,
            )
        if action == "give_up":
            # BaseException.add_note is new in Python 3.11; on 3.10 the callbacks alone see the history.
            if sys.version_info >= (3, 11) and oom and self.attempt > 1:
                exc.add_note(f"torch.cuda.safe_run({_name(self.fn)}): " + "; ".join(self.history))
        else:
            _drop_frames(exc)
        self.next_action = action
        return action

    @functools.cached_property
    def low_dtype(self) -> torch.dtype:
        return _autocast_dtype(self.device)

    def state(self) -> contextlib.AbstractContextManager[Any]:
        """What the next attempt runs under: autocast for an autocast retry, the CPU for the fallback."""
        if self.next_action == "retry_autocast":
            return _autocast(self.device, self.low_dtype)
        if self.next_action == "cpu_fallback":
            return _on_cpu(self.device)
        return contextlib.nullcontext()

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self._cpu_arguments() if self.next_action == "cpu_fallback" else (self.args, self.kwargs)

    def finish(self, out: Any) -> Any:
        if self.next_action == "retry_autocast" and self.options.restore_dtype:
            out = _restore_dtype(
                out,
                self.low_dtype,
                _expected_dtype(self.fn, self.args, self.kwargs),
            )
        return out

    def run(self) -> Any:
        """Run the remaining attempts; the caller has left its ``except`` block, so the failure is gone."""
        with self._released():
            return self._run()

    async def run_async(self) -> Any:
        """:meth:`run` for a coroutine function: the state is entered only while its coroutine runs."""
        with self._released():
            return await self._run_async()

    @contextlib.contextmanager
    def _released(self) -> Any:
        # A failed attempt's frames reach this object through f_back (frames cannot be unlinked), and
        # an error_callback may keep such an exception: hold the arguments no longer than the run.
        try:
            yield
        finally:
            self.args, self.kwargs = (), {}

    def _run(self) -> Any:
        while True:
            clear_cache()
            try:
                with self._placement():
                    args, kwargs = self.arguments()
                    with self.state():
                        out = self.fn(*args, **kwargs)
                return self.finish(out)
            except Exception as e:
                if self.failed(e) == "give_up":
                    raise

    async def _run_async(self) -> Any:
        # Imported here: torch.cuda is imported while torch itself is, before torch.utils can be.
        from torch.utils._stepwise import step_scoped

        while True:
            clear_cache()
            try:
                with self._placement():
                    args, kwargs = self.arguments()
                    out = await step_scoped(self.state, self.fn(*args, **kwargs))
                return self.finish(out)
            except Exception as e:
                if self.failed(e) == "give_up":
                    raise

    def _cpu_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # Only the containers on the way to a tensor that must move are rebuilt; any other argument or
        # sub-container is passed as the same object, so what fn writes into it reaches the caller.
        pytree = torch.utils._pytree

        def off_cpu(leaf: Any) -> bool:
            return isinstance(leaf, torch.Tensor) and leaf.device.type != "cpu"

        def to_cpu(node: Any) -> Any:
            if isinstance(node, torch.Tensor):
                if node.device.type == "cpu":
                    return node
                self._moved_tensors += 1
                return node.cpu()
            if not any(off_cpu(leaf) for leaf in pytree.tree_leaves(node)):
                return node
            children, spec = pytree.tree_flatten(node, is_leaf=lambda child: child is not node)
            return pytree.tree_unflatten([to_cpu(child) for child in children], spec)

        return tuple(to_cpu(a) for a in self.args), {k: to_cpu(v) for k, v in self.kwargs.items()}

    @contextlib.contextmanager
    def _placement(self) -> Any:
        if self.next_action != "cpu_fallback":
            yield
            return
        # Each submodule goes back to where its own parameters and buffers were, so a model split
        # over several devices is restored as it was.
        subs = {id(sub): sub for module in _modules_of(self.fn, self.args, self.kwargs) for sub in module.modules()}
        placements = [(sub, device) for sub in subs.values() if (device := _device_of(sub)) is not None]
        self._moved_tensors = 0
        try:
            for sub, _ in placements:
                sub._apply(torch.Tensor.cpu, recurse=False)
            yield
        finally:
            stranded = []
            for sub, device in placements:
                try:
                    sub._apply(functools.partial(torch.Tensor.to, device=device), recurse=False)
                except Exception as e:
                    stranded.append(f"{type(sub).__name__} stays on cpu ({type(e).__name__}: {e})")
            names = sorted({type(sub).__name__ for sub, _ in placements})
            modules = f"the modules {', '.join(names)}" if names else "no module"
            restored = (
                "; could not move them all back: " + "; ".join(stranded)
                if stranded
                else ", and back to their devices afterwards"
                if names
                else ""
            )
            warnings.warn(
                f"torch.cuda.safe_run: {_name(self.fn)} ran out of memory on {self.device} {self.attempt} time(s), "
                f"so it ran on the CPU ({self._moved_tensors} tensor argument(s) and {modules} moved to cpu"
                f"{restored}); its outputs are on the CPU",
                stacklevel=6,
            )


class _Options:
    __slots__ = (
        "max_cuda_retries",
        "use_autocast_on_oom",
        "fallback_to_cpu",
        "restore_dtype",
        "error_callback",
    )

    max_cuda_retries: int
    use_autocast_on_oom: bool
    fallback_to_cpu: bool
    restore_dtype: bool
    error_callback: ErrorCallback | None

    def __init__(self, **options: Any) -> None:
        for name, value in options.items():
            setattr(self, name, value)


def safe_run(
    fn: F | None = None,
    /,
    *,
    max_cuda_retries: int = 1,
    use_autocast_on_oom: bool = True,
    fallback_to_cpu: bool = True,
    restore_dtype: bool = True,
    error_callback: ErrorCallback | None = None,
) -> Any:
    r"""Wrap ``fn`` so that running out of memory retries it, then runs it on the CPU, instead of failing.

    On an out-of-memory error on an accelerator, every reference to the failed
    attempt that can be dropped is dropped (see the note on tracebacks), memory is
    released with :func:`torch.cuda.clear_cache`, and ``fn`` is called again, up to
    ``max_cuda_retries`` times, under :class:`torch.autocast` when
    ``use_autocast_on_oom``.  If it still runs out of memory and
    ``fallback_to_cpu`` is set, its tensor arguments (at any nesting of lists,
    tuples, dicts and other pytrees) and modules (among the arguments, ``fn``
    itself, or the module behind a bound method ``fn``) are moved to the CPU, ``fn``
    runs there with ``torch.device("cpu")`` as the default device (factory
    calls inside ``fn`` do not allocate on the device that ran out, even under
    :func:`torch.set_default_device` or a device context) and that device's
    autocast off, one warning says so, and the modules are moved back to their
    devices afterwards, whether the call succeeds or not.  Any other error
    propagates at once, unretried; so does an out-of-memory error of the CPU
    itself (``"DefaultCPUAllocator: can't allocate memory"``): there is no
    cheaper place to retry it.

    Out of memory means, in this order: :class:`torch.OutOfMemoryError`; a
    :class:`torch.AcceleratorError` (where this release has it) whose message says
    ``"out of memory"``; a :class:`RuntimeError` carrying one of these messages:
    ``"CUDA out of memory"``, ``"CUDA error: out of memory"``, ``"CUDA driver
    error: out of memory"``, ``"Triton Error [CUDA]: out of memory"``, ``"HIP out
    of memory"``, ``"HIP error: out of memory"``, ``"MPS backend out of memory"``,
    ``"XPU out of memory"``, HPU's ``"PT_DEVMEM Allocation failed"``, the
    ``*_ALLOC_FAILED`` statuses of cuBLAS, cuDNN, cuFFT, cuSOLVER and cuSPARSE,
    cuDNN 9's ``CUDNN_STATUS_INTERNAL_ERROR_{DEVICE,HOST}_ALLOCATION_FAILED`` and
    cuDNN's ``"CUDNN_STATUS_NOT_SUPPORTED."`` (how it reports a workspace it could
    not allocate; longer statuses such as ``CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH``
    are configuration errors and propagate).  The device that ran out is the one
    the message names (``"GPU 1 has a total capacity ..."``), else the first
    argument or module on a device of that kind, else the current CUDA device; the
    autocast dtype is bfloat16 where *that* device supports it natively, else its
    autocast dtype.

    Args:
        fn (Callable): the function, coroutine function, module or bound method to
            run. When omitted, ``safe_run(...)`` returns a decorator.
        max_cuda_retries (int): how many times to call ``fn`` again on its device
            after an out-of-memory error. Default: ``1``.
        use_autocast_on_oom (bool): run the retries under :class:`torch.autocast`
            for the device that ran out of memory. Default: ``True``.
        fallback_to_cpu (bool): when the retries are exhausted, run ``fn`` on the
            CPU. Default: ``True``.
        restore_dtype (bool): after a successful autocast retry, cast the floating
            tensors of the output (any pytree) that came out in the autocast dtype
            back to the dtype a run without autocast gives: the promoted dtype of
            the floating tensor arguments and module parameters, else
            :func:`torch.get_default_dtype`. So the caller sees the dtype of a
            normal call whichever attempt succeeded. ``False`` keeps the low
            precision outputs (less memory). Default: ``True``.
        error_callback (Callable, optional): called as ``error_callback(exc, info)``
            for every failed attempt, in addition to the callbacks registered with
            :mod:`torch.utils.error_callback`; ``info`` holds ``"source"``
            (``"torch.cuda.safe_run"``), ``"function"``, ``"attempt"`` (1 for the
            first call), ``"device"`` (the device that ran out) and ``"next_action"``
            (``"retry"``, ``"retry_autocast"``, ``"cpu_fallback"`` or
            ``"give_up"``; an error that is not an out-of-memory error, or that
            happened on the CPU, is reported with ``"give_up"``). A callback that
            raises an :class:`Exception` is logged and ignored; one that raises
            another :class:`BaseException` (:class:`KeyboardInterrupt`,
            :class:`SystemExit`) stops ``safe_run``: that exception propagates,
            and no further attempt is made.

    Returns:
        The wrapped callable, with ``fn``'s name and docstring
        (:func:`functools.wraps`), or, when ``fn`` is omitted, a decorator that
        makes one. ``safe_run(fn)(*args, **kwargs)`` runs ``fn`` at once. For a
        coroutine function (``async def``) the wrapper is a coroutine function that
        awaits ``fn`` and recovers the same way; autocast and the CPU default
        device of a retry are entered only while ``fn``'s coroutine runs, never
        while it is suspended, so other tasks of the event loop do not see them.

    Raises:
        TypeError: ``fn`` is not callable or is a generator or async generator
            function (items already yielded cannot be taken back, so an attempt
            cannot be retried: wrap the per-item work, or the function consuming the
            generator, instead), ``max_cuda_retries`` is not an ``int``, a flag is
            not a ``bool`` or ``error_callback`` is not callable.
        ValueError: ``max_cuda_retries`` is negative.

    When every stage fails, the last attempt's error is raised, with a note
    listing each attempt (Python 3.11+).

    .. note:: Tracebacks: a retried attempt's exception keeps the lines of its
        traceback from ``fn``'s frame down, but their frames' local variables are
        cleared, and the still-running frames above ``fn`` (``safe_run``'s own,
        which hold the call's arguments) are cut off the traceback; so an
        ``error_callback`` that keeps the exception keeps neither the attempt's
        tensors nor the arguments. Objects the exception itself references (its
        ``args``, attributes) are kept with it.

    .. note:: Results of the CPU fallback stay on the CPU. Tensor arguments are
        copied to the CPU, so in-place changes ``fn`` makes to them are not seen
        by the caller (modules are moved in place, so their changes are kept);
        optimizer state is not moved. A list, tuple, dict (or other pytree)
        argument that contains tensors off the CPU is passed as a new container
        holding CPU copies, so what ``fn`` adds to or removes from it is not seen
        by the caller either; one without such tensors is passed as is (the same
        object), and so is every container nested in a rebuilt one that holds
        none, so ``fn``'s writes to them are kept. Calls that already hold tensors elsewhere
        (globals, closures) are retried as they are. A training step that
        ran out of memory half-way through ``backward()`` may have accumulated part
        of its gradients: zero them at the start of ``fn`` so a retry starts clean.

    .. note:: The wrapper is host-side policy and stays eager under
        :func:`torch.compile`: compiling it compiles ``fn`` and keeps the retries
        (Dynamo skips ``torch.cuda``'s frames); ``fullgraph=True`` over the
        wrapper, or over a function that calls it, fails with a message saying to
        apply ``safe_run`` outside the compiled region, e.g.
        ``torch.cuda.safe_run(torch.compile(step, fullgraph=True))``. Decorated
        module-level functions pickle by reference, for ``spawn`` and
        ``DataLoader`` workers.

    .. note:: Under :mod:`torch.distributed`, ``safe_run`` acts on its own rank
        only. If one rank runs out of memory, it retries or falls back alone while
        the other ranks wait in the next collective; if ``fn`` itself issues
        collectives (a DDP backward, an all-reduce), the retry issues them again
        and the ranks fall out of step until the process group's timeout. Wrap
        per-rank work that issues no collectives, or make every rank fail together.

    Example::

        >>> def step(x):
        ...     return (x @ x.T).sum()
        >>> torch.cuda.safe_run(step)(torch.ones(4, 4))
        tensor(64.)
        >>> @torch.cuda.safe_run(max_cuda_retries=2, fallback_to_cpu=False)
        ... def forward(model, batch):
        ...     return model(batch)
    """
    if isinstance(max_cuda_retries, bool) or not isinstance(max_cuda_retries, int):
        raise TypeError(
            f"safe_run(): max_cuda_retries must be an int, but got {max_cuda_retries!r} "
            f"of type {type(max_cuda_retries).__name__}"
        )
    if max_cuda_retries < 0:
        raise ValueError(f"safe_run(): max_cuda_retries must be >= 0, but got {max_cuda_retries}")
    flags = {
        "use_autocast_on_oom": use_autocast_on_oom,
        "fallback_to_cpu": fallback_to_cpu,
        "restore_dtype": restore_dtype,
    }
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"safe_run(): {flag} must be a bool, but got {value!r} of type {type(value).__name__}")
    if error_callback is not None and not callable(error_callback):
        raise TypeError(
            f"safe_run(): error_callback must be callable or None, but got {error_callback!r} "
            f"of type {type(error_callback).__name__}"
        )
    options = _Options(max_cuda_retries=max_cuda_retries, error_callback=error_callback, **flags)

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"safe_run(): expected a callable to wrap, but got {fn!r}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
            raise TypeError(
                f"safe_run(): {_name(fn)} is {kind} function; an attempt that already yielded items cannot be "
                f"retried, so wrap the work done for each item (or the function consuming the generator) with "
                f"safe_run instead"
            )
        # Imported here: torch.cuda is imported while torch itself is, before torch.utils can be.
        from torch.utils._eager import stay_eager

        # A module's __dict__ (its parameters, submodules...) must not be copied onto the wrapper.
        wraps = functools.wraps(
            fn,
            updated=() if isinstance(fn, torch.nn.Module) else functools.WRAPPER_UPDATES,
        )

        if inspect.iscoroutinefunction(fn):

            @wraps
            async def safe_run_async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except Exception as e:
                    recovery = _Recovery(fn, args, kwargs, e, options)
                    if recovery.failed(e) == "give_up":
                        raise
                del args, kwargs  # as in safe_run_wrapper
                return await recovery.run_async()

            return cast(F, stay_eager(safe_run_async_wrapper, "torch.cuda.safe_run"))

        @wraps
        def safe_run_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                recovery = _Recovery(fn, args, kwargs, e, options)
                if recovery.failed(e) == "give_up":
                    raise
            # A kept exception reaches this frame through its frames' f_back, and a finished frame keeps
            # its locals: drop the arguments. The recovery drops its own when it is done.
            del args, kwargs
            return recovery.run()

        return cast(F, stay_eager(safe_run_wrapper, "torch.cuda.safe_run"))

    return decorate if fn is None else decorate(fn)


safe_run.__module__ = "torch.cuda"
