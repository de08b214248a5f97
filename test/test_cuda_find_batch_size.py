# Owner(s): ["module: cuda"]

import asyncio
import gc
import importlib.util
import inspect
import itertools
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import threading
import unittest
import weakref
from unittest import mock

import torch
import torch.utils.error_callback as ec
from hypothesis import given, settings, strategies as st
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


def oom(size=None):
    return torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {size} GiB. GPU 0 has a total capacity")


def fits_up_to(limit, sizes=None, error=oom):
    """A step that runs out of memory above ``limit``, recording each size it is called with."""
    sizes = [] if sizes is None else sizes

    def step(batch_size, *args, **kwargs):
        sizes.append(batch_size)
        if batch_size > limit:
            raise error(batch_size)
        return batch_size, args, kwargs

    return step, sizes


@torch.cuda.find_batch_size(start=8)
def module_level(batch_size):
    """Returns the batch size."""
    return batch_size


class Plan:
    def __init__(self, batch_size):
        self.batch_size = batch_size

    def __repr__(self):
        return f"Plan({self.batch_size})"


class TestFindBatchSize(TestCase):
    def test_shrinks_on_oom_and_remembers(self):
        step, sizes = fits_up_to(10)
        wrapped = torch.cuda.find_batch_size(step, start=64)
        self.assertIsNone(wrapped.batch_size)
        self.assertEqual(wrapped("x", k=1), (8, ("x",), {"k": 1}))
        self.assertEqual(sizes, [64, 32, 16, 8])
        self.assertEqual(wrapped.batch_size, 8)
        # Later calls start at the size that worked.
        sizes.clear()
        self.assertEqual(wrapped()[0], 8)
        self.assertEqual(sizes, [8])

    def test_decorator_form_and_wraps(self):
        self.assertEqual(module_level(), 8)
        self.assertEqual(module_level.__name__, "module_level")
        self.assertEqual(module_level.__doc__, "Returns the batch size.")
        self.assertEqual(module_level.__wrapped__(3), 3)

    def test_pickles_by_reference(self):
        self.assertIs(pickle.loads(pickle.dumps(module_level)), module_level)

    @parametrize("factor", [0.9, 0.99, 0.1], name_fn=lambda f: str(f).replace(".", "_"))
    def test_each_retry_is_at_least_one_smaller(self, factor):
        step, sizes = fits_up_to(2)
        torch.cuda.find_batch_size(step, start=5, factor=factor)()
        # int(5 * 0.9) == 4, int(4 * 0.99) == 3 is 1 smaller; int(5 * 0.1) == 0 stops at min_size.
        self.assertEqual(sizes, {0.9: [5, 4, 3, 2], 0.99: [5, 4, 3, 2], 0.1: [5, 1]}[factor])

    def test_min_size_is_tried_then_a_clear_error(self):
        step, sizes = fits_up_to(0)
        wrapped = torch.cuda.find_batch_size(step, start=10, min_size=3)
        with self.assertRaises(torch.OutOfMemoryError) as cm:
            wrapped()
        self.assertEqual(sizes, [10, 5, 3])  # not 2: min_size itself is the last attempt
        self.assertExpectedInline(
            str(cm.exception),
            """find_batch_size(fits_up_to.<locals>.step): ran out of memory at every batch size tried (10, 5, 3), down to min_size=3; lower min_size or free memory""",  # noqa: B950
        )
        self.assertIsInstance(cm.exception.__cause__, torch.OutOfMemoryError)
        self.assertIn("Tried to allocate 3 GiB", str(cm.exception.__cause__))
        self.assertIsNone(wrapped.batch_size)

    def test_other_errors_propagate_at_once(self):
        calls = []

        def step(n):
            calls.append(n)
            raise ValueError("bad data")

        seen = []
        wrapped = torch.cuda.find_batch_size(step, start=8, error_callback=lambda e, i: seen.append(i))
        with self.assertRaisesRegex(ValueError, "^bad data$"):
            wrapped()
        self.assertEqual(calls, [8])
        self.assertEqual(seen[0]["next_action"], "give_up")
        self.assertIsNone(seen[0]["next_batch_size"])

    @parametrize(
        "error",
        [
            RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"),
            RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        ],
        name_fn=lambda e: str(e).split()[0].strip("[:").lower(),
    )
    def test_oom_detection_as_safe_run(self, error):
        sizes = []

        def step(n):
            sizes.append(n)
            if n > 1:
                raise error
            return n

        self.assertEqual(torch.cuda.find_batch_size(step, start=2)(), 1)
        self.assertEqual(sizes, [2, 1])

    def test_configuration_error_with_an_oom_prefix_is_not_retried(self):
        step, sizes = fits_up_to(1, error=lambda n: RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH"))
        with self.assertRaisesRegex(RuntimeError, "ARCH_MISMATCH"):
            torch.cuda.find_batch_size(step, start=4)()
        self.assertEqual(sizes, [4])

    def test_reports_each_attempt(self):
        step, _ = fits_up_to(2)
        local, registered = [], []
        handle = ec.register(lambda e, i: registered.append((type(e).__name__, i)))
        try:
            torch.cuda.find_batch_size(step, start=8, error_callback=lambda e, i: local.append(i))()
        finally:
            handle.remove()
        expected = [
            {
                "source": "torch.cuda.find_batch_size",
                "function": "fits_up_to.<locals>.step",
                "attempt": attempt,
                "batch_size": size,
                "next_batch_size": size // 2,
                "next_action": "retry",
            }
            for attempt, size in [(1, 8), (2, 4)]
        ]
        self.assertEqual(local, expected)
        self.assertEqual(registered, [("OutOfMemoryError", i) for i in expected])

    def test_failed_attempt_is_released_before_the_retry(self):
        refs, kept = [], []

        def step(n):
            activations = torch.empty(n * 1024)
            refs.append(weakref.ref(activations))
            if n > 1:
                raise oom(n)
            # The previous attempt's tensor is gone before this one runs.
            return [r() is None for r in refs[:-1]]

        # The callback keeps every exception, as a logger might: their frames no longer hold the tensors.
        wrapped = torch.cuda.find_batch_size(step, start=4, error_callback=lambda e, i: kept.append(e))
        self.assertEqual(wrapped(), [True, True])
        self.assertEqual(len(kept), 2)
        self.assertFalse(torch.cuda.is_initialized())

    def test_kept_failures_hold_no_arguments(self):
        # A callback that keeps each failure (registered, and error_callback=) must not keep the call's
        # arguments: the tracebacks reach the wrapper's frames, which drop them when the call ends.
        kept = []
        handle = ec.register(lambda e, i: kept.append(e))
        try:

            @torch.cuda.find_batch_size(start=64, error_callback=lambda e, i: kept.append(e))
            def step(bs, data):
                if bs > 10:
                    raise torch.OutOfMemoryError("CUDA out of memory")
                return bs

            data = torch.empty(1000)
            ref = weakref.ref(data)
            self.assertEqual(step(data), 8)
            del data
            gc.collect()
        finally:
            handle.remove()
        self.assertEqual(len(kept), 6)  # 64, 32 and 16 ran out, each seen by both callbacks
        self.assertIsNone(ref())

    def test_final_error_holds_no_arguments_through_the_wrapper(self):
        # The error raised keeps fn's frames whole (fn dropped its own reference here), but the wrapper's frames
        # do not hold the arguments either.
        def step(bs, data):
            del data
            raise oom(bs)

        data = torch.empty(1000)
        ref = weakref.ref(data)
        # Caught by hand: assertRaises would clear the traceback's frames itself.
        try:
            torch.cuda.find_batch_size(step, start=4)(data)
        except torch.OutOfMemoryError as e:
            kept = e
        self.assertRegex(str(kept), r"ran out of memory at every batch size tried \(4, 2, 1\)")
        self.assertIsNotNone(kept.__traceback__)
        del data
        gc.collect()
        self.assertIsNone(ref())

    @settings(max_examples=60, deadline=None)
    @given(
        start=st.integers(1, 10**6),
        fits=st.integers(0, 10**6),
        factor=st.floats(0.0, 0.99, exclude_min=True),
        data=st.data(),
    )
    def test_sizes_shrink_to_the_largest_tried_that_fits(self, start, fits, factor, data):
        min_size = data.draw(st.integers(1, start))
        step, sizes = fits_up_to(fits)
        wrapped = torch.cuda.find_batch_size(step, start=start, min_size=min_size, factor=factor)
        # Only the sizes matter here: skip the garbage collection between attempts (thousands of them).
        with mock.patch("torch.cuda._batch_size.clear_cache"):
            try:
                found = wrapped()[0]
            except torch.OutOfMemoryError:
                found = None
        # Strictly decreasing, never below min_size, never more attempts than sizes from start to min_size.
        self.assertTrue(all(a > b >= min_size for a, b in itertools.pairwise(sizes)), sizes)
        self.assertEqual(sizes[0], start)
        self.assertLessEqual(len(sizes), start - min_size + 1)
        if found is None:
            self.assertEqual(sizes[-1], min_size)
            self.assertGreater(min_size, fits)
        else:
            self.assertEqual(found, sizes[-1])
            self.assertLessEqual(found, fits)
            self.assertTrue(all(s > fits for s in sizes[:-1]))

    def test_threads_share_the_size_that_worked(self):
        step, sizes = fits_up_to(5)
        wrapped = torch.cuda.find_batch_size(step, start=64)
        results = []
        barrier = threading.Barrier(8)

        def call():
            barrier.wait()
            results.append(wrapped()[0])

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [4] * 8)
        self.assertEqual(wrapped.batch_size, 4)
        sizes.clear()
        wrapped()
        self.assertEqual(sizes, [4])


