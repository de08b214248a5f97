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
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.cuda._memory_guard import clear_cache


__all__ = ["safe_run"]

F = TypeVar("F", bound=Callable[..., Any])
ErrorCallback = Callable[[BaseException, dict[str, Any]], object]

# RuntimeErrors that mean "an allocation failed" although they are not torch.OutOfMemoryError:
# a CUDA call outside the caching allocator, the workspaces of the CUDA libraries (cuDNN reports a
# failed workspace allocation as NOT_SUPPORTED, as accelerate's find_executable_batch_size knows),
# and host memory.
_OOM_MESSAGE = re.compile(
    r"CUDA out of memory|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
    r"|CUDNN_STATUS_NOT_SUPPORTED|CUFFT_ALLOC_FAILED|CUSOLVER_STATUS_ALLOC_FAILED|CUSPARSE_STATUS_ALLOC_FAILED"
    r"|DefaultCPUAllocator: can't allocate memory"
)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and _OOM_MESSAGE.search(str(exc)) is not None
    )


def _drop_frames(exc: BaseException) -> None:
    # The frames of a traceback keep every local of the failed attempt alive (pytorch#27600):
    # clear them, for the whole chain, so a callback that keeps the exception keeps no tensors.
    seen: set[int] = set()
    pending: BaseException | None = exc
    while pending is not None and id(pending) not in seen:
        seen.add(id(pending))
        traceback.clear_frames(pending.__traceback__)
        pending = pending.__cause__ or pending.__context__


def _modules_of(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.nn.Module]:
    candidates = [fn, getattr(fn, "__self__", None), *torch.utils._pytree.tree_leaves((args, kwargs))]
    unique = {id(m): m for m in candidates if isinstance(m, torch.nn.Module)}
    return list(unique.values())


def _device_of(module: torch.nn.Module) -> torch.device | None:
    for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
        if t.device.type != "cpu":
            return t.device
    return None


def _attempt_device(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.device:
    for leaf in torch.utils._pytree.tree_leaves((args, kwargs)):
        if isinstance(leaf, torch.Tensor) and leaf.device.type != "cpu":
            return leaf.device
    for module in _modules_of(fn, args, kwargs):
        for sub in module.modules():
            device = _device_of(sub)
            if device is not None:
                return device
    if torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _autocast_dtype(device_type: str) -> torch.dtype:
    if device_type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.get_autocast_dtype(device_type)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class _Recovery:
    """The attempts after the first one failed; created only on that failure path."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        max_cuda_retries: int,
        use_autocast_on_oom: bool,
        fallback_to_cpu: bool,
        error_callback: ErrorCallback | None,
    ) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.max_cuda_retries = max_cuda_retries
        self.use_autocast_on_oom = use_autocast_on_oom
        self.fallback_to_cpu = fallback_to_cpu
        self.error_callback = error_callback
        self.device = _attempt_device(fn, args, kwargs)
        self.attempt = 0
        self.next_action = ""
        self.history: list[str] = []

    def _plan(self, oom: bool) -> str:
        if not oom:
            return "give_up"
        if self.next_action != "cpu_fallback" and self.attempt <= self.max_cuda_retries:
            if self.use_autocast_on_oom and torch.amp.is_autocast_available(self.device.type):
                return "retry_autocast"
            return "retry"
        if self.fallback_to_cpu and self.next_action != "cpu_fallback":
            return "cpu_fallback"
        return "give_up"

    def failed(self, exc: Exception) -> str:
        """Report attempt ``self.attempt + 1``'s failure and decide what comes next."""
        import torch.utils.error_callback as ec

        self.attempt += 1
        oom = _is_oom(exc)
        device = torch.device("cpu") if self.next_action == "cpu_fallback" else self.device
        action = self._plan(oom)
        self.history.append(f"attempt {self.attempt} on {device}: {type(exc).__name__}, then {action}")
        scope = ec.error_callback(self.error_callback) if self.error_callback is not None else contextlib.nullcontext()
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
            if oom and sys.version_info >= (3, 11):
                exc.add_note(f"torch.cuda.safe_run({_name(self.fn)}): " + "; ".join(self.history))
        else:
            _drop_frames(exc)
        self.next_action = action
        return action

    def run(self) -> Any:
        """Run the remaining attempts; the caller has left its ``except`` block, so the failure is gone."""
        while True:
            clear_cache()
            try:
                if self.next_action == "cpu_fallback":
                    return self._run_on_cpu()
                if self.next_action == "retry_autocast":
                    with torch.autocast(self.device.type, dtype=_autocast_dtype(self.device.type)):
                        return self.fn(*self.args, **self.kwargs)
                return self.fn(*self.args, **self.kwargs)
            except Exception as e:
                if self.failed(e) == "give_up":
                    raise

    def _run_on_cpu(self) -> Any:
        # Each submodule goes back to where its own parameters and buffers were, so a model split
        # over several devices is restored as it was.
        subs = {id(sub): sub for module in _modules_of(self.fn, self.args, self.kwargs) for sub in module.modules()}
        placements = [(sub, device) for sub in subs.values() if (device := _device_of(sub)) is not None]
        moved_tensors = 0

        def to_cpu(t: torch.Tensor) -> torch.Tensor:
            nonlocal moved_tensors
            moved_tensors += t.device.type != "cpu"
            return t.cpu()

        try:
            for sub, _ in placements:
                sub._apply(torch.Tensor.cpu, recurse=False)
            args, kwargs = torch.utils._pytree.tree_map_only(torch.Tensor, to_cpu, (self.args, self.kwargs))
            return self.fn(*args, **kwargs)
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
                f"so it ran on the CPU ({moved_tensors} tensor argument(s) and {modules} moved to cpu{restored}); "
                f"its outputs are on the CPU",
                stacklevel=4,
            )


