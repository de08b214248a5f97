# Owner(s): ["module: accelerator"]

import asyncio
import gc
import inspect
import pickle
import sys
import threading
import types
import unittest
from unittest import mock

import torch
import torch._accelerator
import torch._dynamo.testing
from torch._accelerator import _device_context, DeviceContext
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


TEST_MULTIGPU = TEST_CUDA and torch.cuda.device_count() >= 2


@DeviceContext("meta")
def module_level_on_meta(n):
    return torch.empty(n)


def _state():
    """Everything DeviceContext may change, to compare before and after."""
    return (
        torch.empty(0).device,
        torch.is_autocast_enabled("cpu"),
        torch.get_autocast_dtype("cpu"),
        DeviceContext.current(),
    )


class FakeCuda:
    """A 2-GPU CUDA machine as :mod:`torch.accelerator` reports it, recording index changes.

    Device switches go through the runtime the way CUDA's do: ``exchange`` and
    ``set_device_index`` make the device current and create its primary context;
    ``maybe_exchange`` only makes a device current if it has a context already,
    else it records the index to use later (``c10::cuda::MaybeExchangeDevice``).
    ``contexts`` holds the devices with a primary context.
    """

    def __init__(self, count=2, index=0, contexts=None):
        self.count = count
        self.index = index
        self.set_calls = []
        self.contexts = {index} if contexts is None else set(contexts)

    def _set_device_index(self, index, /):
        self.set_calls.append(index)
        self.index = index
        self.contexts.add(index)

    def _exchange(self, index, /):
        previous = self.index
        if index != previous:
            self._set_device_index(index)
        return previous

    def _maybe_exchange(self, index, /):
        previous = self.index
        if index != previous:
            self.set_calls.append(index)
            self.index = index  # a context is only made when there is one already
        return previous

    def __enter__(self):
        module = mock.Mock(is_initialized=lambda: True)
        self._patches = [
            mock.patch.object(torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("cuda")),
            mock.patch.object(torch.accelerator, "device_count", lambda: self.count),
            mock.patch.object(torch.accelerator, "current_device_index", lambda: self.index),
            mock.patch.object(torch.accelerator, "set_device_index", self._set_device_index),
            mock.patch.object(torch._C, "_accelerator_exchangeDevice", self._exchange, create=True),
            mock.patch.object(torch._C, "_accelerator_maybeExchangeDevice", self._maybe_exchange, create=True),
            mock.patch.object(torch, "get_device_module", lambda device=None: module),
        ]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc_info):
        for p in reversed(self._patches):
            p.stop()