class TestFindBatchSizeArguments(TestCase):
    @parametrize(
        "kwargs, error, message",
        [
            ({"start": 0}, ValueError, r"start must be an int from 1 to sys.maxsize \(\d+\), but got 0"),
            ({"start": -3}, ValueError, r"start must be an int from 1 to sys.maxsize \(\d+\), but got -3"),
            ({"start": 2**64}, ValueError, r"start must be an int from 1 to sys.maxsize \(\d+\), but got 18446744073709551616"),  # noqa: B950
            ({"start": 8.0}, TypeError, r"start must be an int, but got 8.0 of type float"),
            ({"start": True}, TypeError, r"start must be an int, but got True of type bool"),
            ({"start": "8"}, TypeError, r"start must be an int, but got '8' of type str"),
            ({"start": 8, "min_size": 9}, ValueError, r"min_size \(9\) must not be above start \(8\)"),
            ({"start": 8, "min_size": 0}, ValueError, r"min_size must be an int from 1 to sys.maxsize"),
            ({"start": 8, "factor": 1}, ValueError, r"factor must be between 0 and 1 exclusive, but got 1"),
            ({"start": 8, "factor": 0.0}, ValueError, r"factor must be between 0 and 1 exclusive, but got 0.0"),
            ({"start": 8, "factor": float("nan")}, ValueError, r"factor must be between 0 and 1 exclusive, but got nan"),
            ({"start": 8, "factor": "0.5"}, TypeError, r"factor must be a real number, but got '0.5' of type str"),
            ({"start": 8, "factor": True}, TypeError, r"factor must be a real number, but got True of type bool"),
            ({"start": 8, "plan": 4}, TypeError, r"plan must be None, False, True or a BatchPlan .* but got 4 of type int"),
            ({"start": 8, "plan": Plan(0)}, ValueError, r"plan.batch_size must be an int from 1"),
            ({"start": 8, "plan": Plan(2.5)}, TypeError, r"plan.batch_size must be an int, but got 2.5"),
            ({"start": 8, "min_size": 4, "plan": Plan(2)}, ValueError, r"plan.batch_size \(2\) is smaller than min_size \(4\)"),  # noqa: B950
            ({"start": 8, "error_callback": 3}, TypeError, r"error_callback must be callable or None, but got 3 of type int"),  # noqa: B950
        ],
        name_fn=lambda kwargs, error, message: re.sub(r"\W+", "_", repr(kwargs).replace("-", "neg")).strip("_"),
    )
    def test_bad_arguments(self, kwargs, error, message):
        with self.assertRaisesRegex(error, r"^find_batch_size\(\): " + message):
            torch.cuda.find_batch_size(**kwargs)

    def test_start_is_required_without_a_plan(self):
        for kwargs in [{}, {"plan": None}, {"plan": False}, {"min_size": 2}]:
            with self.assertRaisesRegex(
                TypeError,
                r"^find_batch_size\(\) missing required keyword argument 'start' \(the first batch size to try\); "
                r"it may be omitted only with plan=True or plan=a BatchPlan",
            ):
                torch.cuda.find_batch_size(lambda n: n, **kwargs)
        with self.assertRaisesRegex(TypeError, r"^find_batch_size\(\) missing required keyword argument 'start'"):
            torch.cuda.find_batch_size()  # the decorator form too

    def test_not_callable(self):
        with self.assertRaisesRegex(TypeError, r"^find_batch_size\(\): expected a callable to wrap, but got 3"):
            torch.cuda.find_batch_size(3, start=1)

    def test_function_without_positional_parameter(self):
        def step(*, data):
            return data

        with self.assertRaisesRegex(
            TypeError, r"^find_batch_size\(.*step\): the wrapped function must take the batch size as its first"
        ):
            torch.cuda.find_batch_size(step, start=1)

    def test_generator_functions_refused_at_decoration(self):
        def gen(n):
            yield n

        async def agen(n):
            yield n

        for fn, kind in ((gen, "a generator"), (agen, "an async generator")):
            with self.assertRaisesRegex(
                TypeError,
                rf"^find_batch_size\(.*{fn.__name__}\): .*{fn.__name__} is {kind} function; an attempt that already "
                r"yielded items cannot be retried with a smaller batch, so wrap the function that runs one batch",
            ):
                torch.cuda.find_batch_size(fn, start=2)

    def test_plan_true_refused_for_coroutine_functions(self):
        async def step(n):
            return n

        with self.assertRaisesRegex(TypeError, r"plan=True rehearses fn on fake tensors, which a coroutine function"):
            torch.cuda.find_batch_size(step, start=2, plan=True)


