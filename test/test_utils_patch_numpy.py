# Owner(s): ["module: numpy"]

import asyncio
import importlib.util
import inspect
import os
import subprocess
import sys
import threading
import types
import unittest
import warnings
from unittest import mock

import numpy as np

import torch
import torch.utils.patch_numpy as pn
from torch.testing._internal.common_utils import run_tests, TEST_CUDA, TestCase
from torch.utils.patch_numpy import array_namespace, patch_numpy


TEST_CUPY = TEST_CUDA and importlib.util.find_spec("cupy") is not None


def _fake_cupy():
    """A stand-in for CuPy: arrays that record which module computed on them.

    ``cupy.calls`` records, for each CuPy function called, its name with CuPy's current device and
    stream at that moment (``cupy.cuda.Device`` and ``cupy.cuda.ExternalStream`` set them as CuPy's do).
    """
    cupy = types.ModuleType("cupy")
    cupy.calls = []
    current = {"device": 0, "stream": "cupy-current"}

    class _Switch:
        def __init__(self, key, value):
            self.key, self.value = key, value

        def __enter__(self):
            self.previous, current[self.key] = current[self.key], self.value
            return self

        def __exit__(self, *exc):
            current[self.key] = self.previous

    cupy.cuda = types.SimpleNamespace(
        Device=lambda index: _Switch("device", index),
        ExternalStream=lambda ptr, device_id=-1: _Switch("stream", (ptr, device_id)),
    )

    def record(name):
        cupy.calls.append((name, current["device"], current["stream"]))

    class ndarray:
        def __init__(self, data, device_id=0):
            self.data = np.asarray(data)
            self.device = types.SimpleNamespace(id=device_id)

    def wrap(name):
        def fn(*args, **kwargs):
            record(name)
            unwrapped = [a.data if isinstance(a, ndarray) else a for a in args]
            return ndarray(getattr(np, name)(*unwrapped, **kwargs))

        return fn

    cupy.ndarray = ndarray
    cupy.sum = wrap("sum")
    cupy.concatenate = lambda arrays, **kw: ndarray(np.concatenate([a.data for a in arrays], **kw))
    cupy.linalg = types.SimpleNamespace(norm=lambda a: record("norm") or ndarray(np.linalg.norm(a.data)))
    cupy.from_dlpack = mock.Mock(side_effect=lambda t: record("from_dlpack") or ndarray(t.numpy()))
    return cupy


def _library():
    # A module written against NumPy, as a third-party library would be.
    lib = types.ModuleType("fake_library")
    exec(
        "import numpy as np\n"
        "import numpy\n"
        "from numpy import sum as np_sum\n"
        "def energy(x):\n"
        "    return np.sum(x * x)\n"
        "def norm(x):\n"
        "    return np.linalg.norm(x)\n"
        "def join(a, b):\n"
        "    return numpy.concatenate([a, b])\n",
        vars(lib),
    )
    return lib


class TestArrayNamespace(TestCase):
    def test_numpy_for_host_arrays(self):
        self.assertIs(array_namespace(np.ones(2), torch.ones(2), 3, None), np)
        self.assertIs(array_namespace(), np)
        self.assertIs(array_namespace([np.ones(2), 1.0]), np)

    def test_cupy_for_gpu_arrays(self):
        cupy = _fake_cupy()
        with mock.patch.dict(sys.modules, {"cupy": cupy}):
            self.assertIs(array_namespace(cupy.ndarray([1.0]), 2.0), cupy)

    def test_mixed_devices(self):
        cupy = _fake_cupy()
        with mock.patch.dict(sys.modules, {"cupy": cupy}):
            with self.assertRaises(ValueError) as ctx:
                array_namespace(np.ones(2), cupy.ndarray([1.0]))
            self.assertExpectedInline(
                str(ctx.exception),
                """array_namespace(): the arrays live on different devices (ndarray on cpu, ndarray on cuda:0); move them to one device first""",  # noqa: B950
            )
            with self.assertRaisesRegex(ValueError, "different devices"):
                array_namespace(cupy.ndarray([1.0], device_id=0), cupy.ndarray([1.0], device_id=1))

    def test_unsupported_device(self):
        with self.assertRaisesRegex(ValueError, r"neither NumPy nor CuPy can compute on meta \(Tensor\)"):
            array_namespace(torch.ones(2, device="meta"))

    def test_gpu_arrays_without_cupy(self):
        cupy = _fake_cupy()
        array = cupy.ndarray([1.0])
        with mock.patch.dict(sys.modules, {"cupy": cupy}), mock.patch.object(pn, "_cupy", return_value=None):
            with self.assertRaisesRegex(RuntimeError, "got GPU arrays, but CuPy is not installed"):
                array_namespace(array)


