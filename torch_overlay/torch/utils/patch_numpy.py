r"""
Run NumPy-using code on the GPU through CuPy, chosen per call from where the inputs live.

:func:`array_namespace` answers "NumPy or CuPy?" for a set of arrays, the way
the Array API standard's ``array_namespace`` does, and also understands
tensors: a CUDA tensor means CuPy.  :func:`patch_numpy` applies that choice to
code you do not want to edit: inside it, the NumPy module seen by a target
module (or function) is replaced by a dispatcher, so ``np.fft.rfft(x)`` runs
``cupy.fft.rfft`` when ``x`` is a CuPy array or a CUDA tensor (shared
zero-copy through DLPack), and ``numpy.fft.rfft`` otherwise.

NumPy and CuPy are imported lazily and are optional; without CuPy,
:func:`patch_numpy` changes nothing and says so once.

Use ``with patch_numpy(...):`` (and ``@patch_numpy(...)``) outside
:func:`torch.compile`'d code, around the compiled call: Dynamo does not trace
it, and a ``fullgraph=True`` compilation that reaches it fails with Dynamo's
"marked as skipped" message.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import types
import warnings
from typing import Any, TYPE_CHECKING, TypeVar

import torch
from torch.utils._contextlib import _DecoratorContextManager
from torch.utils._stepwise import context_decorator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator


__all__ = ["array_namespace", "patch_numpy"]

_F = TypeVar("_F", bound="Callable[..., Any]")
_lock = threading.Lock()
# id(globals dict) -> [number of active patch_numpy blocks, {name: original module}]
_patched: dict[int, list[Any]] = {}
_warned_no_cupy = False


def _reset_lock_after_fork() -> None:
    # Another thread may have held the lock at fork time; it does not exist in the child.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _cupy() -> types.ModuleType | None:
    try:
        return importlib.import_module("cupy")
    except ImportError:
        return None


def _device_of(obj: object) -> str | None:
    # "cuda:<index>" for GPU arrays, "cpu" for host arrays, None for anything else (scalars, options).
    if isinstance(obj, torch.Tensor):
        return "cpu" if obj.device.type == "cpu" else str(obj.device)
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(obj, cupy.ndarray):
        return f"cuda:{obj.device.id}"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return "cpu"
    return None


def _devices(values: Iterable[Any]) -> dict[str, object]:
    found: dict[str, object] = {}
    for item in _flatten(values):
        device = _device_of(item)
        if device is not None:
            found.setdefault(device, item)
    return found


def _namespace_for(found: dict[str, object], caller: str) -> types.ModuleType:
    if len(found) > 1:
        described = ", ".join(f"{type(obj).__name__} on {device}" for device, obj in found.items())
        raise ValueError(f"{caller}: the arrays live on different devices ({described}); move them to one device first")
    device = next(iter(found), "cpu")
    if device == "cpu":
        return sys.modules.get("numpy") or importlib.import_module("numpy")
    if not device.startswith("cuda"):
        raise ValueError(f"{caller}: neither NumPy nor CuPy can compute on {device} ({type(found[device]).__name__})")
    cupy = _cupy()
    if cupy is None:
        raise RuntimeError(f"{caller}: got GPU arrays, but CuPy is not installed (pip install cupy-cuda12x or similar)")
    return cupy


def array_namespace(*arrays: Any) -> types.ModuleType:
    r"""Return the array module (``cupy`` or ``numpy``) that can compute on all of ``arrays``.

    Args:
        *arrays: NumPy arrays, CuPy arrays, tensors (a ``list``/``tuple`` of
            them counts as its elements).  Anything else, such as Python
            scalars and ``None``, is ignored.

    Returns:
        module: ``cupy`` when the arrays are CuPy arrays or CUDA tensors, else
        ``numpy`` (also when there are no arrays at all).

    Raises:
        ValueError: the arrays live on different devices (host and GPU, or two
            GPUs); the message names one array of each.
        RuntimeError: there are GPU arrays but CuPy is not installed.

    Example::

        >>> import numpy as np
        >>> from torch.utils.patch_numpy import array_namespace
        >>> array_namespace(np.ones(3), torch.zeros(3)).__name__
        'numpy'
        >>> # xdoctest: +SKIP("requires CuPy and a GPU")
        >>> array_namespace(torch.zeros(3, device="cuda")).__name__
        'cupy'
    """
    return _namespace_for(_devices(arrays), "array_namespace()")


class _Dispatcher(types.ModuleType):
    # Stands in for the ``numpy`` module (or one of its submodules, e.g. numpy.fft) in a patched namespace.

    def __init__(self, numpy_module: types.ModuleType, path: tuple[str, ...]) -> None:
        super().__init__(numpy_module.__name__, numpy_module.__doc__)
        self._numpy_module = numpy_module
        self._path = path

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._numpy_module, name)
        if isinstance(value, types.ModuleType):
            wrapped: Any = _Dispatcher(value, (*self._path, name))
        elif callable(value) and not isinstance(value, type):
            wrapped = _DispatchingFunction(value, (*self._path, name))
        else:
            return value
        # Cache on the instance: the next lookup does not reach __getattr__.
        setattr(self, name, wrapped)
        return wrapped


class _DispatchingFunction:
    # A NumPy function that runs its CuPy twin for GPU inputs.  Other attributes (a ufunc's
    # ``reduce``, ``nin``...) are NumPy's own: ``np.add.reduce`` is not dispatched.

    def __init__(self, numpy_fn: Callable[..., Any], path: tuple[str, ...]) -> None:
        self._numpy_fn = numpy_fn
        self._path = path
        self.__name__ = getattr(numpy_fn, "__name__", path[-1])
        self.__qualname__ = ".".join(("numpy", *path))
        self.__doc__ = getattr(numpy_fn, "__doc__", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._numpy_fn, name)

    def __repr__(self) -> str:
        return f"<patch_numpy dispatcher for {self.__qualname__}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        found = _devices((*args, *kwargs.values()) if kwargs else args)
        if not found or (len(found) == 1 and "cpu" in found):
            return self._numpy_fn(*args, **kwargs)
        cupy: Any = _namespace_for(found, f"{self.__qualname__}()")
        fn = cupy
        for part in self._path:
            fn = getattr(fn, part)
        with _on_device_of(cupy, next(iter(found)), (*args, *kwargs.values())):
            args = tuple(_to_cupy(a) for a in args)
            kwargs = {k: _to_cupy(v) for k, v in kwargs.items()}
            return fn(*args, **kwargs)


@contextlib.contextmanager
def _on_device_of(cupy: Any, device: str, values: tuple[Any, ...]) -> Iterator[None]:
    # Run CuPy on the inputs' device, not CuPy's current one; with tensor inputs, also on torch's
    # current stream of that device, so the call is ordered after the torch work producing them
    # (and DLPack's stream handshake has nothing to synchronize).
    index = int(device.rpartition(":")[2] or 0)
    with cupy.cuda.Device(index):
        if not any(isinstance(v, torch.Tensor) for v in _flatten(values)):
            yield
            return
        with cupy.cuda.ExternalStream(torch.cuda.current_stream(index).cuda_stream, index):
            yield


def _flatten(values: Iterable[Any]) -> Iterator[Any]:
    # Top-level values and the items of top-level lists/tuples: where dispatching looks for arrays.
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _to_cupy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return sys.modules["cupy"].from_dlpack(value.detach())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cupy(v) for v in value)
    return value


def _namespace_of(target: object) -> dict[str, Any]:
    if isinstance(target, types.ModuleType):
        return vars(target)
    namespace = getattr(target, "__globals__", None)
    if namespace is None:
        raise TypeError(f"patch_numpy(): target must be a module or a Python function, but got {target!r}")
    return namespace


class patch_numpy(_DecoratorContextManager):
    r"""Context manager and decorator making ``target``'s NumPy calls run on CuPy when their inputs are on the GPU.

    On entry, every global name of ``target`` bound to the ``numpy`` module
    (``np``, ``numpy``, ...) is rebound to a dispatcher.  Each call through it
    (``np.sum(x)``, ``np.linalg.norm(x)``) looks at its array arguments, top
    level and inside lists/tuples:

    * CuPy arrays or CUDA tensors: the same function of ``cupy`` runs, CUDA
      tensors shared zero-copy through DLPack; results are CuPy arrays.  It runs
      on the inputs' device (whatever CuPy's current device is) and, when an
      input is a tensor, on PyTorch's current stream of that device
      (:func:`torch.cuda.current_stream`), so it is ordered after the PyTorch
      work that produced its inputs and before the work queued after it;
      with CuPy inputs only, on CuPy's current stream;
    * otherwise: the NumPy function runs unchanged.

    Names bound to NumPy *functions* (``from numpy import sum``) are not
    changed.  On exit, even by an exception, the original bindings are restored.

    Args:
        target: a module, or a function whose module globals are patched
            (``patch_numpy(f)`` patches the module ``f`` was defined in).

    Raises:
        TypeError: ``target`` is neither a module nor a Python function;
            decorating a class.
        ValueError: (from a dispatched call) arrays on different devices.

    .. note:: Without CuPy installed, ``patch_numpy`` is a no-op: NumPy code keeps
        running on NumPy, and one ``UserWarning`` per process says so.

    .. note:: Patching rebinds module globals, so it is visible to every thread
        running code of ``target`` while a block is active.  That is harmless:
        host inputs still go to NumPy.  Blocks may nest and overlap across
        threads; the originals are restored when the last block on a target
        exits.

    As a decorator on an ``async def`` function, a generator function or an
    async generator function, the wrapper is of the same kind and the target
    is patched while the body's own code runs (each step up to its next
    ``await`` or ``yield``), not while it is suspended.

    Example::

        >>> import types
        >>> import numpy as np
        >>> from torch.utils.patch_numpy import patch_numpy
        >>> lib = types.ModuleType("lib")
        >>> exec("import numpy as np\ndef energy(x):\n    return np.sum(x * x)", vars(lib))
        >>> with patch_numpy(lib):   # NumPy input: runs NumPy; a CUDA tensor would run CuPy
        ...     float(lib.energy(np.array([1.0, 2.0])))
        5.0
    """

    def __init__(self, target: object) -> None:
        self.target = target
        self._namespace = _namespace_of(target)

    def __call__(self, fn: _F) -> _F:
        return context_decorator(self.clone, fn, "patch_numpy()")

    def clone(self) -> patch_numpy:
        return patch_numpy(self.target)

    def __enter__(self) -> None:
        global _warned_no_cupy
        if _cupy() is None:
            with _lock:
                warn, _warned_no_cupy = not _warned_no_cupy, True
            if warn:
                warnings.warn(
                    "patch_numpy(): CuPy is not installed, so NumPy calls keep running on NumPy",
                    UserWarning,
                    stacklevel=2,
                )
            return
        with _lock:
            entry = _patched.get(id(self._namespace))
            if entry is None:
                numpy = sys.modules.get("numpy")
                originals = {
                    name: value
                    for name, value in self._namespace.items()
                    if numpy is not None and value is numpy
                }
                for name, value in originals.items():
                    self._namespace[name] = _Dispatcher(value, ())
                entry = _patched[id(self._namespace)] = [0, originals]
            entry[0] += 1

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        with _lock:
            entry = _patched.get(id(self._namespace))
            if entry is None:
                return
            entry[0] -= 1
            if entry[0] == 0:
                del _patched[id(self._namespace)]
                self._namespace.update(entry[1])