class TestFindBatchSizeCoroutine(TestCase):
    def test_awaits_each_attempt(self):
        sizes = []

        async def step(n, scale):
            sizes.append(n)
            await asyncio.sleep(0)
            if n > 3:
                raise oom(n)
            return n * scale

        wrapped = torch.cuda.find_batch_size(step, start=16)
        self.assertTrue(inspect.iscoroutinefunction(wrapped))
        self.assertEqual(asyncio.run(wrapped(10)), 20)
        self.assertEqual(sizes, [16, 8, 4, 2])
        self.assertEqual(wrapped.batch_size, 2)

    def test_other_tasks_run_between_attempts(self):
        async def step(n):
            await asyncio.sleep(0)
            if n > 1:
                raise oom(n)
            return n

        async def main():
            ticks = []

            async def ticker():
                for i in range(3):
                    ticks.append(i)
                    await asyncio.sleep(0)

            result, _ = await asyncio.gather(torch.cuda.find_batch_size(step, start=4)(), ticker())
            return result, ticks

        self.assertEqual(asyncio.run(main()), (1, [0, 1, 2]))

    def test_kept_failures_hold_no_arguments(self):
        kept = []

        @torch.cuda.find_batch_size(start=64, error_callback=lambda e, i: kept.append(e))
        async def step(bs, data):
            await asyncio.sleep(0)
            if bs > 10:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return bs

        data = torch.empty(1000)
        ref = weakref.ref(data)
        self.assertEqual(asyncio.run(step(data)), 8)
        del data
        gc.collect()
        self.assertEqual(len(kept), 3)
        self.assertIsNone(ref())

    def test_final_error_holds_no_arguments_through_the_wrapper(self):
        async def step(bs, data):
            del data
            await asyncio.sleep(0)
            raise oom(bs)

        data = torch.empty(1000)
        ref = weakref.ref(data)
        try:  # caught by hand: assertRaises would clear the traceback's frames itself
            asyncio.run(torch.cuda.find_batch_size(step, start=2)(data))
        except torch.OutOfMemoryError as e:
            kept = e
        self.assertRegex(str(kept), r"at every batch size tried \(2, 1\)")
        self.assertIsNotNone(kept.__traceback__)
        del data
        gc.collect()
        self.assertIsNone(ref())