class TestPatchNumpy(TestCase):
    def setUp(self):
        super().setUp()
        self.cupy = _fake_cupy()
        patcher = mock.patch.dict(sys.modules, {"cupy": self.cupy})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.lib = _library()

    def test_dispatch(self):
        with patch_numpy(self.lib):
            self.assertIsInstance(self.lib.np, types.ModuleType)
            self.assertIsNot(self.lib.np, np)
            host = self.lib.energy(np.array([1.0, 2.0]))
            self.assertIsInstance(host, np.floating)
            self.assertEqual(host, 5.0)
            gpu = self.lib.norm(self.cupy.ndarray([3.0, 4.0]))
            self.assertIsInstance(gpu, self.cupy.ndarray)
            self.assertEqual(float(gpu.data), 5.0)
            joined = self.lib.join(self.cupy.ndarray([1.0]), self.cupy.ndarray([2.0]))
            self.assertEqual(joined.data.tolist(), [1.0, 2.0])
            self.assertIs(self.lib.np.pi, np.pi)
            self.assertIs(self.lib.np.float32, np.float32)
            self.assertIs(self.lib.np_sum, np.sum)  # names bound to functions are left alone
        self.assertIs(self.lib.np, np)
        self.assertIs(self.lib.numpy, np)

    def test_cuda_tensors_go_through_dlpack(self):
        # On this CPU-only machine, a CPU tensor plays the CUDA tensor.
        tensor = torch.tensor([3.0, 4.0])
        stream = types.SimpleNamespace(cuda_stream=0)
        with (
            mock.patch.object(pn, "_device_of", side_effect=lambda obj: "cuda:0" if obj is tensor else None),
            mock.patch.object(torch.cuda, "current_stream", return_value=stream),
            patch_numpy(self.lib),
        ):
            out = self.lib.norm(tensor)
        self.assertEqual(self.cupy.from_dlpack.call_count, 1)
        self.assertEqual(self.cupy.from_dlpack.call_args.args[0].data_ptr(), tensor.data_ptr())
        self.assertIsInstance(out, self.cupy.ndarray)
        self.assertEqual(float(out.data), 5.0)

    def test_runs_on_the_tensors_device_and_torch_stream(self):
        # CuPy must run on the input's device and, for tensors, torch's current stream,
        # not on CuPy's current device and stream.  A CPU tensor plays the tensor on cuda:1.
        tensor = torch.tensor([3.0, 4.0])
        stream = types.SimpleNamespace(cuda_stream=0xABC)
        with (
            mock.patch.object(pn, "_device_of", side_effect=lambda obj: "cuda:1" if obj is tensor else None),
            mock.patch.object(torch.cuda, "current_stream", return_value=stream) as current_stream,
            patch_numpy(self.lib),
        ):
            out = self.lib.norm(tensor)
        self.assertEqual(float(out.data), 5.0)
        current_stream.assert_called_once_with(1)
        self.assertEqual(self.cupy.calls, [("from_dlpack", 1, (0xABC, 1)), ("norm", 1, (0xABC, 1))])

    def test_cupy_arrays_run_on_their_device_and_cupys_stream(self):
        with patch_numpy(self.lib), mock.patch.object(torch.cuda, "current_stream") as current_stream:
            self.lib.norm(self.cupy.ndarray([1.0], device_id=2))
        current_stream.assert_not_called()  # no torch input: no torch CUDA state is touched
        self.assertEqual(self.cupy.calls, [("norm", 2, "cupy-current")])

    def test_mixed_devices_in_a_call(self):
        with patch_numpy(self.lib), self.assertRaisesRegex(ValueError, r"numpy.concatenate\(\): the arrays live on"):
            self.lib.join(np.ones(1), self.cupy.ndarray([1.0]))

    def test_restored_on_error(self):
        with self.assertRaises(ZeroDivisionError), patch_numpy(self.lib):
            1 / 0
        self.assertIs(self.lib.np, np)

    def test_nested_and_overlapping(self):
        outer, inner = patch_numpy(self.lib), patch_numpy(self.lib.energy)
        with outer:
            dispatcher = self.lib.np
            with inner:
                self.assertIs(self.lib.np, dispatcher)
            self.assertIs(self.lib.np, dispatcher)
        self.assertIs(self.lib.np, np)
        # Overlapping blocks from two threads: restored when the last one exits.
        entered, release = threading.Event(), threading.Event()

        def worker():
            with patch_numpy(self.lib):
                entered.set()
                release.wait(30)

        t = threading.Thread(target=worker)
        t.start()
        entered.wait(30)
        with patch_numpy(self.lib):
            pass
        self.assertIsNot(self.lib.np, np)
        release.set()
        t.join(30)
        self.assertIs(self.lib.np, np)

    def test_decorator_and_function_target(self):
        @patch_numpy(self.lib.energy)
        def run(x):
            return self.lib.norm(x), self.lib.np is not np

        value, patched = run(self.cupy.ndarray([3.0, 4.0]))
        self.assertTrue(patched)
        self.assertEqual(float(value.data), 5.0)
        self.assertIs(self.lib.np, np)

    def test_decorated_coroutine_and_generators_patch_only_while_running(self):
        lib = self.lib

        @patch_numpy(lib)
        async def step():
            seen = [lib.np is not np]
            await asyncio.sleep(0.01)
            seen.append(lib.np is not np)
            return seen

        async def other(seen):
            for _ in range(4):
                seen.append(lib.np is not np)
                await asyncio.sleep(0.004)

        async def main():
            others = []
            mine, _ = await asyncio.gather(step(), other(others))
            return mine, others

        self.assertTrue(inspect.iscoroutinefunction(step))
        self.assertEqual(asyncio.run(main()), ([True, True], [False] * 4))

        @patch_numpy(lib)
        def gen():
            yield lib.np is not np

        @patch_numpy(lib)
        async def agen():
            await asyncio.sleep(0)
            yield lib.np is not np

        async def consume():
            return [(v, lib.np is not np) async for v in agen()]

        self.assertTrue(inspect.isgeneratorfunction(gen))
        self.assertTrue(inspect.isasyncgenfunction(agen))
        self.assertEqual([(v, lib.np is not np) for v in gen()], [(True, False)])
        self.assertEqual(asyncio.run(consume()), [(True, False)])
        self.assertIs(lib.np, np)
        with self.assertRaisesRegex(TypeError, r"patch_numpy\(\): can only decorate a function, but got a class"):
            patch_numpy(lib)(int)

    def test_ufunc_attributes_are_numpy(self):
        with patch_numpy(self.lib):
            self.assertEqual(self.lib.np.add.reduce(np.arange(4)), 6)
            self.assertIn("dispatcher for numpy.add", repr(self.lib.np.add))

    def test_bad_target(self):
        with self.assertRaisesRegex(TypeError, "target must be a module or a Python function"):
            patch_numpy(3)


