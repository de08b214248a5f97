# Owner(s): ["module: cuda"]

import contextlib
import pickle
import subprocess
import sys
import textwrap
import unittest
from unittest import mock

from hypothesis import given, strategies as st

import torch
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


GiB = 1 << 30
MiB = 1 << 20


@contextlib.contextmanager
def fake_cuda(*, free=8 * GiB, total=80 * GiB, reserved=0, allocated=0, count=1, current=0, initialized=True):
    """Replace the torch.cuda queries the memory guards use by a fake device; yields the calls made."""
    calls = []
    state = {"reserved": reserved}

    def mem_get_info(device=None):
        calls.append(("mem_get_info", device))
        return free, total

    def empty_cache():
        calls.append(("empty_cache",))
        state["reserved"] = allocated

    fakes = {
        "is_available": lambda: True,
        "is_initialized": lambda: initialized,
        "device_count": lambda: count,
        "current_device": lambda: current,
        "mem_get_info": mem_get_info,
        "memory_reserved": lambda device=None: state["reserved"],
        "memory_allocated": lambda device=None: allocated,
        "synchronize": lambda device=None: calls.append(("synchronize", device)),
        "empty_cache": empty_cache,
        "ipc_collect": lambda: calls.append(("ipc_collect",)),
    }
    with contextlib.ExitStack() as stack:
        for name, fake in fakes.items():
            stack.enter_context(mock.patch.object(torch.cuda, name, side_effect=fake))
        yield calls


class TestClearCache(TestCase):
    def test_uninitialized_returns_zero_and_calls_nothing(self):
        with fake_cuda(initialized=False, reserved=GiB) as calls:
            self.assertEqual(torch.cuda.clear_cache(), 0)
        self.assertEqual(calls, [])

    def test_returns_bytes_released(self):
        with fake_cuda(reserved=3 * GiB, allocated=GiB) as calls:
            self.assertEqual(torch.cuda.clear_cache(), 2 * GiB)
        self.assertEqual(calls, [("synchronize", 0), ("empty_cache",), ("ipc_collect",)])

    def test_synchronizes_only_devices_holding_memory(self):
        with fake_cuda(count=2, reserved=0) as calls:
            self.assertEqual(torch.cuda.clear_cache(), 0)
        self.assertNotIn("synchronize", [c[0] for c in calls])
        self.assertIn(("empty_cache",), calls)

    def test_collects_reference_cycles(self):
        import weakref

        class Holder:
            pass

        a, b = Holder(), Holder()
        a.other, b.other = b, a
        a.tensor = torch.ones(3)
        ref = weakref.ref(a.tensor)
        del a, b
        torch.cuda.clear_cache()
        self.assertIsNone(ref())

    def test_public(self):
        self.assertIn("clear_cache", torch.cuda.__all__)
        self.assertEqual(torch.cuda.clear_cache.__module__, "torch.cuda")
        self.assertIn("Example::", torch.cuda.clear_cache.__doc__)


