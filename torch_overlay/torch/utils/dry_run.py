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
import math
import os
import reprlib
import sys
import warnings
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import Any, cast, TypeVar

import torch
from torch.utils import _pytree as pytree
from torch.utils._contextlib import _DecoratorContextManager
from torch.utils._eager import stay_eager
from torch.utils._stepwise import context_decorator, kind, wrap


__all__ = ["BatchPlan", "Rehearsal", "dry_run", "is_enabled", "max_batch_size", "rehearse", "skippable"]

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
            ``meta`` tensor of the same shape, dtype and strides, in the
            containers :mod:`torch.utils._pytree` knows (tuples, named tuples,
            lists, dicts, and the classes registered with it) and in the fields
            of dataclasses (copied, frozen ones too), at any depth.  Objects of
            other classes are returned as they are, with the fake tensors of the
            rehearsal in their attributes (not to be used outside it).
        peak_memory: bytes the run would hold at its peak, summed over devices.
        memory_by_device: for each device, the breakdown at its peak, in bytes,
            by category (``"Parameter"``, ``"Buffer"``, ``"Gradient"``,
            ``"Activation"``, ``"Temp"``, ``"Optstate"``, ``"Other"`` — inputs
            count as ``"Other"`` — and ``"Total"``).
        flops: floating-point operations of the run, as counted by
            :class:`torch.utils.flop_counter.FlopCounterMode`.
        memory_by_module: for each module that ran (by qualified name, the
            root module named by its class: ``"Sequential"``,
            ``"Sequential.0"``), the peak bytes held while it ran, forward or
            backward, from :class:`~torch.distributed._tools.mem_tracker.MemTracker`'s
            module tree.  The roots are the module arguments (and ``fn`` when
            it is a module or a module's bound method); a second root of the
            same class is named ``"Linear#1"``, a third ``"Linear#2"``, in
            argument order (``fn`` first).  A module whose own forward does not
            run (``fn`` a bound method other than ``forward``) has no entry,
            but its submodules keep their qualified names.
        flops_by_module: for each module that ran, the FLOPs of the operations
            run while it was active, submodules included
            (``FlopCounterMode``'s per-module counts, named as above).  A
            module is active during its forward, and in the backward pass from
            the moment the gradient of its output is computed until those of
            its inputs are (or until the end of the pass when none of its
            inputs needs one).  So a module whose output is the tensor
            ``backward()`` starts from (a root whose forward returns the loss)
            counts its forward only and may count less than a submodule, and a
            module whose inputs need no gradient (one fed the batch) also
            counts the backward operations run after its own.  :attr:`flops`
            counts every operation once.

    Example::

        >>> r = torch.utils.dry_run.rehearse(torch.nn.Linear(4, 2), torch.randn(8, 4))
        >>> r.outputs.shape, r.flops
        (torch.Size([8, 2]), 128)
    """

    outputs: Any
    peak_memory: int
    memory_by_device: dict[torch.device, dict[str, int]]
    flops: int
    memory_by_module: dict[str, int] = dataclasses.field(default_factory=dict)
    flops_by_module: dict[str, int] = dataclasses.field(default_factory=dict)


_DATA_DEPENDENT = (
    "rehearse(): fn's output shape or control flow depends on the values in its tensors ({op}), which a "
    "rehearsal cannot know: it runs on fake tensors, with no real data; rehearse the part of the step before "
    "the value is read (e.g. .item(), .tolist(), .numpy(), nonzero(), boolean-mask indexing, `if tensor:`)"
)


def _fake_module(module: torch.nn.Module, fake: Callable[[torch.Tensor], torch.Tensor]) -> torch.nn.Module:
    # Deep-copy the module object graph but map every parameter and buffer to a fake
    # twin through deepcopy's memo, so no real parameter memory is ever copied.
    memo: dict[int, Any] = {}
    for t in (*module.parameters(), *module.buffers()):
        memo[id(t)] = fake(t)
    return copy.deepcopy(module, memo)


def _devices_of(values: Iterable[Any]) -> list[torch.device]:
    found = []
    for value in values:
        if isinstance(value, torch.nn.Module):
            found += [t.device for t in (*value.parameters(), *value.buffers())]
        elif isinstance(value, torch.Tensor):
            found.append(value.device)
    return found


def rehearse(
    fn: Callable[..., Any],
    /,
    *args: Any,
    backward: bool = False,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    device: torch.device | str | int | None = None,
    **kwargs: Any,
) -> Rehearsal:
    r"""Run ``fn(*args, **kwargs)`` on fake tensors and report outputs, peak memory and FLOPs.

    Nothing is allocated for the tensors involved: tensor and module arguments
    (and ``fn`` itself when it is a module or a module's bound method) are
    replaced by fake twins with the same shapes, dtypes and devices, and
    ``fn`` runs under :class:`~torch._subclasses.fake_tensor.FakeTensorMode`,
    so tensors it creates are fake too.  The modules and tensors passed in are
    not modified (no ``.grad`` appears on them).  Tensors on the ``meta``
    device stand for tensors on the target device, so a batch never has to be
    allocated to be rehearsed: ``rehearse(model, torch.empty(4096, 1024, device="meta"))``.

    ``fn`` runs in dry-run mode (:func:`skippable` functions are skipped) and
    :mod:`torch.utils.telemetry` records nothing for the calls it makes.

    Args:
        fn: a function or an :class:`torch.nn.Module`.
        *args: passed to ``fn``; tensors are only read for their metadata
            (shape, dtype, strides, device).
        **kwargs: passed to ``fn``, like ``args``.
        backward: also run ``backward()`` on the loss, as a training step
            would.  The loss is ``fn``'s output when it is a scalar tensor,
            else its ``"loss"`` entry (a dict), its ``.loss`` attribute (a
            Hugging Face ``ModelOutput``, a dataclass) or its first element (a
            tuple or list), which must be a scalar tensor.
        optimizer: an optimizer class or factory (``torch.optim.AdamW`` or
            ``functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)``),
            called with the parameters of the modules rehearsed, then stepped
            after the backward pass (requires ``backward=True``); its state is
            counted as ``"Optstate"``.
        device: the device to plan for (``"cuda"``, ``"cuda:1"``, ``"cpu"``),
            which this machine need not have: every tensor and module passed
            is rehearsed there, and so are tensors that ``fn`` creates on that
            device type; an int is an index of the current accelerator, as
            for :class:`torch.device` (a build without one refuses it: name
            the device).  Default: the device of the tensors and modules
            passed (``meta`` ones aside), else the CPU.

    Returns:
        Rehearsal: ``outputs`` (as ``meta`` tensors), ``peak_memory`` in bytes,
        ``memory_by_device``, ``flops``, ``memory_by_module`` and
        ``flops_by_module``.

    Raises:
        TypeError: ``fn`` is not callable, is an ``async def``, generator or
            async generator function (rehearse a plain function, e.g. one
            step), ``backward`` is not a bool, ``device`` is not a device, or
            ``optimizer`` is not an optimizer class or factory (an optimizer
            instance is refused: pass ``type(opt)``), or is one whose
            ``step()`` needs a closure (``torch.optim.LBFGS``: build and step
            it inside ``fn``).  Checked before anything runs, except what a
            factory returns: it must be a :class:`torch.optim.Optimizer`,
            checked when the factory is called, after the backward pass.
        RuntimeError: ``fn`` reached a real tensor that was not passed as an
            argument (e.g. a module captured in a closure), or stepped an
            optimizer over real parameters (pass ``optimizer=`` instead); the
            real run would raise (operands of different dtypes, tensors on
            different devices); or its output shape or control flow depends on
            tensor values (``.item()``, ``.tolist()``, ``.numpy()``,
            ``nonzero()``, ``if tensor:``...), which a rehearsal, having no real
            data, cannot know (chained from the fake-tensor exception); or
            ``fn`` used a tensor whose memory the rehearsal cannot count: a
            sparse one (the gradient of ``nn.Embedding(sparse=True)``), one of
            :func:`torch.vmap`, or a nested one (``nn.TransformerEncoder``'s
            eval-mode fast path with a ``src_key_padding_mask``), chained from
            the memory tracker's error; or an operation refused its arguments
            (shapes that do not match...): the message names the operation and
            its arguments, chained from the operation's own error (the real run
            raises it as well).
        ValueError: ``optimizer`` without ``backward=True``; ``backward=True``
            when no output is the loss by the convention above, or when the
            loss does not require grad (e.g. every parameter is frozen);
            ``device`` is not a device name or is a negative index.

    Warns:
        UserWarning: the step runs an :class:`~torch.nn.LSTM` in training mode
            for the CPU with oneDNN enabled (the default): the real kernel
            (``aten::mkldnn_rnn_layer``) keeps a workspace for the backward
            pass that its meta kernel does not report, so the estimate leaves
            it out; measured, the real peak of an LSTM training step is 4 to 7
            times the estimate.  Measure one real step at a small batch instead
            (e.g. with :class:`~torch.distributed._tools.mem_tracker.MemTracker`).
            :func:`max_batch_size` passes the warning on once.

    ``fn`` given as a module's bound ``forward`` runs as the module does
    (``rehearse(model.forward, x)`` is ``rehearse(model, x)``, with the
    module's hooks); another bound method (``model.training_step``) is called
    as it is.  A module compiled by :func:`torch.compile` (an argument or ``fn``)
    is rehearsed as its original module, eagerly, and named like it: the
    estimate is the eager step's (the compiled one may hold less, its fused
    kernels skipping intermediate tensors).

    A module may be called several times in one step (weight tying, a
    recurrent loop): the total is counted as usual, and its entry in
    ``memory_by_module`` is the highest peak of its calls, forward or backward.

    Rehearsals run one at a time in a process: the module hooks that count
    memory and FLOPs by module are global, so a rehearsal started in another
    thread waits for the running one to finish.

    .. note:: The memory model is :class:`~torch.distributed._tools.mem_tracker.MemTracker`'s:
        the bytes of every live tensor storage (parameters, buffers, inputs,
        gradients, activations saved for backward, temporaries and optimizer
        state) at the moment their sum peaks; on a CUDA device each storage is
        rounded up to the caching allocator's 512-byte blocks, which is what
        ``torch.cuda.max_memory_allocated`` counts.  It does not see the
        allocator's 2 MiB/20 MiB segments (``memory_reserved``), the
        workspaces of cuBLAS/cuBLASLt and cuDNN, the CUDA context, NCCL
        buffers, or what a kernel keeps beyond the outputs its meta kernel
        reports (oneDNN's LSTM workspace on CPU: see Warns above).  On CPU it comes within a few percent of the measured
        resident peak of an MLP, a small conv net and a transformer encoder
        layer (forward and backward) and of an MLP's ``AdamW`` step when
        glibc's mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``); with
        glibc's default dynamic threshold, freed blocks stay resident in its
        heap and the measured peak is up to about a third higher.

    .. note:: Planning for a device this machine lacks (``device="cuda"`` on a
        CPU-only machine): fake tensors of such a device cannot take part in
        autograd here, so the step runs on fake CPU tensors and its memory is
        reported under the target device.  The CPU kernels stand in for the
        device's: :func:`~torch.nn.functional.scaled_dot_product_attention`
        takes the fused (flash) path, which like CUDA's flash and
        memory-efficient kernels keeps no ``B*H*T*T`` attention matrix (on
        ``meta`` tensors SDPA takes the math path and does), so the estimate
        assumes that CUDA runs a fused kernel (the math fallback, taken e.g.
        for an arbitrary float mask with some head dimensions, holds the
        matrix); storages are rounded to 512 bytes as on CUDA; ``torch.cuda``
        calls and ``torch.autocast("cuda")`` inside ``fn`` are not rehearsed, and a
        tensor that ``fn`` puts on the CPU explicitly is not told apart from the
        target's (the real run would raise a device mismatch).  Recurrent
        layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) run the CPU's kernels,
        which keep other tensors for the backward pass than cuDNN's (its
        reserve space): their part of the estimate is not the GPU's.

    Example::

        >>> model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 16))
        >>> r = torch.utils.dry_run.rehearse(lambda x: model(x).sum(), torch.randn(2048, 1024))
        Traceback (most recent call last):
        ...
        RuntimeError: rehearse(): fn used a real tensor that was not passed to rehearse ...
        >>> x = torch.empty(2048, 1024, device="meta")   # stands for a batch on the model's device
        >>> r = torch.utils.dry_run.rehearse(lambda m, x: m(x).sum(), model, x, backward=True)
        >>> round(r.peak_memory / 2**20), round(r.flops / 1e9, 1)
        (121, 35.2)
        >>> sorted(r.flops_by_module)
        ['Sequential', 'Sequential.0', 'Sequential.2']
    """
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        FakeTensorMode,
    )
    from torch.utils import _dry_run_rehearse as _rehearse
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
    if optimizer is not None and (
        not callable(optimizer)
        or (inspect.isclass(optimizer) and not issubclass(optimizer, torch.optim.Optimizer))
    ):
        raise TypeError(
            f"rehearse(): optimizer must be an optimizer class or factory, but got {_repr.repr(optimizer)}"
        )
    if inspect.isclass(optimizer):
        _rehearse.steppable(optimizer, optimizer)
    if optimizer is not None and not backward:
        raise ValueError("rehearse(): an optimizer step needs gradients; pass backward=True with optimizer=")

    owner = fn.__self__ if inspect.ismethod(fn) and isinstance(fn.__self__, torch.nn.Module) else fn
    # A torch.compile'd module is rehearsed as its original module, eagerly (see the limits below).
    owner = _rehearse.uncompiled(owner)
    if isinstance(fn, torch.nn.Module):
        fn = owner
    where = _rehearse.target(device, _devices_of(pytree.tree_leaves((owner, args, kwargs))))
    fake_mode = FakeTensorMode()
    modules: list[torch.nn.Module] = []
    inputs: list[torch.Tensor] = []

    def fake_tensor(t: torch.Tensor) -> torch.Tensor:
        if t.device == where.runs_on and not where.proxied:
            return fake_mode.from_tensor(t)
        # A meta tensor (it stands for one on the target device) or a tensor moved to device=.
        meta = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
        twin = fake_mode.fake_tensor_converter.from_meta_and_device(fake_mode, meta, where.runs_on)
        if isinstance(t, torch.nn.Parameter):
            return torch.nn.Parameter(twin, requires_grad=t.requires_grad)
        return twin.requires_grad_(t.requires_grad)

    def fake(value: Any) -> Any:
        if isinstance(value, torch.nn.Module):
            modules.append(_fake_module(_rehearse.uncompiled(value), fake_tensor))
            return modules[-1]
        if isinstance(value, torch.Tensor):
            if value.device.type != "meta" and device is None and value.device != where.runs_on:
                return fake_mode.from_tensor(value)  # a real run would mix devices: let it fail as it would
            inputs.append(fake_tensor(value))
            return inputs[-1]
        return value

    if isinstance(fn, torch.nn.Module):
        fn = fake(fn)
    elif owner is not fn:
        # The module's forward runs as rehearse(module, ...) runs it, through __call__ (its hooks, the root
        # entry of memory_by_module); another method is called as it is.
        fn = fake(owner) if fn.__name__ == "forward" else getattr(fake(owner), fn.__name__)
    args, kwargs = pytree.tree_map(fake, (args, kwargs))

    tracker = _rehearse.memory_tracker(where)
    tracker.track_external(*modules, *inputs)
    flop_counter = FlopCounterMode(display=False)
    # Root modules named by their class, in argument order; a second root of the same class as 'Linear#1'.
    _rehearse.name_roots(modules, tracker._mod_tracker, flop_counter.mod_tracker)
    proxy = _rehearse.DeviceProxy(where) if where.proxied else contextlib.nullcontext()
    guard = _rehearse.optimizer_guard()
    try:
        checks = _rehearse.RealRunChecks(where)
        # One rehearsal at a time in the process: MemTracker's module hooks are global, so concurrent ones
        # would count each other's modules (the lock is reentrant: fn may rehearse a part of itself).
        with _rehearse.serialized(), warnings.catch_warnings(), _rehearse.active(), dry_run(), fake_mode, tracker, \
                flop_counter, checks, proxy:
            # ModTracker's note about modules that fn created and dropped before the backward pass.
            warnings.filterwarnings("ignore", "Module is None. Skipping", UserWarning)
            outputs = fn(*args, **kwargs)
            if backward:
                _rehearse.loss_of(outputs).backward()
            if optimizer is not None:
                # A class or a factory: called the same way (a class narrowed by issubclass() above is one too).
                make = cast(Callable[..., torch.optim.Optimizer], optimizer)
                _rehearse.steppable(make([p for m in modules for p in m.parameters()]), optimizer).step()
    except (DataDependentOutputException, DynamicOutputShapeException) as e:
        raise RuntimeError(_DATA_DEPENDENT.format(op=e)) from e
    except (RuntimeError, NotImplementedError) as e:
        unsupported = _rehearse.unsupported_layout(e)
        if unsupported is not None:
            raise RuntimeError(unsupported) from e
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
    finally:
        guard.remove()

    def reported(d: torch.device) -> torch.device:
        return where.device if where.proxied and d == where.runs_on else d

    by_device = {
        reported(d): {str(getattr(k, "value", k)): v for k, v in snap.items()}
        for d, snap in tracker.get_tracker_snapshot("peak").items()
    }
    by_module = {
        stats.mod_fqn: sum(stats.local_peak.values())
        for stats in sorted(tracker.memory_tracking.values(), key=lambda s: s.mod_fqn)
    }
    flop_counts = flop_counter.get_flop_counts()
    if checks.workspace_left_out:
        warnings.warn(_rehearse.LSTM_WORKSPACE, UserWarning, stacklevel=2)
    return Rehearsal(
        outputs=_rehearse.as_meta(outputs),
        peak_memory=sum(snap["Total"] for snap in by_device.values()),
        memory_by_device=by_device,
        flops=flop_counter.get_total_flops(),
        memory_by_module=by_module,
        flops_by_module={name: sum(ops.values()) for name, ops in sorted(flop_counts.items()) if name != "Global"},
    )


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    r"""What :func:`max_batch_size` found: the largest batch whose rehearsed peak fits the budget.

    Attributes:
        batch_size: the largest batch size that fits.
        peak_memory: the rehearsed peak of that batch size, in bytes.
        rehearsals: how many rehearsals the search ran.
        memory: the budget, in bytes.
        device: the device planned for.

    Example::

        >>> plan = torch.utils.dry_run.max_batch_size(
        ...     torch.nn.Linear(1024, 1024), lambda n: torch.empty(n, 1024, device="meta"), memory="64MiB", high=1 << 14
        ... )
        >>> plan.batch_size, plan.rehearsals
        (7679, 16)
    """

    batch_size: int
    peak_memory: int
    rehearsals: int
    memory: int
    device: torch.device


def _memory_total(device: torch.device) -> int:
    if device.type == "cpu":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    from torch.utils._dry_run_rehearse import _available

    if not _available(device):
        raise ValueError(
            f"max_batch_size(): memory as a fraction needs the total memory of {device}, which this machine "
            "does not have; pass the budget in bytes or as a size string such as '80GiB'"
        )
    return torch.get_device_module(device.type).get_device_properties(device.index or 0).total_memory


def max_batch_size(
    step: Callable[..., Any],
    make_batch: Callable[[int], Any],
    *,
    memory: int | float | str,
    device: torch.device | str | int | None = None,
    low: int = 1,
    high: int | None = None,
    backward: bool = False,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
) -> BatchPlan:
    r"""Find the largest batch size whose step fits in ``memory``, by rehearsing it (nothing is allocated).

    A binary search over :func:`rehearse`\ s of ``step(*make_batch(n))``: the
    rehearsed peak grows with the batch size ``n``, so the search needs at
    most ``ceil(log2(high - low)) + 2`` rehearsals (``ceil(log2(high / low)) + 2``
    for ``low=1``).  Tensors that ``make_batch`` builds on the ``meta`` device
    stand for tensors on the target device, so even a huge batch costs
    nothing to plan.

    Args:
        step: what to rehearse, as for :func:`rehearse` (a module, or a
            function taking the model and the batch as arguments).
        make_batch: ``make_batch(n)`` returns the arguments of ``step`` for a
            batch of ``n``: a tuple of arguments, or a single argument.  An
            empty tuple means that ``step`` builds its own tensors from the
            size: it is called as ``step(n)``.
        memory: the budget: an int number of bytes, a size string
            (``"20GiB"``, ``"512 MB"``), or a float in ``(0, 1]``, a fraction of
            the device's total memory (as :func:`torch.cuda.assert_free_memory`
            takes), which needs that device on this machine.
        device: the device to plan for, as for :func:`rehearse`.
        low: the smallest batch size to consider; it must fit.
        high: the largest batch size to consider; ``None`` doubles from
            ``low`` until a size no longer fits.
        backward: rehearse the backward pass too (see :func:`rehearse`).
        optimizer: an optimizer class or factory to step after the backward
            pass (see :func:`rehearse`).

    Returns:
        BatchPlan: ``batch_size``, ``peak_memory``, ``rehearsals``, ``memory``
        (the budget in bytes) and ``device``.

    Raises:
        TypeError: ``step`` or ``make_batch`` is not callable (or ``step`` is
            an ``async def`` or generator function, or ``make_batch`` is
            one), ``low``/``high`` are not ints, or ``memory`` is not a size.
        ValueError: ``low < 1``, ``high < low``, ``low`` or ``high`` above
            ``sys.maxsize``, a bad ``memory`` (or a fraction for a device this
            machine lacks); ``low`` itself does not fit (the message gives its
            peak and the budget) or is so large that a tensor's size in bytes
            overflows 64 bits (a larger size that overflows counts as not
            fitting); or, with ``high=None``, the peak does not grow with the
            batch size, or every size up to ``sys.maxsize`` fits.
        RuntimeError: as :func:`rehearse` raises it.

    Warns:
        UserWarning: each warning of the rehearsals (e.g. :func:`rehearse`'s
            for an LSTM on CPU, whose plan is then far over the budget), once,
            after the search.

    Example::

        >>> model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 16))
        >>> plan = torch.utils.dry_run.max_batch_size(
        ...     lambda m, x: m(x).sum(), lambda n: (model, torch.empty(n, 1024, device="meta")),
        ...     memory="1GiB", backward=True, optimizer=torch.optim.AdamW,
        ... )
        >>> plan.batch_size, plan.rehearsals, plan.peak_memory <= plan.memory
        (19839, 30, True)
    """
    from torch.utils._memory_size import format_memory_size, parse_memory_size
    from torch.utils._dry_run_rehearse import target

    if not callable(step):
        raise TypeError(f"max_batch_size(): step must be callable, but got {_repr.repr(step)}")
    what = kind(step)
    if what != "function":
        raise TypeError(
            f"max_batch_size(): step is a {what} function ({getattr(step, '__qualname__', _repr.repr(step))}); "
            "a plan rehearses a plain function, e.g. one training step"
        )
    if not callable(make_batch):
        raise TypeError(f"max_batch_size(): make_batch must be callable, but got {_repr.repr(make_batch)}")
    if kind(make_batch) != "function":
        raise TypeError(
            f"max_batch_size(): make_batch is a {kind(make_batch)} function; it must return the batch's "
            "arguments directly (a tuple, or one argument)"
        )
    for name, value in (("low", low), ("high", high)):
        if value is None and name == "high":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"max_batch_size(): {name} must be an int, but got {_repr.repr(value)}")
    if low < 1:
        raise ValueError(f"max_batch_size(): low must be >= 1, but got {low}")
    for name, value in (("low", low), ("high", high)):
        if value is not None and value > sys.maxsize:
            raise ValueError(
                f"max_batch_size(): {name} must be an int from 1 to sys.maxsize ({sys.maxsize}), but got {value}"
            )
    if high is not None and high < low:
        raise ValueError(f"max_batch_size(): high must be >= low ({low}), but got {high}")
    where = target(device, []).device if device is not None else None
    if isinstance(memory, float) and not isinstance(memory, bool):
        if where is None:
            accelerator = torch.accelerator.current_accelerator(check_available=False)
            where = accelerator if accelerator is not None and torch.accelerator.device_count() else None
            where = target(where, []).device
        total = _memory_total(where)
        budget = parse_memory_size(memory, total=total, name="max_batch_size(): memory")
    else:
        budget = parse_memory_size(memory, name="max_batch_size(): memory")

    rehearsals = 0
    peaks: dict[int, float] = {}
    planned_for: list[torch.device] = []
    said: dict[str, type[Warning]] = {}

    def peak(n: int) -> float:
        nonlocal rehearsals
        try:
            batch = make_batch(n)
            args = batch if isinstance(batch, tuple) else (batch,)
            if args == ():
                args = (n,)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = rehearse(step, *args, backward=backward, optimizer=optimizer, device=where)
            for w in caught:  # shown once, from the caller of max_batch_size
                said.setdefault(str(w.message), w.category)
        except (RuntimeError, TypeError) as e:
            # A batch so large that a tensor's size in bytes overflows 64 bits: it fits no memory.
            if "overflow" not in str(e).lower():
                raise
            if n == low:
                raise ValueError(
                    f"max_batch_size(): the batch size low={low} is too large to rehearse: a tensor's size "
                    f"overflows 64 bits ({str(e).splitlines()[0]}); lower low"
                ) from e
            rehearsals += 1
            peaks[n] = math.inf
            return math.inf
        rehearsals += 1
        planned_for[:] = list(r.memory_by_device) or [torch.device("cpu")]
        peaks[n] = r.peak_memory
        return r.peak_memory

    if peak(low) > budget:
        raise ValueError(
            f"max_batch_size(): even the smallest batch size, low={low}, does not fit: its rehearsed peak is "
            f"{format_memory_size(peaks[low])} ({peaks[low]} bytes) against a budget of {format_memory_size(budget)} "
            f"({budget} bytes); lower low, shrink the model or raise memory"
        )
    fits = low
    if high is None:
        size = low
        while True:
            if size == sys.maxsize:
                raise ValueError(
                    f"max_batch_size(): every batch size up to sys.maxsize ({sys.maxsize}) fits in the budget "
                    f"({peaks[size]} bytes at that size): does make_batch(n) build a batch of n? Pass high= to bound it"
                )
            size = min(size * 2, sys.maxsize)
            if peak(size) > budget:
                break
            if peaks[size] <= peaks[fits]:
                raise ValueError(
                    f"max_batch_size(): the rehearsed peak does not grow with the batch size ({peaks[size]} bytes "
                    f"for {fits} and {size}): does make_batch(n) build a batch of n? Pass high= to bound it"
                )
            fits = size
        too_big = size
    elif peak(high) <= budget:
        fits = too_big = high
    else:
        too_big = high
    while too_big - fits > 1:
        mid = (fits + too_big) // 2
        if peak(mid) <= budget:
            fits = mid
        else:
            too_big = mid
    for message, category in said.items():
        warnings.warn(message, category, stacklevel=2)
    return BatchPlan(
        batch_size=fits,
        peak_memory=int(peaks[fits]),
        rehearsals=rehearsals,
        memory=budget,
        device=where if where is not None else planned_for[0],
    )
