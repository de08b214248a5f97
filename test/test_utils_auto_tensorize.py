# Owner(s): ["module: tensor creation"]

import asyncio
import inspect
import pickle
import subprocess
import sys
import unittest
import warnings
from types import SimpleNamespace
from unittest import mock

import numpy as np
from hypothesis import given, settings, strategies as st

import torch
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)
from torch.utils.auto_tensorize import auto_tensorize, to_tensor


class DLPackOnly:
    """Exposes only the DLPack protocol, like a JAX or CuPy array does."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def _rectangular_shape(data):
    if not isinstance(data, list):
        return ()
    shapes = {_rectangular_shape(item) for item in data}
    if None in shapes or len(shapes) > 1:
        return None
    return (len(data), *(shapes.pop() if shapes else ()))


@auto_tensorize
def module_level_double(x):
    return x * 2


class TestToTensor(TestCase):
    def test_tensor_is_returned_unchanged(self):
        t = torch.arange(3)
        self.assertIs(to_tensor(t), t)
        self.assertIs(to_tensor(t, device="cpu", dtype=torch.int64), t)

    def test_tensor_conversion_and_copy(self):
        t = torch.arange(3)
        self.assertEqual(to_tensor(t, dtype=torch.float32).dtype, torch.float32)
        c = to_tensor(t, copy=True)
        self.assertIsNot(c, t)
        self.assertNotEqual(c.data_ptr(), t.data_ptr())
        self.assertEqual(c, t)

    @parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.complex64])
    def test_numpy_zero_copy(self, dtype):
        a = np.zeros((2, 3), dtype=dtype)
        t = to_tensor(a)
        self.assertEqual(t.data_ptr(), a.ctypes.data)
        self.assertEqual(tuple(t.shape), a.shape)
        self.assertEqual(t.dtype, torch.from_numpy(a).dtype)

    def test_numpy_copy_flag(self):
        a = np.arange(3.0)
        t = to_tensor(a, copy=True)
        t[0] = 5
        self.assertEqual(a[0], 0.0)

    def test_numpy_dtype(self):
        t = to_tensor(np.arange(3), dtype=torch.float16)
        self.assertEqual(t.dtype, torch.float16)

    def test_read_only_array_is_copied_without_warning(self):
        a = np.arange(4.0)
        a.flags.writeable = False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(3):
                t = to_tensor(a)
        t[0] = 9
        self.assertEqual(a[0], 0.0)
        broadcast = np.broadcast_to(np.arange(3.0), (2, 3))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            self.assertEqual(to_tensor(broadcast), torch.arange(3.0, dtype=torch.float64).expand(2, 3))

    def test_negative_strides_and_byte_order(self):
        self.assertEqual(to_tensor(np.arange(4)[::-1]), torch.tensor([3, 2, 1, 0]))
        big_endian = np.arange(3, dtype=">i4")
        self.assertEqual(to_tensor(big_endian), torch.tensor([0, 1, 2], dtype=torch.int32))

    def test_numpy_scalar(self):
        t = to_tensor(np.float32(1.5))
        self.assertEqual(t.dtype, torch.float32)
        self.assertEqual(t.shape, ())

    def test_numpy_uint64_scalars(self):
        t = to_tensor(np.uint64(5))
        self.assertEqual((t.dtype, t.shape, int(t)), (torch.uint64, (), 5))
        self.assertEqual(to_tensor(np.uint64(5), dtype=torch.float32), torch.tensor(5.0))
        big = to_tensor([np.uint64(5), np.uint64(2**64 - 1)])
        self.assertEqual(big.dtype, torch.uint64)
        self.assertEqual(big.to(torch.float64).tolist(), [5.0, float(2**64 - 1)])

    @unittest.skipUnless(np.dtype(np.longdouble).itemsize > 8, "np.longdouble is float64 on this platform")
    def test_unsupported_numpy_scalar_names_to_tensor(self):
        with self.assertRaisesRegex(
            TypeError, r"^to_tensor\(\): cannot convert the NumPy scalar np\.longdouble\('1\.5'\) of type longdouble"
        ):
            to_tensor(np.longdouble(1.5))

    def test_too_deep_nesting_names_to_tensor(self):
        x = 1
        for _ in range(200):
            x = [x]
        with self.assertRaises(ValueError) as ctx:
            to_tensor(x)
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the nested sequence is 200 levels deep, more dimensions than torch.tensor() supports""",
        )

    @unittest.skipIf(TEST_CUDA, "needs a build or machine without CUDA")
    def test_unavailable_device_names_to_tensor(self):
        for obj in (np.ones(2), [1.0], torch.ones(2)):
            with self.assertRaisesRegex(RuntimeError, r"^to_tensor\(\): device 'cuda' is not available: "):
                to_tensor(obj, device="cuda")

    def test_dlpack_zero_copy(self):
        a = np.arange(3.0)
        t = to_tensor(DLPackOnly(a))
        t[1] = 9
        self.assertEqual(a[1], 9.0)

    def test_cuda_array_interface_goes_through_as_tensor(self):
        obj = SimpleNamespace(__cuda_array_interface__={})
        sentinel = torch.ones(2)
        with mock.patch.object(torch, "as_tensor", return_value=sentinel) as as_tensor:
            self.assertIs(to_tensor(obj), sentinel)
        as_tensor.assert_called_once_with(obj, device=None, dtype=None)

    @parametrize(
        "value, dtype",
        [(True, torch.bool), (3, torch.int64), (2.5, torch.float32), (1j, torch.complex64)],
    )
    def test_python_scalars(self, value, dtype):
        t = to_tensor(value)
        self.assertEqual(t.dtype, dtype)
        self.assertEqual(t.item(), value)

    def test_nested_sequences(self):
        self.assertEqual(to_tensor([[1, 2], (3, 4)]), torch.tensor([[1, 2], [3, 4]]))
        self.assertEqual(to_tensor([]).shape, (0,))
        self.assertEqual(to_tensor([[], []]).shape, (2, 0))

    def test_sequence_of_arrays_is_stacked(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            t = to_tensor([np.zeros(2), np.ones(2)])
        self.assertEqual(t, torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64))
        mixed = to_tensor([torch.zeros(2), [1, 1]], dtype=torch.float32)
        self.assertEqual(mixed, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))

    def test_ragged_messages(self):
        cases = [
            ([[1, 2], [3]], "the element at [1] has length 1, expected 2 like its siblings"),
            ([[[1], [2]], [[3], [4, 5]]], "the element at [1][1] has length 2, expected 1 like its siblings"),
            ([1, [2]], "the element at [1] is a sequence of length 1, but its siblings are scalars"),
            ([[1], 2], "the element at [1] is a scalar, expected shape [1] like its siblings"),
            ([np.zeros(2), np.zeros(3)], "the element at [1] is of shape [3], expected shape [2] like its siblings"),
        ]
        for value, message in cases:
            with self.assertRaises(ValueError) as ctx:
                to_tensor(value)
            self.assertEqual(str(ctx.exception), "to_tensor(): ragged nested sequence: " + message)

    def test_non_numeric_messages(self):
        with self.assertRaises(TypeError) as ctx:
            to_tensor([[1, 2], [3, "x"]])
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the element at [1][1] is 'x' of type str; expected a number, a bool, a tensor, an array or a nested sequence of them""",  # noqa: B950
        )
        with self.assertRaises(TypeError) as ctx:
            to_tensor("abc")
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): cannot convert 'abc' of type str; expected a tensor, a NumPy array, an object with __dlpack__ or __cuda_array_interface__, a number, or a nested list/tuple/range of them""",  # noqa: B950
        )
        for bad in (None, {1: 2}, object(), [None]):
            with self.assertRaises(TypeError):
                to_tensor(bad)

    def test_bad_options_name_to_tensor(self):
        a = np.ones(2)
        with self.assertRaises(TypeError) as ctx:
            to_tensor(a, dtype="float32")
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): dtype must be a torch.dtype (torch.float32) or None, but got 'float32'""",
        )
        with self.assertRaisesRegex(TypeError, r"to_tensor\(\): dtype must be a torch.dtype or None, but got 5"):
            to_tensor(torch.ones(2), dtype=5)
        with self.assertRaisesRegex(TypeError, r"to_tensor\(\): device must be a torch.device, .* but got 1.5"):
            to_tensor(a, device=1.5)
        with self.assertRaisesRegex(TypeError, r"to_tensor\(\): device must be a torch.device, .* but got True"):
            to_tensor(a, device=True)
        with self.assertRaisesRegex(ValueError, r"to_tensor\(\): device 'gpu' is not a valid device"):
            to_tensor([1.0], device="gpu")
        with self.assertRaisesRegex(ValueError, r"to_tensor\(\): device index must be non-negative, but got -1"):
            to_tensor([1.0], device=-1)
        with self.assertRaisesRegex(ValueError, r"to_tensor\(\): device 1180591620717411303424 is not a valid device"):
            to_tensor([1.0], device=2**70)
        with self.assertRaisesRegex(TypeError, r"to_tensor\(\): copy must be a bool, but got 'yes'"):
            to_tensor(a, copy="yes")

    @parametrize(
        "source",
        ["python", "numpy", "tensor"],
    )
    def test_dtype_given_refuses_values_that_do_not_fit(self, source):
        def make(values, np_dtype):
            if source == "python":
                return values
            a = np.array(values, dtype=np_dtype)
            return a if source == "numpy" else torch.from_numpy(a)

        cases = [
            ([1, 300], np.int64, torch.int8, r"the element at \[1\] \(300\) does not fit in torch.int8, whose range is \[-128, 127\]"),  # noqa: B950
            ([-1], np.int64, torch.uint8, r"the element at \[0\] \(-1\) does not fit in torch.uint8"),
            ([0.5, float("nan")], np.float64, torch.int64, r"the element at \[1\] \(nan\) is not finite, so it cannot be converted to torch.int64"),  # noqa: B950
            ([float("-inf")], np.float64, torch.int32, r"the element at \[0\] \(-inf\) is not finite"),
            ([1.0, -1e39], np.float64, torch.float32, r"the element at \[1\] \(-1e\+39\) is too large for torch.float32, whose largest finite value is 3.403e\+38"),  # noqa: B950
            ([70000], np.int64, torch.float16, r"the element at \[0\] \(70000\) is too large for torch.float16"),
            ([2.0**63], np.float64, torch.int64, r"the element at \[0\] \(9.223372036854776e\+18\) does not fit in torch.int64"),  # noqa: B950
        ]
        for values, np_dtype, dtype, message in cases:
            with self.subTest(values=values, dtype=dtype):
                with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): " + message):
                    to_tensor(make(values, np_dtype), dtype=dtype)
        # What fits converts; floats are truncated toward zero; infinities stay infinite in a floating dtype.
        self.assertEqual(to_tensor(make([-128, 127], np.int64), dtype=torch.int8).tolist(), [-128, 127])
        self.assertEqual(to_tensor(make([0.5, 254.9, 255.0], np.float64), dtype=torch.uint8).tolist(), [0, 254, 255])
        for outside in (-0.5, 255.5):
            with self.assertRaisesRegex(ValueError, r"does not fit in torch.uint8"):
                to_tensor(make([outside], np.float64), dtype=torch.uint8)
        self.assertEqual(to_tensor(make([float("inf"), 1.0], np.float64), dtype=torch.float16).tolist(), [float("inf"), 1.0])
        self.assertTrue(to_tensor(make([float("nan")], np.float64), dtype=torch.float32).isnan().all())

    def test_dtype_given_scalars_and_nested_paths(self):
        with self.assertRaises(ValueError) as ctx:
            to_tensor(10**39, dtype=torch.float32)
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the integer (about 10**39) is too large for torch.float32, whose largest finite value is 3.403e+38""",  # noqa: B950
        )
        with self.assertRaises(ValueError) as ctx:
            to_tensor(-1, dtype=torch.uint8)
        self.assertExpectedInline(
            str(ctx.exception), """to_tensor(): the integer (-1) does not fit in torch.uint8, whose range is [0, 255]"""
        )
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the integer \(18446744073709551616\) does not fit"):
            to_tensor(2**64, dtype=torch.uint64)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the value \(1e\+300\) is too large for torch.float32"):
            to_tensor(np.float64(1e300), dtype=torch.float32)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the value \(1e\+300\) is too large for torch.float32"):
            to_tensor(np.array(1e300), dtype=torch.float32)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the element at \[1\]\[0\] \(300\) does not fit"):
            to_tensor([[1], [300]], dtype=torch.int8)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the element at \[1\]\[2\] \(300\) does not fit"):
            to_tensor([np.zeros(3, dtype=np.int64), np.array([0, 0, 300])], dtype=torch.int8)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the element at \[0\]\[1\] \(\(1e\+300\+0j\)\)"):
            to_tensor(np.array([[0j, 1e300 + 0j]]), dtype=torch.complex64)
        with self.assertRaisesRegex(ValueError, r"^to_tensor\(\): the element at \[1\] \(9223372036854775808\) does not"):
            to_tensor(np.array([0, 2**63], dtype=np.uint64), dtype=torch.int64)
        self.assertEqual(to_tensor(2**64 - 1, dtype=torch.uint64).item(), 2**64 - 1)
        self.assertEqual(to_tensor(True, dtype=torch.int8).item(), 1)
        self.assertEqual(to_tensor(np.array([0.0, 2.0]), dtype=torch.bool).tolist(), [False, True])

    def test_same_dtype_keeps_sharing_memory(self):
        a = np.array([300, -5], dtype=np.int16)
        t = to_tensor(a, dtype=torch.int16)
        self.assertEqual(t.data_ptr(), a.ctypes.data)
        self.assertEqual(to_tensor(torch.empty(0, dtype=torch.int64), dtype=torch.int8).dtype, torch.int8)
        self.assertEqual(to_tensor(torch.full((2,), 300.0, device="meta"), dtype=torch.int8).device.type, "meta")

    @given(st.lists(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=5))
    @settings(max_examples=60, deadline=None)
    def test_integer_conversions_are_exact_or_refused(self, values):
        for dtype in (torch.int8, torch.uint8, torch.int32, torch.int64, torch.uint64):
            info = torch.iinfo(dtype)
            fits = all(info.min <= v <= info.max for v in values)
            try:
                converted = to_tensor(values, dtype=dtype).tolist()
            except ValueError:
                self.assertFalse(fits)
            else:
                self.assertTrue(fits)
                self.assertEqual(converted, values)

    def test_masked_arrays_are_refused(self):
        masked = np.ma.array([1.0, 2.0], mask=[0, 1])
        with self.assertRaises(TypeError) as ctx:
            to_tensor(masked)
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): cannot convert a NumPy masked array: a tensor has no mask; pass a.filled(value) to replace the masked elements, or a.data to ignore the mask""",  # noqa: B950
        )
        with self.assertRaisesRegex(TypeError, r"^to_tensor\(\): cannot convert a NumPy masked array"):
            to_tensor([masked, masked])
        self.assertEqual(to_tensor(masked.filled(0.0)).tolist(), [1.0, 0.0])

    def test_overflow_errors_name_to_tensor(self):
        with self.assertRaises(ValueError) as ctx:
            to_tensor([1.0, 10**400])
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the element at [1] (about 10**400) is too large for torch.float32, whose largest finite value is 3.403e+38""",  # noqa: B950
        )
        with self.assertRaises(ValueError) as ctx:
            to_tensor([[torch.ones(2), torch.ones(2)], [torch.ones(2), torch.ones(2, device="meta")]])
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the element at [1][1] is on device meta, but the element at [1][0] is on cpu; pass device= to move them all to one device""",  # noqa: B950
        )
        self.assertEqual(to_tensor([torch.ones(2), torch.ones(2, device="meta")], device="meta").shape, (2, 2))

    @unittest.skipIf(torch.accelerator.device_count() > 0, "needs a machine without an accelerator")
    def test_int_device_without_accelerator(self):
        # A build without an accelerator refuses the bare index itself; a CUDA build on a machine without a
        # GPU makes it cuda:3, which fails when the array is moved there.
        with self.assertRaisesRegex(RuntimeError, r"^to_tensor\(\): device (3|'\w+:3') is not available"):
            to_tensor(np.ones(2), device=3)
        try:
            torch.device(0)
        except RuntimeError:
            with self.assertRaisesRegex(RuntimeError, r"^auto_tensorize\(\): device 0 is not available"):
                auto_tensorize(device=0)
        else:
            with self.assertRaisesRegex(RuntimeError, r"^to_tensor\(\): device '\w+:0' is not available"):
                auto_tensorize(lambda x: x, device=0)(np.ones(2))

    def test_range_like_torch_tensor(self):
        self.assertEqual(to_tensor(range(3)), torch.tensor(range(3)))
        self.assertEqual(to_tensor([range(2), range(2)], dtype=torch.float32), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        self.assertEqual(to_tensor(range(0)).shape, (0,))

    def test_integers_beyond_int64(self):
        with self.assertRaises(ValueError) as ctx:
            to_tensor(2**70)
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): 1180591620717411303424 is an integer outside the range of torch.int64 [-2**63, 2**63); pass dtype=torch.float64 (or torch.uint64 for values below 2**64) to convert it""",  # noqa: B950
        )
        with self.assertRaisesRegex(ValueError, r"to_tensor\(\): the element at \[1\]\[0\] is an integer outside"):
            to_tensor([[1], [-(2**64)]])
        self.assertEqual(to_tensor(2**70, dtype=torch.float64).item(), float(2**70))
        with self.assertRaises(ValueError) as ctx:
            to_tensor(10**400, dtype=torch.float64)
        self.assertExpectedInline(
            str(ctx.exception),
            """to_tensor(): the integer (about 10**400) is too large for torch.float64, whose largest finite value is 1.798e+308""",  # noqa: B950
        )
        with self.assertRaisesRegex(ValueError, r"to_tensor\(\): the element at \[1\] \(about -10\*\*400\) is too large"):
            to_tensor([1, -(10**400)], dtype=torch.float32)
        self.assertEqual(to_tensor([2**63 - 1, -(2**63)]).tolist(), [2**63 - 1, -(2**63)])
        self.assertTrue(to_tensor(float("nan")).isnan())

    def test_object_and_string_arrays(self):
        with self.assertRaisesRegex(TypeError, r"NumPy array of dtype object; expected a numeric or bool dtype"):
            to_tensor(np.array([1, None], dtype=object))
        with self.assertRaisesRegex(TypeError, r"the element at \[0\] is a NumPy array of dtype <U1"):
            to_tensor([np.array(["a"])])

    @settings(max_examples=150, deadline=None)
    @given(
        st.recursive(
            st.one_of(
                st.integers(-(2**62), 2**62),
                st.floats(allow_nan=False, width=32),
                st.booleans(),
            ),
            lambda children: st.lists(children, max_size=3),
            max_leaves=12,
        )
    )
    def test_fuzz_nested_sequences_against_torch_tensor(self, data):
        if _rectangular_shape(data) is None:
            # torch.tensor infers the shape from the first element and accepts some ragged
            # lists ([[], [0]] gives a (2, 0) tensor, dropping the 0); to_tensor rejects them all.
            with self.assertRaisesRegex((TypeError, ValueError), r"^to_tensor\(\): "):
                to_tensor(data)
            return
        expected = torch.tensor(data)
        actual = to_tensor(data)
        self.assertEqual(actual.dtype, expected.dtype)
        self.assertEqual(actual, expected)

    def test_default_device(self):
        # Python data follows the default device; arrays and tensors stay where they are.
        with torch.device("meta"):
            self.assertEqual(to_tensor([1.0, 2.0]).device.type, "meta")
            self.assertEqual(to_tensor(3).device.type, "meta")
            self.assertEqual(to_tensor(np.ones(2)).device.type, "cpu")
            self.assertEqual(to_tensor(torch.ones(2, device="cpu")).device.type, "cpu")

    def test_quiet_import(self):
        code = (
            "import threading, warnings\n"
            "warnings.simplefilter('error')\n"
            "import torch.utils.auto_tensorize\n"
            "assert threading.active_count() == 1\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_works_without_numpy(self):
        # NumPy is optional for torch: blocking its import must not break the module.
        code = (
            "import sys; sys.modules['numpy'] = None\n"
            "import torch\n"
            "from torch.utils.auto_tensorize import auto_tensorize, to_tensor\n"
            "print(to_tensor([[1, 2]]).tolist(), auto_tensorize(lambda x: x)(torch.ones(1)).tolist())\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "[[1, 2]] [1.0]")


class FakeDeviceContext:
    """Stands in for torch._accelerator.DeviceContext (developed in parallel)."""

    active = None

    def __init__(self, device, tensorize):
        self.device = torch.device(device)
        self.dtype = None
        self.tensorize = tensorize

    @classmethod
    def current(cls):
        return cls.active


class TestAutoTensorize(TestCase):
    def test_converts_arrays_only(self):
        seen = {}

        @auto_tensorize
        def f(x, n, name, opts, scale=1.0):
            seen.update(x=x, n=n, name=name, opts=opts, scale=scale)

        a = np.arange(3.0)
        f(a, 2, "abc", [3, 3], scale=0.5)
        self.assertIsInstance(seen["x"], torch.Tensor)
        self.assertEqual(seen["x"].data_ptr(), a.ctypes.data)
        self.assertEqual((seen["n"], seen["name"], seen["opts"], seen["scale"]), (2, "abc", [3, 3], 0.5))

    def test_arrays_inside_containers(self):
        @auto_tensorize
        def f(batch):
            return batch

        out = f({"x": np.ones(2), "ids": [np.arange(2), 7]})
        self.assertIsInstance(out["x"], torch.Tensor)
        self.assertIsInstance(out["ids"][0], torch.Tensor)
        self.assertEqual(out["ids"][1], 7)

    def test_argnames(self):
        @auto_tensorize(argnames=["weights"])
        def f(x, weights=None):
            return x, weights

        a = np.ones(2)
        x, w = f(a, weights=[1, 2])
        self.assertIs(x, a)
        self.assertEqual(w, torch.tensor([1, 2]))
        self.assertIsNone(f(a)[1])
        with self.assertRaisesRegex(TypeError, r"argnames \['nope'\] are not parameters of"):
            auto_tensorize(argnames=["nope"])(lambda x: x)
        with self.assertRaisesRegex(TypeError, "not the string 'x'"):
            auto_tensorize(argnames="x")

    def test_argnames_errors_name_the_argument(self):
        @auto_tensorize(argnames=["x", "weights"])
        def f(x, weights):
            return x

        with self.assertRaises(ValueError) as ctx:
            f([1, 2], [[1, 2], [3]])
        self.assertExpectedInline(
            str(ctx.exception),
            """auto_tensorize(): argument 'weights' of TestAutoTensorize.test_argnames_errors_name_the_argument.<locals>.f: ragged nested sequence: the element at [1] has length 1, expected 2 like its siblings""",  # noqa: B950
        )
        with self.assertRaisesRegex(TypeError, r"^auto_tensorize\(\): argument 'x' of .*f: the element at \[0\] is 'a'"):
            f(["a"], [1])

    def test_in_place_writes_reach_the_caller_only_when_memory_is_shared(self):
        @auto_tensorize(return_type="input")
        def double(x):
            x.mul_(2)
            return x

        shared = np.arange(8.0)
        double(shared[::2])
        self.assertEqual(shared.tolist(), [0.0, 1.0, 4.0, 3.0, 8.0, 5.0, 12.0, 7.0])
        copied = np.arange(4.0)
        out = double(copied[::-1])
        self.assertEqual(copied.tolist(), [0.0, 1.0, 2.0, 3.0])
        self.assertEqual(out.tolist(), [6.0, 4.0, 2.0, 0.0])
        self.assertIn("copied", auto_tensorize.__doc__)

    def test_argnames_convert_default_values(self):
        @auto_tensorize(argnames=["w", "z"])
        def f(x, y=3, w=[1, 2], *, z=(1.5,), q=None):  # noqa: B006
            return x, y, w, z, q

        x, y, w, z, q = f(1)
        self.assertEqual((x, y, q), (1, 3, None))
        self.assertEqual((w, z), (torch.tensor([1, 2]), torch.tensor([1.5])))
        self.assertEqual(f(1, 2, [5], z=None, q=4)[2:], (torch.tensor([5]), None, 4))
        self.assertIsNot(f(1)[2], f(1)[2])  # a fresh tensor per call

    def test_dtype_cast_refuses_overflow(self):
        @auto_tensorize(dtype=torch.float16)
        def f(x):
            return x

        self.assertEqual(f(np.array([1.0, 2.0])).dtype, torch.float16)
        with self.assertRaisesRegex(ValueError, r"the element at \[1\] \(1000000.0\) is too large for torch.float16"):
            f(np.array([1.0, 1e6]))

    def test_dtype_applies_to_floating_point_only(self):
        @auto_tensorize(dtype=torch.float16)
        def f(x, idx):
            return x, idx

        x, idx = f(np.ones(2), np.arange(2))
        self.assertEqual(x.dtype, torch.float16)
        self.assertEqual(idx.dtype, torch.int64)

    def test_explicit_device(self):
        @auto_tensorize(device="meta")
        def f(x):
            return x

        self.assertEqual(f(np.ones(2)).device, torch.device("meta"))

    def test_device_context(self):
        @auto_tensorize
        def f(x):
            return x

        with mock.patch.object(torch._accelerator, "DeviceContext", FakeDeviceContext, create=True):
            for tensorize, expected in ((True, "meta"), (False, "cpu")):
                FakeDeviceContext.active = FakeDeviceContext("meta", tensorize)
                try:
                    self.assertEqual(f(np.ones(2)).device.type, expected)
                finally:
                    FakeDeviceContext.active = None
            self.assertEqual(f(np.ones(2)).device.type, "cpu")
            FakeDeviceContext.active = FakeDeviceContext("meta", True)
            try:
                self.assertEqual(auto_tensorize(device="cpu")(lambda x: x)(np.ones(2)).device.type, "cpu")
            finally:
                FakeDeviceContext.active = None

    @unittest.skipUnless(
        hasattr(torch._accelerator, "DeviceContext"), "torch._accelerator.DeviceContext is not in this build"
    )
    def test_real_device_context(self):
        f = auto_tensorize(lambda x: x)
        with torch._accelerator.DeviceContext("meta", tensorize=True):
            self.assertEqual(f(np.ones(2)).device.type, "meta")
        with torch._accelerator.DeviceContext("meta"):
            self.assertEqual(f(np.ones(2)).device.type, "cpu")

    def test_return_type_input(self):
        @auto_tensorize(return_type="input")
        def f(x, y):
            return x + y, {"n": (x * 2).sum()}, "label"

        out, extra, label = f(np.ones(2), np.ones(2))
        self.assertIsInstance(out, np.ndarray)
        self.assertIsInstance(extra["n"], np.ndarray)
        self.assertEqual(label, "label")
        self.assertIsInstance(f(torch.ones(2), torch.ones(2))[0], torch.Tensor)
        grad_out = auto_tensorize(return_type="input")(lambda x: x * torch.ones(2, requires_grad=True))
        self.assertIsInstance(grad_out(np.ones(2)), np.ndarray)
        with self.assertRaisesRegex(ValueError, "return_type must be 'tensor' or 'input'"):
            auto_tensorize(return_type="numpy")

    @parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float16], name_fn=lambda d: str(d)[6:])
    def test_return_type_input_dtypes_numpy_lacks(self, dtype):
        # NumPy has no bfloat16 or float8: those outputs come back as float32; float16 stays.
        f = auto_tensorize(return_type="input")(lambda x: x.to(dtype))
        out = f(np.ones(2, np.float32))
        self.assertIsInstance(out, np.ndarray)
        self.assertEqual(out.dtype, np.float16 if dtype is torch.float16 else np.float32)

    @unittest.skipUnless(
        hasattr(torch._accelerator, "DeviceContext"), "torch._accelerator.DeviceContext is not in this build"
    )
    def test_return_type_input_under_autocast(self):
        @auto_tensorize(return_type="input")
        def mm(x, w):
            return x @ w

        with torch._accelerator.DeviceContext("cpu", amp=True, tensorize=True):
            out = mm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
        self.assertEqual(out.dtype, np.float32)
        self.assertEqual(out.tolist(), [[2.0, 2.0], [2.0, 2.0]])

    def test_return_type_input_through_array_namespace(self):
        class Array(DLPackOnly):
            def __array_namespace__(self):
                return namespace

        namespace = SimpleNamespace(from_dlpack=lambda t: Array(np.from_dlpack(t)))
        f = auto_tensorize(return_type="input")(lambda x: x + 1)
        out = f(Array(np.zeros(2)))
        self.assertIsInstance(out, Array)
        self.assertEqual(out.array.tolist(), [1.0, 1.0])

    def test_return_type_input_without_namespace(self):
        f = auto_tensorize(return_type="input")(lambda x: x)
        with self.assertRaisesRegex(TypeError, "cannot convert outputs back to DLPackOnly"):
            f(DLPackOnly(np.ones(2)))

    def test_bad_options(self):
        with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): dtype must be a torch.dtype \(torch.float32\)"):
            auto_tensorize(dtype="float32")
        with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): expected a function, but got 3"):
            auto_tensorize(3)
        with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): expected a function, but got <class 'int'>"):
            auto_tensorize(int)
        with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): return_type must be .* but got 1"):
            auto_tensorize(return_type=1)
        with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): device must be a torch.device"):
            auto_tensorize(device=1.5)
        with self.assertRaisesRegex(ValueError, r"auto_tensorize\(\): device 'gpu' is not a valid device"):
            auto_tensorize(device="gpu")
        with self.assertRaisesRegex(ValueError, r"auto_tensorize\(\): device index must be non-negative, but got -1"):
            auto_tensorize(device=-1)
        for bad in (["x", 1], 5, "x"):
            with self.assertRaisesRegex(TypeError, r"auto_tensorize\(\): argnames must be a sequence of parameter"):
                auto_tensorize(argnames=bad)

    def test_coroutine(self):
        @auto_tensorize(return_type="input")
        async def center(x):
            self.assertIsInstance(x, torch.Tensor)
            await asyncio.sleep(0)
            return x - x.mean()

        self.assertTrue(inspect.iscoroutinefunction(center))
        out = asyncio.run(center(np.array([1.0, 2.0, 3.0])))
        self.assertIsInstance(out, np.ndarray)
        self.assertEqual(out.tolist(), [-1.0, 0.0, 1.0])
        self.assertIsInstance(asyncio.run(center(torch.ones(2))), torch.Tensor)

    def test_generators(self):
        @auto_tensorize(return_type="input")
        def rows(x):
            self.assertIsInstance(x, torch.Tensor)
            scale = yield x[0]
            yield x[1] * scale
            return x.sum()

        @auto_tensorize(argnames=["x"])
        async def arows(x):
            for row in x:
                await asyncio.sleep(0)
                yield row

        self.assertTrue(inspect.isgeneratorfunction(rows))
        self.assertTrue(inspect.isasyncgenfunction(arows))
        it = rows(np.array([[1.0], [2.0]]))
        first = next(it)
        self.assertIsInstance(first, np.ndarray)
        self.assertEqual(it.send(10.0).tolist(), [20.0])
        with self.assertRaises(StopIteration) as ctx:
            next(it)
        self.assertIsInstance(ctx.exception.value, np.ndarray)
        self.assertEqual(ctx.exception.value.tolist(), 3.0)

        async def collect():
            return [row async for row in arows([[1, 2], [3, 4]])]

        out = asyncio.run(collect())
        self.assertEqual([type(row) for row in out], [torch.Tensor, torch.Tensor])
        self.assertEqual(torch.stack(out), torch.tensor([[1, 2], [3, 4]]))

    def test_wraps_and_pickles(self):
        self.assertEqual(module_level_double.__name__, "module_level_double")
        restored = pickle.loads(pickle.dumps(module_level_double))
        self.assertIs(restored, module_level_double)
        self.assertEqual(restored(np.ones(2)), torch.full((2,), 2.0, dtype=torch.float64))