class TestAssertFreeMemory(TestCase):
    def test_enough_free(self):
        with fake_cuda(free=8 * GiB):
            self.assertIsNone(torch.cuda.assert_free_memory("8GiB"))
            torch.cuda.assert_free_memory(8 * GiB)
            torch.cuda.assert_free_memory(0.1)  # 8 GiB of 80 GiB

    def test_counts_allocator_reserve(self):
        # 1 GiB free on the device + 3 GiB reserved but unused by the allocator.
        with fake_cuda(free=GiB, reserved=5 * GiB, allocated=2 * GiB):
            torch.cuda.assert_free_memory("4GiB")
            with self.assertRaises(torch.OutOfMemoryError):
                torch.cuda.assert_free_memory(4 * GiB + 1)

    def test_message(self):
        with fake_cuda(free=GiB, total=80 * GiB, reserved=GiB + 512 * MiB, allocated=GiB):
            with self.assertRaises(torch.OutOfMemoryError) as cm:
                torch.cuda.assert_free_memory("4GiB")
        self.assertExpectedInline(
            str(cm.exception),
            """assert_free_memory(): cuda:0 has 1.50 GiB free (1.00 GiB free on the device + 512.00 MiB cached by PyTorch's allocator) of 80.00 GiB total, but 4.00 GiB is required (required='4GiB')""",  # noqa: B950
        )

    def test_fraction_of_total(self):
        with fake_cuda(free=20 * GiB, total=80 * GiB):
            torch.cuda.assert_free_memory(0.25)
            with self.assertRaisesRegex(torch.OutOfMemoryError, "but 40.00 GiB is required"):
                torch.cuda.assert_free_memory(0.5)

    @parametrize("device, index", [(None, 1), (0, 0), ("cuda:1", 1), ("cuda", 1), (torch.device("cuda", 0), 0)])
    def test_device_forms(self, device, index):
        with fake_cuda(count=2, current=1) as calls:
            torch.cuda.assert_free_memory(1, device=device)
        self.assertIn(("mem_get_info", torch.device("cuda", index)), calls)

    @parametrize("device", [2, -1, "cuda:5"])
    def test_device_out_of_range(self, device):
        with fake_cuda(count=2):
            with self.assertRaisesRegex(
                ValueError, r"out of range; this machine has 2 CUDA devices \(valid indices 0..1\)"
            ):
                torch.cuda.assert_free_memory(1, device=device)

    @parametrize("device", ["cpu", "meta", torch.device("cpu")])
    def test_not_a_cuda_device(self, device):
        with fake_cuda(), self.assertRaisesRegex(ValueError, "expected a CUDA device, but got"):
            torch.cuda.assert_free_memory(1, device=device)

    def test_unparseable_device(self):
        with fake_cuda(), self.assertRaisesRegex(ValueError, "'gpu:0' is not a device"):
            torch.cuda.assert_free_memory(1, device="gpu:0")

    @parametrize("device", [True, 1.0, [0]], name_fn=lambda d: type(d).__name__)
    def test_device_type_error(self, device):
        with self.assertRaisesRegex(TypeError, "device must be None, an int index"):
            torch.cuda.assert_free_memory(1, device=device)

    @parametrize(
        "required",
        [-1, float("nan"), 0.0, 1.5, "4 XB", "", "-4GB"],
        name_fn=lambda r: repr(r).replace("'", "").replace(".", "p").replace("-", "neg").replace(" ", "_") or "blank",
    )
    def test_bad_required_value(self, required):
        # Rejected before CUDA is looked at, so the same error on every machine.
        with self.assertRaisesRegex(ValueError, r"assert_free_memory\(\): required"):
            torch.cuda.assert_free_memory(required)

    @parametrize("required", [True, None, b"4GB", [1]], name_fn=lambda r: type(r).__name__)
    def test_bad_required_type(self, required):
        with self.assertRaisesRegex(TypeError, r"assert_free_memory\(\): required must be"):
            torch.cuda.assert_free_memory(required)

    @given(
        free=st.integers(0, 1 << 40),
        cached=st.integers(0, 1 << 36),
        allocated=st.integers(0, 1 << 36),
        required=st.integers(0, 1 << 41),
    )
    def test_raises_exactly_when_short(self, free, cached, allocated, required):
        with fake_cuda(free=free, total=1 << 42, reserved=allocated + cached, allocated=allocated):
            if free + cached >= required:
                torch.cuda.assert_free_memory(required)
            else:
                with self.assertRaises(torch.OutOfMemoryError):
                    torch.cuda.assert_free_memory(required)

    def test_without_cuda(self):
        with mock.patch.object(torch.cuda, "is_available", return_value=False):
            with self.assertRaises(RuntimeError) as cm:
                torch.cuda.assert_free_memory("1GiB")
        self.assertNotIsInstance(cm.exception, torch.OutOfMemoryError)
        self.assertExpectedInline(
            str(cm.exception),
            """assert_free_memory(): CUDA is not available on this machine (torch.cuda.is_available() is False), so free GPU memory cannot be checked""",  # noqa: B950
        )

    def test_names_the_rank(self):
        with (
            fake_cuda(free=0),
            mock.patch.object(torch.distributed, "is_initialized", return_value=True),
            mock.patch.object(torch.distributed, "get_rank", return_value=3),
        ):
            with self.assertRaisesRegex(
                torch.OutOfMemoryError, r"^assert_free_memory\(\): cuda:0 on rank 3 has 0 B free"
            ):
                torch.cuda.assert_free_memory(1)


def needs_8gib():
    return "ok"


guarded = torch.cuda.min_free_vram("8GiB")(needs_8gib)


@torch.cuda.min_free_vram(0.5)
def needs_half(x):
    """Doubles x."""
    return x * 2


