"""Helpers of :func:`torch.utils.dry_run.rehearse`: the loss convention, the checks a real run would
make that fake tensors skip, the target device, and optimizers stepped over real parameters."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import inspect
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree, telemetry as _telemetry
from torch.utils._python_dispatch import TorchDispatchMode


__all__: list[str] = []

# True while a rehearsal runs in this thread or task (``rehearsing()``); torch.utils.telemetry is
# told directly, as it comes before this module in the stack.
_active: contextvars.ContextVar[bool] = contextvars.ContextVar("torch.utils.dry_run.rehearsing", default=False)


# How many rehearsals run in the process: a hot path can test ``_dry_run_rehearse.running`` (a module
# attribute read) and call ``rehearsing()`` only when it is non-zero.
running = 0
_lock = threading.Lock()


def rehearsing() -> bool:
    """Whether the calling thread or task is inside :func:`torch.utils.dry_run.rehearse`."""
    return running > 0 and _active.get()


_META_FAILED = "failed while attempting to run meta for %s"


class _QuietMetaFailures(logging.Filter):
    """Drops FakeTensorMode's traceback of a failed meta kernel inside a rehearsal, which raises the error
    itself (chained); the logger is left as it is for everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == _META_FAILED and rehearsing())


_quiet = _QuietMetaFailures()


@contextlib.contextmanager
def active() -> Iterator[None]:
    global running
    with _lock:
        running += 1
        from torch._subclasses import fake_tensor  # its logger, which logs the refusals rehearse re-raises

        fake_log = fake_tensor.log
        if _quiet not in fake_log.filters:
            fake_log.addFilter(_quiet)
    token = _active.set(True)
    try:
        with _telemetry._not_recording():  # a rehearsal is not a call of the timed step
            yield
    finally:
        _active.reset(token)
        with _lock:
            running -= 1


# Serializes rehearsals: MemTracker and FlopCounterMode track modules through global module hooks, which
# would see the modules of a rehearsal running in another thread.
_serial = threading.RLock()


def serialized() -> threading.RLock:
    return _serial


def steppable(opt: Any, factory: Any) -> Any:
    """``opt`` (or an optimizer class) when it is an optimizer whose ``step()`` needs no closure."""
    name = getattr(factory, "__qualname__", None) or repr(factory)
    if not isinstance(opt, torch.optim.Optimizer) and not (
        isinstance(opt, type) and issubclass(opt, torch.optim.Optimizer)
    ):
        raise TypeError(
            f"rehearse(): optimizer must be an optimizer class or factory, but optimizer(params) ({name}) returned "
            f"{type(opt).__name__} {opt!r:.40}, not a torch.optim.Optimizer"
        )
    step = opt.step
    try:
        closure = inspect.signature(step).parameters.get("closure")
    except (TypeError, ValueError):
        closure = None
    if closure is not None and closure.default is inspect.Parameter.empty:
        cls = opt if isinstance(opt, type) else type(opt)
        raise TypeError(
            f"rehearse(): optimizer={cls.__name__}: its step() needs a closure that re-evaluates the loss, which "
            "rehearse cannot supply; build and step it inside fn from the module argument's parameters "
            f"(e.g. opt = torch.optim.{cls.__name__}(model.parameters()); opt.step(closure)) and leave optimizer= out"
        )
    return opt


def _shape(t: torch.Tensor) -> str:
    return f"({', '.join(map(str, t.shape))})"


def loss_of(outputs: Any) -> torch.Tensor:
    """The loss a training step would call ``backward()`` on, by the usual convention."""
    where = "fn's output"
    value = outputs
    if isinstance(outputs, torch.Tensor):
        pass
    elif isinstance(outputs, Mapping) and "loss" in outputs:
        value, where = outputs["loss"], "fn's output['loss']"
    elif isinstance(getattr(outputs, "loss", None), torch.Tensor):
        value, where = outputs.loss, "fn's output.loss"
    elif isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        value, where = outputs[0], "fn's output[0]"
    else:
        raise ValueError(
            f"rehearse(backward=True): cannot tell which output of fn is the loss (got {type(outputs).__name__}); "
            "return the loss as a scalar tensor, a dict with a 'loss' entry, a tuple whose first element is the "
            "loss, or an object with a .loss attribute (e.g. a Hugging Face ModelOutput or a dataclass)"
        )
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = f"a tensor of shape {_shape(value)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"rehearse(backward=True): {where} must be a scalar loss, but it is {got}; reduce it in fn "
            "(e.g. loss_fn(output, target) or output.sum()) as the real training step does before backward()"
        )
    if not value.requires_grad:
        raise ValueError(
            f"rehearse(backward=True): {where} does not require grad: no parameter of the modules passed "
            "requires grad (is the model frozen?) and no input requires grad, so a real loss.backward() would "
            "fail; unfreeze the parameters to train, or rehearse with backward=False"
        )
    return value