class TestCompile(TestCase):
    def setUp(self):
        super().setUp()
        torch._dynamo.reset()

    @parametrize("backend", ["eager", "aot_eager"])
    def test_to_tensor_of_tensor_fullgraph(self, backend):
        @torch.compile(backend=backend, fullgraph=True)
        def f(x):
            return to_tensor(x, dtype=torch.float64) * 2

        x = torch.arange(3.0)
        self.assertEqual(f(x), x.double() * 2)

    @parametrize("backend", ["eager", "aot_eager"])
    @parametrize("fullgraph", [False, True])
    def test_decorated_function_compiles(self, backend, fullgraph):
        compiled = torch.compile(module_level_double, backend=backend, fullgraph=fullgraph)
        x = torch.arange(3.0)
        self.assertEqual(compiled(x), module_level_double(x))


    def test_numpy_arguments_under_fullgraph_as_documented(self):
        compiled = torch.compile(auto_tensorize(lambda x: x * 2), backend="eager", fullgraph=True)
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, "ndarray.flags"):
            compiled(np.ones(2))
        outside = auto_tensorize(torch.compile(lambda x: x * 2, backend="eager", fullgraph=True))
        self.assertEqual(outside(np.ones(2)), torch.full((2,), 2.0, dtype=torch.float64))
        self.assertIn("fullgraph=True", auto_tensorize.__doc__)