# plan=True plans with torch.utils.dry_run.max_batch_size, which lands later in the PR stack.
HAS_PLANNER = importlib.util.find_spec("torch.utils.dry_run") is not None
needs_planner = unittest.skipIf(not HAS_PLANNER, "torch.utils.dry_run (the planner) is not in this build")


class TestFindBatchSizePlan(TestCase):
    def test_batch_plan_is_the_first_and_only_attempt(self):
        step, sizes = fits_up_to(24)
        wrapped = torch.cuda.find_batch_size(step, start=1024, plan=Plan(24))
        self.assertEqual(wrapped()[0], 24)
        self.assertEqual(sizes, [24])

    @needs_planner
    def test_plan_true_asks_the_planner_lazily(self):
        calls = []

        def max_batch_size(step, make_batch, *, memory, high):
            calls.append((memory, high, step(*make_batch(3)), make_batch(3)))
            return Plan(3)

        step, sizes = fits_up_to(3)
        # (Not mock.patch.dict(sys.modules): restoring it drops every module first imported meanwhile.)
        with mock.patch("torch.utils.dry_run.max_batch_size", max_batch_size), mock.patch(
            "torch.cuda._batch_size._free_memory", return_value=12345
        ):
            wrapped = torch.cuda.find_batch_size(step, start=64, plan=True)
            self.assertEqual(calls, [])  # nothing planned at decoration
            self.assertEqual(wrapped("a")[0], 3)
            self.assertEqual(wrapped("a")[0], 3)
        self.assertEqual(calls, [(12345, 64, (3, ("a",), {}), (3, {}, "a"))])  # planned once, for the free memory
        self.assertEqual(sizes, [3, 3, 3])  # the planner's own call, then one real attempt per call

    @needs_planner
    def test_plan_true_plans_with_the_real_planner(self):
        # The step builds its own model and batch from the size: the planner rehearses it on fake
        # tensors, and the one real attempt runs at the size it found for the (patched) free memory.
        sizes = []

        def step(n):
            sizes.append(n)
            return torch.nn.Linear(64, 64)(torch.randn(n, 64)).shape[0]

        with mock.patch("torch.cuda._batch_size._free_memory", return_value=64 * 1024):
            wrapped = torch.cuda.find_batch_size(step, start=1024, plan=True)
            found = wrapped()
        self.assertEqual(sizes[-1], found)
        self.assertEqual(wrapped.batch_size, found)
        self.assertTrue(1 < found < 1024, found)
        # The plan fits the budget: the batch (n*64*4 bytes) and the output (same) plus the weights.
        self.assertLessEqual(2 * found * 64 * 4 + (64 * 64 + 64) * 4, 64 * 1024)

    @needs_planner
    def test_plan_true_with_module_and_tensor_arguments(self):
        # The README's train(batch_size, data) and a step(bs, model): the call's arguments are rehearsed as
        # fake tensors (before, the planner saw them as real tensors captured in a closure and refused them).
        sizes = []

        def step(n, model, *, scale):
            sizes.append(n)
            return (model(torch.randn(n, 64)) * scale).sum()

        model = torch.nn.Linear(64, 64)
        with mock.patch("torch.cuda._batch_size._free_memory", return_value=64 * 1024):
            wrapped = torch.cuda.find_batch_size(step, start=1024, plan=True)
            wrapped(model, scale=torch.ones(1))
        self.assertTrue(1 < wrapped.batch_size < 1024, wrapped.batch_size)
        self.assertEqual(sizes[-1], wrapped.batch_size)
        self.assertIsNone(model.weight.grad)

        @torch.cuda.find_batch_size(start=64, plan=True)
        def train(batch_size, data):
            return data[:batch_size].sum()

        with mock.patch("torch.cuda._batch_size._free_memory", return_value=1 << 30):
            self.assertEqual(train(torch.ones(100)).item(), 64.0)

    @needs_planner
    def test_plan_true_errors_name_the_option(self):
        def step(n, data):
            return int(data.sum().item())  # a value a rehearsal cannot know

        wrapped = torch.cuda.find_batch_size(step, start=8, plan=True)
        with self.assertRaisesRegex(
            RuntimeError, r"^find_batch_size\(.*step\): plan=True could not plan the batch size, because rehearsing fn "
            r"on fake tensors failed: rehearse\(\): .*pass plan=None to start at start=8"
        ) as ctx:
            wrapped(torch.ones(3))
        self.assertIsInstance(ctx.exception.__cause__, RuntimeError)

    def test_batch_plan_needs_no_start(self):
        step, sizes = fits_up_to(24)
        wrapped = torch.cuda.find_batch_size(step, plan=Plan(33), min_size=20)
        self.assertEqual(wrapped()[0], 20)
        self.assertEqual(sizes, [33, 20])  # int(33 * 0.5) = 16 is below min_size: 20 is tried instead
        self.assertEqual(wrapped.batch_size, 20)

    def test_min_size_is_checked_against_the_plan_not_start(self):
        # The plan's size is the first tried: a smaller start is not used, so it does not bound min_size.
        step, sizes = fits_up_to(40)
        wrapped = torch.cuda.find_batch_size(step, start=8, plan=Plan(33), min_size=20)
        self.assertEqual(wrapped()[0], 33)
        self.assertEqual(sizes, [33])
        with self.assertRaisesRegex(ValueError, r"^find_batch_size\(\): plan.batch_size \(33\) is smaller than min_size \(40\)"):
            torch.cuda.find_batch_size(step, start=64, plan=Plan(33), min_size=40)

    @needs_planner
    def test_plan_true_without_start_searches_unbounded(self):
        calls = []

        def max_batch_size(step, make_batch, *, memory, high):
            calls.append(high)
            return Plan(3)

        step, sizes = fits_up_to(100)
        with mock.patch("torch.utils.dry_run.max_batch_size", max_batch_size), mock.patch(
            "torch.cuda._batch_size._free_memory", return_value=12345
        ):
            self.assertEqual(torch.cuda.find_batch_size(step, plan=True)()[0], 3)
            # The planned size is the first attempt, but never below min_size.
            self.assertEqual(torch.cuda.find_batch_size(step, plan=True, min_size=5)()[0], 5)
            self.assertEqual(torch.cuda.find_batch_size(step, start=64, plan=True, min_size=5)()[0], 5)
        self.assertEqual(calls, [None, None, 64])
        self.assertEqual(sizes, [3, 5, 5])

    @needs_planner
    def test_plan_true_without_start_with_the_real_planner(self):
        sizes = []

        def step(n):
            sizes.append(n)
            return torch.nn.Linear(64, 64)(torch.randn(n, 64)).shape[0]

        with mock.patch("torch.cuda._batch_size._free_memory", return_value=64 * 1024):
            found = torch.cuda.find_batch_size(step, plan=True)()
        self.assertEqual(sizes[-1], found)
        self.assertGreater(found, 1)
        self.assertLessEqual(2 * found * 64 * 4 + (64 * 64 + 64) * 4, 64 * 1024)

    @needs_planner
    def test_plan_true_without_start_errors_say_to_pass_start(self):
        # A step whose memory does not grow with the size cannot be planned without a bound.
        wrapped = torch.cuda.find_batch_size(lambda n: n, plan=True)
        with self.assertRaisesRegex(
            ValueError, r"^find_batch_size\(.*<lambda>\): plan=True could not plan the batch size, .* make fn "
            r"rehearsable, pass start= to bound the search \(the planner's high=\), or start= with plan=None"
        ):
            wrapped()

    def test_plan_false_is_no_plan(self):
        step, sizes = fits_up_to(4)
        wrapped = torch.cuda.find_batch_size(step, start=8, plan=False)
        self.assertEqual(wrapped()[0], 4)
        self.assertEqual(sizes, [8, 4])

    def test_free_memory_needs_no_accelerator(self):
        from torch.cuda._batch_size import _free_memory

        self.assertGreater(_free_memory(), 0)
        self.assertFalse(torch.cuda.is_initialized())