def safe_run(
    fn: F | None = None,
    /,
    *,
    max_cuda_retries: int = 1,
    use_autocast_on_oom: bool = True,
    fallback_to_cpu: bool = True,
    error_callback: ErrorCallback | None = None,
) -> Any:
    r"""Wrap ``fn`` so that running out of memory retries it, then runs it on the CPU, instead of failing.

    On an out-of-memory error, every reference to the failed attempt is dropped
    (the exception, its traceback and the local variables of its frames, which
    otherwise keep the attempt's tensors alive: pytorch#27600, #18853), memory is
    released with :func:`torch.cuda.clear_cache`, and ``fn`` is called again, up to
    ``max_cuda_retries`` times, under :class:`torch.autocast` when
    ``use_autocast_on_oom``.  If it still runs out of memory and
    ``fallback_to_cpu`` is set, its tensor arguments (at any nesting of lists,
    tuples, dicts and other pytrees) and modules (among the arguments, ``fn``
    itself, or the module behind a bound method ``fn``) are moved to the CPU, ``fn``
    runs there, one warning says so, and the modules are moved back to their
    devices afterwards, whether the call succeeds or not.  Any other error
    propagates at once, unretried.

    Out of memory means :class:`torch.OutOfMemoryError`, or a :class:`RuntimeError`
    from an allocation that failed outside the caching allocator: ``"CUDA error:
    out of memory"``, the ``*_ALLOC_FAILED`` statuses of cuBLAS, cuDNN, cuFFT,
    cuSOLVER and cuSPARSE, cuDNN's ``CUDNN_STATUS_NOT_SUPPORTED`` (how it reports a
    workspace it could not allocate) and ``"DefaultCPUAllocator: can't allocate
    memory"``.

    Args:
        fn (Callable): the function, module or bound method to run. When omitted,
            ``safe_run(...)`` returns a decorator.
        max_cuda_retries (int): how many times to call ``fn`` again on its device
            after an out-of-memory error. Default: ``1``.
        use_autocast_on_oom (bool): run the retries under :class:`torch.autocast`
            for the device that ran out of memory (bfloat16 where supported, else
            the device's autocast dtype). Default: ``True``.
        fallback_to_cpu (bool): when the retries are exhausted, run ``fn`` on the
            CPU. Default: ``True``.
        error_callback (Callable, optional): called as ``error_callback(exc, info)``
            for every failed attempt, in addition to the callbacks registered with
            :mod:`torch.utils.error_callback`; ``info`` holds ``"source"``
            (``"torch.cuda.safe_run"``), ``"function"``, ``"attempt"`` (1 for the
            first call), ``"device"`` (where the attempt ran) and ``"next_action"``
            (``"retry"``, ``"retry_autocast"``, ``"cpu_fallback"`` or
            ``"give_up"``; an error that is not an out-of-memory error is reported
            with ``"give_up"``). A callback that raises is logged and ignored.

    Returns:
        The wrapped callable, with ``fn``'s name and docstring
        (:func:`functools.wraps`), or, when ``fn`` is omitted, a decorator that
        makes one. ``safe_run(fn)(*args, **kwargs)`` runs ``fn`` at once.

    Raises:
        TypeError: ``fn`` is not callable, ``max_cuda_retries`` is not an ``int``,
            a flag is not a ``bool`` or ``error_callback`` is not callable.
        ValueError: ``max_cuda_retries`` is negative.

    When every stage fails, the last attempt's error is raised, with a note
    listing each attempt (Python 3.11+).

    .. note:: Results of the CPU fallback stay on the CPU. Tensor arguments are
        copied to the CPU, so in-place changes ``fn`` makes to them are not seen
        by the caller (modules are moved in place, so their changes are kept);
        optimizer state is not moved. A recovered attempt's traceback keeps its
        lines but not its frames' local variables. Calls that already hold tensors
        elsewhere (globals, closures) are retried as they are. A training step that
        ran out of memory half-way through ``backward()`` may have accumulated part
        of its gradients: zero them at the start of ``fn`` so a retry starts clean.

    .. note:: The wrapper is host-side policy: Dynamo skips it (``torch.cuda`` is
        on its skip list, which acts as ``torch.compiler.disable(recursive=False)``)
        and compiles ``fn`` itself, so a compiled ``safe_run`` function still
        retries and falls back. Decorated module-level functions pickle by
        reference, for ``spawn`` and ``DataLoader`` workers.

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
        raise TypeError(f"safe_run(): max_cuda_retries must be an int, but got {max_cuda_retries!r}")
    if max_cuda_retries < 0:
        raise ValueError(f"safe_run(): max_cuda_retries must be >= 0, but got {max_cuda_retries}")
    for flag, value in (("use_autocast_on_oom", use_autocast_on_oom), ("fallback_to_cpu", fallback_to_cpu)):
        if not isinstance(value, bool):
            raise TypeError(f"safe_run(): {flag} must be a bool, but got {value!r}")
    if error_callback is not None and not callable(error_callback):
        raise TypeError(f"safe_run(): error_callback must be callable or None, but got {error_callback!r}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"safe_run(): expected a callable to wrap, but got {fn!r}")

        # A module's __dict__ (its parameters, submodules...) must not be copied onto the wrapper.
        @functools.wraps(fn, updated=() if isinstance(fn, torch.nn.Module) else functools.WRAPPER_UPDATES)
        def safe_run_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                recovery = _Recovery(
                    fn, args, kwargs, max_cuda_retries, use_autocast_on_oom, fallback_to_cpu, error_callback
                )
                if recovery.failed(e) == "give_up":
                    raise
            return recovery.run()

        return safe_run_wrapper  # type: ignore[return-value]

    return decorate if fn is None else decorate(fn)


safe_run.__module__ = "torch.cuda"