class TestDeviceContext(TestCase):
    def setUp(self):
        super().setUp()
        self.before = _state()

    def tearDown(self):
        self.assertEqual(_state(), self.before)
        super().tearDown()

    @parametrize(
        "device",
        ["cpu", "meta", torch.device("meta"), "cpu:0"],
        name_fn=lambda d: f"{type(d).__name__}_{d}".replace(":", "_"),
    )
    def test_default_device_of_factories(self, device):
        with DeviceContext(device) as ctx:
            self.assertIs(DeviceContext.current(), ctx)
            self.assertEqual(ctx.device, torch.device(device))
            for t in (torch.zeros(2), torch.tensor([1.0]), torch.arange(3), torch.empty(1, 2)):
                self.assertEqual(t.device.type, torch.device(device).type)
            # An explicit device still wins.
            self.assertEqual(torch.zeros(1, device="cpu").device.type, "cpu")
        self.assertEqual(torch.zeros(1).device.type, "cpu")

    def test_no_amp_by_default(self):
        with DeviceContext("cpu") as ctx:
            self.assertIsNone(ctx.dtype)
            self.assertFalse(torch.is_autocast_enabled("cpu"))
            self.assertEqual((torch.ones(2, 2) @ torch.ones(2, 2)).dtype, torch.float32)

    def test_amp_on_cpu_picks_bfloat16(self):
        with DeviceContext("cpu", amp=True) as ctx:
            self.assertEqual(ctx.dtype, torch.bfloat16)
            self.assertTrue(torch.is_autocast_enabled("cpu"))
            self.assertEqual((torch.ones(2, 2) @ torch.ones(2, 2)).dtype, torch.bfloat16)
        self.assertFalse(torch.is_autocast_enabled("cpu"))

    def test_amp_with_dtype(self):
        with DeviceContext("cpu", amp=torch.float16) as ctx:
            self.assertEqual(ctx.dtype, torch.float16)
            self.assertEqual(torch.get_autocast_dtype("cpu"), torch.float16)
            self.assertEqual((torch.ones(2, 2) @ torch.ones(2, 2)).dtype, torch.float16)

    def test_restores_autocast_set_outside(self):
        with torch.autocast("cpu", dtype=torch.float16):
            with DeviceContext("cpu", amp=True):
                self.assertEqual(torch.get_autocast_dtype("cpu"), torch.bfloat16)
            self.assertTrue(torch.is_autocast_enabled("cpu"))
            self.assertEqual(torch.get_autocast_dtype("cpu"), torch.float16)

    def test_nesting(self):
        with DeviceContext("meta", tensorize=True) as outer:
            with DeviceContext("cpu", amp=True) as inner:
                self.assertIs(DeviceContext.current(), inner)
                self.assertEqual(torch.zeros(1).device.type, "cpu")
                self.assertTrue(torch.is_autocast_enabled("cpu"))
                with DeviceContext("meta") as innermost:
                    self.assertIs(DeviceContext.current(), innermost)
                    self.assertEqual(torch.zeros(1).device.type, "meta")
                self.assertIs(DeviceContext.current(), inner)
            self.assertIs(DeviceContext.current(), outer)
            self.assertTrue(outer.tensorize)
            self.assertEqual(torch.zeros(1).device.type, "meta")
            self.assertFalse(torch.is_autocast_enabled("cpu"))

    def test_same_object_reentered(self):
        ctx = DeviceContext("meta", amp=False)
        with ctx:
            with ctx:
                self.assertIs(DeviceContext.current(), ctx)
            self.assertIs(DeviceContext.current(), ctx)
            self.assertEqual(torch.zeros(1).device.type, "meta")

    def test_restores_after_exception(self):
        with self.assertRaisesRegex(ValueError, "boom"):
            with DeviceContext("meta"):
                with DeviceContext("cpu", amp=True):
                    raise ValueError("boom")
        self.assertIsNone(DeviceContext.current())

    def test_exception_is_not_swallowed_by_decorator(self):
        @DeviceContext("cpu", amp=True)
        def fails():
            raise KeyError("k")

        with self.assertRaises(KeyError):
            fails()

    def test_failed_entry_leaves_nothing_behind(self):
        ctx = DeviceContext("cpu", amp=True)
        with mock.patch.object(torch.amp, "autocast", side_effect=RuntimeError("no autocast")):
            with self.assertRaisesRegex(RuntimeError, "no autocast"):
                ctx.__enter__()

    def test_out_of_order_exit(self):
        a, b = DeviceContext("meta"), DeviceContext("cpu")
        a.__enter__()
        b.__enter__()
        with self.assertRaisesRegex(RuntimeError, "exited out of order"):
            a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)

    def test_decorator(self):
        calls = []

        @DeviceContext("meta", tensorize=True)
        def f(n):
            calls.append(DeviceContext.current())
            return torch.empty(n)

        self.assertEqual(f(3).device.type, "meta")
        self.assertEqual(f.__name__, "f")
        self.assertEqual(len(calls), 1)
        self.assertTrue(calls[0].tensorize)
        self.assertIsNone(DeviceContext.current())

    def test_decorator_recursion_and_generators(self):
        @DeviceContext("meta")
        def depth(n):
            return [torch.empty(0).device.type] + (depth(n - 1) if n else [])

        self.assertEqual(depth(2), ["meta"] * 3)

        @DeviceContext("meta")
        def gen():
            yield torch.empty(1).device.type
            yield torch.empty(1).device.type

        it = gen()
        self.assertEqual(next(it), "meta")
        # Between steps the caller's settings are back in place.
        self.assertEqual(torch.empty(1).device.type, "cpu")
        self.assertEqual(next(it), "meta")

    def test_generator_close_and_throw_run_in_the_context(self):
        seen = []

        @DeviceContext("meta")
        def gen():
            try:
                yield 1
            except KeyError:
                seen.append(("thrown", torch.empty(0).device.type))
                yield 2
            finally:
                seen.append(("closed", torch.empty(0).device.type))

        it = gen()
        next(it)
        self.assertEqual(it.throw(KeyError()), 2)
        it.close()
        self.assertEqual(seen, [("thrown", "meta"), ("closed", "meta")])
        self.assertIsNone(DeviceContext.current())

    def test_coroutine_two_interleaved_tasks(self):
        # The context holds while its coroutine runs, never for the other tasks.
        log = []

        @DeviceContext("meta")
        async def on_meta(name):
            for _ in range(3):
                log.append((name, torch.empty(0).device.type, torch.is_autocast_enabled("cpu")))
                await asyncio.sleep(0)
            return name

        @DeviceContext("cpu", amp=True)
        async def on_cpu_amp(name):
            for _ in range(3):
                log.append((name, torch.empty(0).device.type, torch.is_autocast_enabled("cpu")))
                await asyncio.sleep(0)
            return name

        async def plain():
            for _ in range(3):
                log.append(("plain", torch.empty(0).device.type, torch.is_autocast_enabled("cpu")))
                await asyncio.sleep(0)

        async def main():
            return await asyncio.gather(on_meta("meta"), on_cpu_amp("amp"), plain())

        self.assertTrue(inspect.iscoroutinefunction(on_meta))
        self.assertEqual(on_meta.__name__, "on_meta")
        self.assertEqual(asyncio.run(main()), ["meta", "amp", None])
        self.assertEqual(
            log, [("meta", "meta", False), ("amp", "cpu", True), ("plain", "cpu", False)] * 3
        )
        self.assertIsNone(DeviceContext.current())

    def test_coroutine_exception_and_cancellation(self):
        seen = []

        @DeviceContext("meta")
        async def fails():
            await asyncio.sleep(0)
            raise ZeroDivisionError

        @DeviceContext("meta")
        async def waits(started):
            try:
                started.set()
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen.append(("cancelled", torch.empty(0).device.type))
                raise

        async def main():
            with self.assertRaises(ZeroDivisionError):
                await fails()
            started = asyncio.Event()
            task = asyncio.ensure_future(waits(started))
            await started.wait()
            self.assertEqual(torch.empty(0).device.type, "cpu")
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        before = _state()
        asyncio.run(main())
        self.assertEqual(seen, [("cancelled", "meta")])
        self.assertEqual(_state(), before)

    def test_with_block_spanning_an_await_is_caught(self):
        # Thread-local settings held across an await would leak to the other tasks: the
        # interleaved exits are out of order and raise, instead of running on the wrong device.
        async def step(device):
            with DeviceContext(device):
                await asyncio.sleep(0)

        async def main():
            return await asyncio.gather(step("meta"), step("cpu"), return_exceptions=True)

        errors = asyncio.run(main())
        self.assertIsInstance(errors[0], RuntimeError)
        self.assertIn("must not span an `await`", str(errors[0]))
        # Clean up what the broken exits left on this thread.
        from torch._accelerator import _device_context

        while _device_context._stack():
            _device_context._stack().pop()[1].__exit__(None, None, None)
        self.assertEqual(torch.empty(0).device.type, "cpu")

    def test_async_generator(self):
        seen = []

        @DeviceContext("meta")
        async def agen():
            try:
                for _ in range(3):
                    sent = yield torch.empty(0).device.type
                    seen.append(("sent", sent, torch.empty(0).device.type))
                    await asyncio.sleep(0)
            finally:
                seen.append(("closed", torch.empty(0).device.type))

        async def main():
            items = []
            async for item in agen():
                items.append((item, torch.empty(0).device.type))
            it = agen()
            self.assertEqual(await it.asend(None), "meta")
            self.assertEqual(await it.asend("x"), "meta")
            await it.aclose()
            return items

        @DeviceContext("meta")
        async def recovers():
            try:
                yield 1
            except KeyError:
                yield torch.empty(0).device.type

        async def thrown():
            it = recovers()
            await it.asend(None)
            return await it.athrow(KeyError())

        self.assertEqual(asyncio.run(thrown()), "meta")
        self.assertTrue(inspect.isasyncgenfunction(agen))
        self.assertEqual(asyncio.run(main()), [("meta", "cpu")] * 3)
        self.assertEqual(
            seen,
            [("sent", None, "meta")] * 3 + [("closed", "meta"), ("sent", "x", "meta"), ("closed", "meta")],
        )
        self.assertIsNone(DeviceContext.current())

    def test_iterating_a_data_loader_inside_says_what_to_do(self):
        # pytorch/pytorch#118084: the sampler's tensors follow the default device.
        from torch.utils.data import DataLoader, TensorDataset

        dataset = TensorDataset(torch.arange(10.0))
        loader = DataLoader(dataset, batch_size=4, shuffle=True)
        with self.assertRaises(RuntimeError) as cm:
            with DeviceContext("meta"):
                list(loader)
        self.assertIn(
            "iterating a torch.utils.data.DataLoader inside a DeviceContext on 'meta' failed", str(cm.exception)
        )
        self.assertIn("Build and iterate data loaders outside the DeviceContext", str(cm.exception))
        self.assertIsNotNone(cm.exception.__cause__)
        self.assertIsNone(DeviceContext.current())
        # Built inside, iterated outside; and on the CPU, iterated inside: both fine.
        with DeviceContext("meta"):
            inside = DataLoader(dataset, batch_size=4, shuffle=True)
        self.assertEqual(sorted(torch.cat([b for (b,) in inside]).tolist()), list(range(10)))
        with DeviceContext("cpu"):
            self.assertEqual(len(list(loader)), 3)
        # Other errors inside are left alone.
        with self.assertRaisesRegex(RuntimeError, "^boom$"):
            with DeviceContext("meta"):
                raise RuntimeError("boom")

    def test_multiprocessing_data_loader_inside_fails_quietly(self):
        # The half-built multiprocessing iterator printed "Exception ignored in ... __del__"
        # ("no attribute '_shutdown'") after our error when collected; it failed before any worker started.
        from torch.utils.data import DataLoader

        unraisable = []
        with mock.patch.object(sys, "unraisablehook", unraisable.append):
            with self.assertRaisesRegex(RuntimeError, "iterating a torch.utils.data.DataLoader inside"):
                with DeviceContext("meta"):
                    list(DataLoader(list(range(8)), batch_size=2, num_workers=2))
            gc.collect()
        self.assertEqual([str(u.exc_value) for u in unraisable], [])

    def test_decorated_module_level_function_pickles(self):
        fn = pickle.loads(pickle.dumps(module_level_on_meta))
        self.assertIs(fn, module_level_on_meta)
        self.assertEqual(fn(2).device.type, "meta")

    @parametrize("device, amp", [("meta", False), ("cpu", True)], name_fn=lambda d, a: f"{d}_amp_{a}")
    def test_thread_local(self, device, amp):
        entered, done = threading.Event(), threading.Event()
        seen = {}

        def other():
            entered.wait(10)
            seen["outside"] = _state()
            with DeviceContext("cpu", amp=torch.float16):
                seen["inside"] = (DeviceContext.current().dtype, torch.get_autocast_dtype("cpu"))
            done.set()

        t = threading.Thread(target=other)
        t.start()
        with DeviceContext(device, amp=amp) as ctx:
            inside = _state()
            entered.set()
            self.assertTrue(done.wait(10))
            # The other thread's context did not leak into this one.
            self.assertEqual(_state(), inside)
            self.assertIs(DeviceContext.current(), ctx)
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(seen["outside"], (torch.device("cpu"), False, torch.bfloat16, None))
        self.assertEqual(seen["inside"], (torch.float16, torch.float16))

    def test_one_object_in_many_threads(self):
        ctx = DeviceContext("meta")
        barrier = threading.Barrier(4)
        results = []

        def worker():
            with ctx:
                barrier.wait(10)
                results.append((DeviceContext.current() is ctx, torch.empty(1).device.type))
                barrier.wait(10)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(results, [(True, "meta")] * 4)

    def test_default_device_is_best_device(self):
        with mock.patch.object(
            torch._accelerator, "get_best_device", return_value=torch.device("meta")
        ) as get_best_device:
            ctx = DeviceContext(tensorize=True)
            with ctx:
                self.assertEqual(torch.zeros(1).device.type, "meta")
            with ctx:
                pass
        # Chosen once, when the object is created.
        get_best_device.assert_called_once_with()

    def test_repr(self):
        self.assertExpectedInline(
            repr(DeviceContext("cpu", amp=torch.bfloat16, tensorize=True)),
            """DeviceContext(device='cpu', amp=torch.bfloat16, tensorize=True)""",
        )