class TestAsTensorDoc(TestCase):
    def test_docstring_documents_device_and_zero_copy(self):
        doc = " ".join(torch.as_tensor.__doc__.split())
        self.assertIn("Memory is shared (zero-copy) with a tensor, a NumPy array, an object exposing", doc)
        self.assertIn("``__dlpack__``", doc)
        self.assertIn("constructed on the current default device", doc)
        self.assertIn(":func:`torch.utils.auto_tensorize.to_tensor`", doc)


@unittest.skipUnless(TEST_CUDA, "requires CUDA")
class TestToTensorCUDA(TestCase):
    def test_numpy_to_cuda(self):
        t = to_tensor(np.arange(3.0), device="cuda")
        self.assertEqual(t.device.type, "cuda")
        self.assertEqual(t.cpu(), torch.arange(3.0, dtype=torch.float64))

    def test_cuda_tensor_dlpack_zero_copy(self):
        src = torch.arange(3.0, device="cuda")
        t = to_tensor(DLPackOnly(src))
        self.assertEqual(t.data_ptr(), src.data_ptr())


instantiate_parametrized_tests(TestToTensor)
instantiate_parametrized_tests(TestCompile)
instantiate_parametrized_tests(TestAutoTensorize)


if __name__ == "__main__":
    run_tests()