class TestFindBatchSizeCompile(TestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_compiled_caller_gives_the_eager_result(self, backend):
        torch._dynamo.reset()
        fails = []

        @torch.compiler.disable
        def maybe_oom(n):
            if n > 2:
                fails.append(n)
                raise oom(n)

        @torch.cuda.find_batch_size(start=8)
        def step(n, x):
            maybe_oom(n)
            return x[:n].sin().sum()

        x = torch.arange(10.0)
        self.assertEqual(torch.compile(step, backend=backend)(x), x[:2].sin().sum())
        self.assertEqual(fails, [8, 4])

    @parametrize("backend", ["eager", "aot_eager"])
    def test_fullgraph_says_to_decorate_outside(self, backend):
        torch._dynamo.reset()

        @torch.cuda.find_batch_size(start=2)
        def step(n, x):
            return x * n

        message = r"apply torch.cuda.find_batch_size outside the compiled region"
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, message):
            torch.compile(step, backend=backend, fullgraph=True)(torch.ones(2))


WORKER = textwrap.dedent(
    """
    import datetime, gc, json, os, sys, weakref
    import torch
    import torch.distributed as dist

    rank, port = int(sys.argv[1]), int(sys.argv[2])
    timeout = datetime.timedelta(seconds=60)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=timeout)
    seen, kept = [], []

    def note(exc, info):
        kept.append(exc)  # as a logger might: the exceptions must not keep the call's arguments
        seen.append([info["batch_size"], info["next_action"], info["oom_ranks"], info["peer_oom"], type(exc).__name__])

    @torch.cuda.find_batch_size(start=8, error_callback=note)
    def before(n, x):
        # Only rank 1 runs out of memory, before the collective that rank 0 is already waiting in.
        if rank == 1 and n > 2:
            raise torch.OutOfMemoryError(f"CUDA out of memory at batch size {n}")
        t = torch.full((1,), float(n * x * (rank + 1)))
        dist.all_reduce(t)
        return n, t.item()

    @torch.cuda.find_batch_size(start=8, error_callback=note)
    def after(n):
        # Rank 1 runs out of memory after the collective: rank 0's attempt worked, it must still retry.
        t = torch.full((1,), float(n))
        dist.all_reduce(t)
        if rank == 1 and n > 4:
            raise torch.OutOfMemoryError(f"CUDA out of memory at batch size {n}")
        return n, t.item()

    @torch.cuda.find_batch_size(start=4)
    def bad(n):
        # Not an out-of-memory error, on rank 1 only: every rank raises, none waits in the collective.
        if rank == 1:
            raise ValueError("bad record")
        t = torch.ones(1)
        dist.all_reduce(t)
        return n

    data = torch.tensor(1.0)
    ref = weakref.ref(data)
    results = {"before": before(data)}
    del data
    gc.collect()
    results.update(kept_data=ref() is not None, again=before(10), after=after())
    try:
        bad()
    except Exception as e:
        results["bad"] = f"{type(e).__name__}: {e}"
    t = torch.ones(1)
    dist.all_reduce(t)  # the rebuilt default group works after the wrapper returned
    results.update(seen=seen, sizes=[before.batch_size, after.batch_size], final=t.item())
    print(json.dumps(results), flush=True)
    dist.destroy_process_group()
    """
)