class TestDeviceContextErrors(TestCase):
    @parametrize(
        "kwargs, error, pattern",
        [
            ({"device": 1.0}, TypeError, "got 1.0 of type float"),
            ({"device": True}, TypeError, "got True of type bool"),
            ({"device": "gpu"}, ValueError, "'gpu' is not a device"),
            ({"device": "cpu", "amp": "bf16"}, TypeError, "amp must be a bool or a torch.dtype"),
            ({"device": "cpu", "amp": torch.int8}, ValueError, "not a floating-point dtype"),
            ({"device": "cpu", "tensorize": 1}, TypeError, "tensorize must be a bool"),
            ({"device": "meta", "amp": True}, ValueError, "autocast is not available for device type 'meta'"),
        ],
        name_fn=lambda kwargs, error, pattern: "_".join(f"{k}_{v}" for k, v in kwargs.items())
        .replace(".", "_")
        .replace(":", "_"),
    )
    def test_bad_arguments(self, kwargs, error, pattern):
        with self.assertRaisesRegex(error, pattern):
            DeviceContext(**kwargs)

    @parametrize("dtype", [torch.float64, torch.float32, torch.float8_e4m3fn], name_fn=lambda d: str(d)[6:])
    def test_amp_dtype_autocast_does_not_support(self, dtype):
        # Autocast would warn and disable itself on entry while ctx.dtype claimed the dtype.
        with self.assertRaisesRegex(ValueError, f"amp={dtype} is not supported by autocast on 'cpu'"):
            DeviceContext("cpu", amp=dtype)

    def test_amp_dtype_message(self):
        with self.assertRaises(ValueError) as cm:
            DeviceContext("cpu", amp=torch.float64)
        self.assertExpectedInline(
            str(cm.exception),
            """DeviceContext(): amp=torch.float64 is not supported by autocast on 'cpu' (which would disable itself); expected True or one of torch.bfloat16, torch.float16""",  # noqa: B950
        )

    def test_amp_dtype_asked_of_the_device_module(self):
        module = types.SimpleNamespace(get_amp_supported_dtype=lambda: [torch.float16])
        with mock.patch.object(torch, "get_device_module", lambda device=None: module):
            self.assertEqual(_device_context._amp_supported_dtypes("xpu"), (torch.float16,))
            self.assertEqual(_device_context._amp_supported_dtypes("cuda"), (torch.bfloat16, torch.float16))
        with mock.patch.object(torch, "get_device_module", lambda device=None: types.SimpleNamespace()):
            self.assertEqual(_device_context._amp_supported_dtypes("mps"), (torch.bfloat16, torch.float16))

    @parametrize("target", [5, None, int, DeviceContext], name_fn=lambda t: getattr(t, "__name__", repr(t)))
    def test_decorating_a_non_function(self, target):
        expected = "got a class .*; decorate its methods instead" if isinstance(target, type) else f"got {target!r}$"
        with self.assertRaisesRegex(TypeError, "DeviceContext.*can only decorate a function, but " + expected):
            DeviceContext("meta")(target)

    @unittest.skipIf(torch.accelerator.is_available(), "needs a machine without an accelerator")
    def test_index_without_accelerator(self):
        with self.assertRaisesRegex(RuntimeError, "cannot use device index 0: no accelerator is available"):
            DeviceContext(0)
        with self.assertRaisesRegex(ValueError, "neither 'cpu', 'meta' nor a device of the available accelerator"):
            DeviceContext("cuda:0")


