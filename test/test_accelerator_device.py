# Owner(s): ["module: accelerator"]

import subprocess
import sys
import textwrap
import types
import unittest
from unittest import mock

import torch
import torch._accelerator
from torch.testing._internal.common_device_type import instantiate_device_type_tests
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


TEST_ACCELERATOR = torch.accelerator.is_available()


def _arg_name(arg):
    # "cuda:1" and torch.device("cuda:1") must not collide as test names.
    return f"{type(arg).__name__}_{arg}".replace(":", "_").replace(".", "_") or "empty"
TEST_MULTIACCELERATOR = TEST_ACCELERATOR and torch.accelerator.device_count() >= 2


class FakeAccelerator:
    """Stands in for the backend behind :mod:`torch.accelerator` on a machine without one.

    Patches the probes ``torch._accelerator`` reads (accelerator type, device
    count, current index, initialization state) and records every
    ``set_device_index`` call instead of performing it.
    """

    def __init__(self, type="cuda", count=2, index=0, initialized=True):
        self.type = type
        self.count = count
        self.index = index
        self.initialized = initialized
        self.set_calls = []
        self.index_queries = 0

    def _current_accelerator(self, check_available=False):
        if check_available and self.count == 0:
            return None
        return torch.device(self.type)

    def _current_device_index(self):
        self.index_queries += 1
        return self.index

    def _set_device_index(self, index, /):
        self.set_calls.append(index)
        self.index = index

    def __enter__(self):
        module = types.SimpleNamespace(is_initialized=lambda: self.initialized)
        self._patches = [
            mock.patch.object(torch.accelerator, "current_accelerator", self._current_accelerator),
            mock.patch.object(torch.accelerator, "device_count", lambda: self.count),
            mock.patch.object(torch.accelerator, "current_device_index", self._current_device_index),
            mock.patch.object(torch.accelerator, "set_device_index", self._set_device_index),
            mock.patch.object(torch, "get_device_module", lambda device=None: module),
        ]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc_info):
        for p in reversed(self._patches):
            p.stop()


class TestCurrentDevice(TestCase):
    @unittest.skipIf(TEST_ACCELERATOR, "needs a machine without an accelerator")
    def test_cpu_only_machine(self):
        self.assertEqual(torch._accelerator.current_device(), torch.device("cpu"))

    def test_reports_current_index(self):
        with FakeAccelerator("cuda", count=4, index=3):
            self.assertEqual(torch._accelerator.current_device(), torch.device("cuda", 3))

    def test_other_accelerator_types(self):
        for acc in ("xpu", "mps", "privateuseone"):
            with FakeAccelerator(acc, count=1, index=0):
                self.assertEqual(torch._accelerator.current_device(), torch.device(acc, 0))

    def test_does_not_initialize_backend(self):
        with FakeAccelerator("cuda", count=2, index=1, initialized=False) as fake:
            self.assertEqual(torch._accelerator.current_device(), torch.device("cuda", 0))
            self.assertEqual(fake.index_queries, 0)

    def test_accelerator_built_but_no_device(self):
        # A CUDA build on a machine without a GPU: current_accelerator() says
        # cuda, but nothing is available at runtime.
        with FakeAccelerator("cuda", count=0):
            self.assertEqual(torch._accelerator.current_device(), torch.device("cpu"))


