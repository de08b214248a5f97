# Owner(s): ["module: cuda"]

import asyncio
import contextlib
import inspect
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
    subtest,
    TEST_CUDA,
    TestCase,
)


GiB = 1 << 30
MiB = 1 << 20


@contextlib.contextmanager
def fake_cuda(
    *,
    free=8 * GiB,
    total=80 * GiB,
    reserved=0,
    allocated=0,
    inactive_split=0,
    fraction=1.0,
    count=1,
    current=0,
    initialized=True,
):
    """Replace the torch.cuda queries the memory guards use by a fake device; yields the calls made.

    ``allocated`` is what tensors use (active bytes); ``inactive_split`` the free remainders of split blocks.
    """
    calls = []
    state = {"reserved": reserved}

    def memory_stats(device=None):
        return {
            "reserved_bytes.all.current": state["reserved"],
            "active_bytes.all.current": allocated,
            "inactive_split_bytes.all.current": inactive_split,
            "allocated_bytes.all.current": allocated,
        }

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
        "memory_stats": memory_stats,
        "get_per_process_memory_fraction": lambda device=None: fraction,
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
            """assert_free_memory(): cuda:0 has 1.50 GiB free (1.00 GiB free on the device + 512.00 MiB cached by PyTorch's allocator and reusable) of 80.00 GiB total, but 4.00 GiB is required (required='4GiB')""",  # noqa: B950
        )

    def test_inactive_split_blocks_are_not_free(self):
        # 3 GiB cached, of which 2 GiB are the free remainders of split blocks a new tensor cannot get.
        with fake_cuda(free=GiB, reserved=5 * GiB, allocated=2 * GiB, inactive_split=2 * GiB):
            torch.cuda.assert_free_memory("2GiB")
            with self.assertRaisesRegex(torch.OutOfMemoryError, r"has 2.00 GiB free \(1.00 GiB free on the device \+ 1.00 GiB cached"):  # noqa: B950
                torch.cuda.assert_free_memory(2 * GiB + 1)

    def test_per_process_memory_fraction_caps_free(self):
        # set_per_process_memory_fraction(0.25) of 80 GiB = 20 GiB for this process, 12 GiB of it in use.
        with fake_cuda(free=60 * GiB, total=80 * GiB, reserved=12 * GiB, allocated=12 * GiB, fraction=0.25):
            torch.cuda.assert_free_memory("8GiB")
            with self.assertRaises(torch.OutOfMemoryError) as cm:
                torch.cuda.assert_free_memory(8 * GiB + 1)
        self.assertExpectedInline(
            str(cm.exception),
            """assert_free_memory(): cuda:0 has 8.00 GiB free (60.00 GiB free on the device + 0 B cached by PyTorch's allocator and reusable, capped by set_per_process_memory_fraction(0.25)) of 80.00 GiB total, but 8.00 GiB is required (required=8589934593)""",  # noqa: B950
        )

    def test_without_per_process_memory_fraction(self):
        # Releases without torch.cuda.get_per_process_memory_fraction count the whole device.
        with fake_cuda(free=60 * GiB, total=80 * GiB), mock.patch.object(
            torch.cuda, "get_per_process_memory_fraction", None
        ):
            torch.cuda.assert_free_memory("60GiB")

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

    @parametrize("device", [2, "cuda:5"])
    def test_device_out_of_range(self, device):
        with fake_cuda(count=2):
            with self.assertRaisesRegex(
                ValueError, r"out of range; this machine has 2 CUDA devices \(valid indices 0..1\)"
            ):
                torch.cuda.assert_free_memory(1, device=device)

    @parametrize("device", ["cpu", "meta", torch.device("cpu")])
    def test_not_a_cuda_device(self, device):
        with fake_cuda(), self.assertRaisesRegex(ValueError, r"device .* is not a CUDA device; expected None"):
            torch.cuda.assert_free_memory(1, device=device)
        # Checked before whether CUDA is available: it used to say "CUDA is not available".
        with mock.patch.object(torch.cuda, "is_available", return_value=False):
            with self.assertRaisesRegex(ValueError, r"^assert_free_memory\(\): device .* is not a CUDA device"):
                torch.cuda.assert_free_memory(1, device=device)

    @parametrize(
        "device, message",
        [
            subtest((-1, r"device index must be >= 0, but got -1"), name="negative"),
            subtest((10**400, r"device index 10{400} is out of range for a torch.device"), name="huge"),
            subtest((128, r"device index 128 is out of range for a torch.device"), name="beyond_int8"),
            subtest(("cuda:300", r"device index 300 is out of range for a torch.device"), name="wrapping_string"),
        ],
    )
    def test_device_index_value_errors(self, device, message):
        with mock.patch.object(torch.cuda, "is_available", return_value=False):
            with self.assertRaisesRegex(ValueError, r"^assert_free_memory\(\): " + message):
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
        split=st.integers(0, 1 << 36),
        allocated=st.integers(0, 1 << 36),
        required=st.integers(0, 1 << 41),
    )
    def test_raises_exactly_when_short(self, free, cached, split, allocated, required):
        reserved = allocated + split + cached
        with fake_cuda(free=free, total=1 << 42, reserved=reserved, allocated=allocated, inactive_split=split):
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

    @parametrize(
        "device, error, message",
        [
            subtest((-1, ValueError, r"device index must be >= 0, but got -1"), name="negative"),
            subtest(("cpu", ValueError, r"device 'cpu' is not a CUDA device"), name="cpu"),
            subtest(("meta", ValueError, r"device 'meta' is not a CUDA device"), name="meta"),
            subtest((torch.device("cpu"), ValueError, r"device 'cpu' is not a CUDA device"), name="cpu_device"),
            subtest(("gpu", ValueError, r"'gpu' is not a device"), name="unparseable"),
            subtest((10**400, ValueError, r"device index 10{400} is out of range"), name="huge"),
            subtest((1.5, TypeError, r"device must be None, an int index"), name="float"),
        ],
    )
    def test_device_validated_at_creation_without_cuda(self, device, error, message):
        no_query = {"side_effect": AssertionError("CUDA was queried")}
        with mock.patch.object(torch.cuda, "is_available", **no_query), mock.patch.object(
            torch.cuda, "device_count", **no_query
        ), mock.patch.object(torch.cuda, "current_device", **no_query):
            with self.assertRaisesRegex(error, r"^min_free_vram\(\): " + message):
                torch.cuda.min_free_vram("1GiB", device=device)
            guard = torch.cuda.min_free_vram("1GiB", device="cuda:7")  # the device count is checked at call time
        self.assertFalse(torch.cuda.is_initialized())
        self.assertEqual(guard.device, "cuda:7")

    def test_decorating_a_class_is_refused(self):
        with self.assertRaisesRegex(
            TypeError,
            r"^min_free_vram\(\): can only decorate a function, but got a class \(Model\); decorate its methods instead",
        ):

            @torch.cuda.min_free_vram("1GiB")
            class Model:
                pass

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

    def test_coroutine_function(self):
        calls = []

        @torch.cuda.min_free_vram("4GiB")
        async def step(x):
            calls.append(x)
            await asyncio.sleep(0)
            return x

        self.assertTrue(inspect.iscoroutinefunction(step))
        with fake_cuda(free=8 * GiB) as checks:
            self.assertEqual(asyncio.run(step(1)), 1)
            self.assertEqual(asyncio.run(step(2)), 2)
        self.assertEqual(sum(c[0] == "mem_get_info" for c in checks), 2)
        with fake_cuda(free=GiB), self.assertRaises(torch.OutOfMemoryError):
            asyncio.run(step(3))
        self.assertEqual(calls, [1, 2])

    def test_async_with(self):
        async def main():
            async with torch.cuda.min_free_vram("1GiB"):
                pass
            async with torch.cuda.min_free_vram("2GiB"):
                self.fail("the block must not run")

        with fake_cuda(free=GiB), self.assertRaises(torch.OutOfMemoryError):
            asyncio.run(main())

    def test_generator_function_checks_when_iteration_starts(self):
        @torch.cuda.min_free_vram("4GiB")
        def batches(n):
            received = yield 0
            for i in range(1, n):
                received = yield (i, received)

        self.assertTrue(inspect.isgeneratorfunction(batches))
        with fake_cuda(free=8 * GiB) as checks:
            gen = batches(3)
            self.assertEqual(checks, [])  # nothing is checked before the first next()
            self.assertEqual(next(gen), 0)
            self.assertEqual(gen.send("a"), (1, "a"))
            self.assertEqual(list(gen), [(2, None)])
        self.assertEqual(sum(c[0] == "mem_get_info" for c in checks), 1)
        with fake_cuda(free=GiB), self.assertRaises(torch.OutOfMemoryError):
            next(batches(3))

    def test_async_generator_function(self):
        closed = []

        @torch.cuda.min_free_vram("4GiB")
        async def batches():
            try:
                received = yield 0
                while True:
                    try:
                        received = yield received
                    except KeyError:
                        received = "recovered"
            finally:
                closed.append(True)

        async def main():
            gen = batches()
            out = [await gen.__anext__(), await gen.asend("a"), await gen.athrow(KeyError("k"))]
            await gen.aclose()
            return out

        self.assertTrue(inspect.isasyncgenfunction(batches))
        with fake_cuda(free=8 * GiB):
            self.assertEqual(asyncio.run(main()), [0, "a", "recovered"])
        self.assertEqual(closed, [True])
        with fake_cuda(free=GiB), self.assertRaises(torch.OutOfMemoryError):
            asyncio.run(batches().__anext__())

    @parametrize("backend", ["eager", "aot_eager"])
    def test_fullgraph_says_to_decorate_outside(self, backend):
        # Our message, not Dynamo's "marked as skipped ... Please file an issue".
        torch._dynamo.reset()

        def outer(x):
            return needs_half(x) + 1

        message = r"apply torch.cuda.min_free_vram outside the compiled region"
        with mock.patch("torch.cuda._memory_guard._check_free_memory"):
            for target in (needs_half, outer):
                with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, message):
                    torch.compile(target, backend=backend, fullgraph=True)(torch.ones(2))

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


    def test_split_block_remainder_is_not_free(self):
        # A 60 MiB tensor in a cached 100 MiB block leaves a 40 MiB remainder that reserved - allocated
        # counted as free, though no allocation larger than it can use it.
        torch.cuda.clear_cache()
        x = torch.empty(100 * MiB, dtype=torch.uint8, device="cuda")
        del x
        y = torch.empty(60 * MiB, dtype=torch.uint8, device="cuda")
        if torch.cuda.memory_stats()["inactive_split_bytes.all.current"] < 40 * MiB:
            self.skipTest("this allocator configuration did not split the cached block")
        driver_free, _ = torch.cuda.mem_get_info()
        with self.assertRaises(torch.OutOfMemoryError):
            torch.cuda.assert_free_memory(driver_free + MiB)
        del y
        torch.cuda.clear_cache()


instantiate_parametrized_tests(TestAssertFreeMemory)
instantiate_parametrized_tests(TestMinFreeVram)

if __name__ == "__main__":
    run_tests()