class TestDeviceContextFakeAccelerator(TestCase):
    @parametrize("device", [1, "cuda:1", torch.device("cuda", 1)], name_fn=lambda d: type(d).__name__)
    def test_sets_and_restores_current_index(self, device):
        with FakeCuda(index=0) as fake:
            ctx = DeviceContext(device)
            self.assertEqual(ctx.device, torch.device("cuda", 1))
            with ctx:
                self.assertEqual(fake.index, 1)
            self.assertEqual(fake.set_calls, [1, 0])

    def test_nested_indices_restore_in_order(self):
        with FakeCuda(count=3, index=2) as fake:
            with DeviceContext(0):
                with DeviceContext("cpu"):
                    self.assertEqual(fake.index, 0)
                with DeviceContext(1):
                    self.assertEqual(fake.index, 1)
                self.assertEqual(fake.index, 0)
            self.assertEqual(fake.set_calls, [0, 1, 0, 2])

    def test_restores_index_after_exception(self):
        with FakeCuda(index=1) as fake:
            with self.assertRaises(ZeroDivisionError):
                with DeviceContext(0):
                    1 / 0
            self.assertEqual(fake.index, 1)

    def test_device_without_index_is_current(self):
        with FakeCuda(index=1):
            self.assertEqual(DeviceContext("cuda").device, torch.device("cuda", 1))

    def test_cpu_and_meta_leave_the_index_alone(self):
        with FakeCuda(index=1) as fake:
            with DeviceContext("cpu"), DeviceContext("meta"):
                pass
            self.assertEqual(fake.set_calls, [])

    @parametrize("device", [2, "cuda:2", -1], name_fn=str)
    def test_index_out_of_range(self, device):
        with FakeCuda():
            with self.assertRaisesRegex(ValueError, "out of range; this machine has 2 cuda devices"):
                DeviceContext(device)

    def test_wrong_accelerator(self):
        with FakeCuda():
            with self.assertRaisesRegex(ValueError, r"'xpu:0' is neither 'cpu', 'meta' nor a device of .* \(cuda\)"):
                DeviceContext("xpu:0")

    @parametrize("major, expected", [(9, torch.bfloat16), (7, torch.float16)], name_fn=lambda m, e: f"sm{m}x")
    def test_amp_dtype_read_from_the_target_device(self, major, expected):
        # bfloat16 support is asked of the context's device, not the current one.
        asked = []

        def get_device_properties(index):
            asked.append(index)
            return types.SimpleNamespace(major=major if index == 1 else 8)

        module = types.SimpleNamespace(is_initialized=lambda: True, get_device_properties=get_device_properties)
        with FakeCuda(index=0), mock.patch.object(torch, "get_device_module", lambda device=None: module):
            ctx = DeviceContext("cuda:1", amp=True)
            self.assertIsNone(ctx.dtype)  # decided on entry, on the device itself
            with mock.patch.object(torch.amp, "autocast") as autocast:
                with ctx:
                    self.assertEqual(ctx.dtype, expected)
            autocast.assert_called_once_with("cuda", dtype=expected)
        self.assertEqual(asked, [1])

    def test_exit_does_not_create_a_context_on_the_previous_device(self):
        # Leaving restores the index with "maybe exchange", as PyTorch's device
        # guards do, not with cudaSetDevice (which creates a primary context on GPU 0).
        with FakeCuda(index=0, contexts=()) as fake:
            with DeviceContext(1):
                self.assertEqual(fake.index, 1)
            self.assertEqual(fake.index, 0)
            self.assertEqual(fake.contexts, {1})

    def test_release_without_accelerator_device_index(self):
        # Releases without torch.accelerator.device_index: set the index, restore it exactly.
        with FakeCuda(index=0) as fake, mock.patch.object(torch.accelerator, "device_index", None):
            with DeviceContext(1), DeviceContext(1):
                self.assertEqual(fake.index, 1)
            self.assertEqual(fake.set_calls, [1, 0])


