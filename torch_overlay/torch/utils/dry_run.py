r"""
Dry runs: a switch for side effects, and a rehearsal of a step's memory without running it.

A training script is worth trying end to end before it spends hours of
accelerator time.  This module offers two pieces:

* a **switch**, on when the environment has ``TORCH_DRY_RUN=1`` or inside
  ``with dry_run():``, queried by :func:`is_enabled`.  Functions marked
  :func:`skippable` (checkpoint writers, uploads, notifications...) are not
  called while it is on: the call is logged to
  ``logging.getLogger("torch.utils.dry_run")`` and a declared placeholder is
  returned;
* :func:`rehearse`, which runs a function or a module on fake tensors
  (:class:`torch._subclasses.fake_tensor.FakeTensorMode`) and reports the
  output shapes, the peak memory the real run would need
  (:class:`torch.distributed._tools.mem_tracker.MemTracker`) and its FLOPs
  (:class:`torch.utils.flop_counter.FlopCounterMode`), without allocating the
  tensors — a GPU step can be rehearsed on a laptop.

Seeing what a dry run skipped: PyTorch's loggers do not propagate to the root
logger, so ``logging.basicConfig(level=logging.INFO)`` does not show the
skips.  Enable this module's logger through :mod:`torch._logging` instead,
from the environment::

    TORCH_LOGS="torch.utils.dry_run" python train.py    # INFO: one line per skipped call
    TORCH_LOGS="+torch.utils.dry_run" python train.py   # DEBUG as well

or from Python, ``torch._logging.set_logs(modules={"torch.utils.dry_run": logging.INFO})``.
``TORCH_LOGS="dry_run"`` is the registered short form of the same setting.

Under :func:`torch.compile`: use ``with dry_run():`` and ``@dry_run()``
outside compiled regions (around the compiled call); Dynamo does not trace
them, and a ``fullgraph=True`` compilation that reaches one fails with
Dynamo's "marked as skipped" message.  A :func:`skippable` function called
inside a compiled region runs eagerly (a graph break).

Worker processes: ``with dry_run():`` is state of the calling thread (a
:mod:`contextvars` variable).  Processes *forked* inside the block, such as
:class:`~torch.utils.data.DataLoader` workers with the default ``fork`` start
method on Linux, inherit it and see dry-run mode on; *spawned* ones
(``multiprocessing_context="spawn"``, the default on macOS and Windows) start
fresh and only see ``TORCH_DRY_RUN``.  Set the environment variable to switch
every process the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import functools
import inspect
import logging
import os
import reprlib
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import Any, TypeVar

import torch
from torch.utils import _pytree as pytree
from torch.utils._contextlib import _DecoratorContextManager
from torch.utils._eager import stay_eager
from torch.utils._stepwise import context_decorator, kind, wrap


__all__ = ["Rehearsal", "dry_run", "is_enabled", "rehearse", "skippable"]

_F = TypeVar("_F", bound=Callable[..., Any])

_log = logging.getLogger(__name__)

_ENV = "TORCH_DRY_RUN"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})

# None: follow the environment; True/False: set by the innermost ``dry_run`` block of this thread or task.
_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("torch.utils.dry_run._override", default=None)

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 4


def _from_environment() -> bool:
    value = os.environ.get(_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{_ENV}={os.environ[_ENV]!r} is not understood; expected one of 1/0, true/false, yes/no, on/off")


def is_enabled() -> bool:
    r"""Return whether dry-run mode is on in the calling thread.

    Returns:
        bool: the value set by the innermost active :class:`dry_run` block of this
        thread (or ``asyncio`` task), else whether the environment variable
        ``TORCH_DRY_RUN`` is true (``1``/``true``/``yes``/``on``).

    Raises:
        ValueError: ``TORCH_DRY_RUN`` holds something other than a boolean word.

    Example::

        >>> torch.utils.dry_run.is_enabled()
        False
        >>> with torch.utils.dry_run.dry_run():
        ...     torch.utils.dry_run.is_enabled()
        True
    """
    override = _override.get()
    return _from_environment() if override is None else override


class dry_run(_DecoratorContextManager):
    r"""Context manager and decorator that turns dry-run mode on (or off) in the calling thread.

    Args:
        enabled: ``True`` (default) turns dry-run mode on inside the block;
            ``False`` turns it off, e.g. to really run one step inside a dry run.

    Blocks nest: the innermost one wins, and leaving a block restores the state
    that was in force before it, also when the block raises.

    As a decorator on an ``async def`` function, a generator function or an
    async generator function, the wrapper is of the same kind and dry-run mode
    is on while the body's own code runs (each step up to its next ``await``
    or ``yield``): other ``asyncio`` tasks, the caller and a generator's
    consumer do not see it.

    Raises:
        TypeError: ``enabled`` is not a bool; decorating a class.

    .. note:: The switch is thread-aware: a ``with dry_run():`` block affects
        only the thread (or ``asyncio`` task) that entered it, and the tasks it
        creates; other threads keep following ``TORCH_DRY_RUN``.  Processes
        forked inside the block (e.g. ``DataLoader`` workers under the
        ``fork`` start method) inherit it; spawned ones see only
        ``TORCH_DRY_RUN``.  Set the environment variable to switch every
        process the same way.  Use the block outside ``torch.compile``'d code.

    Example::

        >>> from torch.utils.dry_run import dry_run, is_enabled
        >>> with dry_run():
        ...     with dry_run(False):
        ...         inner = is_enabled()
        ...     outer = is_enabled()
        >>> inner, outer, is_enabled()
        (False, True, False)
    """

    def __init__(self, enabled: bool = True) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"dry_run(): enabled must be a bool, but got {enabled!r}")
        self.enabled = enabled
        self._tokens: list[contextvars.Token[bool | None]] = []

    def __enter__(self) -> None:
        self._tokens.append(_override.set(self.enabled))

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        _override.reset(self._tokens.pop())

    def __call__(self, fn: _F) -> _F:
        return context_decorator(self.clone, fn, "dry_run()")

    def clone(self) -> dry_run:
        return dry_run(self.enabled)


def skippable(fn: _F | None = None, *, returns: Any = None) -> Any:
    r"""Mark a function with side effects so that it is skipped, and logged, in dry-run mode.

    Args:
        fn: the function to wrap; omit it to use ``@skippable(returns=...)``.
        returns: what the skipped call returns instead (returned as is, not
            copied).  For a generator function or an async generator function:
            ``None`` (default) or an iterable whose items a skipped call yields.

    Returns:
        The wrapped function (or, without ``fn``, a decorator).  Outside dry-run
        mode it calls ``fn``; in dry-run mode (see :func:`is_enabled`) it logs
        ``"dry run: skipped <name>(<arguments>)"`` at ``INFO`` level to
        ``logging.getLogger("torch.utils.dry_run")``, with arguments abbreviated,
        and returns ``returns``.

    Raises:
        TypeError: ``fn`` is a class (decorate its methods) or not callable,
            or ``returns`` is neither ``None`` nor a non-string iterable for a
            generator function.

    The wrapper is of ``fn``'s own kind: on an ``async def`` function it is a
    coroutine function whose skipped call, once awaited, returns ``returns``;
    on a generator function (sync or async) a skipped call yields the items of
    ``returns`` (nothing when it is ``None``).  The switch is read when the
    body would start running (the first ``await`` or ``next``), in the task or
    thread that runs it.

    Under :func:`torch.compile` the wrapper runs eagerly (a graph break; the
    switch is read at each call); a ``fullgraph=True`` compilation that reaches
    it fails with a message saying to call it outside the compiled region.

    To see the skips, enable the logger, e.g. ``TORCH_LOGS="torch.utils.dry_run"``
    (see the module documentation).

    Example::

        >>> from torch.utils.dry_run import dry_run, skippable
        >>> @skippable(returns="<not saved>")
        ... def save_checkpoint(state, path):
        ...     torch.save(state, path)
        ...     return path
        >>> with dry_run():
        ...     save_checkpoint({"step": 1}, "/tmp/ckpt.pt")
        '<not saved>'
    """
    if fn is None:
        return functools.partial(skippable, returns=returns)
    if inspect.isclass(fn):
        raise TypeError(
            f"skippable(): can only decorate a function, but got the class {fn.__qualname__}; "
            "decorate its methods that have side effects instead"
        )
    if not callable(fn):
        raise TypeError(f"skippable(): expected a callable, but got {fn!r}")
    name = getattr(fn, "__qualname__", repr(fn))
    what = kind(fn)
    generator = what in ("generator", "async generator")
    if generator and returns is not None and (not isinstance(returns, Iterable) or isinstance(returns, (str, bytes))):
        raise TypeError(
            f"skippable(): {name} is a generator function, so returns= must be None or an iterable "
            f"(not a string) of what a skipped call yields, but got {returns!r}"
        )

    def skipped(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if not is_enabled():
            return False
        if _log.isEnabledFor(logging.INFO):
            shown = [_repr.repr(a) for a in args] + [f"{k}={_repr.repr(v)}" for k, v in kwargs.items()]
            _log.info("dry run: skipped %s(%s)", name, ", ".join(shown))
        return True

    if what != "function":
        placeholder: Callable[[Any], Any] = {
            "coroutine": _returning,
            "generator": _yielding,
            "async generator": _yielding_async,
        }[what]

        def start(*args: Any, **kwargs: Any) -> Any:
            return placeholder(returns) if skipped(args, kwargs) else fn(*args, **kwargs)

        return stay_eager(wrap(fn, contextlib.nullcontext, start), "@skippable", _SKIPPABLE_EAGER.format(name))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return returns if skipped(args, kwargs) else fn(*args, **kwargs)

    return stay_eager(wrapper, "@skippable", _SKIPPABLE_EAGER.format(name))


_SKIPPABLE_EAGER = (
    "@skippable function {} runs eagerly (it reads the dry-run switch on the host at each call), so it cannot "
    "be traced into a fullgraph=True compilation: call it outside the compiled region, or compile without "
    "fullgraph=True"
)


# What a skipped coroutine / generator / async generator call runs instead of the body.
async def _returning(value: Any) -> Any:
    return value


def _yielding(items: Iterable[Any] | None) -> Generator[Any, None, None]:
    yield from () if items is None else items


async def _yielding_async(items: Iterable[Any] | None) -> AsyncGenerator[Any, None]:
    for item in () if items is None else items:
        yield item


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    r"""What :func:`rehearse` found out about one run.

    Attributes:
        outputs: the run's return value, with every tensor replaced by a
            ``meta`` tensor of the same shape, dtype and strides.
        peak_memory: bytes the run would hold at its peak, summed over devices.
        memory_by_device: for each device, the breakdown at its peak, in bytes,
            by category (``"Parameter"``, ``"Buffer"``, ``"Gradient"``,
            ``"Activation"``, ``"Temp"``, ``"Optstate"``, ``"Other"`` — inputs
            count as ``"Other"`` — and ``"Total"``).
        flops: floating-point operations of the run, as counted by
            :class:`torch.utils.flop_counter.FlopCounterMode`.

    Example::

        >>> r = torch.utils.dry_run.rehearse(torch.nn.Linear(4, 2), torch.randn(8, 4))
        >>> r.outputs.shape, r.flops
        (torch.Size([8, 2]), 128)
    """

    outputs: Any
    peak_memory: int
    memory_by_device: dict[torch.device, dict[str, int]]
    flops: int


_DATA_DEPENDENT = (
    "rehearse(): fn's output shape or control flow depends on the values in its tensors ({op}), which a "
    "rehearsal cannot know: it runs on fake tensors, with no real data; rehearse the part of the step before "
    "the value is read (e.g. .item(), .tolist(), .numpy(), nonzero(), boolean-mask indexing, `if tensor:`)"
)


def _fake_module(module: torch.nn.Module, fake_mode: Any) -> torch.nn.Module:
    # Deep-copy the module object graph but map every parameter and buffer to a fake
    # twin through deepcopy's memo, so no real parameter memory is ever copied.
    memo: dict[int, Any] = {}
    for t in (*module.parameters(), *module.buffers()):
        memo[id(t)] = fake_mode.from_tensor(t)
    return copy.deepcopy(module, memo)


def rehearse(
    fn: Callable[..., Any],
    /,
    *args: Any,
    backward: bool = False,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    **kwargs: Any,
) -> Rehearsal:
    r"""Run ``fn(*args, **kwargs)`` on fake tensors and report outputs, peak memory and FLOPs.

    Nothing is allocated for the tensors involved: tensor and module arguments
    (and ``fn`` itself when it is a module or a module's bound method) are
    replaced by fake twins with the same shapes, dtypes and devices, and
    ``fn`` runs under :class:`~torch._subclasses.fake_tensor.FakeTensorMode`,
    so tensors it creates are fake too.  The modules and tensors passed in are
    not modified (no ``.grad`` appears on them).

    Args:
        fn: a function or an :class:`torch.nn.Module`.
        *args: passed to ``fn``; tensors are only read for their metadata
            (shape, dtype, strides, device).
        **kwargs: passed to ``fn``, like ``args``.
        backward: also run ``backward()`` on the sum of the floating-point
            outputs that require grad, as a training step would.
        optimizer: an optimizer class or factory (``torch.optim.AdamW`` or
            ``functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)``),
            called with the parameters of the modules rehearsed, then stepped
            after the backward pass (requires ``backward=True``); its state is
            counted as ``"Optstate"``.

    Returns:
        Rehearsal: ``outputs`` (as ``meta`` tensors), ``peak_memory`` in bytes,
        ``memory_by_device`` and ``flops``.

    Raises:
        TypeError: ``fn`` is not callable, is an ``async def``, generator or
            async generator function (rehearse a plain function, e.g. one
            step), ``backward`` is not a bool, or ``optimizer`` is not an
            optimizer class or factory (an optimizer instance is refused: pass
            ``type(opt)``).  Checked before anything runs.
        RuntimeError: ``fn`` reached a real tensor that was not passed as an
            argument (e.g. a module captured in a closure); or its output shape
            or control flow depends on tensor values (``.item()``,
            ``.tolist()``, ``.numpy()``, ``nonzero()``, ``if tensor:``...),
            which a rehearsal, having no real data, cannot know (chained from
            the fake-tensor exception).
        ValueError: ``optimizer`` without ``backward=True``, or ``backward=True``
            with no output that requires grad.

    .. note:: The memory model is :class:`~torch.distributed._tools.mem_tracker.MemTracker`'s:
        the bytes of every live tensor storage (parameters, buffers, inputs,
        gradients, activations saved for backward, temporaries and optimizer
        state) at the moment their sum peaks.  It does not see the allocator's
        rounding and caching, workspace of libraries such as cuBLAS/cuDNN, the
        CUDA context, or tensors that ``fn`` reaches through globals or closures
        (pass them as arguments).  On CPU it comes within a few percent of the
        measured resident peak of an MLP, a small conv net and a transformer
        encoder layer (forward and backward) and of an MLP's ``AdamW`` step
        when glibc's mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``); with
        glibc's default dynamic threshold, freed blocks stay resident in its
        heap and the measured peak is up to about a third higher (see
        ``test/test_utils_dry_run.py``).

    Example::

        >>> model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 16))
        >>> r = torch.utils.dry_run.rehearse(model, torch.randn(2048, 1024), backward=True)
        >>> r.outputs.shape, r.outputs.dtype
        (torch.Size([2048, 16]), torch.float32)
        >>> round(r.peak_memory / 2**20)
        121
        >>> round(r.flops / 1e9, 1)
        35.2
    """
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensorMode,
    )
    from torch.distributed._tools.mem_tracker import MemTracker
    from torch.utils.flop_counter import FlopCounterMode

    if not callable(fn):
        raise TypeError(f"rehearse(): fn must be callable, but got {_repr.repr(fn)}")
    what = kind(fn)
    if what != "function":
        raise TypeError(
            f"rehearse(): fn is a {what} function ({getattr(fn, '__qualname__', _repr.repr(fn))}), whose call "
            f"returns an unrun {what} instead of running the step; rehearse a plain function, e.g. one step"
        )
    if not isinstance(backward, bool):
        raise TypeError(f"rehearse(): backward must be a bool, but got {_repr.repr(backward)}")
    if isinstance(optimizer, torch.optim.Optimizer):
        cls = type(optimizer)
        name = cls.__name__
        path = f"{cls.__module__}.{cls.__qualname__}"
        if getattr(torch.optim, name, None) is cls:
            path = f"torch.optim.{name}"
        raise TypeError(
            f"rehearse(): optimizer must be an optimizer class or factory, not an instance ({name}) that holds "
            f"real parameters; pass type(opt), or functools.partial({path}, lr=...) to keep its settings"
        )
    if optimizer is not None and not callable(optimizer):
        raise TypeError(
            f"rehearse(): optimizer must be an optimizer class or factory, but got {_repr.repr(optimizer)}"
        )
    if optimizer is not None and not backward:
        raise ValueError("rehearse(): an optimizer step needs gradients; pass backward=True with optimizer=")

    fake_mode = FakeTensorMode()
    modules: list[torch.nn.Module] = []
    inputs: list[torch.Tensor] = []

    def fake(value: Any) -> Any:
        if isinstance(value, torch.nn.Module):
            modules.append(_fake_module(value, fake_mode))
            return modules[-1]
        if isinstance(value, torch.Tensor):
            inputs.append(fake_mode.from_tensor(value))
            return inputs[-1]
        return value

    if isinstance(fn, torch.nn.Module):
        fn = fake(fn)
    elif inspect.ismethod(fn) and isinstance(fn.__self__, torch.nn.Module):
        fn = getattr(fake(fn.__self__), fn.__name__)
    args, kwargs = pytree.tree_map(fake, (args, kwargs))

    tracker = MemTracker()
    tracker.track_external(*modules, *inputs)
    flop_counter = FlopCounterMode(display=False)
    try:
        with fake_mode, tracker, flop_counter:
            outputs = fn(*args, **kwargs)
            if backward:
                roots = [t for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor) and t.requires_grad]
                if not roots:
                    raise ValueError("rehearse(backward=True): no output of fn requires grad")
                sum(t.sum() for t in roots).backward()
            if optimizer is not None:
                optimizer([p for m in modules for p in m.parameters()]).step()
    except (DataDependentOutputException, DynamicOutputShapeException) as e:
        raise RuntimeError(_DATA_DEPENDENT.format(op=e)) from e
    except RuntimeError as e:
        if ".numpy() is not supported for tensor subclasses" not in str(e):
            raise
        raise RuntimeError(_DATA_DEPENDENT.format(op="Tensor.numpy()")) from e
    except AssertionError as e:
        # FakeTensorMode's own check for a real tensor reaching an op.
        if "convert all Tensors to FakeTensors" not in str(e):
            raise
        raise RuntimeError(
            "rehearse(): fn used a real tensor that was not passed to rehearse (a global, a closure "
            "variable or an attribute of a non-module object); pass such modules and tensors as "
            "arguments so that they can be replaced by fake ones"
        ) from e

    by_device = {
        device: {str(getattr(k, "value", k)): v for k, v in snap.items()}
        for device, snap in tracker.get_tracker_snapshot("peak").items()
    }
    return Rehearsal(
        outputs=pytree.tree_map_only(
            torch.Tensor,
            lambda t: torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta"),
            outputs,
        ),
        peak_memory=sum(snap["Total"] for snap in by_device.values()),
        memory_by_device=by_device,
        flops=flop_counter.get_total_flops(),
    )