# Ops whose real kernels refuse operands of different dtypes; their meta kernels do not check.
_SAME_DTYPE_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::addbmm",
    "aten::mv",
    "aten::addmv",
    "aten::dot",
    "aten::vdot",
    "aten::convolution",
    "aten::_convolution",
    "aten::convolution_backward",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_cudnn_attention",
}


LSTM_WORKSPACE = (
    "rehearse(): the estimate leaves out the workspace that the CPU's oneDNN LSTM kernel (aten::mkldnn_rnn_layer) "
    "keeps for the backward pass, which a rehearsal cannot size; measured, the real peak of an nn.LSTM "
    "training step is several times the estimate (4-7x); measure one real step at a small batch instead, e.g. "
    "with torch.distributed._tools.mem_tracker.MemTracker"
)


def _described(args: Any) -> str:
    parts = [
        f"{str(a.dtype).removeprefix('torch.')}{_shape(a)}" if isinstance(a, torch.Tensor) else _short(a)
        for a in args
    ]
    return ", ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


class RealRunChecks(TorchDispatchMode):
    """Raise the dtype errors that the real kernels raise and the meta kernels do not, and note the kernels
    whose memory the fake run cannot see (``workspace_left_out``)."""

    def __init__(self, where: Target) -> None:
        super().__init__()
        self.cpu = where.device.type == "cpu"
        self.workspace_left_out = False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.cpu and func is torch.ops.aten.mkldnn_rnn_layer.default:
            # Its meta kernel returns an empty workspace; the real one, in training, a large one.
            self.workspace_left_out |= bool(args[15] if len(args) > 15 else kwargs.get("train", False))
        if func._schema.name in _SAME_DTYPE_OPS:
            leaves = pytree.tree_leaves((args, kwargs))
            dtypes = {t.dtype for t in leaves if isinstance(t, torch.Tensor) and t.dtype != torch.bool}
            if len(dtypes) > 1:
                names = ", ".join(sorted(str(d) for d in dtypes))
                raise RuntimeError(
                    f"rehearse(): the real run would fail here: {func._schema.name} takes tensors of one "
                    f"dtype, but got {names} (e.g. an int64 or float64 batch into a float32 "
                    "layer); convert the input (x.float()) or the model (model.to(dtype))"
                )
        try:
            return func(*args, **kwargs)
        except RuntimeError as e:
            text = str(e)
            if type(e) is not RuntimeError or text.startswith("rehearse(") or "fake" in text.lower() or (
                unsupported_layout(e) is not None
            ):
                raise
            # The meta kernel's check (shapes, devices...), which the real kernel makes as well.
            raise RuntimeError(
                f"rehearse(): the real run would fail here: {func._schema.name} refused its arguments "
                f"({_described(args)}): {e}"
            ) from e


@dataclasses.dataclass
class Target:
    """The device a rehearsal is for (``device``) and the one its fake tensors carry (``runs_on``)."""

    device: torch.device
    runs_on: torch.device

    @property
    def proxied(self) -> bool:
        return self.device != self.runs_on


def _available(device: torch.device) -> bool:
    if device.type in ("cpu", "meta"):
        return True
    # Neither torch.cuda.is_available() (it poisons fork) nor a context: the build's accelerator and
    # the NVML-based count.
    accelerator = torch.accelerator.current_accelerator(check_available=False)
    if accelerator is None or accelerator.type != device.type:
        return False
    return (device.index or 0) < torch.accelerator.device_count()