class TestDeviceContextCompile(TestCase):
    """Dynamo traces DeviceContext (patches/0003): one graph, also with ``fullgraph=True``."""

    def setUp(self):
        super().setUp()
        torch._dynamo.reset()

    def tearDown(self):
        torch._dynamo.reset()
        super().tearDown()

    def compile_one_graph(self, fn, backend):
        counter = torch._dynamo.testing.CompileCounterWithBackend(backend)
        return torch.compile(fn, backend=counter, fullgraph=True), counter

    @parametrize("backend", ["eager", "aot_eager"])
    def test_created_inside_compiled_function(self, backend):
        def f(x):
            with DeviceContext("cpu", amp=True):
                y = torch.ones(2, 2) @ x
            return y + 1

        x = torch.randn(2, 2)
        compiled, counter = self.compile_one_graph(f, backend)
        out = compiled(x)
        self.assertEqual(out, f(x), exact_dtype=True)
        self.assertEqual(out.dtype, torch.bfloat16)
        self.assertEqual(counter.frame_count, 1)
        self.assertIsNone(DeviceContext.current())

    @parametrize("backend", ["eager", "aot_eager"])
    def test_created_outside_compiled_function(self, backend):
        # The usual pattern: the context is made once and entered in the step.
        on_meta = DeviceContext("meta")
        half = DeviceContext("cpu", amp=torch.float16)

        def f(x):
            with on_meta as entered:
                seen = DeviceContext.current() is entered
                y = torch.zeros(3) + x.sum()
            with half:
                z = x.cpu() @ torch.ones(2, 2)
            return y, z, seen

        compiled, counter = self.compile_one_graph(f, backend)
        y, z, seen = compiled(torch.ones(2, 2))
        self.assertTrue(seen)
        self.assertEqual(y.device.type, "meta")
        self.assertEqual(y.shape, (3,))
        self.assertEqual(z, f(torch.ones(2, 2))[1], exact_dtype=True)
        self.assertEqual(z.dtype, torch.float16)
        self.assertEqual(counter.frame_count, 1)
        self.assertIsNone(DeviceContext.current())
        self.assertEqual(torch.zeros(1).device.type, "cpu")

    @parametrize("backend", ["eager", "aot_eager"])
    def test_context_passed_as_argument_recompiles_per_device(self, backend):
        def f(ctx, n):
            with ctx:
                return torch.zeros(n) + 1

        compiled, counter = self.compile_one_graph(f, backend)
        self.assertEqual(compiled(DeviceContext("meta"), 3).device.type, "meta")
        self.assertEqual(compiled(DeviceContext("cpu"), 3), torch.ones(3))
        self.assertEqual(counter.frame_count, 2)  # guarded on the device, never a stale graph

    @parametrize("backend", ["eager", "aot_eager"])
    def test_compiling_decorated_function(self, backend):
        @DeviceContext("meta")
        def f(n):
            return torch.zeros(n) + 1

        compiled, counter = self.compile_one_graph(f, backend)
        out = compiled(3)
        self.assertEqual(out.device.type, "meta")
        self.assertEqual(out.shape, (3,))
        self.assertEqual(counter.frame_count, 1)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_exception_inside_restores_everything(self, backend):
        def f(x):
            try:
                with DeviceContext("cpu", amp=True), DeviceContext("meta"):
                    raise ValueError("boom")
            except ValueError:
                pass
            return torch.zeros(1) + x

        before = _state()
        compiled, _ = self.compile_one_graph(f, backend)
        self.assertEqual(compiled(torch.ones(1)), torch.ones(1))
        self.assertEqual(_state(), before)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_graph_break_inside_runs_block_eagerly(self, backend):
        def f(x):
            with DeviceContext("meta"):
                y = torch.zeros(2)
                torch._dynamo.graph_break()
                z = torch.zeros(2)
            return y.device, z.device, (torch.zeros(1) + x).device

        meta = torch.device("meta")
        self.assertEqual(torch.compile(f, backend=backend)(torch.ones(1)), (meta, meta, torch.device("cpu")))
        self.assertIsNone(DeviceContext.current())
        torch._dynamo.reset()
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, "graph_break"):
            torch.compile(f, backend=backend, fullgraph=True)(torch.ones(1))
        self.assertIsNone(DeviceContext.current())


class TestDeviceContextCUDA(TestCase):
    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_real_device(self):
        with DeviceContext(0, amp=True) as ctx:
            x = torch.ones(4, 4)
            self.assertEqual(x.device, torch.device("cuda", 0))
            self.assertEqual((x @ x).dtype, ctx.dtype)
            self.assertIn(ctx.dtype, (torch.bfloat16, torch.float16))
        self.assertEqual(torch.ones(1).device.type, "cpu")

    @unittest.skipIf(not TEST_MULTIGPU, "requires 2 GPUs")
    def test_switches_current_device(self):
        previous = torch.cuda.current_device()
        with DeviceContext(1):
            self.assertEqual(torch.cuda.current_device(), 1)
            self.assertEqual(torch.empty(1).device, torch.device("cuda", 1))
        self.assertEqual(torch.cuda.current_device(), previous)


instantiate_parametrized_tests(TestDeviceContext)
instantiate_parametrized_tests(TestDeviceContextErrors)
instantiate_parametrized_tests(TestDeviceContextFakeAccelerator)
instantiate_parametrized_tests(TestDeviceContextCompile)

if __name__ == "__main__":
    run_tests()