class TestSetDevice(TestCase):
    @parametrize("device", ["cpu", "cpu:0", torch.device("cpu"), torch.device("cpu", 0)], name_fn=_arg_name)
    def test_cpu_changes_nothing(self, device):
        with FakeAccelerator("cuda", count=2, index=1) as fake:
            self.assertEqual(torch._accelerator.set_device(device), torch.device("cpu"))
            self.assertEqual(fake.set_calls, [])
            self.assertEqual(fake.index, 1)

    @unittest.skipIf(TEST_ACCELERATOR, "needs a machine without an accelerator")
    def test_cpu_on_cpu_only_machine(self):
        self.assertEqual(torch._accelerator.set_device("cpu"), torch.device("cpu"))

    @parametrize("device", [1, "cuda:1", torch.device("cuda", 1)], name_fn=_arg_name)
    def test_accepted_forms(self, device):
        with FakeAccelerator("cuda", count=2, index=0) as fake:
            result = torch._accelerator.set_device(device)
            self.assertEqual(result, torch.device("cuda", 1))
            self.assertIsInstance(result, torch.device)
            self.assertEqual(fake.set_calls, [1])
            self.assertEqual(torch._accelerator.current_device(), torch.device("cuda", 1))

    def test_device_without_index_means_current(self):
        with FakeAccelerator("cuda", count=4, index=2) as fake:
            self.assertEqual(torch._accelerator.set_device("cuda"), torch.device("cuda", 2))
            self.assertEqual(fake.set_calls, [2])

    def test_other_accelerator(self):
        with FakeAccelerator("xpu", count=2) as fake:
            self.assertEqual(torch._accelerator.set_device("xpu:1"), torch.device("xpu", 1))
            self.assertEqual(fake.set_calls, [1])

    @parametrize(
        "bad",
        [None, 1.0, "1", [0], (0,), True, False, object(), torch.tensor(0)],
        name_fn=lambda bad: type(bad).__name__ + ("_" + str(bad) if isinstance(bad, (bool, str)) else ""),
    )
    def test_not_a_device_type_error(self, bad):
        with FakeAccelerator("cuda", count=2) as fake:
            # "1" is a str and so reaches the device parser (ValueError);
            # everything else is rejected by type.
            expected = ValueError if isinstance(bad, str) else TypeError
            with self.assertRaisesRegex(expected, "set_device"):
                torch._accelerator.set_device(bad)
            self.assertEqual(fake.set_calls, [])

    def test_type_error_message(self):
        with self.assertRaises(TypeError) as cm:
            torch._accelerator.set_device(1.5)
        self.assertExpectedInline(
            str(cm.exception),
            """set_device(): expected an int index, a device string or a torch.device, but got 1.5 of type float""",
        )

    @parametrize("bad", ["gpu:0", "cuda:x", "cuda:-1", "", "cuda:0:1"], name_fn=_arg_name)
    def test_unparseable_string(self, bad):
        with FakeAccelerator("cuda", count=2) as fake:
            with self.assertRaisesRegex(ValueError, f"{bad!r} is not a device"):
                torch._accelerator.set_device(bad)
            self.assertEqual(fake.set_calls, [])

    @parametrize("device", ["xpu:0", torch.device("mps", 0), "meta", "cuda:0"], name_fn=_arg_name)
    def test_wrong_accelerator(self, device):
        with FakeAccelerator("privateuseone" if str(device).startswith("cuda") else "cuda", count=2) as fake:
            with self.assertRaisesRegex(ValueError, "does not match the current accelerator"):
                torch._accelerator.set_device(device)
            self.assertEqual(fake.set_calls, [])

    def test_out_of_range_message(self):
        with FakeAccelerator("cuda", count=2) as fake:
            with self.assertRaises(ValueError) as cm:
                torch._accelerator.set_device("cuda:2")
            self.assertEqual(fake.set_calls, [])
        self.assertExpectedInline(
            str(cm.exception),
            """set_device(): device index 2 is out of range; this machine has 2 cuda devices (valid indices 0..1)""",
        )

    @parametrize("index", [-1, -5, 2, 100], name_fn=_arg_name)
    def test_index_out_of_range(self, index):
        with FakeAccelerator("cuda", count=2) as fake:
            with self.assertRaisesRegex(ValueError, f"index {index} is out of range"):
                torch._accelerator.set_device(index)
            self.assertEqual(fake.set_calls, [])

    def test_single_device_message(self):
        with FakeAccelerator("mps", count=1):
            with self.assertRaisesRegex(ValueError, r"has 1 mps device \(valid indices 0..0\)"):
                torch._accelerator.set_device(1)

    @parametrize("device", [0, "cuda:0", torch.device("cuda", 0), "cuda"], name_fn=_arg_name)
    def test_no_accelerator_available(self, device):
        with FakeAccelerator("cuda", count=0) as fake:
            with self.assertRaisesRegex(RuntimeError, "no accelerator is available"):
                torch._accelerator.set_device(device)
            self.assertEqual(fake.set_calls, [])

    @parametrize("device", ["meta", "xpu:0", torch.device("mps")], name_fn=_arg_name)
    def test_wrong_type_is_value_error_before_availability(self, device):
        with FakeAccelerator("cuda", count=0) as fake:
            with self.assertRaisesRegex(ValueError, "does not match the current accelerator; expected 'cpu' or a 'cuda'"):
                torch._accelerator.set_device(device)
            self.assertEqual(fake.set_calls, [])

    @unittest.skipIf(TEST_ACCELERATOR, "needs a machine without an accelerator")
    def test_meta_on_cpu_only_machine(self):
        with self.assertRaisesRegex(ValueError, r"'meta' does not match the current accelerator; expected 'cpu'"):
            torch._accelerator.set_device("meta")

    @unittest.skipIf(TEST_ACCELERATOR, "needs a machine without an accelerator")
    def test_index_on_cpu_only_machine(self):
        with self.assertRaisesRegex(RuntimeError, r"cannot select 0: no accelerator is available"):
            torch._accelerator.set_device(0)


class TestAcceleratorModule(TestCase):
    def test_public_api(self):
        self.assertEqual(
            sorted(torch._accelerator.__all__), ["DeviceContext", "current_device", "get_best_device", "set_device"]
        )
        for name in torch._accelerator.__all__:
            obj = getattr(torch._accelerator, name)
            self.assertEqual(obj.__module__, "torch._accelerator", name)
            self.assertIn("Example::", obj.__doc__, name)

    def test_lazy_attribute_and_quiet_import(self):
        # `import torch` must not import torch._accelerator; first attribute access does.
        script = textwrap.dedent(
            """
            import sys, threading, warnings
            warnings.simplefilter("error")
            import torch
            assert "torch._accelerator" not in sys.modules
            threads = threading.active_count()
            torch._accelerator.current_device()
            assert "torch._accelerator" in sys.modules
            assert threading.active_count() == threads
            print("ok")
            """
        )
        out = subprocess.check_output([sys.executable, "-c", script], text=True)
        self.assertEqual(out.strip(), "ok")


