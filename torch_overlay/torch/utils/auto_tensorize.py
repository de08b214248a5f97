r"""
Convert array-likes to tensors: :func:`to_tensor` and the :func:`auto_tensorize` decorator.

:func:`torch.as_tensor` already shares memory with NumPy arrays and with objects
exposing ``__cuda_array_interface__``, and :func:`torch.from_dlpack` with
anything exposing ``__dlpack__`` (CuPy, JAX, ...).  :func:`to_tensor` is the
one entry point over all of them that also handles the cases users trip on:
read-only NumPy arrays (copied without a warning), arrays with negative strides
or a non-native byte order (copied), lists of arrays (stacked), and ragged or
non-numeric nested sequences (an error that says *where*).

:func:`auto_tensorize` applies :func:`to_tensor` to the array arguments of a
function, so that NumPy-facing code can call a tensor function unchanged.

NumPy is never imported by this module: an object can only be a NumPy array if
NumPy was already imported by whoever created it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch.utils import _pytree as pytree


__all__ = ["auto_tensorize", "to_tensor"]

_F = TypeVar("_F", bound=Callable[..., Any])

DeviceLike = torch.device | str | int | None

_SCALARS = (bool, int, float, complex)
# Exact types auto_tensorize passes through without further checks (the common options).
_OPTION_TYPES = frozenset({bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device})


def _numpy() -> Any:
    return sys.modules.get("numpy")


def _is_array_like(obj: object) -> bool:
    # Tensors, NumPy arrays and every DLPack / CUDA-array-interface producer (CuPy, JAX, Numba, ...).
    if isinstance(obj, torch.Tensor):
        return True
    np = _numpy()
    if np is not None and isinstance(obj, np.ndarray):
        return True
    cls = type(obj)
    return hasattr(cls, "__dlpack__") or hasattr(obj, "__cuda_array_interface__")


def _from_numpy(arr: Any, np: Any) -> torch.Tensor:
    if type(arr) is not np.ndarray and isinstance(arr, getattr(sys.modules.get("numpy.ma"), "MaskedArray", ())):
        raise TypeError(
            "to_tensor(): cannot convert a NumPy masked array: a tensor has no mask; pass a.filled(value) "
            "to replace the masked elements, or a.data to ignore the mask"
        )
    if arr.flags.writeable:
        try:
            return torch.from_numpy(arr)
        except (TypeError, ValueError):
            # Negative strides, a non-native byte order or an unsupported dtype: handled below.
            pass
    if arr.dtype.hasobject or arr.dtype.kind not in "biufc":
        raise TypeError(
            f"to_tensor(): cannot convert a NumPy array of dtype {arr.dtype}; "
            "expected a numeric or bool dtype"
        )
    # A tensor is always writable and native-endian with non-negative strides: other arrays
    # cannot be shared, so they are copied (silently, by design; see to_tensor's note).
    arr = np.array(arr, dtype=arr.dtype.newbyteorder("="), order="C", copy=True)
    try:
        return torch.from_numpy(arr)
    except TypeError as e:
        raise TypeError(f"to_tensor(): cannot convert a NumPy array of dtype {arr.dtype}: {e}") from None


def _check_dtype(dtype: object, caller: str) -> None:
    if dtype is not None and not isinstance(dtype, torch.dtype):
        hint = ""
        if isinstance(dtype, str) and isinstance(getattr(torch, dtype.removeprefix("torch."), None), torch.dtype):
            hint = f" (torch.{dtype.removeprefix('torch.')})"
        raise TypeError(f"{caller}: dtype must be a torch.dtype{hint} or None, but got {_describe(dtype)}")


def _check_device(device: object, caller: str) -> torch.device | None:
    # Returns the device normalized; one isinstance check for the common forms.
    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise TypeError(
            f"{caller}: device must be a torch.device, a string such as 'cuda:0', an int index or None, "
            f"but got {_describe(device)}"
        )
    if isinstance(device, int) and device < 0:
        raise ValueError(f"{caller}: device index must be non-negative, but got {device}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, OverflowError) as e:
        if isinstance(device, int) and isinstance(e, RuntimeError):
            # A bare index means an accelerator, and this build or machine has none.
            raise RuntimeError(f"{caller}: device {device} is not available: {e}") from None
        raise ValueError(f"{caller}: device {device!r} is not a valid device: {e}") from None


def _first_huge_int(obj: object, path: str) -> str | None:
    # The index path of the first int outside int64 (to name it in the error), or None.
    if isinstance(obj, int) and not isinstance(obj, bool):
        return path if not -(2**63) <= obj < 2**63 else None
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            found = _first_huge_int(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _first_int_beyond_float(obj: object, path: str) -> tuple[str, int] | None:
    # The index path and value of the first int too large for a float64, or None.
    if isinstance(obj, int) and not isinstance(obj, bool):
        try:
            float(obj)
        except OverflowError:
            return path, obj
        return None
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            found = _first_int_beyond_float(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


_UNSIGNED_WIDE = (torch.uint16, torch.uint32)


def _show(value: object) -> str:
    # A value for a message; a huge int by its magnitude (str() of one may be refused).
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = int(abs(value).bit_length() * 0.30103)  # log10(2)
        return f"about {'-' if value < 0 else ''}10**{digits}"
    # A NumPy scalar (np.float64 subclasses float) as the number it holds.
    if isinstance(value, bool):
        return repr(bool(value))
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, complex):
        return repr(complex(value))
    return repr(value)


def _misfit_message(where: str, value: object, dtype: torch.dtype) -> str:
    # Why value cannot be converted to dtype (the caller has established that it cannot).
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"to_tensor(): {where} ({value}) is not finite, so it cannot be converted to {dtype}"
    if dtype.is_floating_point or dtype.is_complex:
        return (
            f"to_tensor(): {where} ({_show(value)}) is too large for {dtype}, whose largest finite value is "
            f"{torch.finfo(dtype).max:.4g}"
        )
    info = torch.iinfo(dtype)
    return f"to_tensor(): {where} ({_show(value)}) does not fit in {dtype}, whose range is [{info.min}, {info.max}]"


def _python_misfit(obj: object, dtype: torch.dtype, path: str) -> tuple[str, object] | None:
    # The index path and value of the first Python number that does not fit dtype, or None.
    if isinstance(obj, bool):
        return None
    if isinstance(obj, (int, float)):
        if dtype.is_floating_point or dtype.is_complex:
            fits = obj != obj or obj in (float("inf"), float("-inf")) or abs(obj) <= torch.finfo(dtype).max
        else:
            info = torch.iinfo(dtype)
            fits = info.min <= obj <= info.max  # exact for a float too; False for NaN
        return None if fits else (path, obj)
    if isinstance(obj, complex):
        found = _python_misfit(obj.real, dtype, path) or _python_misfit(obj.imag, dtype, path)
        return None if found is None else (path, obj)
    if isinstance(obj, (list, tuple, range)):
        for i, item in enumerate(obj):
            found = _python_misfit(item, dtype, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _tensor_misfit(src: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    # A bool mask of the elements of src that do not fit dtype, or None when all do.
    # Costs one reduction (aminmax) over src when the conversion could overflow; the mask only on failure.
    if src.dtype.is_complex:
        src = torch.view_as_real(src) if dtype.is_complex else src.real
    if src.dtype is torch.bool:
        return None
    if dtype.is_floating_point or dtype.is_complex:
        high = torch.finfo(dtype).max
        if src.dtype.is_floating_point:
            if torch.finfo(src.dtype).max <= high:
                return None
            low, top = (float(v) for v in torch.aminmax(src))
            if -high <= low and top <= high:
                return None
            mask = torch.isfinite(src) & (src.abs() > high)
            return mask if bool(mask.any()) else None
        lo, hi = -high, high
    else:
        info = torch.iinfo(dtype)
        lo, hi = info.min, info.max
        if src.dtype.is_floating_point:
            low, top = (float(v) for v in torch.aminmax(src))
            if lo <= low and top <= hi:  # exact comparisons of a float with an int; False for NaN
                return None
            # hi rounds up to hi + 1 (a power of two) in a wide integer type's float comparison: >= catches it.
            return ~torch.isfinite(src) | (src < lo) | (src > hi) | (src >= hi + 1)
    if src.dtype is torch.uint64:
        src = src.view(torch.int64)  # values from 2**63 up read as negative: beyond every other integer type
        low, top = (int(v) for v in torch.aminmax(src))
        return None if low >= 0 and top <= hi else (src < 0) | (src > hi)
    if src.dtype in _UNSIGNED_WIDE:
        src = src.to(torch.int64)
    info = torch.iinfo(src.dtype)
    if lo <= info.min and info.max <= hi:
        return None
    low, top = (int(v) for v in torch.aminmax(src))
    if lo <= low and top <= hi:
        return None
    return (src < lo) | (src > hi)


def _converted(t: torch.Tensor, device: DeviceLike, dtype: torch.dtype | None, copy: bool) -> torch.Tensor:
    # t.to(device, dtype, copy), refusing values that do not fit the dtype given (a check only when
    # the dtype changes; a meta or empty tensor has no values to check).
    if dtype is not None and dtype is not t.dtype and dtype is not torch.bool and t.numel() and not t.is_meta:
        mask = _tensor_misfit(t, dtype)
        if mask is not None:
            index = [int(i) for i in mask.nonzero()[0]] if mask.dim() else []
            if t.is_complex() and dtype.is_complex and index:
                index = index[:-1]  # the view_as_real dimension
            value = t[tuple(index)].item()
            where = "the element at " + "".join(f"[{i}]" for i in index) if index else "the value"
            if isinstance(value, complex) and not dtype.is_complex:
                value = value.real  # what the conversion keeps
            raise ValueError(_misfit_message(where, value, dtype))
    return t.to(device=device, dtype=dtype, copy=copy)


def _from_python(obj: object, device: DeviceLike, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is not None and dtype is not torch.bool:
        misfit = _python_misfit(obj, dtype, "")
        if misfit is not None:
            at, value = misfit
            kind = "integer" if isinstance(value, int) else "value"
            raise ValueError(_misfit_message(f"the element at {at}" if at else f"the {kind}", value, dtype))
    try:
        return torch.tensor(obj, device=device, dtype=dtype)
    except (OverflowError, ValueError, RuntimeError) as e:
        if isinstance(e, OverflowError) and "to float" in str(e):
            # A float among the elements makes torch.tensor() infer the default floating-point dtype.
            found = _first_int_beyond_float(obj, "")
            if found is not None:
                at, value = found
                target = dtype if dtype is not None else torch.get_default_dtype()
                where = f"the element at {at}" if at else "the integer"
                raise ValueError(_misfit_message(where, value, target)) from None
        path = _first_huge_int(obj, "") if "Overflow" in str(e) else None
        if path is None:
            raise
        where = f"the element at {path}" if path else _describe(obj)
        raise ValueError(
            f"to_tensor(): {where} is an integer outside the range of torch.int64 "
            f"[-2**63, 2**63); pass dtype=torch.float64 (or torch.uint64 for values below 2**64) to convert it"
        ) from None


def _describe(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."


def _leaf_shape(obj: object, path: str) -> tuple[int, ...] | None:
    # The shape of a non-sequence element, or None when it is not numeric.
    if isinstance(obj, _SCALARS):
        return ()
    if isinstance(obj, torch.Tensor):
        return tuple(obj.shape)
    np = _numpy()
    if np is not None:
        if isinstance(obj, (np.number, np.bool_)):
            return ()
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject or obj.dtype.kind not in "biufc":
                raise TypeError(
                    f"to_tensor(): the element at {path} is a NumPy array of dtype {obj.dtype}; "
                    "expected a numeric or bool dtype"
                )
            return tuple(obj.shape)
    return None


def _shape_of(obj: object, path: str, expected: tuple[int, ...] | None) -> tuple[tuple[int, ...], bool]:
    # Returns (shape, has_array_leaves); raises at the first element whose shape or type disagrees.
    if isinstance(obj, (list, tuple, range)):
        n = len(obj)
        if expected is not None:
            if not expected:
                raise ValueError(
                    f"to_tensor(): ragged nested sequence: the element at {path} is a sequence "
                    f"of length {n}, but its siblings are scalars"
                )
            if n != expected[0]:
                raise ValueError(
                    f"to_tensor(): ragged nested sequence: the element at {path or 'the top level'} "
                    f"has length {n}, expected {expected[0]} like its siblings"
                )
        inner = None if expected is None else expected[1:]
        arrays = False
        for i, item in enumerate(obj):
            item_shape, has_arrays = _shape_of(item, f"{path}[{i}]", inner)
            inner = item_shape if inner is None else inner
            arrays = arrays or has_arrays
        return (n, *(inner or ())), arrays
    shape = _leaf_shape(obj, path)
    if shape is None:
        raise TypeError(
            f"to_tensor(): the element at {path} is {_describe(obj)} of type {type(obj).__name__}; "
            "expected a number, a bool, a tensor, an array or a nested sequence of them"
        )
    if expected is not None and shape != expected:
        what = "a scalar" if not shape else f"of shape {list(shape)}"
        raise ValueError(
            f"to_tensor(): ragged nested sequence: the element at {path} is {what}, "
            f"expected shape {list(expected)} like its siblings"
        )
    return shape, bool(shape) or not isinstance(obj, _SCALARS)


def _stack(obj: object, device: DeviceLike, dtype: torch.dtype | None, path: str = "") -> torch.Tensor:
    if isinstance(obj, (list, tuple)):
        parts = [_stack(item, device, None, f"{path}[{i}]") for i, item in enumerate(obj)]
        for i, part in enumerate(parts):
            if part.device != parts[0].device:
                raise ValueError(
                    f"to_tensor(): the element at {path}[{i}] is on device {part.device}, but the element at "
                    f"{path}[0] is on {parts[0].device}; pass device= to move them all to one device"
                )
        out = torch.stack(parts) if parts else torch.tensor([], device=device)
        return _converted(out, None, dtype, False) if dtype is not None else out
    return to_tensor(obj, device=device, dtype=dtype)


def to_tensor(
    obj: Any,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    *,
    copy: bool = False,
) -> torch.Tensor:
    r"""Convert a tensor, an array, a scalar or a nested sequence to a tensor, sharing memory where possible.

    Args:
        obj: a :class:`torch.Tensor`; a NumPy array or scalar (``np.uint64``
            scalars become ``torch.uint64`` tensors, as arrays do); any object
            exposing ``__dlpack__`` (CuPy, JAX, ...) or
            ``__cuda_array_interface__`` (Numba, ...); a Python ``bool``,
            ``int``, ``float`` or ``complex``; or a (nested) ``list``/``tuple``
            of these.
        device: where the result lives.  ``None`` keeps tensors and arrays on
            the device they are on; tensors built from Python data follow
            :func:`torch.get_default_device`.
        dtype: the result's dtype; ``None`` keeps the source's dtype (Python data
            is inferred like :func:`torch.tensor` does).  Every value must fit
            it (see the note below).
        copy: if ``True``, the result never shares memory with ``obj``.

    Returns:
        torch.Tensor: ``obj`` itself when it is a tensor already on ``device``
        with ``dtype`` (and ``copy=False``); otherwise a new tensor, which shares
        memory with ``obj`` when no device or dtype change requires a copy:
        NumPy arrays on the CPU, DLPack and CUDA-array-interface producers on
        their own device.

    Raises:
        TypeError: ``obj`` (or an element of it, named by its index path such as
            ``[1][2]``) is not numeric: a string, ``None``, an object-dtype array...;
            ``device``, ``dtype`` or ``copy`` has the wrong type.
        ValueError: a nested sequence is ragged (the message names the first
            element, by index path, whose length or shape differs from its
            siblings'); a nested sequence is deeper than a tensor's maximum
            number of dimensions; an integer does not fit in ``torch.int64`` and
            no ``dtype`` says what to make of it, or is too large for the
            floating-point dtype inferred (the message gives its magnitude); a
            value does not fit the ``dtype`` given (see the note below);
            the elements of a list are tensors on different devices and no
            ``device`` is given; ``device`` is not a valid device.
        RuntimeError: ``device`` is not available in this build or on this
            machine (e.g. ``"cuda"``, or an int index, on a CPU-only build).

    .. note:: With a ``dtype`` that differs from the source's, every value must
        fit it, whatever the source (Python data, an array, a tensor): an integer
        dtype refuses a value outside its range (``-1`` for ``torch.uint8``,
        ``300`` for ``torch.int8``) and a NaN or infinity; a floating-point or
        complex dtype refuses a finite value beyond its largest finite value
        (``1e300`` for ``torch.float32``; infinities and NaN stay as they are).
        The ``ValueError`` names the first such element by index path (``[0][2]``),
        its value and the dtype.  A floating-point value converted to an integer
        dtype must lie within its range as it is (``-0.5`` does not fit
        ``torch.uint8``, as :func:`torch.tensor` rules), and is then truncated
        toward zero; a conversion to ``torch.bool`` is not checked.  The check costs one pass
        over the data (a reduction, which on an accelerator waits for the
        result) only when the dtype changes and the target's range is narrower
        than the source's; without a ``dtype``, or with the source's own, nothing is checked.

    .. note:: A NumPy masked array raises ``TypeError``: a tensor has no mask,
        and converting only the data would silently unmask the masked
        elements.  Pass ``a.filled(value)`` or ``a.data`` instead.

    .. note:: A read-only NumPy array (a memory-mapped file, ``np.broadcast_to``),
        one with negative strides (``a[::-1]``) or a non-native byte order is
        **copied**: a tensor is always writable, so sharing its memory would let
        writes through the tensor corrupt data NumPy promised not to change.
        Unlike :func:`torch.as_tensor`, no ``UserWarning`` is emitted.

    .. note:: Lists that contain tensors or arrays are stacked, so
        ``to_tensor([a, b])`` works for arrays ``a`` and ``b`` of equal shape
        (:func:`torch.tensor` rejects tensors with more than one element).  Nested
        sequences are checked more strictly than by :func:`torch.tensor`, which
        infers the shape from the first element and turns ``[[], [0]]`` into an
        empty ``(2, 0)`` tensor.

    Example::

        >>> import numpy as np
        >>> a = np.arange(3.0)
        >>> t = torch.utils.auto_tensorize.to_tensor(a)    # shares memory with a
        >>> t[0] = 7
        >>> a
        array([7., 1., 2.])
        >>> torch.utils.auto_tensorize.to_tensor([[1, 2], [3, 4]], dtype=torch.float32)
        tensor([[1., 2.],
                [3., 4.]])
        >>> torch.utils.auto_tensorize.to_tensor([[1, 2], [3]])
        Traceback (most recent call last):
          ...
        ValueError: to_tensor(): ragged nested sequence: the element at [1] has length 1, expected 2 like its siblings
    """
    if isinstance(obj, torch.Tensor) and device is None and dtype is None and copy is False:
        return obj
    _check_dtype(dtype, "to_tensor()")
    device = _check_device(device, "to_tensor()")
    if not isinstance(copy, bool):
        raise TypeError(f"to_tensor(): copy must be a bool, but got {_describe(copy)}")
    try:
        return _to_tensor(obj, device, dtype, copy)
    except (AssertionError, RuntimeError) as e:
        # Moving to a device this build or machine lacks ("Torch not compiled with CUDA enabled" is an assert).
        if device is None or device.type in ("cpu", "meta") or not _UNAVAILABLE.search(str(e)):
            raise
        raise RuntimeError(f"to_tensor(): device {str(device)!r} is not available: {e}") from e


_UNAVAILABLE = re.compile(
    r"not compiled with|no .*driver|no .*GPUs are available|invalid device ordinal", re.IGNORECASE
)


def _numpy_scalar(obj: Any, np: Any, device: DeviceLike, dtype: torch.dtype | None) -> torch.Tensor:
    # torch.tensor() refuses some NumPy scalars (np.uint64: "an integer is required"); a 0-d array does not.
    if dtype is None:
        try:
            return _from_python(obj, device, dtype)
        except TypeError:
            pass
    try:
        t = torch.from_numpy(np.asarray(obj))
    except TypeError as e:
        raise TypeError(
            f"to_tensor(): cannot convert the NumPy scalar {_describe(obj)} of type {type(obj).__name__}: {e}"
        ) from None
    return _converted(t, torch.get_default_device() if device is None else device, dtype, False)


def _to_tensor(obj: Any, device: torch.device | None, dtype: torch.dtype | None, copy: bool) -> torch.Tensor:
    if isinstance(obj, torch.Tensor):
        return _converted(obj, device, dtype, copy)
    np = _numpy()
    if np is not None and isinstance(obj, np.ndarray):
        t = _from_numpy(obj, np)
        return t if device is None and dtype is None and not copy else _converted(t, device, dtype, copy)
    if isinstance(obj, _SCALARS):
        return _from_python(obj, device, dtype)
    if np is not None and isinstance(obj, (np.number, np.bool_)):
        return _numpy_scalar(obj, np, device, dtype)
    if isinstance(obj, (list, tuple, range)):
        shape, has_arrays = _shape_of(obj, "", None)
        if has_arrays:
            return _stack(obj, device, dtype)
        try:
            return _from_python(obj, device, dtype)
        except ValueError as e:
            if "too many dimensions" not in str(e):
                raise
            raise ValueError(
                f"to_tensor(): the nested sequence is {len(shape)} levels deep, more dimensions than "
                f"torch.tensor() supports"
            ) from e
    if hasattr(type(obj), "__dlpack__"):
        return _converted(torch.from_dlpack(obj), device, dtype, copy)
    if hasattr(obj, "__cuda_array_interface__"):
        return _converted(torch.as_tensor(obj, device=device, dtype=None), None, dtype, copy)
    raise TypeError(
        f"to_tensor(): cannot convert {_describe(obj)} of type {type(obj).__name__}; expected a tensor, "
        "a NumPy array, an object with __dlpack__ or __cuda_array_interface__, a number, or a nested "
        "list/tuple/range of them"
    )


def _target_device(device: DeviceLike) -> DeviceLike:
    if device is not None:
        return device
    # DeviceContext lives in torch._accelerator; it is looked up per call so that
    # decorating a function does not import it, and a missing one means "no context".
    context_cls = vars(torch._accelerator).get("DeviceContext")
    context = context_cls.current() if context_cls is not None else None
    if context is not None and context.tensorize:
        return context.device
    return None


def _cast(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    # dtype= targets floating-point data only: integer indices and bool masks keep their dtype.
    return _converted(t, None, dtype, False) if dtype is not None and t.is_floating_point() else t


def _convert_arg(value: Any, device: DeviceLike, dtype: torch.dtype | None) -> Any:
    if type(value) in _OPTION_TYPES:
        return value
    if isinstance(value, torch.Tensor):
        if device is None and dtype is None:
            return value
    elif not _is_array_like(value):
        return value
    return _cast(to_tensor(value, device=device), dtype)


def _convert(value: Any, device: DeviceLike, dtype: torch.dtype | None) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return pytree.tree_map(lambda leaf: _convert_arg(leaf, device, dtype), value)
    return _convert_arg(value, device, dtype)


def _to_numpy(t: torch.Tensor) -> Any:
    # NumPy has no bfloat16 or float8 types: such outputs come back as float32 (e.g. under autocast).
    if t.dtype is torch.bfloat16 or (t.is_floating_point() and t.element_size() == 1):
        t = t.float()
    return t.numpy(force=True)


def _back_converter(args: Sequence[Any]) -> Callable[[torch.Tensor], Any] | None:
    # The first array argument that is not a tensor decides the type of the outputs.
    for leaf in pytree.tree_leaves(list(args)):
        if isinstance(leaf, torch.Tensor) or not _is_array_like(leaf):
            continue
        np = _numpy()
        if np is not None and isinstance(leaf, np.ndarray):
            return _to_numpy
        namespace = getattr(leaf, "__array_namespace__", None)
        if namespace is None:
            raise TypeError(
                f"auto_tensorize(return_type='input'): cannot convert outputs back to "
                f"{type(leaf).__name__}: it has no __array_namespace__() with from_dlpack"
            )
        xp = namespace()
        return lambda t: xp.from_dlpack(t.detach())
    return None


def auto_tensorize(
    fn: _F | None = None,
    *,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    argnames: Sequence[str] | None = None,
    return_type: Literal["tensor", "input"] = "tensor",
) -> Any:
    r"""Decorate a function so that its array arguments arrive as tensors.

    Which arguments are converted (with :func:`to_tensor`):

    * without ``argnames``: every *array* argument — tensors, NumPy arrays, and
      objects exposing ``__dlpack__`` or ``__cuda_array_interface__`` — including
      arrays inside ``list``/``tuple``/``dict`` arguments.  Python numbers,
      strings, ``None``, plain lists of numbers and everything else are passed
      unchanged, since they are usually options (``dim=1``, ``kernel_size=[3, 3]``);
    * with ``argnames``: only the named parameters, and those are converted
      whatever they hold (a list of numbers becomes a tensor); ``None`` stays ``None``.
      A named parameter left out of a call gets its default value converted
      (a fresh tensor on every call).

    A converted NumPy array **shares memory** with the caller's array, so
    in-place writes in ``fn`` (``x.mul_(2)``) reach the caller, when no
    ``device`` or ``dtype`` change requires a copy and the array is writable,
    native-endian and has no negative strides (``a[::2]`` shares).  A read-only
    array, one with negative strides (``a[::-1]``) or a non-native byte order is
    **copied** (see :func:`to_tensor`), and then writes do not reach the caller.
    Tensor arguments are passed as they are unless ``device`` or ``dtype`` asks
    for a change.

    Args:
        fn: the function to wrap; omit it to use ``@auto_tensorize(...)`` with options.
        device: where converted arguments go.  Default: the device of the
            innermost active :class:`torch._accelerator.DeviceContext` created
            with ``tensorize=True``, else the arguments' own device.  (The
            context's autocast dtype is not applied to arguments: autocast
            already casts where it matters, per op.)
        dtype: if given, floating-point arguments are cast to it; integer and
            bool arrays keep their dtype (they are indices and masks).  A value
            too large for it raises ``ValueError`` (see :func:`to_tensor`).
        argnames: names of the parameters to convert (see above).
        return_type: ``"tensor"`` (default) returns what ``fn`` returns;
            ``"input"`` converts every tensor in the result back to the type of
            the first non-tensor array argument (NumPy arrays via
            :meth:`torch.Tensor.numpy`, others via their ``__array_namespace__().from_dlpack``),
            so NumPy in gives NumPy out.  NumPy has no ``bfloat16`` or ``float8``
            types: such outputs (e.g. of a matmul under a ``DeviceContext(amp=True)``
            autocast) come back as ``float32`` NumPy arrays.

    Returns:
        The wrapped function (or, without ``fn``, a decorator).

    Raises:
        TypeError: ``argnames`` names a parameter ``fn`` does not have, an
            option has the wrong type, or (at call time) an argument cannot be converted.
        ValueError: ``return_type`` or ``device`` has a wrong value; (at call
            time) a ragged or out-of-range argument.  With ``argnames``, call-time
            errors name the argument: ``auto_tensorize(): argument 'w' of f: ...``.
        RuntimeError: ``device`` is an int index and this build or machine has
            no accelerator.

    On an ``async def`` function, a generator function or an async generator
    function, the wrapper is of the same kind: the arguments are converted when
    the body starts running (the first ``await`` or ``next``), and with
    ``return_type="input"`` the awaited result, every yielded value and a
    generator's return value are converted back.

    .. note:: Arguments are converted on every call; the cost over a bare call is
        a few microseconds (see ``benchmarks/bench_tensorize.py``).

    .. note:: Compiled with :func:`torch.compile`, the wrapper is traced like any
        Python code when its arguments are tensors.  NumPy array arguments are
        not traceable through it (Dynamo cannot trace ``ndarray.flags``, which
        the conversion reads): with ``fullgraph=True`` the call raises
        ``torch._dynamo.exc.Unsupported``, and without it the wrapper runs
        eagerly (a graph break).  For NumPy callers, compile the function and
        decorate the compiled one: ``auto_tensorize(torch.compile(f, fullgraph=True))``.

    Example::

        >>> import numpy as np
        >>> @torch.utils.auto_tensorize.auto_tensorize(return_type="input")
        ... def center(x):
        ...     return x - x.mean()
        >>> center(np.array([1.0, 2.0, 3.0]))
        array([-1.,  0.,  1.])
    """
    if not isinstance(return_type, str):
        raise TypeError(f"auto_tensorize(): return_type must be 'tensor' or 'input', but got {_describe(return_type)}")
    if return_type not in ("tensor", "input"):
        raise ValueError(f"auto_tensorize(): return_type must be 'tensor' or 'input', but got {return_type!r}")
    _check_dtype(dtype, "auto_tensorize()")
    device = _check_device(device, "auto_tensorize()")
    if isinstance(argnames, str):
        raise TypeError(
            f"auto_tensorize(): argnames must be a sequence of parameter names, not the string {argnames!r}"
        )
    if argnames is not None:
        argnames = tuple(argnames) if isinstance(argnames, Iterable) else argnames
    if argnames is not None and (not isinstance(argnames, tuple) or not all(isinstance(n, str) for n in argnames)):
        raise TypeError(f"auto_tensorize(): argnames must be a sequence of parameter names, but got {argnames!r}")
    if fn is None:
        return functools.partial(
            auto_tensorize, device=device, dtype=dtype, argnames=argnames, return_type=return_type
        )
    if isinstance(fn, type) or not callable(fn):
        raise TypeError(f"auto_tensorize(): expected a function, but got {_describe(fn)}")

    signature = inspect.signature(fn) if argnames is not None else None
    names = frozenset(argnames or ())
    defaults: dict[str, Any] = {}
    if signature is not None:
        unknown = sorted(names - signature.parameters.keys())
        if unknown:
            raise TypeError(
                f"auto_tensorize(): argnames {unknown} are not parameters of {fn.__qualname__}"
                f"{signature}"
            )
        # Named parameters left out of a call get their default, converted like a passed value.
        defaults = {
            name: signature.parameters[name].default
            for name in names
            if signature.parameters[name].default is not inspect.Parameter.empty
        }

    def convert_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        target = _target_device(device)
        if signature is None:
            args = tuple([_convert(a, target, dtype) for a in args])
            if kwargs:
                kwargs = {k: _convert(v, target, dtype) for k, v in kwargs.items()}
            return args, kwargs
        bound = signature.bind(*args, **kwargs)
        if defaults:
            for name in defaults.keys() - bound.arguments.keys():
                bound.arguments[name] = defaults[name]
        for name in names & bound.arguments.keys():
            value = bound.arguments[name]
            if value is not None:
                try:
                    bound.arguments[name] = _cast(to_tensor(value, device=target), dtype)
                except (TypeError, ValueError) as e:
                    message = str(e).replace("to_tensor(): ", "", 1)
                    raise type(e)(f"auto_tensorize(): argument {name!r} of {fn.__qualname__}: {message}") from e
        return bound.args, bound.kwargs

    from torch.utils._stepwise import kind, wrap

    if kind(fn) != "function":

        def start(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = convert_args(args, kwargs)
            return fn(*args, **kwargs)

        def converter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[Any], Any] | None:
            back = _back_converter((*args, *kwargs.values()))
            return None if back is None else lambda out: pytree.tree_map_only(torch.Tensor, back, out)

        return wrap(fn, contextlib.nullcontext, start, converter if return_type == "input" else None)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        back = _back_converter((*args, *kwargs.values())) if return_type == "input" else None
        args, kwargs = convert_args(args, kwargs)
        out = fn(*args, **kwargs)
        if back is None:
            return out
        return pytree.tree_map_only(torch.Tensor, back, out)

    return wrapper