def target(device: Any, found: list[torch.device]) -> Target:
    """``device=`` as given, else the first non-meta device among the tensors and modules passed."""
    if device is None:
        chosen = next((d for d in found if d.type != "meta"), torch.device("cpu"))
    else:
        if not isinstance(device, (str, int, torch.device)) or isinstance(device, bool):
            raise TypeError(f"rehearse(): device must be a torch.device, a str or an int, but got {device!r}")
        if isinstance(device, int):
            # An index of the current accelerator, as torch.device(0) means on a build with one.
            accelerator = torch.accelerator.current_accelerator(check_available=False)
            if device < 0:
                raise ValueError(f"rehearse(): device={device} is not a device index; an index must be >= 0")
            if accelerator is None:
                raise ValueError(
                    f"rehearse(): device={device} is an accelerator index, but this PyTorch build has no "
                    "accelerator; name the device to plan for instead, e.g. 'cuda:0' (it need not be on this "
                    "machine) or 'cpu'"
                )
            device = torch.device(accelerator.type, device)
        try:
            chosen = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"rehearse(): device={device!r} is not a device name ('cuda', 'cuda:1', 'cpu'...)") from e
        if chosen.type == "meta":
            raise ValueError("rehearse(): device='meta' is not a device to plan for; pass e.g. 'cuda' or 'cpu'")
    if chosen.type != "cpu" and chosen.index is None:
        chosen = torch.device(chosen.type, 0)
    # A device this build or machine lacks: its tensors cannot take part in autograd here, so the
    # rehearsal runs on fake CPU tensors and reports them under the target (see rehearse's note).
    return Target(chosen, chosen if _available(chosen) else torch.device("cpu"))


def _is_device_arg(value: Any, device_type: str) -> bool:
    if isinstance(value, torch.device):
        return value.type == device_type
    if isinstance(value, str):
        with contextlib.suppress(RuntimeError):
            return torch.device(value).type == device_type
    return False


class DeviceProxy(TorchFunctionMode):
    """Send tensors that ``fn`` creates or moves on the target device to the device the rehearsal runs on."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.type = target.device.type
        self.runs_on = target.runs_on

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == self.type and args and isinstance(args[0], torch.Tensor):  # Tensor.cuda()
            return args[0].to(self.runs_on)
        if "device" in kwargs and _is_device_arg(kwargs["device"], self.type):
            kwargs["device"] = self.runs_on
        if name == "to":
            args = tuple(self.runs_on if _is_device_arg(a, self.type) else a for a in args)
        return func(*args, **kwargs)


def optimizer_guard() -> Any:
    """A global optimizer-step pre-hook refusing a step over real parameters during a rehearsal."""
    from torch._subclasses.fake_tensor import FakeTensor

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not rehearsing():
            return
        params = [p for group in opt.param_groups for p in group["params"]]
        if any(not isinstance(p, FakeTensor) for p in params):
            name = type(opt).__name__
            raise RuntimeError(
                f"rehearse(): fn stepped an optimizer ({name}) that holds the real parameters, which a "
                "rehearsal cannot count (its state and the gradients would be missing from the estimate); "
                f"pass the model as an argument and the optimizer as optimizer=torch.optim.{name} (or "
                f"functools.partial(torch.optim.{name}, lr=...)), and leave the step out of fn"
            )

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    return register_optimizer_step_pre_hook(hook)


class _NoHook:
    def remove(self) -> None:
        pass


def memory_tracker(where: Target | None = None) -> Any:
    """A :class:`MemTracker` that also takes modules with frozen parameters (it would hook their grads) and,
    for a rehearsal on a stand-in device, counts its storages as the target's (with the target's rounding)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    relabel = (where.runs_on, where.device) if where is not None and where.proxied else None

    class _Tracker(MemTracker):
        def _track_module_params_and_buffers(self, module: torch.nn.Module, install_grad_hooks: bool = True) -> Any:
            # A frozen parameter gets no gradient: mark it as hooked so that no grad hook is registered on it.
            for param in module.parameters():
                if not param.requires_grad and param not in self._param_to_grad_hook_handles:
                    self._param_to_grad_hook_handles[param] = (_NoHook(), _NoHook())
            return super()._track_module_params_and_buffers(module, install_grad_hooks)

        def _pre_fw_hook(self, module: torch.nn.Module, inputs: Any) -> None:
            # MemTracker refuses a second forward call of a module outside any other module (a weight-tied
            # or iterative step calls one several times: ``m(x) + m(x)``, ``for _ in range(3): h = m(h)``),
            # taking it for the next iteration. Within one rehearsal it is the same step: track it as
            # MemTracker tracks a submodule called twice, keeping the highest per-module peak of its calls.
            if module in self.memory_tracking and not self._mod_tracker.is_bw:
                stats = self.memory_tracking[module]
                before = dict(stats.local_peak)
                parents = self._mod_tracker.parents
                self._mod_tracker.parents = parents | {"_rehearse_repeat"}  # not a root call to MemTracker
                try:
                    super()._pre_fw_hook(module, inputs)
                finally:
                    self._mod_tracker.parents = parents
                for dev, peak in before.items():
                    stats.local_peak[dev] = max(peak, stats.local_peak.get(dev, 0))
                return
            super()._pre_fw_hook(module, inputs)

        def _pre_bw_hook(self, module: torch.nn.Module, args: Any) -> None:
            # MemTracker restarts a module's peak at its backward; keep the highest of forward and backward.
            stats = self.memory_tracking.get(module) if module is not None else None
            before = dict(stats.local_peak) if stats is not None else {}
            super()._pre_bw_hook(module, args)
            for dev, peak in before.items():
                stats.local_peak[dev] = max(peak, stats.local_peak.get(dev, 0))

        def _update_snap(self, u_type: Any, winfo: Any, *args: Any, **kwargs: Any) -> None:
            if relabel is not None and winfo.device == relabel[0]:
                # First sight of a storage of the stand-in device: count it as the target's, rounded as
                # the target's allocator rounds (512-byte blocks on CUDA).
                winfo.device = relabel[1]
                winfo.mem_consumed = winfo._calculate_mem_consumed()
            super()._update_snap(u_type, winfo, *args, **kwargs)

    return _Tracker()