class CudaThatMustNotBePolled:
    """A 2-GPU CUDA machine, below :mod:`torch.accelerator`, where polling CUDA fails the test.

    ``torch.cuda.is_available()`` (and the ``cudaGetDeviceCount`` behind it) initializes the
    CUDA driver API, after which a forked child cannot use CUDA: the query paths
    must count devices with :func:`torch.accelerator.device_count` (NVML first) instead.
    """

    def __init__(self):
        self.set_calls = []

    def _polled(self, *args):
        raise AssertionError("CUDA was polled: torch.cuda.is_available() poisons fork")

    def __enter__(self):
        from torch._accelerator import _nvml

        gpus = [_nvml.NvmlDevice(f"GPU-{i}", "H100", (0, i, 0), (i + 1) << 30, 8 << 30) for i in range(2)]
        self._patches = [
            mock.patch.object(torch._C, "_accelerator_getAccelerator", lambda: torch.device("cuda")),
            mock.patch.object(torch.cuda, "device_count", lambda: 2),
            mock.patch.object(torch.cuda, "is_available", self._polled),
            mock.patch.object(torch._C, "_cuda_getDeviceCount", self._polled, create=True),
            mock.patch.object(torch.cuda, "is_initialized", lambda: False),
            mock.patch.object(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(major=9)),
            mock.patch.object(torch.accelerator, "current_device_index", lambda: 0),
            mock.patch.object(torch.accelerator, "set_device_index", self.set_calls.append),
            mock.patch.object(torch._C, "_accelerator_exchangeDevice", lambda i: 0, create=True),
            mock.patch.object(torch._C, "_accelerator_maybeExchangeDevice", lambda i: i, create=True),
            mock.patch.object(_nvml, "query_devices", lambda: gpus),
        ]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc_info):
        for p in reversed(self._patches):
            p.stop()


class TestQueriesDoNotPoisonFork(TestCase):
    def test_query_paths_never_poll_cuda(self):
        from torch.amp import _defaults

        with CudaThatMustNotBePolled() as fake:
            self.assertEqual(torch._accelerator.current_device(), torch.device("cuda", 0))
            self.assertEqual(torch._accelerator.set_device(1), torch.device("cuda", 1))
            self.assertEqual(fake.set_calls, [1])
            self.assertEqual(torch._accelerator.set_device("cpu"), torch.device("cpu"))
            self.assertEqual(torch._accelerator.get_best_device(), torch.device("cuda", 1))
            # Entering sets the device (initializing CUDA, as it must); only choosing it is a query.
            with torch._accelerator.DeviceContext(1):
                pass
            self.assertEqual(_defaults.default_dtype("cuda", 1), torch.bfloat16)
            self.assertEqual(torch._accelerator.DeviceContext("cuda").device, torch.device("cuda", 0))
            self.assertEqual(_defaults.default_device_type(), "cuda")
            self.assertEqual(_defaults.autocast_defaults(None, None), ("cuda", torch.bfloat16))
            _defaults.has_grad_scaler("cuda")


class TestSetDeviceDeviceType(TestCase):
    def test_set_device_roundtrip(self, device):
        previous = torch._accelerator.current_device()
        try:
            result = torch._accelerator.set_device(device)
            self.assertEqual(result, torch.device(device))
            self.assertEqual(torch.empty(1, device=result).device, result)
            if result.type != "cpu":
                self.assertEqual(torch._accelerator.current_device(), result)
        finally:
            torch._accelerator.set_device(previous)


class TestSetDeviceCUDA(TestCase):
    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_current_device_does_not_init_cuda(self):
        script = textwrap.dedent(
            """
            import torch
            d = torch._accelerator.current_device()
            assert d == torch.device("cuda", 0), d
            assert not torch.cuda.is_initialized()
            print("ok")
            """
        )
        out = subprocess.check_output([sys.executable, "-c", script], text=True)
        self.assertEqual(out.strip(), "ok")

    @unittest.skipIf(not TEST_MULTIACCELERATOR, "requires 2 accelerator devices")
    def test_switch_between_devices(self):
        previous = torch._accelerator.current_device()
        try:
            for i in range(torch.accelerator.device_count()):
                self.assertEqual(torch._accelerator.set_device(i).index, i)
                self.assertEqual(torch.accelerator.current_device_index(), i)
        finally:
            torch._accelerator.set_device(previous)

    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_out_of_range_on_real_device(self):
        with self.assertRaisesRegex(ValueError, "out of range"):
            torch._accelerator.set_device(torch.accelerator.device_count())


instantiate_parametrized_tests(TestSetDevice)
instantiate_device_type_tests(TestSetDeviceDeviceType, globals())

if __name__ == "__main__":
    run_tests()