class TestProcesses(TestCase):
    def test_quiet_import(self):
        code = (
            "import sys, threading, warnings\n"
            "warnings.simplefilter('error')\n"
            "import torch.utils.patch_numpy\n"
            "assert threading.active_count() == 1 and 'cupy' not in sys.modules\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)

    @unittest.skipUnless(hasattr(os, "fork"), "requires fork")
    def test_fork_while_lock_is_held(self):
        pn._lock.acquire()
        try:
            pid = os.fork()
            if pid == 0:
                # Child: the inherited lock was held by the parent; patching must not deadlock.
                acquired = pn._lock.acquire(timeout=5)
                os._exit(0 if acquired else 1)
        finally:
            pn._lock.release()
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)


class TestWithoutCupy(TestCase):
    def test_no_op_with_one_warning(self):
        code = (
            "import sys, types, warnings\n"
            "sys.modules['cupy'] = None\n"
            "import numpy as np\n"
            "from torch.utils.patch_numpy import patch_numpy\n"
            "lib = types.ModuleType('lib'); lib.np = np\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3):\n"
            "        with patch_numpy(lib):\n"
            "            assert lib.np is np\n"
            "print(len(w), w[0].message)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(
            out.stdout.strip(), "1 patch_numpy(): CuPy is not installed, so NumPy calls keep running on NumPy"
        )


@unittest.skipUnless(TEST_CUPY, "requires CuPy and CUDA")
class TestPatchNumpyCUDA(TestCase):
    def test_cuda_tensor_runs_on_cupy(self):
        import cupy

        lib = _library()
        x = torch.tensor([3.0, 4.0], device="cuda")
        self.assertIs(array_namespace(x), cupy)
        with warnings.catch_warnings(), patch_numpy(lib):
            out = lib.norm(x)
        self.assertIsInstance(out, cupy.ndarray)
        self.assertEqual(float(out), 5.0)
        shared = cupy.from_dlpack(x)
        self.assertEqual(shared.data.ptr, x.data_ptr())

    def test_runs_on_torchs_current_stream(self):
        import cupy

        lib = _library()
        x = torch.tensor([3.0, 4.0], device="cuda")
        seen, norm = [], cupy.linalg.norm

        def recording_norm(a):
            seen.append((cupy.cuda.Device().id, cupy.cuda.get_current_stream().ptr))
            return norm(a)

        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream), mock.patch.object(cupy.linalg, "norm", recording_norm), patch_numpy(lib):
            out = lib.norm(x)
        self.assertEqual(seen, [(x.device.index, stream.cuda_stream)])
        self.assertEqual(float(out), 5.0)


if __name__ == "__main__":
    run_tests()