def uncompiled(value: Any) -> Any:
    """The original module of a ``torch.compile``'d one (``value`` otherwise), without importing Dynamo."""
    import sys

    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    if eval_frame is not None and isinstance(value, eval_frame.OptimizedModule):
        return value._orig_mod
    return value


def name_roots(modules: list[torch.nn.Module], *trackers: Any) -> None:
    """Name the root modules in the module trackers (``ModTracker``, ``ModuleTracker``) by their class, a
    second one of a class ``Class#1``, and their submodules from them, before anything runs: a submodule
    then keeps its qualified name when the root's own forward does not run (a bound method as fn)."""
    seen: dict[str, int] = {}
    for module in modules:
        cls = type(module).__name__
        count = seen.get(cls, 0)
        seen[cls] = count + 1
        for tracker in trackers:
            tracker._known_modules[module] = cls if count == 0 else f"{cls}#{count}"
            tracker._get_mod_name(module)


_UNSUPPORTED = {
    "SparseTensorImpl": "a sparse tensor (e.g. the gradient of nn.Embedding(sparse=True); rehearse with "
    "sparse=False for an upper bound)",
    "BatchedTensorImpl": "torch.vmap (rehearse the step without vmap, e.g. with a loop or a batched op)",
    "NestedTensorImpl": "a nested tensor (e.g. nn.TransformerEncoder's fast path in eval mode with a "
    "src_key_padding_mask; rehearse with enable_nested_tensor=False, or in train mode)",
}


def unsupported_layout(e: BaseException) -> str | None:
    """rehearse()'s message for an error of its memory tracking on a tensor kind it cannot count."""
    text = str(e)
    for impl, what in _UNSUPPORTED.items():
        if impl in text:
            return (
                f"rehearse(): fn used {what}, whose memory rehearse cannot count (its memory tracking needs "
                "tensors with strided storage); the real run is not affected"
            )
    return None


def as_meta(value: Any) -> Any:
    """``value`` with every tensor replaced by a ``meta`` one, in pytree containers and dataclasses."""

    def leaf(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return torch.empty_strided(v.shape, v.stride(), dtype=v.dtype, device="meta")
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            copied = copy.copy(v)
            for field in dataclasses.fields(v):
                if hasattr(v, field.name):
                    object.__setattr__(copied, field.name, as_meta(getattr(v, field.name)))
            return copied
        return v

    return pytree.tree_map(leaf, value)