@unittest.skipIf(IS_WINDOWS or not torch.distributed.is_available(), "gloo over TCP on Linux/macOS")
class TestFindBatchSizeDistributed(TestCase):
    def test_ranks_agree_when_only_one_runs_out_of_memory(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(rank), str(port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for rank in range(2)
        ]
        outputs = []
        try:
            for p in procs:
                # The test's own hard limit: a hang fails it, never CI.
                out, err = p.communicate(timeout=240)
                self.assertEqual(p.returncode, 0, err[-3000:])
                outputs.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        r0, r1 = outputs
        # Both ranks ran with the same size, and the collective of the attempt that worked summed both.
        self.assertEqual(r0["before"], [2, 2 * 1 * 1 + 2 * 1 * 2])
        self.assertEqual(r1["before"], r0["before"])
        self.assertEqual(r0["again"], [2, 2 * 10 * 1 + 2 * 10 * 2])
        self.assertEqual(r1["again"], r0["again"])
        self.assertEqual(r0["after"], [4, 8.0])
        self.assertEqual(r1["after"], r0["after"])
        self.assertEqual(r0["sizes"], [2, 4])
        self.assertEqual(r1["sizes"], [2, 4])
        self.assertEqual(r0["final"], 2.0)
        self.assertEqual([r0["kept_data"], r1["kept_data"]], [False, False])
        self.assertEqual(r1["bad"], "ValueError: bad record")
        self.assertRegex(
            r0["bad"],
            r"^RuntimeError: find_batch_size\(bad\) on rank 0: the attempt at batch size 4 failed on rank 1 "
            r"\(ValueError: bad record\); this rank's failed too \(RuntimeError: .*\); every rank stops so that",
        )
        # Rank 1 saw its own out-of-memory errors; rank 0 saw its collective fail because of them (not raised),
        # or nothing at all where its attempt had worked.
        self.assertEqual(
            r1["seen"],
            [
                [8, "retry", [1], False, "OutOfMemoryError"],
                [4, "retry", [1], False, "OutOfMemoryError"],
                [8, "retry", [1], False, "OutOfMemoryError"],
            ],
        )
        self.assertEqual(
            r0["seen"],
            [[8, "retry", [1], True, "RuntimeError"], [4, "retry", [1], True, "RuntimeError"]],
        )


@unittest.skipIf(not TEST_CUDA, "requires CUDA")
class TestFindBatchSizeCUDA(TestCase):
    def test_real_oom_shrinks_to_a_size_that_fits(self):
        torch.cuda.clear_cache()
        free, _ = torch.cuda.mem_get_info()
        per_sample = 256 << 20  # bytes

        @torch.cuda.find_batch_size(start=1 << 20)
        def step(n):
            x = torch.empty(n * per_sample, dtype=torch.uint8, device="cuda")
            return x.numel() // per_sample

        found = step()
        self.assertLessEqual(found * per_sample, free)
        self.assertGreater(found, 0)
        gc.collect()
        self.assertEqual(step.batch_size, found)


instantiate_parametrized_tests(TestFindBatchSize)
instantiate_parametrized_tests(TestFindBatchSizeArguments)
instantiate_parametrized_tests(TestFindBatchSizeCompile)


if __name__ == "__main__":
    run_tests()