class TestMinFreeVram(TestCase):
    def test_decorator_checks_before_each_call(self):
        with fake_cuda(free=8 * GiB) as calls:
            self.assertEqual(guarded(), "ok")
            self.assertEqual(guarded(), "ok")
        self.assertEqual(sum(c[0] == "mem_get_info" for c in calls), 2)

    def test_decorator_raises_before_running(self):
        ran = []

        @torch.cuda.min_free_vram("9GiB")
        def f():
            ran.append(1)

        with fake_cuda(free=8 * GiB):
            with self.assertRaisesRegex(torch.OutOfMemoryError, r"^min_free_vram\(\): cuda:0 has 8.00 GiB free"):
                f()
        self.assertEqual(ran, [])

    def test_context_manager(self):
        with fake_cuda(free=GiB, total=4 * GiB):
            with torch.cuda.min_free_vram(0.25, device=0):
                pass
            with self.assertRaises(torch.OutOfMemoryError):
                with torch.cuda.min_free_vram(0.5):
                    self.fail("the block must not run")

    def test_reusable_context_manager(self):
        guard = torch.cuda.min_free_vram("1GiB")
        with fake_cuda(free=GiB):
            for _ in range(2):
                with guard:
                    pass

    def test_validates_at_creation(self):
        with self.assertRaisesRegex(ValueError, r"min_free_vram\(\): required: unknown unit 'XB'"):
            torch.cuda.min_free_vram("4 XB")
        with self.assertRaisesRegex(TypeError, "device must be None"):
            torch.cuda.min_free_vram(1, device=1.5)
        with self.assertRaisesRegex(TypeError, "expected a callable to decorate"):
            torch.cuda.min_free_vram(1)(3)

    def test_without_cuda(self):
        with mock.patch.object(torch.cuda, "is_available", return_value=False):
            with self.assertRaisesRegex(RuntimeError, "CUDA is not available"):
                guarded()

    def test_wraps_and_pickles_by_reference(self):
        self.assertEqual(needs_half.__name__, "needs_half")
        self.assertEqual(needs_half.__doc__, "Doubles x.")
        self.assertIs(pickle.loads(pickle.dumps(needs_half)), needs_half)
        self.assertEqual(repr(torch.cuda.min_free_vram("1GiB")), "torch.cuda.min_free_vram('1GiB', device=None)")

    @parametrize("backend", ["eager", "aot_eager"])
    def test_compile(self, backend):
        torch._dynamo.reset()
        x = torch.arange(4.0)
        compiled = torch.compile(needs_half, backend=backend)
        # Compile first with the check stubbed: Dynamo itself must not see the fake CUDA device.
        with mock.patch("torch.cuda._memory_guard._check_free_memory") as check:
            self.assertEqual(compiled(x), x * 2)
        check.assert_called_once_with(0.5, None, "min_free_vram")
        with fake_cuda(free=GiB, total=GiB, initialized=False) as calls:
            self.assertEqual(compiled(x), x * 2)
            self.assertEqual(compiled(x), x * 2)
        # The check ran eagerly on each call, outside the graph.
        self.assertEqual(sum(c[0] == "mem_get_info" for c in calls), 2)
        with fake_cuda(free=0, total=GiB, initialized=False):
            with self.assertRaises(torch.OutOfMemoryError):
                compiled(x)

    def test_public(self):
        for name in ("assert_free_memory", "min_free_vram"):
            self.assertIn(name, torch.cuda.__all__)
            self.assertEqual(getattr(torch.cuda, name).__module__, "torch.cuda")
            self.assertIn("Example::", getattr(torch.cuda, name).__doc__)


class TestImport(TestCase):
    def test_quiet_import_and_no_cuda_initialization(self):
        # A fresh interpreter: nothing else may have touched CUDA or imported the helpers.
        code = textwrap.dedent(
            """
            import sys, warnings
            warnings.simplefilter("error")
            import torch
            assert {"safe_run", "clear_cache", "assert_free_memory", "min_free_vram"} <= set(torch.cuda.__all__)
            lazy = ("torch.utils.error_callback" in sys.modules, "torch._dynamo" in sys.modules)
            released = torch.cuda.clear_cache()
            print(*lazy, released, torch.cuda.is_initialized())
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        self.assertEqual(out.stdout.split(), ["False", "False", "0", "False"])


@unittest.skipIf(not TEST_CUDA, "requires CUDA")
class TestCUDA(TestCase):
    def test_assert_free_memory_real_device(self):
        _, total = torch.cuda.mem_get_info()
        torch.cuda.assert_free_memory(1)
        with self.assertRaisesRegex(torch.OutOfMemoryError, "of .* total, but .* is required"):
            torch.cuda.assert_free_memory(total + 1)

    def test_clear_cache_releases_cached_blocks(self):
        torch.cuda.clear_cache()
        reserved = torch.cuda.memory_reserved()
        x = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda")
        del x  # back in the allocator's cache, still reserved
        self.assertGreaterEqual(torch.cuda.memory_reserved(), reserved + 256 * MiB)
        self.assertGreaterEqual(torch.cuda.clear_cache(), 256 * MiB)
        self.assertEqual(torch.cuda.memory_reserved(), reserved)

    def test_reserve_counts_as_free(self):
        torch.cuda.clear_cache()
        free_before, _ = torch.cuda.mem_get_info()
        x = torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
        del x  # cached by the allocator, not free for the driver
        torch.cuda.assert_free_memory(free_before - 64 * MiB)
        torch.cuda.clear_cache()


instantiate_parametrized_tests(TestAssertFreeMemory)
instantiate_parametrized_tests(TestMinFreeVram)

if __name__ == "__main__":
    run_tests()
